/* bundle.h - the signed, optionally encrypted model bundle that kiln publishes
 * to an edge fleet and that kiln-edge verifies before it extracts anything
 * (DESIGN.md, "State, models and fleets" and "Security"; docs/edge.md,
 * "Bundles and keys").
 *
 * Keys (text files, one line "TAG base64\n"):
 *   publisher signing key  Ed25519, secret "KILN-ED25519-SK1" (mode 0600, owned
 *                          by us), public "KILN-ED25519-PK1" (not writable by
 *                          group/other: it is the device's trust anchor);
 *   fleet key              32 random bytes for XChaCha20-Poly1305,
 *                          "KILN-FLEET-KEY1" (mode 0600).
 *   Loading refuses symlinks, non-regular files and loose modes.
 *
 * Two published files:
 *   BUNDLE    header (100 bytes: "KILNBDL1", u8 encryption 0 none / 1
 *             XChaCha20-Poly1305, 3 zero bytes, fleet id NUL-padded to 64,
 *             24-byte nonce, zero without encryption) then the tar, or its
 *             AEAD ciphertext with the whole header as associated data.
 *             The tar (ustar/pax) holds exactly manifest.json, model.kmodel,
 *             featspec.json, regular files only.
 *   ENVELOPE  what the agent polls (small JSON):
 *             {"format":"kiln-envelope/1", "manifest":{...}, "seq":N,
 *              "expires":T, "rollback":false, "bundle_sha256":"..",
 *              "bundle_size":N, "sig":"base64 Ed25519"}
 *             sig covers "kiln-envelope/1\n" + the canonical JSON (compact,
 *             keys sorted, ASCII) of the envelope without "sig": every field
 *             an agent acts on is signed, and it is the agent's own parse,
 *             re-serialized, that is checked (no parser differential).
 *
 * manifest (also the tar's manifest.json, byte for byte its canonical JSON):
 *   schema "kiln-bundle/1", fleet, model {name, version (>0, increasing per
 *   model), id, sha256}, input_schema [feature names], metrics {...},
 *   lineage {run_id, dataset_sha256, featspec_sha256, code_version}, created,
 *   encryption "none"|"xchacha20poly1305", members [{name, size, sha256}] for
 *   model.kmodel and featspec.json (manifest.json cannot hash itself: it is
 *   compared with the signed manifest instead).
 *
 * Departures from the first sketch, and why: expires, rollback and a
 * per-fleet publication sequence number `seq` live in the envelope, not the
 * manifest, so `kiln rollback` re-signs the old bundle (st_bundle_reseal) in
 * place of rebuilding it; and `seq` (strictly increasing per fleet, kept by
 * the agent) stops the replay of an old but validly signed envelope - an old
 * rollback to v3 replayed when the fleet runs v7, or the superseded v5 replayed
 * after a rollback to v4 - which the version check alone lets through.
 *
 * Encryption is per fleet: with a fleet key the bundle is encrypted (the
 * default kiln setup: a fleet is created with a key), without one it is a
 * plaintext tar whose integrity still rests on the signed sha256.
 *
 * Agent order (st_bundle_verify_envelope, then st_bundle_extract): signature
 * with the enrolled public key -> fleet -> expiry -> version (> running, or
 * any other version when the signed envelope says rollback) -> seq > last
 * seen -> bundle size -> bundle sha256 -> header -> decrypt -> tar walk
 * (declared names only, regular files, no absolute path or "..", no links,
 * actual size <= declared, each sha256) -> write into a fresh staging
 * directory (0700, files 0600, O_EXCL|O_NOFOLLOW).  Everything is checked in
 * memory before the first byte is written; nothing is written outside the
 * staging directory, which does not exist after a refusal. */
#ifndef KILN_STORAGE_BUNDLE_H
#define KILN_STORAGE_BUNDLE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "core/kiln_err.h"

#define ST_BUNDLE_NAME_MAX      128               /* fleet and model names, with NUL */
#define ST_BUNDLE_ENVELOPE_MAX  ((size_t)1 << 20) /* bytes of envelope JSON */
#define ST_BUNDLE_MAX_BYTES     ((size_t)1 << 30) /* a bundle, and each member */
#define ST_BUNDLE_HEADER_BYTES  100

/* Why a bundle was refused: each check has its own reason.  The functions
 * return a KILN_E... code (the middle column); the reason's name also goes to
 * err->where. */
#define ST_BUNDLE_REASON_MAP(XX)                                        \
    XX(OK,           0,              "ok")                              \
    XX(FORMAT,       KILN_EFORMAT,   "envelope-format")                 \
    XX(SIGNATURE,    KILN_EFORMAT,   "signature")                       \
    XX(MANIFEST,     KILN_EFORMAT,   "manifest")                        \
    XX(FLEET,        KILN_ESTATE,    "fleet")                           \
    XX(EXPIRED,      KILN_ESTATE,    "expired")                         \
    XX(OLDER,        KILN_ESTATE,    "older-version")                   \
    XX(SAME_VERSION, KILN_ESTATE,    "same-version")                    \
    XX(REPLAY,       KILN_ESTATE,    "replayed-seq")                    \
    XX(NOT_VERIFIED, KILN_EINVAL,    "not-verified")                    \
    XX(IO,           KILN_EIO,       "io")                              \
    XX(SIZE,         KILN_EFORMAT,   "bundle-size")                     \
    XX(HASH,         KILN_EFORMAT,   "bundle-sha256")                   \
    XX(HEADER,       KILN_EFORMAT,   "bundle-header")                   \
    XX(NO_KEY,       KILN_EINVAL,    "no-fleet-key")                    \
    XX(DECRYPT,      KILN_EFORMAT,   "decrypt")                         \
    XX(TAR,          KILN_EFORMAT,   "tar")                             \
    XX(PATH,         KILN_EFORMAT,   "member-path")                     \
    XX(LINK,         KILN_EFORMAT,   "member-link")                     \
    XX(TYPE,         KILN_EFORMAT,   "member-type")                     \
    XX(UNDECLARED,   KILN_EFORMAT,   "member-undeclared")               \
    XX(DUPLICATE,    KILN_EFORMAT,   "member-duplicate")                \
    XX(MISSING,      KILN_EFORMAT,   "member-missing")                  \
    XX(TOO_BIG,      KILN_EFORMAT,   "member-too-big")                  \
    XX(MEMBER_HASH,  KILN_EFORMAT,   "member-sha256")                   \
    XX(STAGING,      KILN_EEXIST,    "staging")                         \
    XX(NOMEM,        KILN_ENOMEM,    "out-of-memory")

typedef enum {
#define ST_BUNDLE_XX_ENUM(name, code, text) ST_BUNDLE_R_##name,
    ST_BUNDLE_REASON_MAP(ST_BUNDLE_XX_ENUM)
#undef ST_BUNDLE_XX_ENUM
} st_bundle_reason_t;

/* "signature", "expired", ... (static). */
const char *st_bundle_reason_name(st_bundle_reason_t r);

/* ---- keys ------------------------------------------------------------- */

typedef struct { uint8_t pk[32]; } st_bundle_pubkey_t;
typedef struct { uint8_t sk[64]; uint8_t pk[32]; } st_bundle_signkey_t;
typedef struct { uint8_t key[32]; } st_bundle_fleetkey_t;

/* New Ed25519 pair: secret to sk_path (0600), public to pk_path (0644);
 * KILN_EEXIST if either exists (a key is never overwritten).  out may be
 * NULL. */
int st_bundle_keygen_sign(const char *sk_path, const char *pk_path, st_bundle_signkey_t *out,
                          kiln_err_t *err);
/* New fleet key to path (0600); KILN_EEXIST if it exists.  out may be NULL. */
int st_bundle_keygen_fleet(const char *path, st_bundle_fleetkey_t *out, kiln_err_t *err);
/* Loaders: KILN_EINVAL for a secret file readable or writable by group or
 * other, a public key writable by group or other, a symlink or a file of
 * another owner; KILN_EFORMAT for a file that is not the key it should be. */
int st_bundle_load_signkey(const char *path, st_bundle_signkey_t *out, kiln_err_t *err);
int st_bundle_load_pubkey(const char *path, st_bundle_pubkey_t *out, kiln_err_t *err);
int st_bundle_load_fleetkey(const char *path, st_bundle_fleetkey_t *out, kiln_err_t *err);
/* Zeroes a secret key in memory (sodium_memzero). */
void st_bundle_key_wipe(void *key, size_t len);

/* ---- publish ---------------------------------------------------------- */

/* What the caller states; strings and JSON are borrowed. */
typedef struct {
    const char   *fleet;
    const char   *model_name;
    uint64_t      version;        /* > 0 */
    const char   *model_id;       /* registry id */
    const json_t *input_schema;   /* array of names; NULL: the model file's feature_names */
    const json_t *metrics;        /* object; NULL: the model file's metrics (or {}) */
    const json_t *lineage;        /* object; NULL: dataset/featspec sha256 from the model */
    int64_t       created;        /* unix seconds */
    /* the release, in the envelope */
    uint64_t      seq;            /* > 0, strictly increasing per fleet */
    int64_t       expires;        /* unix seconds, > created */
    int           rollback;
} st_bundle_meta_t;

/* Builds the bundle from the .kmodel at model_path and the feature spec
 * text, signs its envelope, and writes both (PATH.tmp.PID, fsync, rename).
 * fleet_key NULL: plaintext tar. */
int st_bundle_create(const char *model_path, const char *featspec_json,
                     const st_bundle_meta_t *meta, const st_bundle_fleetkey_t *fleet_key,
                     const st_bundle_signkey_t *sk, const char *bundle_path,
                     const char *envelope_path, kiln_err_t *err);

/* Header + (encrypted) tar from tar bytes: *bundle kiln_malloc'd (caller
 * frees).  For publish and for tests that build their own tars. */
int st_bundle_wrap(const void *tar, size_t tar_len, const char *fleet,
                   const st_bundle_fleetkey_t *fleet_key, void **bundle, size_t *bundle_len,
                   kiln_err_t *err);

/* Signs an envelope for manifest (borrowed) over bundle bytes:
 * *envelope kiln_malloc'd NUL-terminated JSON text. */
int st_bundle_seal(const json_t *manifest, const void *bundle, size_t bundle_len, uint64_t seq,
                   int64_t expires, int rollback, const st_bundle_signkey_t *sk,
                   char **envelope, size_t *envelope_len, kiln_err_t *err);

/* A new envelope for the bundle an old envelope describes (kiln rollback):
 * the old one must carry sk's own valid signature (expiry not checked); the
 * bundle file must still match it.  Written to out_envelope_path by rename. */
int st_bundle_reseal(const char *old_envelope_path, const char *bundle_path, uint64_t seq,
                     int64_t expires, int rollback, const st_bundle_signkey_t *sk,
                     const char *out_envelope_path, kiln_err_t *err);
/* The same from the old envelope's bytes to *envelope (kiln_malloc'd, NUL-
 * terminated JSON).  seq 0: the old envelope's own seq (a refresh of its
 * expiry, which agents that applied that seq ignore). */
int st_bundle_reseal_bytes(const void *old_envelope, size_t old_len, const char *bundle_path,
                           uint64_t seq, int64_t expires, int rollback,
                           const st_bundle_signkey_t *sk, char **envelope, size_t *envelope_len,
                           kiln_err_t *err);

/* ---- agent ------------------------------------------------------------ */

/* What the device runs now. */
typedef struct {
    const char *fleet;        /* this device's fleet */
    const char *model_name;   /* NULL or "" when nothing runs */
    uint64_t    version;      /* of model_name; 0 when nothing runs */
    uint64_t    last_seq;     /* highest seq accepted before; 0 if none */
    int64_t     now;          /* unix seconds */
} st_bundle_device_t;

typedef struct {
    char     name[32];
    uint64_t size;
    char     sha256[65];
} st_bundle_member_t;

#define ST_BUNDLE_MEMBERS 2   /* declared in the manifest; plus manifest.json */

/* A verified envelope.  Only st_bundle_verify_envelope sets `verified`. */
typedef struct {
    int                verified;
    json_t            *manifest;          /* owned */
    char              *manifest_text;     /* owned: canonical JSON, = manifest.json */
    size_t             manifest_len;
    char               fleet[ST_BUNDLE_NAME_MAX];
    char               model_name[ST_BUNDLE_NAME_MAX];
    uint64_t           version;
    uint64_t           seq;
    int64_t            expires;
    int                rollback;
    int                encrypted;
    char               bundle_sha256[65];
    uint64_t           bundle_size;
    st_bundle_member_t members[ST_BUNDLE_MEMBERS];
} st_bundle_envelope_t;

/* Checks, in this order, signature (pk), fleet, expiry, version, seq of the
 * envelope text; fills out (free with st_bundle_envelope_free) only when all
 * pass.  why (may be NULL) gets the reason of a refusal. */
int st_bundle_verify_envelope(const void *bytes, size_t len, const st_bundle_pubkey_t *pk,
                              const st_bundle_device_t *dev, st_bundle_envelope_t *out,
                              st_bundle_reason_t *why, kiln_err_t *err);
/* Same from a file (at most ST_BUNDLE_ENVELOPE_MAX bytes). */
int st_bundle_verify_envelope_file(const char *path, const st_bundle_pubkey_t *pk,
                                   const st_bundle_device_t *dev, st_bundle_envelope_t *out,
                                   st_bundle_reason_t *why, kiln_err_t *err);
void st_bundle_envelope_free(st_bundle_envelope_t *env);

/* A member's bytes after every check. */
typedef struct {
    char    name[32];
    uint8_t *bytes;     /* owned */
    size_t   len;
} st_bundle_file_t;

typedef struct {
    st_bundle_file_t files[ST_BUNDLE_MEMBERS + 1];   /* manifest.json first */
    size_t           n;
} st_bundle_contents_t;

/* Size, sha256, header, decryption and tar walk of bundle bytes against a
 * verified envelope, in memory; out (free with st_bundle_contents_free)
 * only when all pass.  fleet_key may be NULL for a plaintext bundle. */
int st_bundle_unpack(const st_bundle_envelope_t *env, const void *bundle, size_t len,
                     const st_bundle_fleetkey_t *fleet_key, st_bundle_contents_t *out,
                     st_bundle_reason_t *why, kiln_err_t *err);
void st_bundle_contents_free(st_bundle_contents_t *c);

/* Reads bundle_path (a regular file, at most the declared size + 1 bytes
 * read), st_bundle_unpack, then creates staging_dir (0700; it must not
 * exist) and writes the three members into it (0600, O_EXCL|O_NOFOLLOW,
 * fsync).  On any refusal staging_dir does not exist afterwards. */
int st_bundle_extract(const st_bundle_envelope_t *env, const char *bundle_path,
                      const st_bundle_fleetkey_t *fleet_key, const char *staging_dir,
                      st_bundle_reason_t *why, kiln_err_t *err);

#endif
