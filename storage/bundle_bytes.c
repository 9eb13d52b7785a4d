/* bundle_bytes.c - the BUNDLE file (bundle.h): the 100-byte header and the
 * (encrypted) tar on the publisher's side (st_bundle_wrap); on the agent's,
 * size, sha256, header and decryption against a verified envelope, then the
 * tar walk (bundle_tar.c) in memory, and only then the write into a fresh
 * staging directory. */
#include "storage/bundle_int.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/kiln_alloc.h"
#include "core/kiln_io.h"

static const char BUNDLE_MAGIC[8] = {'K', 'I', 'L', 'N', 'B', 'D', 'L', '1'};

int st_bundle_wrap(const void *tar, size_t tar_len, const char *fleet,
                   const st_bundle_fleetkey_t *fleet_key, void **bundle, size_t *bundle_len,
                   kiln_err_t *err)
{
    *bundle = NULL;
    *bundle_len = 0;
    int rc;
    if ((rc = st_bundle_crypto_ready(err)) < 0)
        return rc;
    if (!st_bundle_valid_fleet(fleet))
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

int st_bundle_unpack(const st_bundle_envelope_t *env, const void *bundle, size_t len,
                     const st_bundle_fleetkey_t *fleet_key, st_bundle_contents_t *out,
                     st_bundle_reason_t *why, kiln_err_t *err)
{
    memset(out, 0, sizeof *out);
    if (why)
        *why = ST_BUNDLE_R_OK;
    if (!env || !env->verified || !env->manifest_text)
        return st_bundle_refuse(why, err, ST_BUNDLE_R_NOT_VERIFIED, "unpack: the envelope was not "
                                "verified (st_bundle_verify_envelope first)");
    int rc;
    if ((rc = st_bundle_crypto_ready(err)) < 0)
        return rc;
    const unsigned char *b = bundle;
    if (len != env->bundle_size)
        return st_bundle_refuse(why, err, ST_BUNDLE_R_SIZE,
                                "bundle is %s%zu bytes, the signed envelope says %llu (truncated "
                                "or padded)",
                                len > env->bundle_size ? "at least " : "", len,
                                (unsigned long long)env->bundle_size);
    char hex[65];
    st_bundle_sha256_hex(b, len, hex);
    if (strcmp(hex, env->bundle_sha256))
        return st_bundle_refuse(why, err, ST_BUNDLE_R_HASH,
                                "bundle sha256 %s is not the signed %s: altered or another bundle",
                                hex, env->bundle_sha256);
    /* from here on the bytes are the publisher's; the checks below catch
     * publisher bugs and hand-made bundles, and the wrong fleet key */
    char fleet[FLEET_FIELD];
    memcpy(fleet, b + 12, FLEET_FIELD);
    if (memcmp(b, BUNDLE_MAGIC, 8) || b[8] > 1 || b[9] || b[10] || b[11] ||
        fleet[FLEET_FIELD - 1] || strcmp(fleet, env->fleet) || b[8] != (env->encrypted ? 1 : 0))
        return st_bundle_refuse(why, err, ST_BUNDLE_R_HEADER,
                                "bundle header: bad magic, fleet or encryption flag (envelope: "
                                "fleet \"%s\", encryption %s)",
                                env->fleet, env->encrypted ? ENC_NAME : "none");
    const unsigned char *tar = b + ST_BUNDLE_HEADER_BYTES;
    size_t tar_len = len - ST_BUNDLE_HEADER_BYTES;
    unsigned char *plain = NULL;
    if (b[8]) {
        if (!fleet_key)
            return st_bundle_refuse(why, err, ST_BUNDLE_R_NO_KEY,
                                    "bundle is encrypted for fleet \"%s\" and this device has no "
                                    "fleet key",
                                    env->fleet);
        if (tar_len < crypto_aead_xchacha20poly1305_ietf_ABYTES)
            return st_bundle_refuse(why, err, ST_BUNDLE_R_DECRYPT,
                                    "bundle: ciphertext shorter than its tag");
        if (!(plain = kiln_malloc(tar_len)))
            return st_bundle_refuse(why, err, ST_BUNDLE_R_NOMEM, "bundle: out of memory");
        size_t plen;
        if (st_bundle_aead_open(plain, &plen, tar, tar_len, b, ST_BUNDLE_HEADER_BYTES,
                                b + NONCE_OFF, fleet_key->key) != 0) {
            kiln_free(plain);
            return st_bundle_refuse(why, err, ST_BUNDLE_R_DECRYPT,
                                    "bundle does not decrypt with this device's key for fleet "
                                    "\"%s\" (wrong fleet key)",
                                    env->fleet);
        }
        tar = plain;
        tar_len = (size_t)plen;
    }
    rc = st_bundle_walk_tar(env, tar, tar_len, out, why, err);
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
        return st_bundle_refuse(why, err, ST_BUNDLE_R_NOT_VERIFIED, "extract: the envelope was not "
                                "verified (st_bundle_verify_envelope first)");
    unsigned char *bytes;
    size_t len;
    int rc = st_bundle_read_bounded(bundle_path, (size_t)env->bundle_size, &bytes, &len, err);
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
                 ? st_bundle_refuse(why, err, ST_BUNDLE_R_STAGING,
                                    "staging directory %s already exists (it must be fresh)",
                                    staging_dir)
                 : st_bundle_refuse(why, err, ST_BUNDLE_R_IO, "staging directory %s: %s",
                                    staging_dir, strerror(errno));
        st_bundle_contents_free(&c);
        return rc;
    }
    dfd = open(staging_dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dfd < 0) {
        rc = st_bundle_refuse(why, err, ST_BUNDLE_R_IO, "%s: %s", staging_dir, strerror(errno));
        goto out;
    }
    for (; written < c.n; written++) {
        const st_bundle_file_t *f = &c.files[written];
        int fd = openat(dfd, f->name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                        0600);
        if (fd < 0) {
            rc = st_bundle_refuse(why, err, ST_BUNDLE_R_IO, "%s/%s: %s", staging_dir, f->name,
                                  strerror(errno));
            goto out;
        }
        if (kiln_write_all(fd, f->bytes, f->len) < 0 || fsync(fd) < 0) {
            rc = st_bundle_refuse(why, err, ST_BUNDLE_R_IO, "%s/%s: %s", staging_dir, f->name,
                                  strerror(errno));
            close(fd);
            written++;
            goto out;
        }
        close(fd);
    }
    if (fsync(dfd) < 0)
        rc = st_bundle_refuse(why, err, ST_BUNDLE_R_IO, "%s: %s", staging_dir, strerror(errno));
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
