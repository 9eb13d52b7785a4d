/* featcompute.c - one window's features from the kernels: time-domain
 * statistics, the windowed power spectrum and the envelope spectrum. */
#include "featcompute.h"

#include <string.h>

#include "../core/kiln_alloc.h"

int jb_featctx_init(jb_featctx_t *ctx, const jb_featspec_t *spec, size_t window_len,
                    double sample_rate_hz, kiln_err_t *err)
{
    int rc;

    memset(ctx, 0, sizeof *ctx);
    ctx->spec = spec;
    ctx->window_len = window_len;
    ctx->sample_rate_hz = sample_rate_hz;
    ctx->per_channel = jb_featspec_per_channel(spec);
    if (!spec->has_spectrum && !spec->has_envelope)
        return 0;
    if (window_len < 2)
        return kiln_err_set(err, KILN_ESPEC,
                            "features.spectrum/envelope: windows of %zu sample(s) have no spectrum",
                            window_len);
    if ((rc = kn_fft_plan_new(window_len, &ctx->plan, err)) < 0)
        return rc;
    ctx->window = kiln_malloc_aligned(window_len * sizeof(float));
    if (!ctx->window) {
        jb_featctx_free(ctx);
        return kiln_err_set(err, KILN_ENOMEM, "featurize: no memory for a %zu-sample window",
                            window_len);
    }
    kn_window_fill(spec->has_spectrum ? spec->window : KN_WINDOW_NONE, ctx->window, window_len);
    if (spec->has_envelope) {
        kn_bearing_freqs_t f;
        kn_bearing_defect_freqs(spec->n_balls, spec->ball_d, spec->pitch_d, spec->contact_deg,
                                spec->shaft_hz, &f);
        ctx->line_hz[JB_LINE_BPFO] = f.bpfo_hz;
        ctx->line_hz[JB_LINE_BPFI] = f.bpfi_hz;
        ctx->line_hz[JB_LINE_BSF] = f.bsf_hz;
        ctx->line_hz[JB_LINE_FTF] = f.ftf_hz;
    }
    return 0;
}

void jb_featctx_free(jb_featctx_t *ctx)
{
    kn_fft_plan_destroy(&ctx->plan);
    kiln_free_aligned(ctx->window);
    ctx->window = NULL;
}

/* Scratch layout: [windowed signal n][rfft 2(n/2+1)][power n/2+1][fft scratch]
 * [envelope amp n/2+1][envelope scratch], each part rounded to 16 floats so
 * every part stays 64-byte aligned. */
#define JB_ROUND16(x) (((x) + 15) & ~(size_t)15)

size_t jb_featctx_scratch_floats(const jb_featctx_t *ctx)
{
    size_t n = ctx->window_len, bins = n / 2 + 1;
    if (!ctx->plan)
        return 16;
    return JB_ROUND16(n) + JB_ROUND16(2 * bins) + JB_ROUND16(bins) +
           JB_ROUND16(kn_fft_scratch_floats(ctx->plan)) + JB_ROUND16(bins) +
           JB_ROUND16(kn_envelope_scratch_floats(ctx->plan));
}

static double time_value(const kn_time_stats_t *t, jb_time_feature_t f)
{
    switch (f) {
    case JB_T_MEAN:  return t->mean;
    case JB_T_STD:   return t->std;
    case JB_T_RMS:   return t->rms;
    case JB_T_PEAK:  return t->peak;
    case JB_T_P2P:   return t->p2p;
    case JB_T_CREST: return t->crest;
    case JB_T_SKEW:  return t->skew;
    case JB_T_KURT:  return t->kurt;
    case JB_T_SLOPE: return t->slope;
    case JB_T_UTIL:  return t->util;
    default:         return 0;
    }
}

void jb_featctx_window(const jb_featctx_t *ctx, const float *x, float *out, float *scratch)
{
    const jb_featspec_t *s = ctx->spec;
    const size_t n = ctx->window_len, bins = n / 2 + 1;
    const double fs = ctx->sample_rate_hz;
    size_t o = 0;

    if (s->n_time) {
        kn_time_stats_t t;
        kn_time_stats(x, n, fs, s->util_threshold, &t);
        for (size_t i = 0; i < s->n_time; i++)
            out[o++] = (float)time_value(&t, s->time[i]);
    }
    if (!ctx->plan)
        return;

    float *xw = scratch;
    float *spec = xw + JB_ROUND16(n);
    float *power = spec + JB_ROUND16(2 * bins);
    float *fft_scratch = power + JB_ROUND16(bins);
    float *env = fft_scratch + JB_ROUND16(kn_fft_scratch_floats(ctx->plan));
    float *env_scratch = env + JB_ROUND16(bins);

    if (s->has_spectrum) {
        const float *w = ctx->window;
        const float *in = x;
        if (s->window != KN_WINDOW_NONE) {
            for (size_t i = 0; i < n; i++)
                xw[i] = x[i] * w[i];
            in = xw;
        }
        kn_rfft(ctx->plan, in, spec, fft_scratch);
        kn_power_spectrum(spec, n, power);
        for (size_t b = 0; b < s->n_bands; b++)
            out[o++] = (float)kn_band_energy(power, n, fs, s->bands_hz[b][0], s->bands_hz[b][1]);
        if (s->centroid)
            out[o++] = (float)kn_spectral_centroid(power, n, fs);
        if (s->dominant)
            out[o++] = (float)kn_dominant_freq(power, n, fs);
    }
    if (s->has_envelope) {
        kn_envelope_spectrum(ctx->plan, x, fs, s->env_lo_hz, s->env_hi_hz, env, env_scratch);
        for (size_t l = 0; l < s->n_lines; l++)
            out[o++] = (float)kn_spectrum_peak_near(env, n, fs, ctx->line_hz[s->lines[l]],
                                                    s->tolerance_hz);
    }
}
