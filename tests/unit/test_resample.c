/* test_resample.c - kn_resample against scipy.signal.resample_poly (default
 * Kaiser 5.0 design, zero padding) for the ratios ingest and users need,
 * every short length, a whole real 48 kHz CWRU recording brought to 12 kHz,
 * and the error and out-of-memory paths. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "oracle.h"
#include "kernels/kernels.h"
#include "core/kiln_alloc.h"

static uint64_t rng_state = 0xA0761D6478BD642Full;

static double uniform01(void) { return oracle_uniform01(&rng_state); }

static void random_signal(double *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        x[i] = 0.5 + sin(0.05 * (double)i) + (uniform01() - 0.5);
}

/* Tolerance: the filter is designed with the same formulas in double (our
 * I0 series against cephes' Chebyshev fit differ by ~1e-16) and each output
 * is a dot product of at most a few thousand terms summed in another order,
 * so outputs agree to ~1e-14 of the signal's scale; 1e-12 * max|x| is the
 * bound.  A different window, cutoff, gain or delay is off by >1e-3. */
static void check_resample(int up, int down, const double *x, size_t n,
                           const size_t *lengths, size_t n_lengths, const char *what)
{
    char params[1024];
    int off = snprintf(params, sizeof params, "{\"up\": %d, \"down\": %d, \"lengths\": [", up,
                       down);
    for (size_t i = 0; i < n_lengths; i++)
        off += snprintf(params + off, sizeof params - (size_t)off, "%s%zu", i ? ", " : "",
                        lengths[i]);
    snprintf(params + off, sizeof params - (size_t)off, "]}");
    double *want;
    size_t n_want;
    assert_int_equal(oracle_run("kn_resample_poly", params, x, 1, n, &want, &n_want), 0);

    kn_resampler_t *r;
    kiln_err_t err;
    assert_int_equal(kn_resampler_new(up, down, &r, &err), 0);
    double x_max = 0;
    for (size_t i = 0; i < n; i++)
        x_max = fabs(x[i]) > x_max ? fabs(x[i]) : x_max;
    size_t at = 0;
    for (size_t l = 0; l < n_lengths; l++) {
        size_t n_out = kn_resample_out_len(r, lengths[l]);
        assert_true(at + n_out <= n_want);
        double *out = malloc((n_out ? n_out : 1) * sizeof *out);
        kn_resample(r, x, lengths[l], out);
        for (size_t i = 0; i < n_out; i++) {
            if (!(fabs(out[i] - want[at + i]) <= 1e-12 * x_max)) {
                print_error("%s %d/%d n_in=%zu: out[%zu] = %.17g, scipy %.17g\n", what, up,
                            down, lengths[l], i, out[i], want[at + i]);
                fail();
            }
        }
        at += n_out;
        free(out);
    }
    assert_int_equal(at, n_want);   /* every length agreed with scipy's */
    kn_resampler_destroy(&r);
    assert_null(r);
    free(want);
}

static const int ratios[][2] = {{1, 4}, {3, 2}, {2, 3}, {160, 147}, {4, 1}, {2, 4}, {6, 4},
                                {5, 5}, {1, 1}};
#define N_RATIOS (sizeof ratios / sizeof *ratios)

static void test_random_signals(void **state)
{
    (void)state;
    double x[1000];
    random_signal(x, 1000);
    const size_t lengths[] = {1000, 999, 257};
    for (size_t i = 0; i < N_RATIOS; i++)
        check_resample(ratios[i][0], ratios[i][1], x, 1000, lengths, 3, "random");
}

/* Lengths 1..10 are all edge: the filter is far longer than the signal. */
static void test_short_signals(void **state)
{
    (void)state;
    double x[10];
    random_signal(x, 10);
    const size_t lengths[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
    for (size_t i = 0; i < N_RATIOS; i++)
        check_resample(ratios[i][0], ratios[i][1], x, 10, lengths, 10, "short");
}

static void test_out_len(void **state)
{
    (void)state;
    kn_resampler_t *r;
    assert_int_equal(kn_resampler_new(1, 4, &r, NULL), 0);
    assert_int_equal(kn_resample_out_len(r, 243938), 60985);   /* ceil(243938 / 4) */
    assert_int_equal(kn_resample_out_len(r, 0), 0);
    assert_int_equal(kn_resample_out_len(r, 1), 1);
    kn_resampler_destroy(&r);
    assert_int_equal(kn_resampler_new(320, 294, &r, NULL), 0);  /* = 160/147 */
    assert_int_equal(kn_resample_out_len(r, 147), 160);
    assert_int_equal(kn_resample_out_len(r, 148), 162);         /* ceil(148*160/147) */
    kn_resampler_destroy(&r);
    kn_resampler_destroy(&r);   /* harmless twice */
}

/* Ingest's case: the whole 48 kHz normal-baseline DE recording to 12 kHz. */
static void test_cwru_48k_to_12k(void **state)
{
    (void)state;
    const size_t n = 243938;   /* the recording's length (shared/data/README.md) */
    char params[1024];
    snprintf(params, sizeof params,
             "{\"path\": \"%s/cwru/normal_0_97.mat\", \"channel\": \"DE\", \"start\": 0, "
             "\"n\": %zu}", oracle_data_dir(), n);
    double dummy = 0, *x;
    size_t n_x;
    assert_int_equal(oracle_run("kn_cwru_window", params, &dummy, 1, 1, &x, &n_x), 0);
    assert_int_equal(n_x, n + 1);
    const size_t lengths[] = {n};
    check_resample(1, 4, x, n, lengths, 1, "CWRU normal DE");

    kn_resampler_t *r;
    assert_int_equal(kn_resampler_new(1, 4, &r, NULL), 0);
    double *out = malloc(kn_resample_out_len(r, n) * sizeof *out);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    kn_resample(r, x, n, out);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (getenv("KILN_TEST_VERBOSE"))
        printf("resample 1/4 of %zu samples: %.2f ms\n", n,
               1e3 * ((double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec)));
    free(out);
    kn_resampler_destroy(&r);
    free(x);
}

static void test_errors(void **state)
{
    (void)state;
    kn_resampler_t *r = (kn_resampler_t *)&r;     /* non-NULL: must come back NULL */
    kiln_err_t err;
    memset(&err, 0, sizeof err);
    assert_int_equal(kn_resampler_new(0, 4, &r, &err), KILN_EINVAL);
    assert_null(r);
    assert_non_null(strstr(err.msg, "up=0"));
    assert_int_equal(kn_resampler_new(3, -1, &r, &err), KILN_EINVAL);
    assert_int_equal(kn_resampler_new(1000003, 1, &r, &err), KILN_EINVAL);
    assert_null(r);
    /* Every allocation in turn fails: an error, nothing leaked (ASan). */
    for (long nth = 1; nth <= 3; nth++) {
        kiln_alloc_fail_after(nth);
        int rc = kn_resampler_new(160, 147, &r, &err);
        kiln_alloc_fail_after(0);
        assert_int_equal(rc, KILN_ENOMEM);
        assert_null(r);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_signals),
        cmocka_unit_test(test_short_signals),
        cmocka_unit_test(test_out_len),
        cmocka_unit_test(test_cwru_48k_to_12k),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
