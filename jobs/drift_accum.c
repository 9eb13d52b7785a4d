/* drift_accum.c - the drift task's accumulators: kn_drift columns for the
 * whole dataset and for each asset (by_asset), and the passes that feed them
 * a chunk of rows at a time, transposed into columns (numeric ones over
 * resources.cores threads) or mapped onto shared class ids. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/kiln_alloc.h"
#include "drift_run_int.h"

int jb_drift_new_cols(jb_drift_acc_t *a, kn_drift_col_t ***out, kiln_err_t *err)
{
    kn_drift_col_t **c = kiln_calloc(a->n_cols, sizeof *c);
    if (!c)
        return kiln_err_set(err, KILN_ENOMEM, "drift: out of memory");
    for (size_t i = 0; i < a->n_cols; i++) {
        int rc = kn_drift_col_new(a->cols[i].kind, 0, &c[i], err);
        if (rc < 0) {
            for (size_t k = 0; k < i; k++)
                kn_drift_col_destroy(&c[k]);
            kiln_free(c);
            return rc;
        }
    }
    *out = c;
    return 0;
}

void jb_drift_free_cols(jb_drift_acc_t *a, kn_drift_col_t ***c)
{
    for (size_t i = 0; *c && i < a->n_cols; i++)
        kn_drift_col_destroy(&(*c)[i]);
    kiln_free(*c);
    *c = NULL;
}

/* Feeds rows sel[0..k) (NULL: all k) of the chunk to cols. */
static int feed(jb_drift_acc_t *a, kn_drift_col_t **cols, kn_drift_side_t side,
                const jb_drift_src_t *s, size_t k, const size_t *sel, size_t n_sel, kiln_err_t *err)
{
    size_t n = sel ? n_sel : k;
    if (!n)
        return 0;
    for (size_t c = 0; c < a->n_num; c++) {
        int idx = side == KN_DRIFT_REF ? a->cols[c].ref_idx : a->cols[c].cur_idx;
        float *dst = a->colbuf + c * a->step;
        for (size_t r = 0; r < n; r++)
            dst[r] = a->rows[(sel ? sel[r] : r) * s->n_num + (size_t)idx];
        a->colptr[c] = dst;
    }
    int rc = kn_drift_feed_columns(cols, a->n_num, side, a->colptr, n, a->t->threads, err);
    if (rc < 0) {
        char msg[sizeof err->msg];
        snprintf(msg, sizeof msg, "%s", err->msg);
        return kiln_err_at(err, rc, side == KN_DRIFT_REF ? "reference" : "current", "%s: %s: %s",
                           side == KN_DRIFT_REF ? "reference" : "current", s->path, msg);
    }
    for (size_t c = a->n_num; c < a->n_cols; c++) {
        const jb_drift_column_t *col = &a->cols[c];
        int idx = side == KN_DRIFT_REF ? col->ref_idx : col->cur_idx;
        const int32_t *src = idx == SRC_PREDICTED ? a->pred : a->label;
        const int32_t *map = side == KN_DRIFT_REF ? col->ref_map : col->cur_map;
        size_t m = 0;
        for (size_t r = 0; r < n; r++) {
            int32_t v = src[sel ? sel[r] : r];
            if (v < 0)
                continue;                              /* unknown label */
            if (!col->identity)
                v = v < CLASS_NAMES_MAX / 2 ? map[v] : -1;
            if (v >= 0)
                a->classbuf[m++] = v;
        }
        if (m && (rc = kn_drift_feed_class(cols[c], side, a->classbuf, m, err)) < 0)
            return rc;
    }
    return 0;
}

static jb_drift_asset_t *asset_find(jb_drift_acc_t *a, int32_t id)
{
    size_t lo = 0, hi = a->n_assets;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (a->assets[mid].id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < a->n_assets && a->assets[lo].id == id ? &a->assets[lo] : NULL;
}

static int cmp_i32(const void *x, const void *y)
{
    int32_t a = *(const int32_t *)x, b = *(const int32_t *)y;
    return (a > b) - (a < b);
}

/* The current set's assets (the JB_DRIFT_ASSETS_MAX lowest ids) and which
 * of them the reference has: a pass over the asset columns only. */
int jb_drift_find_assets(jb_drift_acc_t *a, jb_drift_src_t *ref, jb_drift_src_t *cur,
                         kiln_err_t *err)
{
    int32_t ids[JB_DRIFT_ASSETS_MAX + 1];
    size_t n = 0, extra = 0;
    int rc;
    for (size_t r0 = 0; r0 < cur->n_rows; r0 += a->step) {
        size_t k = cur->n_rows - r0 < a->step ? cur->n_rows - r0 : a->step;
        if ((rc = (cur->is_pred ? st_predictions_read_meta(cur->p, r0, k, a->asset, NULL, NULL,
                                                           NULL, err)
                                : st_features_read_meta(cur->f, r0, k, a->asset, NULL, NULL,
                                                        NULL, err))) < 0)
            return rc;
        for (size_t i = 0; i < k; i++) {
            size_t j = 0;
            while (j < n && ids[j] != a->asset[i])
                j++;
            if (j < n)
                continue;
            ids[n++] = a->asset[i];
            if (n > JB_DRIFT_ASSETS_MAX) {      /* keep the lowest ids */
                qsort(ids, n, sizeof ids[0], cmp_i32);
                n--;
                extra++;
            }
        }
    }
    qsort(ids, n, sizeof ids[0], cmp_i32);
    a->n_assets_left_out = extra;
    if (!(a->assets = kiln_calloc(n ? n : 1, sizeof *a->assets)))
        return kiln_err_set(err, KILN_ENOMEM, "drift: out of memory");
    for (size_t i = 0; i < n; i++)
        a->assets[i].id = ids[i];
    a->n_assets = n;
    for (size_t r0 = 0; r0 < ref->n_rows; r0 += a->step) {
        size_t k = ref->n_rows - r0 < a->step ? ref->n_rows - r0 : a->step;
        if ((rc = (ref->is_pred ? st_predictions_read_meta(ref->p, r0, k, a->asset, NULL, NULL,
                                                           NULL, err)
                                : st_features_read_meta(ref->f, r0, k, a->asset, NULL, NULL,
                                                        NULL, err))) < 0)
            return rc;
        for (size_t i = 0; i < k; i++) {
            jb_drift_asset_t *as = asset_find(a, a->asset[i]);
            if (as)
                as->own_ref = 1;
        }
    }
    for (size_t i = 0; i < n; i++)
        if ((rc = jb_drift_new_cols(a, &a->assets[i].cols, err)) < 0)
            return rc;
    return 0;
}

int jb_drift_pass(jb_drift_acc_t *a, jb_drift_src_t *s, kn_drift_side_t side, kiln_err_t *err)
{
    int rc;
    for (size_t r0 = 0; r0 < s->n_rows; r0 += a->step) {
        size_t k = s->n_rows - r0 < a->step ? s->n_rows - r0 : a->step;
        for (size_t i = 0; i < k; i++)
            a->pred[i] = -1;
        if ((rc = jb_drift_src_read(s, r0, k, a->rows, a->asset, a->label, a->pred, err)) < 0 ||
            (rc = feed(a, a->whole, side, s, k, NULL, 0, err)) < 0)
            return rc;
        for (size_t j = 0; j < a->n_assets; j++) {
            jb_drift_asset_t *as = &a->assets[j];
            if (side == KN_DRIFT_REF && !as->own_ref) {
                as->n_ref += k;
                if ((rc = feed(a, as->cols, side, s, k, NULL, 0, err)) < 0)
                    return rc;
                continue;
            }
            size_t m = 0;
            for (size_t i = 0; i < k; i++)
                if (a->asset[i] == as->id)
                    a->sel[m++] = i;
            *(side == KN_DRIFT_REF ? &as->n_ref : &as->n_cur) += m;
            if ((rc = feed(a, as->cols, side, s, k, a->sel, m, err)) < 0)
                return rc;
        }
        if (side == KN_DRIFT_CUR && (rc = jb_drift_quality_feed(a, s, k, err)) < 0)
            return rc;
    }
    return 0;
}
