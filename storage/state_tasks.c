/* state_tasks.c - tasks (claimed under a lease, finished only under the
 * same lease, requeued when a worker is lost) and workers in the state store. */
#include "storage/state_int.h"

#include <string.h>

#include "core/kiln_alloc.h"

/* ---- tasks */

int st_state_task_insert(st_state_t *st, int64_t job_id, int idx, int64_t win0, int64_t n_windows,
                         int64_t *id, kiln_err_t *err)
{
    if (!st)
        return kiln_err_set(err, KILN_EINVAL, "task insert: NULL handle");
    if (idx < 0 || win0 < 0 || n_windows < 0)
        return kiln_err_set(err, KILN_EINVAL,
                            "job %lld task %d: bad window range (win0 %lld, n_windows %lld)",
                            (long long)job_id, idx, (long long)win0, (long long)n_windows);
    sqlite3_stmt *s = st->q[Q_TASK_INSERT];
    BIND(sqlite3_bind_int64(s, 1, job_id), "inserting task");
    BIND(sqlite3_bind_int(s, 2, idx), "inserting task");
    BIND(sqlite3_bind_int64(s, 3, win0), "inserting task");
    BIND(sqlite3_bind_int64(s, 4, n_windows), "inserting task");
    int rc = sqlite3_step(s);
    st_sq_end_stmt(s);
    if (rc == SQLITE_CONSTRAINT_FOREIGNKEY)
        return kiln_err_set(err, KILN_ENOTFOUND, "task %d: job %lld does not exist", idx,
                            (long long)job_id);
    if (rc != SQLITE_DONE)
        return st_sq_err(st, rc, err, "inserting task");
    if (id)
        *id = sqlite3_last_insert_rowid(st->db);
    return 0;
}

/* After an UPDATE that matched nothing: says why (unknown task, wrong state
 * or another lease). */
static int task_refusal(st_state_t *st, int64_t id, const char *lease_id, const char *what,
                        kiln_err_t *err)
{
    sqlite3_stmt *s = st->q[Q_TASK_GET_STATE];
    BIND(sqlite3_bind_int64(s, 1, id), "reading task");
    int rc = sqlite3_step(s);
    int ret;
    if (rc == SQLITE_DONE) {
        ret = kiln_err_set(err, KILN_ENOTFOUND, "task %lld not found", (long long)id);
    } else if (rc != SQLITE_ROW) {
        ret = st_sq_err(st, rc, err, "reading task");
    } else {
        const char *state = (const char *)sqlite3_column_text(s, 0);
        const char *lease = (const char *)sqlite3_column_text(s, 1);
        if (lease_id && state && strcmp(state, "running") == 0)
            ret = kiln_err_set(err, KILN_ESTALE,
                               "task %lld: stale lease \"%s\" refused (the task now runs under "
                               "lease \"%s\"); %s ignored",
                               (long long)id, lease_id, lease ? lease : "", what);
        else if (lease_id)
            ret = kiln_err_set(err, KILN_ESTALE,
                               "task %lld: stale lease \"%s\" refused (the task is %s); %s ignored",
                               (long long)id, lease_id, state ? state : "?", what);
        else
            ret = kiln_err_set(err, KILN_EINVAL, "task %lld is %s, not queued; cannot %s",
                               (long long)id, state ? state : "?", what);
    }
    st_sq_end_stmt(s);
    return ret;
}

int st_state_task_claim(st_state_t *st, int64_t id, const char *lease_id, const char *worker_id,
                        int64_t now_ns, kiln_err_t *err)
{
    if (!st)
        return kiln_err_set(err, KILN_EINVAL, "task claim: NULL handle");
    if (!st_sq_nonempty(lease_id) || !st_sq_nonempty(worker_id))
        return kiln_err_set(err, KILN_EINVAL, "task %lld: claim needs a lease id and a worker id",
                            (long long)id);
    sqlite3_stmt *s = st->q[Q_TASK_CLAIM];
    BIND(sqlite3_bind_int64(s, 1, id), "claiming task");
    BIND(st_sq_bind_text(s, 2, lease_id), "claiming task");
    BIND(st_sq_bind_text(s, 3, worker_id), "claiming task");
    BIND(sqlite3_bind_int64(s, 4, now_ns), "claiming task");
    int ret = st_sq_run_done(st, s, err, "claiming task");
    if (ret < 0)
        return ret;
    return sqlite3_changes(st->db) == 1 ? 0 : task_refusal(st, id, NULL, "claim", err);
}

int st_state_task_finish(st_state_t *st, int64_t id, const char *lease_id,
                         st_state_status_t state, const char *output_path, int64_t now_ns,
                         kiln_err_t *err)
{
    if (!st)
        return kiln_err_set(err, KILN_EINVAL, "task finish: NULL handle");
    if (!st_sq_nonempty(lease_id))
        return kiln_err_set(err, KILN_EINVAL, "task %lld: finish needs a lease id", (long long)id);
    if (state != ST_STATE_SUCCEEDED && state != ST_STATE_FAILED)
        return kiln_err_set(err, KILN_EINVAL,
                            "task %lld: a task finishes as succeeded or failed, not %s",
                            (long long)id, st_state_status_name(state) ? st_state_status_name(state) : "?");
    sqlite3_stmt *s = st->q[Q_TASK_FINISH];
    BIND(sqlite3_bind_int64(s, 1, id), "finishing task");
    BIND(st_sq_bind_text(s, 2, lease_id), "finishing task");
    BIND(st_sq_bind_text(s, 3, st_state_status_name(state)), "finishing task");
    BIND(st_sq_bind_text(s, 4, output_path), "finishing task");
    BIND(sqlite3_bind_int64(s, 5, now_ns), "finishing task");
    int ret = st_sq_run_done(st, s, err, "finishing task");
    if (ret < 0)
        return ret;
    return sqlite3_changes(st->db) == 1 ? 0 : task_refusal(st, id, lease_id, "finish", err);
}

int st_state_task_requeue_worker(st_state_t *st, const char *worker_id, int64_t *n,
                                 kiln_err_t *err)
{
    if (!st || !st_sq_nonempty(worker_id))
        return kiln_err_set(err, KILN_EINVAL, "task requeue: NULL handle or empty worker id");
    sqlite3_stmt *s = st->q[Q_TASK_REQUEUE];
    BIND(st_sq_bind_text(s, 1, worker_id), "requeueing tasks");
    int ret = st_sq_run_done(st, s, err, "requeueing tasks");
    if (ret == 0 && n)
        *n = sqlite3_changes(st->db);
    return ret;
}

int st_state_task_requeue(st_state_t *st, int64_t id, const char *lease_id, kiln_err_t *err)
{
    if (!st || !st_sq_nonempty(lease_id))
        return kiln_err_set(err, KILN_EINVAL, "task requeue: NULL handle or empty lease id");
    sqlite3_stmt *s = st->q[Q_TASK_REQUEUE_ONE];
    BIND(sqlite3_bind_int64(s, 1, id), "requeueing task");
    BIND(st_sq_bind_text(s, 2, lease_id), "requeueing task");
    int ret = st_sq_run_done(st, s, err, "requeueing task");
    if (ret < 0)
        return ret;
    return sqlite3_changes(st->db) == 1 ? 0 : task_refusal(st, id, lease_id, "requeue", err);
}

int st_state_task_cancel_job(st_state_t *st, int64_t job_id, int64_t now_ns, int64_t *n,
                             kiln_err_t *err)
{
    if (!st)
        return kiln_err_set(err, KILN_EINVAL, "task cancel: NULL handle");
    sqlite3_stmt *s = st->q[Q_TASK_CANCEL_JOB];
    BIND(sqlite3_bind_int64(s, 1, job_id), "cancelling tasks");
    BIND(sqlite3_bind_int64(s, 2, now_ns), "cancelling tasks");
    int ret = st_sq_run_done(st, s, err, "cancelling tasks");
    if (ret == 0 && n)
        *n = sqlite3_changes(st->db);
    return ret;
}

int st_state_task_list(st_state_t *st, int64_t job_id, st_state_task_cb cb, void *ud,
                       kiln_err_t *err)
{
    if (!st || !cb)
        return kiln_err_set(err, KILN_EINVAL, "task list: NULL argument");
    sqlite3_stmt *s = st->q[Q_TASK_LIST];
    BIND(sqlite3_bind_int64(s, 1, job_id), "listing tasks");
    int rc, ret = 0;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        st_state_task_t t = {0};
        t.id = sqlite3_column_int64(s, 0);
        t.job_id = sqlite3_column_int64(s, 1);
        t.idx = sqlite3_column_int(s, 2);
        t.win0 = sqlite3_column_int64(s, 3);
        t.n_windows = sqlite3_column_int64(s, 4);
        int state = st_sq_status_lookup((const char *)sqlite3_column_text(s, 5));
        t.lease_id = (char *)sqlite3_column_text(s, 6);
        t.worker_id = (char *)sqlite3_column_text(s, 7);
        t.attempts = sqlite3_column_int(s, 8);
        t.started_ns = sqlite3_column_int64(s, 9);
        t.ended_ns = sqlite3_column_int64(s, 10);
        t.output_path = (char *)sqlite3_column_text(s, 11);
        if (sqlite3_errcode(st->db) == SQLITE_NOMEM) {
            ret = st_sq_err(st, SQLITE_NOMEM, err, "listing tasks");
            break;
        }
        if (state < 0) {
            ret = kiln_err_at(err, KILN_EFORMAT, st->path, "%s: task %lld has an unknown state",
                              st->path, (long long)t.id);
            break;
        }
        t.state = (st_state_status_t)state;
        if (cb(&t, ud))
            break;
    }
    if (ret == 0 && rc != SQLITE_ROW && rc != SQLITE_DONE)
        ret = st_sq_err(st, rc, err, "listing tasks");
    st_sq_end_stmt(s);
    return ret;
}

/* ---- workers */

int st_state_worker_hello(st_state_t *st, const char *id, int cores, int64_t memory_mb, int gpus,
                          int64_t now_ns, kiln_err_t *err)
{
    if (!st || !st_sq_nonempty(id))
        return kiln_err_set(err, KILN_EINVAL, "worker hello: NULL handle or empty worker id");
    if (cores <= 0 || memory_mb < 0 || gpus < 0)
        return kiln_err_set(err, KILN_EINVAL,
                            "worker \"%s\": bad resources (cores %d, memory_mb %lld, gpus %d)",
                            id, cores, (long long)memory_mb, gpus);
    sqlite3_stmt *s = st->q[Q_WORKER_HELLO];
    BIND(st_sq_bind_text(s, 1, id), "registering worker");
    BIND(sqlite3_bind_int(s, 2, cores), "registering worker");
    BIND(sqlite3_bind_int64(s, 3, memory_mb), "registering worker");
    BIND(sqlite3_bind_int(s, 4, gpus), "registering worker");
    BIND(sqlite3_bind_int64(s, 5, now_ns), "registering worker");
    return st_sq_run_done(st, s, err, "registering worker");
}

static int worker_update(st_state_t *st, int q, const char *id, int64_t now_ns, kiln_err_t *err,
                         const char *op)
{
    if (!st || !st_sq_nonempty(id))
        return kiln_err_set(err, KILN_EINVAL, "%s: NULL handle or empty worker id", op);
    sqlite3_stmt *s = st->q[q];
    BIND(st_sq_bind_text(s, 1, id), op);
    if (q == Q_WORKER_BEAT)
        BIND(sqlite3_bind_int64(s, 2, now_ns), op);
    int ret = st_sq_run_done(st, s, err, op);
    if (ret == 0 && sqlite3_changes(st->db) == 0)
        ret = kiln_err_set(err, KILN_ENOTFOUND, "worker \"%s\" is not registered", id);
    return ret;
}

int st_state_worker_heartbeat(st_state_t *st, const char *id, int64_t now_ns, kiln_err_t *err)
{
    return worker_update(st, Q_WORKER_BEAT, id, now_ns, err, "worker heartbeat");
}

int st_state_worker_mark_lost(st_state_t *st, const char *id, kiln_err_t *err)
{
    return worker_update(st, Q_WORKER_LOST, id, 0, err, "marking worker lost");
}

int st_state_worker_get(st_state_t *st, const char *id, st_state_worker_t *out, kiln_err_t *err)
{
    if (!st || !st_sq_nonempty(id) || !out)
        return kiln_err_set(err, KILN_EINVAL, "worker get: NULL argument or empty worker id");
    sqlite3_stmt *s = st->q[Q_WORKER_GET];
    BIND(st_sq_bind_text(s, 1, id), "reading worker");
    int rc = sqlite3_step(s);
    int ret = 0;
    if (rc == SQLITE_ROW) {
        out->cores = sqlite3_column_int(s, 0);
        out->memory_mb = sqlite3_column_int64(s, 1);
        out->gpus = sqlite3_column_int(s, 2);
        out->last_heartbeat_ns = sqlite3_column_int64(s, 3);
        const char *state = (const char *)sqlite3_column_text(s, 4);
        out->lost = state && strcmp(state, "lost") == 0;
    } else if (rc == SQLITE_DONE) {
        ret = kiln_err_set(err, KILN_ENOTFOUND, "worker \"%s\" is not registered", id);
    } else {
        ret = st_sq_err(st, rc, err, "reading worker");
    }
    st_sq_end_stmt(s);
    return ret;
}
