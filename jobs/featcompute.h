/* featcompute.h - the features of one window, exactly as a feature spec
 * asks.  Shared by the featurize job and (later) the edge runtime, so
 * training and inference features agree bit for bit on the same CPU. */
#ifndef KILN_JOBS_FEATCOMPUTE_H
#define KILN_JOBS_FEATCOMPUTE_H

#include <stddef.h>

#include "featspec.h"

/* Read-only after init: one context is shared by all threads; each thread
 * brings its own scratch of jb_featctx_scratch_floats() floats. */
typedef struct {
    const jb_featspec_t *spec;        /* borrowed */
    size_t               window_len;
    double               sample_rate_hz;
    size_t               per_channel;  /* features per channel and window */
    kn_fft_plan_t       *plan;         /* owned */
    float               *window;       /* owned: spectrum window coefficients */
    double               line_hz[JB_LINE_COUNT];
} jb_featctx_t;

int    jb_featctx_init(jb_featctx_t *ctx, const jb_featspec_t *spec, size_t window_len,
                       double sample_rate_hz, kiln_err_t *err);
void   jb_featctx_free(jb_featctx_t *ctx);
size_t jb_featctx_scratch_floats(const jb_featctx_t *ctx);

/* Per-channel features of window x[window_len] into out[per_channel], in
 * the order of jb_featspec_feature_name. */
void   jb_featctx_window(const jb_featctx_t *ctx, const float *x, float *out, float *scratch);

#endif
