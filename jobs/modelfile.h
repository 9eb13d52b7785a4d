/* modelfile.h - a trained model as one file (a .kmodel): what a train job
 * writes and scoring and the registry read.
 *
 *   "KILNMDL1", u32 header length, the header (compact JSON: kind, learn,
 *   feature_names, class_names, dataset_sha256, featspec_sha256, params,
 *   metrics, accepted, seed), the scaler (kernels/scaler.h), the model's own
 *   bytes (its kind's save).
 *
 * Written to PATH.tmp.PID and renamed, like every kiln output. */
#ifndef KILN_JOBS_MODELFILE_H
#define KILN_JOBS_MODELFILE_H

#include <jansson.h>
#include <stddef.h>

#include "../kernels/scaler.h"
#include "model.h"

#define JB_MODELFILE_MAX ((size_t)1 << 30)

typedef struct {
    json_t                *header;   /* owned */
    const jb_model_kind_t *kind;
    km_scaler_t           *scaler;
    void                  *model;
    size_t                 n_features;
} jb_modelfile_t;

/* The file's bytes into b (for the artifact store) and, when path is not
 * NULL, to path by rename.  header is borrowed. */
int jb_modelfile_write(const char *path, const json_t *header, const km_scaler_t *scaler,
                       const jb_model_kind_t *kind, const void *model, km_buf_t *b,
                       kiln_err_t *err);
/* Parses what jb_modelfile_write made; anything else is KILN_EFORMAT. */
int jb_modelfile_parse(const void *bytes, size_t len, jb_modelfile_t *out, kiln_err_t *err);
int jb_modelfile_read(const char *path, jb_modelfile_t *out, kiln_err_t *err);
void jb_modelfile_free(jb_modelfile_t *m);

/* Standardizes x (n x n_features, raw features) with the file's scaler and
 * predicts: scores [n x n_outputs], pred [n] (may be NULL). */
int jb_modelfile_predict(const jb_modelfile_t *m, const float *x, size_t n, float *scores,
                         int32_t *pred, kiln_err_t *err);

#endif
