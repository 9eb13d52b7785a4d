/* edge_sign.c - the device side of the fleet protocol's signature for the
 * system tests (tests/system/fleet_api.sh), so curl can play an agent:
 *
 *   edge-sign keygen DIR
 *       a new Ed25519 pair: DIR/device.sk (64 bytes, 0600); prints the
 *       public key as base64 (the enroll call's "public_key")
 *   edge-sign headers SK_FILE METHOD PATH BODY_FILE|- [DEVICE_ID [TIME_MS]]
 *       prints X-Kiln-Time, X-Kiln-Sig (and X-Kiln-Device) header lines for
 *       curl -H @FILE; TIME_MS defaults to now
 *   edge-sign verify ENVELOPE PUBKEY_FILE FLEET [MODEL@VERSION|- [LAST_SEQ [BUNDLE
 *                    FLEETKEY_FILE|- STAGING_DIR]]]
 *       what an agent checks (storage/bundle.h): the envelope against the
 *       publisher key, for a device of FLEET running MODEL@VERSION that
 *       accepted LAST_SEQ before; with BUNDLE, the bundle is checked and
 *       extracted into STAGING_DIR.  Prints "ok MODEL VERSION seq=N
 *       rollback=0|1", or the refusal's reason and exits 1.
 *   edge-sign signkey SK_FILE PK_FILE
 *       a new publisher-style Ed25519 pair (another key than kilnd's)
 *   edge-sign craft KIND SRC_DIR SK_FILE FLEETKEY_FILE|- SEQ VERSION ENVELOPE BUNDLE
 *       a malicious release for tests/system/edge_attacks.sh, built from an
 *       agent's installed model (SRC_DIR: manifest.json, model.kmodel,
 *       featspec.json) under the manifest's model at VERSION, wrapped with
 *       the fleet key and signed with SK_FILE (kilnd's publisher key, so
 *       that a later check is the one that refuses it, or another key).
 *       KIND: good, expired (expired a minute ago), fleet (for fleet
 *       "plant-other"), dotdot (a member "../x"), absolute ("/etc/x"),
 *       symlink (model.kmodel -> /etc/passwd), toobig (model.kmodel 1 MiB
 *       larger than declared). */
#include <fcntl.h>
#include <archive.h>
#include <archive_entry.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "cluster/edge_sig.h"
#include "core/kiln_alloc.h"
#include "storage/bundle.h"

static int usage(void)
{
    fprintf(stderr, "usage: edge-sign keygen DIR | edge-sign headers SK METHOD PATH BODY|- "
                    "[DEVICE_ID [TIME_MS]] | edge-sign verify ENVELOPE PUBKEY FLEET "
                    "[MODEL@VERSION|- [LAST_SEQ [BUNDLE FLEETKEY|- STAGING]]] | edge-sign signkey SK PK | "
                    "edge-sign craft KIND SRC_DIR SK FLEETKEY|- SEQ VERSION ENVELOPE BUNDLE\n");
    return 2;
}

static int verify(int argc, char **argv)
{
    if (argc < 5)
        return usage();
    kiln_err_t err;
    st_bundle_pubkey_t pk;
    if (st_bundle_load_pubkey(argv[3], &pk, &err) < 0) {
        fprintf(stderr, "edge-sign: %s\n", err.msg);
        return 1;
    }
    char model[ST_BUNDLE_NAME_MAX] = "";
    unsigned long long version = 0;
    if (argc > 5 && strcmp(argv[5], "-")) {
        const char *at = strrchr(argv[5], '@');
        if (!at || (size_t)(at - argv[5]) >= sizeof model)
            return usage();
        snprintf(model, sizeof model, "%.*s", (int)(at - argv[5]), argv[5]);
        version = strtoull(at + 1, NULL, 10);
    }
    st_bundle_device_t dev = {argv[4], model, version,
                              argc > 6 ? strtoull(argv[6], NULL, 10) : 0, (int64_t)time(NULL)};
    st_bundle_envelope_t env;
    st_bundle_reason_t why = ST_BUNDLE_R_OK;
    if (st_bundle_verify_envelope_file(argv[2], &pk, &dev, &env, &why, &err) < 0) {
        printf("refused %s: %s\n", st_bundle_reason_name(why), err.msg);
        return 1;
    }
    int rc = 0;
    if (argc > 9) {
        st_bundle_fleetkey_t fk;
        int have = strcmp(argv[8], "-") != 0;
        if (have && st_bundle_load_fleetkey(argv[8], &fk, &err) < 0) {
            fprintf(stderr, "edge-sign: %s\n", err.msg);
            rc = 1;
        } else if (st_bundle_extract(&env, argv[7], have ? &fk : NULL, argv[9], &why, &err) < 0) {
            printf("refused %s: %s\n", st_bundle_reason_name(why), err.msg);
            rc = 1;
        }
    }
    if (rc == 0)
        printf("ok %s %llu seq=%llu rollback=%d\n", env.model_name,
               (unsigned long long)env.version, (unsigned long long)env.seq, env.rollback);
    st_bundle_envelope_free(&env);
    return rc;
}

/* ---- craft: hand-made releases (tests/system/edge_attacks.sh) ---------- */

typedef struct {
    const char *name;
    int         symlink;     /* 1: a symbolic link to link */
    const void *data;
    size_t      len;
    const char *link;
} craft_member_t;

static unsigned char *slurp(const char *dir, const char *name, size_t *len)
{
    char path[2048];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        return NULL;
    }
    unsigned char *p = malloc(1 << 26);
    *len = p ? fread(p, 1, 1 << 26, f) : 0;
    fclose(f);
    return p;
}

static int spill(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(p, 1, n, f) != n || fclose(f) != 0) {
        perror(path);
        return -1;
    }
    return 0;
}

/* A pax tar of ms in memory (malloc'd), or NULL. */
static unsigned char *craft_tar(const craft_member_t *ms, size_t n, size_t *len)
{
    size_t cap = 1 << 27, used = 0;
    unsigned char *buf = malloc(cap);
    struct archive *a = archive_write_new();
    struct archive_entry *e = archive_entry_new();
    int ok = buf && a && e && archive_write_set_format_pax_restricted(a) == ARCHIVE_OK &&
             archive_write_open_memory(a, buf, cap, &used) == ARCHIVE_OK;
    for (size_t i = 0; ok && i < n; i++) {
        archive_entry_clear(e);
        archive_entry_set_pathname(e, ms[i].name);
        archive_entry_set_perm(e, 0644);
        if (ms[i].symlink) {
            archive_entry_set_filetype(e, AE_IFLNK);
            archive_entry_set_symlink(e, ms[i].link);
        } else {
            archive_entry_set_filetype(e, AE_IFREG);
            archive_entry_set_size(e, (la_int64_t)ms[i].len);
        }
        ok = archive_write_header(a, e) == ARCHIVE_OK &&
             (ms[i].symlink || !ms[i].len ||
              archive_write_data(a, ms[i].data, ms[i].len) == (la_ssize_t)ms[i].len);
    }
    ok = ok && archive_write_close(a) == ARCHIVE_OK;
    if (!ok)
        fprintf(stderr, "edge-sign: tar: %s\n", a ? archive_error_string(a) : "no memory");
    archive_entry_free(e);
    archive_write_free(a);
    if (!ok) {
        free(buf);
        return NULL;
    }
    *len = used;
    return buf;
}

static int craft(int argc, char **argv)
{
    if (argc != 10)
        return usage();
    const char *kind = argv[2], *src = argv[3];
    uint64_t seq = strtoull(argv[6], NULL, 10), version = strtoull(argv[7], NULL, 10);
    kiln_err_t err;
    st_bundle_signkey_t sk;
    st_bundle_fleetkey_t fk;
    int have_fk = strcmp(argv[5], "-") != 0;
    if (st_bundle_load_signkey(argv[4], &sk, &err) < 0 ||
        (have_fk && st_bundle_load_fleetkey(argv[5], &fk, &err) < 0)) {
        fprintf(stderr, "edge-sign: %s\n", err.msg);
        return 1;
    }
    int rc = 1;
    size_t ml = 0, kl = 0, sl = 0, tar_len = 0, bundle_len = 0, env_len = 0;
    unsigned char *mtext = slurp(src, "manifest.json", &ml);
    unsigned char *model = slurp(src, "model.kmodel", &kl);
    unsigned char *spec = slurp(src, "featspec.json", &sl);
    unsigned char *big = NULL, *tar = NULL;
    void *bundle = NULL;
    char *env = NULL, *text = NULL;
    json_t *m = mtext ? json_loadb((char *)mtext, ml, JSON_REJECT_DUPLICATES, NULL) : NULL;
    if (!m || !model || !spec) {
        fprintf(stderr, "edge-sign: %s: no manifest.json, model.kmodel or featspec.json\n", src);
        goto out;
    }
    json_object_set_new(json_object_get(m, "model"), "version", json_integer((json_int_t)version));
    const char *fleet = !strcmp(kind, "fleet") ? "plant-other"
                                               : json_string_value(json_object_get(m, "fleet"));
    json_object_set_new(m, "fleet", json_string(fleet));
    fleet = json_string_value(json_object_get(m, "fleet"));
    text = json_dumps(m, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII);
    craft_member_t ms[4] = {{"manifest.json", 0, text, strlen(text), NULL},
                            {"model.kmodel", 0, model, kl, NULL},
                            {"featspec.json", 0, spec, sl, NULL}};
    size_t n = 3;
    if (!strcmp(kind, "dotdot") || !strcmp(kind, "absolute")) {
        ms[3] = ms[2];
        ms[2] = ms[1];
        ms[1] = (craft_member_t){kind[0] == 'd' ? "../x" : "/etc/x", 0, "pwn\n", 4, NULL};
        n = 4;
    } else if (!strcmp(kind, "symlink")) {
        ms[1] = (craft_member_t){"model.kmodel", 1, NULL, 0, "/etc/passwd"};
    } else if (!strcmp(kind, "toobig")) {
        if (!(big = calloc(1, kl + (1 << 20))))
            goto out;
        memcpy(big, model, kl);
        ms[1].data = big;
        ms[1].len = kl + (1 << 20);
    } else if (strcmp(kind, "good") && strcmp(kind, "expired") && strcmp(kind, "fleet")) {
        fprintf(stderr, "edge-sign: unknown kind %s\n", kind);
        goto out;
    }
    int64_t expires = (int64_t)time(NULL) + (!strcmp(kind, "expired") ? -60 : 3600);
    if (!(tar = craft_tar(ms, n, &tar_len)))
        goto out;
    if (st_bundle_wrap(tar, tar_len, fleet, have_fk ? &fk : NULL, &bundle, &bundle_len, &err) < 0 ||
        st_bundle_seal(m, bundle, bundle_len, seq, expires, 0, &sk, &env, &env_len, &err) < 0) {
        fprintf(stderr, "edge-sign: %s\n", err.msg);
        goto out;
    }
    if (spill(argv[8], env, env_len) == 0 && spill(argv[9], bundle, bundle_len) == 0)
        rc = 0;
out:
    st_bundle_key_wipe(&sk, sizeof sk);
    json_decref(m);
    free(text);
    kiln_free(env);
    kiln_free(bundle);
    free(tar);
    free(big);
    free(mtext);
    free(model);
    free(spec);
    return rc;
}

int main(int argc, char **argv)
{
    if (sodium_init() < 0 || argc < 3)
        return usage();
    if (!strcmp(argv[1], "verify"))
        return verify(argc, argv);
    if (!strcmp(argv[1], "craft"))
        return craft(argc, argv);
    if (!strcmp(argv[1], "signkey")) {
        kiln_err_t err;
        if (argc != 4 || st_bundle_keygen_sign(argv[2], argv[3], NULL, &err) < 0) {
            fprintf(stderr, "edge-sign: %s\n", argc != 4 ? "signkey SK PK" : err.msg);
            return 1;
        }
        return 0;
    }
    if (!strcmp(argv[1], "keygen")) {
        unsigned char pk[32], sk[64];
        crypto_sign_keypair(pk, sk);
        char path[1024];
        snprintf(path, sizeof path, "%s/device.sk", argv[2]);
        int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
        if (fd < 0 || write(fd, sk, sizeof sk) != (ssize_t)sizeof sk || close(fd) != 0) {
            perror(path);
            return 1;
        }
        char b64[KC_EDGE_PK_B64_MAX];
        kc_edge_pk_encode(pk, b64);
        printf("%s\n", b64);
        return 0;
    }
    if (strcmp(argv[1], "headers") || argc < 6)
        return usage();
    unsigned char sk[64];
    FILE *f = fopen(argv[2], "rb");
    if (!f || fread(sk, 1, sizeof sk, f) != sizeof sk) {
        perror(argv[2]);
        return 1;
    }
    fclose(f);
    static char body[1 << 20];
    size_t n = 0;
    if (strcmp(argv[5], "-")) {
        if (!(f = fopen(argv[5], "rb"))) {
            perror(argv[5]);
            return 1;
        }
        n = fread(body, 1, sizeof body, f);
        fclose(f);
    }
    struct timeval tv;
    gettimeofday(&tv, NULL);
    long long t = argc > 7 ? atoll(argv[7]) : (long long)tv.tv_sec * 1000 + tv.tv_usec / 1000;
    char sig[KC_EDGE_SIG_B64_MAX];
    kiln_err_t err;
    if (kc_edge_sign(sk, argv[3], argv[4], t, body, n, sig, &err) < 0) {
        fprintf(stderr, "edge-sign: %s\n", err.msg);
        return 1;
    }
    printf("X-Kiln-Time: %lld\nX-Kiln-Sig: %s\n", t, sig);
    if (argc > 6 && argv[6][0])
        printf("X-Kiln-Device: %s\n", argv[6]);
    return 0;
}
