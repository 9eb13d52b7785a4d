/* drift_bench.c - times the drift statistics (kernels/drift.h).
 *
 *   drift_bench compare ROWS COLS DIR THREADS
 *       ROWS x COLS float32 reference and current (half the columns shifted
 *       by 0.1 sd), written to DIR for bench/peer_drift.py; kiln's feed +
 *       finish timed (best of 3 in this process), then the peer (scipy
 *       ks_2samp + wasserstein_distance per column, Evidently's
 *       DataDriftPreset) on the same bytes.  One JSON line.
 *   drift_bench big ROWS COLS THREADS
 *       kiln alone on ROWS x COLS reference and current generated in chunks
 *       of 65536 rows (never held whole); only kiln's calls are timed.  One
 *       JSON line with values/s and peak RSS. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "kernels/drift.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static inline double uni(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (double)(rng >> 11) * (1.0 / 9007199254740992.0);
}
/* cheap bell shape (sum of 3 uniforms, sd 1): generation is not timed but
 * should not dominate the run */
static inline float bell(double loc)
{
    return (float)(loc + (uni() + uni() + uni() - 1.5) * 2.0);
}

static void gen(float *x, size_t n, double loc)
{
    for (size_t i = 0; i < n; i++)
        x[i] = bell(loc);
}

static int run_kiln(size_t rows, size_t cols, float *const *ref, float *const *cur, int threads,
                    double *secs, size_t *n_drifted, double *worst)
{
    kn_drift_col_t **c = calloc(cols, sizeof *c);
    kn_drift_result_t *res = calloc(cols, sizeof *res);
    kiln_err_t err;
    int rc = 0;
    for (size_t j = 0; j < cols && rc == 0; j++)
        rc = kn_drift_col_new(KN_DRIFT_NUMERIC, 0, &c[j], &err);
    double t0 = now_s();
    if (rc == 0)
        rc = kn_drift_feed_columns(c, cols, KN_DRIFT_REF, (const float *const *)ref, rows, threads,
                                   &err);
    if (rc == 0)
        rc = kn_drift_feed_columns(c, cols, KN_DRIFT_CUR, (const float *const *)cur, rows, threads,
                                   &err);
    if (rc == 0)
        rc = kn_drift_finish_columns(c, cols, threads, res, &err);
    *secs = now_s() - t0;
    if (rc == 0) {
        int d;
        kn_drift_dataset(res, cols, 0.5, n_drifted, &d, &err);
        *worst = 0;
        for (size_t j = 0; j < cols; j++)
            *worst = fmax(*worst, res[j].wasserstein_norm);
    } else {
        fprintf(stderr, "kiln: %s\n", err.msg);
    }
    for (size_t j = 0; j < cols; j++)
        kn_drift_col_destroy(&c[j]);
    free(c);
    free(res);
    return rc;
}

static int compare(size_t rows, size_t cols, const char *dir, int threads)
{
    float **ref = calloc(cols, sizeof *ref), **cur = calloc(cols, sizeof *cur);
    char path[4096];
    for (int side = 0; side < 2; side++) {
        snprintf(path, sizeof path, "%s/%s.f32", dir, side ? "cur" : "ref");
        FILE *f = fopen(path, "wb");
        if (!f) {
            fprintf(stderr, "kiln: cannot write %s\n", path);
            return 1;
        }
        for (size_t j = 0; j < cols; j++) {
            float *x = malloc(rows * sizeof *x);
            gen(x, rows, side && j % 2 == 0 ? 0.1 : 0.0);
            fwrite(x, sizeof *x, rows, f);     /* column-major: column j, rows */
            (side ? cur : ref)[j] = x;
        }
        fclose(f);
    }
    double best = INFINITY, worst = 0;
    size_t n_drifted = 0;
    for (int rep = 0; rep < 3; rep++) {
        double s;
        if (run_kiln(rows, cols, ref, cur, threads, &s, &n_drifted, &worst) != 0)
            return 1;
        best = fmin(best, s);
    }
    fprintf(stderr, "kiln: %zu x %zu, %.4f s (best of 3), %zu columns drifted\n", rows, cols, best,
            n_drifted);
    const char *py = getenv("KILN_PYTHON");
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "'%s' bench/peer_drift.py '%s' %zu %zu", py ? py : "python3", dir,
             rows, cols);
    FILE *p = popen(cmd, "r");
    char line[4096] = "";
    char peer[4096] = "null";
    while (p && fgets(line, sizeof line, p))
        if (line[0] == '{') {
            line[strcspn(line, "\n")] = 0;
            snprintf(peer, sizeof peer, "%s", line);
        }
    if (p)
        pclose(p);
    printf("{\"kiln_s\": %.6f, \"rows\": %zu, \"cols\": %zu, \"threads\": %d, "
           "\"kiln_drifted\": %zu, \"peer\": %s}\n", best, rows, cols, threads, n_drifted, peer);
    for (size_t j = 0; j < cols; j++) {
        free(ref[j]);
        free(cur[j]);
    }
    free(ref);
    free(cur);
    return 0;
}

static int big(size_t rows, size_t cols, int threads)
{
    enum { CHUNK = 65536 };
    kn_drift_col_t **c = calloc(cols, sizeof *c);
    kn_drift_result_t *res = calloc(cols, sizeof *res);
    float **buf = calloc(cols, sizeof *buf);
    kiln_err_t err;
    for (size_t j = 0; j < cols; j++) {
        buf[j] = malloc(CHUNK * sizeof **buf);
        if (kn_drift_col_new(KN_DRIFT_NUMERIC, 0, &c[j], &err) != 0)
            return 1;
    }
    double kiln_s = 0, t_all = now_s();
    for (int side = 0; side < 2; side++)
        for (size_t r = 0; r < rows; r += CHUNK) {
            size_t n = rows - r < CHUNK ? rows - r : CHUNK;
            for (size_t j = 0; j < cols; j++)
                gen(buf[j], n, side && j % 2 == 0 ? 0.2 : 0.0);
            double t0 = now_s();
            if (kn_drift_feed_columns(c, cols, side ? KN_DRIFT_CUR : KN_DRIFT_REF,
                                      (const float *const *)buf, n, threads, &err) != 0) {
                fprintf(stderr, "kiln: %s\n", err.msg);
                return 1;
            }
            kiln_s += now_s() - t0;
        }
    double t0 = now_s();
    if (kn_drift_finish_columns(c, cols, threads, res, &err) != 0) {
        fprintf(stderr, "kiln: %s\n", err.msg);
        return 1;
    }
    kiln_s += now_s() - t0;
    double wall = now_s() - t_all;
    size_t n_drifted;
    int drifted;
    kn_drift_dataset(res, cols, 0.5, &n_drifted, &drifted, &err);
    double ks_b = 0, w_b = 0;
    for (size_t j = 0; j < cols; j++) {
        ks_b = fmax(ks_b, res[j].ks_error_bound);
        w_b = fmax(w_b, res[j].wasserstein_error_bound / fmax(res[j].ref_std, 1e-3));
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double values = 2.0 * (double)rows * (double)cols;
    fprintf(stderr, "kiln: %zu x %zu x 2 in %.3f s of kiln calls (%.0f M values/s), peak RSS %.0f MiB\n",
            rows, cols, kiln_s, values / kiln_s / 1e6, ru.ru_maxrss / 1024.0);
    printf("{\"kiln_s\": %.6f, \"wall_s\": %.6f, \"values\": %.0f, \"values_per_s\": %.1f, "
           "\"peak_rss_mib\": %.1f, \"rows\": %zu, \"cols\": %zu, \"threads\": %d, "
           "\"drifted_columns\": %zu, \"dataset_drifted\": %d, \"sketched\": %d, "
           "\"max_ks_error_bound\": %.3g, \"max_wasserstein_norm_error_bound\": %.3g}\n",
           kiln_s, wall, values, values / kiln_s, ru.ru_maxrss / 1024.0, rows, cols, threads,
           n_drifted, drifted, res[0].sketched, ks_b, w_b);
    for (size_t j = 0; j < cols; j++) {
        kn_drift_col_destroy(&c[j]);
        free(buf[j]);
    }
    free(c);
    free(buf);
    free(res);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 6 && strcmp(argv[1], "compare") == 0)
        return compare(strtoul(argv[2], NULL, 10), strtoul(argv[3], NULL, 10), argv[4],
                       atoi(argv[5]));
    if (argc == 5 && strcmp(argv[1], "big") == 0)
        return big(strtoul(argv[2], NULL, 10), strtoul(argv[3], NULL, 10), atoi(argv[4]));
    fprintf(stderr, "usage: drift_bench compare ROWS COLS DIR THREADS | big ROWS COLS THREADS\n");
    return 2;
}
