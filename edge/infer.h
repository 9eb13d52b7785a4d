/* infer.h - kiln-edge's inference engine: one model directory loaded into
 * the cluster's own featurization (jobs/featcompute.h) and model runtime
 * (jobs/modelfile.h), so a window scored here gives the features and scores
 * `kiln score` gives for it, bit for bit on the same CPU.
 *
 * A model directory holds what a bundle carries (docs/edge.md, Inference):
 *   model.kmodel    required: the trained model (its header may carry the
 *                   feature spec, as `kiln train` writes it)
 *   featspec.json   optional: the feature spec (the `features` object, or a
 *                   featurize job spec holding one); must hash as the
 *                   model's header says when the header names a spec hash
 *   manifest.json   optional: the bundle's ({"model": {"name", "version"}})
 *                   or {"name", "version"}; an "input_schema" object
 *                   {"sample_rate_hz", "window_len"} fixes the window shape
 *
 * One thread: an engine is not shared; the agent's loop thread owns it.
 * Scoring allocates nothing once a window shape has been seen (the load's
 * self-test sees the declared one). */
#ifndef KE_INFER_H
#define KE_INFER_H

#include <stddef.h>
#include <stdint.h>

#include "core/kiln_err.h"

#define KE_MAX_CHANNELS   64
#define KE_MAX_WINDOW_LEN ((size_t)1 << 20)
#define KE_MAX_OUTPUTS    64
#define KE_NAME_MAX       128
/* Window shapes (window_len, sample_rate_hz) with a featurization context
 * kept at once; a new shape past this replaces the oldest. */
#define KE_SHAPES_MAX     4

typedef struct ke_engine ke_engine_t;

/* One window, channel-major: samples[c * window_len + i], in the model's
 * channel order (ke_model_info_t.channels).  Borrowed for the call. */
typedef struct {
    int32_t      asset;
    int64_t      timestamp_ns;
    double       sample_rate_hz;
    size_t       n_channels, window_len;
    const float *samples;
} ke_window_t;

/* What scoring one window gave.  Pointers are the engine's, valid until the
 * next ke_engine_score or ke_engine_free. */
typedef struct {
    int32_t      asset;
    int64_t      timestamp_ns;
    size_t       n_outputs;
    const float *scores;
    int32_t      predicted;      /* class id; -1 for a regressor */
    const char  *class_name;     /* NULL when predicted is -1 */
    size_t       n_features;
    const float *features;       /* the raw feature row, before the scaler */
} ke_result_t;

typedef struct {
    char   name[KE_NAME_MAX];        /* manifest's name, else the directory's */
    char   version[64];              /* manifest's version, else "0" */
    char   kind[32];                 /* gbdt, mlp, logreg, anomaly */
    char   model_sha256[65];         /* of model.kmodel's bytes */
    char   featspec_sha256[65];
    size_t n_channels;
    char   channels[KE_MAX_CHANNELS][KE_NAME_MAX];
    size_t window_len;               /* 0: not declared (any) */
    double sample_rate_hz;           /* 0: not declared (any) */
    size_t n_features, n_outputs, n_classes;
    const char *const *class_names;  /* n_classes, the engine's */
} ke_model_info_t;

typedef struct {
    size_t max_assets;   /* rolling state kept for this many assets (LRU); 0: 256 */
} ke_engine_opts_t;

/* Loads dir (see above), checks that the spec's feature names are the
 * model's, and scores a self-test window: a window stored beside the model
 * as selftest.window (the binary frame of edge/frame.h), else a built-in
 * one of the declared shape (or 2,048 samples at 12 kHz); non-finite scores
 * fail the load with KILN_ENONFINITE.  opts may be NULL. */
int  ke_engine_load(const char *dir, const ke_engine_opts_t *opts, ke_engine_t **out,
                    kiln_err_t *err);
void ke_engine_free(ke_engine_t **e);

const ke_model_info_t *ke_engine_info(const ke_engine_t *e);

/* Featurizes w as the featurize job does (rolling features from this
 * asset's earlier windows) and scores it.  KILN_ESHAPE when the channel
 * count, or a declared window_len or sample rate, differs. */
int ke_engine_score(ke_engine_t *e, const ke_window_t *w, ke_result_t *r, kiln_err_t *err);

/* The model's i-th feature name (the engine's string), NULL past the end. */
const char *ke_engine_feature_name(const ke_engine_t *e, size_t i);

/* Forgets every asset's rolling state (as a new featurize run starts). */
void ke_engine_reset_assets(ke_engine_t *e);

#endif
