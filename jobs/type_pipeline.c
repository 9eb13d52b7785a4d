/* type_pipeline.c - the pipeline job type (jobtype.h, docs/pipelines.md): a
 * DAG of steps in one spec, each step an ordinary job of another type.
 *
 *   {"type": "pipeline", "name": "bearing", "project": "plant-7",
 *    "steps": [
 *      {"name": "features", "job": {"type": "featurize", "input": "raw.h5",
 *                                   "output": "feat.h5", "features": {...}}},
 *      {"name": "train", "job": {"type": "train", "input": "${features.output}",
 *                                "model": {"kind": "gbdt"}, "target": "label",
 *                                "output": "bearing.kmodel"}},
 *      {"name": "score", "job": {"type": "score", "model_file": "${train.output}",
 *                                "input": "fleet.h5", "output": "preds.h5"}}]}
 *
 * A step waits for the steps its strings refer to ("${NAME.output}" is that
 * step's "output") and for those it names in "after".  Validation here is
 * whole: every step's spec, with the references replaced, passes its own
 * type's validate at submit, so a pipeline never fails half-way on a typo.
 * The scheduler submits the steps (ordered so that a step comes after what
 * it waits for) and skips a step whose inputs and spec are unchanged since
 * the same step last succeeded ("cache", on by default). */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "../core/kiln_alloc.h"
#include "jobspec.h"
#include "jobtype.h"

typedef struct {
    jb_step_t steps[JB_STEPS_MAX];
    size_t    n;
} pipe_t;

/* What parsing collects per step before the order is known. */
typedef struct {
    char         name[JB_STEP_NAME_MAX];
    const json_t *job;          /* borrowed from the spec */
    int          cache;
    unsigned char needs[JB_STEPS_MAX];   /* needs[k]: waits for step k (spec order) */
} raw_step_t;

static void pipe_free(void *parsed)
{
    pipe_t *p = parsed;
    if (!p)
        return;
    for (size_t i = 0; i < p->n; i++)
        json_decref(p->steps[i].spec);
    kiln_free(p);
}

static int step_name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n >= JB_STEP_NAME_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

static long find_step(const raw_step_t *raw, size_t n, const char *name, size_t len)
{
    for (size_t i = 0; i < n; i++)
        if (strlen(raw[i].name) == len && !strncmp(raw[i].name, name, len))
            return (long)i;
    return -1;
}

/* ---- references "${STEP.output}" */

typedef struct {
    const raw_step_t *raw;
    size_t            n, self;
    unsigned char    *needs;     /* NULL: substitute instead of collect */
    const char *const *outputs;  /* per step, when substituting */
    const char       *where;     /* "steps[2].job" */
    kiln_err_t       *err;
} refs_t;

/* Collects (needs != NULL) or replaces the references in one string;
 * *out (kiln_malloc) gets the replaced text when substituting. */
static int refs_in(refs_t *r, const char *s, char **out)
{
    size_t cap = strlen(s) + 1, len = 0;
    char *buf = out ? kiln_malloc(cap) : NULL;
    if (out && !buf)
        return kiln_err_set(r->err, KILN_ENOMEM, "job: out of memory");
    const char *p = s;
    while (*p) {
        const char *open = strstr(p, "${");
        const char *close = open ? strchr(open, '}') : NULL;
        if (!open || !close) {
            size_t k = strlen(p);
            if (buf) {
                memcpy(buf + len, p, k);
                len += k;
            }
            break;
        }
        const char *body = open + 2, *dot = memchr(body, '.', (size_t)(close - body));
        if (!dot || strncmp(dot, ".output}", 8)) {
            kiln_free(buf);
            return kiln_err_at(r->err, KILN_ESPEC, r->where,
                               "job: %s: \"%.*s\": a reference must be \"${STEP.output}\"",
                               r->where, (int)(close - open + 1), open);
        }
        long k = find_step(r->raw, r->n, body, (size_t)(dot - body));
        if (k < 0 || (size_t)k == r->self) {
            kiln_free(buf);
            return kiln_err_at(r->err, KILN_ESPEC, r->where,
                               "job: %s: \"%.*s\": %s", r->where, (int)(close - open + 1), open,
                               k < 0 ? "no step has that name" : "a step cannot use its own output");
        }
        if (r->needs)
            r->needs[k] = 1;
        if (buf) {
            const char *v = r->outputs[k];
            size_t pre = (size_t)(open - p), vl = strlen(v);
            char *nb = kiln_realloc(buf, cap + vl);
            if (!nb) {
                kiln_free(buf);
                return kiln_err_set(r->err, KILN_ENOMEM, "job: out of memory");
            }
            buf = nb;
            cap += vl;
            memcpy(buf + len, p, pre);
            len += pre;
            memcpy(buf + len, v, vl);
            len += vl;
        }
        p = close + 1;
    }
    if (buf) {
        buf[len] = '\0';
        *out = buf;
    }
    return 0;
}

/* Walks every string in v (objects and arrays too), collecting or
 * replacing references in place. */
static int refs_walk(refs_t *r, json_t *v)
{
    int rc = 0;
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        if (!strstr(s, "${"))
            return 0;
        char *rep = NULL;
        if ((rc = refs_in(r, s, r->needs ? NULL : &rep)) < 0)
            return rc;
        if (rep) {
            rc = json_string_set(v, rep) < 0 ? kiln_err_set(r->err, KILN_ENOMEM, "job: out of memory")
                                             : 0;
            kiln_free(rep);
        }
        return rc;
    }
    if (json_is_object(v)) {
        const char *k;
        json_t *x;
        json_object_foreach(v, k, x)
            if ((rc = refs_walk(r, x)) < 0)
                return rc;
    } else if (json_is_array(v)) {
        size_t i;
        json_t *x;
        json_array_foreach(v, i, x)
            if ((rc = refs_walk(r, x)) < 0)
                return rc;
    }
    return 0;
}

/* ---- parsing */

static int parse_step(const json_t *o, size_t i, raw_step_t *raw, int cache_default,
                      kiln_err_t *err)
{
    char w[64];
    snprintf(w, sizeof w, "steps[%zu]", i);
    if (!json_is_object(o))
        return kiln_err_at(err, KILN_ESPEC, w, "job: %s: must be an object", w);
    const char *k;
    json_t *x;
    json_object_foreach((json_t *)o, k, x) {
        if (strcmp(k, "name") && strcmp(k, "job") && strcmp(k, "after") && strcmp(k, "cache")) {
            char f[128];
            snprintf(f, sizeof f, "%s.%s", w, k);
            return kiln_err_at(err, KILN_ESPEC, f,
                               "job: %s: unknown field (a step has name, job, after, cache)", f);
        }
    }
    const json_t *name = json_object_get(o, "name");
    if (!json_is_string(name) || !step_name_ok(json_string_value(name))) {
        char f[80];
        snprintf(f, sizeof f, "%s.name", w);
        return kiln_err_at(err, KILN_ESPEC, f,
                           "job: %s: must be 1 to %d letters, digits, '_' or '-'", f,
                           JB_STEP_NAME_MAX - 1);
    }
    snprintf(raw->name, sizeof raw->name, "%s", json_string_value(name));
    raw->job = json_object_get(o, "job");
    if (!json_is_object(raw->job)) {
        char f[80];
        snprintf(f, sizeof f, "%s.job", w);
        return kiln_err_at(err, KILN_ESPEC, f, "job: %s: must be a job spec (an object)", f);
    }
    static const char *const refused[] = {"schedule", "array", "depends_on"};
    for (size_t r = 0; r < sizeof refused / sizeof refused[0]; r++)
        if (json_object_get(raw->job, refused[r])) {
            char f[96];
            snprintf(f, sizeof f, "%s.job.%s", w, refused[r]);
            return kiln_err_at(err, KILN_ESPEC, f,
                               "job: %s: not in a step (steps wait for each other through "
                               "\"after\" and \"${STEP.output}\"; the pipeline itself may have %s)",
                               f, refused[r]);
        }
    const json_t *c = json_object_get(o, "cache");
    if (c && !json_is_boolean(c)) {
        char f[80];
        snprintf(f, sizeof f, "%s.cache", w);
        return kiln_err_at(err, KILN_ESPEC, f, "job: %s: must be true or false", f);
    }
    raw->cache = c ? json_is_true(c) : cache_default;
    return 0;
}

static int parse_after(const json_t *o, size_t i, raw_step_t *raw, size_t n, kiln_err_t *err)
{
    const json_t *after = json_object_get(o, "after");
    if (!after)
        return 0;
    char f[80];
    snprintf(f, sizeof f, "steps[%zu].after", i);
    if (!json_is_array(after))
        return kiln_err_at(err, KILN_ESPEC, f, "job: %s: must be a list of step names", f);
    size_t a;
    json_t *x;
    json_array_foreach(after, a, x) {
        const char *s = json_string_value(x);
        long k = s ? find_step(raw, n, s, strlen(s)) : -1;
        if (k < 0 || (size_t)k == i)
            return kiln_err_at(err, KILN_ESPEC, f, "job: %s[%zu]: %s", f, a,
                               !s ? "must be a step name"
                               : k < 0 ? "no step has that name" : "a step cannot wait for itself");
        raw[i].needs[k] = 1;
    }
    return 0;
}

/* Kahn's algorithm, taking the lowest spec index among the ready steps so
 * the order is the spec's wherever the DAG allows. */
static int topo_order(const raw_step_t *raw, size_t n, size_t *order, kiln_err_t *err)
{
    unsigned char done[JB_STEPS_MAX] = {0};
    for (size_t pos = 0; pos < n; pos++) {
        size_t pick = n;
        for (size_t i = 0; i < n && pick == n; i++) {
            if (done[i])
                continue;
            int ok = 1;
            for (size_t k = 0; k < n && ok; k++)
                if (raw[i].needs[k] && !done[k])
                    ok = 0;
            if (ok)
                pick = i;
        }
        if (pick == n) {
            size_t at = 0;
            while (done[at])
                at++;
            return kiln_err_at(err, KILN_ESPEC, "steps",
                               "job: steps: a cycle: step \"%s\" waits (through after or "
                               "${...output}) for a step that waits for it", raw[at].name);
        }
        done[pick] = 1;
        order[pos] = pick;
    }
    return 0;
}

/* The step's spec: the job with references replaced and project, priority
 * and name filled from the pipeline; then its own type's validation. */
static int make_step(const json_t *pipe_spec, const jb_common_t *pc, const raw_step_t *raw,
                     size_t n, size_t i, const char *const *outputs, jb_step_t *out,
                     kiln_err_t *err)
{
    char where[64];
    snprintf(where, sizeof where, "steps[%zu].job", i);
    json_t *spec = json_deep_copy(raw[i].job);
    if (!spec)
        return kiln_err_set(err, KILN_ENOMEM, "job: out of memory");
    refs_t r = {raw, n, i, NULL, outputs, where, err};
    int rc = refs_walk(&r, spec);
    int oom = 0;
    if (rc == 0 && !json_object_get(spec, "project"))
        oom |= json_object_set_new(spec, "project", json_string(pc->project));
    if (rc == 0 && !json_object_get(spec, "priority") && json_object_get(pipe_spec, "priority"))
        oom |= json_object_set_new(spec, "priority", json_integer(pc->priority));
    if (rc == 0 && !json_object_get(spec, "name")) {
        char nm[JB_SPEC_NAME_MAX];
        if (snprintf(nm, sizeof nm, "%s.%s", pc->name, raw[i].name) >= (int)sizeof nm)
            rc = kiln_err_at(err, KILN_ESPEC, where, "job: %s: the default name \"%s.%s\" is "
                             "too long; give the step's job a name", where, pc->name, raw[i].name);
        else
            oom |= json_object_set_new(spec, "name", json_string(nm));
    }
    if (rc == 0 && oom)
        rc = kiln_err_set(err, KILN_ENOMEM, "job: out of memory");
    if (rc < 0) {
        json_decref(spec);
        return rc;
    }
    kiln_err_t e = {0};
    jb_common_t c;
    const jb_type_t *type = NULL;
    void *parsed = NULL;
    if ((rc = jb_common_parse(spec, &c, &e)) == 0) {
        type = jb_type_find(c.type);
        if (!type) {
            rc = kiln_err_at(&e, KILN_ESPEC, "type", "unknown job type \"%s\"", c.type);
        } else if (type->steps) {
            rc = kiln_err_at(&e, KILN_ESPEC, "type", "a pipeline cannot be a step");
        }
    }
    if (rc == 0 && (rc = type->validate(spec, &parsed, &e)) == 0)
        type->free_parsed(parsed);
    if (rc < 0) {
        char f[352];
        if (e.where[0])
            snprintf(f, sizeof f, "%s.%s", where, e.where);
        else
            snprintf(f, sizeof f, "%s", where);
        /* The inner message starts "job: FIELD: ..."; say which step. */
        const char *m = strncmp(e.msg, "job: ", 5) ? e.msg : e.msg + 5;
        json_decref(spec);
        return kiln_err_at(err, rc, f, "job: steps[%zu] (\"%s\"): %s", i, raw[i].name, m);
    }
    snprintf(out->name, sizeof out->name, "%s", raw[i].name);
    out->spec = spec;
    out->cache = raw[i].cache;
    return 0;
}

static int pipe_validate(const void *spec_, void **parsed, kiln_err_t *err)
{
    const json_t *spec = spec_;
    static const char *const keys[] = {"steps", "cache", NULL};
    *parsed = NULL;
    int rc = jb_spec_check_keys(spec, keys, err);
    if (rc < 0)
        return rc;
    jb_common_t pc;
    if ((rc = jb_common_parse(spec, &pc, err)) < 0)
        return rc;
    if (pc.has_array)
        return kiln_err_at(err, KILN_ESPEC, "array", "job: array: a pipeline cannot be an array");
    const json_t *cache = json_object_get(spec, "cache");
    if (cache && !json_is_boolean(cache))
        return kiln_err_at(err, KILN_ESPEC, "cache", "job: cache: must be true or false");
    const json_t *steps = json_object_get(spec, "steps");
    size_t n = json_array_size(steps);
    if (!json_is_array(steps) || n == 0 || n > JB_STEPS_MAX)
        return kiln_err_at(err, KILN_ESPEC, "steps",
                           "job: steps: must be a list of 1 to %d steps", JB_STEPS_MAX);
    raw_step_t *raw = kiln_calloc(n, sizeof *raw);
    pipe_t *p = kiln_calloc(1, sizeof *p);
    if (!raw || !p) {
        kiln_free(raw);
        kiln_free(p);
        return kiln_err_set(err, KILN_ENOMEM, "job: out of memory");
    }
    for (size_t i = 0; i < n && rc == 0; i++) {
        rc = parse_step(json_array_get(steps, i), i, &raw[i], cache ? json_is_true(cache) : 1, err);
        for (size_t k = 0; k < i && rc == 0; k++)
            if (!strcmp(raw[k].name, raw[i].name))
                rc = kiln_err_at(err, KILN_ESPEC, "steps",
                                 "job: steps[%zu].name: \"%s\" is also steps[%zu]'s name", i,
                                 raw[i].name, k);
    }
    const char *outputs[JB_STEPS_MAX] = {0};
    for (size_t i = 0; i < n && rc == 0; i++) {
        char where[64];
        snprintf(where, sizeof where, "steps[%zu].job", i);
        refs_t r = {raw, n, i, raw[i].needs, NULL, where, err};
        if ((rc = refs_walk(&r, (json_t *)raw[i].job)) == 0)
            rc = parse_after(json_array_get(steps, i), i, raw, n, err);
        const json_t *o = json_object_get(raw[i].job, "output");
        outputs[i] = json_string_value(o);
        if (rc == 0 && outputs[i] && strstr(outputs[i], "${"))
            rc = kiln_err_at(err, KILN_ESPEC, where, "job: %s.output: cannot refer to another "
                             "step", where);
    }
    for (size_t i = 0; i < n && rc == 0; i++)
        for (size_t k = 0; k < n && rc == 0; k++)
            if (raw[i].needs[k] && !outputs[k]) {
                /* Only "after" may name a step without output; a reference needs one. */
                char where[64];
                snprintf(where, sizeof where, "steps[%zu].job", i);
                refs_t r = {raw, n, i, NULL, NULL, where, err};
                unsigned char refd[JB_STEPS_MAX] = {0};
                r.needs = refd;
                refs_walk(&r, (json_t *)raw[i].job);
                if (refd[k])
                    rc = kiln_err_at(err, KILN_ESPEC, where,
                                     "job: %s: refers to ${%s.output}, but step \"%s\" has no "
                                     "output", where, raw[k].name, raw[k].name);
            }
    size_t order[JB_STEPS_MAX], pos_of[JB_STEPS_MAX];
    if (rc == 0)
        rc = topo_order(raw, n, order, err);
    for (size_t pos = 0; pos < n && rc == 0; pos++) {
        size_t i = order[pos];
        pos_of[i] = pos;
        if ((rc = make_step(spec, &pc, raw, n, i, outputs, &p->steps[pos], err)) < 0)
            break;
        p->n++;
        for (size_t k = 0; k < n; k++)
            if (raw[i].needs[k])
                p->steps[pos].deps[p->steps[pos].n_deps++] = pos_of[k];
    }
    kiln_free(raw);
    if (rc < 0) {
        pipe_free(p);
        return rc;
    }
    *parsed = p;
    return 0;
}

static const jb_step_t *pipe_steps(const void *parsed, size_t *n)
{
    const pipe_t *p = parsed;
    *n = p->n;
    return p->steps;
}

static int pipe_plan(const void *parsed, const jb_plan_ctx_t *ctx, jb_task_plan_t **tasks,
                     size_t *n_tasks, kiln_err_t *err)
{
    (void)parsed;
    (void)ctx;
    *tasks = NULL;
    *n_tasks = 0;
    return kiln_err_set(err, KILN_EINTERNAL, "pipeline: its steps are planned, not the pipeline");
}

static int pipe_run_task(const void *parsed, const jb_task_plan_t *task, const char *out_path,
                         kiln_err_t *err)
{
    (void)parsed;
    (void)task;
    (void)out_path;
    return kiln_err_set(err, KILN_EINTERNAL, "pipeline: has no tasks of its own");
}

const jb_type_t jb_type_pipeline = {
    .name = "pipeline",
    .validate = pipe_validate,
    .plan = pipe_plan,
    .run_task = pipe_run_task,
    .finish = NULL,
    .free_parsed = pipe_free,
    .steps = pipe_steps,
};
