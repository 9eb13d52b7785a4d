/* cpu_ref.h - the C reference for the GPU feature rows: the same kernels,
 * in the same order and with the same casts as jb_featctx_window
 * (jobs/featcompute.c), driven by a kc_feat_config_t instead of a parsed
 * feature spec (featspec.c needs jansson, which the GPU machine lacks).
 * Used by the parity test, the host emulation and the GPU benchmark. */
#ifndef KILN_TESTS_GPU_CPU_REF_H
#define KILN_TESTS_GPU_CPU_REF_H

#include "../../kernels/kernels_cuda.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    kc_feat_config_t cfg;
    size_t          n_out;
    kn_fft_plan_t  *plan;         /* NULL without spectrum and envelope */
    float          *window;       /* n */
    float          *xw, *spec, *power, *fft_scratch, *amp, *env_scratch;
    kn_time_stats_t time;         /* the last window's, in double */
    double          total_power;  /* sum of power[] of the last window */
    double          max_amp;      /* max of amp[] of the last window */
    double          env_scale;    /* rms of what the envelope's band-pass sees:
                                     x, or x - mean when the band leaves out DC */
} gr_ref_t;

int  gr_ref_init(gr_ref_t *r, const kc_feat_config_t *cfg, kiln_err_t *err);
void gr_ref_free(gr_ref_t *r);
/* Features of x[window_len] into out[r->n_out]; r->power and r->amp keep
 * the window's spectra for the tolerance rules. */
void gr_ref_window(gr_ref_t *r, const float *x, float *out);

#ifdef __cplusplus
}
#endif

#endif
