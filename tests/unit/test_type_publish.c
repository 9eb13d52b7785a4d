/* test_type_publish.c - the publish job type without kilnd: bad specs are
 * refused naming the field (no or a malformed model reference, a file path
 * for one, no fleet, canary_share, health_window_s and expires_s out of
 * range, an unknown field, a gang), a good one parses into one in-process
 * task that does nothing, and record without kilnd's directory fails
 * cleanly.  Record against a real state store: a version the fleet's
 * current rollout already is (a pipeline run again, its train step cached)
 * succeeds as "already published" without a new rollout or seq, in every
 * stage but halted; a halted one, or an older version, fails with the
 * reason; POST /v1/publish's jb_fleet_publish still refuses the same
 * version.  The publish itself is jobs/publish.c's (test_fleets.c) and the
 * job end to end is tests/system/fleet_publish_job.sh. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/kiln_alloc.h"
#include "jobs/jobtype.h"
#include "jobs/publish.h"
#include "storage/artifacts.h"
#include "storage/fleets.h"
#include "storage/registry.h"

#define SEC 1000000000LL
#define NOW (1700000000LL * SEC)

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

/* An accepted registry version of name whose .kmodel is a header with a
 * feature spec (all publish reads of it), in dir/artifacts. */
static void add_model(st_state_t *st, const char *dir, const char *name)
{
    char hdr[512], root[600], hex[65];
    snprintf(hdr, sizeof hdr,
             "{\"kind\":\"logreg\",\"feature_names\":[\"a.rms\"],\"metrics\":{},"
             "\"seed\":%d,\"feature_spec\":{\"sample_rate_hz\":1000}}", rand());
    size_t hl = strlen(hdr), len = 12 + hl + 64;
    unsigned char *bytes = calloc(1, len);
    assert_non_null(bytes);
    memcpy(bytes, "KILNMDL1", 8);
    for (int i = 0; i < 4; i++)
        bytes[8 + i] = (unsigned char)(hl >> (8 * i));
    memcpy(bytes + 12, hdr, hl);
    kiln_err_t err;
    snprintf(root, sizeof root, "%s/artifacts", dir);
    assert_int_equal(st_artifact_put(root, bytes, len, hex, &err), 0);
    free(bytes);
    st_run_t r = {0};
    r.model_name = (char *)name;
    r.kind = "logreg";
    r.params_json = "{}";
    r.dataset_sha256 = "d";
    r.featspec_sha256 = "f";
    r.code_version = "test";
    r.metrics_json = "{}";
    r.accepted = 1;
    r.artifact_sha256 = hex;
    int64_t id, version;
    assert_int_equal(st_registry_run_insert(st, &r, &id, &err), 0);
    assert_int_equal(st_registry_model_add(st, name, id, hex, NOW, &version, &err), 0);
}

static int count_rollout(const st_rollout_t *r, void *ud)
{
    (void)r;
    ++*(int *)ud;
    return 0;
}

static int n_rollouts(st_state_t *st)
{
    int n = 0;
    kiln_err_t err;
    assert_int_equal(st_rollout_list(st, "f", 100, count_rollout, &n, &err), 0);
    return n;
}

/* Runs the publish job's record for model on fleet f; summary its log line. */
static int record(const jb_record_ctx_t *ctx, const char *model, char *summary, size_t cap,
                  kiln_err_t *err)
{
    char spec[256];
    snprintf(spec, sizeof spec, "{\"type\":\"publish\",\"model\":\"%s\",\"fleet\":\"f\"}", model);
    void *parsed = NULL;
    assert_int_equal(validate(spec, &parsed, err), 0);
    summary[0] = '\0';
    int rc = jb_type_find("publish")->record(parsed, "", ctx, summary, cap, err);
    jb_type_find("publish")->free_parsed(parsed);
    return rc;
}

static void test_record_same_version(void **state)
{
    (void)state;
    char dir[256], path[512], summary[512], want[256];
    snprintf(dir, sizeof dir, "%s/kiln-typepub-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR")
                                                                           : "/tmp");
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/state.db", dir);
    st_state_t *st = NULL;
    kiln_err_t err;
    assert_int_equal(st_state_open(path, &st, &err), 0);
    assert_int_equal(st_fleet_create(st, "f", 1, 1, 0, NOW, &err), 0);
    add_model(st, dir, "bearing");
    add_model(st, dir, "bearing");
    jb_record_ctx_t ctx = {.st = st, .dir = dir, .now_ns = NOW};

    /* the first run publishes: rollout, seq 1 */
    assert_int_equal(record(&ctx, "bearing@latest", summary, sizeof summary, &err), 0);
    assert_non_null(strstr(summary, "published bearing@2 to fleet f: rollout"));
    assert_non_null(strstr(summary, "seq 1, canary"));
    st_rollout_t first;
    assert_int_equal(st_rollout_current(st, "f", &first, &err), 0);
    /* run again (train cached: the same version): already published, nothing new */
    assert_int_equal(record(&ctx, "bearing@latest", summary, sizeof summary, &err), 0);
    snprintf(want, sizeof want, "already published: rollout %lld, seq 1, stage canary",
             (long long)first.id);
    if (strncmp(summary, want, strlen(want)))
        fail_msg("summary \"%s\", wanted \"%s...\"", summary, want);
    assert_int_equal(n_rollouts(st), 1);
    /* POST /v1/publish's path still refuses the same version (409) */
    jb_publish_t p = {"bearing@2", "f", -1, -1, 0};
    st_rollout_t r;
    uint64_t seq = 0;
    assert_int_equal(jb_fleet_publish(st, dir, &p, NOW, &r, &seq, &err), KILN_ESTATE);
    assert_non_null(strstr(err.msg, "last given bearing@2"));
    /* full, done: still already published */
    assert_int_equal(st_rollout_set_stage(st, first.id, ST_ROLLOUT_FULL, "test", NOW, &err), 0);
    assert_int_equal(record(&ctx, "bearing@2", summary, sizeof summary, &err), 0);
    assert_non_null(strstr(summary, "seq 1, stage full"));
    assert_int_equal(st_rollout_set_stage(st, first.id, ST_ROLLOUT_DONE, "test", NOW, &err), 0);
    assert_int_equal(record(&ctx, "bearing@2", summary, sizeof summary, &err), 0);
    assert_non_null(strstr(summary, "seq 1, stage done"));
    /* an older version than the fleet's is still refused */
    assert_int_equal(record(&ctx, "bearing@1", summary, sizeof summary, &err), KILN_ESTATE);
    assert_non_null(strstr(err.msg, "last given bearing@2"));
    assert_string_equal(summary, "");
    /* halted: the same version fails with the halt's reason */
    assert_int_equal(st_rollout_set_stage(st, first.id, ST_ROLLOUT_HALTED,
                                          "canary dev-1 unhealthy", NOW, &err), 0);
    assert_int_equal(record(&ctx, "bearing@2", summary, sizeof summary, &err), KILN_ESTATE);
    assert_non_null(strstr(err.msg, "was halted (canary dev-1 unhealthy)"));
    assert_string_equal(summary, "");
    assert_int_equal(n_rollouts(st), 1);
    /* nothing consumed a seq: the next publish is seq 2 */
    add_model(st, dir, "bearing");
    assert_int_equal(record(&ctx, "bearing@3", summary, sizeof summary, &err), 0);
    assert_non_null(strstr(summary, "published bearing@3"));
    assert_non_null(strstr(summary, "seq 2, canary"));
    assert_int_equal(n_rollouts(st), 2);
    st_state_close(&st);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_specs),
        cmocka_unit_test(test_good_spec),
        cmocka_unit_test(test_record_same_version),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
