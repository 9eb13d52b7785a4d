/* state_cache.c - pipelines' step cache and a parent's children (state.h).
 * The cache is what makes an unchanged step free: the scheduler stores a
 * step's key when it plans it and its output's digest when it succeeds, and
 * looks the key up before planning the next step with the same key. */
#include <stdio.h>
#include <string.h>

#include "state_int.h"

int st_state_job_children(st_state_t *st, int64_t parent, st_state_job_cb cb, void *ud,
                          kiln_err_t *err)
{
    if (!st || !cb)
        return kiln_err_set(err, KILN_EINVAL, "job children: NULL argument");
    sqlite3_stmt *s = st->q[Q_JOB_CHILDREN];
    BIND(sqlite3_bind_int64(s, 1, parent), "listing a job's steps");
    return st_sq_job_rows(st, s, cb, ud, err, "listing a job's steps");
}

int st_state_cache_put(st_state_t *st, int64_t job_id, const char *key, const char *output,
                       int64_t now_ns, kiln_err_t *err)
{
    if (!st || !st_sq_nonempty(key) || !st_sq_nonempty(output))
        return kiln_err_set(err, KILN_EINVAL, "step cache: NULL or empty argument");
    sqlite3_stmt *s = st->q[Q_CACHE_PUT];
    BIND(sqlite3_bind_int64(s, 1, job_id), "storing a step's cache key");
    BIND(st_sq_bind_text(s, 2, key), "storing a step's cache key");
    BIND(st_sq_bind_text(s, 3, output), "storing a step's cache key");
    BIND(sqlite3_bind_int64(s, 4, now_ns), "storing a step's cache key");
    return st_sq_run_done(st, s, err, "storing a step's cache key");
}

int st_state_cache_done(st_state_t *st, int64_t job_id, const char *digest, kiln_err_t *err)
{
    if (!st || !digest || strlen(digest) != 64)
        return kiln_err_set(err, KILN_EINVAL, "step cache: bad digest");
    sqlite3_stmt *s = st->q[Q_CACHE_DONE];
    BIND(sqlite3_bind_int64(s, 1, job_id), "storing a step's output digest");
    BIND(st_sq_bind_text(s, 2, digest), "storing a step's output digest");
    return st_sq_run_done(st, s, err, "storing a step's output digest");
}

int st_state_cache_find(st_state_t *st, const char *key, int64_t *job_id, char *output,
                        size_t out_cap, char digest[65], kiln_err_t *err)
{
    if (!st || !key || !job_id || !output || !out_cap || !digest)
        return kiln_err_set(err, KILN_EINVAL, "step cache: NULL argument");
    sqlite3_stmt *s = st->q[Q_CACHE_FIND];
    BIND(st_sq_bind_text(s, 1, key), "looking up a step's cache key");
    int rc = sqlite3_step(s), ret = 0;
    if (rc == SQLITE_ROW) {
        const char *o = (const char *)sqlite3_column_text(s, 1);
        const char *d = (const char *)sqlite3_column_text(s, 2);
        *job_id = sqlite3_column_int64(s, 0);
        if (!o || !d || strlen(o) >= out_cap || strlen(d) != 64)
            ret = kiln_err_set(err, KILN_EFORMAT, "%s: step cache entry of job %lld is bad",
                               st->path, (long long)*job_id);
        else {
            memcpy(output, o, strlen(o) + 1);
            memcpy(digest, d, 65);
        }
    } else if (rc == SQLITE_DONE) {
        ret = kiln_err_set(err, KILN_ENOTFOUND, "no cached step under this key");
    } else {
        ret = st_sq_err(st, rc, err, "looking up a step's cache key");
    }
    st_sq_end_stmt(s);
    return ret;
}
