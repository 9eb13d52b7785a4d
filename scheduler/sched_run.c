/* sched_run.c - tasks and workers: dispatch (priority, fair share between
 * projects, quotas, array caps, gangs, resources), requeues and the task
 * message.  What workers say back and the timers are sched_msg.c's. */
#include "sched_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/kiln_alloc.h"
#include "core/kiln_sbuf.h"

#define NS_PER_MS 1000000LL

/* ---- workers */

ks_worker_t *ks_worker_find(ks_sched_t *s, const char *id)
{
    for (size_t i = 0; i < s->n_workers; i++)
        if (!strcmp(s->workers[i]->id, id))
            return s->workers[i];
    return NULL;
}

ks_worker_t *ks_worker_get(ks_sched_t *s, const char *id, kiln_err_t *err)
{
    ks_worker_t *w = ks_worker_find(s, id);
    if (w)
        return w;
    ks_worker_t **v = kiln_realloc(s->workers, (s->n_workers + 1) * sizeof *v);
    if (!v) {
        kiln_err_set(err, KILN_ENOMEM, "worker \"%s\": out of memory", id);
        return NULL;
    }
    s->workers = v;
    w = kiln_calloc(1, sizeof *w);
    if (!w || !(w->id = kiln_strdup(id))) {
        kiln_free(w);
        kiln_err_set(err, KILN_ENOMEM, "worker \"%s\": out of memory", id);
        return NULL;
    }
    w->last_seen_ns = ks_now_ns();
    s->workers[s->n_workers++] = w;
    return w;
}

static int worker_fits(const ks_worker_t *w, const jb_resources_t *r, int free_only)
{
    if (!w->registered || w->lost)
        return 0;
    int cores = w->cores - (free_only ? w->used_cores : 0);
    int gpus = w->gpus - (free_only ? w->used_gpus : 0);
    int64_t mem = w->memory_mb - (free_only ? w->used_memory_mb : 0);
    return cores >= r->cores && gpus >= r->gpus && (r->memory_mb == 0 || mem >= r->memory_mb);
}

/* The worker with the most free cores that fits r (CPU work prefers
 * workers without GPUs, keeping those free for GPU work). */
static ks_worker_t *place(ks_sched_t *s, const jb_resources_t *r)
{
    ks_worker_t *best = NULL;
    for (size_t i = 0; i < s->n_workers; i++) {
        ks_worker_t *w = s->workers[i];
        if (!worker_fits(w, r, 1))
            continue;
        if (!best)
            best = w;
        else if (r->gpus == 0 && (w->gpus == 0) != (best->gpus == 0))
            best = w->gpus == 0 ? w : best;
        else if (w->cores - w->used_cores > best->cores - best->used_cores)
            best = w;
    }
    return best;
}

static void take(ks_worker_t *w, const jb_resources_t *r, int sign)
{
    w->used_cores += sign * r->cores;
    w->used_gpus += sign * r->gpus;
    w->used_memory_mb += sign * r->memory_mb;
    w->n_running += sign;
}

void ks_task_release(ks_sched_t *s, ks_task_t *t)
{
    if (t->worker)
        take(t->worker, &t->job->res, -1);
    t->worker = NULL;
    ks_idmap_del(&s->running, t->id);
    s->dirty = 1;
}

/* ---- message text, built by hand: a task message per dispatch is the
 * scheduler's hottest path, and a jansson tree plus a dump cost more than
 * the rest of a dispatch together. */

static void sb_int(kiln_sbuf_t *b, int64_t v)
{
    char tmp[24];
    int n = 0;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do {
        tmp[sizeof tmp - 1 - n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        tmp[sizeof tmp - 1 - n++] = '-';
    kiln_sbuf_put(b, tmp + sizeof tmp - n, (size_t)n);
}

/* A JSON string's contents (no quotes). */
static void sb_esc(kiln_sbuf_t *b, const char *v)
{
    for (; *v; v++) {
        unsigned char c = (unsigned char)*v;
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            kiln_sbuf_put(b, e, 2);
        } else if (c < 0x20) {
            char e[8];
            snprintf(e, sizeof e, "\\u%04x", c);
            kiln_sbuf_put(b, e, 6);
        } else {
            kiln_sbuf_put(b, (const char *)&c, 1);
        }
    }
}

static void send_text(ks_sched_t *s, const char *worker_id, kc_msg_type_t type, kiln_sbuf_t *b)
{
    if (b->oom) {
        kiln_free(b->p);
        return;
    }
    s->ops.send(s->ud, worker_id, type, b->p, b->len);
}

void ks_send_cancel_to(ks_sched_t *s, const char *worker_id, int64_t task_id,
                           const char *lease)
{
    kiln_sbuf_t b = {0};
    kiln_sbuf_puts(&b, "{\"task_id\":");
    sb_int(&b, task_id);
    kiln_sbuf_puts(&b, ",\"lease_id\":\"");
    sb_esc(&b, lease);
    kiln_sbuf_puts(&b, "\"}");
    send_text(s, worker_id, KC_MSG_CANCEL, &b);
}

static void send_cancel(ks_sched_t *s, ks_task_t *t)
{
    if (!t->worker || !t->worker->registered || t->worker->lost)
        return;
    ks_send_cancel_to(s, t->worker->id, t->id, t->lease);
}

void ks_task_cancel_remote(ks_sched_t *s, ks_task_t *t)
{
    if (t->state != ST_STATE_RUNNING)
        return;
    send_cancel(s, t);
    ks_task_release(s, t);
    t->state = ST_STATE_CANCELLED;
    t->job->n_running--;
}

/* running -> queued (a retry, or its worker was lost), after delay_ms. */
int ks_task_requeue(ks_sched_t *s, ks_task_t *t, int64_t delay_ms, int tell_worker)
{
    kiln_err_t err;
    ks_job_t *j = t->job;
    if (st_state_task_requeue(s->st, t->id, t->lease, &err) < 0) {
        ks_job_log(s, j->id, "requeue of task %d refused: %s", t->idx, err.msg);
        return -1;
    }
    if (tell_worker)
        send_cancel(s, t);
    ks_task_release(s, t);
    t->state = ST_STATE_QUEUED;
    t->attempts++;
    t->not_before_ns = delay_ms > 0 ? ks_now_ns() + delay_ms * NS_PER_MS : 0;
    j->n_running--;
    j->n_queued++;
    if ((size_t)(t - j->tasks) < j->cursor)
        j->cursor = (size_t)(t - j->tasks);
    return 0;
}

/* A gang runs whole or not at all: one rank gone sends the others back too. */
void ks_gang_requeue(ks_sched_t *s, ks_job_t *j, int64_t delay_ms)
{
    for (size_t i = 0; i < j->n_tasks; i++)
        if (j->tasks[i].state == ST_STATE_RUNNING)
            ks_task_requeue(s, &j->tasks[i], delay_ms, 1);
}

int ks_is_gang(const ks_job_t *j)
{
    return j->res.ranks > 1;
}

void ks_job_start_finish(ks_sched_t *s, ks_job_t *j)
{
    if (j->finishing || st_state_status_is_final(j->state))
        return;
    if (!j->output || !j->type->finish) {
        ks_job_succeed(s, j);
        return;
    }
    if (!j->task_outputs) {
        j->task_outputs = kiln_calloc(j->n_tasks, sizeof *j->task_outputs);
        for (size_t i = 0; j->task_outputs && i < j->n_tasks; i++) {
            char path[1200];
            ks_job_task_output(s, j, j->tasks[i].idx, path, sizeof path);
            j->task_outputs[i] = kiln_strdup(path);
        }
    }
    for (size_t i = 0; j->task_outputs && i < j->n_tasks; i++)
        if (!j->task_outputs[i]) {
            ks_job_end(s, j, ST_STATE_FAILED, "finish_failed", "out of memory");
            return;
        }
    if (!j->task_outputs) {
        ks_job_end(s, j, ST_STATE_FAILED, "finish_failed", "out of memory");
        return;
    }
    j->finishing = 1;
    ks_job_log(s, j->id, "%s succeeded; finishing into %s",
               j->n_tasks == 1 ? "the task" : "every task", j->output);
    s->ops.finish(s->ud, j->id, j->type, j->parsed, (const char *const *)j->task_outputs,
                  j->n_tasks, j->output);
}

/* ---- dispatch */

static void u64_to_dec(char *dst, uint64_t v)
{
    char tmp[24];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        *dst++ = tmp[--n];
    *dst = '\0';
}

static void mark_running(ks_sched_t *s, ks_job_t *j, int64_t now)
{
    if (j->state != ST_STATE_QUEUED)
        return;
    kiln_err_t err;
    j->state = ST_STATE_RUNNING;
    j->started_ns = now;
    j->reason_code[0] = j->reason_text[0] = '\0';
    if (st_state_job_set_state(s->st, j->id, ST_STATE_RUNNING, NULL, NULL, now, &err) < 0)
        ks_job_log(s, j->id, "state store: %s", err.msg);
    if (j->array_parent) {
        ks_job_t *p = ks_idmap_get(&s->jobs, j->array_parent);
        if (p) {
            p->arr_running++;
            mark_running(s, p, now);
        }
    }
}

static int send_task(ks_sched_t *s, ks_task_t *t, ks_worker_t *w, int64_t now)
{
    ks_job_t *j = t->job;
    kiln_err_t err;
    /* "<boot>-<seq>": unique across restarts; built by hand, it is per task. */
    memcpy(t->lease, s->lease_prefix, s->lease_prefix_len);
    u64_to_dec(t->lease + s->lease_prefix_len, ++s->lease_seq);
    if (st_state_task_claim(s->st, t->id, t->lease, w->id, now, &err) < 0) {
        ks_job_log(s, j->id, "claim of task %d refused: %s", t->idx, err.msg);
        return -1;
    }
    if (!j->spec_text) {
        char *txt = json_dumps(j->spec, JSON_COMPACT);
        kiln_sbuf_t pre = {0};
        sb_esc(&pre, s->dir);
        kiln_sbuf_puts(&pre, "/tasks/");
        sb_int(&pre, j->id);
        kiln_sbuf_puts(&pre, "/");
        j->spec_text = txt ? kiln_strdup(txt) : NULL;
        free(txt);
        j->out_prefix = pre.oom ? NULL : pre.p;
        if (pre.oom)
            kiln_free(pre.p);
        if (!j->spec_text || !j->out_prefix)
            return -1;
    }
    kiln_sbuf_t b = {0};
    kiln_sbuf_puts(&b, "{\"task_id\":");
    sb_int(&b, t->id);
    kiln_sbuf_puts(&b, ",\"job_id\":");
    sb_int(&b, j->id);
    kiln_sbuf_puts(&b, ",\"lease_id\":\"");
    kiln_sbuf_puts(&b, t->lease);
    kiln_sbuf_puts(&b, "\",\"index\":");
    sb_int(&b, t->idx);
    kiln_sbuf_puts(&b, ",\"win0\":");
    sb_int(&b, t->win0);
    kiln_sbuf_puts(&b, ",\"n_windows\":");
    sb_int(&b, t->n_windows);
    kiln_sbuf_puts(&b, ",\"output\":\"");
    kiln_sbuf_puts(&b, j->out_prefix);
    sb_int(&b, t->idx);
    kiln_sbuf_puts(&b, ".out\"");
    if (t->attempts) {
        kiln_sbuf_puts(&b, ",\"attempt\":");
        sb_int(&b, t->attempts);
    }
    if (j->array_index >= 0) {
        kiln_sbuf_puts(&b, ",\"array_index\":");
        sb_int(&b, j->array_index);
    }
    if (ks_mpi_launched(j)) {
        char *f = ks_mpi_task_fields(j, t, w);
        if (!f)
            b.oom = 1;
        else
            kiln_sbuf_puts(&b, f);
        kiln_free(f);
    }
    kiln_sbuf_puts(&b, ",\"spec\":");
    kiln_sbuf_puts(&b, j->spec_text);
    kiln_sbuf_puts(&b, "}");
    if (b.oom) {
        kiln_free(b.p);
        return -1;
    }
    t->state = ST_STATE_RUNNING;
    t->worker = w;
    t->dispatched_ns = now;
    t->done = t->total = 0;
    t->exec_sent = 0;
    take(w, &j->res, 1);
    if (ks_idmap_put(&s->running, t->id, t) < 0) {
        take(w, &j->res, -1);
        t->worker = NULL;
        t->state = ST_STATE_QUEUED;
        kiln_free(b.p);
        return -1;
    }
    j->n_queued--;
    j->n_running++;
    s->tasks_dispatched++;
    mark_running(s, j, now);
    send_text(s, w->id, KC_MSG_TASK, &b);
    return 0;
}

/* The next queued task whose backoff is over, or NULL. */
static ks_task_t *next_task(ks_job_t *j, int64_t now)
{
    while (j->cursor < j->n_tasks && j->tasks[j->cursor].state != ST_STATE_QUEUED)
        j->cursor++;
    for (size_t i = j->cursor; i < j->n_tasks; i++) {
        ks_task_t *t = &j->tasks[i];
        if (t->state == ST_STATE_QUEUED && t->not_before_ns <= now)
            return t;
    }
    return NULL;
}

static void resources_text(const jb_resources_t *r, char *buf, size_t cap)
{
    int n = snprintf(buf, cap, "%d core%s", r->cores, r->cores == 1 ? "" : "s");
    if (r->memory_mb && n > 0 && (size_t)n < cap)
        n += snprintf(buf + n, cap - (size_t)n, ", %lld MB", (long long)r->memory_mb);
    if (r->gpus && n > 0 && (size_t)n < cap)
        snprintf(buf + n, cap - (size_t)n, ", %d GPU%s", r->gpus, r->gpus == 1 ? "" : "s");
}

static void reason_no_fit(ks_sched_t *s, ks_job_t *j, int gang_fit)
{
    char what[96];
    resources_text(&j->res, what, sizeof what);
    size_t alive = 0, could = 0;
    for (size_t i = 0; i < s->n_workers; i++) {
        alive += s->workers[i]->registered && !s->workers[i]->lost;
        could += worker_fits(s->workers[i], &j->res, 0);
    }
    if (!alive)
        ks_job_set_reason(s, j, "no_workers", "no worker is connected");
    else if (!could)
        ks_job_set_reason(s, j, "resources", "no worker with %s", what);
    else if (ks_is_gang(j))
        ks_job_set_reason(s, j, "gang", "needs %zu ranks of %s at once; %d fit now",
                          j->n_tasks, what, gang_fit);
    else
        ks_job_set_reason(s, j, "resources", "waiting for a worker with %s free", what);
}

/* Places every rank of a gang, or none. */
static int place_gang(ks_sched_t *s, ks_job_t *j, int64_t now, int *fit)
{
    ks_worker_t *w[1024];
    size_t n = j->n_tasks;
    *fit = 0;
    if (n > 1024 || j->n_queued != n)
        return 0;
    for (size_t i = 0; i < n; i++) {
        if (!(w[i] = place(s, &j->res)))
            break;
        take(w[i], &j->res, 1);
        (*fit)++;
    }
    for (int i = 0; i < *fit; i++)
        take(w[i], &j->res, -1);
    if ((size_t)*fit < n)
        return 0;
    /* Backwards: an MPI gang's task 0 names where every other rank went. */
    for (size_t i = n; i-- > 0;)
        if (send_task(s, &j->tasks[i], w[i], now) < 0)
            return -1;
    return 1;
}

typedef struct {
    const char *project;
    int cores;
} usage_t;

static int cand_cmp(const void *a, const void *b)
{
    const ks_job_t *x = *(ks_job_t *const *)a, *y = *(ks_job_t *const *)b;
    if (x->priority != y->priority)
        return x->priority > y->priority ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

static int cand_push(ks_sched_t *s, size_t n, ks_job_t *j)
{
    if (n == s->cap_cand) {
        size_t cap = s->cap_cand ? s->cap_cand * 2 : 64;
        ks_job_t **v = kiln_realloc(s->cand, cap * sizeof *v);
        if (!v)
            return -1;
        s->cand = v;
        s->cap_cand = cap;
    }
    s->cand[n] = j;
    return 0;
}

/* Is j ready to be offered resources?  Sets its reason when not. */
static int ready(ks_sched_t *s, ks_job_t *j, int64_t now, size_t free_slots, ks_job_t ***end,
                 size_t *n_end)
{
    if (j->finishing || st_state_status_is_final(j->state) || j->is_template)
        return 0;   /* a template's reason is sched_recur.c's ("schedule") */
    while (j->n_deps_ok < j->n_deps) {
        int64_t d = j->deps[j->n_deps_ok];
        if (ks_idmap_get(&s->jobs, d)) {
            ks_job_set_reason(s, j, "dependency", "waiting for job %lld", (long long)d);
            return 0;
        }
        st_state_job_t row;
        kiln_err_t err;
        st_state_status_t st = ST_STATE_FAILED;
        if (st_state_job_get(s->st, d, &row, &err) == 0) {
            st = row.state;
            st_state_job_free(&row);
        }
        if (st != ST_STATE_SUCCEEDED) {
            ks_job_t **v = kiln_realloc(*end, (*n_end + 1) * sizeof *v);
            if (v) {
                *end = v;
                v[(*n_end)++] = j;
            }
            ks_job_set_reason(s, j, "dependency_failed", "dependency job %lld ended %s",
                              (long long)d, st_state_status_name(st));
            return 0;
        }
        if (++j->n_deps_ok == j->n_deps && s->n_with_deps)
            s->n_with_deps--;
    }
    if (j->is_pipeline) {
        kiln_err_t err = {0};
        if (j->arr_next == 0 && ks_pipe_expand(s, j, &err) < 0) {
            ks_job_set_reason(s, j, "plan_failed", "submitting its steps: %s", err.msg);
            ks_job_t **v = kiln_realloc(*end, (*n_end + 1) * sizeof *v);
            if (v) {
                *end = v;
                v[(*n_end)++] = j;
            }
        } else if (j->state == ST_STATE_QUEUED) {
            ks_job_set_reason(s, j, "steps", "waiting for its steps to start");
        }
        return 0;
    }
    if (!j->planned && !j->cache_checked && j->array_parent) {
        j->cache_checked = 1;
        if (ks_pipe_cache_check(s, j)) {
            ks_job_set_reason(s, j, "cached", "output unchanged since an earlier run");
            ks_job_t **v = kiln_realloc(*end, (*n_end + 1) * sizeof *v);
            if (v) {
                *end = v;
                v[(*n_end)++] = j;
            }
            return 0;
        }
    }
    if (j->is_array) {
        kiln_err_t err;
        while (j->arr_next <= j->arr_last && (j->arr_cap == 0 || j->arr_live < (size_t)j->arr_cap) &&
               j->arr_live - j->arr_running <= free_slots) {
            if (!ks_job_instance_new(s, j, &err)) {
                ks_job_log(s, j->id, "instance %lld: %s", (long long)j->arr_next, err.msg);
                ks_job_t **v = kiln_realloc(*end, (*n_end + 1) * sizeof *v);
                if (v) {
                    *end = v;
                    v[(*n_end)++] = j;
                }
                break;
            }
        }
        if (j->state == ST_STATE_QUEUED && j->arr_cap && j->arr_live >= (size_t)j->arr_cap)
            ks_job_set_reason(s, j, "array_cap", "%zu of at most %d instances running",
                              j->arr_running, j->arr_cap);
        return 0;
    }
    if (!j->planned) {
        kiln_err_t err;
        if (ks_job_plan(s, j, &err) < 0) {
            ks_job_set_reason(s, j, "plan_failed", "%s", err.msg);
            ks_job_t **v = kiln_realloc(*end, (*n_end + 1) * sizeof *v);
            if (v) {
                *end = v;
                v[(*n_end)++] = j;
            }
            return 0;
        }
    }
    if (j->n_tasks && j->n_succeeded == j->n_tasks) {
        ks_job_start_finish(s, j);
        return 0;
    }
    if (j->n_queued == 0)
        return 0;
    if (ks_is_gang(j) && j->n_running)
        return 0;   /* a rank is still being called back */
    if (!next_task(j, now)) {
        if (j->state == ST_STATE_QUEUED)
            ks_job_set_reason(s, j, "retry_backoff", "waiting to retry after a failure");
        return 0;
    }
    int quota = ks_quota_of(s, j->project);
    if (quota && ks_project_cores(s, j->project) + j->res.cores > quota) {
        ks_job_set_reason(s, j, "project_quota", "project quota: \"%s\" may use %d cores at once",
                          j->project, quota);
        return 0;
    }
    return 1;
}

void ks_sched_dispatch(ks_sched_t *s)
{
    if (!s->dirty)
        return;
    s->dirty = 0;
    int64_t now = ks_now_ns();
    size_t free_slots = 0;
    for (size_t i = 0; i < s->n_workers; i++) {
        ks_worker_t *w = s->workers[i];
        if (w->registered && !w->lost && w->cores > w->used_cores)
            free_slots += (size_t)(w->cores - w->used_cores);
    }

    ks_job_t **end = NULL;
    size_t n_end = 0, n = 0;
    /* live grows while we look (array instances): those are seen too. */
    for (size_t i = 0; i < s->n_live; i++) {
        ks_job_t *j = s->live[i];
        if (ready(s, j, now, free_slots, &end, &n_end) && cand_push(s, n, j) == 0)
            n++;
    }
    if (n > 1)
        qsort(s->cand, n, sizeof *s->cand, cand_cmp);

    /* Fair share: within the best priority, the project using the fewest
     * cores right now goes first. */
    usage_t usage[64];
    size_t n_usage = 0;
    size_t first = 0;
    while (first < n && free_slots > 0) {
        int prio = s->cand[first]->priority;
        size_t best = (size_t)-1;
        int best_use = 0;
        for (size_t i = first; i < n; i++) {
            if (!s->cand[i])
                continue;
            if (s->cand[i]->priority != prio)
                break;
            const char *p = s->cand[i]->project;
            size_t u;
            for (u = 0; u < n_usage && strcmp(usage[u].project, p); u++)
                ;
            if (u == n_usage && n_usage < 64) {
                usage[n_usage].project = p;
                usage[n_usage++].cores = ks_project_cores(s, p);
            }
            int use = u < n_usage ? usage[u].cores : 0;
            if (best == (size_t)-1 || use < best_use) {
                best = i;
                best_use = use;
            }
        }
        if (best == (size_t)-1) {   /* every job of this priority is done */
            while (first < n && (!s->cand[first] || s->cand[first]->priority == prio))
                first++;
            continue;
        }
        ks_job_t *j = s->cand[best];
        int placed = 0, fit = 0;
        if (ks_is_gang(j)) {
            placed = place_gang(s, j, now, &fit) > 0;
        } else {
            ks_task_t *t = next_task(j, now);
            ks_worker_t *w = t ? place(s, &j->res) : NULL;
            placed = w && send_task(s, t, w, now) == 0;
        }
        if (placed) {
            for (size_t u = 0; u < n_usage; u++)
                if (!strcmp(usage[u].project, j->project))
                    usage[u].cores += j->res.cores * (ks_is_gang(j) ? (int)j->n_tasks : 1);
            int cores = j->res.cores * (ks_is_gang(j) ? (int)j->n_tasks : 1);
            free_slots = free_slots > (size_t)cores ? free_slots - (size_t)cores : 0;
            int quota = ks_quota_of(s, j->project);
            if (!ks_is_gang(j) && next_task(j, now) &&
                !(quota && ks_project_cores(s, j->project) + j->res.cores > quota))
                continue;   /* it may take another slot */
        } else {
            reason_no_fit(s, j, fit);
        }
        s->cand[best] = NULL;
        while (first < n && !s->cand[first])
            first++;
    }
    for (size_t i = first; i < n; i++)
        if (s->cand[i] && s->cand[i]->state == ST_STATE_QUEUED)
            reason_no_fit(s, s->cand[i], 0);

    for (size_t i = 0; i < n_end; i++) {
        ks_job_t *j = end[i];
        if (ks_idmap_get(&s->jobs, j->id) != j)
            continue;
        if (!strcmp(j->reason_code, "dependency_failed"))
            ks_job_end(s, j, ST_STATE_CANCELLED, "dependency_failed", "%s", j->reason_text);
        else if (!strcmp(j->reason_code, "cached"))
            ks_job_end(s, j, ST_STATE_SUCCEEDED, "cached", "%s", j->reason_text);
        else
            ks_job_end(s, j, ST_STATE_FAILED, "plan_failed", "%s", j->reason_text);
    }
    kiln_free(end);
}
