/* test_gen.c - the synthetic data generator: deterministic for a seed and
 * independent of the thread count, the shape and labels asked for, assets
 * that degrade, and the physics (an outer-race window's envelope spectrum
 * peaks at the asset's BPFO, computed by scipy.signal.hilbert). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "oracle.h"
#include "core/kiln_alloc.h"
#include "jobs/gen.h"
#include "kernels/kernels.h"
#include "storage/sensor.h"

static void gen_ok(const jb_gen_opts_t *o, char *out, jb_ingest_summary_t *sum)
{
    kiln_err_t err = {0};
    oracle_tmp_path(out, ".h5");
    int rc = jb_gen(out, o, sum, &err);
    if (rc < 0)
        fail_msg("%s", err.msg);
}

static void test_gen_deterministic(void **state)
{
    (void)state;
    char a[512], b[512], c[512], d[512];
    jb_ingest_summary_t *s1 = calloc(4, sizeof *s1);
    jb_gen_opts_t o = {.n_windows = 300, .window_len = 512, .n_assets = 5, .seed = 7,
                       .n_threads = 2};
    gen_ok(&o, a, &s1[0]);
    gen_ok(&o, b, &s1[1]);
    assert_string_equal(s1[0].hash, s1[1].hash);
    o.n_threads = 3;                          /* other slicing of every batch: same bytes */
    gen_ok(&o, d, &s1[3]);
    assert_string_equal(s1[0].hash, s1[3].hash);
    o.n_threads = 2;
    o.seed = 8;
    gen_ok(&o, c, &s1[2]);
    assert_string_not_equal(s1[0].hash, s1[2].hash);
    /* the stored hash is the recomputed content hash */
    st_sensor_t *ds;
    kiln_err_t err = {0};
    char hex[65];
    assert_int_equal(st_sensor_open(a, &ds, &err), 0);
    assert_int_equal(st_sensor_hash(ds, hex, &err), 0);
    assert_string_equal(hex, s1[0].hash);
    st_sensor_close(&ds);
    unlink(a);
    unlink(b);
    unlink(c);
    unlink(d);
    free(s1);
}

static void test_gen_shape_labels(void **state)
{
    (void)state;
    char out[512];
    jb_ingest_summary_t *s = calloc(1, sizeof *s);
    const size_t n = 2000, L = 256, assets = 8;
    jb_gen_opts_t o = {.n_windows = n, .window_len = L, .n_assets = assets, .seed = 11,
                       .sample_rate_hz = 10000, .channels = "acc,temp_bearing"};
    gen_ok(&o, out, s);
    assert_int_equal(s->n_windows, n);
    st_sensor_t *ds;
    kiln_err_t err = {0};
    assert_int_equal(st_sensor_open(out, &ds, &err), 0);
    const st_sensor_meta_t *m = st_sensor_meta(ds);
    assert_int_equal(m->n_windows, n);
    assert_int_equal(m->window_len, L);
    assert_true(m->sample_rate_hz == 10000.0);
    assert_int_equal(m->n_channels, 2);
    assert_string_equal(m->channels[0], "acc");
    assert_string_equal(m->channels[1], "temp_bearing");
    assert_int_equal(m->n_label_names, 4);
    static const char *const names[4] = {"normal", "outer_race", "inner_race", "ball"};
    for (int l = 0; l < 4; l++)
        assert_string_equal(m->label_names[l], names[l]);

    int32_t *asset = malloc(n * sizeof *asset), *label = malloc(n * sizeof *label);
    int64_t *ts = malloc(n * sizeof *ts);
    float *target = malloc(n * sizeof *target);
    float *temp = malloc(n * L * sizeof *temp);
    assert_int_equal(st_sensor_read_meta(ds, 0, n, asset, ts, label, target, &err), 0);
    assert_int_equal(st_sensor_read(ds, 1, 0, n, temp, &err), 0);
    size_t counts[4] = {0}, early_faulty = 0, late_faulty = 0, n_life = n / assets;
    double temp_sum[2] = {0}, temp_n[2] = {0};
    for (size_t w = 0; w < n; w++) {
        size_t life = w / assets;
        assert_int_equal(asset[w], (int)(w % assets));
        assert_true(ts[w] == 1704067200000000000LL + (int64_t)life * 600000000000LL);
        assert_true(target[w] == (float)(n_life - 1 - life));
        assert_true(label[w] == 0 || label[w] == jb_gen_asset_fault(11, asset[w]));
        counts[label[w]]++;
        if (life < n_life / 5)
            early_faulty += label[w] != 0;
        if (life >= n_life * 4 / 5)
            late_faulty += label[w] != 0;
        if (life >= n_life / 2) {                    /* temperature: faulty runs hotter */
            double mean = 0;
            for (size_t i = 0; i < L; i++)
                mean += temp[w * L + i];
            temp_sum[label[w] != 0] += mean / (double)L;
            temp_n[label[w] != 0]++;
        }
    }
    for (int l = 0; l < 4; l++) {
        assert_int_equal(counts[l], s->label_counts[l]);
        assert_true(counts[l] > 0);                  /* 8 assets cover every fault */
    }
    /* Onsets lie in 0.3..0.7 of life: the first fifth is (nearly) all normal,
     * the last fifth mostly faulty. */
    print_message("faulty: first fifth %zu, last fifth %zu of %zu each; temp normal %.1f faulty %.1f\n",
                  early_faulty, late_faulty, n / 5, temp_sum[0] / temp_n[0], temp_sum[1] / temp_n[1]);
    assert_true(early_faulty * 20 < n / 5);
    assert_true(late_faulty * 10 > (n / 5) * 8);
    assert_true(temp_sum[1] / temp_n[1] > temp_sum[0] / temp_n[0] + 3.0);
    st_sensor_close(&ds);
    free(asset);
    free(label);
    free(ts);
    free(target);
    free(temp);
    free(s);
    unlink(out);
}

/* Envelope spectrum of outer-race windows peaks at BPFO.  Resolution: 8192
 * samples at 12 kHz = 1.46 Hz per bin; the impulse period slips 1% at random,
 * so the line may spread a bin: tolerance 3 Hz (2 bins). */
static void test_gen_physics(void **state)
{
    (void)state;
    char out[512];
    jb_ingest_summary_t *s = calloc(1, sizeof *s);
    const size_t n = 60, L = 8192, assets = 3;
    const uint64_t seed = 5;
    jb_gen_opts_t o = {.n_windows = n, .window_len = L, .n_assets = assets, .seed = seed,
                       .channels = "vib_x"};
    gen_ok(&o, out, s);
    st_sensor_t *ds;
    kiln_err_t err = {0};
    assert_int_equal(st_sensor_open(out, &ds, &err), 0);
    int32_t asset[60], label[60];
    assert_int_equal(st_sensor_read_meta(ds, 0, n, asset, NULL, label, NULL, &err), 0);
    /* the last outer-race window and the first normal window of the same asset */
    int w_or = -1, w_norm = -1;
    for (int w = (int)n - 1; w >= 0; w--)
        if (label[w] == JB_GEN_OUTER_RACE) {
            w_or = w;
            break;
        }
    assert_true(w_or >= 0);
    for (int w = 0; w < (int)n; w++)
        if (label[w] == JB_GEN_NORMAL && asset[w] == asset[w_or]) {
            w_norm = w;
            break;
        }
    assert_true(w_norm >= 0);
    float *x = malloc(2 * L * sizeof *x);
    assert_int_equal(st_sensor_read(ds, 0, (size_t)w_or, 1, x, &err), 0);
    assert_int_equal(st_sensor_read(ds, 0, (size_t)w_norm, 1, x + L, &err), 0);
    double res = jb_gen_resonance_hz(12000);
    char params[256];
    snprintf(params, sizeof params, "{\"rate\": 12000, \"lo\": %g, \"hi\": %g, \"fmin\": 10, "
             "\"fmax\": 500}", res - 1000, res + 1500);
    double *peak;
    size_t np;
    assert_int_equal(oracle_run_f("envelope_peak", params, x, 2, L, &peak, &np), 0);
    assert_int_equal(np, 6);
    kn_bearing_freqs_t f;
    kn_bearing_defect_freqs(9, 0.3126, 1.537, 0.0, jb_gen_asset_shaft_hz(seed, asset[w_or]), &f);
    print_message("asset %d: BPFO %.2f Hz, envelope peak %.2f Hz (amp %.4f, median %.4f); "
                  "normal window peak amp %.4f\n", asset[w_or], f.bpfo_hz, peak[0], peak[1],
                  peak[2], peak[4]);
    assert_true(fabs(peak[0] - f.bpfo_hz) <= 3.0);
    assert_true(peak[1] > 10.0 * peak[2]);           /* a clear line above the floor */
    assert_true(peak[1] > 10.0 * peak[4]);           /* and absent from a normal window */
    free(peak);
    free(x);
    st_sensor_close(&ds);
    free(s);
    unlink(out);
}

static void test_gen_bad_options(void **state)
{
    (void)state;
    char out[512];
    kiln_err_t err = {0};
    jb_ingest_summary_t *s = calloc(1, sizeof *s);
    oracle_tmp_path(out, ".h5");
    jb_gen_opts_t o = {.n_windows = 0};
    assert_int_equal(jb_gen(out, &o, s, &err), KILN_EINVAL);
    assert_non_null(strstr(err.msg, "windows"));
    o.n_windows = 10;
    o.channels = "vib,,temp";
    assert_int_equal(jb_gen(out, &o, s, &err), KILN_EINVAL);
    assert_non_null(strstr(err.msg, "empty name"));
    o.channels = "a,a";
    assert_int_equal(jb_gen(out, &o, s, &err), KILN_EINVAL);
    o.channels = NULL;
    o.sample_rate_hz = 100;
    assert_int_equal(jb_gen(out, &o, s, &err), KILN_EINVAL);
    assert_non_null(strstr(err.msg, "rate"));
    o.sample_rate_hz = 0;
    o.window_len = 4;
    assert_int_equal(jb_gen(out, &o, s, &err), KILN_EINVAL);
    assert_int_not_equal(access(out, F_OK), 0);
    free(s);
}

/* Options whose arithmetic would overflow are refused up front, naming the
 * option: a life past 12,532,175 snapshots (timestamps past 2262), --windows
 * near SIZE_MAX (n_windows + n_assets - 1 wrapped), and windows x channels
 * whose two batch buffers would pass 1 GiB. */
static void test_gen_overflow_options(void **state)
{
    (void)state;
    char out[512];
    kiln_err_t err = {0};
    jb_ingest_summary_t *s = calloc(1, sizeof *s);
    oracle_tmp_path(out, ".h5");
    jb_gen_opts_t o = {.n_windows = 12532177, .n_assets = 1, .window_len = 16};
    assert_int_equal(jb_gen(out, &o, s, &err), KILN_EINVAL);
    assert_non_null(strstr(err.msg, "--windows"));
    assert_non_null(strstr(err.msg, "overflow"));
    o.n_windows = SIZE_MAX;
    o.n_assets = 16;
    assert_int_equal(jb_gen(out, &o, s, &err), KILN_EINVAL);
    assert_non_null(strstr(err.msg, "--windows"));
    o.n_windows = SIZE_MAX - 3;               /* + n_assets - 1 wraps to a few */
    o.n_assets = 1u << 30;
    assert_int_equal(jb_gen(out, &o, s, &err), KILN_EINVAL);
    assert_non_null(strstr(err.msg, "--windows"));
    o.n_windows = 2;
    o.n_assets = 1;
    o.window_len = 1u << 22;
    o.channels = "a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p,q,r,s,t,u,v,w,x,y,z,a1,b1,c1,d1,e1,f1,g1";
    assert_int_equal(jb_gen(out, &o, s, &err), KILN_EINVAL);
    assert_non_null(strstr(err.msg, "--window-len"));
    assert_int_not_equal(access(out, F_OK), 0);
    free(s);
}

/* Every Nth allocation fails: an error, no file, nothing leaked (ASan).  The
 * synthesis threads allocate nothing, so the process-wide hook is safe here. */
static void test_gen_alloc_failures(void **state)
{
    (void)state;
    char out[512];
    kiln_err_t err;
    jb_ingest_summary_t *s = calloc(1, sizeof *s);
    jb_gen_opts_t o = {.n_windows = 600, .window_len = 64, .n_assets = 3, .seed = 2};
    oracle_tmp_path(out, ".h5");
    for (long n = 1;; n++) {
        assert_true(n < 1000);
        kiln_alloc_fail_after(n);
        int rc = jb_gen(out, &o, s, &err);
        kiln_alloc_fail_after(0);
        if (rc == 0)
            break;
        assert_int_not_equal(access(out, F_OK), 0);
    }
    unlink(out);
    free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gen_deterministic),
        cmocka_unit_test(test_gen_shape_labels),
        cmocka_unit_test(test_gen_physics),
        cmocka_unit_test(test_gen_bad_options),
        cmocka_unit_test(test_gen_overflow_options),
        cmocka_unit_test(test_gen_alloc_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
