/* membw.c - this machine's memory bandwidth, measured in the same bench run
 * as the kernels it bounds (STREAM, McCalpin 1995: best of several repeats
 * over arrays far larger than the last-level cache).  Two kernels, each with
 * 1..max threads (pthreads, one contiguous slice per thread):
 *   read:  s += a[i] + b[i] + c[i]   bytes = 3*8*n  (the pattern of a featurize pass)
 *   triad: a[i] = b[i] + q*c[i]      bytes = 3*8*n  (STREAM counting: the
 *          write-allocate read of a[] is not counted, as in STREAM)
 * Prints one JSON line per kernel and thread count on stdout, then the best
 * of each kernel over thread counts as membw_read / membw_triad. */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MEMBW_MAX_THREADS 64
#define MEMBW_MAX_REPEATS 100

typedef enum { MEMBW_READ = 0, MEMBW_TRIAD = 1 } membw_kernel_t;

typedef struct {
    double *a, *b, *c;
    size_t lo, hi;                 /* this thread's slice [lo, hi) */
    membw_kernel_t kernel;
    pthread_barrier_t *start;
    double sum;                    /* read result, kept so the loads are not dead */
} membw_task_t;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Eight independent accumulators: without -ffast-math the compiler may not
 * reassociate one running sum, and a single dependency chain would measure
 * the adder's latency, not the memory. */
static double read_sum(const double *a, const double *b, const double *c,
                       size_t lo, size_t hi)
{
    double acc[8] = {0};
    size_t i = lo;
    for (; i + 8 <= hi; i += 8)
        for (int j = 0; j < 8; j++)
            acc[j] += a[i + j] + b[i + j] + c[i + j];
    for (; i < hi; i++)
        acc[0] += a[i] + b[i] + c[i];
    double s = 0.0;
    for (int j = 0; j < 8; j++)
        s += acc[j];
    return s;
}

static void triad(double *restrict a, const double *restrict b,
                  const double *restrict c, size_t lo, size_t hi)
{
    const double q = 3.0;
    for (size_t i = lo; i < hi; i++)
        a[i] = b[i] + q * c[i];
}

static void *init_main(void *arg)
{
    /* First touch by the thread that will stream the slice. */
    membw_task_t *t = arg;
    for (size_t i = t->lo; i < t->hi; i++) {
        t->a[i] = 1.0;
        t->b[i] = 2.0 + (double)(i & 7);
        t->c[i] = 0.5;
    }
    return NULL;
}

static void *run_main(void *arg)
{
    membw_task_t *t = arg;
    pthread_barrier_wait(t->start);
    if (t->kernel == MEMBW_READ)
        t->sum += read_sum(t->a, t->b, t->c, t->lo, t->hi);
    else
        triad(t->a, t->b, t->c, t->lo, t->hi);
    return NULL;
}

/* Runs fn over n elements split into n_threads slices; with start != NULL the
 * returned time runs from the moment all threads are released to the last
 * join.  Returns a negative value if a thread could not be started. */
static double run_threads(void *(*fn)(void *), membw_task_t *tasks, int n_threads,
                          pthread_barrier_t *start)
{
    pthread_t tid[MEMBW_MAX_THREADS];
    int started = 0;
    for (; started < n_threads; started++)
        if (pthread_create(&tid[started], NULL, fn, &tasks[started]) != 0)
            break;
    if (started < n_threads) {
        /* With a barrier the started threads now wait forever; the caller
         * returns from main, which ends them. */
        fprintf(stderr, "membw: pthread_create failed after %d threads\n", started);
        return -1.0;
    }
    double t0 = 0.0;
    if (start) {
        pthread_barrier_wait(start);
        t0 = now_s();
    }
    for (int i = 0; i < started; i++)
        pthread_join(tid[i], NULL);
    return started < n_threads ? -1.0 : now_s() - t0;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: membw [--mib TOTAL_MIB] [--repeats N] [--max-threads N]\n"
               "  --mib          total size of the three arrays (default 1536; >= 1024 for STREAM-style figures)\n"
               "  --repeats      timed repeats per kernel and thread count, best is kept (default 7)\n"
               "  --max-threads  thread counts 1..N (default 2)\n");
}

static int parse_long(const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

int main(int argc, char **argv)
{
    long total_mib = 1536, repeats = 7, max_threads = 2;
    for (int i = 1; i < argc; i += 2) {
        long *dst = NULL, lo = 1, hi = 1;
        if (!strcmp(argv[i], "--mib"))              { dst = &total_mib;  lo = 3; hi = 1 << 20; }
        else if (!strcmp(argv[i], "--repeats"))     { dst = &repeats;    hi = MEMBW_MAX_REPEATS; }
        else if (!strcmp(argv[i], "--max-threads")) { dst = &max_threads; hi = MEMBW_MAX_THREADS; }
        else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) { usage(stdout); return 0; }
        if (!dst || i + 1 >= argc || parse_long(argv[i + 1], lo, hi, dst) < 0) {
            fprintf(stderr, "membw: bad argument '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    if (total_mib < 1024)
        fprintf(stderr, "membw: warning: %ld MiB of arrays is small; "
                        "STREAM-style figures want >= 1024 MiB\n", total_mib);

    size_t n = (size_t)total_mib * 1024 * 1024 / (3 * sizeof(double));
    n -= n % 8;
    double *a = NULL, *b = NULL, *c = NULL;
    int rc = 1;
    if (posix_memalign((void **)&a, 4096, n * sizeof(double)) ||
        posix_memalign((void **)&b, 4096, n * sizeof(double)) ||
        posix_memalign((void **)&c, 4096, n * sizeof(double))) {
        fprintf(stderr, "membw: cannot allocate 3 x %zu bytes\n", n * sizeof(double));
        goto out;
    }

    membw_task_t tasks[MEMBW_MAX_THREADS];
    double best_gbps[2] = {0.0, 0.0};
    double checksum = 0.0;
    static const char *names[2] = {"read", "triad"};
    for (int nt = 1; nt <= max_threads; nt++) {
        pthread_barrier_t start;
        if (pthread_barrier_init(&start, NULL, (unsigned)nt + 1) != 0) {
            fprintf(stderr, "membw: pthread_barrier_init failed\n");
            goto out;
        }
        for (int t = 0; t < nt; t++) {
            tasks[t] = (membw_task_t){a, b, c, n * (size_t)t / (size_t)nt,
                                      n * (size_t)(t + 1) / (size_t)nt, MEMBW_READ, &start, 0.0};
        }
        if (nt == 1 && run_threads(init_main, tasks, nt, NULL) < 0) {
            pthread_barrier_destroy(&start);
            goto out;
        }
        for (int k = MEMBW_READ; k <= MEMBW_TRIAD; k++) {
            double best_s = 1e30, sum_s = 0.0;
            /* one untimed pass first: page faults, frequency ramp */
            for (long r = -1; r < repeats; r++) {
                for (int t = 0; t < nt; t++)
                    tasks[t].kernel = (membw_kernel_t)k;
                double s = run_threads(run_main, tasks, nt, &start);
                if (s < 0.0)
                    goto out;          /* stuck threads end with the process */
                if (r < 0)
                    continue;
                sum_s += s;
                if (s < best_s)
                    best_s = s;
            }
            double bytes = 3.0 * (double)sizeof(double) * (double)n;
            double gbps = bytes / best_s / 1e9;
            if (gbps > best_gbps[k])
                best_gbps[k] = gbps;
            printf("{\"name\":\"membw_%s_%dt\",\"value\":%.3f,\"unit\":\"GB/s\","
                   "\"threads\":%d,\"bytes\":%.0f,\"best_s\":%.6f,\"mean_s\":%.6f,"
                   "\"repeats\":%ld}\n",
                   names[k], nt, gbps, nt, bytes, best_s, sum_s / (double)repeats, repeats);
            fflush(stdout);
        }
        for (int t = 0; t < nt; t++)
            checksum += tasks[t].sum;
        pthread_barrier_destroy(&start);
    }
    for (int k = MEMBW_READ; k <= MEMBW_TRIAD; k++)
        printf("{\"name\":\"membw_%s\",\"value\":%.3f,\"unit\":\"GB/s\","
               "\"threads\":\"best of 1..%ld\",\"array_mib\":%ld}\n",
               names[k], best_gbps[k], max_threads, total_mib);
    /* keeps the read sums observable; also a sanity check of the triad */
    fprintf(stderr, "membw: checksum %.6g a[1]=%g\n", checksum, a[1]);
    rc = 0;
out:
    free(a);
    free(b);
    free(c);
    return rc;
}
