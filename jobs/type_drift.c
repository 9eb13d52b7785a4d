/* type_drift.c - the drift job type (jobtype.h, docs/drift.md): a reference
 * dataset (a path, or the training data recorded on a model) against a
 * current features or predictions dataset, per column, with Evidently's
 * default methods (kernels/drift.h); a report (HTML + JSON); the verdict
 * stored with the job and on the model's record (storage/drift_results.h);
 * and, when the data drifted, the job of "on_drift": {"submit": SPEC}.
 *
 *   {"type": "drift", "name": "bearing-nightly",
 *    "reference": {"model": "bearing@production"}, "current": "today.h5",
 *    "columns": {"DE.rms": {"method": "psi", "threshold": 0.2}},
 *    "drift_share": 0.5, "by_asset": true,
 *    "output": "drift.json", "report": "drift.html",
 *    "on_drift": {"submit": {"type": "train", ...}}}
 *
 * This file: the spec, kilnd's resolve (model -> its run's training input,
 * model file and id), the plan (one task: the statistics stream over the
 * rows, threaded over columns), finish (the task's JSON as the output) and
 * record.  The task itself is drift_run.c. */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../core/kiln_alloc.h"
#include "../storage/artifacts.h"
#include "../storage/drift_results.h"
#include "../storage/registry.h"
#include "drift_job.h"
#include "jobspec.h"
#include "jobtype.h"

/* ---- spec --------------------------------------------------------------- */

static int get_str(const json_t *o, const char *key, const char *field, char *out, size_t cap,
                   const char *what, kiln_err_t *err)
{
    const json_t *v = json_object_get(o, key);
    if (!json_is_string(v) || !json_string_length(v) || json_string_length(v) >= cap ||
        strlen(json_string_value(v)) != json_string_length(v))
        return kiln_err_at(err, KILN_ESPEC, field, "job: %s: %s", field, what);
    memcpy(out, json_string_value(v), json_string_length(v) + 1);
    return 0;
}

static void drift_free(void *p)
{
    jb_drift_spec_t *t = p;
    if (!t)
        return;
    json_decref(t->on_drift_submit);
    kiln_free(t->overrides);
    kiln_free(t);
}

/* The inner spec's error as one of this spec's fields: "on_drift.submit.X". */
static int inner_error(int rc, const kiln_err_t *in, kiln_err_t *err)
{
    char where[300], msg[sizeof in->msg];
    snprintf(where, sizeof where, "on_drift.submit%s%.250s", in->where[0] ? "." : "", in->where);
    const char *m = in->msg;
    if (!strncmp(m, "job: ", 5))
        m += 5;
    snprintf(msg, sizeof msg, "%s", m);
    /* "job: model.kind: ..." -> "job: on_drift.submit.model.kind: ..." */
    if (in->where[0] && !strncmp(msg, in->where, strlen(in->where)))
        return kiln_err_at(err, rc, where, "job: on_drift.submit.%s", msg);
    return kiln_err_at(err, rc, where, "job: %s: %s", where, msg);
}

/* The inner spec must be a job kilnd would accept.  Types whose references
 * only kilnd resolves (score's "model") are checked fully by drift_resolve. */
static int check_inner(const json_t *spec, int resolved, kiln_err_t *err)
{
    kiln_err_t in;
    kiln_err_clear(&in);
    jb_common_t c;
    int rc = jb_common_parse(spec, &c, &in);
    if (rc < 0)
        return inner_error(rc, &in, err);
    const jb_type_t *type = jb_type_find(c.type);
    if (!type)
        return kiln_err_at(err, KILN_ESPEC, "on_drift.submit.type",
                           "job: on_drift.submit.type: \"%s\" is not a job type", c.type);
    if (c.schedule[0] || c.has_array)
        return kiln_err_at(err, KILN_ESPEC, c.schedule[0] ? "on_drift.submit.schedule"
                                                          : "on_drift.submit.array",
                           "job: on_drift.submit.%s: the job a drift submits runs once",
                           c.schedule[0] ? "schedule" : "array");
    if (type->resolve && !resolved)
        return 0;
    void *parsed = NULL;
    if ((rc = type->validate(spec, &parsed, &in)) < 0)
        return inner_error(rc, &in, err);
    type->free_parsed(parsed);
    return 0;
}

static int parse_columns(const json_t *cols, jb_drift_spec_t *t, kiln_err_t *err)
{
    const char *key;
    json_t *v;
    if (!json_is_object(cols))
        return kiln_err_at(err, KILN_ESPEC, "columns",
                           "job: columns: must be an object {\"COLUMN\": {\"method\": ..., "
                           "\"threshold\": ...}}");
    size_t n = json_object_size(cols);
    if (n > JB_DRIFT_OVERRIDES_MAX)
        return kiln_err_at(err, KILN_ESPEC, "columns", "job: columns: at most %d entries",
                           JB_DRIFT_OVERRIDES_MAX);
    if (n && !(t->overrides = kiln_calloc(n, sizeof *t->overrides)))
        return kiln_err_set(err, KILN_ENOMEM, "job: out of memory");
    json_object_foreach((json_t *)cols, key, v) {
        char field[JB_DRIFT_COL_NAME_MAX + 40];
        jb_drift_override_t *o = &t->overrides[t->n_overrides];
        if (!key[0] || strlen(key) >= sizeof o->name)
            return kiln_err_at(err, KILN_ESPEC, "columns", "job: columns: a column name must "
                               "be 1..%d bytes", JB_DRIFT_COL_NAME_MAX - 1);
        snprintf(field, sizeof field, "columns.%s", key);
        if (!json_is_object(v))
            return kiln_err_at(err, KILN_ESPEC, field, "job: %s: must be an object with "
                               "\"method\" and/or \"threshold\"", field);
        const char *k2;
        json_t *x;
        json_object_foreach(v, k2, x)
            if (strcmp(k2, "method") && strcmp(k2, "threshold")) {
                snprintf(field, sizeof field, "columns.%s.%s", key, k2);
                return kiln_err_at(err, KILN_ESPEC, field, "job: %s: unknown field "
                                   "(method, threshold)", field);
            }
        snprintf(o->name, sizeof o->name, "%s", key);
        o->method = KN_DRIFT_AUTO;
        o->threshold = NAN;
        const json_t *m = json_object_get(v, "method");
        if (m) {
            kiln_err_t merr;
            snprintf(field, sizeof field, "columns.%s.method", key);
            if (!json_is_string(m) ||
                kn_drift_method_parse(json_string_value(m), &o->method, &merr) < 0)
                return kiln_err_at(err, KILN_ESPEC, field,
                                   "job: %s: \"%s\" is not a drift method (ks, wasserstein, "
                                   "psi, jensenshannon, chisquare, chi2_contingency, z, auto)",
                                   field, json_is_string(m) ? json_string_value(m) : "");
        }
        const json_t *th = json_object_get(v, "threshold");
        if (th) {
            snprintf(field, sizeof field, "columns.%s.threshold", key);
            if (!json_is_number(th) || !(json_number_value(th) > 0) ||
                !isfinite(json_number_value(th)))
                return kiln_err_at(err, KILN_ESPEC, field,
                                   "job: %s: must be a number > 0 (a p-value level for ks, "
                                   "chisquare, z; a distance for the others)", field);
            o->threshold = json_number_value(th);
            int pval = o->method == KN_DRIFT_KS || o->method == KN_DRIFT_CHISQUARE ||
                       o->method == KN_DRIFT_CHI2_CONTINGENCY || o->method == KN_DRIFT_ZTEST;
            if (pval && o->threshold >= 1)
                return kiln_err_at(err, KILN_ESPEC, field,
                                   "job: %s: %s drifts at a p-value below the threshold: it "
                                   "must be in (0, 1)", field, kn_drift_method_name(o->method));
        }
        t->n_overrides++;
    }
    return 0;
}

static int drift_validate(const void *spec_, void **parsed, kiln_err_t *err)
{
    static const char *const keys[] = {
        "reference", "current", "columns", "drift_share", "by_asset", "output", "report",
        "on_drift",
        /* set by kilnd's resolve from reference.model */
        "reference_path", "reference_sha256", "model_file", "model_id", "model_name",
        "model_version", NULL};
    const json_t *spec = spec_;
    jb_common_t c;
    int rc;
    *parsed = NULL;
    if ((rc = jb_spec_check_keys(spec, keys, err)) < 0 || (rc = jb_common_parse(spec, &c, err)) < 0)
        return rc;
    jb_drift_spec_t *t = kiln_calloc(1, sizeof *t);
    if (!t)
        return kiln_err_set(err, KILN_ENOMEM, "job: out of memory");
    snprintf(t->name, sizeof t->name, "%s", c.name);
    t->threads = c.resources.cores > 0 ? c.resources.cores : 1;
    const json_t *ref = json_object_get(spec, "reference");
    if (!ref) {
        rc = kiln_err_at(err, KILN_ESPEC, "reference",
                         "job: reference: missing (a features or predictions dataset path, "
                         "or {\"model\": \"NAME@VERSION\"} for the data the model was "
                         "trained on)");
        goto fail;
    }
    if (json_is_object(ref)) {
        const char *k;
        json_t *x;
        json_object_foreach((json_t *)ref, k, x)
            if (strcmp(k, "model")) {
                char field[300];
                snprintf(field, sizeof field, "reference.%.200s", k);
                rc = kiln_err_at(err, KILN_ESPEC, field, "job: %s: unknown field (model)", field);
                goto fail;
            }
        if ((rc = get_str(ref, "model", "reference.model", t->model_ref, sizeof t->model_ref,
                          "a registry reference (\"NAME\", \"NAME@VERSION\" or "
                          "\"NAME@ALIAS\") is required", err)) < 0)
            goto fail;
        if (!json_object_get(spec, "reference_path")) {
            rc = kiln_err_at(err, KILN_ESPEC, "reference.model",
                             "job: reference.model: \"%s\" is resolved by kilnd at submit "
                             "(`kiln submit`); on this machine give the reference dataset's "
                             "path", t->model_ref);
            goto fail;
        }
        if ((rc = get_str(spec, "reference_path", "reference_path", t->reference,
                          sizeof t->reference, "must be a path", err)) < 0 ||
            (rc = get_str(spec, "model_file", "model_file", t->model_file, sizeof t->model_file,
                          "must be a path", err)) < 0 ||
            (rc = get_str(spec, "model_id", "model_id", t->model_id, sizeof t->model_id,
                          "must be NAME@VERSION", err)) < 0 ||
            (rc = get_str(spec, "model_name", "model_name", t->model_name,
                          sizeof t->model_name, "must be a model name", err)) < 0)
            goto fail;
        const json_t *v = json_object_get(spec, "model_version");
        t->model_version = json_is_integer(v) ? (int64_t)json_integer_value(v) : 0;
        v = json_object_get(spec, "reference_sha256");
        if (json_is_string(v) && json_string_length(v) == 64)
            memcpy(t->reference_sha256, json_string_value(v), 65);
    } else if ((rc = get_str(spec, "reference", "reference", t->reference, sizeof t->reference,
                             "a features or predictions dataset path, or {\"model\": "
                             "\"NAME@VERSION\"}", err)) < 0) {
        goto fail;
    }
    if ((rc = get_str(spec, "current", "current", t->current, sizeof t->current,
                      "the current features or predictions dataset's path is required",
                      err)) < 0 ||
        (rc = get_str(spec, "output", "output", t->output, sizeof t->output,
                      "the results' JSON path is required (e.g. \"drift.json\")", err)) < 0)
        goto fail;
    if (json_object_get(spec, "report")) {
        if ((rc = get_str(spec, "report", "report", t->report, sizeof t->report,
                          "must be a path (the HTML report)", err)) < 0)
            goto fail;
    } else {
        /* The output with .html for .json (or .html added). */
        size_t n = strlen(t->output);
        if (n > 5 && !strcmp(t->output + n - 5, ".json"))
            n -= 5;
        if (n + 6 > sizeof t->report) {
            rc = kiln_err_at(err, KILN_ESPEC, "output", "job: output: path too long");
            goto fail;
        }
        snprintf(t->report, sizeof t->report, "%.*s.html", (int)n, t->output);
    }
    if (!strcmp(t->report, t->output)) {
        rc = kiln_err_at(err, KILN_ESPEC, "report", "job: report: the same path as output");
        goto fail;
    }
    if (!strchr(t->reference, '%') && access(t->reference, R_OK) != 0) {
        rc = kiln_err_at(err, KILN_ENOTFOUND, t->model_ref[0] ? "reference.model" : "reference",
                         "job: %s: %s: %s%s%s", t->model_ref[0] ? "reference.model" : "reference",
                         t->reference, strerror(errno),
                         t->model_ref[0] ? " (the training data recorded on " : "",
                         t->model_ref[0] ? t->model_id : "");
        if (t->model_ref[0])
            snprintf(err->msg + strlen(err->msg), sizeof err->msg - strlen(err->msg), ")");
        goto fail;
    }
    const json_t *v = json_object_get(spec, "drift_share");
    t->drift_share = 0.5;
    if (v) {
        if (!json_is_number(v) || !(json_number_value(v) > 0 && json_number_value(v) <= 1)) {
            rc = kiln_err_at(err, KILN_ESPEC, "drift_share",
                             "job: drift_share: must be a number in (0, 1] (the share of "
                             "drifted columns that makes the dataset drifted)");
            goto fail;
        }
        t->drift_share = json_number_value(v);
    }
    v = json_object_get(spec, "by_asset");
    if (v && !json_is_boolean(v)) {
        rc = kiln_err_at(err, KILN_ESPEC, "by_asset", "job: by_asset: must be true or false");
        goto fail;
    }
    t->by_asset = json_is_true(v);
    if ((v = json_object_get(spec, "columns")) && (rc = parse_columns(v, t, err)) < 0)
        goto fail;
    if ((v = json_object_get(spec, "on_drift"))) {
        const char *k;
        json_t *x;
        if (!json_is_object(v)) {
            rc = kiln_err_at(err, KILN_ESPEC, "on_drift",
                             "job: on_drift: must be an object {\"submit\": JOB_SPEC}");
            goto fail;
        }
        json_object_foreach((json_t *)v, k, x)
            if (strcmp(k, "submit")) {
                char field[300];
                snprintf(field, sizeof field, "on_drift.%.200s", k);
                rc = kiln_err_at(err, KILN_ESPEC, field, "job: %s: unknown field (submit)", field);
                goto fail;
            }
        const json_t *sub = json_object_get(v, "submit");
        if (!json_is_object(sub)) {
            rc = kiln_err_at(err, KILN_ESPEC, "on_drift.submit",
                             "job: on_drift.submit: must be a job spec (an object with a "
                             "\"type\")");
            goto fail;
        }
        if ((rc = check_inner(sub, 0, err)) < 0)
            goto fail;
        t->on_drift_submit = json_deep_copy(sub);
        if (!t->on_drift_submit) {
            rc = kiln_err_set(err, KILN_ENOMEM, "job: out of memory");
            goto fail;
        }
    }
    *parsed = t;
    return 0;
fail:
    drift_free(t);
    return rc;
}

/* On kilnd's thread at submit: reference.model -> the path its run trained
 * on, the run's dataset hash, the model file and id; the on_drift job is
 * resolved on a copy and validated, so a bad inner spec is refused now. */
static int drift_resolve(void *spec_, const jb_record_ctx_t *ctx, kiln_err_t *err)
{
    json_t *spec = spec_;
    if (!json_is_object(spec))
        return 0;
    const json_t *ref = json_object_get(spec, "reference");
    const json_t *mref = json_is_object(ref) ? json_object_get(ref, "model") : NULL;
    if (json_is_string(mref) && json_string_length(mref) && json_string_length(mref) < 300) {
        st_model_t m;
        st_run_t run;
        kiln_err_t rerr;
        kiln_err_clear(&rerr);
        int rc = st_registry_model_resolve(ctx->st, json_string_value(mref), &m, &rerr);
        if (rc < 0)
            return kiln_err_at(err, rc == KILN_ENOTFOUND ? KILN_ENOTFOUND : KILN_ESPEC,
                               "reference.model", "job: reference.model: %s", rerr.msg);
        char input[JB_DRIFT_PATH_MAX], path[JB_DRIFT_PATH_MAX], id[JB_DRIFT_ID_MAX];
        if ((rc = st_registry_run_input(ctx->st, m.run_id, input, sizeof input, &rerr)) < 0)
            return kiln_err_at(err, rc, "reference.model", "job: reference.model: %s", rerr.msg);
        if (!input[0])
            return kiln_err_at(err, KILN_ENOTFOUND, "reference.model",
                               "job: reference.model: %s@%lld (run %lld) has no recorded "
                               "training input (trained before kiln recorded it); give the "
                               "reference dataset's path", m.name, (long long)m.version,
                               (long long)m.run_id);
        if ((rc = st_registry_run_get(ctx->st, m.run_id, &run, &rerr)) < 0)
            return kiln_err_at(err, rc, "reference.model", "job: reference.model: %s", rerr.msg);
        json_t *sha = json_string(run.dataset_sha256 ? run.dataset_sha256 : "");
        st_registry_run_free(&run);
        if (st_artifact_path(ctx->artifacts, m.artifact_sha256, path, sizeof path) < 0) {
            json_decref(sha);
            return kiln_err_at(err, KILN_EINVAL, "reference.model",
                               "job: reference.model: artifact path too long");
        }
        snprintf(id, sizeof id, "%s@%lld", m.name, (long long)m.version);
        if (json_object_set_new(spec, "reference_path", json_string(input)) < 0 ||
            json_object_set_new(spec, "reference_sha256", sha) < 0 ||
            json_object_set_new(spec, "model_file", json_string(path)) < 0 ||
            json_object_set_new(spec, "model_id", json_string(id)) < 0 ||
            json_object_set_new(spec, "model_name", json_string(m.name)) < 0 ||
            json_object_set_new(spec, "model_version", json_integer(m.version)) < 0)
            return kiln_err_set(err, KILN_ENOMEM, "job: out of memory");
    }
    const json_t *od = json_object_get(spec, "on_drift");
    const json_t *sub = json_is_object(od) ? json_object_get(od, "submit") : NULL;
    jb_common_t c;
    kiln_err_t in;
    if (json_is_object(sub) && jb_common_parse(sub, &c, &in) == 0) {
        const jb_type_t *type = jb_type_find(c.type);
        if (type && type->resolve) {
            json_t *copy = json_deep_copy(sub);
            if (!copy)
                return kiln_err_set(err, KILN_ENOMEM, "job: out of memory");
            kiln_err_clear(&in);
            int rc = type->resolve(copy, ctx, &in);
            rc = rc < 0 ? inner_error(rc, &in, err) : check_inner(copy, 1, err);
            json_decref(copy);
            if (rc < 0)
                return rc;
        }
    }
    return 0;
}

/* ---- plan, run, finish --------------------------------------------------- */

static int drift_plan(const void *parsed, const jb_plan_ctx_t *ctx, jb_task_plan_t **tasks,
                      size_t *n_tasks, kiln_err_t *err)
{
    (void)parsed;
    (void)ctx;
    /* One task: every column needs every row (it threads over columns). */
    return jb_plan_even(NULL, 0, 0, "drift", tasks, n_tasks, err);
}

static int drift_run_task(const void *parsed, const jb_task_plan_t *task, const char *out_path,
                          kiln_err_t *err)
{
    (void)task;
    return jb_drift_run(parsed, out_path, err);
}

/* The task's JSON document becomes the output, through a temp name. */
static int drift_finish(const void *parsed, const char *const *outs, size_t n,
                        const char *final_output, kiln_err_t *err)
{
    (void)parsed;
    if (n != 1)
        return kiln_err_set(err, KILN_EINTERNAL, "drift: %zu task outputs, expected 1", n);
    json_error_t jerr;
    json_t *doc = json_load_file(outs[0], 0, &jerr);
    if (!doc)
        return kiln_err_set(err, KILN_EFORMAT, "drift: %s: %s", outs[0], jerr.text);
    char tmp[JB_DRIFT_PATH_MAX + 32];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", final_output, (long)getpid());
    int rc = json_dump_file(doc, tmp, JSON_INDENT(1)) == 0 ? 0 : -1;
    json_decref(doc);
    if (rc < 0 || rename(tmp, final_output) < 0) {
        int e = errno;
        unlink(tmp);
        return kiln_err_at(err, KILN_EIO, "output", "drift: output: %s: %s", final_output,
                           rc < 0 ? "cannot write" : strerror(e));
    }
    return 0;
}

/* ---- record ---------------------------------------------------------------- */

/* On kilnd's thread: the verdict into drift_results (and so on the model's
 * record), then the on_drift job when the data drifted. */
static int drift_record(const void *parsed, const char *task_output, const jb_record_ctx_t *ctx,
                        char *summary, size_t cap, kiln_err_t *err)
{
    const jb_drift_spec_t *t = parsed;
    json_error_t jerr;
    json_t *doc = json_load_file(task_output, 0, &jerr);
    if (!doc)
        return kiln_err_set(err, KILN_EFORMAT, "drift: %s: %s", task_output, jerr.text);
    const json_t *sum = json_object_get(doc, "summary");
    int drifted = json_is_true(json_object_get(sum, "drifted"));
    double share = json_number_value(json_object_get(sum, "share_drifted"));
    int64_t n_cols = json_integer_value(json_object_get(sum, "n_columns"));
    int64_t n_drifted = json_integer_value(json_object_get(sum, "n_drifted"));
    /* The stored copy: every statistic, no histograms (the report has them). */
    json_t *cols = json_array(), *stored = json_deep_copy(doc);
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(stored, "columns"), i, c) {
        json_object_del(c, "histogram");
        json_array_append_new(cols, json_pack("{s:O?, s:O?, s:O?, s:O?, s:O?}", "column",
                                              json_object_get(c, "name"), "method",
                                              json_object_get(c, "method"), "score",
                                              json_object_get(c, "score"), "threshold",
                                              json_object_get(c, "threshold"), "drifted",
                                              json_object_get(c, "drifted")));
    }
    json_decref(doc);
    int rc = 0;
    int64_t child = 0;
    char child_err[400] = "";
    json_t *od = json_object();
    if (drifted && t->on_drift_submit && ctx->submit_child) {
        char name[JB_SPEC_NAME_MAX];
        kiln_err_t serr;
        kiln_err_clear(&serr);
        snprintf(name, sizeof name, "%.100s/on_drift", t->name);
        const char *inner = json_string_value(json_object_get(t->on_drift_submit, "name"));
        if (inner)
            snprintf(name, sizeof name, "%s", inner);
        if (ctx->submit_child(ctx->sched, t->on_drift_submit, name, &child, &serr) < 0) {
            snprintf(child_err, sizeof child_err, "%.390s", serr.msg);
            child = 0;
        }
    }
    if (od) {
        json_object_set_new(od, "configured", json_boolean(t->on_drift_submit != NULL));
        if (child)
            json_object_set_new(od, "job", json_integer(child));
        if (child_err[0])
            json_object_set_new(od, "error", json_string(child_err));
    }
    json_object_set_new(stored, "on_drift", od);
    json_object_set_new(stored, "output", json_string(t->output));
    json_object_set_new(stored, "report", json_string(t->report));
    json_object_set_new(stored, "job_id", json_integer(ctx->job_id));
    char *cols_text = json_dumps(cols, JSON_COMPACT);
    char *doc_text = json_dumps(stored, JSON_COMPACT);
    json_decref(cols);
    json_decref(stored);
    if (!cols_text || !doc_text) {
        rc = kiln_err_set(err, KILN_ENOMEM, "drift: out of memory recording the result");
        goto out;
    }
    st_drift_result_t r = {0};
    r.job_id = ctx->job_id;
    r.model_name = (char *)t->model_name;
    r.model_version = t->model_version;
    r.created_ns = ctx->now_ns;
    r.drifted = drifted;
    r.share = isfinite(share) ? share : 0;
    r.n_columns = n_cols;
    r.n_drifted = n_drifted;
    r.child_job_id = child;
    r.columns_json = cols_text;
    r.result_json = doc_text;
    if ((rc = st_drift_result_put(ctx->st, &r, err)) < 0)
        goto out;
    int w = snprintf(summary, cap, "drift: %s, %lld of %lld columns drifted (share %.3f, "
                     "dataset drifts at >= %.3f); report %s", drifted ? "DRIFTED" : "no drift",
                     (long long)n_drifted, (long long)n_cols, r.share, t->drift_share, t->report);
    if (w > 0 && (size_t)w < cap && child)
        snprintf(summary + w, cap - (size_t)w, "; on_drift: job %lld", (long long)child);
    else if (w > 0 && (size_t)w < cap && child_err[0])
        snprintf(summary + w, cap - (size_t)w, "; on_drift failed: %s", child_err);
out:
    free(cols_text);
    free(doc_text);
    return rc;
}

const jb_type_t jb_type_drift = {
    .name = "drift",
    .validate = drift_validate,
    .plan = drift_plan,
    .run_task = drift_run_task,
    .finish = drift_finish,
    .free_parsed = drift_free,
    .record = drift_record,
    .resolve = drift_resolve,
};
