/* featgpu.c - the featurize job's GPU path (featgpu.h).  The kernel computes
 * a fixed row per window (all ten time statistics, then the bands, centroid,
 * dominant frequency and envelope lines the spec asks for); this file maps
 * it onto the spec's columns, in jb_featctx_window's order. */
#include "featgpu.h"

#include <stdio.h>
#include <string.h>

#include "../core/kiln_alloc.h"
#include "../kernels/kernels_cuda.h"

struct jb_featgpu {
    const jb_featctx_t *ctx;
    kc_ctx_t           *kc;
    kc_feat_plan_t     *plan;
    size_t              n_out;           /* the kernel's row */
    size_t              map[256];        /* spec column k <- kernel column map[k] */
    float              *tmp;             /* pinned host [cap x n_out] */
    float              *d_x, *d_out;     /* device [cap x window_len], [cap x n_out] */
    size_t              cap;             /* rows (windows x channels) the buffers hold */
    void               *pinned[4];       /* caller's buffers registered by jb_featgpu_pin */
    size_t              n_pinned;
    char                name[256];
};

static int make_config(const jb_featctx_t *ctx, kc_feat_config_t *cfg, kiln_err_t *err)
{
    const jb_featspec_t *s = ctx->spec;
    memset(cfg, 0, sizeof *cfg);
    cfg->window_len = ctx->window_len;
    cfg->sample_rate_hz = ctx->sample_rate_hz;
    cfg->time_stats = s->n_time > 0;
    cfg->util_threshold = s->util_threshold;
    cfg->spectrum = s->has_spectrum;
    cfg->window = s->window;
    if (s->n_bands > KC_MAX_BANDS || s->n_lines > KC_MAX_LINES)
        return kiln_err_set(err, KILN_EINVAL, "GPU path: %zu bands / %zu lines (at most %d / %d)",
                            s->n_bands, s->n_lines, KC_MAX_BANDS, KC_MAX_LINES);
    cfg->n_bands = s->has_spectrum ? s->n_bands : 0;
    for (size_t b = 0; b < cfg->n_bands; b++) {
        cfg->bands_hz[b][0] = s->bands_hz[b][0];
        cfg->bands_hz[b][1] = s->bands_hz[b][1];
    }
    cfg->centroid = s->has_spectrum && s->centroid;
    cfg->dominant = s->has_spectrum && s->dominant;
    cfg->envelope = s->has_envelope;
    cfg->env_lo_hz = s->env_lo_hz;
    cfg->env_hi_hz = s->env_hi_hz;
    cfg->tolerance_hz = s->tolerance_hz;
    cfg->n_lines = s->has_envelope ? s->n_lines : 0;
    for (size_t l = 0; l < cfg->n_lines; l++)
        cfg->line_hz[l] = ctx->line_hz[s->lines[l]];
    return 0;
}

int jb_featgpu_new(const jb_featctx_t *ctx, int device, jb_featgpu_t **out, kiln_err_t *err)
{
    *out = NULL;
    const jb_featspec_t *s = ctx->spec;
    if (ctx->per_channel > sizeof ((jb_featgpu_t *)0)->map / sizeof(size_t))
        return kiln_err_set(err, KILN_EINVAL, "GPU path: %zu features per channel",
                            ctx->per_channel);
    kc_feat_config_t cfg;
    int rc = make_config(ctx, &cfg, err);
    if (rc < 0)
        return rc;
    jb_featgpu_t *g = kiln_calloc(1, sizeof *g);
    if (!g)
        return kiln_err_set(err, KILN_ENOMEM, "GPU path: out of memory");
    g->ctx = ctx;
    kc_device_info_t info;
    if ((rc = kc_device_info(device, &info, err)) < 0 || (rc = kc_ctx_new(device, &g->kc, err)) < 0 ||
        (rc = kc_feat_plan_new(g->kc, &cfg, &g->plan, err)) < 0) {
        jb_featgpu_free(&g);
        return rc;
    }
    snprintf(g->name, sizeof g->name, "GPU %d (%.200s)", device, info.name);
    g->n_out = kc_feat_n_outputs(g->plan);
    /* The kernel's row: 10 time statistics (if any), bands, centroid,
     * dominant, lines; the spec's: its time features in its order, then the
     * same spectral and envelope columns. */
    size_t k = 0, col = cfg.time_stats ? JB_T_COUNT : 0;
    for (size_t i = 0; i < s->n_time; i++)
        g->map[k++] = (size_t)s->time[i];
    size_t n_spec = cfg.n_bands + (size_t)cfg.centroid + (size_t)cfg.dominant + cfg.n_lines;
    for (size_t i = 0; i < n_spec; i++)
        g->map[k++] = col + i;
    if (k != ctx->per_channel || col + n_spec != g->n_out) {
        kiln_err_set(err, KILN_EINTERNAL, "GPU path: %zu columns mapped, the spec has %zu, the "
                     "kernel %zu", k, ctx->per_channel, g->n_out);
        jb_featgpu_free(&g);
        return KILN_EINTERNAL;
    }
    *out = g;
    return 0;
}

void jb_featgpu_free(jb_featgpu_t **gp)
{
    if (!gp || !*gp)
        return;
    jb_featgpu_t *g = *gp;
    kc_feat_plan_destroy(&g->plan);
    for (size_t i = 0; i < g->n_pinned; i++)
        kc_host_unregister(g->kc, g->pinned[i]);
    kc_dev_free(g->kc, (void **)&g->d_x);
    kc_dev_free(g->kc, (void **)&g->d_out);
    kc_host_free(g->kc, (void **)&g->tmp);
    kc_ctx_destroy(&g->kc);
    kiln_free(g);
    *gp = NULL;
}

const char *jb_featgpu_device_name(const jb_featgpu_t *g)
{
    return g->name;
}

int jb_featgpu_pin(jb_featgpu_t *g, void *p, size_t bytes, kiln_err_t *err)
{
    if (g->n_pinned == sizeof g->pinned / sizeof g->pinned[0])
        return kiln_err_set(err, KILN_EINTERNAL, "GPU path: more than %zu pinned buffers",
                            g->n_pinned);
    int rc = kc_host_register(g->kc, p, bytes, err);
    if (rc < 0)
        return rc;
    g->pinned[g->n_pinned++] = p;
    return 0;
}

static int reserve(jb_featgpu_t *g, size_t n_windows, size_t n_channels, kiln_err_t *err)
{
    const size_t L = g->ctx->window_len, rows = n_windows * n_channels;
    int rc;
    if (rows <= g->cap)
        return 0;
    g->cap = 0;
    kc_host_free(g->kc, (void **)&g->tmp);
    kc_dev_free(g->kc, (void **)&g->d_x);
    kc_dev_free(g->kc, (void **)&g->d_out);
    if ((rc = kc_host_alloc(g->kc, rows * g->n_out * sizeof(float), (void **)&g->tmp, err)) < 0 ||
        (rc = kc_dev_alloc(g->kc, rows * L * sizeof(float), (void **)&g->d_x, err)) < 0 ||
        (rc = kc_dev_alloc(g->kc, rows * g->n_out * sizeof(float), (void **)&g->d_out, err)) < 0)
        return rc;
    g->cap = rows;
    return 0;
}

int jb_featgpu_submit(jb_featgpu_t *g, const float *signals, size_t n_windows,
                      size_t n_channels, kiln_err_t *err)
{
    const size_t L = g->ctx->window_len;
    int rc;
    if ((rc = reserve(g, n_windows, n_channels, err)) < 0)
        return rc;
    /* Channel c on stream c % 2: the copy of one channel overlaps the
     * kernel of the one before; each has its own slice of the buffers. */
    for (size_t c = 0; c < n_channels; c++) {
        void *st = kc_ctx_stream(g->kc, (int)(c & 1));
        const size_t x0 = c * n_windows * L, o0 = c * n_windows * g->n_out;
        if ((rc = kc_copy_to_dev_async(g->kc, g->d_x + x0, signals + x0,
                                       n_windows * L * sizeof(float), st, err)) < 0 ||
            (rc = kc_feat_run(g->plan, g->d_x + x0, n_windows, g->d_out + o0, st, err)) < 0 ||
            (rc = kc_copy_to_host_async(g->kc, g->tmp + o0, g->d_out + o0,
                                        n_windows * g->n_out * sizeof(float), st, err)) < 0)
            return rc;
    }
    return 0;
}

int jb_featgpu_finish(jb_featgpu_t *g, size_t n_windows, size_t n_channels, float *rows,
                      size_t n_cols, kiln_err_t *err)
{
    const size_t per = g->ctx->per_channel;
    int rc = kc_ctx_sync(g->kc, err);
    if (rc < 0)
        return rc;
    for (size_t c = 0; c < n_channels; c++)
        for (size_t i = 0; i < n_windows; i++) {
            const float *src = g->tmp + (c * n_windows + i) * g->n_out;
            float *dst = rows + i * n_cols + c * per;
            for (size_t k = 0; k < per; k++)
                dst[k] = src[g->map[k]];
        }
    return 0;
}

int jb_featgpu_batch(jb_featgpu_t *g, const float *signals, size_t n_windows,
                     size_t n_channels, float *rows, size_t n_cols, kiln_err_t *err)
{
    int rc = jb_featgpu_submit(g, signals, n_windows, n_channels, err);
    return rc < 0 ? rc : jb_featgpu_finish(g, n_windows, n_channels, rows, n_cols, err);
}
