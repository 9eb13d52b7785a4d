/* type_score.c - the score job type (jobtype.h): a trained model file over
 * a feature dataset (or a sensor dataset, featurized on the way with the
 * feature spec the model was trained on) into kiln.predictions.v1.
 *
 *   {"type": "score", "name": "nightly", "model": "bearing@production",
 *    "input": "fleet.h5", "output": "preds.h5", "batch_rows": 65536}
 *
 * "model" is a registry reference: kilnd's resolve hook turns it, at
 * submit, into "model_file" (the artifact's path) and "model_id"
 * ("bearing@3"), so every task and retry scores with the same bytes.  A
 * spec may give "model_file" itself (how `kiln score` runs on this
 * machine); model_id is then the file's name.  The input is split into
 * row (features) or window (sensor) ranges; finish merges the shards in
 * order, so the output's content hash is that of one task over all. */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../core/kiln_alloc.h"
#include "../storage/artifacts.h"
#include "../storage/features.h"
#include "../storage/predictions.h"
#include "../storage/registry.h"
#include "../storage/sensor.h"
#include "../storage/sha256.h"
#include "featurize.h"
#include "jobspec.h"
#include "jobtype.h"
#include "modelfile.h"
#include "scoregpu.h"

#define SCORE_PATH_MAX 4096
#define SCORE_ID_MAX 256
#define SCORE_BATCH_DEFAULT 65536
#define SCORE_BATCH_MAX 1048576
/* A block's raw features stay under this (jb_modelfile_predict makes one
 * standardized copy more), whatever the feature count. */
#define SCORE_BLOCK_BYTES ((size_t)32 << 20)
#define MERGE_BYTES ((size_t)4 << 20)

typedef struct {
    char   input[SCORE_PATH_MAX];
    char   model_file[SCORE_PATH_MAX];
    char   model_id[SCORE_ID_MAX];
    size_t batch_rows;
    int    threads;
} score_t;

/* ---- spec --------------------------------------------------------------- */

static int get_path(const json_t *spec, const char *key, int required, char *out, size_t cap,
                    const char *what, kiln_err_t *err)
{
    const json_t *v = json_object_get(spec, key);
    out[0] = '\0';
    if (!v && !required)
        return 0;
    if (!json_is_string(v) || !json_string_length(v) || json_string_length(v) >= cap ||
        strlen(json_string_value(v)) != json_string_length(v))
        return kiln_err_at(err, KILN_ESPEC, key, "job: %s: %s", key, what);
    memcpy(out, json_string_value(v), json_string_length(v) + 1);
    return 0;
}

static int score_validate(const void *spec_, void **parsed, kiln_err_t *err)
{
    static const char *const keys[] = {"input", "output", "model", "model_file", "model_id",
                                       "batch_rows", NULL};
    const json_t *spec = spec_;
    jb_common_t c;
    char output[SCORE_PATH_MAX];
    int rc;
    *parsed = NULL;
    if ((rc = jb_spec_check_keys(spec, keys, err)) < 0 || (rc = jb_common_parse(spec, &c, err)) < 0)
        return rc;
    score_t *t = kiln_calloc(1, sizeof *t);
    if (!t)
        return kiln_err_set(err, KILN_ENOMEM, "job: out of memory");
    const json_t *ref = json_object_get(spec, "model");
    if ((rc = get_path(spec, "input", 1, t->input, sizeof t->input,
                       "a feature or sensor dataset path is required", err)) < 0 ||
        (rc = get_path(spec, "output", 1, output, sizeof output,
                       "the predictions file's path is required", err)) < 0)
        goto fail;
    if (ref && (!json_is_string(ref) || !json_string_length(ref))) {
        rc = kiln_err_at(err, KILN_ESPEC, "model",
                         "job: model: a registry reference (\"NAME\", \"NAME@VERSION\" or "
                         "\"NAME@ALIAS\") is required");
        goto fail;
    }
    if (!json_object_get(spec, "model_file")) {
        rc = ref ? kiln_err_at(err, KILN_ESPEC, "model_file",
                               "job: model_file: missing; the reference \"%s\" is resolved by "
                               "kilnd at submit (`kiln submit`); on this machine give the "
                               "model file (--model-file)", json_string_value(ref))
                 : kiln_err_at(err, KILN_ESPEC, "model",
                               "job: model: missing (a registry reference such as "
                               "\"bearing@production\", or model_file)");
        goto fail;
    }
    if ((rc = get_path(spec, "model_file", 1, t->model_file, sizeof t->model_file,
                       "must be the path of a .kmodel file", err)) < 0 ||
        (rc = get_path(spec, "model_id", 0, t->model_id, sizeof t->model_id,
                       "must be a model id of 1..255 bytes", err)) < 0)
        goto fail;
    for (const char *p = t->model_id; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f) {
            rc = kiln_err_at(err, KILN_ESPEC, "model_id", "job: model_id: control character");
            goto fail;
        }
    if (!t->model_id[0]) {
        const char *base = strrchr(t->model_file, '/');
        base = base && base[1] ? base + 1 : t->model_file;
        snprintf(t->model_id, sizeof t->model_id, "%.*s", (int)sizeof t->model_id - 1, base);
        for (char *p = t->model_id; *p; p++)
            if ((unsigned char)*p < 0x20 || *p == 0x7f)
                *p = '?';
    }
    const json_t *b = json_object_get(spec, "batch_rows");
    if (b && (!json_is_integer(b) || json_integer_value(b) < 1 ||
              json_integer_value(b) > SCORE_BATCH_MAX)) {
        rc = kiln_err_at(err, KILN_ESPEC, "batch_rows",
                         "job: batch_rows: must be an integer in 1..%d", SCORE_BATCH_MAX);
        goto fail;
    }
    t->batch_rows = b ? (size_t)json_integer_value(b) : SCORE_BATCH_DEFAULT;
    t->threads = c.resources.cores > 0 ? c.resources.cores : 1;
    *parsed = t;
    return 0;
fail:
    kiln_free(t);
    return rc;
}

static void score_free(void *parsed) { kiln_free(parsed); }

/* On kilnd's thread at submit: "model" -> "model_file" + "model_id".  A
 * reference wins over a model_file already in the spec. */
static int score_resolve(void *spec_, const jb_record_ctx_t *ctx, kiln_err_t *err)
{
    json_t *spec = spec_;
    const json_t *ref = json_is_object(spec) ? json_object_get(spec, "model") : NULL;
    if (!ref)
        return 0;                       /* model_file given, or validate says what is missing */
    if (!json_is_string(ref) || !json_string_length(ref) || json_string_length(ref) > 300)
        return kiln_err_at(err, KILN_ESPEC, "model",
                           "job: model: a registry reference (\"NAME\", \"NAME@VERSION\" or "
                           "\"NAME@ALIAS\") is required");
    st_model_t m;
    kiln_err_t rerr;
    kiln_err_clear(&rerr);
    int rc = st_registry_model_resolve(ctx->st, json_string_value(ref), &m, &rerr);
    if (rc < 0)
        return kiln_err_at(err, rc == KILN_ENOTFOUND ? KILN_ENOTFOUND : KILN_ESPEC, "model",
                           "job: model: %s", rerr.msg);
    char path[SCORE_PATH_MAX], id[SCORE_ID_MAX];
    if (st_artifact_path(ctx->artifacts, m.artifact_sha256, path, sizeof path) < 0)
        return kiln_err_at(err, KILN_EINVAL, "model", "job: model: artifact path too long");
    snprintf(id, sizeof id, "%s@%lld", m.name, (long long)m.version);
    if (json_object_set_new(spec, "model_file", json_string(path)) < 0 ||
        json_object_set_new(spec, "model_id", json_string(id)) < 0)
        return kiln_err_set(err, KILN_ENOMEM, "job: out of memory");
    return 0;
}

/* ---- the model file ------------------------------------------------------ */

/* Reads the model file once: its bytes' SHA-256 (the predictions' model
 * identity) and the parsed model. */
static int load_model(const score_t *t, jb_modelfile_t *m, char sha[65], kiln_err_t *err)
{
    memset(m, 0, sizeof *m);
    FILE *f = fopen(t->model_file, "rb");
    if (!f)
        return kiln_err_at(err, errno == ENOENT ? KILN_ENOTFOUND : KILN_EIO, "model_file",
                           "model_file: %s (model %s): %s", t->model_file, t->model_id,
                           strerror(errno));
    long size = fseek(f, 0, SEEK_END) == 0 ? ftell(f) : -1;
    rewind(f);
    if (size <= 0 || (size_t)size > JB_MODELFILE_MAX) {
        fclose(f);
        return kiln_err_at(err, KILN_EFORMAT, "model_file", "model_file: %s: not a model file (size)",
                           t->model_file);
    }
    unsigned char *bytes = kiln_malloc((size_t)size);
    if (!bytes) {
        fclose(f);
        return kiln_err_set(err, KILN_ENOMEM, "model_file: %s: out of memory", t->model_file);
    }
    size_t got = fread(bytes, 1, (size_t)size, f);
    fclose(f);
    int rc;
    if (got != (size_t)size) {
        rc = kiln_err_at(err, KILN_EIO, "model_file", "model_file: %s: short read", t->model_file);
    } else {
        st_sha256_t h;
        uint8_t digest[32];
        st_sha256_init(&h);
        st_sha256_update(&h, bytes, got);
        st_sha256_final(&h, digest);
        st_sha256_hex(digest, sha);
        if ((rc = jb_modelfile_parse(bytes, got, m, err)) < 0) {
            char msg[sizeof err->msg];
            snprintf(msg, sizeof msg, "%s", err->msg);
            kiln_err_at(err, rc, "model_file", "model_file: %s: %s", t->model_file, msg);
        }
    }
    kiln_free(bytes);
    return rc;
}

/* The model's feature spec, parsed; KILN_ESPEC naming "input" when it has
 * none (it was trained on features kiln did not make). */
static int model_featspec(const score_t *t, const jb_modelfile_t *m, jb_featspec_t *fs,
                          kiln_err_t *err)
{
    const json_t *v = json_object_get(m->header, "feature_spec");
    if (!json_is_object(v))
        return kiln_err_at(err, KILN_ESPEC, "input",
                           "input: %s is a sensor dataset, but model %s has no feature_spec "
                           "(it was not trained on kiln features); featurize the input and "
                           "score the features", t->input, t->model_id);
    int rc = jb_featspec_parse(v, fs, err);
    if (rc < 0) {
        char msg[sizeof err->msg];
        snprintf(msg, sizeof msg, "%s", err->msg);
        kiln_err_at(err, rc, "model_file", "model %s: its feature_spec: %s", t->model_id, msg);
    }
    return rc;
}

/* ---- plan --------------------------------------------------------------- */

typedef enum { INPUT_FEATURES, INPUT_SENSOR } input_kind_t;

static int input_kind(const score_t *t, input_kind_t *kind, kiln_err_t *err)
{
    char schema[64];
    int rc = st_dataset_schema(t->input, schema, err);
    if (rc < 0) {
        char msg[sizeof err->msg];
        snprintf(msg, sizeof msg, "%s", err->msg);
        return kiln_err_at(err, rc, "input", "input: %s", msg);
    }
    if (!strcmp(schema, ST_FEATURES_SCHEMA))
        *kind = INPUT_FEATURES;
    else if (!strcmp(schema, ST_SENSOR_SCHEMA))
        *kind = INPUT_SENSOR;
    else
        return kiln_err_at(err, KILN_ESCHEMA, "input",
                           "input: %s: schema '%s' is neither %s nor %s", t->input, schema,
                           ST_FEATURES_SCHEMA, ST_SENSOR_SCHEMA);
    return 0;
}

static int score_plan(const void *parsed, const jb_plan_ctx_t *ctx, jb_task_plan_t **tasks,
                      size_t *n_tasks, kiln_err_t *err)
{
    const score_t *t = parsed;
    input_kind_t kind = INPUT_FEATURES;
    size_t total = 0;
    int splittable = 1, rc;

    *tasks = NULL;
    *n_tasks = 0;
    if ((rc = input_kind(t, &kind, err)) < 0)
        return rc;
    if (kind == INPUT_FEATURES) {
        st_features_t *in = NULL;
        if ((rc = st_features_open(t->input, &in, err)) < 0)
            return rc;
        total = st_features_meta(in)->n_rows;
        st_features_close(&in);
    } else {
        st_sensor_t *in = NULL;
        if ((rc = st_sensor_open(t->input, &in, err)) < 0)
            return rc;
        total = st_sensor_meta(in)->n_windows;
        st_sensor_close(&in);
        /* Rolling features need each asset's earlier windows: one task, as
         * a featurize job with them is (type_featurize.c). */
        jb_modelfile_t m;
        jb_featspec_t fs;
        char sha[65];
        if ((rc = load_model(t, &m, sha, err)) < 0)
            return rc;
        rc = model_featspec(t, &m, &fs, err);
        jb_modelfile_free(&m);
        if (rc < 0)
            return rc;
        splittable = fs.n_roll == 0;
        jb_featspec_free(&fs);
    }
    return jb_plan_even(ctx, total, splittable, "score", tasks, n_tasks, err);
}

/* ---- run a task ---------------------------------------------------------- */

/* What the predictions say about the model, from its header. */
typedef struct {
    st_predictions_meta_t meta;
    char   out_names[ST_PRED_MAX_OUTPUTS][24];
    int32_t label_map[ST_MAX_LABELS];       /* input label -> model class, -1 unknown */
    size_t  n_label_map;
} pred_header_t;

static int fill_header(const score_t *t, const jb_modelfile_t *m, const char *model_sha,
                       const st_features_meta_t *fm, const char *source_sha, pred_header_t *h,
                       kiln_err_t *err)
{
    st_predictions_meta_t *pm = &h->meta;
    const json_t *classes = json_object_get(m->header, "class_names");
    const char *learn = json_string_value(json_object_get(m->header, "learn"));
    size_t n_out = m->kind->n_outputs(m->model);
    memset(pm, 0, sizeof *pm);
    if (n_out == 0 || n_out > ST_PRED_MAX_OUTPUTS)
        return kiln_err_at(err, KILN_EUNSUPPORTED, "model_file",
                           "model %s: %zu outputs (1..%d supported)", t->model_id, n_out,
                           ST_PRED_MAX_OUTPUTS);
    pm->n_class_names = json_array_size(classes);
    if (pm->n_class_names > ST_PRED_MAX_CLASSES)
        return kiln_err_at(err, KILN_EUNSUPPORTED, "model_file", "model %s: %zu classes",
                           t->model_id, pm->n_class_names);
    for (size_t i = 0; i < pm->n_class_names; i++)
        if (!(pm->class_names[i] = json_string_value(json_array_get(classes, i))))
            return kiln_err_at(err, KILN_EFORMAT, "model_file",
                               "model %s: class_names[%zu] is not a string", t->model_id, i);
    /* The outputs: a classifier's probability per class; else one value. */
    pm->n_outputs = n_out;
    int per_class = learn && !strcmp(learn, "label") && !m->kind->unsupervised &&
                    n_out == pm->n_class_names;
    for (size_t i = 0; i < n_out; i++) {
        if (per_class) {
            pm->output_names[i] = pm->class_names[i];
            continue;
        }
        if (n_out == 1)
            snprintf(h->out_names[i], sizeof h->out_names[i], "%s",
                     m->kind->unsupervised ? "anomaly_score" : "target");
        else
            snprintf(h->out_names[i], sizeof h->out_names[i], "output_%zu", i);
        pm->output_names[i] = h->out_names[i];
    }
    pm->model = t->model_id;
    pm->model_sha256 = model_sha;
    pm->source_sha256 = source_sha;
    pm->has_label = fm->has_label;
    pm->has_target = fm->has_target;
    /* The input's labels in the model's class ids, matched by name, so
     * /label and /predicted compare; a label the model does not know is -1. */
    h->n_label_map = pm->n_class_names ? fm->n_label_names : 0;
    for (size_t i = 0; i < h->n_label_map; i++) {
        h->label_map[i] = -1;
        for (size_t k = 0; k < pm->n_class_names; k++)
            if (!strcmp(fm->label_names[i], pm->class_names[k]))
                h->label_map[i] = (int32_t)k;
    }
    return 0;
}

/* KILN_ESCHEMA naming "input" and the first feature that differs. */
static int check_features(const score_t *t, const jb_modelfile_t *m, const char *path,
                          const st_features_meta_t *fm, kiln_err_t *err)
{
    const json_t *names = json_object_get(m->header, "feature_names");
    size_t want = json_array_size(names);
    if (want != m->n_features)
        return kiln_err_at(err, KILN_EFORMAT, "model_file",
                           "model %s: header lists %zu features, its scaler has %zu",
                           t->model_id, want, m->n_features);
    size_t n = fm->n_features < want ? fm->n_features : want;
    for (size_t i = 0; i < n; i++) {
        const char *w = json_string_value(json_array_get(names, i));
        if (!w || strcmp(w, fm->feature_names[i]))
            return kiln_err_at(err, KILN_ESCHEMA, "input",
                               "input: %s: feature %zu is '%s' but model %s expects '%s'",
                               path, i, fm->feature_names[i], t->model_id, w ? w : "?");
    }
    if (fm->n_features != want)
        return kiln_err_at(err, KILN_ESCHEMA, "input",
                           "input: %s: %zu features but model %s expects %zu (first %s: '%s')",
                           path, fm->n_features, t->model_id, want,
                           fm->n_features > want ? "extra" : "missing",
                           fm->n_features > want
                               ? fm->feature_names[want]
                               : json_string_value(json_array_get(names, fm->n_features)));
    return 0;
}

/* Rows [row0, row0+n) of the feature dataset at path, predicted block by
 * block into a predictions file at out_path. */
static int predict_rows(const score_t *t, const jb_modelfile_t *m, jb_scoregpu_t *gpu,
                        const char *model_sha, const char *path, int source_is_input,
                        size_t row0, size_t n, const char *out_path, kiln_err_t *err)
{
    st_features_t *in = NULL;
    st_predictions_writer_t *w = NULL;
    pred_header_t *h = NULL;
    float *x = NULL, *scores = NULL, *target = NULL;
    int32_t *pred = NULL, *asset = NULL, *label = NULL;
    int64_t *ts = NULL;
    int rc;

    if ((rc = st_features_open(path, &in, err)) < 0)
        return rc;
    const st_features_meta_t *fm = st_features_meta(in);
    if ((rc = check_features(t, m, path, fm, err)) < 0)
        goto out;
    if (row0 > fm->n_rows || n > fm->n_rows - row0) {
        rc = kiln_err_at(err, KILN_EINVAL, "input", "input: %s: rows %zu..%zu out of range (%zu)",
                         path, row0, row0 + n, fm->n_rows);
        goto out;
    }
    if (!(h = kiln_calloc(1, sizeof *h))) {
        rc = kiln_err_set(err, KILN_ENOMEM, "score: out of memory");
        goto out;
    }
    /* A sensor input's features name it as their source. */
    const char *source = source_is_input ? fm->content_sha256 : fm->source_sha256;
    if ((rc = fill_header(t, m, model_sha, fm, source, h, err)) < 0 ||
        (rc = st_predictions_create(out_path, &h->meta, 0, &w, err)) < 0)
        goto out;
    const size_t d = fm->n_features, n_out = h->meta.n_outputs;
    const size_t widest = (d > n_out ? d : n_out) * sizeof(float);
    size_t step = SCORE_BLOCK_BYTES / widest;
    if (step > t->batch_rows)
        step = t->batch_rows;
    if (step < 1)
        step = 1;
    x = kiln_malloc(step * d * sizeof *x);
    scores = kiln_malloc(step * n_out * sizeof *scores);
    pred = kiln_malloc(step * sizeof *pred);
    asset = kiln_malloc(step * sizeof *asset);
    label = kiln_malloc(step * sizeof *label);
    ts = kiln_malloc(step * sizeof *ts);
    target = kiln_malloc(step * sizeof *target);
    if (!x || !scores || !pred || !asset || !label || !ts || !target) {
        rc = kiln_err_set(err, KILN_ENOMEM, "score: no memory for blocks of %zu rows", step);
        goto out;
    }
    const int32_t n_classes = (int32_t)h->meta.n_class_names;
    for (size_t r = 0; r < n; r += step) {
        size_t k = n - r < step ? n - r : step;
        if ((rc = st_features_read(in, row0 + r, k, x, err)) < 0 ||
            (rc = st_features_read_meta(in, row0 + r, k, asset, ts, label, target, err)) < 0)
            goto out;
        for (size_t i = 0; i < k; i++)
            pred[i] = -1;                     /* a regressor predicts no class */
        if ((rc = gpu ? jb_scoregpu_predict(gpu, x, k, scores, pred, err)
                      : jb_modelfile_predict(m, x, k, scores, pred, err)) < 0)
            goto out;
        for (size_t i = 0; fm->has_label && i < k; i++) {
            int32_t l = label[i];
            if (h->n_label_map)
                label[i] = l >= 0 && (size_t)l < h->n_label_map ? h->label_map[l] : -1;
            else if (n_classes && l >= n_classes)
                label[i] = -1;
        }
        if ((rc = st_predictions_append(w, k, scores, pred, asset, ts,
                                        fm->has_label ? label : NULL,
                                        fm->has_target ? target : NULL, err)) < 0) {
            char msg[sizeof err->msg];
            snprintf(msg, sizeof msg, "%s", err->msg);
            kiln_err_set(err, rc, "model %s on %s rows %zu..%zu: %s", t->model_id, path,
                         row0 + r, row0 + r + k, msg);
            goto out;
        }
    }
    rc = st_predictions_commit(&w, NULL, err);
out:
    st_predictions_abort(&w);
    st_features_close(&in);
    kiln_free(h);
    kiln_free(x);
    kiln_free(scores);
    kiln_free(pred);
    kiln_free(asset);
    kiln_free(label);
    kiln_free(ts);
    kiln_free(target);
    return rc;
}

/* The model on the task's GPU when it has one and the model kind a GPU
 * twin; NULL (the CPU) otherwise, with the reason in the task's log. */
static jb_scoregpu_t *gpu_engine(const jb_task_plan_t *task, const jb_modelfile_t *m,
                                 size_t n_rows)
{
    jb_scoregpu_t *gpu = NULL;
    kiln_err_t gerr;
    if (!task->use_gpu)
        fprintf(stderr, "scoring %zu rows on CPU\n", n_rows);
    else if (jb_scoregpu_new(m, task->gpu_device, &gpu, &gerr) < 0)
        fprintf(stderr, "scoring %zu rows on CPU (GPU %d: %s)\n", n_rows, task->gpu_device,
                gerr.msg);
    else
        fprintf(stderr, "scoring %zu rows on %s\n", n_rows, jb_scoregpu_device_name(gpu));
    return gpu;
}

static int score_run_task(const void *parsed, const jb_task_plan_t *task, const char *out_path,
                          kiln_err_t *err)
{
    const score_t *t = parsed;
    jb_modelfile_t m;
    char sha[65];
    input_kind_t kind = INPUT_FEATURES;
    int rc;
    if ((rc = input_kind(t, &kind, err)) < 0 || (rc = load_model(t, &m, sha, err)) < 0)
        return rc;
    if (kind == INPUT_FEATURES) {
        jb_scoregpu_t *gpu = gpu_engine(task, &m, task->n_windows);
        rc = predict_rows(t, &m, gpu, sha, t->input, 1, task->win0, task->n_windows, out_path,
                          err);
        jb_scoregpu_free(&gpu);
        jb_modelfile_free(&m);
        return rc;
    }
    /* A sensor input: featurize the window range with the model's own spec
     * into a scratch features file beside the output, then predict it. */
    jb_featspec_t fs;
    if ((rc = model_featspec(t, &m, &fs, err)) < 0) {
        jb_modelfile_free(&m);
        return rc;
    }
    size_t len = strlen(out_path) + 32;
    char *feat = kiln_malloc(len);
    if (!feat) {
        jb_featspec_free(&fs);
        jb_modelfile_free(&m);
        return kiln_err_set(err, KILN_ENOMEM, "score: out of memory");
    }
    snprintf(feat, len, "%s.features.%ld.h5", out_path, (long)getpid());
    jb_featurize_opts_t opts = {0};
    opts.n_threads = t->threads;
    opts.use_gpu = task->use_gpu;
    opts.gpu_device = task->gpu_device;
    jb_featurize_stats_t stats;
    rc = jb_featurize_run_range(&fs, t->input, feat, task->win0, task->n_windows, &opts, &stats,
                                err);
    if (rc == 0) {
        fprintf(stderr, "featurized %zu windows on %s\n", stats.windows, stats.device);
        jb_scoregpu_t *gpu = gpu_engine(task, &m, task->n_windows);
        rc = predict_rows(t, &m, gpu, sha, feat, 0, 0, task->n_windows, out_path, err);
        jb_scoregpu_free(&gpu);
    }
    unlink(feat);
    kiln_free(feat);
    jb_featspec_free(&fs);
    jb_modelfile_free(&m);
    return rc;
}

/* ---- finish: the shards in order ----------------------------------------- */

static int same_str(const char *a, const char *b) { return strcmp(a ? a : "", b ? b : "") == 0; }

static int check_shard(const st_predictions_meta_t *m0, const st_predictions_meta_t *m,
                       const char *path, kiln_err_t *err)
{
    int same = m->n_outputs == m0->n_outputs && m->n_class_names == m0->n_class_names &&
               m->has_label == m0->has_label && m->has_target == m0->has_target &&
               same_str(m->model_sha256, m0->model_sha256) &&
               same_str(m->source_sha256, m0->source_sha256) && same_str(m->model, m0->model);
    for (size_t i = 0; same && i < m->n_outputs; i++)
        same = same_str(m->output_names[i], m0->output_names[i]);
    for (size_t i = 0; same && i < m->n_class_names; i++)
        same = same_str(m->class_names[i], m0->class_names[i]);
    if (!same)
        return kiln_err_set(err, KILN_ESCHEMA,
                            "%s: shard does not match the first shard (model, source, outputs "
                            "or classes differ)", path);
    return 0;
}

static int score_finish(const void *parsed, const char *const *outs, size_t n,
                        const char *final_output, kiln_err_t *err)
{
    (void)parsed;
    st_predictions_t *first = NULL, *ds = NULL;
    st_predictions_writer_t *w = NULL;
    float *scores = NULL, *target = NULL;
    int32_t *pred = NULL, *asset = NULL, *label = NULL;
    int64_t *ts = NULL;
    int rc;

    if (n == 0)
        return kiln_err_set(err, KILN_EINVAL, "score: no task outputs to merge");
    if ((rc = st_predictions_open(outs[0], &first, err)) < 0)
        return rc;
    const st_predictions_meta_t *m0 = st_predictions_meta(first);
    if ((rc = st_predictions_create(final_output, m0, 0, &w, err)) < 0)
        goto out;
    size_t step = MERGE_BYTES / (m0->n_outputs * sizeof(float));
    if (step > 65536)
        step = 65536;
    if (step < 1)
        step = 1;
    scores = kiln_malloc(step * m0->n_outputs * sizeof *scores);
    pred = kiln_malloc(step * sizeof *pred);
    asset = kiln_malloc(step * sizeof *asset);
    label = kiln_malloc(step * sizeof *label);
    ts = kiln_malloc(step * sizeof *ts);
    target = kiln_malloc(step * sizeof *target);
    if (!scores || !pred || !asset || !label || !ts || !target) {
        rc = kiln_err_set(err, KILN_ENOMEM, "score: no memory to merge %zu rows", step);
        goto out;
    }
    int32_t *lab = m0->has_label ? label : NULL;
    float *tgt = m0->has_target ? target : NULL;
    for (size_t i = 0; i < n; i++) {
        st_predictions_t *cur = first;
        if (i > 0) {
            if ((rc = st_predictions_open(outs[i], &ds, err)) < 0 ||
                (rc = check_shard(m0, st_predictions_meta(ds), outs[i], err)) < 0)
                goto out;
            cur = ds;
        }
        const size_t nr = st_predictions_meta(cur)->n_rows;
        for (size_t r = 0; r < nr; r += step) {
            size_t k = nr - r < step ? nr - r : step;
            if ((rc = st_predictions_read(cur, r, k, scores, pred, err)) < 0 ||
                (rc = st_predictions_read_meta(cur, r, k, asset, ts, lab, tgt, err)) < 0 ||
                (rc = st_predictions_append(w, k, scores, pred, asset, ts, lab, tgt, err)) < 0)
                goto out;
        }
        st_predictions_close(&ds);
    }
    rc = st_predictions_commit(&w, NULL, err);
out:
    st_predictions_abort(&w);
    st_predictions_close(&ds);
    st_predictions_close(&first);
    kiln_free(scores);
    kiln_free(pred);
    kiln_free(asset);
    kiln_free(label);
    kiln_free(ts);
    kiln_free(target);
    return rc;
}

const jb_type_t jb_type_score = {
    .name = "score",
    .validate = score_validate,
    .plan = score_plan,
    .run_task = score_run_task,
    .finish = score_finish,
    .free_parsed = score_free,
    .resolve = score_resolve,
};
