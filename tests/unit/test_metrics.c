/* test_metrics.c - km_metrics against sklearn.metrics (accuracy_score,
 * f1_score(average="macro"), confusion_matrix, roc_auc_score,
 * mean_squared_error, mean_absolute_error) on random labels and scores,
 * hand-checked corner cases and every bad input. */
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
#include "kernels/metrics.h"

static uint64_t rng_state = 0xD1B54A32D192ED03ull;

static double uniform01(void) { return oracle_uniform01(&rng_state); }

/* Tolerance 1e-12: classification figures are integer counts and one or
 * two divisions on both sides (sklearn sums F1 in a different order); AUC is
 * an exact pair count here and a trapezoid sum there; RMSE/MAE are double
 * sums of the same float32 values (~n * 1e-16 relative). */
#define TOL 1e-12

static void check_classification(const int32_t *t, const int32_t *p, size_t n, int k,
                                 const char *what)
{
    double *in = malloc(2 * n * sizeof *in), *want;
    size_t n_want;
    for (size_t i = 0; i < n; i++) {
        in[2 * i] = t[i];
        in[2 * i + 1] = p[i];
    }
    char params[64];
    snprintf(params, sizeof params, "{\"n_classes\": %d}", k);
    assert_int_equal(oracle_run("mb_classification", params, in, n, 2, &want, &n_want), 0);
    assert_int_equal(n_want, 2 + (size_t)(k * k));
    double acc, f1;
    kiln_err_t err;
    uint64_t *cm = malloc((size_t)(k * k) * sizeof *cm);
    assert_int_equal(km_metrics_accuracy(t, p, n, k, &acc, &err), 0);
    assert_int_equal(km_metrics_f1_macro(t, p, n, k, &f1, &err), 0);
    assert_int_equal(km_metrics_confusion(t, p, n, k, cm, &err), 0);
    if (!(fabs(acc - want[0]) <= TOL && fabs(f1 - want[1]) <= TOL)) {
        print_error("%s: accuracy %.17g (sklearn %.17g), f1 %.17g (sklearn %.17g)\n", what,
                    acc, want[0], f1, want[1]);
        fail();
    }
    for (int i = 0; i < k * k; i++)
        assert_true((double)cm[i] == want[2 + i]);
    free(cm);
    free(want);
    free(in);
}

static void test_classification_vs_sklearn(void **state)
{
    (void)state;
    const size_t n = 2000;
    int32_t *t = malloc(n * sizeof *t), *p = malloc(n * sizeof *p);
    /* 5 classes, imbalanced, predictions right 60% of the time */
    for (size_t i = 0; i < n; i++) {
        double u = uniform01();
        t[i] = u < 0.5 ? 0 : u < 0.75 ? 1 : u < 0.9 ? 2 : u < 0.98 ? 3 : 4;
        p[i] = uniform01() < 0.6 ? t[i] : (int32_t)(uniform01() * 5);
    }
    check_classification(t, p, n, 5, "5 classes");
    check_classification(t, p, n, 8, "5 used of 8");     /* 5..7 absent: excluded */
    /* class 4 only predicted, class 3 only true: both count with F1 0 */
    for (size_t i = 0; i < n; i++) {
        if (t[i] == 4)
            t[i] = 0;
        if (p[i] == 3)
            p[i] = 1;
    }
    check_classification(t, p, n, 6, "one-sided classes");
    for (size_t i = 0; i < n; i++)
        t[i] = p[i] = (int32_t)(uniform01() * 2);
    check_classification(t, p, n, 2, "all right");
    check_classification(t, p, 1, 3, "one row");
    free(t);
    free(p);
}

/* Hand-checked: y = [0 0 1 1], pred = [0 1 1 1] with 4 classes:
 * F1(0) = 2/3, F1(1) = 4/5, classes 2, 3 absent -> (2/3 + 4/5) / 2. */
static void test_f1_by_hand(void **state)
{
    (void)state;
    const int32_t t[4] = {0, 0, 1, 1}, p[4] = {0, 1, 1, 1};
    double f1, acc;
    kiln_err_t err;
    assert_int_equal(km_metrics_f1_macro(t, p, 4, 4, &f1, &err), 0);
    assert_true(fabs(f1 - (2.0 / 3.0 + 4.0 / 5.0) / 2.0) < 1e-15);
    assert_int_equal(km_metrics_accuracy(t, p, 4, 4, &acc, &err), 0);
    assert_true(acc == 0.75);
}

static double auc_oracle(const int32_t *t, const float *s, size_t n)
{
    double *in = malloc(2 * n * sizeof *in), *want;
    size_t n_want;
    for (size_t i = 0; i < n; i++) {
        in[2 * i] = t[i];
        in[2 * i + 1] = s[i];
    }
    assert_int_equal(oracle_run("mb_roc_auc", "{}", in, n, 2, &want, &n_want), 0);
    assert_int_equal(n_want, 1);
    double w = want[0];
    free(want);
    free(in);
    return w;
}

static void test_auc_vs_sklearn(void **state)
{
    (void)state;
    const size_t n = 3000;
    int32_t *t = malloc(n * sizeof *t);
    float *s = malloc(n * sizeof *s);
    double auc;
    kiln_err_t err;
    for (int round = 0; round < 3; round++) {
        for (size_t i = 0; i < n; i++) {
            t[i] = uniform01() < 0.3;
            double v = uniform01() + 0.4 * t[i];
            /* round 0 continuous; 1: 8 levels, many ties across classes;
             * 2: a few distinct values, one tie group holding everyone */
            s[i] = round == 0 ? (float)v : round == 1 ? (float)floor(v * 8) : (float)(i % 3 == 0);
        }
        assert_int_equal(km_metrics_roc_auc(t, s, n, &auc, &err), 0);
        double want = auc_oracle(t, s, n);
        if (!(fabs(auc - want) <= TOL)) {
            print_error("round %d: auc %.17g, sklearn %.17g\n", round, auc, want);
            fail();
        }
    }
    /* by hand: perfect, reversed, all tied */
    const int32_t y[4] = {0, 1, 0, 1};
    const float up[4] = {0.1f, 0.9f, 0.2f, 0.8f}, down[4] = {0.9f, 0.1f, 0.8f, 0.2f},
                flat[4] = {3, 3, 3, 3};
    assert_int_equal(km_metrics_roc_auc(y, up, 4, &auc, &err), 0);
    assert_true(auc == 1.0);
    assert_int_equal(km_metrics_roc_auc(y, down, 4, &auc, &err), 0);
    assert_true(auc == 0.0);
    assert_int_equal(km_metrics_roc_auc(y, flat, 4, &auc, &err), 0);
    assert_true(auc == 0.5);
    /* deterministic: the input order does not matter */
    const int32_t y2[4] = {1, 1, 0, 0};
    const float up2[4] = {0.9f, 0.8f, 0.2f, 0.1f};
    double auc2;
    assert_int_equal(km_metrics_roc_auc(y2, up2, 4, &auc2, &err), 0);
    assert_true(auc2 == 1.0);
    free(t);
    free(s);
}

static void test_regression_vs_sklearn(void **state)
{
    (void)state;
    const size_t n = 5000;
    float *t = malloc(n * sizeof *t), *p = malloc(n * sizeof *p);
    double *in = malloc(2 * n * sizeof *in), *want;
    size_t n_want;
    for (size_t i = 0; i < n; i++) {
        t[i] = (float)(500 * uniform01());
        p[i] = (float)(t[i] + 40 * (uniform01() - 0.45));
        in[2 * i] = t[i];
        in[2 * i + 1] = p[i];
    }
    assert_int_equal(oracle_run("mb_regression", "{}", in, n, 2, &want, &n_want), 0);
    assert_int_equal(n_want, 2);
    double rmse, mae;
    kiln_err_t err;
    assert_int_equal(km_metrics_rmse(t, p, n, &rmse, &err), 0);
    assert_int_equal(km_metrics_mae(t, p, n, &mae, &err), 0);
    assert_true(fabs(rmse - want[0]) <= TOL * want[0]);
    assert_true(fabs(mae - want[1]) <= TOL * want[1]);
    assert_int_equal(km_metrics_rmse(t, t, n, &rmse, &err), 0);
    assert_true(rmse == 0.0);
    const float a[2] = {1, 2}, b[2] = {4, -2};
    assert_int_equal(km_metrics_rmse(a, b, 2, &rmse, &err), 0);
    assert_true(rmse == sqrt(12.5));
    assert_int_equal(km_metrics_mae(a, b, 2, &mae, &err), 0);
    assert_true(mae == 3.5);
    free(want);
    free(in);
    free(t);
    free(p);
}

static void test_bad_input(void **state)
{
    (void)state;
    int32_t t[4] = {0, 1, 2, 1}, p[4] = {0, 1, 1, 1};
    double v = 42;
    uint64_t cm[9];
    kiln_err_t err;
    /* n = 0 */
    assert_int_equal(km_metrics_accuracy(t, p, 0, 3, &v, &err), KILN_EINVAL);
    assert_int_equal(km_metrics_f1_macro(t, p, 0, 3, &v, &err), KILN_EINVAL);
    assert_int_equal(km_metrics_confusion(t, p, 0, 3, cm, &err), KILN_EINVAL);
    assert_int_equal(km_metrics_roc_auc(t, (float[1]){0}, 0, &v, &err), KILN_EINVAL);
    assert_int_equal(km_metrics_rmse((float[1]){0}, (float[1]){0}, 0, &v, &err), KILN_EINVAL);
    assert_int_equal(km_metrics_mae((float[1]){0}, (float[1]){0}, 0, &v, &err), KILN_EINVAL);
    assert_true(v == 42);
    /* labels outside [0, n_classes), n_classes < 2, NULLs */
    assert_int_equal(km_metrics_accuracy(t, p, 4, 2, &v, &err), KILN_EINVAL);
    assert_non_null(strstr(err.msg, "row 2 has true class 2"));
    p[3] = -1;
    assert_int_equal(km_metrics_f1_macro(t, p, 4, 3, &v, &err), KILN_EINVAL);
    assert_non_null(strstr(err.msg, "predicted class -1"));
    assert_int_equal(km_metrics_confusion(t, p, 4, 3, cm, &err), KILN_EINVAL);
    p[3] = 1;
    assert_int_equal(km_metrics_accuracy(t, p, 4, 1, &v, &err), KILN_EINVAL);
    assert_int_equal(km_metrics_accuracy(NULL, p, 4, 3, &v, &err), KILN_EINVAL);
    assert_int_equal(km_metrics_accuracy(t, p, 4, 3, NULL, &err), KILN_EINVAL);
    assert_int_equal(km_metrics_f1_macro(t, p, 4, 3, NULL, &err), KILN_EINVAL);
    assert_int_equal(km_metrics_confusion(t, p, 4, 3, NULL, &err), KILN_EINVAL);
    assert_int_equal(km_metrics_confusion(t, p, 4, 3, cm, &err), 0);
    assert_true(cm[0] == 1 && cm[4] == 2 && cm[7] == 1 && cm[2 * 3 + 2] == 0);
    /* AUC: one class only, a non-binary label, NaN/Inf scores */
    const int32_t ones[3] = {1, 1, 1}, three[3] = {0, 1, 3}, bin[3] = {0, 1, 0};
    const float s[3] = {0.1f, 0.5f, 0.9f};
    assert_int_equal(km_metrics_roc_auc(ones, s, 3, &v, &err), KILN_EINVAL);
    assert_non_null(strstr(err.msg, "both classes"));
    assert_int_equal(km_metrics_roc_auc(three, s, 3, &v, &err), KILN_EINVAL);
    assert_int_equal(km_metrics_roc_auc(bin, (float[3]){0, NAN, 1}, 3, &v, &err),
                     KILN_ENONFINITE);
    assert_int_equal(km_metrics_roc_auc(bin, (float[3]){0, INFINITY, 1}, 3, &v, &err),
                     KILN_ENONFINITE);
    assert_int_equal(km_metrics_roc_auc(bin, NULL, 3, &v, &err), KILN_EINVAL);
    /* regression: NaN on either side, NULLs */
    const float good[2] = {1, 2}, nan2[2] = {1, NAN};
    assert_int_equal(km_metrics_rmse(good, nan2, 2, &v, &err), KILN_ENONFINITE);
    assert_string_equal(err.where, "y_pred");
    assert_int_equal(km_metrics_mae(nan2, good, 2, &v, &err), KILN_ENONFINITE);
    assert_string_equal(err.where, "y_true");
    assert_int_equal(km_metrics_rmse(good, NULL, 2, &v, &err), KILN_EINVAL);
    assert_int_equal(km_metrics_mae(good, good, 2, NULL, &err), KILN_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_classification_vs_sklearn),
        cmocka_unit_test(test_f1_by_hand),
        cmocka_unit_test(test_auc_vs_sklearn),
        cmocka_unit_test(test_regression_vs_sklearn),
        cmocka_unit_test(test_bad_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
