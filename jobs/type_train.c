/* type_train.c - the train job type (jobtype.h): a feature dataset in, a
 * validated model file out, recorded in the registry.
 *
 *   {"type": "train", "name": "bearing-logreg", "input": "features.h5",
 *    "model": {"kind": "logreg", "C": 1.0}, "target": "label",
 *    "validation": {"split": "time", "fraction": 0.2, "min_accuracy": 0.9},
 *    "seed": 7, "threads": 2, "output": "bearing.kmodel"}
 *
 * The job's name is the model's name in the registry.  Validation holds out
 * the last fraction of each asset's time (trainset.h).  A model under a
 * gate (min_accuracy, min_f1, min_auc, max_rmse, max_mae) is recorded as a
 * rejected run and gets no version; the job itself succeeds. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../core/kiln_alloc.h"
#include "../kernels/metrics.h"
#include "../kernels/scaler.h"
#include "../storage/artifacts.h"
#include "../storage/registry.h"
#include "jobspec.h"
#include "jobtype.h"
#include "model.h"
#include "modelfile.h"
#include "trainset.h"

#ifndef KILN_VERSION
#define KILN_VERSION "0.6.0"
#endif

typedef struct {
    char        input[4096];
    char        name[JB_NAME_MAX];
    const jb_model_kind_t *kind;
    void       *params;
    jb_learn_t  learn;
    double      fraction;
    double      min_accuracy, min_f1, min_auc, max_rmse, max_mae;   /* NAN: no gate */
    uint64_t    seed;
    int         threads;
} train_t;

static void train_free(void *p)
{
    train_t *t = p;
    if (!t)
        return;
    if (t->kind && t->params)
        t->kind->free_params(t->params);
    kiln_free(t);
}

static int gate(const json_t *v, const char *key, double lo, double hi, double *out,
                kiln_err_t *err)
{
    const json_t *g = json_object_get(v, key);
    *out = NAN;
    if (!g)
        return 0;
    if (!json_is_number(g) || !(json_number_value(g) >= lo && json_number_value(g) <= hi)) {
        char field[80];
        snprintf(field, sizeof field, "validation.%s", key);
        return kiln_err_at(err, KILN_ESPEC, field, "job: validation.%s: must be a number in [%g, %g]",
                           key, lo, hi);
    }
    *out = json_number_value(g);
    return 0;
}

static int train_validate(const void *spec_, void **parsed, kiln_err_t *err)
{
    static const char *const keys[] = {"input", "output", "model", "target", "validation",
                                       "seed", "threads", NULL};
    static const char *const vkeys[] = {"split", "fraction", "min_accuracy", "min_f1", "min_auc",
                                        "max_rmse", "max_mae", NULL};
    const json_t *spec = spec_;
    jb_common_t c;
    int rc;
    *parsed = NULL;
    if ((rc = jb_spec_check_keys(spec, keys, err)) < 0 || (rc = jb_common_parse(spec, &c, err)) < 0)
        return rc;
    train_t *t = kiln_calloc(1, sizeof *t);
    if (!t)
        return kiln_err_set(err, KILN_ENOMEM, "job: out of memory");
    snprintf(t->name, sizeof t->name, "%s", c.name);
    t->fraction = 0.2;
    t->threads = 1;
    const json_t *v = json_object_get(spec, "input");
    if (!json_is_string(v) || !json_string_length(v) || json_string_length(v) >= sizeof t->input) {
        rc = kiln_err_at(err, KILN_ESPEC, "input", "job: input: a feature dataset path is required");
        goto fail;
    }
    memcpy(t->input, json_string_value(v), json_string_length(v) + 1);
    v = json_object_get(spec, "output");
    if (v && (!json_is_string(v) || !json_string_length(v))) {
        rc = kiln_err_at(err, KILN_ESPEC, "output", "job: output: must be a path");
        goto fail;
    }
    const json_t *m = json_object_get(spec, "model");
    if (!json_is_object(m)) {
        rc = kiln_err_at(err, KILN_ESPEC, "model",
                         "job: model: an object with a \"kind\" (%s) is required",
                         jb_model_kind_names());
        goto fail;
    }
    const char *kind = json_string_value(json_object_get(m, "kind"));
    if (!(t->kind = jb_model_kind_find(kind))) {
        rc = kiln_err_at(err, KILN_ESPEC, "model.kind", "job: model.kind: \"%s\" is not a model kind (%s)",
                         kind ? kind : "", jb_model_kind_names());
        goto fail;
    }
    if ((rc = t->kind->parse(m, &t->params, err)) < 0)
        goto fail;
    v = json_object_get(spec, "target");
    const char *target = json_is_string(v) ? json_string_value(v) : NULL;
    if (v && !target) {
        rc = kiln_err_at(err, KILN_ESPEC, "target", "job: target: must be \"label\" or \"target\"");
        goto fail;
    }
    if (!target && !t->kind->unsupervised) {
        rc = kiln_err_at(err, KILN_ESPEC, "target",
                         "job: target: missing (\"label\" to classify, \"target\" to regress)");
        goto fail;
    }
    if (target && strcmp(target, "label") && strcmp(target, "target")) {
        rc = kiln_err_at(err, KILN_ESPEC, "target",
                         "job: target: \"%s\" is neither \"label\" nor \"target\"", target);
        goto fail;
    }
    t->learn = target && !strcmp(target, "target") ? JB_LEARN_TARGET : JB_LEARN_LABEL;
    if (t->learn == JB_LEARN_TARGET && !t->kind->regressor) {
        rc = kiln_err_at(err, KILN_ESPEC, "target", "job: target: %s classifies; it cannot learn a target",
                         t->kind->name);
        goto fail;
    }
    if (t->learn == JB_LEARN_LABEL && !t->kind->classifier && !t->kind->unsupervised) {
        rc = kiln_err_at(err, KILN_ESPEC, "target", "job: target: %s regresses; use \"target\"",
                         t->kind->name);
        goto fail;
    }
    const json_t *val = json_object_get(spec, "validation");
    if (val) {
        const char *key;
        json_t *x;
        if (!json_is_object(val)) {
            rc = kiln_err_at(err, KILN_ESPEC, "validation", "job: validation: must be an object");
            goto fail;
        }
        json_object_foreach((json_t *)val, key, x) {
            const char *const *k = vkeys;
            while (*k && strcmp(*k, key))
                k++;
            if (!*k) {
                char field[160];
                snprintf(field, sizeof field, "validation.%s", key);
                rc = kiln_err_at(err, KILN_ESPEC, field, "job: validation.%s: unknown field", key);
                goto fail;
            }
        }
        const char *split = json_string_value(json_object_get(val, "split"));
        if (json_object_get(val, "split") && (!split || strcmp(split, "time"))) {
            rc = kiln_err_at(err, KILN_ESPEC, "validation.split",
                             "job: validation.split: only \"time\" (the last fraction of each "
                             "asset's time) is supported");
            goto fail;
        }
        const json_t *f = json_object_get(val, "fraction");
        if (f && (!json_is_number(f) || !(json_number_value(f) > 0 && json_number_value(f) < 1))) {
            rc = kiln_err_at(err, KILN_ESPEC, "validation.fraction",
                             "job: validation.fraction: must be a number in (0, 1)");
            goto fail;
        }
        if (f)
            t->fraction = json_number_value(f);
    }
    if ((rc = gate(val, "min_accuracy", 0, 1, &t->min_accuracy, err)) < 0 ||
        (rc = gate(val, "min_f1", 0, 1, &t->min_f1, err)) < 0 ||
        (rc = gate(val, "min_auc", 0, 1, &t->min_auc, err)) < 0 ||
        (rc = gate(val, "max_rmse", 0, 1e300, &t->max_rmse, err)) < 0 ||
        (rc = gate(val, "max_mae", 0, 1e300, &t->max_mae, err)) < 0)
        goto fail;
    /* A gate on a metric this job never computes would pass silently. */
    const char *unmet = t->learn == JB_LEARN_TARGET
                            ? (!isnan(t->min_accuracy) ? "min_accuracy"
                               : !isnan(t->min_f1)     ? "min_f1"
                               : !isnan(t->min_auc)    ? "min_auc" : NULL)
                            : (!isnan(t->max_rmse) ? "max_rmse"
                               : !isnan(t->max_mae) ? "max_mae" : NULL);
    if (unmet) {
        char field[80];
        snprintf(field, sizeof field, "validation.%s", unmet);
        rc = kiln_err_at(err, KILN_ESPEC, field,
                         "job: validation.%s: a job that learns the %s has no such metric "
                         "(labels: min_accuracy, min_f1, min_auc; a target: max_rmse, max_mae)",
                         unmet, t->learn == JB_LEARN_TARGET ? "target" : "label");
        goto fail;
    }
    v = json_object_get(spec, "seed");
    if (v && (!json_is_integer(v) || json_integer_value(v) < 0)) {
        rc = kiln_err_at(err, KILN_ESPEC, "seed", "job: seed: must be an integer >= 0");
        goto fail;
    }
    t->seed = v ? (uint64_t)json_integer_value(v) : 0;
    v = json_object_get(spec, "threads");
    if (v && (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 256)) {
        rc = kiln_err_at(err, KILN_ESPEC, "threads", "job: threads: must be an integer in 1..256");
        goto fail;
    }
    t->threads = v ? (int)json_integer_value(v) : c.resources.cores;
    *parsed = t;
    return 0;
fail:
    train_free(t);
    return rc;
}

static int train_plan(const void *parsed, const jb_plan_ctx_t *ctx, jb_task_plan_t **tasks,
                      size_t *n_tasks, kiln_err_t *err)
{
    (void)parsed, (void)ctx;
    jb_task_plan_t *t = kiln_calloc(1, sizeof *t);
    if (!t)
        return kiln_err_set(err, KILN_ENOMEM, "train: out of memory");
    *tasks = t;
    *n_tasks = 1;
    return 0;
}

static json_t *strings(char *const *v, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++)
        json_array_append_new(a, json_string(v[i]));
    return a;
}

/* Metrics on the held-out rows, and whether the gates pass. */
static int evaluate(const train_t *t, const jb_trainset_t *ts, const int32_t *yv, const float *tv,
                    size_t nv, const float *scores, const int32_t *pred, size_t n_out,
                    json_t *metrics, int *accepted, char *why, size_t cap, kiln_err_t *err)
{
    int rc = 0;
    *accepted = 1;
    why[0] = '\0';
#define GATE(val, bound, cmp, what)                                                       \
    do {                                                                                  \
        if (!isnan(bound) && !((val)cmp(bound)) && *accepted) {                           \
            *accepted = 0;                                                                \
            snprintf(why, cap, "%s %.4f misses the gate %.4f", what, val, bound);         \
        }                                                                                 \
    } while (0)
    if (nv == 0) {
        json_object_set_new(metrics, "n_valid", json_integer(0));
        if (!isnan(t->min_accuracy) || !isnan(t->min_f1) || !isnan(t->min_auc) ||
            !isnan(t->max_rmse) || !isnan(t->max_mae)) {
            *accepted = 0;
            snprintf(why, cap, "no held-out rows to check the gates on");
        }
        return 0;
    }
    json_object_set_new(metrics, "n_valid", json_integer((json_int_t)nv));
    if (t->learn == JB_LEARN_TARGET) {
        float *yhat = kiln_malloc(nv * sizeof *yhat);
        if (!yhat)
            return kiln_err_set(err, KILN_ENOMEM, "train: out of memory");
        for (size_t i = 0; i < nv; i++)
            yhat[i] = scores[i * n_out];
        double rmse = 0, mae = 0;
        if ((rc = km_metrics_rmse(tv, yhat, nv, &rmse, err)) == 0)
            rc = km_metrics_mae(tv, yhat, nv, &mae, err);
        kiln_free(yhat);
        if (rc < 0)
            return rc;
        json_object_set_new(metrics, "rmse", json_real(rmse));
        json_object_set_new(metrics, "mae", json_real(mae));
        GATE(rmse, t->max_rmse, <=, "rmse");
        GATE(mae, t->max_mae, <=, "mae");
        return 0;
    }
    int k = ts->n_classes;
    int32_t *ybin = NULL;
    if (t->kind->unsupervised) {
        /* The truth an anomaly detector is judged on: not the healthy class. */
        int healthy = t->kind->healthy_class(t->params);
        if (!(ybin = kiln_malloc(nv * sizeof *ybin)))
            return kiln_err_set(err, KILN_ENOMEM, "train: out of memory");
        for (size_t i = 0; i < nv; i++)
            ybin[i] = yv[i] != healthy;
        yv = ybin;
        k = 2;
    }
    double acc = 0, f1 = 0;
    uint64_t *cm = kiln_calloc((size_t)k * (size_t)k, sizeof *cm);
    if (!cm) {
        kiln_free(ybin);
        return kiln_err_set(err, KILN_ENOMEM, "train: out of memory");
    }
    if ((rc = km_metrics_accuracy(yv, pred, nv, k, &acc, err)) < 0 ||
        (rc = km_metrics_f1_macro(yv, pred, nv, k, &f1, err)) < 0 ||
        (rc = km_metrics_confusion(yv, pred, nv, k, cm, err)) < 0) {
        kiln_free(cm);
        kiln_free(ybin);
        return rc;
    }
    json_t *rows = json_array();
    for (int a = 0; rows && a < k; a++) {
        json_t *row = json_array();
        for (int b = 0; row && b < k; b++)
            json_array_append_new(row, json_integer((json_int_t)cm[a * k + b]));
        json_array_append_new(rows, row);
    }
    kiln_free(cm);
    json_object_set_new(metrics, "accuracy", json_real(acc));
    json_object_set_new(metrics, "macro_f1", json_real(f1));
    json_object_set_new(metrics, "confusion", rows ? rows : json_null());
    /* AUC from the score that means "class 1": its probability, or the
     * anomaly distance. */
    if (k == 2 && (n_out == 2 || (n_out == 1 && t->kind->unsupervised))) {
        float *s1 = kiln_malloc(nv * sizeof *s1);
        double auc = NAN;
        if (!s1) {
            kiln_free(ybin);
            return kiln_err_set(err, KILN_ENOMEM, "train: out of memory");
        }
        for (size_t i = 0; i < nv; i++)
            s1[i] = scores[i * n_out + n_out - 1];
        kiln_err_t aerr;
        if (km_metrics_roc_auc(yv, s1, nv, &auc, &aerr) == 0)
            json_object_set_new(metrics, "roc_auc", json_real(auc));
        kiln_free(s1);
        GATE(auc, t->min_auc, >=, "roc_auc");
    }
    GATE(acc, t->min_accuracy, >=, "accuracy");
    GATE(f1, t->min_f1, >=, "macro_f1");
#undef GATE
    if (!isnan(t->min_auc) && !json_object_get(metrics, "roc_auc") && *accepted) {
        *accepted = 0;
        snprintf(why, cap, "min_auc: no roc_auc to check (%d classes; it needs 2 and a "
                 "score for class 1)", k);
    }
    kiln_free(ybin);
    return 0;
}

static int train_run(const void *parsed, const jb_task_plan_t *task, const char *out_path,
                     kiln_err_t *err)
{
    const train_t *t = parsed;
    (void)task;
    jb_trainset_t ts;
    int rc = jb_trainset_load(t->input, t->learn, &ts, err);
    if (rc < 0)
        return rc;
    size_t *tr = NULL, *va = NULL, nt = 0, nv = 0;
    float *xt = NULL, *xv = NULL, *tt = NULL, *tv = NULL, *scores = NULL;
    int32_t *yt = NULL, *yv = NULL, *pred = NULL;
    km_scaler_t *scaler = NULL;
    void *model = NULL;
    json_t *header = NULL;
    km_buf_t buf = {0};
    if ((rc = jb_trainset_split_time(&ts, t->fraction, &tr, &nt, &va, &nv, err)) < 0)
        goto out;
    const size_t d = ts.d;
    xt = kiln_malloc(nt * d * sizeof *xt);
    xv = kiln_malloc((nv ? nv : 1) * d * sizeof *xv);
    yt = kiln_malloc(nt * sizeof *yt);
    yv = kiln_malloc((nv ? nv : 1) * sizeof *yv);
    tt = kiln_malloc(nt * sizeof *tt);
    tv = kiln_malloc((nv ? nv : 1) * sizeof *tv);
    if (!xt || !xv || !yt || !yv || !tt || !tv) {
        rc = kiln_err_set(err, KILN_ENOMEM, "train: out of memory for %zu rows", ts.n);
        goto out;
    }
    jb_trainset_gather(&ts, tr, nt, xt, yt, tt);
    jb_trainset_gather(&ts, va, nv, xv, yv, tv);
    km_data_t train = {xt, nt, d, t->learn == JB_LEARN_LABEL ? yt : NULL,
                       t->learn == JB_LEARN_TARGET ? tt : NULL,
                       t->learn == JB_LEARN_LABEL ? ts.n_classes : 0};
    km_data_t valid = {xv, nv, d, train.y ? yv : NULL, train.target ? tv : NULL,
                       train.n_classes};
    if ((rc = km_scaler_fit(&train, NULL, &scaler, err)) < 0 ||
        (rc = km_scaler_transform(scaler, xt, nt, d, xt, err)) < 0 ||
        (nv && (rc = km_scaler_transform(scaler, xv, nv, d, xv, err)) < 0))
        goto out;
    if ((rc = t->kind->fit(t->params, &train, nv ? &valid : NULL, NULL, t->threads, t->seed,
                           &model, err)) < 0)
        goto out;
    size_t n_out = t->kind->n_outputs(model);
    scores = kiln_malloc((nv ? nv : 1) * n_out * sizeof *scores);
    pred = kiln_malloc((nv ? nv : 1) * sizeof *pred);
    if (!scores || !pred) {
        rc = kiln_err_set(err, KILN_ENOMEM, "train: out of memory");
        goto out;
    }
    if (nv && (rc = t->kind->predict(model, xv, nv, scores, pred, err)) < 0)
        goto out;
    json_t *metrics = json_object();
    int accepted = 1;
    char why[200];
    if (!metrics) {
        rc = kiln_err_set(err, KILN_ENOMEM, "train: out of memory");
        goto out;
    }
    json_object_set_new(metrics, "n_train", json_integer((json_int_t)nt));
    if ((rc = evaluate(t, &ts, yv, tv, nv, scores, pred, n_out, metrics, &accepted, why,
                       sizeof why, err)) < 0) {
        json_decref(metrics);
        goto out;
    }
    char *pj = t->kind->params_json(t->params);
    json_error_t jerr;
    json_t *params = pj ? json_loads(pj, 0, &jerr) : NULL;
    free(pj);
    /* Nothing that varies between runs (no time, no host) goes into the file:
     * the same inputs and seed give the same bytes, hence the same artifact. */
    header = json_pack("{s:s, s:s, s:s, s:o, s:o, s:s, s:s, s:o, s:o, s:b, s:s, s:I, s:s}",
                       "schema", "kiln.model.v1", "kind", t->kind->name, "learn",
                       t->learn == JB_LEARN_LABEL ? "label" : "target", "feature_names",
                       strings(ts.feature_names, d), "class_names",
                       t->learn == JB_LEARN_LABEL ? strings(ts.class_names, (size_t)ts.n_classes)
                                                  : json_array(),
                       "dataset_sha256", ts.content_sha256, "featspec_sha256", ts.spec_sha256,
                       "params", params ? params : json_object(), "metrics", metrics,
                       "accepted", accepted, "rejected_because", accepted ? "" : why, "seed",
                       (json_int_t)t->seed, "code_version", KILN_VERSION);
    if (!header) {
        rc = kiln_err_set(err, KILN_ENOMEM, "train: out of memory");
        goto out;
    }
    /* The feature spec travels with the model: scoring sensor data
     * featurizes it with the very same spec. */
    json_t *fs = ts.spec_json ? json_loads(ts.spec_json, 0, &jerr) : NULL;
    json_object_set_new(header, "feature_spec", fs ? fs : json_null());
    rc = jb_modelfile_write(out_path, header, scaler, t->kind, model, &buf, err);
out:
    km_buf_free(&buf);
    json_decref(header);
    if (model)
        t->kind->free_model(model);
    km_scaler_free(&scaler);
    kiln_free(scores);
    kiln_free(pred);
    kiln_free(xt);
    kiln_free(xv);
    kiln_free(yt);
    kiln_free(yv);
    kiln_free(tt);
    kiln_free(tv);
    kiln_free(tr);
    kiln_free(va);
    jb_trainset_free(&ts);
    return rc;
}

/* The one task's model file becomes the job's output (a copy, by rename). */
static int train_finish(const void *parsed, const char *const *outs, size_t n,
                        const char *final_output, kiln_err_t *err)
{
    (void)parsed;
    if (n != 1)
        return kiln_err_set(err, KILN_EINTERNAL, "train: %zu task outputs, expected 1", n);
    jb_modelfile_t m;
    int rc = jb_modelfile_read(outs[0], &m, err);
    if (rc < 0)
        return rc;
    km_buf_t b = {0};
    rc = jb_modelfile_write(final_output, m.header, m.scaler, m.kind, m.model, &b, err);
    km_buf_free(&b);
    jb_modelfile_free(&m);
    return rc;
}

/* On the scheduler's thread: the model's bytes into the artifact store, the
 * run into the registry, and a new version when the gates passed. */
static int train_record(const void *parsed, const char *task_output, const jb_record_ctx_t *ctx,
                        char *summary, size_t cap, kiln_err_t *err)
{
    const train_t *t = parsed;
    FILE *f = fopen(task_output, "rb");
    if (!f)
        return kiln_err_set(err, KILN_EIO, "train: %s: cannot open the model file", task_output);
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    rewind(f);
    unsigned char *bytes = size > 0 && (size_t)size <= JB_MODELFILE_MAX ? kiln_malloc((size_t)size) : NULL;
    size_t got = bytes ? fread(bytes, 1, (size_t)size, f) : 0;
    fclose(f);
    jb_modelfile_t m;
    int rc = bytes && got == (size_t)size ? jb_modelfile_parse(bytes, got, &m, err)
                                          : kiln_err_set(err, KILN_EIO, "train: %s: cannot read",
                                                         task_output);
    if (rc < 0) {
        kiln_free(bytes);
        return rc;
    }
    char hex[65];
    rc = st_artifact_put(ctx->artifacts, bytes, got, hex, err);
    kiln_free(bytes);
    if (rc < 0) {
        jb_modelfile_free(&m);
        return rc;
    }
    const json_t *h = m.header;
    char *params = json_dumps(json_object_get(h, "params"), JSON_COMPACT | JSON_SORT_KEYS);
    char *metrics = json_dumps(json_object_get(h, "metrics"), JSON_COMPACT | JSON_SORT_KEYS);
    st_run_t run = {0};
    run.job_id = ctx->job_id;
    run.model_name = (char *)t->name;
    run.kind = (char *)t->kind->name;
    run.params_json = params ? params : "{}";
    run.seed = (int64_t)t->seed;
    run.dataset_sha256 = (char *)json_string_value(json_object_get(h, "dataset_sha256"));
    run.featspec_sha256 = (char *)json_string_value(json_object_get(h, "featspec_sha256"));
    run.code_version = (char *)json_string_value(json_object_get(h, "code_version"));
    run.metrics_json = metrics ? metrics : "{}";
    run.duration_s = ctx->started_ns ? (double)(ctx->now_ns - ctx->started_ns) / 1e9 : 0;
    run.accepted = json_is_true(json_object_get(h, "accepted"));
    run.artifact_sha256 = hex;
    run.created_ns = ctx->now_ns;
    int64_t run_id = 0, version = 0;
    rc = st_registry_run_insert(ctx->st, &run, &run_id, err);
    if (rc == 0 && run.accepted)
        rc = st_registry_model_add(ctx->st, t->name, run_id, hex, ctx->now_ns, &version, err);
    if (rc == 0 && run.accepted)
        snprintf(summary, cap, "model %s version %lld (run %lld, %s)", t->name, (long long)version,
                 (long long)run_id, metrics ? metrics : "");
    else if (rc == 0)
        snprintf(summary, cap, "model %s rejected: %s (run %lld)", t->name,
                 json_string_value(json_object_get(h, "rejected_because")), (long long)run_id);
    free(params);
    free(metrics);
    jb_modelfile_free(&m);
    return rc;
}

const jb_type_t jb_type_train = {
    .name = "train",
    .validate = train_validate,
    .plan = train_plan,
    .run_task = train_run,
    .finish = train_finish,
    .free_parsed = train_free,
    .record = train_record,
};
