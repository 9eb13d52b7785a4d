/* bundle_int.h - what the bundle's files (storage/bundle*.c) share and
 * nothing outside them may use: the formats' constants, the refusal helper,
 * hashing, the fleet id rule, bounded reads and atomic writes (bundle.c),
 * the canonical JSON and the unchecked envelope open (bundle_envelope.c),
 * and the tar (bundle_tar.c). */
#ifndef KILN_STORAGE_BUNDLE_INT_H
#define KILN_STORAGE_BUNDLE_INT_H

#include <sys/types.h>

#include "storage/bundle.h"

#define ENVELOPE_FORMAT "kiln-envelope/1"
#define MANIFEST_SCHEMA "kiln-bundle/1"
#define SIG_DOMAIN      "kiln-envelope/1\n"
#define ENC_NAME        "xchacha20poly1305"
#define FLEET_FIELD     64
#define NONCE_OFF       (8 + 4 + FLEET_FIELD)
#define JSON_CANON      (JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII)
#define MANIFEST_MEMBER "manifest.json"

/* The members the manifest declares, in its order: "model.kmodel",
 * "featspec.json". */
extern const char *const st_bundle_member_names[ST_BUNDLE_MEMBERS];

/* ---- bundle.c --------------------------------------------------------- */

/* A refusal: the reason to *why, its name to err->where, the message to err. */
__attribute__((format(printf, 4, 5)))
int st_bundle_refuse(st_bundle_reason_t *why, kiln_err_t *err, st_bundle_reason_t r,
                     const char *fmt, ...);
/* sodium_init, or KILN_EINTERNAL. */
int st_bundle_crypto_ready(kiln_err_t *err);
void st_bundle_sha256_hex(const void *p, size_t len, char hex[65]);
/* Fleet ids go into the header and file names: [A-Za-z0-9._-], 1..63. */
int st_bundle_valid_fleet(const char *s);
/* PATH.tmp.PID (O_EXCL, mode), fsync, then rename - or, with no_clobber,
 * link() so that an existing PATH is never replaced (keys). */
int st_bundle_write_atomic(const char *path, const void *bytes, size_t len, mode_t mode,
                           int no_clobber, kiln_err_t *err);
/* Up to max+1 bytes of a regular file: *bytes kiln_malloc'd, NUL-terminated. */
int st_bundle_read_bounded(const char *path, size_t max, unsigned char **bytes, size_t *len,
                           kiln_err_t *err);

/* ---- bundle_envelope.c ------------------------------------------------ */

/* kiln_malloc'd canonical text of j (JSON_CANON); *len may be NULL. */
char *st_bundle_canonical(const json_t *j, size_t *len);
/* Parse, signature, then the signed fields: no device checks, and out is
 * not marked verified (st_bundle_reseal re-signs what it opens). */
int st_bundle_open_envelope(const void *bytes, size_t len, const st_bundle_pubkey_t *pk,
                            st_bundle_envelope_t *out, st_bundle_reason_t *why, kiln_err_t *err);

/* ---- bundle_tar.c ----------------------------------------------------- */

/* A growing kiln_malloc'd buffer the tar is written into (p: caller frees). */
typedef struct {
    unsigned char *p;
    size_t         len, cap;
    int            oom;
} st_bundle_grow_t;

/* The tar: the declared members, each once, regular, within its declared
 * size and with its declared sha256 (manifest.json: the signed manifest). */
int st_bundle_walk_tar(const st_bundle_envelope_t *env, const unsigned char *tar, size_t tar_len,
                       st_bundle_contents_t *out, st_bundle_reason_t *why, kiln_err_t *err);
/* A pax tar of the n members, mtime = created, deterministic. */
int st_bundle_make_tar(const char *const *names, const void *const *data, const size_t *lens,
                       size_t n, int64_t mtime, st_bundle_grow_t *g, kiln_err_t *err);
/* XChaCha20-Poly1305 (IETF) open of c (ciphertext + 16-byte tag) with ad
 * into m (room for clen - 16): 0 with *mlen, -1 when it does not
 * authenticate (m zeroed) (bundle_aead.c). */
int st_bundle_aead_open(unsigned char *m, size_t *mlen, const unsigned char *c, size_t clen,
                        const unsigned char *ad, size_t adlen, const unsigned char nonce[24],
                        const unsigned char key[32]);

#endif
