/* fleet.h - kilnd's side of the fleet protocol (docs/edge.md, "Fleet
 * protocol") that is not HTTP: checking a device's signed call, choosing a
 * rollout's canaries, and moving rollouts on the loop's timer. */
#ifndef KILN_SCHEDULER_FLEET_H
#define KILN_SCHEDULER_FLEET_H

#include <stddef.h>
#include <stdint.h>

#include "core/kiln_err.h"
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
 * A rollout superseded by a newer one of its fleet goes to done (from
 * full) or halted (from canary: it never reached the whole fleet, so it is
 * never the "last good" one).
 * Errors are printed; the caller's transaction keeps the changes. */
void ks_fleet_tick(st_state_t *st, int64_t now_ns);

/* ---- publish and rollback (fleet_publish.c) */

/* The publisher key pair, in kilnd's directory: made (st_bundle_keygen_sign,
 * secret 0600) the first time one is needed, never overwritten; its public
 * half is every agent's trust anchor, handed out at enrollment. */
#define KS_PUBLISHER_SK "publisher.sk"
#define KS_PUBLISHER_PK "publisher.pk"
/* An envelope's life when the caller names none: 30 days, so a device that
 * was offline for weeks still installs the release it missed, while an
 * envelope captured today stops being installable after a month (seq
 * already stops replays to devices that saw a newer one). */
#define KS_PUBLISH_EXPIRES_S_DEFAULT (30LL * 86400)

/* Loads DIR's publisher key, making the pair when neither file exists;
 * KILN_ESTATE when only one of the two does, or they do not match. */
int ks_publisher_key(const char *dir, st_bundle_signkey_t *out, kiln_err_t *err);
/* DIR/publisher.pk's text ("KILN-ED25519-PK1 base64\n"), making the pair
 * if needed. */
int ks_publisher_pubkey_text(const char *dir, char *buf, size_t cap, kiln_err_t *err);
/* The fleet key file's text ("KILN-FLEET-KEY1 base64\n"); KILN_ENOTFOUND for
 * a fleet without encryption.  A secret: for the fleet endpoint's enroll
 * answer only. */
int ks_fleet_key_text(st_state_t *st, const char *fleet, char *buf, size_t cap, kiln_err_t *err);

typedef struct {
    const char *model_ref;       /* "NAME", "NAME@VERSION" or "NAME@ALIAS" */
    const char *fleet;
    double      canary_share;    /* < 0: the fleet's */
    int64_t     health_window_s; /* < 0: the fleet's */
    int64_t     expires_s;       /* <= 0: KS_PUBLISH_EXPIRES_S_DEFAULT */
} ks_publish_t;

/* Publishes a registry model to a fleet: refused (KILN_ESTATE, naming why)
 * for a model whose run did not pass its validation gate, one without a
 * feature spec, or a version not above the fleet's current one of that
 * model; else the bundle (model.kmodel + featspec.json, encrypted with the
 * fleet key when it has one) and its envelope, signed with the publisher
 * key under the fleet's next seq, go into DIR/artifacts, and a canary
 * rollout starts with ceil(share x devices) canaries.  *out the new
 * rollout, *seq (may be NULL) its seq. */
int ks_fleet_publish(st_state_t *st, const char *dir, const ks_publish_t *p, int64_t now_ns,
                     st_rollout_t *out, uint64_t *seq, kiln_err_t *err);
/* Rolls fleet back to the newest earlier rollout that went full, of another
 * version than the current one: its envelope re-signed (st_bundle_reseal)
 * with rollback: true, the next seq and a new expiry (expires_s <= 0: the
 * default), as a new rollout in stage full with rollback = 1.  KILN_ESTATE
 * when there is nothing to roll back to. */
int ks_fleet_rollback(st_state_t *st, const char *dir, const char *fleet, int64_t expires_s,
                      int64_t now_ns, st_rollout_t *out, uint64_t *seq, kiln_err_t *err);

#endif
