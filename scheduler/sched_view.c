/* sched_view.c - the scheduler as the API shows it (docs/api.md): jobs,
 * workers, health.  Live jobs come from memory, ended ones from the store. */
#include "sched_int.h"

#include <stdio.h>
#include <string.h>

#include "core/kiln_alloc.h"

#ifndef KILN_VERSION
#define KILN_VERSION "0.5.0"
#endif

typedef struct {
    size_t n[ST_STATE_N_STATUS];
    size_t total;
} counts_t;

static int count_row(const st_state_task_t *t, void *ud)
{
    counts_t *c = ud;
    if ((unsigned)t->state < ST_STATE_N_STATUS)
        c->n[t->state]++;
    c->total++;
    return 0;
}

static json_t *counts_json(const counts_t *c)
{
    return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I}", "total", (json_int_t)c->total,
                     "queued", (json_int_t)c->n[ST_STATE_QUEUED],
                     "running", (json_int_t)c->n[ST_STATE_RUNNING],
                     "succeeded", (json_int_t)c->n[ST_STATE_SUCCEEDED],
                     "failed", (json_int_t)(c->n[ST_STATE_FAILED] + c->n[ST_STATE_TIMEOUT] +
                                            c->n[ST_STATE_NODE_FAIL] +
                                            c->n[ST_STATE_OUT_OF_MEMORY]),
                     "cancelled", (json_int_t)c->n[ST_STATE_CANCELLED]);
}

/* Task counts: a live job's from memory, an array's over its instances,
 * an ended job's from the store. */
static void job_counts(ks_sched_t *s, const st_state_job_t *row, counts_t *c)
{
    memset(c, 0, sizeof *c);
    ks_job_t *j = ks_idmap_get(&s->jobs, row->id);
    if (j && j->is_array) {
        c->total = (size_t)(j->arr_last - j->arr_first + 1);
        c->n[ST_STATE_SUCCEEDED] = j->arr_succeeded;
        c->n[ST_STATE_RUNNING] = j->arr_running;
        c->n[ST_STATE_FAILED] = j->arr_ended - j->arr_succeeded;
        c->n[ST_STATE_QUEUED] = c->total - j->arr_ended - j->arr_running;
        return;
    }
    if (j && j->planned) {
        c->total = j->n_tasks;
        for (size_t i = 0; i < j->n_tasks; i++)
            if ((unsigned)j->tasks[i].state < ST_STATE_N_STATUS)
                c->n[j->tasks[i].state]++;
        return;
    }
    if (j)
        return;   /* not planned yet */
    kiln_err_t err;
    st_state_task_list(s->st, row->id, count_row, c, &err);
    if (c->total == 0 && !row->array_parent) {
        /* An ended array: its tasks are its instances. */
        int64_t n[ST_STATE_N_STATUS];
        if (st_state_job_instances(s->st, row->id, n, &err) == 0)
            for (int i = 0; i < ST_STATE_N_STATUS; i++) {
                c->n[i] = (size_t)n[i];
                c->total += (size_t)n[i];
            }
    }
}

static json_t *job_json(ks_sched_t *s, const st_state_job_t *row, int with_spec)
{
    counts_t c;
    job_counts(s, row, &c);
    ks_job_t *j = ks_idmap_get(&s->jobs, row->id);
    json_t *o = json_object();
    json_t *deps = json_array();
    if (!o || !deps) {
        json_decref(o);
        json_decref(deps);
        return NULL;
    }
    for (size_t i = 0; i < row->n_depends_on; i++)
        json_array_append_new(deps, json_integer(row->depends_on[i]));
    /* Memory is ahead of the store only in the reason of a queued job. */
    const char *rc = j ? j->reason_code : row->reason_code;
    const char *rt = j ? j->reason_text : row->reason_text;
    json_t *reason = rc && rc[0] ? json_pack("{s:s, s:s}", "code", rc, "text", rt ? rt : "")
                                 : json_null();
    const jb_type_t *type = jb_type_find(row->type);
    const int is_pipeline = type && type->steps;
    json_t *array = json_null();
    if (is_pipeline)
        ;   /* its steps say more (below) */
    else if (row->array_parent)
        array = json_pack("{s:I, s:I}", "parent", (json_int_t)row->array_parent, "index",
                          (json_int_t)row->array_index);
    else if (j && j->is_array)
        array = json_pack("{s:I, s:I, s:i}", "first", (json_int_t)j->arr_first, "last",
                          (json_int_t)j->arr_last, "cap", j->arr_cap);
    else if (!j && row->spec_json && strstr(row->spec_json, "\"array\"")) {
        /* An ended array is no longer in memory: its spec says what it was. */
        json_t *spec = json_loads(row->spec_json, 0, NULL);
        const char *a = json_string_value(json_object_get(spec, "array"));
        int64_t first, last;
        int cap;
        kiln_err_t aerr;
        if (a && jb_array_parse(a, &first, &last, &cap, &aerr) == 0)
            array = json_pack("{s:I, s:I, s:i}", "first", (json_int_t)first, "last",
                              (json_int_t)last, "cap", cap);
        json_decref(spec);
    }
    /* A recurring job's template: live from memory; ended (cancelled) from
     * the store, with no next run. */
    json_t *schedule = json_null();
    if (j && j->is_template) {
        schedule = json_pack("{s:s, s:I, s:I, s:I}", "expr",
                             json_string_value(json_object_get(j->spec, "schedule")),
                             "next_run_ns", (json_int_t)j->next_run_ns, "runs",
                             (json_int_t)j->runs, "skipped", (json_int_t)j->skipped);
    } else if (!j && row->spec_json && strstr(row->spec_json, "\"schedule\"")) {
        st_state_schedule_t sch;
        kiln_err_t serr;
        if (st_state_schedule_get(s->st, row->id, &sch, &serr) == 0) {
            schedule = json_pack("{s:s, s:n, s:I, s:I}", "expr", sch.expr, "next_run_ns", "runs",
                                 (json_int_t)sch.runs, "skipped", (json_int_t)sch.skipped);
            st_state_schedule_free(&sch);
        }
    }
    double progress = c.total ? (double)c.n[ST_STATE_SUCCEEDED] / (double)c.total : 0;
    json_object_set_new(o, "id", json_integer(row->id));
    json_object_set_new(o, "name", json_string(row->name));
    json_object_set_new(o, "project", json_string(row->project));
    json_object_set_new(o, "type", json_string(row->type));
    json_object_set_new(o, "priority", json_integer(row->priority));
    json_object_set_new(o, "state", json_string(st_state_status_name(row->state)));
    json_object_set_new(o, "reason", reason ? reason : json_null());
    json_object_set_new(o, "attempts", json_integer(j ? j->attempts : row->attempts));
    json_object_set_new(o, "max_retries", json_integer(row->max_retries));
    json_object_set_new(o, "timeout_s", json_integer(row->timeout_s));
    json_object_set_new(o, "depends_on", deps);
    json_object_set_new(o, "submitted_ns", json_integer(row->submitted_ns));
    json_object_set_new(o, "started_ns", json_integer(row->started_ns));
    json_object_set_new(o, "ended_ns", json_integer(row->ended_ns));
    json_object_set_new(o, "tasks", counts_json(&c));
    json_object_set_new(o, "progress", json_real(progress));
    json_object_set_new(o, "array", array ? array : json_null());
    json_object_set_new(o, "schedule", schedule ? schedule : json_null());
    json_object_set_new(o, "scheduled_by", row->scheduled_by ? json_integer(row->scheduled_by)
                                                              : json_null());
    if (is_pipeline && with_spec) {
        json_t *steps = ks_pipe_steps_json(s, row->id, row->name);
        json_object_set_new(o, "steps", steps ? steps : json_null());
    }
    if (with_spec) {
        json_error_t jerr;
        json_t *spec = json_loads(row->spec_json, 0, &jerr);
        json_object_set_new(o, "spec", spec ? spec : json_null());
    }
    return o;
}

json_t *ks_sched_job_json(ks_sched_t *s, int64_t id, kiln_err_t *err)
{
    st_state_job_t row;
    int rc = st_state_job_get(s->st, id, &row, err);
    if (rc < 0) {
        if (rc == KILN_ENOTFOUND)
            kiln_err_set(err, KILN_ENOTFOUND, "job %lld not found", (long long)id);
        return NULL;
    }
    json_t *o = job_json(s, &row, 1);
    st_state_job_free(&row);
    if (!o)
        kiln_err_set(err, KILN_ENOMEM, "job %lld: out of memory", (long long)id);
    return o;
}

typedef struct {
    ks_sched_t *s;
    json_t     *list;
    int         oom;
} list_ud_t;

static int list_row(const st_state_job_t *row, void *ud)
{
    list_ud_t *l = ud;
    json_t *o = job_json(l->s, row, 0);
    if (!o || json_array_append_new(l->list, o) < 0) {
        l->oom = 1;
        return 1;
    }
    return 0;
}

json_t *ks_sched_jobs_json(ks_sched_t *s, const st_state_status_t *state, const char *project,
                           int64_t limit, kiln_err_t *err)
{
    list_ud_t l = {s, json_array(), 0};
    if (!l.list) {
        kiln_err_set(err, KILN_ENOMEM, "out of memory");
        return NULL;
    }
    if (st_state_job_list_opts(s->st, state, project, 1, limit > 0 ? limit : 100, list_row, &l,
                               err) < 0 || l.oom) {
        if (l.oom)
            kiln_err_set(err, KILN_ENOMEM, "out of memory listing jobs");
        json_decref(l.list);
        return NULL;
    }
    return json_pack("{s:o}", "jobs", l.list);
}

json_t *ks_sched_workers_json(ks_sched_t *s)
{
    json_t *list = json_array();
    for (size_t i = 0; list && i < s->n_workers; i++) {
        const ks_worker_t *w = s->workers[i];
        if (!w->registered)
            continue;
        json_array_append_new(
            list, json_pack("{s:s, s:s, s:i, s:I, s:i, s:i, s:I, s:i, s:i, s:s, s:I, s:s}", "id",
                            w->id, "host", w->host, "cores", w->cores, "memory_mb",
                            (json_int_t)w->memory_mb, "gpus", w->gpus, "free_cores",
                            w->cores - w->used_cores, "free_memory_mb",
                            (json_int_t)(w->memory_mb - w->used_memory_mb), "free_gpus",
                            w->gpus - w->used_gpus, "running", w->n_running, "state",
                            w->lost ? "lost" : "alive", "last_heartbeat_ns",
                            (json_int_t)w->last_seen_ns, "gpu_names", w->gpu_names));
    }
    return list ? json_pack("{s:o}", "workers", list) : NULL;
}

json_t *ks_sched_health_json(ks_sched_t *s)
{
    size_t queued = 0, running = 0, workers = 0;
    for (size_t i = 0; i < s->n_live; i++) {
        if (s->live[i]->array_parent)
            continue;
        if (s->live[i]->state == ST_STATE_RUNNING)
            running++;
        else
            queued++;
    }
    for (size_t i = 0; i < s->n_workers; i++)
        workers += s->workers[i]->registered && !s->workers[i]->lost;
    return json_pack("{s:s, s:s, s:f, s:{s:I, s:I}, s:I, s:I, s:I}", "status", "ok", "version",
                     KILN_VERSION, "uptime_s", (double)(ks_now_ns() - s->started_ns) / 1e9,
                     "jobs", "queued", (json_int_t)queued, "running", (json_int_t)running,
                     "workers", (json_int_t)workers, "tasks_dispatched",
                     (json_int_t)s->tasks_dispatched, "tasks_done", (json_int_t)s->tasks_done);
}

int ks_sched_log_path(ks_sched_t *s, int64_t id, char *buf, size_t cap, kiln_err_t *err)
{
    int rc = ks_job_stored(s, id, NULL, err);
    if (rc < 0)
        return rc;
    snprintf(buf, cap, "%s/logs/%lld.log", s->dir, (long long)id);
    return 0;
}

st_state_t *ks_sched_state(ks_sched_t *s)
{
    return s->st;
}
