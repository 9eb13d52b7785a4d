/* bundle.c - signed, per-fleet encrypted model bundles (bundle.h): keys,
 * the publisher's create/seal, and the agent's verify/unpack/extract, which
 * trust nothing in a bundle until the Ed25519 signature over its envelope and
 * the signed sha256 of its bytes have been checked. */
#include "storage/bundle.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/kiln_alloc.h"
#include "core/kiln_io.h"
#include "storage/sha256.h"

#define ENVELOPE_FORMAT "kiln-envelope/1"
#define MANIFEST_SCHEMA "kiln-bundle/1"
#define SIG_DOMAIN      "kiln-envelope/1\n"
#define ENC_NAME        "xchacha20poly1305"
#define FLEET_FIELD     64
#define NONCE_OFF       (8 + 4 + FLEET_FIELD)
#define JSON_CANON      (JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII)

static const char BUNDLE_MAGIC[8] = {'K', 'I', 'L', 'N', 'B', 'D', 'L', '1'};
static const char *const MEMBER_NAMES[ST_BUNDLE_MEMBERS] = {"model.kmodel", "featspec.json"};
#define MANIFEST_MEMBER "manifest.json"

_Static_assert(NONCE_OFF + crypto_aead_xchacha20poly1305_ietf_NPUBBYTES == ST_BUNDLE_HEADER_BYTES,
               "bundle header layout");

const char *st_bundle_reason_name(st_bundle_reason_t r)
{
    switch (r) {
#define ST_BUNDLE_XX_NAME(name, code, text) case ST_BUNDLE_R_##name: return text;
    ST_BUNDLE_REASON_MAP(ST_BUNDLE_XX_NAME)
#undef ST_BUNDLE_XX_NAME
    }
    return "unknown";
}

static int reason_code(st_bundle_reason_t r)
{
    switch (r) {
#define ST_BUNDLE_XX_CODE(name, code, text) case ST_BUNDLE_R_##name: return code;
    ST_BUNDLE_REASON_MAP(ST_BUNDLE_XX_CODE)
#undef ST_BUNDLE_XX_CODE
    }
    return KILN_EINTERNAL;
}

/* A refusal: the reason to *why, its name to err->where, the message to err. */
__attribute__((format(printf, 4, 5)))
static int refuse(st_bundle_reason_t *why, kiln_err_t *err, st_bundle_reason_t r,
                  const char *fmt, ...)
{
    char msg[700];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (why)
        *why = r;
    return kiln_err_at(err, reason_code(r), st_bundle_reason_name(r), "%s", msg);
}

static int crypto_ready(kiln_err_t *err)
{
    if (sodium_init() < 0)
        return kiln_err_set(err, KILN_EINTERNAL, "bundle: libsodium failed to initialize");
    return 0;
}

static void sha256_hex(const void *p, size_t len, char hex[65])
{
    st_sha256_t h;
    uint8_t d[32];
    st_sha256_init(&h);
    st_sha256_update(&h, p, len);
    st_sha256_final(&h, d);
    st_sha256_hex(d, hex);
}

static int is_hex64(const char *s)
{
    if (!s || strlen(s) != 64)
        return 0;
    for (int i = 0; i < 64; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return 1;
}

/* Fleet ids go into the header and file names: [A-Za-z0-9._-], 1..63. */
static int valid_fleet(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n >= FLEET_FIELD || s[0] == '.')
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

/* ---- files ------------------------------------------------------------ */

/* PATH.tmp.PID (O_EXCL, mode), fsync, then rename - or, with no_clobber,
 * link() so that an existing PATH is never replaced (keys). */
static int write_atomic(const char *path, const void *bytes, size_t len, mode_t mode,
                        int no_clobber, kiln_err_t *err)
{
    char tmp[4200];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid()) >= (int)sizeof tmp)
        return kiln_err_set(err, KILN_EINVAL, "%s: path too long", path);
    unlink(tmp);   /* a leftover of a dead process with our pid */
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
    if (fd < 0)
        return kiln_err_set(err, KILN_EIO, "%s: %s", tmp, strerror(errno));
    if (fchmod(fd, mode) < 0 || kiln_write_all(fd, bytes, len) < 0 || fsync(fd) < 0) {
        int e = errno;
        close(fd);
        unlink(tmp);
        return kiln_err_set(err, KILN_EIO, "%s: %s", tmp, strerror(e));
    }
    close(fd);
    int rc = no_clobber ? link(tmp, path) : rename(tmp, path);
    int e = errno;
    unlink(tmp);
    if (rc < 0)
        return kiln_err_set(err, e == EEXIST ? KILN_EEXIST : KILN_EIO, "%s: %s", path,
                            e == EEXIST ? "already exists (a key is never overwritten)"
                                        : strerror(e));
    return 0;
}

/* Up to max+1 bytes of a regular file (so "longer than max" is seen without
 * reading an endless file): *bytes kiln_malloc'd, NUL-terminated. */
static int read_bounded(const char *path, size_t max, unsigned char **bytes, size_t *len,
                        kiln_err_t *err)
{
    *bytes = NULL;
    *len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return kiln_err_set(err, errno == ENOENT ? KILN_ENOTFOUND : KILN_EIO, "%s: %s", path,
                            strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return kiln_err_set(err, KILN_EIO, "%s: not a regular file", path);
    }
    size_t cap = (size_t)sb.st_size < max ? (size_t)sb.st_size + 1 : max + 1;
    unsigned char *p = kiln_malloc(cap + 1);
    if (!p) {
        close(fd);
        return kiln_err_set(err, KILN_ENOMEM, "%s: out of memory", path);
    }
    size_t got = 0;
    while (got < cap) {
        ssize_t r = read(fd, p + got, cap - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = errno;
            close(fd);
            kiln_free(p);
            return kiln_err_set(err, KILN_EIO, "%s: %s", path, strerror(e));
        }
        if (r == 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    p[got] = 0;
    *bytes = p;
    *len = got;
    return 0;
}

/* ---- keys ------------------------------------------------------------- */

#define TAG_SK    "KILN-ED25519-SK1"
#define TAG_PK    "KILN-ED25519-PK1"
#define TAG_FLEET "KILN-FLEET-KEY1"

static int write_key(const char *path, const char *tag, const uint8_t *key, size_t n,
                     mode_t mode, kiln_err_t *err)
{
    char line[256];
    size_t b64 = sodium_base64_encoded_len(n, sodium_base64_VARIANT_ORIGINAL);
    int off = snprintf(line, sizeof line, "%s ", tag);
    sodium_bin2base64(line + off, sizeof line - (size_t)off - 1, key, n,
                      sodium_base64_VARIANT_ORIGINAL);
    size_t len = (size_t)off + b64 - 1;
    line[len++] = '\n';
    int rc = write_atomic(path, line, len, mode, 1, err);
    sodium_memzero(line, sizeof line);
    return rc;
}

/* secret: no bits for group/other; public: not writable by group/other.
 * Both: a regular file of ours, not reached through a symlink. */
static int read_key(const char *path, const char *tag, uint8_t *key, size_t n, int secret,
                    kiln_err_t *err)
{
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return kiln_err_at(err, errno == ENOENT ? KILN_ENOTFOUND : KILN_EINVAL,
                           "key-permissions", "key %s: %s%s", path, strerror(errno),
                           errno == ELOOP ? " (a key file must not be a symlink)" : "");
    struct stat sb;
    char buf[257];
    ssize_t got = -1;
    int rc = 0;
    if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode)) {
        rc = kiln_err_at(err, KILN_EINVAL, "key-permissions", "key %s: not a regular file", path);
    } else if (sb.st_uid != geteuid()) {
        rc = kiln_err_at(err, KILN_EINVAL, "key-permissions",
                         "key %s: owned by uid %u, not by this process's uid %u", path,
                         (unsigned)sb.st_uid, (unsigned)geteuid());
    } else if (secret && (sb.st_mode & 077)) {
        rc = kiln_err_at(err, KILN_EINVAL, "key-permissions",
                         "secret key %s: mode %04o lets group or others read or change it; "
                         "chmod 600 it (and consider it leaked)",
                         path, (unsigned)(sb.st_mode & 07777));
    } else if (!secret && (sb.st_mode & 022)) {
        rc = kiln_err_at(err, KILN_EINVAL, "key-permissions",
                         "public key %s: mode %04o lets group or others replace the trust "
                         "anchor; chmod 644 it",
                         path, (unsigned)(sb.st_mode & 07777));
    } else {
        got = read(fd, buf, sizeof buf - 1);
    }
    close(fd);
    if (rc < 0)
        return rc;
    if (got < 0)
        return kiln_err_set(err, KILN_EIO, "key %s: %s", path, strerror(errno));
    buf[got] = 0;
    size_t tl = strlen(tag), bin_len = 0;
    const char *end = NULL;
    if ((size_t)got <= tl + 1 || memcmp(buf, tag, tl) || buf[tl] != ' ' ||
        sodium_base642bin(key, n, buf + tl + 1, (size_t)got - tl - 1, "\n", &bin_len, &end,
                          sodium_base64_VARIANT_ORIGINAL) != 0 ||
        bin_len != n || (size_t)(end - buf) != (size_t)got)
        rc = kiln_err_set(err, KILN_EFORMAT, "key %s: not a %s key file", path, tag);
    sodium_memzero(buf, sizeof buf);
    return rc;
}

int st_bundle_keygen_sign(const char *sk_path, const char *pk_path, st_bundle_signkey_t *out,
                          kiln_err_t *err)
{
    int rc;
    if ((rc = crypto_ready(err)) < 0)
        return rc;
    if (access(sk_path, F_OK) == 0 || access(pk_path, F_OK) == 0)
        return kiln_err_set(err, KILN_EEXIST, "%s or %s already exists (a key is never "
                            "overwritten)", sk_path, pk_path);
    st_bundle_signkey_t k;
    crypto_sign_keypair(k.pk, k.sk);
    rc = write_key(sk_path, TAG_SK, k.sk, sizeof k.sk, 0600, err);
    if (rc == 0 && (rc = write_key(pk_path, TAG_PK, k.pk, sizeof k.pk, 0644, err)) < 0)
        unlink(sk_path);
    if (rc == 0 && out)
        *out = k;
    sodium_memzero(&k, sizeof k);
    return rc;
}

int st_bundle_keygen_fleet(const char *path, st_bundle_fleetkey_t *out, kiln_err_t *err)
{
    int rc;
    if ((rc = crypto_ready(err)) < 0)
        return rc;
    st_bundle_fleetkey_t k;
    crypto_aead_xchacha20poly1305_ietf_keygen(k.key);
    rc = write_key(path, TAG_FLEET, k.key, sizeof k.key, 0600, err);
    if (rc == 0 && out)
        *out = k;
    sodium_memzero(&k, sizeof k);
    return rc;
}

int st_bundle_load_signkey(const char *path, st_bundle_signkey_t *out, kiln_err_t *err)
{
    int rc;
    if ((rc = crypto_ready(err)) < 0 ||
        (rc = read_key(path, TAG_SK, out->sk, sizeof out->sk, 1, err)) < 0)
        return rc;
    crypto_sign_ed25519_sk_to_pk(out->pk, out->sk);
    return 0;
}

int st_bundle_load_pubkey(const char *path, st_bundle_pubkey_t *out, kiln_err_t *err)
{
    int rc = crypto_ready(err);
    return rc < 0 ? rc : read_key(path, TAG_PK, out->pk, sizeof out->pk, 0, err);
}

int st_bundle_load_fleetkey(const char *path, st_bundle_fleetkey_t *out, kiln_err_t *err)
{
    int rc = crypto_ready(err);
    return rc < 0 ? rc : read_key(path, TAG_FLEET, out->key, sizeof out->key, 1, err);
}

void st_bundle_key_wipe(void *key, size_t len)
{
    sodium_memzero(key, len);
}

/* ---- envelope --------------------------------------------------------- */

/* kiln_malloc'd canonical text of j. */
static char *canonical(const json_t *j, size_t *len)
{
    char *t = json_dumps(j, JSON_CANON);
    if (!t)
        return NULL;
    size_t n = strlen(t);
    char *out = kiln_malloc(n + 1);
    if (out)
        memcpy(out, t, n + 1);
    free(t);
    if (len)
        *len = n;
    return out;
}

/* Ed25519 over SIG_DOMAIN + canonical(env without "sig"). */
static int sign_message(const json_t *unsigned_env, unsigned char **msg, size_t *msg_len)
{
    size_t n;
    char *t = canonical(unsigned_env, &n);
    if (!t)
        return -1;
    size_t dl = strlen(SIG_DOMAIN);
    *msg = kiln_malloc(dl + n);
    if (!*msg) {
        kiln_free(t);
        return -1;
    }
    memcpy(*msg, SIG_DOMAIN, dl);
    memcpy(*msg + dl, t, n);
    *msg_len = dl + n;
    kiln_free(t);
    return 0;
}

int st_bundle_seal(const json_t *manifest, const void *bundle, size_t bundle_len, uint64_t seq,
                   int64_t expires, int rollback, const st_bundle_signkey_t *sk,
                   char **envelope, size_t *envelope_len, kiln_err_t *err)
{
    *envelope = NULL;
    int rc;
    if ((rc = crypto_ready(err)) < 0)
        return rc;
    if (!json_is_object(manifest) || !sk || seq == 0 || seq > INT64_MAX ||
        bundle_len > ST_BUNDLE_MAX_BYTES)
        return kiln_err_set(err, KILN_EINVAL, "seal: no manifest or key, seq 0, or bundle "
                            "over %zu bytes", ST_BUNDLE_MAX_BYTES);
    /* the agent re-serializes its own parse: that must give the same bytes */
    size_t n1, n2;
    char *t1 = canonical(manifest, &n1), *t2 = NULL;
    json_t *back = t1 ? json_loadb(t1, n1, JSON_REJECT_DUPLICATES, NULL) : NULL;
    if (back)
        t2 = canonical(back, &n2);
    int same = t1 && t2 && n1 == n2 && memcmp(t1, t2, n1) == 0;
    json_decref(back);
    kiln_free(t1);
    kiln_free(t2);
    if (!same)
        return kiln_err_set(err, KILN_EINVAL, "seal: the manifest does not survive a JSON "
                            "round trip unchanged (a number that prints differently?)");
    char hex[65];
    sha256_hex(bundle, bundle_len, hex);
    json_t *env = json_pack("{s:s, s:O, s:I, s:I, s:b, s:s, s:I}", "format", ENVELOPE_FORMAT,
                            "manifest", manifest, "seq", (json_int_t)seq, "expires",
                            (json_int_t)expires, "rollback", rollback ? 1 : 0, "bundle_sha256",
                            hex, "bundle_size", (json_int_t)bundle_len);
    unsigned char *msg = NULL, sig[crypto_sign_BYTES];
    size_t msg_len = 0;
    char b64[sodium_base64_ENCODED_LEN(crypto_sign_BYTES, sodium_base64_VARIANT_ORIGINAL)];
    if (!env || sign_message(env, &msg, &msg_len) < 0) {
        json_decref(env);
        return kiln_err_set(err, KILN_ENOMEM, "seal: out of memory");
    }
    crypto_sign_detached(sig, NULL, msg, msg_len, sk->sk);
    kiln_free(msg);
    sodium_bin2base64(b64, sizeof b64, sig, sizeof sig, sodium_base64_VARIANT_ORIGINAL);
    if (json_object_set_new(env, "sig", json_string(b64)) < 0 ||
        !(*envelope = canonical(env, envelope_len))) {
        json_decref(env);
        return kiln_err_set(err, KILN_ENOMEM, "seal: out of memory");
    }
    json_decref(env);
    return 0;
}

static int get_int(const json_t *o, const char *key, json_int_t lo, json_int_t *v)
{
    const json_t *j = json_object_get(o, key);
    if (!json_is_integer(j) || json_integer_value(j) < lo)
        return -1;
    *v = json_integer_value(j);
    return 0;
}

static int copy_str(const json_t *o, const char *key, char *dst, size_t cap)
{
    const char *s = json_string_value(json_object_get(o, key));
    if (!s || !s[0] || strlen(s) >= cap)
        return -1;
    memcpy(dst, s, strlen(s) + 1);
    return 0;
}

/* The signed fields into out (after the signature checked). */
static int parse_signed(json_t *root, st_bundle_envelope_t *out, st_bundle_reason_t *why,
                        kiln_err_t *err)
{
    json_t *m = json_object_get(root, "manifest");
    json_t *model = json_object_get(m, "model");
    json_t *members = json_object_get(m, "members");
    const char *enc = json_string_value(json_object_get(m, "encryption"));
    const char *schema = json_string_value(json_object_get(m, "schema"));
    json_int_t version, seq, expires, size;
    if (!schema || strcmp(schema, MANIFEST_SCHEMA))
        return refuse(why, err, ST_BUNDLE_R_MANIFEST, "manifest schema is \"%.60s\", not \"%s\"",
                      schema ? schema : "", MANIFEST_SCHEMA);
    if (copy_str(m, "fleet", out->fleet, sizeof out->fleet) < 0 || !valid_fleet(out->fleet) ||
        copy_str(model, "name", out->model_name, sizeof out->model_name) < 0 ||
        get_int(model, "version", 1, &version) < 0 || !enc ||
        (strcmp(enc, "none") && strcmp(enc, ENC_NAME)) || !json_is_array(members) ||
        json_array_size(members) != ST_BUNDLE_MEMBERS ||
        !json_is_array(json_object_get(m, "input_schema")))
        return refuse(why, err, ST_BUNDLE_R_MANIFEST, "manifest: fleet, model.name, "
                      "model.version, encryption, input_schema or members missing or invalid");
    if (get_int(root, "seq", 1, &seq) < 0 || get_int(root, "expires", 0, &expires) < 0 ||
        get_int(root, "bundle_size", ST_BUNDLE_HEADER_BYTES, &size) < 0 ||
        (uint64_t)size > ST_BUNDLE_MAX_BYTES || !json_is_boolean(json_object_get(root, "rollback")) ||
        copy_str(root, "bundle_sha256", out->bundle_sha256, sizeof out->bundle_sha256) < 0 ||
        !is_hex64(out->bundle_sha256))
        return refuse(why, err, ST_BUNDLE_R_MANIFEST, "envelope: seq, expires, rollback, "
                      "bundle_sha256 or bundle_size missing or invalid");
    for (size_t i = 0; i < ST_BUNDLE_MEMBERS; i++) {
        const json_t *e = json_array_get(members, i);
        const char *name = json_string_value(json_object_get(e, "name"));
        json_int_t msize;
        st_bundle_member_t *d = &out->members[i];
        if (!name || strcmp(name, MEMBER_NAMES[i]) || get_int(e, "size", 0, &msize) < 0 ||
            (uint64_t)msize > ST_BUNDLE_MAX_BYTES ||
            copy_str(e, "sha256", d->sha256, sizeof d->sha256) < 0 || !is_hex64(d->sha256))
            return refuse(why, err, ST_BUNDLE_R_MANIFEST, "manifest: member %zu must be "
                          "{\"name\":\"%s\", \"size\", \"sha256\"}", i, MEMBER_NAMES[i]);
        snprintf(d->name, sizeof d->name, "%s", name);
        d->size = (uint64_t)msize;
    }
    out->version = (uint64_t)version;
    out->seq = (uint64_t)seq;
    out->expires = (int64_t)expires;
    out->bundle_size = (uint64_t)size;
    out->rollback = json_is_true(json_object_get(root, "rollback"));
    out->encrypted = strcmp(enc, ENC_NAME) == 0;
    out->manifest = json_incref(m);
    if (!(out->manifest_text = canonical(m, &out->manifest_len)))
        return refuse(why, err, ST_BUNDLE_R_NOMEM, "envelope: out of memory");
    return 0;
}

/* Parse, signature, then the signed fields: no device checks. */
static int open_envelope(const void *bytes, size_t len, const st_bundle_pubkey_t *pk,
                         st_bundle_envelope_t *out, st_bundle_reason_t *why, kiln_err_t *err)
{
    static const char *const KEYS[] = {"format", "manifest", "seq", "expires", "rollback",
                                       "bundle_sha256", "bundle_size", "sig"};
    memset(out, 0, sizeof *out);
    int rc;
    if ((rc = crypto_ready(err)) < 0)
        return rc;
    if (len > ST_BUNDLE_ENVELOPE_MAX)
        return refuse(why, err, ST_BUNDLE_R_FORMAT, "envelope: %zu bytes, over the %zu limit",
                      len, ST_BUNDLE_ENVELOPE_MAX);
    json_error_t jerr;
    json_t *root = json_loadb(bytes, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root || !json_is_object(root)) {
        json_decref(root);
        return refuse(why, err, ST_BUNDLE_R_FORMAT, "envelope: not a JSON object (%s, line %d)",
                      root ? "another type" : jerr.text, jerr.line);
    }
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v) {
        size_t k = 0;
        while (k < sizeof KEYS / sizeof KEYS[0] && strcmp(key, KEYS[k]))
            k++;
        if (k == sizeof KEYS / sizeof KEYS[0]) {
            rc = refuse(why, err, ST_BUNDLE_R_FORMAT, "envelope: unknown field \"%.60s\"", key);
            goto out;
        }
    }
    const char *format = json_string_value(json_object_get(root, "format"));
    const char *sig64 = json_string_value(json_object_get(root, "sig"));
    unsigned char sig[crypto_sign_BYTES];
    size_t sig_len = 0;
    if (!format || strcmp(format, ENVELOPE_FORMAT) || !json_is_object(json_object_get(root,
                                                                                   "manifest"))) {
        rc = refuse(why, err, ST_BUNDLE_R_FORMAT, "envelope: format is not \"%s\" or no "
                    "manifest object", ENVELOPE_FORMAT);
        goto out;
    }
    if (!sig64 || sodium_base642bin(sig, sizeof sig, sig64, strlen(sig64), NULL, &sig_len, NULL,
                                    sodium_base64_VARIANT_ORIGINAL) != 0 ||
        sig_len != sizeof sig) {
        rc = refuse(why, err, ST_BUNDLE_R_SIGNATURE, "envelope: \"sig\" is not a base64 "
                    "Ed25519 signature");
        goto out;
    }
    json_object_del(root, "sig");
    unsigned char *msg;
    size_t msg_len;
    if (sign_message(root, &msg, &msg_len) < 0) {
        rc = refuse(why, err, ST_BUNDLE_R_NOMEM, "envelope: out of memory");
        goto out;
    }
    int bad = crypto_sign_verify_detached(sig, msg, msg_len, pk->pk);
    kiln_free(msg);
    if (bad) {
        rc = refuse(why, err, ST_BUNDLE_R_SIGNATURE, "envelope signature does not verify with "
                    "the enrolled publisher key: altered after signing, or signed by another "
                    "key");
        goto out;
    }
    rc = parse_signed(root, out, why, err);
out:
    json_decref(root);
    if (rc < 0)
        st_bundle_envelope_free(out);
    return rc;
}

int st_bundle_verify_envelope(const void *bytes, size_t len, const st_bundle_pubkey_t *pk,
                              const st_bundle_device_t *dev, st_bundle_envelope_t *out,
                              st_bundle_reason_t *why, kiln_err_t *err)
{
    if (why)
        *why = ST_BUNDLE_R_OK;
    if (!bytes || !pk || !dev || !dev->fleet || !out) {
        if (out)
            memset(out, 0, sizeof *out);
        return refuse(why, err, ST_BUNDLE_R_NOT_VERIFIED, "verify: missing argument");
    }
    int rc = open_envelope(bytes, len, pk, out, why, err);
    if (rc < 0)
        return rc;
    const int running = dev->model_name && dev->model_name[0] &&
                        strcmp(dev->model_name, out->model_name) == 0;
    if (strcmp(out->fleet, dev->fleet))
        rc = refuse(why, err, ST_BUNDLE_R_FLEET, "bundle is for fleet \"%s\", this device is in "
                    "fleet \"%.100s\"", out->fleet, dev->fleet);
    else if (dev->now >= out->expires)
        rc = refuse(why, err, ST_BUNDLE_R_EXPIRED, "envelope for %s v%llu expired at %lld (now "
                    "%lld): a stale or withheld update", out->model_name,
                    (unsigned long long)out->version, (long long)out->expires,
                    (long long)dev->now);
    else if (running && out->version == dev->version)
        rc = refuse(why, err, ST_BUNDLE_R_SAME_VERSION, "%s v%llu is the version already running",
                    out->model_name, (unsigned long long)out->version);
    else if (running && out->version < dev->version && !out->rollback)
        rc = refuse(why, err, ST_BUNDLE_R_OLDER, "%s v%llu is older than the running v%llu and "
                    "the envelope is not a signed rollback", out->model_name,
                    (unsigned long long)out->version, (unsigned long long)dev->version);
    else if (out->seq <= dev->last_seq)
        rc = refuse(why, err, ST_BUNDLE_R_REPLAY, "envelope seq %llu is not above the last "
                    "accepted seq %llu: a replayed publication",
                    (unsigned long long)out->seq, (unsigned long long)dev->last_seq);
    if (rc < 0) {
        st_bundle_envelope_free(out);
        return rc;
    }
    out->verified = 1;
    return 0;
}

int st_bundle_verify_envelope_file(const char *path, const st_bundle_pubkey_t *pk,
                                   const st_bundle_device_t *dev, st_bundle_envelope_t *out,
                                   st_bundle_reason_t *why, kiln_err_t *err)
{
    unsigned char *bytes;
    size_t len;
    memset(out, 0, sizeof *out);
    int rc = read_bounded(path, ST_BUNDLE_ENVELOPE_MAX, &bytes, &len, err);
    if (rc < 0) {
        if (why)
            *why = ST_BUNDLE_R_IO;
        return rc;
    }
    rc = st_bundle_verify_envelope(bytes, len, pk, dev, out, why, err);
    kiln_free(bytes);
    return rc;
}

void st_bundle_envelope_free(st_bundle_envelope_t *env)
{
    if (!env)
        return;
    json_decref(env->manifest);
    kiln_free(env->manifest_text);
    memset(env, 0, sizeof *env);
}

/* ---- bundle bytes ----------------------------------------------------- */

int st_bundle_wrap(const void *tar, size_t tar_len, const char *fleet,
                   const st_bundle_fleetkey_t *fleet_key, void **bundle, size_t *bundle_len,
                   kiln_err_t *err)
{
    *bundle = NULL;
    *bundle_len = 0;
    int rc;
    if ((rc = crypto_ready(err)) < 0)
        return rc;
    if (!valid_fleet(fleet))
        return kiln_err_set(err, KILN_EINVAL, "bundle: fleet id \"%.80s\" must be 1-63 of "
                            "[A-Za-z0-9._-]", fleet ? fleet : "");
    size_t extra = fleet_key ? crypto_aead_xchacha20poly1305_ietf_ABYTES : 0;
    if (tar_len > ST_BUNDLE_MAX_BYTES - ST_BUNDLE_HEADER_BYTES - extra)
        return kiln_err_set(err, KILN_EINVAL, "bundle: over %zu bytes", ST_BUNDLE_MAX_BYTES);
    unsigned char *b = kiln_calloc(1, ST_BUNDLE_HEADER_BYTES + tar_len + extra);
    if (!b)
        return kiln_err_set(err, KILN_ENOMEM, "bundle: out of memory");
    memcpy(b, BUNDLE_MAGIC, 8);
    b[8] = fleet_key ? 1 : 0;
    memcpy(b + 12, fleet, strlen(fleet));
    if (fleet_key) {
        randombytes_buf(b + NONCE_OFF, crypto_aead_xchacha20poly1305_ietf_NPUBBYTES);
        unsigned long long clen;
        crypto_aead_xchacha20poly1305_ietf_encrypt(b + ST_BUNDLE_HEADER_BYTES, &clen, tar,
                                                   tar_len, b, ST_BUNDLE_HEADER_BYTES, NULL,
                                                   b + NONCE_OFF, fleet_key->key);
    } else if (tar_len) {
        memcpy(b + ST_BUNDLE_HEADER_BYTES, tar, tar_len);
    }
    *bundle = b;
    *bundle_len = ST_BUNDLE_HEADER_BYTES + tar_len + extra;
    return 0;
}

static int has_dotdot(const char *path)
{
    for (const char *p = path; *p;) {
        const char *slash = strchr(p, '/');
        size_t n = slash ? (size_t)(slash - p) : strlen(p);
        if (n == 2 && p[0] == '.' && p[1] == '.')
            return 1;
        p += n;
        while (*p == '/')
            p++;
    }
    return 0;
}

/* The tar: the declared members, each once, regular, within its declared
 * size and with its declared sha256 (manifest.json: the signed manifest). */
static int walk_tar(const st_bundle_envelope_t *env, const unsigned char *tar, size_t tar_len,
                    st_bundle_contents_t *out, st_bundle_reason_t *why, kiln_err_t *err)
{
    const char *names[ST_BUNDLE_MEMBERS + 1] = {MANIFEST_MEMBER};
    uint64_t sizes[ST_BUNDLE_MEMBERS + 1] = {env->manifest_len};
    for (size_t i = 0; i < ST_BUNDLE_MEMBERS; i++) {
        names[i + 1] = env->members[i].name;
        sizes[i + 1] = env->members[i].size;
    }
    int seen[ST_BUNDLE_MEMBERS + 1] = {0};
    struct archive *a = archive_read_new();
    if (!a)
        return refuse(why, err, ST_BUNDLE_R_NOMEM, "tar: out of memory");
    archive_read_support_format_tar(a);
    int rc = 0;
    if (archive_read_open_memory(a, tar, tar_len) != ARCHIVE_OK) {
        rc = refuse(why, err, ST_BUNDLE_R_TAR, "bundle content is not a tar: %s",
                    archive_error_string(a) ? archive_error_string(a) : "?");
        goto out;
    }
    for (;;) {
        struct archive_entry *e;
        int r = archive_read_next_header(a, &e);
        if (r == ARCHIVE_EOF)
            break;
        if (r != ARCHIVE_OK) {
            rc = refuse(why, err, ST_BUNDLE_R_TAR, "tar: bad header after %zu members: %s",
                        out->n, archive_error_string(a) ? archive_error_string(a) : "?");
            goto out;
        }
        const char *name = archive_entry_pathname(e);
        if (!name || !name[0]) {
            rc = refuse(why, err, ST_BUNDLE_R_PATH, "tar: a member without a usable name");
            goto out;
        }
        if (name[0] == '/') {
            rc = refuse(why, err, ST_BUNDLE_R_PATH, "tar member \"%.200s\": absolute path", name);
            goto out;
        }
        if (has_dotdot(name)) {
            rc = refuse(why, err, ST_BUNDLE_R_PATH, "tar member \"%.200s\": \"..\" in the path",
                        name);
            goto out;
        }
        if (archive_entry_hardlink(e)) {
            rc = refuse(why, err, ST_BUNDLE_R_LINK, "tar member \"%.200s\": hard link to "
                        "\"%.200s\"", name, archive_entry_hardlink(e));
            goto out;
        }
        if (archive_entry_symlink(e) || archive_entry_filetype(e) == AE_IFLNK) {
            rc = refuse(why, err, ST_BUNDLE_R_LINK, "tar member \"%.200s\": symbolic link to "
                        "\"%.200s\"", name,
                        archive_entry_symlink(e) ? archive_entry_symlink(e) : "?");
            goto out;
        }
        if (archive_entry_filetype(e) != AE_IFREG || archive_entry_sparse_count(e) > 0) {
            rc = refuse(why, err, ST_BUNDLE_R_TYPE, "tar member \"%.200s\": not a plain regular "
                        "file (type 0%o)", name, (unsigned)archive_entry_filetype(e));
            goto out;
        }
        size_t k = 0;
        while (k <= ST_BUNDLE_MEMBERS && strcmp(name, names[k]))
            k++;
        if (k > ST_BUNDLE_MEMBERS) {
            rc = refuse(why, err, ST_BUNDLE_R_UNDECLARED, "tar member \"%.200s\" is not declared "
                        "in the signed manifest", name);
            goto out;
        }
        if (seen[k]) {
            rc = refuse(why, err, ST_BUNDLE_R_DUPLICATE, "tar member \"%s\" appears twice", name);
            goto out;
        }
        seen[k] = 1;
        if (archive_entry_size_is_set(e) && archive_entry_size(e) >= 0 &&
            (uint64_t)archive_entry_size(e) > sizes[k]) {
            rc = refuse(why, err, ST_BUNDLE_R_TOO_BIG, "tar member \"%s\": %lld bytes, more "
                        "than the declared %llu", name, (long long)archive_entry_size(e),
                        (unsigned long long)sizes[k]);
            goto out;
        }
        /* read at most declared + 1 bytes, whatever the header said */
        st_bundle_file_t *f = &out->files[out->n];
        size_t want = (size_t)sizes[k] + 1, got = 0;
        if (!(f->bytes = kiln_malloc(want))) {
            rc = refuse(why, err, ST_BUNDLE_R_NOMEM, "tar member \"%s\": out of memory", name);
            goto out;
        }
        snprintf(f->name, sizeof f->name, "%s", names[k]);
        out->n++;
        while (got < want) {
            la_ssize_t n = archive_read_data(a, f->bytes + got, want - got);
            if (n < 0) {
                rc = refuse(why, err, ST_BUNDLE_R_TAR, "tar member \"%s\": %s", name,
                            archive_error_string(a) ? archive_error_string(a) : "read error");
                goto out;
            }
            if (n == 0)
                break;
            got += (size_t)n;
        }
        f->len = got;
        if (got > sizes[k]) {
            rc = refuse(why, err, ST_BUNDLE_R_TOO_BIG, "tar member \"%s\": more than the "
                        "declared %llu bytes (stopped reading there)", name,
                        (unsigned long long)sizes[k]);
            goto out;
        }
        char hex[65];
        sha256_hex(f->bytes, got, hex);
        if (k == 0 ? (got != env->manifest_len || memcmp(f->bytes, env->manifest_text, got))
                   : (got != sizes[k] || strcmp(hex, env->members[k - 1].sha256))) {
            rc = refuse(why, err, ST_BUNDLE_R_MEMBER_HASH, k == 0
                        ? "tar member \"%s\" differs from the signed manifest (%zu bytes, "
                          "sha256 %s)"
                        : "tar member \"%s\" (%zu bytes, sha256 %s) does not match its "
                          "declared size and sha256", name, got, hex);
            goto out;
        }
    }
    for (size_t k = 0; k <= ST_BUNDLE_MEMBERS; k++)
        if (!seen[k]) {
            rc = refuse(why, err, ST_BUNDLE_R_MISSING, "tar: declared member \"%s\" is missing",
                        names[k]);
            goto out;
        }
out:
    archive_read_free(a);
    return rc;
}

int st_bundle_unpack(const st_bundle_envelope_t *env, const void *bundle, size_t len,
                     const st_bundle_fleetkey_t *fleet_key, st_bundle_contents_t *out,
                     st_bundle_reason_t *why, kiln_err_t *err)
{
    memset(out, 0, sizeof *out);
    if (why)
        *why = ST_BUNDLE_R_OK;
    if (!env || !env->verified || !env->manifest_text)
        return refuse(why, err, ST_BUNDLE_R_NOT_VERIFIED, "unpack: the envelope was not "
                      "verified (st_bundle_verify_envelope first)");
    int rc;
    if ((rc = crypto_ready(err)) < 0)
        return rc;
    const unsigned char *b = bundle;
    if (len != env->bundle_size)
        return refuse(why, err, ST_BUNDLE_R_SIZE, "bundle is %s%zu bytes, the signed envelope "
                      "says %llu (truncated or padded)", len > env->bundle_size ? "at least " : "",
                      len, (unsigned long long)env->bundle_size);
    char hex[65];
    sha256_hex(b, len, hex);
    if (strcmp(hex, env->bundle_sha256))
        return refuse(why, err, ST_BUNDLE_R_HASH, "bundle sha256 %s is not the signed %s: "
                      "altered or another bundle", hex, env->bundle_sha256);
    /* from here on the bytes are the publisher's; the checks below catch
     * publisher bugs and hand-made bundles, and the wrong fleet key */
    char fleet[FLEET_FIELD];
    memcpy(fleet, b + 12, FLEET_FIELD);
    if (memcmp(b, BUNDLE_MAGIC, 8) || b[8] > 1 || b[9] || b[10] || b[11] ||
        fleet[FLEET_FIELD - 1] || strcmp(fleet, env->fleet) || b[8] != (env->encrypted ? 1 : 0))
        return refuse(why, err, ST_BUNDLE_R_HEADER, "bundle header: bad magic, fleet or "
                      "encryption flag (envelope: fleet \"%s\", encryption %s)", env->fleet,
                      env->encrypted ? ENC_NAME : "none");
    const unsigned char *tar = b + ST_BUNDLE_HEADER_BYTES;
    size_t tar_len = len - ST_BUNDLE_HEADER_BYTES;
    unsigned char *plain = NULL;
    if (b[8]) {
        if (!fleet_key)
            return refuse(why, err, ST_BUNDLE_R_NO_KEY, "bundle is encrypted for fleet \"%s\" "
                          "and this device has no fleet key", env->fleet);
        if (tar_len < crypto_aead_xchacha20poly1305_ietf_ABYTES)
            return refuse(why, err, ST_BUNDLE_R_DECRYPT, "bundle: ciphertext shorter than its tag");
        if (!(plain = kiln_malloc(tar_len)))
            return refuse(why, err, ST_BUNDLE_R_NOMEM, "bundle: out of memory");
        unsigned long long plen;
        if (crypto_aead_xchacha20poly1305_ietf_decrypt(plain, &plen, NULL, tar, tar_len, b,
                                                       ST_BUNDLE_HEADER_BYTES, b + NONCE_OFF,
                                                       fleet_key->key) != 0) {
            kiln_free(plain);
            return refuse(why, err, ST_BUNDLE_R_DECRYPT, "bundle does not decrypt with this "
                          "device's key for fleet \"%s\" (wrong fleet key)", env->fleet);
        }
        tar = plain;
        tar_len = (size_t)plen;
    }
    rc = walk_tar(env, tar, tar_len, out, why, err);
    if (plain) {
        sodium_memzero(plain, tar_len);
        kiln_free(plain);
    }
    if (rc < 0)
        st_bundle_contents_free(out);
    return rc;
}

void st_bundle_contents_free(st_bundle_contents_t *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->n; i++)
        kiln_free(c->files[i].bytes);
    memset(c, 0, sizeof *c);
}

int st_bundle_extract(const st_bundle_envelope_t *env, const char *bundle_path,
                      const st_bundle_fleetkey_t *fleet_key, const char *staging_dir,
                      st_bundle_reason_t *why, kiln_err_t *err)
{
    if (why)
        *why = ST_BUNDLE_R_OK;
    if (!env || !env->verified)
        return refuse(why, err, ST_BUNDLE_R_NOT_VERIFIED, "extract: the envelope was not "
                      "verified (st_bundle_verify_envelope first)");
    unsigned char *bytes;
    size_t len;
    int rc = read_bounded(bundle_path, (size_t)env->bundle_size, &bytes, &len, err);
    if (rc < 0) {
        if (why)
            *why = ST_BUNDLE_R_IO;
        return rc;
    }
    st_bundle_contents_t c;
    rc = st_bundle_unpack(env, bytes, len, fleet_key, &c, why, err);
    kiln_free(bytes);
    if (rc < 0)
        return rc;
    /* every check passed: only now is anything written */
    size_t written = 0;
    int dfd = -1;
    if (mkdir(staging_dir, 0700) < 0) {
        rc = errno == EEXIST
             ? refuse(why, err, ST_BUNDLE_R_STAGING, "staging directory %s already exists (it "
                      "must be fresh)", staging_dir)
             : refuse(why, err, ST_BUNDLE_R_IO, "staging directory %s: %s", staging_dir,
                      strerror(errno));
        st_bundle_contents_free(&c);
        return rc;
    }
    dfd = open(staging_dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dfd < 0) {
        rc = refuse(why, err, ST_BUNDLE_R_IO, "%s: %s", staging_dir, strerror(errno));
        goto out;
    }
    for (; written < c.n; written++) {
        const st_bundle_file_t *f = &c.files[written];
        int fd = openat(dfd, f->name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                        0600);
        if (fd < 0) {
            rc = refuse(why, err, ST_BUNDLE_R_IO, "%s/%s: %s", staging_dir, f->name,
                        strerror(errno));
            goto out;
        }
        if (kiln_write_all(fd, f->bytes, f->len) < 0 || fsync(fd) < 0) {
            rc = refuse(why, err, ST_BUNDLE_R_IO, "%s/%s: %s", staging_dir, f->name,
                        strerror(errno));
            close(fd);
            written++;
            goto out;
        }
        close(fd);
    }
    if (fsync(dfd) < 0)
        rc = refuse(why, err, ST_BUNDLE_R_IO, "%s: %s", staging_dir, strerror(errno));
out:
    if (rc < 0) {
        for (size_t i = 0; i < written && dfd >= 0; i++)
            unlinkat(dfd, c.files[i].name, 0);
        rmdir(staging_dir);
    }
    if (dfd >= 0)
        close(dfd);
    st_bundle_contents_free(&c);
    return rc;
}

/* ---- publish ---------------------------------------------------------- */

typedef struct {
    unsigned char *p;
    size_t         len, cap;
    int            oom;
} grow_t;

static la_ssize_t grow_write(struct archive *a, void *ud, const void *buf, size_t n)
{
    (void)a;
    grow_t *g = ud;
    if (g->len + n > g->cap) {
        size_t cap = g->cap ? g->cap : 65536;
        while (cap < g->len + n)
            cap *= 2;
        unsigned char *p = kiln_realloc(g->p, cap);
        if (!p) {
            g->oom = 1;
            return -1;
        }
        g->p = p;
        g->cap = cap;
    }
    memcpy(g->p + g->len, buf, n);
    g->len += n;
    return (la_ssize_t)n;
}

/* A pax tar of the three members, mtime = created, deterministic. */
static int make_tar(const char *const *names, const void *const *data, const size_t *lens,
                    size_t n, int64_t mtime, grow_t *g, kiln_err_t *err)
{
    struct archive *a = archive_write_new();
    struct archive_entry *e = archive_entry_new();
    int rc = 0;
    if (!a || !e || archive_write_set_format_pax_restricted(a) != ARCHIVE_OK ||
        archive_write_set_bytes_in_last_block(a, 1) != ARCHIVE_OK ||
        archive_write_open(a, g, NULL, grow_write, NULL) != ARCHIVE_OK) {
        rc = kiln_err_set(err, KILN_EINTERNAL, "bundle tar: %s",
                          a && archive_error_string(a) ? archive_error_string(a) : "setup");
        goto out;
    }
    for (size_t i = 0; i < n && rc == 0; i++) {
        archive_entry_clear(e);
        archive_entry_set_pathname(e, names[i]);
        archive_entry_set_filetype(e, AE_IFREG);
        archive_entry_set_perm(e, 0644);
        archive_entry_set_size(e, (la_int64_t)lens[i]);
        archive_entry_set_mtime(e, (time_t)mtime, 0);
        if (archive_write_header(a, e) != ARCHIVE_OK ||
            (lens[i] && archive_write_data(a, data[i], lens[i]) != (la_ssize_t)lens[i]))
            rc = kiln_err_set(err, g->oom ? KILN_ENOMEM : KILN_EIO, "bundle tar %s: %s",
                              names[i], archive_error_string(a) ? archive_error_string(a) : "?");
    }
    if (archive_write_close(a) != ARCHIVE_OK && rc == 0)
        rc = kiln_err_set(err, g->oom ? KILN_ENOMEM : KILN_EIO, "bundle tar: %s",
                          archive_error_string(a) ? archive_error_string(a) : "close");
out:
    archive_entry_free(e);
    if (a)
        archive_write_free(a);
    return rc;
}

/* The .kmodel header ("KILNMDL1", u32 LE length, JSON): a new reference. */
static json_t *model_header(const unsigned char *p, size_t len)
{
    if (len < 12 || memcmp(p, "KILNMDL1", 8))
        return NULL;
    uint32_t hlen = (uint32_t)p[8] | (uint32_t)p[9] << 8 | (uint32_t)p[10] << 16 |
                    (uint32_t)p[11] << 24;
    if (hlen > len - 12)
        return NULL;
    json_t *h = json_loadb((const char *)p + 12, hlen, JSON_REJECT_DUPLICATES, NULL);
    if (!json_is_object(h)) {
        json_decref(h);
        return NULL;
    }
    return h;
}

static json_t *build_manifest(const st_bundle_meta_t *meta, const json_t *header,
                              const char *model_hex, size_t model_len, const char *spec_hex,
                              size_t spec_len, int encrypted)
{
    json_t *schema = meta->input_schema ? json_deep_copy(meta->input_schema)
                                        : json_deep_copy(json_object_get(header, "feature_names"));
    json_t *metrics = meta->metrics ? json_deep_copy(meta->metrics)
                      : json_object_get(header, "metrics")
                          ? json_deep_copy(json_object_get(header, "metrics")) : json_object();
    json_t *lineage = meta->lineage ? json_deep_copy(meta->lineage) : json_object();
    if (!meta->lineage && lineage) {
        const char *keys[] = {"dataset_sha256", "featspec_sha256"};
        for (size_t i = 0; i < 2; i++)
            if (json_object_get(header, keys[i]))
                json_object_set(lineage, keys[i], json_object_get(header, keys[i]));
    }
    if (!json_is_array(schema) || !json_is_object(metrics) || !json_is_object(lineage)) {
        json_decref(schema);
        json_decref(metrics);
        json_decref(lineage);
        return NULL;
    }
    return json_pack("{s:s, s:s, s:{s:s, s:I, s:s, s:s}, s:o, s:o, s:o, s:I, s:s,"
                     " s:[{s:s, s:I, s:s}, {s:s, s:I, s:s}]}",
                     "schema", MANIFEST_SCHEMA, "fleet", meta->fleet,
                     "model", "name", meta->model_name, "version", (json_int_t)meta->version,
                     "id", meta->model_id ? meta->model_id : model_hex, "sha256", model_hex,
                     "input_schema", schema, "metrics", metrics, "lineage", lineage,
                     "created", (json_int_t)meta->created,
                     "encryption", encrypted ? ENC_NAME : "none",
                     "members", "name", MEMBER_NAMES[0], "size", (json_int_t)model_len,
                     "sha256", model_hex, "name", MEMBER_NAMES[1], "size", (json_int_t)spec_len,
                     "sha256", spec_hex);
}

int st_bundle_create(const char *model_path, const char *featspec_json,
                     const st_bundle_meta_t *meta, const st_bundle_fleetkey_t *fleet_key,
                     const st_bundle_signkey_t *sk, const char *bundle_path,
                     const char *envelope_path, kiln_err_t *err)
{
    if (!model_path || !featspec_json || !meta || !sk || !bundle_path || !envelope_path)
        return kiln_err_set(err, KILN_EINVAL, "publish: missing argument");
    if (!valid_fleet(meta->fleet) || !meta->model_name || !meta->model_name[0] ||
        strlen(meta->model_name) >= ST_BUNDLE_NAME_MAX || meta->version == 0 ||
        meta->version > INT64_MAX || meta->seq == 0 || meta->seq > INT64_MAX ||
        meta->expires <= meta->created)
        return kiln_err_set(err, KILN_EINVAL, "publish: fleet (1-63 of [A-Za-z0-9._-]), model "
                            "name, version > 0, seq > 0 and expires > created are required");
    unsigned char *model = NULL;
    size_t model_len = 0;
    json_t *header = NULL, *manifest = NULL;
    char *manifest_text = NULL, *envelope = NULL;
    void *bundle = NULL;
    size_t bundle_len = 0, manifest_len = 0, envelope_len = 0;
    grow_t tar = {0};
    int rc = read_bounded(model_path, ST_BUNDLE_MAX_BYTES, &model, &model_len, err);
    if (rc < 0)
        goto out;
    if (model_len > ST_BUNDLE_MAX_BYTES || !(header = model_header(model, model_len))) {
        rc = kiln_err_set(err, KILN_EFORMAT, "publish: %s is not a kiln model file (or over "
                          "%zu bytes)", model_path, ST_BUNDLE_MAX_BYTES);
        goto out;
    }
    size_t spec_len = strlen(featspec_json);
    json_t *spec = json_loads(featspec_json, JSON_REJECT_DUPLICATES, NULL);
    int spec_ok = json_is_object(spec);
    json_decref(spec);
    if (!spec_ok) {
        rc = kiln_err_set(err, KILN_EJSON, "publish: the feature spec is not a JSON object");
        goto out;
    }
    char model_hex[65], spec_hex[65];
    sha256_hex(model, model_len, model_hex);
    sha256_hex(featspec_json, spec_len, spec_hex);
    if (!(manifest = build_manifest(meta, header, model_hex, model_len, spec_hex, spec_len,
                                    fleet_key != NULL))) {
        rc = kiln_err_set(err, KILN_EINVAL, "publish: input_schema must be an array (or the "
                          "model's feature_names), metrics and lineage objects");
        goto out;
    }
    if (!(manifest_text = canonical(manifest, &manifest_len))) {
        rc = kiln_err_set(err, KILN_ENOMEM, "publish: out of memory");
        goto out;
    }
    const char *names[3] = {MANIFEST_MEMBER, MEMBER_NAMES[0], MEMBER_NAMES[1]};
    const void *data[3] = {manifest_text, model, featspec_json};
    size_t lens[3] = {manifest_len, model_len, spec_len};
    if ((rc = make_tar(names, data, lens, 3, meta->created, &tar, err)) < 0 ||
        (rc = st_bundle_wrap(tar.p, tar.len, meta->fleet, fleet_key, &bundle, &bundle_len,
                             err)) < 0 ||
        (rc = st_bundle_seal(manifest, bundle, bundle_len, meta->seq, meta->expires,
                             meta->rollback, sk, &envelope, &envelope_len, err)) < 0)
        goto out;
    /* the bundle first: an envelope never names a bundle that is not there */
    if ((rc = write_atomic(bundle_path, bundle, bundle_len, 0644, 0, err)) < 0 ||
        (rc = write_atomic(envelope_path, envelope, envelope_len, 0644, 0, err)) < 0)
        goto out;
out:
    kiln_free(model);
    json_decref(header);
    json_decref(manifest);
    kiln_free(manifest_text);
    kiln_free(tar.p);
    kiln_free(bundle);
    kiln_free(envelope);
    return rc;
}

int st_bundle_reseal(const char *old_envelope_path, const char *bundle_path, uint64_t seq,
                     int64_t expires, int rollback, const st_bundle_signkey_t *sk,
                     const char *out_envelope_path, kiln_err_t *err)
{
    if (!old_envelope_path || !bundle_path || !sk || !out_envelope_path)
        return kiln_err_set(err, KILN_EINVAL, "reseal: missing argument");
    unsigned char *old = NULL, *bundle = NULL;
    size_t old_len, bundle_len;
    char *envelope = NULL;
    size_t envelope_len;
    st_bundle_envelope_t env;
    st_bundle_pubkey_t pk;
    memset(&env, 0, sizeof env);
    memcpy(pk.pk, sk->pk, sizeof pk.pk);
    int rc = read_bounded(old_envelope_path, ST_BUNDLE_ENVELOPE_MAX, &old, &old_len, err);
    if (rc < 0 || (rc = open_envelope(old, old_len, &pk, &env, NULL, err)) < 0 ||
        (rc = read_bounded(bundle_path, (size_t)env.bundle_size, &bundle, &bundle_len, err)) < 0)
        goto out;
    char hex[65];
    sha256_hex(bundle, bundle_len, hex);
    if (bundle_len != env.bundle_size || strcmp(hex, env.bundle_sha256)) {
        rc = kiln_err_set(err, KILN_EFORMAT, "reseal: %s is not the bundle %s describes",
                          bundle_path, old_envelope_path);
        goto out;
    }
    if ((rc = st_bundle_seal(env.manifest, bundle, bundle_len, seq, expires, rollback, sk,
                             &envelope, &envelope_len, err)) < 0)
        goto out;
    rc = write_atomic(out_envelope_path, envelope, envelope_len, 0644, 0, err);
out:
    st_bundle_envelope_free(&env);
    kiln_free(old);
    kiln_free(bundle);
    kiln_free(envelope);
    return rc;
}
