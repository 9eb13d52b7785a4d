/* edge_sig.h - the request signature of the fleet protocol (docs/edge.md,
 * "Fleet protocol"), shared by kilnd's fleet endpoint and the agents: a
 * device signs each call with its own Ed25519 key over
 *
 *     "kiln-edge-v1\n" METHOD "\n" PATH "\n" TIME_MS "\n" hex(sha256(body))
 *
 * and sends X-Kiln-Device: ID, X-Kiln-Time: TIME_MS (unix milliseconds),
 * X-Kiln-Sig: base64 (RFC 4648, with padding) of the 64-byte signature. */
#ifndef KILN_CLUSTER_EDGE_SIG_H
#define KILN_CLUSTER_EDGE_SIG_H

#include <stddef.h>
#include <stdint.h>

#include "core/kiln_err.h"

#define KC_EDGE_SIG_B64_MAX 96      /* 88 characters + NUL, rounded */
#define KC_EDGE_PK_B64_MAX  48      /* 44 characters + NUL, rounded */
#define KC_EDGE_WINDOW_MS   300000  /* a signed time this far from the server's is refused */

/* Signs a call with sk (libsodium's 64-byte Ed25519 secret key). */
int kc_edge_sign(const unsigned char sk[64], const char *method, const char *path,
                 int64_t time_ms, const void *body, size_t body_len,
                 char sig_b64[KC_EDGE_SIG_B64_MAX], kiln_err_t *err);
/* 0 when sig_b64 is pk's signature of the call; KILN_EINVAL naming what is
 * wrong (not base64, wrong length, does not verify). */
int kc_edge_verify(const unsigned char pk[32], const char *method, const char *path,
                   int64_t time_ms, const void *body, size_t body_len, const char *sig_b64,
                   kiln_err_t *err);
/* A 32-byte public key from base64; KILN_EINVAL naming the field. */
int kc_edge_pk_decode(const char *b64, unsigned char pk[32], kiln_err_t *err);
void kc_edge_pk_encode(const unsigned char pk[32], char out[KC_EDGE_PK_B64_MAX]);
/* "1712345678901" -> ms; KILN_EINVAL for anything but a whole positive number. */
int kc_edge_time_parse(const char *s, int64_t *time_ms, kiln_err_t *err);

#endif
