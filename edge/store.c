/* store.c - kiln-edge's device directory: device identity, the state file
 * and the symlink swap (store.h).  Every write that must survive a kill -9
 * goes to a temporary name, is fsync'd, renamed and the directory fsync'd. */
#include "edge/store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

int ke_store_put(const char *dir, const char *name, const void *data, size_t len, int mode,
                 kiln_err_t *err)
{
    char path[KE_PATH_MAX], tmp[KE_PATH_MAX + 32];
    if (snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path)
        return kiln_err_set(err, KILN_EINVAL, "%s/%s: path too long", dir, name);
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    unlink(tmp);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, mode);
    if (fd < 0)
        return kiln_err_at(err, KILN_EIO, path, "%s: %s", tmp, strerror(errno));
    const char *p = data;
    size_t left = len;
    while (left) {
        ssize_t w = write(fd, p, left);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            int e = errno;
            close(fd);
            unlink(tmp);
            return kiln_err_at(err, KILN_EIO, path, "%s: write: %s", tmp, strerror(e));
        }
        p += w;
        left -= (size_t)w;
    }
    if (fsync(fd) != 0 || close(fd) != 0) {
        unlink(tmp);
        return kiln_err_at(err, KILN_EIO, path, "%s: fsync: %s", tmp, strerror(errno));
    }
    if (rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return kiln_err_at(err, KILN_EIO, path, "%s: rename: %s", path, strerror(e));
    }
    if (fsync_dir(dir) != 0)
        return kiln_err_at(err, KILN_EIO, dir, "%s: fsync: %s", dir, strerror(errno));
    return 0;
}

static json_t *load_json(const char *dir, const char *name, int *missing, kiln_err_t *err)
{
    char path[KE_PATH_MAX];
    json_error_t je;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    *missing = 0;
    struct stat st;
    if (lstat(path, &st) != 0) {
        *missing = errno == ENOENT;
        kiln_err_at(err, *missing ? KILN_ENOTFOUND : KILN_EIO, path, "%s: %s", path,
                    strerror(errno));
        return NULL;
    }
    if (!S_ISREG(st.st_mode) || st.st_size > 65536) {
        kiln_err_at(err, KILN_EFORMAT, path, "%s: not a regular file of at most 64 KiB", path);
        return NULL;
    }
    json_t *j = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    if (!json_is_object(j)) {
        json_decref(j);
        kiln_err_at(err, KILN_EFORMAT, path, "%s:%d: %s", path, je.line,
                    je.text[0] ? je.text : "not a JSON object");
        return NULL;
    }
    return j;
}

static int get_str(json_t *j, const char *key, char *out, size_t cap, int required,
                   const char *file, kiln_err_t *err)
{
    json_t *v = json_object_get(j, key);
    if (!v && !required) {
        out[0] = 0;
        return 0;
    }
    const char *s = json_string_value(v);
    if (!s || strlen(s) >= cap)
        return kiln_err_at(err, KILN_EFORMAT, key, "%s: \"%s\" must be a string under %zu bytes",
                           file, key, cap);
    memcpy(out, s, strlen(s) + 1);
    return 0;
}

static int get_u64(json_t *j, const char *key, uint64_t *out, const char *file, kiln_err_t *err)
{
    json_t *v = json_object_get(j, key);
    *out = 0;
    if (!v)
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return kiln_err_at(err, KILN_EFORMAT, key, "%s: \"%s\" must be a whole number >= 0",
                           file, key);
    *out = (uint64_t)json_integer_value(v);
    return 0;
}

int ke_device_read(const char *dir, ke_device_t *d, kiln_err_t *err)
{
    int missing;
    memset(d, 0, sizeof *d);
    json_t *j = load_json(dir, "device.json", &missing, err);
    if (!j)
        return missing ? kiln_err_at(err, KILN_ENOTFOUND, "device.json",
                                     "%s/device.json: not found (kiln-edge enroll first)", dir)
                       : err->code;
    int rc = 0;
    if ((rc = get_str(j, "device_id", d->device_id, sizeof d->device_id, 1, "device.json", err)) < 0 ||
        (rc = get_str(j, "fleet", d->fleet, sizeof d->fleet, 1, "device.json", err)) < 0 ||
        (rc = get_str(j, "server", d->server, sizeof d->server, 1, "device.json", err)) < 0 ||
        (rc = get_str(j, "name", d->name, sizeof d->name, 0, "device.json", err)) < 0) {
    }
    json_decref(j);
    return rc;
}

static int put_json(const char *dir, const char *name, json_t *j, kiln_err_t *err)
{
    if (!j)
        return kiln_err_set(err, KILN_ENOMEM, "%s: out of memory", name);
    char *text = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(j);
    if (!text)
        return kiln_err_set(err, KILN_ENOMEM, "%s: out of memory", name);
    size_t n = strlen(text);
    text[n] = 0;
    int rc = ke_store_put(dir, name, text, n, 0600, err);
    free(text);
    return rc;
}

int ke_device_write(const char *dir, const ke_device_t *d, kiln_err_t *err)
{
    return put_json(dir, "device.json",
                    json_pack("{s:s, s:s, s:s, s:s}", "device_id", d->device_id, "fleet",
                              d->fleet, "server", d->server, "name", d->name),
                    err);
}

int ke_state_read(const char *dir, ke_state_t *s, kiln_err_t *err)
{
    int missing;
    memset(s, 0, sizeof *s);
    json_t *j = load_json(dir, "state.json", &missing, err);
    if (!j)
        return missing ? 0 : err->code;
    int rc = 0;
    if ((rc = get_u64(j, "last_seq", &s->last_seq, "state.json", err)) < 0 ||
        (rc = get_u64(j, "version", &s->version, "state.json", err)) < 0 ||
        (rc = get_u64(j, "failed_seq", &s->failed_seq, "state.json", err)) < 0 ||
        (rc = get_str(j, "model", s->model, sizeof s->model, 0, "state.json", err)) < 0 ||
        (rc = get_str(j, "current", s->current, sizeof s->current, 0, "state.json", err)) < 0) {
    }
    json_decref(j);
    return rc;
}

int ke_state_write(const char *dir, const ke_state_t *s, kiln_err_t *err)
{
    return put_json(dir, "state.json",
                    json_pack("{s:I, s:s, s:I, s:s, s:I}", "last_seq", (json_int_t)s->last_seq,
                              "model", s->model, "version", (json_int_t)s->version, "current",
                              s->current, "failed_seq", (json_int_t)s->failed_seq),
                    err);
}

int ke_store_link(const char *dir, const char *link, char *target, size_t cap, kiln_err_t *err)
{
    char path[KE_PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", dir, link);
    target[0] = 0;
    struct stat st;
    if (lstat(path, &st) != 0) {
        if (errno == ENOENT)
            return 0;
        return kiln_err_at(err, KILN_EIO, path, "%s: %s", path, strerror(errno));
    }
    if (!S_ISLNK(st.st_mode))
        return kiln_err_at(err, KILN_EINVAL, path,
                           "%s: not a symlink (an agent directory links current and previous "
                           "to models/...; docs/edge.md, \"Agent\")", path);
    ssize_t n = readlink(path, target, cap - 1);
    if (n < 0 || (size_t)n >= cap - 1)
        return kiln_err_at(err, KILN_EIO, path, "%s: readlink: %s", path,
                           n < 0 ? strerror(errno) : "target too long");
    target[n] = 0;
    return 0;
}

void ke_store_test_pause(const char *point)
{
    const char *spec = getenv("KILN_TEST_SWAP_PAUSE");
    const char *colon = spec ? strchr(spec, ':') : NULL;
    if (!colon || (size_t)(colon - spec) != strlen(point) || strncmp(spec, point, strlen(point)))
        return;
    long ms = strtol(colon + 1, NULL, 10);
    if (ms <= 0)
        return;
    fprintf(stderr, "kiln-edge: swap: pausing at %s (%ld ms)\n", point, ms);
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* DIR/link := target by a new symlink beside it and rename(2); pause_as
 * (NULL: none) names the test pauses "PAUSE_AS-link" and "PAUSE_AS-renamed". */
static int relink(const char *dir, const char *link, const char *target, int *steps,
                  int stop_after, const char *pause_as, kiln_err_t *err)
{
    char point[64];
    char path[KE_PATH_MAX], tmp[KE_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/%s", dir, link);
    snprintf(tmp, sizeof tmp, "%s/.%s.new", dir, link);
    unlink(tmp);
    if (symlink(target, tmp) != 0)
        return kiln_err_at(err, KILN_EIO, tmp, "%s: symlink: %s", tmp, strerror(errno));
    if (stop_after && ++*steps == stop_after)
        return 1;
    if (pause_as) {
        snprintf(point, sizeof point, "%s-link", pause_as);
        ke_store_test_pause(point);
    }
    if (rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return kiln_err_at(err, KILN_EIO, path, "%s: rename: %s", path, strerror(e));
    }
    if (stop_after && ++*steps == stop_after)
        return 1;
    if (pause_as) {
        snprintf(point, sizeof point, "%s-renamed", pause_as);
        ke_store_test_pause(point);
    }
    return 0;
}

int ke_store_swap(const char *dir, const char *target, int stop_after, kiln_err_t *err)
{
    char old[512];
    int rc, steps = 0;
    if ((rc = ke_store_link(dir, "current", old, sizeof old, err)) < 0)
        return rc;
    if (old[0]) {
        if ((rc = relink(dir, "previous", old, &steps, stop_after, NULL, err)) != 0)
            return rc < 0 ? rc : 0;
        ke_store_test_pause("previous");
    } else {
        steps = 2;
    }
    if ((rc = relink(dir, "current", target, &steps, stop_after, "current", err)) != 0)
        return rc < 0 ? rc : 0;
    if (fsync_dir(dir) != 0)
        return kiln_err_at(err, KILN_EIO, dir, "%s: fsync: %s", dir, strerror(errno));
    return 0;
}

int ke_store_rollback(const char *dir, kiln_err_t *err)
{
    char prev[512];
    int rc, steps = 0;
    if ((rc = ke_store_link(dir, "previous", prev, sizeof prev, err)) < 0)
        return rc;
    if (!prev[0])
        return kiln_err_set(err, KILN_ENOTFOUND, "%s/previous: none to roll back to", dir);
    if ((rc = relink(dir, "current", prev, &steps, 0, NULL, err)) < 0)
        return rc;
    if (fsync_dir(dir) != 0)
        return kiln_err_at(err, KILN_EIO, dir, "%s: fsync: %s", dir, strerror(errno));
    return 0;
}

/* Removes DIR/sub/name (a file, or a directory of files). */
static void remove_entry(const char *parent, const char *name)
{
    char path[KE_PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", parent, name);
    struct stat st;
    if (lstat(path, &st) != 0)
        return;
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        struct dirent *e;
        while (d && (e = readdir(d)))
            if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
                remove_entry(path, e->d_name);
        if (d)
            closedir(d);
        rmdir(path);
    } else {
        unlink(path);
    }
}

void ke_store_gc(const char *dir, const char *keep_sha)
{
    char cur[512], prev[512], models[KE_PATH_MAX], dl[KE_PATH_MAX];
    kiln_err_t err;
    if (ke_store_link(dir, "current", cur, sizeof cur, &err) < 0 ||
        ke_store_link(dir, "previous", prev, sizeof prev, &err) < 0)
        return;
    snprintf(models, sizeof models, "%s/models", dir);
    DIR *d = opendir(models);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        char rel[600];
        snprintf(rel, sizeof rel, "models/%s", e->d_name);
        if (strcmp(rel, cur) && strcmp(rel, prev))
            remove_entry(models, e->d_name);
    }
    if (d)
        closedir(d);
    snprintf(dl, sizeof dl, "%s/download", dir);
    d = opendir(dl);
    while (d && (e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        if (keep_sha && !strncmp(e->d_name, keep_sha, strlen(keep_sha)))
            continue;
        remove_entry(dl, e->d_name);
    }
    if (d)
        closedir(d);
}

uint64_t ke_resume_offset(uint64_t part_size, uint64_t size, int *truncate)
{
    *truncate = part_size > size;
    return *truncate ? 0 : part_size;
}

int64_t ke_resume_accept(uint64_t offset, long status, int64_t range_start)
{
    if (status == 200)
        return 0;
    if (status == 206 && range_start >= 0 && (uint64_t)range_start == offset)
        return (int64_t)offset;
    return -1;
}
