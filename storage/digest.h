/* digest.h - what a file holds, as 64 hex characters, cheaply enough to ask
 * on the scheduler's thread: the identity pipeline steps are cached on. */
#ifndef KILN_STORAGE_DIGEST_H
#define KILN_STORAGE_DIGEST_H

#include <stddef.h>

#include "../core/kiln_err.h"

/* Files larger than this without a content hash of their own are known by
 * their stat identity instead of their bytes. */
#define ST_DIGEST_READ_MAX ((long long)256 << 20)

/* hex gets:
 *  - a kiln HDF5 dataset's own root attribute content_sha256 (sensor,
 *    features and predictions datasets carry one: a hash of their content,
 *    not of their HDF5 bytes, which vary with the library's layout);
 *  - otherwise SHA-256 of the file's bytes, for files up to
 *    ST_DIGEST_READ_MAX;
 *  - otherwise SHA-256 of "stat:" path, size, mtime (ns), device and inode,
 *    so a larger file counts as changed whenever it was rewritten (as make
 *    judges it).
 * *how (may be NULL) says which: "content", "bytes" or "stat".
 * KILN_ENOTFOUND when path is not a regular file; KILN_EIO on read errors. */
int st_file_digest(const char *path, char hex[65], const char **how, kiln_err_t *err);

#endif
