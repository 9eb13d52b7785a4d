/* store.h - what kiln-edge keeps on disk in its device directory, and the
 * ordered renames that swap models (docs/edge.md, "Agent"):
 *
 *   DIR/device.json    {"device_id", "fleet", "server", "name"} (enroll)
 *   DIR/device.sk      the device's Ed25519 secret key, 64 raw bytes, 0600
 *   DIR/ca.pem         the CA the server is checked against (pinned at enroll)
 *   DIR/publisher.pk   KILN-ED25519-PK1: the trust anchor for envelopes
 *   DIR/fleet.key      KILN-FLEET-KEY1 (0600), absent for a plaintext fleet
 *   DIR/state.json     {"last_seq", "model", "version", "current", "failed_seq"}
 *                      written by temp + fsync + rename + fsync(DIR)
 *   DIR/models/NAME/   extracted bundles (st_bundle_extract's staging dirs)
 *   DIR/current        symlink -> models/NAME (what runs)
 *   DIR/previous       symlink -> models/NAME (what ran before; the fallback)
 *   DIR/download/SHA.part   a bundle being downloaded (resumed from its size)
 *
 * The swap replaces each symlink by rename(2) of a freshly made one, so at
 * every instant DIR/current names the old or the new model, never neither. */
#ifndef KE_STORE_H
#define KE_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "core/kiln_err.h"

#define KE_PATH_MAX 4096

typedef struct {
    char device_id[64];
    char fleet[128];
    char server[512];       /* https://HOST:PORT */
    char name[128];
} ke_device_t;

typedef struct {
    uint64_t last_seq;      /* highest envelope seq applied */
    char     model[128];    /* running model name ("" before the first) */
    uint64_t version;       /* its version (0 before the first) */
    char     current[256];  /* models/NAME that DIR/current was set to */
    uint64_t failed_seq;    /* an envelope whose model failed on this device */
} ke_state_t;

int ke_device_read(const char *dir, ke_device_t *d, kiln_err_t *err);
int ke_device_write(const char *dir, const ke_device_t *d, kiln_err_t *err);

/* A missing state file is the empty state (0); a malformed one KILN_EFORMAT. */
int ke_state_read(const char *dir, ke_state_t *s, kiln_err_t *err);
/* DIR/state.json.tmp, fsync, rename, fsync(DIR). */
int ke_state_write(const char *dir, const ke_state_t *s, kiln_err_t *err);

/* Writes data to DIR/name with mode by temp + fsync + rename + fsync(DIR). */
int ke_store_put(const char *dir, const char *name, const void *data, size_t len, int mode,
                 kiln_err_t *err);

/* What DIR/link points to (relative, e.g. "models/s3-..."), "" when it does
 * not exist; KILN_EINVAL when it exists and is not a symlink. */
int ke_store_link(const char *dir, const char *link, char *target, size_t cap, kiln_err_t *err);

/* previous := current's target, then current := target (rel to DIR), each
 * by rename of a new symlink, then fsync(DIR).  stop_after (tests): 0 runs
 * every step, k > 0 returns after step k as if killed (1: previous linked
 * beside, 2: previous renamed, 3: current linked beside, 4: current
 * renamed).  Passes the test pauses "previous" (previous renamed),
 * "current-link" (.current.new made) and "current-renamed" (before the
 * fsync of DIR): ke_store_test_pause. */
int ke_store_swap(const char *dir, const char *target, int stop_after, kiln_err_t *err);
/* Test hook, for system tests that kill -9 an agent at a chosen point of its
 * update: with KILN_TEST_SWAP_PAUSE="POINT:MS" in the environment and point
 * equal to POINT, says "kiln-edge: swap: pausing at POINT" on stderr and
 * sleeps MS ms.  Points: staged (the bundle extracted, before the swap),
 * previous, current-link, current-renamed (ke_store_swap) and state (the
 * new model loaded, before state.json is written; edge/update.c).  Unset or
 * another point: does nothing. */
void ke_store_test_pause(const char *point);
/* current := previous's target (the agent's own rollback). */
int ke_store_rollback(const char *dir, kiln_err_t *err);
/* Removes DIR/models/ entries that neither link names and DIR/download/
 * files but keep_sha's .part (keep_sha may be NULL). */
void ke_store_gc(const char *dir, const char *keep_sha);

/* Resume: where a download of a bundle of `size` bytes whose .part holds
 * part_size bytes starts.  Returns the offset to ask for (Range: bytes=N-),
 * size when it is complete, or 0 with *truncate set when the part is longer
 * than the bundle (start over). */
uint64_t ke_resume_offset(uint64_t part_size, uint64_t size, int *truncate);
/* The answer to a ranged GET from offset: where its body goes in the part
 * file, or -1 when it cannot be used.  status 206 with range_start (the
 * Content-Range's first byte) = offset appends; 200 is the whole bundle
 * (write from 0, truncating); anything else -1. */
int64_t ke_resume_accept(uint64_t offset, long status, int64_t range_start);

#endif
