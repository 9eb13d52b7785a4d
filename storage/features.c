/* features.c - kiln.features.v1 datasets: /features float32 [rows, features]
 * plus the per-row columns carried over from the sensor dataset.  Same
 * temp-file-and-rename writer and streaming reader as sensor.c. */
#include "features.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "../core/kiln_alloc.h"
#include "h5cols.h"

#define SPEC_JSON_MAX (1u << 20)

struct st_features_writer {
    st_h5_writer_t base;                     /* file, per-row columns, hash header */
    size_t         n_features;
    st_h5_col_t    features;
};

struct st_features {
    st_h5_reader_t     base;                 /* path, file, per-row datasets */
    st_features_meta_t meta;                 /* strings owned here */
    st_h5_ds_t         features;
};

/* The header of the content hash (the rule is in sensor.h). */
static void hash_header(st_sha256_t *h, const st_features_meta_t *m)
{
    st_sha256_init(h);
    st_h5_hash_str(h, ST_FEATURES_SCHEMA);
    st_h5_hash_strs(h, "feature_names", m->feature_names, m->n_features);
    st_h5_hash_strs(h, "label_names", m->label_names, m->n_label_names);
    st_h5_hash_str(h, "source_sha256");
    st_h5_hash_str(h, m->source_sha256 ? m->source_sha256 : "");
    st_h5_hash_str(h, "spec_sha256");
    st_h5_hash_str(h, m->spec_sha256 ? m->spec_sha256 : "");
}

static int check_meta(const char *path, const st_features_meta_t *m, int compress, kiln_err_t *err)
{
    int rc;
    if (m->n_features == 0)
        return kiln_err_at(err, KILN_EINVAL, "feature_names", "%s: no features", path);
    if ((rc = st_h5_check_names(path, "feature_names", m->feature_names, m->n_features,
                                ST_MAX_FEATURES, 1, err)) < 0 ||
        (rc = st_h5_check_names(path, "label_names", m->label_names, m->n_label_names,
                                sizeof m->label_names / sizeof m->label_names[0], 1, err)) < 0)
        return rc;
    if (m->source_sha256 && *m->source_sha256 && !st_h5_is_hex64(m->source_sha256))
        return kiln_err_at(err, KILN_EINVAL, "source_sha256",
                           "%s: source_sha256 must be 64 lowercase hex characters", path);
    if (m->spec_sha256 && *m->spec_sha256 && !st_h5_is_hex64(m->spec_sha256))
        return kiln_err_at(err, KILN_EINVAL, "spec_sha256",
                           "%s: spec_sha256 must be 64 lowercase hex characters", path);
    if (m->spec_json && strlen(m->spec_json) > SPEC_JSON_MAX)
        return kiln_err_at(err, KILN_EINVAL, "spec_json", "%s: spec_json longer than %u bytes",
                           path, SPEC_JSON_MAX);
    if (compress < 0 || compress > 9)
        return kiln_err_set(err, KILN_EINVAL, "%s: compress must be 0..9, got %d", path, compress);
    return 0;
}

static void writer_free(void *p)
{
    st_features_writer_t *w = p;
    st_h5_col_close(&w->features);
    st_h5_writer_free(&w->base);
    kiln_free(w);
}

int st_features_create(const char *path, const st_features_meta_t *meta, int compress,
                       st_features_writer_t **out, kiln_err_t *err)
{
    st_h5_quiet_t q;
    st_features_writer_t *w = NULL;
    hid_t file;
    int rc;

    *out = NULL;
    if (!path || !*path || !meta)
        return kiln_err_set(err, KILN_EINVAL, "st_features_create: no path or meta");
    if ((rc = check_meta(path, meta, compress, err)) < 0)
        return rc;
    st_h5_quiet_begin(&q);
    if (!(w = kiln_calloc(1, sizeof *w))) {
        rc = kiln_err_set(err, KILN_ENOMEM, "%s: out of memory", path);
        goto out;
    }
    st_h5_writer_init(&w->base);
    st_h5_col_init(&w->features);
    w->n_features = meta->n_features;
    if ((rc = st_h5_writer_start(&w->base, path, ST_FEATURES_SCHEMA, err)) < 0)
        goto out;
    file = w->base.file;
    if ((rc = st_h5_attr_put_str(file, path, "/", "source_sha256", meta->source_sha256, err)) < 0 ||
        (rc = st_h5_attr_put_str(file, path, "/", "spec_sha256", meta->spec_sha256, err)) < 0 ||
        (rc = st_h5_attr_put_str(file, path, "/", "spec_json", meta->spec_json, err)) < 0 ||
        (rc = st_h5_attr_put_strs(file, path, "/", "label_names", meta->label_names,
                                  meta->n_label_names, err)) < 0)
        goto out;
    if ((rc = st_h5_col_create(&w->features, file, path, "/features", ST_H5_F32,
                               meta->n_features, 1024, compress, err)) < 0 ||
        (rc = st_h5_attr_put_strs(w->features.dset, path, "/features", "feature_names",
                                  meta->feature_names, meta->n_features, err)) < 0 ||
        (rc = st_h5_rowcols_create(&w->base.rows, file, path, meta->has_label, meta->has_target,
                                   meta->n_label_names, compress, err)) < 0)
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

int st_features_append(st_features_writer_t *w, size_t n, const float *rows,
                       const int32_t *asset, const int64_t *timestamp_ns,
                       const int32_t *label, const float *target, kiln_err_t *err)
{
    st_h5_quiet_t q;
    int rc;
    if (!w)
        return kiln_err_set(err, KILN_EINVAL, "st_features_append: no writer");
    st_h5_writer_t *b = &w->base;
    if ((rc = st_h5_check_batch(b->path, b->broken, n, w->n_features, "row", err)) < 0 || n == 0)
        return rc;
    if ((rc = st_h5_check_floats(b->path, "/features", rows, n, w->n_features, b->n_rows, "row",
                                 "feature", err)) < 0 ||
        (rc = st_h5_rowcols_check(&b->rows, b->path, b->n_rows, n, asset, timestamp_ns, label,
                                  target, "row", err)) < 0)
        return rc;
    st_h5_quiet_begin(&q);
    rc = st_h5_col_append(&w->features, b->path, rows, n, err);
    rc = st_h5_writer_append_rows(b, rc, n, asset, timestamp_ns, label, target, err);
    st_h5_quiet_end(&q);
    return rc;
}

int st_features_commit(st_features_writer_t **wp, char *hash_hex, kiln_err_t *err)
{
    st_h5_quiet_t q;
    st_h5_part_t parts[5];
    size_t n_parts = 0;
    char hex[65];
    int rc;

    if (!wp || !*wp)
        return kiln_err_set(err, KILN_EINVAL, "st_features_commit: no writer");
    st_features_writer_t *w = *wp;
    *wp = NULL;
    st_h5_quiet_begin(&q);
    st_h5_col_part(&w->features, &parts[n_parts++]);
    if ((rc = st_h5_writer_seal(&w->base, parts, n_parts, hex, err)) < 0)
        goto out;
    st_h5_col_close(&w->features);
    rc = st_h5_writer_commit(&w->base, hex, hash_hex, err);
out:
    writer_free(w);
    st_h5_quiet_end(&q);
    return rc;
}

void st_features_abort(st_features_writer_t **wp)
{
    if (!wp || !*wp)
        return;
    st_h5_quiet_free(writer_free, *wp);
    *wp = NULL;
}

/* ---- reading ---------------------------------------------------------- */

static void reader_free(void *p)
{
    st_features_t *ds = p;
    st_features_meta_t *m = &ds->meta;
    st_h5_ds_close(&ds->features);
    st_h5_reader_free(&ds->base);
    for (size_t i = 0; i < m->n_features; i++)
        kiln_free((void *)m->feature_names[i]);
    for (size_t i = 0; i < m->n_label_names; i++)
        kiln_free((void *)m->label_names[i]);
    kiln_free((void *)m->source_sha256);
    kiln_free((void *)m->spec_sha256);
    kiln_free((void *)m->spec_json);
    kiln_free((void *)m->created);
    kiln_free((void *)m->content_sha256);
    kiln_free(ds);
}

int st_features_open(const char *path, st_features_t **out, kiln_err_t *err)
{
    st_h5_quiet_t q;
    st_features_t *ds = NULL;
    hid_t file;
    int rc;

    *out = NULL;
    if (!path || !*path)
        return kiln_err_set(err, KILN_EINVAL, "st_features_open: no path");
    st_h5_quiet_begin(&q);
    if (!(ds = kiln_calloc(1, sizeof *ds))) {
        rc = kiln_err_set(err, KILN_ENOMEM, "%s: out of memory", path);
        goto out;
    }
    st_h5_reader_init(&ds->base);
    st_h5_ds_init(&ds->features);
    st_features_meta_t *m = &ds->meta;
    if ((rc = st_h5_reader_start(&ds->base, path, ST_FEATURES_SCHEMA, err)) < 0)
        goto out;
    file = ds->base.file;
    if ((rc = st_h5_attr_get_str(file, path, "/", "source_sha256", 0, 64,
                                 (char **)&m->source_sha256, err)) < 0 ||
        (rc = st_h5_attr_get_str(file, path, "/", "spec_sha256", 0, 64,
                                 (char **)&m->spec_sha256, err)) < 0 ||
        (rc = st_h5_attr_get_str(file, path, "/", "spec_json", 0, SPEC_JSON_MAX,
                                 (char **)&m->spec_json, err)) < 0 ||
        (rc = st_h5_attr_get_str(file, path, "/", "created", 0, 64, (char **)&m->created, err)) < 0 ||
        (rc = st_h5_attr_get_str(file, path, "/", "content_sha256", 0, 64,
                                 (char **)&m->content_sha256, err)) < 0 ||
        (rc = st_h5_attr_get_strs(file, path, "/", "label_names", 0, 256, ST_H5_NAME_MAX,
                                  (char **)m->label_names, &m->n_label_names, err)) < 0 ||
        (rc = st_h5_check_names(path, "label_names", m->label_names, m->n_label_names, 256, 1,
                                err)) < 0)
        goto out;
    if ((rc = st_h5_ds_open(&ds->features, file, path, "/features", ST_H5_F32, SIZE_MAX, err)) < 0)
        goto out;
    if (ds->features.row_len > ST_MAX_FEATURES) {
        rc = kiln_err_at(err, KILN_ESHAPE, "/features", "%s: /features: %zu features, at most %d",
                         path, ds->features.row_len, ST_MAX_FEATURES);
        goto out;
    }
    /* Read the names straight into meta: up to 4096 pointers is too big for the stack. */
    if ((rc = st_h5_attr_get_strs(ds->features.dset, path, "/features", "feature_names", 1,
                                  ST_MAX_FEATURES, ST_H5_NAME_MAX, (char **)m->feature_names,
                                  &m->n_features, err)) < 0)
        goto out;
    if (m->n_features != ds->features.row_len) {
        rc = kiln_err_at(err, KILN_ESHAPE, "/features",
                         "%s: /features: %zu columns but attr feature_names lists %zu", path,
                         ds->features.row_len, m->n_features);
        goto out;
    }
    m->n_rows = ds->features.n_rows;
    if ((rc = st_h5_rowds_open(&ds->base.rows, file, path, m->n_rows, "rows of /features",
                               m->n_label_names, err)) < 0)
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

const st_features_meta_t *st_features_meta(const st_features_t *ds) { return &ds->meta; }

int st_features_read(st_features_t *ds, size_t row0, size_t n, float *rows, kiln_err_t *err)
{
    if (!ds)
        return kiln_err_set(err, KILN_EINVAL, "st_features_read: no dataset");
    st_h5_quiet_t q;
    st_h5_quiet_begin(&q);
    int rc = st_h5_ds_read(&ds->features, ds->base.path, row0, n, rows, "row", err);
    st_h5_quiet_end(&q);
    return rc;
}

int st_features_read_meta(st_features_t *ds, size_t row0, size_t n, int32_t *asset,
                          int64_t *timestamp_ns, int32_t *label, float *target,
                          kiln_err_t *err)
{
    if (!ds)
        return kiln_err_set(err, KILN_EINVAL, "st_features_read_meta: no dataset");
    return st_h5_reader_read_meta(&ds->base, row0, n, asset, timestamp_ns, label, target, "row",
                                  err);
}

int st_features_hash(st_features_t *ds, char *hash_hex, kiln_err_t *err)
{
    st_h5_part_t parts[5];
    size_t n_parts = 0;
    st_sha256_t h;
    st_h5_quiet_t q;
    int rc;

    if (!ds)
        return kiln_err_set(err, KILN_EINVAL, "st_features_hash: no dataset");
    st_h5_quiet_begin(&q);
    rc = st_h5_ds_part(&ds->features, ds->base.path, &parts[n_parts++], err);
    if (rc == 0)
        rc = st_h5_rowds_parts(&ds->base.rows, ds->base.path, parts, &n_parts, err);
    st_h5_quiet_end(&q);
    if (rc < 0)
        return rc;
    hash_header(&h, &ds->meta);
    st_h5_hash_finish(&h, parts, n_parts, hash_hex);
    return 0;
}

void st_features_close(st_features_t **ds)
{
    if (!ds || !*ds)
        return;
    st_h5_quiet_free(reader_free, *ds);
    *ds = NULL;
}
