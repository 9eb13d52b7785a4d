/* fft.c - the hand-written FFT behind featurization (the FFT part of
 * kernels/kernels.h).  No FFT library is used in the product: spectra, the
 * envelope and Bluestein's convolution all run on this file.
 *
 * Complex transforms are a self-sorting Stockham FFT (Cooley & Tukey 1965 in
 * Stockham's 1966 autosort form: every stage reads one buffer and writes the
 * other in natural order, so there is no bit-reversal pass) over radices 4,
 * 2, 3 and 5, on split re/im arrays so that a vector register holds eight
 * real parts or eight imaginary parts and a complex multiply is four FMAs.
 * Lengths with another prime factor run Bluestein's chirp-z algorithm
 * (Bluestein 1970) over a power-of-two transform.  A real FFT of even n is a
 * complex FFT of n/2 points (even samples as re, odd as im) plus one
 * untangling pass (e.g. Press et al., Numerical Recipes 12.3).
 *
 * The inverse is the forward transform with re and im exchanged on the way in
 * and out: ifft(x) = swap(fft(swap(x))), free on split arrays. */
#include "kernels/kernels.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/kiln_alloc.h"

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define FFT_HAVE_AVX2 1
#else
#define FFT_HAVE_AVX2 0
#endif

/* 2^64 needs 32 radix-4 stages; 3s and 5s take fewer. */
#define MAX_STAGES 64
#define FFT_PI 3.14159265358979323846
/* Sub-buffers of the caller's scratch start on 16-float (64-byte) boundaries. */
#define PAD16(x) (((x) + (size_t)15) & ~(size_t)15)

/* How a stage runs.  Vector stages need eight lanes of independent work: over
 * q when the stride s is at least 8, or over (p, q) flattened when s is 1 or
 * 4 (the first stages), whose outputs are then transposed. */
enum { ST_SCALAR, ST_VEC_Q, ST_VEC_FLAT };

/* One Stockham stage of a length-`len` transform (decimation in frequency):
 *   for p < m, q < s:  a_k = x[q + s(p + k m)],  k < r
 *     y[q + s(r p + j)] = w^(j p) * sum_k a_k e^{-2 pi i jk/r},
 *   w = e^{-2 pi i s/len}, m = len / (r s). */
typedef struct {
    int radix, kind;
    size_t stride, m;
    size_t tw_len;          /* row pitch; a row holds m twiddles, or m*s (one per
                             * lane) for ST_VEC_FLAT */
    const float *twr, *twi; /* row j-1 holds w^(j p) for j = 1 .. r-1 */
} stage_t;

typedef struct engine {
    size_t len;
    int n_stages;
    stage_t stage[MAX_STAGES];
    float *tw;              /* owns all the stages' twiddle rows */
    /* Bluestein only (inner != NULL): */
    struct engine *inner;   /* power-of-two engine of length M >= 2 len - 1 */
    float *chirp;           /* re[len], im[len]: e^{-pi i j^2/len}; then filt re[M], im[M] */
    size_t extra;           /* scratch floats needed beyond in/out/tmp */
} engine_t;

struct kn_fft_plan {
    size_t n, scratch_floats;
    int simd;               /* 0: the portable scalar path (KILN_FFT_SCALAR set) */
    engine_t full;          /* length n: kn_cfft, and kn_rfft when n is odd */
    engine_t half;          /* length n/2: kn_rfft when n is even */
    float *rtw;             /* re[n/4+1], im[n/4+1]: e^{-2 pi i k/n}, for untangling */
};

/* ---- scalar kernels (always compiled: the portable path, vector tails) -- */

/* y = DFT_r(a) for r in 2..5, e^{-2 pi i jk/r} (Winograd-style small DFTs). */
static void dft_small(int r, const float *ar, const float *ai, float *yr, float *yi)
{
    switch (r) {
    case 2:
        yr[0] = ar[0] + ar[1]; yi[0] = ai[0] + ai[1];
        yr[1] = ar[0] - ar[1]; yi[1] = ai[0] - ai[1];
        break;
    case 3: {
        const float c = -0.5f, sn = 0.86602540378443865f;
        float br = ar[1] + ar[2], bi = ai[1] + ai[2];
        float tr = ar[0] + c * br, ti = ai[0] + c * bi;
        float ur = sn * (ai[1] - ai[2]), ui = -sn * (ar[1] - ar[2]); /* -i sn (a1 - a2) */
        yr[0] = ar[0] + br; yi[0] = ai[0] + bi;
        yr[1] = tr + ur; yi[1] = ti + ui;
        yr[2] = tr - ur; yi[2] = ti - ui;
        break;
    }
    case 4: {
        float pr = ar[0] + ar[2], pi = ai[0] + ai[2], mr = ar[0] - ar[2], mi = ai[0] - ai[2];
        float qr = ar[1] + ar[3], qi = ai[1] + ai[3], dr = ar[1] - ar[3], di = ai[1] - ai[3];
        yr[0] = pr + qr; yi[0] = pi + qi;
        yr[1] = mr + di; yi[1] = mi - dr;   /* (a0 - a2) - i (a1 - a3) */
        yr[2] = pr - qr; yi[2] = pi - qi;
        yr[3] = mr - di; yi[3] = mi + dr;
        break;
    }
    default: { /* 5 */
        const float c1 = 0.30901699437494742f, c2 = -0.80901699437494742f;
        const float s1 = 0.95105651629515357f, s2 = 0.58778525229247313f;
        float b1r = ar[1] + ar[4], b1i = ai[1] + ai[4], d1r = ar[1] - ar[4], d1i = ai[1] - ai[4];
        float b2r = ar[2] + ar[3], b2i = ai[2] + ai[3], d2r = ar[2] - ar[3], d2i = ai[2] - ai[3];
        float t1r = ar[0] + c1 * b1r + c2 * b2r, t1i = ai[0] + c1 * b1i + c2 * b2i;
        float t2r = ar[0] + c2 * b1r + c1 * b2r, t2i = ai[0] + c2 * b1i + c1 * b2i;
        float u1r = s1 * d1r + s2 * d2r, u1i = s1 * d1i + s2 * d2i;
        float u2r = s2 * d1r - s1 * d2r, u2i = s2 * d1i - s1 * d2i;
        yr[0] = ar[0] + b1r + b2r; yi[0] = ai[0] + b1i + b2i;
        yr[1] = t1r + u1i; yi[1] = t1i - u1r;   /* t1 - i u1 */
        yr[4] = t1r - u1i; yi[4] = t1i + u1r;
        yr[2] = t2r + u2i; yi[2] = t2i - u2r;
        yr[3] = t2r - u2i; yi[3] = t2i + u2r;
        break;
    }
    }
}

/* Any stage, for p in [p0, m): the reference every vector stage must match. */
static void stage_scalar(const stage_t *st, const float *restrict xr, const float *restrict xi,
                         float *restrict yr, float *restrict yi, size_t p0)
{
    const int r = st->radix;
    const size_t s = st->stride, m = st->m;
    const size_t tstep = st->kind == ST_VEC_FLAT ? s : 1;   /* twiddles stored per lane */
    for (size_t p = p0; p < m; p++) {
        float wr[4], wi[4];
        for (int j = 1; j < r; j++) {
            wr[j - 1] = st->twr[(size_t)(j - 1) * st->tw_len + p * tstep];
            wi[j - 1] = st->twi[(size_t)(j - 1) * st->tw_len + p * tstep];
        }
        for (size_t q = 0; q < s; q++) {
            float ar[5], ai[5], br[5], bi[5];
            for (int k = 0; k < r; k++) {
                ar[k] = xr[q + s * (p + k * m)];
                ai[k] = xi[q + s * (p + k * m)];
            }
            dft_small(r, ar, ai, br, bi);
            size_t o = q + s * r * p;
            yr[o] = br[0];
            yi[o] = bi[0];
            for (int j = 1; j < r; j++) {
                yr[o + s * j] = br[j] * wr[j - 1] - bi[j] * wi[j - 1];
                yi[o + s * j] = br[j] * wi[j - 1] + bi[j] * wr[j - 1];
            }
        }
    }
}

/* ---- AVX2 kernels ------------------------------------------------------ */
#if FFT_HAVE_AVX2
typedef __m256 v8;   /* GCC and clang allow + - * on it */
#define INLINE static inline __attribute__((always_inline))

INLINE v8 ld8(const float *p) { return _mm256_loadu_ps(p); }
INLINE void st8(float *p, v8 v) { _mm256_storeu_ps(p, v); }
INLINE v8 set8(float f) { return _mm256_set1_ps(f); }

/* (ar + i ai)(wr + i wi) */
INLINE void cmul8(v8 ar, v8 ai, v8 wr, v8 wi, v8 *yr, v8 *yi)
{
    *yr = _mm256_fmsub_ps(ar, wr, ai * wi);
    *yi = _mm256_fmadd_ps(ar, wi, ai * wr);
}

/* dft_small on eight lanes; r is a constant in every caller. */
INLINE void dft8(const int r, const v8 *ar, const v8 *ai, v8 *yr, v8 *yi)
{
    if (r == 2) {
        yr[0] = ar[0] + ar[1]; yi[0] = ai[0] + ai[1];
        yr[1] = ar[0] - ar[1]; yi[1] = ai[0] - ai[1];
    } else if (r == 3) {
        const v8 h = set8(0.5f), sn = set8(0.86602540378443865f);
        v8 br = ar[1] + ar[2], bi = ai[1] + ai[2];
        v8 tr = ar[0] - h * br, ti = ai[0] - h * bi;
        v8 ur = sn * (ai[1] - ai[2]), ui = sn * (ar[2] - ar[1]);
        yr[0] = ar[0] + br; yi[0] = ai[0] + bi;
        yr[1] = tr + ur; yi[1] = ti + ui;
        yr[2] = tr - ur; yi[2] = ti - ui;
    } else if (r == 4) {
        v8 pr = ar[0] + ar[2], pi = ai[0] + ai[2], mr = ar[0] - ar[2], mi = ai[0] - ai[2];
        v8 qr = ar[1] + ar[3], qi = ai[1] + ai[3], dr = ar[1] - ar[3], di = ai[1] - ai[3];
        yr[0] = pr + qr; yi[0] = pi + qi;
        yr[1] = mr + di; yi[1] = mi - dr;
        yr[2] = pr - qr; yi[2] = pi - qi;
        yr[3] = mr - di; yi[3] = mi + dr;
    } else {
        const v8 c1 = set8(0.30901699437494742f), c2 = set8(-0.80901699437494742f);
        const v8 s1 = set8(0.95105651629515357f), s2 = set8(0.58778525229247313f);
        v8 b1r = ar[1] + ar[4], b1i = ai[1] + ai[4], d1r = ar[1] - ar[4], d1i = ai[1] - ai[4];
        v8 b2r = ar[2] + ar[3], b2i = ai[2] + ai[3], d2r = ar[2] - ar[3], d2i = ai[2] - ai[3];
        v8 t1r = ar[0] + c1 * b1r + c2 * b2r, t1i = ai[0] + c1 * b1i + c2 * b2i;
        v8 t2r = ar[0] + c2 * b1r + c1 * b2r, t2i = ai[0] + c2 * b1i + c1 * b2i;
        v8 u1r = s1 * d1r + s2 * d2r, u1i = s1 * d1i + s2 * d2i;
        v8 u2r = s2 * d1r - s1 * d2r, u2i = s2 * d1i - s1 * d2i;
        yr[0] = ar[0] + b1r + b2r; yi[0] = ai[0] + b1i + b2i;
        yr[1] = t1r + u1i; yi[1] = t1i - u1r;
        yr[4] = t1r - u1i; yi[4] = t1i + u1r;
        yr[2] = t2r + u2i; yi[2] = t2i - u2r;
        yr[3] = t2r - u2i; yi[3] = t2i + u2r;
    }
}

/* A stage vectorized over q (s >= 8): contiguous loads and stores, one
 * broadcast twiddle per p.  When 8 does not divide s the last block overlaps
 * the one before; it recomputes the same values (out of place), so no
 * scalar tail is needed. */
INLINE void stage_q8(const int r, const stage_t *st, const float *restrict xr,
                     const float *restrict xi, float *restrict yr, float *restrict yi)
{
    const size_t s = st->stride, m = st->m, sm = s * m;
    for (size_t p = 0; p < m; p++) {
        const float *xpr = xr + s * p, *xpi = xi + s * p;
        float *ypr = yr + (size_t)r * s * p, *ypi = yi + (size_t)r * s * p;
        v8 wr[4], wi[4];
        for (int j = 1; j < r; j++) {
            wr[j - 1] = set8(st->twr[(j - 1) * st->tw_len + p]);
            wi[j - 1] = set8(st->twi[(j - 1) * st->tw_len + p]);
        }
        for (size_t q0 = 0; q0 < s; q0 += 8) {
            const size_t q = q0 + 8 <= s ? q0 : s - 8;
            v8 ar[5], ai[5], br[5], bi[5];
            for (int k = 0; k < r; k++) {
                ar[k] = ld8(xpr + q + k * sm);
                ai[k] = ld8(xpi + q + k * sm);
            }
            dft8(r, ar, ai, br, bi);
            st8(ypr + q, br[0]);
            st8(ypi + q, bi[0]);
            for (int j = 1; j < r; j++) {
                v8 cr, ci;
                cmul8(br[j], bi[j], wr[j - 1], wi[j - 1], &cr, &ci);
                st8(ypr + q + j * s, cr);
                st8(ypi + q + j * s, ci);
            }
        }
    }
}

/* 4x8 -> 8x4: v[k] lane l goes to out[4 l + k]. */
INLINE void store_transposed4(float *out, const v8 *v)
{
    v8 t0 = _mm256_unpacklo_ps(v[0], v[1]), t1 = _mm256_unpackhi_ps(v[0], v[1]);
    v8 t2 = _mm256_unpacklo_ps(v[2], v[3]), t3 = _mm256_unpackhi_ps(v[2], v[3]);
    v8 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xee);
    v8 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xee);
    st8(out, _mm256_permute2f128_ps(u0, u1, 0x20));
    st8(out + 8, _mm256_permute2f128_ps(u2, u3, 0x20));
    st8(out + 16, _mm256_permute2f128_ps(u0, u1, 0x31));
    st8(out + 24, _mm256_permute2f128_ps(u2, u3, 0x31));
}

/* 2x8 -> 8x2: out[2 l] = a[l], out[2 l + 1] = b[l]. */
INLINE void store_interleaved8(float *out, v8 a, v8 b)
{
    v8 lo = _mm256_unpacklo_ps(a, b), hi = _mm256_unpackhi_ps(a, b);
    st8(out, _mm256_permute2f128_ps(lo, hi, 0x20));
    st8(out + 8, _mm256_permute2f128_ps(lo, hi, 0x31));
}

/* y[r l + j] = v[j] lane l, for any r <= 5. */
INLINE void store_transposed(const int r, float *out, const v8 *v)
{
    if (r == 4) {
        store_transposed4(out, v);
    } else if (r == 2) {
        store_interleaved8(out, v[0], v[1]);
    } else {
        float t[5][8];
        for (int j = 0; j < r; j++)
            st8(t[j], v[j]);
        for (int l = 0; l < 8; l++)
            for (int j = 0; j < r; j++)
                out[r * l + j] = t[j][l];
    }
}

/* The first stages, s = 1 and s = 4, where q is too short for a vector: the
 * flat index f = q + s p runs over len/r, inputs x[f + k len/r] are
 * contiguous, twiddles are stored per lane, and the outputs are transposed
 * (s = 1: y[r f + j]) or go out in 4-float halves (s = 4: lanes (p, q=0..3)
 * and (p+1, q=0..3) to y[r f + 4 j] and y[r (f+4) + 4 j]).  The p that do
 * not fill a vector run scalar. */
INLINE void stage_flat(const int r, const stage_t *st, const float *restrict xr,
                       const float *restrict xi, float *restrict yr, float *restrict yi)
{
    const size_t s = st->stride, m = st->m, len_r = m * s;
    const size_t f_end = s == 1 ? m & ~(size_t)7 : 4 * (m & ~(size_t)1);
    for (size_t f = 0; f < f_end; f += 8) {
        v8 ar[5], ai[5], br[5], bi[5];
        for (int k = 0; k < r; k++) {
            ar[k] = ld8(xr + f + k * len_r);
            ai[k] = ld8(xi + f + k * len_r);
        }
        dft8(r, ar, ai, br, bi);
        for (int j = 1; j < r; j++)
            cmul8(br[j], bi[j], ld8(st->twr + (j - 1) * st->tw_len + f),
                  ld8(st->twi + (j - 1) * st->tw_len + f), &br[j], &bi[j]);
        if (s == 1) {
            store_transposed(r, yr + r * f, br);
            store_transposed(r, yi + r * f, bi);
        } else {
            for (int j = 0; j < r; j++) {
                _mm_storeu_ps(yr + r * f + 4 * j, _mm256_castps256_ps128(br[j]));
                _mm_storeu_ps(yi + r * f + 4 * j, _mm256_castps256_ps128(bi[j]));
                _mm_storeu_ps(yr + r * (f + 4) + 4 * j, _mm256_extractf128_ps(br[j], 1));
                _mm_storeu_ps(yi + r * (f + 4) + 4 * j, _mm256_extractf128_ps(bi[j], 1));
            }
        }
    }
    stage_scalar(st, xr, xi, yr, yi, f_end / s);
}

/* One instance per radix, so that r is a compile-time constant inside. */
#define STAGE_INSTANCES(r)                                                             \
    static void stage_q8_r##r(const stage_t *st, const float *xr, const float *xi,    \
                              float *yr, float *yi) { stage_q8(r, st, xr, xi, yr, yi); } \
    static void stage_flat_r##r(const stage_t *st, const float *xr, const float *xi,  \
                                float *yr, float *yi) { stage_flat(r, st, xr, xi, yr, yi); }
STAGE_INSTANCES(2)
STAGE_INSTANCES(3)
STAGE_INSTANCES(4)
STAGE_INSTANCES(5)
#endif /* FFT_HAVE_AVX2 */

static void run_stage(const stage_t *st, const float *xr, const float *xi, float *yr, float *yi)
{
#if FFT_HAVE_AVX2
    typedef void (*stage_fn)(const stage_t *, const float *, const float *, float *, float *);
    static const stage_fn q8[6] = {0, 0, stage_q8_r2, stage_q8_r3, stage_q8_r4, stage_q8_r5};
    static const stage_fn flat[6] = {0, 0, stage_flat_r2, stage_flat_r3, stage_flat_r4,
                                     stage_flat_r5};
    if (st->kind == ST_VEC_Q) {
        q8[st->radix](st, xr, xi, yr, yi);
        return;
    }
    if (st->kind == ST_VEC_FLAT) {
        flat[st->radix](st, xr, xi, yr, yi);
        return;
    }
#endif
    stage_scalar(st, xr, xi, yr, yi, 0);
}

/* ---- engines: a complex transform of one length on split arrays -------- */

static void engine_free(engine_t *e)
{
    if (e->inner) {
        engine_free(e->inner);
        kiln_free(e->inner);
    }
    kiln_free_aligned(e->tw);
    kiln_free_aligned(e->chirp);
    memset(e, 0, sizeof *e);
}

static void engine_run(const engine_t *e, const float *in_r, const float *in_i, float *out_r,
                       float *out_i, float *tmp_r, float *tmp_i, float *extra);

/* Stockham stages ping-pong between out and tmp, ending in out.  in must be
 * distinct from out and tmp (it is only read). */
static void engine_run(const engine_t *e, const float *in_r, const float *in_i, float *out_r,
                       float *out_i, float *tmp_r, float *tmp_i, float *extra)
{
    const size_t len = e->len;
    if (e->inner) {
        /* Bluestein: X_k = c_k sum_t (x_t c_t) conj(c_{k-t}), c_j = e^{-pi i j^2/len},
         * the convolution done as a cyclic one of length M by FFT. */
        const engine_t *in = e->inner;
        const size_t M = in->len, pm = PAD16(M);
        const float *cr = e->chirp, *ci = e->chirp + len;
        const float *fr = e->chirp + 2 * len, *fi = fr + M;
        float *ar = extra, *ai = ar + pm, *br = ai + pm, *bi = br + pm;
        float *tr = bi + pm, *ti = tr + pm, *rest = ti + pm;
        for (size_t j = 0; j < len; j++) {
            ar[j] = in_r[j] * cr[j] - in_i[j] * ci[j];
            ai[j] = in_r[j] * ci[j] + in_i[j] * cr[j];
        }
        memset(ar + len, 0, (M - len) * sizeof(float));
        memset(ai + len, 0, (M - len) * sizeof(float));
        engine_run(in, ar, ai, br, bi, tr, ti, rest);
        for (size_t j = 0; j < M; j++) {
            float re = br[j] * fr[j] - bi[j] * fi[j];
            bi[j] = br[j] * fi[j] + bi[j] * fr[j];
            br[j] = re;
        }
        engine_run(in, bi, br, ai, ar, ti, tr, rest);   /* inverse: re/im swapped */
        for (size_t j = 0; j < len; j++) {
            float re = ar[j] * cr[j] - ai[j] * ci[j];
            out_i[j] = ar[j] * ci[j] + ai[j] * cr[j];
            out_r[j] = re;
        }
        return;
    }
    if (e->n_stages == 0) {     /* length 1 */
        out_r[0] = in_r[0];
        out_i[0] = in_i[0];
        return;
    }
    const float *sr = in_r, *si = in_i;
    for (int j = 0; j < e->n_stages; j++) {
        int to_out = (e->n_stages - 1 - j) % 2 == 0;
        float *dr = to_out ? out_r : tmp_r, *di = to_out ? out_i : tmp_i;
        run_stage(&e->stage[j], sr, si, dr, di);
        sr = dr;
        si = di;
    }
}

static int engine_init(engine_t *e, size_t len, int simd, kiln_err_t *err);

/* Bluestein set-up: the chirp, and the FFT of the conjugate chirp (scaled by
 * 1/M so the unnormalized inverse yields the convolution itself). */
static int bluestein_init(engine_t *e, size_t len, int simd, kiln_err_t *err)
{
    size_t M = 1;
    while (M < 2 * len - 1)
        M <<= 1;
    float *work = NULL;
    int rc;
    e->inner = kiln_calloc(1, sizeof *e->inner);
    if (!e->inner)
        return kiln_err_set(err, KILN_ENOMEM, "kn_fft_plan_new: no memory for the Bluestein "
                            "transform of length %zu (n = %zu)", M, len);
    if ((rc = engine_init(e->inner, M, simd, err)) < 0)
        return rc;
    e->chirp = kiln_malloc_aligned((2 * len + 2 * M) * sizeof(float));
    work = kiln_malloc_aligned(6 * PAD16(M) * sizeof(float));
    if (!e->chirp || !work) {
        kiln_free_aligned(work);
        return kiln_err_set(err, KILN_ENOMEM, "kn_fft_plan_new: no memory for the Bluestein "
                            "chirp of length %zu", len);
    }
    const size_t pm = PAD16(M);
    float *br = work, *bi = br + pm;
    memset(work, 0, 2 * pm * sizeof(float));
    for (size_t j = 0; j < len; j++) {
        /* j^2 mod 2 len keeps the angle small and exact (the chirp has period 2 len in j^2) */
        unsigned long long j2 = (unsigned long long)j * j % (2ull * len);
        double ang = FFT_PI * (double)j2 / (double)len;
        e->chirp[j] = (float)cos(ang);
        e->chirp[len + j] = (float)-sin(ang);
        br[j] = (float)cos(ang);    /* conj(c_j), at j and at -j mod M */
        bi[j] = (float)sin(ang);
        if (j) {
            br[M - j] = br[j];
            bi[M - j] = bi[j];
        }
    }
    float *fr = e->chirp + 2 * len, *fi = fr + M;
    engine_run(e->inner, br, bi, work + 2 * pm, work + 3 * pm, work + 4 * pm, work + 5 * pm, NULL);
    for (size_t j = 0; j < M; j++) {
        fr[j] = work[2 * pm + j] / (float)M;
        fi[j] = work[3 * pm + j] / (float)M;
    }
    kiln_free_aligned(work);
    e->extra = 6 * pm + e->inner->extra;
    return 0;
}

static int engine_init(engine_t *e, size_t len, int simd, kiln_err_t *err)
{
    int radix[MAX_STAGES], n_st = 0;
    size_t rest = len;
    memset(e, 0, sizeof *e);
    e->len = len;
    /* Radix 4 first: fewest passes over memory, and the first stages (s = 1,
     * 4) then have long flat vector loops; then one radix 2, 3s and 5s. */
    while (rest % 4 == 0) { radix[n_st++] = 4; rest /= 4; }
    while (rest % 2 == 0) { radix[n_st++] = 2; rest /= 2; }
    while (rest % 3 == 0) { radix[n_st++] = 3; rest /= 3; }
    while (rest % 5 == 0) { radix[n_st++] = 5; rest /= 5; }
    if (rest != 1)
        return bluestein_init(e, len, simd, err);

    size_t s = 1, tw_floats = 0;
    for (int i = 0; i < n_st; i++) {
        stage_t *st = &e->stage[i];
        st->radix = radix[i];
        st->stride = s;
        st->m = len / (s * (size_t)radix[i]);
        st->kind = ST_SCALAR;
        if (simd && FFT_HAVE_AVX2) {
            if ((s == 1 && st->m >= 8) || (s == 4 && st->m >= 2))
                st->kind = ST_VEC_FLAT;
            else if (s >= 8)
                st->kind = ST_VEC_Q;
        }
        st->tw_len = st->kind == ST_VEC_FLAT ? st->m * s : st->m;
        tw_floats += PAD16(st->tw_len) * 2 * (size_t)(radix[i] - 1);
        s *= (size_t)radix[i];
    }
    e->n_stages = n_st;
    e->tw = kiln_malloc_aligned((tw_floats ? tw_floats : 1) * sizeof(float));
    if (!e->tw)
        return kiln_err_set(err, KILN_ENOMEM, "kn_fft_plan_new: no memory for the twiddles "
                            "of length %zu", len);
    float *t = e->tw;
    for (int i = 0; i < n_st; i++) {
        stage_t *st = &e->stage[i];
        const size_t rows = (size_t)(st->radix - 1), tl = st->tw_len, pt = PAD16(tl);
        const size_t rep = st->kind == ST_VEC_FLAT ? st->stride : 1;
        float *twr = t, *twi = t + rows * pt;
        for (size_t j = 1; j <= rows; j++) {
            for (size_t f = 0; f < tl; f++) {
                /* w^(j p), w = e^{-2 pi i s/len}; computed in double, reduced mod len */
                size_t p = f / rep;
                double ang = -2.0 * FFT_PI * (double)(j * p * st->stride % len) / (double)len;
                twr[(j - 1) * pt + f] = (float)cos(ang);
                twi[(j - 1) * pt + f] = (float)sin(ang);
            }
        }
        st->tw_len = pt;   /* row pitch */
        st->twr = twr;
        st->twi = twi;
        t += 2 * rows * pt;
    }
    return 0;
}

/* ---- layout passes: interleaved <-> split, and the real-FFT untangling -- */

/* Interleaved complex (or a real signal read as pairs) -> split re/im. */
static void deinterleave(int simd, const float *restrict in, float *restrict re,
                         float *restrict im, size_t len)
{
    size_t j = 0;
#if FFT_HAVE_AVX2
    if (simd) {
        for (; j + 8 <= len; j += 8) {
            v8 a = ld8(in + 2 * j), b = ld8(in + 2 * j + 8);
            v8 r = _mm256_shuffle_ps(a, b, 0x88), i = _mm256_shuffle_ps(a, b, 0xdd);
            st8(re + j, _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(r), 0xd8)));
            st8(im + j, _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(i), 0xd8)));
        }
    }
#endif
    for (; j < len; j++) {
        re[j] = in[2 * j];
        im[j] = in[2 * j + 1];
    }
}


static void interleave(int simd, const float *restrict re, const float *restrict im,
                       float *restrict out, size_t len)
{
    size_t j = 0;
#if FFT_HAVE_AVX2
    if (simd)
        for (; j + 8 <= len; j += 8)
            store_interleaved8(out + 2 * j, ld8(re + j), ld8(im + j));
#endif
    for (; j < len; j++) {
        out[2 * j] = re[j];
        out[2 * j + 1] = im[j];
    }
}

/* Z = FFT_N(x_even + i x_odd), N = n/2.  With W = e^{-2 pi i/n}:
 *   X_k = E_k + W^k O_k,  E_k = (Z_k + conj Z_{N-k})/2,  O_k = -i (Z_k - conj Z_{N-k})/2,
 * and X_{N-k} = conj(E_k - W^k O_k), so one pass over k <= N/2 fills both
 * halves (Z_N = Z_0). */
static void untangle(int simd, const float *restrict zr, const float *restrict zi,
                     const float *restrict wr, const float *restrict wi, size_t N,
                     float *restrict out)
{
    size_t k = 1;
    out[0] = zr[0] + zi[0];
    out[1] = 0.0f;
    out[2 * N] = zr[0] - zi[0];
    out[2 * N + 1] = 0.0f;
#if FFT_HAVE_AVX2
    if (simd) {
        const __m256i rev = _mm256_setr_epi32(7, 6, 5, 4, 3, 2, 1, 0);
        const v8 h = set8(0.5f);
        for (; k + 7 <= N / 2; k += 8) {
            v8 ar = ld8(zr + k), ai = ld8(zi + k);
            v8 rr = _mm256_permutevar8x32_ps(ld8(zr + N - k - 7), rev);   /* lane l: Z_{N-k-l} */
            v8 ri = _mm256_permutevar8x32_ps(ld8(zi + N - k - 7), rev);
            v8 er = h * (ar + rr), ei = h * (ai - ri);
            v8 or_ = h * (ai + ri), oi = h * (rr - ar);
            v8 br, bi;
            cmul8(or_, oi, ld8(wr + k), ld8(wi + k), &br, &bi);
            store_interleaved8(out + 2 * k, er + br, ei + bi);
            store_interleaved8(out + 2 * (N - k - 7), _mm256_permutevar8x32_ps(er - br, rev),
                               _mm256_permutevar8x32_ps(bi - ei, rev));
        }
    }
#endif
    for (; k <= N / 2; k++) {
        size_t nk = N - k;
        float er = 0.5f * (zr[k] + zr[nk]), ei = 0.5f * (zi[k] - zi[nk]);
        float or_ = 0.5f * (zi[k] + zi[nk]), oi = 0.5f * (zr[nk] - zr[k]);
        float br = wr[k] * or_ - wi[k] * oi, bi = wr[k] * oi + wi[k] * or_;
        out[2 * nk] = er - br;
        out[2 * nk + 1] = bi - ei;
        out[2 * k] = er + br;
        out[2 * k + 1] = ei + bi;
    }
}

/* ---- public API -------------------------------------------------------- */

void kn_fft_plan_destroy(kn_fft_plan_t **plan)
{
    if (!plan || !*plan)
        return;
    engine_free(&(*plan)->full);
    engine_free(&(*plan)->half);
    kiln_free_aligned((*plan)->rtw);
    kiln_free(*plan);
    *plan = NULL;
}

int kn_fft_plan_new(size_t n, kn_fft_plan_t **out, kiln_err_t *err)
{
    kn_fft_plan_t *p;
    int rc;
    if (!out)
        return kiln_err_set(err, KILN_EINVAL, "kn_fft_plan_new: no place for the plan");
    *out = NULL;
    if (n < 2 || n > ((size_t)1 << 40))
        return kiln_err_set(err, KILN_EINVAL, "kn_fft_plan_new: transform length %zu is out "
                            "of range (2 .. 2^40)", n);
    if (!(p = kiln_calloc(1, sizeof *p)))
        return kiln_err_set(err, KILN_ENOMEM, "kn_fft_plan_new: no memory for a plan of "
                            "length %zu", n);
    p->n = n;
    /* KILN_FFT_SCALAR forces the portable path, so tests can check it on any CPU. */
    const char *force_scalar = getenv("KILN_FFT_SCALAR");
    p->simd = FFT_HAVE_AVX2 && !(force_scalar && *force_scalar && *force_scalar != '0');
    if ((rc = engine_init(&p->full, n, p->simd, err)) < 0)
        goto fail;
    p->scratch_floats = 6 * PAD16(n) + p->full.extra;
    if (n % 2 == 0) {
        const size_t N = n / 2, pitch = PAD16(N / 2 + 1);
        if ((rc = engine_init(&p->half, N, p->simd, err)) < 0)
            goto fail;
        if (!(p->rtw = kiln_malloc_aligned(2 * pitch * sizeof(float)))) {
            rc = kiln_err_set(err, KILN_ENOMEM, "kn_fft_plan_new: no memory for the real-FFT "
                              "twiddles of length %zu", n);
            goto fail;
        }
        for (size_t k = 0; k <= N / 2; k++) {
            double ang = -2.0 * FFT_PI * (double)k / (double)n;
            p->rtw[k] = (float)cos(ang);
            p->rtw[pitch + k] = (float)sin(ang);
        }
        size_t need = 6 * PAD16(N) + p->half.extra;
        if (need > p->scratch_floats)
            p->scratch_floats = need;
    }
    *out = p;
    return 0;
fail:
    kn_fft_plan_destroy(&p);
    return rc;
}

size_t kn_fft_len(const kn_fft_plan_t *plan) { return plan->n; }

size_t kn_fft_scratch_floats(const kn_fft_plan_t *plan) { return plan->scratch_floats; }

void kn_rfft(const kn_fft_plan_t *plan, const float *in, float *out, float *scratch)
{
    const size_t n = plan->n;
    if (n % 2) {    /* odd: the full complex transform of (x, 0), first n/2+1 bins */
        const size_t pn = PAD16(n);
        float *ar = scratch, *ai = ar + pn, *br = ai + pn, *bi = br + pn;
        memcpy(ar, in, n * sizeof(float));
        memset(ai, 0, n * sizeof(float));
        engine_run(&plan->full, ar, ai, br, bi, bi + pn, bi + 2 * pn, bi + 3 * pn);
        interleave(plan->simd, br, bi, out, n / 2 + 1);
        return;
    }
    const size_t N = n / 2, pN = PAD16(N), pitch = PAD16(N / 2 + 1);
    float *ar = scratch, *ai = ar + pN, *br = ai + pN, *bi = br + pN;
    deinterleave(plan->simd, in, ar, ai, N);
    engine_run(&plan->half, ar, ai, br, bi, bi + pN, bi + 2 * pN, bi + 3 * pN);
    untangle(plan->simd, br, bi, plan->rtw, plan->rtw + pitch, N, out);
}

void kn_cfft(const kn_fft_plan_t *plan, const float *in, float *out, int inverse, float *scratch)
{
    const size_t n = plan->n, pn = PAD16(n);
    float *ar = scratch, *ai = ar + pn, *br = ai + pn, *bi = br + pn;
    float *tr = bi + pn, *ti = tr + pn, *extra = ti + pn;
    deinterleave(plan->simd, in, ar, ai, n);
    if (inverse)
        engine_run(&plan->full, ai, ar, bi, br, ti, tr, extra);
    else
        engine_run(&plan->full, ar, ai, br, bi, tr, ti, extra);
    interleave(plan->simd, br, bi, out, n);
}
