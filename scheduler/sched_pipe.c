/* sched_pipe.c - pipelines (jobs/type_pipeline.c, docs/pipelines.md).  A
 * pipeline job is a parent like an array: once its own dependencies have
 * succeeded, ks_pipe_expand submits its steps, each an ordinary job
 * ("PIPELINE/STEP", array_parent = the pipeline, array_index = its place in
 * the order) that depends on the steps it waits for.  The dependency rules
 * that hold for any job then run the DAG: a failed step cancels what waits
 * for it, and the pipeline ends when every step has (ks_array_check_done).
 *
 * The step cache: before a step is planned, its key is the SHA-256 of its
 * type, its spec (without what does not change its output: name, project,
 * priority, resources, retries, timeout, depends_on) and the digest
 * (storage/digest.h) of every file its strings name, its output aside.  If
 * an earlier job with that key succeeded and the output still holds the
 * digest it left, the step ends succeeded at once, reason "cached" (as
 * Kubeflow Pipelines reuses an execution with the same inputs and
 * component).  An upstream step that ran again and wrote the same bytes
 * leaves its dependents' keys unchanged, so they stay cached. */
#include "sched_int.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "core/kiln_alloc.h"
#include "storage/digest.h"
#include "storage/sha256.h"

#define PIPE_PATH_MAX 4096

static const char *const key_ignored[] = {
    "name", "project", "priority", "resources", "max_retries", "timeout_s", "depends_on", NULL,
};

/* The pipeline job j is a step of, or NULL. */
static ks_job_t *pipeline_of(ks_sched_t *s, const ks_job_t *j)
{
    ks_job_t *p = j->array_parent ? ks_idmap_get(&s->jobs, j->array_parent) : NULL;
    return p && p->is_pipeline ? p : NULL;
}

static const jb_step_t *step_of(const ks_job_t *p, const ks_job_t *j)
{
    size_t n;
    const jb_step_t *steps = p->type->steps(p->parsed, &n);
    return j->array_index >= 0 && (size_t)j->array_index < n ? &steps[j->array_index] : NULL;
}

/* ---- expansion */

static ks_job_t *step_new(ks_sched_t *s, ks_job_t *p, const jb_step_t *st, size_t pos,
                          const int64_t *ids, kiln_err_t *err)
{
    json_t *spec = json_deep_copy(st->spec);
    json_t *deps = st->n_deps ? json_array() : NULL;
    for (size_t d = 0; deps && d < st->n_deps; d++)
        json_array_append_new(deps, json_integer(ids[st->deps[d]]));
    if (!spec || (st->n_deps && (!deps || json_object_set_new(spec, "depends_on", deps) < 0))) {
        json_decref(spec);
        kiln_err_set(err, KILN_ENOMEM, "job %lld: out of memory", (long long)p->id);
        return NULL;
    }
    jb_common_t c;
    if (jb_common_parse(spec, &c, err) < 0) {
        json_decref(spec);
        return NULL;
    }
    char name[JB_SPEC_NAME_MAX + JB_STEP_NAME_MAX + 2];
    snprintf(name, sizeof name, "%s/%s", p->name, st->name);
    char *spec_text = json_dumps(spec, JSON_COMPACT);
    ks_job_t *j = spec_text ? ks_job_build(spec, &c, err) : NULL;
    if (!spec_text) {
        json_decref(spec);
        kiln_err_set(err, KILN_ENOMEM, "job %lld: out of memory", (long long)p->id);
    }
    if (!j) {
        free(spec_text);
        return NULL;
    }
    st_state_job_t row = ks_job_row(j, c.type, name, spec_text);
    row.array_parent = p->id;
    row.array_index = (int64_t)pos;
    row.depends_on = j->deps;
    row.n_depends_on = j->n_deps;
    j = ks_job_store_child(s, j, &row, name, err);
    free(spec_text);
    return j;
}

int ks_pipe_expand(ks_sched_t *s, ks_job_t *p, kiln_err_t *err)
{
    size_t n;
    const jb_step_t *steps = p->type->steps(p->parsed, &n);
    int64_t ids[JB_STEPS_MAX];
    /* Steps already stored (a restart between two turns cannot leave a
     * part: they are inserted in one turn's transaction) are not made again. */
    if (p->arr_next > 0)
        return 0;
    for (size_t i = 0; i < n; i++) {
        ks_job_t *j = step_new(s, p, &steps[i], i, ids, err);
        if (!j)
            return err->code ? err->code : KILN_EINTERNAL;
        ids[i] = j->id;
        p->arr_next++;
        p->arr_live++;
        ks_job_log(s, p->id, "step \"%s\" is job %lld", steps[i].name, (long long)j->id);
        ks_job_log(s, j->id, "step \"%s\" of pipeline %lld", steps[i].name, (long long)p->id);
    }
    return 0;
}

/* ---- the cache */

typedef struct {
    ks_sched_t  *s;
    st_sha256_t *h;
    int          n_inputs, unreadable;
    char         first_bad[256];
} keyctx_t;

/* Every string naming a regular file is an input: its path and digest go
 * into the key.  A file that exists but cannot be read makes the step
 * uncacheable (it then runs, and says why). */
static void key_inputs(keyctx_t *k, const json_t *v, int top)
{
    if (json_is_string(v)) {
        const char *path = json_string_value(v);
        struct stat sb;
        if (!path[0] || strlen(path) >= PIPE_PATH_MAX || stat(path, &sb) < 0 || !S_ISREG(sb.st_mode))
            return;
        char hex[65];
        kiln_err_t err;
        if (st_file_digest(path, hex, NULL, &err) < 0) {
            if (!k->unreadable++)
                snprintf(k->first_bad, sizeof k->first_bad, "%.200s", err.msg);
            return;
        }
        st_sha256_update(k->h, "\ninput ", 7);
        st_sha256_update(k->h, path, strlen(path));
        st_sha256_update(k->h, " ", 1);
        st_sha256_update(k->h, hex, 64);
        k->n_inputs++;
    } else if (json_is_object(v)) {
        const char *key;
        json_t *x;
        json_object_foreach((json_t *)v, key, x)
            if (!(top && !strcmp(key, "output")))
                key_inputs(k, x, 0);
    } else if (json_is_array(v)) {
        size_t i;
        json_t *x;
        json_array_foreach(v, i, x)
            key_inputs(k, x, 0);
    }
}

/* The key, or 0 and a reason why the step is not cached. */
static int step_key(ks_sched_t *s, const ks_job_t *j, char key[65], char *why, size_t cap)
{
    json_t *spec = json_deep_copy(j->spec);
    if (!spec) {
        snprintf(why, cap, "out of memory");
        return 0;
    }
    for (size_t i = 0; key_ignored[i]; i++)
        json_object_del(spec, key_ignored[i]);
    char *text = json_dumps(spec, JSON_COMPACT | JSON_SORT_KEYS);
    if (!text) {
        json_decref(spec);
        snprintf(why, cap, "out of memory");
        return 0;
    }
    st_sha256_t h;
    st_sha256_init(&h);
    st_sha256_update(&h, "kiln.step.v1\n", 13);
    st_sha256_update(&h, j->type->name, strlen(j->type->name));
    st_sha256_update(&h, "\n", 1);
    st_sha256_update(&h, text, strlen(text));
    free(text);
    keyctx_t k = {s, &h, 0, 0, ""};
    key_inputs(&k, spec, 1);
    json_decref(spec);
    if (k.unreadable) {
        snprintf(why, cap, "an input could not be read (%.200s)", k.first_bad);
        return 0;
    }
    uint8_t d[32];
    st_sha256_final(&h, d);
    st_sha256_hex(d, key);
    return 1;
}

int ks_pipe_cache_check(ks_sched_t *s, ks_job_t *j)
{
    ks_job_t *p = pipeline_of(s, j);
    const jb_step_t *st = p ? step_of(p, j) : NULL;
    if (!st)
        return 0;
    if (!st->cache) {
        ks_job_log(s, j->id, "step cache off: runs");
        return 0;
    }
    if (!j->output) {
        ks_job_log(s, j->id, "not cached: the step has no output");
        return 0;
    }
    char key[65], why[320];
    if (!step_key(s, j, key, why, sizeof why)) {
        ks_job_log(s, j->id, "not cached: %s", why);
        return 0;
    }
    kiln_err_t err;
    int64_t prev = 0;
    char out[PIPE_PATH_MAX], was[65], now[65];
    int rc = st_state_cache_find(s->st, key, &prev, out, sizeof out, was, &err);
    if (rc == 0 && !strcmp(out, j->output) && st_file_digest(j->output, now, NULL, &err) == 0 &&
        !strcmp(now, was)) {
        ks_job_log(s, j->id, "cached: same spec and inputs as job %lld (key %.16s), and %s "
                   "still holds what it wrote", (long long)prev, key, j->output);
        return 1;
    }
    if (rc == 0)
        ks_job_log(s, j->id, "runs: job %lld had the same key, but %s changed since", (long long)prev,
                   j->output);
    else if (rc != KILN_ENOTFOUND)
        ks_job_log(s, j->id, "step cache: %s", err.msg);
    if (st_state_cache_put(s->st, j->id, key, j->output, ks_now_ns(), &err) < 0)
        ks_job_log(s, j->id, "step cache: %s", err.msg);
    return 0;
}

void ks_pipe_step_succeeded(ks_sched_t *s, const ks_job_t *j)
{
    if (!j->output || !pipeline_of(s, j))
        return;
    char hex[65];
    kiln_err_t err;
    if (st_file_digest(j->output, hex, NULL, &err) < 0 ||
        st_state_cache_done(s->st, j->id, hex, &err) < 0)
        ks_job_log(s, j->id, "step cache: %s", err.msg);
}

/* ---- the view */

typedef struct {
    json_t *list;
    size_t  prefix;   /* strlen("PIPELINE/") */
} steps_ud_t;

static int step_row(const st_state_job_t *row, void *ud_)
{
    steps_ud_t *ud = ud_;
    const char *nm = strlen(row->name) > ud->prefix ? row->name + ud->prefix : row->name;
    json_t *o = json_pack("{s:s, s:I, s:s, s:s?, s:s?}", "name", nm, "job", (json_int_t)row->id,
                          "state", st_state_status_name(row->state), "reason",
                          row->reason_code, "reason_text", row->reason_text);
    return !o || json_array_append_new(ud->list, o) < 0;
}

json_t *ks_pipe_steps_json(ks_sched_t *s, int64_t id, const char *name)
{
    steps_ud_t ud = {json_array(), strlen(name) + 1};
    kiln_err_t err;
    if (!ud.list || st_state_job_children(s->st, id, step_row, &ud, &err) < 0) {
        json_decref(ud.list);
        return NULL;
    }
    return ud.list;
}
