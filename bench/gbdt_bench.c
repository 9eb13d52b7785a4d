/* gbdt_bench.c - kiln's gbdt against LightGBM (bench/peer_lightgbm.py) on
 * the same synthetic data: N x 64 float32 features (default 1,000,000 rows,
 * 20% held out), a binary label from a nonlinear score with noise; 100
 * rounds, 31 leaves, 255 bins, learning rate 0.1, 2 threads on both sides.
 * Prints one JSON line: fit seconds, held-out accuracy and predict rows/s.
 *
 * Usage: gbdt_bench [--rows N] [--rounds R] [--dir DIR] [--python PY] [--no-peer] */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "kernels/gbdt.h"

#define COLS 64

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* A score with interactions, thresholds and smooth parts over 12 of the 64
 * columns (the rest are noise), so trees need depth to do well. */
static void make_data(size_t n, float *x, int32_t *y)
{
    km_rng_t rng;
    km_rng_seed(&rng, 20240601);
    for (size_t i = 0; i < n; i++) {
        float *r = x + i * COLS;
        for (int f = 0; f < COLS; f++)
            r[f] = (float)km_rng_normal(&rng);
        double s = 0.8 * r[0] - 0.6 * r[1] + 0.5 * r[2] * r[3] + sin(2.0 * r[4]) +
                   (r[5] > 0.5 ? 0.7 : -0.3) + 0.4 * fabs(r[6]) - 0.5 * r[7] * r[7] +
                   0.3 * r[8] * r[9] * r[10] + 0.6 * tanh(r[11]) + 0.8 * km_rng_normal(&rng);
        y[i] = s > 0.0;
    }
}

static int write_file(const char *path, const void *p, size_t bytes)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    size_t w = fwrite(p, 1, bytes, f);
    return fclose(f) == 0 && w == bytes ? 0 : -1;
}

int main(int argc, char **argv)
{
    size_t rows = 1000000;
    int rounds = 100, peer = 1;
    const char *dir = "build/bench-data/gbdt", *py = ".venv/bin/python";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--rows") && i + 1 < argc)
            rows = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--rounds") && i + 1 < argc)
            rounds = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--dir") && i + 1 < argc)
            dir = argv[++i];
        else if (!strcmp(argv[i], "--python") && i + 1 < argc)
            py = argv[++i];
        else if (!strcmp(argv[i], "--no-peer"))
            peer = 0;
        else {
            fprintf(stderr, "usage: gbdt_bench [--rows N] [--rounds R] [--dir DIR] "
                            "[--python PY] [--no-peer]\n");
            return 2;
        }
    }
    if (rows < 100 || rows > 100000000 || rounds < 1) {
        fprintf(stderr, "gbdt_bench: rows must be 100..1e8 and rounds >= 1\n");
        return 2;
    }
    size_t n_train = rows - rows / 5, n_test = rows - n_train;
    float *x = malloc(rows * COLS * sizeof *x);
    int32_t *y = malloc(rows * sizeof *y);
    float *scores = malloc(n_test * 2 * sizeof *scores);
    int32_t *pred = malloc(n_test * sizeof *pred);
    if (!x || !y || !scores || !pred) {
        fprintf(stderr, "gbdt_bench: out of memory\n");
        return 1;
    }
    make_data(rows, x, y);

    char path[1024], cmd[4096];
    if (peer) {
        snprintf(cmd, sizeof cmd, "mkdir -p '%s'", dir);
        if (system(cmd) != 0)
            return 1;
        snprintf(path, sizeof path, "%s/x.f32", dir);
        if (write_file(path, x, rows * COLS * sizeof *x) < 0)
            return 1;
        snprintf(path, sizeof path, "%s/y.i32", dir);
        if (write_file(path, y, rows * sizeof *y) < 0)
            return 1;
    }

    km_gbdt_params_t p = km_gbdt_defaults();
    p.n_rounds = rounds;
    p.n_threads = 2;
    km_data_t train = {x, n_train, COLS, y, NULL, 2};
    km_gbdt_t *m = NULL;
    kiln_err_t err;
    double t0 = now_s();
    if (km_gbdt_fit(&train, NULL, &p, NULL, &m, &err) < 0) {
        fprintf(stderr, "gbdt_bench: fit: %s\n", err.msg);
        return 1;
    }
    double kiln_s = now_s() - t0;
    t0 = now_s();
    if (km_gbdt_predict(m, x + n_train * COLS, n_test, scores, pred, &err) < 0) {
        fprintf(stderr, "gbdt_bench: predict: %s\n", err.msg);
        return 1;
    }
    double pred_s = now_s() - t0;
    size_t right = 0;
    for (size_t i = 0; i < n_test; i++)
        right += pred[i] == y[n_train + i];
    double kiln_acc = (double)right / (double)n_test;
    double kiln_rows_s = (double)n_test / pred_s;
    fprintf(stderr, "kiln: fit %.2f s, %zu trees, acc %.4f, predict %.0f rows/s\n", kiln_s,
            km_gbdt_n_trees(m), kiln_acc, kiln_rows_s);
    km_gbdt_free(&m);

    double peer_s = NAN, peer_acc = NAN, peer_rows_s = NAN;
    if (peer) {
        snprintf(cmd, sizeof cmd, "'%s' bench/peer_lightgbm.py '%s' %zu %d %zu %d", py, dir, rows,
                 COLS, n_train, rounds);
        FILE *f = popen(cmd, "r");
        char line[1024] = "";
        if (!f || !fgets(line, sizeof line, f) ||
            sscanf(line, "{\"peer_s\": %lf, \"peer_acc\": %lf, \"peer_pred_rows_s\": %lf", &peer_s,
                   &peer_acc, &peer_rows_s) != 3)
            fprintf(stderr, "gbdt_bench: peer gave no result: %s\n", line);
        if (f)
            pclose(f);
    }
    printf("{\"kiln_s\": %.3f, \"peer_s\": %.3f, \"ratio\": %.3f, \"kiln_acc\": %.4f, "
           "\"peer_acc\": %.4f, \"kiln_pred_rows_s\": %.0f, \"peer_pred_rows_s\": %.0f}\n",
           kiln_s, peer_s, kiln_s / peer_s, kiln_acc, peer_acc, kiln_rows_s, peer_rows_s);
    free(x);
    free(y);
    free(scores);
    free(pred);
    return 0;
}
