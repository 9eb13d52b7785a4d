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
 *       rollback=0|1", or the refusal's reason and exits 1. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "cluster/edge_sig.h"
#include "storage/bundle.h"

static int usage(void)
{
    fprintf(stderr, "usage: edge-sign keygen DIR | edge-sign headers SK METHOD PATH BODY|- "
                    "[DEVICE_ID [TIME_MS]] | edge-sign verify ENVELOPE PUBKEY FLEET "
                    "[MODEL@VERSION|- [LAST_SEQ [BUNDLE FLEETKEY|- STAGING]]]\n");
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

int main(int argc, char **argv)
{
    if (sodium_init() < 0 || argc < 3)
        return usage();
    if (!strcmp(argv[1], "verify"))
        return verify(argc, argv);
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
