/* test_fleets.c - fleets, devices, enrollment tokens and rollouts in the
 * state store (storage/fleets.h), the request signature (cluster/edge_sig.h)
 * and kilnd's check of a device's call and rollout steps (scheduler/fleet.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <sqlite3.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cluster/edge_sig.h"
#include "scheduler/fleet.h"
#include "storage/artifacts.h"
#include "storage/bundle.h"
#include "storage/fleets.h"

#define SEC 1000000000LL
#define NOW (1700000000LL * SEC)

static char dir[256];

static st_state_t *open_fresh(char path[512])
{
    snprintf(dir, sizeof dir, "%s/kiln-fleets-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR")
                                                                          : "/tmp");
    assert_non_null(mkdtemp(dir));
    snprintf(path, 512, "%s/state.db", dir);
    st_state_t *st = NULL;
    kiln_err_t err;
    assert_int_equal(st_state_open(path, &st, &err), 0);
    return st;
}

static void cleanup(void)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

static void enroll(st_state_t *st, const char *fleet, unsigned char pk[32], unsigned char sk[64],
                   st_device_t *d)
{
    kiln_err_t err;
    char token[ST_TOKEN_HEX + 1];
    crypto_sign_keypair(pk, sk);
    assert_int_equal(st_fleet_token_create(st, fleet, 60, NOW, token, NULL, &err), 0);
    assert_int_equal(st_device_enroll(st, token, pk, "press-1", NOW, d, &err), 0);
}

static void test_fleets_and_tokens(void **state)
{
    (void)state;
    char path[512];
    st_state_t *st = open_fresh(path);
    kiln_err_t err;
    assert_int_equal(st_fleet_create(st, "plant-7", 1, 0.25, 60, NOW, &err), 0);
    assert_int_equal(st_fleet_create(st, "plant-7", 0, 0.25, 60, NOW, &err), KILN_EEXIST);
    assert_int_equal(st_fleet_create(st, "bad name", 0, 0.25, 60, NOW, &err), KILN_EINVAL);
    assert_int_equal(st_fleet_create(st, "x", 0, 0, 60, NOW, &err), KILN_EINVAL);
    assert_int_equal(st_fleet_create(st, "x", 0, 1.5, 60, NOW, &err), KILN_EINVAL);
    assert_int_equal(st_fleet_create(st, "plain", 0, 1, 0, NOW, &err), 0);

    /* the key file: storage/bundle.h's format, 0600, only for the encrypted fleet */
    unsigned char key[ST_FLEET_KEY_BYTES];
    char kp[1200];
    struct stat sb;
    assert_int_equal(st_fleet_key(st, "plant-7", key, &err), 0);
    assert_int_equal(st_fleet_key_path(st, "plant-7", kp, sizeof kp), 0);
    assert_int_equal(stat(kp, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    st_bundle_fleetkey_t fk;
    assert_int_equal(st_bundle_load_fleetkey(kp, &fk, &err), 0);
    assert_memory_equal(fk.key, key, ST_FLEET_KEY_BYTES);
    assert_int_equal(st_fleet_key(st, "plain", key, &err), KILN_ENOTFOUND);

    /* a token: one use, hashed at rest, expires */
    char token[ST_TOKEN_HEX + 1];
    int64_t exp;
    assert_int_equal(st_fleet_token_create(st, "plant-7", 60, NOW, token, &exp, &err), 0);
    assert_int_equal(strlen(token), 64);
    assert_true(exp == NOW + 60 * SEC);
    assert_int_equal(st_fleet_token_create(st, "nope", 60, NOW, token, &exp, &err),
                     KILN_ENOTFOUND);
    assert_int_equal(st_fleet_token_create(st, "plant-7", 0, NOW, token, &exp, &err),
                     KILN_EINVAL);
    assert_int_equal(st_fleet_token_create(st, "plant-7", 60, NOW, token, &exp, &err), 0);
    unsigned char pk[32], sk[64];
    crypto_sign_keypair(pk, sk);
    st_device_t d;
    assert_int_equal(st_device_enroll(st, token, pk, "press-1", NOW, &d, &err), 0);
    assert_int_equal(strncmp(d.id, "dev-", 4), 0);
    assert_string_equal(d.fleet, "plant-7");
    assert_memory_equal(d.pubkey, pk, 32);
    st_device_free(&d);
    assert_int_equal(st_device_enroll(st, token, pk, "press-2", NOW, &d, &err), KILN_ESTATE);
    assert_non_null(strstr(err.msg, "used already"));
    /* the plain token is not in the database, only its hash */
    sqlite3 *raw;
    assert_int_equal(sqlite3_open(path, &raw), SQLITE_OK);
    sqlite3_stmt *s;
    assert_int_equal(sqlite3_prepare_v2(raw, "SELECT count(*) FROM enroll_tokens WHERE "
                                             "token_sha256 = ?1", -1, &s, NULL), SQLITE_OK);
    sqlite3_bind_text(s, 1, token, -1, SQLITE_STATIC);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(s, 0), 0);
    sqlite3_finalize(s);
    sqlite3_close(raw);
    /* expired, unknown */
    assert_int_equal(st_fleet_token_create(st, "plant-7", 60, NOW, token, &exp, &err), 0);
    assert_int_equal(st_device_enroll(st, token, pk, NULL, NOW + 61 * SEC, &d, &err),
                     KILN_ESTATE);
    assert_non_null(strstr(err.msg, "expired"));
    token[0] = token[0] == 'a' ? 'b' : 'a';
    assert_int_equal(st_device_enroll(st, token, pk, NULL, NOW, &d, &err), KILN_ENOTFOUND);
    assert_int_equal(st_device_enroll(st, "short", pk, NULL, NOW, &d, &err), KILN_ENOTFOUND);

    /* a fleet with enrolled devices cannot go; the plain one can */
    assert_int_equal(st_fleet_delete(st, "plant-7", &err), KILN_ESTATE);
    assert_int_equal(st_fleet_delete(st, "plain", &err), 0);
    assert_int_equal(st_fleet_get(st, "plain", NULL, &err), KILN_EINVAL);
    st_fleet_t f;
    assert_int_equal(st_fleet_get(st, "plain", &f, &err), KILN_ENOTFOUND);
    assert_int_equal(st_fleet_update(st, "plant-7", 0.5, -1, &err), 0);
    assert_int_equal(st_fleet_get(st, "plant-7", &f, &err), 0);
    assert_true(f.canary_share == 0.5 && f.health_window_s == 60 && f.n_devices == 1);
    st_state_close(&st);
    cleanup();
}

static void test_signed_calls(void **state)
{
    (void)state;
    char path[512];
    st_state_t *st = open_fresh(path);
    kiln_err_t err;
    assert_int_equal(st_fleet_create(st, "f", 0, 0.5, 0, NOW, &err), 0);
    unsigned char pk[32], sk[64], pk2[32], sk2[64];
    st_device_t d, got;
    enroll(st, "f", pk, sk, &d);
    crypto_sign_keypair(pk2, sk2);
    const char *body = "{\"health\":\"ok\"}";
    int64_t t = NOW / 1000000;
    char sig[KC_EDGE_SIG_B64_MAX], ts[32], other[KC_EDGE_SIG_B64_MAX];
    snprintf(ts, sizeof ts, "%lld", (long long)t);
    assert_int_equal(kc_edge_sign(sk, "POST", "/edge/v1/report", t, body, strlen(body), sig,
                                  &err), 0);
    ks_edge_creds_t c = {d.id, ts, sig};
    int status = 0;

    /* good */
    assert_int_equal(ks_edge_auth(st, &c, "POST", "/edge/v1/report", body, strlen(body), NOW,
                                  &got, &status, &err), 0);
    assert_int_equal(status, 200);
    st_device_free(&got);
    /* the very same request again: a replay */
    assert_int_equal(ks_edge_auth(st, &c, "POST", "/edge/v1/report", body, strlen(body), NOW,
                                  &got, &status, &err), KILN_ESTALE);
    assert_int_equal(status, 401);
    assert_non_null(strstr(err.msg, "replayed"));

    /* bad signatures: another key, another body, another path, garbage */
    t += 1;
    snprintf(ts, sizeof ts, "%lld", (long long)t);
    assert_int_equal(kc_edge_sign(sk2, "POST", "/edge/v1/report", t, body, strlen(body), other,
                                  &err), 0);
    c.sig = other;
    assert_int_equal(ks_edge_auth(st, &c, "POST", "/edge/v1/report", body, strlen(body), NOW,
                                  &got, &status, &err), KILN_EINVAL);
    assert_int_equal(status, 401);
    assert_int_equal(kc_edge_sign(sk, "POST", "/edge/v1/report", t, body, strlen(body), sig,
                                  &err), 0);
    c.sig = sig;
    assert_int_equal(ks_edge_auth(st, &c, "POST", "/edge/v1/report", "{}", 2, NOW, &got,
                                  &status, &err), KILN_EINVAL);
    assert_int_equal(ks_edge_auth(st, &c, "POST", "/edge/v1/manifest", body, strlen(body), NOW,
                                  &got, &status, &err), KILN_EINVAL);
    c.sig = "not base64!";
    assert_int_equal(ks_edge_auth(st, &c, "POST", "/edge/v1/report", body, strlen(body), NOW,
                                  &got, &status, &err), KILN_EINVAL);
    /* missing headers, unknown device, bad time */
    c = (ks_edge_creds_t){d.id, ts, NULL};
    assert_int_equal(ks_edge_auth(st, &c, "POST", "/edge/v1/report", body, strlen(body), NOW,
                                  &got, &status, &err), KILN_EINVAL);
    c = (ks_edge_creds_t){"dev-nope", ts, sig};
    assert_int_equal(ks_edge_auth(st, &c, "POST", "/edge/v1/report", body, strlen(body), NOW,
                                  &got, &status, &err), KILN_ENOTFOUND);
    assert_int_equal(status, 401);
    c = (ks_edge_creds_t){d.id, "12x", sig};
    assert_int_equal(ks_edge_auth(st, &c, "POST", "/edge/v1/report", body, strlen(body), NOW,
                                  &got, &status, &err), KILN_EINVAL);
    /* the failures above did not consume t: it still works */
    c = (ks_edge_creds_t){d.id, ts, sig};
    assert_int_equal(ks_edge_auth(st, &c, "POST", "/edge/v1/report", body, strlen(body), NOW,
                                  &got, &status, &err), 0);
    st_device_free(&got);

    /* stale: a correct signature 301 s off either way */
    for (int sign = -1; sign <= 1; sign += 2) {
        int64_t st_t = t + 10 + sign * 301000;
        snprintf(ts, sizeof ts, "%lld", (long long)st_t);
        assert_int_equal(kc_edge_sign(sk, "GET", "/edge/v1/manifest", st_t, NULL, 0, sig, &err),
                         0);
        c = (ks_edge_creds_t){d.id, ts, sig};
        assert_int_equal(ks_edge_auth(st, &c, "GET", "/edge/v1/manifest", NULL, 0, NOW, &got,
                                      &status, &err), KILN_ESTALE);
        assert_int_equal(status, 401);
        assert_non_null(strstr(err.msg, "clock"));
    }

    /* revoked: refused with 403 and a message that says so */
    assert_int_equal(st_device_revoke(st, d.id, NOW, &err), 0);
    assert_int_equal(st_device_revoke(st, d.id, NOW, &err), KILN_ESTATE);
    t += 5;
    snprintf(ts, sizeof ts, "%lld", (long long)t);
    assert_int_equal(kc_edge_sign(sk, "GET", "/edge/v1/manifest", t, NULL, 0, sig, &err), 0);
    c = (ks_edge_creds_t){d.id, ts, sig};
    assert_int_equal(ks_edge_auth(st, &c, "GET", "/edge/v1/manifest", NULL, 0, NOW, &got,
                                  &status, &err), KILN_ESTATE);
    assert_int_equal(status, 403);
    assert_non_null(strstr(err.msg, "revoked"));
    st_device_free(&d);
    st_state_close(&st);
    cleanup();
}

static void report(st_state_t *st, const char *id, const char *model, int64_t v,
                   const char *health)
{
    kiln_err_t err;
    st_device_report_t r = {model, v, health, 100, 200, "{\"rms\":{\"mean\":1}}", NULL};
    assert_int_equal(st_device_report(st, id, &r, NOW, &err), 0);
}

static void test_rollout_machine(void **state)
{
    (void)state;
    char path[512];
    st_state_t *st = open_fresh(path);
    kiln_err_t err;
    assert_int_equal(st_fleet_create(st, "f", 0, 0.5, 10, NOW, &err), 0);
    unsigned char pk[32], sk[64];
    st_device_t d[4];
    for (int i = 0; i < 4; i++)
        enroll(st, "f", pk, sk, &d[i]);
    char **ids;
    size_t n;
    assert_int_equal(ks_fleet_pick_canaries(st, "f", 0.5, &ids, &n, &err), 0);
    assert_int_equal(n, 2);
    char hex[65];
    memset(hex, 'a', 64);
    hex[64] = 0;
    st_rollout_t r = {.model = "bearing", .version = 2, .stage = ST_ROLLOUT_CANARY,
                      .canary_share = 0.5, .health_window_s = 10, .started_ns = NOW};
    snprintf(r.fleet, sizeof r.fleet, "f");
    memcpy(r.envelope_sha256, hex, 65);
    memcpy(r.bundle_sha256, hex, 65);
    r.bundle_sha256[0] = 'b';
    int64_t id;
    assert_int_equal(st_rollout_create(st, &r, (const char *const *)ids, n, &id, &err), 0);
    int yes = 0;
    assert_int_equal(st_rollout_is_canary(st, id, ids[0], &yes, &err), 0);
    assert_true(yes);
    assert_int_equal(st_rollout_has_blob(st, "f", r.bundle_sha256, &yes, &err), 0);
    assert_true(yes);
    assert_int_equal(st_rollout_has_blob(st, "g", r.bundle_sha256, &yes, &err), 0);
    assert_false(yes);

    /* canaries healthy on it: the window starts, and after it, full */
    report(st, ids[0], "bearing", 2, "ok");
    ks_fleet_tick(st, NOW);
    assert_int_equal(st_rollout_get(st, id, &r, &err), 0);
    assert_int_equal(r.stage, ST_ROLLOUT_CANARY);
    assert_true(r.healthy_since_ns == 0);
    report(st, ids[1], "bearing", 2, "ok");
    ks_fleet_tick(st, NOW + SEC);
    assert_int_equal(st_rollout_get(st, id, &r, &err), 0);
    assert_true(r.healthy_since_ns == NOW + SEC);
    ks_fleet_tick(st, NOW + 5 * SEC);
    assert_int_equal(st_rollout_get(st, id, &r, &err), 0);
    assert_int_equal(r.stage, ST_ROLLOUT_CANARY);
    ks_fleet_tick(st, NOW + 11 * SEC);
    assert_int_equal(st_rollout_get(st, id, &r, &err), 0);
    assert_int_equal(r.stage, ST_ROLLOUT_FULL);
    assert_int_equal(st_rollout_last_good(st, "f", 0, &r, &err), 0);
    assert_int_equal(r.id, id);
    /* every device on it: done */
    for (int i = 0; i < 4; i++)
        report(st, d[i].id, "bearing", 2, "ok");
    ks_fleet_tick(st, NOW + 12 * SEC);
    assert_int_equal(st_rollout_get(st, id, &r, &err), 0);
    assert_int_equal(r.stage, ST_ROLLOUT_DONE);

    /* version 3: one canary unhealthy halts it, naming the device */
    st_rollout_t r3 = r;
    r3.version = 3;
    r3.stage = ST_ROLLOUT_CANARY;
    int64_t id3;
    assert_int_equal(st_rollout_create(st, &r3, (const char *const *)ids, 1, &id3, &err), 0);
    report(st, ids[0], "bearing", 3, "unhealthy");
    ks_fleet_tick(st, NOW + 20 * SEC);
    assert_int_equal(st_rollout_get(st, id3, &r3, &err), 0);
    assert_int_equal(r3.stage, ST_ROLLOUT_HALTED);
    assert_non_null(strstr(r3.reason, ids[0]));
    /* what the rest of the fleet runs: the last that went full */
    assert_int_equal(st_rollout_last_good(st, "f", id3, &r, &err), 0);
    assert_int_equal(r.version, 2);
    assert_int_equal(st_rollout_current(st, "f", &r, &err), 0);
    assert_int_equal(r.id, id3);

    /* a report with a bad health name */
    st_device_report_t bad = {"bearing", 3, "fine", 0, 0, NULL, NULL};
    assert_int_equal(st_device_report(st, d[0].id, &bad, NOW, &err), KILN_EINVAL);
    /* the message is kept, and one too long is refused */
    st_device_report_t said = {"bearing", 2, "rolled_back", 0, 0, NULL,
                               "v3 failed its self-test: rolled back to v2"};
    assert_int_equal(st_device_report(st, d[0].id, &said, NOW, &err), 0);
    st_device_t got;
    assert_int_equal(st_device_get(st, d[0].id, &got, &err), 0);
    assert_string_equal(got.message, said.message);
    assert_string_equal(got.health, "rolled_back");
    st_device_free(&got);
    char longmsg[ST_MESSAGE_MAX + 1];
    memset(longmsg, 'x', ST_MESSAGE_MAX);
    longmsg[ST_MESSAGE_MAX] = 0;
    said.message = longmsg;
    assert_int_equal(st_device_report(st, d[0].id, &said, NOW, &err), KILN_EINVAL);
    assert_non_null(strstr(err.msg, "message"));
    ks_fleet_ids_free(ids, n);
    for (int i = 0; i < 4; i++)
        st_device_free(&d[i]);
    st_state_close(&st);
    cleanup();
}

/* Stores of schema versions 1 to 9 open as version 10 with the fleet tables
 * and the publication counter. */
static void test_upgrade(void **state)
{
    (void)state;
    static const char *const msg_drop = "ALTER TABLE devices DROP COLUMN message;"
                                        "ALTER TABLE rollouts DROP COLUMN expires_at;"
                                        "ALTER TABLE rollouts DROP COLUMN expires_s;";
    static const char *const seq_drop = "DROP TABLE fleet_seq;";
    static const char *const fleet_drop =
        "DROP TABLE rollout_canaries; DROP TABLE rollouts; DROP TABLE enroll_tokens;"
        "DROP TABLE devices; DROP TABLE fleets;";
    static const char *const downgrade[] = {
        "ALTER TABLE rollouts DROP COLUMN expires_at; ALTER TABLE rollouts DROP COLUMN expires_s;"
        "PRAGMA user_version = 9;",
        "PRAGMA user_version = 8;",
        "PRAGMA user_version = 7;",
        "PRAGMA user_version = 6;",
        "DROP TABLE drift_results; ALTER TABLE runs DROP COLUMN input_path;"
        "PRAGMA user_version = 5;",
        "DROP TABLE drift_results; ALTER TABLE runs DROP COLUMN input_path;"
        "DROP TABLE step_cache; PRAGMA user_version = 4;",
        "DROP TABLE drift_results; ALTER TABLE runs DROP COLUMN input_path;"
        "DROP TABLE step_cache; DROP INDEX jobs_scheduled; DROP TABLE schedules;"
        "ALTER TABLE jobs DROP COLUMN scheduled_by; ALTER TABLE jobs DROP COLUMN scheduled_for_ns;"
        "PRAGMA user_version = 3;",
        "DROP TABLE drift_results; ALTER TABLE runs DROP COLUMN input_path;"
        "DROP TABLE step_cache; DROP INDEX jobs_scheduled; DROP TABLE schedules;"
        "ALTER TABLE jobs DROP COLUMN scheduled_by; ALTER TABLE jobs DROP COLUMN scheduled_for_ns;"
        "DROP TABLE alias_history; DROP TABLE aliases; DROP TABLE models; DROP TABLE runs;"
        "PRAGMA user_version = 2;",
        "DROP TABLE drift_results; ALTER TABLE runs DROP COLUMN input_path;"
        "DROP TABLE step_cache; DROP INDEX jobs_scheduled; DROP TABLE schedules;"
        "ALTER TABLE jobs DROP COLUMN scheduled_by; ALTER TABLE jobs DROP COLUMN scheduled_for_ns;"
        "DROP INDEX jobs_array; ALTER TABLE jobs DROP COLUMN array_parent;"
        "ALTER TABLE jobs DROP COLUMN array_index; DROP TABLE alias_history; DROP TABLE aliases;"
        "DROP TABLE models; DROP TABLE runs; PRAGMA user_version = 1;",
    };
    for (size_t k = 0; k < sizeof downgrade / sizeof downgrade[0]; k++) {
        char path[512];
        st_state_t *st = open_fresh(path);
        st_state_close(&st);
        sqlite3 *raw;
        assert_int_equal(sqlite3_open(path, &raw), SQLITE_OK);
        char *msg = NULL;
        if ((k > 0 && sqlite3_exec(raw, msg_drop, NULL, NULL, &msg) != SQLITE_OK) ||
            (k > 1 && sqlite3_exec(raw, seq_drop, NULL, NULL, &msg) != SQLITE_OK) ||
            (k > 2 && sqlite3_exec(raw, fleet_drop, NULL, NULL, &msg) != SQLITE_OK) ||
            sqlite3_exec(raw, downgrade[k], NULL, NULL, &msg) != SQLITE_OK)
            fail_msg("downgrade %zu: %s", k, msg);
        sqlite3_close(raw);
        kiln_err_t err;
        assert_int_equal(st_state_open(path, &st, &err), 0);
        assert_int_equal(st_fleet_create(st, "f", 0, 1, 0, NOW, &err), 0);
        unsigned char pk[32], sk[64];
        st_device_t d;
        enroll(st, "f", pk, sk, &d);
        st_device_free(&d);
        uint64_t seq = 0;
        assert_int_equal(st_fleet_next_seq(st, "f", &seq, &err), 0);
        assert_int_equal(seq, 1);
        st_state_close(&st);
        assert_int_equal(sqlite3_open(path, &raw), SQLITE_OK);
        sqlite3_stmt *s;
        assert_int_equal(sqlite3_prepare_v2(raw, "PRAGMA user_version", -1, &s, NULL), SQLITE_OK);
        assert_int_equal(sqlite3_step(s), SQLITE_ROW);
        assert_int_equal(sqlite3_column_int(s, 0), 10);
        sqlite3_finalize(s);
        sqlite3_close(raw);
        cleanup();
    }
}


/* A registry run of name (and a version when accepted) whose artifact is a
 * .kmodel header, which is all publish reads of it. */
static void add_model(st_state_t *st, const char *name, int accepted, int with_spec)
{
    char hdr[512], root[600], hex[65];
    snprintf(hdr, sizeof hdr,
             "{\"kind\":\"logreg\",\"feature_names\":[\"a.rms\"],\"metrics\":{\"accuracy\":0.9},"
             "\"dataset_sha256\":\"d\",\"featspec_sha256\":\"f\",\"seed\":%d,\"feature_spec\":%s}",
             rand(), with_spec ? "{\"sample_rate_hz\":1000}" : "null");
    size_t hl = strlen(hdr), len = 12 + hl + 64;
    unsigned char *bytes = calloc(1, len);
    assert_non_null(bytes);
    memcpy(bytes, "KILNMDL1", 8);
    for (int i = 0; i < 4; i++)
        bytes[8 + i] = (unsigned char)(hl >> (8 * i));
    memcpy(bytes + 12, hdr, hl);
    kiln_err_t err;
    snprintf(root, sizeof root, "%s/artifacts", dir);
    assert_int_equal(st_artifact_put(root, bytes, len, hex, &err), 0);
    free(bytes);
    st_run_t r = {0};
    r.model_name = (char *)name;
    r.kind = "logreg";
    r.params_json = "{}";
    r.dataset_sha256 = "d";
    r.featspec_sha256 = "f";
    r.code_version = "test";
    r.metrics_json = "{\"accuracy\":0.9}";
    r.accepted = accepted;
    r.artifact_sha256 = hex;
    int64_t id, version;
    assert_int_equal(st_registry_run_insert(st, &r, &id, &err), 0);
    if (accepted)
        assert_int_equal(st_registry_model_add(st, name, id, hex, NOW, &version, &err), 0);
}

/* The envelope of a rollout, checked as a device of fleet f running
 * model@version that saw last_seq, with the publisher key in dir. */
static int check_envelope(const st_rollout_t *r, const char *model, uint64_t version,
                          uint64_t last_seq, st_bundle_envelope_t *env, st_bundle_reason_t *why)
{
    char root[600], pkp[600];
    snprintf(root, sizeof root, "%s/artifacts", dir);
    snprintf(pkp, sizeof pkp, "%s/" KS_PUBLISHER_PK, dir);
    kiln_err_t err;
    st_bundle_pubkey_t pk;
    assert_int_equal(st_bundle_load_pubkey(pkp, &pk, &err), 0);
    void *bytes = NULL;
    size_t len = 0;
    assert_int_equal(st_artifact_get(root, r->envelope_sha256, ST_BUNDLE_ENVELOPE_MAX, &bytes,
                                     &len, &err), 0);
    st_bundle_device_t dev = {r->fleet, model, version, last_seq, NOW / SEC};
    int rc = st_bundle_verify_envelope(bytes, len, &pk, &dev, env, why, &err);
    free(bytes);
    return rc;
}

/* The publication counter: 1, 2, ... per fleet, kept across a delete. */
static void test_seq(void **state)
{
    (void)state;
    char path[512];
    st_state_t *st = open_fresh(path);
    kiln_err_t err;
    uint64_t seq = 0;
    assert_int_equal(st_fleet_next_seq(st, "nope", &seq, &err), KILN_ENOTFOUND);
    assert_int_equal(st_fleet_create(st, "a", 0, 1, 0, NOW, &err), 0);
    assert_int_equal(st_fleet_create(st, "b", 0, 1, 0, NOW, &err), 0);
    for (uint64_t want = 1; want <= 3; want++) {
        assert_int_equal(st_fleet_next_seq(st, "a", &seq, &err), 0);
        assert_int_equal(seq, want);
    }
    assert_int_equal(st_fleet_next_seq(st, "b", &seq, &err), 0);
    assert_int_equal(seq, 1);
    assert_int_equal(st_fleet_delete(st, "a", &err), 0);
    assert_int_equal(st_fleet_create(st, "a", 0, 1, 0, NOW, &err), 0);
    assert_int_equal(st_fleet_next_seq(st, "a", &seq, &err), 0);
    assert_int_equal(seq, 4);
    st_state_close(&st);
    /* and across a reopen */
    assert_int_equal(st_state_open(path, &st, &err), 0);
    assert_int_equal(st_fleet_next_seq(st, "a", &seq, &err), 0);
    assert_int_equal(seq, 5);
    st_state_close(&st);
    cleanup();
}

/* The publisher key pair: made once (secret 0600), loaded after, never
 * rewritten; half a pair is refused. */
static void test_publisher_key(void **state)
{
    (void)state;
    char path[512], sk_path[600], pk_path[600];
    st_state_t *st = open_fresh(path);
    st_state_close(&st);
    snprintf(sk_path, sizeof sk_path, "%s/" KS_PUBLISHER_SK, dir);
    snprintf(pk_path, sizeof pk_path, "%s/" KS_PUBLISHER_PK, dir);
    kiln_err_t err;
    st_bundle_signkey_t a, b;
    assert_int_equal(ks_publisher_key(dir, &a, &err), 0);
    struct stat s1, s2, p1, p2;
    assert_int_equal(stat(sk_path, &s1), 0);
    assert_int_equal(stat(pk_path, &p1), 0);
    assert_int_equal(s1.st_mode & 0777, 0600);
    assert_int_equal(p1.st_mode & 022, 0);
    assert_int_equal(ks_publisher_key(dir, &b, &err), 0);
    assert_memory_equal(a.pk, b.pk, sizeof a.pk);
    assert_memory_equal(a.sk, b.sk, sizeof a.sk);
    assert_int_equal(stat(sk_path, &s2), 0);
    assert_int_equal(stat(pk_path, &p2), 0);
    assert_true(s1.st_ino == s2.st_ino && s1.st_mtime == s2.st_mtime && p1.st_ino == p2.st_ino);
    char text[256];
    assert_int_equal(ks_publisher_pubkey_text(dir, text, sizeof text, &err), 0);
    assert_int_equal(strncmp(text, "KILN-ED25519-PK1 ", 17), 0);
    /* a lost public half is not made again: the agents trust the old one */
    assert_int_equal(unlink(pk_path), 0);
    assert_int_equal(ks_publisher_key(dir, &b, &err), KILN_ESTATE);
    assert_non_null(strstr(err.msg, "missing"));
    assert_int_equal(access(pk_path, F_OK), -1);
    cleanup();
}

/* Publish: only validated models with a feature spec, a signed encrypted
 * bundle and a canary rollout; a version not above the fleet's refused;
 * rollback: the last good envelope re-signed as a rollback with a new seq. */
static void test_publish_rollback(void **state)
{
    (void)state;
    char path[512];
    st_state_t *st = open_fresh(path);
    kiln_err_t err;
    assert_int_equal(st_fleet_create(st, "f", 1, 0.5, 0, NOW, &err), 0);
    unsigned char pk[32], sk[64];
    st_device_t d[4];
    for (int i = 0; i < 4; i++)
        enroll(st, "f", pk, sk, &d[i]);
    add_model(st, "bearing", 1, 1);
    add_model(st, "bearing", 1, 1);
    add_model(st, "strict", 0, 1);
    add_model(st, "nospec", 1, 0);
    st_rollout_t r, rb;
    uint64_t seq = 0;
    ks_publish_t p = {"strict", "f", -1, -1, 0};
    assert_int_equal(ks_fleet_publish(st, dir, &p, NOW, &r, &seq, &err), KILN_ESTATE);
    assert_non_null(strstr(err.msg, "validation gate"));
    p.model_ref = "nospec@1";
    assert_int_equal(ks_fleet_publish(st, dir, &p, NOW, &r, &seq, &err), KILN_ESTATE);
    assert_non_null(strstr(err.msg, "feature spec"));
    p.model_ref = "nope@1";
    assert_int_equal(ks_fleet_publish(st, dir, &p, NOW, &r, &seq, &err), KILN_ENOTFOUND);
    assert_int_equal(ks_fleet_rollback(st, dir, "f", 0, NOW, &rb, &seq, &err), KILN_ESTATE);

    p.model_ref = "bearing@1";
    assert_int_equal(ks_fleet_publish(st, dir, &p, NOW, &r, &seq, &err), 0);
    assert_int_equal(seq, 1);
    assert_int_equal(r.stage, ST_ROLLOUT_CANARY);
    assert_int_equal(r.n_canaries, 2);
    assert_int_equal(r.version, 1);
    st_bundle_envelope_t env;
    st_bundle_reason_t why;
    assert_int_equal(check_envelope(&r, NULL, 0, 0, &env, &why), 0);
    assert_int_equal(env.seq, 1);
    assert_int_equal(env.rollback, 0);
    assert_int_equal(env.encrypted, 1);
    assert_int_equal(env.expires, NOW / SEC + KS_PUBLISH_EXPIRES_S_DEFAULT);
    /* the bundle opens with the fleet key, not without */
    char root[600], bpath[700], stage[700];
    snprintf(root, sizeof root, "%s/artifacts", dir);
    assert_int_equal(st_artifact_path(root, r.bundle_sha256, bpath, sizeof bpath), 0);
    st_bundle_fleetkey_t fk;
    assert_int_equal(st_fleet_key(st, "f", fk.key, &err), 0);
    snprintf(stage, sizeof stage, "%s/stage-nokey", dir);
    assert_int_not_equal(st_bundle_extract(&env, bpath, NULL, stage, &why, &err), 0);
    snprintf(stage, sizeof stage, "%s/stage", dir);
    assert_int_equal(st_bundle_extract(&env, bpath, &fk, stage, &why, &err), 0);
    st_bundle_envelope_free(&env);
    /* the same version again: agents would refuse it */
    assert_int_equal(ks_fleet_publish(st, dir, &p, NOW, &r, &seq, &err), KILN_ESTATE);
    /* v1 goes full; v2 is published (seq 2) and halts */
    assert_int_equal(st_rollout_set_stage(st, r.id, ST_ROLLOUT_FULL, "test", NOW, &err), 0);
    p.model_ref = "bearing@2";
    p.expires_s = 3600;
    st_rollout_t r2;
    assert_int_equal(ks_fleet_publish(st, dir, &p, NOW, &r2, &seq, &err), 0);
    assert_int_equal(seq, 2);
    assert_int_equal(check_envelope(&r2, "bearing", 1, 1, &env, &why), 0);
    assert_int_equal(env.expires, NOW / SEC + 3600);
    st_bundle_envelope_free(&env);
    assert_int_equal(st_rollout_set_stage(st, r2.id, ST_ROLLOUT_HALTED, "test", NOW, &err), 0);

    /* rollback: v1's bundle, a new envelope: rollback, seq 3, full */
    assert_int_equal(ks_fleet_rollback(st, dir, "f", 0, NOW, &rb, &seq, &err), 0);
    assert_int_equal(seq, 3);
    assert_int_equal(rb.stage, ST_ROLLOUT_FULL);
    assert_int_equal(rb.rollback, 1);
    assert_int_equal(rb.version, 1);
    assert_string_equal(rb.bundle_sha256, r.bundle_sha256);
    assert_string_not_equal(rb.envelope_sha256, r.envelope_sha256);
    assert_non_null(strstr(rb.reason, "rollback from bearing@2"));
    assert_int_equal(check_envelope(&rb, "bearing", 2, 2, &env, &why), 0);
    assert_int_equal(env.rollback, 1);
    assert_int_equal(env.seq, 3);
    assert_int_equal(env.version, 1);
    st_bundle_envelope_free(&env);
    /* the original v1 envelope is refused by a device on v2 (no rollback);
     * the rollback by one that saw seq 3 already */
    assert_int_not_equal(check_envelope(&r, "bearing", 2, 2, &env, &why), 0);
    assert_int_equal(why, ST_BUNDLE_R_OLDER);
    assert_int_not_equal(check_envelope(&rb, "bearing", 2, 3, &env, &why), 0);
    assert_int_equal(why, ST_BUNDLE_R_REPLAY);
    /* nothing before v1 went full: a second rollback is refused */
    assert_int_equal(ks_fleet_rollback(st, dir, "f", 0, NOW, &rb, &seq, &err), KILN_ESTATE);
    assert_non_null(strstr(err.msg, "nothing to roll back to"));
    for (int i = 0; i < 4; i++)
        st_device_free(&d[i]);
    st_state_close(&st);
    cleanup();
}

/* Served envelopes are re-signed at half their lifetime with the same seq
 * and bundle: the canary rollout and the last good one while in canary, the
 * rollback's with its rollback flag; a rollout without a recorded expiry at
 * the first pass. */
static void test_refresh(void **state)
{
    (void)state;
    char path[512];
    st_state_t *st = open_fresh(path);
    kiln_err_t err;
    assert_int_equal(st_fleet_create(st, "f", 1, 1, 0, NOW, &err), 0);
    add_model(st, "bearing", 1, 1);
    add_model(st, "bearing", 1, 1);
    st_rollout_t r1, r2, a, b;
    uint64_t seq = 0;
    ks_publish_t p = {"bearing@1", "f", -1, -1, 100};
    assert_int_equal(ks_fleet_publish(st, dir, &p, NOW, &r1, &seq, &err), 0);
    assert_int_equal(r1.expires_at, NOW / SEC + 100);
    assert_int_equal(r1.expires_s, 100);
    assert_int_equal(st_rollout_set_stage(st, r1.id, ST_ROLLOUT_FULL, "test", NOW, &err), 0);
    p.model_ref = "bearing@2";
    assert_int_equal(ks_fleet_publish(st, dir, &p, NOW, &r2, &seq, &err), 0);
    assert_int_equal(r2.stage, ST_ROLLOUT_CANARY);
    int n = -1;
    /* before half the lifetime: nothing */
    assert_int_equal(ks_fleet_refresh(st, dir, NOW + 49 * SEC, NULL, NULL, &n, &err), 0);
    assert_int_equal(n, 0);
    /* past it: both served envelopes, valid 100 s from now, same seq and bundle */
    assert_int_equal(ks_fleet_refresh(st, dir, NOW + 60 * SEC, NULL, NULL, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_int_equal(st_rollout_get(st, r1.id, &a, &err), 0);
    assert_int_equal(st_rollout_get(st, r2.id, &b, &err), 0);
    assert_string_not_equal(a.envelope_sha256, r1.envelope_sha256);
    assert_string_not_equal(b.envelope_sha256, r2.envelope_sha256);
    assert_string_equal(a.bundle_sha256, r1.bundle_sha256);
    assert_int_equal(a.expires_at, NOW / SEC + 160);
    assert_int_equal(b.expires_at, NOW / SEC + 160);
    st_bundle_envelope_t env;
    st_bundle_reason_t why;
    assert_int_equal(check_envelope(&b, "bearing", 1, 1, &env, &why), 0);
    assert_int_equal(env.seq, 2);
    assert_int_equal(env.version, 2);
    assert_int_equal(env.expires, NOW / SEC + 160);
    assert_int_equal(env.rollback, 0);
    st_bundle_envelope_free(&env);
    assert_int_equal(check_envelope(&a, NULL, 0, 0, &env, &why), 0);
    assert_int_equal(env.seq, 1);
    st_bundle_envelope_free(&env);
    /* a device that applied seq 2 takes nothing new from it */
    assert_int_not_equal(check_envelope(&b, "bearing", 2, 2, &env, &why), 0);
    assert_int_equal(why, ST_BUNDLE_R_SAME_VERSION);
    assert_int_equal(ks_fleet_refresh(st, dir, NOW + 61 * SEC, NULL, NULL, &n, &err), 0);
    assert_int_equal(n, 0);

    /* v2 halts; the rollback (full, current) is re-signed as a rollback */
    assert_int_equal(st_rollout_set_stage(st, r2.id, ST_ROLLOUT_HALTED, "test", NOW, &err), 0);
    st_rollout_t rb, c;
    assert_int_equal(ks_fleet_rollback(st, dir, "f", 100, NOW + 70 * SEC, &rb, &seq, &err), 0);
    assert_int_equal(ks_fleet_refresh(st, dir, NOW + 125 * SEC, NULL, NULL, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_int_equal(st_rollout_get(st, rb.id, &c, &err), 0);
    assert_int_equal(c.expires_at, NOW / SEC + 225);
    assert_int_equal(check_envelope(&c, "bearing", 2, 2, &env, &why), 0);
    assert_int_equal(env.rollback, 1);
    assert_int_equal(env.seq, seq);
    st_bundle_envelope_free(&env);
    /* no recorded expiry (a rollout from schema 8): re-signed at once */
    assert_int_equal(st_rollout_set_envelope(st, rb.id, c.envelope_sha256, 0, &err), 0);
    assert_int_equal(ks_fleet_refresh(st, dir, NOW + 126 * SEC, NULL, NULL, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_int_equal(st_rollout_get(st, rb.id, &c, &err), 0);
    assert_int_equal(c.expires_at, NOW / SEC + 126 + 100);
    /* a bad hash is refused */
    assert_int_equal(st_rollout_set_envelope(st, rb.id, "xyz", 1, &err), KILN_EINVAL);
    st_state_close(&st);
    cleanup();
}

/* Blobs of rollouts older than the newest `keep` (and the newest full one of
 * the two newest versions that went full) leave the artifact store; the rows
 * stay; a blob a kept rollout names too (a rollback's bundle) stays; the
 * rollbacks still work. */
static int blob_exists(const char *sha)
{
    char root[600], path[800];
    snprintf(root, sizeof root, "%s/artifacts", dir);
    assert_int_equal(st_artifact_path(root, sha, path, sizeof path), 0);
    return access(path, F_OK) == 0;
}

static void test_gc(void **state)
{
    (void)state;
    char path[512];
    st_state_t *st = open_fresh(path);
    kiln_err_t err;
    assert_int_equal(st_fleet_create(st, "f", 1, 1, 0, NOW, &err), 0);
    assert_int_equal(st_fleet_create(st, "g", 0, 1, 0, NOW, &err), 0);
    for (int v = 0; v < 5; v++)
        add_model(st, "bearing", 1, 1);
    st_rollout_t r[5], g1, rb;
    uint64_t seq = 0;
    char ref[32];
    for (int v = 0; v < 5; v++) {
        snprintf(ref, sizeof ref, "bearing@%d", v + 1);
        ks_publish_t p = {ref, "f", -1, -1, 0};
        assert_int_equal(ks_fleet_publish(st, dir, &p, NOW, &r[v], &seq, &err), 0);
        assert_int_equal(st_rollout_set_stage(st, r[v].id, v == 4 ? ST_ROLLOUT_CANARY
                                                                   : ST_ROLLOUT_FULL,
                                              "test", NOW, &err), 0);
    }
    ks_publish_t pg = {"bearing@1", "g", -1, -1, 0};
    assert_int_equal(ks_fleet_publish(st, dir, &pg, NOW, &g1, &seq, &err), 0);
    ks_gc_stats_t gc = {0, 0};
    assert_int_equal(ks_fleet_gc(st, dir, 0, &gc, &err), KILN_EINVAL);
    /* keep 2: v5 and v4 (newest), v4 and v3 (newest full): v1 and v2 go */
    assert_int_equal(ks_fleet_gc(st, dir, 2, &gc, &err), 0);
    assert_int_equal(gc.files, 4);
    assert_true(gc.bytes > 0);
    for (int v = 0; v < 5; v++) {
        assert_int_equal(blob_exists(r[v].bundle_sha256), v >= 2);
        assert_int_equal(blob_exists(r[v].envelope_sha256), v >= 2);
    }
    assert_true(blob_exists(g1.bundle_sha256));     /* another fleet's newest */
    st_rollout_t got;
    assert_int_equal(st_rollout_get(st, r[0].id, &got, &err), 0);  /* the row stays */
    /* a second pass finds nothing more */
    gc = (ks_gc_stats_t){0, 0};
    assert_int_equal(ks_fleet_gc(st, dir, 2, &gc, &err), 0);
    assert_int_equal(gc.files, 0);
    /* v5 halts; the rollback to v4 re-uses v4's bundle, kept as long as the
     * rollback is */
    assert_int_equal(st_rollout_set_stage(st, r[4].id, ST_ROLLOUT_HALTED, "test", NOW, &err), 0);
    assert_int_equal(ks_fleet_rollback(st, dir, "f", 0, NOW, &rb, &seq, &err), 0);
    assert_int_equal(rb.version, 4);
    assert_int_equal(ks_fleet_gc(st, dir, 1, &gc, &err), 0);
    assert_true(blob_exists(rb.bundle_sha256));
    assert_true(blob_exists(rb.envelope_sha256));
    assert_false(blob_exists(r[4].bundle_sha256));  /* the halted v5: neither newest nor full */
    /* v3 stays: the newest full one of the second version, where the next
     * rollback goes */
    assert_true(blob_exists(r[2].bundle_sha256));
    st_rollout_t rb2;
    assert_int_equal(ks_fleet_rollback(st, dir, "f", 0, NOW, &rb2, &seq, &err), 0);
    assert_int_equal(rb2.version, 3);
    st_state_close(&st);
    cleanup();
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fleets_and_tokens),
        cmocka_unit_test(test_signed_calls),
        cmocka_unit_test(test_rollout_machine),
        cmocka_unit_test(test_upgrade),
        cmocka_unit_test(test_seq),
        cmocka_unit_test(test_publisher_key),
        cmocka_unit_test(test_publish_rollback),
        cmocka_unit_test(test_refresh),
        cmocka_unit_test(test_gc),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
