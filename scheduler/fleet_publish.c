/* fleet_publish.c - kilnd's publish and rollback (fleet.h): thin callers of
 * jobs/publish.c, where the work is, shared with the publish job type
 * (jobs/type_publish.c); on kilnd's loop thread, inside the turn's
 * transaction. */
#include "fleet.h"

int ks_publisher_key(const char *dir, st_bundle_signkey_t *out, kiln_err_t *err)
{
    return jb_publisher_key(dir, out, err);
}

int ks_publisher_pubkey_text(const char *dir, char *buf, size_t cap, kiln_err_t *err)
{
    return jb_publisher_pubkey_text(dir, buf, cap, err);
}

int ks_fleet_key_text(st_state_t *st, const char *fleet, char *buf, size_t cap, kiln_err_t *err)
{
    return jb_fleet_key_text(st, fleet, buf, cap, err);
}

int ks_fleet_publish(st_state_t *st, const char *dir, const ks_publish_t *p, int64_t now_ns,
                     st_rollout_t *out, uint64_t *seq, kiln_err_t *err)
{
    return jb_fleet_publish(st, dir, p, now_ns, out, seq, err);
}

int ks_fleet_rollback(st_state_t *st, const char *dir, const char *fleet, int64_t expires_s,
                      int64_t now_ns, st_rollout_t *out, uint64_t *seq, kiln_err_t *err)
{
    return jb_fleet_rollback(st, dir, fleet, expires_s, now_ns, out, seq, err);
}

int ks_fleet_refresh(st_state_t *st, const char *dir, int64_t now_ns, jb_refresh_cb cb, void *ud,
                     int *n_resigned, kiln_err_t *err)
{
    return jb_fleet_refresh(st, dir, now_ns, cb, ud, n_resigned, err);
}

int ks_fleet_gc(st_state_t *st, const char *dir, int keep, ks_gc_stats_t *out, kiln_err_t *err)
{
    return jb_fleet_gc(st, dir, keep, out, err);
}
