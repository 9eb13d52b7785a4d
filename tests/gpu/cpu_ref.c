/* cpu_ref.c - the reference feature row of one window (see cpu_ref.h). */
#include "cpu_ref.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int gr_ref_init(gr_ref_t *r, const kc_feat_config_t *cfg, kiln_err_t *err)
{
    int rc;
    memset(r, 0, sizeof *r);
    r->cfg = *cfg;
    const size_t n = cfg->window_len, bins = n / 2 + 1;
    r->n_out = (cfg->time_stats ? 10 : 0) +
               (cfg->spectrum ? cfg->n_bands + (cfg->centroid != 0) + (cfg->dominant != 0) : 0) +
               (cfg->envelope ? cfg->n_lines : 0);
    if (!cfg->spectrum && !cfg->envelope)
        return 0;
    if ((rc = kn_fft_plan_new(n, &r->plan, err)) < 0)
        return rc;
    r->window = malloc(n * sizeof(float));
    r->xw = malloc(n * sizeof(float));
    r->spec = malloc(2 * bins * sizeof(float));
    r->power = malloc(bins * sizeof(float));
    r->fft_scratch = malloc((kn_fft_scratch_floats(r->plan) + 16) * sizeof(float));
    r->amp = malloc(bins * sizeof(float));
    r->env_scratch = malloc((kn_envelope_scratch_floats(r->plan) + 16) * sizeof(float));
    if (!r->window || !r->xw || !r->spec || !r->power || !r->fft_scratch || !r->amp ||
        !r->env_scratch) {
        gr_ref_free(r);
        return kiln_err_set(err, KILN_ENOMEM, "cpu_ref: no memory");
    }
    kn_window_fill(cfg->spectrum ? cfg->window : KN_WINDOW_NONE, r->window, n);
    return 0;
}

void gr_ref_free(gr_ref_t *r)
{
    kn_fft_plan_destroy(&r->plan);
    free(r->window);
    free(r->xw);
    free(r->spec);
    free(r->power);
    free(r->fft_scratch);
    free(r->amp);
    free(r->env_scratch);
    memset(r, 0, sizeof *r);
}

void gr_ref_window(gr_ref_t *r, const float *x, float *out)
{
    const kc_feat_config_t *c = &r->cfg;
    const size_t n = c->window_len, bins = n / 2 + 1;
    const double fs = c->sample_rate_hz;
    size_t o = 0;
    if (c->time_stats) {
        kn_time_stats_t *t = &r->time;
        kn_time_stats(x, n, fs, c->util_threshold, t);
        const double v[10] = {t->mean, t->std, t->rms, t->peak, t->p2p,
                              t->crest, t->skew, t->kurt, t->slope, t->util};
        for (int k = 0; k < 10; k++)
            out[o++] = (float)v[k];
    }
    if (!r->plan)
        return;
    if (c->spectrum) {
        const float *in = x;
        if (c->window != KN_WINDOW_NONE) {
            for (size_t i = 0; i < n; i++)
                r->xw[i] = x[i] * r->window[i];
            in = r->xw;
        }
        kn_rfft(r->plan, in, r->spec, r->fft_scratch);
        kn_power_spectrum(r->spec, n, r->power);
        r->total_power = 0;
        for (size_t k = 0; k < bins; k++)
            r->total_power += r->power[k];
        for (size_t b = 0; b < c->n_bands; b++)
            out[o++] = (float)kn_band_energy(r->power, n, fs, c->bands_hz[b][0], c->bands_hz[b][1]);
        if (c->centroid)
            out[o++] = (float)kn_spectral_centroid(r->power, n, fs);
        if (c->dominant)
            out[o++] = (float)kn_dominant_freq(r->power, n, fs);
    }
    if (c->envelope) {
        kn_envelope_spectrum(r->plan, x, fs, c->env_lo_hz, c->env_hi_hz, r->amp, r->env_scratch);
        double sum = 0, sq = 0;
        for (size_t i = 0; i < n; i++)
            sum += x[i];
        const double mean = c->env_lo_hz > 0 ? sum / (double)n : 0.0;
        for (size_t i = 0; i < n; i++)
            sq += ((double)x[i] - mean) * ((double)x[i] - mean);
        r->env_scale = sqrt(sq / (double)n);
        r->max_amp = 0;
        for (size_t k = 0; k < bins; k++)
            r->max_amp = r->amp[k] > r->max_amp ? r->amp[k] : r->max_amp;
        for (size_t l = 0; l < c->n_lines; l++)
            out[o++] = (float)kn_spectrum_peak_near(r->amp, n, fs, c->line_hz[l], c->tolerance_hz);
    }
}
