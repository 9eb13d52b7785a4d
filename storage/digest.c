/* digest.c - a file's identity for the step cache (digest.h). */
#include "digest.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "../core/kiln_alloc.h"
#include "h5util.h"
#include "sha256.h"

static const unsigned char hdf5_magic[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};

/* 1 and hex when path is HDF5 with a valid content_sha256 at its root. */
static int h5_content(const char *path, char hex[65])
{
    FILE *f = fopen(path, "rb");
    unsigned char head[8];
    size_t got = f ? fread(head, 1, sizeof head, f) : 0;
    if (f)
        fclose(f);
    if (got != sizeof head || memcmp(head, hdf5_magic, sizeof head))
        return 0;
    st_h5_quiet_t q;
    st_h5_quiet_begin(&q);
    hid_t file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    st_h5_quiet_end(&q);
    if (file < 0)
        return 0;
    char *v = NULL;
    kiln_err_t err;
    int ok = st_h5_attr_get_str(file, path, "/", "content_sha256", 0, 64, &v, &err) == 0 && v &&
             st_h5_is_hex64(v);
    if (ok)
        memcpy(hex, v, 65);
    kiln_free(v);
    st_h5_quiet_begin(&q);
    H5Fclose(file);
    st_h5_quiet_end(&q);
    return ok;
}

static int bytes_digest(const char *path, char hex[65], kiln_err_t *err)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return kiln_err_at(err, KILN_EIO, path, "%s: %s", path, strerror(errno));
    st_sha256_t h;
    st_sha256_init(&h);
    unsigned char buf[1 << 16];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        st_sha256_update(&h, buf, n);
    int bad = ferror(f);
    fclose(f);
    if (bad)
        return kiln_err_at(err, KILN_EIO, path, "%s: read error", path);
    uint8_t d[32];
    st_sha256_final(&h, d);
    st_sha256_hex(d, hex);
    return 0;
}

int st_file_digest(const char *path, char hex[65], const char **how, kiln_err_t *err)
{
    struct stat sb;
    if (!path || stat(path, &sb) < 0 || !S_ISREG(sb.st_mode))
        return kiln_err_at(err, KILN_ENOTFOUND, path ? path : "", "%s: not a regular file",
                           path ? path : "(null)");
    if (h5_content(path, hex)) {
        if (how)
            *how = "content";
        return 0;
    }
    if ((long long)sb.st_size <= ST_DIGEST_READ_MAX) {
        if (how)
            *how = "bytes";
        return bytes_digest(path, hex, err);
    }
    char id[4200];
    int n = snprintf(id, sizeof id, "stat:%s:%lld:%lld.%09ld:%llu:%llu", path,
                     (long long)sb.st_size, (long long)sb.st_mtim.tv_sec, sb.st_mtim.tv_nsec,
                     (unsigned long long)sb.st_dev, (unsigned long long)sb.st_ino);
    st_sha256_t h;
    uint8_t d[32];
    st_sha256_init(&h);
    st_sha256_update(&h, id, (size_t)(n < (int)sizeof id ? n : (int)sizeof id - 1));
    st_sha256_final(&h, d);
    st_sha256_hex(d, hex);
    if (how)
        *how = "stat";
    return 0;
}
