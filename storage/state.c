/* state.c - the scheduler's durable state in SQLite (WAL): every statement
 * is prepared once on the handle and bound with values (never formatted),
 * and every SQLite error becomes a KILN_E code naming the path and the
 * operation.  SQLite's heap goes through kiln_alloc, so the failure
 * injection of the tests reaches inside SQLite too. */
#include "storage/state_int.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>

#include "core/kiln_alloc.h"
#include "storage/fleets.h"

#define ST_SCHEMA_VERSION 10

static const char *const status_names[ST_STATE_N_STATUS] = {
    "queued", "running", "succeeded", "failed", "cancelled", "timeout", "node_fail",
    "out_of_memory",
};

const char *st_state_status_name(st_state_status_t s)
{
    return (unsigned)s < ST_STATE_N_STATUS ? status_names[s] : NULL;
}

int st_sq_status_lookup(const char *name)
{
    for (int i = 0; name && i < ST_STATE_N_STATUS; i++)
        if (strcmp(name, status_names[i]) == 0)
            return i;
    return -1;
}

int st_state_status_parse(const char *name, st_state_status_t *out, kiln_err_t *err)
{
    int i = st_sq_status_lookup(name);
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


#define JOB_COLS "id, idempotency_key, project, name, type, priority, spec_json, state, " \
                 "reason_code, reason_text, attempts, max_retries, timeout_s, "           \
                 "submitted_ns, started_ns, ended_ns, array_parent, array_index, "        \
                 "scheduled_by, scheduled_for_ns"
#define RUN_COLS "id, job_id, model_name, kind, params_json, seed, dataset_sha256, "   \
                 "featspec_sha256, code_version, metrics_json, duration_s, accepted, "     \
                 "artifact_sha256, created_ns"
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
                     "state, attempts, max_retries, timeout_s, submitted_ns, started_ns, ended_ns, "
                     "array_parent, array_index, scheduled_by, scheduled_for_ns) "
                     "VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'queued', 0, ?7, ?8, ?9, 0, 0, ?10, ?11, "
                     "?12, ?13)",
    [Q_DEP_INSERT] = "INSERT OR IGNORE INTO job_deps (job_id, depends_on) VALUES (?1, ?2)",
    [Q_JOB_EXISTS] = "SELECT 1 FROM jobs WHERE id = ?1",
    [Q_JOB_GET] = "SELECT " JOB_COLS " FROM jobs WHERE id = ?1",
    [Q_DEPS_GET] = "SELECT depends_on FROM job_deps WHERE job_id = ?1 ORDER BY depends_on",
    [Q_JOB_LIST] = "SELECT " JOB_COLS " FROM jobs WHERE (?1 IS NULL OR state = ?1) "
                   "AND (?2 IS NULL OR project = ?2) ORDER BY CASE WHEN ?3 THEN -id ELSE id END "
                   "LIMIT ?4",
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
    [Q_TASK_REQUEUE_ONE] = "UPDATE tasks SET state = 'queued', lease_id = NULL, worker_id = NULL, "
                           "attempts = attempts + 1, started_ns = 0 "
                           "WHERE id = ?1 AND state = 'running' AND lease_id = ?2",
    [Q_TASK_CANCEL_JOB] = "UPDATE tasks SET state = 'cancelled', lease_id = NULL, ended_ns = ?2 "
                          "WHERE job_id = ?1 AND state IN ('queued', 'running')",
    [Q_JOB_SET_ATTEMPTS] = "UPDATE jobs SET attempts = ?2 WHERE id = ?1",
    [Q_RUN_INSERT] = "INSERT INTO runs (job_id, model_name, kind, params_json, seed, "
                     "dataset_sha256, featspec_sha256, code_version, metrics_json, duration_s, "
                     "accepted, artifact_sha256, created_ns) "
                     "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
    [Q_RUN_GET] = "SELECT " RUN_COLS " FROM runs WHERE id = ?1",
    [Q_RUN_LIST] = "SELECT " RUN_COLS " FROM runs WHERE (?1 IS NULL OR model_name = ?1) "
                   "ORDER BY id DESC LIMIT ?2",
    [Q_MODEL_NEXT] = "SELECT coalesce(max(version), 0) + 1 FROM models WHERE name = ?1",
    [Q_MODEL_INSERT] = "INSERT INTO models (name, version, run_id, artifact_sha256, created_ns) "
                       "VALUES (?1, ?2, ?3, ?4, ?5)",
    [Q_MODEL_GET] = "SELECT m.name, m.version, m.run_id, m.artifact_sha256, m.created_ns "
                    "FROM models m WHERE m.name = ?1 AND m.version = ?2",
    [Q_MODEL_LATEST] = "SELECT max(version) FROM models WHERE name = ?1",
    [Q_MODEL_LIST] = "SELECT name, max(version), count(*) FROM models GROUP BY name ORDER BY name",
    [Q_ALIAS_GET] = "SELECT version FROM aliases WHERE name = ?1 AND alias = ?2",
    [Q_ALIAS_SET] = "INSERT INTO aliases (name, alias, version, set_ns) VALUES (?1, ?2, ?3, ?4) "
                    "ON CONFLICT(name, alias) DO UPDATE SET version = excluded.version, "
                    "set_ns = excluded.set_ns",
    [Q_ALIAS_HIST_ADD] = "INSERT INTO alias_history (name, alias, version, set_ns) "
                         "VALUES (?1, ?2, ?3, ?4)",
    [Q_ALIAS_HIST_LAST] = "SELECT id, version FROM alias_history WHERE name = ?1 AND alias = ?2 "
                          "ORDER BY id DESC LIMIT 2",
    [Q_ALIAS_HIST_DEL] = "DELETE FROM alias_history WHERE id = ?1",
    [Q_ALIAS_LIST] = "SELECT alias, version FROM aliases WHERE name = ?1 ORDER BY alias",
    [Q_JOB_INSTANCES] = "SELECT state, count(*) FROM jobs WHERE array_parent = ?1 GROUP BY state",
    [Q_JOB_CHILDREN] = "SELECT " JOB_COLS " FROM jobs WHERE array_parent = ?1 "
                       "ORDER BY array_index, id",
    [Q_CACHE_PUT] = "INSERT OR REPLACE INTO step_cache (job_id, key, output, output_digest, "
                    "created_ns) VALUES (?1, ?2, ?3, NULL, ?4)",
    [Q_CACHE_DONE] = "UPDATE step_cache SET output_digest = ?2 WHERE job_id = ?1",
    [Q_CACHE_FIND] = "SELECT job_id, output, output_digest FROM step_cache "
                     "WHERE key = ?1 AND output_digest IS NOT NULL ORDER BY job_id DESC LIMIT 1",
    [Q_TASK_LIST] = "SELECT " TASK_COLS " FROM tasks WHERE job_id = ?1 ORDER BY idx, id",
    [Q_SCHED_PUT] = "INSERT INTO schedules (job_id, expr, next_run_ns, runs, skipped) "
                    "VALUES (?1, ?2, ?3, 0, 0)",
    [Q_SCHED_GET] = "SELECT expr, next_run_ns, runs, skipped FROM schedules WHERE job_id = ?1",
    [Q_SCHED_SET] = "UPDATE schedules SET next_run_ns = ?2, runs = ?3, skipped = ?4 "
                    "WHERE job_id = ?1",
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

/* The model registry (state_models.c): training runs, model versions under
 * a name, aliases and the history that rollback walks back. */
#define REGISTRY_SQL                                                              \
    "CREATE TABLE runs ("                                                         \
    " id INTEGER PRIMARY KEY, job_id INTEGER NOT NULL DEFAULT 0,"                 \
    " model_name TEXT NOT NULL, kind TEXT NOT NULL, params_json TEXT NOT NULL,"   \
    " seed INTEGER NOT NULL, dataset_sha256 TEXT NOT NULL,"                       \
    " featspec_sha256 TEXT NOT NULL, code_version TEXT NOT NULL,"                 \
    " metrics_json TEXT NOT NULL, duration_s REAL NOT NULL,"                      \
    " accepted INTEGER NOT NULL, artifact_sha256 TEXT NOT NULL,"                  \
    " created_ns INTEGER NOT NULL);"                                              \
    "CREATE INDEX runs_model ON runs(model_name);"                                \
    "CREATE TABLE models ("                                                       \
    " name TEXT NOT NULL, version INTEGER NOT NULL,"                              \
    " run_id INTEGER NOT NULL REFERENCES runs(id),"                               \
    " artifact_sha256 TEXT NOT NULL, created_ns INTEGER NOT NULL,"                \
    " PRIMARY KEY (name, version));"                                              \
    "CREATE TABLE aliases ("                                                      \
    " name TEXT NOT NULL, alias TEXT NOT NULL, version INTEGER NOT NULL,"         \
    " set_ns INTEGER NOT NULL, PRIMARY KEY (name, alias));"                       \
    "CREATE TABLE alias_history ("                                                \
    " id INTEGER PRIMARY KEY, name TEXT NOT NULL, alias TEXT NOT NULL,"           \
    " version INTEGER NOT NULL, set_ns INTEGER NOT NULL);"

/* Recurring jobs (scheduler/cron.h): a template's schedule and its next
 * fire time; an instance names its template and the fire time it was made
 * for, unique together, so no fire time can make two instances. */
#define SCHEDULE_SQL                                                              \
    "CREATE TABLE schedules ("                                                    \
    " job_id INTEGER PRIMARY KEY REFERENCES jobs(id), expr TEXT NOT NULL,"        \
    " next_run_ns INTEGER NOT NULL, runs INTEGER NOT NULL DEFAULT 0,"             \
    " skipped INTEGER NOT NULL DEFAULT 0);"                                       \
    "CREATE UNIQUE INDEX jobs_scheduled ON jobs(scheduled_by, scheduled_for_ns)"  \
    " WHERE scheduled_by != 0;"

/* Pipeline steps' cache (state_cache.c): a step job's key (its spec and its
 * inputs' digests) when it was planned; its output's digest once it
 * succeeded.  A later step with the same key and an output still holding
 * that digest is skipped. */
#define STEP_CACHE_SQL                                                            \
    "CREATE TABLE step_cache ("                                                   \
    " job_id INTEGER PRIMARY KEY REFERENCES jobs(id), key TEXT NOT NULL,"         \
    " output TEXT NOT NULL, output_digest TEXT, created_ns INTEGER NOT NULL);"    \
    "CREATE INDEX step_cache_key ON step_cache(key);"

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
    " ended_ns INTEGER NOT NULL DEFAULT 0,"
    " array_parent INTEGER NOT NULL DEFAULT 0, array_index INTEGER NOT NULL DEFAULT -1,"
    " scheduled_by INTEGER NOT NULL DEFAULT 0, scheduled_for_ns INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX jobs_state ON jobs(state);"
    "CREATE INDEX jobs_project ON jobs(project);"
    "CREATE INDEX jobs_array ON jobs(array_parent) WHERE array_parent != 0;"
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
    "CREATE TABLE workers ("
    " id TEXT PRIMARY KEY, cores INTEGER NOT NULL, memory_mb INTEGER NOT NULL,"
    " gpus INTEGER NOT NULL, last_heartbeat_ns INTEGER NOT NULL, state TEXT NOT NULL);"
    REGISTRY_SQL
    SCHEDULE_SQL
    STEP_CACHE_SQL
    "PRAGMA user_version = 5;";

/* Version 1 -> 2: job arrays. */
static const char migrate_1_2_sql[] =
    "ALTER TABLE jobs ADD COLUMN array_parent INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE jobs ADD COLUMN array_index INTEGER NOT NULL DEFAULT -1;"
    "CREATE INDEX jobs_array ON jobs(array_parent) WHERE array_parent != 0;"
    "PRAGMA user_version = 2;";

/* Version 2 -> 3: the model registry. */
static const char migrate_2_3_sql[] = REGISTRY_SQL "PRAGMA user_version = 3;";

/* Version 3 -> 4: recurring jobs.  Existing jobs are neither templates nor
 * instances (the defaults). */
static const char migrate_3_4_sql[] =
    "ALTER TABLE jobs ADD COLUMN scheduled_by INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE jobs ADD COLUMN scheduled_for_ns INTEGER NOT NULL DEFAULT 0;"
    SCHEDULE_SQL
    "PRAGMA user_version = 4;";

/* Version 4 -> 5: pipelines' step cache. */
static const char migrate_4_5_sql[] = STEP_CACHE_SQL "PRAGMA user_version = 5;";

/* Version 5 -> 6 (also run after a fresh schema_sql): drift jobs.  A run
 * remembers the path it trained on (a drift job's reference by model), and
 * drift_results holds each drift job's verdict (storage/drift_results.h). */
static const char migrate_5_6_sql[] =
    "ALTER TABLE runs ADD COLUMN input_path TEXT NOT NULL DEFAULT '';"
    "CREATE TABLE drift_results ("
    " job_id INTEGER PRIMARY KEY, model_name TEXT NOT NULL DEFAULT '',"
    " model_version INTEGER NOT NULL DEFAULT 0, created_ns INTEGER NOT NULL,"
    " drifted INTEGER NOT NULL, share REAL NOT NULL, n_columns INTEGER NOT NULL,"
    " n_drifted INTEGER NOT NULL, child_job_id INTEGER NOT NULL DEFAULT 0,"
    " columns_json TEXT NOT NULL, result_json TEXT NOT NULL);"
    "CREATE INDEX drift_results_model ON drift_results(model_name, created_ns);"
    "PRAGMA user_version = 6;";

/* Version 6 -> 7 (also run after a fresh schema_sql): edge fleets, their
 * devices, enrollment tokens and rollouts (storage/fleets.h).  IF NOT
 * EXISTS: a store some test downgraded by its version number alone keeps
 * these tables. */
static const char migrate_6_7_sql[] = ST_FLEETS_SQL "PRAGMA user_version = 7;";

/* Version 7 -> 8: the per-fleet publication counter (fleets.h). */
static const char migrate_7_8_sql[] = ST_FLEET_SEQ_SQL "PRAGMA user_version = 8;";

/* Version 8 -> 9 -> 10: the columns of ST_V10_COLUMNS (fleets.h), each
 * added only where it is missing: version 9 stores have the first of them,
 * and a store whose version number alone was lowered keeps its tables as
 * they were. */
typedef struct {
    const char *table, *column, *decl;
} column_add_t;

#define V10_ENTRY(t, c, d) {t, c, d},
static const column_add_t v10_columns[] = {ST_V10_COLUMNS(V10_ENTRY)};
#undef V10_ENTRY

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
int st_sq_err(st_state_t *st, int rc, kiln_err_t *err, const char *op)
{
    const char *msg = st->db ? sqlite3_errmsg(st->db) : sqlite3_errstr(rc);
    return kiln_err_at(err, code_of(rc), st->path ? st->path : "", "%s: %s: %s",
                       st->path ? st->path : "(state)", op, msg);
}

/* Steps a statement that returns no rows, then resets it. */
int st_sq_run_done(st_state_t *st, sqlite3_stmt *s, kiln_err_t *err, const char *op)
{
    int rc = sqlite3_step(s);
    int ret = rc == SQLITE_DONE ? 0 : st_sq_err(st, rc, err, op);
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return ret;
}

void st_sq_end_stmt(sqlite3_stmt *s)
{
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
}

int st_sq_each_row(st_state_t *st, sqlite3_stmt *s, st_sq_row_fn row, void *ctx,
                   kiln_err_t *err, const char *op)
{
    int rc, ret = 0;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW)
        if (row(s, ctx))
            break;
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        ret = st_sq_err(st, rc, err, op);
    st_sq_end_stmt(s);
    return ret;
}

int st_sq_bind_text(sqlite3_stmt *s, int i, const char *v)
{
    return v ? sqlite3_bind_text(s, i, v, -1, SQLITE_STATIC) : sqlite3_bind_null(s, i);
}



/* ---- open / close */

static int exec_sql(st_state_t *st, const char *sql, kiln_err_t *err, const char *op)
{
    int rc = sqlite3_exec(st->db, sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? 0 : st_sq_err(st, rc, err, op);
}

/* 1 when table has the column, 0 when not, < 0 on error. */
static int has_column(st_state_t *st, const char *table, const char *column, kiln_err_t *err)
{
    sqlite3_stmt *s = NULL;
    char sql[128];
    snprintf(sql, sizeof sql, "PRAGMA table_info(%s)", table);
    int rc = sqlite3_prepare_v2(st->db, sql, -1, &s, NULL);
    if (rc != SQLITE_OK)
        return st_sq_err(st, rc, err, "reading the schema");
    int found = 0;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW)
        found |= !strcmp((const char *)sqlite3_column_text(s, 1), column);
    sqlite3_finalize(s);
    return rc == SQLITE_DONE ? found : st_sq_err(st, rc, err, "reading the schema");
}

static int schema_ensure(st_state_t *st, kiln_err_t *err)
{
    sqlite3_stmt *s = NULL;
    int rc = sqlite3_prepare_v2(st->db, "PRAGMA user_version", -1, &s, NULL);
    if (rc != SQLITE_OK)
        return st_sq_err(st, rc, err, "reading schema version");
    rc = sqlite3_step(s);
    int version = rc == SQLITE_ROW ? sqlite3_column_int(s, 0) : -1;
    int ret = rc == SQLITE_ROW ? 0 : st_sq_err(st, rc, err, "reading schema version");
    sqlite3_finalize(s);
    if (ret < 0)
        return ret;
    if (version == ST_SCHEMA_VERSION)
        return 0;
    if (version < 0 || version > ST_SCHEMA_VERSION)
        return kiln_err_at(err, KILN_EUNSUPPORTED, st->path,
                           "%s: state schema version %d, this kiln reads version %d",
                           st->path, version, ST_SCHEMA_VERSION);
    if ((ret = exec_sql(st, "BEGIN IMMEDIATE", err, "creating schema")) < 0)
        return ret;
    /* Another process may have created it between our read and BEGIN. */
    rc = sqlite3_prepare_v2(st->db, "PRAGMA user_version", -1, &s, NULL);
    if (rc != SQLITE_OK) {
        ret = st_sq_err(st, rc, err, "reading schema version");
        goto fail;
    }
    rc = sqlite3_step(s);
    version = rc == SQLITE_ROW ? sqlite3_column_int(s, 0) : -1;
    if (rc != SQLITE_ROW)
        ret = st_sq_err(st, rc, err, "reading schema version");
    sqlite3_finalize(s);
    if (ret < 0)
        goto fail;
    if (version == 0 && (ret = exec_sql(st, schema_sql, err, "creating schema")) < 0)
        goto fail;
    if (version == 1 && (ret = exec_sql(st, migrate_1_2_sql, err, "upgrading schema")) < 0)
        goto fail;
    if (version >= 1 && version <= 2 &&
        (ret = exec_sql(st, migrate_2_3_sql, err, "upgrading schema")) < 0)
        goto fail;
    if (version >= 1 && version <= 3 &&
        (ret = exec_sql(st, migrate_3_4_sql, err, "upgrading schema")) < 0)
        goto fail;
    if (version >= 1 && version <= 4 &&
        (ret = exec_sql(st, migrate_4_5_sql, err, "upgrading schema")) < 0)
        goto fail;
    if (version <= 5 && (ret = exec_sql(st, migrate_5_6_sql, err, "upgrading schema")) < 0)
        goto fail;
    if (version <= 6 && (ret = exec_sql(st, migrate_6_7_sql, err, "upgrading schema")) < 0)
        goto fail;
    if (version <= 7 && (ret = exec_sql(st, migrate_7_8_sql, err, "upgrading schema")) < 0)
        goto fail;
    for (size_t i = 0; version <= 9 && i < sizeof v10_columns / sizeof v10_columns[0]; i++) {
        const column_add_t *c = &v10_columns[i];
        char sql[256];
        snprintf(sql, sizeof sql, "ALTER TABLE %s ADD COLUMN %s %s;", c->table, c->column,
                 c->decl);
        if ((ret = has_column(st, c->table, c->column, err)) < 0 ||
            (ret == 0 && (ret = exec_sql(st, sql, err, "upgrading schema")) < 0))
            goto fail;
    }
    if (version <= 9 && (ret = exec_sql(st, "PRAGMA user_version = 10;", err,
                                        "upgrading schema")) < 0)
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
    if (!st_sq_nonempty(path))
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
        ret = st_sq_err(st, rc, err, "opening");
        goto fail;
    }
    sqlite3_extended_result_codes(st->db, 1);
    int busy_ms = opts && opts->busy_timeout_ms > 0 ? opts->busy_timeout_ms : 5000;
    if ((rc = sqlite3_busy_timeout(st->db, busy_ms)) != SQLITE_OK) {
        ret = st_sq_err(st, rc, err, "setting busy timeout");
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
            ret = st_sq_err(st, rc, err, "preparing statements");
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
    for (int i = 0; i < ST_FQ_MAX; i++)
        sqlite3_finalize(st->fq[i]);
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
    return st_sq_run_done(st, st->q[Q_BEGIN], err, "beginning transaction");
}

int st_state_commit(st_state_t *st, kiln_err_t *err)
{
    if (!st)
        return kiln_err_set(err, KILN_EINVAL, "state store: NULL handle");
    return st_sq_run_done(st, st->q[Q_COMMIT], err, "committing transaction");
}

int st_state_rollback(st_state_t *st, kiln_err_t *err)
{
    if (!st)
        return kiln_err_set(err, KILN_EINVAL, "state store: NULL handle");
    return st_sq_run_done(st, st->q[Q_ROLLBACK], err, "rolling back transaction");
}

/* A savepoint makes each multi-statement change atomic, in or out of a
 * caller's transaction. */
int st_sq_sp_begin(st_state_t *st, kiln_err_t *err)
{
    return st_sq_run_done(st, st->q[Q_SAVEPOINT], err, "starting change");
}

int st_sq_sp_end(st_state_t *st, int ret, kiln_err_t *err)
{
    if (ret < 0) {
        kiln_err_t ignored;
        st_sq_run_done(st, st->q[Q_ROLLBACK_TO], &ignored, "undoing change");
        st_sq_run_done(st, st->q[Q_RELEASE], &ignored, "undoing change");
        return ret;
    }
    return st_sq_run_done(st, st->q[Q_RELEASE], err, "finishing change");
}
