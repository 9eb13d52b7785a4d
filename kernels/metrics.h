/* metrics.h - model quality figures the train job records and validation
 * gates on, each defined as scikit-learn 1.5 defines it (sklearn.metrics).
 * Labels are class ids in [0, n_classes) (km_data_t.y); scores and
 * regression values are float32 as models write them, summed in double.
 * Every function returns 0 or a negative KILN_E... code: KILN_EINVAL for
 * n == 0, n_classes < 2, a label outside [0, n_classes) (rows with the
 * "unknown" label -1 must be dropped before) or NULL arrays;
 * KILN_ENONFINITE for NaN/Inf in values or scores. */
#ifndef KILN_KERNELS_METRICS_H
#define KILN_KERNELS_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "../core/kiln_err.h"

/* Fraction of rows with y_pred == y_true (accuracy_score). */
int km_metrics_accuracy(const int32_t *y_true, const int32_t *y_pred, size_t n,
                        int n_classes, double *accuracy, kiln_err_t *err);

/* cm[t * n_classes + p] = rows with true class t predicted as p (row = true,
 * confusion_matrix(labels=range(n_classes))).  cm holds n_classes^2. */
int km_metrics_confusion(const int32_t *y_true, const int32_t *y_pred, size_t n,
                         int n_classes, uint64_t *cm, kiln_err_t *err);

/* Macro F1 = mean over classes c of 2 tp_c / (2 tp_c + fp_c + fn_c), as
 * f1_score(average="macro"): the classes averaged are those that occur in
 * y_true or y_pred (sklearn's unique_labels), so a class with no true and no
 * predicted row is excluded; a class only predicted, or only true, has
 * F1 = 0 (sklearn's zero_division default gives precision or recall 0 and
 * the F1 denominator is never 0 for such a class). */
int km_metrics_f1_macro(const int32_t *y_true, const int32_t *y_pred, size_t n,
                        int n_classes, double *f1, kiln_err_t *err);

/* Binary ROC AUC from scores (roc_auc_score): y_true in {0, 1}, a higher
 * score meaning class 1.  Tied scores count one half, as the trapezoids of
 * sklearn's ROC curve do (the Mann-Whitney U with average ranks); computed
 * from exact integer pair counts.  KILN_EINVAL if every row has one class. */
int km_metrics_roc_auc(const int32_t *y_true, const float *scores, size_t n, double *auc,
                       kiln_err_t *err);

/* sqrt(mean((y_true - y_pred)^2)) and mean(|y_true - y_pred|)
 * (root_mean_squared_error, mean_absolute_error). */
int km_metrics_rmse(const float *y_true, const float *y_pred, size_t n, double *rmse,
                    kiln_err_t *err);
int km_metrics_mae(const float *y_true, const float *y_pred, size_t n, double *mae,
                   kiln_err_t *err);

#endif
