/* test_registry.c - the model registry in the state store: runs with their
 * lineage, versions under a name, aliases that promote and roll back,
 * references NAME / NAME@VERSION / NAME@ALIAS, and bad names. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "oracle.h"
#include "storage/registry.h"

static st_state_t *open_fresh(char *path)
{
    oracle_tmp_path(path, "registry.db");
    unlink(path);
    st_state_t *st = NULL;
    kiln_err_t err;
    assert_int_equal(st_state_open(path, &st, &err), 0);
    return st;
}

static int64_t add_run(st_state_t *st, const char *name, const char *artifact, int accepted)
{
    st_run_t r = {0};
    r.job_id = 7;
    r.model_name = (char *)name;
    r.kind = "gbdt";
    r.params_json = "{\"trees\":100}";
    r.seed = 42;
    r.dataset_sha256 = "d1";
    r.featspec_sha256 = "f1";
    r.code_version = "test";
    r.metrics_json = "{\"accuracy\":0.97}";
    r.duration_s = 1.5;
    r.accepted = accepted;
    r.artifact_sha256 = (char *)artifact;
    r.created_ns = 100;
    int64_t id = 0;
    kiln_err_t err;
    assert_int_equal(st_registry_run_insert(st, &r, &id, &err), 0);
    return id;
}

static int count_run(const st_run_t *r, void *ud)
{
    (void)r;
    (*(int *)ud)++;
    return 0;
}

static void test_runs_versions_aliases(void **state)
{
    (void)state;
    char path[512];
    st_state_t *st = open_fresh(path);
    kiln_err_t err;
    int64_t r1 = add_run(st, "bearing", "aa", 1), r2 = add_run(st, "bearing", "bb", 1);
    add_run(st, "pump", "cc", 0);
    st_run_t got;
    assert_int_equal(st_registry_run_get(st, r2, &got, &err), 0);
    assert_string_equal(got.artifact_sha256, "bb");
    assert_string_equal(got.metrics_json, "{\"accuracy\":0.97}");
    assert_int_equal(got.seed, 42);
    st_registry_run_free(&got);
    assert_int_equal(st_registry_run_get(st, 99, &got, &err), KILN_ENOTFOUND);
    int n = 0;
    assert_int_equal(st_registry_run_list(st, "bearing", 0, count_run, &n, &err), 0);
    assert_int_equal(n, 2);
    n = 0;
    assert_int_equal(st_registry_run_list(st, NULL, 0, count_run, &n, &err), 0);
    assert_int_equal(n, 3);

    int64_t v1, v2;
    assert_int_equal(st_registry_model_add(st, "bearing", r1, "aa", 1, &v1, &err), 0);
    assert_int_equal(st_registry_model_add(st, "bearing", r2, "bb", 2, &v2, &err), 0);
    assert_int_equal(v1, 1);
    assert_int_equal(v2, 2);

    st_model_t m;
    assert_int_equal(st_registry_model_resolve(st, "bearing", &m, &err), 0);
    assert_int_equal(m.version, 2);
    assert_int_equal(st_registry_model_resolve(st, "bearing@1", &m, &err), 0);
    assert_string_equal(m.artifact_sha256, "aa");
    assert_int_equal(m.run_id, r1);
    assert_int_equal(st_registry_model_resolve(st, "bearing@production", &m, &err),
                     KILN_ENOTFOUND);
    assert_non_null(strstr(err.msg, "production"));

    /* promote 1, then 2; roll back to 1; nothing before that */
    assert_int_equal(st_registry_alias_set(st, "bearing", "production", 1, 3, &err), 0);
    assert_int_equal(st_registry_alias_set(st, "bearing", "production", 2, 4, &err), 0);
    assert_int_equal(st_registry_model_resolve(st, "bearing@production", &m, &err), 0);
    assert_int_equal(m.version, 2);
    int64_t back = 0;
    assert_int_equal(st_registry_alias_rollback(st, "bearing", "production", 5, &back, &err), 0);
    assert_int_equal(back, 1);
    assert_int_equal(st_registry_model_resolve(st, "bearing@production", &m, &err), 0);
    assert_int_equal(m.version, 1);
    assert_int_equal(st_registry_alias_rollback(st, "bearing", "production", 6, &back, &err),
                     KILN_ESTATE);
    /* the registry survives a reopen */
    st_state_close(&st);
    assert_int_equal(st_state_open(path, &st, &err), 0);
    assert_int_equal(st_registry_model_resolve(st, "bearing@production", &m, &err), 0);
    assert_int_equal(m.version, 1);
    st_state_close(&st);
    unlink(path);
}

static void test_bad_names(void **state)
{
    (void)state;
    char path[512];
    st_state_t *st = open_fresh(path);
    kiln_err_t err;
    st_model_t m;
    int64_t v;
    int64_t r = add_run(st, "ok", "aa", 1);
    assert_int_equal(st_registry_model_add(st, "bad name", r, "aa", 1, &v, &err), KILN_EINVAL);
    assert_int_equal(st_registry_model_add(st, "", r, "aa", 1, &v, &err), KILN_EINVAL);
    assert_int_equal(st_registry_model_add(st, "ok", r, "aa", 1, &v, &err), 0);
    assert_int_equal(st_registry_alias_set(st, "ok", "123", 1, 1, &err), KILN_EINVAL);
    assert_int_equal(st_registry_alias_set(st, "ok", "prod", 9, 1, &err), KILN_ENOTFOUND);
    assert_int_equal(st_registry_alias_set(st, "nosuch", "prod", 1, 1, &err), KILN_ENOTFOUND);
    assert_int_equal(st_registry_model_resolve(st, "ok@0", &m, &err), KILN_EINVAL);
    assert_int_equal(st_registry_model_resolve(st, "ok@2x", &m, &err), KILN_EINVAL);
    assert_int_equal(st_registry_model_resolve(st, "ok@7", &m, &err), KILN_ENOTFOUND);
    assert_int_equal(st_registry_model_resolve(st, "nosuch", &m, &err), KILN_ENOTFOUND);
    assert_int_equal(st_registry_model_resolve(st, "a/b", &m, &err), KILN_EINVAL);
    st_state_close(&st);
    unlink(path);
}

/* A version-2 store (before the registry) is upgraded in place on open. */
static void test_upgrade_from_v2(void **state)
{
    (void)state;
    char path[512];
    st_state_t *st = open_fresh(path);
    kiln_err_t err;
    st_state_job_t j = {0};
    j.project = "p";
    j.name = "n";
    j.type = "noop";
    j.spec_json = "{}";
    int64_t id;
    assert_int_equal(st_state_job_insert(st, &j, &id, NULL, &err), 0);
    st_state_close(&st);
    sqlite3 *raw;
    assert_int_equal(sqlite3_open(path, &raw), SQLITE_OK);
    assert_int_equal(sqlite3_exec(raw,
                                  /* back to what a version-2 store held: no
                                   * registry (v3), no schedules (v4), no step
                                   * cache (v5) */
                                  "DROP TABLE drift_results;"
                                  "DROP TABLE step_cache; DROP TABLE runs; DROP TABLE models; DROP TABLE aliases;"
                                  "DROP TABLE alias_history; DROP TABLE schedules;"
                                  "DROP INDEX jobs_scheduled;"
                                  "ALTER TABLE jobs DROP COLUMN scheduled_by;"
                                  "ALTER TABLE jobs DROP COLUMN scheduled_for_ns;"
                                  "PRAGMA user_version = 2;",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(raw);
    assert_int_equal(st_state_open(path, &st, &err), 0);
    st_state_job_t got;
    assert_int_equal(st_state_job_get(st, id, &got, &err), 0);
    st_state_job_free(&got);
    int64_t r = add_run(st, "m", "aa", 1), v;
    assert_int_equal(st_registry_model_add(st, "m", r, "aa", 1, &v, &err), 0);
    st_state_close(&st);
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_runs_versions_aliases),
        cmocka_unit_test(test_bad_names),
        cmocka_unit_test(test_upgrade_from_v2),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
