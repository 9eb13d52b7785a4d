/* cmd_inspect.c - `kiln inspect [--verify] [--json] FILE`: what a sensor or
 * feature dataset holds (schema, shape, channels or features, per-class
 * counts, target range, assets, hash), read in bounded blocks so a file of
 * any size inspects in constant memory; --verify recomputes the hash. */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/kiln_alloc.h"
#include "../storage/features.h"
#include "../storage/predictions.h"
#include "../storage/sensor.h"
#include "cli.h"

#define BLOCK_ROWS 65536

static void usage(FILE *f)
{
    fprintf(f, "usage: kiln inspect [--verify] [--json] FILE.h5\n"
               "Prints a sensor or feature dataset's schema, shape, sample rate, channels or\n"
               "features, label counts, target range, assets, creation time and content hash.\n"
               "--verify recomputes the content hash from the data (exit 1 on mismatch).\n");
}

/* What the per-row columns hold, gathered block by block. */
typedef struct {
    size_t   n_labels;                   /* label names */
    uint64_t label_counts[ST_MAX_LABELS];
    uint64_t unknown;                    /* label -1 (or no /label) */
    double   target_min, target_max, target_sum;
    int32_t *assets;                     /* open-addressing set of distinct ids */
    size_t   assets_cap, n_assets;
    int      assets_capped;              /* stopped counting at INSPECT_MAX_ASSETS */
} summary_t;

/* Distinct assets are counted up to here (a 32 MiB set); past it inspect
 * says "more than" instead of growing with the file. */
#define INSPECT_MAX_ASSETS (4u << 20)

static int asset_add(summary_t *s, int32_t id)
{
    if (s->n_assets >= INSPECT_MAX_ASSETS) {
        s->assets_capped = 1;
        return 0;
    }
    if (2 * (s->n_assets + 1) > s->assets_cap) {
        size_t cap = s->assets_cap ? 2 * s->assets_cap : 64;
        int32_t *grown = kiln_malloc(cap * sizeof *grown);
        if (!grown)
            return -1;
        for (size_t i = 0; i < cap; i++)
            grown[i] = INT32_MIN;        /* empty slot (INT32_MIN itself kept apart) */
        int32_t *old = s->assets;
        size_t old_cap = s->assets_cap;
        s->assets = grown;
        s->assets_cap = cap;
        s->n_assets = 0;
        for (size_t i = 0; i < old_cap; i++)
            if (old[i] != INT32_MIN)
                asset_add(s, old[i]);
        kiln_free(old);
    }
    size_t mask = s->assets_cap - 1, i = ((uint32_t)id * 2654435761u) & mask;
    while (s->assets[i] != INT32_MIN) {
        if (s->assets[i] == id)
            return 0;
        i = (i + 1) & mask;
    }
    s->assets[i] = id;
    s->n_assets++;
    return 0;
}

typedef int (*read_meta_fn)(void *ds, size_t row0, size_t n, int32_t *asset, int32_t *label,
                            float *target, kiln_err_t *err);

static int sensor_read_meta(void *ds, size_t row0, size_t n, int32_t *asset, int32_t *label,
                            float *target, kiln_err_t *err)
{
    return st_sensor_read_meta(ds, row0, n, asset, NULL, label, target, err);
}

static int features_read_meta(void *ds, size_t row0, size_t n, int32_t *asset, int32_t *label,
                              float *target, kiln_err_t *err)
{
    return st_features_read_meta(ds, row0, n, asset, NULL, label, target, err);
}

static int summarize(void *ds, read_meta_fn read_meta, size_t n_rows, size_t n_labels,
                     summary_t *s, int *int32_min_asset, kiln_err_t *err)
{
    int32_t *asset = kiln_malloc(BLOCK_ROWS * sizeof *asset);
    int32_t *label = kiln_malloc(BLOCK_ROWS * sizeof *label);
    float *target = kiln_malloc(BLOCK_ROWS * sizeof *target);
    int rc = 0;
    memset(s, 0, sizeof *s);
    s->n_labels = n_labels;
    *int32_min_asset = 0;
    if (!asset || !label || !target) {
        rc = kiln_err_set(err, KILN_ENOMEM, "out of memory");
        goto out;
    }
    for (size_t r = 0; r < n_rows; r += BLOCK_ROWS) {
        size_t n = n_rows - r < BLOCK_ROWS ? n_rows - r : BLOCK_ROWS;
        if ((rc = read_meta(ds, r, n, asset, label, target, err)) < 0)
            goto out;
        for (size_t i = 0; i < n; i++) {
            if (label[i] >= 0 && (size_t)label[i] < ST_MAX_LABELS)
                s->label_counts[label[i]]++;
            else
                s->unknown++;
            double t = target[i];
            if (r + i == 0 || t < s->target_min)
                s->target_min = t;
            if (r + i == 0 || t > s->target_max)
                s->target_max = t;
            s->target_sum += t;
            if (asset[i] == INT32_MIN)
                *int32_min_asset = 1;
            else if (asset_add(s, asset[i]) < 0) {
                rc = kiln_err_set(err, KILN_ENOMEM, "out of memory");
                goto out;
            }
        }
    }
out:
    kiln_free(asset);
    kiln_free(label);
    kiln_free(target);
    return rc;
}

typedef struct {
    const char *schema, *created, *content_sha256;
    size_t      n_rows, row_len;
    int         has_label, has_target;
    size_t      n_label_names;
    const char *const *label_names;
} common_t;

static void print_text(const common_t *c, const summary_t *s, size_t n_assets,
                       const char *verify, const char *recomputed)
{
    if (c->has_label || c->n_label_names) {
        printf("labels:         ");
        for (size_t i = 0; i < c->n_label_names; i++)
            printf(" %s=%llu%s", c->label_names[i], (unsigned long long)s->label_counts[i],
                   i + 1 < c->n_label_names || s->unknown ? "," : "");
        if (s->unknown || !c->n_label_names)
            printf(" unknown=%llu", (unsigned long long)s->unknown);
        printf("%s\n", c->has_label ? "" : " (no /label)");
    } else {
        printf("labels:          none\n");
    }
    if (c->has_target)
        printf("target:          present, min %g, mean %g, max %g\n", s->target_min,
               c->n_rows ? s->target_sum / (double)c->n_rows : 0.0, s->target_max);
    else
        printf("target:          none\n");
    printf("assets:          %s%zu\n", s->assets_capped ? "more than " : "", n_assets);
    printf("created:         %s\n", c->created ? c->created : "(unknown)");
    printf("content_sha256:  %s\n", c->content_sha256 ? c->content_sha256 : "(none)");
    if (verify) {
        if (!strcmp(verify, "OK"))
            printf("verify:          OK\n");
        else
            printf("verify:          MISMATCH (recomputed %s)\n", recomputed);
    }
}

static json_t *common_json(const char *path, const common_t *c, const summary_t *s,
                           size_t n_assets, const char *verify, const char *recomputed)
{
    json_t *o = json_object(), *labels = json_array(), *counts = json_object();
    json_object_set_new(o, "path", json_string(path));
    json_object_set_new(o, "schema", json_string(c->schema));
    for (size_t i = 0; i < c->n_label_names; i++) {
        json_array_append_new(labels, json_string(c->label_names[i]));
        json_object_set_new(counts, c->label_names[i], json_integer((json_int_t)s->label_counts[i]));
    }
    json_object_set_new(counts, "unknown", json_integer((json_int_t)s->unknown));
    json_object_set_new(o, "label_names", labels);
    json_object_set_new(o, "has_label", json_boolean(c->has_label));
    json_object_set_new(o, "label_counts", counts);
    json_object_set_new(o, "has_target", json_boolean(c->has_target));
    if (c->has_target)
        json_object_set_new(o, "target", json_pack("{s:f, s:f, s:f}", "min", s->target_min,
                                                   "mean", c->n_rows ? s->target_sum / (double)c->n_rows : 0.0,
                                                   "max", s->target_max));
    json_object_set_new(o, "assets", json_integer((json_int_t)n_assets));
    if (s->assets_capped)
        json_object_set_new(o, "assets_more_than", json_true());
    json_object_set_new(o, "created", c->created ? json_string(c->created) : json_null());
    json_object_set_new(o, "content_sha256",
                        c->content_sha256 ? json_string(c->content_sha256) : json_null());
    if (verify) {
        json_object_set_new(o, "verify", json_string(verify));
        json_object_set_new(o, "recomputed_sha256", json_string(recomputed));
    }
    return o;
}

static int fail(const kiln_err_t *err)
{
    fprintf(stderr, "kiln inspect: %s\n", err->msg);
    return 1;
}

static int emit(json_t *o)
{
    if (!o || json_dumpf(o, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER) != 0) {
        json_decref(o);
        fprintf(stderr, "kiln inspect: cannot write JSON\n");
        return 1;
    }
    fputc('\n', stdout);
    json_decref(o);
    return 0;
}

static const char *verdict(const char *stored, const char *recomputed)
{
    return stored && !strcmp(stored, recomputed) ? "OK" : "MISMATCH";
}

static int inspect_sensor(const char *path, int verify, int as_json)
{
    kiln_err_t err;
    st_sensor_t *ds = NULL;
    summary_t s;
    int int32_min_asset = 0, rc;
    char recomputed[65] = "";
    if (st_sensor_open(path, &ds, &err) < 0)
        return fail(&err);
    const st_sensor_meta_t *m = st_sensor_meta(ds);
    if (summarize(ds, sensor_read_meta, m->n_windows, m->n_label_names, &s, &int32_min_asset,
                  &err) < 0 ||
        (verify && st_sensor_hash(ds, recomputed, &err) < 0)) {
        kiln_free(s.assets);
        st_sensor_close(&ds);
        return fail(&err);
    }
    const char *v = verify ? verdict(m->content_sha256, recomputed) : NULL;
    common_t c = {ST_SENSOR_SCHEMA, m->created, m->content_sha256, m->n_windows, m->window_len,
                  m->has_label, m->has_target, m->n_label_names, m->label_names};
    size_t n_assets = s.n_assets + (size_t)int32_min_asset;
    if (as_json) {
        json_t *o = common_json(path, &c, &s, n_assets, v, recomputed), *ch = json_array();
        json_object_set_new(o, "n_windows", json_integer((json_int_t)m->n_windows));
        json_object_set_new(o, "window_len", json_integer((json_int_t)m->window_len));
        json_object_set_new(o, "sample_rate_hz", json_real(m->sample_rate_hz));
        for (size_t i = 0; i < m->n_channels; i++)
            json_array_append_new(ch, json_string(m->channels[i]));
        json_object_set_new(o, "channels", ch);
        json_object_set_new(o, "source", json_string(m->source ? m->source : ""));
        rc = emit(o);
    } else {
        printf("path:            %s\nschema:          %s\n", path, c.schema);
        printf("shape:           %zu windows x %zu samples\n", m->n_windows, m->window_len);
        printf("sample rate:     %g Hz (window %.6g s)\n", m->sample_rate_hz,
               (double)m->window_len / m->sample_rate_hz);
        printf("channels:        %zu:", m->n_channels);
        for (size_t i = 0; i < m->n_channels; i++)
            printf(" %s", m->channels[i]);
        printf("\nsource:          %s\n", m->source && *m->source ? m->source : "(none)");
        print_text(&c, &s, n_assets, v, recomputed);
        rc = 0;
    }
    kiln_free(s.assets);
    st_sensor_close(&ds);
    return rc ? rc : (v && strcmp(v, "OK") ? 1 : 0);
}

static int inspect_features(const char *path, int verify, int as_json)
{
    kiln_err_t err;
    st_features_t *ds = NULL;
    summary_t s;
    int int32_min_asset = 0, rc;
    char recomputed[65] = "";
    if (st_features_open(path, &ds, &err) < 0)
        return fail(&err);
    const st_features_meta_t *m = st_features_meta(ds);
    if (summarize(ds, features_read_meta, m->n_rows, m->n_label_names, &s, &int32_min_asset,
                  &err) < 0 ||
        (verify && st_features_hash(ds, recomputed, &err) < 0)) {
        kiln_free(s.assets);
        st_features_close(&ds);
        return fail(&err);
    }
    const char *v = verify ? verdict(m->content_sha256, recomputed) : NULL;
    common_t c = {ST_FEATURES_SCHEMA, m->created, m->content_sha256, m->n_rows, m->n_features,
                  m->has_label, m->has_target, m->n_label_names, m->label_names};
    size_t n_assets = s.n_assets + (size_t)int32_min_asset;
    if (as_json) {
        json_t *o = common_json(path, &c, &s, n_assets, v, recomputed), *names = json_array();
        json_object_set_new(o, "n_rows", json_integer((json_int_t)m->n_rows));
        json_object_set_new(o, "n_features", json_integer((json_int_t)m->n_features));
        for (size_t i = 0; i < m->n_features; i++)
            json_array_append_new(names, json_string(m->feature_names[i]));
        json_object_set_new(o, "feature_names", names);
        json_object_set_new(o, "source_sha256", json_string(m->source_sha256 ? m->source_sha256 : ""));
        json_object_set_new(o, "spec_sha256", json_string(m->spec_sha256 ? m->spec_sha256 : ""));
        rc = emit(o);
    } else {
        printf("path:            %s\nschema:          %s\n", path, c.schema);
        printf("shape:           %zu rows x %zu features\n", m->n_rows, m->n_features);
        printf("features:       ");
        for (size_t i = 0; i < m->n_features && i < 12; i++)
            printf(" %s", m->feature_names[i]);
        if (m->n_features > 12)
            printf(" ... (%zu more)", m->n_features - 12);
        printf("\nsource_sha256:   %s\n", m->source_sha256 && *m->source_sha256 ? m->source_sha256 : "(none)");
        printf("spec_sha256:     %s\n", m->spec_sha256 && *m->spec_sha256 ? m->spec_sha256 : "(none)");
        print_text(&c, &s, n_assets, v, recomputed);
        rc = 0;
    }
    kiln_free(s.assets);
    st_features_close(&ds);
    return rc ? rc : (v && strcmp(v, "OK") ? 1 : 0);
}

static int predictions_read_meta(void *ds, size_t row0, size_t n, int32_t *asset,
                                 int32_t *label, float *target, kiln_err_t *err)
{
    return st_predictions_read_meta(ds, row0, n, asset, NULL, label, target, err);
}

static int inspect_predictions(const char *path, int verify, int as_json)
{
    kiln_err_t err;
    st_predictions_t *ds = NULL;
    summary_t s;
    int int32_min_asset = 0, rc;
    char recomputed[65] = "";
    if (st_predictions_open(path, &ds, &err) < 0)
        return fail(&err);
    const st_predictions_meta_t *m = st_predictions_meta(ds);
    if (summarize(ds, predictions_read_meta, m->n_rows, m->n_class_names, &s, &int32_min_asset,
                  &err) < 0 ||
        (verify && st_predictions_hash(ds, recomputed, &err) < 0)) {
        kiln_free(s.assets);
        st_predictions_close(&ds);
        return fail(&err);
    }
    const char *v = verify ? verdict(m->content_sha256, recomputed) : NULL;
    common_t c = {ST_PREDICTIONS_SCHEMA, m->created, m->content_sha256, m->n_rows, m->n_outputs,
                  m->has_label, m->has_target, m->n_class_names, m->class_names};
    size_t n_assets = s.n_assets + (size_t)int32_min_asset;
    if (as_json) {
        json_t *o = common_json(path, &c, &s, n_assets, v, recomputed), *names = json_array();
        json_object_set_new(o, "n_rows", json_integer((json_int_t)m->n_rows));
        for (size_t i = 0; i < m->n_outputs; i++)
            json_array_append_new(names, json_string(m->output_names[i]));
        json_object_set_new(o, "output_names", names);
        json_object_set_new(o, "model", json_string(m->model ? m->model : ""));
        json_object_set_new(o, "model_sha256", json_string(m->model_sha256 ? m->model_sha256 : ""));
        json_object_set_new(o, "source_sha256", json_string(m->source_sha256 ? m->source_sha256 : ""));
        rc = emit(o);
    } else {
        printf("path:            %s\nschema:          %s\n", path, c.schema);
        printf("shape:           %zu rows x %zu outputs\n", m->n_rows, m->n_outputs);
        printf("outputs:        ");
        for (size_t i = 0; i < m->n_outputs && i < 12; i++)
            printf(" %s", m->output_names[i]);
        printf("\nmodel:           %s (%s)\n", m->model ? m->model : "?",
               m->model_sha256 ? m->model_sha256 : "");
        printf("source_sha256:   %s\n", m->source_sha256 && *m->source_sha256 ? m->source_sha256 : "(none)");
        print_text(&c, &s, n_assets, v, recomputed);
        rc = 0;
    }
    kiln_free(s.assets);
    st_predictions_close(&ds);
    return rc ? rc : (v && strcmp(v, "OK") ? 1 : 0);
}

int kiln_cmd_inspect(int argc, char **argv)
{
    int verify = 0, as_json = 0;
    const char *path = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--verify")) {
            verify = 1;
        } else if (!strcmp(a, "--json")) {
            as_json = 1;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "kiln inspect: unknown option %s\n\n", a);
            usage(stderr);
            return 2;
        } else if (path) {
            fprintf(stderr, "kiln inspect: one file at a time (got %s and %s)\n\n", path, a);
            usage(stderr);
            return 2;
        } else {
            path = a;
        }
    }
    if (!path) {
        usage(stderr);
        return 2;
    }
    kiln_err_t err;
    char schema[64];
    if (st_dataset_schema(path, schema, &err) < 0)
        return fail(&err);
    if (!strcmp(schema, ST_SENSOR_SCHEMA))
        return inspect_sensor(path, verify, as_json);
    if (!strcmp(schema, ST_FEATURES_SCHEMA))
        return inspect_features(path, verify, as_json);
    if (!strcmp(schema, ST_PREDICTIONS_SCHEMA))
        return inspect_predictions(path, verify, as_json);
    fprintf(stderr, "kiln inspect: %s: /: schema '%s' is not %s, %s or %s\n", path, schema,
            ST_SENSOR_SCHEMA, ST_FEATURES_SCHEMA, ST_PREDICTIONS_SCHEMA);
    return 1;
}
