/* drift_run.c - the drift job's task (drift_job.h): the reference and the
 * current dataset read in chunks of rows (never whole: DESIGN.md, "Reads
 * stream chunk by chunk"), each chunk transposed into columns and fed to
 * kn_drift columns over resources.cores threads (kn_drift_feed_columns);
 * kn_drift keeps values exactly up to 2^20 per column, then a sketch with
 * reported error bounds (kernels/drift.h), so memory stays bounded.
 *
 * Columns compared: the numeric ones (feature names; a predictions file's
 * output names) and the class ones ("label"; a predictions file's
 * "predicted", which against a features reference is compared with the
 * reference's label) present in both.  Two feature datasets must carry the
 * same features (else KILN_ESCHEMA naming the ones only on one side).
 * Class ids are matched by class name, so files with different label lists
 * compare.  by_asset: each asset of the current set (the first
 * JB_DRIFT_ASSETS_MAX by id) against the reference rows of the same asset,
 * or the whole reference when it has none.  Model quality: accuracy and
 * macro F1 on the current labels (the model run over current features, or
 * a predictions file's own /predicted) against the run's recorded metrics.
 *
 * This file: the task itself - both passes, the verdicts and the report
 * (HTML and JSON); the datasets and columns are drift_columns.c's, the
 * accumulators drift_accum.c's, the model quality drift_quality.c's. */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../core/kiln_alloc.h"
#include "drift_report.h"
#include "drift_run_int.h"

#define CHUNK_BYTES ((size_t)16 << 20)
#define CHUNK_ROWS_MAX 65536

static int finish_cols(jb_drift_acc_t *a, kn_drift_col_t **cols, kn_drift_result_t *res,
                       kiln_err_t *err)
{
    for (size_t c = 0; c < a->n_cols; c++) {
        int rc = kn_drift_finish(cols[c], a->cols[c].method, a->cols[c].threshold, &res[c], err);
        if (rc < 0) {
            char msg[sizeof err->msg];
            snprintf(msg, sizeof msg, "%s", err->msg);
            return kiln_err_set(err, rc, "column '%s': %s", a->cols[c].name, msg);
        }
    }
    return 0;
}

static void json_notes(json_t *doc, const jb_drift_acc_t *a, const jb_drift_spec_t *t)
{
    json_t *job = json_object(), *notes = json_array();
    if (!job || !notes) {
        json_decref(job);
        json_decref(notes);
        return;
    }
    json_object_set_new(job, "name", json_string(t->name));
    json_object_set_new(job, "output", json_string(t->output));
    json_object_set_new(job, "report", json_string(t->report));
    json_object_set_new(job, "by_asset", json_boolean(t->by_asset));
    if (t->reference_sha256[0])
        json_object_set_new(job, "reference_sha256", json_string(t->reference_sha256));
    if (a->n_assets_left_out) {
        char note[200];
        snprintf(note, sizeof note, "by_asset: %zu assets beyond the first %d left out",
                 a->n_assets_left_out, JB_DRIFT_ASSETS_MAX);
        json_array_append_new(notes, json_string(note));
    }
    for (size_t j = 0; j < a->n_assets; j++)
        if (!a->assets[j].own_ref) {
            char note[200];
            snprintf(note, sizeof note, "asset %d has no reference rows: compared with the "
                     "whole reference", (int)a->assets[j].id);
            json_array_append_new(notes, json_string(note));
        }
    if (a->quality_note[0]) {
        char note[400];
        snprintf(note, sizeof note, "no model quality: %s", a->quality_note);
        json_array_append_new(notes, json_string(note));
    }
    json_object_set_new(job, "notes", notes);
    json_object_set_new(doc, "job", job);
}

/* The job id from the task's output path (".../tasks/ID/..."), for the report. */
static void job_id_of(const char *out_path, char *buf, size_t cap)
{
    const char *p = strstr(out_path, "/tasks/");
    buf[0] = '\0';
    if (p) {
        long long id = strtoll(p + 7, NULL, 10);
        if (id > 0)
            snprintf(buf, cap, "%lld", id);
    }
}

int jb_drift_run(const jb_drift_spec_t *t, const char *out_path, kiln_err_t *err)
{
    jb_drift_src_t ref, cur;
    jb_drift_acc_t a;
    kn_drift_result_t *res = NULL, *ares = NULL;
    jb_drift_report_asset_t *rassets = NULL;
    const char **names = NULL;
    kn_drift_kind_t *kinds = NULL;
    json_t *doc = NULL;
    int rc;
    memset(&a, 0, sizeof a);
    memset(&cur, 0, sizeof cur);
    a.t = t;
    if ((rc = jb_drift_src_open(&ref, t->reference,
                                t->model_ref[0] ? "reference.model" : "reference", err)) < 0)
        return rc;
    if ((rc = jb_drift_src_open(&cur, t->current, "current", err)) < 0)
        goto out;
    if (t->reference_sha256[0] && ref.content_sha256 &&
        strcmp(t->reference_sha256, ref.content_sha256)) {
        rc = kiln_err_at(err, KILN_ESCHEMA, "reference.model",
                         "reference.model: %s changed since %s was trained on it (content "
                         "sha256 %.12s..., the run recorded %.12s...)", t->reference, t->model_id,
                         ref.content_sha256, t->reference_sha256);
        goto out;
    }
    if (!cur.n_rows) {
        rc = kiln_err_at(err, KILN_EINVAL, "current",
                         "current: %s has no rows: nothing to compare with the reference",
                         t->current);
        goto out;
    }
    if (!ref.n_rows) {
        rc = kiln_err_at(err, KILN_EINVAL, "reference", "reference: %s has no rows", t->reference);
        goto out;
    }
    if ((rc = jb_drift_plan_columns(t, &ref, &cur, &a.cols, &a.n_cols, err)) < 0)
        goto out;
    while (a.n_num < a.n_cols && a.cols[a.n_num].kind == KN_DRIFT_NUMERIC)
        a.n_num++;
    size_t width = ref.n_num > cur.n_num ? ref.n_num : cur.n_num;
    a.step = CHUNK_BYTES / (2 * (width ? width : 1) * sizeof(float));
    if (a.step > CHUNK_ROWS_MAX)
        a.step = CHUNK_ROWS_MAX;
    if (a.step < 1)
        a.step = 1;
    a.rows = kiln_malloc(a.step * (width ? width : 1) * sizeof *a.rows);
    a.colbuf = kiln_malloc(a.step * (a.n_num ? a.n_num : 1) * sizeof *a.colbuf);
    a.colptr = kiln_calloc(a.n_num ? a.n_num : 1, sizeof *a.colptr);
    a.asset = kiln_malloc(a.step * sizeof *a.asset);
    a.label = kiln_malloc(a.step * sizeof *a.label);
    a.pred = kiln_malloc(a.step * sizeof *a.pred);
    a.classbuf = kiln_malloc(a.step * sizeof *a.classbuf);
    a.sel = kiln_malloc(a.step * sizeof *a.sel);
    if (!a.rows || !a.colbuf || !a.colptr || !a.asset || !a.label || !a.pred || !a.classbuf ||
        !a.sel) {
        rc = kiln_err_set(err, KILN_ENOMEM, "drift: no memory for chunks of %zu rows", a.step);
        goto out;
    }
    if ((rc = jb_drift_new_cols(&a, &a.whole, err)) < 0 ||
        (t->by_asset && (rc = jb_drift_find_assets(&a, &ref, &cur, err)) < 0) ||
        (rc = jb_drift_quality_open(&a, &cur, err)) < 0 ||
        (rc = jb_drift_pass(&a, &ref, KN_DRIFT_REF, err)) < 0 ||
        (rc = jb_drift_pass(&a, &cur, KN_DRIFT_CUR, err)) < 0)
        goto out;

    res = kiln_calloc(a.n_cols, sizeof *res);
    names = kiln_calloc(a.n_cols, sizeof *names);
    kinds = kiln_calloc(a.n_cols, sizeof *kinds);
    ares = kiln_calloc(a.n_cols, sizeof *ares);
    rassets = kiln_calloc(a.n_assets ? a.n_assets : 1, sizeof *rassets);
    if (!res || !names || !kinds || !ares || !rassets) {
        rc = kiln_err_set(err, KILN_ENOMEM, "drift: out of memory");
        goto out;
    }
    for (size_t c = 0; c < a.n_cols; c++) {
        names[c] = a.cols[c].name;
        kinds[c] = a.cols[c].kind;
    }
    if ((rc = finish_cols(&a, a.whole, res, err)) < 0)
        goto out;
    size_t n_rassets = 0;
    for (size_t j = 0; j < a.n_assets; j++) {
        jb_drift_asset_t *as = &a.assets[j];
        if (!as->n_cur)
            continue;
        /* A side with no values in some column (all labels unknown) has no
         * verdict: such a column is left out of the asset's share. */
        size_t n_ok = 0, n_drifted = 0;
        for (size_t c = 0; c < a.n_cols; c++) {
            kiln_err_t cerr;
            if (kn_drift_finish(as->cols[c], a.cols[c].method, a.cols[c].threshold, &ares[c],
                                &cerr) < 0)
                continue;
            n_ok++;
            n_drifted += ares[c].drifted != 0;
        }
        jb_drift_report_asset_t *ra = &rassets[n_rassets++];
        ra->asset_id = as->id;
        ra->n_ref_rows = as->n_ref;
        ra->n_cur_rows = as->n_cur;
        ra->n_columns = n_ok;
        ra->n_drifted = n_drifted;
        ra->drifted = n_ok && (double)n_drifted / (double)n_ok >= t->drift_share;
    }
    jb_drift_report_quality_t q[2];
    size_t n_q = 0;
    if (a.quality_on) {
        double acc, f1, racc = NAN, rf1 = NAN;
        jb_drift_quality_finish(&a, &acc, &f1);
        if (a.have_model) {
            const json_t *m = json_object_get(a.model.header, "metrics");
            const json_t *v = json_object_get(m, "accuracy");
            racc = json_is_number(v) ? json_number_value(v) : NAN;
            v = json_object_get(m, "macro_f1");
            rf1 = json_is_number(v) ? json_number_value(v) : NAN;
        }
        q[n_q++] = (jb_drift_report_quality_t){"accuracy", racc, acc};
        q[n_q++] = (jb_drift_report_quality_t){"macro_f1", rf1, f1};
    }
    char job_id[32];
    job_id_of(out_path, job_id, sizeof job_id);
    jb_drift_report_t r = {0};
    r.title = t->name;
    r.job_id = job_id[0] ? job_id : NULL;
    r.model = t->model_id[0] ? t->model_id : NULL;
    r.reference_path = t->reference;
    r.current_path = t->current;
    r.n_ref_rows = ref.n_rows;
    r.n_cur_rows = cur.n_rows;
    r.column_names = names;
    r.column_kinds = kinds;
    r.results = res;
    r.n_columns = a.n_cols;
    r.drift_share = t->drift_share;
    r.assets = n_rassets ? rassets : NULL;
    r.n_assets = n_rassets;
    r.quality = n_q ? q : NULL;
    r.n_quality = n_q;
    void *d = NULL;
    if ((rc = jb_drift_report_write_html(&r, t->report, err)) < 0 ||
        (rc = jb_drift_report_json(&r, &d, err)) < 0)
        goto out;
    doc = d;
    json_notes(doc, &a, t);
    char tmp[JB_DRIFT_PATH_MAX + 32];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", out_path, (long)getpid());
    if (json_dump_file(doc, tmp, JSON_INDENT(1)) < 0 || rename(tmp, out_path) < 0) {
        unlink(tmp);
        rc = kiln_err_set(err, KILN_EIO, "drift: %s: cannot write the result", out_path);
        goto out;
    }
    size_t n_drifted = 0;
    for (size_t c = 0; c < a.n_cols; c++)
        n_drifted += res[c].drifted != 0;
    fprintf(stderr, "drift: %zu of %zu columns drifted (%zu reference rows, %zu current rows); "
            "report %s\n", n_drifted, a.n_cols, ref.n_rows, cur.n_rows, t->report);
    rc = 0;
out:
    json_decref(doc);
    jb_drift_free_cols(&a, &a.whole);
    for (size_t j = 0; j < a.n_assets; j++)
        jb_drift_free_cols(&a, &a.assets[j].cols);
    kiln_free(a.assets);
    if (a.have_model)
        jb_modelfile_free(&a.model);
    kiln_free(a.scores);
    kiln_free(a.model_pred);
    kiln_free(a.label_to_model);
    kiln_free(a.confusion);
    kiln_free(a.cols);
    kiln_free(a.rows);
    kiln_free(a.colbuf);
    kiln_free((void *)a.colptr);
    kiln_free(a.asset);
    kiln_free(a.label);
    kiln_free(a.pred);
    kiln_free(a.classbuf);
    kiln_free(a.sel);
    kiln_free(res);
    kiln_free(ares);
    kiln_free(rassets);
    kiln_free(names);
    kiln_free(kinds);
    jb_drift_src_close(&cur);
    jb_drift_src_close(&ref);
    return rc;
}
