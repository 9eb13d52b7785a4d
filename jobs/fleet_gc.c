/* fleet_gc.c - old rollouts' blobs out of the artifact store (fleet_gc.h). */
#include "jobs/fleet_gc.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/kiln_alloc.h"
#include "storage/artifacts.h"
#include "storage/fleets.h"

#define PATH_CAP 1200

typedef struct {
    char    sha[2][65];     /* bundle, envelope */
    char    model[ST_NAME_MAX];
    int64_t version;
    int     full;           /* went full (or done) */
    int     kept;
} ro_blobs_t;

typedef struct {
    ro_blobs_t *v;
    size_t      n, cap;
    int         oom;
} ro_list_t;

static int collect_rollout(const st_rollout_t *r, void *ud)
{
    ro_list_t *l = ud;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 32;
        ro_blobs_t *p = kiln_realloc(l->v, cap * sizeof *p);
        if (!p) {
            l->oom = 1;
            return 1;
        }
        l->v = p;
        l->cap = cap;
    }
    ro_blobs_t *b = &l->v[l->n++];
    memcpy(b->sha[0], r->bundle_sha256, sizeof b->sha[0]);
    memcpy(b->sha[1], r->envelope_sha256, sizeof b->sha[1]);
    memcpy(b->model, r->model, sizeof b->model);
    b->version = r->version;
    b->full = r->stage == ST_ROLLOUT_FULL || r->stage == ST_ROLLOUT_DONE;
    b->kept = 0;
    return 0;
}

static int named_by_kept(const ro_list_t *l, const char *sha)
{
    for (size_t i = 0; i < l->n; i++)
        if (l->v[i].kept && (!strcmp(l->v[i].sha[0], sha) || !strcmp(l->v[i].sha[1], sha)))
            return 1;
    return 0;
}

/* One fleet's rollouts, newest first: the blobs only unkept ones name go. */
static int gc_fleet(st_state_t *st, const char *root, const char *fleet, int keep,
                    jb_gc_stats_t *out, kiln_err_t *err)
{
    ro_list_t l = {0};
    int rc = st_rollout_list(st, fleet, 0, collect_rollout, &l, err);
    if (rc == 0 && l.oom)
        rc = kiln_err_set(err, KILN_ENOMEM, "fleet gc: out of memory");
    /* the newest full rollout of each of the two newest versions that went
     * full: what runs outside a canary, and where `kiln rollback` goes */
    const ro_blobs_t *good[2] = {NULL, NULL};
    for (size_t i = 0; rc == 0 && i < l.n; i++) {
        ro_blobs_t *b = &l.v[i];
        b->kept = (int64_t)i < keep;
        if (!b->full)
            continue;
        int seen = 0;
        for (int g = 0; g < 2 && good[g]; g++)
            seen |= good[g]->version == b->version && !strcmp(good[g]->model, b->model);
        if (!seen && !good[1]) {
            good[good[0] ? 1 : 0] = b;
            b->kept = 1;
        }
    }
    int first = 0;
    for (size_t i = 0; rc == 0 && i < l.n; i++) {
        if (l.v[i].kept)
            continue;
        for (int k = 0; k < 2; k++) {
            char path[PATH_CAP];
            struct stat sb;
            if (named_by_kept(&l, l.v[i].sha[k]) ||
                st_artifact_path(root, l.v[i].sha[k], path, sizeof path) < 0 ||
                lstat(path, &sb) != 0)
                continue;   /* kept, or gone already */
            if (unlink(path) == 0) {
                out->files++;
                out->bytes += (int64_t)sb.st_size;
            } else if (!first) {
                first = kiln_err_at(err, KILN_EIO, path, "fleet %s: removing %s: %s", fleet,
                                    path, strerror(errno));
            }
        }
    }
    kiln_free(l.v);
    return rc < 0 ? rc : first;
}

int jb_fleet_gc(st_state_t *st, const char *dir, int keep, jb_gc_stats_t *out, kiln_err_t *err)
{
    jb_gc_stats_t local = {0, 0};
    if (!out)
        out = &local;
    if (!st || !dir || keep < 1)
        return kiln_err_set(err, KILN_EINVAL, "fleet gc: a state, a directory and keep >= 1");
    char root[PATH_CAP];
    int n = snprintf(root, sizeof root, "%s/artifacts", dir);
    if (n < 0 || (size_t)n >= sizeof root)
        return kiln_err_set(err, KILN_EINVAL, "%s: path too long", dir);
    char (*names)[ST_NAME_MAX] = NULL;
    size_t n_fleets = 0;
    int rc = st_fleet_names(st, &names, &n_fleets, err), first = 0;
    kiln_err_t e1 = {0};
    for (size_t i = 0; rc == 0 && i < n_fleets; i++) {
        kiln_err_t e2 = {0};
        int one = gc_fleet(st, root, names[i], keep, out, &e2);
        if (one < 0 && !first) {
            first = one;
            e1 = e2;
        }
    }
    kiln_free(names);
    if (rc == 0 && first < 0) {
        if (err)
            *err = e1;
        rc = first;
    }
    return rc;
}
