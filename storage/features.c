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
    char           *path, *tmp_path;
    hid_t           file;
    size_t          n_features;
    uint64_t        n_rows;
    int             broken;
    st_sha256_t     header;
    st_h5_col_t     features;
    st_h5_rowcols_t rows;
};

struct st_features {
    char              *path;
    hid_t              file;
    st_features_meta_t meta;                 /* strings owned here */
    st_h5_ds_t         features;
    st_h5_rowds_t      rows;
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
                                sizeof m->label_names / sizeof m->label_names[0], 0, err)) < 0)
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

static void writer_free(st_features_writer_t *w)
{
    st_h5_col_close(&w->features);
    st_h5_rowcols_close(&w->rows);
    st_h5_tmp_discard(&w->file, w->tmp_path);
    kiln_free(w->tmp_path);
    kiln_free(w->path);
    kiln_free(w);
}

int st_features_create(const char *path, const st_features_meta_t *meta, int compress,
                       st_features_writer_t **out, kiln_err_t *err)
{
    st_h5_quiet_t q;
    st_features_writer_t *w = NULL;
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
    w->file = H5I_INVALID_HID;
    st_h5_col_init(&w->features);
    st_h5_rowcols_init(&w->rows);
    w->n_features = meta->n_features;
    if (!(w->path = kiln_strdup(path))) {
        rc = kiln_err_set(err, KILN_ENOMEM, "%s: out of memory", path);
        goto out;
    }
    if ((rc = st_h5_tmp_create(path, &w->file, &w->tmp_path, err)) < 0)
        goto out;
    if ((rc = st_h5_attr_put_str(w->file, path, "/", "schema", ST_FEATURES_SCHEMA, err)) < 0 ||
        (rc = st_h5_attr_put_str(w->file, path, "/", "source_sha256", meta->source_sha256, err)) < 0 ||
        (rc = st_h5_attr_put_str(w->file, path, "/", "spec_sha256", meta->spec_sha256, err)) < 0 ||
        (rc = st_h5_attr_put_str(w->file, path, "/", "spec_json", meta->spec_json, err)) < 0 ||
        (rc = st_h5_attr_put_strs(w->file, path, "/", "label_names", meta->label_names,
                                  meta->n_label_names, err)) < 0)
        goto out;
    if ((rc = st_h5_col_create(&w->features, w->file, path, "/features", ST_H5_F32,
                               meta->n_features, 1024, compress, err)) < 0 ||
        (rc = st_h5_attr_put_strs(w->features.dset, path, "/features", "feature_names",
                                  meta->feature_names, meta->n_features, err)) < 0 ||
        (rc = st_h5_rowcols_create(&w->rows, w->file, path, meta->has_label, meta->has_target,
                                   meta->n_label_names, compress, err)) < 0)
        goto out;
    hash_header(&w->header, meta);
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
    if ((rc = st_h5_check_batch(w->path, w->broken, n, w->n_features, "row", err)) < 0 || n == 0)
        return rc;
    if ((rc = st_h5_check_floats(w->path, "/features", rows, n, w->n_features, w->n_rows, "row",
                                 "feature", err)) < 0 ||
        (rc = st_h5_rowcols_check(&w->rows, w->path, w->n_rows, n, asset, timestamp_ns, label,
                                  target, "row", err)) < 0)
        return rc;
    st_h5_quiet_begin(&q);
    rc = st_h5_col_append(&w->features, w->path, rows, n, err);
    if (rc == 0)
        rc = st_h5_rowcols_append(&w->rows, w->path, n, asset, timestamp_ns, label, target, err);
    st_h5_quiet_end(&q);
    if (rc < 0)
        w->broken = 1;
    else
        w->n_rows += n;
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
    if (w->broken) {
        rc = kiln_err_set(err, KILN_EIO, "%s: an earlier write failed; nothing committed", w->path);
        goto out;
    }
    st_h5_col_part(&w->features, &parts[n_parts++]);
    st_h5_rowcols_parts(&w->rows, parts, &n_parts);
    st_sha256_t h = w->header;
    if ((rc = st_h5_seal(w->file, w->path, &h, parts, n_parts, hex, err)) < 0)
        goto out;
    st_h5_col_close(&w->features);
    st_h5_rowcols_close(&w->rows);
    if ((rc = st_h5_tmp_commit(&w->file, w->tmp_path, w->path, err)) < 0)
        goto out;
    if (hash_hex)
        memcpy(hash_hex, hex, 65);
out:
    writer_free(w);
    st_h5_quiet_end(&q);
    return rc;
}

void st_features_abort(st_features_writer_t **wp)
{
    if (!wp || !*wp)
        return;
    st_h5_quiet_t q;
    st_h5_quiet_begin(&q);
    writer_free(*wp);
    st_h5_quiet_end(&q);
    *wp = NULL;
}

/* ---- reading ---------------------------------------------------------- */

static void reader_free(st_features_t *ds)
{
    st_features_meta_t *m = &ds->meta;
    st_h5_ds_close(&ds->features);
    st_h5_rowds_close(&ds->rows);
    if (ds->file >= 0)
        H5Fclose(ds->file);
    for (size_t i = 0; i < m->n_features; i++)
        kiln_free((void *)m->feature_names[i]);
    for (size_t i = 0; i < m->n_label_names; i++)
        kiln_free((void *)m->label_names[i]);
    kiln_free((void *)m->source_sha256);
    kiln_free((void *)m->spec_sha256);
    kiln_free((void *)m->spec_json);
    kiln_free((void *)m->created);
    kiln_free((void *)m->content_sha256);
    kiln_free(ds->path);
    kiln_free(ds);
}

int st_features_open(const char *path, st_features_t **out, kiln_err_t *err)
{
    st_h5_quiet_t q;
    st_features_t *ds = NULL;
    int rc;

    *out = NULL;
    if (!path || !*path)
        return kiln_err_set(err, KILN_EINVAL, "st_features_open: no path");
    st_h5_quiet_begin(&q);
    if (!(ds = kiln_calloc(1, sizeof *ds))) {
        rc = kiln_err_set(err, KILN_ENOMEM, "%s: out of memory", path);
        goto out;
    }
    ds->file = H5I_INVALID_HID;
    st_h5_ds_init(&ds->features);
    st_h5_rowds_init(&ds->rows);
    if (!(ds->path = kiln_strdup(path))) {
        rc = kiln_err_set(err, KILN_ENOMEM, "%s: out of memory", path);
        goto out;
    }
    st_features_meta_t *m = &ds->meta;
    if ((rc = st_h5_open_schema(path, ST_FEATURES_SCHEMA, &ds->file, err)) < 0 ||
        (rc = st_h5_attr_get_str(ds->file, path, "/", "source_sha256", 0, 64,
                                 (char **)&m->source_sha256, err)) < 0 ||
        (rc = st_h5_attr_get_str(ds->file, path, "/", "spec_sha256", 0, 64,
                                 (char **)&m->spec_sha256, err)) < 0 ||
        (rc = st_h5_attr_get_str(ds->file, path, "/", "spec_json", 0, SPEC_JSON_MAX,
                                 (char **)&m->spec_json, err)) < 0 ||
        (rc = st_h5_attr_get_str(ds->file, path, "/", "created", 0, 64, (char **)&m->created, err)) < 0 ||
        (rc = st_h5_attr_get_str(ds->file, path, "/", "content_sha256", 0, 64,
                                 (char **)&m->content_sha256, err)) < 0 ||
        (rc = st_h5_attr_get_strs(ds->file, path, "/", "label_names", 0, 256, ST_H5_NAME_MAX,
                                  (char **)m->label_names, &m->n_label_names, err)) < 0)
        goto out;
    if ((rc = st_h5_ds_open(&ds->features, ds->file, path, "/features", ST_H5_F32, SIZE_MAX, err)) < 0)
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
    if ((rc = st_h5_rowds_open(&ds->rows, ds->file, path, m->n_rows, "rows of /features",
                               m->n_label_names, err)) < 0)
        goto out;
    m->has_label = ds->rows.has_label;
    m->has_target = ds->rows.has_target;
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
    int rc = st_h5_ds_read(&ds->features, ds->path, row0, n, rows, "row", err);
    st_h5_quiet_end(&q);
    return rc;
}

int st_features_read_meta(st_features_t *ds, size_t row0, size_t n, int32_t *asset,
                          int64_t *timestamp_ns, int32_t *label, float *target,
                          kiln_err_t *err)
{
    if (!ds)
        return kiln_err_set(err, KILN_EINVAL, "st_features_read_meta: no dataset");
    st_h5_quiet_t q;
    st_h5_quiet_begin(&q);
    int rc = st_h5_rowds_read(&ds->rows, ds->path, row0, n, asset, timestamp_ns, label, target,
                              "row", err);
    st_h5_quiet_end(&q);
    return rc;
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
    rc = st_h5_ds_part(&ds->features, ds->path, &parts[n_parts++], err);
    if (rc == 0)
        rc = st_h5_rowds_parts(&ds->rows, ds->path, parts, &n_parts, err);
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
    st_h5_quiet_t q;
    st_h5_quiet_begin(&q);
    reader_free(*ds);
    st_h5_quiet_end(&q);
    *ds = NULL;
}
