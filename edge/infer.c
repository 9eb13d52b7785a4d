/* infer.c - the edge inference engine: a model directory into the
 * cluster's featurization and model runtime.  The feature row is built
 * exactly as jobs/featurize.c builds it (per channel jb_featctx_window, then
 * each asset's rolling mean/std), and scored exactly as
 * jb_modelfile_predict scores (km_scaler_transform, then the kind's
 * predict), with every buffer made at load or at a window shape's first use. */
#include "edge/infer.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/kiln_alloc.h"
#include "edge/frame.h"
#include "jobs/featcompute.h"
#include "jobs/featspec.h"
#include "jobs/modelfile.h"
#include "storage/sha256.h"

#define KE_ASSETS_DEFAULT 256
#define KE_ASSETS_MAX     65536
#define KE_SELFTEST_LEN   2048
#define KE_SELFTEST_RATE  12000.0

typedef struct {
    size_t        window_len;
    double        sample_rate_hz;
    int           used;
    uint64_t      last_use;
    jb_featctx_t  ctx;
} shape_t;

/* One asset's rings: n_rings of k doubles each, all in the engine's arena. */
typedef struct {
    int32_t       asset;
    int           used;
    uint64_t      last_use;
    kn_rolling_t *rings;
} asset_t;

struct ke_engine {
    ke_model_info_t info;
    jb_modelfile_t  model;
    jb_featspec_t   spec;
    int             have_spec, have_model;
    const char     *class_names[KE_MAX_OUTPUTS];
    int             per_class_pred;      /* a classifier: predicted is a class id */

    shape_t         shapes[KE_SHAPES_MAX];
    float          *scratch;             /* aligned, scratch_floats */
    size_t          scratch_floats;
    float          *signal;              /* aligned copy of a window, signal_floats */
    size_t          signal_floats;
    uint64_t        tick;

    float          *row, *z, *scores;    /* n_features, n_features, n_outputs */
    void           *predict_ws;          /* the kind's workspace (kind->ws_new), or NULL */
    int32_t         pred;

    size_t          n_rings, k, max_assets, n_assets_used;
    asset_t        *assets;              /* max_assets */
    kn_rolling_t   *ring_arena;          /* max_assets * n_rings */
    double         *value_arena;         /* max_assets * n_rings * k */
};

/* ---- loading ---------------------------------------------------------- */

static int read_file(const char *path, unsigned char **bytes, size_t *len, size_t max,
                     kiln_err_t *err)
{
    *bytes = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        return kiln_err_at(err, errno == ENOENT ? KILN_ENOTFOUND : KILN_EIO, path, "%s: %s",
                           path, strerror(errno));
    long size = fseek(f, 0, SEEK_END) == 0 ? ftell(f) : -1;
    rewind(f);
    if (size < 0 || (size_t)size > max) {
        fclose(f);
        return kiln_err_at(err, KILN_EFORMAT, path, "%s: size %ld outside 0..%zu", path, size,
                           max);
    }
    unsigned char *b = kiln_malloc((size_t)size + 1);
    if (!b) {
        fclose(f);
        return kiln_err_set(err, KILN_ENOMEM, "%s: out of memory", path);
    }
    size_t got = fread(b, 1, (size_t)size, f);
    fclose(f);
    if (got != (size_t)size) {
        kiln_free(b);
        return kiln_err_at(err, KILN_EIO, path, "%s: short read", path);
    }
    b[got] = 0;
    *bytes = b;
    *len = got;
    return 0;
}

/* A JSON file of dir, or NULL (with rc 0) when absent. */
static int load_json(const char *dir, const char *name, json_t **out, kiln_err_t *err)
{
    char path[4300];
    unsigned char *b;
    size_t len;
    *out = NULL;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int rc = read_file(path, &b, &len, (size_t)16 << 20, err);
    if (rc == KILN_ENOTFOUND)
        return 0;
    if (rc < 0)
        return rc;
    json_error_t je;
    *out = json_loadb((const char *)b, len, 0, &je);
    kiln_free(b);
    if (!*out)
        return kiln_err_set(err, KILN_EJSON, "%s: line %d: %s", path, je.line, je.text);
    return 0;
}

static int copy_name(char *dst, size_t cap, const char *src)
{
    size_t n = strlen(src);
    if (n == 0 || n >= cap)
        return -1;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)src[i] < 0x20 || src[i] == '"' || src[i] == '\\' || src[i] == 0x7f)
            return -1;
    memcpy(dst, src, n + 1);
    return 0;
}

/* name, version and input_schema from manifest.json (all optional). */
static int read_manifest(ke_engine_t *e, const char *dir, kiln_err_t *err)
{
    json_t *m = NULL;
    int rc = load_json(dir, "manifest.json", &m, err);
    if (rc < 0)
        return rc;
    const char *base = strrchr(dir, '/');
    base = base && base[1] ? base + 1 : dir;
    if (copy_name(e->info.name, sizeof e->info.name, base) < 0)
        snprintf(e->info.name, sizeof e->info.name, "model");
    snprintf(e->info.version, sizeof e->info.version, "0");
    if (!m)
        return 0;
    /* The bundle's manifest nests them under "model" (docs/edge.md,
     * Bundles and keys); a hand-made one may put them at the top. */
    const json_t *v, *mm = json_object_get(m, "model");
    const json_t *src = json_is_object(mm) ? mm : m;
    if ((v = json_object_get(src, "name")) && json_is_string(v) &&
        copy_name(e->info.name, sizeof e->info.name, json_string_value(v)) < 0)
        rc = kiln_err_at(err, KILN_ESPEC, "name", "%s/manifest.json: name: 1..%d printable bytes",
                         dir, KE_NAME_MAX - 1);
    v = json_object_get(src, "version");
    if (rc == 0 && json_is_integer(v))
        snprintf(e->info.version, sizeof e->info.version, "%lld",
                 (long long)json_integer_value(v));
    else if (rc == 0 && json_is_string(v) &&
             copy_name(e->info.version, sizeof e->info.version, json_string_value(v)) < 0)
        rc = kiln_err_at(err, KILN_ESPEC, "version", "%s/manifest.json: version: 1..63 bytes",
                         dir);
    /* input_schema as an object declares the window; the bundle's list of
     * feature names declares none (the model's header is checked anyway). */
    const json_t *in = json_object_get(m, "input_schema");
    if (rc == 0 && json_is_object(in)) {
        const json_t *wl = json_object_get(in, "window_len");
        const json_t *sr = json_object_get(in, "sample_rate_hz");
        if (wl && (!json_is_integer(wl) || json_integer_value(wl) < 1 ||
                   (size_t)json_integer_value(wl) > KE_MAX_WINDOW_LEN))
            rc = kiln_err_at(err, KILN_ESPEC, "input_schema.window_len",
                             "%s/manifest.json: input_schema.window_len: 1..%zu", dir,
                             KE_MAX_WINDOW_LEN);
        else if (sr && (!json_is_number(sr) || !(json_number_value(sr) > 0) ||
                        !isfinite(json_number_value(sr))))
            rc = kiln_err_at(err, KILN_ESPEC, "input_schema.sample_rate_hz",
                             "%s/manifest.json: input_schema.sample_rate_hz: a number > 0", dir);
        else {
            e->info.window_len = wl ? (size_t)json_integer_value(wl) : 0;
            e->info.sample_rate_hz = sr ? json_number_value(sr) : 0;
        }
    }
    json_decref(m);
    return rc;
}

/* The feature spec: the model header's, or featspec.json's; when both, the
 * same hash. */
static int read_spec(ke_engine_t *e, const char *dir, kiln_err_t *err)
{
    json_t *file = NULL;
    int rc = load_json(dir, "featspec.json", &file, err);
    if (rc < 0)
        return rc;
    const json_t *fs = json_object_get(e->model.header, "feature_spec");
    const char *want = json_string_value(json_object_get(e->model.header, "featspec_sha256"));
    const char *from = "model.kmodel's feature_spec";
    if (file) {
        const json_t *inner = json_object_get(file, "features");
        fs = json_is_object(inner) ? inner : file;
        from = "featspec.json";
    }
    if (!json_is_object(fs)) {
        json_decref(file);
        return kiln_err_at(err, KILN_ESPEC, "featspec.json",
                           "%s: the model carries no feature spec and there is no featspec.json "
                           "(a model trained on features kiln did not make cannot score windows)",
                           dir);
    }
    rc = jb_featspec_parse(fs, &e->spec, err);
    json_decref(file);
    if (rc < 0) {
        char msg[sizeof err->msg];
        snprintf(msg, sizeof msg, "%s", err->msg);
        return kiln_err_set(err, rc, "%s: %s: %s", dir, from, msg);
    }
    e->have_spec = 1;
    if (want && *want && strcmp(want, e->spec.sha256))
        return kiln_err_at(err, KILN_ESPEC, "featspec.json",
                           "%s: %s hashes to %.12s..., the model was trained on features of "
                           "spec %.12s...", dir, from, e->spec.sha256, want);
    snprintf(e->info.featspec_sha256, sizeof e->info.featspec_sha256, "%s", e->spec.sha256);
    return 0;
}

/* Channels from the spec, else from the model's feature names: the layout
 * is "<channel>.<feature>" per channel, then the rolling columns; every
 * name is checked against the model's, so a row built here is the row the
 * model was trained on. */
static int check_layout(ke_engine_t *e, const char *dir, kiln_err_t *err)
{
    const jb_featspec_t *s = &e->spec;
    const json_t *names = json_object_get(e->model.header, "feature_names");
    const size_t d = e->model.n_features, per = jb_featspec_per_channel(s);
    const size_t per_all = per + 2 * s->n_roll;
    char fname[JB_FEAT_NAME_MAX], want[2 * KE_NAME_MAX + 64];

    if (json_array_size(names) != d)
        return kiln_err_at(err, KILN_EFORMAT, "model.kmodel",
                           "%s/model.kmodel: header lists %zu feature names, the scaler has %zu",
                           dir, json_array_size(names), d);
    if (per_all == 0 || d % per_all || d / per_all == 0 || d / per_all > KE_MAX_CHANNELS)
        return kiln_err_at(err, KILN_ESPEC, "feature_names",
                           "%s: %zu model features are not a whole number of channels of %zu "
                           "features each", dir, d, per_all);
    e->info.n_channels = d / per_all;
    if (s->n_channels && s->n_channels != e->info.n_channels)
        return kiln_err_at(err, KILN_ESPEC, "features.channels",
                           "%s: the spec names %zu channels, the model has %zu", dir,
                           s->n_channels, e->info.n_channels);
    jb_featspec_feature_name(s, 0, fname);
    for (size_t c = 0; c < e->info.n_channels; c++) {
        const char *first = json_string_value(json_array_get(names, c * per));
        if (s->n_channels) {
            snprintf(e->info.channels[c], KE_NAME_MAX, "%s", s->channels[c]);
            continue;
        }
        size_t fl = strlen(fname), n = first ? strlen(first) : 0;
        if (!first || n <= fl + 1 || strcmp(first + n - fl, fname) || first[n - fl - 1] != '.' ||
            n - fl - 1 >= KE_NAME_MAX)
            return kiln_err_at(err, KILN_ESPEC, "feature_names",
                               "%s: model feature %zu is '%s', not '<channel>.%s'", dir, c * per,
                               first ? first : "?", fname);
        memcpy(e->info.channels[c], first, n - fl - 1);
        e->info.channels[c][n - fl - 1] = 0;
    }
    size_t col = 0;
    for (size_t c = 0; c < e->info.n_channels; c++)
        for (size_t f = 0; f < per; f++, col++) {
            jb_featspec_feature_name(s, f, fname);
            snprintf(want, sizeof want, "%s.%s", e->info.channels[c], fname);
            const char *have = json_string_value(json_array_get(names, col));
            if (!have || strcmp(have, want))
                return kiln_err_at(err, KILN_ESPEC, "feature_names",
                                   "%s: model feature %zu is '%s', the spec makes '%s'", dir, col,
                                   have ? have : "?", want);
        }
    for (size_t c = 0; c < e->info.n_channels; c++)
        for (size_t f = 0; f < s->n_roll; f++)
            for (int half = 0; half < 2; half++, col++) {
                jb_featspec_feature_name(s, (size_t)s->roll_of[f], fname);
                snprintf(want, sizeof want, "%s.%s.roll%zu_%s", e->info.channels[c], fname,
                         s->rolling_k, half ? "std" : "mean");
                const char *have = json_string_value(json_array_get(names, col));
                if (!have || strcmp(have, want))
                    return kiln_err_at(err, KILN_ESPEC, "feature_names",
                                       "%s: model feature %zu is '%s', the spec makes '%s'", dir,
                                       col, have ? have : "?", want);
            }
    return 0;
}

static int alloc_state(ke_engine_t *e, const ke_engine_opts_t *opts, kiln_err_t *err)
{
    const size_t d = e->model.n_features;
    e->row = kiln_calloc(d, sizeof *e->row);
    e->z = kiln_calloc(d, sizeof *e->z);
    e->scores = kiln_calloc(e->info.n_outputs, sizeof *e->scores);
    if (!e->row || !e->z || !e->scores)
        return kiln_err_set(err, KILN_ENOMEM, "edge: out of memory for a feature row");
    if (e->model.kind->ws_new && !(e->predict_ws = e->model.kind->ws_new(e->model.model)))
        return kiln_err_set(err, KILN_ENOMEM, "edge: out of memory for the model's workspace");
    e->n_rings = e->info.n_channels * e->spec.n_roll;
    e->k = e->spec.rolling_k;
    if (!e->n_rings)
        return 0;
    size_t want = opts && opts->max_assets ? opts->max_assets : KE_ASSETS_DEFAULT;
    if (want > KE_ASSETS_MAX)
        want = KE_ASSETS_MAX;
    e->max_assets = want;
    e->assets = kiln_calloc(want, sizeof *e->assets);
    e->ring_arena = kiln_calloc(want * e->n_rings, sizeof *e->ring_arena);
    e->value_arena = kiln_calloc(want * e->n_rings * e->k, sizeof *e->value_arena);
    if (!e->assets || !e->ring_arena || !e->value_arena)
        return kiln_err_set(err, KILN_ENOMEM,
                            "edge: out of memory for rolling state of %zu assets", want);
    for (size_t a = 0; a < want; a++) {
        e->assets[a].rings = e->ring_arena + a * e->n_rings;
        for (size_t r = 0; r < e->n_rings; r++) {
            kn_rolling_t *ring = &e->assets[a].rings[r];
            ring->k = e->k;
            ring->values = e->value_arena + (a * e->n_rings + r) * e->k;
        }
    }
    return 0;
}

/* A deterministic window: two tones per channel and a little LCG noise. */
static void selftest_window(float *x, size_t n_channels, size_t len, double rate)
{
    uint32_t s = 12345;
    for (size_t c = 0; c < n_channels; c++)
        for (size_t i = 0; i < len; i++) {
            s = s * 1664525u + 1013904223u;
            double t = (double)i / rate;
            x[c * len + i] = (float)(sin(2 * M_PI * (157.0 + 10.0 * (double)c) * t) +
                                     0.3 * sin(2 * M_PI * 1021.0 * t) +
                                     0.05 * ((double)(s >> 8) / 16777216.0 - 0.5));
        }
}

static int selftest(ke_engine_t *e, const char *dir, kiln_err_t *err)
{
    char path[4300];
    unsigned char *bytes = NULL;
    size_t len = 0;
    float *x = NULL;
    ke_window_t w = {.asset = 0, .timestamp_ns = 0, .n_channels = e->info.n_channels};
    int rc;

    snprintf(path, sizeof path, "%s/selftest.window", dir);
    rc = read_file(path, &bytes, &len, KE_FRAME_MAX_BYTES, err);
    if (rc == 0) {
        ke_frame_hdr_t h;
        if (len < KE_FRAME_HEADER_BYTES || (rc = ke_frame_parse_header(bytes, len, &h, err)) < 0 ||
            h.frame_bytes != len) {
            if (rc == 0)
                rc = kiln_err_at(err, KILN_EFORMAT, path, "%s: not one window frame", path);
            goto out;
        }
        if (!(x = kiln_malloc(h.n_channels * h.window_len * sizeof *x))) {
            rc = kiln_err_set(err, KILN_ENOMEM, "%s: out of memory", path);
            goto out;
        }
        ke_frame_samples(bytes, &h, x);
        w.n_channels = h.n_channels;
        w.window_len = h.window_len;
        w.sample_rate_hz = h.sample_rate_hz;
    } else if (rc == KILN_ENOTFOUND) {
        w.window_len = e->info.window_len ? e->info.window_len : KE_SELFTEST_LEN;
        w.sample_rate_hz = e->info.sample_rate_hz > 0 ? e->info.sample_rate_hz : KE_SELFTEST_RATE;
        if (!(x = kiln_malloc(w.n_channels * w.window_len * sizeof *x))) {
            rc = kiln_err_set(err, KILN_ENOMEM, "edge: out of memory for the self-test");
            goto out;
        }
        selftest_window(x, w.n_channels, w.window_len, w.sample_rate_hz);
        rc = 0;
    } else {
        goto out;
    }
    w.samples = x;
    ke_result_t r;
    if ((rc = ke_engine_score(e, &w, &r, err)) < 0) {
        char msg[sizeof err->msg];
        snprintf(msg, sizeof msg, "%s", err->msg);
        kiln_err_set(err, rc, "%s: self-test: %s", dir, msg);
        goto out;
    }
    for (size_t i = 0; i < r.n_outputs; i++)
        if (!isfinite(r.scores[i])) {
            rc = kiln_err_at(err, KILN_ENONFINITE, "self-test",
                             "%s: self-test: score %zu is %g: the model is broken", dir, i,
                             (double)r.scores[i]);
            goto out;
        }
out:
    ke_engine_reset_assets(e);
    kiln_free(bytes);
    kiln_free(x);
    return rc;
}

int ke_engine_load(const char *dir, const ke_engine_opts_t *opts, ke_engine_t **out,
                   kiln_err_t *err)
{
    char path[4300];
    unsigned char *bytes = NULL;
    size_t len = 0;
    int rc;

    *out = NULL;
    ke_engine_t *e = kiln_calloc(1, sizeof *e);
    if (!e)
        return kiln_err_set(err, KILN_ENOMEM, "edge: out of memory");
    if ((rc = read_manifest(e, dir, err)) < 0)
        goto fail;
    snprintf(path, sizeof path, "%s/model.kmodel", dir);
    if ((rc = read_file(path, &bytes, &len, JB_MODELFILE_MAX, err)) < 0)
        goto fail;
    st_sha256_t h;
    uint8_t digest[32];
    st_sha256_init(&h);
    st_sha256_update(&h, bytes, len);
    st_sha256_final(&h, digest);
    st_sha256_hex(digest, e->info.model_sha256);
    rc = jb_modelfile_parse(bytes, len, &e->model, err);
    kiln_free(bytes);
    if (rc < 0) {
        char msg[sizeof err->msg];
        snprintf(msg, sizeof msg, "%s", err->msg);
        kiln_err_at(err, rc, path, "%s: %s", path, msg);
        goto fail;
    }
    e->have_model = 1;
    snprintf(e->info.kind, sizeof e->info.kind, "%s", e->model.kind->name);
    e->info.n_features = e->model.n_features;
    e->info.n_outputs = e->model.kind->n_outputs(e->model.model);
    if (e->info.n_outputs == 0 || e->info.n_outputs > KE_MAX_OUTPUTS) {
        rc = kiln_err_at(err, KILN_EUNSUPPORTED, path, "%s: %zu outputs (1..%d supported)", path,
                         e->info.n_outputs, KE_MAX_OUTPUTS);
        goto fail;
    }
    const json_t *classes = json_object_get(e->model.header, "class_names");
    const char *learn = json_string_value(json_object_get(e->model.header, "learn"));
    e->info.n_classes = json_array_size(classes);
    if (e->info.n_classes > KE_MAX_OUTPUTS) {
        rc = kiln_err_at(err, KILN_EUNSUPPORTED, path, "%s: %zu classes", path, e->info.n_classes);
        goto fail;
    }
    for (size_t i = 0; i < e->info.n_classes; i++)
        if (!(e->class_names[i] = json_string_value(json_array_get(classes, i)))) {
            rc = kiln_err_at(err, KILN_EFORMAT, path, "%s: class_names[%zu] is not a string",
                             path, i);
            goto fail;
        }
    e->info.class_names = e->class_names;
    e->per_class_pred = (learn && !strcmp(learn, "label")) || e->model.kind->unsupervised;
    if ((rc = read_spec(e, dir, err)) < 0 || (rc = check_layout(e, dir, err)) < 0 ||
        (rc = alloc_state(e, opts, err)) < 0 || (rc = selftest(e, dir, err)) < 0)
        goto fail;
    *out = e;
    return 0;
fail:
    ke_engine_free(&e);
    return rc;
}

void ke_engine_free(ke_engine_t **ep)
{
    ke_engine_t *e = ep ? *ep : NULL;
    if (!e)
        return;
    for (size_t i = 0; i < KE_SHAPES_MAX; i++)
        if (e->shapes[i].used)
            jb_featctx_free(&e->shapes[i].ctx);
    kiln_free_aligned(e->scratch);
    kiln_free_aligned(e->signal);
    kiln_free(e->row);
    kiln_free(e->z);
    kiln_free(e->scores);
    if (e->predict_ws)
        e->model.kind->ws_free(e->predict_ws);
    kiln_free(e->assets);
    kiln_free(e->ring_arena);
    kiln_free(e->value_arena);
    if (e->have_spec)
        jb_featspec_free(&e->spec);
    if (e->have_model)
        jb_modelfile_free(&e->model);
    kiln_free(e);
    *ep = NULL;
}

const ke_model_info_t *ke_engine_info(const ke_engine_t *e) { return &e->info; }

void ke_engine_reset_assets(ke_engine_t *e)
{
    for (size_t a = 0; a < e->max_assets; a++) {
        e->assets[a].used = 0;
        for (size_t r = 0; r < e->n_rings; r++)
            e->assets[a].rings[r].count = e->assets[a].rings[r].head = 0;
    }
    e->n_assets_used = 0;
}

/* ---- scoring ---------------------------------------------------------- */

/* The featurization context of this shape, made on its first use (the
 * only allocation on the scoring path, once per shape). */
static int get_shape(ke_engine_t *e, size_t len, double rate, jb_featctx_t **ctx,
                     kiln_err_t *err)
{
    shape_t *victim = &e->shapes[0];
    e->tick++;
    for (size_t i = 0; i < KE_SHAPES_MAX; i++) {
        shape_t *s = &e->shapes[i];
        if (s->used && s->window_len == len && s->sample_rate_hz == rate) {
            s->last_use = e->tick;
            *ctx = &s->ctx;
            return 0;
        }
        if (!s->used || (victim->used && s->last_use < victim->last_use))
            victim = s;
    }
    if (victim->used) {
        jb_featctx_free(&victim->ctx);
        victim->used = 0;
    }
    int rc = jb_featctx_init(&victim->ctx, &e->spec, len, rate, err);
    if (rc < 0)
        return rc;
    size_t need = jb_featctx_scratch_floats(&victim->ctx);
    if (need > e->scratch_floats) {
        float *s = kiln_malloc_aligned(need * sizeof(float));
        if (!s) {
            jb_featctx_free(&victim->ctx);
            return kiln_err_set(err, KILN_ENOMEM, "edge: out of memory for window scratch");
        }
        kiln_free_aligned(e->scratch);
        e->scratch = s;
        e->scratch_floats = need;
    }
    size_t sig = e->info.n_channels * len;
    if (sig > e->signal_floats) {
        float *s = kiln_malloc_aligned(sig * sizeof(float));
        if (!s) {
            jb_featctx_free(&victim->ctx);
            return kiln_err_set(err, KILN_ENOMEM, "edge: out of memory for a window");
        }
        kiln_free_aligned(e->signal);
        e->signal = s;
        e->signal_floats = sig;
    }
    victim->used = 1;
    victim->window_len = len;
    victim->sample_rate_hz = rate;
    victim->last_use = e->tick;
    *ctx = &victim->ctx;
    return 0;
}

/* This asset's rings; past max_assets the least recently seen asset's are
 * reused (its rolling features start again, as a new featurize run's do). */
static kn_rolling_t *asset_rings(ke_engine_t *e, int32_t asset)
{
    asset_t *victim = NULL;
    for (size_t a = 0; a < e->max_assets; a++) {
        asset_t *s = &e->assets[a];
        if (s->used && s->asset == asset) {
            s->last_use = e->tick;
            return s->rings;
        }
        if (!victim || (victim->used && (!s->used || s->last_use < victim->last_use)))
            victim = s;
    }
    for (size_t r = 0; r < e->n_rings; r++)
        victim->rings[r].count = victim->rings[r].head = 0;
    if (!victim->used)
        e->n_assets_used++;
    victim->used = 1;
    victim->asset = asset;
    victim->last_use = e->tick;
    return victim->rings;
}

int ke_engine_score(ke_engine_t *e, const ke_window_t *w, ke_result_t *r, kiln_err_t *err)
{
    const ke_model_info_t *in = &e->info;
    const jb_featspec_t *s = &e->spec;
    jb_featctx_t *ctx = NULL;
    int rc;

    if (w->n_channels != in->n_channels)
        return kiln_err_at(err, KILN_ESHAPE, "n_channels",
                           "window of asset %d: %zu channels, model %s@%s takes %zu",
                           (int)w->asset, w->n_channels, in->name, in->version, in->n_channels);
    if (w->window_len < 1 || w->window_len > KE_MAX_WINDOW_LEN ||
        (in->window_len && w->window_len != in->window_len))
        return kiln_err_at(err, KILN_ESHAPE, "window_len",
                           "window of asset %d: %zu samples, model %s@%s takes %zu", (int)w->asset,
                           w->window_len, in->name, in->version, in->window_len);
    if (!(w->sample_rate_hz > 0) || !isfinite(w->sample_rate_hz) ||
        (in->sample_rate_hz > 0 && w->sample_rate_hz != in->sample_rate_hz))
        return kiln_err_at(err, KILN_ESHAPE, "sample_rate_hz",
                           "window of asset %d: %g Hz, model %s@%s takes %g Hz", (int)w->asset,
                           w->sample_rate_hz, in->name, in->version, in->sample_rate_hz);
    if ((rc = get_shape(e, w->window_len, w->sample_rate_hz, &ctx, err)) < 0)
        return rc;
    /* The cluster featurizes from 64-byte aligned batch buffers: so do we. */
    const size_t L = w->window_len, per = ctx->per_channel, C = in->n_channels;
    memcpy(e->signal, w->samples, C * L * sizeof(float));
    for (size_t c = 0; c < C; c++)
        jb_featctx_window(ctx, e->signal + c * L, e->row + c * per, e->scratch);
    if (e->n_rings) {
        kn_rolling_t *rings = asset_rings(e, w->asset);
        float *roll = e->row + C * per;
        for (size_t c = 0; c < C; c++)
            for (size_t f = 0; f < s->n_roll; f++) {
                double mean, std;
                size_t q = c * s->n_roll + f;
                kn_rolling_push(&rings[q], e->row[c * per + (size_t)s->roll_of[f]], &mean, &std);
                roll[2 * q] = (float)mean;
                roll[2 * q + 1] = (float)std;
            }
    }
    /* jb_modelfile_predict's two steps, into buffers made at load (the
     * kind's workspace too: the same results, no allocation). */
    e->pred = -1;
    const jb_model_kind_t *kind = e->model.kind;
    if ((rc = km_scaler_transform(e->model.scaler, e->row, 1, in->n_features, e->z, err)) < 0 ||
        (rc = e->predict_ws ? kind->predict_ws(e->model.model, e->predict_ws, e->z, 1, e->scores,
                                               &e->pred, err)
                            : kind->predict(e->model.model, e->z, 1, e->scores, &e->pred, err)) < 0)
        return rc;
    r->asset = w->asset;
    r->timestamp_ns = w->timestamp_ns;
    r->n_outputs = in->n_outputs;
    r->scores = e->scores;
    r->predicted = e->pred;
    r->class_name = e->per_class_pred && e->pred >= 0 && (size_t)e->pred < in->n_classes ? e->class_names[e->pred]
                                                                    : NULL;
    r->n_features = in->n_features;
    r->features = e->row;
    return 0;
}

const char *ke_engine_feature_name(const ke_engine_t *e, size_t i)
{
    return json_string_value(json_array_get(json_object_get(e->model.header, "feature_names"), i));
}
