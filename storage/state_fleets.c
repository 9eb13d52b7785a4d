/* state_fleets.c - fleets, devices, enrollment tokens and rollouts in the
 * state store (fleets.h).  Statements are prepared on first use into the
 * handle (st->fq) and kept until st_state_close. */
#include "storage/fleets.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "core/kiln_alloc.h"
#include "storage/bundle.h"
#include "storage/sha256.h"
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

#define FLEET_COLS "f.name, f.created_ns, f.encrypted, f.canary_share, f.health_window_s, " \
                   "(SELECT count(*) FROM devices d WHERE d.fleet = f.name AND d.revoked = 0)"
#define DEV_COLS "d.id, d.fleet, d.name, d.enrolled_ns, d.revoked, d.revoked_ns, d.pubkey, " \
                 "d.last_time_ms, d.model, d.model_version, d.health, d.latency_p50_us, "      \
                 "d.latency_p99_us, d.features_json, d.last_seen_ns, d.report_ns, d.message"
#define RO_COLS "r.id, r.fleet, r.model, r.version, r.stage, r.canary_share, "              \
                "r.health_window_s, r.started_ns, r.stage_ns, r.healthy_since_ns, r.reason, " \
                "r.envelope_sha256, r.bundle_sha256, r.rollback, "                          \
                "(SELECT count(*) FROM rollout_canaries c WHERE c.rollout_id = r.id), "      \
                "r.expires_at, r.expires_s"

static const char *const fq_sql[FQ_N] = {
    [FQ_FLEET_INSERT] = "INSERT INTO fleets (name, created_ns, encrypted, canary_share, "
                        "health_window_s) VALUES (?1, ?2, ?3, ?4, ?5)",
    [FQ_FLEET_GET] = "SELECT " FLEET_COLS " FROM fleets f WHERE f.name = ?1",
    [FQ_FLEET_LIST] = "SELECT " FLEET_COLS " FROM fleets f ORDER BY f.name",
    [FQ_FLEET_UPDATE] = "UPDATE fleets SET canary_share = CASE WHEN ?2 < 0 THEN canary_share "
                        "ELSE ?2 END, health_window_s = CASE WHEN ?3 < 0 THEN health_window_s "
                        "ELSE ?3 END WHERE name = ?1",
    [FQ_FLEET_ACTIVE_DEVICES] = "SELECT count(*) FROM devices WHERE fleet = ?1 AND revoked = 0",
    [FQ_FLEET_DEL_TOKENS] = "DELETE FROM enroll_tokens WHERE fleet = ?1",
    [FQ_FLEET_DEL_CANARIES] = "DELETE FROM rollout_canaries WHERE rollout_id IN "
                              "(SELECT id FROM rollouts WHERE fleet = ?1)",
    [FQ_FLEET_DEL_ROLLOUTS] = "DELETE FROM rollouts WHERE fleet = ?1",
    [FQ_FLEET_DEL_DEVICES] = "DELETE FROM devices WHERE fleet = ?1",
    [FQ_FLEET_DELETE] = "DELETE FROM fleets WHERE name = ?1",
    [FQ_TOKEN_INSERT] = "INSERT INTO enroll_tokens (token_sha256, fleet, created_ns, expires_ns) "
                        "VALUES (?1, ?2, ?3, ?4)",
    [FQ_TOKEN_GET] = "SELECT fleet, expires_ns, used_ns FROM enroll_tokens "
                     "WHERE token_sha256 = ?1",
    [FQ_TOKEN_USE] = "UPDATE enroll_tokens SET used_ns = ?2, device_id = ?3 "
                     "WHERE token_sha256 = ?1 AND used_ns = 0",
    [FQ_DEV_INSERT] = "INSERT INTO devices (id, fleet, name, enrolled_ns, pubkey) "
                      "VALUES (?1, ?2, ?3, ?4, ?5)",
    [FQ_DEV_GET] = "SELECT " DEV_COLS " FROM devices d WHERE d.id = ?1",
    [FQ_DEV_LIST] = "SELECT " DEV_COLS " FROM devices d WHERE (?1 IS NULL OR d.fleet = ?1) "
                    "ORDER BY d.enrolled_ns, d.id",
    [FQ_DEV_REVOKE] = "UPDATE devices SET revoked = 1, revoked_ns = ?2 "
                      "WHERE id = ?1 AND revoked = 0",
    [FQ_DEV_SEEN] = "UPDATE devices SET last_time_ms = ?2, last_seen_ns = ?3 "
                    "WHERE id = ?1 AND last_time_ms < ?2",
    [FQ_DEV_REPORT] = "UPDATE devices SET model = ?2, model_version = ?3, health = ?4, "
                      "latency_p50_us = ?5, latency_p99_us = ?6, features_json = ?7, "
                      "report_ns = ?8, message = ?9 WHERE id = ?1",
    [FQ_RO_INSERT] = "INSERT INTO rollouts (fleet, model, version, stage, canary_share, "
                     "health_window_s, started_ns, stage_ns, envelope_sha256, bundle_sha256, "
                     "rollback, expires_at, expires_s) "
                     "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, ?8, ?9, ?10, ?11, ?12)",
    [FQ_RO_CANARY_ADD] = "INSERT OR IGNORE INTO rollout_canaries (rollout_id, device_id) "
                         "VALUES (?1, ?2)",
    [FQ_RO_GET] = "SELECT " RO_COLS " FROM rollouts r WHERE r.id = ?1",
    [FQ_RO_CURRENT] = "SELECT " RO_COLS " FROM rollouts r WHERE r.fleet = ?1 "
                      "ORDER BY r.id DESC LIMIT 1",
    [FQ_RO_LAST_GOOD] = "SELECT " RO_COLS " FROM rollouts r WHERE r.fleet = ?1 "
                        "AND (?2 <= 0 OR r.id < ?2) AND r.stage IN ('full', 'done') "
                        "ORDER BY r.id DESC LIMIT 1",
    [FQ_RO_LIST] = "SELECT " RO_COLS " FROM rollouts r WHERE (?1 IS NULL OR r.fleet = ?1) "
                   "ORDER BY r.id DESC LIMIT ?2",
    [FQ_RO_ACTIVE] = "SELECT " RO_COLS " FROM rollouts r WHERE r.stage IN ('canary', 'full') "
                     "ORDER BY r.id",
    [FQ_RO_SET_STAGE] = "UPDATE rollouts SET stage = ?2, reason = ?3, stage_ns = ?4 "
                        "WHERE id = ?1",
    [FQ_RO_SET_HEALTHY] = "UPDATE rollouts SET healthy_since_ns = ?2 WHERE id = ?1",
    [FQ_RO_SET_ENVELOPE] = "UPDATE rollouts SET envelope_sha256 = ?2, expires_at = ?3 "
                           "WHERE id = ?1",
    [FQ_RO_IS_CANARY] = "SELECT 1 FROM rollout_canaries WHERE rollout_id = ?1 AND device_id = ?2",
    [FQ_RO_CANARIES] = "SELECT " DEV_COLS " FROM devices d JOIN rollout_canaries c "
                       "ON c.device_id = d.id WHERE c.rollout_id = ?1 ORDER BY d.id",
    [FQ_RO_HAS_BLOB] = "SELECT 1 FROM rollouts WHERE fleet = ?1 AND "
                       "(bundle_sha256 = ?2 OR envelope_sha256 = ?2) LIMIT 1",
    [FQ_SEQ_BUMP] = "INSERT INTO fleet_seq (fleet, seq) VALUES (?1, 1) "
                    "ON CONFLICT(fleet) DO UPDATE SET seq = seq + 1",
    [FQ_SEQ_GET] = "SELECT seq FROM fleet_seq WHERE fleet = ?1",
};

_Static_assert(FQ_N <= ST_FQ_MAX, "raise ST_FQ_MAX in state_int.h");

static const char *const stage_names[ST_ROLLOUT_N_STAGES] = {"canary", "full", "halted", "done"};

const char *st_rollout_stage_name(st_rollout_stage_t s)
{
    return (unsigned)s < ST_ROLLOUT_N_STAGES ? stage_names[s] : NULL;
}

static int stage_lookup(const char *name)
{
    for (int i = 0; name && i < ST_ROLLOUT_N_STAGES; i++)
        if (!strcmp(name, stage_names[i]))
            return i;
    return -1;
}

/* The statement q, prepared on first use; NULL with err set. */
static sqlite3_stmt *fq(st_state_t *st, int q, kiln_err_t *err)
{
    if (!st->fq[q]) {
        int rc = sqlite3_prepare_v3(st->db, fq_sql[q], -1, SQLITE_PREPARE_PERSISTENT, &st->fq[q],
                                    NULL);
        if (rc != SQLITE_OK) {
            st_sq_err(st, rc, err, "preparing fleet statements");
            return NULL;
        }
    }
    return st->fq[q];
}

/* Binds parameters 1.. by the letters of fmt: t text (NULL binds NULL),
 * i int64, d double, b blob (pointer, int length).  SQLite's rc. */
static int bind_list(sqlite3_stmt *s, const char *fmt, va_list ap)
{
    int rc = SQLITE_OK;
    for (int i = 0; fmt[i] && rc == SQLITE_OK; i++) {
        switch (fmt[i]) {
        case 't': rc = st_sq_bind_text(s, i + 1, va_arg(ap, const char *)); break;
        case 'i': rc = sqlite3_bind_int64(s, i + 1, va_arg(ap, int64_t)); break;
        case 'd': rc = sqlite3_bind_double(s, i + 1, va_arg(ap, double)); break;
        case 'b': {
            const void *p = va_arg(ap, const void *);
            int n = va_arg(ap, int);
            rc = sqlite3_bind_blob(s, i + 1, p, n, SQLITE_TRANSIENT);
            break;
        }
        default: rc = SQLITE_MISUSE;
        }
    }
    return rc;
}

/* The statement q, prepared and bound by fmt (bind_list); NULL with *rc
 * and err set (and the statement reset). */
static sqlite3_stmt *prep(st_state_t *st, int q, int *rc, kiln_err_t *err, const char *op,
                          const char *fmt, ...)
{
    sqlite3_stmt *s = fq(st, q, err);
    if (!s) {
        *rc = err ? err->code : KILN_EINTERNAL;
        return NULL;
    }
    va_list ap;
    va_start(ap, fmt);
    int brc = bind_list(s, fmt, ap);
    va_end(ap);
    if (brc != SQLITE_OK) {
        *rc = st_sq_err(st, brc, err, op);
        st_sq_end_stmt(s);
        return NULL;
    }
    return s;
}

/* prep, returning the error from the calling function. */
#define PREP(s, q, op, ...)                                           \
    int s##_rc_ = 0;                                                  \
    sqlite3_stmt *s = prep(st, q, &s##_rc_, err, op, __VA_ARGS__);    \
    if (!s)                                                           \
        return s##_rc_

/* Runs s (bound, no rows); *changes how many rows it changed (may be NULL). */
static int run_changes(st_state_t *st, sqlite3_stmt *s, int *changes, kiln_err_t *err,
                       const char *op)
{
    int rc = st_sq_run_done(st, s, err, op);
    if (rc == 0 && changes)
        *changes = sqlite3_changes(st->db);
    return rc;
}

static void copy_text(char *dst, size_t cap, const unsigned char *src)
{
    snprintf(dst, cap, "%s", src ? (const char *)src : "");
}

/* Names of fleets and devices: letters, digits, '.', '_', '-'. */
static int check_name(const char *v, const char *what, kiln_err_t *err)
{
    size_t n = v ? strlen(v) : 0;
    if (n == 0 || n >= ST_NAME_MAX)
        return kiln_err_at(err, KILN_EINVAL, what, "%s: must be 1 to %d characters", what,
                           ST_NAME_MAX - 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)v[i];
        if (!isalnum(c) && c != '.' && c != '_' && c != '-')
            return kiln_err_at(err, KILN_EINVAL, what,
                               "%s: \"%s\" may hold only letters, digits, '.', '_' and '-'", what,
                               v);
    }
    return 0;
}

static int sodium_ready(kiln_err_t *err)
{
    return sodium_init() < 0 ? kiln_err_set(err, KILN_EINTERNAL, "libsodium failed to start")
                             : 0;
}

/* ---- fleets */

int st_fleet_key_path(st_state_t *st, const char *name, char *buf, size_t cap)
{
    const char *slash = strrchr(st->path, '/');
    int dir_len = slash ? (int)(slash - st->path) : 1;
    const char *dir = slash ? st->path : ".";
    int n = snprintf(buf, cap, "%.*s/fleet-keys/%s.key", dir_len, dir, name);
    return n < 0 || (size_t)n >= cap ? -1 : 0;
}

/* The fleet's key file in storage/bundle.h's format (st_bundle_keygen_fleet:
 * 0600, never overwritten).  A file left by a crash between a key and its
 * row (the fleet row is new: this runs inside its insert) is replaced. */
static int write_key(st_state_t *st, const char *name, kiln_err_t *err)
{
    char path[1200];
    if (st_fleet_key_path(st, name, path, sizeof path) < 0)
        return kiln_err_set(err, KILN_EINVAL, "fleet %s: key path too long", name);
    char *slash = strrchr(path, '/');
    *slash = '\0';
    if (mkdir(path, 0700) < 0 && errno != EEXIST)
        return kiln_err_at(err, KILN_EIO, path, "%s: %s", path, strerror(errno));
    *slash = '/';
    int rc = st_bundle_keygen_fleet(path, NULL, err);
    if (rc == KILN_EEXIST && unlink(path) == 0)
        rc = st_bundle_keygen_fleet(path, NULL, err);
    return rc;
}

int st_fleet_create(st_state_t *st, const char *name, int encrypted, double canary_share,
                    int64_t health_window_s, int64_t now_ns, kiln_err_t *err)
{
    if (!st)
        return kiln_err_set(err, KILN_EINVAL, "fleet create: NULL handle");
    int rc = check_name(name, "fleet", err);
    if (rc < 0)
        return rc;
    if (!(canary_share > 0 && canary_share <= 1))
        return kiln_err_at(err, KILN_EINVAL, "canary_share",
                           "canary_share: %g is not in (0, 1]", canary_share);
    if (health_window_s < 0 || health_window_s > 30LL * 86400)
        return kiln_err_at(err, KILN_EINVAL, "health_window_s",
                           "health_window_s: %lld is not in 0..2592000",
                           (long long)health_window_s);
    if ((rc = sodium_ready(err)) < 0 || (rc = st_sq_sp_begin(st, err)) < 0)
        return rc;
    sqlite3_stmt *s = prep(st, FQ_FLEET_INSERT, &rc, err, "creating fleet", "tiidi", name, now_ns,
                           (int64_t)(encrypted ? 1 : 0), canary_share, health_window_s);
    if (s) {
        rc = sqlite3_step(s);
        if (rc == SQLITE_DONE)
            rc = 0;
        else if ((rc & 0xff) == SQLITE_CONSTRAINT)
            rc = kiln_err_at(err, KILN_EEXIST, "fleet", "fleet \"%s\" exists already", name);
        else
            rc = st_sq_err(st, rc, err, "creating fleet");
        st_sq_end_stmt(s);
    }
    if (rc == 0 && encrypted)
        rc = write_key(st, name, err);
    return st_sq_sp_end(st, rc, err);
}

static void fleet_from_row(sqlite3_stmt *s, st_fleet_t *f)
{
    memset(f, 0, sizeof *f);
    copy_text(f->name, sizeof f->name, sqlite3_column_text(s, 0));
    f->created_ns = sqlite3_column_int64(s, 1);
    f->encrypted = sqlite3_column_int(s, 2);
    f->canary_share = sqlite3_column_double(s, 3);
    f->health_window_s = sqlite3_column_int64(s, 4);
    f->n_devices = sqlite3_column_int64(s, 5);
}

/* st_sq_each_row's row function: the row as a fleet to the caller's cb. */
struct fleet_visit {
    st_fleet_cb cb;
    void       *ud;
};

static int fleet_row(sqlite3_stmt *s, void *ctx)
{
    const struct fleet_visit *v = ctx;
    st_fleet_t f;
    fleet_from_row(s, &f);
    return v->cb(&f, v->ud);
}

int st_fleet_get(st_state_t *st, const char *name, st_fleet_t *out, kiln_err_t *err)
{
    if (!st || !name || !out)
        return kiln_err_set(err, KILN_EINVAL, "fleet get: NULL argument");
    PREP(s, FQ_FLEET_GET, "reading fleet", "t", name);
    int rc = sqlite3_step(s), ret = 0;
    if (rc == SQLITE_ROW)
        fleet_from_row(s, out);
    else if (rc == SQLITE_DONE)
        ret = kiln_err_at(err, KILN_ENOTFOUND, "fleet", "fleet \"%s\" not found", name);
    else
        ret = st_sq_err(st, rc, err, "reading fleet");
    st_sq_end_stmt(s);
    return ret;
}

int st_fleet_update(st_state_t *st, const char *name, double canary_share,
                    int64_t health_window_s, kiln_err_t *err)
{
    if (!st || !name)
        return kiln_err_set(err, KILN_EINVAL, "fleet update: NULL argument");
    if (canary_share >= 0 && !(canary_share > 0 && canary_share <= 1))
        return kiln_err_at(err, KILN_EINVAL, "canary_share",
                           "canary_share: %g is not in (0, 1]", canary_share);
    PREP(s, FQ_FLEET_UPDATE, "updating fleet", "tdi", name, canary_share, health_window_s);
    int changes = 0;
    int rc = run_changes(st, s, &changes, err, "updating fleet");
    if (rc == 0 && changes == 0)
        rc = kiln_err_at(err, KILN_ENOTFOUND, "fleet", "fleet \"%s\" not found", name);
    return rc;
}

static int exec_one(st_state_t *st, int q, const char *name, kiln_err_t *err, const char *op)
{
    PREP(s, q, op, "t", name);
    return st_sq_run_done(st, s, err, op);
}

int st_fleet_delete(st_state_t *st, const char *name, kiln_err_t *err)
{
    st_fleet_t f;
    int rc = st_fleet_get(st, name, &f, err);
    if (rc < 0)
        return rc;
    if (f.n_devices > 0)
        return kiln_err_at(err, KILN_ESTATE, "fleet",
                           "fleet \"%s\" still has %lld enrolled device(s): revoke them first",
                           name, (long long)f.n_devices);
    if ((rc = st_sq_sp_begin(st, err)) < 0)
        return rc;
    static const int steps[] = {FQ_FLEET_DEL_TOKENS, FQ_FLEET_DEL_CANARIES, FQ_FLEET_DEL_ROLLOUTS,
                                FQ_FLEET_DEL_DEVICES, FQ_FLEET_DELETE};
    for (size_t i = 0; rc == 0 && i < sizeof steps / sizeof steps[0]; i++)
        rc = exec_one(st, steps[i], name, err, "deleting fleet");
    if ((rc = st_sq_sp_end(st, rc, err)) < 0)
        return rc;
    char path[1200];
    if (f.encrypted && st_fleet_key_path(st, name, path, sizeof path) == 0)
        unlink(path);
    return 0;
}

int st_fleet_list(st_state_t *st, st_fleet_cb cb, void *ud, kiln_err_t *err)
{
    if (!st || !cb)
        return kiln_err_set(err, KILN_EINVAL, "fleet list: NULL argument");
    PREP(s, FQ_FLEET_LIST, "listing fleets", "");
    struct fleet_visit v = {cb, ud};
    return st_sq_each_row(st, s, fleet_row, &v, err, "listing fleets");
}

int st_fleet_key(st_state_t *st, const char *name, unsigned char key[ST_FLEET_KEY_BYTES],
                 kiln_err_t *err)
{
    st_fleet_t f;
    int rc = st_fleet_get(st, name, &f, err);
    if (rc < 0)
        return rc;
    if (!f.encrypted)
        return kiln_err_at(err, KILN_ENOTFOUND, "fleet", "fleet \"%s\" has no encryption key",
                           name);
    char path[1200];
    if (st_fleet_key_path(st, name, path, sizeof path) < 0)
        return kiln_err_set(err, KILN_EINVAL, "fleet %s: key path too long", name);
    st_bundle_fleetkey_t k;
    if ((rc = st_bundle_load_fleetkey(path, &k, err)) < 0)
        return rc;
    memcpy(key, k.key, ST_FLEET_KEY_BYTES);
    sodium_memzero(&k, sizeof k);
    return 0;
}

int st_fleet_next_seq(st_state_t *st, const char *fleet, uint64_t *seq, kiln_err_t *err)
{
    if (!st || !fleet || !seq)
        return kiln_err_set(err, KILN_EINVAL, "fleet seq: NULL argument");
    st_fleet_t f;
    int rc = st_fleet_get(st, fleet, &f, err);
    if (rc < 0 || (rc = st_sq_sp_begin(st, err)) < 0)
        return rc;
    const char *op = "counting publications";
    sqlite3_stmt *s = prep(st, FQ_SEQ_BUMP, &rc, err, op, "t", fleet);
    if (s)
        rc = st_sq_run_done(st, s, err, op);
    if (rc == 0 && (s = prep(st, FQ_SEQ_GET, &rc, err, op, "t", fleet))) {
        int step = sqlite3_step(s);
        if (step == SQLITE_ROW)
            *seq = (uint64_t)sqlite3_column_int64(s, 0);
        else
            rc = st_sq_err(st, step == SQLITE_DONE ? SQLITE_INTERNAL : step, err, op);
        st_sq_end_stmt(s);
    }
    return st_sq_sp_end(st, rc, err);
}

/* ---- tokens */

static void token_hash(const char *token, char hex[65])
{
    uint8_t d[32];
    st_sha256_t h;
    st_sha256_init(&h);
    st_sha256_update(&h, token, strlen(token));
    st_sha256_final(&h, d);
    st_sha256_hex(d, hex);
}

int st_fleet_token_create(st_state_t *st, const char *fleet, int64_t ttl_s, int64_t now_ns,
                          char token[ST_TOKEN_HEX + 1], int64_t *expires_ns, kiln_err_t *err)
{
    if (!st || !fleet || !token)
        return kiln_err_set(err, KILN_EINVAL, "token create: NULL argument");
    if (ttl_s < 1 || ttl_s > 30LL * 86400)
        return kiln_err_at(err, KILN_EINVAL, "ttl_s", "ttl_s: %lld is not in 1..2592000",
                           (long long)ttl_s);
    st_fleet_t f;
    int rc = st_fleet_get(st, fleet, &f, err);
    if (rc < 0 || (rc = sodium_ready(err)) < 0)
        return rc;
    unsigned char raw[ST_TOKEN_HEX / 2];
    randombytes_buf(raw, sizeof raw);
    sodium_bin2hex(token, ST_TOKEN_HEX + 1, raw, sizeof raw);
    sodium_memzero(raw, sizeof raw);
    char hash[65];
    token_hash(token, hash);
    int64_t exp = now_ns + ttl_s * 1000000000LL;
    PREP(s, FQ_TOKEN_INSERT, "storing token", "ttii", hash, fleet, now_ns, exp);
    if ((rc = st_sq_run_done(st, s, err, "storing token")) < 0)
        return rc;
    if (expires_ns)
        *expires_ns = exp;
    return 0;
}

/* ---- devices */

static void device_from_row(sqlite3_stmt *s, st_device_t *d)
{
    memset(d, 0, sizeof *d);
    copy_text(d->id, sizeof d->id, sqlite3_column_text(s, 0));
    copy_text(d->fleet, sizeof d->fleet, sqlite3_column_text(s, 1));
    copy_text(d->name, sizeof d->name, sqlite3_column_text(s, 2));
    d->enrolled_ns = sqlite3_column_int64(s, 3);
    d->revoked = sqlite3_column_int(s, 4);
    d->revoked_ns = sqlite3_column_int64(s, 5);
    if (sqlite3_column_bytes(s, 6) == ST_DEVICE_PK_BYTES)
        memcpy(d->pubkey, sqlite3_column_blob(s, 6), ST_DEVICE_PK_BYTES);
    d->last_time_ms = sqlite3_column_int64(s, 7);
    copy_text(d->model, sizeof d->model, sqlite3_column_text(s, 8));
    d->model_version = sqlite3_column_int64(s, 9);
    copy_text(d->health, sizeof d->health, sqlite3_column_text(s, 10));
    d->latency_p50_us = sqlite3_column_double(s, 11);
    d->latency_p99_us = sqlite3_column_double(s, 12);
    const unsigned char *fj = sqlite3_column_text(s, 13);
    d->features_json = fj ? (const char *)fj : "";
    d->last_seen_ns = sqlite3_column_int64(s, 14);
    d->report_ns = sqlite3_column_int64(s, 15);
    copy_text(d->message, sizeof d->message, sqlite3_column_text(s, 16));
}

/* st_sq_each_row's row function: the row as a device to the caller's cb. */
struct device_visit {
    st_device_cb cb;
    void        *ud;
};

static int device_row(sqlite3_stmt *s, void *ctx)
{
    const struct device_visit *v = ctx;
    st_device_t d;
    device_from_row(s, &d);
    return v->cb(&d, v->ud);
}

int st_device_enroll(st_state_t *st, const char *token, const unsigned char pk[ST_DEVICE_PK_BYTES],
                     const char *name, int64_t now_ns, st_device_t *out, kiln_err_t *err)
{
    if (!st || !token || !pk || !out)
        return kiln_err_set(err, KILN_EINVAL, "device enroll: NULL argument");
    int rc;
    if (name && name[0] && (rc = check_name(name, "name", err)) < 0)
        return rc;
    if (strlen(token) != ST_TOKEN_HEX)
        return kiln_err_at(err, KILN_ENOTFOUND, "token", "unknown enrollment token");
    if ((rc = sodium_ready(err)) < 0)
        return rc;
    char hash[65], fleet[ST_NAME_MAX] = "";
    token_hash(token, hash);
    int64_t expires = 0, used = 0;
    {
        PREP(s, FQ_TOKEN_GET, "reading token", "t", hash);
        rc = sqlite3_step(s);
        if (rc == SQLITE_ROW) {
            copy_text(fleet, sizeof fleet, sqlite3_column_text(s, 0));
            expires = sqlite3_column_int64(s, 1);
            used = sqlite3_column_int64(s, 2);
            rc = 0;
        } else if (rc == SQLITE_DONE) {
            rc = kiln_err_at(err, KILN_ENOTFOUND, "token", "unknown enrollment token");
        } else {
            rc = st_sq_err(st, rc, err, "reading token");
        }
        st_sq_end_stmt(s);
        if (rc < 0)
            return rc;
    }
    if (used)
        return kiln_err_at(err, KILN_ESTATE, "token",
                           "this enrollment token was used already (tokens are one-time: "
                           "make a new one with `kiln device enroll --fleet %s`)", fleet);
    if (now_ns >= expires)
        return kiln_err_at(err, KILN_ESTATE, "token",
                           "this enrollment token expired %lld s ago (make a new one with "
                           "`kiln device enroll --fleet %s`)",
                           (long long)((now_ns - expires) / 1000000000LL), fleet);
    unsigned char raw[8];
    randombytes_buf(raw, sizeof raw);
    char id[ST_DEVICE_ID_MAX] = "dev-";
    sodium_bin2hex(id + 4, sizeof id - 4, raw, sizeof raw);
    if ((rc = st_sq_sp_begin(st, err)) < 0)
        return rc;
    int changes = 0;
    {
        sqlite3_stmt *s = prep(st, FQ_TOKEN_USE, &rc, err, "using token", "tit", hash, now_ns, id);
        if (s)
            rc = run_changes(st, s, &changes, err, "using token");
    }
    if (rc == 0 && changes != 1)
        rc = kiln_err_at(err, KILN_ESTATE, "token", "this enrollment token was used already");
    if (rc == 0) {
        sqlite3_stmt *s = prep(st, FQ_DEV_INSERT, &rc, err, "enrolling device", "tttib", id,
                               fleet, name ? name : "", now_ns, pk, ST_DEVICE_PK_BYTES);
        if (s)
            rc = st_sq_run_done(st, s, err, "enrolling device");
    }
    if ((rc = st_sq_sp_end(st, rc, err)) < 0)
        return rc;
    return st_device_get(st, id, out, err);
}

int st_device_get(st_state_t *st, const char *id, st_device_t *out, kiln_err_t *err)
{
    if (!st || !id || !out)
        return kiln_err_set(err, KILN_EINVAL, "device get: NULL argument");
    memset(out, 0, sizeof *out);
    out->features_json = "";
    PREP(s, FQ_DEV_GET, "reading device", "t", id);
    int rc = sqlite3_step(s), ret = 0;
    if (rc == SQLITE_ROW) {
        device_from_row(s, out);
        if (!(out->owned_features = kiln_strdup(out->features_json))) {
            out->features_json = "";
            ret = kiln_err_set(err, KILN_ENOMEM, "device %s: out of memory", id);
        } else {
            out->features_json = out->owned_features;
        }
    } else if (rc == SQLITE_DONE) {
        ret = kiln_err_at(err, KILN_ENOTFOUND, "device", "device \"%s\" not found", id);
    } else {
        ret = st_sq_err(st, rc, err, "reading device");
    }
    st_sq_end_stmt(s);
    return ret;
}

void st_device_free(st_device_t *dev)
{
    if (!dev)
        return;
    kiln_free(dev->owned_features);
    dev->owned_features = NULL;
    dev->features_json = "";
}

static int device_rows(st_state_t *st, sqlite3_stmt *s, st_device_cb cb, void *ud,
                       kiln_err_t *err, const char *op)
{
    struct device_visit v = {cb, ud};
    return st_sq_each_row(st, s, device_row, &v, err, op);
}

int st_device_list(st_state_t *st, const char *fleet, st_device_cb cb, void *ud, kiln_err_t *err)
{
    if (!st || !cb)
        return kiln_err_set(err, KILN_EINVAL, "device list: NULL argument");
    PREP(s, FQ_DEV_LIST, "listing devices", "t", fleet);
    return device_rows(st, s, cb, ud, err, "listing devices");
}

int st_device_revoke(st_state_t *st, const char *id, int64_t now_ns, kiln_err_t *err)
{
    st_device_t d;
    int rc = st_device_get(st, id, &d, err);
    if (rc < 0)
        return rc;
    st_device_free(&d);
    if (d.revoked)
        return kiln_err_at(err, KILN_ESTATE, "device", "device \"%s\" was revoked already", id);
    PREP(s, FQ_DEV_REVOKE, "revoking device", "ti", id, now_ns);
    return st_sq_run_done(st, s, err, "revoking device");
}

int st_device_seen(st_state_t *st, const char *id, int64_t time_ms, int64_t now_ns,
                   kiln_err_t *err)
{
    if (!st || !id)
        return kiln_err_set(err, KILN_EINVAL, "device seen: NULL argument");
    PREP(s, FQ_DEV_SEEN, "recording device call", "tii", id, time_ms, now_ns);
    int changes = 0;
    int rc = run_changes(st, s, &changes, err, "recording device call");
    if (rc == 0 && changes == 0)
        rc = kiln_err_at(err, KILN_ESTALE, "X-Kiln-Time",
                         "device %s: X-Kiln-Time %lld is not newer than its last accepted call "
                         "(a replayed request, or the device's clock went back)",
                         id, (long long)time_ms);
    return rc;
}

int st_device_health_check(const char *health, kiln_err_t *err)
{
    static const char *const names[] = {"ok", "degraded", "unhealthy", "rolled_back"};
    for (size_t i = 0; health && i < sizeof names / sizeof names[0]; i++)
        if (!strcmp(health, names[i]))
            return 0;
    return kiln_err_at(err, KILN_EINVAL, "health",
                       "health: \"%s\" is not ok, degraded, unhealthy or rolled_back",
                       health ? health : "(none)");
}

int st_device_report(st_state_t *st, const char *id, const st_device_report_t *r,
                     int64_t now_ns, kiln_err_t *err)
{
    if (!st || !id || !r)
        return kiln_err_set(err, KILN_EINVAL, "device report: NULL argument");
    int rc = st_device_health_check(r->health, err);
    if (rc < 0)
        return rc;
    if (r->model && r->model[0] && (rc = check_name(r->model, "model", err)) < 0)
        return rc;
    if (r->features_json && strlen(r->features_json) > ST_FEATURES_JSON_MAX)
        return kiln_err_at(err, KILN_EINVAL, "features", "features: over %d bytes",
                           ST_FEATURES_JSON_MAX);
    if (r->message && strlen(r->message) >= ST_MESSAGE_MAX)
        return kiln_err_at(err, KILN_EINVAL, "message", "message: over %d bytes",
                           ST_MESSAGE_MAX - 1);
    PREP(s, FQ_DEV_REPORT, "recording report", "ttitddtit", id, r->model ? r->model : "",
         r->model_version, r->health, r->latency_p50_us, r->latency_p99_us,
         r->features_json ? r->features_json : "", now_ns, r->message ? r->message : "");
    int changes = 0;
    if ((rc = run_changes(st, s, &changes, err, "recording report")) == 0 && changes == 0)
        rc = kiln_err_at(err, KILN_ENOTFOUND, "device", "device \"%s\" not found", id);
    return rc;
}

/* ---- rollouts */

static int rollout_from_row(sqlite3_stmt *s, st_rollout_t *r)
{
    memset(r, 0, sizeof *r);
    r->id = sqlite3_column_int64(s, 0);
    copy_text(r->fleet, sizeof r->fleet, sqlite3_column_text(s, 1));
    copy_text(r->model, sizeof r->model, sqlite3_column_text(s, 2));
    r->version = sqlite3_column_int64(s, 3);
    int stage = stage_lookup((const char *)sqlite3_column_text(s, 4));
    r->stage = stage < 0 ? ST_ROLLOUT_HALTED : (st_rollout_stage_t)stage;
    r->canary_share = sqlite3_column_double(s, 5);
    r->health_window_s = sqlite3_column_int64(s, 6);
    r->started_ns = sqlite3_column_int64(s, 7);
    r->stage_ns = sqlite3_column_int64(s, 8);
    r->healthy_since_ns = sqlite3_column_int64(s, 9);
    copy_text(r->reason, sizeof r->reason, sqlite3_column_text(s, 10));
    copy_text(r->envelope_sha256, sizeof r->envelope_sha256, sqlite3_column_text(s, 11));
    copy_text(r->bundle_sha256, sizeof r->bundle_sha256, sqlite3_column_text(s, 12));
    r->rollback = sqlite3_column_int(s, 13);
    r->n_canaries = sqlite3_column_int64(s, 14);
    r->expires_at = sqlite3_column_int64(s, 15);
    r->expires_s = sqlite3_column_int64(s, 16);
    return stage;
}

static int is_hex64(const char *h)
{
    if (!h || strlen(h) != 64)
        return 0;
    for (int i = 0; i < 64; i++)
        if (!isxdigit((unsigned char)h[i]) || isupper((unsigned char)h[i]))
            return 0;
    return 1;
}

int st_rollout_create(st_state_t *st, const st_rollout_t *r, const char *const *canaries,
                      size_t n_canaries, int64_t *id, kiln_err_t *err)
{
    if (!st || !r || !id || (n_canaries && !canaries))
        return kiln_err_set(err, KILN_EINVAL, "rollout create: NULL argument");
    if (!is_hex64(r->envelope_sha256) || !is_hex64(r->bundle_sha256))
        return kiln_err_set(err, KILN_EINVAL,
                            "rollout: envelope and bundle hashes must be 64 lowercase hex digits");
    const char *stage = st_rollout_stage_name(r->stage);
    if (!stage)
        return kiln_err_set(err, KILN_EINVAL, "rollout: bad stage %d", (int)r->stage);
    int rc = st_sq_sp_begin(st, err);
    if (rc < 0)
        return rc;
    sqlite3_stmt *s = prep(st, FQ_RO_INSERT, &rc, err, "creating rollout", "ttitdiittiii",
                           r->fleet, r->model, r->version, stage, r->canary_share,
                           r->health_window_s, r->started_ns, r->envelope_sha256,
                           r->bundle_sha256, (int64_t)(r->rollback ? 1 : 0), r->expires_at,
                           r->expires_s);
    if (s)
        rc = st_sq_run_done(st, s, err, "creating rollout");
    int64_t new_id = rc == 0 ? sqlite3_last_insert_rowid(st->db) : 0;
    for (size_t i = 0; rc == 0 && i < n_canaries; i++) {
        sqlite3_stmt *c = prep(st, FQ_RO_CANARY_ADD, &rc, err, "naming canaries", "it", new_id,
                               canaries[i]);
        if (c)
            rc = st_sq_run_done(st, c, err, "naming canaries");
    }
    if ((rc = st_sq_sp_end(st, rc, err)) < 0)
        return rc;
    *id = new_id;
    return 0;
}

static int rollout_one(st_state_t *st, sqlite3_stmt *s, st_rollout_t *out, kiln_err_t *err,
                       const char *what)
{
    int rc = sqlite3_step(s), ret = 0;
    if (rc == SQLITE_ROW)
        rollout_from_row(s, out);
    else if (rc == SQLITE_DONE)
        ret = kiln_err_at(err, KILN_ENOTFOUND, "rollout", "%s", what);
    else
        ret = st_sq_err(st, rc, err, "reading rollout");
    st_sq_end_stmt(s);
    return ret;
}

int st_rollout_get(st_state_t *st, int64_t id, st_rollout_t *out, kiln_err_t *err)
{
    if (!st || !out)
        return kiln_err_set(err, KILN_EINVAL, "rollout get: NULL argument");
    char what[64];
    snprintf(what, sizeof what, "rollout %lld not found", (long long)id);
    PREP(s, FQ_RO_GET, "reading rollout", "i", id);
    return rollout_one(st, s, out, err, what);
}

int st_rollout_current(st_state_t *st, const char *fleet, st_rollout_t *out, kiln_err_t *err)
{
    if (!st || !fleet || !out)
        return kiln_err_set(err, KILN_EINVAL, "rollout current: NULL argument");
    char what[ST_NAME_MAX + 64];
    snprintf(what, sizeof what, "fleet \"%s\" has no rollout yet", fleet);
    PREP(s, FQ_RO_CURRENT, "reading rollout", "t", fleet);
    return rollout_one(st, s, out, err, what);
}

int st_rollout_last_good(st_state_t *st, const char *fleet, int64_t before_id, st_rollout_t *out,
                         kiln_err_t *err)
{
    if (!st || !fleet || !out)
        return kiln_err_set(err, KILN_EINVAL, "rollout last good: NULL argument");
    char what[ST_NAME_MAX + 64];
    snprintf(what, sizeof what, "fleet \"%s\" has no earlier completed rollout", fleet);
    PREP(s, FQ_RO_LAST_GOOD, "reading rollout", "ti", fleet, before_id);
    return rollout_one(st, s, out, err, what);
}

/* st_sq_each_row's row function: the row as a rollout to the caller's cb. */
struct rollout_visit {
    st_rollout_cb cb;
    void         *ud;
};

static int rollout_row(sqlite3_stmt *s, void *ctx)
{
    const struct rollout_visit *v = ctx;
    st_rollout_t r;
    rollout_from_row(s, &r);
    return v->cb(&r, v->ud);
}

static int rollout_rows(st_state_t *st, sqlite3_stmt *s, st_rollout_cb cb, void *ud,
                        kiln_err_t *err)
{
    struct rollout_visit v = {cb, ud};
    return st_sq_each_row(st, s, rollout_row, &v, err, "listing rollouts");
}

int st_rollout_list(st_state_t *st, const char *fleet, int64_t limit, st_rollout_cb cb, void *ud,
                    kiln_err_t *err)
{
    if (!st || !cb)
        return kiln_err_set(err, KILN_EINVAL, "rollout list: NULL argument");
    PREP(s, FQ_RO_LIST, "listing rollouts", "ti", fleet, limit > 0 ? limit : (int64_t)-1);
    return rollout_rows(st, s, cb, ud, err);
}

int st_rollout_active(st_state_t *st, st_rollout_cb cb, void *ud, kiln_err_t *err)
{
    if (!st || !cb)
        return kiln_err_set(err, KILN_EINVAL, "rollout active: NULL argument");
    PREP(s, FQ_RO_ACTIVE, "listing rollouts", "");
    return rollout_rows(st, s, cb, ud, err);
}

int st_rollout_set_stage(st_state_t *st, int64_t id, st_rollout_stage_t stage, const char *reason,
                         int64_t now_ns, kiln_err_t *err)
{
    const char *name = st_rollout_stage_name(stage);
    if (!st || !name)
        return kiln_err_set(err, KILN_EINVAL, "rollout set stage: bad argument");
    PREP(s, FQ_RO_SET_STAGE, "moving rollout", "itti", id, name, reason ? reason : "", now_ns);
    int changes = 0;
    int rc = run_changes(st, s, &changes, err, "moving rollout");
    if (rc == 0 && changes == 0)
        rc = kiln_err_at(err, KILN_ENOTFOUND, "rollout", "rollout %lld not found", (long long)id);
    return rc;
}

int st_rollout_set_envelope(st_state_t *st, int64_t id, const char *sha256, int64_t expires_at,
                            kiln_err_t *err)
{
    if (!st || !is_hex64(sha256))
        return kiln_err_set(err, KILN_EINVAL,
                            "rollout envelope: a hash of 64 lowercase hex digits is required");
    PREP(s, FQ_RO_SET_ENVELOPE, "re-signing rollout", "iti", id, sha256, expires_at);
    int changes = 0;
    int rc = run_changes(st, s, &changes, err, "re-signing rollout");
    if (rc == 0 && changes == 0)
        rc = kiln_err_at(err, KILN_ENOTFOUND, "rollout", "rollout %lld not found", (long long)id);
    return rc;
}

int st_rollout_set_healthy_since(st_state_t *st, int64_t id, int64_t since_ns, kiln_err_t *err)
{
    if (!st)
        return kiln_err_set(err, KILN_EINVAL, "rollout: NULL handle");
    PREP(s, FQ_RO_SET_HEALTHY, "updating rollout", "ii", id, since_ns);
    return st_sq_run_done(st, s, err, "updating rollout");
}

/* *yes whether s (bound) gives a row; then resets s. */
static int has_row(st_state_t *st, sqlite3_stmt *s, int *yes, kiln_err_t *err, const char *op)
{
    int rc = sqlite3_step(s), ret = 0;
    *yes = rc == SQLITE_ROW;
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        ret = st_sq_err(st, rc, err, op);
    st_sq_end_stmt(s);
    return ret;
}

int st_rollout_is_canary(st_state_t *st, int64_t id, const char *device, int *yes,
                         kiln_err_t *err)
{
    if (!st || !device || !yes)
        return kiln_err_set(err, KILN_EINVAL, "rollout is canary: NULL argument");
    PREP(s, FQ_RO_IS_CANARY, "reading canaries", "it", id, device);
    return has_row(st, s, yes, err, "reading canaries");
}

int st_rollout_canaries(st_state_t *st, int64_t id, st_device_cb cb, void *ud, kiln_err_t *err)
{
    if (!st || !cb)
        return kiln_err_set(err, KILN_EINVAL, "rollout canaries: NULL argument");
    PREP(s, FQ_RO_CANARIES, "reading canaries", "i", id);
    return device_rows(st, s, cb, ud, err, "reading canaries");
}

int st_rollout_has_blob(st_state_t *st, const char *fleet, const char *sha256, int *yes,
                        kiln_err_t *err)
{
    if (!st || !fleet || !sha256 || !yes)
        return kiln_err_set(err, KILN_EINVAL, "rollout has blob: NULL argument");
    PREP(s, FQ_RO_HAS_BLOB, "reading rollouts", "tt", fleet, sha256);
    return has_row(st, s, yes, err, "reading rollouts");
}
