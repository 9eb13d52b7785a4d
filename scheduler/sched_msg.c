/* sched_msg.c - what workers say (hello, heartbeat, progress, done,
 * failed; an MPI launch agent's exec) and the timers (lost workers,
 * timeouts, retry backoff, recurring jobs' fire times). */
#include "sched_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/kiln_alloc.h"

#define NS_PER_MS 1000000LL

/* ---- worker messages */

static const char *body_str(const json_t *b, const char *k)
{
    const char *v = json_string_value(json_object_get(b, k));
    return v ? v : "";
}

static ks_task_t *task_of(ks_sched_t *s, const json_t *b, const char *what)
{
    int64_t id = json_integer_value(json_object_get(b, "task_id"));
    const char *lease = body_str(b, "lease_id");
    ks_task_t *t = ks_idmap_get(&s->running, id);
    if (!t || strcmp(t->lease, lease)) {
        (void)what;
        return NULL;   /* a stale lease: the task was requeued or ended */
    }
    return t;
}

static void log_tail(ks_sched_t *s, const ks_task_t *t, const kc_msg_t *m)
{
    if (m->n_blobs == 0 || m->blobs[0].len == 0)
        return;
    const char *p = m->blobs[0].data;
    int len = m->blobs[0].len > 65536 ? 65536 : (int)m->blobs[0].len;
    ks_job_log(s, t->job->id, "task %d (attempt %d) output:\n%.*s", t->idx, t->attempts, len, p);
}

static void on_done(ks_sched_t *s, const kc_msg_t *m)
{
    ks_task_t *t = task_of(s, m->body, "done");
    if (!t)
        return;
    ks_job_t *j = t->job;
    kiln_err_t err;
    ks_metrics_task_ended(s, t, ks_now_ns());
    /* A task's own output path matters only to a job that merges them. */
    if (st_state_task_finish(s->st, t->id, t->lease, ST_STATE_SUCCEEDED,
                             j->output ? body_str(m->body, "output") : NULL, ks_now_ns(),
                             &err) < 0) {
        ks_job_log(s, j->id, "task %d: %s", t->idx, err.msg);
        return;
    }
    log_tail(s, t, m);
    ks_task_release(s, t);
    t->state = ST_STATE_SUCCEEDED;
    j->n_running--;
    j->n_succeeded++;
    s->tasks_done++;
    if (t->idx == 0 && ks_mpi_launched(j))
        ks_mpi_rank0_done(s, j);
    if (j->n_succeeded == j->n_tasks)
        ks_job_start_finish(s, j);
}

static void on_failed(ks_sched_t *s, const kc_msg_t *m)
{
    ks_task_t *t = task_of(s, m->body, "failed");
    if (!t)
        return;
    ks_job_t *j = t->job;
    const char *code = body_str(m->body, "code");
    const char *reason = body_str(m->body, "reason");
    kiln_err_t err;
    ks_metrics_task_ended(s, t, ks_now_ns());
    log_tail(s, t, m);
    if (!strcmp(code, "cancelled")) {
        /* The worker stopped it on its own (shutting down): run it elsewhere. */
        ks_job_log(s, j->id, "task %d stopped by worker %s: %s; requeued", t->idx,
                   t->worker ? t->worker->id : "?", reason);
        if (ks_is_gang(j))
            ks_gang_requeue(s, j, 0);
        else
            ks_task_requeue(s, t, 0, 0);
        return;
    }
    int oom = !strcmp(code, "out_of_memory");
    j->attempts++;
    st_state_job_set_attempts(s->st, j->id, j->attempts, &err);
    if (!oom && j->attempts <= j->max_retries) {
        int64_t delay = s->opts.retry_backoff_ms;
        for (int i = 1; i < j->attempts && delay < 300000; i++)
            delay *= 2;
        ks_job_log(s, j->id, "task %d failed (%s: %s); retry %d of %d in %.1f s", t->idx, code,
                   reason, j->attempts, j->max_retries, (double)delay / 1000);
        if (ks_is_gang(j))
            ks_gang_requeue(s, j, delay);
        else
            ks_task_requeue(s, t, delay, 0);
        return;
    }
    if (st_state_task_finish(s->st, t->id, t->lease, ST_STATE_FAILED, NULL, ks_now_ns(),
                             &err) < 0)
        ks_job_log(s, j->id, "task %d: %s", t->idx, err.msg);
    ks_task_release(s, t);
    t->state = ST_STATE_FAILED;
    j->n_running--;
    if (oom)
        ks_job_end(s, j, ST_STATE_OUT_OF_MEMORY, "out_of_memory", "task %d ran out of memory: %s",
                   t->idx, reason);
    else
        ks_job_end(s, j, ST_STATE_FAILED, "task_failed", "task %d failed (%s): %s%s", t->idx,
                   code, reason, j->max_retries ? " (no retries left)" : "");
}

/* A task of w that the worker no longer lists, or a lost worker's task. */
static void task_lost(ks_sched_t *s, ks_task_t *t, const char *why)
{
    ks_job_t *j = t->job;
    t->node_fails++;
    if (t->node_fails > s->opts.max_node_fails) {
        ks_job_end(s, j, ST_STATE_NODE_FAIL, "node_fail", "task %d lost its worker %d times (%s)",
                   t->idx, t->node_fails, why);
        return;
    }
    ks_job_log(s, j->id, "task %d requeued: %s", t->idx, why);
    if (ks_is_gang(j))
        ks_gang_requeue(s, j, 0);
    else
        ks_task_requeue(s, t, 0, 0);
}

static int listed(const json_t *running, const ks_task_t *t)
{
    size_t i;
    json_t *e;
    json_array_foreach(running, i, e) {
        if (json_integer_value(json_object_get(e, "task_id")) == t->id &&
            !strcmp(body_str(e, "lease_id"), t->lease))
            return 1;
    }
    return 0;
}

static int on_hello(ks_sched_t *s, const char *worker_id, const kc_msg_t *m, kiln_err_t *err)
{
    const json_t *b = m->body;
    const json_t *cores = json_object_get(b, "cores");
    ks_worker_t *w = ks_worker_find(s, worker_id);
    if (!json_is_integer(cores) && (!w || !w->registered))
        return kiln_err_set(err, KILN_ENOTFOUND,
                            "worker \"%s\": heartbeat before hello, without resources", worker_id);
    if (!w && !(w = ks_worker_get(s, worker_id, err)))
        return err->code;
    int64_t now = ks_now_ns();
    int fresh = !w->registered || w->lost;
    if (json_is_integer(cores)) {
        w->cores = (int)json_integer_value(cores);
        w->memory_mb = json_integer_value(json_object_get(b, "memory_mb"));
        w->gpus = (int)json_integer_value(json_object_get(b, "gpus"));
        snprintf(w->host, sizeof w->host, "%s", body_str(b, "host"));
        const json_t *names = json_object_get(b, "gpu_names");
        size_t i, len = 0;
        const json_t *nm;
        w->gpu_names[0] = '\0';
        json_array_foreach(names, i, nm) {
            int k = snprintf(w->gpu_names + len, sizeof w->gpu_names - len, "%s%s",
                             i ? ", " : "", json_string_value(nm) ? json_string_value(nm) : "?");
            if (k < 0 || (size_t)k >= sizeof w->gpu_names - len)
                break;
            len += (size_t)k;
        }
        w->gpu_memory_mb = 0;
        json_array_foreach(json_object_get(b, "gpu_memory_mb"), i, nm)
            if (json_integer_value(nm) > 0)
                w->gpu_memory_mb += json_integer_value(nm);
    }
    w->registered = 1;
    w->lost = 0;
    w->last_seen_ns = now;
    if (fresh) {
        s->dirty = 1;
        if (st_state_worker_hello(s->st, w->id, w->cores > 0 ? w->cores : 1, w->memory_mb,
                                  w->gpus, now, err) < 0)
            return err->code;
    }
    const json_t *running = json_object_get(b, "running");
    if (!json_is_array(running))
        return 0;
    /* Leases the worker holds that we do not: stop them. */
    size_t i;
    json_t *e;
    json_array_foreach(running, i, e) {
        int64_t id = json_integer_value(json_object_get(e, "task_id"));
        const char *lease = body_str(e, "lease_id");
        ks_task_t *t = ks_idmap_get(&s->running, id);
        if (t && !strcmp(t->lease, lease))
            continue;
        ks_send_cancel_to(s, w->id, id, lease);
    }
    /* Tasks we think it runs that it does not list, well after dispatch:
     * the task message or its result was lost (kilnd restarted). */
    int64_t gone[256];
    size_t n_gone = 0;
    int64_t id;
    void *v;
    for (size_t it = 0; n_gone < 256 && ks_idmap_next(&s->running, &it, &id, &v);) {
        ks_task_t *t = v;
        if (t->worker == w && now - t->dispatched_ns > s->opts.lease_ms * NS_PER_MS &&
            !listed(running, t))
            gone[n_gone++] = id;
    }
    /* By id: requeueing one rank of a gang, or ending a job, changes the others. */
    for (size_t k = 0; k < n_gone; k++) {
        ks_task_t *t = ks_idmap_get(&s->running, gone[k]);
        if (t && t->worker == w)
            task_lost(s, t, "its worker no longer runs it");
    }
    return 0;
}

int ks_sched_on_msg(ks_sched_t *s, const char *worker_id, const kc_msg_t *m, kiln_err_t *err)
{
    ks_worker_t *w;
    switch (m->type) {
    case KC_MSG_HELLO:
    case KC_MSG_HEARTBEAT:
        return on_hello(s, worker_id, m, err);
    case KC_MSG_PROGRESS: {
        if ((w = ks_worker_find(s, worker_id)))
            w->last_seen_ns = ks_now_ns();
        ks_task_t *t = task_of(s, m->body, "progress");
        if (t) {
            t->done = json_integer_value(json_object_get(m->body, "done"));
            t->total = json_integer_value(json_object_get(m->body, "total"));
        }
        return 0;
    }
    case KC_MSG_DONE:
        on_done(s, m);
        return 0;
    case KC_MSG_FAILED:
        on_failed(s, m);
        return 0;
    case KC_MSG_EXEC:
        return ks_mpi_on_exec(s, worker_id, m, err);
    default:
        return kiln_err_set(err, KILN_EINVAL, "worker \"%s\" sent a %s message", worker_id,
                            kc_msg_type_name(m->type));
    }
}

/* ---- timers */

void ks_sched_tick(ks_sched_t *s)
{
    int64_t now = ks_now_ns();
    kiln_err_t err;
    for (size_t i = 0; i < s->n_workers; i++) {
        ks_worker_t *w = s->workers[i];
        if (w->lost || now - w->last_seen_ns <= s->opts.lease_ms * NS_PER_MS)
            continue;
        w->lost = 1;
        st_state_worker_mark_lost(s->st, w->id, &err);
        int64_t gone[1024];
        size_t n_gone = 0;
        int64_t id;
        void *v;
        for (size_t it = 0; n_gone < 1024 && ks_idmap_next(&s->running, &it, &id, &v);)
            if (((ks_task_t *)v)->worker == w)
                gone[n_gone++] = id;
        for (size_t k = 0; k < n_gone; k++) {
            ks_task_t *t = ks_idmap_get(&s->running, gone[k]);
            if (!t || t->worker != w)
                continue;
            char why[200];
            snprintf(why, sizeof why, "worker %s silent for %.1f s (lost)", w->id,
                     (double)(now - w->last_seen_ns) / 1e9);
            task_lost(s, t, why);
        }
        s->dirty = 1;
    }
    /* Timeouts: collected first, since ending a job changes the live set. */
    ks_job_t *late[256];
    size_t n_late = 0;
    for (size_t i = 0; i < s->n_live && n_late < 256; i++) {
        ks_job_t *j = s->live[i];
        if (j->timeout_s > 0 && j->state == ST_STATE_RUNNING && j->started_ns &&
            (double)(now - j->started_ns) / 1e9 > j->timeout_s)
            late[n_late++] = j;
    }
    for (size_t i = 0; i < n_late; i++)
        if (ks_idmap_get(&s->jobs, late[i]->id) == late[i])
            ks_job_end(s, late[i], ST_STATE_TIMEOUT, "timeout", "ran longer than timeout_s = %g s",
                       late[i]->timeout_s);
    ks_recur_tick(s, now);
    s->dirty = 1;   /* retry backoffs may have ended */
}
