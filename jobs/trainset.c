/* trainset.c - feature datasets in memory and the time-aware split (trainset.h). */
#include "trainset.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/kiln_alloc.h"
#include "../storage/features.h"

#define READ_ROWS 4096

static char **dup_strings(const char *const *v, size_t n)
{
    char **out = kiln_calloc(n ? n : 1, sizeof *out);
    for (size_t i = 0; out && i < n; i++)
        if (!(out[i] = kiln_strdup(v[i] ? v[i] : ""))) {
            for (size_t k = 0; k < i; k++)
                kiln_free(out[k]);
            kiln_free(out);
            return NULL;
        }
    return out;
}

static void free_strings(char **v, size_t n)
{
    for (size_t i = 0; v && i < n; i++)
        kiln_free(v[i]);
    kiln_free(v);
}

void jb_trainset_free(jb_trainset_t *ts)
{
    if (!ts)
        return;
    kiln_free(ts->x);
    kiln_free(ts->label);
    kiln_free(ts->target);
    kiln_free(ts->asset);
    kiln_free(ts->timestamp_ns);
    free_strings(ts->feature_names, ts->d);
    free_strings(ts->class_names, (size_t)ts->n_classes);
    kiln_free(ts->spec_json);
    memset(ts, 0, sizeof *ts);
}

int jb_trainset_load(const char *path, jb_learn_t learn, jb_trainset_t *out, kiln_err_t *err)
{
    memset(out, 0, sizeof *out);
    st_features_t *ds = NULL;
    int rc = st_features_open(path, &ds, err);
    if (rc < 0)
        return rc;
    const st_features_meta_t *m = st_features_meta(ds);
    size_t n = m->n_rows, d = m->n_features;
    if (learn == JB_LEARN_LABEL && !m->has_label) {
        rc = kiln_err_at(err, KILN_ESPEC, "target",
                         "%s: no /label to learn (target \"label\" needs a labelled dataset)",
                         path);
        goto out;
    }
    if (learn == JB_LEARN_TARGET && !m->has_target) {
        rc = kiln_err_at(err, KILN_ESPEC, "target", "%s: no /target to learn", path);
        goto out;
    }
    if (n == 0) {
        rc = kiln_err_set(err, KILN_ESHAPE, "%s: the dataset has no rows", path);
        goto out;
    }
    if (n > JB_TRAIN_MAX_ROWS) {
        rc = kiln_err_set(err, KILN_EUNSUPPORTED, "%s: %zu rows, more than %zu in memory", path,
                          n, JB_TRAIN_MAX_ROWS);
        goto out;
    }
    out->d = d;
    out->x = kiln_malloc(n * d * sizeof *out->x);
    out->asset = kiln_malloc(n * sizeof *out->asset);
    out->timestamp_ns = kiln_malloc(n * sizeof *out->timestamp_ns);
    int32_t *lab = m->has_label ? kiln_malloc(n * sizeof *lab) : NULL;
    float *tgt = m->has_target ? kiln_malloc(n * sizeof *tgt) : NULL;
    out->feature_names = dup_strings(m->feature_names, d);
    if (learn == JB_LEARN_LABEL) {
        out->n_classes = (int)m->n_label_names;
        out->class_names = dup_strings(m->label_names, m->n_label_names);
    }
    if (!out->x || !out->asset || !out->timestamp_ns || (m->has_label && !lab) ||
        (m->has_target && !tgt) || !out->feature_names ||
        (learn == JB_LEARN_LABEL && !out->class_names)) {
        kiln_free(lab);
        kiln_free(tgt);
        rc = kiln_err_set(err, KILN_ENOMEM, "%s: out of memory for %zu x %zu features", path, n,
                          d);
        goto out;
    }
    /* Read in blocks, keeping only the rows with something to learn. */
    size_t kept = 0;
    for (size_t r0 = 0; r0 < n && rc == 0; r0 += READ_ROWS) {
        size_t k = n - r0 < READ_ROWS ? n - r0 : READ_ROWS;
        float *x = out->x + kept * d;
        if ((rc = st_features_read(ds, r0, k, x, err)) < 0 ||
            (rc = st_features_read_meta(ds, r0, k, out->asset + kept, out->timestamp_ns + kept,
                                        lab ? lab + kept : NULL, tgt ? tgt + kept : NULL,
                                        err)) < 0)
            break;
        const size_t base = kept;   /* the block landed at base; kept moves as rows are dropped */
        for (size_t i = 0; i < k; i++) {
            size_t src = base + i;
            if (learn == JB_LEARN_LABEL && lab[src] < 0)
                continue;
            if (src != kept) {
                memmove(out->x + kept * d, out->x + src * d, d * sizeof *out->x);
                out->asset[kept] = out->asset[src];
                out->timestamp_ns[kept] = out->timestamp_ns[src];
                if (lab)
                    lab[kept] = lab[src];
                if (tgt)
                    tgt[kept] = tgt[src];
            }
            kept++;
        }
    }
    if (rc == 0 && kept == 0)
        rc = kiln_err_set(err, KILN_ESHAPE, "%s: no row has a known label", path);
    if (rc < 0) {
        kiln_free(lab);
        kiln_free(tgt);
        goto out;
    }
    out->n = kept;
    if (learn == JB_LEARN_LABEL) {
        out->label = lab;
        kiln_free(tgt);
    } else {
        out->target = tgt;
        kiln_free(lab);
    }
    snprintf(out->content_sha256, sizeof out->content_sha256, "%s",
             m->content_sha256 ? m->content_sha256 : "");
    snprintf(out->spec_sha256, sizeof out->spec_sha256, "%s",
             m->spec_sha256 ? m->spec_sha256 : "");
    if (m->spec_json && !(out->spec_json = kiln_strdup(m->spec_json)))
        rc = kiln_err_set(err, KILN_ENOMEM, "%s: out of memory", path);
out:
    st_features_close(&ds);
    if (rc < 0)
        jb_trainset_free(out);
    return rc;
}

/* ---- the time-aware split */

typedef struct {
    int32_t asset;
    int64_t t;
    size_t  row;
} split_key_t;

static int key_cmp(const void *a, const void *b)
{
    const split_key_t *x = a, *y = b;
    if (x->asset != y->asset)
        return x->asset < y->asset ? -1 : 1;
    if (x->t != y->t)
        return x->t < y->t ? -1 : 1;
    return x->row < y->row ? -1 : x->row > y->row;
}

int jb_trainset_split_time(const jb_trainset_t *ts, double fraction, size_t **train,
                           size_t *n_train, size_t **valid, size_t *n_valid, kiln_err_t *err)
{
    *train = *valid = NULL;
    *n_train = *n_valid = 0;
    if (!(fraction >= 0 && fraction < 1))
        return kiln_err_at(err, KILN_ESPEC, "validation.fraction",
                           "validation.fraction: must be in [0, 1), not %g", fraction);
    size_t n = ts->n;
    split_key_t *k = kiln_malloc(n * sizeof *k);
    unsigned char *is_valid = kiln_calloc(n, 1);
    size_t *tr = kiln_malloc(n * sizeof *tr), *va = kiln_malloc(n * sizeof *va);
    if (!k || !is_valid || !tr || !va) {
        kiln_free(k);
        kiln_free(is_valid);
        kiln_free(tr);
        kiln_free(va);
        return kiln_err_set(err, KILN_ENOMEM, "split: out of memory for %zu rows", n);
    }
    for (size_t i = 0; i < n; i++)
        k[i] = (split_key_t){ts->asset[i], ts->timestamp_ns[i], i};
    qsort(k, n, sizeof *k, key_cmp);
    for (size_t a = 0; a < n;) {
        size_t b = a;
        while (b < n && k[b].asset == k[a].asset)
            b++;
        size_t count = b - a;
        size_t hold = count > 1 ? (size_t)ceil(fraction * (double)count) : 0;
        if (hold >= count)
            hold = count - 1;   /* every asset keeps something to learn from */
        for (size_t i = b - hold; i < b; i++)
            is_valid[k[i].row] = 1;
        a = b;
    }
    size_t nt = 0, nv = 0;
    for (size_t i = 0; i < n; i++) {
        if (is_valid[i])
            va[nv++] = i;
        else
            tr[nt++] = i;
    }
    kiln_free(k);
    kiln_free(is_valid);
    *train = tr;
    *valid = va;
    *n_train = nt;
    *n_valid = nv;
    return 0;
}

void jb_trainset_gather(const jb_trainset_t *ts, const size_t *idx, size_t n, float *x,
                        int32_t *label, float *target)
{
    for (size_t i = 0; i < n; i++) {
        size_t r = idx[i];
        if (x)
            memcpy(x + i * ts->d, ts->x + r * ts->d, ts->d * sizeof *x);
        if (label && ts->label)
            label[i] = ts->label[r];
        if (target && ts->target)
            target[i] = ts->target[r];
    }
}
