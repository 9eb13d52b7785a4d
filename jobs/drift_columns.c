/* drift_columns.c - the drift task's two datasets, features or predictions
 * opened and read the same way, chunk by chunk, and the columns compared
 * (drift_run.c's header says which): numeric ones first, then the class
 * ones, with the spec's per-column method and threshold overrides. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "../core/kiln_alloc.h"
#include "../storage/sensor.h"
#include "drift_run_int.h"

int jb_drift_src_open(jb_drift_src_t *s, const char *path, const char *field, kiln_err_t *err)
{
    char schema[64];
    memset(s, 0, sizeof *s);
    s->path = path;
    int rc = st_dataset_schema(path, schema, err);
    if (rc < 0) {
        char msg[sizeof err->msg];
        snprintf(msg, sizeof msg, "%s", err->msg);
        return kiln_err_at(err, rc, field, "%s: %s", field, msg);
    }
    if (!strcmp(schema, ST_FEATURES_SCHEMA)) {
        if ((rc = st_features_open(path, &s->f, err)) < 0)
            return rc;
        const st_features_meta_t *m = st_features_meta(s->f);
        s->n_rows = m->n_rows;
        s->n_num = m->n_features;
        s->num_names = m->feature_names;
        s->has_label = m->has_label;
        s->n_classes = m->n_label_names;
        s->classes = m->label_names;
        s->content_sha256 = m->content_sha256;
    } else if (!strcmp(schema, ST_PREDICTIONS_SCHEMA)) {
        if ((rc = st_predictions_open(path, &s->p, err)) < 0)
            return rc;
        const st_predictions_meta_t *m = st_predictions_meta(s->p);
        s->is_pred = 1;
        s->n_rows = m->n_rows;
        s->n_num = m->n_outputs;
        s->num_names = m->output_names;
        s->has_label = m->has_label;
        s->has_pred = 1;
        s->n_classes = m->n_class_names;
        s->classes = m->class_names;
        s->content_sha256 = m->content_sha256;
    } else {
        return kiln_err_at(err, KILN_ESCHEMA, field, "%s: %s: schema '%s' is neither %s nor %s",
                           field, path, schema, ST_FEATURES_SCHEMA, ST_PREDICTIONS_SCHEMA);
    }
    return 0;
}

void jb_drift_src_close(jb_drift_src_t *s)
{
    st_features_close(&s->f);
    st_predictions_close(&s->p);
}

/* Rows [row0, row0 + k): numeric values row-major (k x n_num), asset,
 * label (-1 where absent) and predicted class (predictions only). */
int jb_drift_src_read(jb_drift_src_t *s, size_t row0, size_t k, float *rows, int32_t *asset,
                      int32_t *label, int32_t *pred, kiln_err_t *err)
{
    if (!s->is_pred)
        return st_features_read(s->f, row0, k, rows, err) < 0
                   ? err->code
                   : st_features_read_meta(s->f, row0, k, asset, NULL, label, NULL, err);
    int rc = st_predictions_read(s->p, row0, k, rows, pred, err);
    return rc < 0 ? rc : st_predictions_read_meta(s->p, row0, k, asset, NULL, label, NULL, err);
}

static int find_num(const jb_drift_src_t *s, const char *name)
{
    for (size_t i = 0; i < s->n_num; i++)
        if (!strcmp(s->num_names[i], name))
            return (int)i;
    return -1;
}

/* Names only on one side, for the schema error: "a, b, c (and 4 more)". */
static void list_missing(const jb_drift_src_t *a, const jb_drift_src_t *b, char *out, size_t cap,
                         size_t *n)
{
    size_t shown = 0, at = 0;
    *n = 0;
    out[0] = '\0';
    for (size_t i = 0; i < a->n_num; i++) {
        if (find_num(b, a->num_names[i]) >= 0)
            continue;
        if (shown < 6 && at < cap) {
            int w = snprintf(out + at, cap - at, "%s'%s'", shown ? ", " : "", a->num_names[i]);
            if (w > 0)
                at += (size_t)w;
            shown++;
        }
        (*n)++;
    }
    if (*n > shown && at < cap)
        snprintf(out + at, cap - at, " (and %zu more)", *n - shown);
}

/* Class ids of both sides onto the union of their class names. */
static void class_maps(jb_drift_column_t *c, const jb_drift_src_t *ref, const jb_drift_src_t *cur)
{
    const size_t half = CLASS_NAMES_MAX / 2;
    c->identity = !ref->n_classes || !cur->n_classes;
    if (c->identity)
        return;
    const char *names[CLASS_NAMES_MAX];
    size_t n = 0;
    for (size_t i = 0; i < half; i++)
        c->ref_map[i] = c->cur_map[i] = -1;
    for (size_t i = 0; i < ref->n_classes && i < half; i++) {
        names[n] = ref->classes[i];
        c->ref_map[i] = (int32_t)n++;
    }
    for (size_t i = 0; i < cur->n_classes && i < half; i++) {
        size_t k = 0;
        while (k < n && strcmp(names[k], cur->classes[i]))
            k++;
        if (k == n)
            names[n++] = cur->classes[i];
        c->cur_map[i] = (int32_t)k;
    }
}

int jb_drift_plan_columns(const jb_drift_spec_t *t, const jb_drift_src_t *ref,
                          const jb_drift_src_t *cur, jb_drift_column_t **out, size_t *n_out,
                          kiln_err_t *err)
{
    *out = NULL;
    *n_out = 0;
    if (!ref->is_pred && !cur->is_pred) {
        char a[600], b[600];
        size_t na, nb;
        list_missing(ref, cur, a, sizeof a, &na);
        list_missing(cur, ref, b, sizeof b, &nb);
        if (na || nb)
            return kiln_err_at(err, KILN_ESCHEMA, "current",
                               "current: %s: its features do not match the reference %s: "
                               "%zu only in the reference%s%s, %zu only in the current set%s%s",
                               cur->path, ref->path, na, na ? ": " : "", a, nb, nb ? ": " : "", b);
    }
    jb_drift_column_t *cols = kiln_calloc(cur->n_num + 2, sizeof *cols);
    if (!cols)
        return kiln_err_set(err, KILN_ENOMEM, "drift: out of memory");
    size_t n = 0;
    for (size_t i = 0; i < cur->n_num; i++) {
        int r = find_num(ref, cur->num_names[i]);
        if (r < 0)
            continue;
        cols[n].name = cur->num_names[i];
        cols[n].kind = KN_DRIFT_NUMERIC;
        cols[n].ref_idx = r;
        cols[n].cur_idx = (int)i;
        n++;
    }
    if (ref->has_label && cur->has_label) {
        cols[n] = (jb_drift_column_t){.name = "label", .kind = KN_DRIFT_CLASS, .ref_idx = SRC_LABEL,
                          .cur_idx = SRC_LABEL};
        class_maps(&cols[n++], ref, cur);
    }
    /* The predicted class: against the reference's predictions, or (a
     * features reference, e.g. the training data) its labels. */
    if (cur->has_pred && (ref->has_pred || ref->has_label)) {
        cols[n] = (jb_drift_column_t){.name = "predicted", .kind = KN_DRIFT_CLASS,
                          .ref_idx = ref->has_pred ? SRC_PREDICTED : SRC_LABEL,
                          .cur_idx = SRC_PREDICTED};
        class_maps(&cols[n++], ref, cur);
    }
    if (!n) {
        kiln_free(cols);
        return kiln_err_at(err, KILN_ESCHEMA, "current",
                           "current: %s and the reference %s have no column in common "
                           "(current: %zu %s columns%s; reference: %zu %s columns%s)",
                           cur->path, ref->path, cur->n_num, cur->is_pred ? "output" : "feature",
                           cur->has_label ? " and label" : "", ref->n_num,
                           ref->is_pred ? "output" : "feature", ref->has_label ? " and label" : "");
    }
    for (size_t i = 0; i < n; i++) {
        cols[i].method = KN_DRIFT_AUTO;
        cols[i].threshold = NAN;
    }
    for (size_t o = 0; o < t->n_overrides; o++) {
        size_t i = 0;
        while (i < n && strcmp(cols[i].name, t->overrides[o].name))
            i++;
        if (i == n) {
            kiln_err_at(err, KILN_ESPEC, "columns", "job: columns.%s: no such column in both "
                        "datasets (e.g. '%s')", t->overrides[o].name, cols[0].name);
            kiln_free(cols);
            return KILN_ESPEC;
        }
        kn_drift_method_t m = t->overrides[o].method;
        int class_only = m == KN_DRIFT_CHISQUARE || m == KN_DRIFT_CHI2_CONTINGENCY;
        int numeric_only = m == KN_DRIFT_KS || m == KN_DRIFT_WASSERSTEIN_NORM;
        if ((cols[i].kind == KN_DRIFT_NUMERIC && class_only) ||
            (cols[i].kind == KN_DRIFT_CLASS && numeric_only)) {
            kiln_err_at(err, KILN_ESPEC, "columns", "job: columns.%s.method: %s does not apply "
                        "to a %s column", cols[i].name, kn_drift_method_name(m),
                        cols[i].kind == KN_DRIFT_CLASS ? "class" : "numeric");
            kiln_free(cols);
            return KILN_ESPEC;
        }
        cols[i].method = m;
        cols[i].threshold = t->overrides[o].threshold;
    }
    *out = cols;
    *n_out = n;
    return 0;
}
