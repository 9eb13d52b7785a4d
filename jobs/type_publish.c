/* type_publish.c - the publish job type (jobtype.h, docs/edge.md): a
 * registry model to an edge fleet as a job, alone or as a pipeline step.
 *
 *   {"type": "publish", "model": "bearing@3", "fleet": "line-4",
 *    "canary_share": 0.25, "health_window_s": 600, "expires_s": 86400}
 *
 * "model" is NAME, NAME@VERSION, NAME@ALIAS, or NAME@latest: the version
 * NAME's newest training run made, which is what a pipeline's publish step
 * names after its train step (the train job's name is the model's name);
 * a newest run that failed its gate fails the publish instead of quietly
 * publishing an older version.  There is nothing to compute on a worker:
 * the one task is a no-op run in the worker's process, and the publish
 * itself (jobs/publish.c: checks, signed bundle, seq, canaries, rollout)
 * happens in record, on the scheduler's thread in its transaction, at the
 * time the job runs (not at submit: in a pipeline the model does not exist
 * yet).  A refusal fails the job with the reason, except one: the fleet's
 * current rollout already being this very version (a pipeline run again,
 * its train step cached) succeeds with "already published: rollout N, seq
 * S, stage X" and makes nothing new; a halted one still fails. */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "../core/kiln_alloc.h"
#include "jobspec.h"
#include "jobtype.h"
#include "publish.h"

typedef struct {
    char    model[2 * ST_NAME_MAX];
    char    fleet[ST_NAME_MAX];
    double  canary_share;      /* < 0: the fleet's */
    int64_t health_window_s;   /* < 0: the fleet's */
    int64_t expires_s;         /* 0: the default */
} publish_spec_t;

/* Letters, digits, '.', '_', '-': the registry's and fleets' names. */
static int name_ok(const char *s, size_t n)
{
    if (n == 0 || n >= ST_NAME_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

static int publish_validate(const void *spec_, void **parsed, kiln_err_t *err)
{
    static const char *const keys[] = {"model", "fleet", "canary_share", "health_window_s",
                                       "expires_s", NULL};
    const json_t *spec = spec_;
    jb_common_t c;
    int rc;
    *parsed = NULL;
    if ((rc = jb_spec_check_keys(spec, keys, err)) < 0 || (rc = jb_common_parse(spec, &c, err)) < 0)
        return rc;
    if (c.resources.ranks > 1)
        return kiln_err_at(err, KILN_ESPEC, "resources.ranks",
                           "job: resources.ranks: a publish job runs on one rank");
    const json_t *v = json_object_get(spec, "model");
    const char *m = json_string_value(v);
    const char *at = m ? strchr(m, '@') : NULL;
    size_t name_len = m ? (at ? (size_t)(at - m) : strlen(m)) : 0;
    if (!m || !name_ok(m, name_len) || (at && !name_ok(at + 1, strlen(at + 1))))
        return kiln_err_at(err, KILN_ESPEC, "model",
                           "job: model: must be a registry reference NAME, NAME@VERSION, "
                           "NAME@ALIAS or NAME@latest (in a pipeline after a train step: the "
                           "train job's name @latest), not a file path");
    v = json_object_get(spec, "fleet");
    const char *f = json_string_value(v);
    if (!f || !name_ok(f, strlen(f)))
        return kiln_err_at(err, KILN_ESPEC, "fleet",
                           "job: fleet: the fleet's name is required (1 to %d letters, digits, "
                           "'.', '_' or '-')", ST_NAME_MAX - 1);
    publish_spec_t *p = kiln_calloc(1, sizeof *p);
    if (!p)
        return kiln_err_set(err, KILN_ENOMEM, "job: out of memory");
    snprintf(p->model, sizeof p->model, "%s", m);
    snprintf(p->fleet, sizeof p->fleet, "%s", f);
    p->canary_share = -1;
    p->health_window_s = -1;
    if ((v = json_object_get(spec, "canary_share"))) {
        if (!json_is_number(v) || !(json_number_value(v) > 0 && json_number_value(v) <= 1)) {
            rc = kiln_err_at(err, KILN_ESPEC, "canary_share",
                             "job: canary_share: must be a number in (0, 1]");
            goto fail;
        }
        p->canary_share = json_number_value(v);
    }
    if ((v = json_object_get(spec, "health_window_s"))) {
        if (!json_is_integer(v) || json_integer_value(v) < 0 ||
            json_integer_value(v) > 30LL * 86400) {
            rc = kiln_err_at(err, KILN_ESPEC, "health_window_s",
                             "job: health_window_s: must be an integer in 0..2592000 (30 days)");
            goto fail;
        }
        p->health_window_s = json_integer_value(v);
    }
    if ((v = json_object_get(spec, "expires_s"))) {
        if (!json_is_integer(v) || json_integer_value(v) < 1 ||
            json_integer_value(v) > 3650LL * 86400) {
            rc = kiln_err_at(err, KILN_ESPEC, "expires_s",
                             "job: expires_s: must be an integer in 1..315360000 (10 years)");
            goto fail;
        }
        p->expires_s = json_integer_value(v);
    }
    *parsed = p;
    return 0;
fail:
    kiln_free(p);
    return rc;
}

static void publish_free(void *parsed)
{
    kiln_free(parsed);
}

static int publish_plan(const void *parsed, const jb_plan_ctx_t *ctx, jb_task_plan_t **tasks,
                        size_t *n_tasks, kiln_err_t *err)
{
    (void)parsed;
    return jb_plan_even(ctx, 0, 0, "publish", tasks, n_tasks, err);
}

/* Nothing to compute on a worker: record does the publish. */
static int publish_run(const void *parsed, const jb_task_plan_t *task, const char *out_path,
                       kiln_err_t *err)
{
    (void)parsed, (void)task, (void)out_path, (void)err;
    return 0;
}

static int publish_inproc(const void *parsed)
{
    (void)parsed;
    return 1;
}

static int publish_record(const void *parsed, const char *task_output, const jb_record_ctx_t *ctx,
                          char *summary, size_t cap, kiln_err_t *err)
{
    const publish_spec_t *p = parsed;
    (void)task_output;
    if (!ctx->dir)
        return kiln_err_set(err, KILN_EINTERNAL, "publish: no kilnd directory to sign in");
    jb_publish_t req = {p->model, p->fleet, p->canary_share, p->health_window_s, p->expires_s};
    st_rollout_t r;
    uint64_t seq = 0;
    int rc = jb_fleet_publish_once(ctx->st, ctx->dir, &req, ctx->now_ns, &r, &seq, err);
    if (rc < 0)
        return rc;
    if (rc == 1)
        snprintf(summary, cap, "already published: rollout %lld, seq %llu, stage %s (%s@%lld on "
                 "fleet %s%s; nothing new signed)", (long long)r.id, (unsigned long long)seq,
                 st_rollout_stage_name(r.stage), r.model, (long long)r.version, r.fleet,
                 r.rollback ? ", a rollback" : "");
    else
        snprintf(summary, cap, "published %s@%lld to fleet %s: rollout %lld (seq %llu, %s, "
                 "canary share %g, %lld canar%s)", r.model, (long long)r.version, r.fleet,
                 (long long)r.id, (unsigned long long)seq, st_rollout_stage_name(r.stage),
                 r.canary_share, (long long)r.n_canaries, r.n_canaries == 1 ? "y" : "ies");
    return 0;
}

const jb_type_t jb_type_publish = {
    .name = "publish",
    .validate = publish_validate,
    .plan = publish_plan,
    .run_task = publish_run,
    .finish = NULL,
    .free_parsed = publish_free,
    .inproc = publish_inproc,
    .record = publish_record,
};
