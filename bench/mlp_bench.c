/* mlp_bench.c - km_mlp_fit against scikit-learn's MLPClassifier on the same
 * synthetic data: N x 64 float32 rows (N = argv[1], default 1,000,000), three
 * classes split by a nonlinear rule, the first 80% to train and the rest held
 * out; hidden (64, 32), Adam, batch 200, 5 epochs, lr 1e-3, alpha 1e-4.
 * kiln fits with 2 threads; bench/peer_mlp.py reads the same bytes (raw
 * little-endian float32 x, int32 y) and fits sklearn.  Prints one JSON line
 * {"kiln_s","peer_s","ratio","kiln_acc","peer_acc",...}; ratio = peer_s/kiln_s.
 *
 *   mlp_bench [N] [DIR]     DIR for the data files (default $TMPDIR or /tmp)
 *   KILN_PYTHON             the peer's python (default .venv/bin/python)
 *   KILN_MLP_BENCH_PEER=0   skip the peer (its fields are null)
 *   KILN_MLP_BENCH_THREADS  kiln's threads (default 2) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/kiln_alloc.h"
#include "kernels/mlp.h"

#define D_FEATURES 64
#define N_CLASSES  3

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* x ~ N(0, 1); the class is the largest of three nonlinear scores over the
 * first 8 features (the other 56 are noise the net must learn to ignore). */
static void make_data(float *x, int32_t *y, size_t n, uint64_t seed)
{
    km_rng_t rng;
    km_rng_seed(&rng, seed);
    for (size_t i = 0; i < n; i++) {
        float *r = x + i * D_FEATURES;
        for (int j = 0; j < D_FEATURES; j++)
            r[j] = (float)km_rng_normal(&rng);
        const double s[N_CLASSES] = {r[0] * r[1] + 0.5 * sin(2.0 * r[2]),
                                     r[3] * r[3] - 1.0 + 0.5 * r[4],
                                     0.8 * r[5] - 0.4 * r[6] * r[7]};
        int best = 0;
        for (int c = 1; c < N_CLASSES; c++)
            if (s[c] > s[best])
                best = c;
        y[i] = best;
    }
}

static void advise_huge(void *p, size_t bytes)
{
#ifdef MADV_HUGEPAGE
    const uintptr_t page = 2u << 20, lo = ((uintptr_t)p + page - 1) & ~(page - 1);
    const uintptr_t hi = ((uintptr_t)p + bytes) & ~(page - 1);
    if (hi > lo)
        (void)madvise((void *)lo, hi - lo, MADV_HUGEPAGE);
#else
    (void)p;
    (void)bytes;
#endif
}

static int write_file(const char *path, const void *p, size_t bytes)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    size_t w = fwrite(p, 1, bytes, f);
    return (fclose(f) == 0 && w == bytes) ? 0 : -1;
}

int main(int argc, char **argv)
{
    size_t n = argc > 1 ? strtoull(argv[1], NULL, 10) : 1000000;
    if (n < 100 || n > 50000000) {
        fprintf(stderr, "mlp_bench: N must be 100..50000000\n");
        return 2;
    }
    const char *tmp = getenv("TMPDIR");
    char dir[512];
    snprintf(dir, sizeof dir, "%s/kiln-mlp-bench.XXXXXX",
             argc > 2 ? argv[2] : (tmp && *tmp ? tmp : "/tmp"));
    if (!mkdtemp(dir)) {
        perror("mlp_bench: mkdtemp");
        return 1;
    }
    const size_t n_train = n * 8 / 10, n_test = n - n_train;
    float *x = kiln_malloc(n * D_FEATURES * sizeof *x);
    int32_t *y = kiln_malloc(n * sizeof *y), *pred = kiln_malloc(n_test * sizeof *pred);
    float *scores = kiln_malloc(n_test * N_CLASSES * sizeof *scores);
    if (!x || !y || !pred || !scores) {
        fprintf(stderr, "mlp_bench: no memory for %zu rows\n", n);
        return 1;
    }
    /* The peer's arrays get transparent huge pages from numpy (it madvises
     * every allocation of 4 MiB or more); kiln's rows ask for the same, so
     * both sides gather their shuffled mini-batches with the same TLB reach. */
    advise_huge(x, n * D_FEATURES * sizeof *x);
    make_data(x, y, n, 42);
    char xpath[600], ypath[600];
    snprintf(xpath, sizeof xpath, "%s/x.f32", dir);
    snprintf(ypath, sizeof ypath, "%s/y.i32", dir);
    if (write_file(xpath, x, n * D_FEATURES * sizeof *x) < 0 ||
        write_file(ypath, y, n * sizeof *y) < 0) {
        fprintf(stderr, "mlp_bench: cannot write the data under %s\n", dir);
        return 1;
    }

    km_mlp_params_t p = km_mlp_defaults();
    p.n_hidden = 2;
    p.hidden[0] = 64;
    p.hidden[1] = 32;
    p.epochs = 5;
    p.batch = 200;
    const char *threads = getenv("KILN_MLP_BENCH_THREADS");
    p.threads = threads && *threads ? atoi(threads) : 2;
    p.seed = 1;
    km_data_t data = {.x = x, .n = n_train, .d = D_FEATURES, .y = y, .n_classes = N_CLASSES};
    km_mlp_t *m = NULL;
    kiln_err_t err;
    double t0 = now_s();
    if (km_mlp_fit(&data, &p, NULL, &m, &err) < 0) {
        fprintf(stderr, "mlp_bench: fit: %s\n", err.msg);
        return 1;
    }
    const double kiln_s = now_s() - t0;
    if (km_mlp_predict(m, x + n_train * D_FEATURES, n_test, scores, pred, &err) < 0) {
        fprintf(stderr, "mlp_bench: predict: %s\n", err.msg);
        return 1;
    }
    size_t right = 0;
    for (size_t i = 0; i < n_test; i++)
        right += pred[i] == y[n_train + i];
    const double kiln_acc = (double)right / (double)n_test;
    km_mlp_free(&m);

    double peer_s = NAN, peer_acc = NAN;
    const char *want_peer = getenv("KILN_MLP_BENCH_PEER");
    if (!want_peer || strcmp(want_peer, "0") != 0) {
        const char *py = getenv("KILN_PYTHON");
        char cmd[2048];
        snprintf(cmd, sizeof cmd, "OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=2 '%s' bench/peer_mlp.py '%s' %zu %d %zu",
                 py && *py ? py : ".venv/bin/python", dir, n, D_FEATURES, n_train);
        FILE *f = popen(cmd, "r");
        if (!f || fscanf(f, "%lf %lf", &peer_s, &peer_acc) != 2)
            fprintf(stderr, "mlp_bench: the peer gave no result (%s)\n", cmd);
        if (f)
            pclose(f);
    }
    unlink(xpath);
    unlink(ypath);
    rmdir(dir);
    char peer_s_txt[32] = "null", ratio_txt[32] = "null", peer_acc_txt[32] = "null";
    if (isfinite(peer_s)) {
        snprintf(peer_s_txt, sizeof peer_s_txt, "%.3f", peer_s);
        snprintf(ratio_txt, sizeof ratio_txt, "%.2f", peer_s / kiln_s);
        snprintf(peer_acc_txt, sizeof peer_acc_txt, "%.4f", peer_acc);
    }
    printf("{\"kiln_s\": %.3f, \"peer_s\": %s, \"ratio\": %s, \"kiln_acc\": %.4f, \"peer_acc\": %s, "
           "\"n_train\": %zu, \"n_test\": %zu, \"threads\": %d}\n",
           kiln_s, peer_s_txt, ratio_txt, kiln_acc, peer_acc_txt, n_train, n_test, p.threads);
    kiln_free(x);
    kiln_free(y);
    kiln_free(pred);
    kiln_free(scores);
    return 0;
}
