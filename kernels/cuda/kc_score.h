/* kc_score.h - the device model shared by score.cu (logreg, gbdt, anomaly
 * and the common predict driver) and score_mlp.cu (cuBLAS layers). */
#ifndef KILN_KERNELS_CUDA_KC_SCORE_H
#define KILN_KERNELS_CUDA_KC_SCORE_H

#include "kc_int.h"

typedef enum { KC_LOGREG, KC_MLP, KC_GBDT, KC_ANOMALY } kc_kind_t;

#define KC_LOGREG_MAX_CLASSES 64
#define KC_SCORE_ROWS_PER_CHUNK 65536   /* rows kc_model_predict moves per copy */

struct kc_model {
    kc_ctx_t *ctx;                 /* borrowed */
    kc_kind_t kind;
    size_t    d, n_out;
    int       n_classes;           /* 0: regression (gbdt, mlp) */
    /* logreg: w [rows x (d+1)] double; anomaly: mean[d] then the packed
     * lower Cholesky factor [d (d+1) / 2] double */
    double   *d_w;
    size_t    n_w;
    double    threshold;           /* anomaly */
    /* gbdt: flattened trees */
    int4     *d_nodes;             /* feature, threshold bits, child0, child1 (global index) */
    double   *d_value;             /* leaf value per node */
    int      *d_tree_start, *d_tree_depth;
    double   *d_init;
    size_t    n_trees, per_round;
    /* mlp */
    int       n_layers, size[8];
    float    *d_params;
    size_t    w_off[8];            /* offset of layer l's W; its bias follows K*N later */
    float    *d_act[2];            /* ping-pong activations, KC_SCORE_ROWS_PER_CHUNK x widest */
    /* predict buffers, made on first use */
    float    *d_x, *d_scores;
    int32_t  *d_pred;
    unsigned long long *d_bad;     /* first row with NaN/Inf */
    size_t    cap_rows;
};

/* The mlp scoring of rows d_x [n x d] into d_scores / d_pred (score_mlp.cu). */
int kc_mlp_score(kc_model_t *m, const float *d_x, size_t n, float *d_scores, int32_t *d_pred,
                 kiln_err_t *err);
/* Launches the first-non-finite-row check over d_x [n x d] into *d_bad. */
void kc_launch_nonfinite(const float *d_x, size_t n, size_t d, unsigned long long *d_bad,
                         cudaStream_t st);

#endif
