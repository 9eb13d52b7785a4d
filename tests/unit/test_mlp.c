/* test_mlp.c - km_mlp_* (kernels/mlp.h) against scikit-learn's MLPClassifier
 * and MLPRegressor (tests/oracle/ops_mlp.py), a central-difference gradient
 * in double, determinism over seeds and thread counts, save/load, a fake
 * two-rank reduce, allocation failures, predict into a caller's workspace
 * and every bad input. */
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
#include "kernels/mlp.h"

#define N_ROWS   4000
#define N_TRAIN  3200
#define D_FEAT   16

typedef struct {
    float   x[N_ROWS * D_FEAT];
    int32_t y[N_ROWS];
    float   target[N_ROWS];
} dataset_t;

static double normal01(uint64_t *s)
{
    double u1 = oracle_uniform01(s), u2 = oracle_uniform01(s);
    return sqrt(-2.0 * log(u1 > 1e-300 ? u1 : 1e-300)) * cos(6.283185307179586 * u2);
}

/* 16 Gaussian features; the class is a ring in (x0, x1) (inside: 0) and,
 * outside it, the side of a sine boundary in (x2, x3): no linear model gets
 * near; the regression target is sin(x0) + x1*x2 plus noise of sd 0.1. */
static dataset_t *make_data(uint64_t seed)
{
    dataset_t *ds = malloc(sizeof *ds);
    uint64_t s = seed;
    for (size_t i = 0; i < N_ROWS; i++) {
        float *r = ds->x + i * D_FEAT;
        for (int j = 0; j < D_FEAT; j++)
            r[j] = (float)normal01(&s);
        const double rad = sqrt((double)r[0] * r[0] + (double)r[1] * r[1]);
        ds->y[i] = rad < 1.1 ? 0 : (r[2] + 0.8 * sin(2.0 * r[3]) > 0 ? 1 : 2);
        ds->target[i] = (float)(sin(r[0]) + r[1] * r[2] + 0.1 * normal01(&s));
    }
    return ds;
}

static km_mlp_params_t test_params(void)
{
    km_mlp_params_t p = km_mlp_defaults();
    p.n_hidden = 2;
    p.hidden[0] = 32;
    p.hidden[1] = 16;
    p.epochs = 80;
    p.batch = 200;
    p.threads = 2;
    p.seed = 7;
    return p;
}

static km_mlp_t *fit_ok(const km_data_t *data, const km_mlp_params_t *p, const km_reduce_t *rd)
{
    km_mlp_t *m = NULL;
    kiln_err_t err;
    int rc = km_mlp_fit(data, p, rd, &m, &err);
    if (rc != 0)
        print_error("fit: %s\n", err.msg);
    assert_int_equal(rc, 0);
    assert_non_null(m);
    return m;
}

static double accuracy(const km_mlp_t *m, const dataset_t *ds)
{
    const size_t n = N_ROWS - N_TRAIN;
    float *scores = malloc(n * km_mlp_n_outputs(m) * sizeof *scores);
    int32_t *pred = malloc(n * sizeof *pred);
    assert_int_equal(km_mlp_predict(m, ds->x + N_TRAIN * D_FEAT, n, scores, pred, NULL), 0);
    size_t right = 0;
    for (size_t i = 0; i < n; i++) {
        double sum = 0;
        for (size_t c = 0; c < km_mlp_n_outputs(m); c++)
            sum += scores[i * km_mlp_n_outputs(m) + c];
        assert_true(fabs(sum - 1.0) < 1e-5);   /* probabilities */
        right += pred[i] == ds->y[N_TRAIN + i];
    }
    free(scores);
    free(pred);
    return (double)right / (double)n;
}

/* x with the label or target as a last column, for the oracle. */
static double *with_last_column(const dataset_t *ds, int regression)
{
    double *a = malloc((size_t)N_ROWS * (D_FEAT + 1) * sizeof *a);
    for (size_t i = 0; i < N_ROWS; i++) {
        for (int j = 0; j < D_FEAT; j++)
            a[i * (D_FEAT + 1) + j] = ds->x[i * D_FEAT + j];
        a[i * (D_FEAT + 1) + D_FEAT] = regression ? ds->target[i] : ds->y[i];
    }
    return a;
}

#define N_SEEDS 3

/* Tolerance: both sides' mean held-out accuracy over 3 seeds (800 rows each);
 * kiln may not be more than 1 point below sklearn (the bar); better
 * is fine. */
static void test_classifier_vs_sklearn(void **state)
{
    (void)state;
    dataset_t *ds = make_data(11);
    km_mlp_params_t p = test_params();
    km_data_t data = {.x = ds->x, .n = N_TRAIN, .d = D_FEAT, .y = ds->y, .n_classes = 3};
    double kiln = 0;
    for (int s = 0; s < N_SEEDS; s++) {
        p.seed = (uint64_t)s + 1;
        km_mlp_t *m = fit_ok(&data, &p, NULL);
        kiln += accuracy(m, ds) / N_SEEDS;
        km_mlp_free(&m);
        assert_null(m);
    }
    double *in = with_last_column(ds, 0), *want;
    size_t n_want;
    char params[256];
    snprintf(params, sizeof params, "{\"n_train\": %d, \"hidden\": [32, 16], \"epochs\": %d, "
             "\"batch\": 200, \"lr\": 0.001, \"alpha\": 0.0001, \"seeds\": %d}",
             N_TRAIN, p.epochs, N_SEEDS);
    assert_int_equal(oracle_run("mlp_classifier_accuracy", params, in, N_ROWS, D_FEAT + 1, &want,
                                &n_want), 0);
    print_message("classifier held-out accuracy: kiln %.4f sklearn %.4f\n", kiln, want[0]);
    assert_true(kiln >= want[0] - 0.01);
    assert_true(kiln > 0.85);   /* the boundary is learnable: not a trivial pass */
    free(in);
    free(want);
    free(ds);
}

/* Tolerance: kiln's mean held-out RMSE at most 10% above sklearn's (plus
 * 0.01): both fit the same squared loss with different random draws. */
static void test_regressor_vs_sklearn(void **state)
{
    (void)state;
    dataset_t *ds = make_data(12);
    km_mlp_params_t p = test_params();
    km_data_t data = {.x = ds->x, .n = N_TRAIN, .d = D_FEAT, .target = ds->target};
    const size_t n = N_ROWS - N_TRAIN;
    float *scores = malloc(n * sizeof *scores);
    double kiln = 0;
    for (int s = 0; s < N_SEEDS; s++) {
        p.seed = (uint64_t)s + 1;
        km_mlp_t *m = fit_ok(&data, &p, NULL);
        assert_int_equal(km_mlp_n_outputs(m), 1);
        int32_t pred_untouched = -7;
        assert_int_equal(km_mlp_predict(m, ds->x + N_TRAIN * D_FEAT, n, scores, NULL, NULL), 0);
        assert_int_equal(km_mlp_predict(m, ds->x, 1, scores, &pred_untouched, NULL), 0);
        assert_int_equal(pred_untouched, -7);
        assert_int_equal(km_mlp_predict(m, ds->x + N_TRAIN * D_FEAT, n, scores, NULL, NULL), 0);
        double se = 0;
        for (size_t i = 0; i < n; i++)
            se += pow(scores[i] - ds->target[N_TRAIN + i], 2);
        kiln += sqrt(se / (double)n) / N_SEEDS;
        km_mlp_free(&m);
    }
    double *in = with_last_column(ds, 1), *want;
    size_t n_want;
    char params[256];
    snprintf(params, sizeof params, "{\"n_train\": %d, \"hidden\": [32, 16], \"epochs\": %d, "
             "\"batch\": 200, \"lr\": 0.001, \"alpha\": 0.0001, \"seeds\": %d}",
             N_TRAIN, p.epochs, N_SEEDS);
    assert_int_equal(oracle_run("mlp_regressor_rmse", params, in, N_ROWS, D_FEAT + 1, &want,
                                &n_want), 0);
    print_message("regressor held-out RMSE: kiln %.4f sklearn %.4f\n", kiln, want[0]);
    assert_true(kiln <= 1.1 * want[0] + 0.01);
    assert_true(kiln < 0.7);    /* the target's sd is ~1.3 */
    free(scores);
    free(in);
    free(want);
    free(ds);
}

/* ---- gradient: the loss in double, written out here independently ---------- */

static double ref_loss(const double *w, const int *size, int n_layers, const km_data_t *data,
                       double l2)
{
    double total = 0, sq = 0, a[2][64];
    for (size_t i = 0; i < data->n; i++) {
        for (size_t j = 0; j < data->d; j++)
            a[0][j] = data->x[i * data->d + j];
        size_t off = 0;
        int cur = 0;
        for (int l = 0; l < n_layers; l++) {
            const int K = size[l], N = size[l + 1];
            const double *W = w + off, *b = W + K * N;
            for (int j = 0; j < N; j++) {
                double z = b[j];
                for (int k = 0; k < K; k++)
                    z += a[cur][k] * W[k * N + j];
                a[!cur][j] = (l < n_layers - 1 && z < 0) ? 0 : z;
            }
            cur = !cur;
            off += (size_t)K * N + N;
        }
        const int n_out = size[n_layers];
        if (data->n_classes) {
            double top = a[cur][0], s = 0;
            for (int c = 1; c < n_out; c++)
                top = fmax(top, a[cur][c]);
            for (int c = 0; c < n_out; c++)
                s += exp(a[cur][c] - top);
            total += -(a[cur][data->y[i]] - top - log(s));
        } else {
            total += 0.5 * pow(a[cur][0] - data->target[i], 2);
        }
    }
    size_t off = 0;
    for (int l = 0; l < n_layers; l++) {
        for (size_t q = 0; q < (size_t)size[l] * size[l + 1]; q++)
            sq += w[off + q] * w[off + q];
        off += (size_t)size[l] * size[l + 1] + size[l + 1];
    }
    return (total + 0.5 * l2 * sq) / (double)data->n;
}

/* Tolerance: kiln's products are float32 (relative rounding ~1e-6 over
 * sums of ~40 terms); central differences with h = 1e-5 in double are
 * accurate to ~1e-9 away from a ReLU kink.  So each gradient entry within
 * 2e-4 * (1 + |g|) and the loss within 1e-5 relative. */
static void check_gradient(const km_data_t *data, int n_hidden, const int *hidden)
{
    km_mlp_params_t p = test_params();
    p.n_hidden = n_hidden;
    memcpy(p.hidden, hidden, (size_t)n_hidden * sizeof *hidden);
    p.epochs = 3;
    p.batch = 16;
    p.l2 = 0.05;
    km_mlp_t *m = fit_ok(data, &p, NULL);
    int size[KM_MLP_MAX_HIDDEN + 2];
    const int n_sizes = km_mlp_layer_sizes(m, size);
    assert_int_equal(n_sizes, n_hidden + 2);
    const size_t P = km_mlp_n_params(m);
    double *w = malloc(P * sizeof *w), *grad = malloc(P * sizeof *grad), loss;
    for (size_t q = 0; q < P; q++)
        w[q] = km_mlp_weights(m)[q];
    assert_int_equal(km_mlp_loss_grad(m, data, p.l2, &loss, grad, NULL), 0);
    const double want_loss = ref_loss(w, size, n_sizes - 1, data, p.l2);
    assert_true(fabs(loss - want_loss) <= 1e-5 * (1 + want_loss));
    const double h = 1e-5;
    for (size_t q = 0; q < P; q++) {
        const double w0 = w[q];
        w[q] = w0 + h;
        const double up = ref_loss(w, size, n_sizes - 1, data, p.l2);
        w[q] = w0 - h;
        const double down = ref_loss(w, size, n_sizes - 1, data, p.l2);
        w[q] = w0;
        const double num = (up - down) / (2 * h);
        if (!(fabs(grad[q] - num) <= 2e-4 * (1 + fabs(num)))) {
            print_error("weight %zu: kiln %.9g, central difference %.9g\n", q, grad[q], num);
            fail();
        }
    }
    free(w);
    free(grad);
    km_mlp_free(&m);
}

static void test_gradient(void **state)
{
    (void)state;
    dataset_t *ds = make_data(13);
    /* the same floats read as rows of 5 features: small nets, every weight checked */
    km_data_t cls = {.x = ds->x, .n = 60, .d = 5, .y = ds->y, .n_classes = 3};
    const int h2[2] = {7, 6}, h3[3] = {6, 5, 4}, h1[1] = {9};
    check_gradient(&cls, 2, h2);
    check_gradient(&cls, 1, h1);
    km_data_t reg = {.x = ds->x, .n = 60, .d = 5, .target = ds->target};
    check_gradient(&reg, 3, h3);
    free(ds);
}

/* ---- determinism, save/load ---------------------------------------------------- */

static km_buf_t saved(const km_mlp_t *m)
{
    km_buf_t b = {0};
    assert_int_equal(km_mlp_save(m, &b, NULL), 0);
    return b;
}

static void assert_same_bytes(const km_buf_t *a, const km_buf_t *b)
{
    assert_int_equal(a->len, b->len);
    assert_memory_equal(a->p, b->p, a->len);
}

static void test_determinism(void **state)
{
    (void)state;
    dataset_t *ds = make_data(14);
    km_data_t data = {.x = ds->x, .n = N_TRAIN, .d = D_FEAT, .y = ds->y, .n_classes = 3};
    km_mlp_params_t p = test_params();
    p.epochs = 3;
    p.batch = 150;              /* rows per lane differ: 18 and 19 */
    p.threads = 1;
    km_mlp_t *m1 = fit_ok(&data, &p, NULL);
    km_buf_t b1 = saved(m1);
    const int threads[] = {1, 2, 3, 8, 64};
    for (size_t t = 0; t < sizeof threads / sizeof *threads; t++) {
        p.threads = threads[t];
        km_mlp_t *m = fit_ok(&data, &p, NULL);
        km_buf_t b = saved(m);
        assert_same_bytes(&b1, &b);
        km_buf_free(&b);
        km_mlp_free(&m);
    }
    p.seed++;
    km_mlp_t *m2 = fit_ok(&data, &p, NULL);
    km_buf_t b2 = saved(m2);
    assert_int_equal(b1.len, b2.len);
    assert_true(memcmp(b1.p, b2.p, b1.len) != 0);   /* the seed matters */
    km_buf_free(&b1);
    km_buf_free(&b2);
    km_mlp_free(&m1);
    km_mlp_free(&m2);
    km_mlp_free(&m2);   /* harmless twice */
    free(ds);
}

static void test_save_load(void **state)
{
    (void)state;
    dataset_t *ds = make_data(15);
    km_data_t data = {.x = ds->x, .n = 500, .d = D_FEAT, .y = ds->y, .n_classes = 3};
    km_mlp_params_t p = test_params();
    p.epochs = 2;
    km_mlp_t *m = fit_ok(&data, &p, NULL), *back = NULL;
    km_buf_t b = saved(m);
    kiln_err_t err;
    assert_int_equal(km_mlp_load(b.p, b.len, &back, &err), 0);
    km_buf_t b2 = saved(back);
    assert_same_bytes(&b, &b2);
    float s1[100 * 3], s2[100 * 3];
    int32_t p1[100], p2[100];
    assert_int_equal(km_mlp_predict(m, ds->x, 100, s1, p1, NULL), 0);
    assert_int_equal(km_mlp_predict(back, ds->x, 100, s2, p2, NULL), 0);
    assert_memory_equal(s1, s2, sizeof s1);
    assert_memory_equal(p1, p2, sizeof p1);
    km_mlp_free(&back);

    for (size_t len = 0; len < b.len; len++) {   /* every truncation */
        back = (km_mlp_t *)&err;
        assert_int_equal(km_mlp_load(b.p, len, &back, &err), KILN_EFORMAT);
        assert_null(back);
    }
    unsigned char *bad = malloc(b.len + 1);
    memcpy(bad, b.p, b.len);
    bad[b.len] = 0;
    assert_int_equal(km_mlp_load(bad, b.len + 1, &back, &err), KILN_EFORMAT);   /* trailing byte */
    /* magic, version, class count, layer count, input width, hidden width */
    const size_t fields[] = {0, 4, 8, 12, 16, 20};
    const uint32_t values[] = {0x12345678u, 2, 1, 9, 0, 5000};
    for (size_t f = 0; f < sizeof fields / sizeof *fields; f++) {
        memcpy(bad, b.p, b.len);
        bad[fields[f]] = (unsigned char)values[f];
        bad[fields[f] + 1] = (unsigned char)(values[f] >> 8);
        bad[fields[f] + 2] = bad[fields[f] + 3] = 0;
        assert_int_equal(km_mlp_load(bad, b.len, &back, &err), KILN_EFORMAT);
        assert_null(back);
    }
    memcpy(bad, b.p, b.len);
    const float nan = NAN;
    memcpy(bad + b.len - 4, &nan, 4);                 /* a NaN weight */
    assert_int_equal(km_mlp_load(bad, b.len, &back, &err), KILN_EFORMAT);
    assert_int_equal(km_mlp_load(NULL, 0, &back, &err), KILN_EFORMAT);
    free(bad);
    km_buf_free(&b);
    km_buf_free(&b2);
    km_mlp_free(&m);
    free(ds);
}

/* ---- a fake two-rank reduce: two fits in two threads, summing through a barrier */

typedef struct {
    pthread_barrier_t barrier;
    double           *buf[2];
    double           *total;
    size_t            cap;
    int               fail_at;   /* the call that fails on rank 1 (0: none) */
    int               calls;
} fake_world_t;

typedef struct {
    fake_world_t   *world;
    km_reduce_t     reduce;
    km_data_t       data;
    km_mlp_params_t params;
    km_mlp_t       *model;
    int             rc;
    kiln_err_t      err;
} fake_rank_t;

/* Adds rank 0's and rank 1's buffers in that order, so both get the same sum.
 * A failing call fails on both ranks (as an MPI error would). */
static int fake_sum(void *ud, double *buf, size_t n, kiln_err_t *err)
{
    fake_rank_t *r = ud;
    fake_world_t *w = r->world;
    w->buf[r->reduce.rank] = buf;
    pthread_barrier_wait(&w->barrier);
    if (r->reduce.rank == 0)
        w->calls++;
    pthread_barrier_wait(&w->barrier);
    if (w->calls == w->fail_at)
        return kiln_err_set(err, KILN_EIO, "fake reduce: rank lost");
    if (r->reduce.rank == 0)
        for (size_t i = 0; i < n && n <= w->cap; i++)
            w->total[i] = w->buf[0][i] + w->buf[1][i];
    pthread_barrier_wait(&w->barrier);
    memcpy(buf, w->total, n * sizeof *buf);
    pthread_barrier_wait(&w->barrier);
    return 0;
}

static void *rank_main(void *arg)
{
    fake_rank_t *r = arg;
    r->rc = km_mlp_fit(&r->data, &r->params, &r->reduce, &r->model, &r->err);
    return NULL;
}

static void run_two_ranks(fake_world_t *w, fake_rank_t rank[2])
{
    pthread_t th[2];
    for (int k = 0; k < 2; k++) {
        rank[k].world = w;
        rank[k].reduce = (km_reduce_t){fake_sum, &rank[k], k, 2};
        pthread_create(&th[k], NULL, rank_main, &rank[k]);
    }
    for (int k = 0; k < 2; k++)
        pthread_join(th[k], NULL);
}

/* "The same" for a stochastic optimizer: the two ranks end with identical
 * bytes (the contract), and the model is as good as one rank's on all rows:
 * held-out accuracy within 1 point.  It cannot be bytewise the 1-rank model,
 * as each rank shuffles its own half, so a step's rows differ. */
static void test_reduce_two_ranks(void **state)
{
    (void)state;
    dataset_t *ds = make_data(16);
    km_mlp_params_t p = test_params();
    km_data_t all = {.x = ds->x, .n = N_TRAIN, .d = D_FEAT, .y = ds->y, .n_classes = 3};
    km_mlp_t *one = fit_ok(&all, &p, NULL);
    const double acc_one = accuracy(one, ds);

    fake_world_t w = {.cap = km_mlp_n_params(one) + 8};
    w.total = malloc(w.cap * sizeof *w.total);
    pthread_barrier_init(&w.barrier, NULL, 2);
    fake_rank_t rank[2];
    memset(rank, 0, sizeof rank);
    const size_t half = 1700;   /* uneven shards: 1700 and 1500 rows */
    for (int k = 0; k < 2; k++) {
        rank[k].params = p;
        rank[k].data = all;
        rank[k].data.x = ds->x + (k ? half * D_FEAT : 0);
        rank[k].data.y = ds->y + (k ? half : 0);
        rank[k].data.n = k ? N_TRAIN - half : half;
    }
    run_two_ranks(&w, rank);
    assert_int_equal(rank[0].rc, 0);
    assert_int_equal(rank[1].rc, 0);
    km_buf_t b0 = saved(rank[0].model), b1 = saved(rank[1].model);
    assert_same_bytes(&b0, &b1);
    const double acc_two = accuracy(rank[0].model, ds);
    print_message("2 ranks: accuracy %.4f, 1 rank %.4f\n", acc_two, acc_one);
    assert_true(fabs(acc_two - acc_one) <= 0.01);
    km_buf_free(&b0);
    km_buf_free(&b1);
    for (int k = 0; k < 2; k++)
        km_mlp_free(&rank[k].model);

    /* a reduce that fails mid-training: both ranks return its error, no model */
    w.calls = 0;
    w.fail_at = 10;
    run_two_ranks(&w, rank);
    for (int k = 0; k < 2; k++) {
        assert_int_equal(rank[k].rc, KILN_EIO);
        assert_null(rank[k].model);
    }
    /* ranks that disagree on d: both refuse */
    w.calls = 0;
    w.fail_at = 0;
    rank[1].data.d = D_FEAT - 1;
    run_two_ranks(&w, rank);
    for (int k = 0; k < 2; k++)
        assert_int_equal(rank[k].rc, KILN_ESHAPE);
    /* one rank's bad data: it says why, the other that a rank refused */
    rank[1].data.d = D_FEAT;
    rank[1].data.n = 0;
    run_two_ranks(&w, rank);
    assert_int_equal(rank[1].rc, KILN_ESHAPE);
    assert_int_equal(rank[0].rc, KILN_EINVAL);
    assert_non_null(strstr(rank[0].err.msg, "refused"));

    pthread_barrier_destroy(&w.barrier);
    free(w.total);
    km_mlp_free(&one);
    free(ds);
}

static int identity_sum(void *ud, double *buf, size_t n, kiln_err_t *err)
{
    (void)buf, (void)n, (void)err;
    ++*(int *)ud;
    return 0;
}

/* A 1-rank reduce runs the same arithmetic as no reduce: identical bytes. */
static void test_reduce_one_rank(void **state)
{
    (void)state;
    dataset_t *ds = make_data(17);
    km_data_t data = {.x = ds->x, .n = 1000, .d = D_FEAT, .y = ds->y, .n_classes = 3};
    km_mlp_params_t p = test_params();
    p.epochs = 2;
    int calls = 0;
    km_reduce_t solo = {identity_sum, &calls, 0, 1};
    km_mlp_t *a = fit_ok(&data, &p, NULL), *b = fit_ok(&data, &p, &solo);
    km_buf_t ba = saved(a), bb = saved(b);
    assert_same_bytes(&ba, &bb);
    assert_int_equal(calls, 2 + 2 * 5);   /* agreement, class counts, one per step */
    km_buf_free(&ba);
    km_buf_free(&bb);
    km_mlp_free(&a);
    km_mlp_free(&b);
    free(ds);
}

/* ---- bad inputs --------------------------------------------------------------- */

static void expect_fit(const km_data_t *data, const km_mlp_params_t *p, int code, const char *where)
{
    km_mlp_t *m = (km_mlp_t *)data;
    kiln_err_t err;
    memset(&err, 0, sizeof err);
    assert_int_equal(km_mlp_fit(data, p, NULL, &m, &err), code);
    assert_null(m);
    assert_true(err.msg[0] != 0);
    if (where && strcmp(err.where, where) != 0) {
        print_error("expected where '%s', got '%s' (%s)\n", where, err.where, err.msg);
        fail();
    }
}

static void test_bad_inputs(void **state)
{
    (void)state;
    dataset_t *ds = make_data(18);
    km_data_t good = {.x = ds->x, .n = 300, .d = D_FEAT, .y = ds->y, .n_classes = 3};
    km_mlp_params_t p = test_params();
    p.epochs = 1;
    km_data_t d = good;
    d.n = 0;
    expect_fit(&d, &p, KILN_ESHAPE, "data.n");
    d = good;
    d.d = 0;
    expect_fit(&d, &p, KILN_ESHAPE, "data.d");
    d = good;
    d.n_classes = 1;
    expect_fit(&d, &p, KILN_EINVAL, "data.n_classes");
    d.n_classes = 4;               /* class 3 has no rows */
    expect_fit(&d, &p, KILN_EINVAL, "data.y");
    int32_t one_class[50] = {0};
    d = good;
    d.n = 50;
    d.y = one_class;
    d.n_classes = 2;
    expect_fit(&d, &p, KILN_EINVAL, "data.y");
    int32_t bad_y[300];
    memcpy(bad_y, ds->y, sizeof bad_y);
    bad_y[17] = 3;
    d = good;
    d.y = bad_y;
    expect_fit(&d, &p, KILN_EINVAL, "data.y");
    d = good;
    d.y = NULL;
    expect_fit(&d, &p, KILN_EINVAL, "data.y");
    d = good;
    d.x = NULL;
    expect_fit(&d, &p, KILN_EINVAL, "data.x");
    expect_fit(NULL, &p, KILN_EINVAL, "data.x");
    /* NaN and Inf in x: the message names the row */
    float *x = malloc(300 * D_FEAT * sizeof *x);
    memcpy(x, ds->x, 300 * D_FEAT * sizeof *x);
    x[123 * D_FEAT + 5] = INFINITY;
    d = good;
    d.x = x;
    kiln_err_t err;
    km_mlp_t *m = NULL;
    assert_int_equal(km_mlp_fit(&d, &p, NULL, &m, &err), KILN_ENONFINITE);
    assert_non_null(strstr(err.msg, "row 123"));
    x[123 * D_FEAT + 5] = NAN;
    assert_int_equal(km_mlp_fit(&d, &p, NULL, &m, &err), KILN_ENONFINITE);
    /* regression: no target, a NaN target */
    km_data_t r = {.x = ds->x, .n = 300, .d = D_FEAT};
    expect_fit(&r, &p, KILN_EINVAL, "data.target");
    float t[300];
    memcpy(t, ds->target, sizeof t);
    t[42] = NAN;
    r.target = t;
    assert_int_equal(km_mlp_fit(&r, &p, NULL, &m, &err), KILN_ENONFINITE);
    assert_non_null(strstr(err.msg, "row 42"));

    /* every parameter out of range names its field */
    km_mlp_params_t q;
#define BAD(field, stmt) do { q = p; stmt; expect_fit(&good, &q, KILN_EINVAL, field); } while (0)
    BAD("params.n_hidden", q.n_hidden = 0);
    BAD("params.n_hidden", q.n_hidden = 4);
    BAD("params.hidden[1]", q.hidden[1] = 0);
    BAD("params.hidden[0]", q.hidden[0] = 4097);
    BAD("params.lr", q.lr = 0);
    BAD("params.lr", q.lr = NAN);
    BAD("params.beta1", q.beta1 = 1.0);
    BAD("params.beta2", q.beta2 = -0.1);
    BAD("params.eps", q.eps = 0);
    BAD("params.l2", q.l2 = -1);
    BAD("params.l2", q.l2 = INFINITY);
    BAD("params.batch", q.batch = 0);
    BAD("params.epochs", q.epochs = 0);
    BAD("params.threads", q.threads = 0);
    BAD("params.threads", q.threads = 65);
#undef BAD
    expect_fit(&good, NULL, KILN_EINVAL, "params");
    assert_int_equal(km_mlp_fit(&good, &p, NULL, NULL, &err), KILN_EINVAL);

    /* predict: a NaN row is named; shapes through loss_grad */
    m = fit_ok(&good, &p, NULL);
    float scores[10 * 3];
    assert_int_equal(km_mlp_predict(m, x + 120 * D_FEAT, 10, scores, NULL, &err), KILN_ENONFINITE);
    assert_non_null(strstr(err.msg, "row 3"));
    assert_int_equal(km_mlp_predict(m, ds->x, 0, NULL, NULL, &err), 0);
    double loss, grad[1];
    assert_int_equal(km_mlp_loss_grad(m, &r, 0, &loss, grad, &err), KILN_ESHAPE);
    km_mlp_free(&m);
    free(x);
    free(ds);
}

/* Every allocation of fit, failed in turn: KILN_ENOMEM and nothing leaked
 * (ASan's leak check on the SAN build), until a fit succeeds. */
static void test_alloc_failures(void **state)
{
    (void)state;
    dataset_t *ds = make_data(19);
    km_data_t data = {.x = ds->x, .n = 300, .d = D_FEAT, .y = ds->y, .n_classes = 3};
    km_mlp_params_t p = test_params();
    p.epochs = 1;
    p.threads = 1;      /* the failure hook is not thread-safe */
    int k;
    for (k = 1; k < 200; k++) {
        km_mlp_t *m = NULL;
        kiln_err_t err;
        kiln_alloc_fail_after(k);
        int rc = km_mlp_fit(&data, &p, NULL, &m, &err);
        kiln_alloc_fail_after(0);
        if (rc == 0) {
            km_mlp_free(&m);
            break;
        }
        assert_int_equal(rc, KILN_ENOMEM);
        assert_null(m);
    }
    assert_true(k > 5 && k < 200);
    free(ds);
}

/* km_mlp_predict_ws: the very bits of km_mlp_predict for row counts around
 * the chunk size, no allocation once the workspace is made (every
 * allocation fails during the calls), a workspace of another model's widths
 * refused, and ws_new's own allocation failures return NULL, leak-free. */
static void test_predict_workspace(void **state)
{
    (void)state;
    dataset_t *ds = make_data(23);
    km_data_t data = {.x = ds->x, .n = 400, .d = D_FEAT, .y = ds->y, .n_classes = 3};
    km_mlp_params_t p = test_params();
    p.epochs = 2;
    km_mlp_t *m = fit_ok(&data, &p, NULL);
    p.hidden[1] = 8;
    km_mlp_t *other = fit_ok(&data, &p, NULL);
    km_mlp_ws_t *ws = km_mlp_ws_new(m);
    assert_non_null(ws);
    static const size_t counts[] = {1, 2, 63, 64, 65, 200};
    float *s1 = malloc(200 * 3 * sizeof *s1), *s2 = malloc(200 * 3 * sizeof *s2);
    int32_t p1[200], p2[200];
    for (size_t k = 0; k < sizeof counts / sizeof *counts; k++) {
        const size_t n = counts[k];
        assert_int_equal(km_mlp_predict(m, ds->x + 7 * D_FEAT, n, s1, p1, NULL), 0);
        memset(s2, 0xff, n * 3 * sizeof *s2);
        kiln_alloc_fail_after(1);
        int rc = km_mlp_predict_ws(m, ws, ds->x + 7 * D_FEAT, n, s2, p2, NULL);
        kiln_alloc_fail_after(0);
        assert_int_equal(rc, 0);
        assert_memory_equal(s1, s2, n * 3 * sizeof *s1);
        assert_memory_equal(p1, p2, n * sizeof *p1);
    }
    kiln_err_t err;
    assert_int_equal(km_mlp_predict_ws(other, ws, ds->x, 1, s2, p2, &err), KILN_EINVAL);
    assert_non_null(strstr(err.msg, "workspace"));
    assert_int_equal(km_mlp_predict_ws(m, NULL, ds->x, 1, s2, p2, &err), KILN_EINVAL);
    float bad[D_FEAT] = {0};
    bad[3] = NAN;
    assert_int_equal(km_mlp_predict_ws(m, ws, bad, 1, s2, p2, &err), KILN_ENONFINITE);
    km_mlp_ws_free(&ws);
    assert_null(ws);
    km_mlp_ws_free(&ws);                 /* harmless twice */
    int made = 0;
    for (long f = 1; f < 20 && !made; f++) {
        kiln_alloc_fail_after(f);
        ws = km_mlp_ws_new(m);
        kiln_alloc_fail_after(0);
        made = ws != NULL;
        km_mlp_ws_free(&ws);
    }
    assert_true(made);
    free(s1);
    free(s2);
    km_mlp_free(&other);
    km_mlp_free(&m);
    free(ds);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_classifier_vs_sklearn),
        cmocka_unit_test(test_regressor_vs_sklearn),
        cmocka_unit_test(test_gradient),
        cmocka_unit_test(test_determinism),
        cmocka_unit_test(test_save_load),
        cmocka_unit_test(test_reduce_two_ranks),
        cmocka_unit_test(test_reduce_one_rank),
        cmocka_unit_test(test_bad_inputs),
        cmocka_unit_test(test_alloc_failures),
        cmocka_unit_test(test_predict_workspace),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
