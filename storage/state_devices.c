/* state_devices.c - enrolled devices in the state store (fleets.h):
 * enrollment with a one-time token, the signed calls' replay bookkeeping
 * (st_device_seen) and the devices' reports. */
#include "storage/state_fleets_int.h"

#include <string.h>

#include <sodium.h>

#include "core/kiln_alloc.h"

static void device_from_row(sqlite3_stmt *s, st_device_t *d)
{
    memset(d, 0, sizeof *d);
    st_fq_copy_text(d->id, sizeof d->id, sqlite3_column_text(s, 0));
    st_fq_copy_text(d->fleet, sizeof d->fleet, sqlite3_column_text(s, 1));
    st_fq_copy_text(d->name, sizeof d->name, sqlite3_column_text(s, 2));
    d->enrolled_ns = sqlite3_column_int64(s, 3);
    d->revoked = sqlite3_column_int(s, 4);
    d->revoked_ns = sqlite3_column_int64(s, 5);
    if (sqlite3_column_bytes(s, 6) == ST_DEVICE_PK_BYTES)
        memcpy(d->pubkey, sqlite3_column_blob(s, 6), ST_DEVICE_PK_BYTES);
    d->last_time_ms = sqlite3_column_int64(s, 7);
    st_fq_copy_text(d->model, sizeof d->model, sqlite3_column_text(s, 8));
    d->model_version = sqlite3_column_int64(s, 9);
    st_fq_copy_text(d->health, sizeof d->health, sqlite3_column_text(s, 10));
    d->latency_p50_us = sqlite3_column_double(s, 11);
    d->latency_p99_us = sqlite3_column_double(s, 12);
    const unsigned char *fj = sqlite3_column_text(s, 13);
    d->features_json = fj ? (const char *)fj : "";
    d->last_seen_ns = sqlite3_column_int64(s, 14);
    d->report_ns = sqlite3_column_int64(s, 15);
    st_fq_copy_text(d->message, sizeof d->message, sqlite3_column_text(s, 16));
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
    if (name && name[0] && (rc = st_fq_check_name(name, "name", err)) < 0)
        return rc;
    if (strlen(token) != ST_TOKEN_HEX)
        return kiln_err_at(err, KILN_ENOTFOUND, "token", "unknown enrollment token");
    if ((rc = st_fq_sodium_ready(err)) < 0)
        return rc;
    char hash[65], fleet[ST_NAME_MAX] = "";
    st_fq_token_hash(token, hash);
    int64_t expires = 0, used = 0;
    {
        PREP(s, FQ_TOKEN_GET, "reading token", "t", hash);
        rc = sqlite3_step(s);
        if (rc == SQLITE_ROW) {
            st_fq_copy_text(fleet, sizeof fleet, sqlite3_column_text(s, 0));
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
        sqlite3_stmt *s = st_fq_prep(st, FQ_TOKEN_USE, &rc, err, "using token", "tit", hash,
                                     now_ns, id);
        if (s)
            rc = st_fq_run_changes(st, s, &changes, err, "using token");
    }
    if (rc == 0 && changes != 1)
        rc = kiln_err_at(err, KILN_ESTATE, "token", "this enrollment token was used already");
    if (rc == 0) {
        sqlite3_stmt *s = st_fq_prep(st, FQ_DEV_INSERT, &rc, err, "enrolling device", "tttib",
                                     id, fleet, name ? name : "", now_ns, pk,
                                     ST_DEVICE_PK_BYTES);
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

int st_fq_device_rows(st_state_t *st, sqlite3_stmt *s, st_device_cb cb, void *ud,
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
    return st_fq_device_rows(st, s, cb, ud, err, "listing devices");
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
    int rc = st_fq_run_changes(st, s, &changes, err, "recording device call");
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
    if (r->model && r->model[0] && (rc = st_fq_check_name(r->model, "model", err)) < 0)
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
    if ((rc = st_fq_run_changes(st, s, &changes, err, "recording report")) == 0 && changes == 0)
        rc = kiln_err_at(err, KILN_ENOTFOUND, "device", "device \"%s\" not found", id);
    return rc;
}
