/* test_ingest.c - the CWRU and C-MAPSS ingest jobs against the real data
 * (CWRU .mat through scipy.io.loadmat + resample_poly, C-MAPSS through
 * numpy), their bad-input paths, and allocation failure in every ingest.
 * CSV and the CLI: test_ingest_csv.c. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "oracle.h"
#include "core/kiln_alloc.h"
#include "jobs/ingest.h"
#include "storage/sensor.h"

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The .mat files of $KILN_DATA/cwru, sorted; returns the count. */
static size_t cwru_files(char paths[][512], size_t max)
{
    char dir[256];
    snprintf(dir, sizeof dir, "%s/cwru", oracle_data_dir());
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    char *names[64];
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < max && n < 64)
        if (strstr(e->d_name, ".mat") && strlen(e->d_name) < 200)
            names[n++] = strdup(e->d_name);
    closedir(d);
    qsort(names, n, sizeof names[0], cmp_str);
    for (size_t i = 0; i < n; i++) {
        snprintf(paths[i], 512, "%s/%s", dir, names[i]);
        free(names[i]);
    }
    return n;
}

static char *json_file_list(char paths[][512], size_t n)
{
    size_t cap = 64 + n * 520;
    char *s = malloc(cap);
    size_t len = (size_t)snprintf(s, cap, "[");
    for (size_t i = 0; i < n; i++)
        len += (size_t)snprintf(s + len, cap - len, "%s\"%s\"", i ? "," : "", paths[i]);
    snprintf(s + len, cap - len, "]");
    return s;
}

/* ---- CWRU ---------------------------------------------------------------- */

/* Tolerance: kiln resamples in float64 with the same Kaiser-window FIR as
 * scipy, then stores float32; the stored value may differ from scipy's
 * float64 by float32 rounding (|v| * 6e-8, |v| < 10 g here) plus filter-
 * design rounding (~1e-12).  1e-6 absolute leaves a 2x margin on 10 g. */
#define CWRU_ATOL 1e-6

static void test_cwru_real(void **state)
{
    (void)state;
    char paths[16][512], out[512];
    size_t n = cwru_files(paths, 16);
    if (n == 0)
        skip();
    assert_int_equal(n, 7);
    const char *argv_paths[16];
    for (size_t i = 0; i < n; i++)
        argv_paths[i] = paths[i];
    oracle_tmp_path(out, ".h5");
    jb_ingest_opts_t o = {0};
    jb_ingest_summary_t *sum = calloc(1, sizeof *sum);
    kiln_err_t err = {0};
    int rc = jb_ingest_cwru(out, argv_paths, n, &o, sum, &err);
    if (rc < 0)
        fail_msg("%s", err.msg);
    assert_true(sum->sample_rate_hz == 12000.0);
    assert_int_equal(sum->window_len, 2048);
    assert_int_equal(sum->n_channels, 2);          /* BA is missing from the normal file */
    assert_string_equal(sum->channels[0], "DE");
    assert_string_equal(sum->channels[1], "FE");

    char *files = json_file_list(paths, n), params[16384];
    snprintf(params, sizeof params, "{\"files\": %s, \"rate\": 12000, \"window_len\": 2048, "
             "\"channels\": [\"DE\", \"FE\"]}", files);
    free(files);
    double *want;
    size_t n_want;
    double dummy = 0;
    assert_int_equal(oracle_run("cwru_windows", params, &dummy, 1, 1, &want, &n_want), 0);

    st_sensor_t *ds;
    assert_int_equal(st_sensor_open(out, &ds, &err), 0);
    const st_sensor_meta_t *m = st_sensor_meta(ds);
    assert_int_equal(m->n_label_names, 4);
    assert_string_equal(m->label_names[0], "normal");
    assert_string_equal(m->label_names[1], "inner_race");
    assert_string_equal(m->label_names[2], "outer_race");
    assert_string_equal(m->label_names[3], "ball");

    size_t counts[4] = {0}, total = 0;
    const double *head = want, *data = want + 5 * n;
    for (size_t i = 0; i < n; i++) {
        counts[(int)head[5 * i + 2]] += (size_t)head[5 * i + 1];
        total += (size_t)head[5 * i + 1];
        if (strstr(paths[i], "normal"))          /* 243,938 at 48 kHz -> ~60,985 at 12 kHz */
            assert_int_equal((size_t)head[5 * i], 60985);
    }
    assert_int_equal(m->n_windows, total);
    assert_int_equal(sum->n_windows, total);
    for (int l = 0; l < 4; l++)
        assert_int_equal(sum->label_counts[l], counts[l]);
    assert_int_equal(counts[0], 29);             /* floor((60985 - 2048) / 2048) + 1 */

    float *win = malloc(2048 * sizeof(float));
    int32_t asset, label;
    int64_t ts;
    size_t wi = 0;
    double max_diff = 0;
    for (size_t i = 0; i < n; i++) {
        size_t nw = (size_t)head[5 * i + 1];
        for (size_t k = 0; k < nw; k++, wi++) {
            assert_int_equal(st_sensor_read_meta(ds, wi, 1, &asset, &ts, &label, NULL, &err), 0);
            assert_int_equal(asset, (int)head[5 * i + 3]);
            assert_int_equal(label, (int)head[5 * i + 2]);
            assert_true(ts == (int64_t)llround((double)k * 2048 * 1e9 / 12000.0));
            for (size_t c = 0; c < 2; c++) {
                assert_int_equal(st_sensor_read(ds, c, wi, 1, win, &err), 0);
                for (size_t j = 0; j < 2048; j++) {
                    double d = fabs(win[j] - *data++);
                    if (d > max_diff)
                        max_diff = d;
                }
            }
        }
    }
    print_message("CWRU: %zu windows, max |kiln - scipy| = %.3g\n", total, max_diff);
    assert_true(max_diff <= CWRU_ATOL);
    /* source attr records the rpm of each file */
    assert_non_null(strstr(m->source, "rpm 1796"));
    assert_non_null(strstr(m->source, "normal_0_97.mat"));
    st_sensor_close(&ds);
    free(win);
    free(want);
    free(sum);
    unlink(out);
}

static void test_cwru_channels_hop(void **state)
{
    (void)state;
    char paths[16][512], out[512];
    size_t n = cwru_files(paths, 16);
    if (n == 0)
        skip();
    const char *one[1] = {paths[0]};           /* a 12 kHz file: no resampling */
    oracle_tmp_path(out, ".h5");
    jb_ingest_opts_t o = {.window_len = 1000, .hop = 300, .channels = "BA,DE"};
    jb_ingest_summary_t *sum = calloc(1, sizeof *sum);
    kiln_err_t err = {0};
    assert_int_equal(jb_ingest_cwru(out, one, 1, &o, sum, &err), 0);
    assert_int_equal(sum->n_channels, 2);
    assert_string_equal(sum->channels[0], "BA");
    char *files = json_file_list(paths, 1), params[4096];
    snprintf(params, sizeof params, "{\"files\": %s, \"rate\": 12000, \"window_len\": 1000, "
             "\"hop\": 300, \"channels\": [\"BA\", \"DE\"]}", files);
    free(files);
    double *want, dummy = 0;
    size_t n_want;
    assert_int_equal(oracle_run("cwru_windows", params, &dummy, 1, 1, &want, &n_want), 0);
    assert_int_equal(sum->n_windows, (size_t)want[1]);
    st_sensor_t *ds;
    assert_int_equal(st_sensor_open(out, &ds, &err), 0);
    float win[1000];
    size_t last = sum->n_windows - 1;          /* the last window: hop arithmetic */
    for (size_t c = 0; c < 2; c++) {
        assert_int_equal(st_sensor_read(ds, c, last, 1, win, &err), 0);
        const double *ref = want + 5 + (last * 2 + c) * 1000;
        for (size_t j = 0; j < 1000; j++)
            assert_true(fabs(win[j] - ref[j]) <= CWRU_ATOL);
    }
    st_sensor_close(&ds);
    free(want);
    free(sum);
    unlink(out);
}

static int cwru_error(const char *const *paths, size_t n, const char *channels, kiln_err_t *err)
{
    char out[512];
    oracle_tmp_path(out, ".h5");
    jb_ingest_opts_t o = {.channels = channels};
    jb_ingest_summary_t *sum = calloc(1, sizeof *sum);
    int rc = jb_ingest_cwru(out, paths, n, &o, sum, err);
    free(sum);
    assert_int_not_equal(access(out, F_OK), 0);   /* nothing left under the real name */
    return rc;
}

static void test_cwru_bad(void **state)
{
    (void)state;
    char dir[512], mat[600], params[2048];
    kiln_err_t err = {0};
    double *o, dummy = 0;
    size_t no;
    oracle_tmp_path(dir, "");
    assert_int_equal(mkdir(dir, 0700), 0);

    /* No _DE_time variable: the error names the file and the variable. */
    snprintf(mat, sizeof mat, "%s/12k_Drive_End_IR007_0_999.mat", dir);
    snprintf(params, sizeof params, "{\"path\": \"%s\", \"vars\": {\"X999_FE_time\": "
             "[0.1, 0.2, 0.3, 0.4], \"X999RPM\": [1797]}}", mat);
    assert_int_equal(oracle_run("savemat", params, &dummy, 1, 1, &o, &no), 0);
    free(o);
    const char *p1[1] = {mat};
    assert_int_equal(cwru_error(p1, 1, NULL, &err), KILN_ENOTFOUND);
    assert_non_null(strstr(err.msg, mat));
    assert_non_null(strstr(err.msg, "_DE_time"));
    /* Asking for BA explicitly: named too. */
    assert_int_equal(cwru_error(p1, 1, "FE,BA", &err), KILN_ENOTFOUND);
    assert_non_null(strstr(err.msg, "_BA_time"));
    /* Unknown channel name */
    assert_int_equal(cwru_error(p1, 1, "XX", &err), KILN_EINVAL);
    assert_non_null(strstr(err.msg, "XX"));
    /* FE only works, and a 4-sample recording is shorter than one window. */
    assert_int_equal(cwru_error(p1, 1, "FE", &err), KILN_ESHAPE);
    unlink(mat);

    /* No variable of interest at all */
    snprintf(mat, sizeof mat, "%s/12k_Drive_End_B007_0_998.mat", dir);
    snprintf(params, sizeof params, "{\"path\": \"%s\", \"vars\": {\"foo\": [1, 2]}}", mat);
    assert_int_equal(oracle_run("savemat", params, &dummy, 1, 1, &o, &no), 0);
    free(o);
    assert_int_equal(cwru_error(p1, 1, NULL, &err), KILN_ENOTFOUND);
    assert_non_null(strstr(err.msg, mat));
    unlink(mat);

    /* Class not in the name */
    snprintf(mat, sizeof mat, "%s/recording_7.mat", dir);
    write_text(mat, "x");
    assert_int_equal(cwru_error(p1, 1, NULL, &err), KILN_EINVAL);
    assert_non_null(strstr(err.msg, "fault class"));
    unlink(mat);

    /* Not a .mat file at all */
    snprintf(mat, sizeof mat, "%s/12k_Drive_End_OR007@6_0_130.mat", dir);
    write_text(mat, "this is not MATLAB\n");
    assert_true(cwru_error(p1, 1, NULL, &err) < 0);
    assert_non_null(strstr(err.msg, mat));
    unlink(mat);

    /* Nonexistent */
    assert_int_equal(cwru_error(p1, 1, NULL, &err), KILN_ENOTFOUND);
    assert_non_null(strstr(err.msg, mat));
    assert_int_equal(cwru_error(p1, 0, NULL, &err), KILN_EINVAL);

    /* Rates that are not whole Hz, or beyond 10 MHz, are refused up front. */
    char real[600];
    snprintf(real, sizeof real, "%s/cwru/12k_Drive_End_IR007_0_105.mat", oracle_data_dir());
    const char *p2[1] = {real};
    jb_ingest_summary_t sum;
    jb_ingest_opts_t bad_rate = {.target_rate_hz = 1e12};
    assert_int_equal(jb_ingest_cwru(mat, p2, 1, &bad_rate, &sum, &err), KILN_EINVAL);
    assert_non_null(strstr(err.msg, "--rate"));
    jb_ingest_opts_t bad_normal = {.cwru_unprefixed_rate_hz = 48000.5};
    assert_int_equal(jb_ingest_cwru(mat, p2, 1, &bad_normal, &sum, &err), KILN_EINVAL);
    assert_non_null(strstr(err.msg, "--normal-rate"));
    assert_int_equal(access(mat, F_OK), -1);
    rmdir(dir);
}

/* ---- C-MAPSS --------------------------------------------------------------- */

static void check_cmapss(const char *data, const char *rul)
{
    char dpath[512], rpath[512], out[512], params[2048];
    snprintf(dpath, sizeof dpath, "%s/cmapss/%s", oracle_data_dir(), data);
    if (access(dpath, R_OK) != 0)
        skip();
    if (rul)
        snprintf(rpath, sizeof rpath, "%s/cmapss/%s", oracle_data_dir(), rul);
    oracle_tmp_path(out, ".h5");
    jb_ingest_summary_t *sum = calloc(1, sizeof *sum);
    kiln_err_t err = {0};
    int rc = jb_ingest_cmapss(out, dpath, rul ? rpath : NULL, NULL, sum, &err);
    if (rc < 0)
        fail_msg("%s", err.msg);
    snprintf(params, sizeof params, "{\"path\": \"%s\", \"rul\": \"%s\"}", dpath, rul ? rpath : "");
    double *want, dummy = 0;
    size_t n_want;
    assert_int_equal(oracle_run("cmapss", params, &dummy, 1, 1, &want, &n_want), 0);
    size_t rows = (size_t)want[0];
    assert_int_equal(sum->n_windows, rows);
    assert_int_equal(sum->n_channels, 24);
    assert_string_equal(sum->channels[0], "setting1");
    assert_string_equal(sum->channels[23], "s21");

    st_sensor_t *ds;
    assert_int_equal(st_sensor_open(out, &ds, &err), 0);
    const st_sensor_meta_t *m = st_sensor_meta(ds);
    assert_int_equal(m->window_len, 1);
    assert_true(m->sample_rate_hz == 1.0);
    assert_true(m->has_target);
    int32_t *asset = malloc(rows * sizeof *asset);
    int64_t *ts = malloc(rows * sizeof *ts);
    float *target = malloc(rows * sizeof *target), *col = malloc(rows * sizeof *col);
    assert_int_equal(st_sensor_read_meta(ds, 0, rows, asset, ts, NULL, target, &err), 0);
    size_t units = 0;
    for (size_t i = 0; i < rows; i++) {
        const double *r = want + 2 + i * 27;
        assert_int_equal(asset[i], (int)r[0]);
        assert_true(ts[i] == (int64_t)r[1] * 1000000000LL);
        assert_true(target[i] == (float)r[2]);             /* exact: integers */
        units += i == 0 || asset[i] != asset[i - 1];
    }
    assert_int_equal(units, (size_t)want[1]);
    for (size_t c = 0; c < 24; c++) {
        assert_int_equal(st_sensor_read(ds, c, 0, rows, col, &err), 0);
        for (size_t i = 0; i < rows; i++)          /* exact: both round the decimal to float32 */
            assert_true(col[i] == (float)want[2 + i * 27 + 3 + c]);
    }
    st_sensor_close(&ds);
    free(asset);
    free(ts);
    free(target);
    free(col);
    free(want);
    free(sum);
    unlink(out);
}

static void test_cmapss_train(void **state) { (void)state; check_cmapss("train_FD001.txt", NULL); }
static void test_cmapss_test(void **state) { (void)state; check_cmapss("test_FD001.txt", "RUL_FD001.txt"); }

static int cmapss_text(const char *text, const char *rul_text, kiln_err_t *err, char *path)
{
    char out[512], rpath[512];
    oracle_tmp_path(path, ".txt");
    oracle_tmp_path(out, ".h5");
    write_text(path, text);
    if (rul_text) {
        oracle_tmp_path(rpath, ".txt");
        write_text(rpath, rul_text);
    }
    jb_ingest_summary_t *sum = calloc(1, sizeof *sum);
    int rc = jb_ingest_cmapss(out, path, rul_text ? rpath : NULL, NULL, sum, err);
    free(sum);
    unlink(out);
    if (rul_text)
        unlink(rpath);
    return rc;
}

static void test_cmapss_bad(void **state)
{
    (void)state;
    char row[1024], text[8192], path[512];
    kiln_err_t err = {0};
    /* 26 fields with C-MAPSS's two trailing spaces */
    const char *tail = "-0.0007 -0.0004 100.0 518.67 641.82 1589.70 1400.60 14.62 21.61 "
                       "554.36 2388.06 9046.19 1.30 47.47 521.66 2388.02 8138.62 8.4195 "
                       "0.03 392 2388 100.00 39.06 23.4190  \n";
    snprintf(text, sizeof text, "1 1 %s1 2 %s2 1 %s", tail, tail, tail);
    assert_int_equal(cmapss_text(text, NULL, &err, path), 0);
    assert_int_equal(cmapss_text(text, "5 \n7 \n", &err, path), 0);
    /* test file whose unit 2 has no RUL line */
    assert_int_equal(cmapss_text(text, "5 \n", &err, path), KILN_ENOTFOUND);
    assert_non_null(strstr(err.msg, "unit 2"));
    /* RUL file with a bad line */
    assert_int_equal(cmapss_text(text, "5 \nx\n", &err, path), KILN_EFORMAT);
    assert_int_equal(err.line, 2);

    /* 25 fields on line 2 */
    snprintf(row, sizeof row, "1 2 %s", tail + strlen("-0.0007 "));
    snprintf(text, sizeof text, "1 1 %s%s", tail, row);
    assert_int_equal(cmapss_text(text, NULL, &err, path), KILN_EFORMAT);
    assert_int_equal(err.line, 2);
    assert_non_null(strstr(err.msg, path));
    assert_non_null(strstr(err.msg, "line 2"));
    /* a bad number on line 3 */
    snprintf(text, sizeof text, "1 1 %s1 2 %s1 3 -0.0007 abc %s", tail, tail,
             tail + strlen("-0.0007 -0.0004 "));
    assert_int_equal(cmapss_text(text, NULL, &err, path), KILN_EFORMAT);
    assert_int_equal(err.line, 3);
    assert_non_null(strstr(err.msg, "abc"));
    /* a finite value past float32 (sensor 5 on line 2) is refused while parsing,
     * naming the input file, its line and field, not the output file */
    snprintf(row, sizeof row, "1 2 -0.0007 -0.0004 100.0 518.67 641.82 1589.70 1400.60 1e39 %s",
             tail + strlen("-0.0007 -0.0004 100.0 518.67 641.82 1589.70 1400.60 14.62 "));
    snprintf(text, sizeof text, "1 1 %s%s", tail, row);
    assert_int_equal(cmapss_text(text, NULL, &err, path), KILN_ENONFINITE);
    assert_int_equal(err.line, 2);
    assert_non_null(strstr(err.msg, path));
    assert_non_null(strstr(err.msg, "line 2"));
    assert_non_null(strstr(err.msg, "field 10"));
    assert_non_null(strstr(err.msg, "1e39"));
    assert_null(strstr(err.msg, ".h5"));
    /* cycles going backwards, units out of order */
    snprintf(text, sizeof text, "1 2 %s1 1 %s", tail, tail);
    assert_int_equal(cmapss_text(text, NULL, &err, path), KILN_EFORMAT);
    assert_int_equal(err.line, 2);
    snprintf(text, sizeof text, "2 1 %s1 1 %s", tail, tail);
    assert_int_equal(cmapss_text(text, NULL, &err, path), KILN_EFORMAT);
    /* empty */
    assert_int_equal(cmapss_text("", NULL, &err, path), KILN_EFORMAT);
    unlink(path);
    /* nonexistent */
    jb_ingest_summary_t *sum = calloc(1, sizeof *sum);
    assert_int_equal(jb_ingest_cmapss("/nonexistent/x.h5", "/nonexistent/train.txt", NULL, NULL,
                                      sum, &err), KILN_ENOTFOUND);
    assert_non_null(strstr(err.msg, "/nonexistent/train.txt"));
    free(sum);
}

/* ---- allocation failure: every Nth allocation fails, nothing leaks (ASan) -- */

typedef int (*ingest_fn)(const char *out, const char *in, kiln_err_t *err);

static int chaos_csv(const char *out, const char *in, kiln_err_t *err)
{
    jb_ingest_opts_t o = {.window_len = 2};
    jb_ingest_summary_t sum;
    return jb_ingest_csv(out, in, &o, &sum, err);
}

static int chaos_cmapss(const char *out, const char *in, kiln_err_t *err)
{
    jb_ingest_summary_t sum;
    return jb_ingest_cmapss(out, in, NULL, NULL, &sum, err);
}

static int chaos_cwru(const char *out, const char *in, kiln_err_t *err)
{
    jb_ingest_summary_t sum;
    const char *p[1] = {in};
    jb_ingest_opts_t o = {.window_len = 4096, .channels = "DE"};
    return jb_ingest_cwru(out, p, 1, &o, &sum, err);
}

static void chaos(ingest_fn fn, const char *in)
{
    char out[512];
    kiln_err_t err;
    oracle_tmp_path(out, ".h5");
    for (long n = 1; n < 10000; n++) {
        kiln_alloc_fail_after(n);
        int rc = fn(out, in, &err);
        kiln_alloc_fail_after(0);
        assert_int_not_equal(rc, KILN_EINTERNAL);
        if (rc == 0) {
            print_message("%s: succeeded once %ld allocations could succeed\n", in, n - 1);
            unlink(out);
            return;
        }
        assert_int_not_equal(access(out, F_OK), 0);
    }
    fail_msg("never succeeded");
}

static void test_alloc_failures(void **state)
{
    (void)state;
    char csv[512], cm[512], mat[600];
    oracle_tmp_path(csv, ".csv");
    write_text(csv, "timestamp,asset,a,b,label\n0,1,1,2,x\n0,2,1,2,y\n1,1,3,4,y\n1,2,3,4,x\n");
    chaos(chaos_csv, csv);
    unlink(csv);
    oracle_tmp_path(cm, ".txt");
    char text[4096];
    const char *tail = "1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24  \n";
    snprintf(text, sizeof text, "1 1 %s1 2 %s2 1 %s", tail, tail, tail);
    write_text(cm, text);
    chaos(chaos_cmapss, cm);
    unlink(cm);
    snprintf(mat, sizeof mat, "%s/cwru/normal_0_97.mat", oracle_data_dir());
    if (access(mat, R_OK) == 0)
        chaos(chaos_cwru, mat);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cwru_real),
        cmocka_unit_test(test_cwru_channels_hop),
        cmocka_unit_test(test_cwru_bad),
        cmocka_unit_test(test_cmapss_train),
        cmocka_unit_test(test_cmapss_test),
        cmocka_unit_test(test_cmapss_bad),
        cmocka_unit_test(test_alloc_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
