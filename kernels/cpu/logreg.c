/* logreg.c - L2 logistic regression (binary sigmoid, multinomial softmax)
 * fitted by full-batch L-BFGS (Nocedal & Wright, Numerical Optimization,
 * 2nd ed., Alg. 7.4 two-loop recursion; Alg. 3.5/3.6 strong-Wolfe line search
 * with cubic interpolation, eq. 3.59).  The objective is scikit-learn's (see
 * logreg.h); one pass over x per evaluation computes loss and gradient. */
#include <math.h>
#include <pthread.h>
#ifdef __AVX__
#include <immintrin.h>
#endif
#include <stdatomic.h>
#include <string.h>

#include "../../core/kiln_alloc.h"
#include "../logreg.h"

struct km_logreg {
    size_t  d;
    int     n_classes;
    int     n_iter, converged;
    double  l2;
    double *w;              /* km_logreg_n_weights(d, n_classes) */
};

#define LR_MAGIC      0x52474C4Bu   /* "KLGR" as little-endian bytes */
#define LR_VERSION    1u
#define LBFGS_M       10            /* correction pairs, as scipy's maxcor */
#define LS_MAX_EVALS  50            /* scikit-learn passes maxls = 50 */
#define LS_C1         1e-4          /* sufficient decrease */
#define LS_C2         0.9           /* curvature (N&W's value for quasi-Newton) */
#define BLOCK_ROWS    8             /* rows sharing one pass over w and g */

/* GCC/clang vector extensions: the lane-wise sums below are spelled out, so
 * the compiler emits SIMD without reassociating (no -ffast-math needed) and
 * the order of every sum is fixed by the source. */
typedef double v4d __attribute__((vector_size(32)));
typedef float  v4f __attribute__((vector_size(16)));

/* float -> double is exact, so the intrinsic (GCC 12 splits the generic
 * conversion into two 128-bit halves) gives the same bits as the fallback. */
static inline v4d ld_f(const float *p)
{
#ifdef __AVX__
    return (v4d)_mm256_cvtps_pd(_mm_loadu_ps(p));
#else
    v4f f;
    memcpy(&f, p, sizeof f);
    return __builtin_convertvector(f, v4d);
#endif
}

static inline v4d ld_d(const double *p)
{
    v4d v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline void st_d(double *p, v4d v) { memcpy(p, &v, sizeof v); }

static inline double hsum(v4d a) { return (a[0] + a[1]) + (a[2] + a[3]); }

/* a * b + c, fused where the build target has FMA (-march=native on the
 * machine that runs it): one rounding less and half the floating-point
 * instructions of the two passes below.  The model's bits then depend on
 * the build's target, never on threads or runs. */
static inline v4d fma4(v4d a, v4d b, v4d c)
{
#ifdef __FMA__
    return (v4d)_mm256_fmadd_pd((__m256d)a, (__m256d)b, (__m256d)c);
#else
    return a * b + c;
#endif
}

size_t km_logreg_n_weights(size_t d, int n_classes)
{
    size_t rows = n_classes == 2 ? 1 : (size_t)(n_classes > 0 ? n_classes : 0);
    return rows * (d + 1);
}

km_logreg_params_t km_logreg_defaults(void)
{
    km_logreg_params_t p = {.l2 = 1.0, .max_iter = 100, .tol = 1e-4, .threads = 1, .seed = 0};
    return p;
}

/* ---- chunks over threads -------------------------------------------------
 * Each chunk writes only its own slot, so which thread ran it never matters.
 * Threads live for one pass; a failed pthread_create leaves more chunks to
 * the calling thread, with the same result. */

typedef struct {
    size_t        n_chunks;
    atomic_size_t next;
    void        (*chunk)(void *ctx, size_t c, int thread);
    void         *ctx;
} lr_pool_t;

typedef struct {
    lr_pool_t *pool;
    int        thread;      /* 0 .. threads-1: which scratch the chunk may use */
} lr_worker_t;

static void *lr_worker(void *arg)
{
    lr_worker_t *wk = arg;
    size_t c;
    while ((c = atomic_fetch_add(&wk->pool->next, 1)) < wk->pool->n_chunks)
        wk->pool->chunk(wk->pool->ctx, c, wk->thread);
    return NULL;
}

static void lr_run(size_t n_chunks, int threads, void (*chunk)(void *, size_t, int), void *ctx)
{
    lr_pool_t pool = {.n_chunks = n_chunks, .chunk = chunk, .ctx = ctx};
    atomic_init(&pool.next, 0);
    pthread_t tid[KM_LOGREG_MAX_THREADS];
    lr_worker_t wk[KM_LOGREG_MAX_THREADS];
    int started = 0;
    size_t helpers = threads > 1 ? (size_t)threads - 1 : 0;
    if (helpers + 1 > n_chunks)
        helpers = n_chunks > 1 ? n_chunks - 1 : 0;
    for (size_t t = 0; t < helpers; t++) {
        wk[started] = (lr_worker_t){&pool, started + 1};
        if (pthread_create(&tid[started], NULL, lr_worker, &wk[started]) != 0)
            break;
        started++;
    }
    lr_worker_t self = {&pool, 0};
    lr_worker(&self);
    for (int t = 0; t < started; t++)
        pthread_join(tid[t], NULL);
}

/* ---- one evaluation: loss and gradient sums over this rank's rows -------- */

typedef struct {
    const float   *x;
    const int32_t *y;
    size_t         n, d;
    int            n_classes;
    size_t         n_w;         /* weights; a chunk slot is n_w + 1 (loss last) */
    size_t         n_chunks;
    int            threads;
    const double  *w;           /* the point being evaluated */
    double        *partial;     /* n_chunks x (n_w + 1) */
    double        *scratch;     /* per thread: BLOCK_ROWS x d, a block of x as double */
    size_t        *bad_row;     /* validation: per chunk, first bad row + 1 */
    int           *bad_kind;    /* 1 non-finite x, 2 label out of range */
} lr_eval_t;

/* xd[r * d + j] = x_r[j] as double: float -> double conversion is the
 * slowest instruction of the passes below, so it is done once per row, not
 * once per use (dot, gradient, and each class). */
static inline __attribute__((always_inline)) void
widen_rows(const float *x, int nb, size_t d, double *xd)
{
    const size_t n = (size_t)nb * d, n4 = n & ~(size_t)3;
    for (size_t j = 0; j < n4; j += 4)
        st_d(xd + j, ld_f(x + j));
    for (size_t j = n4; j < n; j++)
        xd[j] = x[j];
}

/* z[r] = x_r . w (no intercept) for nb <= BLOCK_ROWS rows of xd; inlined
 * with a constant nb so the row loop unrolls.  Each row's sum has the same
 * order whatever nb is. */
static inline __attribute__((always_inline)) void
dot_rows(const double *xd, int nb, const double *w, size_t d, double *z)
{
    const size_t d4 = d & ~(size_t)3;
    v4d a[BLOCK_ROWS] = {{0}};
    for (size_t j = 0; j < d4; j += 4) {
        v4d wv = ld_d(w + j);
        for (int r = 0; r < nb; r++)
            a[r] = fma4(ld_d(xd + (size_t)r * d + j), wv, a[r]);
    }
    for (int r = 0; r < nb; r++) {
        double s = hsum(a[r]);
        for (size_t j = d4; j < d; j++)
            s += xd[(size_t)r * d + j] * w[j];
        z[r] = s;
    }
}

/* g[0..d) += sum_r res[r] * x_r, g[d] += sum_r res[r]; one pass over g.
 * Even and odd rows go into two chains, halving the dependency length. */
static inline __attribute__((always_inline)) void
axpy_rows(const double *xd, int nb, const double *res, size_t d, double *g)
{
    const size_t d4 = d & ~(size_t)3;
    v4d rv[BLOCK_ROWS];
    for (int r = 0; r < nb; r++)
        rv[r] = (v4d){0} + res[r];
    for (size_t j = 0; j < d4; j += 4) {
        v4d s0 = fma4(rv[0], ld_d(xd + j), ld_d(g + j)), s1 = {0};
        for (int r = 1; r < nb; r++) {
            if (r & 1)
                s1 = fma4(rv[r], ld_d(xd + (size_t)r * d + j), s1);
            else
                s0 = fma4(rv[r], ld_d(xd + (size_t)r * d + j), s0);
        }
        st_d(g + j, s0 + s1);
    }
    double sb = 0;
    for (int r = 0; r < nb; r++) {
        for (size_t j = d4; j < d; j++)
            g[j] += res[r] * xd[(size_t)r * d + j];
        sb += res[r];
    }
    g[d] += sb;
}

/* ---- exp and log on a block of rows -------------------------------------
 * libm's exp/log1p per row cost more than the pass over x; these run on
 * BLOCK_ROWS rows at once.  exp: Cody-Waite reduction x = k ln2 + r,
 * |r| <= ln2/2, and the Taylor series to r^13 (remainder < 4e-18 relative),
 * polynomials by Estrin's scheme (short dependency chains); arguments below
 * -708 are clamped there (e^-708 ~ 3e-308 instead of 0, far below any sum's
 * rounding).  log: x = 2^e m, m in [sqrt(2)/2, sqrt(2)), log m = 2 atanh(t),
 * t = (m-1)/(m+1), |t| < 0.172, the series to t^27 (remainder < 1e-20).
 * A few ulps, like libm; the same bits on every machine. */

/* One lane per row of a block: 512-bit on AVX-512, two 256-bit halves on
 * AVX2; either way independent rows' chains overlap. */
typedef double  vr_t  __attribute__((vector_size(8 * BLOCK_ROWS)));
typedef int64_t vri_t __attribute__((vector_size(8 * BLOCK_ROWS)));

#define LN2_HI 0x1.62e42fee00000p-1     /* 32 significant bits: k * LN2_HI is exact */
#define LN2_LO 0x1.a39ef35793c76p-33
#define SHIFT_52 0x1.8p52               /* adding it rounds to an integer in the low bits */

static inline vr_t v_set(double a) { return (vr_t){0} + a; }

/* mask lanes (all ones / zero, as comparisons give) pick a, else b */
static inline vr_t v_select(vri_t mask, vr_t a, vr_t b)
{
    return (vr_t)(((vri_t)a & mask) | ((vri_t)b & ~mask));
}

/* sum_i c[i] u^i, i <= 13, by Estrin's scheme: depth 4 instead of 13 */
static inline vr_t v_poly14(const double *c, vr_t u)
{
    vr_t u2 = u * u, u4 = u2 * u2, u8 = u4 * u4;
    vr_t p01 = c[0] + c[1] * u, p23 = c[2] + c[3] * u, p45 = c[4] + c[5] * u;
    vr_t p67 = c[6] + c[7] * u, p89 = c[8] + c[9] * u, pab = c[10] + c[11] * u;
    vr_t pcd = c[12] + c[13] * u;
    vr_t lo = (p01 + p23 * u2) + (p45 + p67 * u2) * u4;
    vr_t hi = (p89 + pab * u2) + pcd * u4;
    return lo + hi * u8;
}

static inline vr_t v_exp(vr_t x)
{
    static const double c[14] = {
        1.0, 1.0, 1.0 / 2, 1.0 / 6, 1.0 / 24, 1.0 / 120, 1.0 / 720, 1.0 / 5040,
        1.0 / 40320, 1.0 / 362880, 1.0 / 3628800, 1.0 / 39916800, 1.0 / 479001600,
        1.0 / 6227020800.0};
    x = v_select(x < -708.0, v_set(-708.0), x);
    vr_t kd = x * 1.4426950408889634 + SHIFT_52;
    vri_t k = (vri_t)kd - (vri_t)v_set(SHIFT_52);
    vr_t kf = kd - SHIFT_52;
    vr_t r = (x - kf * LN2_HI) - kf * LN2_LO;
    return v_poly14(c, r) * (vr_t)((k + 1023) << 52);
}

/* natural log of positive, finite, normal lanes */
static inline vr_t v_log(vr_t x)
{
    static const double c[14] = {1.0, 1.0 / 3, 1.0 / 5, 1.0 / 7, 1.0 / 9, 1.0 / 11, 1.0 / 13,
                                 1.0 / 15, 1.0 / 17, 1.0 / 19, 1.0 / 21, 1.0 / 23, 1.0 / 25,
                                 1.0 / 27};
    vri_t bits = (vri_t)x;
    vri_t e = (bits >> 52) - 1023;
    vr_t m = (vr_t)((bits & 0x000fffffffffffffLL) | 0x3ff0000000000000LL);
    vri_t big = m > 1.4142135623730951;
    m = v_select(big, m * 0.5, m);
    e -= big;                                   /* big lanes are -1 */
    vr_t t = (m - 1.0) / (m + 1.0);
    vr_t ef = (vr_t)(e + (vri_t)v_set(SHIFT_52)) - SHIFT_52;
    return ef * LN2_HI + (ef * LN2_LO + 2.0 * t * v_poly14(c, t * t));
}

/* Binary log-loss of margins z with labels y (0/1 lanes), written to never
 * overflow: log(1 + e^z) - y z = log(1 + e^-|z|) + max(z, 0) - y z.
 * Returns p - y; *loss gets each lane's loss. */
static inline vr_t binary_rows(vr_t z, vr_t y, vr_t *loss)
{
    vr_t az = (vr_t)((vri_t)z & 0x7fffffffffffffffLL);
    vr_t e = v_exp(-az), one_e = 1.0 + e;
    vr_t pos = v_select(z > 0.0, z, v_set(0.0));
    *loss = v_log(one_e) + pos - y * z;
    vr_t inv = 1.0 / one_e;
    return v_select(z >= 0.0, inv, e * inv) - y;
}

static inline vr_t v_load(const double *p)
{
    vr_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline __attribute__((always_inline)) void
binary_block(const lr_eval_t *ev, size_t i, int nb, double *xd, double *acc, vr_t *loss_v,
             double *loss1)
{
    const size_t d = ev->d;
    double z[BLOCK_ROWS] = {0}, res[BLOCK_ROWS], y[BLOCK_ROWS] = {0};
    for (int r = 0; r < nb; r++)
        y[r] = (double)ev->y[i + (size_t)r];
    widen_rows(ev->x + i * d, nb, d, xd);
    dot_rows(xd, nb, ev->w, d, z);
    vr_t l, rv = binary_rows(v_load(z) + ev->w[d], v_load(y), &l);
    memcpy(res, &rv, sizeof res);
    if (nb == BLOCK_ROWS)
        *loss_v += l;
    else
        for (int r = 0; r < nb; r++)
            *loss1 += l[r];
    axpy_rows(xd, nb, res, d, acc);
}

/* Softmax cross-entropy over the classes, lane-wise for a block of rows,
 * z shifted by its max: loss = log sum e^(z-m) + m - z_y. */
static inline __attribute__((always_inline)) void
multi_block(const lr_eval_t *ev, size_t i, int nb, double *xd, double *acc, vr_t *loss_v,
            double *loss1)
{
    const size_t d = ev->d, stride = d + 1;
    const int k_n = ev->n_classes;
    vr_t z[KM_LOGREG_MAX_CLASSES];               /* z[k][r] */
    double zk[BLOCK_ROWS] = {0}, res[BLOCK_ROWS];
    int64_t y[BLOCK_ROWS] = {0};
    for (int r = 0; r < nb; r++)
        y[r] = ev->y[i + (size_t)r];
    widen_rows(ev->x + i * d, nb, d, xd);
    vri_t yv;
    memcpy(&yv, y, sizeof yv);
    vr_t m = v_set(-HUGE_VAL), zy = v_set(0.0), s = v_set(0.0);
    for (int k = 0; k < k_n; k++) {
        const double *wk = ev->w + (size_t)k * stride;
        dot_rows(xd, nb, wk, d, zk);
        z[k] = v_load(zk) + wk[d];
        m = v_select(z[k] > m, z[k], m);
        zy = v_select(yv == k, z[k], zy);
    }
    for (int k = 0; k < k_n; k++) {
        z[k] = v_exp(z[k] - m);
        s += z[k];
    }
    vr_t l = v_log(s) + m - zy, inv = 1.0 / s;
    if (nb == BLOCK_ROWS)
        *loss_v += l;
    else
        for (int r = 0; r < nb; r++)
            *loss1 += l[r];
    for (int k = 0; k < k_n; k++) {
        vr_t p = z[k] * inv - v_select(yv == k, v_set(1.0), v_set(0.0));
        memcpy(res, &p, sizeof res);
        axpy_rows(xd, nb, res, d, acc + (size_t)k * stride);
    }
}

static void eval_chunk(void *ctx, size_t c, int thread)
{
    const lr_eval_t *ev = ctx;
    double *xd = ev->scratch + (size_t)thread * BLOCK_ROWS * ev->d;
    double *acc = ev->partial + c * (ev->n_w + 1), loss1 = 0;
    vr_t loss_v = v_set(0.0);
    size_t i = c * KM_LOGREG_CHUNK_ROWS;
    size_t end = i + KM_LOGREG_CHUNK_ROWS < ev->n ? i + KM_LOGREG_CHUNK_ROWS : ev->n;
    memset(acc, 0, (ev->n_w + 1) * sizeof *acc);
    if (ev->n_classes == 2) {
        for (; i + BLOCK_ROWS <= end; i += BLOCK_ROWS)
            binary_block(ev, i, BLOCK_ROWS, xd, acc, &loss_v, &loss1);
        for (; i < end; i++)
            binary_block(ev, i, 1, xd, acc, &loss_v, &loss1);
    } else {
        for (; i + BLOCK_ROWS <= end; i += BLOCK_ROWS)
            multi_block(ev, i, BLOCK_ROWS, xd, acc, &loss_v, &loss1);
        for (; i < end; i++)
            multi_block(ev, i, 1, xd, acc, &loss_v, &loss1);
    }
    double loss = loss1;
    for (int r = 0; r < BLOCK_ROWS; r++)
        loss += loss_v[r];
    acc[ev->n_w] = loss;
}

/* out[0..n_w) = gradient sum, out[n_w] = loss sum over this rank's rows at w,
 * chunk sums added in chunk order. */
static void eval_local(lr_eval_t *ev, const double *w, double *out)
{
    const size_t slot = ev->n_w + 1;
    ev->w = w;
    lr_run(ev->n_chunks, ev->threads, eval_chunk, ev);
    memset(out, 0, slot * sizeof *out);
    for (size_t c = 0; c < ev->n_chunks; c++)
        for (size_t k = 0; k < slot; k++)
            out[k] += ev->partial[c * slot + k];
}

/* The exponent field all ones is Inf or NaN; an integer max over the row
 * vectorizes where a float test would not. */
static int row_finite(const float *x, size_t d)
{
    uint32_t worst = 0;
    for (size_t j = 0; j < d; j++) {
        uint32_t u;
        memcpy(&u, &x[j], sizeof u);
        u &= 0x7f800000u;
        worst = u > worst ? u : worst;
    }
    return worst != 0x7f800000u;
}

static void check_chunk(void *ctx, size_t c, int thread)
{
    (void)thread;
    const lr_eval_t *ev = ctx;
    size_t i = c * KM_LOGREG_CHUNK_ROWS;
    size_t end = i + KM_LOGREG_CHUNK_ROWS < ev->n ? i + KM_LOGREG_CHUNK_ROWS : ev->n;
    ev->bad_row[c] = 0;
    ev->bad_kind[c] = 0;
    for (; i < end; i++) {
        int kind = !row_finite(ev->x + i * ev->d, ev->d) ? 1
                   : (ev->y[i] < 0 || ev->y[i] >= ev->n_classes) ? 2 : 0;
        if (kind) {
            ev->bad_row[c] = i + 1;
            ev->bad_kind[c] = kind;
            return;
        }
    }
}

/* ---- the objective F over all ranks --------------------------------------- */

typedef struct {
    lr_eval_t          ev;
    const km_reduce_t *reduce;
    double             n_total;    /* rows over all ranks */
    double             l2;
    double            *buf;        /* n_w + 1: the rank sums, then the global ones */
} lr_obj_t;

static int obj_sum(const lr_obj_t *o, double *buf, size_t n, kiln_err_t *err)
{
    if (!o->reduce || !o->reduce->sum)
        return 0;
    int rc = o->reduce->sum(o->reduce->ud, buf, n, err);
    if (rc < 0 && err && err->code == 0)
        kiln_err_set(err, rc, "logreg: reduce->sum failed (%d)", rc);
    return rc < 0 ? rc : 0;
}

/* F(w) and grad F(w) (logreg.h); every rank calls sum() once. */
static int obj_eval(lr_obj_t *o, const double *w, double *f, double *g, kiln_err_t *err)
{
    const size_t n_w = o->ev.n_w, stride = o->ev.d + 1;
    eval_local(&o->ev, w, o->buf);
    int rc = obj_sum(o, o->buf, n_w + 1, err);
    if (rc < 0)
        return rc;
    const double inv_n = 1.0 / o->n_total;
    double pen = 0;
    for (size_t k = 0; k < n_w; k++) {
        int is_intercept = k % stride == stride - 1;
        double wk = is_intercept ? 0.0 : w[k];
        pen += wk * wk;
        g[k] = (o->buf[k] + o->l2 * wk) * inv_n;
    }
    *f = (o->buf[n_w] + 0.5 * o->l2 * pen) * inv_n;
    return 0;
}

static void obj_free(lr_obj_t *o)
{
    kiln_free(o->ev.partial);
    kiln_free_aligned(o->ev.scratch);
    kiln_free(o->ev.bad_row);
    kiln_free(o->ev.bad_kind);
    kiln_free(o->buf);
    memset(o, 0, sizeof *o);
}

static int check_params(const km_logreg_params_t *p, kiln_err_t *err)
{
    if (!p)
        return kiln_err_set(err, KILN_EINVAL, "logreg: params is NULL");
    if (!(isfinite(p->l2) && p->l2 > 0))
        return kiln_err_at(err, KILN_EINVAL, "l2",
                           "logreg: l2 = %g: must be a finite number > 0 (l2 = 1/C)", p->l2);
    if (p->max_iter < 1)
        return kiln_err_at(err, KILN_EINVAL, "max_iter",
                           "logreg: max_iter = %d: must be >= 1", p->max_iter);
    if (!(isfinite(p->tol) && p->tol >= 0))
        return kiln_err_at(err, KILN_EINVAL, "tol",
                           "logreg: tol = %g: must be a finite number >= 0", p->tol);
    if (p->threads < 1 || p->threads > KM_LOGREG_MAX_THREADS)
        return kiln_err_at(err, KILN_EINVAL, "threads", "logreg: threads = %d: must be 1..%d",
                           p->threads, KM_LOGREG_MAX_THREADS);
    return 0;
}

/* Checks data and params, checks this rank's rows, agrees with the other
 * ranks through one sum of [class counts, n, d, refused] and allocates
 * the evaluator.  After a local error the rank still takes part in that sum,
 * so the others learn of it instead of waiting for it. */
static int obj_init(lr_obj_t *o, const km_data_t *data, const km_logreg_params_t *p,
                    const km_reduce_t *reduce, kiln_err_t *err)
{
    memset(o, 0, sizeof *o);
    int rc = check_params(p, err);
    if (rc < 0)
        return rc;
    if (!data)
        return kiln_err_set(err, KILN_EINVAL, "logreg: data is NULL");
    const int k_n = data->n_classes;
    const int ranks = reduce && reduce->sum ? reduce->n_ranks : 1;
    if (data->d == 0)
        return kiln_err_at(err, KILN_EINVAL, "d", "logreg: d = 0: x needs at least one feature");
    if (k_n < 2 || k_n > KM_LOGREG_MAX_CLASSES)
        return kiln_err_at(err, KILN_EINVAL, "n_classes",
                           "logreg: n_classes = %d: a classifier needs 2..%d classes", k_n,
                           KM_LOGREG_MAX_CLASSES);
    if (ranks < 1)
        return kiln_err_set(err, KILN_EINVAL, "logreg: reduce->n_ranks = %d", ranks);
    if (data->n == 0 && ranks == 1)
        return kiln_err_at(err, KILN_EINVAL, "n", "logreg: no rows (n = 0)");
    if (data->n > 0 && (!data->x || !data->y))
        return kiln_err_set(err, KILN_EINVAL, "logreg: %s is NULL with n = %zu rows",
                            !data->x ? "x" : "y", data->n);
    if (data->d > KM_LOGREG_MAX_FEATURES || data->n > SIZE_MAX / sizeof(float) / data->d)
        return kiln_err_at(err, KILN_EINVAL, "d", "logreg: %zu x %zu is too large (d <= %zu)",
                           data->n, data->d, KM_LOGREG_MAX_FEATURES);

    lr_eval_t *ev = &o->ev;
    ev->x = data->x;
    ev->y = data->y;
    ev->n = data->n;
    ev->d = data->d;
    ev->n_classes = k_n;
    ev->n_w = km_logreg_n_weights(data->d, k_n);
    ev->n_chunks = (data->n + KM_LOGREG_CHUNK_ROWS - 1) / KM_LOGREG_CHUNK_ROWS;
    ev->threads = p->threads;
    o->reduce = reduce;
    o->l2 = p->l2;
    size_t n_agree = (size_t)k_n + 3;
    size_t buf_len = ev->n_w + 1 > n_agree ? ev->n_w + 1 : n_agree;
    size_t n_ch = ev->n_chunks ? ev->n_chunks : 1;
    ev->partial = kiln_malloc(n_ch * (ev->n_w + 1) * sizeof(double));
    ev->bad_row = kiln_malloc(n_ch * sizeof(size_t));
    ev->bad_kind = kiln_malloc(n_ch * sizeof(int));
    ev->scratch = kiln_malloc_aligned((size_t)p->threads * BLOCK_ROWS * data->d * sizeof(double));
    o->buf = kiln_malloc(buf_len * sizeof(double));
    if (!ev->partial || !ev->bad_row || !ev->bad_kind || !ev->scratch || !o->buf) {
        obj_free(o);
        return kiln_err_set(err, KILN_ENOMEM, "logreg: out of memory for %zu chunks of %zu weights",
                            n_ch, ev->n_w + 1);
    }

    /* local rows: the first bad row in row order, whatever the threads */
    lr_run(ev->n_chunks, ev->threads, check_chunk, ev);
    size_t bad_row = 0;
    int bad_kind = 0;
    for (size_t c = 0; c < ev->n_chunks && !bad_kind; c++) {
        bad_row = ev->bad_row[c];
        bad_kind = ev->bad_kind[c];
    }
    double *agree = o->buf;
    memset(agree, 0, n_agree * sizeof *agree);
    if (!bad_kind)
        for (size_t i = 0; i < data->n; i++)
            agree[data->y[i]] += 1.0;
    agree[k_n] = (double)data->n;
    agree[k_n + 1] = (double)data->d;
    agree[k_n + 2] = bad_kind ? 1.0 : 0.0;
    rc = obj_sum(o, agree, n_agree, err);
    if (rc < 0)
        goto fail;
    if (bad_kind == 1) {
        rc = kiln_err_at(err, KILN_ENONFINITE, "x", "logreg: row %zu of x holds NaN or Inf",
                         bad_row - 1);
        goto fail;
    }
    if (bad_kind == 2) {
        rc = kiln_err_at(err, KILN_EINVAL, "y", "logreg: row %zu has label %d, outside [0, %d)",
                         bad_row - 1, (int)data->y[bad_row - 1], k_n);
        goto fail;
    }
    if (agree[k_n + 2] > 0) {
        rc = kiln_err_set(err, KILN_EINVAL, "logreg: %g other rank(s) refused their data",
                          agree[k_n + 2]);
        goto fail;
    }
    if (agree[k_n + 1] != (double)data->d * ranks) {
        rc = kiln_err_at(err, KILN_EINVAL, "d", "logreg: ranks disagree on d (this rank: %zu)",
                         data->d);
        goto fail;
    }
    o->n_total = agree[k_n];
    if (o->n_total == 0) {
        rc = kiln_err_at(err, KILN_EINVAL, "n", "logreg: no rows on any of %d ranks", ranks);
        goto fail;
    }
    int present = 0, first_present = -1, first_empty = -1;
    for (int k = 0; k < k_n; k++) {
        if (agree[k] > 0) {
            present++;
            first_present = first_present < 0 ? k : first_present;
        } else if (first_empty < 0) {
            first_empty = k;
        }
    }
    if (present == 1) {
        rc = kiln_err_at(err, KILN_EINVAL, "y",
                         "logreg: one class only (all %.0f rows are class %d of %d); a classifier "
                         "needs rows of at least two classes", o->n_total, first_present, k_n);
        goto fail;
    }
    if (first_empty >= 0) {
        rc = kiln_err_at(err, KILN_EINVAL, "y",
                         "logreg: class %d of n_classes = %d has no rows (%d classes present)",
                         first_empty, k_n, present);
        goto fail;
    }
    return 0;
fail:
    obj_free(o);
    return rc;
}

int km_logreg_loss_grad(const km_data_t *data, const km_logreg_params_t *p, const double *w,
                        double *loss, double *grad, kiln_err_t *err)
{
    if (!w || !loss || !grad)
        return kiln_err_set(err, KILN_EINVAL, "logreg: loss_grad needs w, loss and grad");
    lr_obj_t o;
    int rc = obj_init(&o, data, p, NULL, err);
    if (rc < 0)
        return rc;
    rc = obj_eval(&o, w, loss, grad, err);
    obj_free(&o);
    return rc;
}

/* ---- L-BFGS ----------------------------------------------------------------- */

static double dotn(const double *a, const double *b, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += a[i] * b[i];
    return s;
}

typedef struct {
    lr_obj_t *o;
    size_t    n;
    const double *w0, *dir;     /* phi(a) = F(w0 + a dir) */
    double    f0, dphi0;
    double   *w, *g, f, dphi;   /* the last point evaluated */
    int       evals;
} lr_ls_t;

static int ls_try(lr_ls_t *ls, double a, kiln_err_t *err)
{
    for (size_t i = 0; i < ls->n; i++)
        ls->w[i] = ls->w0[i] + a * ls->dir[i];
    ls->evals++;
    int rc = obj_eval(ls->o, ls->w, &ls->f, ls->g, err);
    ls->dphi = dotn(ls->g, ls->dir, ls->n);
    return rc;
}

/* Minimizer of the cubic through (lo, f_lo, d_lo) and (hi, f_hi, d_hi)
 * (N&W eq. 3.59), kept inside the middle 80% of the interval, else its
 * midpoint. */
static double cubic_step(double lo, double f_lo, double d_lo, double hi, double f_hi, double d_hi)
{
    double d1 = d_lo + d_hi - 3.0 * (f_lo - f_hi) / (lo - hi);
    double disc = d1 * d1 - d_lo * d_hi;
    double mid = 0.5 * (lo + hi), a = mid;
    if (disc >= 0 && isfinite(disc)) {
        double d2 = (hi > lo ? 1.0 : -1.0) * sqrt(disc);
        double den = d_hi - d_lo + 2.0 * d2;
        if (den != 0)
            a = hi - (hi - lo) * (d_hi + d2 - d1) / den;
    }
    double lo_b = fmin(lo, hi) + 0.1 * fabs(hi - lo), hi_b = fmax(lo, hi) - 0.1 * fabs(hi - lo);
    return isfinite(a) && a >= lo_b && a <= hi_b ? a : mid;
}

/* Strong-Wolfe line search (N&W Alg. 3.5 and zoom, 3.6).  Returns 0 with the
 * accepted point in ls->w/g/f, 1 when no such step was found in
 * LS_MAX_EVALS evaluations, or a negative error. */
static int line_search(lr_ls_t *ls, double a1, kiln_err_t *err)
{
    double a_prev = 0, f_prev = ls->f0, d_prev = ls->dphi0, a = a1;
    double lo, f_lo, d_lo, hi, f_hi, d_hi;
    int rc;
    for (;;) {
        if ((rc = ls_try(ls, a, err)) < 0)
            return rc;
        if (ls->f > ls->f0 + LS_C1 * a * ls->dphi0 || (ls->evals > 1 && ls->f >= f_prev)) {
            lo = a_prev, f_lo = f_prev, d_lo = d_prev, hi = a, f_hi = ls->f, d_hi = ls->dphi;
            break;
        }
        if (fabs(ls->dphi) <= -LS_C2 * ls->dphi0)
            return 0;
        if (ls->dphi >= 0) {
            lo = a, f_lo = ls->f, d_lo = ls->dphi, hi = a_prev, f_hi = f_prev, d_hi = d_prev;
            break;
        }
        if (ls->evals >= LS_MAX_EVALS)
            return 1;
        a_prev = a, f_prev = ls->f, d_prev = ls->dphi;
        a *= 2.0;
    }
    while (ls->evals < LS_MAX_EVALS) {
        if (fabs(hi - lo) <= 1e-15 * fmax(fabs(lo), fabs(hi)))
            return 1;
        a = cubic_step(lo, f_lo, d_lo, hi, f_hi, d_hi);
        if ((rc = ls_try(ls, a, err)) < 0)
            return rc;
        if (ls->f > ls->f0 + LS_C1 * a * ls->dphi0 || ls->f >= f_lo) {
            hi = a, f_hi = ls->f, d_hi = ls->dphi;
        } else {
            if (fabs(ls->dphi) <= -LS_C2 * ls->dphi0)
                return 0;
            if (ls->dphi * (hi - lo) >= 0)
                hi = lo, f_hi = f_lo, d_hi = d_lo;
            lo = a, f_lo = ls->f, d_lo = ls->dphi;
        }
    }
    return 1;
}

/* Minimizes F from w = 0; w[n] receives the result. */
static int lbfgs(lr_obj_t *o, double *w, int max_iter, double tol, int *n_iter, int *converged,
                 kiln_err_t *err)
{
    const size_t n = o->ev.n_w, m = LBFGS_M;
    double *mem = kiln_calloc((2 * m + 5) * n + 2 * m, sizeof(double));
    if (!mem)
        return kiln_err_set(err, KILN_ENOMEM, "logreg: out of memory for L-BFGS (%zu weights)", n);
    double *s = mem, *y = s + m * n, *g = y + m * n, *dir = g + n, *w_new = dir + n;
    double *g_new = w_new + n, *x = g_new + n, *rho = x + n, *alpha = rho + m;
    size_t n_pairs = 0, newest = 0;
    double f, f_new;
    int rc = obj_eval(o, x, &f, g, err), iter = 0;
    *converged = 0;
    while (rc >= 0) {
        double g_inf = 0;
        for (size_t i = 0; i < n; i++)
            g_inf = fmax(g_inf, fabs(g[i]));
        if (g_inf <= tol) {
            *converged = 1;
            break;
        }
        if (iter >= max_iter)
            break;
        /* two-loop recursion: dir = -H g, H0 = (s.y / y.y) I */
        for (size_t i = 0; i < n; i++)
            dir[i] = -g[i];
        for (size_t k = 0; k < n_pairs; k++) {
            size_t j = (newest + m - k) % m;
            alpha[j] = rho[j] * dotn(s + j * n, dir, n);
            for (size_t i = 0; i < n; i++)
                dir[i] -= alpha[j] * y[j * n + i];
        }
        if (n_pairs) {
            const double *yn = y + newest * n;
            double gamma = dotn(s + newest * n, yn, n) / dotn(yn, yn, n);
            for (size_t i = 0; i < n; i++)
                dir[i] *= gamma;
        }
        for (size_t k = n_pairs; k-- > 0;) {
            size_t j = (newest + m - k) % m;
            double beta = rho[j] * dotn(y + j * n, dir, n);
            for (size_t i = 0; i < n; i++)
                dir[i] += (alpha[j] - beta) * s[j * n + i];
        }
        double dphi0 = dotn(g, dir, n);
        if (!(dphi0 < 0)) {      /* lost descent (rounding): restart from -g */
            n_pairs = 0;
            for (size_t i = 0; i < n; i++)
                dir[i] = -g[i];
            dphi0 = dotn(g, dir, n);
        }
        double a1 = n_pairs ? 1.0 : fmin(1.0, 1.0 / sqrt(dotn(dir, dir, n)));
        lr_ls_t ls = {.o = o, .n = n, .w0 = x, .dir = dir, .f0 = f, .dphi0 = dphi0,
                      .w = w_new, .g = g_new};
        rc = line_search(&ls, a1, err);
        if (rc != 0)
            break;           /* 1: no acceptable step; keep x, not converged */
        iter++;
        f_new = ls.f;
        size_t slot = n_pairs ? (newest + 1) % m : newest;
        double sy = 0, yy = 0;
        for (size_t i = 0; i < n; i++) {
            s[slot * n + i] = w_new[i] - x[i];
            y[slot * n + i] = g_new[i] - g[i];
            sy += s[slot * n + i] * y[slot * n + i];
            yy += y[slot * n + i] * y[slot * n + i];
        }
        if (sy > 2.2e-16 * yy) {  /* keep H positive definite */
            rho[slot] = 1.0 / sy;
            newest = slot;
            n_pairs = n_pairs < m ? n_pairs + 1 : m;
        }
        memcpy(x, w_new, n * sizeof *x);
        memcpy(g, g_new, n * sizeof *g);
        double f_old = f;
        f = f_new;
        if (f_old - f <= 64 * 2.220446049250313e-16 * fmax(fmax(fabs(f_old), fabs(f)), 1.0)) {
            *converged = 1;
            break;
        }
    }
    if (rc > 0)
        rc = 0;
    memcpy(w, x, n * sizeof *w);
    *n_iter = iter;
    kiln_free(mem);
    return rc;
}

/* ---- the model ---------------------------------------------------------------- */

static km_logreg_t *model_new(size_t d, int n_classes)
{
    km_logreg_t *m = kiln_calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->d = d;
    m->n_classes = n_classes;
    m->w = kiln_calloc(km_logreg_n_weights(d, n_classes), sizeof(double));
    if (!m->w) {
        kiln_free(m);
        return NULL;
    }
    return m;
}

void km_logreg_free(km_logreg_t **m)
{
    if (!m || !*m)
        return;
    kiln_free((*m)->w);
    kiln_free(*m);
    *m = NULL;
}

int km_logreg_fit(const km_data_t *data, const km_logreg_params_t *p, const km_reduce_t *reduce,
                  km_logreg_t **out, kiln_err_t *err)
{
    if (!out)
        return kiln_err_set(err, KILN_EINVAL, "logreg: out is NULL");
    *out = NULL;
    lr_obj_t o;
    int rc = obj_init(&o, data, p, reduce, err);
    if (rc < 0)
        return rc;
    km_logreg_t *m = model_new(data->d, data->n_classes);
    if (!m) {
        rc = kiln_err_set(err, KILN_ENOMEM, "logreg: out of memory for the model");
        goto out;
    }
    m->l2 = p->l2;
    rc = lbfgs(&o, m->w, p->max_iter, p->tol, &m->n_iter, &m->converged, err);
    if (rc < 0) {
        km_logreg_free(&m);
        goto out;
    }
    *out = m;
out:
    obj_free(&o);
    return rc;
}

size_t km_logreg_n_outputs(const km_logreg_t *m) { return m ? (size_t)m->n_classes : 0; }

size_t km_logreg_n_features(const km_logreg_t *m) { return m ? m->d : 0; }

const double *km_logreg_weights(const km_logreg_t *m) { return m ? m->w : NULL; }

int km_logreg_n_iter(const km_logreg_t *m, int *converged)
{
    if (converged)
        *converged = m ? m->converged : 0;
    return m ? m->n_iter : 0;
}

int km_logreg_predict(const km_logreg_t *m, const float *x, size_t n, float *scores,
                      int32_t *pred, kiln_err_t *err)
{
    if (!m)
        return kiln_err_set(err, KILN_EINVAL, "logreg: predict with a NULL model");
    if (n > 0 && (!x || !scores))
        return kiln_err_set(err, KILN_EINVAL, "logreg: predict needs x and scores for %zu rows", n);
    const size_t d = m->d, stride = d + 1;
    const int k_n = m->n_classes;
    double z[KM_LOGREG_MAX_CLASSES];
    double *xd = kiln_malloc(d * sizeof *xd);
    if (!xd)
        return kiln_err_set(err, KILN_ENOMEM, "logreg: predict: out of memory for a row");
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        if (!row_finite(x + i * d, d)) {
            rc = kiln_err_at(err, KILN_ENONFINITE, "x",
                             "logreg: predict: row %zu of x holds NaN or Inf", i);
            break;
        }
        widen_rows(x + i * d, 1, d, xd);
        float *sc = scores + i * (size_t)k_n;
        if (k_n == 2) {
            double zi;
            dot_rows(xd, 1, m->w, d, &zi);
            zi += m->w[d];
            double e = exp(-fabs(zi)), p_hi = 1.0 / (1.0 + e), p_lo = e / (1.0 + e);
            sc[0] = (float)(zi >= 0 ? p_lo : p_hi);
            sc[1] = (float)(zi >= 0 ? p_hi : p_lo);
            if (pred)
                pred[i] = zi > 0;
            continue;
        }
        int best = 0;
        for (int k = 0; k < k_n; k++) {
            const double *wk = m->w + (size_t)k * stride;
            dot_rows(xd, 1, wk, d, &z[k]);
            z[k] += wk[d];
            best = z[k] > z[best] ? k : best;
        }
        double s = 0, z_max = z[best];
        for (int k = 0; k < k_n; k++) {
            z[k] = exp(z[k] - z_max);
            s += z[k];
        }
        for (int k = 0; k < k_n; k++)
            sc[k] = (float)(z[k] / s);
        if (pred)
            pred[i] = best;
    }
    kiln_free(xd);
    return rc;
}

/* ---- save / load ---------------------------------------------------------------
 * u32 magic "KLGR", u32 version, u32 n_classes, u32 converged, u64 d,
 * u32 n_iter, u32 0, f64 l2, then the weights as f64 (logreg.h layout). */

int km_logreg_save(const km_logreg_t *m, km_buf_t *out, kiln_err_t *err)
{
    if (!m || !out)
        return kiln_err_set(err, KILN_EINVAL, "logreg: save needs a model and a buffer");
    km_buf_u32(out, LR_MAGIC);
    km_buf_u32(out, LR_VERSION);
    km_buf_u32(out, (uint32_t)m->n_classes);
    km_buf_u32(out, (uint32_t)m->converged);
    km_buf_u64(out, m->d);
    km_buf_u32(out, (uint32_t)m->n_iter);
    km_buf_u32(out, 0);
    km_buf_f64s(out, &m->l2, 1);
    km_buf_f64s(out, m->w, km_logreg_n_weights(m->d, m->n_classes));
    if (out->oom)
        return kiln_err_set(err, KILN_ENOMEM, "logreg: out of memory saving the model");
    return 0;
}

int km_logreg_load(const void *bytes, size_t len, km_logreg_t **out, kiln_err_t *err)
{
    if (!out)
        return kiln_err_set(err, KILN_EINVAL, "logreg: load: out is NULL");
    *out = NULL;
    if (!bytes && len > 0)
        return kiln_err_set(err, KILN_EINVAL, "logreg: load: bytes is NULL");
    km_rd_t r = {.p = bytes, .len = len, .off = 0};
    uint32_t magic = 0, version = 0, n_classes = 0, converged = 0, n_iter = 0, zero = 0;
    uint64_t d = 0;
    double l2 = 0;
    if (km_rd_u32(&r, &magic) < 0 || magic != LR_MAGIC)
        return kiln_err_set(err, KILN_EFORMAT, "logreg: load: not a logreg model (bad magic)");
    if (km_rd_u32(&r, &version) < 0 || version != LR_VERSION)
        return kiln_err_set(err, KILN_EFORMAT, "logreg: load: version %u, this build reads %u",
                            version, LR_VERSION);
    if (km_rd_u32(&r, &n_classes) < 0 || km_rd_u32(&r, &converged) < 0 ||
        km_rd_u64(&r, &d) < 0 || km_rd_u32(&r, &n_iter) < 0 || km_rd_u32(&r, &zero) < 0 ||
        km_rd_f64s(&r, &l2, 1) < 0)
        return kiln_err_set(err, KILN_EFORMAT, "logreg: load: truncated header (%zu bytes)", len);
    if (n_classes < 2 || n_classes > KM_LOGREG_MAX_CLASSES || converged > 1 || zero != 0 ||
        n_iter > (uint32_t)INT32_MAX || !(isfinite(l2) && l2 > 0))
        return kiln_err_set(err, KILN_EFORMAT, "logreg: load: corrupt header");
    /* each weight takes 8 bytes, so d is bounded by len before any product */
    if (d == 0 || d > len)
        return kiln_err_set(err, KILN_EFORMAT, "logreg: load: d = %llu does not fit %zu bytes",
                            (unsigned long long)d, len);
    size_t n_w = km_logreg_n_weights((size_t)d, (int)n_classes);
    if (len - r.off != n_w * 8)
        return kiln_err_set(err, KILN_EFORMAT,
                            "logreg: load: %zu bytes of weights, %zu expected (truncated or "
                            "trailing bytes)", len - r.off, n_w * 8);
    km_logreg_t *m = model_new((size_t)d, (int)n_classes);
    if (!m)
        return kiln_err_set(err, KILN_ENOMEM, "logreg: load: out of memory");
    km_rd_f64s(&r, m->w, n_w);
    for (size_t i = 0; i < n_w; i++) {
        if (!isfinite(m->w[i])) {
            km_logreg_free(&m);
            return kiln_err_set(err, KILN_EFORMAT, "logreg: load: weight %zu is not finite", i);
        }
    }
    m->l2 = l2;
    m->n_iter = (int)n_iter;
    m->converged = (int)converged;
    *out = m;
    return 0;
}
