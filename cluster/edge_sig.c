/* edge_sig.c - the fleet protocol's request signature (edge_sig.h). */
#include "cluster/edge_sig.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "core/kiln_alloc.h"

/* The signed text: a fixed prefix, method, path, time and the body's hash,
 * so no field can slide into another.  *out kiln_malloc'd. */
static int message(const char *method, const char *path, int64_t time_ms, const void *body,
                   size_t body_len, char **out, size_t *len, kiln_err_t *err)
{
    unsigned char h[crypto_hash_sha256_BYTES];
    char hex[2 * crypto_hash_sha256_BYTES + 1];
    crypto_hash_sha256(h, body ? body : (const void *)"", body ? body_len : 0);
    sodium_bin2hex(hex, sizeof hex, h, sizeof h);
    size_t cap = strlen(method) + strlen(path) + sizeof hex + 64;
    char *m = kiln_malloc(cap);
    if (!m)
        return kiln_err_set(err, KILN_ENOMEM, "out of memory signing a request");
    int n = snprintf(m, cap, "kiln-edge-v1\n%s\n%s\n%lld\n%s", method, path, (long long)time_ms,
                     hex);
    *out = m;
    *len = (size_t)n;
    return 0;
}

int kc_edge_sign(const unsigned char sk[64], const char *method, const char *path,
                 int64_t time_ms, const void *body, size_t body_len,
                 char sig_b64[KC_EDGE_SIG_B64_MAX], kiln_err_t *err)
{
    if (sodium_init() < 0)
        return kiln_err_set(err, KILN_EINTERNAL, "libsodium failed to start");
    char *m = NULL;
    size_t n = 0;
    int rc = message(method, path, time_ms, body, body_len, &m, &n, err);
    if (rc < 0)
        return rc;
    unsigned char sig[crypto_sign_BYTES];
    crypto_sign_detached(sig, NULL, (const unsigned char *)m, n, sk);
    kiln_free(m);
    sodium_bin2base64(sig_b64, KC_EDGE_SIG_B64_MAX, sig, sizeof sig,
                      sodium_base64_VARIANT_ORIGINAL);
    return 0;
}

int kc_edge_verify(const unsigned char pk[32], const char *method, const char *path,
                   int64_t time_ms, const void *body, size_t body_len, const char *sig_b64,
                   kiln_err_t *err)
{
    if (sodium_init() < 0)
        return kiln_err_set(err, KILN_EINTERNAL, "libsodium failed to start");
    unsigned char sig[crypto_sign_BYTES];
    size_t got = 0;
    if (!sig_b64 || sodium_base642bin(sig, sizeof sig, sig_b64, strlen(sig_b64), NULL, &got,
                                      NULL, sodium_base64_VARIANT_ORIGINAL) != 0 ||
        got != sizeof sig)
        return kiln_err_at(err, KILN_EINVAL, "X-Kiln-Sig",
                           "X-Kiln-Sig: not the base64 of a 64-byte Ed25519 signature");
    char *m = NULL;
    size_t n = 0;
    int rc = message(method, path, time_ms, body, body_len, &m, &n, err);
    if (rc < 0)
        return rc;
    rc = crypto_sign_verify_detached(sig, (const unsigned char *)m, n, pk);
    kiln_free(m);
    if (rc != 0)
        return kiln_err_at(err, KILN_EINVAL, "X-Kiln-Sig",
                           "X-Kiln-Sig: the signature does not verify with the device's key "
                           "for %s %s at time %lld", method, path, (long long)time_ms);
    return 0;
}

int kc_edge_pk_decode(const char *b64, unsigned char pk[32], kiln_err_t *err)
{
    size_t got = 0;
    if (sodium_init() < 0)
        return kiln_err_set(err, KILN_EINTERNAL, "libsodium failed to start");
    if (!b64 || sodium_base642bin(pk, 32, b64, strlen(b64), NULL, &got, NULL,
                                  sodium_base64_VARIANT_ORIGINAL) != 0 || got != 32)
        return kiln_err_at(err, KILN_EINVAL, "public_key",
                           "public_key: not the base64 of a 32-byte Ed25519 public key");
    return 0;
}

void kc_edge_pk_encode(const unsigned char pk[32], char out[KC_EDGE_PK_B64_MAX])
{
    sodium_bin2base64(out, KC_EDGE_PK_B64_MAX, pk, 32, sodium_base64_VARIANT_ORIGINAL);
}

int kc_edge_time_parse(const char *s, int64_t *time_ms, kiln_err_t *err)
{
    char *end;
    errno = 0;
    long long v = s && *s >= '0' && *s <= '9' ? strtoll(s, &end, 10) : -1;
    if (!s || v <= 0 || errno || *end)
        return kiln_err_at(err, KILN_EINVAL, "X-Kiln-Time",
                           "X-Kiln-Time: \"%s\" is not unix time in milliseconds", s ? s : "");
    *time_ms = v;
    return 0;
}
