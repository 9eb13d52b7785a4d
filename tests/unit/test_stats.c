/* test_stats.c - kn_time_stats against numpy/scipy (mean, std, rms, ptp,
 * scipy.stats.skew/kurtosis(fisher=False), np.polyfit slope) on random
 * windows, real CWRU drive-end windows, and the edge cases of the contract. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "oracle.h"
#include "kernels/kernels.h"

#define FS_HZ 12000.0
#define N_STATS 10

static const char *stat_names[N_STATS] = {"mean", "std", "rms", "peak", "p2p",
                                          "crest", "skew", "kurt", "slope", "util"};

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static double uniform01(void) { return oracle_uniform01(&rng_state); }

/* Roughly Gaussian (sum of 4 uniforms), with an offset, a trend and spikes,
 * so skew, kurt and slope are all far from trivial. */
static void random_window(float *x, size_t n, double offset, double trend)
{
    for (size_t i = 0; i < n; i++) {
        double g = uniform01() + uniform01() + uniform01() + uniform01() - 2.0;
        if (uniform01() < 0.01)
            g *= 8;
        x[i] = (float)(offset + trend * (double)i / (double)n + g);
    }
}

static void as_array(const kn_time_stats_t *s, double *a)
{
    const double v[N_STATS] = {s->mean, s->std, s->rms, s->peak, s->p2p,
                               s->crest, s->skew, s->kurt, s->slope, s->util};
    memcpy(a, v, sizeof v);
}

/* Tolerance: float32 samples summed in double by both sides, in different
 * orders; rounding is ~n * 1e-16 of the data scale, so 1e-9 of each
 * statistic's natural scale leaves a wide margin yet catches any wrong
 * formula (ddof, bias, units).  The scale is |value| for scale-free stats,
 * the data spread for those that can be ~0 (mean, skew, slope); util is a
 * count over n and must agree exactly. */
static void check_stats(const kn_time_stats_t *got, const double *want, size_t n,
                        const char *what)
{
    double g[N_STATS];
    as_array(got, g);
    const double spread = fabs(want[0]) + want[1];
    const double scale[N_STATS] = {
        spread, fabs(want[1]), fabs(want[2]), fabs(want[3]), fabs(want[4]),
        fabs(want[5]), 1.0 + fabs(want[6]), fabs(want[7]),
        fabs(want[8]) + spread * FS_HZ / (double)n, 0.0};
    for (int i = 0; i < N_STATS; i++) {
        double tol = 1e-9 * scale[i];
        if (!(fabs(g[i] - want[i]) <= tol)) {
            print_error("%s (n=%zu): %s = %.17g, oracle %.17g, tol %.3g\n", what, n,
                        stat_names[i], g[i], want[i], tol);
            fail();
        }
    }
}

static void check_against_oracle(const float *x, size_t n, double thr, const char *what)
{
    char params[128];
    double *want;
    size_t n_want;
    snprintf(params, sizeof params, "{\"fs\": %.17g, \"thr\": %.17g}", FS_HZ, thr);
    assert_int_equal(oracle_run_f("kn_time_stats", params, x, 1, n, &want, &n_want), 0);
    assert_int_equal(n_want, N_STATS);
    kn_time_stats_t got;
    kn_time_stats(x, n, FS_HZ, thr, &got);
    check_stats(&got, want, n, what);
    free(want);
}

static void test_random_windows(void **state)
{
    (void)state;
    const size_t sizes[] = {2048, 1000, 17, 8, 3, 2};
    for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) {
        float *x = malloc(sizes[s] * sizeof *x);
        random_window(x, sizes[s], 0.3, 0.8);
        check_against_oracle(x, sizes[s], 0.5, "random window");
        free(x);
    }
}

/* A large offset over a small signal: the one-pass formulas (E[x^2] -
 * mean^2) lose every digit here; the two-pass ones must not. */
static void test_offset_window(void **state)
{
    (void)state;
    float x[2048];
    random_window(x, 2048, 1000.0, 0.01);
    check_against_oracle(x, 2048, 1000.0, "offset window");
}

static float *read_cwru(const char *file, const char *channel, size_t start, size_t n,
                        double *rpm)
{
    char params[1024];
    double *d;
    size_t n_d;
    snprintf(params, sizeof params,
             "{\"path\": \"%s/cwru/%s\", \"channel\": \"%s\", \"start\": %zu, \"n\": %zu}",
             oracle_data_dir(), file, channel, start, n);
    double dummy = 0;
    if (oracle_run("kn_cwru_window", params, &dummy, 1, 1, &d, &n_d) != 0 || n_d != n + 1)
        return NULL;
    float *x = malloc(n * sizeof *x);
    for (size_t i = 0; i < n; i++)
        x[i] = (float)d[i];
    if (rpm)
        *rpm = d[n];
    free(d);
    return x;
}

static void test_real_windows(void **state)
{
    (void)state;
    const char *files[] = {"12k_Drive_End_OR007@6_0_130.mat", "12k_Drive_End_IR021_0_209.mat",
                           "normal_0_97.mat"};
    for (int f = 0; f < 3; f++) {
        float *x = read_cwru(files[f], "DE", 4096 * (size_t)(f + 1), 2048, NULL);
        assert_non_null(x);
        check_against_oracle(x, 2048, 0.1, files[f]);
        free(x);
    }
}

/* Contract: a constant window has std 0, skew 0, kurt 0 (scipy says NaN),
 * crest 1 (peak = rms); an all-zero one has crest 0. */
static void test_constant_window(void **state)
{
    (void)state;
    float x[2048];
    for (size_t i = 0; i < 2048; i++)
        x[i] = 0.7f;
    kn_time_stats_t s;
    kn_time_stats(x, 2048, FS_HZ, 0.5, &s);
    assert_true(s.mean == (double)0.7f);
    assert_true(s.std == 0.0 && s.p2p == 0.0 && s.skew == 0.0 && s.kurt == 0.0);
    assert_true(s.slope == 0.0 && s.util == 1.0);
    assert_true(fabs(s.crest - 1.0) < 1e-12);   /* sum of squares rounds */
    check_against_oracle(x, 2048, 0.5, "constant window");

    memset(x, 0, sizeof x);
    kn_time_stats(x, 2048, FS_HZ, 0.0, &s);
    assert_true(s.rms == 0.0 && s.crest == 0.0 && s.skew == 0.0 && s.kurt == 0.0);
    assert_true(s.util == 0.0);     /* 0 is not strictly above 0 */
}

static void test_tiny_windows(void **state)
{
    (void)state;
    float two[2] = {-1.5f, 2.5f};
    kn_time_stats_t s;
    kn_time_stats(two, 2, FS_HZ, 0.0, &s);
    /* two points: symmetric (skew 0), kurt exactly 1, slope = dx * fs */
    assert_true(fabs(s.skew) < 1e-15 && fabs(s.kurt - 1.0) < 1e-15);
    assert_true(fabs(s.slope - 4.0 * FS_HZ) < 1e-9);
    check_against_oracle(two, 2, 0.0, "n=2");

    float one[1] = {-3.0f};
    kn_time_stats(one, 1, FS_HZ, 0.0, &s);
    assert_true(s.mean == -3.0 && s.std == 0.0 && s.rms == 3.0 && s.peak == 3.0);
    assert_true(s.slope == 0.0 && s.skew == 0.0 && s.kurt == 0.0 && s.util == 0.0);

    s.mean = 42;
    kn_time_stats(one, 0, FS_HZ, 0.0, &s);
    assert_true(s.mean == 0.0 && s.rms == 0.0 && s.util == 0.0);
}

static void test_util_threshold(void **state)
{
    (void)state;
    float x[1000];
    random_window(x, 1000, 0.0, 0.0);
    kn_time_stats_t s;
    kn_time_stats(x, 1000, FS_HZ, -100.0, &s);
    assert_true(s.util == 1.0);
    kn_time_stats(x, 1000, FS_HZ, 100.0, &s);
    assert_true(s.util == 0.0);
    for (size_t i = 0; i < 1000; i++)
        x[i] = i % 4 == 0 ? 0.25f : 0.5f;   /* 3/4 sit exactly on the threshold */
    kn_time_stats(x, 1000, FS_HZ, 0.5, &s);
    assert_true(s.util == 0.0);
    kn_time_stats(x, 1000, FS_HZ, 0.25, &s);
    assert_true(s.util == 0.75);
    check_against_oracle(x, 1000, 0.25, "two-level window");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_windows),
        cmocka_unit_test(test_offset_window),
        cmocka_unit_test(test_real_windows),
        cmocka_unit_test(test_constant_window),
        cmocka_unit_test(test_tiny_windows),
        cmocka_unit_test(test_util_threshold),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
