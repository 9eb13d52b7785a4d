/* fleets.h - edge fleets in the state store (state_fleets.c): fleets, the
 * devices enrolled in them (each with its own Ed25519 public key and its
 * last report), one-time enrollment tokens (only their SHA-256 is kept) and
 * rollouts, the staged publication of one model version to one fleet
 * (docs/edge.md, "Fleet protocol").  One thread owns the handle, as for
 * state.h; every change is atomic on its own. */
#ifndef KILN_STORAGE_FLEETS_H
#define KILN_STORAGE_FLEETS_H

#include <stddef.h>
#include <stdint.h>

#include "storage/registry.h"
#include "storage/state.h"

#define ST_FLEET_KEY_BYTES   32       /* XChaCha20-Poly1305 key */
#define ST_DEVICE_PK_BYTES   32       /* Ed25519 public key */
#define ST_DEVICE_ID_MAX     24       /* "dev-" + 16 hex + NUL */
#define ST_TOKEN_HEX         64       /* 32 random bytes as hex */
#define ST_HEALTH_MAX        32
#define ST_FEATURES_JSON_MAX (256 * 1024)
#define ST_MESSAGE_MAX       1024

/* The schema (state.c's migration 6 -> 7). */
#define ST_FLEETS_SQL                                                                  \
    "CREATE TABLE IF NOT EXISTS fleets ("                                              \
    " name TEXT PRIMARY KEY, created_ns INTEGER NOT NULL,"                             \
    " encrypted INTEGER NOT NULL DEFAULT 0, canary_share REAL NOT NULL,"              \
    " health_window_s INTEGER NOT NULL);"                                              \
    "CREATE TABLE IF NOT EXISTS devices ("                                             \
    " id TEXT PRIMARY KEY, fleet TEXT NOT NULL REFERENCES fleets(name),"               \
    " name TEXT NOT NULL DEFAULT '', enrolled_ns INTEGER NOT NULL,"                    \
    " revoked INTEGER NOT NULL DEFAULT 0, revoked_ns INTEGER NOT NULL DEFAULT 0,"      \
    " pubkey BLOB NOT NULL, last_time_ms INTEGER NOT NULL DEFAULT 0,"                  \
    " model TEXT NOT NULL DEFAULT '', model_version INTEGER NOT NULL DEFAULT 0,"       \
    " health TEXT NOT NULL DEFAULT '', latency_p50_us REAL NOT NULL DEFAULT 0,"        \
    " latency_p99_us REAL NOT NULL DEFAULT 0, features_json TEXT NOT NULL DEFAULT '',"\
    " last_seen_ns INTEGER NOT NULL DEFAULT 0, report_ns INTEGER NOT NULL DEFAULT 0);" \
    "CREATE INDEX IF NOT EXISTS devices_fleet ON devices(fleet);"                      \
    "CREATE TABLE IF NOT EXISTS enroll_tokens ("                                       \
    " token_sha256 TEXT PRIMARY KEY, fleet TEXT NOT NULL REFERENCES fleets(name),"     \
    " created_ns INTEGER NOT NULL, expires_ns INTEGER NOT NULL,"                       \
    " used_ns INTEGER NOT NULL DEFAULT 0, device_id TEXT);"                            \
    "CREATE TABLE IF NOT EXISTS rollouts ("                                            \
    " id INTEGER PRIMARY KEY, fleet TEXT NOT NULL REFERENCES fleets(name),"            \
    " model TEXT NOT NULL, version INTEGER NOT NULL, stage TEXT NOT NULL,"             \
    " canary_share REAL NOT NULL, health_window_s INTEGER NOT NULL,"                   \
    " started_ns INTEGER NOT NULL, stage_ns INTEGER NOT NULL,"                         \
    " healthy_since_ns INTEGER NOT NULL DEFAULT 0, reason TEXT NOT NULL DEFAULT '',"   \
    " envelope_sha256 TEXT NOT NULL, bundle_sha256 TEXT NOT NULL,"                     \
    " rollback INTEGER NOT NULL DEFAULT 0);"                                           \
    "CREATE INDEX IF NOT EXISTS rollouts_fleet ON rollouts(fleet, id);"                \
    "CREATE TABLE IF NOT EXISTS rollout_canaries ("                                    \
    " rollout_id INTEGER NOT NULL REFERENCES rollouts(id),"                            \
    " device_id TEXT NOT NULL REFERENCES devices(id),"                                 \
    " PRIMARY KEY (rollout_id, device_id));"

/* Schema 7 -> 8 (state.c): the per-fleet publication counter, `seq` in
 * every signed envelope (storage/bundle.h).  Its own table, not a column,
 * so the row outlives st_fleet_delete: a fleet made again under the same
 * name never reuses a seq its old devices saw.  A v7 store starts each
 * fleet at the number of rollouts it has (v7 kilnd signed none). */
#define ST_FLEET_SEQ_SQL                                                               \
    "CREATE TABLE IF NOT EXISTS fleet_seq ("                                           \
    " fleet TEXT PRIMARY KEY, seq INTEGER NOT NULL DEFAULT 0);"                        \
    "INSERT OR IGNORE INTO fleet_seq (fleet, seq)"                                     \
    " SELECT fleet, count(*) FROM rollouts GROUP BY fleet;"

/* Version 8 -> 9: a report's message (why a device refused an update or
 * rolled back), so /v1/devices/ID can say it; 9 -> 10: a rollout's envelope
 * expiry and the lifetime it was signed for, so kilnd re-signs it in time.
 * Each column is added only where it is missing (storage/state.c). */
#define ST_V10_COLUMNS(XX)                                                              \
    XX("devices", "message", "TEXT NOT NULL DEFAULT ''")                               \
    XX("rollouts", "expires_at", "INTEGER NOT NULL DEFAULT 0")                         \
    XX("rollouts", "expires_s", "INTEGER NOT NULL DEFAULT 0")

/* ---- fleets */

typedef struct {
    char    name[ST_NAME_MAX];
    int64_t created_ns;
    int     encrypted;          /* 1: a key file exists (st_fleet_key) */
    double  canary_share;       /* (0, 1]: the share of devices that get a version first */
    int64_t health_window_s;    /* canaries healthy this long -> the rest of the fleet */
    int64_t n_devices;          /* enrolled and not revoked */
} st_fleet_t;

typedef int (*st_fleet_cb)(const st_fleet_t *fleet, void *ud);

/* A new fleet.  encrypted: a new key file (st_fleet_key_path) in
 * storage/bundle.h's format ("KILN-FLEET-KEY1 base64", mode 0600,
 * st_bundle_keygen_fleet) is written before the row is kept.  KILN_EEXIST
 * when the name is taken; KILN_EINVAL for a bad name, share outside (0, 1]
 * or a window below 0. */
int st_fleet_create(st_state_t *st, const char *name, int encrypted, double canary_share,
                    int64_t health_window_s, int64_t now_ns, kiln_err_t *err);
/* KILN_ENOTFOUND naming the fleet. */
int st_fleet_get(st_state_t *st, const char *name, st_fleet_t *out, kiln_err_t *err);
/* share < 0 / window < 0: unchanged. */
int st_fleet_update(st_state_t *st, const char *name, double canary_share,
                    int64_t health_window_s, kiln_err_t *err);
/* Refused (KILN_ESTATE) while devices are enrolled and not revoked; else
 * the fleet, its tokens, revoked devices and rollouts go, and its key file. */
int st_fleet_delete(st_state_t *st, const char *name, kiln_err_t *err);
int st_fleet_list(st_state_t *st, st_fleet_cb cb, void *ud, kiln_err_t *err);
/* Every fleet's name: *names kiln_malloc'd (kiln_free), *n of them. */
int st_fleet_names(st_state_t *st, char (**names)[ST_NAME_MAX], size_t *n, kiln_err_t *err);
/* The key file of a fleet: DIR/fleet-keys/NAME.key next to the database. */
int st_fleet_key_path(st_state_t *st, const char *name, char *buf, size_t cap);
/* Reads the fleet's key (st_bundle_load_fleetkey: refuses loose modes and
 * symlinks); KILN_ENOTFOUND for a fleet without one. */
int st_fleet_key(st_state_t *st, const char *name, unsigned char key[ST_FLEET_KEY_BYTES],
                 kiln_err_t *err);
/* The fleet's next publication number (1, 2, ...; strictly increasing,
 * never reused, kept across st_fleet_delete): the `seq` of the next signed
 * envelope.  Consumed even when the caller's publish fails later (gaps are
 * harmless; a repeat is not). */
int st_fleet_next_seq(st_state_t *st, const char *fleet, uint64_t *seq, kiln_err_t *err);

/* ---- enrollment tokens */

/* A one-time token for fleet, valid ttl_s seconds: token gets 64 hex digits
 * (shown once; only its SHA-256 is stored). */
int st_fleet_token_create(st_state_t *st, const char *fleet, int64_t ttl_s, int64_t now_ns,
                          char token[ST_TOKEN_HEX + 1], int64_t *expires_ns, kiln_err_t *err);

/* ---- devices */

typedef struct {
    char    id[ST_DEVICE_ID_MAX];
    char    fleet[ST_NAME_MAX];
    char    name[ST_NAME_MAX];
    int64_t enrolled_ns;
    int     revoked;
    int64_t revoked_ns;
    unsigned char pubkey[ST_DEVICE_PK_BYTES];
    int64_t last_time_ms;       /* the newest X-Kiln-Time accepted (replay protection) */
    /* the last report */
    char    model[ST_NAME_MAX];
    int64_t model_version;      /* 0: none reported */
    char    health[ST_HEALTH_MAX];  /* "ok", "degraded", "unhealthy", "rolled_back" or "" */
    char    message[ST_MESSAGE_MAX];    /* the report's words, "" when none */
    double  latency_p50_us, latency_p99_us;
    const char *features_json;  /* live feature statistics, "" when none; borrowed: valid in a
                                 * list callback, or until st_device_free after st_device_get */
    int64_t last_seen_ns;       /* the last authenticated call */
    int64_t report_ns;          /* the last report */
    char   *owned_features;     /* internal */
} st_device_t;

typedef struct {
    const char *model;          /* may be "" */
    int64_t     model_version;
    const char *health;         /* one of the four names above */
    double      latency_p50_us, latency_p99_us;
    const char *features_json;  /* NULL or "": none; at most ST_FEATURES_JSON_MAX bytes */
    const char *message;        /* NULL or "": none; at most ST_MESSAGE_MAX - 1 bytes */
} st_device_report_t;

typedef int (*st_device_cb)(const st_device_t *dev, void *ud);

/* Trades a one-time token for a device with public key pk: the token is
 * marked used and a device made in its fleet (id "dev-" + 16 random hex
 * digits into out->id).  One transaction: both or neither.  Unknown
 * token: KILN_ENOTFOUND; used or expired: KILN_ESTATE, each with its own
 * message. */
int st_device_enroll(st_state_t *st, const char *token, const unsigned char pk[ST_DEVICE_PK_BYTES],
                     const char *name, int64_t now_ns, st_device_t *out, kiln_err_t *err);
/* KILN_ENOTFOUND naming the device.  Free with st_device_free. */
int st_device_get(st_state_t *st, const char *id, st_device_t *out, kiln_err_t *err);
void st_device_free(st_device_t *dev);
/* fleet NULL: every fleet's; by enrollment. */
int st_device_list(st_state_t *st, const char *fleet, st_device_cb cb, void *ud, kiln_err_t *err);
/* Revoked for good; KILN_ESTATE when already revoked. */
int st_device_revoke(st_state_t *st, const char *id, int64_t now_ns, kiln_err_t *err);
/* Accepts a signed call's time: last_time_ms must grow strictly, else
 * KILN_ESTALE (a replay, or a clock gone backwards); sets last_seen_ns. */
int st_device_seen(st_state_t *st, const char *id, int64_t time_ms, int64_t now_ns,
                   kiln_err_t *err);
int st_device_report(st_state_t *st, const char *id, const st_device_report_t *r,
                     int64_t now_ns, kiln_err_t *err);
/* A health name's check: 0, or KILN_EINVAL listing the names. */
int st_device_health_check(const char *health, kiln_err_t *err);

/* ---- rollouts */

typedef enum {
    ST_ROLLOUT_CANARY = 0,      /* canary devices get the version, the rest keep the last good */
    ST_ROLLOUT_FULL,            /* every device gets it */
    ST_ROLLOUT_HALTED,          /* a canary reported unhealthy: frozen until a rollback */
    ST_ROLLOUT_DONE,            /* every device reported running it */
    ST_ROLLOUT_N_STAGES
} st_rollout_stage_t;

typedef struct {
    int64_t id;
    char    fleet[ST_NAME_MAX];
    char    model[ST_NAME_MAX];
    int64_t version;
    st_rollout_stage_t stage;
    double  canary_share;
    int64_t health_window_s;
    int64_t started_ns, stage_ns;   /* created; entered its stage */
    int64_t healthy_since_ns;       /* every canary healthy on it since (0: not now) */
    char    reason[256];            /* why it moved to its stage ("" at first) */
    char    envelope_sha256[65];    /* the signed manifest envelope in the artifact store */
    char    bundle_sha256[65];      /* the bundle it names */
    int     rollback;               /* 1: a signed rollback instruction */
    int64_t n_canaries;
    int64_t expires_at;             /* unix s: its envelope's expiry (0: not recorded, schema < 10) */
    int64_t expires_s;              /* the lifetime it was signed for (0: not recorded) */
} st_rollout_t;

typedef int (*st_rollout_cb)(const st_rollout_t *r, void *ud);

const char *st_rollout_stage_name(st_rollout_stage_t s);
/* Inserts r (its id, stage_ns, healthy_since_ns, reason and n_canaries are
 * ignored; stage_ns = started_ns) with its canary devices; *id the new one. */
int st_rollout_create(st_state_t *st, const st_rollout_t *r, const char *const *canaries,
                      size_t n_canaries, int64_t *id, kiln_err_t *err);
int st_rollout_get(st_state_t *st, int64_t id, st_rollout_t *out, kiln_err_t *err);
/* The fleet's newest rollout; KILN_ENOTFOUND when it has none. */
int st_rollout_current(st_state_t *st, const char *fleet, st_rollout_t *out, kiln_err_t *err);
/* The newest rollout of fleet before before_id (<= 0: any) that went full
 * or done: what non-canary devices run.  KILN_ENOTFOUND when none. */
int st_rollout_last_good(st_state_t *st, const char *fleet, int64_t before_id, st_rollout_t *out,
                         kiln_err_t *err);
/* Newest first; limit <= 0: all. */
int st_rollout_list(st_state_t *st, const char *fleet, int64_t limit, st_rollout_cb cb, void *ud,
                    kiln_err_t *err);
/* Every rollout in canary or full stage, every fleet (the loop's timer). */
int st_rollout_active(st_state_t *st, st_rollout_cb cb, void *ud, kiln_err_t *err);
int st_rollout_set_stage(st_state_t *st, int64_t id, st_rollout_stage_t stage, const char *reason,
                         int64_t now_ns, kiln_err_t *err);
int st_rollout_set_healthy_since(st_state_t *st, int64_t id, int64_t since_ns, kiln_err_t *err);
/* The rollout's envelope replaced by a re-signed one (same seq and bundle,
 * a later expiry): sha256 and expires_at (unix s) recorded. */
int st_rollout_set_envelope(st_state_t *st, int64_t id, const char *sha256, int64_t expires_at,
                            kiln_err_t *err);
/* *yes 1 when device is one of the rollout's canaries. */
int st_rollout_is_canary(st_state_t *st, int64_t id, const char *device, int *yes,
                         kiln_err_t *err);
/* The canary devices (borrowed, as in a device list). */
int st_rollout_canaries(st_state_t *st, int64_t id, st_device_cb cb, void *ud, kiln_err_t *err);
/* *yes 1 when some rollout of fleet names sha256 as its bundle or envelope
 * (so a device of that fleet may fetch it). */
int st_rollout_has_blob(st_state_t *st, const char *fleet, const char *sha256, int *yes,
                        kiln_err_t *err);

#endif
