/* sched_int.h - what the scheduler's files share (sched.c: jobs in and out,
 * sched_run.c: dispatch, sched_msg.c: worker messages and timers,
 * sched_recur.c: recurring jobs, sched_pipe.c: pipelines, sched_mpi.c: MPI
 * gangs, sched_reload.c: a restart, sched_view.c: JSON for the API);
 * nothing outside scheduler/sched*.c includes it. */
#ifndef KILN_SCHEDULER_SCHED_INT_H
#define KILN_SCHEDULER_SCHED_INT_H

#include "cron.h"
#include "idmap.h"
#include "jobs/jobspec.h"
#include "sched.h"

#define KS_LEASE_MAX  40
#define KS_REASON_MAX 240

typedef struct ks_worker {
    char   *id;
    char    host[64];
    char    gpu_names[256];  /* "NVIDIA H200, NVIDIA H200" as the worker found them */
    int64_t gpu_memory_mb;   /* of all its GPUs, as its hello said (gpu_memory_mb) */
    int     cores, gpus;
    int64_t memory_mb;
    int     used_cores, used_gpus;
    int64_t used_memory_mb;
    int     n_running;
    int64_t last_seen_ns;
    int     registered;      /* 0: known only from a running task after a restart */
    int     lost;
} ks_worker_t;

struct ks_job;

typedef struct ks_task {
    int64_t id;
    int     idx;
    int64_t win0, n_windows;
    st_state_status_t state;
    int     attempts;
    int     node_fails;
    char    lease[KS_LEASE_MAX];
    ks_worker_t *worker;     /* while running */
    int64_t dispatched_ns;
    int64_t not_before_ns;   /* retry backoff */
    int64_t done, total;     /* last progress */
    int     exec_sent;       /* an MPI gang's holder: mpirun's daemon was sent to it */
    struct ks_job *job;
} ks_task_t;

typedef struct ks_job {
    int64_t id;
    char   *project, *name;
    int     priority;
    st_state_status_t state;
    char    reason_code[32];
    char    reason_text[KS_REASON_MAX];
    int64_t submitted_ns, started_ns;
    int     attempts, max_retries;
    double  timeout_s;
    jb_resources_t res;
    int64_t *deps;
    size_t  n_deps, n_deps_ok;   /* deps[0..n_deps_ok) have succeeded */
    json_t *spec;                /* the spec a task gets (an instance's, substituted) */
    char   *spec_text;           /* its compact JSON, made at the first dispatch */
    char   *out_prefix;          /* "DIR/tasks/ID/", JSON-escaped, idem */
    const jb_type_t *type;
    void   *parsed;
    char   *output;              /* spec "output", or NULL */
    int     planned;
    ks_task_t *tasks;
    size_t  n_tasks, n_queued, n_running, n_succeeded;
    size_t  cursor;              /* no queued task below this index */
    int     finishing;
    char  **task_outputs;        /* while finishing */
    /* an instance of an array */
    int64_t array_parent, array_index;
    /* an array */
    int     is_array;
    int64_t arr_first, arr_last, arr_next;
    int     arr_cap;
    int     arr_ending;          /* ks_job_end is ending its instances */
    /* a pipeline (its type has steps): an array whose instances are its
     * steps, all made at once by sched_pipe.c */
    int     is_pipeline;
    /* a pipeline's step: its cache was looked at (once, before planning) */
    int     cache_checked;
    size_t  arr_live, arr_running, arr_succeeded, arr_ended;
    /* a recurring job's template (its spec has "schedule"): never planned
     * or dispatched; sched_recur.c makes an instance at each fire time */
    int     is_template;
    ks_cron_t cron;
    int64_t next_run_ns;         /* stored in `schedules`, with runs and skipped */
    int64_t runs, skipped;
    size_t  sched_live;          /* its unfinished instances: 0 or 1 (no pile-up) */
    int64_t sched_last;          /* the id of the last instance made */
    /* an instance of a template */
    int64_t scheduled_by, scheduled_for_ns;
    size_t  live_idx;            /* position in s->live */
} ks_job_t;

struct ks_sched {
    st_state_t *st;
    ks_opts_t   opts;
    ks_ops_t    ops;
    void       *ud;
    char       *dir;
    ks_idmap_t  jobs;            /* live (unfinished) jobs by id */
    ks_idmap_t  running;         /* running tasks by task id */
    ks_idmap_t  orphans;         /* ended while their finish still runs */
    ks_job_t  **cand;            /* dispatch scratch */
    size_t      cap_cand;
    ks_job_t  **live;
    size_t      n_live, cap_live;
    size_t      n_active;        /* live jobs counted for admission (not instances) */
    size_t      n_templates;     /* live templates of recurring jobs */
    ks_worker_t **workers;
    size_t      n_workers;
    uint64_t    lease_seq;
    char        lease_prefix[16];
    size_t      lease_prefix_len;
    uint32_t    boot;
    int         dirty;
    int         n_with_deps;
    int64_t     started_ns;
    int64_t     tasks_dispatched, tasks_done;
    struct ks_metrics *metrics;  /* sched_metrics.c; NULL until first used */
};


/* The type's resolve (a model reference to its file, ...) with this
 * scheduler's store and artifacts; 0 for a type without one. */
int ks_spec_resolve(ks_sched_t *s, const jb_type_t *type, json_t *spec, kiln_err_t *err);

/* sched.c */
void ks_job_log(ks_sched_t *s, int64_t job_id, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int  ks_job_set_reason(ks_sched_t *s, ks_job_t *j, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void ks_job_end(ks_sched_t *s, ks_job_t *j, st_state_status_t state, const char *code,
                const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* sched_child.c */
/* An array's spec for instance `index` (new reference, NULL on no memory):
 * without "array", %a in input and output replaced. */
json_t   *ks_array_instance_spec(const json_t *array_spec, int64_t index);
ks_job_t *ks_job_instance_new(ks_sched_t *s, ks_job_t *parent, kiln_err_t *err);
/* Stores j as the child job `name` whose links (array_parent and index,
 * scheduled_by and for, depends_on) row carries, and makes it live.  j is
 * freed on failure (NULL). */
ks_job_t *ks_job_store_child(ks_sched_t *s, ks_job_t *j, const st_state_job_t *row,
                             const char *name, kiln_err_t *err);
/* jb_record_ctx_t.submit_child for a type's record step (sched = s). */
int ks_record_submit_child(void *sched, const void *spec, const char *name, int64_t *child_id,
                           kiln_err_t *err);
int  ks_job_plan(ks_sched_t *s, ks_job_t *j, kiln_err_t *err);
int  ks_job_task_output(const ks_sched_t *s, const ks_job_t *j, int idx, char *buf, size_t cap);
int  ks_quota_of(const ks_sched_t *s, const char *project);
/* 0 and the state of a stored job; KILN_ENOTFOUND naming it. */
int  ks_job_stored(ks_sched_t *s, int64_t id, st_state_status_t *state, kiln_err_t *err);
int  ks_project_cores(const ks_sched_t *s, const char *project);

/* The parts of a job that sched.c builds and sched_recur.c reuses. */
ks_job_t *ks_job_build(json_t *spec, const jb_common_t *c, kiln_err_t *err);
st_state_job_t ks_job_row(const ks_job_t *j, const char *type, const char *name,
                          const char *spec_text);
int  ks_live_add(ks_sched_t *s, ks_job_t *j);
/* "%<token>" in the string field key of spec becomes value. */
int  ks_spec_subst(json_t *spec, const char *key, char token, const char *value);

/* sched_recur.c */
/* A new template's spec (borrowed): "%t" set to a fire time, so the type
 * validates what an instance will run.  New reference, NULL on no memory. */
json_t *ks_recur_instance_spec(const json_t *template_spec, int64_t fire_ns);
/* After the template's row is stored: its schedule row and reason. */
int  ks_recur_submitted(ks_sched_t *s, ks_job_t *t, kiln_err_t *err);
/* At reload: a template's schedule from the store, an instance's link. */
int  ks_recur_reloaded(ks_sched_t *s, ks_job_t *j, kiln_err_t *err);
/* An instance ended (j->scheduled_by set): its template may fire again. */
void ks_recur_instance_ended(ks_sched_t *s, const ks_job_t *j);
/* Fires every template whose time has come (from ks_sched_tick). */
void ks_recur_tick(ks_sched_t *s, int64_t now);

/* sched_run.c */
ks_worker_t *ks_worker_find(ks_sched_t *s, const char *id);
ks_worker_t *ks_worker_get(ks_sched_t *s, const char *id, kiln_err_t *err);
void ks_task_release(ks_sched_t *s, ks_task_t *t);
/* running -> queued after delay_ms (a retry, or its worker was lost);
 * tell_worker: send it a cancel too. */
int  ks_task_requeue(ks_sched_t *s, ks_task_t *t, int64_t delay_ms, int tell_worker);
/* A gang runs whole or not at all: every running rank back to queued. */
void ks_gang_requeue(ks_sched_t *s, ks_job_t *j, int64_t delay_ms);
int  ks_is_gang(const ks_job_t *j);
void ks_send_cancel_to(ks_sched_t *s, const char *worker_id, int64_t task_id, const char *lease);
void ks_task_cancel_remote(ks_sched_t *s, ks_task_t *t);
void ks_job_start_finish(ks_sched_t *s, ks_job_t *j);
void ks_job_succeed(ks_sched_t *s, ks_job_t *j);
/* Ends an array whose instances all ended (none left to create). */
void ks_array_check_done(ks_sched_t *s, ks_job_t *p);
/* sched_pipe.c */
/* Submits every step of pipeline p (once). */
int  ks_pipe_expand(ks_sched_t *s, ks_job_t *p, kiln_err_t *err);
/* 1 when step j may be skipped (its key and output unchanged); else 0, and
 * its key is stored for when it succeeds. */
int  ks_pipe_cache_check(ks_sched_t *s, ks_job_t *j);
/* j succeeded: if it is a step, its output's digest goes to the cache. */
void ks_pipe_step_succeeded(ks_sched_t *s, const ks_job_t *j);
/* The steps of pipeline `id` named `name` (new reference, NULL on failure). */
json_t *ks_pipe_steps_json(ks_sched_t *s, int64_t id, const char *name);
/* sched_mpi.c: gangs that are one MPI program */
int   ks_mpi_launched(const ks_job_t *j);
/* The task message's extra fields (",\"gang_role\":..."), kiln_malloc'd; t
 * is about to go to w; for task 0 every other rank is placed already. */
char *ks_mpi_task_fields(const ks_job_t *j, const ks_task_t *t, const ks_worker_t *w);
/* Task 0 (mpirun) of j succeeded: the holders succeed with it. */
void  ks_mpi_rank0_done(ks_sched_t *s, ks_job_t *j);
/* An "exec" from mpirun's launch agent (routing id `from`). */
int   ks_mpi_on_exec(ks_sched_t *s, const char *from, const kc_msg_t *m, kiln_err_t *err);
/* sched_metrics.c: /metrics (docs/metrics.md) */
/* A task attempt of t ended (done or failed) at now: its run time. */
void ks_metrics_task_ended(ks_sched_t *s, const ks_task_t *t, int64_t now);
void ks_metrics_free(ks_sched_t *s);
/* sched_reload.c: every unfinished job back into memory, at open. */
int  ks_sched_reload(ks_sched_t *s, kiln_err_t *err);
void ks_job_free(ks_job_t *j);

#endif
