/* state.c - the scheduler's durable state in SQLite (WAL): every statement
 * is prepared once on the handle and bound with values (never formatted),
 * and every SQLite error becomes a KILN_E code naming the path and the
 * operation.  SQLite's heap goes through kiln_alloc, so the failure
 * injection of the tests reaches inside SQLite too. */
#include "storage/state.h"

#include <pthread.h>
#include <sqlite3.h>
#include <string.h>

#include "core/kiln_alloc.h"

#define ST_SCHEMA_VERSION 1

static const char *const status_names[ST_STATE_N_STATUS] = {
    "queued", "running", "succeeded", "failed", "cancelled", "timeout", "node_fail",
    "out_of_memory",
};

const char *st_state_status_name(st_state_status_t s)
{
    return (unsigned)s < ST_STATE_N_STATUS ? status_names[s] : NULL;
}

static int status_lookup(const char *name)
{
    for (int i = 0; name && i < ST_STATE_N_STATUS; i++)
        if (strcmp(name, status_names[i]) == 0)
            return i;
    return -1;
}

int st_state_status_parse(const char *name, st_state_status_t *out, kiln_err_t *err)
{
    int i = status_lookup(name);
    if (i < 0)
        return kiln_err_set(err, KILN_EINVAL,
                            "unknown job state \"%s\" (expected queued, running, succeeded, "
                            "failed, cancelled, timeout, node_fail or out_of_memory)",
                            name ? name : "(null)");
    *out = (st_state_status_t)i;
    return 0;
}

int st_state_status_is_final(st_state_status_t s)
{
    return s >= ST_STATE_SUCCEEDED && s < ST_STATE_N_STATUS;
}

/* ---- SQLite's heap through kiln_alloc (a 16-byte header keeps the size) */

#define SQ_HDR 16
static void *sq_malloc(int n)
{
    char *p = kiln_malloc((size_t)n + SQ_HDR);
    if (!p)
        return NULL;
    memcpy(p, &n, sizeof n);
    return p + SQ_HDR;
}
static void sq_free(void *p)
{
    if (p)
        kiln_free((char *)p - SQ_HDR);
}
static void *sq_realloc(void *p, int n)
{
    if (!p)
        return sq_malloc(n);
    char *b = kiln_realloc((char *)p - SQ_HDR, (size_t)n + SQ_HDR);
    if (!b)
        return NULL;
    memcpy(b, &n, sizeof n);
    return b + SQ_HDR;
}
static int sq_size(void *p)
{
    int n = 0;
    if (p)
        memcpy(&n, (char *)p - SQ_HDR, sizeof n);
    return n;
}
static int sq_roundup(int n) { return (n + 7) & ~7; }
static int sq_init(void *ud) { (void)ud; return SQLITE_OK; }
static void sq_shutdown(void *ud) { (void)ud; }

static pthread_once_t sq_once = PTHREAD_ONCE_INIT;
static void sq_install(void)
{
    static const sqlite3_mem_methods methods = {
        sq_malloc, sq_free, sq_realloc, sq_size, sq_roundup, sq_init, sq_shutdown, NULL,
    };
    /* SQLITE_MISUSE if SQLite was already started by someone else: then it
     * keeps its own heap, which is only a loss for the tests' injection. */
    (void)sqlite3_config(SQLITE_CONFIG_MALLOC, &methods);
}

/* ---- statements, prepared once per handle */

enum {
    Q_BEGIN, Q_COMMIT, Q_ROLLBACK, Q_SAVEPOINT, Q_RELEASE, Q_ROLLBACK_TO,
    Q_JOB_BY_KEY, Q_JOB_INSERT, Q_DEP_INSERT, Q_JOB_EXISTS, Q_JOB_GET, Q_DEPS_GET,
    Q_JOB_LIST, Q_JOB_STATE, Q_JOB_SET_STATE, Q_JOB_COUNT,
    Q_TASK_INSERT, Q_TASK_CLAIM, Q_TASK_GET_STATE, Q_TASK_FINISH, Q_TASK_REQUEUE, Q_TASK_LIST,
    Q_WORKER_HELLO, Q_WORKER_BEAT, Q_WORKER_LOST, Q_WORKER_GET,
    Q_N
};

#define JOB_COLS "id, idempotency_key, project, name, type, priority, spec_json, state, " \
                 "reason_code, reason_text, attempts, max_retries, timeout_s, "           \
                 "submitted_ns, started_ns, ended_ns"
#define TASK_COLS "id, job_id, idx, win0, n_windows, state, lease_id, worker_id, attempts, " \
                  "started_ns, ended_ns, output_path"

static const char *const q_sql[Q_N] = {
    [Q_BEGIN] = "BEGIN IMMEDIATE",
    [Q_COMMIT] = "COMMIT",
    [Q_ROLLBACK] = "ROLLBACK",
    [Q_SAVEPOINT] = "SAVEPOINT st_change",
    [Q_RELEASE] = "RELEASE st_change",
    [Q_ROLLBACK_TO] = "ROLLBACK TO st_change",
    [Q_JOB_BY_KEY] = "SELECT id FROM jobs WHERE idempotency_key = ?1",
    [Q_JOB_INSERT] = "INSERT INTO jobs (idempotency_key, project, name, type, priority, spec_json, "
                     "state, attempts, max_retries, timeout_s, submitted_ns, started_ns, ended_ns) "
                     "VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'queued', 0, ?7, ?8, ?9, 0, 0)",
    [Q_DEP_INSERT] = "INSERT OR IGNORE INTO job_deps (job_id, depends_on) VALUES (?1, ?2)",
    [Q_JOB_EXISTS] = "SELECT 1 FROM jobs WHERE id = ?1",
    [Q_JOB_GET] = "SELECT " JOB_COLS " FROM jobs WHERE id = ?1",
    [Q_DEPS_GET] = "SELECT depends_on FROM job_deps WHERE job_id = ?1 ORDER BY depends_on",
    [Q_JOB_LIST] = "SELECT " JOB_COLS " FROM jobs WHERE (?1 IS NULL OR state = ?1) "
                   "AND (?2 IS NULL OR project = ?2) ORDER BY id",
    [Q_JOB_STATE] = "SELECT state FROM jobs WHERE id = ?1",
    [Q_JOB_SET_STATE] = "UPDATE jobs SET state = ?2, reason_code = ?3, reason_text = ?4, "
                        "started_ns = CASE WHEN ?2 = 'running' THEN ?5 ELSE started_ns END, "
                        "ended_ns = CASE WHEN ?6 THEN ?5 ELSE ended_ns END WHERE id = ?1",
    [Q_JOB_COUNT] = "SELECT count(*) FROM jobs WHERE state = ?1",
    [Q_TASK_INSERT] = "INSERT INTO tasks (job_id, idx, win0, n_windows, state, attempts, "
                      "started_ns, ended_ns) VALUES (?1, ?2, ?3, ?4, 'queued', 0, 0, 0)",
    [Q_TASK_CLAIM] = "UPDATE tasks SET state = 'running', lease_id = ?2, worker_id = ?3, "
                     "started_ns = ?4 WHERE id = ?1 AND state = 'queued'",
    [Q_TASK_GET_STATE] = "SELECT state, lease_id FROM tasks WHERE id = ?1",
    [Q_TASK_FINISH] = "UPDATE tasks SET state = ?3, output_path = ?4, ended_ns = ?5 "
                      "WHERE id = ?1 AND state = 'running' AND lease_id = ?2",
    [Q_TASK_REQUEUE] = "UPDATE tasks SET state = 'queued', lease_id = NULL, worker_id = NULL, "
                       "attempts = attempts + 1, started_ns = 0 "
                       "WHERE worker_id = ?1 AND state = 'running'",
    [Q_TASK_LIST] = "SELECT " TASK_COLS " FROM tasks WHERE job_id = ?1 ORDER BY idx, id",
    [Q_WORKER_HELLO] = "INSERT INTO workers (id, cores, memory_mb, gpus, last_heartbeat_ns, state) "
                       "VALUES (?1, ?2, ?3, ?4, ?5, 'alive') ON CONFLICT(id) DO UPDATE SET "
                       "cores = excluded.cores, memory_mb = excluded.memory_mb, "
                       "gpus = excluded.gpus, last_heartbeat_ns = excluded.last_heartbeat_ns, "
                       "state = 'alive'",
    [Q_WORKER_BEAT] = "UPDATE workers SET last_heartbeat_ns = ?2 WHERE id = ?1",
    [Q_WORKER_LOST] = "UPDATE workers SET state = 'lost' WHERE id = ?1",
    [Q_WORKER_GET] = "SELECT cores, memory_mb, gpus, last_heartbeat_ns, state FROM workers "
                     "WHERE id = ?1",
};

static const char schema_sql[] =
    "CREATE TABLE jobs ("
    " id INTEGER PRIMARY KEY,"
    " idempotency_key TEXT UNIQUE,"
    " project TEXT NOT NULL, name TEXT NOT NULL, type TEXT NOT NULL,"
    " priority INTEGER NOT NULL DEFAULT 0, spec_json TEXT NOT NULL,"
    " state TEXT NOT NULL, reason_code TEXT, reason_text TEXT,"
    " attempts INTEGER NOT NULL DEFAULT 0, max_retries INTEGER NOT NULL DEFAULT 0,"
    " timeout_s INTEGER NOT NULL DEFAULT 0,"
    " submitted_ns INTEGER NOT NULL DEFAULT 0, started_ns INTEGER NOT NULL DEFAULT 0,"
    " ended_ns INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX jobs_state ON jobs(state);"
    "CREATE INDEX jobs_project ON jobs(project);"
    "CREATE TABLE job_deps ("
    " job_id INTEGER NOT NULL REFERENCES jobs(id),"
    " depends_on INTEGER NOT NULL REFERENCES jobs(id),"
    " PRIMARY KEY (job_id, depends_on));"
    "CREATE INDEX job_deps_on ON job_deps(depends_on);"
    "CREATE TABLE tasks ("
    " id INTEGER PRIMARY KEY, job_id INTEGER NOT NULL REFERENCES jobs(id),"
    " idx INTEGER NOT NULL, win0 INTEGER NOT NULL, n_windows INTEGER NOT NULL,"
    " state TEXT NOT NULL, lease_id TEXT, worker_id TEXT,"
    " attempts INTEGER NOT NULL DEFAULT 0,"
    " started_ns INTEGER NOT NULL DEFAULT 0, ended_ns INTEGER NOT NULL DEFAULT 0,"
    " output_path TEXT);"
    "CREATE INDEX tasks_job ON tasks(job_id, idx);"
    "CREATE INDEX tasks_worker ON tasks(worker_id, state);"
    "CREATE TABLE workers ("
    " id TEXT PRIMARY KEY, cores INTEGER NOT NULL, memory_mb INTEGER NOT NULL,"
    " gpus INTEGER NOT NULL, last_heartbeat_ns INTEGER NOT NULL, state TEXT NOT NULL);"
    "PRAGMA user_version = 1;";

struct st_state {
    sqlite3      *db;
    char         *path;
    sqlite3_stmt *q[Q_N];
};

static int code_of(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_NOMEM: return KILN_ENOMEM;
    case SQLITE_NOTADB:
    case SQLITE_CORRUPT: return KILN_EFORMAT;
    case SQLITE_CONSTRAINT:
    case SQLITE_MISMATCH:
    case SQLITE_RANGE:
    case SQLITE_TOOBIG: return KILN_EINVAL;
    case SQLITE_CANTOPEN:
    case SQLITE_IOERR:
    case SQLITE_FULL:
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_READONLY:
    case SQLITE_PERM:
    case SQLITE_PROTOCOL: return KILN_EIO;
    default: return KILN_EINTERNAL;
    }
}

/* Turns SQLite's rc and message into a kiln error naming path and op. */
static int sq_err(st_state_t *st, int rc, kiln_err_t *err, const char *op)
{
    const char *msg = st->db ? sqlite3_errmsg(st->db) : sqlite3_errstr(rc);
    return kiln_err_at(err, code_of(rc), st->path ? st->path : "", "%s: %s: %s",
                       st->path ? st->path : "(state)", op, msg);
}

/* Steps a statement that returns no rows, then resets it. */
static int run_done(st_state_t *st, sqlite3_stmt *s, kiln_err_t *err, const char *op)
{
    int rc = sqlite3_step(s);
    int ret = rc == SQLITE_DONE ? 0 : sq_err(st, rc, err, op);
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return ret;
}

static void end_stmt(sqlite3_stmt *s)
{
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
}

static int bind_text(sqlite3_stmt *s, int i, const char *v)
{
    return v ? sqlite3_bind_text(s, i, v, -1, SQLITE_STATIC) : sqlite3_bind_null(s, i);
}

/* Checks a bind's rc (only SQLITE_NOMEM / TOOBIG / RANGE can come back). */
#define BIND(expr, op)                                      \
    do {                                                    \
        int brc_ = (expr);                                  \
        if (brc_ != SQLITE_OK) {                            \
            int r_ = sq_err(st, brc_, err, op);             \
            end_stmt(s);                                    \
            return r_;                                      \
        }                                                   \
    } while (0)

static int nonempty(const char *v) { return v && v[0]; }

/* ---- open / close */

static int exec_sql(st_state_t *st, const char *sql, kiln_err_t *err, const char *op)
{
    int rc = sqlite3_exec(st->db, sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? 0 : sq_err(st, rc, err, op);
}

static int schema_ensure(st_state_t *st, kiln_err_t *err)
{
    sqlite3_stmt *s = NULL;
    int rc = sqlite3_prepare_v2(st->db, "PRAGMA user_version", -1, &s, NULL);
    if (rc != SQLITE_OK)
        return sq_err(st, rc, err, "reading schema version");
    rc = sqlite3_step(s);
    int version = rc == SQLITE_ROW ? sqlite3_column_int(s, 0) : -1;
    int ret = rc == SQLITE_ROW ? 0 : sq_err(st, rc, err, "reading schema version");
    sqlite3_finalize(s);
    if (ret < 0)
        return ret;
    if (version == ST_SCHEMA_VERSION)
        return 0;
    if (version != 0)
        return kiln_err_at(err, KILN_EUNSUPPORTED, st->path,
                           "%s: state schema version %d, this kiln reads version %d",
                           st->path, version, ST_SCHEMA_VERSION);
    if ((ret = exec_sql(st, "BEGIN IMMEDIATE", err, "creating schema")) < 0)
        return ret;
    /* Another process may have created it between our read and BEGIN. */
    rc = sqlite3_prepare_v2(st->db, "PRAGMA user_version", -1, &s, NULL);
    if (rc != SQLITE_OK) {
        ret = sq_err(st, rc, err, "reading schema version");
        goto fail;
    }
    rc = sqlite3_step(s);
    version = rc == SQLITE_ROW ? sqlite3_column_int(s, 0) : -1;
    if (rc != SQLITE_ROW)
        ret = sq_err(st, rc, err, "reading schema version");
    sqlite3_finalize(s);
    if (ret < 0)
        goto fail;
    if (version == 0 && (ret = exec_sql(st, schema_sql, err, "creating schema")) < 0)
        goto fail;
    if ((ret = exec_sql(st, "COMMIT", err, "creating schema")) < 0)
        goto fail;
    return 0;
fail:
    sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
    return ret;
}

int st_state_open(const char *path, st_state_t **out, kiln_err_t *err)
{
    return st_state_open_opts(path, NULL, out, err);
}

int st_state_open_opts(const char *path, const st_state_opts_t *opts, st_state_t **out,
                       kiln_err_t *err)
{
    if (!out)
        return kiln_err_set(err, KILN_EINVAL, "state store: no handle to open into");
    *out = NULL;
    if (!nonempty(path))
        return kiln_err_set(err, KILN_EINVAL, "state store: empty database path");
    pthread_once(&sq_once, sq_install);

    int ret;
    st_state_t *st = kiln_calloc(1, sizeof *st);
    if (!st)
        return kiln_err_set(err, KILN_ENOMEM, "%s: out of memory opening state store", path);
    if (!(st->path = kiln_strdup(path))) {
        ret = kiln_err_set(err, KILN_ENOMEM, "%s: out of memory opening state store", path);
        goto fail;
    }
    int rc = sqlite3_open_v2(path, &st->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE
                                                | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        ret = sq_err(st, rc, err, "opening");
        goto fail;
    }
    sqlite3_extended_result_codes(st->db, 1);
    int busy_ms = opts && opts->busy_timeout_ms > 0 ? opts->busy_timeout_ms : 5000;
    if ((rc = sqlite3_busy_timeout(st->db, busy_ms)) != SQLITE_OK) {
        ret = sq_err(st, rc, err, "setting busy timeout");
        goto fail;
    }
    /* journal_mode answers with a row; WAL survives in the file once set. */
    if ((ret = exec_sql(st, "PRAGMA journal_mode=WAL", err, "setting WAL mode")) < 0)
        goto fail;
    if ((ret = exec_sql(st, opts && opts->full_sync ? "PRAGMA synchronous=FULL"
                                                    : "PRAGMA synchronous=NORMAL",
                        err, "setting synchronous")) < 0)
        goto fail;
    if ((ret = exec_sql(st, "PRAGMA foreign_keys=ON", err, "enabling foreign keys")) < 0)
        goto fail;
    if ((ret = schema_ensure(st, err)) < 0)
        goto fail;
    for (int i = 0; i < Q_N; i++) {
        rc = sqlite3_prepare_v3(st->db, q_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &st->q[i], NULL);
        if (rc != SQLITE_OK) {
            ret = sq_err(st, rc, err, "preparing statements");
            goto fail;
        }
    }
    *out = st;
    return 0;
fail:
    st_state_close(&st);
    return ret;
}

void st_state_close(st_state_t **pst)
{
    if (!pst || !*pst)
        return;
    st_state_t *st = *pst;
    if (st->db && !sqlite3_get_autocommit(st->db))
        sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
    for (int i = 0; i < Q_N; i++)
        sqlite3_finalize(st->q[i]);
    sqlite3_close_v2(st->db);
    kiln_free(st->path);
    kiln_free(st);
    *pst = NULL;
}

/* ---- transactions */

int st_state_begin(st_state_t *st, kiln_err_t *err)
{
    if (!st)
        return kiln_err_set(err, KILN_EINVAL, "state store: NULL handle");
    return run_done(st, st->q[Q_BEGIN], err, "beginning transaction");
}

int st_state_commit(st_state_t *st, kiln_err_t *err)
{
    if (!st)
        return kiln_err_set(err, KILN_EINVAL, "state store: NULL handle");
    return run_done(st, st->q[Q_COMMIT], err, "committing transaction");
}

int st_state_rollback(st_state_t *st, kiln_err_t *err)
{
    if (!st)
        return kiln_err_set(err, KILN_EINVAL, "state store: NULL handle");
    return run_done(st, st->q[Q_ROLLBACK], err, "rolling back transaction");
}

/* A savepoint makes each multi-statement change atomic, in or out of a
 * caller's transaction. */
static int sp_begin(st_state_t *st, kiln_err_t *err)
{
    return run_done(st, st->q[Q_SAVEPOINT], err, "starting change");
}

static int sp_end(st_state_t *st, int ret, kiln_err_t *err)
{
    if (ret < 0) {
        kiln_err_t ignored;
        run_done(st, st->q[Q_ROLLBACK_TO], &ignored, "undoing change");
        run_done(st, st->q[Q_RELEASE], &ignored, "undoing change");
        return ret;
    }
    return run_done(st, st->q[Q_RELEASE], err, "finishing change");
}

/* ---- jobs */

static int job_insert_body(st_state_t *st, const st_state_job_t *job, int64_t *id,
                           int *existed, kiln_err_t *err)
{
    sqlite3_stmt *s;
    int rc;
    if (job->idempotency_key) {
        s = st->q[Q_JOB_BY_KEY];
        BIND(bind_text(s, 1, job->idempotency_key), "looking up idempotency key");
        rc = sqlite3_step(s);
        if (rc == SQLITE_ROW) {
            *id = sqlite3_column_int64(s, 0);
            *existed = 1;
            end_stmt(s);
            return 0;
        }
        int ret = rc == SQLITE_DONE ? 0 : sq_err(st, rc, err, "looking up idempotency key");
        end_stmt(s);
        if (ret < 0)
            return ret;
    }
    for (size_t i = 0; i < job->n_depends_on; i++) {
        s = st->q[Q_JOB_EXISTS];
        BIND(sqlite3_bind_int64(s, 1, job->depends_on[i]), "checking depends_on");
        rc = sqlite3_step(s);
        end_stmt(s);
        if (rc == SQLITE_DONE)
            return kiln_err_at(err, KILN_ENOTFOUND, "depends_on",
                               "job \"%s\": depends_on names job %lld, which does not exist",
                               job->name, (long long)job->depends_on[i]);
        if (rc != SQLITE_ROW)
            return sq_err(st, rc, err, "checking depends_on");
    }
    s = st->q[Q_JOB_INSERT];
    BIND(bind_text(s, 1, job->idempotency_key), "inserting job");
    BIND(bind_text(s, 2, job->project), "inserting job");
    BIND(bind_text(s, 3, job->name), "inserting job");
    BIND(bind_text(s, 4, job->type), "inserting job");
    BIND(sqlite3_bind_int(s, 5, job->priority), "inserting job");
    BIND(bind_text(s, 6, job->spec_json), "inserting job");
    BIND(sqlite3_bind_int(s, 7, job->max_retries), "inserting job");
    BIND(sqlite3_bind_int(s, 8, job->timeout_s), "inserting job");
    BIND(sqlite3_bind_int64(s, 9, job->submitted_ns), "inserting job");
    int ret = run_done(st, s, err, "inserting job");
    if (ret < 0)
        return ret;
    int64_t new_id = sqlite3_last_insert_rowid(st->db);
    for (size_t i = 0; i < job->n_depends_on; i++) {
        s = st->q[Q_DEP_INSERT];
        BIND(sqlite3_bind_int64(s, 1, new_id), "inserting depends_on");
        BIND(sqlite3_bind_int64(s, 2, job->depends_on[i]), "inserting depends_on");
        if ((ret = run_done(st, s, err, "inserting depends_on")) < 0)
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
        if (!nonempty(vals[i]))
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
    int ret = sp_begin(st, err);
    if (ret < 0)
        return ret;
    ret = job_insert_body(st, job, id, existed, err);
    return sp_end(st, ret, err);
}

/* Reads a job row (columns JOB_COLS) with borrowed strings. */
static int job_from_row(st_state_t *st, sqlite3_stmt *s, st_state_job_t *j, kiln_err_t *err)
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
    if (sqlite3_errcode(st->db) == SQLITE_NOMEM)
        return sq_err(st, SQLITE_NOMEM, err, "reading job");
    int i = status_lookup(state);
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
                end_stmt(s);
                return kiln_err_set(err, KILN_ENOMEM, "%s: out of memory reading job %lld",
                                    st->path, (long long)j->id);
            }
            j->depends_on = p;
            cap = ncap;
        }
        j->depends_on[j->n_depends_on++] = sqlite3_column_int64(s, 0);
    }
    int ret = rc == SQLITE_DONE ? 0 : sq_err(st, rc, err, "reading depends_on");
    end_stmt(s);
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
                      : sq_err(st, rc, err, "reading job");
        end_stmt(s);
        return ret;
    }
    st_state_job_t j;
    int ret = job_from_row(st, s, &j, err);
    if (ret == 0 && (dup_opt(&j.idempotency_key) | dup_opt(&j.project) | dup_opt(&j.name)
                     | dup_opt(&j.type) | dup_opt(&j.spec_json) | dup_opt(&j.reason_code)
                     | dup_opt(&j.reason_text))) {
        /* Fields that failed are NULL; the others are ours to free. */
        end_stmt(s);
        st_state_job_free(&j);
        return kiln_err_set(err, KILN_ENOMEM, "%s: out of memory reading job %lld", st->path,
                            (long long)id);
    }
    end_stmt(s);
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
    if (!st || !cb)
        return kiln_err_set(err, KILN_EINVAL, "job list: NULL argument");
    if (state && !st_state_status_name(*state))
        return kiln_err_set(err, KILN_EINVAL, "job list: unknown state %d", (int)*state);
    sqlite3_stmt *s = st->q[Q_JOB_LIST];
    BIND(bind_text(s, 1, state ? st_state_status_name(*state) : NULL), "listing jobs");
    BIND(bind_text(s, 2, project), "listing jobs");
    int rc, ret = 0;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        st_state_job_t j;
        if ((ret = job_from_row(st, s, &j, err)) < 0)
            break;
        if (cb(&j, ud))
            break;
    }
    if (ret == 0 && rc != SQLITE_ROW && rc != SQLITE_DONE)
        ret = sq_err(st, rc, err, "listing jobs");
    end_stmt(s);
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
                      : sq_err(st, rc, err, "reading job state");
        end_stmt(s);
        return ret;
    }
    int cur = status_lookup((const char *)sqlite3_column_text(s, 0));
    end_stmt(s);
    if (cur < 0)
        return kiln_err_at(err, KILN_EFORMAT, st->path, "%s: job %lld has an unknown state",
                           st->path, (long long)id);
    if (st_state_status_is_final((st_state_status_t)cur))
        return kiln_err_set(err, KILN_EINVAL, "job %lld is already %s (final); it cannot become %s",
                            (long long)id, status_names[cur], status_names[state]);
    s = st->q[Q_JOB_SET_STATE];
    BIND(sqlite3_bind_int64(s, 1, id), "setting job state");
    BIND(bind_text(s, 2, status_names[state]), "setting job state");
    BIND(bind_text(s, 3, reason_code), "setting job state");
    BIND(bind_text(s, 4, reason_text), "setting job state");
    BIND(sqlite3_bind_int64(s, 5, now_ns), "setting job state");
    BIND(sqlite3_bind_int(s, 6, st_state_status_is_final(state)), "setting job state");
    return run_done(st, s, err, "setting job state");
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
    int ret = sp_begin(st, err);
    if (ret < 0)
        return ret;
    ret = job_set_state_body(st, id, state, reason_code, reason_text, now_ns, err);
    return sp_end(st, ret, err);
}

int st_state_job_count(st_state_t *st, st_state_status_t state, int64_t *n, kiln_err_t *err)
{
    if (!st || !n)
        return kiln_err_set(err, KILN_EINVAL, "job count: NULL argument");
    if (!st_state_status_name(state))
        return kiln_err_set(err, KILN_EINVAL, "job count: unknown state %d", (int)state);
    sqlite3_stmt *s = st->q[Q_JOB_COUNT];
    BIND(bind_text(s, 1, status_names[state]), "counting jobs");
    int rc = sqlite3_step(s);
    int ret = 0;
    if (rc == SQLITE_ROW)
        *n = sqlite3_column_int64(s, 0);
    else
        ret = sq_err(st, rc, err, "counting jobs");
    end_stmt(s);
    return ret;
}

/* ---- tasks */

int st_state_task_insert(st_state_t *st, int64_t job_id, int idx, int64_t win0, int64_t n_windows,
                         int64_t *id, kiln_err_t *err)
{
    if (!st)
        return kiln_err_set(err, KILN_EINVAL, "task insert: NULL handle");
    if (idx < 0 || win0 < 0 || n_windows <= 0)
        return kiln_err_set(err, KILN_EINVAL,
                            "job %lld task %d: bad window range (win0 %lld, n_windows %lld)",
                            (long long)job_id, idx, (long long)win0, (long long)n_windows);
    sqlite3_stmt *s = st->q[Q_TASK_INSERT];
    BIND(sqlite3_bind_int64(s, 1, job_id), "inserting task");
    BIND(sqlite3_bind_int(s, 2, idx), "inserting task");
    BIND(sqlite3_bind_int64(s, 3, win0), "inserting task");
    BIND(sqlite3_bind_int64(s, 4, n_windows), "inserting task");
    int rc = sqlite3_step(s);
    end_stmt(s);
    if (rc == SQLITE_CONSTRAINT_FOREIGNKEY)
        return kiln_err_set(err, KILN_ENOTFOUND, "task %d: job %lld does not exist", idx,
                            (long long)job_id);
    if (rc != SQLITE_DONE)
        return sq_err(st, rc, err, "inserting task");
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
        ret = sq_err(st, rc, err, "reading task");
    } else {
        const char *state = (const char *)sqlite3_column_text(s, 0);
        const char *lease = (const char *)sqlite3_column_text(s, 1);
        if (lease_id && state && strcmp(state, "running") == 0)
            ret = kiln_err_set(err, KILN_EINVAL,
                               "task %lld: stale lease \"%s\" refused (the task now runs under "
                               "lease \"%s\"); %s ignored",
                               (long long)id, lease_id, lease ? lease : "", what);
        else if (lease_id)
            ret = kiln_err_set(err, KILN_EINVAL,
                               "task %lld: stale lease \"%s\" refused (the task is %s); %s ignored",
                               (long long)id, lease_id, state ? state : "?", what);
        else
            ret = kiln_err_set(err, KILN_EINVAL, "task %lld is %s, not queued; cannot %s",
                               (long long)id, state ? state : "?", what);
    }
    end_stmt(s);
    return ret;
}

int st_state_task_claim(st_state_t *st, int64_t id, const char *lease_id, const char *worker_id,
                        int64_t now_ns, kiln_err_t *err)
{
    if (!st)
        return kiln_err_set(err, KILN_EINVAL, "task claim: NULL handle");
    if (!nonempty(lease_id) || !nonempty(worker_id))
        return kiln_err_set(err, KILN_EINVAL, "task %lld: claim needs a lease id and a worker id",
                            (long long)id);
    sqlite3_stmt *s = st->q[Q_TASK_CLAIM];
    BIND(sqlite3_bind_int64(s, 1, id), "claiming task");
    BIND(bind_text(s, 2, lease_id), "claiming task");
    BIND(bind_text(s, 3, worker_id), "claiming task");
    BIND(sqlite3_bind_int64(s, 4, now_ns), "claiming task");
    int ret = run_done(st, s, err, "claiming task");
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
    if (!nonempty(lease_id))
        return kiln_err_set(err, KILN_EINVAL, "task %lld: finish needs a lease id", (long long)id);
    if (state != ST_STATE_SUCCEEDED && state != ST_STATE_FAILED)
        return kiln_err_set(err, KILN_EINVAL,
                            "task %lld: a task finishes as succeeded or failed, not %s",
                            (long long)id, st_state_status_name(state) ? status_names[state] : "?");
    sqlite3_stmt *s = st->q[Q_TASK_FINISH];
    BIND(sqlite3_bind_int64(s, 1, id), "finishing task");
    BIND(bind_text(s, 2, lease_id), "finishing task");
    BIND(bind_text(s, 3, status_names[state]), "finishing task");
    BIND(bind_text(s, 4, output_path), "finishing task");
    BIND(sqlite3_bind_int64(s, 5, now_ns), "finishing task");
    int ret = run_done(st, s, err, "finishing task");
    if (ret < 0)
        return ret;
    return sqlite3_changes(st->db) == 1 ? 0 : task_refusal(st, id, lease_id, "finish", err);
}

int st_state_task_requeue_worker(st_state_t *st, const char *worker_id, int64_t *n,
                                 kiln_err_t *err)
{
    if (!st || !nonempty(worker_id))
        return kiln_err_set(err, KILN_EINVAL, "task requeue: NULL handle or empty worker id");
    sqlite3_stmt *s = st->q[Q_TASK_REQUEUE];
    BIND(bind_text(s, 1, worker_id), "requeueing tasks");
    int ret = run_done(st, s, err, "requeueing tasks");
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
        int state = status_lookup((const char *)sqlite3_column_text(s, 5));
        t.lease_id = (char *)sqlite3_column_text(s, 6);
        t.worker_id = (char *)sqlite3_column_text(s, 7);
        t.attempts = sqlite3_column_int(s, 8);
        t.started_ns = sqlite3_column_int64(s, 9);
        t.ended_ns = sqlite3_column_int64(s, 10);
        t.output_path = (char *)sqlite3_column_text(s, 11);
        if (sqlite3_errcode(st->db) == SQLITE_NOMEM) {
            ret = sq_err(st, SQLITE_NOMEM, err, "listing tasks");
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
        ret = sq_err(st, rc, err, "listing tasks");
    end_stmt(s);
    return ret;
}

/* ---- workers */

int st_state_worker_hello(st_state_t *st, const char *id, int cores, int64_t memory_mb, int gpus,
                          int64_t now_ns, kiln_err_t *err)
{
    if (!st || !nonempty(id))
        return kiln_err_set(err, KILN_EINVAL, "worker hello: NULL handle or empty worker id");
    if (cores <= 0 || memory_mb < 0 || gpus < 0)
        return kiln_err_set(err, KILN_EINVAL,
                            "worker \"%s\": bad resources (cores %d, memory_mb %lld, gpus %d)",
                            id, cores, (long long)memory_mb, gpus);
    sqlite3_stmt *s = st->q[Q_WORKER_HELLO];
    BIND(bind_text(s, 1, id), "registering worker");
    BIND(sqlite3_bind_int(s, 2, cores), "registering worker");
    BIND(sqlite3_bind_int64(s, 3, memory_mb), "registering worker");
    BIND(sqlite3_bind_int(s, 4, gpus), "registering worker");
    BIND(sqlite3_bind_int64(s, 5, now_ns), "registering worker");
    return run_done(st, s, err, "registering worker");
}

static int worker_update(st_state_t *st, int q, const char *id, int64_t now_ns, kiln_err_t *err,
                         const char *op)
{
    if (!st || !nonempty(id))
        return kiln_err_set(err, KILN_EINVAL, "%s: NULL handle or empty worker id", op);
    sqlite3_stmt *s = st->q[q];
    BIND(bind_text(s, 1, id), op);
    if (q == Q_WORKER_BEAT)
        BIND(sqlite3_bind_int64(s, 2, now_ns), op);
    int ret = run_done(st, s, err, op);
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
    if (!st || !nonempty(id) || !out)
        return kiln_err_set(err, KILN_EINVAL, "worker get: NULL argument or empty worker id");
    sqlite3_stmt *s = st->q[Q_WORKER_GET];
    BIND(bind_text(s, 1, id), "reading worker");
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
        ret = sq_err(st, rc, err, "reading worker");
    }
    end_stmt(s);
    return ret;
}
