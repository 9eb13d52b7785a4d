/* logreg_bench.c - km_logreg_fit (2 threads) against scikit-learn's
 * LogisticRegression(lbfgs) on the same synthetic rows: fit seconds and
 * held-out accuracy for both, one JSON line at the end.
 *
 * Usage: logreg_bench [N_TRAIN=1000000] [D=64] [N_CLASSES=2] [C=1.0]
 * The data (N_TRAIN + N_TRAIN/4 held-out rows) are written as raw float32
 * and int32 files under $TMPDIR for bench/peer_logreg.py ($KILN_PYTHON, else
 * .venv/bin/python), which fits the same rows with the same C, tol and
 * max_iter (scikit-learn's defaults: 1e-4, 100). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kernels/logreg.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* x ~ N(0, 1) plus a shared factor, labels drawn from the softmax of a
 * random linear model (margin scale 3): overlapping classes, ~85% reachable
 * accuracy for two classes. */
static void make_data(float *x, int32_t *y, size_t n, size_t d, int k_n, uint64_t seed)
{
    km_rng_t rng;
    km_rng_seed(&rng, seed);
    double *w = malloc((size_t)k_n * (d + 1) * sizeof *w), z[64];
    for (size_t i = 0; i < (size_t)k_n * (d + 1); i++)
        w[i] = 3.0 * km_rng_normal(&rng) / sqrt((double)d);
    for (size_t i = 0; i < n; i++) {
        double common = km_rng_normal(&rng), zmax = -1e300, s = 0;
        float *xi = x + i * d;
        for (size_t j = 0; j < d; j++)
            xi[j] = (float)(0.8 * km_rng_normal(&rng) + 0.4 * common);
        for (int k = 0; k < k_n; k++) {
            z[k] = w[k * (d + 1) + d];
            for (size_t j = 0; j < d; j++)
                z[k] += w[k * (d + 1) + j] * xi[j];
            zmax = fmax(zmax, z[k]);
        }
        for (int k = 0; k < k_n; k++)
            s += (z[k] = exp(z[k] - zmax));
        double u = km_rng_uniform(&rng) * s;
        int cls = 0;
        while (cls < k_n - 1 && (u -= z[cls]) > 0)
            cls++;
        y[i] = cls;
    }
    free(w);
}

static int write_file(const char *path, const void *p, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    size_t put = fwrite(p, 1, len, f);
    return fclose(f) == 0 && put == len ? 0 : -1;
}

int main(int argc, char **argv)
{
    size_t n_train = argc > 1 ? strtoull(argv[1], NULL, 10) : 1000000;
    size_t d = argc > 2 ? strtoull(argv[2], NULL, 10) : 64;
    int k_n = argc > 3 ? atoi(argv[3]) : 2;
    double C = argc > 4 ? atof(argv[4]) : 1.0;
    if (n_train < 100 || d < 1 || d > 4096 || k_n < 2 || k_n > 64 || !(C > 0)) {
        fprintf(stderr, "usage: logreg_bench [N_TRAIN>=100] [D 1..4096] [N_CLASSES 2..64] [C>0]\n");
        return 2;
    }
    size_t n_test = n_train / 4, n = n_train + n_test;
    float *x = malloc(n * d * sizeof *x);
    int32_t *y = malloc(n * sizeof *y);
    float *scores = malloc(n_test * (size_t)k_n * sizeof *scores);
    int32_t *pred = malloc(n_test * sizeof *pred);
    if (!x || !y || !scores || !pred) {
        fprintf(stderr, "logreg_bench: out of memory for %zu x %zu\n", n, d);
        return 1;
    }
    make_data(x, y, n, d, k_n, 42);

    km_data_t data = {x, n_train, d, y, NULL, k_n};
    km_logreg_params_t p = km_logreg_defaults();
    p.l2 = 1.0 / C;
    p.threads = 2;
    km_logreg_t *m = NULL;
    kiln_err_t err;
    double best = 1e300;
    for (int rep = 0; rep < 3; rep++) {      /* best of 3: the first pulls x into cache/TLB */
        km_logreg_free(&m);
        double t0 = now_s();
        if (km_logreg_fit(&data, &p, NULL, &m, &err) != 0) {
            fprintf(stderr, "logreg_bench: fit: %s\n", err.msg);
            return 1;
        }
        best = fmin(best, now_s() - t0);
    }
    if (km_logreg_predict(m, x + n_train * d, n_test, scores, pred, &err) != 0) {
        fprintf(stderr, "logreg_bench: predict: %s\n", err.msg);
        return 1;
    }
    size_t right = 0;
    for (size_t i = 0; i < n_test; i++)
        right += pred[i] == y[n_train + i];
    double acc = (double)right / (double)n_test;
    int conv, iters = km_logreg_n_iter(m, &conv);
    fprintf(stderr, "kiln: %.3f s, %d iterations%s, held-out accuracy %.4f\n", best, iters,
            conv ? "" : " (not converged)", acc);

    const char *tmp = getenv("TMPDIR");
    char xp[512], yp[512], cmd[2048];
    snprintf(xp, sizeof xp, "%s/logreg_bench.%d.x.f32", tmp && *tmp ? tmp : "/tmp", (int)getpid());
    snprintf(yp, sizeof yp, "%s/logreg_bench.%d.y.i32", tmp && *tmp ? tmp : "/tmp", (int)getpid());
    if (write_file(xp, x, n * d * sizeof *x) != 0 || write_file(yp, y, n * sizeof *y) != 0) {
        fprintf(stderr, "logreg_bench: cannot write %s\n", xp);
        return 1;
    }
    const char *py = getenv("KILN_PYTHON");
    snprintf(cmd, sizeof cmd, "'%s' bench/peer_logreg.py '%s' '%s' %zu %zu %.17g",
             py && *py ? py : ".venv/bin/python", xp, yp, n_train, d, C);
    FILE *pipe = popen(cmd, "r");
    double peer_s = NAN, peer_acc = NAN;
    int peer_iter = -1;
    char line[1024];
    while (pipe && fgets(line, sizeof line, pipe))
        if (sscanf(line, "{\"peer_s\": %lf, \"peer_acc\": %lf, \"peer_iter\": %d", &peer_s,
                   &peer_acc, &peer_iter) >= 2)
            break;
    int prc = pipe ? pclose(pipe) : -1;
    remove(xp);
    remove(yp);
    if (prc != 0 || isnan(peer_s))
        fprintf(stderr, "logreg_bench: peer failed: %s\n", cmd);
    printf("{\"kiln_s\": %.4f, \"peer_s\": %.4f, \"ratio\": %.3f, \"kiln_acc\": %.5f, "
           "\"peer_acc\": %.5f, \"n_train\": %zu, \"d\": %zu, \"n_classes\": %d, \"C\": %g, "
           "\"kiln_iter\": %d, \"peer_iter\": %d, \"threads\": 2}\n",
           best, peer_s, peer_s / best, acc, peer_acc, n_train, d, k_n, C, iters, peer_iter);
    km_logreg_free(&m);
    free(x);
    free(y);
    free(scores);
    free(pred);
    return prc == 0 && !isnan(peer_s) ? 0 : 1;
}
