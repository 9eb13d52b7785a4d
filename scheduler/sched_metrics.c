/* sched_metrics.c - kilnd's /metrics (docs/metrics.md): what a scrape shows
 * is read at that moment from the scheduler's memory (queue, workers, GPUs)
 * and, for kiln_jobs_total, from the state store, so those counters keep
 * counting across kilnd restarts; the task-duration histogram and the drift
 * scores live here, in memory. */
#include "sched_int.h"

#include <stdio.h>
#include <string.h>

#include "cluster/prom.h"
#include "core/kiln_alloc.h"
#include "storage/drift_results.h"

#ifndef KILN_VERSION
#define KILN_VERSION "0.5.0"
#endif

struct ks_metrics {
    kp_registry_t *reg;
    kp_family_t *build, *jobs_total, *jobs, *queue_depth, *task_seconds, *tasks_dispatched,
        *tasks_done, *workers, *cores, *worker_gpus, *gpu_memory, *worker_info, *drift;
};

/* Task run times from 10 ms (an in-process noop) to 4 h (a long training). */
static const double task_bounds[] = {0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600,
                                     14400};

static int metrics_open(ks_sched_t *s, kiln_err_t *err)
{
    if (s->metrics)
        return 0;
    struct ks_metrics *m = kiln_calloc(1, sizeof *m);
    if (!m)
        return kiln_err_set(err, KILN_ENOMEM, "metrics: out of memory");
    int rc;
    if ((rc = kp_registry_new(&m->reg, err)) < 0 ||
        (rc = kp_gauge(m->reg, "kiln_build_info", "kilnd's version; always 1.", "version",
                       &m->build, err)) < 0 ||
        (rc = kp_counter(m->reg, "kiln_jobs_total", "Jobs that reached a state, by job type: "
                         "submitted, started, and each end state (from the state store).",
                         "type,state", &m->jobs_total, err)) < 0 ||
        (rc = kp_gauge(m->reg, "kiln_jobs", "Unfinished jobs by type and state (queued, "
                       "running); array instances and pipeline steps included.", "type,state",
                       &m->jobs, err)) < 0 ||
        (rc = kp_gauge(m->reg, "kiln_queue_depth", "Queued jobs (not array instances), as "
                       "/v1/health counts them.", NULL, &m->queue_depth, err)) < 0 ||
        (rc = kp_histogram(m->reg, "kiln_task_duration_seconds", "Run time of each task "
                           "attempt that ended (done or failed), dispatch to result, by job "
                           "type.", "type", task_bounds,
                           sizeof task_bounds / sizeof task_bounds[0], &m->task_seconds,
                           err)) < 0 ||
        (rc = kp_counter(m->reg, "kiln_tasks_dispatched_total", "Task attempts sent to "
                         "workers since kilnd started.", NULL, &m->tasks_dispatched, err)) < 0 ||
        (rc = kp_counter(m->reg, "kiln_tasks_done_total", "Task attempts that succeeded since "
                         "kilnd started.", NULL, &m->tasks_done, err)) < 0 ||
        (rc = kp_gauge(m->reg, "kiln_workers", "Registered workers by state (alive, lost).",
                       "state", &m->workers, err)) < 0 ||
        (rc = kp_gauge(m->reg, "kiln_worker_cores", "Cores a worker offers, by state (busy, "
                       "free).", "worker,state", &m->cores, err)) < 0 ||
        (rc = kp_gauge(m->reg, "kiln_worker_gpus", "GPUs a worker offers, by state (busy, "
                       "free); workers without GPUs are left out.", "worker,state",
                       &m->worker_gpus, err)) < 0 ||
        (rc = kp_gauge(m->reg, "kiln_worker_gpu_memory_bytes", "Memory of all a worker's GPUs, "
                       "as its hello reported it.", "worker", &m->gpu_memory, err)) < 0 ||
        (rc = kp_gauge(m->reg, "kiln_worker_info", "A registered worker; always 1.",
                       "worker,host,gpu_names", &m->worker_info, err)) < 0 ||
        (rc = kp_gauge(m->reg, "kiln_feature_drift_score", "Drift score of a model's input "
                       "feature from its latest drift job.", "model,feature", &m->drift,
                       err)) < 0 ||
        (rc = kp_set(m->build, (const char *[]){KILN_VERSION}, 1, err)) < 0) {
        kp_registry_destroy(&m->reg);
        kiln_free(m);
        return rc;
    }
    s->metrics = m;
    return 0;
}

void ks_metrics_free(ks_sched_t *s)
{
    if (!s->metrics)
        return;
    kp_registry_destroy(&s->metrics->reg);
    kiln_free(s->metrics);
    s->metrics = NULL;
}

void ks_metrics_task_ended(ks_sched_t *s, const ks_task_t *t, int64_t now)
{
    kiln_err_t err;
    if (!t->dispatched_ns || metrics_open(s, &err) < 0)
        return;   /* a metric is not worth failing a task over */
    const char *type = t->job->type ? t->job->type->name : "unknown";
    double seconds = (double)(now - t->dispatched_ns) / 1e9;
    kp_observe(s->metrics->task_seconds, (const char *[]){type}, seconds < 0 ? 0 : seconds,
               &err);
}

int ks_sched_set_drift_score(ks_sched_t *s, const char *model, const char *feature,
                             double score, kiln_err_t *err)
{
    int rc = metrics_open(s, err);
    if (rc < 0)
        return rc;
    if (!model || !model[0] || !feature || !feature[0])
        return kiln_err_set(err, KILN_EINVAL, "drift score: model and feature must be named");
    return kp_set(s->metrics->drift, (const char *[]){model, feature}, score, err);
}

static int tally_row(const char *type, st_state_status_t state, int64_t n, int64_t n_started,
                     void *ud)
{
    struct ks_metrics *m = ud;
    kiln_err_t err;
    const char *sub[] = {type, "submitted"}, *run[] = {type, "started"};
    /* Every row was submitted; one that started counts as started whatever
     * came after; an end state counts as itself. */
    if (kp_add(m->jobs_total, sub, (double)n, &err) < 0 ||
        kp_add(m->jobs_total, run, (double)n_started, &err) < 0)
        return 1;
    if (st_state_status_is_final(state) &&
        kp_add(m->jobs_total, (const char *[]){type, st_state_status_name(state)}, (double)n,
               &err) < 0)
        return 1;
    return 0;
}

/* kiln_feature_drift_score{model,feature}: each column's score (the
 * method's p-value or distance) from the model's latest drift job in the
 * store, so the gauges survive a restart of kilnd. */
static int drift_row(const st_drift_result_t *r, void *ud)
{
    struct ks_metrics *m = ud;
    json_error_t jerr;
    json_t *cols = json_loads(r->columns_json, 0, &jerr), *c;
    size_t i;
    kiln_err_t err;
    json_array_foreach(cols, i, c) {
        const char *name = json_string_value(json_object_get(c, "column"));
        const json_t *score = json_object_get(c, "score");
        if (name && name[0] && json_is_number(score))
            kp_set(m->drift, (const char *[]){r->model_name, name}, json_number_value(score),
                   &err);
    }
    json_decref(cols);
    return 0;
}

/* The families read from memory at each scrape. */
static int collect(ks_sched_t *s, struct ks_metrics *m, kiln_err_t *err)
{
    int rc;
    if ((rc = st_drift_result_latest_per_model(s->st, drift_row, m, err)) < 0)
        return rc;
    kp_clear(m->jobs_total);
    if ((rc = st_state_job_tally(s->st, tally_row, m, err)) < 0)
        return rc;
    kp_clear(m->jobs);
    size_t queued = 0;
    for (size_t i = 0; i < s->n_live; i++) {
        const ks_job_t *j = s->live[i];
        const char *type = j->type ? j->type->name : "unknown";
        const int running = j->state == ST_STATE_RUNNING;
        if (!j->array_parent && !running)
            queued++;
        if ((rc = kp_add(m->jobs, (const char *[]){type, running ? "running" : "queued"}, 1,
                         err)) < 0)
            return rc;
    }
    if ((rc = kp_set(m->queue_depth, NULL, (double)queued, err)) < 0 ||
        (rc = kp_set(m->tasks_dispatched, NULL, (double)s->tasks_dispatched, err)) < 0 ||
        (rc = kp_set(m->tasks_done, NULL, (double)s->tasks_done, err)) < 0)
        return rc;

    kp_clear(m->cores);
    kp_clear(m->worker_gpus);
    kp_clear(m->gpu_memory);
    kp_clear(m->worker_info);
    size_t alive = 0, lost = 0;
    for (size_t i = 0; i < s->n_workers; i++) {
        const ks_worker_t *w = s->workers[i];
        if (!w->registered)
            continue;
        if (w->lost) {
            lost++;
            continue;
        }
        alive++;
        if ((rc = kp_set(m->cores, (const char *[]){w->id, "busy"}, w->used_cores, err)) < 0 ||
            (rc = kp_set(m->cores, (const char *[]){w->id, "free"}, w->cores - w->used_cores,
                         err)) < 0 ||
            (rc = kp_set(m->worker_info, (const char *[]){w->id, w->host, w->gpu_names}, 1,
                         err)) < 0)
            return rc;
        if (w->gpus <= 0)
            continue;
        if ((rc = kp_set(m->worker_gpus, (const char *[]){w->id, "busy"}, w->used_gpus,
                         err)) < 0 ||
            (rc = kp_set(m->worker_gpus, (const char *[]){w->id, "free"},
                         w->gpus - w->used_gpus, err)) < 0 ||
            (w->gpu_memory_mb > 0 &&
             (rc = kp_set(m->gpu_memory, (const char *[]){w->id},
                          (double)w->gpu_memory_mb * 1048576.0, err)) < 0))
            return rc;
    }
    if ((rc = kp_set(m->workers, (const char *[]){"alive"}, (double)alive, err)) < 0 ||
        (rc = kp_set(m->workers, (const char *[]){"lost"}, (double)lost, err)) < 0)
        return rc;
    return kp_process_collect(m->reg, err);
}

int ks_sched_metrics(ks_sched_t *s, char **text, size_t *len, kiln_err_t *err)
{
    int rc = metrics_open(s, err);
    if (rc < 0 || (rc = collect(s, s->metrics, err)) < 0)
        return rc;
    return kp_render(s->metrics->reg, text, len, err);
}
