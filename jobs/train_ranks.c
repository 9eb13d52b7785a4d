/* train_ranks.c - the train task on one rank (train_ranks.h): load, split
 * by time, take this rank's stride of the training rows, fit the scaler and
 * the model through the rank-sum hook, and on rank 0 evaluate the held-out
 * rows and write the model file.  One process is the case reduce == NULL. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/kiln_alloc.h"
#include "../kernels/metrics.h"
#include "../kernels/scaler.h"
#include "modelfile.h"
#include "train_ranks.h"

#ifndef KILN_VERSION
#define KILN_VERSION "0.6.0"
#endif

static json_t *strings(char *const *v, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++)
        json_array_append_new(a, json_string(v[i]));
    return a;
}

/* Metrics on the held-out rows, and whether the gates pass. */
static int evaluate(const jb_train_spec_t *t, const jb_trainset_t *ts, const int32_t *yv, const float *tv,
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
    json_t *names = json_array();
    for (int c = 0; names && c < k; c++)
        json_array_append_new(names, json_string(t->kind->unsupervised
                                                     ? (c ? "anomaly" : "healthy")
                                                     : ts->class_names[c]));
    json_object_set_new(metrics, "labels", names ? names : json_null());
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

/* This rank's shard of the n train rows listed in tr: tr[rank],
 * tr[rank + n_ranks], ... (see train_ranks.h).  One rank: tr itself. */
static size_t *shard_rows(const size_t *tr, size_t n, int rank, int n_ranks, size_t *n_mine)
{
    const size_t r = (size_t)rank, R = (size_t)n_ranks;
    *n_mine = n > r ? (n - r + R - 1) / R : 0;
    size_t *mine = kiln_malloc((*n_mine ? *n_mine : 1) * sizeof *mine);
    for (size_t k = 0; mine && k < *n_mine; k++)
        mine[k] = tr[r + k * R];
    return mine;
}

int jb_train_rank_run(const void *parsed, const km_reduce_t *reduce, const char *out_path,
                      kiln_err_t *err)
{
    return jb_train_rank_run_on(parsed, reduce, NULL, out_path, err);
}

/* The kind's fit on where->gpu_device when it has a GPU fit, else (or when
 * the GPU says it cannot: no device, a shape it does not take) on the CPU;
 * where->device says which, and why not the GPU. */
static int fit_where(const jb_train_spec_t *t, const km_data_t *train, const km_data_t *valid,
                     const km_reduce_t *reduce, jb_train_where_t *where, void **model,
                     kiln_err_t *err)
{
    char why[300] = "";
    if (where && where->gpu_device >= 0) {
        if (!t->kind->fit_gpu) {
            snprintf(why, sizeof why, " (GPU %d: %s has no GPU fit)", where->gpu_device,
                     t->kind->name);
        } else {
            kiln_err_t gerr;
            int rc = t->kind->fit_gpu(t->params, train, reduce, where->gpu_device, t->seed, model,
                                      &gerr);
            if (rc == 0) {
                snprintf(where->device, sizeof where->device, "GPU %d", where->gpu_device);
                return 0;
            }
            if (rc != KILN_EUNSUPPORTED && rc != KILN_EINVAL) {
                *err = gerr;
                return rc;
            }
            snprintf(why, sizeof why, " (GPU %d: %.250s)", where->gpu_device, gerr.msg);
        }
    }
    if (where)
        snprintf(where->device, sizeof where->device, "CPU, %d thread%s%s", t->threads,
                 t->threads == 1 ? "" : "s", why);
    return t->kind->fit(t->params, train, valid, reduce, t->threads, t->seed, model, err);
}

int jb_train_rank_run_on(const void *parsed, const km_reduce_t *reduce, jb_train_where_t *where,
                         const char *out_path, kiln_err_t *err)
{
    const jb_train_spec_t *t = parsed;
    if (reduce && !reduce->sum)
        reduce = NULL;
    const int rank = reduce ? reduce->rank : 0, n_ranks = reduce ? reduce->n_ranks : 1;
    if (reduce && n_ranks != t->ranks)
        return kiln_err_at(err, KILN_ESPEC, "resources.ranks",
                           "train %s: resources.ranks is %d but this run has %d ranks", t->name,
                           t->ranks, n_ranks);
    if (n_ranks < 1 || rank < 0 || rank >= n_ranks)
        return kiln_err_set(err, KILN_EINVAL, "train %s: rank %d of %d ranks", t->name, rank,
                            n_ranks);
    jb_trainset_t ts;
    int rc = jb_trainset_load(t->input, t->learn, &ts, err);
    if (rc < 0)
        return rc;
    size_t *tr = NULL, *va = NULL, *mine = NULL, n_train_all = 0, nt = 0, nv = 0;
    float *xt = NULL, *xv = NULL, *tt = NULL, *tv = NULL, *scores = NULL;
    int32_t *yt = NULL, *yv = NULL, *pred = NULL;
    km_scaler_t *scaler = NULL;
    void *model = NULL;
    json_t *header = NULL;
    km_buf_t buf = {0};
    if ((rc = jb_trainset_split_time(&ts, t->fraction, &tr, &n_train_all, &va, &nv, err)) < 0)
        goto out;
    if (!(mine = shard_rows(tr, n_train_all, rank, n_ranks, &nt))) {
        rc = kiln_err_set(err, KILN_ENOMEM, "train: out of memory for %zu rows", ts.n);
        goto out;
    }
    const size_t d = ts.d;
    xt = kiln_malloc((nt ? nt : 1) * d * sizeof *xt);
    xv = kiln_malloc((nv ? nv : 1) * d * sizeof *xv);
    yt = kiln_malloc((nt ? nt : 1) * sizeof *yt);
    yv = kiln_malloc((nv ? nv : 1) * sizeof *yv);
    tt = kiln_malloc((nt ? nt : 1) * sizeof *tt);
    tv = kiln_malloc((nv ? nv : 1) * sizeof *tv);
    if (!xt || !xv || !yt || !yv || !tt || !tv) {
        rc = kiln_err_set(err, KILN_ENOMEM, "train: out of memory for %zu rows", ts.n);
        goto out;
    }
    jb_trainset_gather(&ts, mine, nt, xt, yt, tt);
    jb_trainset_gather(&ts, va, nv, xv, yv, tv);
    km_data_t train = {xt, nt, d, t->learn == JB_LEARN_LABEL ? yt : NULL,
                       t->learn == JB_LEARN_TARGET ? tt : NULL,
                       t->learn == JB_LEARN_LABEL ? ts.n_classes : 0};
    km_data_t valid = {xv, nv, d, train.y ? yv : NULL, train.target ? tv : NULL,
                       train.n_classes};
    /* The scaler's moments and the model's sums run over all ranks' shards;
     * the validation rows (the same on every rank) only get transformed. */
    if ((rc = km_scaler_fit(&train, reduce, &scaler, err)) < 0 ||
        (rc = km_scaler_transform(scaler, xt, nt, d, xt, err)) < 0 ||
        (nv && (rc = km_scaler_transform(scaler, xv, nv, d, xv, err)) < 0))
        goto out;
    if ((rc = fit_where(t, &train, nv ? &valid : NULL, reduce, where, &model, err)) < 0)
        goto out;
    /* Every rank holds the same model now; one writes it. */
    if (rank != 0)
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
    json_object_set_new(metrics, "n_train", json_integer((json_int_t)n_train_all));
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
    kiln_free(mine);
    kiln_free(tr);
    kiln_free(va);
    jb_trainset_free(&ts);
    return rc;
}
