/* bundle_tar.c - the tar inside a bundle, through libarchive: the agent's
 * walk, which accepts only the declared members as plain regular files
 * within their signed sizes and hashes, and the publisher's deterministic
 * pax tar of the three members. */
#include "storage/bundle_int.h"

#include <archive.h>
#include <archive_entry.h>
#include <stdio.h>
#include <string.h>

#include "core/kiln_alloc.h"

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
int st_bundle_walk_tar(const st_bundle_envelope_t *env, const unsigned char *tar, size_t tar_len,
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
        return st_bundle_refuse(why, err, ST_BUNDLE_R_NOMEM, "tar: out of memory");
    archive_read_support_format_tar(a);
    int rc = 0;
    if (archive_read_open_memory(a, tar, tar_len) != ARCHIVE_OK) {
        rc = st_bundle_refuse(why, err, ST_BUNDLE_R_TAR, "bundle content is not a tar: %s",
                              archive_error_string(a) ? archive_error_string(a) : "?");
        goto out;
    }
    for (;;) {
        struct archive_entry *e;
        int r = archive_read_next_header(a, &e);
        if (r == ARCHIVE_EOF)
            break;
        if (r != ARCHIVE_OK) {
            rc = st_bundle_refuse(why, err, ST_BUNDLE_R_TAR,
                                  "tar: bad header after %zu members: %s", out->n,
                                  archive_error_string(a) ? archive_error_string(a) : "?");
            goto out;
        }
        const char *name = archive_entry_pathname(e);
        if (!name || !name[0]) {
            rc = st_bundle_refuse(why, err, ST_BUNDLE_R_PATH,
                                  "tar: a member without a usable name");
            goto out;
        }
        if (name[0] == '/') {
            rc = st_bundle_refuse(why, err, ST_BUNDLE_R_PATH,
                                  "tar member \"%.200s\": absolute path", name);
            goto out;
        }
        if (has_dotdot(name)) {
            rc = st_bundle_refuse(why, err, ST_BUNDLE_R_PATH,
                                  "tar member \"%.200s\": \"..\" in the path", name);
            goto out;
        }
        if (archive_entry_hardlink(e)) {
            rc = st_bundle_refuse(why, err, ST_BUNDLE_R_LINK, "tar member \"%.200s\": hard link to "
                                  "\"%.200s\"", name, archive_entry_hardlink(e));
            goto out;
        }
        if (archive_entry_symlink(e) || archive_entry_filetype(e) == AE_IFLNK) {
            rc = st_bundle_refuse(why, err, ST_BUNDLE_R_LINK,
                                  "tar member \"%.200s\": symbolic link to \"%.200s\"", name,
                                  archive_entry_symlink(e) ? archive_entry_symlink(e) : "?");
            goto out;
        }
        if (archive_entry_filetype(e) != AE_IFREG || archive_entry_sparse_count(e) > 0) {
            rc = st_bundle_refuse(why, err, ST_BUNDLE_R_TYPE,
                                  "tar member \"%.200s\": not a plain regular file (type 0%o)",
                                  name, (unsigned)archive_entry_filetype(e));
            goto out;
        }
        size_t k = 0;
        while (k <= ST_BUNDLE_MEMBERS && strcmp(name, names[k]))
            k++;
        if (k > ST_BUNDLE_MEMBERS) {
            rc = st_bundle_refuse(why, err, ST_BUNDLE_R_UNDECLARED,
                                  "tar member \"%.200s\" is not declared in the signed manifest",
                                  name);
            goto out;
        }
        if (seen[k]) {
            rc = st_bundle_refuse(why, err, ST_BUNDLE_R_DUPLICATE,
                                  "tar member \"%s\" appears twice", name);
            goto out;
        }
        seen[k] = 1;
        if (archive_entry_size_is_set(e) && archive_entry_size(e) >= 0 &&
            (uint64_t)archive_entry_size(e) > sizes[k]) {
            rc = st_bundle_refuse(why, err, ST_BUNDLE_R_TOO_BIG,
                                  "tar member \"%s\": %lld bytes, more than the declared %llu",
                                  name, (long long)archive_entry_size(e),
                                  (unsigned long long)sizes[k]);
            goto out;
        }
        /* read at most declared + 1 bytes, whatever the header said */
        st_bundle_file_t *f = &out->files[out->n];
        size_t want = (size_t)sizes[k] + 1, got = 0;
        if (!(f->bytes = kiln_malloc(want))) {
            rc = st_bundle_refuse(why, err, ST_BUNDLE_R_NOMEM, "tar member \"%s\": out of memory",
                                  name);
            goto out;
        }
        snprintf(f->name, sizeof f->name, "%s", names[k]);
        out->n++;
        while (got < want) {
            la_ssize_t n = archive_read_data(a, f->bytes + got, want - got);
            if (n < 0) {
                rc = st_bundle_refuse(why, err, ST_BUNDLE_R_TAR, "tar member \"%s\": %s", name,
                                      archive_error_string(a) ? archive_error_string(a)
                                                              : "read error");
                goto out;
            }
            if (n == 0)
                break;
            got += (size_t)n;
        }
        f->len = got;
        if (got > sizes[k]) {
            rc = st_bundle_refuse(why, err, ST_BUNDLE_R_TOO_BIG, "tar member \"%s\": more than the "
                                  "declared %llu bytes (stopped reading there)", name,
                                  (unsigned long long)sizes[k]);
            goto out;
        }
        char hex[65];
        st_bundle_sha256_hex(f->bytes, got, hex);
        if (k == 0 ? (got != env->manifest_len || memcmp(f->bytes, env->manifest_text, got))
                   : (got != sizes[k] || strcmp(hex, env->members[k - 1].sha256))) {
            rc = st_bundle_refuse(why, err, ST_BUNDLE_R_MEMBER_HASH,
                                  k == 0 ? "tar member \"%s\" differs from the signed manifest "
                                           "(%zu bytes, sha256 %s)"
                                         : "tar member \"%s\" (%zu bytes, sha256 %s) does not "
                                           "match its declared size and sha256",
                                  name, got, hex);
            goto out;
        }
    }
    for (size_t k = 0; k <= ST_BUNDLE_MEMBERS; k++)
        if (!seen[k]) {
            rc = st_bundle_refuse(why, err, ST_BUNDLE_R_MISSING,
                                  "tar: declared member \"%s\" is missing", names[k]);
            goto out;
        }
out:
    archive_read_free(a);
    return rc;
}

static la_ssize_t grow_write(struct archive *a, void *ud, const void *buf, size_t n)
{
    (void)a;
    st_bundle_grow_t *g = ud;
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
int st_bundle_make_tar(const char *const *names, const void *const *data, const size_t *lens,
                       size_t n, int64_t mtime, st_bundle_grow_t *g, kiln_err_t *err)
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
