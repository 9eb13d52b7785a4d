/* sched_child.c - jobs that a job makes: an array's instances (made as
 * the array's cap allows), and the one insert every child goes through
 * (array instances, recurring instances in sched_recur.c, pipeline steps in
 * sched_pipe.c). */
#include "sched_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/kiln_alloc.h"

/* The spec an instance of an array runs: the array's, without "array", with
 * %a replaced in input and output. */
json_t *ks_array_instance_spec(const json_t *array_spec, int64_t index)
{
    json_t *spec = json_deep_copy(array_spec);
    if (!spec)
        return NULL;
    json_object_del(spec, "array");
    char num[24];
    snprintf(num, sizeof num, "%lld", (long long)index);
    if (ks_spec_subst(spec, "input", 'a', num) < 0 || ks_spec_subst(spec, "output", 'a', num) < 0) {
        json_decref(spec);
        return NULL;
    }
    return spec;
}

ks_job_t *ks_job_store_child(ks_sched_t *s, ks_job_t *j, const st_state_job_t *row,
                             const char *name, kiln_err_t *err)
{
    int64_t id;
    char *nm = kiln_strdup(name);
    int rc = nm ? st_state_job_insert(s->st, row, &id, NULL, err)
                : kiln_err_set(err, KILN_ENOMEM, "job \"%s\": out of memory", name);
    if (rc < 0) {
        kiln_free(nm);
        ks_job_free(j);
        return NULL;
    }
    kiln_free(j->name);
    j->name = nm;
    j->id = id;
    j->submitted_ns = row->submitted_ns;
    if (row->array_parent) {
        j->array_parent = row->array_parent;
        j->array_index = row->array_index;
    }
    if (row->scheduled_by) {
        j->scheduled_by = row->scheduled_by;
        j->scheduled_for_ns = row->scheduled_for_ns;
    }
    if (ks_live_add(s, j) < 0) {
        ks_job_free(j);
        kiln_err_set(err, KILN_ENOMEM, "job %lld: out of memory", (long long)id);
        return NULL;
    }
    return j;
}

ks_job_t *ks_job_instance_new(ks_sched_t *s, ks_job_t *parent, kiln_err_t *err)
{
    int64_t index = parent->arr_next;
    json_t *spec = ks_array_instance_spec(parent->spec, index);
    if (!spec) {
        kiln_err_set(err, KILN_ENOMEM, "job %lld: out of memory", (long long)parent->id);
        return NULL;
    }
    jb_common_t c;
    if (jb_common_parse(spec, &c, err) < 0) {
        json_decref(spec);
        return NULL;
    }
    char name[JB_SPEC_NAME_MAX + 32];
    snprintf(name, sizeof name, "%s[%lld]", parent->name, (long long)index);
    char *spec_text = json_dumps(spec, JSON_COMPACT);
    /* The array already waited for its dependencies. */
    c.n_depends_on = 0;
    ks_job_t *j = spec_text ? ks_job_build(spec, &c, err) : NULL;
    if (!spec_text)
        json_decref(spec);
    if (!j) {
        if (!spec_text)
            kiln_err_set(err, KILN_ENOMEM, "job %lld: out of memory", (long long)parent->id);
        free(spec_text);
        return NULL;
    }
    st_state_job_t row = ks_job_row(j, c.type, name, spec_text);
    row.array_parent = parent->id;
    row.array_index = index;
    j = ks_job_store_child(s, j, &row, name, err);
    free(spec_text);
    if (!j)
        return NULL;
    int64_t id = j->id;
    parent->arr_next++;
    parent->arr_live++;
    ks_job_log(s, parent->id, "instance %lld is job %lld", (long long)index, (long long)id);
    return j;
}

/* jb_record_ctx_t.submit_child: spec (borrowed) as a job of its own, named
 * `name`, submitted as `kiln submit` would (the type's resolve first), and
 * stored through ks_job_store_child like every child.  It is a top-level
 * job (no array_parent): its parent has ended by the time it runs. */
int ks_record_submit_child(void *sched, const void *spec_, const char *name, int64_t *child_id,
                           kiln_err_t *err)
{
    ks_sched_t *s = sched;
    json_t *spec = json_deep_copy(spec_);
    if (!spec)
        return kiln_err_set(err, KILN_ENOMEM, "job \"%s\": out of memory", name);
    jb_common_t c;
    int rc = jb_common_parse(spec, &c, err);
    const jb_type_t *type = rc == 0 ? jb_type_find(c.type) : NULL;
    if (rc == 0)
        rc = ks_spec_resolve(s, type, spec, err);
    if (rc < 0) {
        json_decref(spec);
        return rc;
    }
    char *spec_text = json_dumps(spec, JSON_COMPACT);
    ks_job_t *j = spec_text ? ks_job_build(spec, &c, err) : NULL;
    if (!spec_text) {
        json_decref(spec);
        return kiln_err_set(err, KILN_ENOMEM, "job \"%s\": out of memory", name);
    }
    if (!j) {
        free(spec_text);
        return err->code ? err->code : KILN_EINTERNAL;
    }
    st_state_job_t row = ks_job_row(j, c.type, name, spec_text);
    row.depends_on = j->deps;
    row.n_depends_on = j->n_deps;
    j = ks_job_store_child(s, j, &row, name, err);
    free(spec_text);
    if (!j)
        return err->code ? err->code : KILN_EINTERNAL;
    if (j->is_template && (rc = ks_recur_submitted(s, j, err)) < 0)
        return rc;
    *child_id = j->id;
    ks_job_log(s, j->id, "submitted: %s job \"%s\" of project \"%s\"", c.type, j->name,
               j->project);
    return 0;
}
