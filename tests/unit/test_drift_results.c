/* test_drift_results.c - drift results in the state store (schema v6):
 * put/get/replace, lists newest first and by model, the latest per model,
 * a run's training input path, and a version-5 store upgraded in place
 * (its runs keep their rows and get an empty input path). */
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
#include "storage/drift_results.h"
#include "storage/registry.h"

static st_state_t *open_fresh(char *path)
{
    oracle_tmp_path(path, "drift_results.db");
    unlink(path);
    st_state_t *st = NULL;
    kiln_err_t err;
    assert_int_equal(st_state_open(path, &st, &err), 0);
    return st;
}

static int64_t add_run(st_state_t *st)
{
    st_run_t r = {0};
    r.job_id = 3;
    r.model_name = "bearing";
    r.kind = "logreg";
    r.params_json = "{}";
    r.dataset_sha256 = "d1";
    r.featspec_sha256 = "f1";
    r.code_version = "test";
    r.metrics_json = "{\"accuracy\":0.9}";
    r.accepted = 1;
    r.artifact_sha256 = "aa";
    int64_t id;
    kiln_err_t err;
    assert_int_equal(st_registry_run_insert(st, &r, &id, &err), 0);
    return id;
}

static void put(st_state_t *st, int64_t job, const char *model, int64_t created, int drifted)
{
    st_drift_result_t r = {0};
    r.job_id = job;
    r.model_name = (char *)model;
    r.model_version = model ? 2 : 0;
    r.created_ns = created;
    r.drifted = drifted;
    r.share = drifted ? 0.75 : 0.1;
    r.n_columns = 4;
    r.n_drifted = drifted ? 3 : 0;
    r.columns_json = "[{\"column\":\"rms\",\"score\":0.3}]";
    r.result_json = "{\"drifted\":true}";
    kiln_err_t err;
    assert_int_equal(st_drift_result_put(st, &r, &err), 0);
}

typedef struct {
    int64_t ids[16];
    size_t  n;
} ids_t;

static int collect(const st_drift_result_t *r, void *ud)
{
    ids_t *c = ud;
    if (c->n < 16)
        c->ids[c->n++] = r->job_id;
    return 0;
}

static void test_put_get_list(void **state)
{
    (void)state;
    char path[512];
    st_state_t *st = open_fresh(path);
    kiln_err_t err;
    put(st, 10, "bearing", 100, 1);
    put(st, 11, NULL, 200, 0);
    put(st, 12, "bearing", 300, 0);
    put(st, 13, "pump", 250, 1);
    put(st, 11, NULL, 200, 1);              /* a record again replaces */
    st_drift_result_t r;
    assert_int_equal(st_drift_result_get(st, 11, &r, &err), 0);
    assert_int_equal(r.drifted, 1);
    assert_string_equal(r.model_name, "");
    assert_int_equal(r.model_version, 0);
    assert_string_equal(r.result_json, "{\"drifted\":true}");
    st_drift_result_free(&r);
    st_drift_result_free(&r);               /* harmless twice */
    assert_int_equal(st_drift_result_get(st, 12, &r, &err), 0);
    assert_string_equal(r.model_name, "bearing");
    assert_int_equal(r.n_columns, 4);
    assert_float_equal(r.share, 0.1, 0);
    st_drift_result_free(&r);
    assert_int_equal(st_drift_result_get(st, 99, &r, &err), KILN_ENOTFOUND);
    assert_non_null(strstr(err.msg, "99"));

    ids_t all = {0}, bearing = {0}, latest = {0}, one = {0};
    assert_int_equal(st_drift_result_list(st, NULL, 0, collect, &all, &err), 0);
    assert_int_equal(all.n, 4);
    assert_int_equal(all.ids[0], 12);       /* newest first */
    assert_int_equal(all.ids[3], 10);
    assert_int_equal(st_drift_result_list(st, "bearing", 0, collect, &bearing, &err), 0);
    assert_int_equal(bearing.n, 2);
    assert_int_equal(bearing.ids[0], 12);
    assert_int_equal(st_drift_result_list(st, NULL, 1, collect, &one, &err), 0);
    assert_int_equal(one.n, 1);
    assert_int_equal(st_drift_result_latest_per_model(st, collect, &latest, &err), 0);
    assert_int_equal(latest.n, 2);          /* bearing -> 12, pump -> 13 */
    assert_int_equal(latest.ids[0], 12);
    assert_int_equal(latest.ids[1], 13);

    int64_t run = add_run(st);
    char in[64];
    assert_int_equal(st_registry_run_input(st, run, in, sizeof in, &err), 0);
    assert_string_equal(in, "");
    assert_int_equal(st_registry_run_set_input(st, run, "/data/train.h5", &err), 0);
    assert_int_equal(st_registry_run_input(st, run, in, sizeof in, &err), 0);
    assert_string_equal(in, "/data/train.h5");
    assert_int_equal(st_registry_run_input(st, run, in, 4, &err), KILN_EINVAL);
    assert_int_equal(st_registry_run_set_input(st, run + 7, "x", &err), KILN_ENOTFOUND);
    assert_int_equal(st_registry_run_input(st, run + 7, in, sizeof in, &err), KILN_ENOTFOUND);
    st_state_close(&st);
    unlink(path);
}

/* A version-5 store (no drift_results, runs without input_path) opens as
 * version 6 with its runs intact. */
static void test_upgrade_from_v5(void **state)
{
    (void)state;
    char path[512];
    st_state_t *st = open_fresh(path);
    kiln_err_t err;
    int64_t run = add_run(st);
    st_state_close(&st);
    sqlite3 *raw;
    assert_int_equal(sqlite3_open(path, &raw), SQLITE_OK);
    assert_int_equal(sqlite3_exec(raw,
                                  "DROP TABLE drift_results;"
                                  "ALTER TABLE runs DROP COLUMN input_path;"
                                  "PRAGMA user_version = 5;",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(raw);
    assert_int_equal(st_state_open(path, &st, &err), 0);
    st_run_t r;
    assert_int_equal(st_registry_run_get(st, run, &r, &err), 0);
    assert_string_equal(r.model_name, "bearing");
    st_registry_run_free(&r);
    char in[16];
    assert_int_equal(st_registry_run_input(st, run, in, sizeof in, &err), 0);
    assert_string_equal(in, "");
    put(st, 5, "bearing", 1, 1);
    st_state_close(&st);
    assert_int_equal(sqlite3_open(path, &raw), SQLITE_OK);
    sqlite3_stmt *s;
    assert_int_equal(sqlite3_prepare_v2(raw, "PRAGMA user_version", -1, &s, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(s, 0), 10);
    sqlite3_finalize(s);
    sqlite3_close(raw);
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_put_get_list),
        cmocka_unit_test(test_upgrade_from_v5),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
