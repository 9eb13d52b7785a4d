/* fleet_refresh.h - re-signing the envelopes kilnd serves before they
 * expire.  An envelope carries a signed expiry (30 days by default) so that
 * a mirror cannot feed a device a stale release forever; without a fresh
 * signature a device enrolled, or back online, after that date could not
 * install what its fleet runs.  So the envelope each device is served (the
 * fleet's current rollout, and while it is in canary or halted the last one
 * that went full) is sealed again with the same seq and bundle once half of
 * its lifetime has passed.  Agents that applied that seq ignore it (same
 * seq); the others verify the new one like any envelope. */
#ifndef KILN_JOBS_FLEET_REFRESH_H
#define KILN_JOBS_FLEET_REFRESH_H

#include <stdint.h>

#include "core/kiln_err.h"
#include "storage/state.h"

/* Called for each envelope re-signed (fleet, rollout id, seq kept, new
 * expiry in unix s); may be NULL. */
typedef void (*jb_refresh_cb)(const char *fleet, int64_t rollout_id, int64_t expires_at,
                              void *ud);

/* One pass over every fleet at now_ns; *n_resigned (may be NULL) how many
 * envelopes were re-signed.  A rollout that cannot be re-signed (its blob
 * gone, the key unreadable) does not stop the others: the first error is
 * returned after the pass. */
int jb_fleet_refresh(st_state_t *st, const char *dir, int64_t now_ns, jb_refresh_cb cb, void *ud,
                     int *n_resigned, kiln_err_t *err);

#endif
