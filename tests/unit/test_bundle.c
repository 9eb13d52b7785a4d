/* test_bundle.c - the signed, encrypted model bundle: a round trip, then
 * each attack an edge agent must refuse (issue 9), each with its own reason
 * and with nothing written to the staging directory or the running model.
 * The malicious tars are built here with libarchive and, where the attack
 * needs it, signed with the publisher's own key so that a later check is the
 * one that refuses them. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/kiln_alloc.h"
#include "oracle.h"
#include "storage/bundle.h"
#include "storage/bundle_int.h"
#include <sodium.h>

#define NOW     1700000000LL
#define FLEET   "line-3"
#define RUNNING "RUNNING MODEL v5"

static char dir[512];
static char sk_path[700], pk_path[700], other_sk_path[700], other_pk_path[700];
static char fk_path[700], fk2_path[700], model_path[700], running_path[700], staging[700];
static st_bundle_signkey_t sk, other_sk;
static st_bundle_pubkey_t pk;
static st_bundle_fleetkey_t fk, fk2;
static unsigned char *model_bytes;
static size_t model_len;
static const char *SPEC = "{\"features\":[\"rms\",\"kurtosis\"],\"window\":2048}";

static void path_in(char *buf, const char *name)
{
    snprintf(buf, 700, "%.500s/%.150s", dir, name);
}

static void write_bytes(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(p, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

static unsigned char *read_bytes(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    unsigned char *p = malloc(1 << 22);
    assert_non_null(p);
    *n = fread(p, 1, 1 << 22, f);
    fclose(f);
    return p;
}

static int group_setup(void **state)
{
    (void)state;
    oracle_tmp_path(dir, "bundle");
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s'", dir, dir);
    if (system(cmd) != 0)
        return -1;
    path_in(sk_path, "pub.sk");
    path_in(pk_path, "pub.pk");
    path_in(other_sk_path, "other.sk");
    path_in(other_pk_path, "other.pk");
    path_in(fk_path, "fleet.key");
    path_in(fk2_path, "fleet2.key");
    path_in(model_path, "m.kmodel");
    path_in(running_path, "running.kmodel");
    path_in(staging, "staging");
    kiln_err_t err;
    if (st_bundle_keygen_sign(sk_path, pk_path, &sk, &err) < 0 ||
        st_bundle_keygen_sign(other_sk_path, other_pk_path, &other_sk, &err) < 0 ||
        st_bundle_keygen_fleet(fk_path, &fk, &err) < 0 ||
        st_bundle_keygen_fleet(fk2_path, &fk2, &err) < 0 ||
        st_bundle_load_pubkey(pk_path, &pk, &err) < 0) {
        fprintf(stderr, "setup: %s\n", err.msg);
        return -1;
    }
    /* a .kmodel as far as the bundle looks: magic, u32 LE header length, JSON */
    const char *hdr = "{\"kind\":\"gbdt\",\"feature_names\":[\"a_rms\",\"a_kurtosis\"],"
                      "\"metrics\":{\"f1\":0.5},\"dataset_sha256\":\"d\",\"featspec_sha256\":\"f\"}";
    model_len = 12 + strlen(hdr) + 5000;
    model_bytes = malloc(model_len);
    memcpy(model_bytes, "KILNMDL1", 8);
    uint32_t hl = (uint32_t)strlen(hdr);
    for (int i = 0; i < 4; i++)
        model_bytes[8 + i] = (unsigned char)(hl >> (8 * i));
    memcpy(model_bytes + 12, hdr, hl);
    for (size_t i = 12 + hl; i < model_len; i++)
        model_bytes[i] = (unsigned char)(i * 131u);
    write_bytes(model_path, model_bytes, model_len);
    write_bytes(running_path, RUNNING, strlen(RUNNING));
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    free(model_bytes);
    st_bundle_key_wipe(&sk, sizeof sk);
    return system(cmd) == 0 ? 0 : -1;
}

static st_bundle_meta_t meta_v(uint64_t version, uint64_t seq)
{
    st_bundle_meta_t m = {
        .fleet = FLEET, .model_name = "bearing", .version = version, .model_id = "m-42",
        .created = NOW - 100, .seq = seq, .expires = NOW + 3600, .rollback = 0,
    };
    return m;
}

static st_bundle_device_t device(uint64_t version, uint64_t last_seq)
{
    st_bundle_device_t d = {.fleet = FLEET, .model_name = "bearing", .version = version,
                            .last_seq = last_seq, .now = NOW};
    return d;
}

static void publish(const st_bundle_meta_t *m, const st_bundle_fleetkey_t *key,
                    const st_bundle_signkey_t *with, const char *bundle, const char *env)
{
    kiln_err_t err;
    int rc = st_bundle_create(model_path, SPEC, m, key, with, bundle, env, &err);
    if (rc < 0)
        fail_msg("create: %s", err.msg);
}

/* The staging dir is absent and the running model is what it was. */
static void assert_untouched(void)
{
    assert_int_not_equal(access(staging, F_OK), 0);
    size_t n;
    unsigned char *p = read_bytes(running_path, &n);
    assert_int_equal(n, strlen(RUNNING));
    assert_memory_equal(p, RUNNING, n);
    free(p);
}

/* verify + extract; returns the reason (OK when it all passed). */
static st_bundle_reason_t attempt(const char *env_path, const char *bundle_path,
                                  const st_bundle_fleetkey_t *key, st_bundle_device_t dev,
                                  kiln_err_t *err)
{
    st_bundle_envelope_t env;
    st_bundle_reason_t why = ST_BUNDLE_R_OK;
    int rc = st_bundle_verify_envelope_file(env_path, &pk, &dev, &env, &why, err);
    if (rc == 0) {
        rc = st_bundle_extract(&env, bundle_path, key, staging, &why, err);
        st_bundle_envelope_free(&env);
    }
    if (rc < 0) {
        assert_int_not_equal(why, ST_BUNDLE_R_OK);
        assert_true(err->msg[0] != 0);
        assert_string_equal(err->where, st_bundle_reason_name(why));
        assert_untouched();
    } else {
        assert_int_equal(why, ST_BUNDLE_R_OK);
    }
    return why;
}

static void clear_staging(void)
{
    char cmd[800];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", staging);
    assert_int_equal(system(cmd), 0);
}

static void check_refused(const char *env_path, const char *bundle_path,
                          const st_bundle_fleetkey_t *key, st_bundle_device_t dev,
                          st_bundle_reason_t want, const char *msg_part)
{
    kiln_err_t err = {0};
    st_bundle_reason_t why = attempt(env_path, bundle_path, key, dev, &err);
    if (why != want)
        fail_msg("wanted %s, got %s: %s", st_bundle_reason_name(want),
                 st_bundle_reason_name(why), err.msg);
    if (msg_part && !strstr(err.msg, msg_part))
        fail_msg("message \"%s\" lacks \"%s\"", err.msg, msg_part);
}

static void check_file(const char *name, const void *want, size_t want_len)
{
    char p[800];
    snprintf(p, sizeof p, "%s/%s", staging, name);
    struct stat sb;
    assert_int_equal(lstat(p, &sb), 0);
    assert_true(S_ISREG(sb.st_mode));
    assert_int_equal(sb.st_mode & 07777, 0600);
    size_t n;
    unsigned char *got = read_bytes(p, &n);
    assert_int_equal(n, want_len);
    assert_memory_equal(got, want, n);
    free(got);
}

static void roundtrip(const st_bundle_fleetkey_t *key)
{
    char b[700], e[700];
    path_in(b, "rt.bundle");
    path_in(e, "rt.env");
    st_bundle_meta_t m = meta_v(6, 10);
    publish(&m, key, &sk, b, e);
    kiln_err_t err;
    st_bundle_envelope_t env;
    st_bundle_device_t dev = device(5, 9);
    st_bundle_reason_t why;
    assert_int_equal(st_bundle_verify_envelope_file(e, &pk, &dev, &env, &why, &err), 0);
    assert_int_equal(env.version, 6);
    assert_int_equal(env.seq, 10);
    assert_int_equal(env.encrypted, key != NULL);
    assert_string_equal(env.fleet, FLEET);
    assert_string_equal(env.model_name, "bearing");
    assert_string_equal(json_string_value(json_object_get(json_object_get(env.manifest, "lineage"),
                                                          "dataset_sha256")), "d");
    assert_int_equal(json_array_size(json_object_get(env.manifest, "input_schema")), 2);
    int rc = st_bundle_extract(&env, b, key, staging, &why, &err);
    if (rc < 0)
        fail_msg("extract: %s", err.msg);
    struct stat sb;
    assert_int_equal(lstat(staging, &sb), 0);
    assert_int_equal(sb.st_mode & 07777, 0700);
    check_file("model.kmodel", model_bytes, model_len);
    check_file("featspec.json", SPEC, strlen(SPEC));
    check_file("manifest.json", env.manifest_text, env.manifest_len);
    /* a staging directory that exists is refused, its content left alone */
    assert_int_equal(st_bundle_extract(&env, b, key, staging, &why, &err), KILN_EEXIST);
    assert_int_equal(why, ST_BUNDLE_R_STAGING);
    check_file("model.kmodel", model_bytes, model_len);
    clear_staging();
    /* plaintext bundles carry the tar in the clear; encrypted ones do not */
    size_t n;
    unsigned char *raw = read_bytes(b, &n);
    int seen = 0;
    for (size_t i = 0; i + 13 < n && !seen; i++)
        seen = memcmp(raw + i, "manifest.json", 13) == 0;
    assert_int_equal(seen, key == NULL);
    free(raw);
    st_bundle_envelope_free(&env);
}

static void test_roundtrip_encrypted(void **state)
{
    (void)state;
    roundtrip(&fk);
}

static void test_roundtrip_plaintext(void **state)
{
    (void)state;
    roundtrip(NULL);
}

static void flip_file(const char *path, size_t off)
{
    size_t n;
    unsigned char *p = read_bytes(path, &n);
    assert_true(off < n);
    p[off] ^= 0x01;
    write_bytes(path, p, n);
    free(p);
}

static void flipped_bundle(const st_bundle_fleetkey_t *key)
{
    char b[700], e[700];
    path_in(b, "flip.bundle");
    path_in(e, "flip.env");
    st_bundle_meta_t m = meta_v(6, 10);
    publish(&m, key, &sk, b, e);
    /* in the tar body (model bytes), in the header (fleet), and the last byte */
    size_t offs[] = {ST_BUNDLE_HEADER_BYTES + 2000, 14, 0};
    struct stat sb;
    assert_int_equal(stat(b, &sb), 0);
    offs[2] = (size_t)sb.st_size - 1;
    for (size_t i = 0; i < 3; i++) {
        flip_file(b, offs[i]);
        check_refused(e, b, key, device(5, 9), ST_BUNDLE_R_HASH, "sha256");
        flip_file(b, offs[i]);
    }
    assert_int_equal(attempt(e, b, key, device(5, 9), &(kiln_err_t){0}), ST_BUNDLE_R_OK);
    clear_staging();
}

static void test_flipped_byte_ciphertext(void **state)
{
    (void)state;
    flipped_bundle(&fk);
}

static void test_flipped_byte_plaintext(void **state)
{
    (void)state;
    flipped_bundle(NULL);
}

/* Every single-bit change of the envelope is refused, before the bundle is
 * read; a change inside the signed text is refused by the signature. */
static void test_flipped_byte_envelope(void **state)
{
    (void)state;
    char b[700], e[700];
    path_in(b, "fe.bundle");
    path_in(e, "fe.env");
    st_bundle_meta_t m = meta_v(6, 10);
    publish(&m, &fk, &sk, b, e);
    size_t n;
    unsigned char *text = read_bytes(e, &n);
    st_bundle_device_t dev = device(5, 9);
    for (size_t i = 0; i < n; i++) {
        for (int bit = 0; bit < 8; bit += 5) {
            text[i] ^= (unsigned char)(1u << bit);
            st_bundle_envelope_t env;
            st_bundle_reason_t why = ST_BUNDLE_R_OK;
            kiln_err_t err;
            int rc = st_bundle_verify_envelope(text, n, &pk, &dev, &env, &why, &err);
            if (rc == 0)
                fail_msg("a flip of bit %d at byte %zu of the envelope was accepted", bit, i);
            assert_true(why == ST_BUNDLE_R_FORMAT || why == ST_BUNDLE_R_SIGNATURE);
            assert_null(env.manifest);
            text[i] ^= (unsigned char)(1u << bit);
        }
    }
    /* the version digit: valid JSON, refused by the signature */
    char *v = strstr((char *)text, "\"version\":6");
    assert_non_null(v);
    v[10] = '7';
    write_bytes(e, text, n);
    check_refused(e, b, &fk, device(5, 9), ST_BUNDLE_R_SIGNATURE, "signature");
    free(text);
}

static void test_other_signing_key(void **state)
{
    (void)state;
    char b[700], e[700];
    path_in(b, "ok.bundle");
    path_in(e, "ok.env");
    st_bundle_meta_t m = meta_v(6, 10);
    publish(&m, &fk, &other_sk, b, e);
    check_refused(e, b, &fk, device(5, 9), ST_BUNDLE_R_SIGNATURE, "another key");
}

/* Older, same, and the signed rollback - once; its replay is refused. */
static void test_versions_and_replay(void **state)
{
    (void)state;
    char b[700], e[700], e2[700];
    path_in(b, "v.bundle");
    path_in(e, "v.env");
    path_in(e2, "v.rollback.env");
    st_bundle_meta_t m = meta_v(3, 4);
    publish(&m, &fk, &sk, b, e);
    check_refused(e, b, &fk, device(5, 9), ST_BUNDLE_R_OLDER, "older");
    check_refused(e, b, &fk, device(3, 3), ST_BUNDLE_R_SAME_VERSION, "already running");
    /* the same v3 as a signed rollback, a later publication: accepted */
    kiln_err_t err;
    assert_int_equal(st_bundle_reseal(e, b, 11, NOW + 600, 1, &sk, e2, &err), 0);
    assert_int_equal(attempt(e2, b, &fk, device(5, 10), &err), ST_BUNDLE_R_OK);
    clear_staging();
    /* ... and once accepted (last seq 11), the same rollback again is a replay */
    check_refused(e2, b, &fk, device(3, 11), ST_BUNDLE_R_SAME_VERSION, NULL);
    check_refused(e2, b, &fk, device(7, 11), ST_BUNDLE_R_REPLAY, "replayed");
    /* a rollback flag set by someone else breaks the signature */
    size_t n;
    char *t = (char *)read_bytes(e, &n);
    char *r = strstr(t, "\"rollback\":false");
    assert_non_null(r);
    memcpy(r, "\"rollback\":true ", 16);
    write_bytes(e, t, n);
    free(t);
    check_refused(e, b, &fk, device(5, 9), ST_BUNDLE_R_SIGNATURE, NULL);
    /* a newer version under an old seq is a replay too */
    st_bundle_meta_t m8 = meta_v(8, 5);
    publish(&m8, &fk, &sk, b, e);
    check_refused(e, b, &fk, device(7, 11), ST_BUNDLE_R_REPLAY, NULL);
    /* another model name: no version comparison, the seq still applies */
    st_bundle_device_t other = device(9, 4);
    other.model_name = "pump";
    assert_int_equal(attempt(e, b, &fk, other, &err), ST_BUNDLE_R_OK);
    clear_staging();
}

static void test_expired(void **state)
{
    (void)state;
    char b[700], e[700];
    path_in(b, "x.bundle");
    path_in(e, "x.env");
    st_bundle_meta_t m = meta_v(6, 10);
    m.expires = NOW;
    publish(&m, &fk, &sk, b, e);
    check_refused(e, b, &fk, device(5, 9), ST_BUNDLE_R_EXPIRED, "expired");
    st_bundle_device_t dev = device(5, 9);
    dev.now = NOW - 1;
    kiln_err_t err;
    assert_int_equal(attempt(e, b, &fk, dev, &err), ST_BUNDLE_R_OK);
    clear_staging();
}

static void test_other_fleet(void **state)
{
    (void)state;
    char b[700], e[700];
    path_in(b, "f.bundle");
    path_in(e, "f.env");
    st_bundle_meta_t m = meta_v(6, 10);
    m.fleet = "line-4";
    publish(&m, &fk2, &sk, b, e);
    check_refused(e, b, &fk, device(5, 9), ST_BUNDLE_R_FLEET, "line-4");
}

static void test_wrong_fleet_key(void **state)
{
    (void)state;
    char b[700], e[700];
    path_in(b, "k.bundle");
    path_in(e, "k.env");
    st_bundle_meta_t m = meta_v(6, 10);
    publish(&m, &fk2, &sk, b, e);   /* fleet line-3 but the other fleet's key */
    check_refused(e, b, &fk, device(5, 9), ST_BUNDLE_R_DECRYPT, "wrong fleet key");
    check_refused(e, b, NULL, device(5, 9), ST_BUNDLE_R_NO_KEY, "no fleet key");
}

static void test_truncated(void **state)
{
    (void)state;
    char b[700], e[700];
    path_in(b, "t.bundle");
    path_in(e, "t.env");
    st_bundle_meta_t m = meta_v(6, 10);
    publish(&m, &fk, &sk, b, e);
    size_t n;
    unsigned char *p = read_bytes(b, &n);
    write_bytes(b, p, n - 700);
    check_refused(e, b, &fk, device(5, 9), ST_BUNDLE_R_SIZE, "truncated");
    write_bytes(b, p, 50);
    check_refused(e, b, &fk, device(5, 9), ST_BUNDLE_R_SIZE, NULL);
    /* and padded */
    unsigned char *q = malloc(n + 10);
    memcpy(q, p, n);
    memset(q + n, 0, 10);
    write_bytes(b, q, n + 10);
    check_refused(e, b, &fk, device(5, 9), ST_BUNDLE_R_SIZE, "padded");
    free(q);
    free(p);
}

/* ---- hand-made tars, validly signed ---------------------------------- */

enum { T_REG, T_SYMLINK, T_HARDLINK, T_DIR };

typedef struct {
    const char *name;
    int         type;
    const void *data;
    size_t      len;
    const char *link;
} tar_member_t;

static unsigned char *make_tar(const tar_member_t *ms, size_t n, size_t *len)
{
    size_t cap = 1 << 21, used = 0;
    unsigned char *buf = malloc(cap);
    struct archive *a = archive_write_new();
    struct archive_entry *e = archive_entry_new();
    assert_int_equal(archive_write_set_format_pax_restricted(a), ARCHIVE_OK);
    assert_int_equal(archive_write_open_memory(a, buf, cap, &used), ARCHIVE_OK);
    for (size_t i = 0; i < n; i++) {
        archive_entry_clear(e);
        archive_entry_set_pathname(e, ms[i].name);
        archive_entry_set_perm(e, 0644);
        switch (ms[i].type) {
        case T_REG:
            archive_entry_set_filetype(e, AE_IFREG);
            archive_entry_set_size(e, (la_int64_t)ms[i].len);
            break;
        case T_SYMLINK:
            archive_entry_set_filetype(e, AE_IFLNK);
            archive_entry_set_symlink(e, ms[i].link);
            break;
        case T_HARDLINK:
            archive_entry_set_filetype(e, AE_IFREG);
            archive_entry_set_hardlink(e, ms[i].link);
            archive_entry_set_size(e, 0);
            break;
        default:
            archive_entry_set_filetype(e, AE_IFDIR);
            archive_entry_set_perm(e, 0755);
            break;
        }
        assert_int_equal(archive_write_header(a, e), ARCHIVE_OK);
        if (ms[i].type == T_REG && ms[i].len)
            assert_int_equal(archive_write_data(a, ms[i].data, ms[i].len), (la_ssize_t)ms[i].len);
    }
    assert_int_equal(archive_write_close(a), ARCHIVE_OK);
    archive_entry_free(e);
    archive_write_free(a);
    *len = used;
    return buf;
}

/* The manifest of a genuine v6 publication (fleet key fk), for the
 * hand-made bundles to be signed under. */
static void genuine(st_bundle_envelope_t *env)
{
    char b[700], e[700];
    path_in(b, "g.bundle");
    path_in(e, "g.env");
    st_bundle_meta_t m = meta_v(6, 10);
    publish(&m, &fk, &sk, b, e);
    kiln_err_t err;
    st_bundle_device_t dev = device(5, 9);
    assert_int_equal(st_bundle_verify_envelope_file(e, &pk, &dev, env, NULL, &err), 0);
}

/* Wraps the tar for fleet FLEET with fk, signs it under the genuine manifest
 * and checks the refusal. */
static void sign_and_check(const st_bundle_envelope_t *genuine_env, const tar_member_t *ms,
                           size_t n, st_bundle_reason_t want, const char *msg_part)
{
    size_t tar_len, bundle_len, env_len;
    unsigned char *tar = make_tar(ms, n, &tar_len);
    void *bundle;
    char *env_text;
    kiln_err_t err;
    assert_int_equal(st_bundle_wrap(tar, tar_len, FLEET, &fk, &bundle, &bundle_len, &err), 0);
    assert_int_equal(st_bundle_seal(genuine_env->manifest, bundle, bundle_len, 10, NOW + 3600, 0,
                                    &sk, &env_text, &env_len, &err), 0);
    char b[700], e[700];
    path_in(b, "evil.bundle");
    path_in(e, "evil.env");
    write_bytes(b, bundle, bundle_len);
    write_bytes(e, env_text, env_len);
    check_refused(e, b, &fk, device(5, 9), want, msg_part);
    free(tar);
    kiln_free(bundle);
    kiln_free(env_text);
}

static void test_malicious_members(void **state)
{
    (void)state;
    st_bundle_envelope_t g;
    genuine(&g);
    const char *mt = g.manifest_text;
    size_t ml = g.manifest_len, sl = strlen(SPEC);
    const tar_member_t good[] = {
        {"manifest.json", T_REG, mt, ml, NULL},
        {"model.kmodel", T_REG, model_bytes, model_len, NULL},
        {"featspec.json", T_REG, SPEC, sl, NULL},
    };
    /* control: the same members, re-made and re-signed, are accepted */
    {
        size_t tar_len, bundle_len, env_len;
        unsigned char *tar = make_tar(good, 3, &tar_len);
        void *bundle;
        char *env_text;
        kiln_err_t err;
        char b[700], e[700];
        assert_int_equal(st_bundle_wrap(tar, tar_len, FLEET, &fk, &bundle, &bundle_len, &err), 0);
        assert_int_equal(st_bundle_seal(g.manifest, bundle, bundle_len, 10, NOW + 3600, 0, &sk,
                                        &env_text, &env_len, &err), 0);
        path_in(b, "ctl.bundle");
        path_in(e, "ctl.env");
        write_bytes(b, bundle, bundle_len);
        write_bytes(e, env_text, env_len);
        assert_int_equal(attempt(e, b, &fk, device(5, 9), &err), ST_BUNDLE_R_OK);
        clear_staging();
        free(tar);
        kiln_free(bundle);
        kiln_free(env_text);
    }
    const tar_member_t dotdot[] = {good[0], {"../x", T_REG, "pwn", 3, NULL}, good[1], good[2]};
    sign_and_check(&g, dotdot, 4, ST_BUNDLE_R_PATH, "..");
    const tar_member_t dotdot2[] = {good[0], {"a/../../model.kmodel", T_REG, "p", 1, NULL}};
    sign_and_check(&g, dotdot2, 2, ST_BUNDLE_R_PATH, "..");
    const tar_member_t absolute[] = {good[0], {"/etc/x", T_REG, "pwn", 3, NULL}, good[1], good[2]};
    sign_and_check(&g, absolute, 4, ST_BUNDLE_R_PATH, "absolute");
    const tar_member_t symlink[] = {good[0], {"model.kmodel", T_SYMLINK, NULL, 0, "/etc/passwd"},
                                    good[2]};
    sign_and_check(&g, symlink, 3, ST_BUNDLE_R_LINK, "symbolic link");
    const tar_member_t hardlink[] = {good[0], good[1],
                                     {"featspec.json", T_HARDLINK, NULL, 0, "/etc/shadow"}};
    sign_and_check(&g, hardlink, 3, ST_BUNDLE_R_LINK, "hard link");
    const tar_member_t directory[] = {good[0], {"model.kmodel", T_DIR, NULL, 0, NULL}, good[2]};
    sign_and_check(&g, directory, 3, ST_BUNDLE_R_TYPE, "regular");
    /* larger than declared: the declared model plus 1 MiB */
    size_t big_len = model_len + (1 << 20);
    unsigned char *big = calloc(1, big_len);
    memcpy(big, model_bytes, model_len);
    const tar_member_t larger[] = {good[0], {"model.kmodel", T_REG, big, big_len, NULL}, good[2]};
    sign_and_check(&g, larger, 3, ST_BUNDLE_R_TOO_BIG, "declared");
    free(big);
    const tar_member_t extra[] = {good[0], good[1], good[2], {"run.sh", T_REG, "rm", 2, NULL}};
    sign_and_check(&g, extra, 4, ST_BUNDLE_R_UNDECLARED, "run.sh");
    const tar_member_t missing[] = {good[0], good[1]};
    sign_and_check(&g, missing, 2, ST_BUNDLE_R_MISSING, "featspec.json");
    const tar_member_t dup[] = {good[0], good[1], good[2], good[2]};
    sign_and_check(&g, dup, 4, ST_BUNDLE_R_DUPLICATE, "twice");
    /* same size, other bytes */
    unsigned char *swapped = malloc(model_len);
    memcpy(swapped, model_bytes, model_len);
    swapped[model_len - 1] ^= 0xff;
    const tar_member_t altered[] = {good[0], {"model.kmodel", T_REG, swapped, model_len, NULL},
                                    good[2]};
    sign_and_check(&g, altered, 3, ST_BUNDLE_R_MEMBER_HASH, "sha256");
    free(swapped);
    /* a manifest.json other than the signed one */
    const tar_member_t other_manifest[] = {{"manifest.json", T_REG, "{}", 2, NULL}, good[1],
                                           good[2]};
    sign_and_check(&g, other_manifest, 3, ST_BUNDLE_R_MEMBER_HASH, "signed manifest");
    /* not a tar at all */
    {
        void *bundle;
        size_t bundle_len, env_len;
        char *env_text;
        kiln_err_t err;
        char b[700], e[700];
        assert_int_equal(st_bundle_wrap("garbage that is no tar header", 29, FLEET, &fk, &bundle,
                                        &bundle_len, &err), 0);
        assert_int_equal(st_bundle_seal(g.manifest, bundle, bundle_len, 10, NOW + 3600, 0, &sk,
                                        &env_text, &env_len, &err), 0);
        path_in(b, "junk.bundle");
        path_in(e, "junk.env");
        write_bytes(b, bundle, bundle_len);
        write_bytes(e, env_text, env_len);
        check_refused(e, b, &fk, device(5, 9), ST_BUNDLE_R_TAR, NULL);
        kiln_free(bundle);
        kiln_free(env_text);
    }
    st_bundle_envelope_free(&g);
}

static void test_unverified_envelope(void **state)
{
    (void)state;
    st_bundle_envelope_t env;
    memset(&env, 0, sizeof env);
    st_bundle_reason_t why;
    kiln_err_t err;
    char b[700];
    path_in(b, "g.bundle");
    assert_int_equal(st_bundle_extract(&env, b, &fk, staging, &why, &err), KILN_EINVAL);
    assert_int_equal(why, ST_BUNDLE_R_NOT_VERIFIED);
    assert_untouched();
}

static void test_key_files(void **state)
{
    (void)state;
    kiln_err_t err;
    st_bundle_signkey_t k;
    st_bundle_pubkey_t p;
    st_bundle_fleetkey_t f;
    assert_int_equal(st_bundle_load_signkey(sk_path, &k, &err), 0);
    assert_memory_equal(k.pk, pk.pk, 32);
    assert_int_equal(st_bundle_load_fleetkey(fk_path, &f, &err), 0);
    assert_memory_equal(f.key, fk.key, 32);
    struct stat sb;
    assert_int_equal(stat(sk_path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    assert_int_equal(stat(fk_path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    /* loose modes */
    const mode_t loose[] = {0640, 0604, 0660, 0644};
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(chmod(sk_path, loose[i]), 0);
        assert_int_equal(st_bundle_load_signkey(sk_path, &k, &err), KILN_EINVAL);
        assert_string_equal(err.where, "key-permissions");
        assert_non_null(strstr(err.msg, "chmod 600"));
        assert_int_equal(chmod(fk_path, loose[i]), 0);
        assert_int_equal(st_bundle_load_fleetkey(fk_path, &f, &err), KILN_EINVAL);
    }
    assert_int_equal(chmod(sk_path, 0600), 0);
    assert_int_equal(chmod(fk_path, 0600), 0);
    assert_int_equal(chmod(pk_path, 0664), 0);
    assert_int_equal(st_bundle_load_pubkey(pk_path, &p, &err), KILN_EINVAL);
    assert_non_null(strstr(err.msg, "trust anchor"));
    assert_int_equal(chmod(pk_path, 0644), 0);
    assert_int_equal(st_bundle_load_pubkey(pk_path, &p, &err), 0);
    /* a symlink to a good key file is refused */
    char link_path[700];
    path_in(link_path, "link.sk");
    assert_int_equal(symlink(sk_path, link_path), 0);
    assert_int_equal(st_bundle_load_signkey(link_path, &k, &err), KILN_EINVAL);
    assert_non_null(strstr(err.msg, "symlink"));
    /* the wrong kind of key, and existing files are never overwritten */
    assert_int_equal(st_bundle_load_signkey(fk_path, &k, &err), KILN_EFORMAT);
    assert_int_equal(st_bundle_load_fleetkey(model_path, &f, &err), KILN_EINVAL);
    assert_int_equal(st_bundle_keygen_fleet(fk_path, NULL, &err), KILN_EEXIST);
    assert_int_equal(st_bundle_keygen_sign(sk_path, other_pk_path, NULL, &err), KILN_EEXIST);
    assert_int_equal(st_bundle_load_fleetkey(fk_path, &f, &err), 0);
    assert_memory_equal(f.key, fk.key, 32);
    st_bundle_key_wipe(&k, sizeof k);
    assert_int_equal(k.sk[0] | k.sk[63], 0);
}

/* Bad publish arguments are refused before anything is written. */
static void test_create_arguments(void **state)
{
    (void)state;
    char b[700], e[700];
    path_in(b, "bad.bundle");
    path_in(e, "bad.env");
    kiln_err_t err;
    st_bundle_meta_t m = meta_v(0, 1);
    assert_int_equal(st_bundle_create(model_path, SPEC, &m, &fk, &sk, b, e, &err), KILN_EINVAL);
    m = meta_v(1, 1);
    m.fleet = "../etc";
    assert_int_equal(st_bundle_create(model_path, SPEC, &m, &fk, &sk, b, e, &err), KILN_EINVAL);
    m = meta_v(1, 1);
    m.expires = m.created;
    assert_int_equal(st_bundle_create(model_path, SPEC, &m, &fk, &sk, b, e, &err), KILN_EINVAL);
    m = meta_v(1, 1);
    assert_int_equal(st_bundle_create(running_path, SPEC, &m, &fk, &sk, b, e, &err), KILN_EFORMAT);
    assert_int_equal(st_bundle_create(model_path, "[1,", &m, &fk, &sk, b, e, &err), KILN_EJSON);
    assert_int_not_equal(access(b, F_OK), 0);
    assert_int_not_equal(access(e, F_OK), 0);
}

/* Every allocation of verify + unpack failing in turn: an error, no leak
 * (ASan in `make SAN=1`), no crash. */
static void test_alloc_failures(void **state)
{
    (void)state;
    char b[700], e[700];
    path_in(b, "af.bundle");
    path_in(e, "af.env");
    st_bundle_meta_t m = meta_v(6, 10);
    publish(&m, &fk, &sk, b, e);
    size_t env_len, bundle_len;
    unsigned char *env_text = read_bytes(e, &env_len), *bundle = read_bytes(b, &bundle_len);
    int ok = 0;
    for (long n = 1; n < 100 && !ok; n++) {
        kiln_err_t err;
        st_bundle_envelope_t env;
        st_bundle_contents_t c;
        st_bundle_device_t dev = device(5, 9);
        kiln_alloc_fail_after(n);
        int rc = st_bundle_verify_envelope(env_text, env_len, &pk, &dev, &env, NULL, &err);
        if (rc == 0) {
            rc = st_bundle_unpack(&env, bundle, bundle_len, &fk, &c, NULL, &err);
            if (rc == 0) {
                ok = 1;
                st_bundle_contents_free(&c);
            }
            st_bundle_envelope_free(&env);
        }
        kiln_alloc_fail_after(0);
        if (rc < 0)
            assert_true(err.msg[0] != 0);
    }
    assert_true(ok);
    free(env_text);
    free(bundle);
}

/* The OpenSSL opener agrees with libsodium's XChaCha20-Poly1305 seal byte
 * for byte, and refuses a changed tag, ciphertext, associated data or key. */
static void test_aead_matches_libsodium(void **state)
{
    (void)state;
    assert_true(sodium_init() >= 0);
    static const size_t lens[] = {0, 1, 63, 64, 65, 1000, (1u << 20) + 7};
    unsigned char key[32], nonce[24], ad[100];
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        size_t n = lens[i];
        unsigned char *m = malloc(n + 1), *c = malloc(n + 16), *out = malloc(n + 1);
        randombytes_buf(m, n + 1);
        randombytes_buf(key, sizeof key);
        randombytes_buf(nonce, sizeof nonce);
        randombytes_buf(ad, sizeof ad);
        unsigned long long clen;
        size_t adlen = i % 2 ? sizeof ad : 0, olen = 0;
        crypto_aead_xchacha20poly1305_ietf_encrypt(c, &clen, m, n, ad, adlen, NULL, nonce, key);
        assert_int_equal(clen, n + 16);
        assert_int_equal(st_bundle_aead_open(out, &olen, c, clen, ad, adlen, nonce, key), 0);
        assert_int_equal(olen, n);
        if (n)
            assert_memory_equal(out, m, n);
        c[clen - 1] ^= 1;   /* tag */
        assert_int_equal(st_bundle_aead_open(out, &olen, c, clen, ad, adlen, nonce, key), -1);
        c[clen - 1] ^= 1;
        if (n) {
            c[n / 2] ^= 0x80;   /* ciphertext */
            assert_int_equal(st_bundle_aead_open(out, &olen, c, clen, ad, adlen, nonce, key), -1);
            c[n / 2] ^= 0x80;
        }
        if (adlen) {
            ad[7] ^= 1;
            assert_int_equal(st_bundle_aead_open(out, &olen, c, clen, ad, adlen, nonce, key), -1);
            ad[7] ^= 1;
        }
        key[0] ^= 1;
        assert_int_equal(st_bundle_aead_open(out, &olen, c, clen, ad, adlen, nonce, key), -1);
        assert_int_equal(st_bundle_aead_open(out, &olen, c, 15, ad, adlen, nonce, key), -1);
        free(m);
        free(c);
        free(out);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_encrypted),
        cmocka_unit_test(test_roundtrip_plaintext),
        cmocka_unit_test(test_flipped_byte_ciphertext),
        cmocka_unit_test(test_flipped_byte_plaintext),
        cmocka_unit_test(test_flipped_byte_envelope),
        cmocka_unit_test(test_other_signing_key),
        cmocka_unit_test(test_versions_and_replay),
        cmocka_unit_test(test_expired),
        cmocka_unit_test(test_other_fleet),
        cmocka_unit_test(test_wrong_fleet_key),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_malicious_members),
        cmocka_unit_test(test_unverified_envelope),
        cmocka_unit_test(test_key_files),
        cmocka_unit_test(test_create_arguments),
        cmocka_unit_test(test_alloc_failures),
        cmocka_unit_test(test_aead_matches_libsodium),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
