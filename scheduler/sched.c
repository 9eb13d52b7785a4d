/* sched.c - jobs in and out of the scheduler: reload at start, submit
 * (validate, admit, store), plan into tasks, array instances, the end of a
 * job and what follows from it (dependents, the array it belongs to).
 * Recurring jobs' templates and their instances: sched_recur.c. */
#include "sched_int.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/kiln_alloc.h"

int64_t ks_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ---- small helpers */

static char *dup_str(const char *v)
{
    return v ? kiln_strdup(v) : NULL;
}

static int mkdir_p(const char *path)
{
    char buf[1024];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf)
        return -1;
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0755) < 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    return mkdir(buf, 0755) < 0 && errno != EEXIST ? -1 : 0;
}

void ks_job_log(ks_sched_t *s, int64_t job_id, const char *fmt, ...)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/logs/%lld.log", s->dir, (long long)job_id);
    FILE *f = fopen(path, "a");
    if (!f)
        return;   /* a log line is never worth failing a job for */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char when[40];
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
    fprintf(f, "%s.%03ldZ ", when, ts.tv_nsec / 1000000);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(f, fmt, ap);
    va_end(ap);
    fputc('\n', f);
    fclose(f);
}

int ks_quota_of(const ks_sched_t *s, const char *project)
{
    for (size_t i = 0; i < s->opts.n_quotas; i++)
        if (!strcmp(s->opts.quotas[i].quota_project, project))
            return s->opts.quotas[i].quota_cores;
    return 0;
}

int ks_project_cores(const ks_sched_t *s, const char *project)
{
    int n = 0;
    for (size_t i = 0; i < s->n_live; i++) {
        const ks_job_t *j = s->live[i];
        if (j->n_running && !strcmp(j->project, project))
            n += (int)j->n_running * j->res.cores;
    }
    return n;
}

int ks_job_task_output(const ks_sched_t *s, const ks_job_t *j, int idx, char *buf, size_t cap)
{
    /* Per task, so no printf: dir/tasks/JOB/IDX.out from pieces. */
    char num[2][24];
    int a = 0, b = 0;
    for (int64_t v = j->id; v > 0 || a == 0; v /= 10)
        num[0][a++] = (char)('0' + v % 10);
    for (int v = idx; v > 0 || b == 0; v /= 10)
        num[1][b++] = (char)('0' + v % 10);
    size_t dl = strlen(s->dir);
    if (dl + 7 + (size_t)a + 1 + (size_t)b + 5 > cap)
        return -1;
    char *p = buf;
    memcpy(p, s->dir, dl);
    p += dl;
    memcpy(p, "/tasks/", 7);
    p += 7;
    while (a)
        *p++ = num[0][--a];
    *p++ = '/';
    while (b)
        *p++ = num[1][--b];
    memcpy(p, ".out", 5);
    return 0;
}

/* ---- the live set */

int ks_live_add(ks_sched_t *s, ks_job_t *j)
{
    if (s->n_live == s->cap_live) {
        size_t cap = s->cap_live ? s->cap_live * 2 : 64;
        ks_job_t **v = kiln_realloc(s->live, cap * sizeof *v);
        if (!v)
            return -1;
        s->live = v;
        s->cap_live = cap;
    }
    if (ks_idmap_put(&s->jobs, j->id, j) < 0)
        return -1;
    j->live_idx = s->n_live;
    s->live[s->n_live++] = j;
    /* Instances (of arrays and of recurring jobs) ride on their parent's admission. */
    if (!j->array_parent && !j->scheduled_by)
        s->n_active++;
    s->n_templates += (size_t)j->is_template;
    if (j->n_deps > j->n_deps_ok)
        s->n_with_deps++;
    s->dirty = 1;
    return 0;
}

static void live_remove(ks_sched_t *s, ks_job_t *j)
{
    ks_idmap_del(&s->jobs, j->id);
    size_t i = j->live_idx;
    if (i < s->n_live && s->live[i] == j) {
        s->live[i] = s->live[--s->n_live];
        s->live[i]->live_idx = i;
    }
    if (!j->array_parent && !j->scheduled_by && s->n_active)
        s->n_active--;
    if (j->is_template && s->n_templates)
        s->n_templates--;
    if (j->n_deps > j->n_deps_ok && s->n_with_deps)
        s->n_with_deps--;
}

void ks_job_free(ks_job_t *j)
{
    if (!j)
        return;
    if (j->parsed && j->type)
        j->type->free_parsed(j->parsed);
    json_decref(j->spec);
    kiln_free(j->spec_text);
    kiln_free(j->out_prefix);
    if (j->task_outputs)
        for (size_t i = 0; i < j->n_tasks; i++)
            kiln_free(j->task_outputs[i]);
    kiln_free(j->task_outputs);
    kiln_free(j->tasks);
    kiln_free(j->deps);
    kiln_free(j->project);
    kiln_free(j->name);
    kiln_free(j->output);
    kiln_free(j);
}

/* ---- building a job from a spec */

int ks_spec_subst(json_t *spec, const char *key, char token, const char *value)
{
    json_t *v = json_object_get(spec, key);
    const char pat[3] = {'%', token, '\0'};
    if (!json_is_string(v) || !strstr(json_string_value(v), pat))
        return 0;
    char out[4096];
    size_t o = 0;
    for (const char *p = json_string_value(v); *p; p++) {
        int n;
        if (p[0] == '%' && p[1] == token) {
            n = snprintf(out + o, sizeof out - o, "%s", value);
            p++;
        } else {
            n = snprintf(out + o, sizeof out - o, "%c", *p);
        }
        if (n < 0 || (size_t)n >= sizeof out - o)
            return -1;
        o += (size_t)n;
    }
    return json_object_set_new(spec, key, json_string(out));
}

/* A job from its spec (taken) and common fields; validates the type's own
 * fields (an array validates its first instance, a recurring job's template
 * the instance it would make now). */
ks_job_t *ks_job_build(json_t *spec, const jb_common_t *c, kiln_err_t *err)
{
    const jb_type_t *type = jb_type_find(c->type);
    if (!type) {
        size_t n;
        const jb_type_t *const *all = jb_type_all(&n);
        char known[256] = "";
        for (size_t i = 0; i < n; i++)
            snprintf(known + strlen(known), sizeof known - strlen(known), "%s%s", i ? ", " : "",
                     all[i]->name);
        kiln_err_at(err, KILN_ESPEC, "type", "job: type: unknown job type \"%s\" (known: %s)",
                    c->type, known);
        json_decref(spec);
        return NULL;
    }
    ks_job_t *j = kiln_calloc(1, sizeof *j);
    if (!j) {
        kiln_err_set(err, KILN_ENOMEM, "job: out of memory");
        json_decref(spec);
        return NULL;
    }
    j->spec = spec;
    j->type = type;
    j->project = dup_str(c->project);
    j->name = dup_str(c->name);
    j->priority = c->priority;
    j->res = c->resources;
    j->max_retries = c->max_retries;
    j->timeout_s = c->timeout_s;
    j->state = ST_STATE_QUEUED;
    j->array_index = -1;
    if (c->n_depends_on) {
        j->deps = kiln_malloc(c->n_depends_on * sizeof *j->deps);
        if (j->deps)
            memcpy(j->deps, c->depends_on, c->n_depends_on * sizeof *j->deps);
        j->n_deps = c->n_depends_on;
    }
    const json_t *out = json_object_get(spec, "output");
    if (json_is_string(out))
        j->output = dup_str(json_string_value(out));
    if (!j->project || !j->name || (c->n_depends_on && !j->deps) ||
        (json_is_string(out) && !j->output)) {
        kiln_err_set(err, KILN_ENOMEM, "job: out of memory");
        ks_job_free(j);
        return NULL;
    }
    if (c->schedule[0]) {
        if (ks_cron_parse(c->schedule, &j->cron, err) < 0) {
            ks_job_free(j);
            return NULL;
        }
        j->is_template = 1;
        json_t *first = ks_recur_instance_spec(spec, ks_now_ns());
        void *parsed = NULL;
        int rc = first ? type->validate(first, &parsed, err)
                       : kiln_err_set(err, KILN_ENOMEM, "job: out of memory");
        if (parsed)
            type->free_parsed(parsed);
        json_decref(first);
        if (rc < 0) {
            ks_job_free(j);
            return NULL;
        }
        return j;
    }
    if (c->has_array) {
        j->is_array = 1;
        j->arr_first = c->array_first;
        j->arr_last = c->array_last;
        j->arr_next = c->array_first;
        j->arr_cap = c->array_cap;
        json_t *first = ks_array_instance_spec(spec, c->array_first);
        void *parsed = NULL;
        int rc = first ? type->validate(first, &parsed, err)
                       : kiln_err_set(err, KILN_ENOMEM, "job: out of memory");
        if (parsed)
            type->free_parsed(parsed);
        json_decref(first);
        if (rc < 0) {
            ks_job_free(j);
            return NULL;
        }
        return j;
    }
    if (type->validate(spec, &j->parsed, err) < 0) {
        j->parsed = NULL;
        ks_job_free(j);
        return NULL;
    }
    if (type->steps) {
        size_t n;
        type->steps(j->parsed, &n);
        j->is_array = j->is_pipeline = 1;
        j->arr_first = 0;
        j->arr_last = (int64_t)n - 1;
    }
    return j;
}

/* ---- submit */

/* The store's record of a new job (strings borrowed from j and the caller). */
st_state_job_t ks_job_row(const ks_job_t *j, const char *type, const char *name,
                              const char *spec_text)
{
    st_state_job_t row = {0};
    row.project = j->project;
    row.name = (char *)name;
    row.type = (char *)type;
    row.priority = j->priority;
    row.spec_json = (char *)spec_text;
    row.max_retries = j->max_retries;
    row.timeout_s = (int)ceil(j->timeout_s);
    row.submitted_ns = ks_now_ns();
    return row;
}

int ks_sched_submit(ks_sched_t *s, const char *text, size_t len, const char *key, int64_t *id,
                    int *existed, kiln_err_t *err)
{
    json_error_t jerr;
    *existed = 0;
    json_t *spec = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!spec) {
        int rc = kiln_err_set(err, KILN_EJSON, "job: line %d, column %d: %s", jerr.line,
                              jerr.column, jerr.text);
        err->line = jerr.line;
        err->column = jerr.column;
        return rc;
    }
    jb_common_t c;
    int rc = jb_common_parse(spec, &c, err);
    if (rc < 0) {
        json_decref(spec);
        return rc;
    }
    if (key && (!key[0] || strlen(key) > 200)) {
        json_decref(spec);
        return kiln_err_at(err, KILN_ESPEC, "Idempotency-Key",
                           "Idempotency-Key: must be 1 to 200 characters");
    }
    if (s->n_active >= s->opts.max_active_jobs) {
        json_decref(spec);
        return kiln_err_set(err, KILN_EBUSY,
                            "admission limit: %zu jobs are queued or running (the limit); "
                            "retry later", s->n_active);
    }
    const jb_type_t *type = jb_type_find(c.type);
    if ((rc = ks_spec_resolve(s, type, spec, err)) < 0) {
        json_decref(spec);
        return rc;
    }
    char *spec_text = json_dumps(spec, JSON_COMPACT);
    ks_job_t *j = spec_text ? ks_job_build(spec, &c, err) : NULL;
    if (!spec_text) {
        json_decref(spec);
        return kiln_err_set(err, KILN_ENOMEM, "job: out of memory");
    }
    if (!j) {
        free(spec_text);
        return err->code;
    }
    st_state_job_t row = ks_job_row(j, c.type, j->name, spec_text);
    row.idempotency_key = (char *)key;
    row.depends_on = j->deps;
    row.n_depends_on = j->n_deps;
    rc = st_state_job_insert(s->st, &row, id, existed, err);
    free(spec_text);
    if (rc < 0 || *existed) {
        ks_job_free(j);
        return rc;
    }
    j->id = *id;
    j->submitted_ns = row.submitted_ns;
    if (j->is_template && (rc = ks_recur_submitted(s, j, err)) < 0) {
        /* Never a half-made recurring job: without its schedule row it ends now. */
        st_state_job_set_state(s->st, j->id, ST_STATE_FAILED, "invalid_spec", err->msg,
                               ks_now_ns(), NULL);
        ks_job_free(j);
        return rc;
    }
    if (ks_live_add(s, j) < 0) {
        ks_job_free(j);
        return kiln_err_set(err, KILN_ENOMEM, "job %lld: out of memory", (long long)*id);
    }
    ks_job_log(s, j->id, "submitted: %s job \"%s\" of project \"%s\"%s%s%s", c.type, j->name,
               j->project, j->is_pipeline ? "" : j->is_array ? " (array)" : "",
               j->is_template ? ", recurring: " : "", j->is_template ? c.schedule : "");
    return 0;
}

/* ---- planning */

int ks_job_plan(ks_sched_t *s, ks_job_t *j, kiln_err_t *err)
{
    jb_plan_ctx_t ctx = {s->opts.target_tasks, 0};
    if (!ctx.target_tasks) {
        size_t cores = 0;
        for (size_t i = 0; i < s->n_workers; i++)
            if (!s->workers[i]->lost && s->workers[i]->registered)
                cores += (size_t)s->workers[i]->cores;
        ctx.target_tasks = cores ? 2 * cores : 1;
    }
    jb_task_plan_t *plan = NULL;
    size_t n = 0;
    int rc = j->type->plan(j->parsed, &ctx, &plan, &n, err);
    if (rc < 0)
        return rc;
    j->tasks = kiln_calloc(n ? n : 1, sizeof *j->tasks);
    if (!j->tasks) {
        kiln_free(plan);
        return kiln_err_set(err, KILN_ENOMEM, "job %lld: out of memory for %zu tasks",
                            (long long)j->id, n);
    }
    for (size_t i = 0; i < n && rc == 0; i++) {
        ks_task_t *t = &j->tasks[i];
        t->idx = (int)plan[i].index;
        t->win0 = (int64_t)plan[i].win0;
        t->n_windows = (int64_t)plan[i].n_windows;
        t->state = ST_STATE_QUEUED;
        t->job = j;
        rc = st_state_task_insert(s->st, j->id, t->idx, t->win0, t->n_windows, &t->id, err);
    }
    kiln_free(plan);
    if (rc < 0) {
        kiln_free(j->tasks);
        j->tasks = NULL;
        return rc;
    }
    j->n_tasks = j->n_queued = n;
    j->planned = 1;
    if (j->output || j->type->record) {
        char dir[1100];
        snprintf(dir, sizeof dir, "%s/tasks/%lld", s->dir, (long long)j->id);
        if (mkdir_p(dir) < 0)
            return kiln_err_set(err, KILN_EIO, "job %lld: cannot create %s: %s",
                                (long long)j->id, dir, strerror(errno));
    }
    ks_job_log(s, j->id, "planned into %zu task%s", n, n == 1 ? "" : "s");
    return 0;
}

/* ---- reasons and the end of a job */

int ks_job_set_reason(ks_sched_t *s, ks_job_t *j, const char *code, const char *fmt, ...)
{
    char text[KS_REASON_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    if (!strcmp(j->reason_code, code) && !strcmp(j->reason_text, text))
        return 0;
    snprintf(j->reason_code, sizeof j->reason_code, "%s", code);
    snprintf(j->reason_text, sizeof j->reason_text, "%s", text);
    if (j->state != ST_STATE_QUEUED)
        return 0;
    kiln_err_t err;
    return st_state_job_set_state(s->st, j->id, ST_STATE_QUEUED, code, text, ks_now_ns(), &err);
}

void ks_array_check_done(ks_sched_t *s, ks_job_t *p)
{
    if (p->arr_next <= p->arr_last || p->arr_live > 0 || p->arr_ending)
        return;
    size_t total = (size_t)(p->arr_last - p->arr_first + 1);
    const char *what = p->is_pipeline ? "steps" : "instances";
    if (p->arr_succeeded == total)
        ks_job_end(s, p, ST_STATE_SUCCEEDED, NULL, "all %zu %s succeeded", total, what);
    else
        ks_job_end(s, p, ST_STATE_FAILED, p->is_pipeline ? "steps_failed" : "instances_failed",
                   "%zu of %zu %s did not succeed", total - p->arr_succeeded, total, what);
}

static int depends_on(const ks_job_t *j, int64_t id)
{
    for (size_t i = j->n_deps_ok; i < j->n_deps; i++)
        if (j->deps[i] == id)
            return 1;
    return 0;
}

void ks_job_end(ks_sched_t *s, ks_job_t *j, st_state_status_t state, const char *code,
                const char *fmt, ...)
{
    if (st_state_status_is_final(j->state))
        return;
    char text[KS_REASON_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    kiln_err_t err;
    int64_t now = ks_now_ns();

    for (size_t i = 0; i < j->n_tasks; i++)
        if (j->tasks[i].state == ST_STATE_RUNNING)
            ks_task_cancel_remote(s, &j->tasks[i]);
    if (j->n_tasks && j->n_succeeded < j->n_tasks &&
        st_state_task_cancel_job(s->st, j->id, now, NULL, &err) < 0)
        ks_job_log(s, j->id, "state store: %s", err.msg);
    j->n_queued = 0;

    /* An array that ends early takes its live instances with it. */
    if (j->is_array && j->arr_live) {
        /* By id: ending one step of a pipeline ends (and frees) the steps
         * that depend on it too. */
        int64_t *kids = kiln_malloc(j->arr_live * sizeof *kids);
        size_t n = 0;
        for (size_t i = 0; kids && i < s->n_live; i++)
            if (s->live[i]->array_parent == j->id && n < j->arr_live)
                kids[n++] = s->live[i]->id;
        j->arr_next = j->arr_last + 1;   /* no new instances */
        /* The last instance's end must not end (and free) the array under us
         * as "instances_failed": it ends below, in the state asked for. */
        j->arr_ending = 1;
        for (size_t i = 0; i < n; i++) {
            ks_job_t *kid = ks_idmap_get(&s->jobs, kids[i]);
            if (kid)
                ks_job_end(s, kid, ST_STATE_CANCELLED, j->is_pipeline ? "pipeline_ended"
                           : "array_ended", "%s job %lld ended",
                           j->is_pipeline ? "pipeline" : "array", (long long)j->id);
        }
        kiln_free(kids);
    }

    j->state = state;
    snprintf(j->reason_code, sizeof j->reason_code, "%s", code ? code : "");
    snprintf(j->reason_text, sizeof j->reason_text, "%s", code ? text : "");
    if (st_state_job_set_state(s->st, j->id, state, code, code ? text : NULL, now, &err) < 0)
        ks_job_log(s, j->id, "state store: %s", err.msg);
    ks_job_log(s, j->id, "%s: %s", st_state_status_name(state), text);
    live_remove(s, j);
    s->dirty = 1;

    if (j->scheduled_by)
        ks_recur_instance_ended(s, j);
    if (j->array_parent) {
        ks_job_t *p = ks_idmap_get(&s->jobs, j->array_parent);
        if (p) {
            p->arr_live--;
            p->arr_ended++;
            if (state == ST_STATE_SUCCEEDED)
                p->arr_succeeded++;
            if (j->started_ns && p->arr_running)
                p->arr_running--;
            ks_array_check_done(s, p);
        }
    }

    if (s->n_with_deps) {
        ks_job_t **dep = NULL;
        size_t n = 0, cap = 0;
        for (size_t i = 0; i < s->n_live; i++) {
            ks_job_t *d = s->live[i];
            if (!depends_on(d, j->id))
                continue;
            if (n == cap) {
                cap = cap ? cap * 2 : 8;
                ks_job_t **v = kiln_realloc(dep, cap * sizeof *v);
                if (!v)
                    break;
                dep = v;
            }
            dep[n++] = d;
        }
        if (state != ST_STATE_SUCCEEDED)
            for (size_t i = 0; i < n; i++)
                ks_job_end(s, dep[i], ST_STATE_CANCELLED, "dependency_failed",
                           "dependency job %lld ended %s", (long long)j->id,
                           st_state_status_name(state));
        kiln_free(dep);
    }
    if (j->finishing && ks_idmap_put(&s->orphans, j->id, j) == 0)
        return;   /* freed by ks_sched_finish_done when the finish returns */
    ks_job_free(j);
}

/* ---- finish */

void ks_sched_finish_done(ks_sched_t *s, int64_t job_id, int rc, const kiln_err_t *err)
{
    ks_job_t *j = ks_idmap_del(&s->orphans, job_id);
    if (j) {
        /* Ended (cancelled) while its finish ran: it waited only for this. */
        ks_job_free(j);
        return;
    }
    if (!(j = ks_idmap_get(&s->jobs, job_id)))
        return;
    j->finishing = 0;
    if (rc < 0) {
        ks_job_end(s, j, ST_STATE_FAILED, "finish_failed", "merging the task outputs: %s",
                   err ? err->msg : "failed");
        return;
    }
    ks_job_succeed(s, j);
}

int ks_spec_resolve(ks_sched_t *s, const jb_type_t *type, json_t *spec, kiln_err_t *err)
{
    if (!type || !type->resolve)
        return 0;
    char root[1100];
    snprintf(root, sizeof root, "%s/artifacts", s->dir);
    jb_record_ctx_t ctx = {.st = s->st, .artifacts = root, .dir = s->dir,
                           .now_ns = ks_now_ns()};
    return type->resolve(spec, &ctx, err);
}

/* The end of a job whose tasks (and finish) succeeded: the type records what
 * it made (a train job's run and model version), then the task outputs go. */
void ks_job_succeed(ks_sched_t *s, ks_job_t *j)
{
    char summary[KS_REASON_MAX] = "";
    int rc = 0;
    kiln_err_t err = {0};
    if (j->type->record && j->n_tasks) {
        char out[1200], root[1100];
        snprintf(root, sizeof root, "%s/artifacts", s->dir);
        ks_job_task_output(s, j, j->tasks[0].idx, out, sizeof out);
        jb_record_ctx_t ctx = {.st = s->st, .artifacts = root, .dir = s->dir, .job_id = j->id,
                               .started_ns = j->started_ns, .now_ns = ks_now_ns(),
                               .submit_child = ks_record_submit_child, .sched = s};
        rc = j->type->record(j->parsed, out, &ctx, summary, sizeof summary, &err);
    }
    char dir[1100], path[1200];
    const int has_files = j->output || j->type->record;   /* as ks_job_plan made the dir */
    for (size_t i = 0; has_files && i < j->n_tasks; i++) {
        ks_job_task_output(s, j, j->tasks[i].idx, path, sizeof path);
        unlink(path);
    }
    snprintf(dir, sizeof dir, "%s/tasks/%lld", s->dir, (long long)j->id);
    rmdir(dir);
    if (rc < 0) {
        ks_job_end(s, j, ST_STATE_FAILED, "record_failed", "recording the result: %s", err.msg);
        return;
    }
    if (summary[0])
        ks_job_log(s, j->id, "%s", summary);
    ks_pipe_step_succeeded(s, j);
    ks_job_end(s, j, ST_STATE_SUCCEEDED, NULL, "%zu task%s succeeded%s%s", j->n_tasks,
               j->n_tasks == 1 ? "" : "s", j->output ? ", output " : "",
               j->output ? j->output : "");
}

/* ---- open / close */

int ks_sched_open(st_state_t *st, const ks_opts_t *opts, const ks_ops_t *ops, void *ud,
                  ks_sched_t **out, kiln_err_t *err)
{
    *out = NULL;
    if (!st || !opts || !opts->dir || !ops || !ops->send || !ops->finish)
        return kiln_err_set(err, KILN_EINVAL, "scheduler: missing state, options or ops");
    ks_sched_t *s = kiln_calloc(1, sizeof *s);
    if (!s)
        return kiln_err_set(err, KILN_ENOMEM, "scheduler: out of memory");
    s->st = st;
    s->opts = *opts;
    s->ops = *ops;
    s->ud = ud;
    if (!s->opts.lease_ms)
        s->opts.lease_ms = 5000;
    if (!s->opts.retry_backoff_ms)
        s->opts.retry_backoff_ms = 1000;
    if (!s->opts.max_active_jobs)
        s->opts.max_active_jobs = 10000;
    if (!s->opts.max_node_fails)
        s->opts.max_node_fails = 3;
    s->started_ns = ks_now_ns();
    s->boot = (uint32_t)(s->started_ns / 1000) ^ ((uint32_t)getpid() << 16);
    s->lease_prefix_len = (size_t)snprintf(s->lease_prefix, sizeof s->lease_prefix, "%08x-",
                                           s->boot);
    s->dir = dup_str(opts->dir);
    s->opts.dir = s->dir;
    char sub[1100];
    int rc = 0;
    if (!s->dir)
        rc = kiln_err_set(err, KILN_ENOMEM, "scheduler: out of memory");
    for (int i = 0; rc == 0 && i < 2; i++) {
        snprintf(sub, sizeof sub, "%s/%s", s->dir, i ? "logs" : "tasks");
        if (mkdir_p(sub) < 0)
            rc = kiln_err_set(err, KILN_EIO, "scheduler: cannot create %s: %s", sub,
                              strerror(errno));
    }
    if (rc == 0)
        rc = ks_sched_reload(s, err);
    if (rc < 0) {
        ks_sched_close(&s);
        return rc;
    }
    s->dirty = 1;
    *out = s;
    return 0;
}

void ks_sched_close(ks_sched_t **sp)
{
    ks_sched_t *s = *sp;
    if (!s)
        return;
    for (size_t i = 0; i < s->n_live; i++)
        ks_job_free(s->live[i]);
    kiln_free(s->live);
    kiln_free(s->cand);
    int64_t id;
    void *v;
    for (size_t it = 0; ks_idmap_next(&s->orphans, &it, &id, &v);)
        ks_job_free(v);
    ks_idmap_free(&s->orphans);
    ks_idmap_free(&s->jobs);
    ks_idmap_free(&s->running);
    for (size_t i = 0; i < s->n_workers; i++) {
        kiln_free(s->workers[i]->id);
        kiln_free(s->workers[i]);
    }
    kiln_free(s->workers);
    kiln_free(s->dir);
    ks_metrics_free(s);
    kiln_free(s);
    *sp = NULL;
}

/* ---- lookups */

int ks_job_stored(ks_sched_t *s, int64_t id, st_state_status_t *state, kiln_err_t *err)
{
    st_state_job_t row;
    int rc = st_state_job_get(s->st, id, &row, err);
    if (rc < 0)
        return rc == KILN_ENOTFOUND
                   ? kiln_err_set(err, KILN_ENOTFOUND, "job %lld not found", (long long)id)
                   : rc;
    if (state)
        *state = row.state;
    st_state_job_free(&row);
    return 0;
}

/* ---- cancel */

int ks_sched_cancel(ks_sched_t *s, int64_t id, kiln_err_t *err)
{
    ks_job_t *j = ks_idmap_get(&s->jobs, id);
    if (!j) {
        st_state_status_t st = ST_STATE_QUEUED;
        int rc = ks_job_stored(s, id, &st, err);
        if (rc < 0)
            return rc;
        return kiln_err_set(err, KILN_ESTATE, "job %lld already ended: %s", (long long)id,
                            st_state_status_name(st));
    }
    ks_job_end(s, j, ST_STATE_CANCELLED, "cancelled", "cancelled by request");
    return 0;
}
