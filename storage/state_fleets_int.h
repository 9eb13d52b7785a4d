/* state_fleets_int.h - what the fleet store's files (storage/state_fleets.c,
 * state_devices.c, state_rollouts.c) share and nothing else may use: the
 * statement ids of state_fleets.c's table and the helpers that prepare,
 * bind and run them. */
#ifndef KILN_STORAGE_STATE_FLEETS_INT_H
#define KILN_STORAGE_STATE_FLEETS_INT_H

#include <stdio.h>

#include "storage/fleets.h"
#include "storage/state_int.h"

enum {
    FQ_FLEET_INSERT, FQ_FLEET_GET, FQ_FLEET_LIST, FQ_FLEET_UPDATE, FQ_FLEET_ACTIVE_DEVICES,
    FQ_FLEET_DEL_TOKENS, FQ_FLEET_DEL_CANARIES, FQ_FLEET_DEL_ROLLOUTS, FQ_FLEET_DEL_DEVICES,
    FQ_FLEET_DELETE,
    FQ_TOKEN_INSERT, FQ_TOKEN_GET, FQ_TOKEN_USE,
    FQ_DEV_INSERT, FQ_DEV_GET, FQ_DEV_LIST, FQ_DEV_REVOKE, FQ_DEV_SEEN, FQ_DEV_REPORT,
    FQ_RO_INSERT, FQ_RO_CANARY_ADD, FQ_RO_GET, FQ_RO_CURRENT, FQ_RO_LAST_GOOD, FQ_RO_LIST,
    FQ_RO_ACTIVE, FQ_RO_SET_STAGE, FQ_RO_SET_HEALTHY, FQ_RO_IS_CANARY, FQ_RO_CANARIES,
    FQ_RO_HAS_BLOB, FQ_SEQ_BUMP, FQ_SEQ_GET, FQ_RO_SET_ENVELOPE,
    FQ_N
};

/* ---- state_fleets.c ---------------------------------------------------- */

/* Statement q (prepared on first use into st->fq, kept until st_state_close),
 * bound by the letters of fmt: t text (NULL binds NULL), i int64, d double,
 * b blob (pointer, int length).  NULL with *rc and err set (and the
 * statement reset). */
sqlite3_stmt *st_fq_prep(st_state_t *st, int q, int *rc, kiln_err_t *err, const char *op,
                         const char *fmt, ...);

/* st_fq_prep, returning the error from the calling function. */
#define PREP(s, q, op, ...)                                              \
    int s##_rc_ = 0;                                                     \
    sqlite3_stmt *s = st_fq_prep(st, q, &s##_rc_, err, op, __VA_ARGS__); \
    if (!s)                                                              \
        return s##_rc_

/* Runs s (bound, no rows); *changes how many rows it changed (may be NULL). */
int st_fq_run_changes(st_state_t *st, sqlite3_stmt *s, int *changes, kiln_err_t *err,
                      const char *op);

static inline void st_fq_copy_text(char *dst, size_t cap, const unsigned char *src)
{
    snprintf(dst, cap, "%s", src ? (const char *)src : "");
}

/* Names of fleets and devices: letters, digits, '.', '_', '-'. */
int st_fq_check_name(const char *v, const char *what, kiln_err_t *err);
/* sodium_init, or KILN_EINTERNAL. */
int st_fq_sodium_ready(kiln_err_t *err);
/* An enrollment token is stored only as its sha256, in hex. */
void st_fq_token_hash(const char *token, char hex[65]);

/* ---- state_devices.c --------------------------------------------------- */

/* Steps s (bound, columns DEV_COLS) through its rows, calling cb on each
 * device (borrowed, valid during the call) until it returns non-zero. */
int st_fq_device_rows(st_state_t *st, sqlite3_stmt *s, st_device_cb cb, void *ud,
                      kiln_err_t *err, const char *op);

#endif
