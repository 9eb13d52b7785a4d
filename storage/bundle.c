/* bundle.c - signed, per-fleet encrypted model bundles (bundle.h): what the
 * bundle files share - refusal reasons, hashing, fleet ids, the bounded reads
 * and atomic writes.  Keys: bundle_keys.c; the envelope: bundle_envelope.c;
 * the bundle's bytes (wrap, unpack, extract): bundle_bytes.c; the tar:
 * bundle_tar.c; publish: bundle_publish.c.  The agent's side trusts nothing
 * in a bundle until the Ed25519 signature over its envelope and the signed
 * sha256 of its bytes have been checked. */
#include "storage/bundle_int.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/kiln_alloc.h"
#include "core/kiln_io.h"
#include "storage/sha256.h"

const char *const st_bundle_member_names[ST_BUNDLE_MEMBERS] = {"model.kmodel", "featspec.json"};

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
int st_bundle_refuse(st_bundle_reason_t *why, kiln_err_t *err, st_bundle_reason_t r,
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

int st_bundle_crypto_ready(kiln_err_t *err)
{
    if (sodium_init() < 0)
        return kiln_err_set(err, KILN_EINTERNAL, "bundle: libsodium failed to initialize");
    return 0;
}

/* OpenSSL's one-shot SHA-256 (about 1.3x storage/sha256.c's SHA-NI code
 * here): an agent hashes every bundle twice, as ciphertext and per member;
 * storage/sha256.c if OpenSSL cannot. */
void st_bundle_sha256_hex(const void *p, size_t len, char hex[65])
{
    uint8_t d[32];
    unsigned int dlen = 0;
    if (EVP_Digest(p, len, d, &dlen, EVP_sha256(), NULL) != 1 || dlen != sizeof d) {
        st_sha256_t h;
        st_sha256_init(&h);
        st_sha256_update(&h, p, len);
        st_sha256_final(&h, d);
    }
    st_sha256_hex(d, hex);
}

/* Fleet ids go into the header and file names: [A-Za-z0-9._-], 1..63. */
int st_bundle_valid_fleet(const char *s)
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
int st_bundle_write_atomic(const char *path, const void *bytes, size_t len, mode_t mode,
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
int st_bundle_read_bounded(const char *path, size_t max, unsigned char **bytes, size_t *len,
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
