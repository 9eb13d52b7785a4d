/* mlp.h - a multilayer perceptron (kernels/cpu/mlp*.c): 1 to 3 ReLU hidden
 * layers, Adam on mini-batches, softmax + cross-entropy for a classifier and
 * squared error for a regressor, with scikit-learn's MLPClassifier /
 * MLPRegressor (solver="adam") as the reference for every default and formula.
 * Follows the rules of models.h (determinism, save/load, data-parallel fit).
 *
 * Numbers: weights, activations and products are float32; each step's
 * gradient is summed in float32 within a lane (below) and in double across
 * lanes and ranks; Adam's moments are double.
 *
 * Threads: a step's rows are cut into KM_MLP_LANES lanes by position, each
 * lane's gradient is computed by one thread, and the lanes are added in lane
 * order; so the model bytes do not depend on `threads` (which is capped at
 * KM_MLP_LANES). */
#ifndef KILN_KERNELS_MLP_H
#define KILN_KERNELS_MLP_H

#include <stddef.h>
#include <stdint.h>

#include "models.h"

#define KM_MLP_MAX_HIDDEN  3
#define KM_MLP_MAX_WIDTH   4096        /* units per hidden layer */
#define KM_MLP_MAX_INPUTS  (1 << 20)   /* d */
#define KM_MLP_MAX_CLASSES 65536
#define KM_MLP_LANES       8

typedef struct km_mlp km_mlp_t;

typedef struct {
    int      n_hidden;        /* hidden layers, 1..3 */
    int      hidden[KM_MLP_MAX_HIDDEN];   /* units of each, 1..4096 */
    double   lr;              /* Adam's learning rate (sklearn learning_rate_init) */
    double   beta1, beta2;    /* in [0, 1) */
    double   eps;             /* > 0 */
    double   l2;              /* sklearn alpha: 0.5*l2*|W|^2 per batch, divided by its rows */
    int      batch;           /* rows per step over all ranks; min(batch, rows) is used */
    int      epochs;          /* passes over the data (sklearn max_iter; no early stop) */
    int      threads;         /* 1..64; more than KM_MLP_LANES run as KM_MLP_LANES */
    uint64_t seed;            /* Glorot init, then each epoch's shuffle */
} km_mlp_params_t;

/* scikit-learn's defaults: one hidden layer of 100, lr 1e-3, betas 0.9 and
 * 0.999, eps 1e-8, alpha 1e-4, batch 200, 200 epochs; 1 thread, seed 0. */
km_mlp_params_t km_mlp_defaults(void);

/* Trains on data (a classifier when data->n_classes >= 2, a regressor on
 * data->target when n_classes == 0).  *out: a new model the caller frees with
 * km_mlp_free.  With reduce (see models.h) every rank passes its own rows and
 * the same params; a step takes about batch*n_rank/n_total of this rank's
 * rows, the gradients are summed over ranks before Adam, and all ranks end
 * with identical weights.  Errors: KILN_EINVAL (params, labels, a class with
 * no rows), KILN_ESHAPE (n or d of 0 or too large), KILN_ENONFINITE (x or
 * target, naming the row), KILN_ENOMEM, or the reduce's own code. */
int km_mlp_fit(const km_data_t *data, const km_mlp_params_t *p,
               const km_reduce_t *reduce, km_mlp_t **out, kiln_err_t *err);

/* scores[n x km_mlp_n_outputs(m)]: class probabilities, or the regressed
 * value; pred[n] (may be NULL; ignored for a regressor): the most probable
 * class, the lowest id on a tie.  KILN_ENONFINITE names a row of x with NaN
 * or Inf.  x is n x d, d as at fit. */
int km_mlp_predict(const km_mlp_t *m, const float *x, size_t n, float *scores,
                   int32_t *pred, kiln_err_t *err);

/* A caller-owned workspace (one chunk of activations) for
 * km_mlp_predict_ws, so that a caller scoring a row at a time (the edge
 * agent) allocates nothing per call.  km_mlp_ws_new: new, sized for m's
 * layers, freed with km_mlp_ws_free (NULL-safe, sets *ws to NULL); NULL
 * without memory.  One thread uses a workspace at a time. */
typedef struct km_mlp_ws km_mlp_ws_t;
km_mlp_ws_t *km_mlp_ws_new(const km_mlp_t *m);
void km_mlp_ws_free(km_mlp_ws_t **ws);

/* km_mlp_predict into ws, allocating nothing: the same scores and pred bit
 * for bit (km_mlp_predict is this over a workspace of its own).  A ws made
 * for a model of other layer widths is KILN_EINVAL. */
int km_mlp_predict_ws(const km_mlp_t *m, km_mlp_ws_t *ws, const float *x, size_t n,
                      float *scores, int32_t *pred, kiln_err_t *err);

size_t km_mlp_n_outputs(const km_mlp_t *m);    /* n_classes, or 1 */

/* Appends the model to b (version 1, little-endian).  KILN_ENOMEM if b
 * could not grow. */
int km_mlp_save(const km_mlp_t *m, km_buf_t *b, kiln_err_t *err);
/* A new model from exactly len bytes written by km_mlp_save; anything else
 * (magic, version, sizes, length, non-finite weight) is KILN_EFORMAT. */
int km_mlp_load(const unsigned char *bytes, size_t len, km_mlp_t **out, kiln_err_t *err);
void km_mlp_free(km_mlp_t **m);

/* ---- introspection, for tests and tools -------------------------------- */

/* Layer widths d, hidden..., n_outputs into sizes[0..n]; returns n + 1. */
int km_mlp_layer_sizes(const km_mlp_t *m, int sizes[KM_MLP_MAX_HIDDEN + 2]);
size_t km_mlp_n_params(const km_mlp_t *m);
/* Borrowed: the km_mlp_n_params weights, per layer W [fan_in x fan_out]
 * row-major then its bias, input layer first (the save order). */
const float *km_mlp_weights(const km_mlp_t *m);

/* The loss a fit step minimises on all rows of data at m's weights, and its
 * gradient grad[km_mlp_n_params] in the weights' order, computed the way fit
 * computes a step (float32 products, double sums), single-threaded:
 * mean cross-entropy (or half the mean squared error) + 0.5*l2*|W|^2/n. */
int km_mlp_loss_grad(const km_mlp_t *m, const km_data_t *data, double l2,
                     double *loss, double *grad, kiln_err_t *err);

#endif
