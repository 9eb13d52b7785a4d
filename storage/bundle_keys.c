/* bundle_keys.c - the publisher's Ed25519 signing key and the fleet's
 * XChaCha20-Poly1305 key as text files (bundle.h, "Keys"): generated without
 * ever overwriting one, loaded only from a regular file of ours with a tight
 * mode, wiped from memory after use. */
#include "storage/bundle_int.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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
    int rc = st_bundle_write_atomic(path, line, len, mode, 1, err);
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
    if ((rc = st_bundle_crypto_ready(err)) < 0)
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
    if ((rc = st_bundle_crypto_ready(err)) < 0)
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
    if ((rc = st_bundle_crypto_ready(err)) < 0 ||
        (rc = read_key(path, TAG_SK, out->sk, sizeof out->sk, 1, err)) < 0)
        return rc;
    crypto_sign_ed25519_sk_to_pk(out->pk, out->sk);
    return 0;
}

int st_bundle_load_pubkey(const char *path, st_bundle_pubkey_t *out, kiln_err_t *err)
{
    int rc = st_bundle_crypto_ready(err);
    return rc < 0 ? rc : read_key(path, TAG_PK, out->pk, sizeof out->pk, 0, err);
}

int st_bundle_load_fleetkey(const char *path, st_bundle_fleetkey_t *out, kiln_err_t *err)
{
    int rc = st_bundle_crypto_ready(err);
    return rc < 0 ? rc : read_key(path, TAG_FLEET, out->key, sizeof out->key, 1, err);
}

void st_bundle_key_wipe(void *key, size_t len)
{
    sodium_memzero(key, len);
}
