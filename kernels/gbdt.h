/* gbdt.h - histogram gradient-boosted decision trees, as LightGBM grows them
 * (Ke et al., "LightGBM: A Highly Efficient Gradient Boosting Decision Tree",
 * NIPS 2017): quantile-binned features, leaf-wise growth, histogram
 * subtraction.  Binary logloss, multiclass softmax (one tree per class per
 * round) and L2 regression.  The shared rules of models.h apply.
 *
 * Differences from LightGBM worth knowing: no missing-value handling (fit
 * and predict refuse NaN/Inf and name the row); bagging, when
 * bagging_fraction < 1, redraws the rows every round (LightGBM's
 * bagging_freq = 1) and keeps each row with that probability; bin edges are
 * cut greedily at quantiles of the sample, as LightGBM's GreedyFindBin, but
 * without its special zero bin. */
#ifndef KILN_KERNELS_GBDT_H
#define KILN_KERNELS_GBDT_H

#include <stddef.h>
#include <stdint.h>

#include "models.h"

typedef struct {
    int      n_rounds;              /* boosting rounds (trees per class) [100] */
    int      max_leaves;            /* leaves per tree, 2..65536 [31] */
    int      max_depth;             /* -1: no limit, else >= 1 [-1] */
    int      min_data_in_leaf;      /* rows per leaf, >= 1 [20] */
    double   min_sum_hessian_in_leaf; /* >= 0 [1e-3] */
    double   lambda_l2;             /* L2 on leaf values, >= 0 [0] */
    double   learning_rate;         /* shrinkage, (0, 1000] [0.1] */
    int      max_bins;              /* bins per feature, 2..255 [255] */
    size_t   bin_sample_rows;       /* rows sampled for bin edges, over all
                                       ranks (LightGBM's bin_construct_sample_cnt) [200000] */
    double   bagging_fraction;      /* (0, 1]; < 1 redraws rows each round [1] */
    double   feature_fraction;      /* (0, 1]; features drawn per tree [1] */
    int      early_stopping_rounds; /* 0: off; needs a validation set [0] */
    int      n_threads;             /* 1..64; threads own whole features [2] */
    uint64_t seed;                  /* bagging and feature draws [1] */
} km_gbdt_params_t;

typedef struct km_gbdt km_gbdt_t;

km_gbdt_params_t km_gbdt_defaults(void);

/* Trains on train (n_classes == 2: binary logloss; > 2: softmax; 0: L2 on
 * target).  valid (NULL ok) is scored after every round; with
 * early_stopping_rounds > 0 training stops once its loss has not improved
 * for that many rounds and the model keeps the rounds up to the best one.
 *
 * Data-parallel (reduce != NULL, every rank with its own rows): bin edges
 * come from the union of per-rank samples (each rank contributes up to
 * ceil(bin_sample_rows / n_ranks) rows, summed into one buffer where the
 * other ranks put zeros), so every rank bins with the same edges; each
 * node's gradient/hessian/count histogram is summed through reduce->sum
 * before split finding (LightGBM's data-parallel mode), so the ranks grow
 * the same trees.  Either every rank passes valid or none does.  A rank
 * whose data is refused still takes part in the first sum, so all ranks
 * fail together.
 *
 * On success *out is a new model the caller owns (km_gbdt_free). */
int km_gbdt_fit(const km_data_t *train, const km_data_t *valid, const km_gbdt_params_t *p,
                const km_reduce_t *reduce, km_gbdt_t **out, kiln_err_t *err);

/* scores [n x n_outputs]: class probabilities (n_classes columns, 2 for a
 * binary model) or the regression value; pred (NULL ok): argmax class
 * (all 0 for regression).  x is n x n_features row-major. */
int km_gbdt_predict(const km_gbdt_t *m, const float *x, size_t n, float *scores,
                    int32_t *pred, kiln_err_t *err);

size_t km_gbdt_n_outputs(const km_gbdt_t *m);
size_t km_gbdt_n_trees(const km_gbdt_t *m);     /* rounds x trees per round */
size_t km_gbdt_n_features(const km_gbdt_t *m);

/* Appends the model's versioned little-endian bytes to b. */
int km_gbdt_save(const km_gbdt_t *m, km_buf_t *b, kiln_err_t *err);
/* Parses bytes[0..len); anything malformed is KILN_EFORMAT.  *out: new model. */
int km_gbdt_load(const void *bytes, size_t len, km_gbdt_t **out, kiln_err_t *err);
void km_gbdt_free(km_gbdt_t **m);

#endif
