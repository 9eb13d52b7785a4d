/* state_drift.c - drift results and runs' input paths in the state store
 * (drift_results.h).  Statements are prepared per call: drift jobs record
 * a few times a day, not per task. */
#include "storage/drift_results.h"

#include <stdio.h>
#include <string.h>

#include "core/kiln_alloc.h"
#include "storage/state_int.h"

#define DRIFT_COLS                                                                   \
    "job_id, model_name, model_version, created_ns, drifted, share, n_columns, "     \
    "n_drifted, child_job_id, columns_json, result_json"

static int prep(st_state_t *st, const char *sql, sqlite3_stmt **s, kiln_err_t *err,
                const char *op)
{
    int rc = sqlite3_prepare_v2(st->db, sql, -1, s, NULL);
    return rc == SQLITE_OK ? 0 : st_sq_err(st, rc, err, op);
}

#define BINDF(expr, op)                                    \
    do {                                                   \
        int brc_ = (expr);                                 \
        if (brc_ != SQLITE_OK) {                           \
            int r_ = st_sq_err(st, brc_, err, op);         \
            sqlite3_finalize(s);                           \
            return r_;                                     \
        }                                                  \
    } while (0)

int st_drift_result_put(st_state_t *st, const st_drift_result_t *r, kiln_err_t *err)
{
    if (!st || !r || !r->columns_json || !r->result_json)
        return kiln_err_set(err, KILN_EINVAL, "drift result: NULL argument");
    const char *op = "storing a drift result";
    sqlite3_stmt *s = NULL;
    int rc = prep(st, "INSERT OR REPLACE INTO drift_results (" DRIFT_COLS ") VALUES "
                      "(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)", &s, err, op);
    if (rc < 0)
        return rc;
    BINDF(sqlite3_bind_int64(s, 1, r->job_id), op);
    BINDF(sqlite3_bind_text(s, 2, r->model_name ? r->model_name : "", -1, SQLITE_STATIC), op);
    BINDF(sqlite3_bind_int64(s, 3, r->model_version), op);
    BINDF(sqlite3_bind_int64(s, 4, r->created_ns), op);
    BINDF(sqlite3_bind_int(s, 5, r->drifted ? 1 : 0), op);
    BINDF(sqlite3_bind_double(s, 6, r->share), op);
    BINDF(sqlite3_bind_int64(s, 7, r->n_columns), op);
    BINDF(sqlite3_bind_int64(s, 8, r->n_drifted), op);
    BINDF(sqlite3_bind_int64(s, 9, r->child_job_id), op);
    BINDF(sqlite3_bind_text(s, 10, r->columns_json, -1, SQLITE_STATIC), op);
    BINDF(sqlite3_bind_text(s, 11, r->result_json, -1, SQLITE_STATIC), op);
    rc = sqlite3_step(s);
    int ret = rc == SQLITE_DONE ? 0 : st_sq_err(st, rc, err, op);
    sqlite3_finalize(s);
    return ret;
}

static void from_row(sqlite3_stmt *s, st_drift_result_t *r)
{
    memset(r, 0, sizeof *r);
    r->job_id = sqlite3_column_int64(s, 0);
    r->model_name = (char *)sqlite3_column_text(s, 1);
    r->model_version = sqlite3_column_int64(s, 2);
    r->created_ns = sqlite3_column_int64(s, 3);
    r->drifted = sqlite3_column_int(s, 4);
    r->share = sqlite3_column_double(s, 5);
    r->n_columns = sqlite3_column_int64(s, 6);
    r->n_drifted = sqlite3_column_int64(s, 7);
    r->child_job_id = sqlite3_column_int64(s, 8);
    r->columns_json = (char *)sqlite3_column_text(s, 9);
    r->result_json = (char *)sqlite3_column_text(s, 10);
}

void st_drift_result_free(st_drift_result_t *r)
{
    if (!r)
        return;
    kiln_free(r->model_name);
    kiln_free(r->columns_json);
    kiln_free(r->result_json);
    r->model_name = r->columns_json = r->result_json = NULL;
}

int st_drift_result_get(st_state_t *st, int64_t job_id, st_drift_result_t *out,
                        kiln_err_t *err)
{
    if (!st || !out)
        return kiln_err_set(err, KILN_EINVAL, "drift result: NULL argument");
    const char *op = "reading a drift result";
    sqlite3_stmt *s = NULL;
    int rc = prep(st, "SELECT " DRIFT_COLS " FROM drift_results WHERE job_id = ?1", &s, err, op);
    if (rc < 0)
        return rc;
    BINDF(sqlite3_bind_int64(s, 1, job_id), op);
    rc = sqlite3_step(s);
    int ret = 0;
    if (rc == SQLITE_ROW) {
        st_drift_result_t r;
        from_row(s, &r);
        *out = r;
        out->model_name = kiln_strdup(r.model_name ? r.model_name : "");
        out->columns_json = kiln_strdup(r.columns_json ? r.columns_json : "[]");
        out->result_json = kiln_strdup(r.result_json ? r.result_json : "{}");
        if (!out->model_name || !out->columns_json || !out->result_json) {
            st_drift_result_free(out);
            ret = kiln_err_set(err, KILN_ENOMEM, "drift result of job %lld: out of memory",
                               (long long)job_id);
        }
    } else if (rc == SQLITE_DONE) {
        ret = kiln_err_set(err, KILN_ENOTFOUND, "job %lld has no drift result", (long long)job_id);
    } else {
        ret = st_sq_err(st, rc, err, op);
    }
    sqlite3_finalize(s);
    return ret;
}

static int rows(st_state_t *st, sqlite3_stmt *s, st_drift_result_cb cb, void *ud,
                kiln_err_t *err, const char *op)
{
    int rc, ret = 0;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        st_drift_result_t r;
        from_row(s, &r);
        if (cb(&r, ud))
            break;
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        ret = st_sq_err(st, rc, err, op);
    sqlite3_finalize(s);
    return ret;
}

int st_drift_result_list(st_state_t *st, const char *model_name, int64_t limit,
                         st_drift_result_cb cb, void *ud, kiln_err_t *err)
{
    if (!st || !cb)
        return kiln_err_set(err, KILN_EINVAL, "drift results: NULL argument");
    const char *op = "listing drift results";
    sqlite3_stmt *s = NULL;
    int rc = prep(st, "SELECT " DRIFT_COLS " FROM drift_results WHERE (?1 IS NULL OR "
                      "model_name = ?1) ORDER BY created_ns DESC, job_id DESC LIMIT ?2",
                  &s, err, op);
    if (rc < 0)
        return rc;
    BINDF(model_name ? sqlite3_bind_text(s, 1, model_name, -1, SQLITE_STATIC)
                     : sqlite3_bind_null(s, 1), op);
    BINDF(sqlite3_bind_int64(s, 2, limit > 0 ? limit : -1), op);
    return rows(st, s, cb, ud, err, op);
}

int st_drift_result_latest_per_model(st_state_t *st, st_drift_result_cb cb, void *ud,
                                     kiln_err_t *err)
{
    if (!st || !cb)
        return kiln_err_set(err, KILN_EINVAL, "drift results: NULL argument");
    const char *op = "reading the latest drift results";
    sqlite3_stmt *s = NULL;
    /* The newest job per model: job ids grow with time. */
    int rc = prep(st, "SELECT " DRIFT_COLS " FROM drift_results WHERE job_id IN "
                      "(SELECT MAX(job_id) FROM drift_results WHERE model_name != '' "
                      "GROUP BY model_name) ORDER BY model_name", &s, err, op);
    return rc < 0 ? rc : rows(st, s, cb, ud, err, op);
}

int st_registry_run_set_input(st_state_t *st, int64_t run_id, const char *path,
                              kiln_err_t *err)
{
    if (!st || !path)
        return kiln_err_set(err, KILN_EINVAL, "run input: NULL argument");
    const char *op = "recording a run's input path";
    sqlite3_stmt *s = NULL;
    int rc = prep(st, "UPDATE runs SET input_path = ?2 WHERE id = ?1", &s, err, op);
    if (rc < 0)
        return rc;
    BINDF(sqlite3_bind_int64(s, 1, run_id), op);
    BINDF(sqlite3_bind_text(s, 2, path, -1, SQLITE_STATIC), op);
    rc = sqlite3_step(s);
    int ret = rc == SQLITE_DONE ? 0 : st_sq_err(st, rc, err, op);
    sqlite3_finalize(s);
    if (ret == 0 && sqlite3_changes(st->db) == 0)
        ret = kiln_err_set(err, KILN_ENOTFOUND, "run %lld not found", (long long)run_id);
    return ret;
}

int st_registry_run_input(st_state_t *st, int64_t run_id, char *path, size_t cap,
                          kiln_err_t *err)
{
    if (!st || !path || !cap)
        return kiln_err_set(err, KILN_EINVAL, "run input: NULL argument");
    const char *op = "reading a run's input path";
    sqlite3_stmt *s = NULL;
    int rc = prep(st, "SELECT input_path FROM runs WHERE id = ?1", &s, err, op);
    if (rc < 0)
        return rc;
    BINDF(sqlite3_bind_int64(s, 1, run_id), op);
    rc = sqlite3_step(s);
    int ret = 0;
    if (rc == SQLITE_ROW) {
        const char *v = (const char *)sqlite3_column_text(s, 0);
        if (!v)
            v = "";
        if (strlen(v) >= cap)
            ret = kiln_err_set(err, KILN_EINVAL, "run %lld: input path too long",
                               (long long)run_id);
        else
            memcpy(path, v, strlen(v) + 1);
    } else if (rc == SQLITE_DONE) {
        ret = kiln_err_set(err, KILN_ENOTFOUND, "run %lld not found", (long long)run_id);
    } else {
        ret = st_sq_err(st, rc, err, op);
    }
    sqlite3_finalize(s);
    return ret;
}
