/* fleet_refresh.c - re-signs served envelopes at half their lifetime
 * (fleet_refresh.h). */
#include "jobs/fleet_refresh.h"

#include <stdio.h>
#include <string.h>

#include "core/kiln_alloc.h"
#include "jobs/publish.h"
#include "storage/artifacts.h"
#include "storage/bundle.h"
#include "storage/fleets.h"

#define PATH_CAP 1200

typedef struct {
    st_state_t         *st;
    const char         *dir;
    char                root[PATH_CAP];
    st_bundle_signkey_t sk;
    int                 have_sk;
    int64_t             now_s;
} refresh_t;

/* r's envelope sealed again until now + its lifetime, when half of that is
 * gone; 1 when it was, 0 when not yet, < 0 on error. */
static int refresh_one(refresh_t *c, const st_rollout_t *r, int64_t *expires_at, kiln_err_t *err)
{
    int64_t life = r->expires_s > 0 ? r->expires_s : JB_PUBLISH_EXPIRES_S_DEFAULT;
    /* expires_at 0: a rollout from before it was recorded; sealed once now */
    if (r->expires_at > 0 && c->now_s < r->expires_at - life / 2)
        return 0;
    char bundle[PATH_CAP];
    if (st_artifact_path(c->root, r->bundle_sha256, bundle, sizeof bundle) < 0)
        return kiln_err_set(err, KILN_EINVAL, "%s: path too long", c->root);
    int rc;
    if (!c->have_sk) {
        if ((rc = jb_publisher_key(c->dir, &c->sk, err)) < 0)
            return rc;
        c->have_sk = 1;
    }
    void *old = NULL;
    size_t old_len = 0, len = 0;
    char *env = NULL, hex[65];
    *expires_at = c->now_s + life;
    if ((rc = st_artifact_get(c->root, r->envelope_sha256, ST_BUNDLE_ENVELOPE_MAX, &old, &old_len,
                              err)) < 0 ||
        (rc = st_bundle_reseal_bytes(old, old_len, bundle, 0, *expires_at, r->rollback, &c->sk,
                                     &env, &len, err)) < 0 ||
        (rc = st_artifact_put(c->root, env, len, hex, err)) < 0 ||
        (rc = st_rollout_set_envelope(c->st, r->id, hex, *expires_at, err)) < 0)
        goto out;
    /* The old envelope (a few KB) stays in the artifact store: the row
     * change is not committed yet when this returns. */
    rc = 1;
out:
    kiln_free(old);
    kiln_free(env);
    return rc;
}

int jb_fleet_refresh(st_state_t *st, const char *dir, int64_t now_ns, jb_refresh_cb cb, void *ud,
                     int *n_resigned, kiln_err_t *err)
{
    if (n_resigned)
        *n_resigned = 0;
    if (!st || !dir)
        return kiln_err_set(err, KILN_EINVAL, "refresh: missing argument");
    refresh_t c = {.st = st, .dir = dir, .now_s = now_ns / 1000000000LL};
    int n = snprintf(c.root, sizeof c.root, "%s/artifacts", dir);
    if (n < 0 || (size_t)n >= sizeof c.root)
        return kiln_err_set(err, KILN_EINVAL, "%s: path too long", dir);
    char (*names)[ST_NAME_MAX] = NULL;
    size_t n_fleets = 0;
    int rc = st_fleet_names(st, &names, &n_fleets, err), first = 0;
    kiln_err_t e1 = {0};
    for (size_t i = 0; rc == 0 && i < n_fleets; i++) {
        st_rollout_t served[2];
        size_t n_served = 0;
        kiln_err_t e2 = {0};
        if (st_rollout_current(st, names[i], &served[0], &e2) < 0)
            continue;       /* nothing published (ENOTFOUND), or told at the next pass */
        n_served = 1;
        if ((served[0].stage == ST_ROLLOUT_CANARY || served[0].stage == ST_ROLLOUT_HALTED) &&
            st_rollout_last_good(st, names[i], served[0].id, &served[1], &e2) == 0)
            n_served = 2;
        for (size_t k = 0; k < n_served; k++) {
            int64_t exp = 0;
            int one = refresh_one(&c, &served[k], &exp, &e2);
            if (one < 0 && !first) {
                first = one;
                e1 = e2;
            } else if (one > 0) {
                if (n_resigned)
                    (*n_resigned)++;
                if (cb)
                    cb(names[i], served[k].id, exp, ud);
            }
        }
    }
    kiln_free(names);
    if (c.have_sk)
        st_bundle_key_wipe(&c.sk, sizeof c.sk);
    if (rc == 0 && first < 0) {
        if (err)
            *err = e1;
        rc = first;
    }
    return rc;
}
