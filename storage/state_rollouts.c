/* state_rollouts.c - rollouts in the state store (fleets.h): a model
 * version's way through a fleet (canary, full, halted, done), its canary
 * devices and the envelope it was signed into. */
#include "storage/state_fleets_int.h"

#include <ctype.h>
#include <string.h>

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

static int rollout_from_row(sqlite3_stmt *s, st_rollout_t *r)
{
    memset(r, 0, sizeof *r);
    r->id = sqlite3_column_int64(s, 0);
    st_fq_copy_text(r->fleet, sizeof r->fleet, sqlite3_column_text(s, 1));
    st_fq_copy_text(r->model, sizeof r->model, sqlite3_column_text(s, 2));
    r->version = sqlite3_column_int64(s, 3);
    int stage = stage_lookup((const char *)sqlite3_column_text(s, 4));
    r->stage = stage < 0 ? ST_ROLLOUT_HALTED : (st_rollout_stage_t)stage;
    r->canary_share = sqlite3_column_double(s, 5);
    r->health_window_s = sqlite3_column_int64(s, 6);
    r->started_ns = sqlite3_column_int64(s, 7);
    r->stage_ns = sqlite3_column_int64(s, 8);
    r->healthy_since_ns = sqlite3_column_int64(s, 9);
    st_fq_copy_text(r->reason, sizeof r->reason, sqlite3_column_text(s, 10));
    st_fq_copy_text(r->envelope_sha256, sizeof r->envelope_sha256, sqlite3_column_text(s, 11));
    st_fq_copy_text(r->bundle_sha256, sizeof r->bundle_sha256, sqlite3_column_text(s, 12));
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
    sqlite3_stmt *s = st_fq_prep(st, FQ_RO_INSERT, &rc, err, "creating rollout", "ttitdiittiii",
                                 r->fleet, r->model, r->version, stage, r->canary_share,
                                 r->health_window_s, r->started_ns, r->envelope_sha256,
                                 r->bundle_sha256, (int64_t)(r->rollback ? 1 : 0),
                                 r->expires_at, r->expires_s);
    if (s)
        rc = st_sq_run_done(st, s, err, "creating rollout");
    int64_t new_id = rc == 0 ? sqlite3_last_insert_rowid(st->db) : 0;
    for (size_t i = 0; rc == 0 && i < n_canaries; i++) {
        sqlite3_stmt *c = st_fq_prep(st, FQ_RO_CANARY_ADD, &rc, err, "naming canaries", "it",
                                     new_id, canaries[i]);
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
    int rc = st_fq_run_changes(st, s, &changes, err, "moving rollout");
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
    int rc = st_fq_run_changes(st, s, &changes, err, "re-signing rollout");
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
    return st_fq_device_rows(st, s, cb, ud, err, "reading canaries");
}

int st_rollout_has_blob(st_state_t *st, const char *fleet, const char *sha256, int *yes,
                        kiln_err_t *err)
{
    if (!st || !fleet || !sha256 || !yes)
        return kiln_err_set(err, KILN_EINVAL, "rollout has blob: NULL argument");
    PREP(s, FQ_RO_HAS_BLOB, "reading rollouts", "tt", fleet, sha256);
    return has_row(st, s, yes, err, "reading rollouts");
}
