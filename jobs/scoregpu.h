/* scoregpu.h - the score job's GPU path: a trained model file's model on a
 * CUDA device (kernels/kernels_cuda.h, kc_model_*), fed rows the file's
 * scaler standardized on the host, so the scores match
 * jb_modelfile_predict's within the tolerances of tests/gpu/README.md. */
#ifndef KILN_JOBS_SCOREGPU_H
#define KILN_JOBS_SCOREGPU_H

#include <stddef.h>
#include <stdint.h>

#include "modelfile.h"

typedef struct jb_scoregpu jb_scoregpu_t;

/* The model of m (borrowed for its scaler: m must outlive the engine) on GPU
 * `device`.  KILN_EUNSUPPORTED (no GPU, a build without CUDA, a model past
 * the GPU path's limits) means: score on the CPU; err says why. */
int  jb_scoregpu_new(const jb_modelfile_t *m, int device, jb_scoregpu_t **out, kiln_err_t *err);
void jb_scoregpu_free(jb_scoregpu_t **g);
/* "GPU 0 (NAME)", for logs. */
const char *jb_scoregpu_device_name(const jb_scoregpu_t *g);

/* As jb_modelfile_predict: x [n x n_features] raw features, scores
 * [n x n_outputs], pred [n] (may be NULL). */
int  jb_scoregpu_predict(jb_scoregpu_t *g, const float *x, size_t n, float *scores,
                         int32_t *pred, kiln_err_t *err);

#endif
