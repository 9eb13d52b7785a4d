/* model_gbdt_export.h - a gbdt .kmodel as LightGBM's model text (version v4,
 * what lightgbm.Booster(model_file=...) and LGBM_BoosterCreateFromModelfile
 * load), so LightGBM's own predictor scores kiln's very trees.
 *
 * What the text holds, and why it scores as kiln does:
 *   - the scaler is folded into the thresholds: kiln splits on z = float((x -
 *     mean) / scale) with z <= t going left; z is monotone in x, so each t
 *     becomes the largest float r with z(r) <= t, and LightGBM's x <= r picks
 *     the same child for every finite float x (found by bisection over the
 *     floats through km_scaler_transform itself, not a copy of its formula);
 *   - kiln's initial score per class is added to the leaves of that class's
 *     first tree (LightGBM's boost_from_average does the same); a model
 *     without trees gets one single-leaf tree per class holding it.  Leaf
 *     values already carry the learning rate (shrinkage= says which);
 *   - objective: "binary sigmoid:1" (two classes), "multiclass num_class:K"
 *     (softmax, K trees a round) or "regression" (a target);
 *   - decision_type 2: numerical, missing type None (kiln refuses NaN/Inf).
 * Raw scores are then the same sums in the same order, bit for bit; the
 * probabilities differ only by kiln's rounding to float32.
 *
 * Not exported, because kiln does not keep them: split gains, leaf and node
 * counts and hessian weights (written as 0: LightGBM's predict ignores them,
 * but its pred_contrib/SHAP output is meaningless) and feature ranges
 * (feature_infos "none").  LightGBM reads |x| <= 1e-35 as 0 before walking
 * the trees (kZeroThreshold); a kiln threshold between 0 and such a tiny x
 * would be taken differently (never seen in features). */
#ifndef KILN_JOBS_MODEL_GBDT_EXPORT_H
#define KILN_JOBS_MODEL_GBDT_EXPORT_H

#include <stddef.h>

#include "../kernels/models.h"
#include "modelfile.h"

/* What an export wrote, for the CLI's summary. */
typedef struct {
    size_t n_features;
    int    n_classes;        /* 0: regression */
    size_t n_trees;          /* trees in the text (rounds x trees per round) */
    size_t max_leaves;       /* leaves of the largest tree */
    size_t n_bytes;          /* length of the text */
} jb_gbdt_export_info_t;

/* Appends mf's model as LightGBM model text to out (not NUL-terminated).
 * A model that is not a gbdt is KILN_EUNSUPPORTED naming its kind; a tree
 * that is not a tree (a node with two parents) is KILN_EFORMAT.  info (NULL
 * ok) is filled on success.  mf is borrowed. */
int jb_gbdt_export_lightgbm(const jb_modelfile_t *mf, km_buf_t *out, jb_gbdt_export_info_t *info,
                            kiln_err_t *err);

/* Reads model_path, exports it and writes the text to out_path (through
 * OUT.tmp.PID and a rename, like every kiln output).  Errors name the file. */
int jb_gbdt_export_lightgbm_file(const char *model_path, const char *out_path,
                                 jb_gbdt_export_info_t *info, kiln_err_t *err);

#endif
