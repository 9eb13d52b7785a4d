/* sched.h - the scheduler's brain, without I/O of its own: jobs in, tasks
 * placed on workers, results folded back, every change written to the state
 * store.  kilnd (kilnd.c) owns the loop, the sockets and the transaction
 * around each loop turn; it hands this module parsed worker messages and
 * HTTP requests, and carries out what it asks through ks_ops_t (send a
 * message to a worker, run a job's finish off the loop).
 *
 * One thread only: every function here runs on kilnd's loop thread. */
#ifndef KILN_SCHEDULER_SCHED_H
#define KILN_SCHEDULER_SCHED_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "cluster/frames.h"
#include "core/kiln_err.h"
#include "jobs/jobtype.h"
#include "storage/state.h"

typedef struct ks_sched ks_sched_t;

typedef struct {
    /* Queue a message for the worker: its type and compact JSON body (len
     * bytes, kiln_malloc'd, taken: the callee frees it). */
    void (*send)(void *ud, const char *worker_id, kc_msg_type_t type, char *json, size_t len);
    /* Run type->finish(parsed, outputs, n, final_output) off the loop, then
     * call ks_sched_finish_done(job_id, rc, err) on the loop.  The scheduler
     * keeps parsed and outputs alive until then. */
    void (*finish)(void *ud, int64_t job_id, const jb_type_t *type, const void *parsed,
                   const char *const *outputs, size_t n, const char *final_output);
} ks_ops_t;

typedef struct {
    const char *quota_project;  /* parallel arrays: a project and its core cap */
    int         quota_cores;
} ks_quota_t;

typedef struct {
    const char *dir;            /* cluster directory: tasks/ and logs/ live here */
    int64_t lease_ms;           /* worker silent this long is lost (default 5000) */
    int64_t retry_backoff_ms;   /* first retry delay, doubled each time (default 1000) */
    size_t  max_active_jobs;    /* admission: queued+running jobs (default 10000) */
    size_t  target_tasks;       /* shards per job when the type splits (default: 2 x workers' cores) */
    int     max_node_fails;     /* worker losses one task survives (default 3) */
    const ks_quota_t *quotas;
    size_t  n_quotas;
} ks_opts_t;

/* Loads every unfinished job and its tasks from st (kept, not owned) and
 * starts scheduling.  Running tasks keep their workers and leases until
 * those workers speak again or the lease runs out. */
int  ks_sched_open(st_state_t *st, const ks_opts_t *opts, const ks_ops_t *ops, void *ud,
                   ks_sched_t **out, kiln_err_t *err);
void ks_sched_close(ks_sched_t **s);

/* Accepts a job spec (JSON text).  *id the new (or, for a known
 * idempotency_key, the existing: *existed = 1) job.  KILN_EJSON / KILN_ESPEC
 * name the field; KILN_ENOTFOUND an unknown depends_on; KILN_EBUSY over the
 * admission limit. */
int ks_sched_submit(ks_sched_t *s, const char *text, size_t len, const char *idempotency_key,
                    int64_t *id, int *existed, kiln_err_t *err);

/* Cancels a queued or running job (an array: every instance); its dependents
 * end cancelled.  KILN_ENOTFOUND; KILN_ESTATE when it already ended. */
int ks_sched_cancel(ks_sched_t *s, int64_t id, kiln_err_t *err);

/* A decoded message from worker_id (the message stays the caller's). */
int ks_sched_on_msg(ks_sched_t *s, const char *worker_id, const kc_msg_t *msg, kiln_err_t *err);

/* Timers: lost workers, timeouts, retries whose backoff ended, recurring
 * jobs whose fire time came (each makes an instance, docs/cluster.md). */
void ks_sched_tick(ks_sched_t *s);

/* Places as many queued tasks as the free resources allow.  Cheap when
 * nothing changed since the last call. */
void ks_sched_dispatch(ks_sched_t *s);

/* The result of an ops->finish. */
void ks_sched_finish_done(ks_sched_t *s, int64_t job_id, int rc, const kiln_err_t *err);

/* Views for the API (new references; NULL with err on failure). */
json_t *ks_sched_job_json(ks_sched_t *s, int64_t id, kiln_err_t *err);
json_t *ks_sched_jobs_json(ks_sched_t *s, const st_state_status_t *state, const char *project,
                           int64_t limit, kiln_err_t *err);
json_t *ks_sched_workers_json(ks_sched_t *s);
json_t *ks_sched_health_json(ks_sched_t *s);
/* CLOCK_REALTIME in nanoseconds: every time the scheduler records. */
int64_t ks_now_ns(void);

/* The state store the scheduler writes (the registry shares it). */
st_state_t *ks_sched_state(ks_sched_t *s);

/* GET /metrics: the Prometheus text (cluster/prom.h, docs/metrics.md) of
 * jobs, the queue, tasks, workers and their GPUs, drift scores and the
 * process; *text kiln_malloc'd, *len its length. */
int ks_sched_metrics(ks_sched_t *s, char **text, size_t *len, kiln_err_t *err);

/* Sets kiln_feature_drift_score{model,feature}: for drift jobs to call as
 * their results land (until then none is shown). */
int ks_sched_set_drift_score(ks_sched_t *s, const char *model, const char *feature,
                             double score, kiln_err_t *err);

/* The job's log file path (it may not exist yet); KILN_ENOTFOUND for an unknown job. */
int ks_sched_log_path(ks_sched_t *s, int64_t id, char *buf, size_t cap, kiln_err_t *err);

#endif
