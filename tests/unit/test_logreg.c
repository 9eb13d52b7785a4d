/* test_logreg.c - km_logreg_* against scikit-learn's LogisticRegression
 * (lbfgs, same C) on synthetic binary and 4-class data: weights, held-out
 * accuracy and probabilities; a central-difference check of the gradient;
 * determinism over runs and thread counts; save/load and refused bytes; two
 * ranks through km_reduce_t; every bad input; and the cleanup ladder under
 * failing allocations. */
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
#include "kernels/logreg.h"

/* A synthetic problem: x ~ N(0, 1) with a shared factor (correlated
 * columns), labels drawn from the softmax (sigmoid) of a random linear model
 * with margin scale `sharp`, so classes overlap a little ("separable-ish"). */
typedef struct {
    float   *x;
    int32_t *y;
    size_t   n, d;
    int      n_classes;
} problem_t;

static problem_t make_problem(size_t n, size_t d, int n_classes, double sharp, uint64_t seed)
{
    problem_t pr = {malloc(n * d * sizeof(float)), malloc(n * sizeof(int32_t)), n, d, n_classes};
    km_rng_t rng;
    km_rng_seed(&rng, seed);
    int k_n = n_classes;
    double *w = malloc((size_t)k_n * (d + 1) * sizeof *w);
    for (size_t i = 0; i < (size_t)k_n * (d + 1); i++)
        w[i] = km_rng_normal(&rng) * sharp / sqrt((double)d);
    double z[16];
    for (size_t i = 0; i < n; i++) {
        double common = km_rng_normal(&rng);
        for (size_t j = 0; j < d; j++)
            pr.x[i * d + j] = (float)(0.8 * km_rng_normal(&rng) + 0.4 * common + 0.1 * (double)j / d);
        double zmax = -1e300, s = 0;
        for (int k = 0; k < k_n; k++) {
            z[k] = w[k * (d + 1) + d];
            for (size_t j = 0; j < d; j++)
                z[k] += w[k * (d + 1) + j] * pr.x[i * d + j];
            zmax = fmax(zmax, z[k]);
        }
        for (int k = 0; k < k_n; k++)
            s += (z[k] = exp(z[k] - zmax));
        double u = km_rng_uniform(&rng) * s;
        int cls = 0;
        while (cls < k_n - 1 && (u -= z[cls]) > 0)
            cls++;
        pr.y[i] = cls;
    }
    free(w);
    return pr;
}

static void free_problem(problem_t *pr)
{
    free(pr->x);
    free(pr->y);
}

static km_data_t data_of(const problem_t *pr, size_t first, size_t n)
{
    km_data_t d = {pr->x + first * pr->d, n, pr->d, pr->y + first, NULL, pr->n_classes};
    return d;
}

static km_logreg_t *fit_ok(const km_data_t *data, const km_logreg_params_t *p)
{
    km_logreg_t *m = NULL;
    kiln_err_t err;
    memset(&err, 0, sizeof err);
    int rc = km_logreg_fit(data, p, NULL, &m, &err);
    if (rc != 0)
        print_error("fit: %s\n", err.msg);
    assert_int_equal(rc, 0);
    assert_non_null(m);
    return m;
}

static double accuracy(const km_logreg_t *m, const problem_t *pr, size_t first, float **proba)
{
    size_t n = pr->n - first, k = km_logreg_n_outputs(m);
    float *sc = malloc(n * k * sizeof *sc);
    int32_t *pred = malloc(n * sizeof *pred);
    assert_int_equal(km_logreg_predict(m, pr->x + first * pr->d, n, sc, pred, NULL), 0);
    size_t right = 0;
    for (size_t i = 0; i < n; i++)
        right += pred[i] == pr->y[first + i];
    free(pred);
    if (proba)
        *proba = sc;
    else
        free(sc);
    return (double)right / (double)n;
}

/* scikit-learn on [x | y], fitting the first n_train rows twice: tol 1e-10
 * (max_iter 1000), then its defaults (1e-4, 100); the two results follow
 * each other in the output. */
static double *sklearn_fit(const problem_t *pr, size_t n_train, double C, size_t *n_out)
{
    size_t cols = pr->d + 1;
    double *in = malloc(pr->n * cols * sizeof *in), *out;
    for (size_t i = 0; i < pr->n; i++) {
        for (size_t j = 0; j < pr->d; j++)
            in[i * cols + j] = pr->x[i * pr->d + j];
        in[i * cols + pr->d] = pr->y[i];
    }
    char params[256];
    snprintf(params, sizeof params,
             "{\"C\": %.17g, \"tols\": [1e-10, 1e-4], \"max_iters\": [1000, 100], "
             "\"n_train\": %zu}", C, n_train);
    assert_int_equal(oracle_run("logreg_sklearn", params, in, pr->n, cols, &out, n_out), 0);
    free(in);
    return out;
}

/* Tolerances, found on these problems: both sides run to tol = 1e-10 but
 * scipy's L-BFGS-B mostly stops earlier on its ftol (64 eps relative change
 * of F), so they differ by where each optimizer stops, not by the objective:
 * weights within 5e-6 of the largest |weight| (observed 4e-8 .. 2e-7 of it)
 * and held-out probabilities within 5e-6 (observed 6e-8 .. 3e-7).  At the
 * default tol = 1e-4, held-out accuracy must be within 1 point. */
static void compare_with_sklearn(int n_classes, double C)
{
    const size_t n = 5000, n_train = 4000, d = 16;
    problem_t pr = make_problem(n, d, n_classes, 4.0, 0x5EED0000u + (uint64_t)n_classes);
    km_data_t train = data_of(&pr, 0, n_train);
    km_logreg_params_t p = km_logreg_defaults();
    p.l2 = 1.0 / C;
    p.tol = 1e-10;
    p.max_iter = 1000;
    p.threads = 2;
    km_logreg_t *m = fit_ok(&train, &p);
    size_t n_w = km_logreg_n_weights(d, n_classes), n_out, k_n = (size_t)n_classes;
    double *sk = sklearn_fit(&pr, n_train, C, &n_out);
    const size_t per_fit = n_w + 2 + (n - n_train) * k_n;
    assert_int_equal(n_out, 2 * per_fit);

    const double *w = km_logreg_weights(m);
    double scale = 0, diff = 0;
    for (size_t i = 0; i < n_w; i++) {
        scale = fmax(scale, fabs(sk[i]));
        diff = fmax(diff, fabs(w[i] - sk[i]));
    }
    float *proba;
    double acc = accuracy(m, &pr, n_train, &proba);
    double pdiff = 0;
    for (size_t i = 0; i < (n - n_train) * k_n; i++)
        pdiff = fmax(pdiff, fabs(proba[i] - sk[n_w + 2 + i]));
    int conv, it = km_logreg_n_iter(m, &conv);
    print_message("logreg %d classes C=%g: max |w - sklearn| = %.3g (max |w| %.3g), "
                  "max |p - sklearn| = %.3g, acc %.4f vs %.4f, iters %d vs %.0f\n",
                  n_classes, C, diff, scale, pdiff, acc, sk[n_w], it, sk[n_w + 1]);
    assert_true(diff <= 5e-6 * scale);
    assert_true(pdiff <= 5e-6);
    assert_true(fabs(acc - sk[n_w]) <= 0.01);
    free(proba);
    km_logreg_free(&m);

    /* defaults (tol 1e-4, max_iter 100) on both sides: accuracy within a point */
    p = km_logreg_defaults();
    p.l2 = 1.0 / C;
    m = fit_ok(&train, &p);
    const double *sk_def = sk + per_fit;
    acc = accuracy(m, &pr, n_train, NULL);
    print_message("logreg %d classes C=%g defaults: acc %.4f vs sklearn %.4f\n", n_classes, C, acc,
                  sk_def[n_w]);
    assert_true(fabs(acc - sk_def[n_w]) <= 0.01);
    assert_true(acc > 1.0 / n_classes + 0.2);   /* the problem is learnable */
    free(sk);
    km_logreg_free(&m);
    free_problem(&pr);
}

static void test_binary_vs_sklearn(void **state)
{
    (void)state;
    compare_with_sklearn(2, 1.0);
    compare_with_sklearn(2, 0.01);
}

static void test_multiclass_vs_sklearn(void **state)
{
    (void)state;
    compare_with_sklearn(4, 1.0);
    compare_with_sklearn(4, 0.05);
}

/* Central differences with h = 1e-5: truncation error ~h^2 * F''' ~ 1e-10
 * and rounding ~eps * F / h ~ 1e-11, so 1e-7 (relative to the gradient's
 * scale) catches any wrong term (a missed intercept, penalty or 1/n) while
 * leaving room for both. */
static void gradient_check(int n_classes)
{
    problem_t pr = make_problem(300, 5, n_classes, 3.0, 77);
    km_data_t data = data_of(&pr, 0, pr.n);
    km_logreg_params_t p = km_logreg_defaults();
    p.l2 = 3.0;
    size_t n_w = km_logreg_n_weights(pr.d, n_classes);
    double *w = malloc(n_w * sizeof *w), *g = malloc(n_w * sizeof *g), *g2 = malloc(n_w * sizeof *g2);
    km_rng_t rng;
    km_rng_seed(&rng, 5);
    for (size_t i = 0; i < n_w; i++)
        w[i] = 0.7 * km_rng_normal(&rng);
    double f, fp, fm, scale = 0;
    assert_int_equal(km_logreg_loss_grad(&data, &p, w, &f, g, NULL), 0);
    for (size_t i = 0; i < n_w; i++)
        scale = fmax(scale, fabs(g[i]));
    assert_true(scale > 1e-3);
    for (size_t i = 0; i < n_w; i++) {
        const double h = 1e-5, keep = w[i];
        w[i] = keep + h;
        assert_int_equal(km_logreg_loss_grad(&data, &p, w, &fp, g2, NULL), 0);
        w[i] = keep - h;
        assert_int_equal(km_logreg_loss_grad(&data, &p, w, &fm, g2, NULL), 0);
        w[i] = keep;
        double num = (fp - fm) / (2 * h);
        if (!(fabs(num - g[i]) <= 1e-7 * scale)) {
            print_error("%d classes: dF/dw[%zu] = %.12g, central difference %.12g\n", n_classes, i,
                        g[i], num);
            fail();
        }
    }
    /* the loss itself, at w = 0: log(n_classes) per row, no penalty */
    memset(w, 0, n_w * sizeof *w);
    assert_int_equal(km_logreg_loss_grad(&data, &p, w, &f, g, NULL), 0);
    assert_true(fabs(f - log((double)n_classes)) < 1e-12);
    free(w);
    free(g);
    free(g2);
    free_problem(&pr);
}

static void test_gradient(void **state)
{
    (void)state;
    gradient_check(2);
    gradient_check(3);
}

static void save(const km_logreg_t *m, km_buf_t *b)
{
    memset(b, 0, sizeof *b);
    assert_int_equal(km_logreg_save(m, b, NULL), 0);
}

/* 3 chunks of rows, so threads really split the work; bytes must match
 * exactly for 1, 2 and 3 threads and for a repeated fit. */
static void test_determinism(void **state)
{
    (void)state;
    for (int k_n = 2; k_n <= 4; k_n += 2) {
        problem_t pr = make_problem(3 * KM_LOGREG_CHUNK_ROWS - 5, 12, k_n, 3.0, 99);
        km_data_t data = data_of(&pr, 0, pr.n);
        km_logreg_params_t p = km_logreg_defaults();
        km_buf_t ref, b;
        km_logreg_t *m = fit_ok(&data, &p);
        save(m, &ref);
        km_logreg_free(&m);
        for (int t = 1; t <= 3; t++) {
            p.threads = t;
            m = fit_ok(&data, &p);
            save(m, &b);
            assert_int_equal(b.len, ref.len);
            assert_memory_equal(b.p, ref.p, ref.len);
            km_buf_free(&b);
            km_logreg_free(&m);
        }
        km_buf_free(&ref);
        free_problem(&pr);
    }
}

static void test_save_load(void **state)
{
    (void)state;
    problem_t pr = make_problem(600, 7, 3, 3.0, 11);
    km_data_t data = data_of(&pr, 0, pr.n);
    km_logreg_params_t p = km_logreg_defaults();
    km_logreg_t *m = fit_ok(&data, &p), *back = NULL;
    km_buf_t b;
    save(m, &b);
    kiln_err_t err;
    assert_int_equal(km_logreg_load(b.p, b.len, &back, &err), 0);
    assert_int_equal(km_logreg_n_outputs(back), 3);
    assert_int_equal(km_logreg_n_features(back), 7);
    float s1[600 * 3], s2[600 * 3];
    int32_t p1[600], p2[600];
    assert_int_equal(km_logreg_predict(m, pr.x, pr.n, s1, p1, NULL), 0);
    assert_int_equal(km_logreg_predict(back, pr.x, pr.n, s2, p2, NULL), 0);
    assert_memory_equal(s1, s2, sizeof s1);
    assert_memory_equal(p1, p2, sizeof p1);
    for (size_t i = 0; i < pr.n; i++) {
        double sum = (double)s1[3 * i] + s1[3 * i + 1] + s1[3 * i + 2];
        assert_true(fabs(sum - 1.0) < 1e-6);
        for (int k = 0; k < 3; k++)
            assert_true(s1[3 * i + k] <= s1[3 * i + p1[i]]);
    }
    km_buf_t b2;
    save(back, &b2);
    assert_int_equal(b2.len, b.len);
    assert_memory_equal(b2.p, b.p, b.len);
    km_buf_free(&b2);
    km_logreg_free(&back);

    /* every truncation, a trailing byte, and corrupted fields */
    for (size_t len = 0; len < b.len; len++) {
        assert_int_equal(km_logreg_load(b.p, len, &back, &err), KILN_EFORMAT);
        assert_null(back);
    }
    unsigned char *c = malloc(b.len + 1);
    memcpy(c, b.p, b.len);
    c[b.len] = 0;
    assert_int_equal(km_logreg_load(c, b.len + 1, &back, &err), KILN_EFORMAT);
    assert_non_null(strstr(err.msg, "trailing"));
    const struct { size_t off; unsigned char v; const char *what; } bad[] = {
        {0, 'X', "magic"}, {4, 9, "version"}, {8, 1, "classes"}, {8, 0xff, "classes"},
        {12, 7, "converged"}, {16, 0xff, "d"}, {20, 1, "d"}, {28, 1, "zero"}, {39, 0xff, "l2"},
        {47, 0xff, "weight"},    /* exponent bits all ones: NaN weight */
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        memcpy(c, b.p, b.len);
        c[bad[i].off] = bad[i].v;
        if (bad[i].off == 47)
            c[46] = 0xff;
        memset(&err, 0, sizeof err);
        int rc = km_logreg_load(c, b.len, &back, &err);
        if (rc != KILN_EFORMAT)
            print_error("corrupt %s (byte %zu) loaded: rc %d\n", bad[i].what, bad[i].off, rc);
        assert_int_equal(rc, KILN_EFORMAT);
        assert_null(back);
        assert_true(err.msg[0] != 0);
    }
    assert_int_equal(km_logreg_load(NULL, 10, &back, &err), KILN_EINVAL);
    free(c);
    km_buf_free(&b);
    km_logreg_free(&m);
    km_logreg_free(&m);   /* harmless twice */
    free_problem(&pr);
}

/* ---- two ranks: each thread fits its half, sum() adds through a barrier -- */

typedef struct {
    pthread_barrier_t bar;
    double           *slot[2];
    int               calls[2];
} fake_mpi_t;

typedef struct {
    fake_mpi_t *mpi;
    int         rank;
    km_data_t   data;
    km_logreg_params_t p;
    km_logreg_t *model;
    int         rc;
    kiln_err_t  err;
} rank_t;

/* Every rank publishes its buffer, waits, adds slot 0 then slot 1 (the same
 * order everywhere, so the same result), and waits again before anyone may
 * publish the next buffer. */
static int fake_sum(void *ud, double *buf, size_t n, kiln_err_t *err)
{
    (void)err;
    rank_t *r = ud;
    fake_mpi_t *mpi = r->mpi;
    mpi->slot[r->rank] = buf;
    mpi->calls[r->rank]++;
    pthread_barrier_wait(&mpi->bar);
    double *tmp = malloc(n * sizeof *tmp);
    for (size_t i = 0; i < n; i++)
        tmp[i] = mpi->slot[0][i] + mpi->slot[1][i];
    pthread_barrier_wait(&mpi->bar);
    memcpy(buf, tmp, n * sizeof *tmp);
    free(tmp);
    return 0;
}

static void *rank_main(void *arg)
{
    rank_t *r = arg;
    km_reduce_t red = {fake_sum, r, r->rank, 2};
    r->rc = km_logreg_fit(&r->data, &r->p, &red, &r->model, &r->err);
    return NULL;
}

static void run_two_ranks(rank_t *ranks, fake_mpi_t *mpi)
{
    pthread_t t[2];
    pthread_barrier_init(&mpi->bar, NULL, 2);
    for (int i = 0; i < 2; i++) {
        ranks[i].mpi = mpi;
        ranks[i].rank = i;
        assert_int_equal(pthread_create(&t[i], NULL, rank_main, &ranks[i]), 0);
    }
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    pthread_barrier_destroy(&mpi->bar);
    assert_int_equal(mpi->calls[0], mpi->calls[1]);
}

/* Same model as one rank: the only difference is the order the row sums
 * are added in (~1e-16 relative per evaluation); both fits converge to a
 * gradient of 1e-10, so the weights agree to 1e-7 of their scale. */
static void test_two_ranks(void **state)
{
    (void)state;
    for (int k_n = 2; k_n <= 4; k_n += 2) {
        problem_t pr = make_problem(2 * KM_LOGREG_CHUNK_ROWS + 1000, 10, k_n, 3.0, 1234);
        km_logreg_params_t p = km_logreg_defaults();
        p.tol = 1e-10;
        p.max_iter = 500;
        km_data_t all = data_of(&pr, 0, pr.n);
        km_logreg_t *one = fit_ok(&all, &p);
        size_t half = pr.n / 2 + 3;
        rank_t ranks[2] = {{.data = data_of(&pr, 0, half), .p = p},
                           {.data = data_of(&pr, half, pr.n - half), .p = p}};
        ranks[1].p.threads = 2;    /* threads may differ per rank */
        fake_mpi_t mpi = {.calls = {0, 0}};
        run_two_ranks(ranks, &mpi);
        assert_int_equal(ranks[0].rc, 0);
        assert_int_equal(ranks[1].rc, 0);
        km_buf_t b0, b1;
        save(ranks[0].model, &b0);
        save(ranks[1].model, &b1);
        assert_int_equal(b0.len, b1.len);
        assert_memory_equal(b0.p, b1.p, b0.len);    /* the ranks agree exactly */
        size_t n_w = km_logreg_n_weights(pr.d, k_n);
        const double *w1 = km_logreg_weights(one), *w2 = km_logreg_weights(ranks[0].model);
        double scale = 0, diff = 0;
        for (size_t i = 0; i < n_w; i++) {
            scale = fmax(scale, fabs(w1[i]));
            diff = fmax(diff, fabs(w1[i] - w2[i]));
        }
        print_message("two ranks, %d classes: max |w2 - w1| = %.3g (scale %.3g), %d sums\n", k_n,
                      diff, scale, mpi.calls[0]);
        assert_true(diff <= 1e-7 * scale);
        km_buf_free(&b0);
        km_buf_free(&b1);
        km_logreg_free(&ranks[0].model);
        km_logreg_free(&ranks[1].model);
        km_logreg_free(&one);
        free_problem(&pr);
    }
}

/* A NaN on rank 1: rank 1 names its row, rank 0 hears of it and neither
 * waits in sum() (the test would hang). */
static void test_two_ranks_bad_data(void **state)
{
    (void)state;
    problem_t pr = make_problem(400, 4, 2, 3.0, 8);
    pr.x[300 * 4 + 2] = NAN;
    km_logreg_params_t p = km_logreg_defaults();
    rank_t ranks[2] = {{.data = data_of(&pr, 0, 200), .p = p},
                       {.data = data_of(&pr, 200, 200), .p = p}};
    fake_mpi_t mpi = {.calls = {0, 0}};
    run_two_ranks(ranks, &mpi);
    assert_int_equal(ranks[1].rc, KILN_ENONFINITE);
    assert_non_null(strstr(ranks[1].err.msg, "row 100"));
    assert_int_equal(ranks[0].rc, KILN_EINVAL);
    assert_non_null(strstr(ranks[0].err.msg, "other rank"));
    assert_null(ranks[0].model);
    assert_null(ranks[1].model);

    /* class 1 only on rank 0 and class 0 only on rank 1: fine together */
    pr.x[300 * 4 + 2] = 0.5f;
    for (size_t i = 0; i < 400; i++)
        pr.y[i] = i < 200;
    ranks[0].rc = ranks[1].rc = -99;
    run_two_ranks(ranks, &mpi);
    assert_int_equal(ranks[0].rc, 0);
    assert_int_equal(ranks[1].rc, 0);
    km_logreg_free(&ranks[0].model);
    km_logreg_free(&ranks[1].model);
    free_problem(&pr);
}

static void expect_fit_error(const km_data_t *data, const km_logreg_params_t *p, int code,
                             const char *needle)
{
    km_logreg_t *m = (km_logreg_t *)&m;    /* must be reset to NULL */
    kiln_err_t err;
    memset(&err, 0, sizeof err);
    int rc = km_logreg_fit(data, p, NULL, &m, &err);
    if (rc != code || !strstr(err.msg, needle))
        print_error("want %d \"%s\", got %d \"%s\"\n", code, needle, rc, err.msg);
    assert_int_equal(rc, code);
    assert_int_equal(err.code, code);
    assert_non_null(strstr(err.msg, needle));
    assert_null(m);
}

static void test_bad_inputs(void **state)
{
    (void)state;
    problem_t pr = make_problem(50, 3, 3, 3.0, 3);
    km_data_t good = data_of(&pr, 0, pr.n), d;
    km_logreg_params_t p = km_logreg_defaults(), q;
    kiln_err_t err;

    expect_fit_error(NULL, &p, KILN_EINVAL, "data is NULL");
    expect_fit_error(&good, NULL, KILN_EINVAL, "params is NULL");
    assert_int_equal(km_logreg_fit(&good, &p, NULL, NULL, &err), KILN_EINVAL);
    d = good, d.n = 0;
    expect_fit_error(&d, &p, KILN_EINVAL, "no rows");
    d = good, d.d = 0;
    expect_fit_error(&d, &p, KILN_EINVAL, "d = 0");
    d = good, d.n_classes = 1;
    expect_fit_error(&d, &p, KILN_EINVAL, "n_classes = 1");
    d = good, d.n_classes = KM_LOGREG_MAX_CLASSES + 1;
    expect_fit_error(&d, &p, KILN_EINVAL, "n_classes");
    d = good, d.x = NULL;
    expect_fit_error(&d, &p, KILN_EINVAL, "x is NULL");
    d = good, d.y = NULL;
    expect_fit_error(&d, &p, KILN_EINVAL, "y is NULL");
    d = good, d.n_classes = 4;   /* labels 0..2 only */
    expect_fit_error(&d, &p, KILN_EINVAL, "class 3 of n_classes = 4 has no rows");
    d = good, d.n_classes = 2;   /* label 2 is out of range */
    expect_fit_error(&d, &p, KILN_EINVAL, "outside [0, 2)");

    int32_t keep = pr.y[17];
    pr.y[17] = -1;
    expect_fit_error(&good, &p, KILN_EINVAL, "row 17 has label -1");
    pr.y[17] = keep;

    int32_t *one = malloc(pr.n * sizeof *one);
    for (size_t i = 0; i < pr.n; i++)
        one[i] = 1;
    d = good, d.y = one;
    expect_fit_error(&d, &p, KILN_EINVAL, "one class only");
    free(one);

    float kx = pr.x[23 * 3 + 1];
    pr.x[23 * 3 + 1] = NAN;
    expect_fit_error(&good, &p, KILN_ENONFINITE, "row 23");
    pr.x[23 * 3 + 1] = -INFINITY;
    expect_fit_error(&good, &p, KILN_ENONFINITE, "row 23");
    pr.x[23 * 3 + 1] = kx;

    q = p, q.l2 = 0;
    expect_fit_error(&good, &q, KILN_EINVAL, "l2");
    q = p, q.l2 = NAN;
    expect_fit_error(&good, &q, KILN_EINVAL, "l2");
    q = p, q.l2 = INFINITY;
    expect_fit_error(&good, &q, KILN_EINVAL, "l2");
    q = p, q.max_iter = 0;
    expect_fit_error(&good, &q, KILN_EINVAL, "max_iter");
    q = p, q.tol = -1;
    expect_fit_error(&good, &q, KILN_EINVAL, "tol");
    q = p, q.tol = NAN;
    expect_fit_error(&good, &q, KILN_EINVAL, "tol");
    q = p, q.threads = 0;
    expect_fit_error(&good, &q, KILN_EINVAL, "threads");
    q = p, q.threads = KM_LOGREG_MAX_THREADS + 1;
    expect_fit_error(&good, &q, KILN_EINVAL, "threads");

    /* predict and loss_grad */
    km_logreg_t *m = fit_ok(&good, &p);
    float sc[3 * 3], row[3 * 3] = {0, 1, 2, 3, 4, 5, 6, NAN, 8};
    assert_int_equal(km_logreg_predict(NULL, row, 1, sc, NULL, &err), KILN_EINVAL);
    assert_int_equal(km_logreg_predict(m, NULL, 1, sc, NULL, &err), KILN_EINVAL);
    assert_int_equal(km_logreg_predict(m, row, 1, NULL, NULL, &err), KILN_EINVAL);
    assert_int_equal(km_logreg_predict(m, row, 3, sc, NULL, &err), KILN_ENONFINITE);
    assert_non_null(strstr(err.msg, "row 2"));
    assert_int_equal(km_logreg_predict(m, NULL, 0, NULL, NULL, &err), 0);
    double w[12] = {0}, f, g[12];
    assert_int_equal(km_logreg_loss_grad(&good, &p, NULL, &f, g, &err), KILN_EINVAL);
    d = good, d.n = 0;
    assert_int_equal(km_logreg_loss_grad(&d, &p, w, &f, g, &err), KILN_EINVAL);
    assert_int_equal(km_logreg_save(NULL, NULL, &err), KILN_EINVAL);
    assert_int_equal(km_logreg_n_outputs(NULL), 0);
    km_logreg_free(&m);
    km_logreg_free(NULL);
    free_problem(&pr);
}

/* Fail the k-th allocation of a fit for every k until one succeeds: each
 * failure is KILN_ENOMEM with no model and (under ASan) no leak. */
static void test_alloc_failures(void **state)
{
    (void)state;
    problem_t pr = make_problem(300, 4, 3, 3.0, 21);
    km_data_t data = data_of(&pr, 0, pr.n);
    km_logreg_params_t p = km_logreg_defaults();
    int k, rc = -1;
    for (k = 1; k < 50 && rc != 0; k++) {
        km_logreg_t *m = NULL;
        kiln_err_t err;
        kiln_alloc_fail_after(k);
        rc = km_logreg_fit(&data, &p, NULL, &m, &err);
        kiln_alloc_fail_after(0);
        if (rc != 0) {
            assert_int_equal(rc, KILN_ENOMEM);
            assert_null(m);
        }
        km_logreg_free(&m);
    }
    assert_int_equal(rc, 0);
    assert_true(k > 3);
    free_problem(&pr);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_binary_vs_sklearn),
        cmocka_unit_test(test_multiclass_vs_sklearn),
        cmocka_unit_test(test_gradient),
        cmocka_unit_test(test_determinism),
        cmocka_unit_test(test_save_load),
        cmocka_unit_test(test_two_ranks),
        cmocka_unit_test(test_two_ranks_bad_data),
        cmocka_unit_test(test_bad_inputs),
        cmocka_unit_test(test_alloc_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
