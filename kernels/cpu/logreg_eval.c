/* logreg_eval.c - one evaluation of logreg's loss and gradient sums over
 * this rank's rows: chunks over threads, blocks of rows in double with
 * vector exp/log, and the row validation pass. */
#include <math.h>
#include <pthread.h>
#ifdef __AVX__
#include <immintrin.h>
#endif
#include <stdatomic.h>
#include <string.h>

#include "logreg_impl.h"

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

void lr_run(size_t n_chunks, int threads, void (*chunk)(void *, size_t, int), void *ctx)
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
void lr_eval_local(lr_eval_t *ev, const double *w, double *out)
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
int lr_row_finite(const float *x, size_t d)
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

void lr_check_chunk(void *ctx, size_t c, int thread)
{
    (void)thread;
    const lr_eval_t *ev = ctx;
    size_t i = c * KM_LOGREG_CHUNK_ROWS;
    size_t end = i + KM_LOGREG_CHUNK_ROWS < ev->n ? i + KM_LOGREG_CHUNK_ROWS : ev->n;
    ev->bad_row[c] = 0;
    ev->bad_kind[c] = 0;
    for (; i < end; i++) {
        int kind = !lr_row_finite(ev->x + i * ev->d, ev->d) ? 1
                   : (ev->y[i] < 0 || ev->y[i] >= ev->n_classes) ? 2 : 0;
        if (kind) {
            ev->bad_row[c] = i + 1;
            ev->bad_kind[c] = kind;
            return;
        }
    }
}

void lr_widen_row(const float *x, size_t d, double *xd) { widen_rows(x, 1, d, xd); }

double lr_dot_row(const double *xd, const double *w, size_t d)
{
    double z;
    dot_rows(xd, 1, w, d, &z);
    return z;
}

