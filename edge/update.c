/* update.c - poll, download, verify, swap, roll back and report on the
 * agent's loop (update.h).  Fleet calls run one at a time in libuv's thread
 * pool (uv_queue_work); everything that touches the engine, the symlinks or
 * the state file runs on the loop thread in the work's after-callback. */
#include "edge/update.h"

#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "core/kiln_alloc.h"
#include "edge/agent.h"
#include "edge/fleetc.h"
#include "edge/store.h"
#include "storage/bundle.h"

enum { JOB_POLL = 1, JOB_REPORT };
enum { R_NOTHING, R_SAME, R_STAGED, R_REFUSED, R_OFFLINE, R_ERROR };

struct ke_update {
    ke_agent_t          *agent;
    uv_loop_t           *loop;
    ke_update_opts_t     o;
    char                 dir[KE_PATH_MAX];
    ke_device_t          dev;
    ke_state_t           st;
    ke_fleetc_t          fc;
    st_bundle_pubkey_t   pk;
    st_bundle_fleetkey_t fk;
    int                  have_fk;
    uv_timer_t           poll_timer, report_timer;
    int                  timers_up;
    uv_work_t            work;
    int                  busy, job, poll_due, report_due, stopping;
    volatile int         cancel;
    int                  backoff_s, offline;
    char                 health[16], message[600];
    /* The sha256 of an envelope refused (or same-version) as it stands, so
     * that it is told once; by hash, not by its unverified seq, so that a
     * forgery cannot silence the genuine envelope of the same seq.  A bundle
     * refused after its envelope verified is not quiet: the next poll
     * downloads it again (a transfer tampered with once must not freeze the
     * device on the old model). */
    unsigned char        quiet_hash[32], told_hash[32], env_hash[32];
    /* A bundle refused after its envelope verified is fetched again, but
     * after poll_s x 2^bad_tries (at most 64 polls, an hour): a bundle
     * broken at the source must not have every device of a plant pull it
     * again at every poll. */
    unsigned char        bad_hash[32];
    int                  bad_tries;
    char                 last_fail[800]; /* the last poll failure told */

    /* one job's input and output (the worker owns them while busy) */
    char                 snap_model[ST_BUNDLE_NAME_MAX];
    st_bundle_device_t   snap;
    char                *report_body;
    int                  result;
    uint64_t             seq;
    st_bundle_envelope_t env;
    int                  have_env;
    char                 staging_rel[256];
    char                 part[KE_PATH_MAX + 100];
    st_bundle_reason_t   why;
    kiln_err_t           err;
};

static void kick(ke_update_t *u);
static void on_poll_timer(uv_timer_t *t);

static void set_health(ke_update_t *u, const char *health, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_health(ke_update_t *u, const char *health, const char *fmt, ...)
{
    va_list ap;
    char h[sizeof u->health];
    snprintf(h, sizeof h, "%s", health);   /* health may be u->health itself */
    memcpy(u->health, h, sizeof h);
    va_start(ap, fmt);
    vsnprintf(u->message, sizeof u->message, fmt, ap);
    va_end(ap);
}

/* ---- poll (worker thread) ----------------------------------------------- */

static void poll_work(ke_update_t *u)
{
    char *resp = NULL;
    size_t len = 0;
    long status = 0;
    u->have_env = 0;
    if (ke_fleetc_call(&u->fc, "GET", "/edge/v1/manifest", NULL, 0, &status, &resp, &len,
                       ST_BUNDLE_ENVELOPE_MAX, &u->err) < 0) {
        u->result = u->err.code == KILN_EIO ? R_OFFLINE : R_ERROR;
        return;
    }
    if (status == 204) {
        u->result = R_NOTHING;
        goto out;
    }
    if (status != 200) {
        json_t *j = json_loadb(resp, len, 0, NULL);
        const char *m = json_string_value(json_object_get(j, "error"));
        kiln_err_set(&u->err, KILN_EIO, "GET /edge/v1/manifest: HTTP %ld: %.400s", status,
                     m ? m : resp);
        json_decref(j);
        u->result = R_ERROR;
        goto out;
    }
    /* Only the seq, unverified, to stay quiet about what was seen already;
     * everything acted on is verified below. */
    json_t *j = json_loadb(resp, len, 0, NULL);
    json_t *seq = json_object_get(j, "seq");
    u->seq = json_is_integer(seq) && json_integer_value(seq) > 0
                 ? (uint64_t)json_integer_value(seq) : 0;
    json_decref(j);
    crypto_hash_sha256(u->env_hash, (const unsigned char *)resp, len);
    if (!memcmp(u->env_hash, u->quiet_hash, sizeof u->env_hash) ||
        (u->seq && (u->seq == u->snap.last_seq || u->seq == u->st.failed_seq))) {
        u->result = R_NOTHING;
        goto out;
    }
    u->snap.now = (int64_t)time(NULL);
    if (st_bundle_verify_envelope(resp, len, &u->pk, &u->snap, &u->env, &u->why, &u->err) < 0) {
        u->result = u->why == ST_BUNDLE_R_SAME_VERSION ? R_SAME : R_REFUSED;
        goto out;
    }
    u->have_env = 1;
    snprintf(u->part, sizeof u->part, "%s/download/%s.part", u->dir, u->env.bundle_sha256);
    int rc = ke_fleetc_download(&u->fc, u->env.bundle_sha256, u->env.bundle_size, u->part, 3,
                                &u->err);
    if (rc < 0) {
        u->why = ST_BUNDLE_R_IO;
        u->result = rc == KILN_EIO ? R_OFFLINE : R_ERROR;
        goto out;
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(u->staging_rel, sizeof u->staging_rel, "models/s%" PRIu64 "-v%" PRIu64 "-%lld%09ld",
             u->env.seq, u->env.version, (long long)ts.tv_sec, ts.tv_nsec);
    char staging[KE_PATH_MAX + 300];
    snprintf(staging, sizeof staging, "%s/%s", u->dir, u->staging_rel);
    if (st_bundle_extract(&u->env, u->part, u->have_fk ? &u->fk : NULL, staging, &u->why,
                          &u->err) < 0) {
        unlink(u->part);     /* a bad download: the next try starts over */
        u->result = R_REFUSED;
        goto out;
    }
    u->result = R_STAGED;
out:
    kiln_free(resp);
}

/* ---- report (worker thread) ---------------------------------------------- */

static void report_work(ke_update_t *u)
{
    long status = 0;
    char *resp = NULL;
    size_t len = 0;
    u->result = R_NOTHING;
    if (ke_fleetc_call(&u->fc, "POST", "/edge/v1/report", u->report_body,
                       strlen(u->report_body), &status, &resp, &len, 65536, &u->err) < 0) {
        u->result = R_OFFLINE;
        return;
    }
    if (status != 200) {
        kiln_err_set(&u->err, KILN_EIO, "POST /edge/v1/report: HTTP %ld: %.400s", status, resp);
        u->result = R_ERROR;
    }
    kiln_free(resp);
}

static void on_work(uv_work_t *w)
{
    ke_update_t *u = w->data;
    if (u->job == JOB_POLL)
        poll_work(u);
    else
        report_work(u);
}

/* ---- on the loop ------------------------------------------------------------ */

static uint64_t version_of(const ke_model_info_t *i)
{
    char *end;
    unsigned long long v = i ? strtoull(i->version, &end, 10) : 0;
    return i && !*end ? (uint64_t)v : 0;
}

static char *build_report(ke_update_t *u)
{
    const char *which, *why;
    const ke_model_info_t *i = ke_agent_model(u->agent, &which, &why);
    ke_stats_t *s = ke_agent_stats(u->agent);
    const ke_engine_t *e = ke_agent_engine(u->agent);
    const char *names[4096] = {0};
    for (size_t f = 0; e && f < s->n_features && f < 4096; f++)
        names[f] = ke_engine_feature_name(e, f);
    json_t *r = json_pack("{s:s, s:s, s:{s:f, s:f}, s:o*}", "health",
                          u->o.force_unhealthy ? "unhealthy" : u->health, "message",
                          u->o.force_unhealthy ? "forced by --force-unhealthy" : u->message,
                          "latency_us", "p50", ke_stats_quantile_us(s, 0.5), "p99",
                          ke_stats_quantile_us(s, 0.99), "features",
                          s->n_features ? ke_stats_features_json(s, names) : NULL);
    if (r && i) {
        json_object_set_new(r, "model", json_string(i->name));
        json_object_set_new(r, "version", json_integer((json_int_t)version_of(i)));
    }
    char *text = r ? json_dumps(r, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(r);
    return text;
}

static void poll_again(ke_update_t *u, int delay_s)
{
    if (!u->stopping)
        uv_timer_start(&u->poll_timer, on_poll_timer, (uint64_t)delay_s * 1000, 0);
}

/* The swap, the reload, and the agent's own rollback when the new model
 * does not come up. */
static void apply(ke_update_t *u)
{
    kiln_err_t err;
    const st_bundle_envelope_t *env = &u->env;
    char staging[KE_PATH_MAX + 300];
    snprintf(staging, sizeof staging, "%s/%s", u->dir, u->staging_rel);
    ke_store_test_pause("staged");
    if (ke_store_swap(u->dir, u->staging_rel, 0, &err) < 0) {
        fprintf(stderr, "kiln-edge: update: swap to %s v%" PRIu64 " failed: %s\n",
                env->model_name, env->version, err.msg);
        ke_store_gc(u->dir, env->bundle_sha256);
        set_health(u, u->health, "swap to %s v%" PRIu64 " failed: %s", env->model_name,
                   env->version, err.msg);
        return;
    }
    const char *which = "", *why = "";
    int rc = ke_agent_reload(u->agent, &err);
    const ke_model_info_t *i = ke_agent_model(u->agent, &which, &why);
    if (rc == 0 && !strcmp(which, "current") && version_of(i) == env->version &&
        !strcmp(i->name, env->model_name)) {
        u->st.last_seq = env->seq;
        u->st.version = env->version;
        snprintf(u->st.model, sizeof u->st.model, "%s", env->model_name);
        snprintf(u->st.current, sizeof u->st.current, "%s", u->staging_rel);
        ke_store_test_pause("state");
        if (ke_state_write(u->dir, &u->st, &err) < 0)
            fprintf(stderr, "kiln-edge: update: %s (the next poll applies it again)\n", err.msg);
        unlink(u->part);
        ke_store_gc(u->dir, NULL);
        set_health(u, "ok", "%s %s v%" PRIu64 " (seq %" PRIu64 ")",
                   env->rollback ? "signed rollback to" : "updated to", env->model_name,
                   env->version, env->seq);
        fprintf(stderr, "kiln-edge: update: %s\n", u->message);
        return;
    }
    /* The new model failed to load or its self-test: back to previous. */
    char reason[800];
    snprintf(reason, sizeof reason, "%s", rc < 0 ? err.msg : why[0] ? why : "did not load");
    u->st.failed_seq = env->seq;
    char prev[512];
    kiln_err_t e2;
    if (ke_store_link(u->dir, "previous", prev, sizeof prev, &e2) == 0 && prev[0] &&
        ke_store_rollback(u->dir, &e2) == 0) {
        ke_agent_reload(u->agent, &e2);
        set_health(u, "rolled_back", "%s v%" PRIu64 " failed: %s; rolled back to %s",
                   env->model_name, env->version, reason, prev);
    } else {
        /* The first model failed: nothing to go back to. */
        char cur[KE_PATH_MAX + 16];
        snprintf(cur, sizeof cur, "%s/current", u->dir);
        unlink(cur);
        set_health(u, "unhealthy", "%s v%" PRIu64 " failed: %s; no previous model",
                   env->model_name, env->version, reason);
    }
    fprintf(stderr, "kiln-edge: update: %s\n", u->message);
    if (ke_state_write(u->dir, &u->st, &err) < 0)
        fprintf(stderr, "kiln-edge: update: %s\n", err.msg);
    ke_store_gc(u->dir, NULL);
}

/* The delay before the bundle of the envelope just refused is fetched again. */
static int bundle_backoff(ke_update_t *u)
{
    if (u->bad_tries && !memcmp(u->bad_hash, u->env_hash, sizeof u->bad_hash)) {
        if (u->bad_tries < 6)
            u->bad_tries++;
    } else {
        memcpy(u->bad_hash, u->env_hash, sizeof u->bad_hash);
        u->bad_tries = 1;
    }
    long delay = (long)u->o.poll_s << u->bad_tries;
    if (delay > 3600)
        delay = 3600 > u->o.poll_s ? 3600 : u->o.poll_s;
    fprintf(stderr, "kiln-edge: update: the bundle of seq %" PRIu64 " was refused (%d in a row); "
            "next download in %ld s\n", u->seq, u->bad_tries, delay);
    return (int)delay;
}

static void after_poll(ke_update_t *u)
{
    int delay = u->o.poll_s;
    switch (u->result) {
    case R_SAME:
        memcpy(u->quiet_hash, u->env_hash, sizeof u->quiet_hash);
        /* fall through */
    case R_NOTHING:
        break;
    case R_REFUSED:
        if (!u->have_env)   /* the envelope itself: quiet until it changes */
            memcpy(u->quiet_hash, u->env_hash, sizeof u->quiet_hash);
        else
            delay = bundle_backoff(u);
        if (!memcmp(u->told_hash, u->env_hash, sizeof u->told_hash))
            break;          /* its bundle, refused again: told already */
        memcpy(u->told_hash, u->env_hash, sizeof u->told_hash);
        fprintf(stderr, "kiln-edge: update: envelope seq %" PRIu64 " refused (%s): %s; still "
                "serving the running model\n", u->seq, st_bundle_reason_name(u->why), u->err.msg);
        set_health(u, u->health[0] ? u->health : "ok", "refused seq %" PRIu64 " (%s): %.400s",
                   u->seq, st_bundle_reason_name(u->why), u->err.msg);
        u->report_due = 1;
        break;
    case R_STAGED:
        u->bad_tries = 0;
        apply(u);
        u->report_due = 1;
        break;
    case R_OFFLINE:
    case R_ERROR:
        u->backoff_s = u->backoff_s ? u->backoff_s * 2 : u->o.poll_s;
        if (u->backoff_s > 8 * u->o.poll_s)
            u->backoff_s = 8 * u->o.poll_s;
        if (u->backoff_s > 300)
            u->backoff_s = 300;
        delay = u->backoff_s;
        if (strcmp(u->last_fail, u->err.msg))
            fprintf(stderr, "kiln-edge: update: %s; serving the last good model, retrying with "
                    "backoff\n", u->err.msg);
        snprintf(u->last_fail, sizeof u->last_fail, "%s", u->err.msg);
        u->offline = 1;
        break;
    }
    if (u->result != R_OFFLINE && u->result != R_ERROR) {
        if (u->offline)
            fprintf(stderr, "kiln-edge: update: fleet endpoint reachable again\n");
        u->offline = 0;
        u->backoff_s = 0;
        u->last_fail[0] = 0;
    }
    if (u->have_env) {
        st_bundle_envelope_free(&u->env);
        u->have_env = 0;
    }
    poll_again(u, delay);
}

static void after_work(uv_work_t *w, int status)
{
    ke_update_t *u = w->data;
    (void)status;
    u->busy = 0;
    if (u->job == JOB_POLL) {
        after_poll(u);
    } else {
        free(u->report_body);
        u->report_body = NULL;
        if (u->result != R_NOTHING && !u->offline)
            fprintf(stderr, "kiln-edge: report: %s\n", u->err.msg);
    }
    kick(u);
}

static void kick(ke_update_t *u)
{
    if (u->busy || u->stopping)
        return;
    if (u->poll_due) {
        u->poll_due = 0;
        u->job = JOB_POLL;
        const char *which, *why;
        const ke_model_info_t *i = ke_agent_model(u->agent, &which, &why);
        /* The running model as the state file recorded it after its swap;
         * the engine's when there is no record (a model put there by hand). */
        snprintf(u->snap_model, sizeof u->snap_model, "%s",
                 u->st.model[0] ? u->st.model : i ? i->name : "");
        u->snap = (st_bundle_device_t){u->dev.fleet, u->snap_model,
                                       u->st.model[0] ? u->st.version : version_of(i),
                                       u->st.last_seq, 0};
    } else if (u->report_due) {
        u->report_due = 0;
        u->job = JOB_REPORT;
        if (!(u->report_body = build_report(u)))
            return;
    } else {
        return;
    }
    u->busy = 1;
    u->work.data = u;
    if (uv_queue_work(u->loop, &u->work, on_work, after_work) < 0)
        u->busy = 0;
}

static void on_poll_timer(uv_timer_t *t)
{
    ke_update_t *u = t->data;
    u->poll_due = 1;
    kick(u);
}

static void on_report_timer(uv_timer_t *t)
{
    ke_update_t *u = t->data;
    u->report_due = 1;
    kick(u);
}

int ke_update_start(ke_agent_t *a, const ke_update_opts_t *o, ke_update_t **out,
                    kiln_err_t *err)
{
    char path[KE_PATH_MAX + 64];
    int rc;
    *out = NULL;
    if (strlen(o->dir) > 3000)
        return kiln_err_set(err, KILN_EINVAL, "--dir: path too long");
    if (sodium_init() < 0 || curl_global_init(CURL_GLOBAL_DEFAULT) != 0)
        return kiln_err_set(err, KILN_EIO, "libsodium or libcurl: cannot initialize");
    ke_update_t *u = kiln_calloc(1, sizeof *u);
    if (!u)
        return kiln_err_set(err, KILN_ENOMEM, "out of memory");
    u->agent = a;
    u->loop = ke_agent_loop(a);
    u->o = *o;
    if (u->o.poll_s <= 0)
        u->o.poll_s = 30;
    if (u->o.report_s <= 0)
        u->o.report_s = 60;
    snprintf(u->dir, sizeof u->dir, "%s", o->dir);
    snprintf(u->health, sizeof u->health, "ok");
    if ((rc = ke_device_read(u->dir, &u->dev, err)) < 0 ||
        (rc = ke_state_read(u->dir, &u->st, err)) < 0)
        goto fail;
    snprintf(path, sizeof path, "%s/publisher.pk", u->dir);
    if ((rc = st_bundle_load_pubkey(path, &u->pk, err)) < 0)
        goto fail;
    snprintf(path, sizeof path, "%s/fleet.key", u->dir);
    if (access(path, F_OK) == 0) {
        if ((rc = st_bundle_load_fleetkey(path, &u->fk, err)) < 0)
            goto fail;
        u->have_fk = 1;
    }
    snprintf(path, sizeof path, "%s/device.sk", u->dir);
    FILE *f = fopen(path, "rb");
    struct stat st;
    if (!f || fstat(fileno(f), &st) != 0 || (st.st_mode & 077) ||
        fread(u->fc.sk, 1, sizeof u->fc.sk, f) != sizeof u->fc.sk) {
        rc = kiln_err_at(err, KILN_EINVAL, path, "%s: not a 64-byte secret key of mode 0600",
                         path);
        if (f)
            fclose(f);
        goto fail;
    }
    fclose(f);
    snprintf(u->fc.server, sizeof u->fc.server, "%s", u->dev.server);
    snprintf(u->fc.ca_path, sizeof u->fc.ca_path, "%s/ca.pem", u->dir);
    snprintf(u->fc.device_id, sizeof u->fc.device_id, "%s", u->dev.device_id);
    u->fc.cancel = &u->cancel;
    snprintf(path, sizeof path, "%s/models", u->dir);
    mkdir(path, 0700);
    snprintf(path, sizeof path, "%s/download", u->dir);
    mkdir(path, 0700);
    ke_store_gc(u->dir, "");   /* keep every .part ("" prefixes all): resumed later */
    uv_timer_init(u->loop, &u->poll_timer);
    uv_timer_init(u->loop, &u->report_timer);
    u->poll_timer.data = u->report_timer.data = u;
    u->timers_up = 1;
    uv_timer_start(&u->poll_timer, on_poll_timer, 0, 0);
    uv_timer_start(&u->report_timer, on_report_timer, (uint64_t)u->o.report_s * 1000,
                   (uint64_t)u->o.report_s * 1000);
    fprintf(stderr, "kiln-edge: device %s of fleet %s; polling %s every %d s\n",
            u->dev.device_id, u->dev.fleet, u->dev.server, u->o.poll_s);
    *out = u;
    return 0;
fail:
    sodium_memzero(u->fc.sk, sizeof u->fc.sk);
    kiln_free(u);
    return rc;
}

void ke_update_stop(ke_update_t *u)
{
    if (!u)
        return;
    u->stopping = 1;
    u->cancel = 1;
    if (u->timers_up) {
        uv_timer_stop(&u->poll_timer);
        uv_timer_stop(&u->report_timer);
    }
}

void ke_update_free(ke_update_t **pu)
{
    ke_update_t *u = *pu;
    if (!u)
        return;
    if (u->have_env)
        st_bundle_envelope_free(&u->env);
    free(u->report_body);
    sodium_memzero(u->fc.sk, sizeof u->fc.sk);
    st_bundle_key_wipe(&u->fk, sizeof u->fk);
    kiln_free(u);
    *pu = NULL;
}
