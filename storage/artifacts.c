/* artifacts.c - the content-addressed artifact store (artifacts.h). */
#include "storage/artifacts.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/kiln_alloc.h"
#include "core/kiln_io.h"
#include "storage/sha256.h"

static int valid_hex(const char *hex)
{
    if (!hex || strlen(hex) != 64)
        return 0;
    for (int i = 0; i < 64; i++)
        if (!((hex[i] >= '0' && hex[i] <= '9') || (hex[i] >= 'a' && hex[i] <= 'f')))
            return 0;
    return 1;
}

int st_artifact_path(const char *root, const char *hex, char *buf, size_t cap)
{
    int n = snprintf(buf, cap, "%s/sha256/%.2s/%s", root, hex, hex);
    return n < 0 || (size_t)n >= cap ? -1 : 0;
}

static int mkdir_one(const char *path, kiln_err_t *err)
{
    if (mkdir(path, 0755) < 0 && errno != EEXIST)
        return kiln_err_set(err, KILN_EIO, "%s: %s", path, strerror(errno));
    return 0;
}

int st_artifact_put(const char *root, const void *bytes, size_t len, char hex[65],
                    kiln_err_t *err)
{
    if (!root || (!bytes && len))
        return kiln_err_set(err, KILN_EINVAL, "artifact: no root or no bytes");
    st_sha256_t h;
    uint8_t d[32];
    st_sha256_init(&h);
    st_sha256_update(&h, bytes, len);
    st_sha256_final(&h, d);
    st_sha256_hex(d, hex);

    char path[1100], dir[1100], tmp[1200];
    if (st_artifact_path(root, hex, path, sizeof path) < 0)
        return kiln_err_set(err, KILN_EINVAL, "artifact: root path too long");
    if (access(path, F_OK) == 0)
        return 0;   /* content-addressed: already there means the same bytes */
    int rc;
    snprintf(dir, sizeof dir, "%s", root);
    if ((rc = mkdir_one(dir, err)) < 0)
        return rc;
    snprintf(dir, sizeof dir, "%s/sha256", root);
    if ((rc = mkdir_one(dir, err)) < 0)
        return rc;
    snprintf(dir, sizeof dir, "%s/sha256/%.2s", root, hex);
    if ((rc = mkdir_one(dir, err)) < 0)
        return rc;
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        return kiln_err_set(err, KILN_EIO, "%s: %s", tmp, strerror(errno));
    if (kiln_write_all(fd, bytes, len) < 0 || fsync(fd) < 0) {
        int e = errno;
        close(fd);
        unlink(tmp);
        return kiln_err_set(err, KILN_EIO, "%s: %s", tmp, strerror(e));
    }
    close(fd);
    if (rename(tmp, path) < 0) {
        int e = errno;
        unlink(tmp);
        return kiln_err_set(err, KILN_EIO, "%s: %s", path, strerror(e));
    }
    return 0;
}

int st_artifact_get(const char *root, const char *hex, size_t max_len, void **bytes, size_t *len,
                    kiln_err_t *err)
{
    *bytes = NULL;
    *len = 0;
    if (!valid_hex(hex))
        return kiln_err_set(err, KILN_EINVAL, "artifact: \"%.70s\" is not a sha256 hex name",
                            hex ? hex : "");
    char path[1100];
    if (st_artifact_path(root, hex, path, sizeof path) < 0)
        return kiln_err_set(err, KILN_EINVAL, "artifact: root path too long");
    FILE *f = fopen(path, "rb");
    if (!f)
        return kiln_err_set(err, errno == ENOENT ? KILN_ENOTFOUND : KILN_EIO,
                            "artifact %s: %s", hex, strerror(errno));
    struct stat sb;
    if (fstat(fileno(f), &sb) < 0 || (size_t)sb.st_size > max_len) {
        fclose(f);
        return kiln_err_set(err, KILN_EFORMAT, "artifact %s: larger than %zu bytes", hex,
                            max_len);
    }
    size_t n = (size_t)sb.st_size;
    unsigned char *p = kiln_malloc(n ? n : 1);
    if (!p) {
        fclose(f);
        return kiln_err_set(err, KILN_ENOMEM, "artifact %s: out of memory", hex);
    }
    size_t got = fread(p, 1, n, f);
    fclose(f);
    st_sha256_t h;
    uint8_t d[32];
    char back[65];
    st_sha256_init(&h);
    st_sha256_update(&h, p, got);
    st_sha256_final(&h, d);
    st_sha256_hex(d, back);
    if (got != n || strcmp(back, hex)) {
        kiln_free(p);
        return kiln_err_set(err, KILN_EFORMAT, "artifact %s: its bytes hash to %s (corrupt)",
                            hex, back);
    }
    *bytes = p;
    *len = n;
    return 0;
}
