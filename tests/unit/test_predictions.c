/* test_predictions.c - kiln.predictions.v1: round trip in uneven batches,
 * the content hash (stable across batchings, recomputed on read, blind to
 * the model's name but not to its bytes' hash), refusal of a wrong schema,
 * type or shape, NaN refused before anything is written, abort leaving
 * nothing under the final name, and allocation failure at every step. */
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
#include <hdf5.h>

#include "oracle.h"
#include "core/kiln_alloc.h"
#include "storage/features.h"
#include "storage/predictions.h"

#define N_ROWS 257
#define N_OUT 3

static const char *const OUTPUTS[N_OUT] = {"normal", "inner_race", "outer_race"};
static const char *const MODEL_SHA = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
static const char *const SRC = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210";

typedef struct {
    float   score[N_ROWS * N_OUT];
    int32_t pred[N_ROWS];
    int32_t asset[N_ROWS];
    int64_t ts[N_ROWS];
    int32_t label[N_ROWS];
} data_t;

static data_t *make_data(uint32_t seed)
{
    data_t *d = malloc(sizeof *d);
    assert_non_null(d);
    uint32_t s = seed;
    for (int i = 0; i < N_ROWS * N_OUT; i++) {
        s = s * 1664525u + 1013904223u;
        d->score[i] = (float)(s >> 8) / 16777216.0f;
    }
    for (int r = 0; r < N_ROWS; r++) {
        d->pred[r] = r % N_OUT;
        d->asset[r] = r % 5;
        d->ts[r] = INT64_C(1700000000000000000) + (int64_t)r * 1000000007;
        d->label[r] = (int32_t)(r % 4) - 1;
    }
    return d;
}

static void make_meta(st_predictions_meta_t *m, const char *model)
{
    memset(m, 0, sizeof *m);
    m->n_outputs = N_OUT;
    m->n_class_names = N_OUT;
    for (int i = 0; i < N_OUT; i++)
        m->output_names[i] = m->class_names[i] = OUTPUTS[i];
    m->model = model;
    m->model_sha256 = MODEL_SHA;
    m->source_sha256 = SRC;
    m->has_label = 1;
}

static int write_data(const char *path, const st_predictions_meta_t *m, const data_t *d,
                      const size_t *batches, size_t n_batches, char hash[65], kiln_err_t *err)
{
    st_predictions_writer_t *w;
    int rc = st_predictions_create(path, m, 0, &w, err);
    if (rc < 0)
        return rc;
    for (size_t at = 0, b = 0; at < N_ROWS; b++) {
        size_t n = batches[b % n_batches];
        if (n > N_ROWS - at)
            n = N_ROWS - at;
        rc = st_predictions_append(w, n, d->score + at * N_OUT, d->pred + at, d->asset + at,
                                   d->ts + at, d->label + at, NULL, err);
        if (rc < 0) {
            st_predictions_abort(&w);
            return rc;
        }
        at += n;
    }
    rc = st_predictions_commit(&w, hash, err);
    assert_null(w);
    return rc;
}

static void test_roundtrip(void **state)
{
    (void)state;
    char path[512], hash[65], again[65];
    kiln_err_t err;
    data_t *d = make_data(1);
    st_predictions_meta_t m;
    make_meta(&m, "bearing@3");
    static const size_t batches[] = {1, 200, 17, 5};
    oracle_tmp_path(path, ".h5");
    assert_int_equal(write_data(path, &m, d, batches, 4, hash, &err), 0);

    st_predictions_t *ds;
    assert_int_equal(st_predictions_open(path, &ds, &err), 0);
    const st_predictions_meta_t *r = st_predictions_meta(ds);
    assert_int_equal(r->n_rows, N_ROWS);
    assert_int_equal(r->n_outputs, N_OUT);
    assert_int_equal(r->n_class_names, N_OUT);
    for (int i = 0; i < N_OUT; i++) {
        assert_string_equal(r->output_names[i], OUTPUTS[i]);
        assert_string_equal(r->class_names[i], OUTPUTS[i]);
    }
    assert_string_equal(r->model, "bearing@3");
    assert_string_equal(r->model_sha256, MODEL_SHA);
    assert_string_equal(r->source_sha256, SRC);
    assert_string_equal(r->content_sha256, hash);
    assert_non_null(r->created);
    assert_true(r->has_label);
    assert_false(r->has_target);

    /* An uneven range in the middle, every column. */
    float score[100 * N_OUT];
    int32_t pred[100], asset[100], label[100];
    int64_t ts[100];
    float target[100];
    assert_int_equal(st_predictions_read(ds, 33, 100, score, pred, &err), 0);
    assert_int_equal(st_predictions_read_meta(ds, 33, 100, asset, ts, label, target, &err), 0);
    assert_memory_equal(score, d->score + 33 * N_OUT, sizeof score);
    assert_memory_equal(pred, d->pred + 33, sizeof pred);
    assert_memory_equal(asset, d->asset + 33, sizeof asset);
    assert_memory_equal(ts, d->ts + 33, sizeof ts);
    assert_memory_equal(label, d->label + 33, sizeof label);
    for (int i = 0; i < 100; i++)
        assert_true(target[i] == 0.0f);         /* absent: zeros */
    /* Past the end is refused, not clipped. */
    assert_int_equal(st_predictions_read(ds, N_ROWS - 10, 11, score, NULL, &err), KILN_EINVAL);
    assert_int_equal(st_predictions_hash(ds, again, &err), 0);
    assert_string_equal(again, hash);
    st_predictions_close(&ds);
    /* The rule of predictions.h, written again in Python from its comment. */
    char twin[65];
    oracle_content_hash(path, twin);
    assert_string_equal(twin, hash);
    assert_null(ds);
    unlink(path);
    free(d);
}

/* The hash does not depend on batching or on the model's name, and does on
 * the model's bytes and on the data. */
static void test_hash_stable(void **state)
{
    (void)state;
    char path[512], h1[65], h2[65], h3[65], h4[65], h5[65];
    kiln_err_t err;
    data_t *d = make_data(2);
    st_predictions_meta_t m;
    static const size_t one[] = {N_ROWS}, small[] = {3, 1, 64};
    oracle_tmp_path(path, ".h5");
    make_meta(&m, "bearing@3");
    assert_int_equal(write_data(path, &m, d, one, 1, h1, &err), 0);
    assert_int_equal(write_data(path, &m, d, small, 3, h2, &err), 0);
    assert_string_equal(h1, h2);
    make_meta(&m, "local.kmodel");
    assert_int_equal(write_data(path, &m, d, one, 1, h3, &err), 0);
    assert_string_equal(h1, h3);
    m.model_sha256 = SRC;
    assert_int_equal(write_data(path, &m, d, one, 1, h4, &err), 0);
    assert_string_not_equal(h1, h4);
    make_meta(&m, "bearing@3");
    d->pred[100] = (d->pred[100] + 1) % N_OUT;
    assert_int_equal(write_data(path, &m, d, one, 1, h5, &err), 0);
    assert_string_not_equal(h1, h5);
    unlink(path);
    free(d);
}

/* NaN and bad classes are refused before anything is written; abort leaves
 * neither the final name nor the temp file. */
static void test_rejects_and_abort(void **state)
{
    (void)state;
    char path[512], tmp[600];
    kiln_err_t err;
    data_t *d = make_data(3);
    st_predictions_meta_t m;
    make_meta(&m, "bearing@3");
    oracle_tmp_path(path, ".h5");
    oracle_writer_tmp_path(tmp, sizeof tmp, path);

    st_predictions_writer_t *w;
    assert_int_equal(st_predictions_create(path, &m, 0, &w, &err), 0);
    assert_true(oracle_file_exists(tmp));
    assert_false(oracle_file_exists(path));
    assert_int_equal(st_predictions_append(w, 10, d->score, d->pred, d->asset, d->ts, d->label,
                                           NULL, &err), 0);
    d->score[12 * N_OUT + 2] = NAN;
    assert_int_equal(st_predictions_append(w, 10, d->score + 10 * N_OUT, d->pred + 10,
                                           d->asset + 10, d->ts + 10, d->label + 10, NULL, &err),
                     KILN_ENONFINITE);
    assert_non_null(strstr(err.msg, "row 12"));
    assert_string_equal(err.where, "/score");
    d->score[12 * N_OUT + 2] = INFINITY;
    assert_int_equal(st_predictions_append(w, 10, d->score + 10 * N_OUT, d->pred + 10,
                                           d->asset + 10, d->ts + 10, d->label + 10, NULL, &err),
                     KILN_ENONFINITE);
    d->score[12 * N_OUT + 2] = 0.5f;
    d->pred[11] = -2;
    assert_int_equal(st_predictions_append(w, 10, d->score + 10 * N_OUT, d->pred + 10,
                                           d->asset + 10, d->ts + 10, d->label + 10, NULL, &err),
                     KILN_EINVAL);
    assert_string_equal(err.where, "/predicted");
    d->pred[11] = 1;
    d->label[13] = N_OUT;                       /* past the class names */
    assert_int_equal(st_predictions_append(w, 10, d->score + 10 * N_OUT, d->pred + 10,
                                           d->asset + 10, d->ts + 10, d->label + 10, NULL, &err),
                     KILN_EINVAL);
    assert_int_equal(st_predictions_append(w, 10, d->score + 10 * N_OUT, d->pred + 10,
                                           d->asset + 10, d->ts + 10, NULL, NULL, &err),
                     KILN_EINVAL);              /* a label declared but not given */
    st_predictions_abort(&w);
    assert_null(w);
    assert_false(oracle_file_exists(path));
    assert_false(oracle_file_exists(tmp));

    /* Bad meta: no outputs, duplicate names, a bad hash, no model. */
    make_meta(&m, "bearing@3");
    m.n_outputs = 0;
    assert_int_equal(st_predictions_create(path, &m, 0, &w, &err), KILN_EINVAL);
    make_meta(&m, "bearing@3");
    m.output_names[1] = m.output_names[0];
    assert_int_equal(st_predictions_create(path, &m, 0, &w, &err), KILN_EINVAL);
    make_meta(&m, "bearing@3");
    m.model_sha256 = "abc";
    assert_int_equal(st_predictions_create(path, &m, 0, &w, &err), KILN_EINVAL);
    assert_string_equal(err.where, "model_sha256");
    make_meta(&m, "");
    assert_int_equal(st_predictions_create(path, &m, 0, &w, &err), KILN_EINVAL);
    assert_string_equal(err.where, "model");
    assert_null(w);
    assert_false(oracle_file_exists(path));
    assert_false(oracle_file_exists(tmp));
    free(d);
}

/* A good file, then one defect made with the HDF5 API. */
enum { DEF_OUTPUT_NAMES, DEF_PREDICTED_ROWS, DEF_SCORE_F64, DEF_NO_PREDICTED };

static void make_defect(const char *path, int defect)
{
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    assert_true(f >= 0);
    if (defect == DEF_OUTPUT_NAMES) {
        hid_t d = H5Dopen2(f, "/score", H5P_DEFAULT);
        assert_true(H5Adelete(d, "output_names") >= 0);
        hid_t t = H5Tcopy(H5T_C_S1);
        H5Tset_size(t, H5T_VARIABLE);
        hsize_t dim = 2;
        hid_t s = H5Screate_simple(1, &dim, NULL);
        hid_t a = H5Acreate2(d, "output_names", t, s, H5P_DEFAULT, H5P_DEFAULT);
        const char *two[2] = {"a", "b"};
        assert_true(H5Awrite(a, t, two) >= 0);
        H5Aclose(a);
        H5Sclose(s);
        H5Tclose(t);
        H5Dclose(d);
    } else {
        const char *name = defect == DEF_SCORE_F64 ? "/score" : "/predicted";
        assert_true(H5Ldelete(f, name, H5P_DEFAULT) >= 0);
        if (defect != DEF_NO_PREDICTED) {
            hsize_t dims[2] = {defect == DEF_SCORE_F64 ? N_ROWS : N_ROWS - 1, N_OUT};
            int rank = defect == DEF_SCORE_F64 ? 2 : 1;
            hid_t s = H5Screate_simple(rank, dims, NULL);
            hid_t d = H5Dcreate2(f, name,
                                 defect == DEF_SCORE_F64 ? H5T_IEEE_F64LE : H5T_STD_I32LE, s,
                                 H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
            assert_true(d >= 0);
            H5Dclose(d);
            H5Sclose(s);
        }
    }
    H5Fclose(f);
}

static void test_bad_files(void **state)
{
    (void)state;
    char path[512], hash[65];
    kiln_err_t err;
    data_t *d = make_data(4);
    st_predictions_meta_t m;
    static const size_t one[] = {N_ROWS};
    st_predictions_t *ds = NULL;
    make_meta(&m, "bearing@3");
    oracle_tmp_path(path, ".h5");

    static const struct {
        int defect, code;
        const char *where;
    } cases[] = {
        {DEF_OUTPUT_NAMES, KILN_ESHAPE, "/score"},
        {DEF_PREDICTED_ROWS, KILN_ESHAPE, "/predicted"},
        {DEF_SCORE_F64, KILN_ETYPE, "/score"},
        {DEF_NO_PREDICTED, KILN_ESCHEMA, "/predicted"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_int_equal(write_data(path, &m, d, one, 1, hash, &err), 0);
        make_defect(path, cases[i].defect);
        assert_int_equal(st_predictions_open(path, &ds, &err), cases[i].code);
        assert_string_equal(err.where, cases[i].where);
        assert_non_null(strstr(err.msg, path));
        assert_null(ds);
    }

    /* A features file is not a predictions file: the schema says so. */
    st_features_meta_t *fm = calloc(1, sizeof *fm);
    assert_non_null(fm);
    fm->n_features = 1;
    fm->feature_names[0] = "DE.rms";
    st_features_writer_t *fw;
    float row = 1.0f;
    int32_t asset = 0;
    int64_t ts = 0;
    assert_int_equal(st_features_create(path, fm, 0, &fw, &err), 0);
    assert_int_equal(st_features_append(fw, 1, &row, &asset, &ts, NULL, NULL, &err), 0);
    assert_int_equal(st_features_commit(&fw, hash, &err), 0);
    assert_int_equal(st_predictions_open(path, &ds, &err), KILN_ESCHEMA);
    assert_non_null(strstr(err.msg, "kiln.features.v1"));
    assert_non_null(strstr(err.msg, ST_PREDICTIONS_SCHEMA));
    unlink(path);
    assert_int_equal(st_predictions_open(path, &ds, &err), KILN_ENOTFOUND);
    free(fm);
    free(d);
}

typedef struct {
    const char *path;
    data_t     *d;
} alloc_ctx_t;

static int alloc_pass(void *p, kiln_err_t *err)
{
    alloc_ctx_t *c = p;
    st_predictions_meta_t m;
    char hash[65];
    static const size_t batches[] = {100, 7};
    make_meta(&m, "bearing@3");
    int rc = write_data(c->path, &m, c->d, batches, 2, hash, err);
    if (rc < 0)
        return rc;
    st_predictions_t *ds;
    if ((rc = st_predictions_open(c->path, &ds, err)) < 0)
        return rc;
    rc = st_predictions_hash(ds, hash, err);
    st_predictions_close(&ds);
    return rc;
}

static void test_alloc_failures(void **state)
{
    (void)state;
    char path[512], tmp[600];
    alloc_ctx_t c = {path, make_data(5)};
    oracle_tmp_path(path, ".h5");
    oracle_writer_tmp_path(tmp, sizeof tmp, path);
    oracle_alloc_fail_loop(alloc_pass, &c, path, tmp);
    free(c.d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_hash_stable),
        cmocka_unit_test(test_rejects_and_abort),
        cmocka_unit_test(test_bad_files),
        cmocka_unit_test(test_alloc_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
