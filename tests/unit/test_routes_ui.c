/* test_routes_ui.c - the dashboard's pieces that need no daemon
 * (scheduler/routes_ui.h): which drift report a spec names (the only files
 * /ui/drift/ID ever serves) and the embedded files.  The pages themselves
 * are checked in a real browser by tests/system/dashboard_browser.sh. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "scheduler/routes_ui.h"

/* The report path for spec (JSON text), or NULL with err filled. */
static const char *report_of(const char *spec_text, char *buf, size_t cap, kiln_err_t *err)
{
    json_error_t jerr;
    json_t *spec = json_loads(spec_text, 0, &jerr);
    assert_non_null(spec);
    int rc = ks_ui_drift_report_path(spec, buf, cap, err);
    json_decref(spec);
    return rc == 0 ? buf : NULL;
}

static void expect_report(const char *spec_text, const char *want)
{
    char buf[256];
    kiln_err_t err = {0};
    const char *got = report_of(spec_text, buf, sizeof buf, &err);
    if (!got)
        fail_msg("%s: refused: %s", spec_text, err.msg);
    if (strcmp(got, want))
        fail_msg("%s: got %s, want %s", spec_text, got, want);
}

static void expect_refused(const char *spec_text, size_t cap, int code, const char *field,
                           const char *in_msg)
{
    char buf[256];
    kiln_err_t err = {0};
    assert_true(cap <= sizeof buf);
    if (report_of(spec_text, buf, cap, &err))
        fail_msg("%s: accepted as %s", spec_text, buf);
    assert_int_equal(err.code, code);
    assert_string_equal(err.where, field);
    if (!strstr(err.msg, in_msg))
        fail_msg("%s: message \"%s\" lacks \"%s\"", spec_text, err.msg, in_msg);
}

static void test_report_path(void **state)
{
    (void)state;
    /* "report" wins; otherwise the drift job's rule (jobs/type_drift.c): a
     * ".json" output ends in ".html" instead, any other gets ".html" added */
    expect_report("{\"output\": \"/d/r.json\", \"report\": \"/d/page.html\"}", "/d/page.html");
    expect_report("{\"report\": \"/d/page.htm\"}", "/d/page.htm");
    expect_report("{\"output\": \"/d/drift-7.json\"}", "/d/drift-7.html");
    expect_report("{\"output\": \"/d/a.b.json\"}", "/d/a.b.html");
    expect_report("{\"output\": \"/d.x/results\"}", "/d.x/results.html");
    expect_report("{\"output\": \"/d/results.out\"}", "/d/results.out.html");
    expect_report("{\"output\": \".json\"}", ".json.html");
    expect_report("{\"output\": \"rel.json\"}", "rel.html");
}

static void test_report_path_refused(void **state)
{
    (void)state;
    expect_refused("{}", 256, KILN_ESPEC, "output", "no report and no output");
    expect_refused("{\"output\": 3}", 256, KILN_ESPEC, "output", "no report and no output");
    expect_refused("{\"output\": \"\"}", 256, KILN_ESPEC, "output", "no report and no output");
    expect_refused("{\"report\": 1, \"output\": \"/d/r.json\"}", 256, KILN_ESPEC, "report",
                   "non-empty path");
    /* never an arbitrary file as a page */
    expect_refused("{\"report\": \"/etc/passwd\"}", 256, KILN_ESPEC, "report",
                   "does not end in .html");
    expect_refused("{\"report\": \"/d/r.html.txt\"}", 256, KILN_ESPEC, "report", "/d/r.html.txt");
    /* too long for the buffer: refused, not cut to another name */
    expect_refused("{\"output\": \"/d/results.json\"}", 12, KILN_EINVAL, "output", "longer than 11");
    expect_refused("{\"report\": \"/d/results.html\"}", 12, KILN_EINVAL, "report", "longer than 11");
}

static void test_assets(void **state)
{
    (void)state;
    const ks_ui_asset_t *index = ks_ui_asset_find("/ui/index.html");
    assert_non_null(index);
    assert_ptr_equal(ks_ui_asset_find("/ui/"), index);
    assert_ptr_equal(ks_ui_asset_find("/ui"), index);
    assert_string_equal(index->content_type, "text/html; charset=utf-8");
    assert_int_equal(strlen(index->bytes), index->len);
    /* the page loads its script and style sheet from kilnd, and nothing else */
    assert_non_null(strstr(index->bytes, "src=\"/ui/dashboard.js\""));
    assert_non_null(strstr(index->bytes, "href=\"/ui/dashboard.css\""));
    assert_null(strstr(index->bytes, "http://"));
    assert_null(strstr(index->bytes, "https://"));
    const ks_ui_asset_t *js = ks_ui_asset_find("/ui/dashboard.js");
    assert_non_null(js);
    assert_string_equal(js->content_type, "text/javascript; charset=utf-8");
    /* data goes in as text: the script never assigns HTML */
    assert_null(strstr(js->bytes, "innerHTML"));
    assert_null(strstr(js->bytes, "outerHTML"));
    assert_null(strstr(js->bytes, "insertAdjacentHTML"));
    assert_null(strstr(js->bytes, "document.write"));
    assert_non_null(ks_ui_asset_find("/ui/dashboard.css"));
    assert_null(ks_ui_asset_find("/ui/nope.js"));
    assert_null(ks_ui_asset_find("/ui/../Makefile"));
    assert_null(ks_ui_asset_find("/index.html"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_report_path),
        cmocka_unit_test(test_report_path_refused),
        cmocka_unit_test(test_assets),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
