/* sched_reload.c - what a (re)started kilnd rebuilds from the state store:
 * every unfinished job with its tasks (running ones keep their worker and
 * lease until that worker speaks again or the lease runs out), and each
 * array's count of ended instances. */
#include "sched_int.h"

#include <stdio.h>
#include <string.h>

#include "core/kiln_alloc.h"

typedef struct {
    int64_t *ids;
    size_t   n, cap;
    int      oom;
} idvec_t;

typedef struct {
    idvec_t  open;       /* unfinished jobs */
    idvec_t  ended_kids; /* parent ids of ended instances, with state below */
    int     *ended_ok;
    int64_t *kid_index;  /* per ended instance */
} reload_t;

static int idvec_push(idvec_t *v, int64_t id)
{
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 256;
        int64_t *p = kiln_realloc(v->ids, cap * sizeof *p);
        if (!p) {
            v->oom = 1;
            return 1;
        }
        v->ids = p;
        v->cap = cap;
    }
    v->ids[v->n++] = id;
    return 0;
}

static int collect_open(const st_state_job_t *row, void *ud)
{
    reload_t *r = ud;
    if (!st_state_status_is_final(row->state))
        return idvec_push(&r->open, row->id);
    if (!row->array_parent)
        return 0;
    size_t n = r->ended_kids.n;
    if (idvec_push(&r->ended_kids, row->array_parent))
        return 1;
    int *ok = kiln_realloc(r->ended_ok, r->ended_kids.cap * sizeof *ok);
    int64_t *ix = ok ? kiln_realloc(r->kid_index, r->ended_kids.cap * sizeof *ix) : NULL;
    if (ok)
        r->ended_ok = ok;
    if (ix)
        r->kid_index = ix;
    if (!ok || !ix) {
        r->ended_kids.oom = 1;
        return 1;
    }
    r->ended_ok[n] = row->state == ST_STATE_SUCCEEDED;
    r->kid_index[n] = row->array_index;
    return 0;
}

typedef struct {
    ks_sched_t *s;
    ks_job_t   *j;
    size_t      n;
} task_load_t;

static int count_task(const st_state_task_t *t, void *ud)
{
    (void)t;
    ((task_load_t *)ud)->n++;
    return 0;
}

static int load_task(const st_state_task_t *row, void *ud)
{
    task_load_t *tl = ud;
    ks_job_t *j = tl->j;
    if (j->n_tasks >= tl->n)
        return 1;
    ks_task_t *t = &j->tasks[j->n_tasks++];
    t->id = row->id;
    t->idx = row->idx;
    t->win0 = row->win0;
    t->n_windows = row->n_windows;
    t->attempts = row->attempts;
    t->job = j;
    t->state = row->state;
    if (row->state == ST_STATE_SUCCEEDED) {
        j->n_succeeded++;
    } else if (row->state == ST_STATE_RUNNING && row->lease_id && row->worker_id) {
        kiln_err_t err;
        ks_worker_t *w = ks_worker_get(tl->s, row->worker_id, &err);
        if (!w)
            return 1;
        snprintf(t->lease, sizeof t->lease, "%s", row->lease_id);
        t->worker = w;
        t->dispatched_ns = row->started_ns;
        w->n_running++;
        w->used_cores += j->res.cores;
        w->used_gpus += j->res.gpus;
        w->used_memory_mb += j->res.memory_mb;
        j->n_running++;
        if (ks_idmap_put(&tl->s->running, t->id, t) < 0)
            return 1;
    } else {
        /* queued, or failed/cancelled leftovers of a retry: run again */
        t->state = ST_STATE_QUEUED;
        j->n_queued++;
    }
    return 0;
}

static int reload_job(ks_sched_t *s, int64_t id, kiln_err_t *err)
{
    st_state_job_t row;
    int rc = st_state_job_get(s->st, id, &row, err);
    if (rc < 0)
        return rc;
    json_error_t jerr;
    json_t *spec = json_loads(row.spec_json, JSON_REJECT_DUPLICATES, &jerr);
    jb_common_t c;
    ks_job_t *j = NULL;
    if (spec && jb_common_parse(spec, &c, err) == 0) {
        /* An array's instance has its array's depends_on in its spec, waited
         * for already; a pipeline's step waits for its own. */
        const ks_job_t *p = row.array_parent ? ks_idmap_get(&s->jobs, row.array_parent) : NULL;
        if (row.array_parent && !(p && p->is_pipeline))
            c.n_depends_on = 0;
        j = ks_job_build(spec, &c, err);
    } else {
        if (!spec)
            kiln_err_set(err, KILN_EJSON, "stored spec: %s", jerr.text);
        json_decref(spec);
    }
    if (!j) {
        /* A spec this build no longer accepts: end it rather than stop the scheduler. */
        st_state_job_set_state(s->st, id, ST_STATE_FAILED, "invalid_spec", err->msg,
                               ks_now_ns(), NULL);
        st_state_job_free(&row);
        return 0;
    }
    j->id = row.id;
    j->state = row.state;
    j->submitted_ns = row.submitted_ns;
    j->started_ns = row.started_ns;
    j->attempts = row.attempts;
    j->array_parent = row.array_parent;
    j->array_index = row.array_index;
    j->scheduled_by = row.scheduled_by;
    j->scheduled_for_ns = row.scheduled_for_ns;
    if (row.reason_code)
        snprintf(j->reason_code, sizeof j->reason_code, "%s", row.reason_code);
    if (row.reason_text)
        snprintf(j->reason_text, sizeof j->reason_text, "%s", row.reason_text);
    if (row.array_parent || row.scheduled_by) {
        char *nm = (row.name ? kiln_strdup(row.name) : NULL);
        if (nm) {
            kiln_free(j->name);
            j->name = nm;
        }
    }
    /* Dependencies that already succeeded need no more waiting. */
    for (size_t i = 0; i < row.n_depends_on && i < j->n_deps; i++)
        j->deps[i] = row.depends_on[i];
    st_state_job_free(&row);

    task_load_t tl = {s, j, 0};
    if ((rc = st_state_task_list(s->st, j->id, count_task, &tl, err)) < 0)
        goto fail;
    if (tl.n) {
        if (!(j->tasks = kiln_calloc(tl.n, sizeof *j->tasks))) {
            rc = kiln_err_set(err, KILN_ENOMEM, "job %lld: out of memory", (long long)id);
            goto fail;
        }
        if ((rc = st_state_task_list(s->st, j->id, load_task, &tl, err)) < 0)
            goto fail;
        if (j->n_tasks != tl.n) {
            rc = kiln_err_set(err, KILN_ENOMEM, "job %lld: out of memory loading tasks",
                              (long long)id);
            goto fail;
        }
        j->planned = 1;
    }
    if (j->array_parent) {
        ks_job_t *p = ks_idmap_get(&s->jobs, j->array_parent);
        if (p) {
            p->arr_live++;
            if (j->array_index >= p->arr_next)
                p->arr_next = j->array_index + 1;
            if (j->state == ST_STATE_RUNNING)
                p->arr_running++;
        }
    }
    if ((j->is_template || j->scheduled_by) && (rc = ks_recur_reloaded(s, j, err)) < 0)
        goto fail;
    if (ks_live_add(s, j) < 0) {
        rc = kiln_err_set(err, KILN_ENOMEM, "job %lld: out of memory", (long long)id);
        goto fail;
    }
    ks_job_log(s, j->id, "reloaded by kilnd: %s, %zu of %zu tasks done, %zu running",
               st_state_status_name(j->state), j->n_succeeded, j->n_tasks, j->n_running);
    return 0;
fail:
    for (size_t i = 0; i < j->n_tasks; i++)
        if (j->tasks[i].state == ST_STATE_RUNNING)
            ks_idmap_del(&s->running, j->tasks[i].id);
    ks_job_free(j);
    return rc;
}

int ks_sched_reload(ks_sched_t *s, kiln_err_t *err)
{
    reload_t r = {0};
    int rc = st_state_job_list(s->st, NULL, NULL, collect_open, &r, err);
    if (rc == 0 && (r.open.oom || r.ended_kids.oom))
        rc = kiln_err_set(err, KILN_ENOMEM, "reloading jobs: out of memory");
    for (size_t i = 0; rc == 0 && i < r.open.n; i++)
        rc = reload_job(s, r.open.ids[i], err);
    /* Ended instances count toward their array. */
    for (size_t i = 0; rc == 0 && i < r.ended_kids.n; i++) {
        ks_job_t *p = ks_idmap_get(&s->jobs, r.ended_kids.ids[i]);
        if (!p)
            continue;
        p->arr_ended++;
        p->arr_succeeded += (size_t)r.ended_ok[i];
        if (r.kid_index[i] >= p->arr_next)
            p->arr_next = r.kid_index[i] + 1;
    }
    kiln_free(r.open.ids);
    kiln_free(r.ended_kids.ids);
    kiln_free(r.ended_ok);
    kiln_free(r.kid_index);
    for (size_t i = 0; rc == 0 && i < s->n_live; i++)
        if (s->live[i]->is_array)
            ks_array_check_done(s, s->live[i]);
    return rc;
}

