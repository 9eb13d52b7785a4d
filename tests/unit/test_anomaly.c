/* test_anomaly.c - km_anomaly against sklearn.covariance (LedoitWolf,
 * EmpiricalCovariance, ShrunkCovariance: location, covariance, shrinkage,
 * sqrt(mahalanobis)) and numpy.quantile; the false-alarm rate on held-out
 * healthy rows, faulty rows flagged, the healthy class, a fake 2-rank
 * reduce, determinism, save/load and corrupt bytes, bad input. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "oracle.h"
#include "core/kiln_alloc.h"
#include "kernels/anomaly.h"

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static double normal01(void)
{
    double u1 = oracle_uniform01(&rng_state), u2 = oracle_uniform01(&rng_state);
    return sqrt(-2.0 * log(u1 + 1e-300)) * cos(6.283185307179586 * u2);
}

/* n rows of a correlated Gaussian: x = mix * (z + shift e_0) + offset_j, with
 * a fixed lower-triangular mix (1 on the diagonal, +-0.6 below), so the
 * covariance is far from diagonal.  shift moves rows along the first whitened
 * axis: a faulty machine. */
static float *make_rows(size_t n, size_t d, double shift)
{
    float *x = malloc(n * d * sizeof *x);
    double z[64];
    assert_true(d <= 64);
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < d; j++)
            z[j] = normal01() + (j == 0 ? shift : 0);
        for (size_t a = 0; a < d; a++) {
            double v = 0.5 * (double)a;
            for (size_t b = 0; b <= a; b++)
                v += (a == b ? 1.0 : ((a + b) % 2 ? 0.6 : -0.6)) * z[b];
            x[i * d + a] = (float)v;
        }
    }
    return x;
}

static km_anomaly_t *fit(const float *x, size_t n, size_t d, const int32_t *y,
                         const km_anomaly_params_t *p)
{
    km_data_t data = {.x = x, .n = n, .d = d, .y = y, .n_classes = y ? 2 : 0};
    km_anomaly_t *m = NULL;
    kiln_err_t err;
    int rc = km_anomaly_fit(&data, p, NULL, &m, &err);
    if (rc != 0)
        print_error("fit: %s\n", err.msg);
    assert_int_equal(rc, 0);
    return m;
}

static km_buf_t save_bytes(const km_anomaly_t *m)
{
    km_buf_t b = {0};
    kiln_err_t err;
    assert_int_equal(km_anomaly_save(m, &b, &err), 0);
    return b;
}

static void assert_same_model(const km_anomaly_t *a, const km_anomaly_t *b)
{
    km_buf_t ba = save_bytes(a), bb = save_bytes(b);
    assert_int_equal(ba.len, bb.len);
    assert_memory_equal(ba.p, bb.p, ba.len);
    km_buf_free(&ba);
    km_buf_free(&bb);
}

/* Tolerances: location and covariance are double sums of the same float32
 * values in other orders (~1e-14 relative), so 1e-10 of the largest variance
 * catches any wrong divisor or centering; the shrinkage is a ratio of such
 * sums (1e-9).  Scores are rounded to float32 (6e-8 relative), hence 1e-6
 * relative.  The threshold is numpy.quantile of the training distances
 * exactly here (2000 rows <= quantile_sample), up to the distances' own
 * double rounding: 1e-9 relative. */
static void test_vs_sklearn(void **state)
{
    (void)state;
    const size_t n_train = 2000, n_query = 300, d = 6, n = n_train + n_query;
    float *x = make_rows(n, d, 0.0);
    float *faulty = make_rows(n_query, d, 4.0);
    memcpy(x + n_train * d, faulty, n_query * d * sizeof *x);
    free(faulty);
    const char *names[3] = {"\"lw\"", "0", "0.3"};
    const double shrink[3] = {KM_ANOMALY_LEDOIT_WOLF, 0.0, 0.3};
    float *scores = malloc(n * sizeof *scores);
    for (int c = 0; c < 3; c++) {
        km_anomaly_params_t p;
        km_anomaly_params_default(&p);
        p.shrinkage = shrink[c];
        km_anomaly_t *m = fit(x, n_train, d, NULL, &p);
        kiln_err_t err;
        assert_int_equal(km_anomaly_predict(m, x, n, scores, NULL, &err), 0);
        char params[128];
        snprintf(params, sizeof params, "{\"train\": %zu, \"shrinkage\": %s}", n_train, names[c]);
        double *want;
        size_t n_want;
        assert_int_equal(oracle_run_f("mb_mahalanobis", params, x, n, d, &want, &n_want), 0);
        assert_int_equal(n_want, 1 + d + d * d + n);
        const double *loc = want + 1, *cov = want + 1 + d, *dist = want + 1 + d + d * d;
        if (!(fabs(km_anomaly_shrinkage(m) - want[0]) <= 1e-9)) {
            print_error("%s: shrinkage %.17g, sklearn %.17g\n", names[c],
                        km_anomaly_shrinkage(m), want[0]);
            fail();
        }
        if (c == 0)
            assert_true(want[0] > 0.0);          /* the LW path really shrinks */
        double max_var = 0;
        for (size_t j = 0; j < d; j++)
            max_var = fmax(max_var, cov[j * d + j]);
        for (size_t j = 0; j < d; j++)
            assert_true(fabs(km_anomaly_location(m)[j] - loc[j]) <= 1e-10 * (1 + fabs(loc[j])));
        for (size_t j = 0; j < d * d; j++)
            assert_true(fabs(km_anomaly_covariance(m)[j] - cov[j]) <= 1e-10 * max_var);
        for (size_t i = 0; i < n; i++)
            if (!(fabs(scores[i] - dist[i]) <= 1e-6 * dist[i] + 1e-7)) {
                print_error("%s row %zu: distance %.9g, sklearn %.9g\n", names[c], i,
                            scores[i], dist[i]);
                fail();
            }
        double *q;
        size_t n_q;
        assert_int_equal(oracle_run("mb_quantile", "{\"q\": 0.99}", dist, 1, n_train, &q, &n_q), 0);
        assert_true(fabs(km_anomaly_threshold(m) - q[0]) <= 1e-9 * q[0]);
        free(q);
        free(want);
        km_anomaly_free(&m);
    }
    free(scores);
    free(x);
}

static size_t count_flagged(const km_anomaly_t *m, const float *x, size_t n)
{
    float *scores = malloc(n * sizeof *scores);
    int32_t *pred = malloc(n * sizeof *pred);
    kiln_err_t err;
    assert_int_equal(km_anomaly_predict(m, x, n, scores, pred, &err), 0);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        assert_true(pred[i] == 0 || pred[i] == 1);
        assert_true(pred[i] == ((double)scores[i] > km_anomaly_threshold(m)) ||
                    fabs((double)scores[i] - km_anomaly_threshold(m)) < 1e-6 * scores[i]);
        k += (size_t)pred[i];
    }
    free(scores);
    free(pred);
    return k;
}

/* 20000 training rows (more than quantile_sample: the approximate path).
 * Training rows flagged: rate * N within N / quantile_sample + 2 (the
 * documented rank error).  Held-out healthy rows: 1% with binomial sd
 * 0.07% plus the threshold's own sampling error, so +-0.4% is > 4 sd.
 * Faulty rows shifted 8 sd along one whitened axis: >= 98% flagged. */
static void test_false_alarm_rate(void **state)
{
    (void)state;
    const size_t n = 20000, d = 8;
    float *train = make_rows(n, d, 0.0), *held = make_rows(n, d, 0.0),
          *faulty = make_rows(2000, d, 8.0);
    km_anomaly_t *m = fit(train, n, d, NULL, NULL);
    assert_int_equal(km_anomaly_n_train(m), n);
    double n_flag = (double)count_flagged(m, train, n);
    assert_true(fabs(n_flag - 0.01 * (double)n) <= (double)n / 8192.0 + 2);
    double held_rate = (double)count_flagged(m, held, n) / (double)n;
    if (!(fabs(held_rate - 0.01) <= 0.004)) {
        print_error("held-out false-alarm rate %.4f, target 0.01\n", held_rate);
        fail();
    }
    double hit = (double)count_flagged(m, faulty, 2000) / 2000.0;
    assert_true(hit >= 0.98);

    km_anomaly_params_t p;
    km_anomaly_params_default(&p);
    p.false_alarm_rate = 0.05;
    km_anomaly_t *m5 = fit(train, n, d, NULL, &p);
    held_rate = (double)count_flagged(m5, held, n) / (double)n;
    assert_true(fabs(held_rate - 0.05) <= 0.008);
    assert_true(km_anomaly_threshold(m5) < km_anomaly_threshold(m));
    km_anomaly_free(&m5);
    km_anomaly_free(&m);
    free(train);
    free(held);
    free(faulty);
}

/* With y, only rows of the healthy class count: the model equals, byte for
 * byte, the one fitted on those rows alone. */
static void test_healthy_class(void **state)
{
    (void)state;
    const size_t n = 3000, d = 4;
    float *x = make_rows(n, d, 0.0), *bad = make_rows(n, d, 5.0);
    int32_t *y = malloc(n * sizeof *y);
    float *healthy = malloc(n * d * sizeof *healthy);
    size_t n_healthy = 0;
    for (size_t i = 0; i < n; i++) {
        y[i] = i % 3 == 0 ? 1 : i % 7 == 0 ? -1 : 0;
        if (y[i] != 0)
            memcpy(x + i * d, bad + i * d, d * sizeof *x);
        else
            memcpy(healthy + n_healthy++ * d, x + i * d, d * sizeof *x);
    }
    x[3 * d + 1] = NAN;                 /* row 3 is class 1: ignored, not an error */
    km_anomaly_t *with_y = fit(x, n, d, y, NULL), *alone = fit(healthy, n_healthy, d, NULL, NULL);
    assert_same_model(with_y, alone);
    assert_int_equal(km_anomaly_n_train(with_y), n_healthy);
    km_anomaly_params_t p;
    km_anomaly_params_default(&p);
    p.healthy_class = 1;
    km_data_t data = {.x = x, .n = n, .d = d, .y = y, .n_classes = 2};
    km_anomaly_t *other = NULL;
    kiln_err_t err;
    assert_int_equal(km_anomaly_fit(&data, &p, NULL, &other, &err), KILN_ENONFINITE);
    assert_non_null(strstr(err.msg, "row 3 feature 1"));
    km_anomaly_free(&with_y);
    km_anomaly_free(&alone);
    free(healthy);
    free(y);
    free(bad);
    free(x);
}

/* ---- a fake communicator: ranks are threads, sum() meets at a barrier */

#define N_RANKS 2

typedef struct {
    pthread_barrier_t barrier;
    double           *slots[N_RANKS];
} comm_t;

typedef struct {
    comm_t              *comm;
    km_reduce_t          reduce;
    km_data_t            data;
    km_anomaly_params_t  params;
    km_anomaly_t        *model;
    kiln_err_t           err;
    int                  rc, calls;
} rank_t;

/* Every rank adds the slots in rank order, so all ranks get the same bits. */
static int fake_sum(void *ud, double *buf, size_t n, kiln_err_t *err)
{
    rank_t *me = ud;
    comm_t *c = me->comm;
    (void)err;
    me->calls++;
    c->slots[me->reduce.rank] = buf;
    pthread_barrier_wait(&c->barrier);
    double *acc = calloc(n ? n : 1, sizeof *acc);
    assert_non_null(acc);
    for (int r = 0; r < N_RANKS; r++)
        for (size_t i = 0; i < n; i++)
            acc[i] += c->slots[r][i];
    pthread_barrier_wait(&c->barrier);     /* all have read before any write */
    memcpy(buf, acc, n * sizeof *acc);
    free(acc);
    return 0;
}

static void *rank_main(void *arg)
{
    rank_t *me = arg;
    me->rc = km_anomaly_fit(&me->data, &me->params, &me->reduce, &me->model, &me->err);
    return NULL;
}

static void fit_two_ranks(const float *x, size_t n, size_t d, size_t cut,
                          const km_anomaly_params_t *p, rank_t *ranks)
{
    comm_t comm;
    pthread_t th[N_RANKS];
    pthread_barrier_init(&comm.barrier, NULL, N_RANKS);
    for (int r = 0; r < N_RANKS; r++) {
        size_t lo = r == 0 ? 0 : cut, hi = r == 0 ? cut : n;
        memset(&ranks[r], 0, sizeof ranks[r]);
        ranks[r].comm = &comm;
        ranks[r].reduce = (km_reduce_t){fake_sum, &ranks[r], r, N_RANKS};
        ranks[r].data = (km_data_t){.x = x + lo * d, .n = hi - lo, .d = d};
        ranks[r].params = *p;
        pthread_create(&th[r], NULL, rank_main, &ranks[r]);
    }
    for (int r = 0; r < N_RANKS; r++)
        pthread_join(th[r], NULL);
    pthread_barrier_destroy(&comm.barrier);
}

/* Two ranks: the same bytes on both; the one-rank location and covariance
 * to 1e-12 (double sums merged in another order); the threshold exact
 * (each rank <= quantile_sample) to 1e-9; with quantile_sample 256 the
 * training rows flagged stay within the documented N/256 + 2. */
static void test_two_ranks(void **state)
{
    (void)state;
    const size_t n = 6000, d = 5;
    float *x = make_rows(n, d, 0.0);
    km_anomaly_params_t p;
    km_anomaly_params_default(&p);
    km_anomaly_t *one = fit(x, n, d, NULL, &p);
    for (int small = 0; small < 2; small++) {
        p.quantile_sample = small ? 256 : 8192;
        rank_t ranks[N_RANKS];
        fit_two_ranks(x, n, d, 2500, &p, ranks);
        assert_int_equal(ranks[0].rc, 0);
        assert_int_equal(ranks[1].rc, 0);
        assert_int_equal(ranks[0].calls, 3);
        assert_same_model(ranks[0].model, ranks[1].model);
        const km_anomaly_t *m = ranks[0].model;
        assert_int_equal(km_anomaly_n_train(m), n);
        double max_var = 0;
        for (size_t j = 0; j < d; j++)
            max_var = fmax(max_var, km_anomaly_covariance(one)[j * d + j]);
        for (size_t j = 0; j < d; j++)
            assert_true(fabs(km_anomaly_location(m)[j] - km_anomaly_location(one)[j]) <=
                        1e-12 * (1 + fabs(km_anomaly_location(one)[j])));
        for (size_t j = 0; j < d * d; j++)
            assert_true(fabs(km_anomaly_covariance(m)[j] - km_anomaly_covariance(one)[j]) <=
                        1e-12 * max_var);
        assert_true(fabs(km_anomaly_shrinkage(m) - km_anomaly_shrinkage(one)) <= 1e-12);
        if (!small)
            assert_true(fabs(km_anomaly_threshold(m) - km_anomaly_threshold(one)) <=
                        1e-9 * km_anomaly_threshold(one));
        double n_flag = (double)count_flagged(m, x, n);
        assert_true(fabs(n_flag - 0.01 * (double)n) <= (double)n / (double)p.quantile_sample + 2);
        km_anomaly_free(&ranks[0].model);
        km_anomaly_free(&ranks[1].model);
    }
    /* NaN on rank 1 only: both ranks fail after the first sum, none hangs */
    x[3000 * d + 2] = NAN;
    rank_t ranks[N_RANKS];
    fit_two_ranks(x, n, d, 2500, &p, ranks);
    assert_int_equal(ranks[0].rc, KILN_ENONFINITE);
    assert_int_equal(ranks[1].rc, KILN_ENONFINITE);
    assert_non_null(strstr(ranks[1].err.msg, "row 500 feature 2"));
    assert_int_equal(ranks[0].calls, 1);
    assert_int_equal(ranks[1].calls, 1);
    assert_null(ranks[0].model);
    km_anomaly_free(&one);
    free(x);
}

static void test_deterministic(void **state)
{
    (void)state;
    float *x = make_rows(10000, 6, 0.0);
    km_anomaly_t *a = fit(x, 10000, 6, NULL, NULL), *b = fit(x, 10000, 6, NULL, NULL);
    assert_same_model(a, b);
    km_anomaly_free(&a);
    km_anomaly_free(&b);
    free(x);
}

static void test_save_load(void **state)
{
    (void)state;
    const size_t n = 500, d = 3;
    float *x = make_rows(n, d, 0.0);
    km_anomaly_t *m = fit(x, n, d, NULL, NULL), *back = NULL;
    km_buf_t b = save_bytes(m);
    kiln_err_t err;
    assert_int_equal(b.len, 4 + 4 + 8 + 8 + 3 * 8 + (d + d * d) * 8 + 8);
    assert_int_equal(km_anomaly_load(b.p, b.len, &back, &err), 0);
    assert_same_model(m, back);
    assert_int_equal(km_anomaly_n_features(back), d);
    assert_int_equal(km_anomaly_n_outputs(back), 1);
    float s1[500], s2[500];
    int32_t p1[500], p2[500];
    assert_int_equal(km_anomaly_predict(m, x, n, s1, p1, &err), 0);
    assert_int_equal(km_anomaly_predict(back, x, n, s2, p2, &err), 0);
    assert_memory_equal(s1, s2, sizeof s1);
    assert_memory_equal(p1, p2, sizeof p1);
    km_anomaly_free(&back);

    unsigned char *bad = malloc(b.len + 1);
    for (size_t i = 0; i < b.len; i++) {
        memcpy(bad, b.p, b.len);
        bad[i] ^= 0x01;
        assert_int_equal(km_anomaly_load(bad, b.len, &back, &err), KILN_EFORMAT);
        assert_null(back);
        assert_int_equal(km_anomaly_load(b.p, i, &back, &err), KILN_EFORMAT);
        assert_null(back);
    }
    memcpy(bad, b.p, b.len);
    bad[b.len] = 7;
    assert_int_equal(km_anomaly_load(bad, b.len + 1, &back, &err), KILN_EFORMAT);
    assert_non_null(strstr(err.msg, "trailing"));
    /* read: a model then something else; the reader stops right after it */
    km_rd_t r = {bad, b.len + 1, 0};
    assert_int_equal(km_anomaly_read(&r, &back, &err), 0);
    assert_int_equal(r.off, b.len);
    km_anomaly_free(&back);
    free(bad);
    km_buf_free(&b);
    km_anomaly_free(&m);
    free(x);
}

static void test_bad_input(void **state)
{
    (void)state;
    const size_t n = 200, d = 3;
    float *x = make_rows(n, d, 0.0);
    km_data_t data = {.x = x, .n = n, .d = d};
    km_anomaly_params_t p;
    km_anomaly_t *m = NULL;
    kiln_err_t err;
    const double bad_rates[] = {0.0, 1.0, -0.1, NAN};
    for (int i = 0; i < 4; i++) {
        km_anomaly_params_default(&p);
        p.false_alarm_rate = bad_rates[i];
        assert_int_equal(km_anomaly_fit(&data, &p, NULL, &m, &err), KILN_EINVAL);
        assert_string_equal(err.where, "false_alarm_rate");
    }
    const double bad_shrink[] = {1.5, -0.5, NAN};
    for (int i = 0; i < 3; i++) {
        km_anomaly_params_default(&p);
        p.shrinkage = bad_shrink[i];
        assert_int_equal(km_anomaly_fit(&data, &p, NULL, &m, &err), KILN_EINVAL);
        assert_string_equal(err.where, "shrinkage");
    }
    km_anomaly_params_default(&p);
    p.quantile_sample = 3;
    assert_int_equal(km_anomaly_fit(&data, &p, NULL, &m, &err), KILN_EINVAL);
    km_anomaly_params_default(&p);
    assert_int_equal(km_anomaly_fit(&data, &p, NULL, NULL, &err), KILN_EINVAL);
    assert_int_equal(km_anomaly_fit(NULL, &p, NULL, &m, &err), KILN_EINVAL);
    km_data_t d0 = {.x = x, .n = n, .d = 0};
    assert_int_equal(km_anomaly_fit(&d0, &p, NULL, &m, &err), KILN_EINVAL);
    km_data_t one_row = {.x = x, .n = 1, .d = d};
    assert_int_equal(km_anomaly_fit(&one_row, &p, NULL, &m, &err), KILN_EINVAL);
    assert_non_null(strstr(err.msg, "at least 2"));
    int32_t *y = calloc(n, sizeof *y);
    km_data_t no_healthy = {.x = x, .n = n, .d = d, .y = y, .n_classes = 2};
    p.healthy_class = 1;                          /* every row is class 0 */
    assert_int_equal(km_anomaly_fit(&no_healthy, &p, NULL, &m, &err), KILN_EINVAL);
    free(y);
    km_anomaly_params_default(&p);
    x[7 * d] = INFINITY;
    assert_int_equal(km_anomaly_fit(&data, &p, NULL, &m, &err), KILN_ENONFINITE);
    assert_non_null(strstr(err.msg, "row 7 feature 0"));
    assert_null(m);
    x[7 * d] = 0;

    /* a duplicated feature: singular without shrinkage, fine with it */
    for (size_t i = 0; i < n; i++)
        x[i * d + 2] = x[i * d + 0];
    p.shrinkage = 0;
    assert_int_equal(km_anomaly_fit(&data, &p, NULL, &m, &err), KILN_EINVAL);
    assert_non_null(strstr(err.msg, "not positive definite"));
    assert_null(m);
    p.shrinkage = KM_ANOMALY_LEDOIT_WOLF;
    assert_int_equal(km_anomaly_fit(&data, &p, NULL, &m, &err), 0);
    /* every feature constant: no shrinkage saves it */
    float flat[12] = {1, 2, 3, 1, 2, 3, 1, 2, 3, 1, 2, 3};
    km_data_t flat_data = {.x = flat, .n = 4, .d = 3};
    km_anomaly_t *m2 = NULL;
    assert_int_equal(km_anomaly_fit(&flat_data, &p, NULL, &m2, &err), KILN_EINVAL);

    float s[2];
    int32_t pr[2];
    float row[6] = {0, 0, 0, 0, NAN, 0};
    assert_int_equal(km_anomaly_predict(m, row, 2, s, pr, &err), KILN_ENONFINITE);
    assert_non_null(strstr(err.msg, "row 1 feature 1"));
    assert_int_equal(km_anomaly_predict(m, NULL, 2, s, pr, &err), KILN_EINVAL);
    assert_int_equal(km_anomaly_predict(m, row, 2, NULL, pr, &err), KILN_EINVAL);
    assert_int_equal(km_anomaly_predict(NULL, row, 2, s, pr, &err), KILN_EINVAL);
    assert_int_equal(km_anomaly_save(m, NULL, &err), KILN_EINVAL);
    assert_int_equal(km_anomaly_load(NULL, 0, &m2, &err), KILN_EFORMAT);
    km_anomaly_free(&m);
    assert_null(m);
    km_anomaly_free(&m);
    free(x);
}

/* Failing the k-th allocation for every k: KILN_ENOMEM and nothing leaked
 * (ASan) until some k lets fit, then load, through. */
static void test_alloc_failure(void **state)
{
    (void)state;
    float *x = make_rows(300, 4, 0.0);
    km_data_t data = {.x = x, .n = 300, .d = 4};
    kiln_err_t err;
    km_anomaly_t *m = NULL;
    int k, rc;
    for (k = 1; k < 50; k++) {
        kiln_alloc_fail_after(k);
        rc = km_anomaly_fit(&data, NULL, NULL, &m, &err);
        kiln_alloc_fail_after(0);
        if (rc == 0)
            break;
        assert_int_equal(rc, KILN_ENOMEM);
        assert_null(m);
    }
    assert_true(k > 5 && k < 50);
    km_buf_t b = save_bytes(m);
    km_anomaly_free(&m);
    for (k = 1; k < 50; k++) {
        kiln_alloc_fail_after(k);
        rc = km_anomaly_load(b.p, b.len, &m, &err);
        kiln_alloc_fail_after(0);
        if (rc == 0)
            break;
        assert_int_equal(rc, KILN_ENOMEM);
    }
    assert_true(k > 1 && k < 50);
    float s[300];
    kiln_alloc_fail_after(1);
    rc = km_anomaly_predict(m, x, 300, s, NULL, &err);
    kiln_alloc_fail_after(0);
    assert_int_equal(rc, KILN_ENOMEM);
    km_anomaly_free(&m);
    km_buf_free(&b);
    free(x);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vs_sklearn),
        cmocka_unit_test(test_false_alarm_rate),
        cmocka_unit_test(test_healthy_class),
        cmocka_unit_test(test_two_ranks),
        cmocka_unit_test(test_deterministic),
        cmocka_unit_test(test_save_load),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_alloc_failure),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
