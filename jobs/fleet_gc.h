/* fleet_gc.h - removing the bundles and envelopes of old rollouts from the
 * artifact store.  Every publish writes a bundle (the whole model, per
 * fleet encrypted) that nothing deletes; a fleet published to weekly would
 * keep every release it ever had.  Kept for each fleet: its newest `keep`
 * rollouts, and the newest that went full of each of the two newest
 * versions that did (what devices outside a canary run, and what `kiln
 * rollback` goes back to); the blobs that only older rollouts name are
 * removed.  The rows stay (the history of what was
 * published where); a device asking for a removed blob gets 404. */
#ifndef KILN_JOBS_FLEET_GC_H
#define KILN_JOBS_FLEET_GC_H

#include <stdint.h>

#include "core/kiln_err.h"
#include "storage/state.h"

/* How many of its newest rollouts kilnd keeps the blobs of, per fleet. */
#define JB_FLEET_KEEP 5

typedef struct {
    int64_t files;      /* blobs removed */
    int64_t bytes;      /* their size */
} jb_gc_stats_t;

/* One pass over every fleet; keep >= 1.  out (may be NULL) adds what was
 * removed.  A blob that cannot be removed does not stop the pass: the first
 * error is returned after it. */
int jb_fleet_gc(st_state_t *st, const char *dir, int keep, jb_gc_stats_t *out, kiln_err_t *err);

#endif
