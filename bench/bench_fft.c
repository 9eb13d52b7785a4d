/* bench_fft.c - kiln's hand-written real FFT (kn_rfft) beside FFTW's fftwf
 * r2c (FFTW_MEASURE, out of place, single thread) on the same windows.
 * stdout: one JSON object per length; stderr: the same for people.
 * Usage: bench_fft [windows]  (default 256 windows per batch, in cache). */
#include <fftw3.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels/kernels.h"

#define RUNS 9                  /* median of RUNS timed batches per library */
#define TARGET_NS 40e6          /* each timed run lasts about this long */

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

typedef struct {
    size_t n, windows, in_stride, out_stride, reps;
    float *in, *out_kiln, *out_fftw, *scratch;
    kn_fft_plan_t *plan;
    fftwf_plan fplan;
} bench_t;

static void run_kiln(const bench_t *b)
{
    for (size_t r = 0; r < b->reps; r++)
        for (size_t w = 0; w < b->windows; w++)
            kn_rfft(b->plan, b->in + w * b->in_stride, b->out_kiln + w * b->out_stride, b->scratch);
}

static void run_fftw(const bench_t *b)
{
    for (size_t r = 0; r < b->reps; r++)
        for (size_t w = 0; w < b->windows; w++)
            fftwf_execute_dft_r2c(b->fplan, b->in + w * b->in_stride,
                                  (fftwf_complex *)(b->out_fftw + w * b->out_stride));
}

/* ns per transform, median of RUNS; kiln and FFTW alternate so drift in the
 * machine's speed hits both alike. */
static void time_both(bench_t *b, double *kiln_ns, double *fftw_ns)
{
    double tk[RUNS], tf[RUNS];
    double t0 = now_ns();
    b->reps = 1;
    run_kiln(b);
    double one = now_ns() - t0;
    b->reps = (size_t)(TARGET_NS / (one > 1 ? one : 1)) + 1;
    run_fftw(b);    /* warm */
    for (int i = 0; i < RUNS; i++) {
        t0 = now_ns();
        run_kiln(b);
        tk[i] = (now_ns() - t0) / (double)(b->reps * b->windows);
        t0 = now_ns();
        run_fftw(b);
        tf[i] = (now_ns() - t0) / (double)(b->reps * b->windows);
    }
    qsort(tk, RUNS, sizeof(double), cmp_double);
    qsort(tf, RUNS, sizeof(double), cmp_double);
    *kiln_ns = tk[RUNS / 2];
    *fftw_ns = tf[RUNS / 2];
}

static int bench_one(size_t n, size_t windows)
{
    bench_t b = {.n = n, .windows = windows};
    kiln_err_t err;
    int rc = 1;
    b.in_stride = (n + 15) & ~(size_t)15;                 /* 64-byte aligned windows */
    b.out_stride = (2 * (n / 2 + 1) + 15) & ~(size_t)15;
    b.in = fftwf_malloc(b.in_stride * windows * sizeof(float));
    b.out_kiln = fftwf_malloc(b.out_stride * windows * sizeof(float));
    b.out_fftw = fftwf_malloc(b.out_stride * windows * sizeof(float));
    if (!b.in || !b.out_kiln || !b.out_fftw || kn_fft_plan_new(n, &b.plan, &err) < 0)
        goto out;
    b.scratch = fftwf_malloc(kn_fft_scratch_floats(b.plan) * sizeof(float));
    b.fplan = fftwf_plan_dft_r2c_1d((int)n, b.in, (fftwf_complex *)b.out_fftw, FFTW_MEASURE);
    if (!b.scratch || !b.fplan)
        goto out;
    srand(7);
    for (size_t w = 0; w < windows; w++)        /* tone + noise, like a vibration window */
        for (size_t i = 0; i < n; i++)
            b.in[w * b.in_stride + i] = (float)(sin(0.05 * (double)i * (double)(w % 7 + 1)) +
                                                rand() / (double)RAND_MAX - 0.5);
    double kiln_ns, fftw_ns;
    time_both(&b, &kiln_ns, &fftw_ns);

    double max_diff = 0, max_abs = 0;
    for (size_t w = 0; w < windows; w++)
        for (size_t k = 0; k < 2 * (n / 2 + 1); k++) {
            double f = b.out_fftw[w * b.out_stride + k];
            double d = fabs(b.out_kiln[w * b.out_stride + k] - f);
            max_diff = d > max_diff ? d : max_diff;
            max_abs = fabs(f) > max_abs ? fabs(f) : max_abs;
        }
    double rel = max_diff / max_abs;
    char name[64];
    if (n == 2048)
        snprintf(name, sizeof name, "fft_vs_fftw");
    else
        snprintf(name, sizeof name, "fft_vs_fftw_n%zu", n);
    fprintf(stderr, "n=%-6zu kiln %9.1f ns  fftw %9.1f ns  fftw/kiln %.3f  (kiln/fftw %.2fx)  "
            "max rel err %.2e  [%zu windows x %zu reps]\n",
            n, kiln_ns, fftw_ns, fftw_ns / kiln_ns, kiln_ns / fftw_ns, rel, windows, b.reps);
    printf("{\"name\":\"%s\",\"n\":%zu,\"value\":%.1f,\"unit\":\"ns\",\"peer\":\"fftw3f\","
           "\"peer_value\":%.1f,\"ratio\":%.4f,\"max_rel_err\":%.3g,\"windows\":%zu}\n",
           name, n, kiln_ns, fftw_ns, fftw_ns / kiln_ns, rel, windows);
    rc = rel < 1e-5 ? 0 : 1;
    if (rc)
        fprintf(stderr, "n=%zu: kiln differs from FFTW (max rel err %.2e)\n", n, rel);
out:
    if (b.fplan)
        fftwf_destroy_plan(b.fplan);
    kn_fft_plan_destroy(&b.plan);
    fftwf_free(b.scratch);
    fftwf_free(b.in);
    fftwf_free(b.out_kiln);
    fftwf_free(b.out_fftw);
    return rc;
}

int main(int argc, char **argv)
{
    size_t windows = argc > 1 ? (size_t)strtoul(argv[1], NULL, 10) : 256;
    const size_t lengths[] = {2048, 1024, 4096, 8192, 3000};
    int rc = 0;
    if (windows < 1)
        windows = 1;
    for (size_t i = 0; i < sizeof lengths / sizeof *lengths; i++)
        rc |= bench_one(lengths[i], windows);
    return rc;
}
