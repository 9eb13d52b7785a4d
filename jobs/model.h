/* model.h - model kinds as tables (one file per kind, jobs/model_<kind>.c,
 * over its kernel in kernels/cpu/) and the model bundle a train job writes:
 *
 *   "KILNMDL1" u32 header_len, header JSON (kind, learn, feature and class
 *   names, lineage hashes, params, metrics), the scaler's bytes, the model's.
 *
 * The scaler learned at train time travels in the bundle, so scoring
 * standardizes with the very same numbers. */
#ifndef KILN_JOBS_MODEL_H
#define KILN_JOBS_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "../core/kiln_err.h"
#include "../kernels/models.h"

typedef struct jb_model_kind {
    const char *name;             /* the spec's model.kind */
    int         classifier;       /* 1: learns labels; 0: also targets (regression) */
    int         regressor;        /* 1: can learn a target */
    int         unsupervised;     /* 1: anomaly: learns from healthy rows only */
    /* model: the spec's "model" object (json_t *); errors name "model.<key>". */
    int  (*parse)(const void *model, void **params, kiln_err_t *err);
    void (*free_params)(void *params);
    /* params as canonical JSON for the run record (new string, free()). */
    char *(*params_json)(const void *params);
    int  (*fit)(const void *params, const km_data_t *train, const km_data_t *valid,
                const km_reduce_t *reduce, int threads, uint64_t seed, void **model,
                kiln_err_t *err);
    /* NULL where the kind has no GPU fit.  Else fit on CUDA device `device`
     * (kernels_cuda.h): the same params, draws and result type as fit;
     * KILN_EUNSUPPORTED (no GPU, no CUDA build) or KILN_EINVAL (a shape the
     * GPU path does not take) tell the caller to fit on the CPU instead. */
    int  (*fit_gpu)(const void *params, const km_data_t *train, const km_reduce_t *reduce,
                    int device, uint64_t seed, void **model, kiln_err_t *err);
    int  (*predict)(const void *model, const float *x, size_t n, float *scores, int32_t *pred,
                    kiln_err_t *err);
    /* NULL where predict allocates nothing per call.  Else ws_new makes a
     * workspace for model (new, freed with ws_free; NULL without memory) and
     * predict_ws gives predict's very results into it, allocating nothing:
     * for callers that score a row at a time (the edge agent). */
    void *(*ws_new)(const void *model);
    void  (*ws_free)(void *ws);
    int   (*predict_ws)(const void *model, void *ws, const float *x, size_t n, float *scores,
                        int32_t *pred, kiln_err_t *err);
    size_t (*n_outputs)(const void *model);
    int  (*save)(const void *model, km_buf_t *b, kiln_err_t *err);
    int  (*load)(const void *bytes, size_t len, void **model, kiln_err_t *err);
    void (*free_model)(void *model);
    /* unsupervised kinds: the class id of the healthy rows (pred 1 = anomaly) */
    int  (*healthy_class)(const void *params);
} jb_model_kind_t;

/* The kind called name, or NULL; the list for messages. */
const jb_model_kind_t *jb_model_kind_find(const char *name);
const char *jb_model_kind_names(void);

#endif
