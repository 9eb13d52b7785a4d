/* sensor.c - kiln.sensor.v1 datasets: a writer that appends windows batch by
 * batch into a temp file and renames it into place, and a reader that
 * validates the layout once at open and then streams window ranges. */
#include "sensor.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "../core/kiln_alloc.h"
#include "h5cols.h"

struct st_sensor_writer {
    st_h5_writer_t base;                     /* file, per-row columns; a row is a window */
    hid_t          signals_grp;
    size_t         n_channels, window_len;
    st_h5_col_t    signals[ST_MAX_CHANNELS];
};

struct st_sensor {
    st_h5_reader_t   base;                   /* path, file, per-row datasets */
    st_sensor_meta_t meta;                   /* strings owned here */
    st_h5_ds_t       signals[ST_MAX_CHANNELS];
};

/* The header of the content hash (definition in sensor.h). */
static void hash_header(st_sha256_t *h, const st_sensor_meta_t *m)
{
    st_sha256_init(h);
    st_h5_hash_str(h, ST_SENSOR_SCHEMA);
    st_h5_hash_str(h, "sample_rate_hz");
    st_h5_hash_f64(h, m->sample_rate_hz);
    st_h5_hash_str(h, "window_len");
    st_h5_hash_u64(h, m->window_len);
    st_h5_hash_strs(h, "channels", m->channels, m->n_channels);
    st_h5_hash_strs(h, "label_names", m->label_names, m->n_label_names);
}

static int check_meta(const char *path, const st_sensor_meta_t *m, int compress, kiln_err_t *err)
{
    int rc;
    if (!isfinite(m->sample_rate_hz) || m->sample_rate_hz <= 0)
        return kiln_err_at(err, KILN_EINVAL, "sample_rate_hz",
                           "%s: sample_rate_hz must be finite and > 0, got %g", path,
                           m->sample_rate_hz);
    if (m->window_len == 0 || m->window_len > ST_H5_MAX_WINDOW_LEN)
        return kiln_err_at(err, KILN_EINVAL, "window_len", "%s: window_len must be 1..%u, got %zu",
                           path, ST_H5_MAX_WINDOW_LEN, m->window_len);
    if (m->n_channels == 0 || m->n_channels > ST_MAX_CHANNELS)
        return kiln_err_at(err, KILN_EINVAL, "channels", "%s: need 1..%d channels, got %zu", path,
                           ST_MAX_CHANNELS, m->n_channels);
    for (size_t c = 0; c < m->n_channels; c++) {
        if ((rc = st_h5_check_name(m->channels[c], "channel", err)) < 0) {
            char msg[sizeof err->msg];
            snprintf(msg, sizeof msg, "%s", err->msg);
            return kiln_err_at(err, rc, "channels", "%s: %s", path, msg);
        }
        for (size_t k = 0; k < c; k++)
            if (!strcmp(m->channels[k], m->channels[c]))
                return kiln_err_at(err, KILN_EINVAL, "channels", "%s: channel '%s' given twice",
                                   path, m->channels[c]);
    }
    if (compress < 0 || compress > 9)
        return kiln_err_set(err, KILN_EINVAL, "%s: compress must be 0..9, got %d", path, compress);
    return st_h5_check_names(path, "label_names", m->label_names, m->n_label_names, ST_MAX_LABELS,
                             1, err);
}

/* 64 windows a chunk, as long as that is at least 64 KiB: short windows
 * (C-MAPSS has one sample per window) take more, so chunks do not shrink to
 * a few hundred bytes.  st_h5_chunk_rows still caps a chunk at ~512 KiB. */
static size_t signal_chunk_rows(size_t window_len)
{
    size_t rows_64k = (64u * 1024u) / (window_len * sizeof(float));
    return rows_64k > 64 ? rows_64k : 64;
}

static void writer_free(void *p)
{
    st_sensor_writer_t *w = p;
    for (size_t c = 0; c < ST_MAX_CHANNELS; c++)
        st_h5_col_close(&w->signals[c]);
    if (w->signals_grp >= 0)
        H5Gclose(w->signals_grp);
    st_h5_writer_free(&w->base);
    kiln_free(w);
}

int st_sensor_create(const char *path, const st_sensor_meta_t *meta, int compress,
                     st_sensor_writer_t **out, kiln_err_t *err)
{
    st_h5_quiet_t q;
    st_sensor_writer_t *w = NULL;
    char chpath[ST_H5_PATH_MAX];
    hid_t file;
    int rc;

    *out = NULL;
    if (!path || !*path || !meta)
        return kiln_err_set(err, KILN_EINVAL, "st_sensor_create: no path or meta");
    if ((rc = check_meta(path, meta, compress, err)) < 0)
        return rc;
    st_h5_quiet_begin(&q);
    w = kiln_calloc(1, sizeof *w);
    if (!w) {
        rc = kiln_err_set(err, KILN_ENOMEM, "%s: out of memory", path);
        goto out;
    }
    st_h5_writer_init(&w->base);
    w->signals_grp = H5I_INVALID_HID;
    for (size_t c = 0; c < ST_MAX_CHANNELS; c++)
        st_h5_col_init(&w->signals[c]);
    w->n_channels = meta->n_channels;
    w->window_len = meta->window_len;
    if ((rc = st_h5_writer_start(&w->base, path, ST_SENSOR_SCHEMA, err)) < 0)
        goto out;
    file = w->base.file;
    if ((rc = st_h5_attr_put_f64(file, path, "/", "sample_rate_hz", meta->sample_rate_hz, err)) < 0 ||
        (rc = st_h5_attr_put_i64(file, path, "/", "window_len", (int64_t)meta->window_len, err)) < 0 ||
        (rc = st_h5_attr_put_str(file, path, "/", "source", meta->source, err)) < 0 ||
        (rc = st_h5_attr_put_strs(file, path, "/", "label_names", meta->label_names,
                                  meta->n_label_names, err)) < 0)
        goto out;
    w->signals_grp = H5Gcreate2(file, "/signals", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (w->signals_grp < 0) {
        rc = kiln_err_at(err, KILN_EIO, "/signals", "%s: /signals: cannot create group", path);
        goto out;
    }
    if ((rc = st_h5_attr_put_strs(w->signals_grp, path, "/signals", "channels", meta->channels,
                                  meta->n_channels, err)) < 0)
        goto out;
    for (size_t c = 0; c < meta->n_channels; c++) {
        snprintf(chpath, sizeof chpath, "/signals/%s", meta->channels[c]);
        if ((rc = st_h5_col_create(&w->signals[c], file, path, chpath, ST_H5_F32,
                                   meta->window_len, signal_chunk_rows(meta->window_len),
                                   compress, err)) < 0)
            goto out;
    }
    if ((rc = st_h5_rowcols_create(&w->base.rows, file, path, meta->has_label, meta->has_target,
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

int st_sensor_append(st_sensor_writer_t *w, size_t n, const float *const *signals,
                     const int32_t *asset, const int64_t *timestamp_ns,
                     const int32_t *label, const float *target, kiln_err_t *err)
{
    st_h5_quiet_t q;
    int rc;
    if (!w)
        return kiln_err_set(err, KILN_EINVAL, "st_sensor_append: no writer");
    st_h5_writer_t *b = &w->base;
    if ((rc = st_h5_check_batch(b->path, b->broken, n, w->window_len, "window", err)) < 0 || n == 0)
        return rc;
    if (!signals)
        return kiln_err_set(err, KILN_EINVAL, "%s: no signals given", b->path);
    /* Check the whole batch first, so a rejected batch writes nothing. */
    for (size_t c = 0; c < w->n_channels; c++)
        if ((rc = st_h5_check_floats(b->path, w->signals[c].path, signals[c], n, w->window_len,
                                     b->n_rows, "window", "sample", err)) < 0)
            return rc;
    if ((rc = st_h5_rowcols_check(&b->rows, b->path, b->n_rows, n, asset, timestamp_ns, label,
                                  target, "window", err)) < 0)
        return rc;
    st_h5_quiet_begin(&q);
    for (size_t c = 0; c < w->n_channels && rc == 0; c++)
        rc = st_h5_col_append(&w->signals[c], b->path, signals[c], n, err);
    rc = st_h5_writer_append_rows(b, rc, n, asset, timestamp_ns, label, target, err);
    st_h5_quiet_end(&q);
    return rc;
}

int st_sensor_commit(st_sensor_writer_t **wp, char *hash_hex, kiln_err_t *err)
{
    st_h5_quiet_t q;
    st_h5_part_t parts[ST_MAX_CHANNELS + 4];
    size_t n_parts = 0;
    char hex[65];
    int rc;

    if (!wp || !*wp)
        return kiln_err_set(err, KILN_EINVAL, "st_sensor_commit: no writer");
    st_sensor_writer_t *w = *wp;
    *wp = NULL;
    st_h5_quiet_begin(&q);
    for (size_t c = 0; c < w->n_channels; c++)
        st_h5_col_part(&w->signals[c], &parts[n_parts++]);
    if ((rc = st_h5_writer_seal(&w->base, parts, n_parts, hex, err)) < 0)
        goto out;
    for (size_t c = 0; c < w->n_channels; c++)
        st_h5_col_close(&w->signals[c]);
    H5Gclose(w->signals_grp);
    w->signals_grp = H5I_INVALID_HID;
    rc = st_h5_writer_commit(&w->base, hex, hash_hex, err);
out:
    writer_free(w);
    st_h5_quiet_end(&q);
    return rc;
}

void st_sensor_abort(st_sensor_writer_t **wp)
{
    if (!wp || !*wp)
        return;
    st_h5_quiet_free(writer_free, *wp);
    *wp = NULL;
}

/* ---- reading ---------------------------------------------------------- */

static void reader_free(void *p)
{
    st_sensor_t *ds = p;
    st_sensor_meta_t *m = &ds->meta;
    for (size_t c = 0; c < ST_MAX_CHANNELS; c++)
        st_h5_ds_close(&ds->signals[c]);
    st_h5_reader_free(&ds->base);
    for (size_t c = 0; c < m->n_channels; c++)
        kiln_free((void *)m->channels[c]);
    for (size_t i = 0; i < m->n_label_names; i++)
        kiln_free((void *)m->label_names[i]);
    kiln_free((void *)m->source);
    kiln_free((void *)m->created);
    kiln_free((void *)m->content_sha256);
    kiln_free(ds);
}

/* Channel names: the /signals attr `channels` if present, else link names
 * in name order.  Fills ds->meta.channels. */
static int read_channels(st_sensor_t *ds, hid_t grp, kiln_err_t *err)
{
    st_sensor_meta_t *m = &ds->meta;
    char *names[ST_MAX_CHANNELS] = {0};
    size_t n = 0;
    H5G_info_t info;
    int rc;

    if (H5Gget_info(grp, &info) < 0)
        return kiln_err_at(err, KILN_EFORMAT, "/signals", "%s: /signals: cannot list the group",
                           ds->base.path);
    if (H5Aexists(grp, "channels") > 0) {
        if ((rc = st_h5_attr_get_strs(grp, ds->base.path, "/signals", "channels", 1, ST_MAX_CHANNELS,
                                      ST_H5_NAME_MAX, names, &n, err)) < 0)
            return rc;
        memcpy((void *)m->channels, names, n * sizeof names[0]);
        m->n_channels = n;
        /* a repeated name would open one dataset twice and skip another */
        if ((rc = st_h5_check_names(ds->base.path, "/signals channels", m->channels, n,
                                    ST_MAX_CHANNELS, 1, err)) < 0)
            return rc;
        if (n != info.nlinks)
            return kiln_err_at(err, KILN_ESCHEMA, "/signals",
                               "%s: /signals: holds %llu datasets but attr channels lists %zu",
                               ds->base.path, (unsigned long long)info.nlinks, n);
    } else {
        if (info.nlinks > ST_MAX_CHANNELS)
            return kiln_err_at(err, KILN_ESCHEMA, "/signals", "%s: /signals: %llu channels, at most %d",
                               ds->base.path, (unsigned long long)info.nlinks, ST_MAX_CHANNELS);
        for (hsize_t i = 0; i < info.nlinks; i++) {
            char buf[ST_H5_NAME_MAX + 1];
            ssize_t len = H5Lget_name_by_idx(grp, ".", H5_INDEX_NAME, H5_ITER_INC, i, buf,
                                             sizeof buf, H5P_DEFAULT);
            if (len < 0 || (size_t)len > ST_H5_NAME_MAX)
                return kiln_err_at(err, KILN_ESCHEMA, "/signals",
                                   "%s: /signals: member %llu has an unreadable or too long name",
                                   ds->base.path, (unsigned long long)i);
            if (!(m->channels[m->n_channels] = kiln_strdup(buf)))
                return kiln_err_set(err, KILN_ENOMEM, "%s: out of memory", ds->base.path);
            m->n_channels++;
        }
    }
    if (m->n_channels == 0)
        return kiln_err_at(err, KILN_ESCHEMA, "/signals", "%s: /signals: no channels", ds->base.path);
    for (size_t c = 0; c < m->n_channels; c++)
        if (st_h5_check_name(m->channels[c], "channel", NULL) < 0)
            return kiln_err_at(err, KILN_ESCHEMA, "/signals", "%s: /signals: bad channel name '%s'",
                               ds->base.path, m->channels[c]);
    return 0;
}

int st_sensor_open(const char *path, st_sensor_t **out, kiln_err_t *err)
{
    st_h5_quiet_t q;
    st_sensor_t *ds = NULL;
    hid_t file, grp = H5I_INVALID_HID;
    char chpath[ST_H5_PATH_MAX], rows_from[ST_H5_PATH_MAX + 16];
    double rate = 0, window_len = 0;
    int rc;

    *out = NULL;
    if (!path || !*path)
        return kiln_err_set(err, KILN_EINVAL, "st_sensor_open: no path");
    st_h5_quiet_begin(&q);
    if (!(ds = kiln_calloc(1, sizeof *ds))) {
        rc = kiln_err_set(err, KILN_ENOMEM, "%s: out of memory", path);
        goto out;
    }
    st_h5_reader_init(&ds->base);
    for (size_t c = 0; c < ST_MAX_CHANNELS; c++)
        st_h5_ds_init(&ds->signals[c]);
    st_sensor_meta_t *m = &ds->meta;
    if ((rc = st_h5_reader_start(&ds->base, path, ST_SENSOR_SCHEMA, err)) < 0)
        goto out;
    file = ds->base.file;
    if ((rc = st_h5_attr_get_f64(file, path, "/", "sample_rate_hz", &rate, err)) < 0 ||
        (rc = st_h5_attr_get_f64(file, path, "/", "window_len", &window_len, err)) < 0)
        goto out;
    if (!isfinite(rate) || rate <= 0 || rate > 1e12) {
        rc = kiln_err_at(err, KILN_ESCHEMA, "/", "%s: /: bad sample_rate_hz %g", path, rate);
        goto out;
    }
    if (!(window_len >= 1 && window_len <= ST_H5_MAX_WINDOW_LEN) || window_len != floor(window_len)) {
        rc = kiln_err_at(err, KILN_ESCHEMA, "/", "%s: /: bad window_len %g", path, window_len);
        goto out;
    }
    m->sample_rate_hz = rate;
    m->window_len = (size_t)window_len;
    if ((rc = st_h5_attr_get_str(file, path, "/", "source", 0, 4096, (char **)&m->source, err)) < 0 ||
        (rc = st_h5_attr_get_str(file, path, "/", "created", 0, 64, (char **)&m->created, err)) < 0 ||
        (rc = st_h5_attr_get_str(file, path, "/", "content_sha256", 0, 64,
                                 (char **)&m->content_sha256, err)) < 0 ||
        (rc = st_h5_attr_get_strs(file, path, "/", "label_names", 0, ST_MAX_LABELS,
                                  ST_H5_NAME_MAX, (char **)m->label_names, &m->n_label_names,
                                  err)) < 0 ||
        (rc = st_h5_check_names(path, "label_names", m->label_names, m->n_label_names,
                                ST_MAX_LABELS, 1, err)) < 0)
        goto out;
    if (H5Lexists(file, "/signals", H5P_DEFAULT) <= 0) {
        rc = kiln_err_at(err, KILN_ESCHEMA, "/signals", "%s: /signals: missing group", path);
        goto out;
    }
    hid_t obj = H5Oopen(file, "/signals", H5P_DEFAULT);
    if (obj >= 0 && H5Iget_type(obj) == H5I_GROUP)
        grp = obj;
    else if (obj >= 0)
        H5Oclose(obj);
    if (grp < 0) {
        rc = kiln_err_at(err, KILN_ESCHEMA, "/signals", "%s: /signals: expected a group", path);
        goto out;
    }
    if ((rc = read_channels(ds, grp, err)) < 0)
        goto out;
    for (size_t c = 0; c < m->n_channels; c++) {
        snprintf(chpath, sizeof chpath, "/signals/%s", m->channels[c]);
        if ((rc = st_h5_ds_open(&ds->signals[c], file, path, chpath, ST_H5_F32,
                                m->window_len, err)) < 0)
            goto out;
        if (c == 0)
            m->n_windows = ds->signals[0].n_rows;
        else if ((rc = st_h5_ds_expect_rows(&ds->signals[c], path, m->n_windows,
                                            "the windows of the first channel", err)) < 0)
            goto out;
    }
    snprintf(rows_from, sizeof rows_from, "n_windows of %s", ds->signals[0].path);
    if ((rc = st_h5_rowds_open(&ds->base.rows, file, path, m->n_windows, rows_from,
                               m->n_label_names, err)) < 0)
        goto out;
    m->has_label = ds->base.rows.has_label;
    m->has_target = ds->base.rows.has_target;
    *out = ds;
    ds = NULL;
out:
    if (grp >= 0)
        H5Gclose(grp);
    if (ds)
        reader_free(ds);
    st_h5_quiet_end(&q);
    return rc;
}

const st_sensor_meta_t *st_sensor_meta(const st_sensor_t *ds) { return &ds->meta; }
const char *st_sensor_path(const st_sensor_t *ds) { return ds->base.path; }

int st_sensor_channel_index(const st_sensor_t *ds, const char *name)
{
    for (size_t c = 0; name && c < ds->meta.n_channels; c++)
        if (!strcmp(ds->meta.channels[c], name))
            return (int)c;
    return -1;
}

int st_sensor_read(st_sensor_t *ds, size_t ch, size_t win0, size_t n, float *out,
                   kiln_err_t *err)
{
    if (!ds || ch >= ds->meta.n_channels)
        return kiln_err_set(err, KILN_EINVAL, "%s: no channel %zu (it has %zu)",
                            ds ? ds->base.path : "?", ch, ds ? ds->meta.n_channels : 0);
    st_h5_quiet_t q;
    st_h5_quiet_begin(&q);
    int rc = st_h5_ds_read(&ds->signals[ch], ds->base.path, win0, n, out, "window", err);
    st_h5_quiet_end(&q);
    return rc;
}

int st_sensor_read_meta(st_sensor_t *ds, size_t win0, size_t n, int32_t *asset,
                        int64_t *timestamp_ns, int32_t *label, float *target,
                        kiln_err_t *err)
{
    if (!ds)
        return kiln_err_set(err, KILN_EINVAL, "st_sensor_read_meta: no dataset");
    return st_h5_reader_read_meta(&ds->base, win0, n, asset, timestamp_ns, label, target,
                                  "window", err);
}

int st_sensor_hash(st_sensor_t *ds, char *hash_hex, kiln_err_t *err)
{
    st_h5_part_t parts[ST_MAX_CHANNELS + 4];
    size_t n_parts = 0;
    st_sha256_t h;
    st_h5_quiet_t q;
    int rc = 0;

    if (!ds)
        return kiln_err_set(err, KILN_EINVAL, "st_sensor_hash: no dataset");
    st_h5_quiet_begin(&q);
    for (size_t c = 0; c < ds->meta.n_channels && rc == 0; c++)
        rc = st_h5_ds_part(&ds->signals[c], ds->base.path, &parts[n_parts++], err);
    if (rc == 0)
        rc = st_h5_rowds_parts(&ds->base.rows, ds->base.path, parts, &n_parts, err);
    st_h5_quiet_end(&q);
    if (rc < 0)
        return rc;
    hash_header(&h, &ds->meta);
    st_h5_hash_finish(&h, parts, n_parts, hash_hex);
    return 0;
}

void st_sensor_close(st_sensor_t **ds)
{
    if (!ds || !*ds)
        return;
    st_h5_quiet_free(reader_free, *ds);
    *ds = NULL;
}

int st_dataset_schema(const char *path, char schema[64], kiln_err_t *err)
{
    st_h5_quiet_t q;
    hid_t file;
    char *value = NULL;
    if (!path || !*path)
        return kiln_err_set(err, KILN_EINVAL, "st_dataset_schema: no path");
    st_h5_quiet_begin(&q);
    int rc = st_h5_open_ro(path, &file, err);
    if (rc == 0) {
        rc = st_h5_attr_get_str(file, path, "/", "schema", 1, 63, &value, err);
        H5Fclose(file);
    }
    st_h5_quiet_end(&q);
    if (rc == 0)
        snprintf(schema, 64, "%s", value);
    kiln_free(value);
    return rc;
}
