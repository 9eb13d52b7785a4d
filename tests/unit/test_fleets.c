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
    st_device_report_t r = {model, v, health, 100, 200, "{\"rms\":{\"mean\":1}}"};
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
    st_device_report_t bad = {"bearing", 3, "fine", 0, 0, NULL};
    assert_int_equal(st_device_report(st, d[0].id, &bad, NOW, &err), KILN_EINVAL);
    ks_fleet_ids_free(ids, n);
    for (int i = 0; i < 4; i++)
        st_device_free(&d[i]);
    st_state_close(&st);
    cleanup();
}

/* Stores of schema versions 1 to 7 open as version 8 with the fleet tables
 * and the publication counter. */
static void test_upgrade(void **state)
{
    (void)state;
    static const char *const seq_drop = "DROP TABLE fleet_seq;";
    static const char *const fleet_drop =
        "DROP TABLE rollout_canaries; DROP TABLE rollouts; DROP TABLE enroll_tokens;"
        "DROP TABLE devices; DROP TABLE fleets;";
    static const char *const downgrade[] = {
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
        if (sqlite3_exec(raw, seq_drop, NULL, NULL, &msg) != SQLITE_OK ||
            (k > 0 && sqlite3_exec(raw, fleet_drop, NULL, NULL, &msg) != SQLITE_OK) ||
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
        assert_int_equal(sqlite3_column_int(s, 0), 8);
        sqlite3_finalize(s);
        sqlite3_close(raw);
        cleanup();
    }
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
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
