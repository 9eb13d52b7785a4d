/* test_features.c - kiln.features.v1: round trips in uneven batches, h5py
 * (the oracle) reading what we write and writing what we read, the content
 * hash against the python implementation, temp-file commit, bad files, the
 * 4096-feature limit, and allocation failure at every step. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <unistd.h>
#include <cmocka.h>

#include "oracle.h"
#include "core/kiln_alloc.h"
#include "storage/features.h"

#define N_ROWS 300
#define N_FEAT 6

static const char *const FEATURES[N_FEAT] = {"DE.rms", "DE.kurtosis", "DE.bpfo_env", "FE.rms",
                                             "FE.crest", "DE.rms.rolling_mean_5"};
static const char *const LABELS[3] = {"normal", "inner_race", "outer_race"};
static const char *const SRC = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
static const char *const SPEC = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210";

typedef struct {
    float   rows[N_ROWS * N_FEAT];
    int32_t asset[N_ROWS];
    int64_t ts[N_ROWS];
    int32_t label[N_ROWS];
    float   target[N_ROWS];
} data_t;

static data_t *make_data(uint32_t seed)
{
    data_t *d = malloc(sizeof *d);
    assert_non_null(d);
    uint32_t s = seed;
    for (int i = 0; i < N_ROWS * N_FEAT; i++) {
        s = s * 1664525u + 1013904223u;
        d->rows[i] = (float)(s >> 8) * 1e-4f - 800.0f;
    }
    for (int r = 0; r < N_ROWS; r++) {
        d->asset[r] = r % 4;
        d->ts[r] = INT64_C(1700000000000000000) + (int64_t)r * 1000000007;
        d->label[r] = (int32_t)(r % 4) - 1;
        d->target[r] = (float)r * 0.5f;
    }
    return d;
}

static st_features_meta_t *make_meta(void)
{
    st_features_meta_t *m = calloc(1, sizeof *m);
    assert_non_null(m);
    m->n_features = N_FEAT;
    for (int i = 0; i < N_FEAT; i++)
        m->feature_names[i] = FEATURES[i];
    m->source_sha256 = SRC;
    m->spec_sha256 = SPEC;
    m->spec_json = "{\"channels\": [\"DE\", \"FE\"], \"features\": [\"rms\"]}";
    m->has_label = m->has_target = 1;
    m->n_label_names = 3;
    for (int i = 0; i < 3; i++)
        m->label_names[i] = LABELS[i];
    return m;
}

static int write_data(const char *path, const st_features_meta_t *m, const data_t *d,
                      const size_t *batches, size_t n_batches, int compress, char hash[65],
                      kiln_err_t *err)
{
    st_features_writer_t *w;
    int rc = st_features_create(path, m, compress, &w, err);
    if (rc < 0)
        return rc;
    for (size_t at = 0, b = 0; at < N_ROWS; b++) {
        size_t n = batches[b % n_batches];
        if (n > N_ROWS - at)
            n = N_ROWS - at;
        rc = st_features_append(w, n, d->rows + at * N_FEAT, d->asset + at, d->ts + at,
                                d->label + at, d->target + at, err);
        if (rc < 0) {
            st_features_abort(&w);
            return rc;
        }
        at += n;
    }
    rc = st_features_commit(&w, hash, err);
    assert_null(w);
    return rc;
}

static void test_roundtrip(void **state)
{
    (void)state;
    char path[512], hash[65], again[65];
    kiln_err_t err;
    data_t *d = make_data(1);
    st_features_meta_t *m = make_meta();
    static const size_t batches[] = {1, 250, 17, 5};
    oracle_tmp_path(path, ".h5");
    assert_int_equal(write_data(path, m, d, batches, 4, 0, hash, &err), 0);

    st_features_t *ds;
    assert_int_equal(st_features_open(path, &ds, &err), 0);
    const st_features_meta_t *r = st_features_meta(ds);
    assert_int_equal(r->n_rows, N_ROWS);
    assert_int_equal(r->n_features, N_FEAT);
    for (int i = 0; i < N_FEAT; i++)
        assert_string_equal(r->feature_names[i], FEATURES[i]);
    assert_string_equal(r->source_sha256, SRC);
    assert_string_equal(r->spec_sha256, SPEC);
    assert_string_equal(r->spec_json, m->spec_json);
    assert_int_equal(r->n_label_names, 3);
    assert_string_equal(r->label_names[2], "outer_race");
    assert_true(r->has_label && r->has_target);
    assert_string_equal(r->content_sha256, hash);

    static const size_t ranges[][2] = {{0, N_ROWS}, {1, 1}, {250, 50}, {17, 233}};
    float *rows = malloc(N_ROWS * N_FEAT * sizeof(float));
    int32_t asset[N_ROWS], label[N_ROWS];
    int64_t ts[N_ROWS];
    float target[N_ROWS];
    for (size_t k = 0; k < sizeof ranges / sizeof ranges[0]; k++) {
        size_t r0 = ranges[k][0], n = ranges[k][1];
        assert_int_equal(st_features_read(ds, r0, n, rows, &err), 0);
        assert_memory_equal(rows, d->rows + r0 * N_FEAT, n * N_FEAT * sizeof(float));
        assert_int_equal(st_features_read_meta(ds, r0, n, asset, ts, label, target, &err), 0);
        assert_memory_equal(asset, d->asset + r0, n * sizeof asset[0]);
        assert_memory_equal(ts, d->ts + r0, n * sizeof ts[0]);
        assert_memory_equal(label, d->label + r0, n * sizeof label[0]);
        assert_memory_equal(target, d->target + r0, n * sizeof target[0]);
    }
    assert_int_equal(st_features_read(ds, 299, 2, rows, &err), KILN_EINVAL);
    assert_string_equal(err.where, "/features");
    assert_int_equal(st_features_hash(ds, again, &err), 0);
    assert_string_equal(again, hash);
    st_features_close(&ds);
    assert_null(ds);
    free(rows);
    free(m);
    free(d);
    unlink(path);
}

static void test_h5py_reads_ours(void **state)
{
    (void)state;
    char path[512], hash[65], want[65];
    kiln_err_t err;
    data_t *d = make_data(2);
    st_features_meta_t *m = make_meta();
    static const size_t batches[] = {100, 7};
    oracle_tmp_path(path, ".h5");
    assert_int_equal(write_data(path, m, d, batches, 2, 4, hash, &err), 0);
    size_t n;
    double *v = oracle_pyf(&n, "h5_dataset", "{\"path\": \"%s\", \"name\": \"/features\"}", path);
    assert_int_equal(n, N_ROWS * N_FEAT);
    for (size_t i = 0; i < n; i++)
        assert_true(v[i] == (double)d->rows[i]);
    free(v);
    v = oracle_pyf(&n, "h5_info", "{\"path\": \"%s\", \"name\": \"/features\"}", path);
    assert_true(v[0] == 4 && v[1] == 1 && v[2] == 2 && v[3] == -1 && v[5] == 1);
    assert_true(v[4] >= 1 && v[4] <= 1024);
    assert_true(v[7] == N_ROWS && v[8] == N_FEAT);
    free(v);
    v = oracle_pyf(&n, "h5_dataset", "{\"path\": \"%s\", \"name\": \"/timestamp\", \"split64\": true}",
                   path);
    for (int i = 0; i < N_ROWS; i++)
        assert_true((int64_t)v[2 * i] * 4294967296 + (int64_t)v[2 * i + 1] == d->ts[i]);
    free(v);
    v = oracle_pyf(&n, "h5_dataset", "{\"path\": \"%s\", \"name\": \"/label\"}", path);
    for (int i = 0; i < N_ROWS; i++)
        assert_true(v[i] == d->label[i]);
    free(v);
    const char *schema[] = {"kiln.features.v1"}, *src[] = {SRC}, *spec[] = {SPEC},
               *json[] = {m->spec_json}, *h[] = {hash};
    oracle_assert_attr(path, "/", "schema", schema, 1);
    oracle_assert_attr(path, "/", "source_sha256", src, 1);
    oracle_assert_attr(path, "/", "spec_sha256", spec, 1);
    oracle_assert_attr(path, "/", "spec_json", json, 1);
    oracle_assert_attr(path, "/", "content_sha256", h, 1);
    oracle_assert_attr(path, "/", "label_names", LABELS, 3);
    oracle_assert_attr(path, "/features", "feature_names", FEATURES, N_FEAT);
    oracle_content_hash(path, want);
    assert_string_equal(want, hash);
    free(m);
    free(d);
    unlink(path);
}

static void test_read_h5py_file(void **state)
{
    (void)state;
    for (int fixed = 0; fixed <= 1; fixed++) {
        char path[512], hex[65];
        kiln_err_t err;
        size_t n;
        oracle_tmp_path(path, ".h5");
        double *want = oracle_pyf(&n, "h5_write", "{\"path\": \"%s\", \"kind\": \"features\", \"n\": 40, "
                                  "\"fixed_strings\": %s}", path, fixed ? "true" : "false");
        assert_int_equal(n, 40 * 4 + 40 * 5);
        st_features_t *ds;
        assert_int_equal(st_features_open(path, &ds, &err), 0);
        const st_features_meta_t *m = st_features_meta(ds);
        assert_int_equal(m->n_rows, 40);
        assert_int_equal(m->n_features, 4);
        assert_string_equal(m->feature_names[3], "FE.bpfo");
        assert_string_equal(m->spec_json, "{\"features\": [\"rms\"]}");
        float rows[40 * 4], target[40];
        int32_t asset[40], label[40];
        int64_t ts[40];
        assert_int_equal(st_features_read(ds, 0, 40, rows, &err), 0);
        for (int i = 0; i < 160; i++)
            assert_true((double)rows[i] == want[i]);
        assert_int_equal(st_features_read_meta(ds, 0, 40, asset, ts, label, target, &err), 0);
        const double *rest = want + 160;
        for (int i = 0; i < 40; i++) {
            assert_true(asset[i] == rest[i]);
            assert_true(ts[i] == (int64_t)rest[40 + 2 * i] * 4294967296 + (int64_t)rest[41 + 2 * i]);
            assert_true(label[i] == rest[120 + i]);
            assert_true((double)target[i] == rest[160 + i]);
        }
        assert_int_equal(st_features_hash(ds, hex, &err), 0);
        assert_string_equal(hex, m->content_sha256);
        st_features_close(&ds);
        free(want);
        unlink(path);
    }
}

static void test_hash_stable(void **state)
{
    (void)state;
    char path[512], h1[65], h2[65];
    kiln_err_t err;
    data_t *d = make_data(3);
    st_features_meta_t *m = make_meta();
    static const size_t whole[] = {N_ROWS}, ones[] = {1}, mixed[] = {99, 2};
    oracle_tmp_path(path, ".h5");
    assert_int_equal(write_data(path, m, d, whole, 1, 0, h1, &err), 0);
    assert_int_equal(write_data(path, m, d, ones, 1, 0, h2, &err), 0);
    assert_string_equal(h1, h2);
    assert_int_equal(write_data(path, m, d, mixed, 2, 5, h2, &err), 0);
    assert_string_equal(h1, h2);
    m->spec_json = "{}";                   /* covered by spec_sha256, not hashed itself */
    assert_int_equal(write_data(path, m, d, mixed, 2, 0, h2, &err), 0);
    assert_string_equal(h1, h2);
    m->spec_sha256 = SRC;                  /* a different spec is different content */
    assert_int_equal(write_data(path, m, d, whole, 1, 0, h2, &err), 0);
    assert_string_not_equal(h1, h2);
    m->spec_sha256 = SPEC;
    d->target[5] += 1.0f;
    assert_int_equal(write_data(path, m, d, whole, 1, 0, h2, &err), 0);
    assert_string_not_equal(h1, h2);
    free(m);
    free(d);
    unlink(path);
}

static void test_temp_and_rejects(void **state)
{
    (void)state;
    char path[512], tmp[600];
    kiln_err_t err;
    data_t *d = make_data(4);
    st_features_meta_t *m = make_meta();
    st_features_writer_t *w;
    oracle_tmp_path(path, ".h5");
    oracle_writer_tmp_path(tmp, sizeof tmp, path);

    assert_int_equal(st_features_create(path, m, 0, &w, &err), 0);
    assert_true(oracle_file_exists(tmp));
    assert_false(oracle_file_exists(path));
    assert_int_equal(st_features_append(w, 3, d->rows, d->asset, d->ts, d->label, d->target, &err), 0);
    d->rows[4 * N_FEAT + 2] = NAN;          /* row 4, feature 2 */
    assert_int_equal(st_features_append(w, 3, d->rows + 3 * N_FEAT, d->asset, d->ts, d->label,
                                        d->target, &err), KILN_ENONFINITE);
    assert_string_equal(err.where, "/features");
    assert_non_null(strstr(err.msg, "row 4, feature 2"));
    assert_non_null(strstr(err.msg, path));
    st_features_abort(&w);
    assert_null(w);
    assert_false(oracle_file_exists(tmp));
    assert_false(oracle_file_exists(path));

    st_features_meta_t *b = make_meta();
    b->feature_names[3] = "DE.rms";
    assert_int_equal(st_features_create(path, b, 0, &w, &err), KILN_EINVAL);
    assert_non_null(strstr(err.msg, "DE.rms"));
    b->feature_names[3] = FEATURES[3];
    b->source_sha256 = "abc";
    assert_int_equal(st_features_create(path, b, 0, &w, &err), KILN_EINVAL);
    assert_string_equal(err.where, "source_sha256");
    b->source_sha256 = NULL;               /* allowed: stored as "" */
    b->n_features = 0;
    assert_int_equal(st_features_create(path, b, 0, &w, &err), KILN_EINVAL);
    b->n_features = ST_MAX_FEATURES + 1;
    assert_int_equal(st_features_create(path, b, 0, &w, &err), KILN_EINVAL);
    assert_false(oracle_file_exists(tmp));
    free(b);
    free(m);
    free(d);
}

/* 4096 features: feature_names (64 KiB of string references) must still fit. */
static void test_max_features(void **state)
{
    (void)state;
    char path[512], hash[65], want[65];
    kiln_err_t err;
    st_features_meta_t *m = make_meta();
    static char names[ST_MAX_FEATURES][24];
    for (int i = 0; i < ST_MAX_FEATURES; i++) {
        snprintf(names[i], sizeof names[i], "ch%02d.feature_%04d", i % 64, i);
        m->feature_names[i] = names[i];
    }
    m->n_features = ST_MAX_FEATURES;
    m->has_label = m->has_target = 0;
    float *rows = calloc(3 * ST_MAX_FEATURES, sizeof(float));
    int32_t asset[3] = {1, 2, 3};
    int64_t ts[3] = {1, 2, 3};
    for (int i = 0; i < 3 * ST_MAX_FEATURES; i++)
        rows[i] = (float)i;
    st_features_writer_t *w;
    oracle_tmp_path(path, ".h5");
    assert_int_equal(st_features_create(path, m, 0, &w, &err), 0);
    assert_int_equal(st_features_append(w, 3, rows, asset, ts, NULL, NULL, &err), 0);
    assert_int_equal(st_features_commit(&w, hash, &err), 0);
    st_features_t *ds;
    assert_int_equal(st_features_open(path, &ds, &err), 0);
    assert_int_equal(st_features_meta(ds)->n_features, ST_MAX_FEATURES);
    assert_string_equal(st_features_meta(ds)->feature_names[4095], names[4095]);
    float back[ST_MAX_FEATURES];
    assert_int_equal(st_features_read(ds, 2, 1, back, &err), 0);
    assert_memory_equal(back, rows + 2 * ST_MAX_FEATURES, sizeof back);
    st_features_close(&ds);
    oracle_content_hash(path, want);
    assert_string_equal(want, hash);
    free(rows);
    free(m);
    unlink(path);
}

static void test_bad_files(void **state)
{
    (void)state;
    static const struct {
        const char *params;
        int code;
        const char *where, *says;
    } cases[] = {
        {"\"defect\": \"text\"", KILN_EFORMAT, "", "not an HDF5 file"},
        {"\"defect\": \"empty\"", KILN_EFORMAT, "", "empty"},
        {"\"kind\": \"sensor\"", KILN_ESCHEMA, "/", "kiln.sensor.v1"},
        {"\"del_attrs\": [\"schema\"]", KILN_ESCHEMA, "/", "schema"},
        {"\"defect\": \"float64_features\"", KILN_ETYPE, "/features", "expected float32, found float64"},
        {"\"defect\": \"feature_names_count\"", KILN_ESHAPE, "/features", "feature_names"},
        {"\"defect\": \"missing_timestamp\"", KILN_ESCHEMA, "/timestamp", "missing dataset"},
        {"\"defect\": \"int64_asset\"", KILN_ETYPE, "/asset", "found int64"},
        {"\"defect\": \"asset_len\"", KILN_ESHAPE, "/asset", "39"},
        {"\"set_attrs\": {\"spec_json\": 5}", KILN_ETYPE, "/", "spec_json"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        char path[512];
        kiln_err_t err;
        size_t n;
        oracle_tmp_path(path, ".h5");
        const char *kind = strstr(cases[k].params, "\"kind\"") ? "" : "\"kind\": \"features\", ";
        free(oracle_pyf(&n, "h5_write", "{\"path\": \"%s\", \"n\": 40, %s%s}",
                        path, kind, cases[k].params));
        st_features_t *ds = (st_features_t *)1;
        int rc = st_features_open(path, &ds, &err);
        if (rc != cases[k].code || strcmp(err.where, cases[k].where) != 0 ||
            !strstr(err.msg, path) || !strstr(err.msg, cases[k].says) ||
            (*cases[k].where && !strstr(err.msg, cases[k].where)))
            fail_msg("case %zu {%s}: got %s where='%s' msg='%s'", k, cases[k].params,
                     kiln_err_name(rc), err.where, err.msg);
        assert_null(ds);
        unlink(path);
    }
    kiln_err_t err;
    st_features_t *ds;
    assert_int_equal(st_features_open("/nonexistent/f.h5", &ds, &err), KILN_ENOTFOUND);
    assert_non_null(strstr(err.msg, "/nonexistent/f.h5"));

    /* NaN/Inf is caught on read, naming the row */
    char path[512];
    size_t n;
    float rows[40 * 4];
    oracle_tmp_path(path, ".h5");
    free(oracle_pyf(&n, "h5_write", "{\"path\": \"%s\", \"n\": 40, \"kind\": \"features\", "
                            "\"defect\": \"nan_feature\", \"bad_row\": 30}", path));
    assert_int_equal(st_features_open(path, &ds, &err), 0);
    assert_int_equal(st_features_read(ds, 0, 30, rows, &err), 0);
    assert_int_equal(st_features_read(ds, 20, 20, rows, &err), KILN_ENONFINITE);
    assert_string_equal(err.where, "/features");
    assert_non_null(strstr(err.msg, "Inf at row 30, column 1"));
    st_features_close(&ds);
    unlink(path);
}

typedef struct {
    const char *path;
    const st_features_meta_t *meta;
    const data_t *d;
} alloc_pass_t;

/* Write, open, read and hash once; the hash read back must be the one written. */
static int alloc_pass(void *ctx, kiln_err_t *err)
{
    const alloc_pass_t *a = ctx;
    static const size_t batches[] = {200, 100};
    char hash[65], again[65];
    int rc = write_data(a->path, a->meta, a->d, batches, 2, 0, hash, err);
    if (rc == 0) {
        st_features_t *ds = NULL;
        rc = st_features_open(a->path, &ds, err);
        if (rc == 0) {
            float rows[2 * N_FEAT];
            rc = st_features_read(ds, 10, 2, rows, err);
            if (rc == 0)
                rc = st_features_hash(ds, again, err);
            st_features_close(&ds);
        }
        if (rc == 0)
            assert_string_equal(again, hash);
    }
    return rc;
}

static void test_alloc_failure(void **state)
{
    (void)state;
    char path[512], tmp[600];
    data_t *d = make_data(5);
    st_features_meta_t *m = make_meta();
    oracle_tmp_path(path, ".h5");
    oracle_writer_tmp_path(tmp, sizeof tmp, path);
    alloc_pass_t a = {path, m, d};
    oracle_alloc_fail_loop(alloc_pass, &a, path, tmp);
    free(m);
    free(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_h5py_reads_ours),
        cmocka_unit_test(test_read_h5py_file),
        cmocka_unit_test(test_hash_stable),
        cmocka_unit_test(test_temp_and_rejects),
        cmocka_unit_test(test_max_features),
        cmocka_unit_test(test_bad_files),
        cmocka_unit_test(test_alloc_failure),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
