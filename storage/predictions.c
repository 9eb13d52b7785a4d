/* predictions.c - kiln.predictions.v1 datasets: /score float32 [rows,
 * outputs] and /predicted int32 [rows] plus the per-row columns carried
 * over from the scored dataset.  Same temp-file-and-rename writer and
 * streaming reader as features.c. */
#include "predictions.h"

#include <stdio.h>
#include <string.h>

#include "../core/kiln_alloc.h"
#include "h5cols.h"

struct st_predictions_writer {
    st_h5_writer_t base;                     /* file, per-row columns, hash header */
    size_t         n_outputs;
    st_h5_col_t    score, predicted;
};

struct st_predictions {
    st_h5_reader_t        base;              /* path, file, per-row datasets */
    st_predictions_meta_t meta;              /* strings owned here */
    st_h5_ds_t            score, predicted;
};

/* The header of the content hash (the rule is in predictions.h). */
static void hash_header(st_sha256_t *h, const st_predictions_meta_t *m)
{
    st_sha256_init(h);
    st_h5_hash_str(h, ST_PREDICTIONS_SCHEMA);
    st_h5_hash_strs(h, "output_names", m->output_names, m->n_outputs);
    st_h5_hash_strs(h, "class_names", m->class_names, m->n_class_names);
    st_h5_hash_str(h, "model_sha256");
    st_h5_hash_str(h, m->model_sha256 ? m->model_sha256 : "");
    st_h5_hash_str(h, "source_sha256");
    st_h5_hash_str(h, m->source_sha256 ? m->source_sha256 : "");
}

static int check_meta(const char *path, const st_predictions_meta_t *m, int compress,
                      kiln_err_t *err)
{
    int rc;
    if (m->n_outputs == 0)
        return kiln_err_at(err, KILN_EINVAL, "output_names", "%s: no outputs", path);
    if ((rc = st_h5_check_names(path, "output_names", m->output_names, m->n_outputs,
                                ST_PRED_MAX_OUTPUTS, 1, err)) < 0 ||
        (rc = st_h5_check_names(path, "class_names", m->class_names, m->n_class_names,
                                ST_PRED_MAX_CLASSES, 1, err)) < 0)
        return rc;
    if (!m->model || !*m->model)
        return kiln_err_at(err, KILN_EINVAL, "model", "%s: model: no model id", path);
    if ((rc = st_h5_check_names(path, "model", &m->model, 1, 1, 0, err)) < 0)
        return rc;
    if (m->model_sha256 && *m->model_sha256 && !st_h5_is_hex64(m->model_sha256))
        return kiln_err_at(err, KILN_EINVAL, "model_sha256",
                           "%s: model_sha256 must be 64 lowercase hex characters", path);
    if (m->source_sha256 && *m->source_sha256 && !st_h5_is_hex64(m->source_sha256))
        return kiln_err_at(err, KILN_EINVAL, "source_sha256",
                           "%s: source_sha256 must be 64 lowercase hex characters", path);
    if (compress < 0 || compress > 9)
        return kiln_err_set(err, KILN_EINVAL, "%s: compress must be 0..9, got %d", path, compress);
    return 0;
}

static void writer_free(void *p)
{
    st_predictions_writer_t *w = p;
    st_h5_col_close(&w->score);
    st_h5_col_close(&w->predicted);
    st_h5_writer_free(&w->base);
    kiln_free(w);
}

int st_predictions_create(const char *path, const st_predictions_meta_t *meta, int compress,
                          st_predictions_writer_t **out, kiln_err_t *err)
{
    st_h5_quiet_t q;
    st_predictions_writer_t *w = NULL;
    hid_t file;
    int rc;

    *out = NULL;
    if (!path || !*path || !meta)
        return kiln_err_set(err, KILN_EINVAL, "st_predictions_create: no path or meta");
    if ((rc = check_meta(path, meta, compress, err)) < 0)
        return rc;
    st_h5_quiet_begin(&q);
    if (!(w = kiln_calloc(1, sizeof *w))) {
        rc = kiln_err_set(err, KILN_ENOMEM, "%s: out of memory", path);
        goto out;
    }
    st_h5_writer_init(&w->base);
    st_h5_col_init(&w->score);
    st_h5_col_init(&w->predicted);
    w->n_outputs = meta->n_outputs;
    if ((rc = st_h5_writer_start(&w->base, path, ST_PREDICTIONS_SCHEMA, err)) < 0)
        goto out;
    file = w->base.file;
    if ((rc = st_h5_attr_put_str(file, path, "/", "model", meta->model, err)) < 0 ||
        (rc = st_h5_attr_put_str(file, path, "/", "model_sha256", meta->model_sha256, err)) < 0 ||
        (rc = st_h5_attr_put_str(file, path, "/", "source_sha256", meta->source_sha256, err)) < 0 ||
        (rc = st_h5_attr_put_strs(file, path, "/", "class_names", meta->class_names,
                                  meta->n_class_names, err)) < 0)
        goto out;
    if ((rc = st_h5_col_create(&w->score, file, path, "/score", ST_H5_F32, meta->n_outputs, 0,
                               compress, err)) < 0 ||
        (rc = st_h5_attr_put_strs(w->score.dset, path, "/score", "output_names",
                                  meta->output_names, meta->n_outputs, err)) < 0 ||
        (rc = st_h5_col_create(&w->predicted, file, path, "/predicted", ST_H5_I32, 0, 0,
                               compress, err)) < 0 ||
        (rc = st_h5_rowcols_create(&w->base.rows, file, path, meta->has_label, meta->has_target,
                                   meta->n_class_names, compress, err)) < 0)
        goto out;
    hash_header(&w->base.header, meta);
    *out = w;
    w = NULL;
out:
    if (w)
        writer_free(w);
    st_h5_quiet_end(&q);
    return rc;
}

int st_predictions_append(st_predictions_writer_t *w, size_t n, const float *scores,
                          const int32_t *predicted, const int32_t *asset,
                          const int64_t *timestamp_ns, const int32_t *label,
                          const float *target, kiln_err_t *err)
{
    st_h5_quiet_t q;
    int rc;
    if (!w)
        return kiln_err_set(err, KILN_EINVAL, "st_predictions_append: no writer");
    st_h5_writer_t *b = &w->base;
    if ((rc = st_h5_check_batch(b->path, b->broken, n, w->n_outputs, "row", err)) < 0 || n == 0)
        return rc;
    if ((rc = st_h5_check_floats(b->path, "/score", scores, n, w->n_outputs, b->n_rows, "row",
                                 "output", err)) < 0)
        return rc;
    if (!predicted)
        return kiln_err_at(err, KILN_EINVAL, "/predicted", "%s: /predicted: no values given",
                           b->path);
    for (size_t i = 0; i < n; i++)
        if (predicted[i] < -1)
            return kiln_err_at(err, KILN_EINVAL, "/predicted",
                               "%s: /predicted: row %llu: class %d below -1", b->path,
                               (unsigned long long)(b->n_rows + i), (int)predicted[i]);
    if ((rc = st_h5_rowcols_check(&b->rows, b->path, b->n_rows, n, asset, timestamp_ns, label,
                                  target, "row", err)) < 0)
        return rc;
    st_h5_quiet_begin(&q);
    rc = st_h5_col_append(&w->score, b->path, scores, n, err);
    if (rc == 0)
        rc = st_h5_col_append(&w->predicted, b->path, predicted, n, err);
    rc = st_h5_writer_append_rows(b, rc, n, asset, timestamp_ns, label, target, err);
    st_h5_quiet_end(&q);
    return rc;
}

int st_predictions_commit(st_predictions_writer_t **wp, char *hash_hex, kiln_err_t *err)
{
    st_h5_quiet_t q;
    st_h5_part_t parts[6];
    size_t n_parts = 0;
    char hex[65];
    int rc;

    if (!wp || !*wp)
        return kiln_err_set(err, KILN_EINVAL, "st_predictions_commit: no writer");
    st_predictions_writer_t *w = *wp;
    *wp = NULL;
    st_h5_quiet_begin(&q);
    st_h5_col_part(&w->score, &parts[n_parts++]);
    st_h5_col_part(&w->predicted, &parts[n_parts++]);
    if ((rc = st_h5_writer_seal(&w->base, parts, n_parts, hex, err)) < 0)
        goto out;
    st_h5_col_close(&w->score);
    st_h5_col_close(&w->predicted);
    rc = st_h5_writer_commit(&w->base, hex, hash_hex, err);
out:
    writer_free(w);
    st_h5_quiet_end(&q);
    return rc;
}

void st_predictions_abort(st_predictions_writer_t **wp)
{
    if (!wp || !*wp)
        return;
    st_h5_quiet_free(writer_free, *wp);
    *wp = NULL;
}

/* ---- reading ---------------------------------------------------------- */

static void reader_free(void *p)
{
    st_predictions_t *ds = p;
    st_predictions_meta_t *m = &ds->meta;
    st_h5_ds_close(&ds->score);
    st_h5_ds_close(&ds->predicted);
    st_h5_reader_free(&ds->base);
    for (size_t i = 0; i < m->n_outputs; i++)
        kiln_free((void *)m->output_names[i]);
    for (size_t i = 0; i < m->n_class_names; i++)
        kiln_free((void *)m->class_names[i]);
    kiln_free((void *)m->model);
    kiln_free((void *)m->model_sha256);
    kiln_free((void *)m->source_sha256);
    kiln_free((void *)m->created);
    kiln_free((void *)m->content_sha256);
    kiln_free(ds);
}

int st_predictions_open(const char *path, st_predictions_t **out, kiln_err_t *err)
{
    st_h5_quiet_t q;
    st_predictions_t *ds = NULL;
    hid_t file;
    int rc;

    *out = NULL;
    if (!path || !*path)
        return kiln_err_set(err, KILN_EINVAL, "st_predictions_open: no path");
    st_h5_quiet_begin(&q);
    if (!(ds = kiln_calloc(1, sizeof *ds))) {
        rc = kiln_err_set(err, KILN_ENOMEM, "%s: out of memory", path);
        goto out;
    }
    st_h5_reader_init(&ds->base);
    st_h5_ds_init(&ds->score);
    st_h5_ds_init(&ds->predicted);
    st_predictions_meta_t *m = &ds->meta;
    if ((rc = st_h5_reader_start(&ds->base, path, ST_PREDICTIONS_SCHEMA, err)) < 0)
        goto out;
    file = ds->base.file;
    if ((rc = st_h5_attr_get_str(file, path, "/", "model", 1, ST_H5_NAME_MAX,
                                 (char **)&m->model, err)) < 0 ||
        (rc = st_h5_attr_get_str(file, path, "/", "model_sha256", 0, 64,
                                 (char **)&m->model_sha256, err)) < 0 ||
        (rc = st_h5_attr_get_str(file, path, "/", "source_sha256", 0, 64,
                                 (char **)&m->source_sha256, err)) < 0 ||
        (rc = st_h5_attr_get_str(file, path, "/", "created", 0, 64, (char **)&m->created, err)) < 0 ||
        (rc = st_h5_attr_get_str(file, path, "/", "content_sha256", 0, 64,
                                 (char **)&m->content_sha256, err)) < 0 ||
        (rc = st_h5_attr_get_strs(file, path, "/", "class_names", 0, ST_PRED_MAX_CLASSES,
                                  ST_H5_NAME_MAX, (char **)m->class_names, &m->n_class_names,
                                  err)) < 0 ||
        (rc = st_h5_check_names(path, "class_names", m->class_names, m->n_class_names,
                                ST_PRED_MAX_CLASSES, 1, err)) < 0)
        goto out;
    if ((rc = st_h5_ds_open(&ds->score, file, path, "/score", ST_H5_F32, SIZE_MAX, err)) < 0)
        goto out;
    if (ds->score.row_len > ST_PRED_MAX_OUTPUTS) {
        rc = kiln_err_at(err, KILN_ESHAPE, "/score", "%s: /score: %zu outputs, at most %d", path,
                         ds->score.row_len, ST_PRED_MAX_OUTPUTS);
        goto out;
    }
    if ((rc = st_h5_attr_get_strs(ds->score.dset, path, "/score", "output_names", 1,
                                  ST_PRED_MAX_OUTPUTS, ST_H5_NAME_MAX, (char **)m->output_names,
                                  &m->n_outputs, err)) < 0)
        goto out;
    if (m->n_outputs != ds->score.row_len) {
        rc = kiln_err_at(err, KILN_ESHAPE, "/score",
                         "%s: /score: %zu columns but attr output_names lists %zu", path,
                         ds->score.row_len, m->n_outputs);
        goto out;
    }
    m->n_rows = ds->score.n_rows;
    if ((rc = st_h5_ds_open(&ds->predicted, file, path, "/predicted", ST_H5_I32, 0, err)) < 0 ||
        (rc = st_h5_ds_expect_rows(&ds->predicted, path, m->n_rows, "rows of /score", err)) < 0 ||
        (rc = st_h5_rowds_open(&ds->base.rows, file, path, m->n_rows, "rows of /score",
                               m->n_class_names, err)) < 0)
        goto out;
    m->has_label = ds->base.rows.has_label;
    m->has_target = ds->base.rows.has_target;
    *out = ds;
    ds = NULL;
out:
    if (ds)
        reader_free(ds);
    st_h5_quiet_end(&q);
    return rc;
}

const st_predictions_meta_t *st_predictions_meta(const st_predictions_t *ds)
{
    return &ds->meta;
}

int st_predictions_read(st_predictions_t *ds, size_t row0, size_t n, float *scores,
                        int32_t *predicted, kiln_err_t *err)
{
    if (!ds)
        return kiln_err_set(err, KILN_EINVAL, "st_predictions_read: no dataset");
    st_h5_quiet_t q;
    int rc = 0;
    st_h5_quiet_begin(&q);
    if (scores)
        rc = st_h5_ds_read(&ds->score, ds->base.path, row0, n, scores, "row", err);
    if (rc == 0 && predicted)
        rc = st_h5_ds_read(&ds->predicted, ds->base.path, row0, n, predicted, "row", err);
    for (size_t i = 0; rc == 0 && predicted && i < n; i++)
        if (predicted[i] < -1)
            rc = kiln_err_at(err, KILN_ESCHEMA, "/predicted",
                             "%s: /predicted: row %llu: class %d below -1", ds->base.path,
                             (unsigned long long)(row0 + i), (int)predicted[i]);
    st_h5_quiet_end(&q);
    return rc;
}

int st_predictions_read_meta(st_predictions_t *ds, size_t row0, size_t n, int32_t *asset,
                             int64_t *timestamp_ns, int32_t *label, float *target,
                             kiln_err_t *err)
{
    if (!ds)
        return kiln_err_set(err, KILN_EINVAL, "st_predictions_read_meta: no dataset");
    return st_h5_reader_read_meta(&ds->base, row0, n, asset, timestamp_ns, label, target, "row",
                                  err);
}

int st_predictions_hash(st_predictions_t *ds, char *hash_hex, kiln_err_t *err)
{
    st_h5_part_t parts[6];
    size_t n_parts = 0;
    st_sha256_t h;
    st_h5_quiet_t q;
    int rc;

    if (!ds)
        return kiln_err_set(err, KILN_EINVAL, "st_predictions_hash: no dataset");
    st_h5_quiet_begin(&q);
    rc = st_h5_ds_part(&ds->score, ds->base.path, &parts[n_parts++], err);
    if (rc == 0)
        rc = st_h5_ds_part(&ds->predicted, ds->base.path, &parts[n_parts++], err);
    if (rc == 0)
        rc = st_h5_rowds_parts(&ds->base.rows, ds->base.path, parts, &n_parts, err);
    st_h5_quiet_end(&q);
    if (rc < 0)
        return rc;
    hash_header(&h, &ds->meta);
    st_h5_hash_finish(&h, parts, n_parts, hash_hex);
    return 0;
}

void st_predictions_close(st_predictions_t **ds)
{
    if (!ds || !*ds)
        return;
    st_h5_quiet_free(reader_free, *ds);
    *ds = NULL;
}
