/* drift_run_int.h - what the drift task's files share and nothing outside
 * them may use: the datasets (drift_columns.c), the columns compared, the
 * accumulators (drift_accum.c) and the model quality (drift_quality.c), all
 * driven by jb_drift_run (drift_run.c). */
#ifndef KILN_JOBS_DRIFT_RUN_INT_H
#define KILN_JOBS_DRIFT_RUN_INT_H

#include <stddef.h>
#include <stdint.h>

#include "../kernels/drift.h"
#include "../storage/features.h"
#include "../storage/predictions.h"
#include "drift_job.h"
#include "modelfile.h"

#define CLASS_NAMES_MAX 512

enum { SRC_LABEL = -1, SRC_PREDICTED = -2 };

/* One dataset, features or predictions, read the same way. */
typedef struct {
    const char *path;
    int is_pred;
    st_features_t *f;
    st_predictions_t *p;
    size_t n_rows, n_num;
    const char *const *num_names;
    int has_label, has_pred;
    size_t n_classes;              /* label names (features) / class names (predictions) */
    const char *const *classes;
    const char *content_sha256;
} jb_drift_src_t;

/* One column compared: where each side has it, and how it is judged. */
typedef struct {
    const char     *name;
    kn_drift_kind_t kind;
    int             ref_idx, cur_idx;   /* numeric index, or SRC_LABEL / SRC_PREDICTED */
    kn_drift_method_t method;
    double          threshold;
    int32_t         ref_map[CLASS_NAMES_MAX / 2], cur_map[CLASS_NAMES_MAX / 2];
    int             identity;           /* class ids compared as they are */
} jb_drift_column_t;

/* The accumulators: the whole dataset and each asset. */
typedef struct {
    int32_t id;
    int     own_ref;                 /* the reference has rows of this asset */
    size_t  n_ref, n_cur;
    kn_drift_col_t **cols;
} jb_drift_asset_t;

typedef struct {
    const jb_drift_spec_t *t;
    jb_drift_column_t *cols;
    size_t  n_cols, n_num;           /* numeric columns come first */
    kn_drift_col_t **whole;
    jb_drift_asset_t *assets;
    size_t  n_assets, n_assets_left_out;
    /* chunk scratch */
    size_t  step;
    float  *rows, *colbuf;
    const float **colptr;
    int32_t *asset, *label, *pred, *classbuf;
    size_t  *sel;
    /* quality */
    jb_modelfile_t model;
    int     have_model, quality_on;
    float  *scores;
    int32_t *model_pred, *label_to_model;
    size_t   n_model_classes;
    uint64_t *confusion;             /* n_model_classes^2 */
    char     quality_note[300];
} jb_drift_acc_t;

/* ---- drift_columns.c ---------------------------------------------------- */

/* Opens a features or predictions file; errors name field ("reference",
 * "current", "reference.model"). */
int jb_drift_src_open(jb_drift_src_t *s, const char *path, const char *field, kiln_err_t *err);
void jb_drift_src_close(jb_drift_src_t *s);
/* Rows [row0, row0 + k): numeric values row-major (k x n_num), asset,
 * label (-1 where absent) and predicted class (predictions only). */
int jb_drift_src_read(jb_drift_src_t *s, size_t row0, size_t k, float *rows, int32_t *asset,
                      int32_t *label, int32_t *pred, kiln_err_t *err);
/* The columns in both datasets, numeric first, with the spec's overrides:
 * *out kiln_malloc'd (caller frees).  KILN_ESCHEMA when two feature sets
 * differ or nothing is in common, KILN_ESPEC for a bad override. */
int jb_drift_plan_columns(const jb_drift_spec_t *t, const jb_drift_src_t *ref,
                          const jb_drift_src_t *cur, jb_drift_column_t **out, size_t *n_out,
                          kiln_err_t *err);

/* ---- drift_accum.c ------------------------------------------------------ */

/* One kn_drift column per compared column: *out owned, jb_drift_free_cols. */
int jb_drift_new_cols(jb_drift_acc_t *a, kn_drift_col_t ***out, kiln_err_t *err);
void jb_drift_free_cols(jb_drift_acc_t *a, kn_drift_col_t ***c);
/* The current set's assets (the JB_DRIFT_ASSETS_MAX lowest ids) and which
 * of them the reference has: a pass over the asset columns only. */
int jb_drift_find_assets(jb_drift_acc_t *a, jb_drift_src_t *ref, jb_drift_src_t *cur,
                         kiln_err_t *err);
/* One side's rows, chunk by chunk, into the whole-set and per-asset
 * columns (and, for the current side, the model quality). */
int jb_drift_pass(jb_drift_acc_t *a, jb_drift_src_t *s, kn_drift_side_t side, kiln_err_t *err);

/* ---- drift_quality.c ---------------------------------------------------- */

/* Decides whether quality can be measured (else a->quality_note says why)
 * and allocates what it needs; reads the model when there is one. */
int jb_drift_quality_open(jb_drift_acc_t *a, const jb_drift_src_t *cur, kiln_err_t *err);
/* Counts a chunk of k current rows into the confusion matrix. */
int jb_drift_quality_feed(jb_drift_acc_t *a, const jb_drift_src_t *cur, size_t k,
                          kiln_err_t *err);
/* Accuracy and macro F1 (km_metrics_f1_macro's rule: the classes that occur
 * in y_true or y_pred) from the confusion counts. */
void jb_drift_quality_finish(const jb_drift_acc_t *a, double *acc, double *f1);

#endif
