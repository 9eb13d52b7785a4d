/* test_featurize.c - the featurize job as a library call: outputs that do
 * not depend on threads or batch size, rolling features per asset, a NaN in
 * the input failing cleanly, and every allocation failure unwinding with no
 * leak and nothing under the output name. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include <hdf5.h>
#include <math.h>
#include <jansson.h>

#include "core/kiln_alloc.h"
#include "jobs/featurize.h"
#include "jobs/gen.h"
#include "storage/features.h"
#include "tests/unit/oracle.h"

static const char *features_json =
    "{\"time\": [\"rms\", \"kurt\"],"
    " \"spectrum\": {\"bands_hz\": [[0, 1000], [1000, 4000]], \"dominant\": true},"
    " \"envelope\": {\"band_hz\": [2000, 5000], \"shaft_hz\": 30, \"tolerance_hz\": 6,"
    "   \"bearing\": {\"n_balls\": 9, \"ball_d\": 0.3126, \"pitch_d\": 1.537}},"
    " \"rolling\": {\"k\": 3, \"of\": [\"rms\"]}}";

typedef struct {
    char in[512], out[512];
    jb_featspec_t spec;
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof *f);
    kiln_err_t err;
    jb_gen_opts_t g = {.n_windows = 150, .window_len = 512, .sample_rate_hz = 12000,
                       .n_assets = 4, .channels = "vib_x,temp", .seed = 9};
    jb_ingest_summary_t sum;
    oracle_tmp_path(f->in, ".h5");
    oracle_tmp_path(f->out, ".h5");
    if (jb_gen(f->in, &g, &sum, &err) < 0) {
        fprintf(stderr, "gen: %s\n", err.msg);
        return -1;
    }
    json_error_t je;
    json_t *j = json_loads(features_json, 0, &je);
    int rc = jb_featspec_parse(j, &f->spec, &err);
    json_decref(j);
    if (rc < 0) {
        fprintf(stderr, "spec: %s\n", err.msg);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    unlink(f->in);
    unlink(f->out);
    jb_featspec_free(&f->spec);
    free(f);
    return 0;
}

static float *read_all(const char *path, size_t *rows, size_t *cols, int32_t **asset)
{
    st_features_t *ds;
    kiln_err_t err;
    assert_int_equal(st_features_open(path, &ds, &err), 0);
    const st_features_meta_t *m = st_features_meta(ds);
    *rows = m->n_rows;
    *cols = m->n_features;
    float *x = malloc(m->n_rows * m->n_features * sizeof *x);
    *asset = malloc(m->n_rows * sizeof **asset);
    assert_int_equal(st_features_read(ds, 0, m->n_rows, x, &err), 0);
    assert_int_equal(st_features_read_meta(ds, 0, m->n_rows, *asset, NULL, NULL, NULL, &err), 0);
    st_features_close(&ds);
    return x;
}

/* Threads and batch size split the work differently; not a bit may change. */
static void test_split_independent(void **state)
{
    fixture_t *f = *state;
    jb_featurize_stats_t st1, st2;
    kiln_err_t err;
    jb_featurize_opts_t o1 = {.n_threads = 1, .batch_windows = 7};
    jb_featurize_opts_t o2 = {.n_threads = 3, .batch_windows = 64};
    assert_int_equal(jb_featurize_run(&f->spec, f->in, f->out, &o1, &st1, &err), 0);
    size_t r1, c1, r2, c2;
    int32_t *a1, *a2;
    float *x1 = read_all(f->out, &r1, &c1, &a1);
    assert_int_equal(jb_featurize_run(&f->spec, f->in, f->out, &o2, &st2, &err), 0);
    float *x2 = read_all(f->out, &r2, &c2, &a2);
    assert_int_equal(r1, 150);
    /* 2 channels x (2 time + 2 bands + dominant + 4 lines) + 2 x rolling mean/std */
    assert_int_equal(c1, 2 * 9 + 2 * 2);
    assert_int_equal(st1.n_features, c1);
    assert_memory_equal(x1, x2, r1 * c1 * sizeof *x1);
    assert_string_equal(st1.output_sha256, st2.output_sha256);
    free(x1);
    free(x2);
    free(a1);
    free(a2);
}

/* Rolling columns: mean/std of the last k=3 rms values of the same asset,
 * recomputed here from the rms column in row order. */
static void test_rolling_per_asset(void **state)
{
    fixture_t *f = *state;
    jb_featurize_stats_t st;
    kiln_err_t err;
    assert_int_equal(jb_featurize_run(&f->spec, f->in, f->out, NULL, &st, &err), 0);
    size_t rows, cols;
    int32_t *asset;
    float *x = read_all(f->out, &rows, &cols, &asset);
    const size_t per = 9, roll0 = 2 * per;  /* vib_x.rms.roll3_mean is column 18 */
    for (size_t i = 0; i < rows; i++) {
        double v[3];
        int k = 0;
        for (size_t j = i + 1; j-- > 0 && k < 3;)
            if (asset[j] == asset[i])
                v[k++] = x[j * cols + 0];
        double mean = 0, var = 0;
        for (int q = 0; q < k; q++)
            mean += v[q] / k;
        for (int q = 0; q < k; q++)
            var += (v[q] - mean) * (v[q] - mean) / k;
        /* float32 storage of the inputs and outputs: 1e-6 relative */
        assert_true(fabs(x[i * cols + roll0] - mean) <= 1e-6 * fabs(mean) + 1e-12);
        assert_true(fabs(x[i * cols + roll0 + 1] - sqrt(var)) <= 1e-6 * fabs(mean) + 1e-9);
    }
    free(x);
    free(asset);
}

/* A NaN written into the middle of a valid file: the job fails naming the
 * file, dataset and window, and nothing appears under the output name. */
static void test_nan_input(void **state)
{
    fixture_t *f = *state;
    char bad[512], cmd[2048];
    kiln_err_t err;
    jb_featurize_stats_t st;
    oracle_tmp_path(bad, ".h5");
    snprintf(cmd, sizeof cmd, "cp '%s' '%s'", f->in, bad);
    assert_int_equal(system(cmd), 0);
    hid_t file = H5Fopen(bad, H5F_ACC_RDWR, H5P_DEFAULT);
    hid_t ds = H5Dopen2(file, "/signals/temp", H5P_DEFAULT);
    hid_t fs = H5Dget_space(ds);
    hsize_t start[2] = {97, 5}, count[2] = {1, 1};
    float nan = NAN;
    H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL);
    hid_t ms = H5Screate_simple(2, count, NULL);
    assert_true(H5Dwrite(ds, H5T_NATIVE_FLOAT, ms, fs, H5P_DEFAULT, &nan) >= 0);
    H5Sclose(ms);
    H5Sclose(fs);
    H5Dclose(ds);
    H5Fclose(file);

    unlink(f->out);
    assert_int_equal(jb_featurize_run(&f->spec, bad, f->out, NULL, &st, &err), KILN_ENONFINITE);
    assert_non_null(strstr(err.msg, "/signals/temp"));
    assert_non_null(strstr(err.msg, bad));
    assert_int_equal(access(f->out, F_OK), -1);
    unlink(bad);
}

/* Fail the Nth allocation for every N until the job succeeds: each failure
 * returns an error, leaves no output, and (under ASan) leaks nothing. */
static void test_alloc_failures(void **state)
{
    fixture_t *f = *state;
    jb_featurize_opts_t o = {.n_threads = 1, .batch_windows = 50};
    int n;
    for (n = 1; n < 2000; n++) {
        kiln_err_t err;
        jb_featurize_stats_t st;
        unlink(f->out);
        kiln_alloc_fail_after(n);
        int rc = jb_featurize_run(&f->spec, f->in, f->out, &o, &st, &err);
        kiln_alloc_fail_after(0);
        if (rc == 0)
            break;
        assert_int_equal(rc, KILN_ENOMEM);
        assert_int_equal(access(f->out, F_OK), -1);
    }
    assert_true(n > 5 && n < 2000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split_independent),
        cmocka_unit_test(test_rolling_per_asset),
        cmocka_unit_test(test_nan_input),
        cmocka_unit_test(test_alloc_failures),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
