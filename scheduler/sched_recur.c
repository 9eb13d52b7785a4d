/* sched_recur.c - recurring jobs (docs/cluster.md, "Recurring jobs").  A spec
 * with "schedule" is a template: stored as a job that stays queued (reason
 * "schedule") and never runs; at each fire time ks_recur_tick submits an
 * instance, an ordinary job "NAME@<fire time>" linked by scheduled_by.
 *
 * Durability: the instance's row and the template's next fire time are
 * written in the same loop-turn transaction, and (scheduled_by,
 * scheduled_for_ns) is unique in the store, so kill -9 at any point neither
 * fires a time twice nor loses it.  Fire times missed while kilnd was down
 * fire once (catch-up), then the schedule goes on from now.  An instance
 * still unfinished when the next time comes makes that time skipped (as
 * Kubernetes CronJob's concurrencyPolicy: Forbid), so runs never pile up. */
#include "sched_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/kiln_alloc.h"

json_t *ks_recur_instance_spec(const json_t *template_spec, int64_t fire_ns)
{
    json_t *spec = json_deep_copy(template_spec);
    if (!spec)
        return NULL;
    json_object_del(spec, "schedule");
    char when[32];
    ks_cron_iso(fire_ns, 1, when, sizeof when);
    if (ks_spec_subst(spec, "input", 't', when) < 0 ||
        ks_spec_subst(spec, "output", 't', when) < 0) {
        json_decref(spec);
        return NULL;
    }
    return spec;
}

static void set_reason(ks_sched_t *s, ks_job_t *t)
{
    char when[32];
    ks_cron_iso(t->next_run_ns, 0, when, sizeof when);
    ks_job_set_reason(s, t, "schedule", "next run at %s (%lld run%s so far)", when,
                      (long long)t->runs, t->runs == 1 ? "" : "s");
}

int ks_recur_submitted(ks_sched_t *s, ks_job_t *t, kiln_err_t *err)
{
    int64_t now = ks_now_ns();
    if (ks_cron_next_after(&t->cron, now, &t->next_run_ns) < 0)
        return kiln_err_at(err, KILN_ESPEC, "schedule", "schedule: never fires");
    const char *expr = json_string_value(json_object_get(t->spec, "schedule"));
    int rc = st_state_schedule_put(s->st, t->id, expr, t->next_run_ns, err);
    if (rc < 0)
        return rc;
    set_reason(s, t);
    return 0;
}

int ks_recur_reloaded(ks_sched_t *s, ks_job_t *j, kiln_err_t *err)
{
    if (j->scheduled_by) {
        /* Templates have lower ids than their instances: loaded already. */
        ks_job_t *t = ks_idmap_get(&s->jobs, j->scheduled_by);
        if (t && t->is_template) {
            t->sched_live++;
            t->sched_last = j->id;
        }
        return 0;
    }
    st_state_schedule_t sch;
    int rc = st_state_schedule_get(s->st, j->id, &sch, err);
    if (rc == KILN_ENOTFOUND)
        return ks_recur_submitted(s, j, err);   /* not expected; start from now */
    if (rc < 0)
        return rc;
    j->next_run_ns = sch.next_run_ns;
    j->runs = sch.runs;
    j->skipped = sch.skipped;
    st_state_schedule_free(&sch);
    return 0;
}

void ks_recur_instance_ended(ks_sched_t *s, const ks_job_t *j)
{
    ks_job_t *t = ks_idmap_get(&s->jobs, j->scheduled_by);
    if (t && t->is_template && t->sched_live)
        t->sched_live--;
}

/* The instance of t for fire_ns: its spec (t's without "schedule", "%t" in
 * input and output set to the fire time, a registry reference resolved
 * again so a moved alias is followed), stored and made live. */
static ks_job_t *instance_new(ks_sched_t *s, ks_job_t *t, int64_t fire_ns, kiln_err_t *err)
{
    json_t *spec = ks_recur_instance_spec(t->spec, fire_ns);
    if (!spec) {
        kiln_err_set(err, KILN_ENOMEM, "job %lld: out of memory", (long long)t->id);
        return NULL;
    }
    if (ks_spec_resolve(s, t->type, spec, err) < 0) {
        json_decref(spec);
        return NULL;
    }
    jb_common_t c;
    if (jb_common_parse(spec, &c, err) < 0) {
        json_decref(spec);
        return NULL;
    }
    char when[32], name[JB_SPEC_NAME_MAX + 32];
    ks_cron_iso(fire_ns, 0, when, sizeof when);
    snprintf(name, sizeof name, "%s@%s", t->name, when);
    char *spec_text = json_dumps(spec, JSON_COMPACT);
    ks_job_t *j = spec_text ? ks_job_build(spec, &c, err) : NULL;
    if (!spec_text) {
        json_decref(spec);
        kiln_err_set(err, KILN_ENOMEM, "job %lld: out of memory", (long long)t->id);
    }
    if (!j) {
        free(spec_text);
        return NULL;
    }
    st_state_job_t row = ks_job_row(j, c.type, name, spec_text);
    row.scheduled_by = t->id;
    row.scheduled_for_ns = fire_ns;
    j = ks_job_store_child(s, j, &row, name, err);
    free(spec_text);
    if (!j)
        return NULL;
    ks_job_log(s, j->id, "submitted by recurring job %lld for its run at %s", (long long)t->id,
               when);
    return j;
}

/* t's fire time has come (t->next_run_ns <= now): one instance, or a skip
 * while the last one is unfinished; then the next time after now. */
static void fire(ks_sched_t *s, ks_job_t *t, int64_t now)
{
    int64_t fire_ns = t->next_run_ns, next, later;
    char when[32];
    ks_cron_iso(fire_ns, 0, when, sizeof when);
    if (ks_cron_next_after(&t->cron, now, &next) < 0)
        next = INT64_MAX;   /* ks_cron_parse refused every expression that can get here */
    if (ks_cron_next_after(&t->cron, fire_ns, &later) == 0 && later <= now)
        ks_job_log(s, t->id, "missed the runs from %s to now (kilnd was not running): "
                   "running once for them (catch-up)", when);
    kiln_err_t err;
    if (t->sched_live) {
        ks_job_t *last = ks_idmap_get(&s->jobs, t->sched_last);
        t->skipped++;
        ks_job_log(s, t->id, "run at %s skipped: job %lld (the last run) is still %s", when,
                   (long long)t->sched_last,
                   last ? st_state_status_name(last->state) : "unfinished");
    } else {
        ks_job_t *j = instance_new(s, t, fire_ns, &err);
        if (j) {
            t->runs++;
            t->sched_live++;
            t->sched_last = j->id;
            ks_job_log(s, t->id, "run at %s: job %lld \"%s\"", when, (long long)j->id, j->name);
        } else {
            t->skipped++;
            ks_job_log(s, t->id, "run at %s skipped: the instance could not be made: %s", when,
                       err.msg);
        }
    }
    t->next_run_ns = next;
    if (st_state_schedule_set(s->st, t->id, t->next_run_ns, t->runs, t->skipped, &err) < 0)
        ks_job_log(s, t->id, "state store: %s", err.msg);
    set_reason(s, t);
    s->dirty = 1;
}

void ks_recur_tick(ks_sched_t *s, int64_t now)
{
    if (!s->n_templates)
        return;
    /* By id: firing adds instances to the live set. */
    int64_t due[256];
    size_t n = 0;
    for (size_t i = 0; i < s->n_live && n < 256; i++) {
        const ks_job_t *t = s->live[i];
        if (t->is_template && t->next_run_ns <= now && t->state == ST_STATE_QUEUED)
            due[n++] = t->id;
    }
    for (size_t i = 0; i < n; i++) {
        ks_job_t *t = ks_idmap_get(&s->jobs, due[i]);
        if (t && t->is_template)
            fire(s, t, now);
    }
}
