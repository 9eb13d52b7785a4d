/* drift_report_json.c - the drift report as JSON (schema
 * JB_DRIFT_REPORT_SCHEMA, docs/drift.md): summary, every statistic of every
 * column in table order (NaN and Inf -> null), histograms, assets,
 * quality. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "../core/kiln_alloc.h"
#include "drift_report_int.h"

static json_t *jnum(double x)
{
    return isfinite(x) ? json_real(x) : json_null();
}

/* A float share as its shortest round-tripping decimal (0.025, not
 * 0.025000000372529). */
static json_t *jfloat(float x)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%.9g", (double)x);
    return jnum(strtod(buf, NULL));
}

static json_t *jint(size_t n)
{
    return json_integer((json_int_t)n);
}

static json_t *jstr(const char *s)
{
    if (!s)
        return json_null();
    char *c = jb_drift_report_utf8_clean(s);
    json_t *v = c ? json_string(c) : NULL;
    kiln_free(c);
    return v;
}

/* Sets o[key] = v, stealing v; remembers a failure (NULL v: out of memory). */
static void put(json_t *o, const char *key, json_t *v, int *bad)
{
    if (!v || json_object_set_new(o, key, v) < 0)
        *bad = 1;
}

static void append(json_t *a, json_t *v, int *bad)
{
    if (!v || json_array_append_new(a, v) < 0)
        *bad = 1;
}

static void rule_text(char *buf, size_t n, double drift_share)
{
    char p[32];
    jb_drift_report_percent(p, sizeof p, drift_share);
    snprintf(buf, n,
             "the dataset drifts when at least %s of its columns drift (drift_share %g); a column "
             "drifts when its p-value is at or below (ks) or below (chisquare, chi2_contingency, z) "
             "the threshold, or its distance (wasserstein, psi, jensenshannon) reaches it",
             p, drift_share);
}

static json_t *column_json(const jb_drift_report_t *r, size_t i, size_t rank_pos, int *bad)
{
    const kn_drift_result_t *c = &r->results[i];
    json_t *o = json_object(), *s = json_object(), *h = json_object();
    json_t *hr = json_array(), *hc = json_array();
    if (!o || !s || !h || !hr || !hc) {
        json_decref(o), json_decref(s), json_decref(h), json_decref(hr), json_decref(hc);
        *bad = 1;
        return NULL;
    }
    put(o, "name", jstr(r->column_names[i]), bad);
    put(o, "index", jint(i), bad);
    put(o, "rank", jint(rank_pos + 1), bad);
    put(o, "type", json_string(jb_drift_report_kind_name(jb_drift_report_kind(r, i))), bad);
    put(o, "method", json_string(kn_drift_method_name(c->method)), bad);
    put(o, "score", jnum(c->score), bad);
    put(o, "threshold", jnum(c->threshold), bad);
    put(o, "drifts_when",
        json_string(jb_drift_report_is_pvalue(c->method)
                        ? (c->method == KN_DRIFT_KS ? "p <= threshold" : "p < threshold")
                        : "score >= threshold"),
        bad);
    put(o, "drifted", json_boolean(c->drifted), bad);
    put(o, "p_value", jnum(c->p_value), bad);
    put(o, "margin", jnum(jb_drift_report_margin(c)), bad);

    put(s, "n_ref", jint(c->n_ref), bad);
    put(s, "n_cur", jint(c->n_cur), bad);
    put(s, "n_unique", jint(c->n_unique), bad);
    put(s, "sketched", json_boolean(c->sketched), bad);
    put(s, "ks_stat", jnum(c->ks_stat), bad);
    put(s, "ks_p", jnum(c->ks_p), bad);
    put(s, "ks_exact", isnan(c->ks_p) ? json_null() : json_boolean(c->ks_exact), bad);
    put(s, "wasserstein", jnum(c->wasserstein), bad);
    put(s, "wasserstein_norm", jnum(c->wasserstein_norm), bad);
    put(s, "ref_std", jnum(c->ref_std), bad);
    put(s, "psi", jnum(c->psi), bad);
    put(s, "psi_quantile", jnum(c->psi_quantile), bad);
    put(s, "n_quantile_bins", json_integer(c->n_quantile_bins), bad);
    put(s, "jensenshannon", jnum(c->jensenshannon), bad);
    put(s, "n_bins", json_integer(c->n_bins), bad);
    put(s, "chisquare_stat", jnum(c->chisquare_stat), bad);
    put(s, "chisquare_p", jnum(c->chisquare_p), bad);
    put(s, "chi2_stat", jnum(c->chi2_stat), bad);
    put(s, "chi2_p", jnum(c->chi2_p), bad);
    put(s, "chi2_dof", json_integer(c->chi2_dof), bad);
    put(s, "z_p", jnum(c->z_p), bad);
    put(s, "ks_error_bound", jnum(c->ks_error_bound), bad);
    put(s, "wasserstein_error_bound", jnum(c->wasserstein_error_bound), bad);
    put(o, "statistics", s, bad);

    for (int b = 0; b < KN_DRIFT_HIST_BINS; b++) {
        append(hr, jfloat(c->hist_ref[b]), bad);
        append(hc, jfloat(c->hist_cur[b]), bad);
    }
    put(h, "lo", jnum(c->hist_lo), bad);
    put(h, "hi", jnum(c->hist_hi), bad);
    put(h, "bins", json_integer(KN_DRIFT_HIST_BINS), bad);
    put(h, "reference", hr, bad);
    put(h, "current", hc, bad);
    put(o, "histogram", h, bad);
    return o;
}

int jb_drift_report_json(const jb_drift_report_t *r, void **out, kiln_err_t *err)
{
    size_t n_drifted, *order = NULL, *aorder = NULL;
    double share;
    int drifted, bad = 0;
    *out = NULL;
    int rc = jb_drift_report_summary(r, &n_drifted, &share, &drifted, err);
    if (rc < 0)
        return rc;
    if ((rc = jb_drift_report_rank(r, 0, &order, err)) < 0 ||
        (rc = jb_drift_report_rank(r, 1, &aorder, err)) < 0) {
        kiln_free(order);
        return rc;
    }
    double ds = jb_drift_report_share(r);
    char when[40], rule[512];
    int64_t t = jb_drift_report_created(r);
    jb_drift_report_iso_time(when, sizeof when, t);
    rule_text(rule, sizeof rule, ds);

    json_t *doc = json_object(), *sum = json_object(), *ref = json_object(), *cur = json_object();
    json_t *cols = json_array(), *assets = json_array(), *quality = json_array();
    put(doc, "schema", json_string(JB_DRIFT_REPORT_SCHEMA), &bad);
    put(doc, "title", jstr(r->title ? r->title : "Drift report"), &bad);
    put(doc, "job_id", jstr(r->job_id), &bad);
    put(doc, "model", jstr(r->model), &bad);
    put(doc, "created", json_string(when), &bad);
    put(doc, "created_unix_s", json_integer((json_int_t)t), &bad);
    put(ref, "path", jstr(r->reference_path), &bad);
    put(ref, "rows", jint(r->n_ref_rows), &bad);
    put(cur, "path", jstr(r->current_path), &bad);
    put(cur, "rows", jint(r->n_cur_rows), &bad);
    put(doc, "reference", ref, &bad);
    put(doc, "current", cur, &bad);

    put(sum, "drifted", json_boolean(drifted), &bad);
    put(sum, "n_columns", jint(r->n_columns), &bad);
    put(sum, "n_drifted", jint(n_drifted), &bad);
    put(sum, "share_drifted", jnum(share), &bad);
    put(sum, "drift_share", jnum(ds), &bad);
    put(sum, "rule", json_string(rule), &bad);
    put(doc, "summary", sum, &bad);

    for (size_t k = 0; k < r->n_columns && !bad; k++)
        append(cols, column_json(r, order[k], k, &bad), &bad);
    put(doc, "columns", cols, &bad);

    for (size_t k = 0; k < r->n_assets && !bad; k++) {
        const jb_drift_report_asset_t *a = &r->assets[aorder[k]];
        json_t *o = json_object();
        put(o, "asset", json_integer(a->asset_id), &bad);
        put(o, "n_ref_rows", jint(a->n_ref_rows), &bad);
        put(o, "n_cur_rows", jint(a->n_cur_rows), &bad);
        put(o, "n_columns", jint(a->n_columns), &bad);
        put(o, "n_drifted", jint(a->n_drifted), &bad);
        put(o, "share_drifted",
            jnum(a->n_columns ? (double)a->n_drifted / (double)a->n_columns : NAN), &bad);
        put(o, "drifted", json_boolean(a->drifted), &bad);
        append(assets, o, &bad);
    }
    put(doc, "assets", assets, &bad);

    for (size_t k = 0; k < r->n_quality && !bad; k++) {
        const jb_drift_report_quality_t *q = &r->quality[k];
        json_t *o = json_object();
        put(o, "metric", jstr(q->metric), &bad);
        put(o, "reference", jnum(q->reference), &bad);
        put(o, "current", jnum(q->current), &bad);
        put(o, "change", jnum(q->current - q->reference), &bad);
        append(quality, o, &bad);
    }
    put(doc, "quality", quality, &bad);

    kiln_free(order);
    kiln_free(aorder);
    if (bad || !doc) {
        json_decref(doc);
        return kiln_err_set(err, KILN_ENOMEM, "drift report: out of memory building the JSON");
    }
    *out = doc;
    return 0;
}

int jb_drift_report_write_json(const jb_drift_report_t *r, const char *path, kiln_err_t *err)
{
    void *doc = NULL;
    char tmp[4200];
    FILE *f = NULL;
    int rc = jb_drift_report_json(r, &doc, err);
    if (rc < 0)
        return rc;
    if ((rc = jb_drift_report_open_tmp(path, tmp, sizeof tmp, &f, err)) == 0) {
        int ok = json_dumpf(doc, f, JSON_INDENT(1)) == 0 && fputc('\n', f) != EOF;
        rc = jb_drift_report_commit_tmp(f, ok, tmp, path, err);
    }
    json_decref(doc);
    return rc;
}
