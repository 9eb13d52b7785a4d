/* jobtype.h - job types as tables of functions (STYLE.md, "Plugins and
 * concurrency"): the scheduler validates a spec, plans it into tasks, has
 * workers run each task into its own file, and finishes the job by merging
 * those files, all through a jb_type_t found by the spec's "type".  Adding a
 * type is one new file (jobs/type_<name>.c) and one line in jobtype.c's
 * table, never a new `if` in the scheduler.
 *
 * Every function is reentrant: `parsed` is read-only after validate, so
 * several tasks of one job may run at once on different threads or
 * processes.  Outputs are committed by rename (temp name first), so a task
 * run twice commits once and a crash leaves nothing under the final name. */
#ifndef KILN_JOBS_JOBTYPE_H
#define KILN_JOBS_JOBTYPE_H

#include <stddef.h>
#include <stdint.h>

#include "../core/kiln_err.h"

/* What the scheduler tells plan about sharding.  windows_per_task, when not
 * 0, wins; otherwise the work is split into about target_tasks tasks (0 or
 * 1: one task).  A type may plan fewer tasks than asked (one, when its work
 * cannot be split). */
typedef struct {
    size_t target_tasks;
    size_t windows_per_task;
} jb_plan_ctx_t;

/* One task of a job: task `index` (0-based, the order finish merges in)
 * covers windows [win0, win0 + n_windows) of the job's input. */
typedef struct {
    size_t index;
    size_t win0, n_windows;
    /* Where the worker runs it: use_gpu 1 on CUDA device gpu_device (the
     * worker's pick among its free GPUs, for a job whose resources.gpus > 0);
     * 0 on the CPU.  Types without a GPU path ignore it. */
    int    use_gpu, gpu_device;
} jb_task_plan_t;

/* What a type's record step gets: the scheduler's store (inside its loop
 * turn's transaction) and where artifacts live. */
struct st_state;
typedef struct {
    struct st_state *st;
    const char      *artifacts;   /* the content-addressed store's root */
    const char      *dir;         /* kilnd's directory (its publisher key: jobs/publish.h) */
    int64_t          job_id;
    int64_t          started_ns;  /* when the job started running */
    int64_t          now_ns;
    /* record only (NULL elsewhere): submits spec (a json_t *, borrowed) as
     * a job of its own that this job made (a drift job's on_drift), through
     * the scheduler's child insert; *child_id gets its id.  Errors name the
     * field of spec. */
    int  (*submit_child)(void *sched, const void *spec, const char *name, int64_t *child_id,
                         kiln_err_t *err);
    void  *sched;
} jb_record_ctx_t;

/* One step of a pipeline job (jobs/type_pipeline.c). */
#define JB_STEPS_MAX 64
#define JB_STEP_NAME_MAX 64
typedef struct {
    char   name[JB_STEP_NAME_MAX];
    void  *spec;                 /* json_t *: the step's job spec, "${S.output}" replaced,
                                    project and priority inherited; owned by the parsed spec */
    size_t deps[JB_STEPS_MAX];   /* indices of earlier steps it waits for */
    size_t n_deps;
    int    cache;                /* 1: skipped when its key is unchanged */
} jb_step_t;

typedef struct jb_type {
    const char *name;    /* the spec's "type" */
    /* spec: a jansson json_t * (the whole job object), as void * to keep
     * jansson out of this header.  On success *parsed is the type's own
     * parsed spec, freed with free_parsed.  Errors name the field. */
    int (*validate)(const void *spec, void **parsed, kiln_err_t *err);
    /* *tasks (kiln_malloc'd, free with kiln_free) gets *n_tasks >= 1 tasks
     * in merge order. */
    int (*plan)(const void *parsed, const jb_plan_ctx_t *ctx, jb_task_plan_t **tasks,
                size_t *n_tasks, kiln_err_t *err);
    /* Runs one task into out_path (temp name, then rename). */
    int (*run_task)(const void *parsed, const jb_task_plan_t *task, const char *out_path,
                    kiln_err_t *err);
    /* Merges the n task outputs, in task order, into final_output (temp
     * name, then rename); the task outputs are left for the caller. */
    int (*finish)(const void *parsed, const char *const *task_outputs, size_t n,
                  const char *final_output, kiln_err_t *err);
    void (*free_parsed)(void *parsed);
    /* NULL, or 1 when a task of this parsed spec may run inside the
     * worker's own process: only work that can neither crash nor block
     * (a no-op); everything else runs in a child process. */
    int (*inproc)(const void *parsed);
    /* NULL, or called on the scheduler's thread once the job's tasks (and
     * finish) succeeded, with the first task's output, to record what the
     * job made (a train job: its run and model version in the registry).
     * summary gets one line for the job's log. */
    int (*record)(const void *parsed, const char *task_output, const jb_record_ctx_t *ctx,
                  char *summary, size_t cap, kiln_err_t *err);
    /* NULL, or called by the scheduler at submit, on its thread and before
     * validate, to resolve what only the scheduler's state knows (a model
     * reference "name@production" into its artifact's path): it may add
     * fields to spec (a json_t *), which is then stored as resolved, so
     * every task (and a retry) runs on the same thing.  Errors name the
     * field (KILN_ENOTFOUND for an unknown model). */
    int (*resolve)(void *spec, const jb_record_ctx_t *ctx, kiln_err_t *err);
    /* NULL, or the type is a pipeline: a job made of other jobs.  The
     * scheduler never plans it; once its own dependencies succeeded it
     * submits the *n steps (borrowed from parsed) in this order, each
     * depending on its deps, and the pipeline ends when they all have. */
    const jb_step_t *(*steps)(const void *parsed, size_t *n);
    /* NULL, or 1 when this parsed spec's gang (resources.ranks > 1, one
     * task per rank) is one MPI program: the worker of task 0 starts it
     * with Open MPI's mpirun over the gang's workers (kiln-worker
     * --train-ranks on each rank), the other tasks hold their slots and run
     * mpirun's daemon when it asks (docs/train.md, "Distributed training"). */
    int (*mpi_launch)(const void *parsed);
} jb_type_t;

/* The even split both sharded types use: `total` windows or rows into the
 * number of tasks ctx asks for (one when !splittable or total is 0), the
 * first total % n tasks one longer.  `what` names the type in errors. */
int jb_plan_even(const jb_plan_ctx_t *ctx, size_t total, int splittable, const char *what,
                 jb_task_plan_t **tasks, size_t *n_tasks, kiln_err_t *err);

/* The type called `name`, or NULL. */
const jb_type_t *jb_type_find(const char *name);

/* The table, for listing; *n gets its length. */
const jb_type_t *const *jb_type_all(size_t *n);

#endif
