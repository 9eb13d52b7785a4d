/* drift_run.c - the drift job's task (drift_job.h): the reference and the
 * current dataset read in chunks of rows (never whole: DESIGN.md, "Reads
 * stream chunk by chunk"), each chunk transposed into columns and fed to
 * kn_drift columns over resources.cores threads (kn_drift_feed_columns);
 * kn_drift keeps values exactly up to 2^20 per column, then a sketch with
 * reported error bounds (kernels/drift.h), so memory stays bounded.
 *
 * Columns compared: the numeric ones (feature names; a predictions file's
 * output names) and the class ones ("label"; a predictions file's
 * "predicted", which against a features reference is compared with the
 * reference's label) present in both.  Two feature datasets must carry the
 * same features (else KILN_ESCHEMA naming the ones only on one side).
 * Class ids are matched by class name, so files with different label lists
 * compare.  by_asset: each asset of the current set (the first
 * JB_DRIFT_ASSETS_MAX by id) against the reference rows of the same asset,
 * or the whole reference when it has none.  Model quality: accuracy and
 * macro F1 on the current labels (the model run over current features, or
 * a predictions file's own /predicted) against the run's recorded metrics. */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../core/kiln_alloc.h"
#include "../storage/features.h"
#include "../storage/predictions.h"
#include "../storage/sensor.h"
#include "drift_job.h"
#include "drift_report.h"
#include "modelfile.h"

#define CHUNK_BYTES ((size_t)16 << 20)
#define CHUNK_ROWS_MAX 65536
#define CLASS_NAMES_MAX 512
#define QUALITY_CLASSES_MAX 256

enum { SRC_LABEL = -1, SRC_PREDICTED = -2 };

/* One dataset, features or predictions, read the same way. */
typedef struct {
    const char *path;
    int is_pred;
    st_features_t *f;
    st_predictions_t *p;
    size_t n_rows, n_num;
    const char *const *num_names;
    int has_label, has_pred;
    size_t n_classes;              /* label names (features) / class names (predictions) */
    const char *const *classes;
    const char *content_sha256;
} src_t;

static int src_open(src_t *s, const char *path, const char *field, kiln_err_t *err)
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

static void src_close(src_t *s)
{
    st_features_close(&s->f);
    st_predictions_close(&s->p);
}

/* Rows [row0, row0 + k): numeric values row-major (k x n_num), asset,
 * label (-1 where absent) and predicted class (predictions only). */
static int src_read(src_t *s, size_t row0, size_t k, float *rows, int32_t *asset, int32_t *label,
                    int32_t *pred, kiln_err_t *err)
{
    if (!s->is_pred)
        return st_features_read(s->f, row0, k, rows, err) < 0
                   ? err->code
                   : st_features_read_meta(s->f, row0, k, asset, NULL, label, NULL, err);
    int rc = st_predictions_read(s->p, row0, k, rows, pred, err);
    return rc < 0 ? rc : st_predictions_read_meta(s->p, row0, k, asset, NULL, label, NULL, err);
}

/* ---- the columns compared ----------------------------------------------- */

typedef struct {
    const char     *name;
    kn_drift_kind_t kind;
    int             ref_idx, cur_idx;   /* numeric index, or SRC_LABEL / SRC_PREDICTED */
    kn_drift_method_t method;
    double          threshold;
    int32_t         ref_map[CLASS_NAMES_MAX / 2], cur_map[CLASS_NAMES_MAX / 2];
    int             identity;           /* class ids compared as they are */
} col_t;

static int find_num(const src_t *s, const char *name)
{
    for (size_t i = 0; i < s->n_num; i++)
        if (!strcmp(s->num_names[i], name))
            return (int)i;
    return -1;
}

/* Names only on one side, for the schema error: "a, b, c (and 4 more)". */
static void list_missing(const src_t *a, const src_t *b, char *out, size_t cap, size_t *n)
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
static void class_maps(col_t *c, const src_t *ref, const src_t *cur)
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

static int plan_columns(const jb_drift_spec_t *t, const src_t *ref, const src_t *cur, col_t **out,
                        size_t *n_out, kiln_err_t *err)
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
    col_t *cols = kiln_calloc(cur->n_num + 2, sizeof *cols);
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
        cols[n] = (col_t){.name = "label", .kind = KN_DRIFT_CLASS, .ref_idx = SRC_LABEL,
                          .cur_idx = SRC_LABEL};
        class_maps(&cols[n++], ref, cur);
    }
    /* The predicted class: against the reference's predictions, or (a
     * features reference, e.g. the training data) its labels. */
    if (cur->has_pred && (ref->has_pred || ref->has_label)) {
        cols[n] = (col_t){.name = "predicted", .kind = KN_DRIFT_CLASS,
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

/* ---- accumulators: the whole dataset and each asset ----------------------- */

typedef struct {
    int32_t id;
    int     own_ref;                 /* the reference has rows of this asset */
    size_t  n_ref, n_cur;
    kn_drift_col_t **cols;
} asset_t;

typedef struct {
    const jb_drift_spec_t *t;
    col_t  *cols;
    size_t  n_cols, n_num;           /* numeric columns come first */
    kn_drift_col_t **whole;
    asset_t *assets;
    size_t  n_assets, n_assets_left_out;
    /* chunk scratch */
    size_t  step;
    float  *rows, *colbuf;
    const float **colptr;
    int32_t *asset, *label, *pred, *classbuf;
    size_t  *sel;
    /* quality */
    jb_modelfile_t model;
    int     have_model, quality_on;
    float  *scores;
    int32_t *model_pred, *label_to_model;
    size_t   n_model_classes;
    uint64_t *confusion;             /* n_model_classes^2 */
    char     quality_note[300];
} acc_t;

static int new_cols(acc_t *a, kn_drift_col_t ***out, kiln_err_t *err)
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

static void free_cols(acc_t *a, kn_drift_col_t ***c)
{
    for (size_t i = 0; *c && i < a->n_cols; i++)
        kn_drift_col_destroy(&(*c)[i]);
    kiln_free(*c);
    *c = NULL;
}

/* Feeds rows sel[0..k) (NULL: all k) of the chunk to cols. */
static int feed(acc_t *a, kn_drift_col_t **cols, kn_drift_side_t side, const src_t *s, size_t k,
                const size_t *sel, size_t n_sel, kiln_err_t *err)
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
        const col_t *col = &a->cols[c];
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

static asset_t *asset_find(acc_t *a, int32_t id)
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
static int find_assets(acc_t *a, src_t *ref, src_t *cur, kiln_err_t *err)
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
            asset_t *as = asset_find(a, a->asset[i]);
            if (as)
                as->own_ref = 1;
        }
    }
    for (size_t i = 0; i < n; i++)
        if ((rc = new_cols(a, &a->assets[i].cols, err)) < 0)
            return rc;
    return 0;
}

/* ---- model quality ----------------------------------------------------------- */

static const char *str_or_empty(const json_t *v)
{
    return json_is_string(v) ? json_string_value(v) : "";
}

static int quality_open(acc_t *a, const src_t *cur, kiln_err_t *err)
{
    const jb_drift_spec_t *t = a->t;
    if (!cur->has_label) {
        snprintf(a->quality_note, sizeof a->quality_note, "the current set has no labels");
        return 0;
    }
    if (cur->is_pred) {
        a->n_model_classes = cur->n_classes ? cur->n_classes : 0;
        if (!a->n_model_classes || a->n_model_classes > QUALITY_CLASSES_MAX) {
            snprintf(a->quality_note, sizeof a->quality_note,
                     "the predictions name %zu classes", a->n_model_classes);
            return 0;
        }
    } else {
        if (!t->model_file[0]) {
            snprintf(a->quality_note, sizeof a->quality_note,
                     "no model named (reference {\"model\": ...})");
            return 0;
        }
        int rc = jb_modelfile_read(t->model_file, &a->model, err);
        if (rc < 0)
            return rc;
        a->have_model = 1;
        const json_t *names = json_object_get(a->model.header, "feature_names");
        const json_t *classes = json_object_get(a->model.header, "class_names");
        const char *learn = json_string_value(json_object_get(a->model.header, "learn"));
        int same = json_array_size(names) == cur->n_num;
        for (size_t i = 0; same && i < cur->n_num; i++)
            same = !strcmp(str_or_empty(json_array_get(names, i)), cur->num_names[i]);
        if (!same || !learn || strcmp(learn, "label") || a->model.kind->unsupervised) {
            snprintf(a->quality_note, sizeof a->quality_note, "model %s %s", t->model_id,
                     same ? "does not classify labels" : "expects other features");
            return 0;
        }
        a->n_model_classes = json_array_size(classes);
        if (!a->n_model_classes || a->n_model_classes > QUALITY_CLASSES_MAX) {
            snprintf(a->quality_note, sizeof a->quality_note, "model %s has %zu classes",
                     t->model_id, a->n_model_classes);
            return 0;
        }
        size_t n_out = a->model.kind->n_outputs(a->model.model);
        a->scores = kiln_malloc(a->step * n_out * sizeof *a->scores);
        a->model_pred = kiln_malloc(a->step * sizeof *a->model_pred);
        a->label_to_model = kiln_malloc((cur->n_classes ? cur->n_classes : 1) * sizeof(int32_t));
        if (!a->scores || !a->model_pred || !a->label_to_model)
            return kiln_err_set(err, KILN_ENOMEM, "drift: out of memory for the model");
        for (size_t i = 0; i < cur->n_classes; i++) {
            a->label_to_model[i] = -1;
            for (size_t k = 0; k < a->n_model_classes; k++)
                if (!strcmp(cur->classes[i], str_or_empty(json_array_get(classes, k))))
                    a->label_to_model[i] = (int32_t)k;
        }
    }
    a->confusion = kiln_calloc(a->n_model_classes * a->n_model_classes, sizeof *a->confusion);
    if (!a->confusion)
        return kiln_err_set(err, KILN_ENOMEM, "drift: out of memory");
    a->quality_on = 1;
    return 0;
}

static int quality_feed(acc_t *a, const src_t *cur, size_t k, kiln_err_t *err)
{
    if (!a->quality_on)
        return 0;
    const int32_t *pred = a->pred;
    if (!cur->is_pred) {
        int rc = jb_modelfile_predict(&a->model, a->rows, k, a->scores, a->model_pred, err);
        if (rc < 0)
            return rc;
        pred = a->model_pred;
    }
    const size_t K = a->n_model_classes;
    for (size_t i = 0; i < k; i++) {
        int32_t y = a->label[i];
        if (!cur->is_pred)
            y = y >= 0 && (size_t)y < cur->n_classes ? a->label_to_model[y] : -1;
        if (y < 0 || (size_t)y >= K || pred[i] < 0 || (size_t)pred[i] >= K)
            continue;                         /* unknown label: not scored, as score does */
        a->confusion[(size_t)y * K + (size_t)pred[i]]++;
    }
    return 0;
}

/* Accuracy and macro F1 (km_metrics_f1_macro's rule: the classes that occur
 * in y_true or y_pred) from the confusion counts. */
static void quality_finish(const acc_t *a, double *acc, double *f1)
{
    const size_t K = a->n_model_classes;
    uint64_t total = 0, right = 0;
    double sum = 0;
    size_t n_f1 = 0;
    for (size_t c = 0; c < K; c++) {
        uint64_t tp = a->confusion[c * K + c], fp = 0, fn = 0;
        for (size_t o = 0; o < K; o++) {
            total += a->confusion[c * K + o];
            if (o != c) {
                fn += a->confusion[c * K + o];
                fp += a->confusion[o * K + c];
            }
        }
        right += tp;
        if (tp + fp + fn) {
            sum += 2.0 * (double)tp / (double)(2 * tp + fp + fn);
            n_f1++;
        }
    }
    *acc = total ? (double)right / (double)total : NAN;
    *f1 = n_f1 ? sum / (double)n_f1 : NAN;
}

/* ---- the task ------------------------------------------------------------------ */

static int pass(acc_t *a, src_t *s, kn_drift_side_t side, kiln_err_t *err)
{
    int rc;
    for (size_t r0 = 0; r0 < s->n_rows; r0 += a->step) {
        size_t k = s->n_rows - r0 < a->step ? s->n_rows - r0 : a->step;
        for (size_t i = 0; i < k; i++)
            a->pred[i] = -1;
        if ((rc = src_read(s, r0, k, a->rows, a->asset, a->label, a->pred, err)) < 0 ||
            (rc = feed(a, a->whole, side, s, k, NULL, 0, err)) < 0)
            return rc;
        for (size_t j = 0; j < a->n_assets; j++) {
            asset_t *as = &a->assets[j];
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
        if (side == KN_DRIFT_CUR && (rc = quality_feed(a, s, k, err)) < 0)
            return rc;
    }
    return 0;
}

static int finish_cols(acc_t *a, kn_drift_col_t **cols, kn_drift_result_t *res, kiln_err_t *err)
{
    for (size_t c = 0; c < a->n_cols; c++) {
        int rc = kn_drift_finish(cols[c], a->cols[c].method, a->cols[c].threshold, &res[c], err);
        if (rc < 0) {
            char msg[sizeof err->msg];
            snprintf(msg, sizeof msg, "%s", err->msg);
            return kiln_err_set(err, rc, "column '%s': %s", a->cols[c].name, msg);
        }
    }
    return 0;
}

static void json_notes(json_t *doc, const acc_t *a, const jb_drift_spec_t *t)
{
    json_t *job = json_object(), *notes = json_array();
    if (!job || !notes) {
        json_decref(job);
        json_decref(notes);
        return;
    }
    json_object_set_new(job, "name", json_string(t->name));
    json_object_set_new(job, "output", json_string(t->output));
    json_object_set_new(job, "report", json_string(t->report));
    json_object_set_new(job, "by_asset", json_boolean(t->by_asset));
    if (t->reference_sha256[0])
        json_object_set_new(job, "reference_sha256", json_string(t->reference_sha256));
    if (a->n_assets_left_out) {
        char note[200];
        snprintf(note, sizeof note, "by_asset: %zu assets beyond the first %d left out",
                 a->n_assets_left_out, JB_DRIFT_ASSETS_MAX);
        json_array_append_new(notes, json_string(note));
    }
    for (size_t j = 0; j < a->n_assets; j++)
        if (!a->assets[j].own_ref) {
            char note[200];
            snprintf(note, sizeof note, "asset %d has no reference rows: compared with the "
                     "whole reference", (int)a->assets[j].id);
            json_array_append_new(notes, json_string(note));
        }
    if (a->quality_note[0]) {
        char note[400];
        snprintf(note, sizeof note, "no model quality: %s", a->quality_note);
        json_array_append_new(notes, json_string(note));
    }
    json_object_set_new(job, "notes", notes);
    json_object_set_new(doc, "job", job);
}

/* The job id from the task's output path (".../tasks/ID/..."), for the report. */
static void job_id_of(const char *out_path, char *buf, size_t cap)
{
    const char *p = strstr(out_path, "/tasks/");
    buf[0] = '\0';
    if (p) {
        long long id = strtoll(p + 7, NULL, 10);
        if (id > 0)
            snprintf(buf, cap, "%lld", id);
    }
}

int jb_drift_run(const jb_drift_spec_t *t, const char *out_path, kiln_err_t *err)
{
    src_t ref, cur;
    acc_t a;
    kn_drift_result_t *res = NULL, *ares = NULL;
    jb_drift_report_asset_t *rassets = NULL;
    const char **names = NULL;
    kn_drift_kind_t *kinds = NULL;
    json_t *doc = NULL;
    int rc;
    memset(&a, 0, sizeof a);
    memset(&cur, 0, sizeof cur);
    a.t = t;
    if ((rc = src_open(&ref, t->reference, t->model_ref[0] ? "reference.model" : "reference",
                       err)) < 0)
        return rc;
    if ((rc = src_open(&cur, t->current, "current", err)) < 0)
        goto out;
    if (t->reference_sha256[0] && ref.content_sha256 &&
        strcmp(t->reference_sha256, ref.content_sha256)) {
        rc = kiln_err_at(err, KILN_ESCHEMA, "reference.model",
                         "reference.model: %s changed since %s was trained on it (content "
                         "sha256 %.12s..., the run recorded %.12s...)", t->reference, t->model_id,
                         ref.content_sha256, t->reference_sha256);
        goto out;
    }
    if (!cur.n_rows) {
        rc = kiln_err_at(err, KILN_EINVAL, "current",
                         "current: %s has no rows: nothing to compare with the reference",
                         t->current);
        goto out;
    }
    if (!ref.n_rows) {
        rc = kiln_err_at(err, KILN_EINVAL, "reference", "reference: %s has no rows", t->reference);
        goto out;
    }
    if ((rc = plan_columns(t, &ref, &cur, &a.cols, &a.n_cols, err)) < 0)
        goto out;
    while (a.n_num < a.n_cols && a.cols[a.n_num].kind == KN_DRIFT_NUMERIC)
        a.n_num++;
    size_t width = ref.n_num > cur.n_num ? ref.n_num : cur.n_num;
    a.step = CHUNK_BYTES / (2 * (width ? width : 1) * sizeof(float));
    if (a.step > CHUNK_ROWS_MAX)
        a.step = CHUNK_ROWS_MAX;
    if (a.step < 1)
        a.step = 1;
    a.rows = kiln_malloc(a.step * (width ? width : 1) * sizeof *a.rows);
    a.colbuf = kiln_malloc(a.step * (a.n_num ? a.n_num : 1) * sizeof *a.colbuf);
    a.colptr = kiln_calloc(a.n_num ? a.n_num : 1, sizeof *a.colptr);
    a.asset = kiln_malloc(a.step * sizeof *a.asset);
    a.label = kiln_malloc(a.step * sizeof *a.label);
    a.pred = kiln_malloc(a.step * sizeof *a.pred);
    a.classbuf = kiln_malloc(a.step * sizeof *a.classbuf);
    a.sel = kiln_malloc(a.step * sizeof *a.sel);
    if (!a.rows || !a.colbuf || !a.colptr || !a.asset || !a.label || !a.pred || !a.classbuf ||
        !a.sel) {
        rc = kiln_err_set(err, KILN_ENOMEM, "drift: no memory for chunks of %zu rows", a.step);
        goto out;
    }
    if ((rc = new_cols(&a, &a.whole, err)) < 0 ||
        (t->by_asset && (rc = find_assets(&a, &ref, &cur, err)) < 0) ||
        (rc = quality_open(&a, &cur, err)) < 0 || (rc = pass(&a, &ref, KN_DRIFT_REF, err)) < 0 ||
        (rc = pass(&a, &cur, KN_DRIFT_CUR, err)) < 0)
        goto out;

    res = kiln_calloc(a.n_cols, sizeof *res);
    names = kiln_calloc(a.n_cols, sizeof *names);
    kinds = kiln_calloc(a.n_cols, sizeof *kinds);
    ares = kiln_calloc(a.n_cols, sizeof *ares);
    rassets = kiln_calloc(a.n_assets ? a.n_assets : 1, sizeof *rassets);
    if (!res || !names || !kinds || !ares || !rassets) {
        rc = kiln_err_set(err, KILN_ENOMEM, "drift: out of memory");
        goto out;
    }
    for (size_t c = 0; c < a.n_cols; c++) {
        names[c] = a.cols[c].name;
        kinds[c] = a.cols[c].kind;
    }
    if ((rc = finish_cols(&a, a.whole, res, err)) < 0)
        goto out;
    size_t n_rassets = 0;
    for (size_t j = 0; j < a.n_assets; j++) {
        asset_t *as = &a.assets[j];
        if (!as->n_cur)
            continue;
        /* A side with no values in some column (all labels unknown) has no
         * verdict: such a column is left out of the asset's share. */
        size_t n_ok = 0, n_drifted = 0;
        for (size_t c = 0; c < a.n_cols; c++) {
            kiln_err_t cerr;
            if (kn_drift_finish(as->cols[c], a.cols[c].method, a.cols[c].threshold, &ares[c],
                                &cerr) < 0)
                continue;
            n_ok++;
            n_drifted += ares[c].drifted != 0;
        }
        jb_drift_report_asset_t *ra = &rassets[n_rassets++];
        ra->asset_id = as->id;
        ra->n_ref_rows = as->n_ref;
        ra->n_cur_rows = as->n_cur;
        ra->n_columns = n_ok;
        ra->n_drifted = n_drifted;
        ra->drifted = n_ok && (double)n_drifted / (double)n_ok >= t->drift_share;
    }
    jb_drift_report_quality_t q[2];
    size_t n_q = 0;
    if (a.quality_on) {
        double acc, f1, racc = NAN, rf1 = NAN;
        quality_finish(&a, &acc, &f1);
        if (a.have_model) {
            const json_t *m = json_object_get(a.model.header, "metrics");
            const json_t *v = json_object_get(m, "accuracy");
            racc = json_is_number(v) ? json_number_value(v) : NAN;
            v = json_object_get(m, "macro_f1");
            rf1 = json_is_number(v) ? json_number_value(v) : NAN;
        }
        q[n_q++] = (jb_drift_report_quality_t){"accuracy", racc, acc};
        q[n_q++] = (jb_drift_report_quality_t){"macro_f1", rf1, f1};
    }
    char job_id[32];
    job_id_of(out_path, job_id, sizeof job_id);
    jb_drift_report_t r = {0};
    r.title = t->name;
    r.job_id = job_id[0] ? job_id : NULL;
    r.model = t->model_id[0] ? t->model_id : NULL;
    r.reference_path = t->reference;
    r.current_path = t->current;
    r.n_ref_rows = ref.n_rows;
    r.n_cur_rows = cur.n_rows;
    r.column_names = names;
    r.column_kinds = kinds;
    r.results = res;
    r.n_columns = a.n_cols;
    r.drift_share = t->drift_share;
    r.assets = n_rassets ? rassets : NULL;
    r.n_assets = n_rassets;
    r.quality = n_q ? q : NULL;
    r.n_quality = n_q;
    void *d = NULL;
    if ((rc = jb_drift_report_write_html(&r, t->report, err)) < 0 ||
        (rc = jb_drift_report_json(&r, &d, err)) < 0)
        goto out;
    doc = d;
    json_notes(doc, &a, t);
    char tmp[JB_DRIFT_PATH_MAX + 32];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", out_path, (long)getpid());
    if (json_dump_file(doc, tmp, JSON_INDENT(1)) < 0 || rename(tmp, out_path) < 0) {
        unlink(tmp);
        rc = kiln_err_set(err, KILN_EIO, "drift: %s: cannot write the result", out_path);
        goto out;
    }
    size_t n_drifted = 0;
    for (size_t c = 0; c < a.n_cols; c++)
        n_drifted += res[c].drifted != 0;
    fprintf(stderr, "drift: %zu of %zu columns drifted (%zu reference rows, %zu current rows); "
            "report %s\n", n_drifted, a.n_cols, ref.n_rows, cur.n_rows, t->report);
    rc = 0;
out:
    json_decref(doc);
    free_cols(&a, &a.whole);
    for (size_t j = 0; j < a.n_assets; j++)
        free_cols(&a, &a.assets[j].cols);
    kiln_free(a.assets);
    if (a.have_model)
        jb_modelfile_free(&a.model);
    kiln_free(a.scores);
    kiln_free(a.model_pred);
    kiln_free(a.label_to_model);
    kiln_free(a.confusion);
    kiln_free(a.cols);
    kiln_free(a.rows);
    kiln_free(a.colbuf);
    kiln_free((void *)a.colptr);
    kiln_free(a.asset);
    kiln_free(a.label);
    kiln_free(a.pred);
    kiln_free(a.classbuf);
    kiln_free(a.sel);
    kiln_free(res);
    kiln_free(ares);
    kiln_free(rassets);
    kiln_free(names);
    kiln_free(kinds);
    src_close(&cur);
    src_close(&ref);
    return rc;
}
