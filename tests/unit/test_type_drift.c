/* test_type_drift.c - the drift job type without kilnd: bad specs refused
 * naming the field (missing reference, a reference file not there, a bad
 * method, thresholds, on_drift specs), the report path's default; and a task
 * over two small feature datasets written here: a shifted column drifts,
 * an unshifted one does not, a class column compares by class name, and a
 * current set with other features or no rows fails with the reason. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "jobs/drift_job.h"
#include "jobs/jobtype.h"
#include "oracle.h"
#include "storage/features.h"

static char ref_path[512], cur_path[512], other_path[512], empty_path[512], out_path[512];

/* n rows of 2 features (a ~ N(shift_a, 1), b ~ N(0, 1)) and labels from
 * label_names (class i with weight), written as kiln.features.v1. */
static void write_features(const char *path, size_t n, double shift_a, const char *const *names,
                           size_t n_features, const char *const *label_names, size_t n_labels,
                           uint64_t seed)
{
    st_features_meta_t m;
    memset(&m, 0, sizeof m);
    m.n_features = n_features;
    for (size_t i = 0; i < n_features; i++)
        m.feature_names[i] = names[i];
    m.has_label = 1;
    m.n_label_names = n_labels;
    for (size_t i = 0; i < n_labels; i++)
        m.label_names[i] = label_names[i];
    st_features_writer_t *w = NULL;
    kiln_err_t err;
    unlink(path);
    assert_int_equal(st_features_create(path, &m, 0, &w, &err), 0);
    uint64_t s = seed;
    for (size_t r = 0; r < n; r++) {
        float row[4];
        for (size_t f = 0; f < n_features; f++) {
            /* Box-Muller from a 64-bit LCG */
            s = s * 6364136223846793005ULL + 1442695040888963407ULL;
            double u1 = ((s >> 11) + 0.5) / 9007199254740992.0;
            s = s * 6364136223846793005ULL + 1442695040888963407ULL;
            double u2 = ((s >> 11) + 0.5) / 9007199254740992.0;
            double z = sqrt(-2 * log(u1)) * cos(2 * M_PI * u2);
            row[f] = (float)(z + (f == 0 ? shift_a : 0));
        }
        int32_t asset = (int32_t)(r % 3), label = (int32_t)(r % n_labels);
        int64_t ts = (int64_t)r;
        assert_int_equal(st_features_append(w, 1, row, &asset, &ts, &label, NULL, &err), 0);
    }
    assert_int_equal(st_features_commit(&w, NULL, &err), 0);
}

static int setup(void **state)
{
    (void)state;
    static const char *const ab[] = {"a", "b"}, *const ac[] = {"a", "c"};
    static const char *const l1[] = {"normal", "fault"}, *const l2[] = {"fault", "normal"};
    oracle_tmp_path(ref_path, "drift_ref.h5");
    oracle_tmp_path(cur_path, "drift_cur.h5");
    oracle_tmp_path(other_path, "drift_other.h5");
    oracle_tmp_path(empty_path, "drift_empty.h5");
    oracle_tmp_path(out_path, "drift_out.json");
    write_features(ref_path, 600, 0, ab, 2, l1, 2, 1);
    /* a shifted by 1 sd; the labels listed in the other order (same classes) */
    write_features(cur_path, 500, 1.0, ab, 2, l2, 2, 2);
    write_features(other_path, 100, 0, ac, 2, l1, 2, 3);
    write_features(empty_path, 0, 0, ab, 2, l1, 2, 4);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    const char *p[] = {ref_path, cur_path, other_path, empty_path, out_path};
    for (size_t i = 0; i < 5; i++)
        unlink(p[i]);
    char html[600];
    snprintf(html, sizeof html, "%.*s.html", (int)strlen(out_path) - 5, out_path);
    unlink(html);
    return 0;
}

/* validate(text): its rc; err filled. */
static int validate(const char *text, void **parsed, kiln_err_t *err)
{
    const jb_type_t *t = jb_type_find("drift");
    assert_non_null(t);
    json_error_t jerr;
    json_t *spec = json_loads(text, 0, &jerr);
    if (!spec)
        fail_msg("bad test JSON: %s: %s", jerr.text, text);
    kiln_err_clear(err);
    int rc = t->validate(spec, parsed, err);
    json_decref(spec);
    return rc;
}

static void expect_refused(const char *text, const char *field)
{
    void *parsed = NULL;
    kiln_err_t err;
    int rc = validate(text, &parsed, &err);
    if (rc >= 0)
        fail_msg("accepted, want refused naming %s: %s", field, text);
    assert_null(parsed);
    if (strcmp(err.where, field))
        fail_msg("refusal names '%s' (%s), want '%s'", err.where, err.msg, field);
}

static char *spec_text(const char *extra)
{
    static char buf[4096];
    snprintf(buf, sizeof buf, "{\"type\":\"drift\",\"name\":\"t\",\"reference\":\"%s\","
             "\"current\":\"%s\",\"output\":\"%s\"%s%s}", ref_path, cur_path, out_path,
             extra[0] ? "," : "", extra);
    return buf;
}

static void test_validate(void **state)
{
    (void)state;
    void *parsed = NULL;
    kiln_err_t err;
    const jb_type_t *t = jb_type_find("drift");
    assert_int_equal(validate(spec_text(""), &parsed, &err), 0);
    const jb_drift_spec_t *d = parsed;
    char want[600];
    snprintf(want, sizeof want, "%.*s.html", (int)strlen(out_path) - 5, out_path);
    assert_string_equal(d->report, want);
    assert_true(d->drift_share == 0.5);
    t->free_parsed(parsed);

    expect_refused("{\"type\":\"drift\",\"current\":\"x.h5\",\"output\":\"o.json\"}", "reference");
    expect_refused("{\"type\":\"drift\",\"reference\":\"/nonexistent/r.h5\",\"current\":\"x.h5\","
                   "\"output\":\"o.json\"}", "reference");
    expect_refused("{\"type\":\"drift\",\"reference\":{\"model\":\"m@1\"},\"current\":\"x.h5\","
                   "\"output\":\"o.json\"}", "reference.model");
    expect_refused("{\"type\":\"drift\",\"reference\":{\"modle\":\"m@1\"},\"current\":\"x.h5\","
                   "\"output\":\"o.json\"}", "reference.modle");
    expect_refused(spec_text("\"columns\":{\"a\":{\"method\":\"kolmogorov\"}}"), "columns.a.method");
    expect_refused(spec_text("\"columns\":{\"a\":{\"method\":\"ks\",\"threshold\":2}}"),
                   "columns.a.threshold");
    expect_refused(spec_text("\"columns\":{\"a\":{\"bins\":3}}"), "columns.a.bins");
    expect_refused(spec_text("\"drift_share\":0"), "drift_share");
    expect_refused(spec_text("\"by_asset\":1"), "by_asset");
    /* the later "output" wins (no duplicate check here): report == output */
    expect_refused(spec_text("\"report\":\"x\",\"output\":\"x\""), "report");
    expect_refused(spec_text("\"on_drift\":{\"submit\":{\"type\":\"nosuch\"}}"),
                   "on_drift.submit.type");
    expect_refused(spec_text("\"on_drift\":{\"submit\":{\"type\":\"train\",\"input\":\"f.h5\","
                             "\"model\":{\"kind\":\"forest\"},\"target\":\"label\"}}"),
                   "on_drift.submit.model.kind");
    expect_refused(spec_text("\"on_drift\":{\"submit\":{\"type\":\"noop\",\"schedule\":\"@every 2s\"}}"),
                   "on_drift.submit.schedule");
    expect_refused(spec_text("\"on_drift\":{\"run\":{}}"), "on_drift.run");
    expect_refused(spec_text("\"on_drift\":{\"submit\":3}"), "on_drift.submit");
    assert_int_equal(validate(spec_text("\"on_drift\":{\"submit\":{\"type\":\"noop\"}}"), &parsed,
                              &err), 0);
    assert_non_null(((jb_drift_spec_t *)parsed)->on_drift_submit);
    t->free_parsed(parsed);
}

static json_t *run(const char *text, int *rc, kiln_err_t *err)
{
    void *parsed = NULL;
    assert_int_equal(validate(text, &parsed, err), 0);
    unlink(out_path);
    *rc = jb_drift_run(parsed, out_path, err);
    jb_type_find("drift")->free_parsed(parsed);
    if (*rc < 0)
        return NULL;
    json_error_t jerr;
    json_t *doc = json_load_file(out_path, 0, &jerr);
    assert_non_null(doc);
    return doc;
}

static json_t *column(json_t *doc, const char *name)
{
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(doc, "columns"), i, c)
        if (!strcmp(json_string_value(json_object_get(c, "name")), name))
            return c;
    fail_msg("no column %s", name);
    return NULL;
}

static void test_run(void **state)
{
    (void)state;
    kiln_err_t err;
    int rc;
    /* Threshold 0.01 on b: a p-value of an unshifted column would need to be
     * that low by chance (1 in 100); the seeds are fixed, so this is stable. */
    json_t *doc = run(spec_text("\"by_asset\":true,\"columns\":{\"b\":{\"threshold\":0.01},"
                                "\"label\":{\"method\":\"jensenshannon\"}},"
                                "\"resources\":{\"cores\":2}"), &rc, &err);
    if (!doc)
        fail_msg("%s", err.msg);
    json_t *a = column(doc, "a"), *b = column(doc, "b"), *l = column(doc, "label");
    assert_true(json_is_true(json_object_get(a, "drifted")));
    assert_string_equal(json_string_value(json_object_get(a, "method")), "ks");  /* 600 rows <= 1000 */
    assert_false(json_is_true(json_object_get(b, "drifted")));
    assert_true(json_number_value(json_object_get(b, "threshold")) == 0.01);
    /* The same two classes in equal shares on both sides, listed in other
     * orders: matched by name, JS distance ~0. */
    assert_string_equal(json_string_value(json_object_get(l, "method")), "jensenshannon");
    assert_true(json_number_value(json_object_get(l, "score")) < 0.01);
    assert_false(json_is_true(json_object_get(l, "drifted")));
    /* 1 of 3 columns: below drift_share 0.5 */
    json_t *sum = json_object_get(doc, "summary");
    assert_false(json_is_true(json_object_get(sum, "drifted")));
    assert_int_equal(json_integer_value(json_object_get(sum, "n_drifted")), 1);
    assert_int_equal(json_array_size(json_object_get(doc, "assets")), 3);
    json_decref(doc);
    char html[600];
    snprintf(html, sizeof html, "%.*s.html", (int)strlen(out_path) - 5, out_path);
    assert_int_equal(access(html, R_OK), 0);

    /* drift_share 0.3: one column of three is enough */
    doc = run(spec_text("\"drift_share\":0.3"), &rc, &err);
    assert_non_null(doc);
    assert_true(json_is_true(json_object_get(json_object_get(doc, "summary"), "drifted")));
    json_decref(doc);

    char text[4096];
    snprintf(text, sizeof text, "{\"type\":\"drift\",\"reference\":\"%s\",\"current\":\"%s\","
             "\"output\":\"%s\"}", ref_path, other_path, out_path);
    assert_null(run(text, &rc, &err));
    assert_int_equal(rc, KILN_ESCHEMA);
    assert_non_null(strstr(err.msg, "'b'"));        /* only in the reference */
    assert_non_null(strstr(err.msg, "'c'"));        /* only in the current set */
    snprintf(text, sizeof text, "{\"type\":\"drift\",\"reference\":\"%s\",\"current\":\"%s\","
             "\"output\":\"%s\"}", ref_path, empty_path, out_path);
    assert_null(run(text, &rc, &err));
    assert_non_null(strstr(err.msg, "has no rows"));
    assert_string_equal(err.where, "current");
    assert_null(run(spec_text("\"columns\":{\"zz\":{\"method\":\"psi\"}}"), &rc, &err));
    assert_non_null(strstr(err.msg, "columns.zz"));
    assert_null(run(spec_text("\"columns\":{\"label\":{\"method\":\"ks\"}}"), &rc, &err));
    assert_non_null(strstr(err.msg, "does not apply"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_validate),
        cmocka_unit_test(test_run),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
