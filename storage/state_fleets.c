/* state_fleets.c - fleets, enrollment tokens and publication sequence
 * numbers in the state store (fleets.h), and the statement table and
 * helpers the fleet store's files share (state_fleets_int.h): devices are in
 * state_devices.c, rollouts in state_rollouts.c.  Statements are prepared on
 * first use into the handle (st->fq) and kept until st_state_close. */
#include "storage/state_fleets_int.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "core/kiln_alloc.h"
#include "storage/bundle.h"
#include "storage/sha256.h"

/* ---- the statements and their helpers (state_fleets_int.h) */

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
sqlite3_stmt *st_fq_prep(st_state_t *st, int q, int *rc, kiln_err_t *err, const char *op,
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

/* Runs s (bound, no rows); *changes how many rows it changed (may be NULL). */
int st_fq_run_changes(st_state_t *st, sqlite3_stmt *s, int *changes, kiln_err_t *err,
                      const char *op)
{
    int rc = st_sq_run_done(st, s, err, op);
    if (rc == 0 && changes)
        *changes = sqlite3_changes(st->db);
    return rc;
}

int st_fq_check_name(const char *v, const char *what, kiln_err_t *err)
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

int st_fq_sodium_ready(kiln_err_t *err)
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
    int rc = st_fq_check_name(name, "fleet", err);
    if (rc < 0)
        return rc;
    if (!(canary_share > 0 && canary_share <= 1))
        return kiln_err_at(err, KILN_EINVAL, "canary_share",
                           "canary_share: %g is not in (0, 1]", canary_share);
    if (health_window_s < 0 || health_window_s > 30LL * 86400)
        return kiln_err_at(err, KILN_EINVAL, "health_window_s",
                           "health_window_s: %lld is not in 0..2592000",
                           (long long)health_window_s);
    if ((rc = st_fq_sodium_ready(err)) < 0 || (rc = st_sq_sp_begin(st, err)) < 0)
        return rc;
    sqlite3_stmt *s = st_fq_prep(st, FQ_FLEET_INSERT, &rc, err, "creating fleet", "tiidi", name,
                                 now_ns, (int64_t)(encrypted ? 1 : 0), canary_share,
                                 health_window_s);
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
    st_fq_copy_text(f->name, sizeof f->name, sqlite3_column_text(s, 0));
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
    int rc = st_fq_run_changes(st, s, &changes, err, "updating fleet");
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

/* st_fleet_names' list callback: one more name, growing the array. */
struct fleet_names {
    char (*names)[ST_NAME_MAX];
    size_t n, cap;
    int    oom;
};

static int name_item(const st_fleet_t *f, void *ud)
{
    struct fleet_names *v = ud;
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 16;
        char (*p)[ST_NAME_MAX] = kiln_realloc(v->names, cap * sizeof *p);
        if (!p) {
            v->oom = 1;
            return 1;
        }
        v->names = p;
        v->cap = cap;
    }
    snprintf(v->names[v->n++], ST_NAME_MAX, "%s", f->name);
    return 0;
}

int st_fleet_names(st_state_t *st, char (**names)[ST_NAME_MAX], size_t *n, kiln_err_t *err)
{
    struct fleet_names v = {0};
    *names = NULL;
    *n = 0;
    int rc = st_fleet_list(st, name_item, &v, err);
    if (rc == 0 && v.oom)
        rc = kiln_err_set(err, KILN_ENOMEM, "listing fleets: out of memory");
    if (rc < 0) {
        kiln_free(v.names);
        return rc;
    }
    *names = v.names;
    *n = v.n;
    return 0;
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
    sqlite3_stmt *s = st_fq_prep(st, FQ_SEQ_BUMP, &rc, err, op, "t", fleet);
    if (s)
        rc = st_sq_run_done(st, s, err, op);
    if (rc == 0 && (s = st_fq_prep(st, FQ_SEQ_GET, &rc, err, op, "t", fleet))) {
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

void st_fq_token_hash(const char *token, char hex[65])
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
    if (rc < 0 || (rc = st_fq_sodium_ready(err)) < 0)
        return rc;
    unsigned char raw[ST_TOKEN_HEX / 2];
    randombytes_buf(raw, sizeof raw);
    sodium_bin2hex(token, ST_TOKEN_HEX + 1, raw, sizeof raw);
    sodium_memzero(raw, sizeof raw);
    char hash[65];
    st_fq_token_hash(token, hash);
    int64_t exp = now_ns + ttl_s * 1000000000LL;
    PREP(s, FQ_TOKEN_INSERT, "storing token", "ttii", hash, fleet, now_ns, exp);
    if ((rc = st_sq_run_done(st, s, err, "storing token")) < 0)
        return rc;
    if (expires_ns)
        *expires_ns = exp;
    return 0;
}
