/* publish.h - publishing a registry model to an edge fleet, and rolling a
 * fleet back (docs/edge.md, "Fleet protocol"): the part that needs only the
 * state store and kilnd's directory, so kilnd's admin route
 * (scheduler/fleet_publish.c) and the publish job type (type_publish.c)
 * share it.  Runs on the thread that owns the store (kilnd's loop), inside
 * its turn's transaction. */
#ifndef KILN_JOBS_PUBLISH_H
#define KILN_JOBS_PUBLISH_H

#include <stddef.h>
#include <stdint.h>

#include "core/kiln_err.h"
#include "storage/bundle.h"
#include "storage/fleets.h"

/* The publisher key pair, in kilnd's directory: made (st_bundle_keygen_sign,
 * secret 0600) the first time one is needed, never overwritten; its public
 * half is every agent's trust anchor, handed out at enrollment. */
#define JB_PUBLISHER_SK "publisher.sk"
#define JB_PUBLISHER_PK "publisher.pk"
/* An envelope's life when the caller names none: 30 days, so a device that
 * was offline for weeks still installs the release it missed, while an
 * envelope captured today stops being installable after a month (seq
 * already stops replays to devices that saw a newer one). */
#define JB_PUBLISH_EXPIRES_S_DEFAULT (30LL * 86400)

/* Loads DIR's publisher key, making the pair when neither file exists;
 * KILN_ESTATE when only one of the two does, or they do not match. */
int jb_publisher_key(const char *dir, st_bundle_signkey_t *out, kiln_err_t *err);
/* DIR/publisher.pk's text ("KILN-ED25519-PK1 base64\n"), making the pair
 * if needed. */
int jb_publisher_pubkey_text(const char *dir, char *buf, size_t cap, kiln_err_t *err);
/* The fleet key file's text ("KILN-FLEET-KEY1 base64\n"); KILN_ENOTFOUND for
 * a fleet without encryption.  A secret: for the fleet endpoint's enroll
 * answer only. */
int jb_fleet_key_text(st_state_t *st, const char *fleet, char *buf, size_t cap, kiln_err_t *err);

/* Picks ceil(share * n) of the fleet's enrolled, not revoked devices (at
 * least 1 when it has any) at random: *ids kiln_malloc'd array of
 * kiln_malloc'd strings (jb_fleet_ids_free), *n how many. */
int jb_fleet_pick_canaries(st_state_t *st, const char *fleet, double share, char ***ids,
                           size_t *n, kiln_err_t *err);
void jb_fleet_ids_free(char **ids, size_t n);

typedef struct {
    /* "NAME" or "NAME@VERSION" / "NAME@ALIAS" (st_registry_model_resolve),
     * or "NAME@latest": the version made by NAME's newest training run,
     * refused when that run did not pass its gate (what a pipeline's
     * publish step after its train step names). */
    const char *model_ref;
    const char *fleet;
    double      canary_share;    /* < 0: the fleet's */
    int64_t     health_window_s; /* < 0: the fleet's */
    int64_t     expires_s;       /* <= 0: JB_PUBLISH_EXPIRES_S_DEFAULT */
} jb_publish_t;

/* Publishes a registry model to a fleet: refused (KILN_ESTATE, naming why)
 * for a model whose run did not pass its validation gate, one without a
 * feature spec, or a version not above the fleet's current one of that
 * model; else the bundle (model.kmodel + featspec.json, encrypted with the
 * fleet key when it has one) and its envelope, signed with DIR's publisher
 * key under the fleet's next seq, go into DIR/artifacts, and a canary
 * rollout starts with ceil(share x devices) canaries.  *out the new
 * rollout, *seq (may be NULL) its seq.  The version the fleet's current
 * rollout already is counts as not above it (POST /v1/publish: 409); when
 * that rollout was halted, the refusal names its reason. */
int jb_fleet_publish(st_state_t *st, const char *dir, const jb_publish_t *p, int64_t now_ns,
                     st_rollout_t *out, uint64_t *seq, kiln_err_t *err);
/* The publish job's: as jb_fleet_publish, but when the fleet's current
 * rollout is already this very model and version, in any stage but halted,
 * returns 1 with *out that rollout and *seq its envelope's seq, and makes
 * nothing (a pipeline run again whose train step was cached names the
 * version its last run published).  0 after a new publish. */
int jb_fleet_publish_once(st_state_t *st, const char *dir, const jb_publish_t *p, int64_t now_ns,
                          st_rollout_t *out, uint64_t *seq, kiln_err_t *err);
/* Rolls fleet back to the newest earlier rollout that went full, of another
 * version than the current one: its envelope re-signed (st_bundle_reseal)
 * with rollback: true, the next seq and a new expiry (expires_s <= 0: the
 * default), as a new rollout in stage full with rollback = 1.  KILN_ESTATE
 * when there is nothing to roll back to. */
int jb_fleet_rollback(st_state_t *st, const char *dir, const char *fleet, int64_t expires_s,
                      int64_t now_ns, st_rollout_t *out, uint64_t *seq, kiln_err_t *err);

#endif
