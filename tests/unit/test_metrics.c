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

/* The cases of one test, checked in one oracle call (a python start with
 * sklearn costs about a second). */
typedef struct {
    double *rows;                /* case, y_true, y_pred */
    size_t  n_rows;
    int     n_classes[8];
    int     n_cases;
    double  got[8][2];           /* accuracy, f1 */
    uint64_t *cm[8];
} cases_t;

static void add_case(cases_t *c, const int32_t *t, const int32_t *p, size_t n, int k)
{
    kiln_err_t err;
    int at = c->n_cases++;
    assert_true(at < 8);
    c->rows = realloc(c->rows, (c->n_rows + n) * 3 * sizeof *c->rows);
    for (size_t i = 0; i < n; i++) {
        double *r = c->rows + 3 * (c->n_rows + i);
        r[0] = at;
        r[1] = t[i];
        r[2] = p[i];
    }
    c->n_rows += n;
    c->n_classes[at] = k;
    c->cm[at] = malloc((size_t)(k * k) * sizeof *c->cm[at]);
    assert_int_equal(km_metrics_accuracy(t, p, n, k, &c->got[at][0], &err), 0);
    assert_int_equal(km_metrics_f1_macro(t, p, n, k, &c->got[at][1], &err), 0);
    assert_int_equal(km_metrics_confusion(t, p, n, k, c->cm[at], &err), 0);
}

static void check_cases(cases_t *c)
{
    char params[256] = "{\"n_classes\": [";
    size_t expect = 0;
    for (int i = 0; i < c->n_cases; i++) {
        snprintf(params + strlen(params), sizeof params - strlen(params), "%s%d",
                 i ? ", " : "", c->n_classes[i]);
        expect += 2 + (size_t)(c->n_classes[i] * c->n_classes[i]);
    }
    strcat(params, "]}");
    double *want;
    size_t n_want;
    assert_int_equal(oracle_run("mb_classification", params, c->rows, c->n_rows, 3, &want,
                                &n_want), 0);
    assert_int_equal(n_want, expect);
    const double *w = want;
    for (int i = 0; i < c->n_cases; i++) {
        int k = c->n_classes[i];
        if (!(fabs(c->got[i][0] - w[0]) <= TOL && fabs(c->got[i][1] - w[1]) <= TOL)) {
            print_error("case %d: accuracy %.17g (sklearn %.17g), f1 %.17g (sklearn %.17g)\n",
                        i, c->got[i][0], w[0], c->got[i][1], w[1]);
            fail();
        }
        for (int j = 0; j < k * k; j++)
            assert_true((double)c->cm[i][j] == w[2 + j]);
        w += 2 + k * k;
        free(c->cm[i]);
    }
    free(want);
    free(c->rows);
}

static void test_classification_vs_sklearn(void **state)
{
    (void)state;
    const size_t n = 2000;
    int32_t *t = malloc(n * sizeof *t), *p = malloc(n * sizeof *p);
    cases_t cases = {0};
    /* 5 classes, imbalanced, predictions right 60% of the time */
    for (size_t i = 0; i < n; i++) {
        double u = uniform01();
        t[i] = u < 0.5 ? 0 : u < 0.75 ? 1 : u < 0.9 ? 2 : u < 0.98 ? 3 : 4;
        p[i] = uniform01() < 0.6 ? t[i] : (int32_t)(uniform01() * 5);
    }
    add_case(&cases, t, p, n, 5);
    add_case(&cases, t, p, n, 8);         /* classes 5..7 absent: excluded */
    /* class 4 only predicted, class 3 only true: both count with F1 0 */
    for (size_t i = 0; i < n; i++) {
        if (t[i] == 4)
            t[i] = 0;
        if (p[i] == 3)
            p[i] = 1;
    }
    add_case(&cases, t, p, n, 6);
    for (size_t i = 0; i < n; i++)
        t[i] = p[i] = (int32_t)(uniform01() * 2);
    add_case(&cases, t, p, n, 2);         /* all right */
    add_case(&cases, t, p, 1, 3);         /* one row */
    check_cases(&cases);
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

static void test_auc_vs_sklearn(void **state)
{
    (void)state;
    const size_t n = 3000;
    int32_t *t = malloc(n * sizeof *t);
    float *s = malloc(n * sizeof *s);
    double *in = malloc(3 * 3 * n * sizeof *in), got[3], auc, *want;
    size_t n_want;
    kiln_err_t err;
    for (int round = 0; round < 3; round++) {
        for (size_t i = 0; i < n; i++) {
            t[i] = uniform01() < 0.3;
            double v = uniform01() + 0.4 * t[i];
            /* round 0 continuous; 1: 8 levels, many ties across classes;
             * 2: two values, each tie group holding both classes */
            s[i] = round == 0 ? (float)v : round == 1 ? (float)floor(v * 8) : (float)(i % 3 == 0);
            double *r = in + 3 * ((size_t)round * n + i);
            r[0] = round;
            r[1] = t[i];
            r[2] = s[i];
        }
        assert_int_equal(km_metrics_roc_auc(t, s, n, &got[round], &err), 0);
    }
    assert_int_equal(oracle_run("mb_roc_auc", "{}", in, 3 * n, 3, &want, &n_want), 0);
    assert_int_equal(n_want, 3);
    for (int round = 0; round < 3; round++)
        if (!(fabs(got[round] - want[round]) <= TOL)) {
            print_error("round %d: auc %.17g, sklearn %.17g\n", round, got[round], want[round]);
            fail();
        }
    free(want);
    free(in);
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
