/* metrics.c - accuracy, confusion matrix, macro F1, ROC AUC, RMSE and MAE
 * (kernels/metrics.h), with sklearn.metrics' definitions.  Counts are
 * integers, so every classification figure is exact up to one division. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../../core/kiln_alloc.h"
#include "../metrics.h"

static int check_labels(const int32_t *y_true, const int32_t *y_pred, size_t n, int n_classes,
                        const char *what, kiln_err_t *err)
{
    if (n == 0)
        return kiln_err_at(err, KILN_EINVAL, "n", "%s: no rows (n = 0)", what);
    if (!y_true || !y_pred)
        return kiln_err_set(err, KILN_EINVAL, "%s: y_true or y_pred is NULL", what);
    if (n_classes < 2)
        return kiln_err_at(err, KILN_EINVAL, "n_classes", "%s: n_classes %d, need at least 2",
                           what, n_classes);
    for (size_t i = 0; i < n; i++) {
        if (y_true[i] < 0 || y_true[i] >= n_classes)
            return kiln_err_at(err, KILN_EINVAL, "y_true",
                               "%s: row %zu has true class %d, outside [0, %d)", what, i,
                               (int)y_true[i], n_classes);
        if (y_pred[i] < 0 || y_pred[i] >= n_classes)
            return kiln_err_at(err, KILN_EINVAL, "y_pred",
                               "%s: row %zu has predicted class %d, outside [0, %d)", what, i,
                               (int)y_pred[i], n_classes);
    }
    return 0;
}

int km_metrics_accuracy(const int32_t *y_true, const int32_t *y_pred, size_t n,
                        int n_classes, double *accuracy, kiln_err_t *err)
{
    int rc = check_labels(y_true, y_pred, n, n_classes, "accuracy", err);
    if (rc < 0)
        return rc;
    if (!accuracy)
        return kiln_err_set(err, KILN_EINVAL, "accuracy: output is NULL");
    size_t hits = 0;
    for (size_t i = 0; i < n; i++)
        hits += y_true[i] == y_pred[i];
    *accuracy = (double)hits / (double)n;
    return 0;
}

int km_metrics_confusion(const int32_t *y_true, const int32_t *y_pred, size_t n,
                         int n_classes, uint64_t *cm, kiln_err_t *err)
{
    int rc = check_labels(y_true, y_pred, n, n_classes, "confusion", err);
    if (rc < 0)
        return rc;
    if (!cm)
        return kiln_err_set(err, KILN_EINVAL, "confusion: cm is NULL");
    const size_t k = (size_t)n_classes;
    memset(cm, 0, k * k * sizeof *cm);
    for (size_t i = 0; i < n; i++)
        cm[(size_t)y_true[i] * k + (size_t)y_pred[i]]++;
    return 0;
}

int km_metrics_f1_macro(const int32_t *y_true, const int32_t *y_pred, size_t n,
                        int n_classes, double *f1, kiln_err_t *err)
{
    int rc = check_labels(y_true, y_pred, n, n_classes, "f1_macro", err);
    if (rc < 0)
        return rc;
    if (!f1)
        return kiln_err_set(err, KILN_EINVAL, "f1_macro: output is NULL");
    /* per class: tp, times true, times predicted */
    const size_t k = (size_t)n_classes;
    uint64_t *counts = kiln_calloc(3 * k, sizeof *counts);
    if (!counts)
        return kiln_err_set(err, KILN_ENOMEM, "f1_macro: no memory for %d classes", n_classes);
    uint64_t *tp = counts, *n_true = counts + k, *n_pred = counts + 2 * k;
    for (size_t i = 0; i < n; i++) {
        n_true[y_true[i]]++;
        n_pred[y_pred[i]]++;
        tp[y_true[i]] += y_true[i] == y_pred[i];
    }
    double total = 0;
    size_t present = 0;
    for (size_t c = 0; c < k; c++) {
        uint64_t denom = n_true[c] + n_pred[c];     /* = 2 tp + fp + fn */
        if (denom == 0)
            continue;                               /* not in unique_labels */
        total += 2.0 * (double)tp[c] / (double)denom;
        present++;
    }
    kiln_free(counts);
    *f1 = total / (double)present;                  /* n > 0: present >= 1 */
    return 0;
}

typedef struct {
    float   score;
    int32_t label;
} scored_t;

static int cmp_scored(const void *a, const void *b)
{
    float x = ((const scored_t *)a)->score, y = ((const scored_t *)b)->score;
    return (x > y) - (x < y);
}

int km_metrics_roc_auc(const int32_t *y_true, const float *scores, size_t n, double *auc,
                       kiln_err_t *err)
{
    if (n == 0)
        return kiln_err_at(err, KILN_EINVAL, "n", "roc_auc: no rows (n = 0)");
    if (!y_true || !scores || !auc)
        return kiln_err_set(err, KILN_EINVAL, "roc_auc: y_true, scores or auc is NULL");
    uint64_t n_pos = 0;
    for (size_t i = 0; i < n; i++) {
        if (y_true[i] != 0 && y_true[i] != 1)
            return kiln_err_at(err, KILN_EINVAL, "y_true",
                               "roc_auc: row %zu has class %d, binary AUC needs 0 or 1", i,
                               (int)y_true[i]);
        if (!isfinite(scores[i]))
            return kiln_err_at(err, KILN_ENONFINITE, "scores", "roc_auc: row %zu score is %g",
                               i, (double)scores[i]);
        n_pos += (uint64_t)y_true[i];
    }
    const uint64_t n_neg = (uint64_t)n - n_pos;
    if (n_pos == 0 || n_neg == 0)
        return kiln_err_at(err, KILN_EINVAL, "y_true",
                           "roc_auc: all %zu rows are class %d; AUC needs both classes", n,
                           n_pos ? 1 : 0);
    scored_t *rows = kiln_malloc(n * sizeof *rows);
    if (!rows)
        return kiln_err_set(err, KILN_ENOMEM, "roc_auc: no memory for %zu rows", n);
    for (size_t i = 0; i < n; i++) {
        rows[i].score = scores[i];
        rows[i].label = y_true[i];
    }
    qsort(rows, n, sizeof *rows, cmp_scored);
    /* twice the number of (positive, negative) pairs ordered right, a tie
     * counting 1 of 2: exact in 64 bits for n < 2^31 */
    uint64_t twice_u = 0, neg_below = 0;
    for (size_t i = 0; i < n;) {
        size_t j = i;
        uint64_t pos = 0, neg = 0;
        while (j < n && rows[j].score == rows[i].score) {
            pos += (uint64_t)rows[j].label;
            neg += (uint64_t)(1 - rows[j].label);
            j++;
        }
        twice_u += pos * (2 * neg_below + neg);
        neg_below += neg;
        i = j;
    }
    kiln_free(rows);
    *auc = (double)twice_u / (2.0 * (double)n_pos * (double)n_neg);
    return 0;
}

static int check_values(const float *y_true, const float *y_pred, size_t n, const char *what,
                        kiln_err_t *err)
{
    if (n == 0)
        return kiln_err_at(err, KILN_EINVAL, "n", "%s: no rows (n = 0)", what);
    if (!y_true || !y_pred)
        return kiln_err_set(err, KILN_EINVAL, "%s: y_true or y_pred is NULL", what);
    for (size_t i = 0; i < n; i++)
        if (!isfinite(y_true[i]) || !isfinite(y_pred[i]))
            return kiln_err_at(err, KILN_ENONFINITE, isfinite(y_true[i]) ? "y_pred" : "y_true",
                               "%s: row %zu has %g (true) and %g (predicted)", what, i,
                               (double)y_true[i], (double)y_pred[i]);
    return 0;
}

int km_metrics_rmse(const float *y_true, const float *y_pred, size_t n, double *rmse,
                    kiln_err_t *err)
{
    int rc = check_values(y_true, y_pred, n, "rmse", err);
    if (rc < 0)
        return rc;
    if (!rmse)
        return kiln_err_set(err, KILN_EINVAL, "rmse: output is NULL");
    double sum = 0;
    for (size_t i = 0; i < n; i++) {
        double e = (double)y_true[i] - (double)y_pred[i];
        sum += e * e;
    }
    *rmse = sqrt(sum / (double)n);
    return 0;
}

int km_metrics_mae(const float *y_true, const float *y_pred, size_t n, double *mae,
                   kiln_err_t *err)
{
    int rc = check_values(y_true, y_pred, n, "mae", err);
    if (rc < 0)
        return rc;
    if (!mae)
        return kiln_err_set(err, KILN_EINVAL, "mae: output is NULL");
    double sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += fabs((double)y_true[i] - (double)y_pred[i]);
    *mae = sum / (double)n;
    return 0;
}
