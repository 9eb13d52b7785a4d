/* test_drift.c - the drift statistics (kernels/drift.h) against scipy
 * (ks_2samp, wasserstein_distance, jensenshannon, chi2_contingency,
 * chi2.sf) and Evidently 0.7 (its PSI, JS, chisquare and z functions, and
 * DataDriftPreset's method choice and dataset verdict on the same frames),
 * computed at test time by tests/oracle/ops_drift.py; the exact path and
 * the sketch path; bad input. */
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
#include "core/kiln_alloc.h"
#include "kernels/drift.h"

static uint64_t rng_state = 0x2545F4914F6CDD1Dull;

static double normal01(void)
{
    double u1 = oracle_uniform01(&rng_state), u2 = oracle_uniform01(&rng_state);
    return sqrt(-2 * log(u1 + 1e-300)) * cos(2 * M_PI * u2);
}

typedef enum { D_NORMAL, D_INTEGERS, D_CONSTANT } dist_t;

static void fill(float *x, size_t n, dist_t d, double loc, double scale, int levels)
{
    for (size_t i = 0; i < n; i++) {
        if (d == D_NORMAL)
            x[i] = (float)(loc + scale * normal01());
        else if (d == D_INTEGERS)
            x[i] = (float)(loc + floor(oracle_uniform01(&rng_state) * levels));
        else
            x[i] = (float)loc;
    }
}

static int close_to(double got, double want, double rel, double abs_tol)
{
    if (isnan(want))
        return isnan(got);
    return fabs(got - want) <= abs_tol + rel * fabs(want);
}

#define CHECK(what, got, want, rel, abs_tol)                                                   \
    do {                                                                                       \
        if (!close_to((got), (want), (rel), (abs_tol))) {                                      \
            print_error("%s: %s = %.17g, oracle %.17g (rel %.1g, abs %.1g)\n", label, what,    \
                        (double)(got), (double)(want), (double)(rel), (double)(abs_tol));      \
            fail();                                                                            \
        }                                                                                      \
    } while (0)

/* Feeds ref and cur in chunks of 1000 values (the streaming contract). */
static kn_drift_col_t *numeric_col(const float *ref, size_t n_ref, const float *cur, size_t n_cur,
                                   size_t exact_max)
{
    kn_drift_col_t *c = NULL;
    kiln_err_t err;
    assert_int_equal(kn_drift_col_new(KN_DRIFT_NUMERIC, exact_max, &c, &err), 0);
    for (size_t i = 0; i < n_ref; i += 1000)
        assert_int_equal(kn_drift_feed(c, KN_DRIFT_REF, ref + i, n_ref - i < 1000 ? n_ref - i : 1000,
                                       &err), 0);
    for (size_t i = 0; i < n_cur; i += 1000)
        assert_int_equal(kn_drift_feed(c, KN_DRIFT_CUR, cur + i, n_cur - i < 1000 ? n_cur - i : 1000,
                                       &err), 0);
    return c;
}

/* op over ref then cur in one row with {"n_ref": N}: n_want values. */
static double *oracle_two_samples(const char *op, const float *ref, size_t n_ref, const float *cur,
                                  size_t n_cur, size_t n_want)
{
    double *in = malloc((n_ref + n_cur) * sizeof *in), *want;
    size_t n_got;
    for (size_t i = 0; i < n_ref; i++)
        in[i] = ref[i];
    for (size_t i = 0; i < n_cur; i++)
        in[n_ref + i] = cur[i];
    char params[64];
    snprintf(params, sizeof params, "{\"n_ref\": %zu}", n_ref);
    assert_int_equal(oracle_run(op, params, in, 1, n_ref + n_cur, &want, &n_got), 0);
    assert_int_equal(n_got, n_want);
    free(in);
    return want;
}

static double *oracle_numeric(const float *ref, size_t n_ref, const float *cur, size_t n_cur)
{
    return oracle_two_samples("drift_numeric", ref, n_ref, cur, n_cur, 8);
}

/* Exact path.  Tolerances: D is a difference of two count ratios formed
 * the same way as scipy's (1e-15); the exact KS p-value runs scipy's
 * recursions in the same double arithmetic (1e-10 relative); the
 * asymptotic one uses other but exact algorithms for kstwo (Durbin's
 * matrix where scipy uses Pomeranz, long-double Birnbaum-Tingey sums where
 * scipy uses double-double), agreeing to 1e-7 relative (+1e-300); W, std,
 * PSI and JS are sums of the same terms in another order (1e-9 relative:
 * float32 data summed in double). */
static void check_exact_case(const char *label, size_t n_ref, size_t n_cur, dist_t dr, double lr,
                             double sr, dist_t dc, double lc, double sc, int levels)
{
    float *ref = malloc(n_ref * sizeof *ref), *cur = malloc(n_cur * sizeof *cur);
    fill(ref, n_ref, dr, lr, sr, levels);
    fill(cur, n_cur, dc, lc, sc, levels);
    double *want = oracle_numeric(ref, n_ref, cur, n_cur);
    kn_drift_col_t *c = numeric_col(ref, n_ref, cur, n_cur, 0);
    kn_drift_result_t r;
    kiln_err_t err;
    assert_int_equal(kn_drift_finish(c, KN_DRIFT_AUTO, NAN, &r, &err), 0);
    assert_int_equal(r.sketched, 0);
    CHECK("ks_stat", r.ks_stat, want[0], 0, 1e-15);
    CHECK("ks_p", r.ks_p, want[1], r.ks_exact ? 1e-10 : 1e-7, 1e-300);
    CHECK("wasserstein", r.wasserstein, want[2], 1e-9, 1e-12);
    CHECK("wasserstein_norm", r.wasserstein_norm, want[3], 1e-9, 1e-12);
    CHECK("ref_std", r.ref_std, want[4], 1e-9, 1e-12);
    CHECK("psi", r.psi, want[5], 1e-9, 1e-12);
    CHECK("jensenshannon", r.jensenshannon, want[6], 1e-9, 1e-12);
    assert_int_equal(r.n_unique, (size_t)want[7]);
    assert_true(r.ks_error_bound == 0 && r.wasserstein_error_bound == 0);
    kn_drift_col_destroy(&c);
    kn_drift_col_destroy(&c);   /* harmless twice */
    free(want);
    free(ref);
    free(cur);
}

static void test_numeric_exact(void **state)
{
    (void)state;
    check_exact_case("normal shift 300/250", 300, 250, D_NORMAL, 0, 1, D_NORMAL, 0.4, 1, 0);
    check_exact_case("normal same 500/500", 500, 500, D_NORMAL, 5, 2, D_NORMAL, 5, 2, 0);
    check_exact_case("scale change 2000/1500", 2000, 1500, D_NORMAL, 0, 1, D_NORMAL, 0, 1.3, 0);
    check_exact_case("offset 3000/2000", 3000, 2000, D_NORMAL, 1000, 0.5, D_NORMAL, 1000.05, 0.5, 0);
    check_exact_case("ties 30 levels", 3000, 2500, D_INTEGERS, 0, 0, D_INTEGERS, 1, 0, 30);
    check_exact_case("ties 8 levels", 1500, 1500, D_INTEGERS, 0, 0, D_INTEGERS, 0, 0, 8);
    check_exact_case("constant, same", 200, 300, D_CONSTANT, 3, 0, D_CONSTANT, 3, 0, 0);
    check_exact_case("tiny 7/5", 7, 5, D_NORMAL, 0, 1, D_NORMAL, 1, 1, 0);
    check_exact_case("asymptotic 20000/15000", 20000, 15000, D_NORMAL, 0, 1, D_NORMAL, 0.03, 1, 0);
    check_exact_case("asymptotic 12000/60", 12000, 60, D_NORMAL, 0, 1, D_NORMAL, 0.3, 1, 0);
}

/* Sketch path (exact_max 4096, so 100000-value samples are bucketed): D
 * and W must be within the bounds the kernel reports of scipy's exact
 * values, the p-value within the p-values of D +- that bound, and PSI/JS
 * (bucket mass split across Evidently's bin edges) within 0.01. */
static void check_sketch_case(const char *label, size_t n, double lr, double sr, double lc,
                              double sc, dist_t d, int levels)
{
    float *ref = malloc(n * sizeof *ref), *cur = malloc(n * sizeof *cur);
    fill(ref, n, d, lr, sr, levels);
    fill(cur, n, d, lc, sc, levels);
    double *want = oracle_numeric(ref, n, cur, n);
    kn_drift_col_t *c = numeric_col(ref, n, cur, n, 4096);
    kn_drift_result_t r;
    kiln_err_t err;
    assert_int_equal(kn_drift_finish(c, KN_DRIFT_AUTO, NAN, &r, &err), 0);
    assert_int_equal(r.sketched, 1);
    CHECK("ks_stat", r.ks_stat, want[0], 0, r.ks_error_bound + 1e-15);
    double p_lo = kn_drift_ks_pvalue(n, n, want[0] + r.ks_error_bound, NULL);
    double p_hi = kn_drift_ks_pvalue(n, n, fmax(want[0] - r.ks_error_bound, 0), NULL);
    if (!(r.ks_p >= p_lo * (1 - 1e-9) && r.ks_p <= p_hi * (1 + 1e-9))) {
        print_error("%s: ks_p %.6g outside [%.6g, %.6g]\n", label, r.ks_p, p_lo, p_hi);
        fail();
    }
    CHECK("wasserstein", r.wasserstein, want[2], 0, r.wasserstein_error_bound + 1e-12);
    CHECK("ref_std", r.ref_std, want[4], 1e-9, 1e-12);
    CHECK("psi", r.psi, want[5], 0, 0.01);
    CHECK("jensenshannon", r.jensenshannon, want[6], 0, 0.01);
    /* the bounds are small for continuous data: the sketch is useful */
    if (d == D_NORMAL)
        assert_true(r.ks_error_bound < 2e-3 && r.wasserstein_error_bound < 1e-2 * sr);
    kn_drift_col_destroy(&c);
    free(want);
    free(ref);
    free(cur);
}

static void test_numeric_sketch(void **state)
{
    (void)state;
    check_sketch_case("sketch normal shift", 100000, 0, 1, 0.05, 1, D_NORMAL, 0);
    check_sketch_case("sketch scale change", 100000, 0, 1, 0, 1.1, D_NORMAL, 0);
    check_sketch_case("sketch offset 300", 100000, 300, 1, 300, 1, D_NORMAL, 0);
    check_sketch_case("sketch ties", 100000, 0, 0, 1, 0, D_INTEGERS, 50);
}

/* kn_drift_ks_pvalue over each region of scipy's method choice. */
static void test_ks_pvalue_paths(void **state)
{
    (void)state;
    static const struct { size_t n1, n2; double d; } cases[] = {
        {50, 50, 0.3}, {100, 100, 0.12}, {300, 200, 0.11}, {1000, 999, 0.05}, {7, 5, 0.6},
        {10000, 3000, 0.02}, {10000, 10000, 0.5},                /* exact */
        {20000, 100, 0.05}, {20000, 100, 0.15}, {20000, 100, 0.3}, {20000, 50, 0.01}, /* n <= 140 */
        {20000, 20000, 0.005}, {20000, 20000, 0.012}, {20000, 20000, 0.03},         /* DMTW, smirnov */
        {400000, 400000, 0.002}, {400000, 400000, 0.004}, {400000, 400000, 0.0001},  /* Pelz-Good */
        {5000000, 5000000, 0.0006}, {5000000, 5000000, 0.001},                     /* n > 1e6 */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        size_t n;
        double *want = oracle_pyf(&n, "drift_ks_pvalue", "{\"n1\": %zu, \"n2\": %zu, \"d\": %.17g}",
                                  cases[i].n1, cases[i].n2, cases[i].d);
        int exact;
        double got = kn_drift_ks_pvalue(cases[i].n1, cases[i].n2, cases[i].d, &exact);
        char label[96];
        snprintf(label, sizeof label, "ks p n1=%zu n2=%zu d=%g", cases[i].n1, cases[i].n2,
                 cases[i].d);
        assert_int_equal(exact, (int)want[1]);
        CHECK("p", got, want[0], exact ? 1e-10 : 1e-7, 1e-300);
        free(want);
    }
}

static void test_chi2_sf(void **state)
{
    (void)state;
    static const double xs[] = {0.1, 1, 3.84, 10, 50, 300};
    static const double dofs[] = {1, 2, 5, 30};
    for (size_t i = 0; i < 6; i++)
        for (size_t j = 0; j < 4; j++) {
            size_t n;
            double *want = oracle_pyf(&n, "drift_chi2_sf", "{\"x\": %.17g, \"dof\": %.17g}", xs[i],
                                      dofs[j]);
            const char *label = "chi2.sf";
            CHECK("sf", kn_drift_chi2_sf(xs[i], dofs[j]), want[0], 1e-11, 1e-300);
            free(want);
        }
}

/* Class columns: Evidently chisquare / z / PSI / JS and scipy
 * chi2_contingency, all sums over a handful of counts (1e-9 relative). */
static void check_class_case(const char *label, const int32_t *ref, size_t n_ref,
                             const int32_t *cur, size_t n_cur)
{
    double *in = malloc((n_ref + n_cur) * sizeof *in), *want;
    size_t n_want;
    for (size_t i = 0; i < n_ref; i++)
        in[i] = ref[i];
    for (size_t i = 0; i < n_cur; i++)
        in[n_ref + i] = cur[i];
    char params[64];
    snprintf(params, sizeof params, "{\"n_ref\": %zu}", n_ref);
    assert_int_equal(oracle_run("drift_class", params, in, 1, n_ref + n_cur, &want, &n_want), 0);
    kn_drift_col_t *c = NULL;
    kiln_err_t err;
    assert_int_equal(kn_drift_col_new(KN_DRIFT_CLASS, 0, &c, &err), 0);
    assert_int_equal(kn_drift_feed_class(c, KN_DRIFT_REF, ref, n_ref, &err), 0);
    assert_int_equal(kn_drift_feed_class(c, KN_DRIFT_CUR, cur, n_cur, &err), 0);
    kn_drift_result_t r;
    assert_int_equal(kn_drift_finish(c, KN_DRIFT_AUTO, NAN, &r, &err), 0);
    CHECK("chisquare_p", r.chisquare_p, want[0], 1e-9, 1e-300);
    CHECK("chi2_stat", r.chi2_stat, want[1], 1e-9, 1e-12);
    CHECK("chi2_p", r.chi2_p, want[2], 1e-9, 1e-300);
    assert_int_equal(r.chi2_dof, (int)want[3]);
    CHECK("z_p", r.z_p, want[4], 1e-9, 1e-15);
    CHECK("psi", r.psi, want[5], 1e-9, 1e-12);
    CHECK("jensenshannon", r.jensenshannon, want[6], 1e-9, 1e-12);
    kn_drift_result_t r2;   /* the 2 x K contingency test as the method */
    assert_int_equal(kn_drift_finish(c, KN_DRIFT_CHI2_CONTINGENCY, NAN, &r2, &err), 0);
    assert_true(r2.score == r.chi2_p && r2.drifted == (r.chi2_p < 0.05));
    kn_drift_col_destroy(&c);
    free(want);
    free(in);
}

static void class_sample(int32_t *y, size_t n, const double *probs, int k)
{
    for (size_t i = 0; i < n; i++) {
        double u = oracle_uniform01(&rng_state), acc = 0;
        int c = k - 1;
        for (int j = 0; j < k; j++) {
            acc += probs[j];
            if (u < acc) {
                c = j;
                break;
            }
        }
        y[i] = c;
    }
}

static void test_class_columns(void **state)
{
    (void)state;
    int32_t ref[3000], cur[3000];
    const double p4[] = {0.4, 0.3, 0.2, 0.1}, q4[] = {0.3, 0.3, 0.25, 0.15};
    class_sample(ref, 800, p4, 4);
    class_sample(cur, 600, q4, 4);
    check_class_case("4 classes shifted", ref, 800, cur, 600);
    class_sample(ref, 3000, p4, 4);
    class_sample(cur, 2000, p4, 4);
    check_class_case("4 classes same, 3000 rows", ref, 3000, cur, 2000);
    const double p2[] = {0.7, 0.3}, q2[] = {0.6, 0.4};
    class_sample(ref, 500, p2, 2);
    class_sample(cur, 400, q2, 2);
    check_class_case("binary (Yates)", ref, 500, cur, 400);
    class_sample(ref, 500, p4, 3);   /* labels 0..2 */
    class_sample(cur, 400, p4, 4);   /* label 3 appears only in current */
    check_class_case("class only in current", ref, 500, cur, 400);
}

/* jensenshannon on count rows straight against scipy (the same helper the
 * binned statistics use is reached through a class column). */
static void test_jensenshannon_scipy(void **state)
{
    (void)state;
    int32_t ref[] = {0, 0, 0, 1, 1, 2, 3, 3, 3, 3}, cur[] = {0, 1, 1, 1, 2, 2, 2, 4};
    double in[2][5] = {{3, 2, 1, 4, 0}, {1, 3, 3, 0, 1}};
    size_t n;
    double *want;
    assert_int_equal(oracle_run("drift_jensenshannon", "{}", &in[0][0], 2, 5, &want, &n), 0);
    kn_drift_col_t *c = NULL;
    kiln_err_t err;
    assert_int_equal(kn_drift_col_new(KN_DRIFT_CLASS, 0, &c, &err), 0);
    assert_int_equal(kn_drift_feed_class(c, KN_DRIFT_REF, ref, 10, &err), 0);
    assert_int_equal(kn_drift_feed_class(c, KN_DRIFT_CUR, cur, 8, &err), 0);
    kn_drift_result_t r;
    assert_int_equal(kn_drift_finish(c, KN_DRIFT_JENSENSHANNON, NAN, &r, &err), 0);
    const char *label = "jensenshannon counts";
    CHECK("js", r.score, want[0], 1e-12, 1e-15);
    kn_drift_col_destroy(&c);
    free(want);
}

/* The default method per column and the dataset verdict against
 * Evidently's DataDriftPreset on the same frames: method codes and the
 * number of drifted columns must be equal, scores within 1e-6 relative
 * (the statistics are checked tighter above). */
static void check_preset(const char *label, size_t n_ref, size_t n_cur, const char *kinds,
                         size_t n_cols, float *const *data)
{
    size_t rows = n_ref + n_cur;
    double *in = malloc(rows * n_cols * sizeof *in), *want;
    size_t n_want;
    for (size_t r = 0; r < rows; r++)
        for (size_t j = 0; j < n_cols; j++)
            in[r * n_cols + j] = data[j][r];
    char params[256] = {0};
    int off = snprintf(params, sizeof params, "{\"n_ref\": %zu, \"kinds\": [", n_ref);
    for (size_t j = 0; j < n_cols; j++)
        off += snprintf(params + off, sizeof params - (size_t)off, "%s\"%c\"", j ? ", " : "", kinds[j]);
    snprintf(params + off, sizeof params - (size_t)off, "]}");
    assert_int_equal(oracle_run("drift_preset", params, in, rows, n_cols, &want, &n_want), 0);
    assert_int_equal(n_want, 2 * n_cols + 2);
    kn_drift_col_t *cols[16];
    kiln_err_t err;
    int32_t *lab = malloc(rows * sizeof *lab);
    for (size_t j = 0; j < n_cols; j++) {
        kn_drift_kind_t kind = kinds[j] == 'c' ? KN_DRIFT_CLASS : KN_DRIFT_NUMERIC;
        assert_int_equal(kn_drift_col_new(kind, 0, &cols[j], &err), 0);
        if (kind == KN_DRIFT_CLASS) {
            for (size_t r = 0; r < rows; r++)
                lab[r] = (int32_t)data[j][r];
            assert_int_equal(kn_drift_feed_class(cols[j], KN_DRIFT_REF, lab, n_ref, &err), 0);
            assert_int_equal(kn_drift_feed_class(cols[j], KN_DRIFT_CUR, lab + n_ref, n_cur, &err), 0);
        } else {
            assert_int_equal(kn_drift_feed(cols[j], KN_DRIFT_REF, data[j], n_ref, &err), 0);
            assert_int_equal(kn_drift_feed(cols[j], KN_DRIFT_CUR, data[j] + n_ref, n_cur, &err), 0);
        }
    }
    kn_drift_result_t res[16];
    assert_int_equal(kn_drift_finish_columns(cols, n_cols, 2, res, &err), 0);
    for (size_t j = 0; j < n_cols; j++) {
        if ((int)res[j].method != (int)want[2 * j]) {
            print_error("%s: column %zu method %s, Evidently code %g\n", label, j,
                        kn_drift_method_name(res[j].method), want[2 * j]);
            fail();
        }
        CHECK("score", res[j].score, want[2 * j + 1], 1e-6, 1e-12);
        kn_drift_col_destroy(&cols[j]);
    }
    size_t n_drifted;
    int drifted;
    assert_int_equal(kn_drift_dataset(res, n_cols, 0.5, &n_drifted, &drifted, &err), 0);
    assert_int_equal(n_drifted, (size_t)want[2 * n_cols]);
    assert_int_equal(drifted, (int)want[2 * n_cols + 1]);
    free(lab);
    free(want);
    free(in);
}

static void test_default_choice_vs_evidently(void **state)
{
    (void)state;
    enum { COLS = 6 };
    for (int big = 0; big < 2; big++) {
        size_t n_ref = big ? 3000 : 600, n_cur = big ? 2000 : 400, rows = n_ref + n_cur;
        float *d[COLS];
        for (int j = 0; j < COLS; j++)
            d[j] = malloc(rows * sizeof **d);
        fill(d[0], n_ref, D_NORMAL, 0, 1, 0);            /* numeric, drifted */
        fill(d[0] + n_ref, n_cur, D_NORMAL, 0.5, 1, 0);
        fill(d[1], rows, D_NORMAL, 10, 3, 0);            /* numeric, same */
        fill(d[2], n_ref, D_INTEGERS, 0, 0, 4);          /* 4 values: chisquare / JS */
        fill(d[2] + n_ref, n_cur, D_INTEGERS, 0, 0, 4);
        fill(d[3], n_ref, D_INTEGERS, 0, 0, 2);          /* binary numeric: z / JS */
        fill(d[3] + n_ref, n_cur, D_INTEGERS, 0, 0, 2);
        const double p[] = {0.5, 0.3, 0.2}, q[] = {0.3, 0.3, 0.4};
        int32_t *y = malloc(rows * sizeof *y);
        class_sample(y, n_ref, p, 3);                    /* categorical, drifted */
        class_sample(y + n_ref, n_cur, q, 3);
        for (size_t r = 0; r < rows; r++)
            d[4][r] = (float)y[r];
        class_sample(y, rows, p, 2);                     /* binary categorical, same */
        for (size_t r = 0; r < rows; r++)
            d[5][r] = (float)y[r];
        check_preset(big ? "preset 3000/2000" : "preset 600/400", n_ref, n_cur, "nnnncc", COLS, d);
        free(y);
        for (int j = 0; j < COLS; j++)
            free(d[j]);
    }
}

static void test_bad_input(void **state)
{
    (void)state;
    kn_drift_col_t *c = NULL;
    kiln_err_t err;
    kn_drift_result_t r;
    float x[4] = {1, 2, NAN, 4};
    assert_int_equal(kn_drift_col_new(KN_DRIFT_NUMERIC, 0, &c, &err), 0);
    assert_int_equal(kn_drift_finish(c, KN_DRIFT_AUTO, NAN, &r, &err), KILN_EINVAL);
    assert_non_null(strstr(err.msg, "reference sample is empty"));
    assert_int_equal(kn_drift_feed(c, KN_DRIFT_REF, x, 2, &err), 0);
    assert_int_equal(kn_drift_finish(c, KN_DRIFT_AUTO, NAN, &r, &err), KILN_EINVAL);
    assert_non_null(strstr(err.msg, "current sample is empty"));
    assert_int_equal(kn_drift_feed(c, KN_DRIFT_CUR, x, 4, &err), KILN_ENONFINITE);
    assert_non_null(strstr(err.msg, "current sample row 2 is NaN"));
    x[2] = INFINITY;
    assert_int_equal(kn_drift_feed(c, KN_DRIFT_REF, x, 4, &err), KILN_ENONFINITE);
    assert_non_null(strstr(err.msg, "reference sample row 4 is Inf"));   /* rows counted per side */
    int32_t lab[2] = {0, -1};
    assert_int_equal(kn_drift_feed_class(c, KN_DRIFT_REF, lab, 2, &err), KILN_ETYPE);
    assert_int_equal(kn_drift_feed(c, (kn_drift_side_t)7, x, 1, &err), KILN_EINVAL);
    /* the failed feeds left nothing behind: 2 reference values */
    x[2] = 3;
    assert_int_equal(kn_drift_feed(c, KN_DRIFT_CUR, x, 4, &err), 0);
    assert_int_equal(kn_drift_finish(c, KN_DRIFT_KS, NAN, &r, &err), 0);
    assert_int_equal(r.n_ref, 2);
    assert_int_equal(r.n_cur, 4);
    kn_drift_col_destroy(&c);

    assert_int_equal(kn_drift_col_new(KN_DRIFT_CLASS, 0, &c, &err), 0);
    assert_int_equal(kn_drift_feed_class(c, KN_DRIFT_REF, lab, 2, &err), KILN_EINVAL);
    assert_non_null(strstr(err.msg, "row 1 has class label -1"));
    assert_int_equal(kn_drift_feed(c, KN_DRIFT_REF, x, 1, &err), KILN_ETYPE);
    lab[1] = 1;
    assert_int_equal(kn_drift_feed_class(c, KN_DRIFT_REF, lab, 2, &err), 0);
    assert_int_equal(kn_drift_feed_class(c, KN_DRIFT_CUR, lab, 2, &err), 0);
    assert_int_equal(kn_drift_finish(c, KN_DRIFT_KS, NAN, &r, &err), KILN_EINVAL);
    assert_non_null(strstr(err.msg, "needs a numeric column"));
    kn_drift_col_destroy(&c);

    kn_drift_method_t m;
    assert_int_equal(kn_drift_method_parse("wasserstein", &m, &err), 0);
    assert_int_equal(m, KN_DRIFT_WASSERSTEIN_NORM);
    assert_int_equal(kn_drift_method_parse("kss", &m, &err), KILN_EINVAL);
    assert_int_equal(kn_drift_col_new((kn_drift_kind_t)5, 0, &c, &err), KILN_EINVAL);
    assert_int_equal(kn_drift_dataset(&r, 0, 0.5, NULL, NULL, &err), KILN_EINVAL);
}

/* Threads over columns give the same bits as one thread, and a NaN in one
 * column is reported with that column's index. */
static void test_columns_threads(void **state)
{
    (void)state;
    enum { COLS = 5, N = 6000 };
    float *x[COLS];
    kn_drift_col_t *a[COLS], *b[COLS];
    kiln_err_t err;
    for (int j = 0; j < COLS; j++) {
        x[j] = malloc(N * sizeof **x);
        fill(x[j], N, D_NORMAL, j, 1 + j, 0);
        assert_int_equal(kn_drift_col_new(KN_DRIFT_NUMERIC, 5000, &a[j], &err), 0);
        assert_int_equal(kn_drift_col_new(KN_DRIFT_NUMERIC, 5000, &b[j], &err), 0);
    }
    const float *const *xc = (const float *const *)x;
    assert_int_equal(kn_drift_feed_columns(a, COLS, KN_DRIFT_REF, xc, N / 2, 2, &err), 0);
    assert_int_equal(kn_drift_feed_columns(b, COLS, KN_DRIFT_REF, xc, N / 2, 1, &err), 0);
    const float *cur[COLS];
    for (int j = 0; j < COLS; j++)
        cur[j] = x[j] + N / 2;
    assert_int_equal(kn_drift_feed_columns(a, COLS, KN_DRIFT_CUR, cur, N / 2, 2, &err), 0);
    assert_int_equal(kn_drift_feed_columns(b, COLS, KN_DRIFT_CUR, cur, N / 2, 1, &err), 0);
    kn_drift_result_t ra[COLS], rb[COLS];
    assert_int_equal(kn_drift_finish_columns(a, COLS, 2, ra, &err), 0);
    assert_int_equal(kn_drift_finish_columns(b, COLS, 1, rb, &err), 0);
    for (int j = 0; j < COLS; j++) {
        assert_true(ra[j].sketched);    /* 6000 values > exact_max 5000 */
        assert_true(ra[j].ks_stat == rb[j].ks_stat && ra[j].wasserstein == rb[j].wasserstein);
    }
    x[3][10] = NAN;
    assert_int_equal(kn_drift_feed_columns(a, COLS, KN_DRIFT_CUR, xc, 100, 2, &err), KILN_ENONFINITE);
    assert_string_equal(err.where, "column 3");
    for (int j = 0; j < COLS; j++) {
        kn_drift_col_destroy(&a[j]);
        kn_drift_col_destroy(&b[j]);
        free(x[j]);
    }
}

/* Every allocation of new/feed (through the switch to the sketch)/finish
 * failing in turn: KILN_ENOMEM, no leak (ASan), then success. */
static void test_alloc_failures(void **state)
{
    (void)state;
    float x[3000];
    fill(x, 3000, D_NORMAL, 0, 1, 0);
    int ok = 0;
    for (long k = 1; k < 100 && !ok; k++) {
        kiln_err_t err;
        kn_drift_col_t *c = NULL;
        kn_drift_result_t r;
        kiln_alloc_fail_after(k);
        int rc = kn_drift_col_new(KN_DRIFT_NUMERIC, 4000, &c, &err);
        if (rc == 0)
            rc = kn_drift_feed(c, KN_DRIFT_REF, x, 3000, &err);
        if (rc == 0)
            rc = kn_drift_feed(c, KN_DRIFT_CUR, x, 1500, &err);
        if (rc == 0)
            rc = kn_drift_finish(c, KN_DRIFT_AUTO, NAN, &r, &err);
        kiln_alloc_fail_after(0);
        if (rc == 0)
            ok = k > 3;
        else
            assert_int_equal(rc, KILN_ENOMEM);
        kn_drift_col_destroy(&c);
    }
    assert_true(ok);
}

static double *oracle_psi_quantile(const float *ref, size_t n_ref, const float *cur, size_t n_cur)
{
    return oracle_two_samples("drift_psi_quantile", ref, n_ref, cur, n_cur, 2);
}

/* PSI on the reference's deciles against numpy's np.quantile bins: the
 * exact path forms the same edges with numpy's arithmetic and the same
 * shares (1e-12 relative, bins equal); the sketch rounds each edge to its
 * bucket (within 0.01 absolute of numpy, as PSI and JS on the sketch). */
static void check_psi_quantile(const char *label, size_t n_ref, size_t n_cur, dist_t dr, double lr,
                               double sr, dist_t dc, double lc, double sc, int levels,
                               size_t exact_max)
{
    float *ref = malloc(n_ref * sizeof *ref), *cur = malloc(n_cur * sizeof *cur);
    fill(ref, n_ref, dr, lr, sr, levels);
    fill(cur, n_cur, dc, lc, sc, levels);
    double *want = oracle_psi_quantile(ref, n_ref, cur, n_cur);
    kn_drift_col_t *c = numeric_col(ref, n_ref, cur, n_cur, exact_max);
    kn_drift_result_t r;
    kiln_err_t err;
    assert_int_equal(kn_drift_finish(c, KN_DRIFT_PSI_QUANTILE, NAN, &r, &err), 0);
    assert_int_equal(r.method, KN_DRIFT_PSI_QUANTILE);
    assert_true(r.score == r.psi_quantile);
    assert_int_equal(r.drifted, r.psi_quantile >= 0.1);
    if (!r.sketched) {
        CHECK("psi_quantile", r.psi_quantile, want[0], 1e-12, 1e-15);
        assert_int_equal(r.n_quantile_bins, (int)want[1]);
    } else {
        CHECK("psi_quantile (sketch)", r.psi_quantile, want[0], 0, 0.01);
    }
    kn_drift_col_destroy(&c);
    free(want);
    free(ref);
    free(cur);
}

static void test_psi_quantile(void **state)
{
    (void)state;
    check_psi_quantile("normal shift 3000/2000", 3000, 2000, D_NORMAL, 0, 1, D_NORMAL, 0.5, 1, 0, 0);
    check_psi_quantile("same 5000/4000", 5000, 4000, D_NORMAL, 3, 2, D_NORMAL, 3, 2, 0, 0);
    check_psi_quantile("scale 1000/1000", 1000, 1000, D_NORMAL, 0, 1, D_NORMAL, 0, 3, 0, 0);
    check_psi_quantile("11 levels, ties merge edges", 2000, 1500, D_INTEGERS, 0, 1, D_INTEGERS, 2, 1,
                       11, 0);
    check_psi_quantile("3 levels", 800, 900, D_INTEGERS, 0, 1, D_INTEGERS, 0, 1, 3, 0);
    check_psi_quantile("constant reference", 500, 400, D_CONSTANT, 1, 0, D_NORMAL, 1, 1, 0, 0);
    check_psi_quantile("tiny 7/5", 7, 5, D_NORMAL, 0, 1, D_NORMAL, 1, 1, 0, 0);
    check_psi_quantile("sketch shift 60000/50000", 60000, 50000, D_NORMAL, 10, 1, D_NORMAL, 10.3, 1,
                       0, 20000);
    check_psi_quantile("sketch same 60000/50000", 60000, 50000, D_NORMAL, 10, 1, D_NORMAL, 10, 1, 0,
                       20000);
    /* a class column has no quantiles */
    kn_drift_col_t *c = NULL;
    kiln_err_t err;
    int32_t lab[4] = {0, 1, 0, 1};
    kn_drift_result_t r;
    assert_int_equal(kn_drift_col_new(KN_DRIFT_CLASS, 0, &c, &err), 0);
    assert_int_equal(kn_drift_feed_class(c, KN_DRIFT_REF, lab, 4, &err), 0);
    assert_int_equal(kn_drift_feed_class(c, KN_DRIFT_CUR, lab, 4, &err), 0);
    assert_int_equal(kn_drift_finish(c, KN_DRIFT_PSI_QUANTILE, NAN, &r, &err), KILN_EINVAL);
    kn_drift_method_t m;
    assert_int_equal(kn_drift_method_parse("psi_quantile", &m, &err), 0);
    assert_int_equal(m, KN_DRIFT_PSI_QUANTILE);
    kn_drift_col_destroy(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_numeric_exact),
        cmocka_unit_test(test_numeric_sketch),
        cmocka_unit_test(test_psi_quantile),
        cmocka_unit_test(test_ks_pvalue_paths),
        cmocka_unit_test(test_chi2_sf),
        cmocka_unit_test(test_class_columns),
        cmocka_unit_test(test_jensenshannon_scipy),
        cmocka_unit_test(test_default_choice_vs_evidently),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_columns_threads),
        cmocka_unit_test(test_alloc_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
