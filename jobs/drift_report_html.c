/* drift_report_html.c - the drift report as one self-contained HTML page
 * (inline CSS, one inline SVG per column, no script, nothing fetched):
 * verdict, data, model quality, the columns most drifted first, assets. */
#include <math.h>
#include <stdio.h>

#include "../core/kiln_alloc.h"
#include "drift_report_int.h"

#define REF_COLOR "#3b6fb6"
#define CUR_COLOR "#e8710a"

/* The comparison that makes a column drift (drift_stats.c's verdicts). */
static const char *drift_cmp(kn_drift_method_t m)
{
    return m == KN_DRIFT_KS ? "<=" : jb_drift_report_is_pvalue(m) ? "<" : ">=";
}

/* Text or attribute value: the five HTML specials escaped, control
 * characters and invalid UTF-8 as U+FFFD. */
static void html_puts(FILE *f, const char *s)
{
    for (const unsigned char *q = (const unsigned char *)s; *q;) {
        size_t k = jb_drift_report_utf8_len(q);
        if (k == 0 || (*q < 0x20 && *q != '\t' && *q != '\n') || *q == 0x7F) {
            fputs("\xEF\xBF\xBD", f);
            q++;
            continue;
        }
        switch (*q) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        case '\'': fputs("&#39;", f); break;
        default: fwrite(q, 1, k, f);
        }
        q += k;
    }
}

/* %.4g, or an em dash for NaN (HTML). */
static const char *num(char *buf, size_t n, double x)
{
    if (isnan(x))
        return "&mdash;";
    if (isinf(x))
        return x > 0 ? "&infin;" : "&minus;&infin;";
    snprintf(buf, n, "%.4g", x);
    return buf;
}

static const char CSS[] =
    "body{font:14px/1.4 system-ui,-apple-system,'Segoe UI',sans-serif;margin:0;color:#1d1d1f;"
    "background:#f6f7f9}\n"
    "main{max-width:1180px;margin:0 auto;padding:20px}\n"
    "h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px}\n"
    ".meta{color:#555;margin:0 0 16px}.meta span{margin-right:18px}\n"
    "code{font:12px ui-monospace,monospace;background:#eceef1;padding:1px 4px;border-radius:3px;"
    "word-break:break-all}\n"
    "#verdict{border-radius:10px;padding:18px 24px;color:#fff}\n"
    "#verdict.drifted{background:#b3261e}#verdict.stable{background:#1e7b34}\n"
    "#verdict .headline{font-size:28px;font-weight:700}\n"
    "#verdict .share{font-size:18px;margin-top:4px}\n"
    "#verdict .rule{font-size:13px;opacity:.9;margin-top:8px}\n"
    "table{border-collapse:collapse;width:100%;background:#fff;border:1px solid #dde1e6}\n"
    "th,td{padding:6px 10px;border-bottom:1px solid #e6e9ed;text-align:left;vertical-align:top}\n"
    "th{background:#eef1f4;font-weight:600}td.n{text-align:right;font-variant-numeric:tabular-nums}\n"
    "tr[data-drifted='1'] td.name{border-left:4px solid #b3261e}\n"
    "tr[data-drifted='0'] td.name{border-left:4px solid #1e7b34}\n"
    ".badge{display:inline-block;padding:1px 8px;border-radius:9px;font-size:12px;font-weight:600}\n"
    ".badge.yes{background:#fbe3e1;color:#8c1d18}.badge.no{background:#e2f3e6;color:#14572a}\n"
    ".key{display:inline-block;width:12px;height:12px;border-radius:2px;vertical-align:-1px;"
    "margin:0 4px 0 12px}\n"
    "details{margin-top:4px;font-size:12px;color:#444}dl{margin:4px 0;display:grid;"
    "grid-template-columns:auto auto;gap:0 12px}dt{color:#666}dd{margin:0}\n"
    "svg{display:block}svg text{font:10px system-ui,sans-serif;fill:#444}\n"
    "footer{color:#777;font-size:12px;margin-top:24px}\n";

/* The two shares of one column over its 40 plot bins (class columns: one
 * pair of bars per label up to the last one seen), with a legend, the
 * axis ends and the largest share. */
static void html_svg(FILE *f, const jb_drift_report_t *r, size_t i)
{
    const kn_drift_result_t *c = &r->results[i];
    const double W = 260, H = 84, x0 = 4, x1 = 256, top = 16, base = 66;
    int is_class = jb_drift_report_kind(r, i) == KN_DRIFT_CLASS;
    int nb = KN_DRIFT_HIST_BINS;
    double peak = 0, sum_ref = 0, sum_cur = 0;
    if (is_class) {
        nb = 1;
        for (int b = 0; b < KN_DRIFT_HIST_BINS; b++)
            if (c->hist_ref[b] > 0 || c->hist_cur[b] > 0)
                nb = b + 1;
    }
    for (int b = 0; b < nb; b++) {
        peak = fmax(peak, fmax(c->hist_ref[b], c->hist_cur[b]));
        sum_ref += c->hist_ref[b];
        sum_cur += c->hist_cur[b];
    }
    double yscale = peak > 0 ? (base - top) / peak : 0, bw = (x1 - x0) / nb;
    char lo[32], hi[32], pk[32];

    fprintf(f, "<svg class=\"dist\" width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" "
               "role=\"img\"><title>",
            W, H, W, H);
    html_puts(f, r->column_names[i]);
    fputs(": reference (blue) and current (orange) shares</title>\n", f);
    if (is_class) {
        for (int b = 0; b < nb; b++) {
            double xr = x0 + b * bw, hr = c->hist_ref[b] * yscale, hc = c->hist_cur[b] * yscale;
            fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"" REF_COLOR
                       "\"/><rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"" CUR_COLOR
                       "\"/>\n",
                    xr + bw * 0.1, base - hr, bw * 0.4, hr, xr + bw * 0.5, base - hc, bw * 0.4, hc);
        }
        snprintf(lo, sizeof lo, "%.0f", c->hist_lo);
        snprintf(hi, sizeof hi, "%.0f", c->hist_lo + nb - 1);
    } else {
        /* step outlines: reference filled, current filled lighter and stroked */
        for (int side = 0; side < 2; side++) {
            const float *h = side ? c->hist_cur : c->hist_ref;
            fprintf(f, "<path fill=\"%s\" fill-opacity=\"%s\" stroke=\"%s\" stroke-width=\"1\" d=\"M%.1f %.1f",
                    side ? CUR_COLOR : REF_COLOR, side ? "0.35" : "0.55",
                    side ? CUR_COLOR : REF_COLOR, x0, base);
            for (int b = 0; b < nb; b++) {
                double y = base - h[b] * yscale;
                fprintf(f, "V%.1fH%.1f", y, x0 + (b + 1) * bw);
            }
            fprintf(f, "V%.1fZ\"/>\n", base);
        }
        snprintf(lo, sizeof lo, "%.4g", c->hist_lo);
        snprintf(hi, sizeof hi, "%.4g", c->hist_hi);
    }
    fprintf(f, "<line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\" stroke=\"#888\"/>\n", x0, base,
            x1, base);
    fprintf(f, "<text class=\"axis-min\" x=\"%.0f\" y=\"%.0f\">%s%s</text>", x0, base + 12,
            is_class ? "class " : "", lo);
    fprintf(f, "<text class=\"axis-max\" x=\"%.0f\" y=\"%.0f\" text-anchor=\"end\">%s%s</text>\n", x1,
            base + 12, is_class ? "class " : "", hi);
    jb_drift_report_percent(pk, sizeof pk, round(peak * 1000) / 1000);
    fprintf(f, "<text class=\"peak\" x=\"%.0f\" y=\"10\">max %s</text>", x0, pk);
    fprintf(f, "<rect x=\"142\" y=\"2\" width=\"9\" height=\"9\" fill=\"" REF_COLOR "\"/>"
               "<text x=\"154\" y=\"10\">reference</text>"
               "<rect x=\"206\" y=\"2\" width=\"9\" height=\"9\" fill=\"" CUR_COLOR "\"/>"
               "<text x=\"218\" y=\"10\">current</text>\n");
    if (is_class && (sum_ref < 0.999 || sum_cur < 0.999))
        fprintf(f, "<text x=\"%.0f\" y=\"%.0f\" text-anchor=\"middle\">labels past %.0f not plotted"
                   "</text>\n", (x0 + x1) / 2, base + 12, c->hist_lo + KN_DRIFT_HIST_BINS - 1);
    fputs("</svg>", f);
}

static void stat_row(FILE *f, const char *name, double x)
{
    char b[32];
    if (!isnan(x))
        fprintf(f, "<dt>%s</dt><dd>%s</dd>", name, num(b, sizeof b, x));
}

static void html_stats(FILE *f, const kn_drift_result_t *c)
{
    fprintf(f, "<details><summary>statistics</summary><dl>"
               "<dt>rows ref / cur</dt><dd>%zu / %zu</dd><dt>distinct</dt><dd>%zu%s</dd>",
            c->n_ref, c->n_cur, c->n_unique, c->sketched ? " (sketch buckets)" : "");
    stat_row(f, "KS D", c->ks_stat);
    if (!isnan(c->ks_p))
        fprintf(f, "<dt>KS p (%s)</dt><dd>%.4g</dd>", c->ks_exact ? "exact" : "asymptotic", c->ks_p);
    stat_row(f, "Wasserstein", c->wasserstein);
    stat_row(f, "Wasserstein / std", c->wasserstein_norm);
    stat_row(f, "reference std", c->ref_std);
    if (!isnan(c->psi))
        fprintf(f, "<dt>PSI (%d bins)</dt><dd>%.4g</dd>", c->n_bins, c->psi);
    if (!isnan(c->psi_quantile))
        fprintf(f, "<dt>PSI on reference quantiles (%d bins)</dt><dd>%.4g</dd>",
                c->n_quantile_bins, c->psi_quantile);
    stat_row(f, "Jensen-Shannon", c->jensenshannon);
    stat_row(f, "chi-square stat", c->chisquare_stat);
    stat_row(f, "chi-square p", c->chisquare_p);
    if (!isnan(c->chi2_stat))
        fprintf(f, "<dt>chi2 contingency (dof %d)</dt><dd>%.4g, p %.4g</dd>", c->chi2_dof,
                c->chi2_stat, c->chi2_p);
    stat_row(f, "z-test p", c->z_p);
    if (c->sketched) {
        stat_row(f, "KS error bound", c->ks_error_bound);
        stat_row(f, "W error bound", c->wasserstein_error_bound);
    }
    fputs("</dl></details>", f);
}

static void html_columns(FILE *f, const jb_drift_report_t *r, const size_t *order)
{
    char b1[32], b2[32];
    fputs("<h2>Columns, most drifted first</h2>\n<p>Distributions: "
          "<span class=\"key\" style=\"background:" REF_COLOR "\"></span>reference"
          "<span class=\"key\" style=\"background:" CUR_COLOR "\"></span>current "
          "(share of rows per bin; numeric columns in 40 equal bins from min to max of both "
          "samples, class columns one pair of bars per label).</p>\n"
          "<table id=\"features\"><thead><tr><th>#</th><th>feature</th><th>type</th><th>method</th>"
          "<th>score</th><th>threshold</th><th>drifted</th><th>distribution</th></tr></thead>"
          "<tbody>\n", f);
    for (size_t k = 0; k < r->n_columns; k++) {
        size_t i = order[k];
        const kn_drift_result_t *c = &r->results[i];
        const char *cmp = drift_cmp(c->method);
        fprintf(f, "<tr class=\"feature-row\" data-rank=\"%zu\" data-index=\"%zu\" data-drifted=\"%d\" "
                   "data-feature=\"", k + 1, i, c->drifted ? 1 : 0);
        html_puts(f, r->column_names[i]);
        fprintf(f, "\"><td class=\"n\">%zu</td><td class=\"name\"><strong>", k + 1);
        html_puts(f, r->column_names[i]);
        fputs("</strong>", f);
        html_stats(f, c);
        fprintf(f,
                "</td><td>%s</td><td>%s</td><td class=\"n score\">%s%s</td><td class=\"n\">%s "
                "%s</td>",
                jb_drift_report_kind_name(jb_drift_report_kind(r, i)),
                kn_drift_method_name(c->method), jb_drift_report_is_pvalue(c->method) ? "p = " : "",
                num(b1, sizeof b1, c->score),
                jb_drift_report_is_pvalue(c->method) ? (cmp[1] ? "p &le;" : "p &lt;") : "&ge;",
                num(b2, sizeof b2, c->threshold));
        fprintf(f, "<td><span class=\"badge %s\">%s</span></td><td>", c->drifted ? "yes" : "no",
                c->drifted ? "drifted" : "no");
        html_svg(f, r, i);
        fputs("</td></tr>\n", f);
    }
    fputs("</tbody></table>\n", f);
}

static void html_assets(FILE *f, const jb_drift_report_t *r, const size_t *order)
{
    char pc[32];
    fputs("<h2>Assets</h2>\n<table id=\"assets\"><thead><tr><th>asset</th>"
          "<th>rows ref</th><th>rows cur</th><th>drifted columns</th><th>share</th>"
          "<th>drifted</th></tr></thead><tbody>\n", f);
    for (size_t k = 0; k < r->n_assets; k++) {
        const jb_drift_report_asset_t *a = &r->assets[order[k]];
        if (a->n_columns)
            jb_drift_report_percent(pc, sizeof pc, (double)a->n_drifted / (double)a->n_columns);
        else
            snprintf(pc, sizeof pc, "&mdash;");
        fprintf(f, "<tr class=\"asset-row\" data-asset=\"%d\" data-drifted=\"%d\"><td>%d</td>"
                   "<td class=\"n\">%zu</td><td class=\"n\">%zu</td><td class=\"n\">%zu of %zu</td>"
                   "<td class=\"n\">%s</td><td><span class=\"badge %s\">%s</span></td></tr>\n",
                (int)a->asset_id, a->drifted ? 1 : 0, (int)a->asset_id, a->n_ref_rows,
                a->n_cur_rows, a->n_drifted, a->n_columns, pc, a->drifted ? "yes" : "no",
                a->drifted ? "drifted" : "no");
    }
    fputs("</tbody></table>\n", f);
}

static void html_quality(FILE *f, const jb_drift_report_t *r)
{
    char b1[32], b2[32], b3[32];
    fputs("<h2>Model quality</h2>\n<table id=\"quality\"><thead><tr><th>metric</th>"
          "<th>reference</th><th>current</th><th>change</th></tr></thead><tbody>\n", f);
    for (size_t k = 0; k < r->n_quality; k++) {
        const jb_drift_report_quality_t *q = &r->quality[k];
        fputs("<tr class=\"quality-row\" data-metric=\"", f);
        html_puts(f, q->metric);
        fputs("\"><td>", f);
        html_puts(f, q->metric);
        fprintf(f, "</td><td class=\"n\">%s</td><td class=\"n\">%s</td><td class=\"n\">%s</td></tr>\n",
                num(b1, sizeof b1, q->reference), num(b2, sizeof b2, q->current),
                num(b3, sizeof b3, q->current - q->reference));
    }
    fputs("</tbody></table>\n", f);
}

static void html_meta(FILE *f, const char *label, const char *value)
{
    if (!value)
        return;
    fprintf(f, "<span>%s <code>", label);
    html_puts(f, value);
    fputs("</code></span>", f);
}

static void html_page(FILE *f, const jb_drift_report_t *r, const size_t *order,
                      const size_t *aorder, size_t n_drifted, double share, int drifted)
{
    const char *title = r->title ? r->title : "Drift report";
    char when[40], pc[32], ds[32];
    jb_drift_report_iso_time(when, sizeof when, jb_drift_report_created(r));
    jb_drift_report_percent(pc, sizeof pc, share);
    jb_drift_report_percent(ds, sizeof ds, jb_drift_report_share(r));

    fputs("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
          "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\n<title>", f);
    html_puts(f, title);
    fprintf(f, " - %s</title>\n<style>\n%s</style>\n</head><body><main>\n<h1 id=\"title\">",
            drifted ? "drift detected" : "no drift", CSS);
    html_puts(f, title);
    fputs("</h1>\n<p class=\"meta\">", f);
    html_meta(f, "job", r->job_id);
    html_meta(f, "model", r->model);
    fprintf(f, "<span>created <time datetime=\"%s\">%s</time></span></p>\n", when, when);

    fprintf(f, "<section id=\"verdict\" class=\"%s\" data-drifted=\"%d\" data-n-drifted=\"%zu\" "
               "data-n-columns=\"%zu\" data-share=\"%.6g\">\n"
               "<div class=\"headline\">%s</div>\n"
               "<div class=\"share\" id=\"drift-share\">%zu of %zu features drifted (%s)</div>\n"
               "<div class=\"rule\" id=\"rule\">Rule: the dataset drifts when at least %s of its "
               "features drift (drift_share %g). ",
            drifted ? "drifted" : "stable", drifted ? 1 : 0, n_drifted, r->n_columns, share,
            drifted ? "Dataset drift detected" : "No dataset drift", n_drifted, r->n_columns, pc,
            ds, jb_drift_report_share(r));
    fputs("Per feature: p-value methods drift at p &le; threshold (ks) or p &lt; threshold "
          "(chisquare, chi2_contingency, z); distances (wasserstein, psi, psi_quantile, "
          "jensenshannon) at score "
          "&ge; threshold. Methods used:", f);
    for (int m = KN_DRIFT_KS; m <= KN_DRIFT_PSI_QUANTILE; m++) {
        size_t n = 0;
        for (size_t i = 0; i < r->n_columns; i++)
            n += (int)r->results[i].method == m;
        if (n)
            fprintf(f, " %s &times;%zu", kn_drift_method_name((kn_drift_method_t)m), n);
    }
    fputs(".</div>\n</section>\n", f);

    fputs("<h2>Data</h2>\n<table id=\"data\"><thead><tr><th></th><th>dataset</th><th>rows</th>"
          "</tr></thead><tbody>\n<tr><td>reference</td><td><code>", f);
    html_puts(f, r->reference_path ? r->reference_path : "-");
    fprintf(f, "</code></td><td class=\"n\">%zu</td></tr>\n<tr><td>current</td><td><code>",
            r->n_ref_rows);
    html_puts(f, r->current_path ? r->current_path : "-");
    fprintf(f, "</code></td><td class=\"n\">%zu</td></tr>\n</tbody></table>\n", r->n_cur_rows);

    if (r->n_quality)
        html_quality(f, r);
    html_columns(f, r, order);
    if (r->n_assets)
        html_assets(f, r, aorder);
    fputs("<footer>Written by kiln's drift job. Statistics: kernels/drift.h (scipy and Evidently "
          "0.7 definitions). This page is self-contained: it needs no network. The same data: the "
          "report's JSON (", f);
    fputs(JB_DRIFT_REPORT_SCHEMA ").</footer>\n</main></body></html>\n", f);
}

int jb_drift_report_write_html(const jb_drift_report_t *r, const char *path, kiln_err_t *err)
{
    size_t n_drifted, *order = NULL, *aorder = NULL;
    double share;
    int drifted;
    char tmp[4200];
    FILE *f = NULL;
    int rc = jb_drift_report_summary(r, &n_drifted, &share, &drifted, err);
    if (rc < 0)
        return rc;
    if ((rc = jb_drift_report_rank(r, 0, &order, err)) < 0 ||
        (rc = jb_drift_report_rank(r, 1, &aorder, err)) < 0)
        goto out;
    if ((rc = jb_drift_report_open_tmp(path, tmp, sizeof tmp, &f, err)) < 0)
        goto out;
    html_page(f, r, order, aorder, n_drifted, share, drifted);
    rc = jb_drift_report_commit_tmp(f, 1, tmp, path, err);
out:
    kiln_free(aorder);
    kiln_free(order);
    return rc;
}
