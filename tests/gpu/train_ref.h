/* train_ref.h - small models of every kind trained on the CPU reference
 * (kernels/cpu/), for the GPU scoring parity test and benchmark: synthetic
 * rows of three Gaussian classes with a regression target, then logreg
 * (binary, 3-class), mlp (3-class, regressor), gbdt (binary, 3-class,
 * regressor) and the anomaly detector fitted on class 0. */
#ifndef KILN_TESTS_GPU_TRAIN_REF_H
#define KILN_TESTS_GPU_TRAIN_REF_H

#include "../../kernels/kernels_cuda.h"

#ifdef __cplusplus
extern "C" {
#endif

#define GT_N_MODELS 8

typedef struct {
    const char *name[GT_N_MODELS];
    int         kind[GT_N_MODELS];     /* 0 logreg, 1 mlp, 2 gbdt, 3 anomaly */
    void       *model[GT_N_MODELS];    /* km_<kind>_t *, owned */
} gt_models_t;

/* x [n x d], y [n] in 0..2, target [n]; deterministic in seed. */
void gt_data(uint64_t seed, size_t n, size_t d, float *x, int32_t *y, float *target);
/* Trains every model on the rows (about a second for 20,000 x 24). */
int  gt_train(const float *x, const int32_t *y, const float *target, size_t n, size_t d,
              gt_models_t *m, kiln_err_t *err);
void gt_free(gt_models_t *m);
/* The CPU reference's predict for model i; KILN code. */
int  gt_predict(const gt_models_t *m, int i, const float *x, size_t n, float *scores,
                int32_t *pred, kiln_err_t *err);
size_t gt_n_outputs(const gt_models_t *m, int i);
/* The GPU model for model i. */
int  gt_to_gpu(const gt_models_t *m, int i, kc_ctx_t *ctx, kc_model_t **out, kiln_err_t *err);

#ifdef __cplusplus
}
#endif

#endif
