/* state.h - the scheduler's durable state store: jobs, their dependencies,
 * tasks with leases, and workers, in one SQLite database in WAL mode.
 * One thread owns a handle (the scheduler's loop); callers group a loop
 * turn's changes into one transaction with st_state_begin/commit, since one
 * commit per change caps throughput at the disk's sync rate. */
#ifndef ST_STATE_H
#define ST_STATE_H

#include <stddef.h>
#include <stdint.h>

#include "core/kiln_err.h"

/* Job (and task) states, as Slurm users know them.  Stored by name. */
typedef enum {
    ST_STATE_QUEUED = 0,
    ST_STATE_RUNNING,
    ST_STATE_SUCCEEDED,
    ST_STATE_FAILED,
    ST_STATE_CANCELLED,
    ST_STATE_TIMEOUT,
    ST_STATE_NODE_FAIL,
    ST_STATE_OUT_OF_MEMORY,
    ST_STATE_N_STATUS
} st_state_status_t;

/* "queued", "running", ...; NULL for a value outside the enum. */
const char *st_state_status_name(st_state_status_t s);
/* Parses a state name; unknown names give KILN_EINVAL naming the text. */
int st_state_status_parse(const char *name, st_state_status_t *out, kiln_err_t *err);
/* 1 for succeeded, failed, cancelled, timeout, node_fail, out_of_memory. */
int st_state_status_is_final(st_state_status_t s);

typedef struct st_state st_state_t;

typedef struct {
    int full_sync;          /* 1: PRAGMA synchronous=FULL; 0: NORMAL (safe against kill -9) */
    int busy_timeout_ms;    /* <= 0: 5000 */
} st_state_opts_t;

/* A job.  From st_state_job_get every string and depends_on are owned by
 * the struct (free with st_state_job_free); in a list callback they are
 * borrowed and valid only during the call, and depends_on is not loaded. */
typedef struct {
    int64_t id;
    char   *idempotency_key;    /* NULL if none */
    char   *project;
    char   *name;
    char   *type;
    int     priority;
    char   *spec_json;
    st_state_status_t state;
    char   *reason_code;        /* NULL if none */
    char   *reason_text;        /* NULL if none */
    int     attempts;
    int     max_retries;
    int     timeout_s;          /* 0: no limit */
    int64_t submitted_ns, started_ns, ended_ns;   /* 0: not yet */
    int64_t *depends_on;
    size_t   n_depends_on;
    int64_t  array_parent;      /* 0, or the array job this is an instance of */
    int64_t  array_index;       /* the instance's index (-1 when not an instance) */
    int64_t  scheduled_by;      /* 0, or the recurring job (template) that made this one */
    int64_t  scheduled_for_ns;  /* the template's fire time this instance is for (0: none) */
} st_state_job_t;

/* A recurring job's schedule (the template's row in `schedules`). */
typedef struct {
    char   *expr;               /* the cron expression, owned (st_state_schedule_free) */
    int64_t next_run_ns;        /* the next fire time not yet handled */
    int64_t runs;               /* instances made so far */
    int64_t skipped;            /* fire times skipped (an instance was still unfinished) */
} st_state_schedule_t;

/* A task: one shard of a job (a window range).  Strings owned as for jobs. */
typedef struct {
    int64_t id;
    int64_t job_id;
    int     idx;
    int64_t win0;
    int64_t n_windows;
    st_state_status_t state;    /* queued, running, succeeded, failed, cancelled */
    char   *lease_id;           /* NULL unless running */
    char   *worker_id;          /* NULL unless running */
    int     attempts;
    int64_t started_ns, ended_ns;
    char   *output_path;        /* NULL until finished */
} st_state_task_t;

typedef struct {
    int     cores;
    int64_t memory_mb;
    int     gpus;
    int64_t last_heartbeat_ns;
    int     lost;               /* 1 once marked lost, 0 after a new hello */
} st_state_worker_t;

/* Callbacks for lists: return 0 to go on, non-zero to stop (the list then
 * returns 0).  A callback must not call into the same store. */
typedef int (*st_state_job_cb)(const st_state_job_t *job, void *ud);
typedef int (*st_state_task_cb)(const st_state_task_t *task, void *ud);

/* Creates or opens the database at path (schema created or checked through
 * PRAGMA user_version).  opts may be NULL for the defaults.  *out is a new
 * handle, closed with st_state_close.  A file that is not a database gives
 * KILN_EFORMAT naming the path; a newer schema gives KILN_EUNSUPPORTED. */
int  st_state_open(const char *path, st_state_t **out, kiln_err_t *err);
int  st_state_open_opts(const char *path, const st_state_opts_t *opts,
                        st_state_t **out, kiln_err_t *err);
/* Rolls back an open transaction, closes and sets *st to NULL. */
void st_state_close(st_state_t **st);

/* One transaction around many changes (BEGIN IMMEDIATE).  Each change
 * below is atomic on its own, inside or outside such a transaction. */
int st_state_begin(st_state_t *st, kiln_err_t *err);
int st_state_commit(st_state_t *st, kiln_err_t *err);
int st_state_rollback(st_state_t *st, kiln_err_t *err);

/* Inserts job (its id, state, reason, attempts and times other than
 * submitted_ns are ignored: a new job is queued) with its depends_on rows,
 * and sets *id.  With an idempotency key already stored, nothing is inserted,
 * *id is the existing job's and *existed is 1 (existed may be NULL).
 * project, name, type and spec_json must be non-empty; every depends_on id
 * must exist (KILN_ENOTFOUND naming it). */
int st_state_job_insert(st_state_t *st, const st_state_job_t *job, int64_t *id,
                        int *existed, kiln_err_t *err);
/* A template's schedule: put once at submit (runs and skipped 0), then set
 * as it fires; an instance's insert and its template's set belong in one
 * transaction, so a crash keeps both or neither.  An instance insert
 * (scheduled_by != 0) whose (scheduled_by, scheduled_for_ns) is already
 * stored is refused with KILN_EEXIST.  get: KILN_ENOTFOUND for a job
 * without a schedule; *out owned (st_state_schedule_free). */
int  st_state_schedule_put(st_state_t *st, int64_t job_id, const char *expr,
                           int64_t next_run_ns, kiln_err_t *err);
int  st_state_schedule_set(st_state_t *st, int64_t job_id, int64_t next_run_ns, int64_t runs,
                           int64_t skipped, kiln_err_t *err);
int  st_state_schedule_get(st_state_t *st, int64_t job_id, st_state_schedule_t *out,
                           kiln_err_t *err);
void st_state_schedule_free(st_state_schedule_t *sch);

/* Fills *out (owned; free with st_state_job_free).  KILN_ENOTFOUND if none. */
int st_state_job_get(st_state_t *st, int64_t id, st_state_job_t *out, kiln_err_t *err);
void st_state_job_free(st_state_job_t *job);
/* Calls cb for each job in id order, filtered by state (if state != NULL)
 * and project (if project != NULL). */
int st_state_job_list(st_state_t *st, const st_state_status_t *state, const char *project,
                      st_state_job_cb cb, void *ud, kiln_err_t *err);
/* The same, newest first when newest_first, at most limit jobs (<= 0: all). */
int st_state_job_list_opts(st_state_t *st, const st_state_status_t *state, const char *project,
                           int newest_first, int64_t limit, st_state_job_cb cb, void *ud,
                           kiln_err_t *err);
int st_state_job_set_attempts(st_state_t *st, int64_t id, int attempts, kiln_err_t *err);
/* How many instances of array job `parent` are in each state. */
int st_state_job_instances(st_state_t *st, int64_t parent, int64_t counts[ST_STATE_N_STATUS],
                           kiln_err_t *err);
/* Calls cb for each instance of array or pipeline job `parent`, by index. */
int st_state_job_children(st_state_t *st, int64_t parent, st_state_job_cb cb, void *ud,
                          kiln_err_t *err);

/* Pipelines' step cache (state_cache.c).  put: step job job_id was planned
 * under key, into output (digest unknown yet; a second put for the job
 * replaces the first).  done: its output holds digest (64 hex) now.  find:
 * the newest done entry under key: *job_id, and output and digest copied
 * into out_cap / 65-byte buffers; KILN_ENOTFOUND when there is none. */
int st_state_cache_put(st_state_t *st, int64_t job_id, const char *key, const char *output,
                       int64_t now_ns, kiln_err_t *err);
int st_state_cache_done(st_state_t *st, int64_t job_id, const char *digest, kiln_err_t *err);
int st_state_cache_find(st_state_t *st, const char *key, int64_t *job_id, char *output,
                        size_t out_cap, char digest[65], kiln_err_t *err);

/* Moves a job to state with a reason that replaces the previous one (code
 * and text may be NULL: no reason, as for a running job).  A job in
 * a final state never moves again (KILN_EINVAL naming job and states).
 * Becoming running sets started_ns; a final state sets ended_ns. */
int st_state_job_set_state(st_state_t *st, int64_t id, st_state_status_t state,
                           const char *reason_code, const char *reason_text,
                           int64_t now_ns, kiln_err_t *err);
int st_state_job_count(st_state_t *st, st_state_status_t state, int64_t *n, kiln_err_t *err);
/* Every job row counted by type and state, and of those how many ever ran
 * (started_ns set): cb(type, state, n, n_started, ud) once per pair (type
 * borrowed for the call), in no set order.  One scan of the jobs table:
 * the source of kilnd's kiln_jobs_total (docs/metrics.md). */
typedef int (*st_state_tally_cb)(const char *type, st_state_status_t state, int64_t n,
                                 int64_t n_started, void *ud);
int st_state_job_tally(st_state_t *st, st_state_tally_cb cb, void *ud, kiln_err_t *err);

/* Inserts a queued task of job_id and sets *id (id may be NULL). */
int st_state_task_insert(st_state_t *st, int64_t job_id, int idx, int64_t win0,
                         int64_t n_windows, int64_t *id, kiln_err_t *err);
/* queued -> running under lease_id on worker_id.  A task not queued gives
 * KILN_EINVAL; an unknown task KILN_ENOTFOUND. */
int st_state_task_claim(st_state_t *st, int64_t id, const char *lease_id,
                        const char *worker_id, int64_t now_ns, kiln_err_t *err);
/* running -> state (succeeded or failed) only while lease_id is the task's
 * lease: a stale lease (a lost worker's, after requeue) is refused with
 * KILN_ESTALE and changes nothing, so a task run twice commits once.
 * output_path may be NULL. */
int st_state_task_finish(st_state_t *st, int64_t id, const char *lease_id,
                         st_state_status_t state, const char *output_path,
                         int64_t now_ns, kiln_err_t *err);
/* Worker lost: every running task of worker_id goes back to queued with its
 * lease cleared and attempts + 1; *n (may be NULL) is how many. */
int st_state_task_requeue_worker(st_state_t *st, const char *worker_id, int64_t *n,
                                 kiln_err_t *err);
/* One task: running under lease_id -> queued, lease cleared, attempts + 1
 * (a retry, or a task its worker no longer runs).  Another lease: KILN_ESTALE. */
int st_state_task_requeue(st_state_t *st, int64_t id, const char *lease_id, kiln_err_t *err);
/* Every queued or running task of job_id -> cancelled; *n (may be NULL) how many. */
int st_state_task_cancel_job(st_state_t *st, int64_t job_id, int64_t now_ns, int64_t *n,
                             kiln_err_t *err);
/* Calls cb for each task of job_id in idx order (strings borrowed). */
int st_state_task_list(st_state_t *st, int64_t job_id, st_state_task_cb cb, void *ud,
                       kiln_err_t *err);

/* hello: inserts or updates the worker's resources, marks it alive. */
int st_state_worker_hello(st_state_t *st, const char *id, int cores, int64_t memory_mb,
                          int gpus, int64_t now_ns, kiln_err_t *err);
/* KILN_ENOTFOUND for a worker that never said hello. */
int st_state_worker_heartbeat(st_state_t *st, const char *id, int64_t now_ns, kiln_err_t *err);
int st_state_worker_mark_lost(st_state_t *st, const char *id, kiln_err_t *err);
int st_state_worker_get(st_state_t *st, const char *id, st_state_worker_t *out,
                        kiln_err_t *err);

#endif
