/* fleet.c - device call checks, canary choice and the rollout state machine
 * (fleet.h). */
#include "fleet.h"

#include <stdio.h>
#include <string.h>

#include "cluster/edge_sig.h"
#include "core/kiln_alloc.h"

int ks_edge_auth(st_state_t *st, const ks_edge_creds_t *c, const char *method, const char *path,
                 const void *body, size_t body_len, int64_t now_ns, st_device_t *out,
                 int *http_status, kiln_err_t *err)
{
    *http_status = 401;
    memset(out, 0, sizeof *out);
    out->features_json = "";
    if (!c->device || !c->time || !c->sig)
        return kiln_err_at(err, KILN_EINVAL, "X-Kiln-Device",
                           "this call must be signed by an enrolled device (X-Kiln-Device, "
                           "X-Kiln-Time and X-Kiln-Sig; docs/edge.md, \"Fleet protocol\")");
    int64_t t;
    int rc = kc_edge_time_parse(c->time, &t, err);
    if (rc < 0)
        return rc;
    kiln_err_t e2;
    if (st_device_get(st, c->device, out, &e2) < 0) {
        if (e2.code != KILN_ENOTFOUND) {
            *http_status = 500;
            *err = e2;
            return e2.code;
        }
        return kiln_err_at(err, KILN_ENOTFOUND, "X-Kiln-Device",
                           "X-Kiln-Device: no enrolled device \"%s\"", c->device);
    }
    if ((rc = kc_edge_verify(out->pubkey, method, path, t, body, body_len, c->sig, err)) < 0)
        goto fail;
    int64_t now_ms = now_ns / 1000000;
    if (t < now_ms - KC_EDGE_WINDOW_MS || t > now_ms + KC_EDGE_WINDOW_MS) {
        rc = kiln_err_at(err, KILN_ESTALE, "X-Kiln-Time",
                         "X-Kiln-Time: %lld is %lld s from the server's clock (at most %d s "
                         "allowed): check the device's clock", (long long)t,
                         (long long)((t - now_ms) / 1000), KC_EDGE_WINDOW_MS / 1000);
        goto fail;
    }
    if (out->revoked) {
        *http_status = 403;
        rc = kiln_err_at(err, KILN_ESTATE, "X-Kiln-Device",
                         "device %s was revoked: its enrollment is no longer valid (enroll it "
                         "again with a new token)", out->id);
        goto fail;
    }
    if ((rc = st_device_seen(st, out->id, t, now_ns, err)) < 0) {
        if (rc != KILN_ESTALE)
            *http_status = 500;
        goto fail;
    }
    *http_status = 200;
    return 0;
fail:
    st_device_free(out);
    return rc;
}

void ks_fleet_ids_free(char **ids, size_t n)
{
    jb_fleet_ids_free(ids, n);
}

int ks_fleet_pick_canaries(st_state_t *st, const char *fleet, double share, char ***ids,
                           size_t *n, kiln_err_t *err)
{
    return jb_fleet_pick_canaries(st, fleet, share, ids, n, err);
}

/* ---- the state machine */

typedef struct {
    const st_rollout_t *r;
    size_t n, healthy;
    char   bad[ST_DEVICE_ID_MAX + ST_HEALTH_MAX + 8];
} canary_view_t;

static int canary_item(const st_device_t *d, void *ud)
{
    canary_view_t *v = ud;
    if (d->revoked)
        return 0;   /* a revoked canary neither holds nor halts the rollout */
    v->n++;
    int on_it = !strcmp(d->model, v->r->model) && d->model_version == v->r->version;
    /* An agent that fell back reports the old version with rolled_back. */
    if (!strcmp(d->health, "rolled_back") || (on_it && !strcmp(d->health, "unhealthy"))) {
        if (!v->bad[0])
            snprintf(v->bad, sizeof v->bad, "%s %s", d->id, d->health);
        return 0;
    }
    if (on_it && !strcmp(d->health, "ok"))
        v->healthy++;
    return 0;
}

typedef struct {
    const st_rollout_t *r;
    size_t n, on_it;
} fleet_view_t;

static int fleet_item(const st_device_t *d, void *ud)
{
    fleet_view_t *v = ud;
    if (d->revoked)
        return 0;
    v->n++;
    v->on_it += !strcmp(d->model, v->r->model) && d->model_version == v->r->version;
    return 0;
}

typedef struct {
    st_rollout_t *list;
    size_t n, cap;
} ro_vec_t;

static int collect_rollout(const st_rollout_t *r, void *ud)
{
    ro_vec_t *v = ud;
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 8;
        st_rollout_t *p = kiln_realloc(v->list, cap * sizeof *p);
        if (!p)
            return 1;
        v->list = p;
        v->cap = cap;
    }
    v->list[v->n++] = *r;
    return 0;
}

static void step(st_state_t *st, const st_rollout_t *r, int64_t now_ns)
{
    kiln_err_t err = {0};
    int rc = 0;
    char reason[256];
    if (r->stage == ST_ROLLOUT_CANARY) {
        canary_view_t v = {.r = r};
        if ((rc = st_rollout_canaries(st, r->id, canary_item, &v, &err)) < 0)
            goto out;
        if (v.bad[0]) {
            snprintf(reason, sizeof reason, "canary %s on %s@%lld", v.bad, r->model,
                     (long long)r->version);
            rc = st_rollout_set_stage(st, r->id, ST_ROLLOUT_HALTED, reason, now_ns, &err);
        } else if (v.n == 0) {
            rc = st_rollout_set_stage(st, r->id, ST_ROLLOUT_FULL, "no canary devices", now_ns,
                                      &err);
        } else if (v.healthy < v.n) {
            if (r->healthy_since_ns)
                rc = st_rollout_set_healthy_since(st, r->id, 0, &err);
        } else if (!r->healthy_since_ns) {
            rc = st_rollout_set_healthy_since(st, r->id, now_ns, &err);
        } else if (now_ns - r->healthy_since_ns >= r->health_window_s * 1000000000LL) {
            snprintf(reason, sizeof reason, "%zu canar%s healthy for %lld s", v.n,
                     v.n == 1 ? "y" : "ies", (long long)r->health_window_s);
            rc = st_rollout_set_stage(st, r->id, ST_ROLLOUT_FULL, reason, now_ns, &err);
        }
    } else if (r->stage == ST_ROLLOUT_FULL) {
        fleet_view_t v = {.r = r};
        if ((rc = st_device_list(st, r->fleet, fleet_item, &v, &err)) < 0)
            goto out;
        if (v.n > 0 && v.on_it == v.n) {
            snprintf(reason, sizeof reason, "all %zu devices run %s@%lld", v.n, r->model,
                     (long long)r->version);
            rc = st_rollout_set_stage(st, r->id, ST_ROLLOUT_DONE, reason, now_ns, &err);
        }
    }
out:
    if (rc < 0)
        fprintf(stderr, "kilnd: rollout %lld of fleet %s: %s\n", (long long)r->id, r->fleet,
                err.msg);
}

void ks_fleet_tick(st_state_t *st, int64_t now_ns)
{
    ro_vec_t v = {0};
    kiln_err_t err = {0};
    if (st_rollout_active(st, collect_rollout, &v, &err) < 0)
        fprintf(stderr, "kilnd: rollouts: %s\n", err.msg);
    for (size_t i = 0; i < v.n; i++) {
        /* A newer rollout of the same fleet supersedes this one. */
        st_rollout_t cur;
        if (st_rollout_current(st, v.list[i].fleet, &cur, &err) == 0 && cur.id != v.list[i].id) {
            /* One still in canary never reached the fleet: halted, so it
             * is never taken for the last good version (a rollback's
             * target, what non-canaries run). */
            int canary = v.list[i].stage == ST_ROLLOUT_CANARY;
            char why[64];
            snprintf(why, sizeof why, "superseded by rollout %lld%s", (long long)cur.id,
                     canary ? " during its canary stage" : "");
            if (st_rollout_set_stage(st, v.list[i].id, canary ? ST_ROLLOUT_HALTED : ST_ROLLOUT_DONE,
                                     why, now_ns, &err) < 0)
                fprintf(stderr, "kilnd: rollout %lld: %s\n", (long long)v.list[i].id, err.msg);
            continue;
        }
        step(st, &v.list[i], now_ns);
    }
    kiln_free(v.list);
}
