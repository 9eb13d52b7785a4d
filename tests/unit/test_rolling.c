/* test_rolling.c - kn_rolling_* against pandas' rolling(k, min_periods=1)
 * mean and std(ddof=0), written out in numpy: k = 1, small and larger than
 * the series, interleaved rings for several assets, a large offset, and the
 * error paths (k = 0, out of memory). */
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
#include "core/kiln_alloc.h"

static uint64_t rng_state = 0x853C49E6748FEA9Bull;

static double uniform01(void) { return oracle_uniform01(&rng_state); }

/* Tolerance: both sides sum the same doubles in double, in different orders
 * (the ring's slot order is not time order); 1e-12 of the values' scale
 * (|mean| + std) is ~1e3 ulps of slack, and far below what a running
 * sum-of-squares update loses with the large offset below (~1e-4). */
static void check_series(const double *v, size_t n, size_t k, const char *what)
{
    char params[64];
    snprintf(params, sizeof params, "{\"k\": %zu}", k);
    double *want;
    size_t n_want;
    assert_int_equal(oracle_run("kn_rolling", params, v, 1, n, &want, &n_want), 0);
    assert_int_equal(n_want, 2 * n);
    kn_rolling_t r;
    kiln_err_t err;
    assert_int_equal(kn_rolling_init(&r, k, &err), 0);
    for (size_t i = 0; i < n; i++) {
        double mean, std;
        kn_rolling_push(&r, v[i], &mean, &std);
        double tol = 1e-12 * (fabs(want[i]) + want[n + i]);
        if (!(fabs(mean - want[i]) <= tol && fabs(std - want[n + i]) <= tol)) {
            print_error("%s k=%zu step %zu: mean %.17g std %.17g, oracle %.17g %.17g\n", what,
                        k, i, mean, std, want[i], want[n + i]);
            fail();
        }
    }
    kn_rolling_free(&r);
    free(want);
}

static void test_random_series(void **state)
{
    (void)state;
    double v[50];
    for (size_t i = 0; i < 50; i++)
        v[i] = 10.0 * uniform01() - 3.0;
    const size_t ks[] = {1, 2, 3, 8, 50, 100};
    for (size_t i = 0; i < sizeof ks / sizeof *ks; i++)
        check_series(v, 50, ks[i], "random");
}

static void test_large_offset(void **state)
{
    (void)state;
    double v[40];
    for (size_t i = 0; i < 40; i++)
        v[i] = 1e6 + uniform01();
    check_series(v, 40, 8, "offset 1e6");
}

/* k = 1: each window is the value itself. */
static void test_k1(void **state)
{
    (void)state;
    kn_rolling_t r;
    assert_int_equal(kn_rolling_init(&r, 1, NULL), 0);
    for (int i = 0; i < 5; i++) {
        double mean, std, v = 0.1 * i - 7.3;
        kn_rolling_push(&r, v, &mean, &std);
        assert_true(mean == v && std == 0.0);
    }
    kn_rolling_free(&r);
}

/* A constant series gives exactly (v, 0), although k copies of 0.1 do not
 * sum to exactly k * 0.1. */
static void test_constant(void **state)
{
    (void)state;
    kn_rolling_t r;
    assert_int_equal(kn_rolling_init(&r, 7, NULL), 0);
    for (int i = 0; i < 20; i++) {
        double mean, std;
        kn_rolling_push(&r, 0.1, &mean, &std);
        assert_true(mean == 0.1 && std == 0.0);
    }
    kn_rolling_free(&r);
}

/* One ring per asset, pushes interleaved as windows arrive in dataset
 * order, assets reporting at different rates (the last one every other
 * step): each ring must see only its own asset's series. */
static void test_asset_rings(void **state)
{
    (void)state;
    enum { ASSETS = 3, STEPS = 30, K = 4 };
    double series[ASSETS][STEPS], *want[ASSETS];
    size_t len[ASSETS], n_want, pos[ASSETS] = {0};
    char params[32];
    snprintf(params, sizeof params, "{\"k\": %d}", K);
    kn_rolling_t rings[ASSETS];
    for (int a = 0; a < ASSETS; a++) {
        len[a] = a == ASSETS - 1 ? STEPS / 2 : STEPS;
        for (size_t i = 0; i < len[a]; i++)
            series[a][i] = 100.0 * a + uniform01();
        assert_int_equal(oracle_run("kn_rolling", params, series[a], 1, len[a], &want[a],
                                    &n_want), 0);
        assert_int_equal(n_want, 2 * len[a]);
        assert_int_equal(kn_rolling_init(&rings[a], K, NULL), 0);
    }
    for (int step = 0; step < STEPS; step++) {
        for (int a = 0; a < ASSETS; a++) {
            if (a == ASSETS - 1 && step % 2)
                continue;
            size_t i = pos[a]++;
            double mean, std;
            kn_rolling_push(&rings[a], series[a][i], &mean, &std);
            double tol = 1e-12 * (fabs(want[a][i]) + want[a][len[a] + i]);
            assert_true(fabs(mean - want[a][i]) <= tol);
            assert_true(fabs(std - want[a][len[a] + i]) <= tol);
        }
    }
    for (int a = 0; a < ASSETS; a++) {
        assert_int_equal(pos[a], len[a]);
        kn_rolling_free(&rings[a]);
        free(want[a]);
    }
}

static void test_errors(void **state)
{
    (void)state;
    kn_rolling_t r;
    kiln_err_t err;
    memset(&err, 0, sizeof err);
    assert_int_equal(kn_rolling_init(&r, 0, &err), KILN_EINVAL);
    assert_int_equal(err.code, KILN_EINVAL);
    assert_non_null(strstr(err.msg, "k"));
    assert_null(r.values);
    kn_rolling_free(&r);        /* freeing a failed init is harmless */

    kiln_alloc_fail_after(1);
    assert_int_equal(kn_rolling_init(&r, 8, &err), KILN_ENOMEM);
    kiln_alloc_fail_after(0);
    assert_int_equal(err.code, KILN_ENOMEM);
    assert_null(r.values);

    assert_int_equal(kn_rolling_init(&r, 8, &err), 0);
    kn_rolling_free(&r);
    kn_rolling_free(&r);        /* and so is freeing twice */
    assert_null(r.values);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_series),
        cmocka_unit_test(test_large_offset),
        cmocka_unit_test(test_k1),
        cmocka_unit_test(test_constant),
        cmocka_unit_test(test_asset_rings),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
