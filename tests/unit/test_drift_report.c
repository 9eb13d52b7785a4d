/* test_drift_report.c - the drift report (jobs/drift_report.h) from real
 * kn_drift_col results: the JSON read back value for value, the HTML's
 * verdict, row order, one SVG per column, escaping and self-containment;
 * the tmp-then-rename write, bad paths, bad reports, failed allocations. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>
#include <jansson.h>

#include "oracle.h"
#include "core/kiln_alloc.h"
#include "jobs/drift_report.h"

#define N_COLS 7
#define EVIL_NAME "<b>&\"x"
#define EVIL_ESCAPED "&lt;b&gt;&amp;&quot;x"

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static double normal01(void)
{
    double u1 = oracle_uniform01(&rng_state), u2 = oracle_uniform01(&rng_state);
    return sqrt(-2 * log(u1 + 1e-300)) * cos(2 * M_PI * u2);
}

/* One finished numeric column: n_ref values of N(0, 1) against n_cur of
 * N(shift, scale). */
static void numeric(size_t n_ref, size_t n_cur, double shift, double scale, kn_drift_result_t *out)
{
    float *x = malloc((n_ref > n_cur ? n_ref : n_cur) * sizeof *x);
    kn_drift_col_t *c = NULL;
    kiln_err_t err;
    assert_int_equal(kn_drift_col_new(KN_DRIFT_NUMERIC, 0, &c, &err), 0);
    for (size_t i = 0; i < n_ref; i++)
        x[i] = (float)normal01();
    assert_int_equal(kn_drift_feed(c, KN_DRIFT_REF, x, n_ref, &err), 0);
    for (size_t i = 0; i < n_cur; i++)
        x[i] = (float)(shift + scale * normal01());
    assert_int_equal(kn_drift_feed(c, KN_DRIFT_CUR, x, n_cur, &err), 0);
    assert_int_equal(kn_drift_finish(c, KN_DRIFT_AUTO, NAN, out, &err), 0);
    kn_drift_col_destroy(&c);
    free(x);
}

/* One finished class column: labels 0..4, the reference uniform, the
 * current with weight `skew` more on label 0. */
static void classes(size_t n_ref, size_t n_cur, double skew, kn_drift_result_t *out)
{
    int32_t *y = malloc((n_ref > n_cur ? n_ref : n_cur) * sizeof *y);
    kn_drift_col_t *c = NULL;
    kiln_err_t err;
    assert_int_equal(kn_drift_col_new(KN_DRIFT_CLASS, 0, &c, &err), 0);
    for (size_t i = 0; i < n_ref; i++)
        y[i] = (int32_t)(oracle_uniform01(&rng_state) * 5);
    assert_int_equal(kn_drift_feed_class(c, KN_DRIFT_REF, y, n_ref, &err), 0);
    for (size_t i = 0; i < n_cur; i++)
        y[i] = oracle_uniform01(&rng_state) < skew ? 0 : (int32_t)(oracle_uniform01(&rng_state) * 5);
    assert_int_equal(kn_drift_feed_class(c, KN_DRIFT_CUR, y, n_cur, &err), 0);
    assert_int_equal(kn_drift_finish(c, KN_DRIFT_AUTO, NAN, out, &err), 0);
    kn_drift_col_destroy(&c);
    free(y);
}

typedef struct {
    const char               *names[N_COLS];
    kn_drift_result_t         res[N_COLS];
    jb_drift_report_asset_t   assets[3];
    jb_drift_report_quality_t quality[2];
    jb_drift_report_t         r;
    char                      dir[512], html[600], json[600];
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof *f);
    rng_state = 0x9E3779B97F4A7C15ull;     /* the same columns in every test */
    const char *tmp = getenv("TMPDIR");
    snprintf(f->dir, sizeof f->dir, "%s/kiln_drift_report_XXXXXX", tmp && *tmp ? tmp : "/tmp");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->html, sizeof f->html, "%s/report.html", f->dir);
    snprintf(f->json, sizeof f->json, "%s/report.json", f->dir);

    /* a mix of methods: W (n_ref > 1000), KS (<= 1000), chisquare, JS */
    static const char *names[N_COLS] = {"rms", "kurtosis", "band_0_1000", EVIL_NAME,
                                        "predicted", "env_bpfo", "bad\xff utf8"};
    memcpy(f->names, names, sizeof names);
    numeric(5000, 4000, 1.0, 1.0, &f->res[0]);      /* W ~ 1: far past 0.1 */
    numeric(5000, 4000, 0.0, 1.0, &f->res[1]);      /* same: stays */
    numeric(500, 400, 0.6, 1.0, &f->res[2]);        /* KS, p tiny */
    numeric(5000, 4000, 0.2, 1.0, &f->res[3]);      /* W ~ 0.2: just past */
    classes(800, 600, 0.3, &f->res[4]);             /* chisquare, p tiny */
    classes(5000, 4000, 0.0, &f->res[5]);           /* JS, the same */
    numeric(800, 700, 0.0, 1.0, &f->res[6]);        /* KS, the same */

    f->assets[0] = (jb_drift_report_asset_t){.asset_id = 3, .n_ref_rows = 900, .n_cur_rows = 700,
                                             .n_columns = N_COLS, .n_drifted = 1, .drifted = 0};
    f->assets[1] = (jb_drift_report_asset_t){.asset_id = 7, .n_ref_rows = 1200, .n_cur_rows = 800,
                                             .n_columns = N_COLS, .n_drifted = 5, .drifted = 1};
    f->assets[2] = (jb_drift_report_asset_t){.asset_id = 12, .n_ref_rows = 10, .n_cur_rows = 0,
                                             .n_columns = 0, .n_drifted = 0, .drifted = 0};
    f->quality[0] = (jb_drift_report_quality_t){"accuracy", 0.97, 0.81};
    f->quality[1] = (jb_drift_report_quality_t){"macro_f1", 0.95, NAN};

    f->r = (jb_drift_report_t){
        .title = "nightly drift <line 3>",
        .job_id = "J-42",
        .model = "bearing@7",
        .reference_path = "/data/ref & train.h5",
        .current_path = "/data/july.h5",
        .n_ref_rows = 5000,
        .n_cur_rows = 4000,
        .created_unix_s = 1720000000,
        .column_names = f->names,
        .results = f->res,
        .n_columns = N_COLS,
        .assets = f->assets,
        .n_assets = 3,
        .quality = f->quality,
        .n_quality = 2,
    };
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    unlink(f->html);
    unlink(f->json);
    rmdir(f->dir);
    free(f);
    return 0;
}

static char *slurp(const char *path)
{
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    rewind(fp);
    char *s = malloc((size_t)n + 1);
    assert_int_equal(fread(s, 1, (size_t)n, fp), (size_t)n);
    s[n] = '\0';
    fclose(fp);
    return s;
}

static size_t count(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

/* The drift margin as the header defines it, computed here on its own. */
static double want_margin(const kn_drift_result_t *c)
{
    int pv = c->method == KN_DRIFT_KS || c->method == KN_DRIFT_CHISQUARE ||
             c->method == KN_DRIFT_CHI2_CONTINGENCY || c->method == KN_DRIFT_ZTEST;
    if (pv)
        return c->score <= 0 ? INFINITY : log10(c->threshold / c->score);
    return log10(c->score / c->threshold);
}

/* The fixture is what it means to be: methods mixed, some columns drift. */
static void test_fixture_mix(void **state)
{
    fixture_t *f = *state;
    assert_int_equal(f->res[0].method, KN_DRIFT_WASSERSTEIN_NORM);
    assert_int_equal(f->res[2].method, KN_DRIFT_KS);
    assert_int_equal(f->res[4].method, KN_DRIFT_CHISQUARE);
    assert_int_equal(f->res[5].method, KN_DRIFT_JENSENSHANNON);
    assert_true(f->res[0].drifted && f->res[2].drifted && f->res[3].drifted && f->res[4].drifted);
    assert_false(f->res[1].drifted || f->res[5].drifted || f->res[6].drifted);
}

static void test_order(void **state)
{
    fixture_t *f = *state;
    size_t order[N_COLS];
    kiln_err_t err;
    assert_int_equal(jb_drift_report_order(&f->r, order, &err), 0);
    int seen[N_COLS] = {0};
    for (size_t k = 0; k < N_COLS; k++) {
        assert_true(order[k] < N_COLS && !seen[order[k]]);
        seen[order[k]] = 1;
        if (k == 0)
            continue;
        const kn_drift_result_t *a = &f->res[order[k - 1]], *b = &f->res[order[k]];
        assert_true(a->drifted >= b->drifted);
        if (a->drifted == b->drifted)
            assert_true(want_margin(a) >= want_margin(b));
    }
    /* W ~ 1 is one decade past its threshold, W ~ 0.2 a fraction of one;
     * tiny p-values are many decades past theirs */
    assert_int_equal(order[3], 3);
    assert_true(f->res[order[0]].method == KN_DRIFT_KS || f->res[order[0]].method == KN_DRIFT_CHISQUARE);
}

static void test_json(void **state)
{
    fixture_t *f = *state;
    kiln_err_t err;
    assert_int_equal(jb_drift_report_write_json(&f->r, f->json, &err), 0);
    char tmp[700];
    oracle_writer_tmp_path(tmp, sizeof tmp, f->json);
    assert_false(oracle_file_exists(tmp));

    json_error_t jerr;
    json_t *doc = json_load_file(f->json, JSON_REJECT_DUPLICATES, &jerr);
    if (!doc)
        fail_msg("%s: %s (line %d)", f->json, jerr.text, jerr.line);
    assert_string_equal(json_string_value(json_object_get(doc, "schema")), JB_DRIFT_REPORT_SCHEMA);
    assert_string_equal(json_string_value(json_object_get(doc, "title")), "nightly drift <line 3>");
    assert_string_equal(json_string_value(json_object_get(doc, "model")), "bearing@7");
    assert_string_equal(json_string_value(json_object_get(doc, "created")), "2024-07-03T09:46:40Z");
    json_t *ref = json_object_get(doc, "reference");
    assert_string_equal(json_string_value(json_object_get(ref, "path")), "/data/ref & train.h5");
    assert_int_equal(json_integer_value(json_object_get(ref, "rows")), 5000);

    size_t want_drifted = 0;
    int want_verdict = 0;
    assert_int_equal(kn_drift_dataset(f->res, N_COLS, 0.5, &want_drifted, &want_verdict, &err), 0);
    json_t *sum = json_object_get(doc, "summary");
    assert_int_equal(json_integer_value(json_object_get(sum, "n_drifted")), want_drifted);
    assert_int_equal(json_integer_value(json_object_get(sum, "n_columns")), N_COLS);
    assert_int_equal(json_is_true(json_object_get(sum, "drifted")), want_verdict);
    assert_true(json_real_value(json_object_get(sum, "share_drifted")) == (double)want_drifted / N_COLS);
    assert_true(json_real_value(json_object_get(sum, "drift_share")) == 0.5);

    size_t order[N_COLS];
    assert_int_equal(jb_drift_report_order(&f->r, order, &err), 0);
    json_t *cols = json_object_get(doc, "columns");
    assert_int_equal(json_array_size(cols), N_COLS);
    for (size_t k = 0; k < N_COLS; k++) {
        json_t *c = json_array_get(cols, k), *s = json_object_get(c, "statistics");
        size_t i = (size_t)json_integer_value(json_object_get(c, "index"));
        assert_int_equal(i, order[k]);
        const kn_drift_result_t *r = &f->res[i];
        if (i == 6)     /* the invalid byte became U+FFFD */
            assert_string_equal(json_string_value(json_object_get(c, "name")), "bad\xEF\xBF\xBD utf8");
        else
            assert_string_equal(json_string_value(json_object_get(c, "name")), f->names[i]);
        assert_string_equal(json_string_value(json_object_get(c, "method")),
                            kn_drift_method_name(r->method));
        assert_string_equal(json_string_value(json_object_get(c, "type")),
                            i == 4 || i == 5 ? "class" : "numeric");
        /* doubles go through %.17g: they come back bit for bit */
        assert_true(json_real_value(json_object_get(c, "score")) == r->score);
        assert_true(json_real_value(json_object_get(c, "threshold")) == r->threshold);
        assert_int_equal(json_is_true(json_object_get(c, "drifted")), r->drifted);
        assert_int_equal(json_integer_value(json_object_get(s, "n_ref")), r->n_ref);
        assert_int_equal(json_integer_value(json_object_get(s, "n_unique")), r->n_unique);
        const char *stat[] = {"ks_stat", "ks_p", "wasserstein", "wasserstein_norm", "ref_std", "psi",
                              "jensenshannon", "chisquare_stat", "chisquare_p", "chi2_stat",
                              "chi2_p", "z_p"};
        const double val[] = {r->ks_stat, r->ks_p, r->wasserstein, r->wasserstein_norm, r->ref_std,
                              r->psi, r->jensenshannon, r->chisquare_stat, r->chisquare_p,
                              r->chi2_stat, r->chi2_p, r->z_p};
        for (size_t q = 0; q < sizeof stat / sizeof *stat; q++) {
            json_t *v = json_object_get(s, stat[q]);
            assert_non_null(v);
            if (isfinite(val[q]))
                assert_true(json_real_value(v) == val[q]);
            else if (!json_is_null(v))
                fail_msg("column %zu %s: %g should be null", i, stat[q], val[q]);
        }
        if (i == 4 || i == 5)       /* class columns: no KS, so null */
            assert_true(json_is_null(json_object_get(s, "ks_stat")));
        else
            assert_true(json_is_null(json_object_get(c, "p_value")) == (r->method != KN_DRIFT_KS));
        json_t *h = json_object_get(c, "histogram");
        assert_true(json_real_value(json_object_get(h, "lo")) == r->hist_lo);
        json_t *hr = json_object_get(h, "reference"), *hc = json_object_get(h, "current");
        assert_int_equal(json_array_size(hr), KN_DRIFT_HIST_BINS);
        assert_int_equal(json_array_size(hc), KN_DRIFT_HIST_BINS);
        for (size_t b = 0; b < KN_DRIFT_HIST_BINS; b++) {   /* %.9g round-trips a float */
            assert_true((float)json_number_value(json_array_get(hr, b)) == r->hist_ref[b]);
            assert_true((float)json_number_value(json_array_get(hc, b)) == r->hist_cur[b]);
        }
    }
    json_t *assets = json_object_get(doc, "assets");
    assert_int_equal(json_array_size(assets), 3);
    /* drifted first, then by share; asset 12 (no columns) has a null share */
    assert_int_equal(json_integer_value(json_object_get(json_array_get(assets, 0), "asset")), 7);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(assets, 1), "asset")), 3);
    assert_true(json_is_null(json_object_get(json_array_get(assets, 2), "share_drifted")));
    json_t *q = json_object_get(doc, "quality");
    assert_int_equal(json_array_size(q), 2);
    assert_true(json_real_value(json_object_get(json_array_get(q, 0), "current")) == 0.81);
    assert_true(json_is_null(json_object_get(json_array_get(q, 1), "current")));
    json_decref(doc);
}

static void test_html(void **state)
{
    fixture_t *f = *state;
    kiln_err_t err;
    assert_int_equal(jb_drift_report_write_html(&f->r, f->html, &err), 0);
    char tmp[700];
    oracle_writer_tmp_path(tmp, sizeof tmp, f->html);
    assert_false(oracle_file_exists(tmp));
    char *h = slurp(f->html);

    size_t n_drifted = 0;
    int verdict = 0;
    assert_int_equal(kn_drift_dataset(f->res, N_COLS, 0.5, &n_drifted, &verdict, &err), 0);
    assert_true(verdict);   /* 4 of 7 */
    assert_non_null(strstr(h, "<section id=\"verdict\" class=\"drifted\" data-drifted=\"1\""));
    assert_non_null(strstr(h, "Dataset drift detected"));
    assert_non_null(strstr(h, "4 of 7 features drifted (57.1%)"));
    assert_non_null(strstr(h, "at least 50% of its features drift"));

    /* one row and one SVG per column, rows in the report's order */
    assert_int_equal(count(h, "class=\"feature-row\""), N_COLS);
    assert_int_equal(count(h, "<svg"), N_COLS);
    assert_int_equal(count(h, "</svg>"), N_COLS);
    size_t order[N_COLS];
    assert_int_equal(jb_drift_report_order(&f->r, order, &err), 0);
    const char *p = h;
    for (size_t k = 0; k < N_COLS; k++) {
        p = strstr(p, "class=\"feature-row\"");
        assert_non_null(p);
        char want[128];
        snprintf(want, sizeof want, "data-index=\"%zu\" data-drifted=\"%d\" data-feature=\"", order[k],
                 f->res[order[k]].drifted);
        const char *row_end = strchr(p, '>');
        const char *hit = strstr(p, want);
        if (!hit || hit > row_end)
            fail_msg("row %zu: want %s in %.200s", k, want, p);
        p = row_end;
    }
    /* every string escaped where it came from a file or a spec */
    assert_non_null(strstr(h, "data-feature=\"" EVIL_ESCAPED "\""));
    assert_non_null(strstr(h, "<strong>" EVIL_ESCAPED "</strong>"));
    assert_null(strstr(h, EVIL_NAME));
    assert_non_null(strstr(h, "nightly drift &lt;line 3&gt;"));
    assert_non_null(strstr(h, "/data/ref &amp; train.h5"));
    assert_non_null(strstr(h, "bad\xEF\xBF\xBD utf8"));
    assert_null(strstr(h, "\xff"));
    /* self-contained: nothing to fetch */
    assert_null(strstr(h, "http://"));
    assert_null(strstr(h, "https://"));
    assert_null(strstr(h, "<script"));
    assert_null(strstr(h, "<link"));
    assert_null(strstr(h, "<img"));
    assert_null(strstr(h, "url("));
    assert_non_null(strstr(h, "<style>"));
    /* the SVGs carry a legend and the axis ends; assets and quality tables */
    assert_int_equal(count(h, ">reference</text>"), N_COLS);
    assert_int_equal(count(h, ">current</text>"), N_COLS);
    assert_int_equal(count(h, "class=\"axis-min\""), N_COLS);
    assert_int_equal(count(h, "class=\"axis-max\""), N_COLS);
    assert_int_equal(count(h, "class=\"asset-row\""), 3);
    assert_non_null(strstr(h, "data-asset=\"7\" data-drifted=\"1\""));
    assert_int_equal(count(h, "class=\"quality-row\""), 2);
    assert_true(strstr(h, "data-asset=\"7\"") < strstr(h, "data-asset=\"3\""));
    free(h);
}

/* A dataset below the share: the stable banner; no assets, no model. */
static void test_html_stable(void **state)
{
    fixture_t *f = *state;
    jb_drift_report_t r = f->r;
    r.model = NULL;
    r.assets = NULL;
    r.n_assets = 0;
    r.quality = NULL;
    r.n_quality = 0;
    r.drift_share = 0.75;
    kiln_err_t err;
    assert_int_equal(jb_drift_report_write_html(&r, f->html, &err), 0);
    char *h = slurp(f->html);
    assert_non_null(strstr(h, "<section id=\"verdict\" class=\"stable\" data-drifted=\"0\""));
    assert_non_null(strstr(h, "No dataset drift"));
    assert_non_null(strstr(h, "at least 75% of its features drift"));
    assert_null(strstr(h, "id=\"assets\""));
    assert_null(strstr(h, "id=\"quality\""));
    free(h);
    void *doc = NULL;
    assert_int_equal(jb_drift_report_json(&r, &doc, &err), 0);
    json_t *sum = json_object_get(doc, "summary");
    assert_true(json_is_false(json_object_get(sum, "drifted")));
    assert_true(json_is_null(json_object_get(doc, "model")));
    assert_int_equal(json_array_size(json_object_get(doc, "assets")), 0);
    json_decref(doc);
}

static void test_bad_path(void **state)
{
    fixture_t *f = *state;
    kiln_err_t err;
    char path[700];
    snprintf(path, sizeof path, "%s/no/such/dir/report.html", f->dir);
    assert_int_equal(jb_drift_report_write_html(&f->r, path, &err), KILN_EIO);
    assert_non_null(strstr(err.msg, path));
    assert_non_null(strstr(err.msg, "No such file or directory"));
    assert_int_equal(jb_drift_report_write_json(&f->r, path, &err), KILN_EIO);
    assert_non_null(strstr(err.msg, path));

    /* the rename fails (a directory is in the way): the temp file goes too */
    snprintf(path, sizeof path, "%s/occupied", f->dir);
    assert_int_equal(mkdir(path, 0700), 0);
    char tmp[800];
    oracle_writer_tmp_path(tmp, sizeof tmp, path);
    assert_int_equal(jb_drift_report_write_json(&f->r, path, &err), KILN_EIO);
    assert_non_null(strstr(err.msg, path));
    assert_false(oracle_file_exists(tmp));
    assert_int_equal(jb_drift_report_write_html(&f->r, path, &err), KILN_EIO);
    assert_false(oracle_file_exists(tmp));
    rmdir(path);

    assert_int_equal(jb_drift_report_write_html(&f->r, "", &err), KILN_EINVAL);
    assert_int_equal(jb_drift_report_write_json(&f->r, NULL, &err), KILN_EINVAL);
}

static void test_bad_report(void **state)
{
    fixture_t *f = *state;
    kiln_err_t err;
    jb_drift_report_t r = f->r;
    r.n_columns = 0;
    assert_int_equal(jb_drift_report_write_html(&r, f->html, &err), KILN_EINVAL);
    assert_non_null(strstr(err.msg, "no columns"));
    assert_false(oracle_file_exists(f->html));
    const char *names[N_COLS];
    memcpy(names, f->names, sizeof names);
    names[2] = NULL;
    r = f->r;
    r.column_names = names;
    assert_int_equal(jb_drift_report_write_json(&r, f->json, &err), KILN_EINVAL);
    assert_non_null(strstr(err.msg, "column 2"));
    r = f->r;
    r.assets = NULL;
    assert_int_equal(jb_drift_report_write_json(&r, f->json, &err), KILN_EINVAL);
    assert_false(oracle_file_exists(f->json));
    assert_int_equal(jb_drift_report_write_html(NULL, f->html, &err), KILN_EINVAL);
}

/* Fails the k-th allocation for k = 1, 2, ... until a write succeeds: every
 * failure is KILN_ENOMEM and leaves neither the file nor its temp (ASan
 * checks that nothing leaks). */
static void alloc_loop(fixture_t *f, int json)
{
    const char *path = json ? f->json : f->html;
    char tmp[700];
    oracle_writer_tmp_path(tmp, sizeof tmp, path);
    unlink(path);
    int ok = 0;
    long k;
    for (k = 1; k < 500 && !ok; k++) {
        kiln_err_t err;
        kiln_alloc_fail_after(k);
        int rc = json ? jb_drift_report_write_json(&f->r, path, &err)
                      : jb_drift_report_write_html(&f->r, path, &err);
        kiln_alloc_fail_after(0);
        if (rc == 0) {
            ok = 1;
            break;
        }
        assert_int_equal(rc, KILN_ENOMEM);
        assert_false(oracle_file_exists(path));
        assert_false(oracle_file_exists(tmp));
    }
    assert_true(ok);
    assert_true(k > 2);     /* the injection reached the ordering at least */
}

static void test_alloc_failures(void **state)
{
    alloc_loop(*state, 0);
    alloc_loop(*state, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_fixture_mix, setup, teardown),
        cmocka_unit_test_setup_teardown(test_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_json, setup, teardown),
        cmocka_unit_test_setup_teardown(test_html, setup, teardown),
        cmocka_unit_test_setup_teardown(test_html_stable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_path, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_report, setup, teardown),
        cmocka_unit_test_setup_teardown(test_alloc_failures, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
