/* state_jobs.c - jobs in the state store: insert (idempotent, with
 * dependencies), get, list, state transitions, counts; the schedules of
 * recurring jobs. */
#include "storage/state_int.h"

#include <string.h>

#include "core/kiln_alloc.h"

/* ---- jobs (and the schedules of recurring ones, at the end) */

static int job_insert_body(st_state_t *st, const st_state_job_t *job, int64_t *id,
                           int *existed, kiln_err_t *err)
{
    sqlite3_stmt *s;
    int rc;
    if (job->idempotency_key) {
        s = st->q[Q_JOB_BY_KEY];
        BIND(st_sq_bind_text(s, 1, job->idempotency_key), "looking up idempotency key");
        rc = sqlite3_step(s);
        if (rc == SQLITE_ROW) {
            *id = sqlite3_column_int64(s, 0);
            *existed = 1;
            st_sq_end_stmt(s);
            return 0;
        }
        int ret = rc == SQLITE_DONE ? 0 : st_sq_err(st, rc, err, "looking up idempotency key");
        st_sq_end_stmt(s);
        if (ret < 0)
            return ret;
    }
    for (size_t i = 0; i < job->n_depends_on; i++) {
        s = st->q[Q_JOB_EXISTS];
        BIND(sqlite3_bind_int64(s, 1, job->depends_on[i]), "checking depends_on");
        rc = sqlite3_step(s);
        st_sq_end_stmt(s);
        if (rc == SQLITE_DONE)
            return kiln_err_at(err, KILN_ENOTFOUND, "depends_on",
                               "job \"%s\": depends_on names job %lld, which does not exist",
                               job->name, (long long)job->depends_on[i]);
        if (rc != SQLITE_ROW)
            return st_sq_err(st, rc, err, "checking depends_on");
    }
    s = st->q[Q_JOB_INSERT];
    BIND(st_sq_bind_text(s, 1, job->idempotency_key), "inserting job");
    BIND(st_sq_bind_text(s, 2, job->project), "inserting job");
    BIND(st_sq_bind_text(s, 3, job->name), "inserting job");
    BIND(st_sq_bind_text(s, 4, job->type), "inserting job");
    BIND(sqlite3_bind_int(s, 5, job->priority), "inserting job");
    BIND(st_sq_bind_text(s, 6, job->spec_json), "inserting job");
    BIND(sqlite3_bind_int(s, 7, job->max_retries), "inserting job");
    BIND(sqlite3_bind_int(s, 8, job->timeout_s), "inserting job");
    BIND(sqlite3_bind_int64(s, 9, job->submitted_ns), "inserting job");
    BIND(sqlite3_bind_int64(s, 10, job->array_parent), "inserting job");
    BIND(sqlite3_bind_int64(s, 11, job->array_parent ? job->array_index : -1), "inserting job");
    BIND(sqlite3_bind_int64(s, 12, job->scheduled_by), "inserting job");
    BIND(sqlite3_bind_int64(s, 13, job->scheduled_by ? job->scheduled_for_ns : 0),
         "inserting job");
    int ret = st_sq_run_done(st, s, err, "inserting job");
    if (ret < 0 && job->scheduled_by && sqlite3_extended_errcode(st->db) ==
                                            SQLITE_CONSTRAINT_UNIQUE)
        return kiln_err_at(err, KILN_EEXIST, "scheduled_for_ns",
                           "job \"%s\": recurring job %lld already has an instance for that "
                           "fire time", job->name, (long long)job->scheduled_by);
    if (ret < 0)
        return ret;
    int64_t new_id = sqlite3_last_insert_rowid(st->db);
    for (size_t i = 0; i < job->n_depends_on; i++) {
        s = st->q[Q_DEP_INSERT];
        BIND(sqlite3_bind_int64(s, 1, new_id), "inserting depends_on");
        BIND(sqlite3_bind_int64(s, 2, job->depends_on[i]), "inserting depends_on");
        if ((ret = st_sq_run_done(st, s, err, "inserting depends_on")) < 0)
            return ret;
    }
    *id = new_id;
    return 0;
}

int st_state_job_insert(st_state_t *st, const st_state_job_t *job, int64_t *id, int *existed,
                        kiln_err_t *err)
{
    int dummy;
    if (!existed)
        existed = &dummy;
    *existed = 0;
    if (!st || !job || !id)
        return kiln_err_set(err, KILN_EINVAL, "job insert: NULL argument");
    static const char *const fields[] = {"project", "name", "type", "spec_json"};
    const char *vals[] = {job->project, job->name, job->type, job->spec_json};
    for (int i = 0; i < 4; i++)
        if (!st_sq_nonempty(vals[i]))
            return kiln_err_at(err, KILN_EINVAL, fields[i], "job: %s is missing or empty",
                               fields[i]);
    if (job->idempotency_key && !job->idempotency_key[0])
        return kiln_err_at(err, KILN_EINVAL, "idempotency_key",
                           "job \"%s\": idempotency_key is empty (leave it out instead)",
                           job->name);
    if (job->n_depends_on && !job->depends_on)
        return kiln_err_at(err, KILN_EINVAL, "depends_on", "job \"%s\": depends_on is NULL",
                           job->name);
    if (job->max_retries < 0 || job->timeout_s < 0)
        return kiln_err_at(err, KILN_EINVAL, job->max_retries < 0 ? "max_retries" : "timeout_s",
                           "job \"%s\": %s is negative", job->name,
                           job->max_retries < 0 ? "max_retries" : "timeout_s");
    int ret = st_sq_sp_begin(st, err);
    if (ret < 0)
        return ret;
    ret = job_insert_body(st, job, id, existed, err);
    return st_sq_sp_end(st, ret, err);
}

/* Reads a job row (columns JOB_COLS) with borrowed strings. */
int st_sq_job_from_row(st_state_t *st, sqlite3_stmt *s, st_state_job_t *j, kiln_err_t *err)
{
    memset(j, 0, sizeof *j);
    j->id = sqlite3_column_int64(s, 0);
    j->idempotency_key = (char *)sqlite3_column_text(s, 1);
    j->project = (char *)sqlite3_column_text(s, 2);
    j->name = (char *)sqlite3_column_text(s, 3);
    j->type = (char *)sqlite3_column_text(s, 4);
    j->priority = sqlite3_column_int(s, 5);
    j->spec_json = (char *)sqlite3_column_text(s, 6);
    const char *state = (const char *)sqlite3_column_text(s, 7);
    j->reason_code = (char *)sqlite3_column_text(s, 8);
    j->reason_text = (char *)sqlite3_column_text(s, 9);
    j->attempts = sqlite3_column_int(s, 10);
    j->max_retries = sqlite3_column_int(s, 11);
    j->timeout_s = sqlite3_column_int(s, 12);
    j->submitted_ns = sqlite3_column_int64(s, 13);
    j->started_ns = sqlite3_column_int64(s, 14);
    j->ended_ns = sqlite3_column_int64(s, 15);
    j->array_parent = sqlite3_column_int64(s, 16);
    j->array_index = sqlite3_column_int64(s, 17);
    j->scheduled_by = sqlite3_column_int64(s, 18);
    j->scheduled_for_ns = sqlite3_column_int64(s, 19);
    if (sqlite3_errcode(st->db) == SQLITE_NOMEM)
        return st_sq_err(st, SQLITE_NOMEM, err, "reading job");
    int i = st_sq_status_lookup(state);
    if (i < 0 || !j->project || !j->name || !j->type || !j->spec_json)
        return kiln_err_at(err, KILN_EFORMAT, st->path, "%s: job %lld has a bad row (state \"%s\")",
                           st->path, (long long)j->id, state ? state : "(null)");
    j->state = (st_state_status_t)i;
    return 0;
}

static int dup_opt(char **field)
{
    if (!*field)
        return 0;
    *field = kiln_strdup(*field);
    return *field ? 0 : -1;
}

void st_state_job_free(st_state_job_t *j)
{
    if (!j)
        return;
    kiln_free(j->idempotency_key);
    kiln_free(j->project);
    kiln_free(j->name);
    kiln_free(j->type);
    kiln_free(j->spec_json);
    kiln_free(j->reason_code);
    kiln_free(j->reason_text);
    kiln_free(j->depends_on);
    memset(j, 0, sizeof *j);
}

static int job_load_deps(st_state_t *st, st_state_job_t *j, kiln_err_t *err)
{
    sqlite3_stmt *s = st->q[Q_DEPS_GET];
    size_t cap = 0;
    int rc;
    BIND(sqlite3_bind_int64(s, 1, j->id), "reading depends_on");
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (j->n_depends_on == cap) {
            size_t ncap = cap ? cap * 2 : 4;
            int64_t *p = kiln_realloc(j->depends_on, ncap * sizeof *p);
            if (!p) {
                st_sq_end_stmt(s);
                return kiln_err_set(err, KILN_ENOMEM, "%s: out of memory reading job %lld",
                                    st->path, (long long)j->id);
            }
            j->depends_on = p;
            cap = ncap;
        }
        j->depends_on[j->n_depends_on++] = sqlite3_column_int64(s, 0);
    }
    int ret = rc == SQLITE_DONE ? 0 : st_sq_err(st, rc, err, "reading depends_on");
    st_sq_end_stmt(s);
    return ret;
}

int st_state_job_get(st_state_t *st, int64_t id, st_state_job_t *out, kiln_err_t *err)
{
    if (!st || !out)
        return kiln_err_set(err, KILN_EINVAL, "job get: NULL argument");
    memset(out, 0, sizeof *out);
    sqlite3_stmt *s = st->q[Q_JOB_GET];
    BIND(sqlite3_bind_int64(s, 1, id), "reading job");
    int rc = sqlite3_step(s);
    if (rc != SQLITE_ROW) {
        int ret = rc == SQLITE_DONE
                      ? kiln_err_set(err, KILN_ENOTFOUND, "job %lld not found", (long long)id)
                      : st_sq_err(st, rc, err, "reading job");
        st_sq_end_stmt(s);
        return ret;
    }
    st_state_job_t j;
    int ret = st_sq_job_from_row(st, s, &j, err);
    if (ret == 0 && (dup_opt(&j.idempotency_key) | dup_opt(&j.project) | dup_opt(&j.name)
                     | dup_opt(&j.type) | dup_opt(&j.spec_json) | dup_opt(&j.reason_code)
                     | dup_opt(&j.reason_text))) {
        /* Fields that failed are NULL; the others are ours to free. */
        st_sq_end_stmt(s);
        st_state_job_free(&j);
        return kiln_err_set(err, KILN_ENOMEM, "%s: out of memory reading job %lld", st->path,
                            (long long)id);
    }
    st_sq_end_stmt(s);
    if (ret < 0)
        return ret;
    if ((ret = job_load_deps(st, &j, err)) < 0) {
        st_state_job_free(&j);
        return ret;
    }
    *out = j;
    return 0;
}

int st_state_job_list(st_state_t *st, const st_state_status_t *state, const char *project,
                      st_state_job_cb cb, void *ud, kiln_err_t *err)
{
    return st_state_job_list_opts(st, state, project, 0, 0, cb, ud, err);
}

int st_state_job_list_opts(st_state_t *st, const st_state_status_t *state, const char *project,
                           int newest_first, int64_t limit, st_state_job_cb cb, void *ud,
                           kiln_err_t *err)
{
    if (!st || !cb)
        return kiln_err_set(err, KILN_EINVAL, "job list: NULL argument");
    if (state && !st_state_status_name(*state))
        return kiln_err_set(err, KILN_EINVAL, "job list: unknown state %d", (int)*state);
    sqlite3_stmt *s = st->q[Q_JOB_LIST];
    BIND(st_sq_bind_text(s, 1, state ? st_state_status_name(*state) : NULL), "listing jobs");
    BIND(st_sq_bind_text(s, 2, project), "listing jobs");
    BIND(sqlite3_bind_int(s, 3, newest_first ? 1 : 0), "listing jobs");
    BIND(sqlite3_bind_int64(s, 4, limit > 0 ? limit : -1), "listing jobs");
    return st_sq_job_rows(st, s, cb, ud, err, "listing jobs");
}

int st_sq_job_rows(st_state_t *st, sqlite3_stmt *s, st_state_job_cb cb, void *ud,
                   kiln_err_t *err, const char *op)
{
    int rc, ret = 0;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        st_state_job_t j;
        if ((ret = st_sq_job_from_row(st, s, &j, err)) < 0)
            break;
        if (cb(&j, ud))
            break;
    }
    if (ret == 0 && rc != SQLITE_ROW && rc != SQLITE_DONE)
        ret = st_sq_err(st, rc, err, op);
    st_sq_end_stmt(s);
    return ret;
}

static int job_set_state_body(st_state_t *st, int64_t id, st_state_status_t state,
                              const char *reason_code, const char *reason_text, int64_t now_ns,
                              kiln_err_t *err)
{
    sqlite3_stmt *s = st->q[Q_JOB_STATE];
    BIND(sqlite3_bind_int64(s, 1, id), "reading job state");
    int rc = sqlite3_step(s);
    if (rc != SQLITE_ROW) {
        int ret = rc == SQLITE_DONE
                      ? kiln_err_set(err, KILN_ENOTFOUND, "job %lld not found", (long long)id)
                      : st_sq_err(st, rc, err, "reading job state");
        st_sq_end_stmt(s);
        return ret;
    }
    int cur = st_sq_status_lookup((const char *)sqlite3_column_text(s, 0));
    st_sq_end_stmt(s);
    if (cur < 0)
        return kiln_err_at(err, KILN_EFORMAT, st->path, "%s: job %lld has an unknown state",
                           st->path, (long long)id);
    if (st_state_status_is_final((st_state_status_t)cur))
        return kiln_err_set(err, KILN_EINVAL, "job %lld is already %s (final); it cannot become %s",
                            (long long)id, st_state_status_name(cur), st_state_status_name(state));
    s = st->q[Q_JOB_SET_STATE];
    BIND(sqlite3_bind_int64(s, 1, id), "setting job state");
    BIND(st_sq_bind_text(s, 2, st_state_status_name(state)), "setting job state");
    BIND(st_sq_bind_text(s, 3, reason_code), "setting job state");
    BIND(st_sq_bind_text(s, 4, reason_text), "setting job state");
    BIND(sqlite3_bind_int64(s, 5, now_ns), "setting job state");
    BIND(sqlite3_bind_int(s, 6, st_state_status_is_final(state)), "setting job state");
    return st_sq_run_done(st, s, err, "setting job state");
}

int st_state_job_set_state(st_state_t *st, int64_t id, st_state_status_t state,
                           const char *reason_code, const char *reason_text, int64_t now_ns,
                           kiln_err_t *err)
{
    if (!st)
        return kiln_err_set(err, KILN_EINVAL, "job set state: NULL handle");
    if (!st_state_status_name(state))
        return kiln_err_set(err, KILN_EINVAL, "job %lld: unknown state %d", (long long)id,
                            (int)state);
    int ret = st_sq_sp_begin(st, err);
    if (ret < 0)
        return ret;
    ret = job_set_state_body(st, id, state, reason_code, reason_text, now_ns, err);
    return st_sq_sp_end(st, ret, err);
}

int st_state_job_count(st_state_t *st, st_state_status_t state, int64_t *n, kiln_err_t *err)
{
    if (!st || !n)
        return kiln_err_set(err, KILN_EINVAL, "job count: NULL argument");
    if (!st_state_status_name(state))
        return kiln_err_set(err, KILN_EINVAL, "job count: unknown state %d", (int)state);
    sqlite3_stmt *s = st->q[Q_JOB_COUNT];
    BIND(st_sq_bind_text(s, 1, st_state_status_name(state)), "counting jobs");
    int rc = sqlite3_step(s);
    int ret = 0;
    if (rc == SQLITE_ROW)
        *n = sqlite3_column_int64(s, 0);
    else
        ret = st_sq_err(st, rc, err, "counting jobs");
    st_sq_end_stmt(s);
    return ret;
}

int st_state_job_tally(st_state_t *st, st_state_tally_cb cb, void *ud, kiln_err_t *err)
{
    if (!st || !cb)
        return kiln_err_set(err, KILN_EINVAL, "job tally: NULL argument");
    /* Prepared per call: a scrape every few seconds, not a hot path. */
    sqlite3_stmt *s = NULL;
    int rc = sqlite3_prepare_v2(st->db, "SELECT type, state, COUNT(*), "
                                "SUM(started_ns IS NOT NULL AND started_ns > 0) FROM jobs "
                                "GROUP BY type, state", -1, &s, NULL);
    if (rc != SQLITE_OK)
        return st_sq_err(st, rc, err, "counting jobs by type and state");
    int ret = 0;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        const char *type = (const char *)sqlite3_column_text(s, 0);
        int state = st_sq_status_lookup((const char *)sqlite3_column_text(s, 1));
        if (state < 0 || !type)
            continue;
        if (cb(type, (st_state_status_t)state, sqlite3_column_int64(s, 2),
               sqlite3_column_int64(s, 3), ud))
            break;
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        ret = st_sq_err(st, rc, err, "counting jobs by type and state");
    sqlite3_finalize(s);
    return ret;
}

int st_state_job_set_attempts(st_state_t *st, int64_t id, int attempts, kiln_err_t *err)
{
    if (!st)
        return kiln_err_set(err, KILN_EINVAL, "job attempts: NULL handle");
    sqlite3_stmt *s = st->q[Q_JOB_SET_ATTEMPTS];
    BIND(sqlite3_bind_int64(s, 1, id), "setting job attempts");
    BIND(sqlite3_bind_int(s, 2, attempts), "setting job attempts");
    int ret = st_sq_run_done(st, s, err, "setting job attempts");
    if (ret == 0 && sqlite3_changes(st->db) == 0)
        ret = kiln_err_set(err, KILN_ENOTFOUND, "job %lld not found", (long long)id);
    return ret;
}

int st_state_job_instances(st_state_t *st, int64_t parent, int64_t counts[ST_STATE_N_STATUS],
                           kiln_err_t *err)
{
    if (!st || !counts)
        return kiln_err_set(err, KILN_EINVAL, "job instances: NULL argument");
    memset(counts, 0, ST_STATE_N_STATUS * sizeof *counts);
    sqlite3_stmt *s = st->q[Q_JOB_INSTANCES];
    BIND(sqlite3_bind_int64(s, 1, parent), "counting array instances");
    int rc, ret = 0;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        int i = st_sq_status_lookup((const char *)sqlite3_column_text(s, 0));
        if (i >= 0)
            counts[i] = sqlite3_column_int64(s, 1);
    }
    if (rc != SQLITE_DONE)
        ret = st_sq_err(st, rc, err, "counting array instances");
    st_sq_end_stmt(s);
    return ret;
}

/* ---- schedules of recurring jobs */

int st_state_schedule_put(st_state_t *st, int64_t job_id, const char *expr,
                          int64_t next_run_ns, kiln_err_t *err)
{
    if (!st || !st_sq_nonempty(expr))
        return kiln_err_set(err, KILN_EINVAL, "schedule put: NULL handle or empty expression");
    sqlite3_stmt *s = st->q[Q_SCHED_PUT];
    BIND(sqlite3_bind_int64(s, 1, job_id), "storing schedule");
    BIND(st_sq_bind_text(s, 2, expr), "storing schedule");
    BIND(sqlite3_bind_int64(s, 3, next_run_ns), "storing schedule");
    return st_sq_run_done(st, s, err, "storing schedule");
}

int st_state_schedule_set(st_state_t *st, int64_t job_id, int64_t next_run_ns, int64_t runs,
                          int64_t skipped, kiln_err_t *err)
{
    if (!st)
        return kiln_err_set(err, KILN_EINVAL, "schedule set: NULL handle");
    sqlite3_stmt *s = st->q[Q_SCHED_SET];
    BIND(sqlite3_bind_int64(s, 1, job_id), "updating schedule");
    BIND(sqlite3_bind_int64(s, 2, next_run_ns), "updating schedule");
    BIND(sqlite3_bind_int64(s, 3, runs), "updating schedule");
    BIND(sqlite3_bind_int64(s, 4, skipped), "updating schedule");
    int ret = st_sq_run_done(st, s, err, "updating schedule");
    if (ret == 0 && sqlite3_changes(st->db) == 0)
        ret = kiln_err_set(err, KILN_ENOTFOUND, "job %lld has no schedule", (long long)job_id);
    return ret;
}

int st_state_schedule_get(st_state_t *st, int64_t job_id, st_state_schedule_t *out,
                          kiln_err_t *err)
{
    if (!st || !out)
        return kiln_err_set(err, KILN_EINVAL, "schedule get: NULL argument");
    memset(out, 0, sizeof *out);
    sqlite3_stmt *s = st->q[Q_SCHED_GET];
    BIND(sqlite3_bind_int64(s, 1, job_id), "reading schedule");
    int rc = sqlite3_step(s);
    int ret = 0;
    if (rc == SQLITE_ROW) {
        const char *expr = (const char *)sqlite3_column_text(s, 0);
        out->next_run_ns = sqlite3_column_int64(s, 1);
        out->runs = sqlite3_column_int64(s, 2);
        out->skipped = sqlite3_column_int64(s, 3);
        if (!expr || !(out->expr = kiln_strdup(expr)))
            ret = kiln_err_set(err, KILN_ENOMEM, "%s: out of memory reading the schedule of job "
                               "%lld", st->path, (long long)job_id);
    } else {
        ret = rc == SQLITE_DONE ? kiln_err_set(err, KILN_ENOTFOUND, "job %lld has no schedule",
                                               (long long)job_id)
                                : st_sq_err(st, rc, err, "reading schedule");
    }
    st_sq_end_stmt(s);
    return ret;
}

void st_state_schedule_free(st_state_schedule_t *sch)
{
    if (!sch)
        return;
    kiln_free(sch->expr);
    memset(sch, 0, sizeof *sch);
}
