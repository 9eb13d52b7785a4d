/* test_scaler.c - km_scaler against sklearn's StandardScaler, data-parallel
 * fits through a fake 2- and 3-rank reduce (threads and a barrier) against
 * the one-rank fit, save/load round trips, corrupt bytes and bad input. */
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
#include "kernels/scaler.h"

static uint64_t rng_state = 0x2545F4914F6CDD1Dull;

static double normal01(void)
{
    double u1 = oracle_uniform01(&rng_state), u2 = oracle_uniform01(&rng_state);
    return sqrt(-2.0 * log(u1 + 1e-300)) * cos(6.283185307179586 * u2);
}

/* n x d features of different scales: feature 0 sits at 1000 with spread
 * 0.01 (the one-pass E[x^2] - mean^2 formula loses it), the last one is
 * constant (scale must be 1), the rest skewed or plain. */
static float *make_features(size_t n, size_t d)
{
    float *x = malloc(n * d * sizeof *x);
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < d; j++) {
            double v;
            if (j == 0)
                v = 1000.0 + 0.01 * normal01();
            else if (j == d - 1)
                v = 0.3;
            else if (j % 2)
                v = exp(normal01()) * (double)j;
            else
                v = -5.0 + 3.0 * normal01();
            x[i * d + j] = (float)v;
        }
    return x;
}

/* ---- a fake communicator: ranks are threads, sum() meets at a barrier */

#define MAX_RANKS 4

typedef struct {
    pthread_barrier_t barrier;
    double           *slots[MAX_RANKS];
    int               n_ranks;
} comm_t;

typedef struct {
    comm_t      *comm;
    km_reduce_t  reduce;
    km_data_t    data;
    km_scaler_t *model;
    kiln_err_t   err;
    int          rc, calls;
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
    for (int r = 0; r < c->n_ranks; r++)
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
    me->rc = km_scaler_fit(&me->data, &me->reduce, &me->model, &me->err);
    return NULL;
}

/* Fits x split at rows cut[0..n_ranks-1) over n_ranks threads. */
static void fit_ranks(const float *x, size_t n, size_t d, int n_ranks, const size_t *cut,
                      rank_t *ranks)
{
    comm_t comm = {.n_ranks = n_ranks};
    pthread_t th[MAX_RANKS];
    pthread_barrier_init(&comm.barrier, NULL, (unsigned)n_ranks);
    for (int r = 0; r < n_ranks; r++) {
        size_t lo = r == 0 ? 0 : cut[r - 1], hi = r == n_ranks - 1 ? n : cut[r];
        memset(&ranks[r], 0, sizeof ranks[r]);
        ranks[r].comm = &comm;
        ranks[r].reduce = (km_reduce_t){fake_sum, &ranks[r], r, n_ranks};
        ranks[r].data = (km_data_t){.x = x + lo * d, .n = hi - lo, .d = d};
        pthread_create(&th[r], NULL, rank_main, &ranks[r]);
    }
    for (int r = 0; r < n_ranks; r++)
        pthread_join(th[r], NULL);
    pthread_barrier_destroy(&comm.barrier);
}

static km_scaler_t *fit_one(const float *x, size_t n, size_t d)
{
    km_data_t data = {.x = x, .n = n, .d = d};
    km_scaler_t *s = NULL;
    kiln_err_t err;
    assert_int_equal(km_scaler_fit(&data, NULL, &s, &err), 0);
    return s;
}

static km_buf_t save_bytes(const km_scaler_t *s)
{
    km_buf_t b = {0};
    kiln_err_t err;
    assert_int_equal(km_scaler_save(s, &b, &err), 0);
    return b;
}

/* Tolerances: mean/var/scale are double sums of the same float32 values in
 * a different order (blocks + Chan vs numpy's pairwise): ~1e-13 relative to
 * the feature's magnitude, so 1e-10 catches any wrong formula (ddof, bias).
 * The transform is rounded to float32 (6e-8 relative), hence 1e-6 relative
 * (+1e-6 absolute for values near 0). */
static void test_vs_sklearn(void **state)
{
    (void)state;
    const size_t sizes[][2] = {{3000, 7}, {1, 3}, {513, 4}};
    for (size_t t = 0; t < 3; t++) {
        size_t n = sizes[t][0], d = sizes[t][1];
        float *x = make_features(n, d);
        km_scaler_t *s = fit_one(x, n, d);
        double *want;
        size_t n_want;
        assert_int_equal(oracle_run_f("mb_standard_scaler", "{}", x, n, d, &want, &n_want), 0);
        assert_int_equal(n_want, 3 * d + n * d);
        assert_int_equal(km_scaler_n_features(s), d);
        assert_int_equal(km_scaler_n_samples(s), n);
        const double *got[3] = {km_scaler_mean(s), km_scaler_var(s), km_scaler_scale(s)};
        for (size_t j = 0; j < d; j++) {
            double mag = fabs(want[j]) + want[2 * d + j];
            assert_true(fabs(got[0][j] - want[j]) <= 1e-10 * mag);
            assert_true(fabs(got[1][j] - want[d + j]) <= 1e-10 * want[d + j] + 1e-300);
            assert_true(fabs(got[2][j] - want[2 * d + j]) <= 1e-10 * want[2 * d + j]);
        }
        assert_true(got[2][d - 1] == 1.0);       /* constant feature: scale 1 */
        float *z = malloc(n * d * sizeof *z);
        kiln_err_t err;
        assert_int_equal(km_scaler_transform(s, x, n, d, z, &err), 0);
        for (size_t i = 0; i < n * d; i++) {
            double w = want[3 * d + i];
            if (!(fabs(z[i] - w) <= 1e-6 * fabs(w) + 1e-6)) {
                print_error("n=%zu d=%zu value %zu: %.9g, sklearn %.9g\n", n, d, i, z[i], w);
                fail();
            }
        }
        /* in place gives the same bits as out of place */
        assert_int_equal(km_scaler_transform(s, x, n, d, x, &err), 0);
        assert_memory_equal(x, z, n * d * sizeof *z);
        free(z);
        free(want);
        free(x);
        km_scaler_free(&s);
        assert_null(s);
        km_scaler_free(&s);                      /* double free is harmless */
    }
}

/* 2 and 3 ranks (one of them with no rows) give every rank the same bytes,
 * and the one-rank moments to 1e-12 relative (only the merge order of
 * double sums differs). */
static void test_ranks(void **state)
{
    (void)state;
    const size_t n = 5001, d = 5;
    float *x = make_features(n, d);
    km_scaler_t *one = fit_one(x, n, d);
    const size_t cuts[2][2] = {{1234, 0}, {2000, 2000}};
    const int rank_counts[2] = {2, 3};
    for (int c = 0; c < 2; c++) {
        int nr = rank_counts[c];
        rank_t ranks[MAX_RANKS];
        fit_ranks(x, n, d, nr, cuts[c], ranks);
        km_buf_t b0 = {0};
        for (int r = 0; r < nr; r++) {
            assert_int_equal(ranks[r].rc, 0);
            assert_int_equal(ranks[r].calls, 1);
            km_buf_t b = save_bytes(ranks[r].model);
            if (r == 0)
                b0 = b;
            else {
                assert_int_equal(b.len, b0.len);
                assert_memory_equal(b.p, b0.p, b.len);
                km_buf_free(&b);
            }
        }
        km_scaler_t *m = ranks[0].model;
        assert_int_equal(km_scaler_n_samples(m), n);
        for (size_t j = 0; j < d; j++) {
            double mag = fabs(km_scaler_mean(one)[j]) + km_scaler_scale(one)[j];
            assert_true(fabs(km_scaler_mean(m)[j] - km_scaler_mean(one)[j]) <= 1e-12 * mag);
            assert_true(fabs(km_scaler_var(m)[j] - km_scaler_var(one)[j]) <=
                        1e-12 * km_scaler_var(one)[j]);
            assert_true(km_scaler_scale(m)[j] == 1.0 ? km_scaler_scale(one)[j] == 1.0
                                                      : fabs(km_scaler_scale(m)[j] -
                                                             km_scaler_scale(one)[j]) <=
                                                            1e-12 * km_scaler_scale(one)[j]);
        }
        km_buf_free(&b0);
        for (int r = 0; r < nr; r++)
            km_scaler_free(&ranks[r].model);
    }
    km_scaler_free(&one);
    free(x);
}

static void test_deterministic(void **state)
{
    (void)state;
    float *x = make_features(2000, 6);
    km_scaler_t *a = fit_one(x, 2000, 6), *b = fit_one(x, 2000, 6);
    km_buf_t ba = save_bytes(a), bb = save_bytes(b);
    assert_int_equal(ba.len, bb.len);
    assert_memory_equal(ba.p, bb.p, ba.len);
    km_buf_free(&ba);
    km_buf_free(&bb);
    km_scaler_free(&a);
    km_scaler_free(&b);
    free(x);
}

static void test_save_load(void **state)
{
    (void)state;
    const size_t n = 300, d = 4;
    float *x = make_features(n, d);
    km_scaler_t *s = fit_one(x, n, d), *back = NULL;
    km_buf_t b = save_bytes(s);
    kiln_err_t err;
    assert_int_equal(b.len, 4 + 4 + 8 + 8 + 3 * d * 8 + 8);
    assert_int_equal(km_scaler_load(b.p, b.len, &back, &err), 0);
    km_buf_t b2 = save_bytes(back);
    assert_int_equal(b2.len, b.len);
    assert_memory_equal(b2.p, b.p, b.len);
    km_buf_free(&b2);
    km_scaler_free(&back);

    /* every single changed byte and every truncation is refused */
    unsigned char *bad = malloc(b.len + 1);
    for (size_t i = 0; i < b.len; i++) {
        memcpy(bad, b.p, b.len);
        bad[i] ^= 0x10;
        assert_int_equal(km_scaler_load(bad, b.len, &back, &err), KILN_EFORMAT);
        assert_null(back);
        assert_int_equal(km_scaler_load(b.p, i, &back, &err), KILN_EFORMAT);
        assert_null(back);
    }
    memcpy(bad, b.p, b.len);
    bad[b.len] = 0;
    assert_int_equal(km_scaler_load(bad, b.len + 1, &back, &err), KILN_EFORMAT);
    assert_non_null(strstr(err.msg, "trailing"));
    free(bad);

    /* two scalers back to back read one after the other */
    km_scaler_save(s, &b, &err);
    km_rd_t r = {b.p, b.len, 0};
    km_scaler_t *s1 = NULL, *s2 = NULL;
    assert_int_equal(km_scaler_read(&r, &s1, &err), 0);
    assert_int_equal(km_scaler_read(&r, &s2, &err), 0);
    assert_int_equal(r.off, r.len);
    assert_int_equal(km_scaler_read(&r, &back, &err), KILN_EFORMAT);
    assert_int_equal(r.off, r.len);              /* a failed read does not move */
    assert_memory_equal(km_scaler_scale(s1), km_scaler_scale(s2), d * sizeof(double));
    km_scaler_free(&s1);
    km_scaler_free(&s2);
    km_buf_free(&b);
    km_scaler_free(&s);
    free(x);
}

static void test_bad_input(void **state)
{
    (void)state;
    float x[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    km_scaler_t *s = NULL;
    kiln_err_t err;
    km_data_t data = {.x = x, .n = 4, .d = 0};
    assert_int_equal(km_scaler_fit(&data, NULL, &s, &err), KILN_EINVAL);
    assert_int_equal(km_scaler_fit(NULL, NULL, &s, &err), KILN_EINVAL);
    data = (km_data_t){.x = x, .n = 0, .d = 3};
    assert_int_equal(km_scaler_fit(&data, NULL, &s, &err), KILN_EINVAL);
    assert_non_null(strstr(err.msg, "no rows"));
    data = (km_data_t){.x = NULL, .n = 4, .d = 3};
    assert_int_equal(km_scaler_fit(&data, NULL, &s, &err), KILN_EINVAL);
    data = (km_data_t){.x = x, .n = 4, .d = 3};
    assert_int_equal(km_scaler_fit(&data, NULL, NULL, &err), KILN_EINVAL);
    km_reduce_t bad_rank = {fake_sum, NULL, 2, 2};
    assert_int_equal(km_scaler_fit(&data, &bad_rank, &s, &err), KILN_EINVAL);
    assert_null(s);

    x[7] = NAN;
    assert_int_equal(km_scaler_fit(&data, NULL, &s, &err), KILN_ENONFINITE);
    assert_non_null(strstr(err.msg, "row 2 feature 1"));
    x[7] = INFINITY;
    assert_int_equal(km_scaler_fit(&data, NULL, &s, &err), KILN_ENONFINITE);
    assert_null(s);

    /* NaN on rank 1 only: both ranks fail, neither hangs */
    rank_t ranks[MAX_RANKS];
    size_t cut = 2;
    fit_ranks(x, 4, 3, 2, &cut, ranks);
    assert_int_equal(ranks[0].rc, KILN_ENONFINITE);
    assert_non_null(strstr(ranks[0].err.msg, "rank 1"));
    assert_int_equal(ranks[1].rc, KILN_ENONFINITE);
    assert_non_null(strstr(ranks[1].err.msg, "row 0 feature 1"));
    assert_null(ranks[0].model);
    assert_null(ranks[1].model);
    x[7] = 8;

    /* no rows on any rank */
    size_t no_cut = 0;
    fit_ranks(x, 0, 3, 2, &no_cut, ranks);
    assert_int_equal(ranks[0].rc, KILN_EINVAL);
    assert_int_equal(ranks[1].rc, KILN_EINVAL);

    assert_int_equal(km_scaler_fit(&data, NULL, &s, &err), 0);
    float out[12];
    assert_int_equal(km_scaler_transform(s, x, 4, 2, out, &err), KILN_ESHAPE);
    assert_int_equal(km_scaler_transform(s, NULL, 4, 3, out, &err), KILN_EINVAL);
    assert_int_equal(km_scaler_transform(NULL, x, 4, 3, out, &err), KILN_EINVAL);
    assert_int_equal(km_scaler_transform(s, NULL, 0, 3, NULL, &err), 0);
    assert_int_equal(km_scaler_save(s, NULL, &err), KILN_EINVAL);
    km_scaler_t *back = NULL;
    assert_int_equal(km_scaler_load(NULL, 0, &back, &err), KILN_EFORMAT);
    assert_null(back);
    km_scaler_free(&s);
}

/* Failing the k-th allocation for every k: each failure is KILN_ENOMEM with
 * nothing leaked (ASan), and some k lets it through. */
static void test_alloc_failure(void **state)
{
    (void)state;
    float *x = make_features(100, 3);
    km_data_t data = {.x = x, .n = 100, .d = 3};
    kiln_err_t err;
    km_scaler_t *s = NULL;
    km_buf_t b = {0};
    int k, rc;
    for (k = 1; k < 50; k++) {
        kiln_alloc_fail_after(k);
        rc = km_scaler_fit(&data, NULL, &s, &err);
        kiln_alloc_fail_after(0);
        if (rc == 0)
            break;
        assert_int_equal(rc, KILN_ENOMEM);
        assert_null(s);
    }
    assert_true(k > 1 && k < 50);
    assert_int_equal(km_scaler_save(s, &b, &err), 0);
    km_scaler_free(&s);
    for (k = 1; k < 50; k++) {
        kiln_alloc_fail_after(k);
        rc = km_scaler_load(b.p, b.len, &s, &err);
        kiln_alloc_fail_after(0);
        if (rc == 0)
            break;
        assert_int_equal(rc, KILN_ENOMEM);
    }
    assert_true(k > 1 && k < 50);
    /* a buffer that cannot grow: save says so */
    km_buf_t empty = {0};
    kiln_alloc_fail_after(1);
    rc = km_scaler_save(s, &empty, &err);
    kiln_alloc_fail_after(0);
    assert_int_equal(rc, KILN_ENOMEM);
    assert_true(empty.oom);
    km_buf_free(&empty);
    km_scaler_free(&s);
    km_buf_free(&b);
    free(x);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vs_sklearn),
        cmocka_unit_test(test_ranks),
        cmocka_unit_test(test_deterministic),
        cmocka_unit_test(test_save_load),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_alloc_failure),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
