/* test_type_publish.c - the publish job type without kilnd: bad specs are
 * refused naming the field (no or a malformed model reference, a file path
 * for one, no fleet, canary_share, health_window_s and expires_s out of
 * range, an unknown field, a gang), a good one parses into one in-process
 * task that does nothing, and record without kilnd's directory fails
 * cleanly.  The publish itself is jobs/publish.c's (test_fleets.c) and the
 * job end to end is tests/system/fleet_publish_job.sh. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <string.h>

#include "core/kiln_alloc.h"
#include "jobs/jobtype.h"

static int validate(const char *text, void **parsed, kiln_err_t *err)
{
    json_error_t jerr;
    json_t *spec = json_loads(text, 0, &jerr);
    assert_non_null(spec);
    const jb_type_t *t = jb_type_find("publish");
    assert_non_null(t);
    int rc = t->validate(spec, parsed, err);
    json_decref(spec);
    return rc;
}

static void test_bad_specs(void **state)
{
    (void)state;
    static const struct {
        const char *spec, *field;
    } bad[] = {
        {"{\"type\":\"publish\",\"fleet\":\"f\"}", "model"},
        {"{\"type\":\"publish\",\"model\":3,\"fleet\":\"f\"}", "model"},
        {"{\"type\":\"publish\",\"model\":\"\",\"fleet\":\"f\"}", "model"},
        {"{\"type\":\"publish\",\"model\":\"@1\",\"fleet\":\"f\"}", "model"},
        {"{\"type\":\"publish\",\"model\":\"m@\",\"fleet\":\"f\"}", "model"},
        {"{\"type\":\"publish\",\"model\":\"m@1@2\",\"fleet\":\"f\"}", "model"},
        {"{\"type\":\"publish\",\"model\":\"/tmp/m.kmodel\",\"fleet\":\"f\"}", "model"},
        {"{\"type\":\"publish\",\"model\":\"${train.output}\",\"fleet\":\"f\"}", "model"},
        {"{\"type\":\"publish\",\"model\":\"m@1\"}", "fleet"},
        {"{\"type\":\"publish\",\"model\":\"m@1\",\"fleet\":\"a b\"}", "fleet"},
        {"{\"type\":\"publish\",\"model\":\"m@1\",\"fleet\":\"f\",\"canary_share\":0}", "canary_share"},
        {"{\"type\":\"publish\",\"model\":\"m@1\",\"fleet\":\"f\",\"canary_share\":1.5}", "canary_share"},
        {"{\"type\":\"publish\",\"model\":\"m@1\",\"fleet\":\"f\",\"canary_share\":\"x\"}", "canary_share"},
        {"{\"type\":\"publish\",\"model\":\"m@1\",\"fleet\":\"f\",\"health_window_s\":-1}",
         "health_window_s"},
        {"{\"type\":\"publish\",\"model\":\"m@1\",\"fleet\":\"f\",\"health_window_s\":2592001}",
         "health_window_s"},
        {"{\"type\":\"publish\",\"model\":\"m@1\",\"fleet\":\"f\",\"expires_s\":0}", "expires_s"},
        {"{\"type\":\"publish\",\"model\":\"m@1\",\"fleet\":\"f\",\"expires_s\":1.5}", "expires_s"},
        {"{\"type\":\"publish\",\"model\":\"m@1\",\"fleet\":\"f\",\"output\":\"x\"}", "output"},
        {"{\"type\":\"publish\",\"model\":\"m@1\",\"fleet\":\"f\",\"resources\":{\"ranks\":2}}",
         "resources.ranks"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        void *parsed = (void *)1;
        kiln_err_t err = {0};
        int rc = validate(bad[i].spec, &parsed, &err);
        if (rc != KILN_ESPEC || strcmp(err.where, bad[i].field) || !strstr(err.msg, bad[i].field))
            fail_msg("%s: rc %d, where \"%s\", \"%s\" (wanted %s)", bad[i].spec, rc, err.where,
                     err.msg, bad[i].field);
        assert_null(parsed);
    }
}

static void test_good_spec(void **state)
{
    (void)state;
    static const char *const good[] = {
        "{\"type\":\"publish\",\"model\":\"bearing\",\"fleet\":\"plant-7\"}",
        "{\"type\":\"publish\",\"model\":\"bearing@3\",\"fleet\":\"plant-7\"}",
        "{\"type\":\"publish\",\"model\":\"bearing@production\",\"fleet\":\"plant-7\"}",
        "{\"type\":\"publish\",\"model\":\"pipe.train@latest\",\"fleet\":\"line_4\","
        "\"canary_share\":1,\"health_window_s\":0,\"expires_s\":86400,\"priority\":5}",
    };
    const jb_type_t *t = jb_type_find("publish");
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        void *parsed = NULL;
        kiln_err_t err = {0};
        if (validate(good[i], &parsed, &err) != 0)
            fail_msg("%s: %s", good[i], err.msg);
        jb_plan_ctx_t ctx = {.target_tasks = 8};
        jb_task_plan_t *tasks = NULL;
        size_t n = 0;
        assert_int_equal(t->plan(parsed, &ctx, &tasks, &n, &err), 0);
        assert_int_equal(n, 1);   /* nothing to split: one task */
        assert_int_equal(t->inproc(parsed), 1);
        assert_int_equal(t->run_task(parsed, &tasks[0], "/nonexistent/out", &err), 0);
        assert_null(t->finish);
        assert_non_null(t->record);
        /* Without kilnd's directory there is no publisher key to sign with. */
        jb_record_ctx_t rctx = {0};
        char summary[256] = "";
        assert_int_equal(t->record(parsed, "", &rctx, summary, sizeof summary, &err),
                         KILN_EINTERNAL);
        assert_string_equal(summary, "");
        kiln_free(tasks);
        t->free_parsed(parsed);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_specs),
        cmocka_unit_test(test_good_spec),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
