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
 * rejected run and gets no version; the job itself succeeds.  The task
 * itself (load, split, fit, evaluate, write) is jobs/train_ranks.c, which a
 * data-parallel run over resources.ranks MPI ranks calls on every rank. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/kiln_alloc.h"
#include "../storage/artifacts.h"
#include "../storage/drift_results.h"
#include "../storage/registry.h"
#include "jobspec.h"
#include "jobtype.h"
#include "model.h"
#include "modelfile.h"
#include "train_ranks.h"
#include "trainset.h"

static void train_free(void *p)
{
    jb_train_spec_t *t = p;
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
    jb_train_spec_t *t = kiln_calloc(1, sizeof *t);
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
    t->ranks = c.resources.ranks;
    *parsed = t;
    return 0;
fail:
    train_free(t);
    return rc;
}

static int train_plan(const void *parsed, const jb_plan_ctx_t *ctx, jb_task_plan_t **tasks,
                      size_t *n_tasks, kiln_err_t *err)
{
    (void)ctx;
    const jb_train_spec_t *spec = parsed;
    /* One task per rank: a gang that mpirun, started by task 0, runs. */
    size_t n = spec->ranks > 1 ? (size_t)spec->ranks : 1;
    jb_task_plan_t *t = kiln_calloc(n, sizeof *t);
    if (!t)
        return kiln_err_set(err, KILN_ENOMEM, "train: out of memory");
    for (size_t i = 0; i < n; i++)
        t[i].index = i;
    *tasks = t;
    *n_tasks = n;
    return 0;
}

/* The single-process task: the one-rank case of jb_train_rank_run.  Ranks
 * > 1 are one MPI program that a launcher starts, never a plain task. */
static int train_run(const void *parsed, const jb_task_plan_t *task, const char *out_path,
                     kiln_err_t *err)
{
    const jb_train_spec_t *spec = parsed;
    if (spec->ranks > 1)
        return kiln_err_at(err, KILN_EUNSUPPORTED, "resources.ranks",
                           "train: resources.ranks %d: the ranks are one MPI program: submit the "
                           "job to kilnd (it launches them), or run `mpirun -np %d kiln-worker "
                           "--train-ranks SPEC.json` (srun --mpi=pmix under Slurm)",
                           spec->ranks, spec->ranks);
    jb_train_where_t where = {.gpu_device = task->use_gpu ? task->gpu_device : -1};
    int rc = jb_train_rank_run_on(parsed, NULL, &where, out_path, err);
    if (rc == 0)
        fprintf(stderr, "trained %s on %s\n", spec->kind->name, where.device);
    return rc;
}

static int train_mpi_launch(const void *parsed)
{
    return ((const jb_train_spec_t *)parsed)->ranks > 1;
}

/* The one task's model file becomes the job's output (a copy, by rename). */
static int train_finish(const void *parsed, const char *const *outs, size_t n,
                        const char *final_output, kiln_err_t *err)
{
    const jb_train_spec_t *spec = parsed;
    /* Under MPI, rank 0 (task 0) writes the model; the other ranks write nothing. */
    size_t want = spec->ranks > 1 ? (size_t)spec->ranks : 1;
    if (n != want)
        return kiln_err_set(err, KILN_EINTERNAL, "train: %zu task outputs, expected %zu", n, want);
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
    const jb_train_spec_t *t = parsed;
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
    /* What it trained on, for a drift job's {"model": ...} reference. */
    if (rc == 0)
        rc = st_registry_run_set_input(ctx->st, run_id, t->input, err);
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
    .mpi_launch = train_mpi_launch,
};
