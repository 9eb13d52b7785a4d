/* fleet.h - kilnd's side of the fleet protocol (docs/edge.md, "Fleet
 * protocol") that is not HTTP: checking a device's signed call, choosing a
 * rollout's canaries, and moving rollouts on the loop's timer. */
#ifndef KILN_SCHEDULER_FLEET_H
#define KILN_SCHEDULER_FLEET_H

#include <stddef.h>
#include <stdint.h>

#include "core/kiln_err.h"
#include "jobs/fleet_gc.h"
#include "jobs/fleet_refresh.h"
#include "jobs/publish.h"
#include "storage/bundle.h"
#include "storage/fleets.h"

/* The three headers of a signed call, as received (any may be NULL). */
typedef struct {
    const char *device;     /* X-Kiln-Device */
    const char *time;       /* X-Kiln-Time, unix ms */
    const char *sig;        /* X-Kiln-Sig */
} ks_edge_creds_t;

/* Checks a device's call: the device exists, the signature verifies with
 * its enrolled key, the time is within KC_EDGE_WINDOW_MS of now, it is not
 * revoked, and the time is newer than its last accepted call (then kept:
 * a replay of the same request is refused).  0 with *out filled (free with
 * st_device_free); else *http_status is 401 (missing, unknown, bad
 * signature, stale, replay) or 403 (revoked) and err says why. */
int ks_edge_auth(st_state_t *st, const ks_edge_creds_t *c, const char *method, const char *path,
                 const void *body, size_t body_len, int64_t now_ns, st_device_t *out,
                 int *http_status, kiln_err_t *err);

/* The canary choice (jb_fleet_pick_canaries, jobs/publish.h). */
int ks_fleet_pick_canaries(st_state_t *st, const char *fleet, double share, char ***ids,
                           size_t *n, kiln_err_t *err);
void ks_fleet_ids_free(char **ids, size_t n);

/* One step of every active rollout's state machine:
 *   canary: a canary reporting "unhealthy" or "rolled_back" on the new
 *           version -> halted (reason names it); every canary reporting
 *           "ok" on the new version since healthy_since_ns, for the health
 *           window -> full; no canaries at all -> full.
 *   full:   every enrolled device reporting the version -> done.
 * A rollout superseded by a newer one of its fleet goes to done (from
 * full) or halted (from canary: it never reached the whole fleet, so it is
 * never the "last good" one).
 * Errors are printed; the caller's transaction keeps the changes. */
void ks_fleet_tick(st_state_t *st, int64_t now_ns);

/* ---- publish and rollback (fleet_publish.c): kilnd's names for
 * jobs/publish.h, which the publish job type (jobs/type_publish.c) calls
 * too; each ks_ function is its jb_ twin, documented there. */

#define KS_PUBLISHER_SK JB_PUBLISHER_SK
#define KS_PUBLISHER_PK JB_PUBLISHER_PK
#define KS_PUBLISH_EXPIRES_S_DEFAULT JB_PUBLISH_EXPIRES_S_DEFAULT
typedef jb_publish_t ks_publish_t;

int ks_publisher_key(const char *dir, st_bundle_signkey_t *out, kiln_err_t *err);
int ks_publisher_pubkey_text(const char *dir, char *buf, size_t cap, kiln_err_t *err);
int ks_fleet_key_text(st_state_t *st, const char *fleet, char *buf, size_t cap, kiln_err_t *err);
int ks_fleet_publish(st_state_t *st, const char *dir, const ks_publish_t *p, int64_t now_ns,
                     st_rollout_t *out, uint64_t *seq, kiln_err_t *err);
int ks_fleet_rollback(st_state_t *st, const char *dir, const char *fleet, int64_t expires_s,
                      int64_t now_ns, st_rollout_t *out, uint64_t *seq, kiln_err_t *err);
/* jobs/fleet_refresh.h: served envelopes re-signed at half their lifetime. */
int ks_fleet_refresh(st_state_t *st, const char *dir, int64_t now_ns, jb_refresh_cb cb, void *ud,
                     int *n_resigned, kiln_err_t *err);
/* jobs/fleet_gc.h: old rollouts' blobs out of the artifact store. */
#define KS_FLEET_KEEP JB_FLEET_KEEP
typedef jb_gc_stats_t ks_gc_stats_t;
int ks_fleet_gc(st_state_t *st, const char *dir, int keep, ks_gc_stats_t *out, kiln_err_t *err);

#endif
