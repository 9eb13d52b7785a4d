/* fleet.h - kilnd's side of the fleet protocol (docs/edge.md, "Fleet
 * protocol") that is not HTTP: checking a device's signed call, choosing a
 * rollout's canaries, and moving rollouts on the loop's timer. */
#ifndef KILN_SCHEDULER_FLEET_H
#define KILN_SCHEDULER_FLEET_H

#include <stddef.h>
#include <stdint.h>

#include "core/kiln_err.h"
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

/* Picks ceil(share * n) of the fleet's enrolled, not revoked devices (at
 * least 1 when it has any) at random: *ids kiln_malloc'd array of
 * kiln_malloc'd strings (ks_fleet_ids_free), *n how many. */
int ks_fleet_pick_canaries(st_state_t *st, const char *fleet, double share, char ***ids,
                           size_t *n, kiln_err_t *err);
void ks_fleet_ids_free(char **ids, size_t n);

/* One step of every active rollout's state machine:
 *   canary: a canary reporting "unhealthy" or "rolled_back" on the new
 *           version -> halted (reason names it); every canary reporting
 *           "ok" on the new version since healthy_since_ns, for the health
 *           window -> full; no canaries at all -> full.
 *   full:   every enrolled device reporting the version -> done.
 * Errors are printed; the caller's transaction keeps the changes. */
void ks_fleet_tick(st_state_t *st, int64_t now_ns);

#endif
