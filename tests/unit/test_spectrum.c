/* test_spectrum.c - kn_window_fill, kn_power_spectrum and the spectral
 * features against numpy (np.hanning, np.fft.rfft in float64) on random and
 * real CWRU windows, plus the edge cases: bands past Nyquist or empty, bins
 * exactly on band edges, ties, an all-zero spectrum. */
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

#define FS_HZ 12000.0

static uint64_t rng_state = 0x2545F4914F6CDD1Dull;

static double uniform01(void) { return oracle_uniform01(&rng_state); }

/* Noise plus a few sines, so the spectrum has structure and a clear top. */
static void random_window(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        double t = (double)i / FS_HZ;
        x[i] = (float)(0.2 + 0.5 * (uniform01() - 0.5) + 1.3 * sin(2 * M_PI * 1234.5 * t) +
                       0.4 * sin(2 * M_PI * 3210.0 * t + 0.3));
    }
}

typedef struct {
    size_t n, n_bins;
    float *power;
    double bands[8], centroid, dominant;
} features_t;

static const double bands_hz[][2] = {{0, 1000}, {1000, 2000}, {2000, 4000}, {4000, 6000},
                                     {5990, 9000}, {7000, 9000}, {-50, 10}, {3000, 3000}};
#define N_BANDS (sizeof bands_hz / sizeof *bands_hz)
static const char *bands_json =
    "[[0, 1000], [1000, 2000], [2000, 4000], [4000, 6000], [5990, 9000], [7000, 9000], "
    "[-50, 10], [3000, 3000]]";

/* The featurize pipeline: window, kn_rfft, kn_power_spectrum, features. */
static void compute(const float *x, size_t n, kn_window_t window, double fs_hz,
                    features_t *f)
{
    kn_fft_plan_t *plan;
    kiln_err_t err;
    assert_int_equal(kn_fft_plan_new(n, &plan, &err), 0);
    float *w = malloc(n * sizeof *w), *xw = malloc(n * sizeof *xw);
    float *spec = malloc((n / 2 + 1) * 2 * sizeof *spec);
    float *scratch = kiln_malloc_aligned(kn_fft_scratch_floats(plan) * sizeof(float) + 64);
    f->n = n;
    f->n_bins = n / 2 + 1;
    f->power = malloc(f->n_bins * sizeof *f->power);
    kn_window_fill(window, w, n);
    for (size_t i = 0; i < n; i++)
        xw[i] = x[i] * w[i];
    kn_rfft(plan, xw, spec, scratch);
    kn_power_spectrum(spec, n, f->power);
    for (size_t b = 0; b < N_BANDS; b++)
        f->bands[b] = kn_band_energy(f->power, n, fs_hz, bands_hz[b][0], bands_hz[b][1]);
    f->centroid = kn_spectral_centroid(f->power, n, fs_hz);
    f->dominant = kn_dominant_freq(f->power, n, fs_hz);
    kiln_free_aligned(scratch);
    free(spec);
    free(xw);
    free(w);
    kn_fft_plan_destroy(&plan);
}

/* Tolerances: the window, the product and the FFT run in float32 (~6e-8
 * relative per operation, growing ~log n through the FFT), the oracle in
 * float64.  So every value is compared against the spectrum's own scale:
 * power bins to 1e-5 of the largest bin, band energies to 1e-5 of the total
 * power, the centroid to 1e-5 of Nyquist.  The dominant frequency must be a
 * bin whose oracle power is within that tolerance of the maximum (two bins
 * within float rounding of each other may swap). */
static void check_features(const features_t *f, const double *want, double fs_hz,
                           const char *what)
{
    const size_t nb = f->n_bins;
    double p_max = 0, p_sum = 0;
    for (size_t k = 0; k < nb; k++) {
        p_max = want[k] > p_max ? want[k] : p_max;
        p_sum += want[k];
    }
    for (size_t k = 0; k < nb; k++) {
        if (!(fabs(f->power[k] - want[k]) <= 1e-5 * p_max)) {
            print_error("%s (n=%zu): power[%zu] = %.9g, oracle %.9g (max %.9g)\n", what,
                        f->n, k, (double)f->power[k], want[k], p_max);
            fail();
        }
    }
    for (size_t b = 0; b < N_BANDS; b++) {
        if (!(fabs(f->bands[b] - want[nb + b]) <= 1e-5 * p_sum)) {
            print_error("%s (n=%zu): band [%g, %g) = %.9g, oracle %.9g\n", what, f->n,
                        bands_hz[b][0], bands_hz[b][1], f->bands[b], want[nb + b]);
            fail();
        }
    }
    double centroid = want[nb + N_BANDS], dominant = want[nb + N_BANDS + 1];
    if (!(fabs(f->centroid - centroid) <= 1e-5 * fs_hz / 2)) {
        print_error("%s (n=%zu): centroid %.9g, oracle %.9g\n", what, f->n, f->centroid,
                    centroid);
        fail();
    }
    double k_dom = f->dominant * (double)f->n / fs_hz;
    size_t k = (size_t)llround(k_dom);
    assert_true(fabs(k_dom - (double)k) < 1e-9 && k >= 1 && k < nb);
    double p_top = 0;
    for (size_t j = 1; j < nb; j++)
        p_top = want[j] > p_top ? want[j] : p_top;
    if (!(want[k] >= p_top - 1e-5 * p_max)) {
        print_error("%s (n=%zu): dominant %.9g Hz, oracle %.9g Hz\n", what, f->n, f->dominant,
                    dominant);
        fail();
    }
}

static void check_against_oracle(const float *x, size_t n, kn_window_t window, double fs_hz,
                                 const char *what)
{
    char params[1024];
    snprintf(params, sizeof params, "{\"fs\": %.17g, \"window\": \"%s\", \"bands\": %s}", fs_hz,
             window == KN_WINDOW_HANN ? "hann" : "none", bands_json);
    double *want;
    size_t n_want;
    assert_int_equal(oracle_run_f("kn_spectrum_features", params, x, 1, n, &want, &n_want), 0);
    assert_int_equal(n_want, n / 2 + 1 + N_BANDS + 2);
    features_t f;
    compute(x, n, window, fs_hz, &f);
    check_features(&f, want, fs_hz, what);
    free(f.power);
    free(want);
}

static void test_window_fill(void **state)
{
    (void)state;
    const size_t sizes[] = {1, 2, 3, 7, 2048};
    for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) {
        size_t n = sizes[s];
        char params[64];
        snprintf(params, sizeof params, "{\"n\": %zu}", n);
        double dummy = 0, *want;
        size_t n_want;
        assert_int_equal(oracle_run("kn_hanning", params, &dummy, 1, 1, &want, &n_want), 0);
        assert_int_equal(n_want, n);
        float *w = malloc(n * sizeof *w);
        kn_window_fill(KN_WINDOW_HANN, w, n);
        /* float32 output of a double formula: within one float rounding
         * (values <= 1, so 1.2e-7 absolute). */
        for (size_t i = 0; i < n; i++)
            assert_true(fabs(w[i] - want[i]) <= 1.2e-7);
        kn_window_fill(KN_WINDOW_NONE, w, n);
        for (size_t i = 0; i < n; i++)
            assert_true(w[i] == 1.0f);
        free(want);
        free(w);
    }
}

static void test_random_windows(void **state)
{
    (void)state;
    const size_t sizes[] = {2048, 1000, 999, 64, 3, 2};
    for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) {
        float *x = malloc(sizes[s] * sizeof *x);
        random_window(x, sizes[s]);
        check_against_oracle(x, sizes[s], KN_WINDOW_HANN, FS_HZ, "random, hann");
        check_against_oracle(x, sizes[s], KN_WINDOW_NONE, FS_HZ, "random, none");
        free(x);
    }
}

/* n = 1200 at 12 kHz puts a bin exactly on every band edge (10 Hz bins):
 * lo is in, hi is out, decided the same way as the oracle. */
static void test_band_edges_on_bins(void **state)
{
    (void)state;
    float x[1200];
    random_window(x, 1200);
    check_against_oracle(x, 1200, KN_WINDOW_NONE, FS_HZ, "bins on band edges");
    features_t f;
    compute(x, 1200, KN_WINDOW_NONE, FS_HZ, &f);
    double sum_direct = 0;
    for (size_t k = 100; k < 200; k++)
        sum_direct += f.power[k];
    assert_true(kn_band_energy(f.power, 1200, FS_HZ, 1000, 2000) == sum_direct);
    /* past Nyquist, empty and reversed bands hold nothing */
    assert_true(kn_band_energy(f.power, 1200, FS_HZ, 6000.5, 9000) == 0.0);
    assert_true(kn_band_energy(f.power, 1200, FS_HZ, 3000, 3000) == 0.0);
    assert_true(kn_band_energy(f.power, 1200, FS_HZ, 4000, 3000) == 0.0);
    /* a band over everything is the whole spectrum, the Nyquist bin included */
    double total = 0;
    for (size_t k = 0; k < f.n_bins; k++)
        total += f.power[k];
    assert_true(kn_band_energy(f.power, 1200, FS_HZ, -1e9, 1e9) == total);
    assert_true(kn_band_energy(f.power, 1200, FS_HZ, 6000, 1e9) == f.power[600]);
    free(f.power);
}

static void test_real_windows(void **state)
{
    (void)state;
    const char *files[] = {"12k_Drive_End_IR007_0_105.mat", "12k_Drive_End_B021_0_222.mat"};
    for (int i = 0; i < 2; i++) {
        char params[1024];
        snprintf(params, sizeof params,
                 "{\"path\": \"%s/cwru/%s\", \"channel\": \"DE\", \"start\": 20000, \"n\": 2048}",
                 oracle_data_dir(), files[i]);
        double dummy = 0, *d;
        size_t n_d;
        assert_int_equal(oracle_run("kn_cwru_window", params, &dummy, 1, 1, &d, &n_d), 0);
        assert_int_equal(n_d, 2049);
        float x[2048];
        for (size_t t = 0; t < 2048; t++)
            x[t] = (float)d[t];
        free(d);
        check_against_oracle(x, 2048, KN_WINDOW_HANN, FS_HZ, files[i]);
    }
}

/* Parseval, the scaling the contract promises: without a window the power
 * spectrum sums to mean(x^2) (float32 FFT: 1e-5 relative). */
static void test_parseval(void **state)
{
    (void)state;
    const size_t sizes[] = {2048, 999};
    for (size_t s = 0; s < 2; s++) {
        size_t n = sizes[s];
        float *x = malloc(n * sizeof *x);
        random_window(x, n);
        features_t f;
        compute(x, n, KN_WINDOW_NONE, FS_HZ, &f);
        kn_time_stats_t st;
        kn_time_stats(x, n, FS_HZ, 0, &st);
        double total = kn_band_energy(f.power, n, FS_HZ, 0, 1e9);
        assert_true(fabs(total - st.rms * st.rms) <= 1e-5 * st.rms * st.rms);
        free(f.power);
        free(x);
    }
}

/* A pure sine on a bin: dominant is that bin; ties go to the first bin;
 * a zero spectrum has centroid 0. */
static void test_dominant_and_centroid(void **state)
{
    (void)state;
    float x[1200];
    for (size_t i = 0; i < 1200; i++)
        x[i] = (float)(3.0 + sin(2 * M_PI * 137.0 * (double)i / 1200.0));
    features_t f;
    compute(x, 1200, KN_WINDOW_NONE, FS_HZ, &f);   /* DC is larger, but excluded */
    assert_true(f.dominant == 137.0 * FS_HZ / 1200.0);
    free(f.power);

    float p[6] = {9, 1, 4, 4, 2, 4};
    assert_true(kn_dominant_freq(p, 10, 10.0) == 2.0);
    /* centroid: (0*9 + 1*1 + 2*4 + 3*4 + 4*2 + 5*4) / 24 */
    assert_true(fabs(kn_spectral_centroid(p, 10, 10.0) - 49.0 / 24.0) < 1e-15);
    float zero[6] = {0};
    assert_true(kn_spectral_centroid(zero, 10, 10.0) == 0.0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_window_fill),
        cmocka_unit_test(test_random_windows),
        cmocka_unit_test(test_band_edges_on_bins),
        cmocka_unit_test(test_real_windows),
        cmocka_unit_test(test_parseval),
        cmocka_unit_test(test_dominant_and_centroid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
