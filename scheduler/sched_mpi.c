/* sched_mpi.c - gangs that are one MPI program (jobtype.h, mpi_launch; a
 * train job with resources.ranks > 1).  The gang is placed whole, as any
 * gang; then:
 *
 *  - task 0's worker runs Open MPI's mpirun over the gang's workers (its
 *    task message lists them: "gang": [{"worker", "ranks"}], its own first);
 *    mpirun's launch agent for the other workers is `kiln-worker
 *    --mpi-agent`, which sends mpirun's daemon command line here as an
 *    "exec" message;
 *  - the other tasks hold their slots ("gang_role": "holder"); kilnd hands
 *    each worker's daemon command to one holder task of that worker, and
 *    the worker runs it beside the holder;
 *  - when task 0 (mpirun) succeeds, every rank has: the holders end
 *    succeeded with it.  A failure of any task ends or requeues the gang
 *    whole, as for any gang, which stops mpirun and the daemons.
 *
 * So kiln's workers are mpirun's remote agent: no ssh between nodes, and the
 * ranks run where kilnd placed them, on the cores it counted. */
#include "sched_int.h"

#include <stdio.h>
#include <string.h>

#include "core/kiln_alloc.h"

int ks_mpi_launched(const ks_job_t *j)
{
    return j->res.ranks > 1 && j->type->mpi_launch && j->parsed && j->type->mpi_launch(j->parsed);
}

char *ks_mpi_task_fields(const ks_job_t *j, const ks_task_t *t, const ks_worker_t *w)
{
    if (t->idx != 0)
        return kiln_strdup(",\"gang_role\":\"holder\"");
    /* Task 0's worker first: mpirun runs there, its ranks are local. */
    json_t *gang = json_array();
    const ks_worker_t *seen[1024];
    size_t n_seen = 0;
    for (size_t pass = 0; gang && pass < 2; pass++)
        for (size_t i = 0; i < j->n_tasks && n_seen < 1024; i++) {
            const ks_worker_t *tw = j->tasks[i].idx == 0 ? w : j->tasks[i].worker;
            if (!tw || (pass == 0) != (tw == w))
                continue;
            size_t k;
            for (k = 0; k < n_seen && seen[k] != tw; k++)
                ;
            if (k < n_seen) {
                json_t *e = json_array_get(gang, k);
                json_object_set_new(e, "ranks",
                                    json_integer(json_integer_value(json_object_get(e, "ranks")) + 1));
                continue;
            }
            seen[n_seen++] = tw;
            json_array_append_new(gang, json_pack("{s:s, s:i}", "worker", tw->id, "ranks", 1));
        }
    json_t *o = gang ? json_pack("{s:s, s:o}", "gang_role", "launcher", "gang", gang) : NULL;
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (!text)
        return NULL;
    /* "{...}" -> ",..." to go inside the task message's object */
    size_t len = strlen(text);
    char *frag = kiln_malloc(len);
    if (frag) {
        frag[0] = ',';
        memcpy(frag + 1, text + 1, len - 2);
        frag[len - 1] = '\0';
    }
    free(text);
    return frag;
}

void ks_mpi_rank0_done(ks_sched_t *s, ks_job_t *j)
{
    kiln_err_t err;
    int64_t now = ks_now_ns();
    for (size_t i = 0; i < j->n_tasks; i++) {
        ks_task_t *t = &j->tasks[i];
        if (t->idx == 0 || t->state != ST_STATE_RUNNING)
            continue;
        if (st_state_task_finish(s->st, t->id, t->lease, ST_STATE_SUCCEEDED, NULL, now, &err) < 0)
            ks_job_log(s, j->id, "task %d: %s", t->idx, err.msg);
        ks_task_cancel_remote(s, t);   /* stops the holder (its daemon has exited) */
        t->state = ST_STATE_SUCCEEDED;
        j->n_succeeded++;
        s->tasks_done++;
    }
    ks_job_log(s, j->id, "mpirun (task 0) succeeded: all %zu ranks done", j->n_tasks);
}

static void reply(ks_sched_t *s, const char *to, const char *status, const char *reason)
{
    json_t *o = reason ? json_pack("{s:s, s:s}", "status", status, "reason", reason)
                       : json_pack("{s:s}", "status", status);
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (!text)
        return;
    char *owned = kiln_strdup(text);
    free(text);
    if (owned)
        s->ops.send(s->ud, to, KC_MSG_EXEC_REPLY, owned, strlen(owned));
}

int ks_mpi_on_exec(ks_sched_t *s, const char *from, const kc_msg_t *m, kiln_err_t *err)
{
    const json_t *b = m->body;
    int64_t job_id = json_integer_value(json_object_get(b, "job_id"));
    const char *lease = json_string_value(json_object_get(b, "lease_id"));
    const char *host = json_string_value(json_object_get(b, "host"));
    const char *cmd = json_string_value(json_object_get(b, "command"));
    ks_job_t *j = ks_idmap_get(&s->jobs, job_id);
    char why[300];
    if (!lease || !host) {
        reply(s, from, "error", "exec: job_id, lease_id and host are required");
        return kiln_err_set(err, KILN_ESPEC, "exec from \"%s\": job_id, lease_id or host missing",
                            from);
    }
    /* The capability is task 0's current lease: only its mpirun may ask. */
    if (!j || !ks_mpi_launched(j) || !j->n_tasks || j->tasks[0].state != ST_STATE_RUNNING ||
        strcmp(j->tasks[0].lease, lease)) {
        snprintf(why, sizeof why, "job %lld has no running MPI launch under lease %.40s",
                 (long long)job_id, lease);
        reply(s, from, "error", why);
        return kiln_err_set(err, KILN_EINVAL, "exec from \"%s\": %s", from, why);
    }
    for (size_t i = 1; i < j->n_tasks; i++) {
        ks_task_t *t = &j->tasks[i];
        if (t->state != ST_STATE_RUNNING || t->exec_sent || !t->worker ||
            strcmp(t->worker->id, host))
            continue;
        json_t *o = json_pack("{s:I, s:s, s:s}", "task_id", (json_int_t)t->id, "lease_id",
                              t->lease, "command", cmd);
        char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
        json_decref(o);
        char *owned = text ? kiln_strdup(text) : NULL;
        free(text);
        if (!owned) {
            reply(s, from, "error", "kilnd: out of memory");
            return kiln_err_set(err, KILN_ENOMEM, "exec: out of memory");
        }
        t->exec_sent = 1;
        s->ops.send(s->ud, host, KC_MSG_EXEC, owned, strlen(owned));
        ks_job_log(s, j->id, "mpirun's daemon for worker %s runs beside task %d", host, t->idx);
        reply(s, from, "ok", NULL);
        return 0;
    }
    snprintf(why, sizeof why, "job %lld: no rank of the gang on worker \"%.100s\" waits for a daemon",
             (long long)job_id, host);
    reply(s, from, "error", why);
    ks_job_log(s, j->id, "exec refused: %s", why);
    return 0;
}
