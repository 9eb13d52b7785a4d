/* test_sensor.c - kiln.sensor.v1: round trips in uneven batches, h5py (the
 * oracle) reading what we write and writing what we read, the content hash
 * against an independent python implementation, the temp-file commit, every
 * bad-file path, and allocation failure at every step. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <glob.h>
#include <string.h>
#include <math.h>
#include <unistd.h>
#include <cmocka.h>

#include "oracle.h"
#include "core/kiln_alloc.h"
#include "storage/sensor.h"

#define N_WIN 200
#define WLEN 100
#define N_CH 3

static const char *const CHANNELS[N_CH] = {"DE", "FE", "BA"};
static const char *const LABELS[5] = {"normal", "inner_race", "outer_race", "ball", "misalignment"};

typedef struct {
    float   sig[N_CH][N_WIN * WLEN];
    int32_t asset[N_WIN];
    int64_t ts[N_WIN];
    int32_t label[N_WIN];
    float   target[N_WIN];
} data_t;

static data_t *make_data(uint32_t seed)
{
    data_t *d = malloc(sizeof *d);
    assert_non_null(d);
    uint32_t s = seed;
    for (int c = 0; c < N_CH; c++)
        for (int i = 0; i < N_WIN * WLEN; i++) {
            s = s * 1664525u + 1013904223u;
            d->sig[c][i] = sinf(0.01f * (float)i * (float)(c + 1)) + (float)(s >> 8) * 1e-7f;
        }
    for (int w = 0; w < N_WIN; w++) {
        d->asset[w] = w % 7;
        d->ts[w] = INT64_C(1700000000000000000) + (int64_t)w * 8333333 + (int64_t)(seed % 97);
        d->label[w] = (int32_t)(w % 6) - 1;          /* -1..4 */
        d->target[w] = 500.0f - (float)w * 0.25f;
    }
    return d;
}

static st_sensor_meta_t make_meta(void)
{
    st_sensor_meta_t m;
    memset(&m, 0, sizeof m);
    m.sample_rate_hz = 12000.0;
    m.window_len = WLEN;
    m.n_channels = N_CH;
    for (int c = 0; c < N_CH; c++)
        m.channels[c] = CHANNELS[c];
    m.source = "unit test";
    m.has_label = 1;
    m.has_target = 1;
    m.n_label_names = 5;
    for (int i = 0; i < 5; i++)
        m.label_names[i] = LABELS[i];
    return m;
}

/* Writes d[0, N_WIN) in batches of the given sizes (cycled). */
static int write_data(const char *path, const st_sensor_meta_t *m, const data_t *d,
                      const size_t *batches, size_t n_batches, int compress, char hash[65],
                      kiln_err_t *err)
{
    st_sensor_writer_t *w;
    int rc = st_sensor_create(path, m, compress, &w, err);
    if (rc < 0)
        return rc;
    for (size_t at = 0, b = 0; at < N_WIN; b++) {
        size_t n = batches[b % n_batches];
        if (n > N_WIN - at)
            n = N_WIN - at;
        const float *sig[N_CH];
        for (int c = 0; c < N_CH; c++)
            sig[c] = d->sig[c] + at * WLEN;
        rc = st_sensor_append(w, n, sig, d->asset + at, d->ts + at, m->has_label ? d->label + at : NULL,
                              m->has_target ? d->target + at : NULL, err);
        if (rc < 0) {
            st_sensor_abort(&w);
            assert_null(w);
            return rc;
        }
        at += n;
    }
    rc = st_sensor_commit(&w, hash, err);
    assert_null(w);
    return rc;
}

/* ---- round trip ------------------------------------------------------- */

static void test_roundtrip(void **state)
{
    (void)state;
    char path[512], hash[65];
    kiln_err_t err;
    data_t *d = make_data(1);
    st_sensor_meta_t m = make_meta();
    static const size_t batches[] = {1, 7, 64, 3, 100, 25};
    oracle_tmp_path(path, ".h5");
    assert_int_equal(write_data(path, &m, d, batches, 6, 0, hash, &err), 0);

    st_sensor_t *ds;
    assert_int_equal(st_sensor_open(path, &ds, &err), 0);
    const st_sensor_meta_t *r = st_sensor_meta(ds);
    assert_int_equal(r->n_windows, N_WIN);
    assert_int_equal(r->window_len, WLEN);
    assert_true(r->sample_rate_hz == 12000.0);
    assert_int_equal(r->n_channels, N_CH);
    for (int c = 0; c < N_CH; c++)
        assert_string_equal(r->channels[c], CHANNELS[c]);  /* order kept, not sorted */
    assert_int_equal(r->n_label_names, 5);
    for (int i = 0; i < 5; i++)
        assert_string_equal(r->label_names[i], LABELS[i]);
    assert_true(r->has_label && r->has_target);
    assert_string_equal(r->source, "unit test");
    assert_string_equal(r->content_sha256, hash);
    assert_int_equal(strlen(r->created), 20);
    assert_string_equal(st_sensor_path(ds), path);
    assert_int_equal(st_sensor_channel_index(ds, "BA"), 2);
    assert_int_equal(st_sensor_channel_index(ds, "XX"), -1);

    /* ranges across chunk (163-window) and batch edges */
    static const size_t ranges[][2] = {{0, N_WIN}, {13, 50}, {199, 1}, {63, 2}, {160, 7},
                                       {0, 1}, {100, 0}};
    float *buf = malloc(N_WIN * WLEN * sizeof(float));
    int32_t asset[N_WIN], label[N_WIN];
    int64_t ts[N_WIN];
    float target[N_WIN];
    for (size_t k = 0; k < sizeof ranges / sizeof ranges[0]; k++) {
        size_t w0 = ranges[k][0], n = ranges[k][1];
        for (int c = 0; c < N_CH; c++) {
            assert_int_equal(st_sensor_read(ds, (size_t)c, w0, n, buf, &err), 0);
            if (n)
                assert_memory_equal(buf, d->sig[c] + w0 * WLEN, n * WLEN * sizeof(float));
        }
        assert_int_equal(st_sensor_read_meta(ds, w0, n, asset, ts, label, target, &err), 0);
        if (n) {
            assert_memory_equal(asset, d->asset + w0, n * sizeof asset[0]);
            assert_memory_equal(ts, d->ts + w0, n * sizeof ts[0]);
            assert_memory_equal(label, d->label + w0, n * sizeof label[0]);
            assert_memory_equal(target, d->target + w0, n * sizeof target[0]);
        }
    }
    /* NULL columns are skipped */
    assert_int_equal(st_sensor_read_meta(ds, 5, 3, NULL, ts, NULL, NULL, &err), 0);
    assert_memory_equal(ts, d->ts + 5, 3 * sizeof ts[0]);

    /* out of range: window past the end, bad channel */
    assert_int_equal(st_sensor_read(ds, 0, 190, 11, buf, &err), KILN_EINVAL);
    assert_non_null(strstr(err.msg, path));
    assert_string_equal(err.where, "/signals/DE");
    assert_int_equal(st_sensor_read(ds, 0, SIZE_MAX, 2, buf, &err), KILN_EINVAL);
    assert_int_equal(st_sensor_read(ds, 3, 0, 1, buf, &err), KILN_EINVAL);
    assert_int_equal(st_sensor_read_meta(ds, 199, 2, asset, NULL, NULL, NULL, &err), KILN_EINVAL);

    char again[65];
    assert_int_equal(st_sensor_hash(ds, again, &err), 0);
    assert_string_equal(again, hash);
    st_sensor_close(&ds);
    assert_null(ds);
    st_sensor_close(&ds);                 /* harmless twice */
    free(buf);
    free(d);
    unlink(path);
}

/* Without label/target: reads give -1 and 0. */
static void test_optional_columns(void **state)
{
    (void)state;
    char path[512];
    kiln_err_t err;
    data_t *d = make_data(2);
    st_sensor_meta_t m = make_meta();
    m.has_label = m.has_target = 0;
    m.n_label_names = 0;
    static const size_t batches[] = {77};
    oracle_tmp_path(path, ".h5");
    assert_int_equal(write_data(path, &m, d, batches, 1, 3, NULL, &err), 0);
    st_sensor_t *ds;
    assert_int_equal(st_sensor_open(path, &ds, &err), 0);
    assert_false(st_sensor_meta(ds)->has_label);
    assert_false(st_sensor_meta(ds)->has_target);
    assert_int_equal(st_sensor_meta(ds)->n_label_names, 0);
    int32_t label[4];
    float target[4];
    assert_int_equal(st_sensor_read_meta(ds, 10, 4, NULL, NULL, label, target, &err), 0);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(label[i], -1);
        assert_true(target[i] == 0.0f);
    }
    char h[65];
    assert_int_equal(st_sensor_hash(ds, h, &err), 0);
    assert_string_equal(h, st_sensor_meta(ds)->content_sha256);
    st_sensor_close(&ds);
    char want[65];
    oracle_content_hash(path, want);
    assert_string_equal(want, h);
    free(d);
    unlink(path);
}


/* ---- h5py, the independent reader and writer -------------------------- */

/* h5py reads back exactly what we wrote, with the layout of DESIGN.md. */
static void test_h5py_reads_ours(void **state)
{
    (void)state;
    char path[512], hash[65], want[65];
    kiln_err_t err;
    data_t *d = make_data(3);
    st_sensor_meta_t m = make_meta();
    static const size_t batches[] = {33, 1, 90};
    for (int compress = 0; compress <= 6; compress += 6) {
        oracle_tmp_path(path, ".h5");
        assert_int_equal(write_data(path, &m, d, batches, 3, compress, hash, &err), 0);
        size_t n;
        for (int c = 0; c < N_CH; c++) {
            double *v = oracle_pyf(&n, "h5_dataset", "{\"path\": \"%s\", \"name\": \"/signals/%s\"}",
                                   path, CHANNELS[c]);
            assert_int_equal(n, N_WIN * WLEN);
            for (size_t i = 0; i < n; i++)
                assert_true(v[i] == (double)d->sig[c][i]);
            free(v);
            double *info = oracle_pyf(&n, "h5_info", "{\"path\": \"%s\", \"name\": \"/signals/%s\"}",
                                      path, CHANNELS[c]);
            /* float32, 2-D, unlimited rows, 64-window chunks, deflate+shuffle iff asked, shape */
            assert_int_equal(n, 9);
            assert_true(info[0] == 4 && info[1] == 1 && info[2] == 2 && info[3] == -1);
            assert_true(info[4] == 163);      /* 64 KiB of 100-sample windows (sensor.h) */
            assert_true(info[5] == (compress ? 1 : 0) && info[6] == (compress ? 1 : 0));
            assert_true(info[7] == N_WIN && info[8] == WLEN);
            free(info);
        }
        double *v = oracle_pyf(&n, "h5_dataset", "{\"path\": \"%s\", \"name\": \"/asset\"}", path);
        assert_int_equal(n, N_WIN);
        for (int i = 0; i < N_WIN; i++)
            assert_true(v[i] == d->asset[i]);
        free(v);
        v = oracle_pyf(&n, "h5_dataset", "{\"path\": \"%s\", \"name\": \"/timestamp\", \"split64\": true}",
                       path);
        assert_int_equal(n, 2 * N_WIN);
        for (int i = 0; i < N_WIN; i++)
            assert_true((int64_t)v[2 * i] * 4294967296 + (int64_t)v[2 * i + 1] == d->ts[i]);
        free(v);
        v = oracle_pyf(&n, "h5_dataset", "{\"path\": \"%s\", \"name\": \"/label\"}", path);
        for (int i = 0; i < N_WIN; i++)
            assert_true(v[i] == d->label[i]);
        free(v);
        v = oracle_pyf(&n, "h5_dataset", "{\"path\": \"%s\", \"name\": \"/target\"}", path);
        for (int i = 0; i < N_WIN; i++)
            assert_true(v[i] == (double)d->target[i]);
        free(v);
        static const struct { const char *name; int size, kind; } cols[] = {
            {"/asset", 4, 2}, {"/timestamp", 8, 2}, {"/label", 4, 2}, {"/target", 4, 1}};
        for (int k = 0; k < 4; k++) {
            double *info = oracle_pyf(&n, "h5_info", "{\"path\": \"%s\", \"name\": \"%s\"}",
                                      path, cols[k].name);
            assert_true(info[0] == cols[k].size && info[1] == cols[k].kind && info[2] == 1);
            assert_true(info[3] == -1 && info[7] == N_WIN);
            free(info);
        }

        const char *schema[] = {"kiln.sensor.v1"}, *source[] = {"unit test"}, *h[] = {hash};
        oracle_assert_attr(path, "/", "schema", schema, 1);
        oracle_assert_attr(path, "/", "source", source, 1);
        oracle_assert_attr(path, "/", "content_sha256", h, 1);
        oracle_assert_attr(path, "/", "label_names", LABELS, 5);
        oracle_assert_attr(path, "/signals", "channels", CHANNELS, N_CH);
        v = oracle_pyf(&n, "h5_attr", "{\"path\": \"%s\", \"name\": \"sample_rate_hz\"}", path);
        assert_true(n == 1 && v[0] == 12000.0);
        free(v);
        v = oracle_pyf(&n, "h5_attr", "{\"path\": \"%s\", \"name\": \"window_len\"}", path);
        assert_true(n == 1 && v[0] == WLEN);
        free(v);

        oracle_content_hash(path, want);                  /* the definition, implemented again in python */
        assert_string_equal(want, hash);
        unlink(path);
    }
    free(d);
}

/* We read what h5py wrote in the layout, values and hash included. */
static void test_read_h5py_file(void **state)
{
    (void)state;
    static const char *variants[] = {
        "",                                                  /* vlen strings, channels attr */
        ", \"fixed_strings\": true",                         /* fixed-length byte strings */
        ", \"channels\": [\"FE\", \"DE\", \"AX\"], \"channels_attr\": false",  /* name order */
    };
    for (size_t v = 0; v < sizeof variants / sizeof variants[0]; v++) {
        char path[512], hex[65];
        kiln_err_t err;
        size_t n;
        oracle_tmp_path(path, ".h5");
        double *want = oracle_pyf(&n, "h5_write", "{\"path\": \"%s\", \"n\": 50, \"window_len\": 32%s}",
                                  path, variants[v]);
        st_sensor_t *ds;
        assert_int_equal(st_sensor_open(path, &ds, &err), 0);
        const st_sensor_meta_t *m = st_sensor_meta(ds);
        size_t n_ch = v == 2 ? 3 : 2;
        assert_int_equal(m->n_channels, n_ch);
        assert_int_equal(n, n_ch * 50 * 32 + 50 * 5);
        if (v == 2) {                          /* no channels attr: name order */
            assert_string_equal(m->channels[0], "AX");
            assert_string_equal(m->channels[1], "DE");
            assert_string_equal(m->channels[2], "FE");
        } else {
            assert_string_equal(m->channels[0], "DE");
            assert_string_equal(m->channels[1], "FE");
        }
        assert_int_equal(m->n_windows, 50);
        assert_int_equal(m->window_len, 32);
        assert_true(m->sample_rate_hz == 12000.0);
        assert_int_equal(m->n_label_names, 3);
        assert_string_equal(m->label_names[1], "inner_race");
        assert_string_equal(m->source, "h5py oracle");
        assert_string_equal(m->created, "2026-01-01T00:00:00Z");
        float sig[50 * 32];
        /* python wrote channels in its given order; map ours onto it */
        const char *py_order[3] = {"DE", "FE", NULL};
        if (v == 2) {
            py_order[0] = "FE"; py_order[1] = "DE"; py_order[2] = "AX";
        }
        for (size_t k = 0; k < n_ch; k++) {
            int c = st_sensor_channel_index(ds, py_order[k]);
            assert_true(c >= 0);
            assert_int_equal(st_sensor_read(ds, (size_t)c, 0, 50, sig, &err), 0);
            for (int i = 0; i < 50 * 32; i++)
                assert_true((double)sig[i] == want[k * 50 * 32 + (size_t)i]);
        }
        const double *rest = want + n_ch * 50 * 32;
        int32_t asset[50], label[50];
        int64_t ts[50];
        float target[50];
        assert_int_equal(st_sensor_read_meta(ds, 0, 50, asset, ts, label, target, &err), 0);
        for (int i = 0; i < 50; i++) {
            assert_true(asset[i] == rest[i]);
            assert_true(ts[i] == (int64_t)rest[50 + 2 * i] * 4294967296 + (int64_t)rest[51 + 2 * i]);
            assert_true(label[i] == rest[150 + i]);
            assert_true((double)target[i] == rest[200 + i]);
        }
        assert_int_equal(st_sensor_hash(ds, hex, &err), 0);
        assert_string_equal(hex, m->content_sha256);   /* python's hash == ours */
        st_sensor_close(&ds);
        free(want);
        unlink(path);
    }
}

/* ---- the content hash ------------------------------------------------- */

static void test_hash_stable(void **state)
{
    (void)state;
    char path[512], h1[65], h2[65], h3[65], h4[65];
    kiln_err_t err;
    data_t *d = make_data(4);
    st_sensor_meta_t m = make_meta();
    static const size_t whole[] = {N_WIN}, ones[] = {1}, mixed[] = {50, 13, 137};
    oracle_tmp_path(path, ".h5");
    assert_int_equal(write_data(path, &m, d, whole, 1, 0, h1, &err), 0);
    assert_int_equal(write_data(path, &m, d, ones, 1, 0, h2, &err), 0);
    assert_int_equal(write_data(path, &m, d, mixed, 3, 9, h3, &err), 0);  /* compression too */
    m.source = "another source";            /* not part of the content */
    assert_int_equal(write_data(path, &m, d, mixed, 3, 0, h4, &err), 0);
    assert_string_equal(h1, h2);
    assert_string_equal(h1, h3);
    assert_string_equal(h1, h4);

    /* and it does see content: one sample, one label name, channel order, rate */
    d->sig[1][777] += 1.0f;
    assert_int_equal(write_data(path, &m, d, whole, 1, 0, h2, &err), 0);
    assert_string_not_equal(h1, h2);
    d->sig[1][777] -= 1.0f;
    m.label_names[4] = "imbalance";
    assert_int_equal(write_data(path, &m, d, whole, 1, 0, h2, &err), 0);
    assert_string_not_equal(h1, h2);
    m.label_names[4] = LABELS[4];
    m.channels[0] = CHANNELS[1];
    m.channels[1] = CHANNELS[0];
    assert_int_equal(write_data(path, &m, d, whole, 1, 0, h2, &err), 0);
    assert_string_not_equal(h1, h2);
    m.channels[0] = CHANNELS[0];
    m.channels[1] = CHANNELS[1];
    m.sample_rate_hz = 12001;
    assert_int_equal(write_data(path, &m, d, whole, 1, 0, h2, &err), 0);
    assert_string_not_equal(h1, h2);
    m.sample_rate_hz = 12000;
    assert_int_equal(write_data(path, &m, d, whole, 1, 0, h2, &err), 0);
    assert_string_equal(h1, h2);
    free(d);
    unlink(path);
}

/* ---- temp file and rename --------------------------------------------- */

static void test_temp_file(void **state)
{
    (void)state;
    char path[512], tmp[600], hash[65];
    kiln_err_t err;
    data_t *d = make_data(5);
    st_sensor_meta_t m = make_meta();
    st_sensor_writer_t *w;
    const float *sig[N_CH] = {d->sig[0], d->sig[1], d->sig[2]};
    oracle_tmp_path(path, ".h5");
    oracle_writer_tmp_path(tmp, sizeof tmp, path);

    assert_int_equal(st_sensor_create(path, &m, 0, &w, &err), 0);
    assert_true(oracle_file_exists(tmp));
    assert_false(oracle_file_exists(path));
    assert_int_equal(st_sensor_append(w, 10, sig, d->asset, d->ts, d->label, d->target, &err), 0);
    assert_false(oracle_file_exists(path));
    assert_int_equal(st_sensor_commit(&w, hash, &err), 0);
    assert_null(w);
    assert_true(oracle_file_exists(path));
    assert_false(oracle_file_exists(tmp));

    /* abort: the old file under the name stays as it was, the temp goes */
    assert_int_equal(st_sensor_create(path, &m, 0, &w, &err), 0);
    assert_int_equal(st_sensor_append(w, 20, sig, d->asset, d->ts, d->label, d->target, &err), 0);
    assert_true(oracle_file_exists(tmp));
    st_sensor_abort(&w);
    assert_null(w);
    st_sensor_abort(&w);                   /* harmless on NULL */
    assert_false(oracle_file_exists(tmp));
    st_sensor_t *ds;
    assert_int_equal(st_sensor_open(path, &ds, &err), 0);
    assert_int_equal(st_sensor_meta(ds)->n_windows, 10);
    assert_string_equal(st_sensor_meta(ds)->content_sha256, hash);
    st_sensor_close(&ds);

    /* a dataset with no windows commits and reads back as empty */
    assert_int_equal(st_sensor_create(path, &m, 0, &w, &err), 0);
    assert_int_equal(st_sensor_commit(&w, hash, &err), 0);
    assert_int_equal(st_sensor_open(path, &ds, &err), 0);
    assert_int_equal(st_sensor_meta(ds)->n_windows, 0);
    st_sensor_close(&ds);

    /* a directory that does not exist: EIO naming the path, nothing left */
    char bad[600];
    snprintf(bad, sizeof bad, "%s.nodir/x.h5", path);
    assert_int_equal(st_sensor_create(bad, &m, 0, &w, &err), KILN_EIO);
    assert_null(w);
    assert_non_null(strstr(err.msg, bad));
    free(d);
    unlink(path);
}

/* ---- bad writer input ------------------------------------------------- */

/* Returns in buf a file named PATH.tmp.* other than `other`, or "" if none. */
static void find_tmp(const char *path, const char *other, char *buf, size_t len)
{
    char pattern[600];
    glob_t g;
    buf[0] = '\0';
    snprintf(pattern, sizeof pattern, "%s.tmp.*", path);
    if (glob(pattern, 0, NULL, &g) != 0)
        return;
    for (size_t i = 0; i < g.gl_pathc; i++)
        if (strcmp(g.gl_pathv[i], other))
            snprintf(buf, len, "%s", g.gl_pathv[i]);
    globfree(&g);
}

/* Another writer's temp file under our name PATH.tmp.<pid> (same pid in
 * another container, a shared filesystem): ours gets a name of its own, and
 * neither create, abort nor commit truncates or removes the other. */
static void test_temp_file_foreign(void **state)
{
    (void)state;
    char path[512], foreign[600], mine[700], hash[65], back[64] = {0};
    kiln_err_t err;
    data_t *d = make_data(6);
    st_sensor_meta_t m = make_meta();
    st_sensor_writer_t *w;
    const float *sig[N_CH] = {d->sig[0], d->sig[1], d->sig[2]};
    oracle_tmp_path(path, ".h5");
    oracle_writer_tmp_path(foreign, sizeof foreign, path);
    FILE *f = fopen(foreign, "w");
    assert_non_null(f);
    fputs("another writer's bytes", f);
    fclose(f);

    for (int commit = 0; commit < 2; commit++) {
        assert_int_equal(st_sensor_create(path, &m, 0, &w, &err), 0);
        find_tmp(path, foreign, mine, sizeof mine);
        assert_true(mine[0] != '\0');
        assert_non_null(strstr(mine, ".tmp."));
        assert_int_equal(st_sensor_append(w, 10, sig, d->asset, d->ts, d->label, d->target,
                                          &err), 0);
        if (commit) {
            assert_int_equal(st_sensor_commit(&w, hash, &err), 0);
            assert_true(oracle_file_exists(path));
        } else {
            st_sensor_abort(&w);
        }
        assert_false(oracle_file_exists(mine));
        f = fopen(foreign, "r");
        assert_non_null(f);                             /* still there, unchanged */
        assert_non_null(fgets(back, sizeof back, f));
        fclose(f);
        assert_string_equal(back, "another writer's bytes");
    }
    st_sensor_t *ds;
    assert_int_equal(st_sensor_open(path, &ds, &err), 0);
    assert_int_equal(st_sensor_meta(ds)->n_windows, 10);
    st_sensor_close(&ds);
    unlink(foreign);
    unlink(path);
    free(d);
}

static void test_append_rejects(void **state)
{
    (void)state;
    char path[512];
    kiln_err_t err;
    data_t *d = make_data(6);
    st_sensor_meta_t m = make_meta();
    st_sensor_writer_t *w;
    oracle_tmp_path(path, ".h5");

    /* bad meta */
    st_sensor_meta_t b = m;
    b.window_len = 0;
    assert_int_equal(st_sensor_create(path, &b, 0, &w, &err), KILN_EINVAL);
    b = m;
    b.sample_rate_hz = NAN;
    assert_int_equal(st_sensor_create(path, &b, 0, &w, &err), KILN_EINVAL);
    b = m;
    b.channels[2] = "DE";
    assert_int_equal(st_sensor_create(path, &b, 0, &w, &err), KILN_EINVAL);
    assert_non_null(strstr(err.msg, "DE"));
    b = m;
    b.channels[1] = "a/b";
    assert_int_equal(st_sensor_create(path, &b, 0, &w, &err), KILN_EINVAL);
    b = m;
    b.n_channels = 0;
    assert_int_equal(st_sensor_create(path, &b, 0, &w, &err), KILN_EINVAL);
    b = m;
    b.label_names[3] = "";
    assert_int_equal(st_sensor_create(path, &b, 0, &w, &err), KILN_EINVAL);
    assert_int_equal(st_sensor_create(path, &m, 10, &w, &err), KILN_EINVAL);
    assert_false(oracle_file_exists(path));

    /* bad batches write nothing: the file ends with only the good ones */
    const float *sig[N_CH] = {d->sig[0], d->sig[1], d->sig[2]};
    assert_int_equal(st_sensor_create(path, &m, 0, &w, &err), 0);
    assert_int_equal(st_sensor_append(w, 5, sig, d->asset, d->ts, d->label, d->target, &err), 0);
    d->sig[2][5 * WLEN + 3 * WLEN + 7] = INFINITY;      /* window 8 of the file, sample 7 */
    const float *sig2[N_CH] = {d->sig[0] + 5 * WLEN, d->sig[1] + 5 * WLEN, d->sig[2] + 5 * WLEN};
    assert_int_equal(st_sensor_append(w, 5, sig2, d->asset, d->ts, d->label, d->target, &err),
                     KILN_ENONFINITE);
    assert_string_equal(err.where, "/signals/BA");
    assert_non_null(strstr(err.msg, "window 8"));
    assert_non_null(strstr(err.msg, path));
    d->sig[2][5 * WLEN + 3 * WLEN + 7] = 0;
    int32_t bad_label[5] = {0, 1, 5, 0, 0};
    assert_int_equal(st_sensor_append(w, 5, sig2, d->asset, d->ts, bad_label, d->target, &err),
                     KILN_EINVAL);
    assert_string_equal(err.where, "/label");
    assert_non_null(strstr(err.msg, "window 7"));
    float bad_target[5] = {0, 0, 0, NAN, 0};
    assert_int_equal(st_sensor_append(w, 5, sig2, d->asset, d->ts, d->label, bad_target, &err),
                     KILN_ENONFINITE);
    assert_string_equal(err.where, "/target");
    assert_int_equal(st_sensor_append(w, 5, sig2, d->asset, d->ts, NULL, d->target, &err),
                     KILN_EINVAL);
    assert_int_equal(st_sensor_append(w, 5, sig2, NULL, d->ts, d->label, d->target, &err),
                     KILN_EINVAL);
    assert_int_equal(st_sensor_append(w, 5, sig2, d->asset + 5, d->ts + 5, d->label + 5,
                                      d->target + 5, &err), 0);
    char hash[65];
    assert_int_equal(st_sensor_commit(&w, hash, &err), 0);
    st_sensor_t *ds;
    assert_int_equal(st_sensor_open(path, &ds, &err), 0);
    assert_int_equal(st_sensor_meta(ds)->n_windows, 10);
    float sig_back[10 * WLEN];
    assert_int_equal(st_sensor_read(ds, 2, 0, 10, sig_back, &err), 0);
    assert_memory_equal(sig_back, d->sig[2], sizeof sig_back);
    st_sensor_close(&ds);
    free(d);
    unlink(path);
}

/* ---- bad files -------------------------------------------------------- */

typedef struct {
    const char *params;     /* extra h5_write params */
    int         code;
    const char *where;      /* expected err.where and in the message */
    const char *says;       /* also in the message */
} bad_case_t;

static void test_bad_files(void **state)
{
    (void)state;
    static const bad_case_t cases[] = {
        {"\"defect\": \"text\"", KILN_EFORMAT, "", "not an HDF5 file"},
        {"\"defect\": \"empty\"", KILN_EFORMAT, "", "empty"},
        {"\"del_attrs\": [\"schema\"]", KILN_ESCHEMA, "/", "schema"},
        {"\"schema\": \"kiln.other.v9\"", KILN_ESCHEMA, "/", "kiln.other.v9"},
        {"\"kind\": \"features\"", KILN_ESCHEMA, "/", "kiln.features.v1"},
        {"\"set_attrs\": {\"schema\": 3}", KILN_ETYPE, "/", "schema"},
        {"\"set_attrs\": {\"sample_rate_hz\": -5.0}", KILN_ESCHEMA, "/", "sample_rate_hz"},
        {"\"set_attrs\": {\"sample_rate_hz\": \"fast\"}", KILN_ETYPE, "/", "sample_rate_hz"},
        {"\"del_attrs\": [\"sample_rate_hz\"]", KILN_ESCHEMA, "/", "sample_rate_hz"},
        {"\"set_attrs\": {\"window_len\": 0}", KILN_ESCHEMA, "/", "window_len"},
        {"\"set_attrs\": {\"window_len\": 33}", KILN_ESHAPE, "/signals/DE", "33"},
        {"\"set_attrs\": {\"label_names\": 7}", KILN_ETYPE, "/", "label_names"},
        {"\"defect\": \"float64_signals\"", KILN_ETYPE, "/signals/FE", "expected float32, found float64"},
        {"\"defect\": \"signals_rank1\"", KILN_ESHAPE, "/signals/DE", "2-D"},
        {"\"defect\": \"signals_short\"", KILN_ESHAPE, "/signals/FE", "49"},
        {"\"defect\": \"lzf_signals\"", KILN_EUNSUPPORTED, "/signals/DE", "filter 32000"},
        {"\"defect\": \"missing_signals\"", KILN_ESCHEMA, "/signals", "missing"},
        {"\"defect\": \"signals_is_dataset\"", KILN_ESCHEMA, "/signals", "group"},
        {"\"defect\": \"missing_asset\"", KILN_ESCHEMA, "/asset", "missing dataset"},
        {"\"defect\": \"int64_asset\"", KILN_ETYPE, "/asset", "expected int32, found int64"},
        {"\"defect\": \"asset_len\"", KILN_ESHAPE, "/asset", "49"},
        {"\"defect\": \"missing_timestamp\"", KILN_ESCHEMA, "/timestamp", "missing"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        char path[512];
        kiln_err_t err;
        size_t n;
        oracle_tmp_path(path, ".h5");
        double *v = oracle_pyf(&n, "h5_write", "{\"path\": \"%s\", \"n\": 50, \"window_len\": 32, %s}",
                               path, cases[k].params);
        free(v);
        st_sensor_t *ds = (st_sensor_t *)1;
        int rc = st_sensor_open(path, &ds, &err);
        if (rc != cases[k].code || strcmp(err.where, cases[k].where) != 0 ||
            !strstr(err.msg, path) || !strstr(err.msg, cases[k].says) ||
            (*cases[k].where && !strstr(err.msg, cases[k].where)))
            fail_msg("case %zu {%s}: got %s where='%s' msg='%s'", k, cases[k].params,
                     kiln_err_name(rc), err.where, err.msg);
        assert_null(ds);
        unlink(path);
    }

    /* paths that are not files */
    kiln_err_t err;
    st_sensor_t *ds;
    assert_int_equal(st_sensor_open("/nonexistent/dir/data.h5", &ds, &err), KILN_ENOTFOUND);
    assert_non_null(strstr(err.msg, "/nonexistent/dir/data.h5"));
    assert_int_equal(st_sensor_open("/tmp", &ds, &err), KILN_EFORMAT);
    assert_int_equal(st_sensor_open("", &ds, &err), KILN_EINVAL);
}

/* NaN/Inf is found when the windows holding it are read, not before. */
static void test_nonfinite_read(void **state)
{
    (void)state;
    char path[512];
    kiln_err_t err;
    size_t n;
    float sig[20 * 32];
    oracle_tmp_path(path, ".h5");
    free(oracle_pyf(&n, "h5_write", "{\"path\": \"%s\", \"n\": 20, \"window_len\": 32, "
                            "\"defect\": \"nan_signal\", \"bad_row\": 11}", path));
    st_sensor_t *ds;
    assert_int_equal(st_sensor_open(path, &ds, &err), 0);
    assert_int_equal(st_sensor_read(ds, 0, 0, 11, sig, &err), 0);
    assert_int_equal(st_sensor_read(ds, 1, 0, 20, sig, &err), 0);
    assert_int_equal(st_sensor_read(ds, 0, 5, 10, sig, &err), KILN_ENONFINITE);
    assert_string_equal(err.where, "/signals/DE");
    assert_non_null(strstr(err.msg, path));
    assert_non_null(strstr(err.msg, "NaN at window 11"));
    st_sensor_close(&ds);

    free(oracle_pyf(&n, "h5_write", "{\"path\": \"%s\", \"n\": 20, \"window_len\": 32, "
                            "\"defect\": \"inf_target\", \"bad_row\": 3}", path));
    assert_int_equal(st_sensor_open(path, &ds, &err), 0);
    float target[20];
    int32_t asset[20];
    assert_int_equal(st_sensor_read_meta(ds, 0, 20, asset, NULL, NULL, NULL, &err), 0);
    assert_int_equal(st_sensor_read_meta(ds, 0, 20, NULL, NULL, NULL, target, &err), KILN_ENONFINITE);
    assert_string_equal(err.where, "/target");
    assert_non_null(strstr(err.msg, "Inf at window 3"));
    st_sensor_close(&ds);

    free(oracle_pyf(&n, "h5_write", "{\"path\": \"%s\", \"n\": 20, \"window_len\": 32, "
                            "\"defect\": \"label_out_of_range\"}", path));
    assert_int_equal(st_sensor_open(path, &ds, &err), 0);
    int32_t label[20];
    assert_int_equal(st_sensor_read_meta(ds, 0, 20, NULL, NULL, label, NULL, &err), KILN_ESCHEMA);
    assert_string_equal(err.where, "/label");
    assert_non_null(strstr(err.msg, "window 7"));
    st_sensor_close(&ds);
    unlink(path);
}

/* ---- allocation failure ----------------------------------------------- */

typedef struct {
    const char *path;
    const st_sensor_meta_t *meta;
    const data_t *d;
} alloc_pass_t;

/* Write, open, read and hash once; the hash read back must be the one written. */
static int alloc_pass(void *ctx, kiln_err_t *err)
{
    const alloc_pass_t *a = ctx;
    static const size_t batches[] = {64, 36};
    char hash[65], again[65];
    int rc = write_data(a->path, a->meta, a->d, batches, 2, 0, hash, err);
    if (rc == 0) {
        st_sensor_t *ds = NULL;
        rc = st_sensor_open(a->path, &ds, err);
        if (rc == 0) {
            float buf[4 * WLEN];
            rc = st_sensor_read(ds, 1, 10, 4, buf, err);
            if (rc == 0)
                rc = st_sensor_hash(ds, again, err);
            st_sensor_close(&ds);
        }
        if (rc == 0)
            assert_string_equal(again, hash);
    }
    return rc;
}

/* Fails the k-th allocation for k = 1, 2, ... through create, append,
 * commit, open, read and hash until one full pass succeeds; every failure
 * must be KILN_ENOMEM, leave no temp file, and leak nothing (ASan build). */
static void test_alloc_failure(void **state)
{
    (void)state;
    char path[512], tmp[600];
    data_t *d = make_data(7);
    st_sensor_meta_t m = make_meta();
    oracle_tmp_path(path, ".h5");
    oracle_writer_tmp_path(tmp, sizeof tmp, path);
    alloc_pass_t a = {path, &m, d};
    oracle_alloc_fail_loop(alloc_pass, &a, path, tmp);
    free(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_optional_columns),
        cmocka_unit_test(test_h5py_reads_ours),
        cmocka_unit_test(test_read_h5py_file),
        cmocka_unit_test(test_hash_stable),
        cmocka_unit_test(test_temp_file),
        cmocka_unit_test(test_temp_file_foreign),
        cmocka_unit_test(test_append_rejects),
        cmocka_unit_test(test_bad_files),
        cmocka_unit_test(test_nonfinite_read),
        cmocka_unit_test(test_alloc_failure),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
