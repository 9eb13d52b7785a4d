/* h5cols.c - the datasets of kiln files: extendible columns a writer
 * appends to (hashing as it goes), datasets a reader opens with their type
 * and shape checked and then reads by row range, the per-row columns both
 * schemas carry, and the pieces of the content hash. */
#include "h5cols.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/kiln_alloc.h"

#define CHUNK_TARGET_BYTES (512u * 1024u)

const char *st_h5_kind_name(st_h5_kind_t kind)
{
    switch (kind) {
    case ST_H5_F32: return "float32";
    case ST_H5_I32: return "int32";
    case ST_H5_I64: return "int64";
    }
    return "?";
}

size_t st_h5_kind_size(st_h5_kind_t kind) { return kind == ST_H5_I64 ? 8 : 4; }

static hid_t kind_mem_type(st_h5_kind_t kind)
{
    return kind == ST_H5_F32 ? H5T_NATIVE_FLOAT : kind == ST_H5_I32 ? H5T_NATIVE_INT32
                                                                    : H5T_NATIVE_INT64;
}

static hid_t kind_file_type(st_h5_kind_t kind)
{
    return kind == ST_H5_F32 ? H5T_IEEE_F32LE : kind == ST_H5_I32 ? H5T_STD_I32LE
                                                                  : H5T_STD_I64LE;
}

size_t st_h5_chunk_rows(size_t row_len, size_t elem_size, size_t max_rows)
{
    size_t row_bytes = (row_len ? row_len : 1) * elem_size;
    size_t rows = CHUNK_TARGET_BYTES / row_bytes;
    if (rows > max_rows)
        rows = max_rows;
    return rows ? rows : 1;
}
/* ---- writing ---------------------------------------------------------- */

void st_h5_col_init(st_h5_col_t *c)
{
    memset(c, 0, sizeof *c);
    c->dset = H5I_INVALID_HID;
}

int st_h5_col_create(st_h5_col_t *c, hid_t file, const char *file_label, const char *path,
                     st_h5_kind_t kind, size_t row_len, size_t max_chunk_rows, int compress,
                     kiln_err_t *err)
{
    int rank = row_len ? 2 : 1;
    size_t max_rows = max_chunk_rows ? max_chunk_rows : 16384;
    hsize_t dims[2] = {0, row_len}, maxdims[2] = {H5S_UNLIMITED, row_len};
    hsize_t chunk[2] = {st_h5_chunk_rows(row_len, st_h5_kind_size(kind), max_rows), row_len};
    hid_t space = H5I_INVALID_HID, dcpl = H5I_INVALID_HID;
    int rc = 0;

    st_h5_col_init(c);
    c->kind = kind;
    c->row_len = row_len;
    snprintf(c->path, sizeof c->path, "%s", path);
    st_sha256_init(&c->sha);

    space = H5Screate_simple(rank, dims, maxdims);
    dcpl = H5Pcreate(H5P_DATASET_CREATE);
    if (space < 0 || dcpl < 0 || H5Pset_chunk(dcpl, rank, chunk) < 0 ||
        H5Pset_fill_time(dcpl, H5D_FILL_TIME_NEVER) < 0 || H5Pset_obj_track_times(dcpl, 0) < 0) {
        rc = kiln_err_at(err, KILN_EIO, path, "%s: %s: cannot set up the dataset", file_label, path);
        goto out;
    }
    if (compress > 0 &&
        (H5Zfilter_avail(H5Z_FILTER_DEFLATE) <= 0 || H5Pset_shuffle(dcpl) < 0 ||
         H5Pset_deflate(dcpl, (unsigned)(compress > 9 ? 9 : compress)) < 0)) {
        rc = kiln_err_at(err, KILN_EUNSUPPORTED, path,
                         "%s: %s: deflate is not available in this HDF5", file_label, path);
        goto out;
    }
    c->dset = H5Dcreate2(file, path, kind_file_type(kind), space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    if (c->dset < 0)
        rc = kiln_err_at(err, KILN_EIO, path, "%s: %s: cannot create the dataset", file_label, path);
out:
    if (dcpl >= 0)
        H5Pclose(dcpl);
    if (space >= 0)
        H5Sclose(space);
    return rc;
}

int st_h5_col_append(st_h5_col_t *c, const char *file_label, const void *data, size_t n,
                     kiln_err_t *err)
{
    size_t row_len = c->row_len ? c->row_len : 1;
    hsize_t dims[2] = {c->n_rows + n, c->row_len};
    hsize_t start[2] = {c->n_rows, 0}, count[2] = {n, c->row_len};
    hid_t fspace = H5I_INVALID_HID, mspace = H5I_INVALID_HID;
    int rc = 0;

    if (n == 0)
        return 0;
    /* The memory space has the selection's own shape: with a flat 1-D one
     * HDF5 falls back to element-by-element scatter (see ds_read_raw). */
    if (H5Dset_extent(c->dset, dims) < 0 || (fspace = H5Dget_space(c->dset)) < 0 ||
        H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start, NULL, count, NULL) < 0 ||
        (mspace = H5Screate_simple(c->row_len ? 2 : 1, count, NULL)) < 0 ||
        H5Dwrite(c->dset, kind_mem_type(c->kind), mspace, fspace, H5P_DEFAULT, data) < 0) {
        rc = kiln_err_at(err, KILN_EIO, c->path, "%s: %s: cannot write rows %llu..%llu",
                         file_label, c->path, (unsigned long long)c->n_rows,
                         (unsigned long long)(c->n_rows + n));
        goto out;
    }
    st_h5_hash_le(&c->sha, data, n * row_len, st_h5_kind_size(c->kind));
    c->n_rows += n;
out:
    if (mspace >= 0)
        H5Sclose(mspace);
    if (fspace >= 0)
        H5Sclose(fspace);
    return rc;
}

void st_h5_col_close(st_h5_col_t *c)
{
    if (c->dset >= 0)
        H5Dclose(c->dset);
    c->dset = H5I_INVALID_HID;
}
/* ---- reading ---------------------------------------------------------- */

void st_h5_ds_init(st_h5_ds_t *d)
{
    memset(d, 0, sizeof *d);
    d->dset = H5I_INVALID_HID;
}

static int kind_matches(hid_t t, st_h5_kind_t kind)
{
    H5T_class_t cls = H5Tget_class(t);
    size_t size = H5Tget_size(t);
    if (kind == ST_H5_F32)
        return cls == H5T_FLOAT && size == 4;
    return cls == H5T_INTEGER && size == st_h5_kind_size(kind) && H5Tget_sign(t) == H5T_SGN_2;
}

/* A file compressed by a filter this HDF5 lacks (lzf, blosc, szip...) is
 * refused at open, not found broken halfway through a read. */
static int check_filters(const st_h5_ds_t *d, const char *file_label, kiln_err_t *err)
{
    hid_t dcpl = H5Dget_create_plist(d->dset);
    int rc = 0;
    if (dcpl < 0)
        return kiln_err_at(err, KILN_EFORMAT, d->path, "%s: %s: cannot read its properties",
                           file_label, d->path);
    int n = H5Pget_nfilters(dcpl);
    for (int i = 0; i < n && rc == 0; i++) {
        unsigned flags = 0, conf = 0;
        size_t n_values = 0;
        char name[64] = "";
        H5Z_filter_t id = H5Pget_filter2(dcpl, (unsigned)i, &flags, &n_values, NULL,
                                         sizeof name, name, &conf);
        if (id < 0 || H5Zfilter_avail(id) <= 0)
            rc = kiln_err_at(err, KILN_EUNSUPPORTED, d->path,
                             "%s: %s: compressed with HDF5 filter %d (%s), which this build lacks",
                             file_label, d->path, (int)id, *name ? name : "unknown");
    }
    H5Pclose(dcpl);
    return rc;
}

int st_h5_ds_open(st_h5_ds_t *d, hid_t file, const char *file_label, const char *path,
                  st_h5_kind_t kind, size_t row_len, kiln_err_t *err)
{
    hid_t obj = H5I_INVALID_HID, t = H5I_INVALID_HID, s = H5I_INVALID_HID;
    char words[32];
    int rc = 0;

    st_h5_ds_init(d);
    d->kind = kind;
    snprintf(d->path, sizeof d->path, "%s", path);
    if (H5Lexists(file, path, H5P_DEFAULT) <= 0)
        return kiln_err_at(err, KILN_ESCHEMA, path, "%s: %s: missing dataset", file_label, path);
    obj = H5Oopen(file, path, H5P_DEFAULT);
    if (obj < 0 || H5Iget_type(obj) != H5I_DATASET) {
        rc = kiln_err_at(err, KILN_ESCHEMA, path, "%s: %s: expected a dataset, found %s",
                         file_label, path, obj < 0 ? "a broken link" : "a group or other object");
        goto fail;
    }
    d->dset = obj;
    obj = H5I_INVALID_HID;
    t = H5Dget_type(d->dset);
    if (t < 0 || !kind_matches(t, kind)) {
        if (t >= 0)
            st_h5_type_words(t, words, sizeof words);
        else
            snprintf(words, sizeof words, "unknown type");
        rc = kiln_err_at(err, KILN_ETYPE, path, "%s: %s: expected %s, found %s", file_label, path,
                         st_h5_kind_name(kind), words);
        goto fail;
    }
    s = H5Dget_space(d->dset);
    int want_rank = row_len ? 2 : 1;
    int ndims = s >= 0 && H5Sget_simple_extent_type(s) == H5S_SIMPLE ? H5Sget_simple_extent_ndims(s)
                                                                        : 0;
    hsize_t dims[H5S_MAX_RANK] = {0};
    if (ndims > 0)
        H5Sget_simple_extent_dims(s, dims, NULL);
    if (ndims != want_rank) {
        rc = kiln_err_at(err, KILN_ESHAPE, path, "%s: %s: expected %d-D, found %d-D", file_label,
                         path, want_rank, ndims);
        goto fail;
    }
    if (row_len && row_len != SIZE_MAX && dims[1] != row_len) {
        rc = kiln_err_at(err, KILN_ESHAPE, path, "%s: %s: expected [%llu, %zu], found [%llu, %llu]",
                         file_label, path, (unsigned long long)dims[0], row_len,
                         (unsigned long long)dims[0], (unsigned long long)dims[1]);
        goto fail;
    }
    if (row_len == SIZE_MAX && (dims[1] == 0 || dims[1] > ST_H5_MAX_WINDOW_LEN)) {
        rc = kiln_err_at(err, KILN_ESHAPE, path, "%s: %s: second dimension %llu out of range",
                         file_label, path, (unsigned long long)dims[1]);
        goto fail;
    }
    d->row_len = row_len ? (size_t)dims[1] : 0;
    d->n_rows = dims[0];
    if ((rc = check_filters(d, file_label, err)) < 0)
        goto fail;
    H5Sclose(s);
    H5Tclose(t);
    return 0;
fail:
    if (s >= 0)
        H5Sclose(s);
    if (t >= 0)
        H5Tclose(t);
    if (obj >= 0)
        H5Oclose(obj);
    st_h5_ds_close(d);
    return rc;
}

int st_h5_ds_expect_rows(const st_h5_ds_t *d, const char *file_label, uint64_t n_rows,
                         const char *what, kiln_err_t *err)
{
    if (d->n_rows == n_rows)
        return 0;
    return kiln_err_at(err, KILN_ESHAPE, d->path, "%s: %s: has %llu rows, expected %llu (%s)",
                       file_label, d->path, (unsigned long long)d->n_rows,
                       (unsigned long long)n_rows, what);
}

static int ds_read_raw(st_h5_ds_t *d, const char *file_label, uint64_t row0, size_t n, void *out,
                       kiln_err_t *err)
{
    hsize_t start[2] = {row0, 0}, count[2] = {n, d->row_len};
    hid_t fspace = H5I_INVALID_HID, mspace = H5I_INVALID_HID;
    int rc = 0;
    /* The memory space has the file selection's own shape: with a flat 1-D
     * memory space HDF5 1.10 scatters element by element, which cost more
     * than all of featurization's compute (measured: 3x the run time). */
    if ((fspace = H5Dget_space(d->dset)) < 0 ||
        H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start, NULL, count, NULL) < 0 ||
        (mspace = H5Screate_simple(d->row_len ? 2 : 1, count, NULL)) < 0 ||
        H5Dread(d->dset, kind_mem_type(d->kind), mspace, fspace, H5P_DEFAULT, out) < 0)
        rc = kiln_err_at(err, KILN_EIO, d->path, "%s: %s: cannot read rows %llu..%llu (damaged file?)",
                         file_label, d->path, (unsigned long long)row0,
                         (unsigned long long)(row0 + n));
    if (mspace >= 0)
        H5Sclose(mspace);
    if (fspace >= 0)
        H5Sclose(fspace);
    return rc;
}

int st_h5_ds_read(st_h5_ds_t *d, const char *file_label, uint64_t row0, size_t n, void *out,
                  const char *row_word, kiln_err_t *err)
{
    if (n == 0)
        return 0;
    if (row0 > d->n_rows || n > d->n_rows - row0)
        return kiln_err_at(err, KILN_EINVAL, d->path,
                           "%s: %s: %ss %llu..%llu out of range (it has %llu)", file_label,
                           d->path, row_word, (unsigned long long)row0,
                           (unsigned long long)row0 + n, (unsigned long long)d->n_rows);
    int rc = ds_read_raw(d, file_label, row0, n, out, err);
    if (rc < 0 || d->kind != ST_H5_F32)
        return rc;
    size_t row_len = d->row_len ? d->row_len : 1;
    const float *v = out;
    for (size_t i = 0; i < n * row_len; i++) {
        if (!isfinite(v[i])) {
            char col[48] = "";
            if (d->row_len)
                snprintf(col, sizeof col, ", column %zu", i % row_len);
            return kiln_err_at(err, KILN_ENONFINITE, d->path, "%s: %s: %s at %s %llu%s",
                               file_label, d->path, isnan(v[i]) ? "NaN" : "Inf", row_word,
                               (unsigned long long)(row0 + i / row_len), col);
        }
    }
    return 0;
}

int st_h5_ds_digest(st_h5_ds_t *d, const char *file_label, uint8_t digest[32], kiln_err_t *err)
{
    size_t elem = st_h5_kind_size(d->kind), row_len = d->row_len ? d->row_len : 1;
    size_t block = st_h5_chunk_rows(row_len, elem, 65536);
    st_sha256_t h;
    int rc = 0;
    void *buf = kiln_malloc(block * row_len * elem);
    if (!buf)
        return kiln_err_set(err, KILN_ENOMEM, "%s: out of memory", file_label);
    st_sha256_init(&h);
    for (uint64_t r = 0; r < d->n_rows; r += block) {
        size_t n = d->n_rows - r < block ? (size_t)(d->n_rows - r) : block;
        if ((rc = ds_read_raw(d, file_label, r, n, buf, err)) < 0)
            break;
        st_h5_hash_le(&h, buf, n * row_len, elem);
    }
    kiln_free(buf);
    st_sha256_final(&h, digest);
    return rc;
}

void st_h5_ds_close(st_h5_ds_t *d)
{
    if (d->dset >= 0)
        H5Dclose(d->dset);
    d->dset = H5I_INVALID_HID;
}
/* ---- per-row columns -------------------------------------------------- */

void st_h5_rowcols_init(st_h5_rowcols_t *r)
{
    memset(r, 0, sizeof *r);
    st_h5_col_init(&r->asset);
    st_h5_col_init(&r->timestamp);
    st_h5_col_init(&r->label);
    st_h5_col_init(&r->target);
}

int st_h5_rowcols_create(st_h5_rowcols_t *r, hid_t file, const char *file_label,
                         int has_label, int has_target, size_t n_label_names, int compress,
                         kiln_err_t *err)
{
    int rc;
    st_h5_rowcols_init(r);
    r->has_label = has_label;
    r->has_target = has_target;
    r->n_label_names = n_label_names;
    if ((rc = st_h5_col_create(&r->asset, file, file_label, "/asset", ST_H5_I32, 0, 0, compress, err)) < 0 ||
        (rc = st_h5_col_create(&r->timestamp, file, file_label, "/timestamp", ST_H5_I64, 0, 0, compress, err)) < 0 ||
        (has_label &&
         (rc = st_h5_col_create(&r->label, file, file_label, "/label", ST_H5_I32, 0, 0, compress, err)) < 0) ||
        (has_target &&
         (rc = st_h5_col_create(&r->target, file, file_label, "/target", ST_H5_F32, 0, 0, compress, err)) < 0))
        return rc;
    return 0;
}

int st_h5_rowcols_check(const st_h5_rowcols_t *r, const char *file_label, uint64_t row0,
                        size_t n, const int32_t *asset, const int64_t *timestamp,
                        const int32_t *label, const float *target, const char *row_word,
                        kiln_err_t *err)
{
    if (n == 0)
        return 0;
    if (!asset || !timestamp)
        return kiln_err_at(err, KILN_EINVAL, !asset ? "/asset" : "/timestamp",
                           "%s: %s: no values given", file_label, !asset ? "/asset" : "/timestamp");
    if (r->has_label && !label)
        return kiln_err_at(err, KILN_EINVAL, "/label", "%s: /label: declared but no values given",
                           file_label);
    if (r->has_target && !target)
        return kiln_err_at(err, KILN_EINVAL, "/target", "%s: /target: declared but no values given",
                           file_label);
    for (size_t i = 0; r->has_label && i < n; i++)
        if (label[i] < -1 || (r->n_label_names && (size_t)label[i] >= r->n_label_names && label[i] >= 0))
            return kiln_err_at(err, KILN_EINVAL, "/label",
                               "%s: /label: %s %llu: label %d outside -1..%zu", file_label,
                               row_word, (unsigned long long)(row0 + i), (int)label[i],
                               r->n_label_names ? r->n_label_names - 1 : (size_t)INT32_MAX);
    for (size_t i = 0; r->has_target && i < n; i++)
        if (!isfinite(target[i]))
            return kiln_err_at(err, KILN_ENONFINITE, "/target", "%s: /target: %s at %s %llu",
                               file_label, isnan(target[i]) ? "NaN" : "Inf", row_word,
                               (unsigned long long)(row0 + i));
    return 0;
}

int st_h5_rowcols_append(st_h5_rowcols_t *r, const char *file_label, size_t n,
                         const int32_t *asset, const int64_t *timestamp, const int32_t *label,
                         const float *target, kiln_err_t *err)
{
    int rc;
    if ((rc = st_h5_col_append(&r->asset, file_label, asset, n, err)) < 0 ||
        (rc = st_h5_col_append(&r->timestamp, file_label, timestamp, n, err)) < 0 ||
        (r->has_label && (rc = st_h5_col_append(&r->label, file_label, label, n, err)) < 0) ||
        (r->has_target && (rc = st_h5_col_append(&r->target, file_label, target, n, err)) < 0))
        return rc;
    return 0;
}

void st_h5_rowcols_close(st_h5_rowcols_t *r)
{
    st_h5_col_close(&r->asset);
    st_h5_col_close(&r->timestamp);
    st_h5_col_close(&r->label);
    st_h5_col_close(&r->target);
}

int st_h5_check_floats(const char *file_label, const char *ds_path, const float *values,
                       size_t n, size_t row_len, uint64_t row0, const char *row_word,
                       const char *elem_word, kiln_err_t *err)
{
    if (!values)
        return kiln_err_at(err, KILN_EINVAL, ds_path, "%s: %s: no values given", file_label,
                           ds_path);
    for (size_t i = 0; i < n * row_len; i++)
        if (!isfinite(values[i]))
            return kiln_err_at(err, KILN_ENONFINITE, ds_path, "%s: %s: %s at %s %llu, %s %zu",
                               file_label, ds_path, isnan(values[i]) ? "NaN" : "Inf", row_word,
                               (unsigned long long)(row0 + i / row_len), elem_word,
                               i % row_len);
    return 0;
}

int st_h5_check_batch(const char *file_label, int broken, size_t n, size_t row_len,
                      const char *row_word, kiln_err_t *err)
{
    if (broken)
        return kiln_err_set(err, KILN_EIO, "%s: an earlier write failed; abort this dataset",
                            file_label);
    if (n > (SIZE_MAX / sizeof(float)) / row_len)
        return kiln_err_set(err, KILN_EINVAL, "%s: batch of %zu %ss is too large", file_label,
                            n, row_word);
    return 0;
}

void st_h5_rowds_init(st_h5_rowds_t *r)
{
    memset(r, 0, sizeof *r);
    st_h5_ds_init(&r->asset);
    st_h5_ds_init(&r->timestamp);
    st_h5_ds_init(&r->label);
    st_h5_ds_init(&r->target);
}

int st_h5_rowds_open(st_h5_rowds_t *r, hid_t file, const char *file_label, uint64_t n_rows,
                     const char *rows_from, size_t n_label_names, kiln_err_t *err)
{
    int rc;
    st_h5_rowds_init(r);
    r->n_label_names = n_label_names;
    r->has_label = H5Lexists(file, "/label", H5P_DEFAULT) > 0;
    r->has_target = H5Lexists(file, "/target", H5P_DEFAULT) > 0;
    if ((rc = st_h5_ds_open(&r->asset, file, file_label, "/asset", ST_H5_I32, 0, err)) < 0 ||
        (rc = st_h5_ds_expect_rows(&r->asset, file_label, n_rows, rows_from, err)) < 0 ||
        (rc = st_h5_ds_open(&r->timestamp, file, file_label, "/timestamp", ST_H5_I64, 0, err)) < 0 ||
        (rc = st_h5_ds_expect_rows(&r->timestamp, file_label, n_rows, rows_from, err)) < 0)
        goto fail;
    if (r->has_label &&
        ((rc = st_h5_ds_open(&r->label, file, file_label, "/label", ST_H5_I32, 0, err)) < 0 ||
         (rc = st_h5_ds_expect_rows(&r->label, file_label, n_rows, rows_from, err)) < 0))
        goto fail;
    if (r->has_target &&
        ((rc = st_h5_ds_open(&r->target, file, file_label, "/target", ST_H5_F32, 0, err)) < 0 ||
         (rc = st_h5_ds_expect_rows(&r->target, file_label, n_rows, rows_from, err)) < 0))
        goto fail;
    return 0;
fail:
    st_h5_rowds_close(r);
    return rc;
}

int st_h5_rowds_read(st_h5_rowds_t *r, const char *file_label, uint64_t row0, size_t n,
                     int32_t *asset, int64_t *timestamp, int32_t *label, float *target,
                     const char *row_word, kiln_err_t *err)
{
    int rc;
    if (n == 0)
        return 0;
    if (row0 > r->asset.n_rows || n > r->asset.n_rows - row0)
        return kiln_err_at(err, KILN_EINVAL, "/asset",
                           "%s: %ss %llu..%llu out of range (it has %llu)", file_label, row_word,
                           (unsigned long long)row0, (unsigned long long)row0 + n,
                           (unsigned long long)r->asset.n_rows);
    if ((asset && (rc = st_h5_ds_read(&r->asset, file_label, row0, n, asset, row_word, err)) < 0) ||
        (timestamp &&
         (rc = st_h5_ds_read(&r->timestamp, file_label, row0, n, timestamp, row_word, err)) < 0))
        return rc;
    if (label) {
        if (!r->has_label) {
            for (size_t i = 0; i < n; i++)
                label[i] = -1;
        } else {
            if ((rc = st_h5_ds_read(&r->label, file_label, row0, n, label, row_word, err)) < 0)
                return rc;
            for (size_t i = 0; i < n; i++)
                if (label[i] < -1 || (r->n_label_names && label[i] >= 0 &&
                                      (size_t)label[i] >= r->n_label_names))
                    return kiln_err_at(err, KILN_ESCHEMA, "/label",
                                       "%s: /label: %s %llu: label %d outside -1..%zu "
                                       "(label_names has %zu)", file_label, row_word,
                                       (unsigned long long)(row0 + i), (int)label[i],
                                       r->n_label_names - 1, r->n_label_names);
        }
    }
    if (target) {
        if (!r->has_target)
            memset(target, 0, n * sizeof *target);
        else if ((rc = st_h5_ds_read(&r->target, file_label, row0, n, target, row_word, err)) < 0)
            return rc;
    }
    return 0;
}

void st_h5_rowds_close(st_h5_rowds_t *r)
{
    st_h5_ds_close(&r->asset);
    st_h5_ds_close(&r->timestamp);
    st_h5_ds_close(&r->label);
    st_h5_ds_close(&r->target);
}
/* ---- content hash ----------------------------------------------------- */

void st_h5_col_part(const st_h5_col_t *c, st_h5_part_t *part)
{
    st_sha256_t copy = c->sha;
    part->path = c->path;
    part->n_rows = c->n_rows;
    part->row_len = c->row_len ? c->row_len : 1;
    st_sha256_final(&copy, part->digest);
}

int st_h5_ds_part(st_h5_ds_t *d, const char *file_label, st_h5_part_t *part, kiln_err_t *err)
{
    part->path = d->path;
    part->n_rows = d->n_rows;
    part->row_len = d->row_len ? d->row_len : 1;
    return st_h5_ds_digest(d, file_label, part->digest, err);
}

void st_h5_hash_str(st_sha256_t *h, const char *s)
{
    st_sha256_update(h, s ? s : "", strlen(s ? s : "") + 1);
}

void st_h5_hash_u64(st_sha256_t *h, uint64_t v)
{
    uint8_t b[8];
    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)(v >> (8 * i));
    st_sha256_update(h, b, 8);
}

void st_h5_hash_f64(st_sha256_t *h, double v)
{
    uint64_t bits;
    memcpy(&bits, &v, sizeof bits);
    st_h5_hash_u64(h, bits);
}

void st_h5_hash_strs(st_sha256_t *h, const char *name, const char *const *s, size_t n)
{
    st_h5_hash_str(h, name);
    st_h5_hash_u64(h, n);
    for (size_t i = 0; i < n; i++)
        st_h5_hash_str(h, s[i]);
}

void st_h5_hash_le(st_sha256_t *h, const void *data, size_t n_elems, size_t elem_size)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    st_sha256_update(h, data, n_elems * elem_size);
#else
    const uint8_t *p = data;
    uint8_t tmp[4096];
    size_t per = sizeof tmp / elem_size;
    while (n_elems) {
        size_t k = n_elems < per ? n_elems : per;
        for (size_t i = 0; i < k; i++)
            for (size_t b = 0; b < elem_size; b++)
                tmp[i * elem_size + b] = p[i * elem_size + elem_size - 1 - b];
        st_sha256_update(h, tmp, k * elem_size);
        p += k * elem_size;
        n_elems -= k;
    }
#endif
}

static int part_cmp(const void *a, const void *b)
{
    return strcmp(((const st_h5_part_t *)a)->path, ((const st_h5_part_t *)b)->path);
}

void st_h5_hash_finish(st_sha256_t *h, st_h5_part_t *parts, size_t n, char hex[65])
{
    uint8_t digest[32];
    qsort(parts, n, sizeof *parts, part_cmp);
    for (size_t i = 0; i < n; i++) {
        st_h5_hash_str(h, parts[i].path);
        st_h5_hash_u64(h, parts[i].n_rows);
        st_h5_hash_u64(h, parts[i].row_len);
        st_sha256_update(h, parts[i].digest, 32);
    }
    st_sha256_final(h, digest);
    st_sha256_hex(digest, hex);
}

static void rowcols_parts(const st_h5_rowcols_t *r, st_h5_part_t *parts, size_t *n_parts)
{
    st_h5_col_part(&r->asset, &parts[(*n_parts)++]);
    st_h5_col_part(&r->timestamp, &parts[(*n_parts)++]);
    if (r->has_label)
        st_h5_col_part(&r->label, &parts[(*n_parts)++]);
    if (r->has_target)
        st_h5_col_part(&r->target, &parts[(*n_parts)++]);
}

int st_h5_rowds_parts(st_h5_rowds_t *r, const char *file_label, st_h5_part_t *parts,
                      size_t *n_parts, kiln_err_t *err)
{
    int rc;
    if ((rc = st_h5_ds_part(&r->asset, file_label, &parts[(*n_parts)++], err)) < 0 ||
        (rc = st_h5_ds_part(&r->timestamp, file_label, &parts[(*n_parts)++], err)) < 0 ||
        (r->has_label && (rc = st_h5_ds_part(&r->label, file_label, &parts[(*n_parts)++], err)) < 0) ||
        (r->has_target && (rc = st_h5_ds_part(&r->target, file_label, &parts[(*n_parts)++], err)) < 0))
        return rc;
    return 0;
}

/* ---- writers and readers --------------------------------------------- */

void st_h5_writer_init(st_h5_writer_t *w)
{
    memset(w, 0, sizeof *w);
    w->file = H5I_INVALID_HID;
    st_h5_rowcols_init(&w->rows);
}

int st_h5_writer_start(st_h5_writer_t *w, const char *path, const char *schema,
                       kiln_err_t *err)
{
    int rc;
    if (!(w->path = kiln_strdup(path)))
        return kiln_err_set(err, KILN_ENOMEM, "%s: out of memory", path);
    if ((rc = st_h5_tmp_create(path, &w->file, &w->tmp_path, err)) < 0 ||
        (rc = st_h5_attr_put_str(w->file, path, "/", "schema", schema, err)) < 0)
        return rc;
    return 0;
}

int st_h5_writer_append_rows(st_h5_writer_t *w, int own_rc, size_t n, const int32_t *asset,
                             const int64_t *timestamp, const int32_t *label,
                             const float *target, kiln_err_t *err)
{
    int rc = own_rc;
    if (rc == 0)
        rc = st_h5_rowcols_append(&w->rows, w->path, n, asset, timestamp, label, target, err);
    if (rc < 0)
        w->broken = 1;
    else
        w->n_rows += n;
    return rc;
}

int st_h5_writer_seal(st_h5_writer_t *w, st_h5_part_t *parts, size_t n_parts, char hex[65],
                      kiln_err_t *err)
{
    char created[32];
    int rc;
    if (w->broken)
        return kiln_err_set(err, KILN_EIO, "%s: an earlier write failed; nothing committed",
                            w->path);
    rowcols_parts(&w->rows, parts, &n_parts);
    st_sha256_t h = w->header;
    st_h5_hash_finish(&h, parts, n_parts, hex);
    st_h5_now_iso8601(created);
    if ((rc = st_h5_attr_put_str(w->file, w->path, "/", "created", created, err)) < 0 ||
        (rc = st_h5_attr_put_str(w->file, w->path, "/", "content_sha256", hex, err)) < 0)
        return rc;
    return 0;
}

int st_h5_writer_commit(st_h5_writer_t *w, const char hex[65], char *hash_hex, kiln_err_t *err)
{
    int rc;
    st_h5_rowcols_close(&w->rows);
    if ((rc = st_h5_tmp_commit(&w->file, w->tmp_path, w->path, err)) < 0)
        return rc;
    if (hash_hex)
        memcpy(hash_hex, hex, 65);
    return 0;
}

void st_h5_writer_free(st_h5_writer_t *w)
{
    st_h5_rowcols_close(&w->rows);
    st_h5_tmp_discard(&w->file, w->tmp_path);     /* after a commit: a no-op */
    kiln_free(w->tmp_path);
    kiln_free(w->path);
    w->tmp_path = w->path = NULL;
}

void st_h5_reader_init(st_h5_reader_t *r)
{
    memset(r, 0, sizeof *r);
    r->file = H5I_INVALID_HID;
    st_h5_rowds_init(&r->rows);
}

int st_h5_reader_start(st_h5_reader_t *r, const char *path, const char *schema,
                       kiln_err_t *err)
{
    if (!(r->path = kiln_strdup(path)))
        return kiln_err_set(err, KILN_ENOMEM, "%s: out of memory", path);
    return st_h5_open_schema(path, schema, &r->file, err);
}

int st_h5_reader_read_meta(st_h5_reader_t *r, uint64_t row0, size_t n, int32_t *asset,
                           int64_t *timestamp, int32_t *label, float *target,
                           const char *row_word, kiln_err_t *err)
{
    st_h5_quiet_t q;
    st_h5_quiet_begin(&q);
    int rc = st_h5_rowds_read(&r->rows, r->path, row0, n, asset, timestamp, label, target,
                              row_word, err);
    st_h5_quiet_end(&q);
    return rc;
}

void st_h5_reader_free(st_h5_reader_t *r)
{
    st_h5_rowds_close(&r->rows);
    if (r->file >= 0)
        H5Fclose(r->file);
    r->file = H5I_INVALID_HID;
    kiln_free(r->path);
    r->path = NULL;
}
