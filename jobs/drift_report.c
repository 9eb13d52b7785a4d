/* drift_report.c - the drift job's report (drift_report.h, docs/drift.md):
 * what its two renderings share - the checks, the summary, the table order
 * (most drifted first), the text helpers and the PATH.tmp.PID-then-rename
 * output files.  The JSON: drift_report_json.c; the self-contained HTML
 * page: drift_report_html.c. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../core/kiln_alloc.h"
#include "drift_report_int.h"

/* ---- validation and summary ------------------------------------------ */

double jb_drift_report_share(const jb_drift_report_t *r)
{
    return r->drift_share > 0 && !isnan(r->drift_share) ? r->drift_share : 0.5;
}

static int check(const jb_drift_report_t *r, kiln_err_t *err)
{
    if (!r)
        return kiln_err_set(err, KILN_EINVAL, "drift report: no report");
    if (r->n_columns == 0 || !r->column_names || !r->results)
        return kiln_err_set(err, KILN_EINVAL, "drift report: %s",
                            r->n_columns == 0 ? "no columns" : "column names or results missing");
    for (size_t i = 0; i < r->n_columns; i++)
        if (!r->column_names[i])
            return kiln_err_set(err, KILN_EINVAL, "drift report: column %zu has no name", i);
    if (r->n_assets && !r->assets)
        return kiln_err_set(err, KILN_EINVAL, "drift report: %zu assets but no rows", r->n_assets);
    if (r->n_quality && !r->quality)
        return kiln_err_set(err, KILN_EINVAL, "drift report: %zu quality metrics but no rows",
                            r->n_quality);
    for (size_t i = 0; i < r->n_quality; i++)
        if (!r->quality[i].metric)
            return kiln_err_set(err, KILN_EINVAL, "drift report: quality metric %zu has no name", i);
    return 0;
}

int jb_drift_report_summary(const jb_drift_report_t *r, size_t *n_drifted, double *share,
                            int *drifted, kiln_err_t *err)
{
    int rc = check(r, err);
    if (rc < 0)
        return rc;
    if ((rc = kn_drift_dataset(r->results, r->n_columns, jb_drift_report_share(r), n_drifted,
                               drifted, err)) < 0)
        return rc;
    *share = (double)*n_drifted / (double)r->n_columns;
    return 0;
}

int jb_drift_report_is_pvalue(kn_drift_method_t m)
{
    return m == KN_DRIFT_KS || m == KN_DRIFT_CHISQUARE || m == KN_DRIFT_CHI2_CONTINGENCY ||
           m == KN_DRIFT_ZTEST;
}

kn_drift_kind_t jb_drift_report_kind(const jb_drift_report_t *r, size_t i)
{
    if (r->column_kinds)
        return r->column_kinds[i];
    return isnan(r->results[i].ks_stat) ? KN_DRIFT_CLASS : KN_DRIFT_NUMERIC;
}

/* How far past the threshold, in decades, positive when drifted; NaN when
 * the score is unknown. */
double jb_drift_report_margin(const kn_drift_result_t *c)
{
    double s = c->score, t = c->threshold;
    if (isnan(s) || isnan(t))
        return NAN;
    if (jb_drift_report_is_pvalue(c->method))
        return s <= 0 ? (t > 0 ? INFINITY : 0) : log10(t / s);
    if (t <= 0)
        return s > 0 ? INFINITY : 0;
    return s <= 0 ? -INFINITY : log10(s / t);
}

typedef struct {
    size_t idx;
    int    drifted;
    double key;     /* larger first; NaN last */
} rank_t;

static int rank_cmp(const void *pa, const void *pb)
{
    const rank_t *a = pa, *b = pb;
    if (a->drifted != b->drifted)
        return a->drifted ? -1 : 1;
    int an = isnan(a->key), bn = isnan(b->key);
    if (an != bn)
        return an ? 1 : -1;
    if (!an && a->key != b->key)
        return a->key > b->key ? -1 : 1;
    return a->idx < b->idx ? -1 : a->idx > b->idx;
}

/* Sorted indices into a new array (kiln_free): columns by margin, assets
 * by share of drifted columns. */
int jb_drift_report_rank(const jb_drift_report_t *r, int assets, size_t **out, kiln_err_t *err)
{
    size_t n = assets ? r->n_assets : r->n_columns;
    rank_t *k = kiln_malloc((n ? n : 1) * sizeof *k);
    size_t *order = kiln_malloc((n ? n : 1) * sizeof *order);
    if (!k || !order) {
        kiln_free(k);
        kiln_free(order);
        return kiln_err_set(err, KILN_ENOMEM, "drift report: out of memory ordering %zu rows", n);
    }
    for (size_t i = 0; i < n; i++) {
        k[i].idx = i;
        if (assets) {
            const jb_drift_report_asset_t *a = &r->assets[i];
            k[i].drifted = a->drifted != 0;
            k[i].key = a->n_columns ? (double)a->n_drifted / (double)a->n_columns : NAN;
        } else {
            k[i].drifted = r->results[i].drifted != 0;
            k[i].key = jb_drift_report_margin(&r->results[i]);
        }
    }
    qsort(k, n, sizeof *k, rank_cmp);
    for (size_t i = 0; i < n; i++)
        order[i] = k[i].idx;
    kiln_free(k);
    *out = order;
    return 0;
}

int jb_drift_report_order(const jb_drift_report_t *r, size_t *order, kiln_err_t *err)
{
    size_t *o = NULL;
    int rc = check(r, err);
    if (rc == 0 && (rc = jb_drift_report_rank(r, 0, &o, err)) == 0) {
        memcpy(order, o, r->n_columns * sizeof *order);
        kiln_free(o);
    }
    return rc;
}

/* ---- text ----------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at s (1..4), 0 when not valid
 * (overlong forms, surrogates and code points past U+10FFFF included). */
size_t jb_drift_report_utf8_len(const unsigned char *s)
{
    unsigned c = s[0];
    if (c < 0x80)
        return 1;
    size_t n = c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
    for (size_t i = 1; i < n; i++)
        if ((s[i] & 0xC0) != 0x80)
            return 0;
    if ((c == 0xE0 && s[1] < 0xA0) || (c == 0xED && s[1] > 0x9F) || (c == 0xF0 && s[1] < 0x90) ||
        (c == 0xF4 && s[1] > 0x8F))
        return 0;
    return n;
}

/* s with each invalid byte replaced by U+FFFD, as a new kiln_malloc string;
 * NULL when out of memory. */
char *jb_drift_report_utf8_clean(const char *s)
{
    size_t n = strlen(s);
    char *out = kiln_malloc(3 * n + 1), *p = out;
    if (!out)
        return NULL;
    for (const unsigned char *q = (const unsigned char *)s; *q;) {
        size_t k = jb_drift_report_utf8_len(q);
        if (k) {
            memcpy(p, q, k);
            p += k;
            q += k;
        } else {
            memcpy(p, "\xEF\xBF\xBD", 3);
            p += 3;
            q++;
        }
    }
    *p = '\0';
    return out;
}

void jb_drift_report_percent(char *buf, size_t n, double share)
{
    double p = 100 * share;
    snprintf(buf, n, p == floor(p) ? "%.0f%%" : "%.1f%%", p);
}

const char *jb_drift_report_kind_name(kn_drift_kind_t k)
{
    return k == KN_DRIFT_CLASS ? "class" : "numeric";
}

void jb_drift_report_iso_time(char *buf, size_t n, int64_t unix_s)
{
    time_t t = (time_t)unix_s;
    struct tm tm;
    if (!gmtime_r(&t, &tm) || !strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm))
        snprintf(buf, n, "%lld", (long long)unix_s);
}

int64_t jb_drift_report_created(const jb_drift_report_t *r)
{
    return r->created_unix_s ? r->created_unix_s : (int64_t)time(NULL);
}

/* ---- output files: PATH.tmp.PID, then rename ------------------------ */

int jb_drift_report_open_tmp(const char *path, char *tmp, size_t n, FILE **f, kiln_err_t *err)
{
    if (!path || !*path)
        return kiln_err_set(err, KILN_EINVAL, "drift report: no output path");
    if (snprintf(tmp, n, "%s.tmp.%d", path, (int)getpid()) >= (int)n)
        return kiln_err_set(err, KILN_EINVAL, "drift report %s: path too long", path);
    if (!(*f = fopen(tmp, "wb")))
        return kiln_err_set(err, KILN_EIO, "drift report %s: cannot create %s: %s", path, tmp,
                            strerror(errno));
    return 0;
}

/* Closes f; renames tmp to path when ok and every write went through,
 * else removes tmp. */
int jb_drift_report_commit_tmp(FILE *f, int ok, const char *tmp, const char *path, kiln_err_t *err)
{
    int bad = !ok || ferror(f);
    int e = bad ? EIO : 0;
    if (!bad && (fflush(f) != 0 || fsync(fileno(f)) != 0))
        bad = 1, e = errno;
    if (fclose(f) != 0 && !bad)
        bad = 1, e = errno;
    if (!bad && rename(tmp, path) < 0)
        bad = 1, e = errno;
    if (bad) {
        unlink(tmp);
        return kiln_err_set(err, KILN_EIO, "drift report %s: cannot write: %s", path, strerror(e));
    }
    return 0;
}
