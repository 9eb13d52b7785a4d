/* kc_spec_fast.h - the power-spectrum features of one window (band energies,
 * centroid, dominant frequency) by a block of exactly N / E threads, N = n/2
 * complex points and E points per thread: the real FFT as an N-point complex
 * one on (x[2m], x[2m+1]) (Numerical Recipes 12.3), by Stockham autosort
 * passes (Govindaraju et al., "High Performance Discrete Fourier Transforms
 * on Graphics Processors", SC 2008): each pass a radix-R DFT in registers
 * per butterfly, natural order in and out, so no bit-reversal scatter.  The
 * first pass reads the window straight from global memory (each thread E
 * independent 8-byte loads, coalesced); passes ping-pong between two
 * shared buffers with one barrier each; addresses are padded (one slot per
 * 16) so the strided stores of the first pass hit distinct banks.  The
 * twiddles come from a per-plan table made in double on the host.  A
 * template over kc_block.h's blocks: the host emulation runs it too. */
#ifndef KILN_KERNELS_CUDA_KC_SPEC_FAST_H
#define KILN_KERNELS_CUDA_KC_SPEC_FAST_H

#include "kc_feat_body.h"

/* Unrolled on the GPU (register arrays stay registers); the host compiler
 * would warn about the pragma. */
#ifdef __CUDA_ARCH__
#define KC_UNROLL _Pragma("unroll")
#else
#define KC_UNROLL
#endif

/* Window lengths the fast path takes (others use kc_window_features). */
#define KC_SF_MIN_LOG2N 8
#define KC_SF_MAX_LOG2N 13
/* Bands folded in registers with the centroid (2 + this <= KC_RED_MAX);
 * more go through shared memory and kc_power_features. */
#define KC_SF_REG_BANDS 6

/* log2 of the points per thread for windows of 2^log2n samples: 16 points
 * (radix-16 passes) when that leaves a full warp, else N / 32. */
KC_HD constexpr int kc_sf_log2e(int log2n) { return log2n - 1 - 5 < 4 ? log2n - 1 - 5 : 4; }
KC_HD constexpr int kc_sf_threads(int log2n) { return 1 << (log2n - 1 - kc_sf_log2e(log2n)); }
/* Padded index of complex point e in a shared buffer. */
KC_HD int kc_sf_pad(int e) { return e + (e >> 4); }
KC_HD constexpr int kc_sf_buf_len(int log2n) { return (1 << (log2n - 1)) + (1 << (log2n - 1)) / 16; }

/* The twiddle table of a length: for each pass after the first (Ns > 1,
 * radix R), W_{Ns R}^{k r} at [(r - 1) Ns + k], r in [1, R), k < Ns; then
 * the split step's W_n^k, k < N.  Size in float2. */
KC_HD int kc_sf_table_len(int log2n)
{
    const int lN = log2n - 1, le = kc_sf_log2e(log2n);
    int len = 0;
    for (int ls = le; ls < lN; ls += le) {   /* Ns = 2^ls */
        const int lr = lN - ls < le ? lN - ls : le;
        len += ((1 << lr) - 1) << ls;
    }
    return len + (1 << lN);
}

/* cos(2 pi m / 16) for a compile-time m (after unrolling). */
KC_HD float kc_sf_cos16(int m)
{
    switch (m & 15) {
    case 0: return 1.0f;
    case 1: case 15: return 0.92387953251128676f;
    case 2: case 14: return 0.70710678118654752f;
    case 3: case 13: return 0.38268343236508977f;
    case 4: case 12: return 0.0f;
    case 5: case 11: return -0.38268343236508977f;
    case 6: case 10: return -0.70710678118654752f;
    case 7: case 9: return -0.92387953251128676f;
    default: return -1.0f;
    }
}

/* a * W_16^m, m compile-time: the trivial ones are swaps and signs. */
KC_HD float2 kc_sf_wmul(float2 a, int m)
{
    m &= 15;
    if (m == 0)
        return a;
    if (m == 4)
        return make_float2(a.y, -a.x);
    if (m == 8)
        return make_float2(-a.x, -a.y);
    if (m == 12)
        return make_float2(-a.y, a.x);
    const float c = kc_sf_cos16(m), s = -kc_sf_cos16(m - 4);   /* W = c + i s */
    return make_float2(a.x * c - a.y * s, a.x * s + a.y * c);
}

/* (double)k for 0 <= k < 2^31 by the exponent trick: a double add, not a
 * conversion (16 per clock per SM against 64 adds). */
KC_HD double kc_i2d(int k)
{
#ifdef __CUDA_ARCH__
    return __longlong_as_double(0x4330000000000000LL | (long long)k) - 4503599627370496.0;
#else
    return (double)k;
#endif
}

/* k with its low `bits` (1..4) bits reversed: straight-line, so it folds
 * to a constant in unrolled loops. */
KC_HD constexpr int kc_sf_brev(int k, int bits)
{
    return bits <= 1 ? k
         : bits == 2 ? ((k & 1) << 1) | ((k >> 1) & 1)
         : bits == 3 ? ((k & 1) << 2) | (k & 2) | ((k >> 2) & 1)
                     : ((k & 1) << 3) | ((k & 2) << 1) | ((k >> 1) & 2) | ((k >> 3) & 1);
}

/* One radix-2 decimation-in-frequency stage on blocks of 2H of v[R], then
 * the next (H a template parameter, so every loop has a constant count and
 * unrolls: v stays in registers). */
template <int R, int H> struct kc_sf_stage {
    static KC_HD void run(float2 *v)
    {
KC_UNROLL
        for (int s = 0; s < R; s += 2 * H)
KC_UNROLL
            for (int j = 0; j < H; j++) {
                const float2 a = v[s + j], c = v[s + j + H];
                v[s + j] = kc_cadd(a, c);
                v[s + j + H] = kc_sf_wmul(kc_csub(a, c), j * (16 / (2 * H)));
            }
        kc_sf_stage<R, H / 2>::run(v);
    }
};
template <int R> struct kc_sf_stage<R, 0> {
    static KC_HD void run(float2 *) {}
};

/* In-register DFT of R <= 16 points, natural order in and out: radix-2
 * decimation in frequency, then the bit-reversal as a register renaming. */
template <int R> KC_HD void kc_sf_dft(float2 *v)
{
    constexpr int LR = R == 1 ? 0 : R == 2 ? 1 : R == 4 ? 2 : R == 8 ? 3 : 4;
    kc_sf_stage<R, R / 2>::run(v);
    float2 t[R];
KC_UNROLL
    for (int k = 0; k < R; k++)
        t[k] = v[kc_sf_brev(k, LR)];
KC_UNROLL
    for (int k = 0; k < R; k++)
        v[k] = t[k];
}

/* One Stockham pass of radix R = 2^LR over N points with sub-transforms of
 * Ns = 2^ls done: ld(i) gives input point i, st(i, v) stores output point
 * i; tw is this pass's table block (unused when Ns = 1). */
template <int LR, class B, class Ld, class St>
KC_HD void kc_sf_pass(B &b, int lN, int ls, const float2 *tw, Ld ld, St st)
{
    constexpr int R = 1 << LR;
    const int nb = 1 << (lN - LR), Ns = 1 << ls;
    for (int j = b.tid(); j < nb; j += b.nthreads()) {
        float2 v[R];
KC_UNROLL
        for (int r = 0; r < R; r++)
            v[r] = ld(j + r * nb);
        const int k = j & (Ns - 1);
        if (ls > 0) {
KC_UNROLL
            for (int r = 1; r < R; r++)
                v[r] = kc_cmul(v[r], kc_ld(tw + ((r - 1) << ls) + k));
        }
        kc_sf_dft<R>(v);
        const int base = ((j - k) << LR) + k;
KC_UNROLL
        for (int r = 0; r < R; r++)
            st(base + (r << ls), v[r]);
    }
}

/* Radix of the pass at Ns = 2^ls: E, or what is left for the last one. */
template <int LOG2N, class B, class Ld, class St>
KC_HD void kc_sf_pass_at(B &b, int ls, const float2 *tw, Ld ld, St st)
{
    constexpr int lN = LOG2N - 1, le = kc_sf_log2e(LOG2N);
    switch (lN - ls < le ? lN - ls : le) {
    case 1: kc_sf_pass<1>(b, lN, ls, tw, ld, st); break;
    case 2: kc_sf_pass<2>(b, lN, ls, tw, ld, st); break;
    case 3: kc_sf_pass<3>(b, lN, ls, tw, ld, st); break;
    default: kc_sf_pass<4>(b, lN, ls, tw, ld, st); break;
    }
}

/* The spectrum features of the window xw[0..n) (global memory on the GPU,
 * 8-byte aligned) into out[] (thread 0 writes): bands, centroid, dominant
 * as kc_window_features computes them, time statistics and envelope off.
 * bufA, bufB: kc_sf_buf_len floats2 each, shared; dsh: 64 doubles, shared.
 * Ends with a barrier. */
template <int LOG2N, class B>
KC_HD void kc_spec_fast_window(B &b, const kc_feat_params_t &p, const float *xw, float2 *bufA,
                               float2 *bufB, double *dsh, float *out)
{
    constexpr int lN = LOG2N - 1, N = 1 << lN, le = kc_sf_log2e(LOG2N);
    const float2 *x2 = (const float2 *)xw;
    const float2 *w2 = (const float2 *)p.window;
    const float2 *tw = p.sf_tw;
    /* Pass 1 from global memory (windowed while loading) into A. */
    kc_sf_pass_at<LOG2N>(
        b, 0, tw,
        [&](int i) {
            float2 v = kc_ldcs(x2 + i);
            if (w2) {
                const float2 c = kc_ld(w2 + i);
                v.x *= c.x;
                v.y *= c.y;
            }
            return v;
        },
        [&](int i, float2 v) { bufA[kc_sf_pad(i)] = v; });
    b.sync();
    float2 *in = bufA, *outb = bufB;
    int off = 0;
KC_UNROLL
    for (int ls = le; ls < lN; ls += le) {
        kc_sf_pass_at<LOG2N>(
            b, ls, tw + off, [&](int i) { return in[kc_sf_pad(i)]; },
            [&](int i, float2 v) { outb[kc_sf_pad(i)] = v; });
        const int lr = lN - ls < le ? lN - ls : le;
        off += ((1 << lr) - 1) << ls;
        b.sync();
        float2 *t = in;
        in = outb;
        outb = t;
    }
    /* Split step: X_k = E_k + W_n^k O_k, p_k = 2|X_k|^2 / n^2 (DC and
     * Nyquist once) in float: one rounding more than the reference's double
     * products, far inside the band tolerance, and no conversions. */
    const float2 *Z = in, *wsplit = tw + off;
    const float scale1 = 1.0f / (4.0f * (float)N * (float)N), scale2 = 2.0f * scale1;
    auto power = [&](int k) {
        const float2 zk = Z[kc_sf_pad(k & (N - 1))], zm = Z[kc_sf_pad((N - k) & (N - 1))];
        const float2 e = make_float2(0.5f * (zk.x + zm.x), 0.5f * (zk.y - zm.y));
        const float2 o = make_float2(0.5f * (zk.y + zm.y), -0.5f * (zk.x - zm.x));
        const float2 w = k < N ? kc_ld(wsplit + k) : make_float2(-1.0f, 0.0f);
        const float2 x = kc_cadd(e, kc_cmul(w, o));
        return fmaf(x.x, x.x, x.y * x.y) * (k == 0 || k == N ? scale1 : scale2);
    };
    if (p.n_bands > KC_SF_REG_BANDS) {
        /* Many bands: the bins through shared memory (the free buffer). */
        float *pbuf = (float *)outb;
        for (int k = b.tid(); k <= N; k += b.nthreads())
            pbuf[k] = power(k);
        b.sync();
        kc_power_features(b, p, pbuf, dsh, out);
        b.sync();   /* A and B are refilled by the next window */
        return;
    }
    /* Every feature is a sum (or first max) over bins: each thread folds
     * its bins as it makes them, then one block reduction, one argmax. */
    float best = 0.0f;
    int at = INT_MAX;
    double acc[2 + KC_SF_REG_BANDS];
    b.template reduce<2 + KC_SF_REG_BANDS>(N + 1, kc_op_sum(), [&](int k, double *a) {
        const float pk = power(k);
        const double pd = pk;
        a[0] = fma(kc_i2d(k), pd, a[0]);
        a[1] += pd;
KC_UNROLL
        for (int r = 0; r < KC_SF_REG_BANDS; r++)
            if (r < p.n_bands && k >= p.band_k0[r] && k < p.band_k1[r])
                a[2 + r] += pd;
        if (k >= 1)
            kc_argmax_merge(best, at, pk, k);
    }, acc);
    const int dom = p.dominant ? b.argmax_combine(best, at) : 0;
    if (b.tid() == 0) {
KC_UNROLL
        for (int r = 0; r < KC_SF_REG_BANDS; r++)   /* constant indices: acc stays in registers */
            if (r < p.n_bands)
                out[r] = (float)acc[2 + r];
        int o = p.n_bands;
        if (p.centroid)
            out[o++] = (float)(acc[1] > 0 ? acc[0] * p.fs / (double)p.n / acc[1] : 0.0);
        if (p.dominant)
            out[o++] = (float)((double)dom * p.fs / (double)p.n);
    }
    b.sync();   /* A and B are refilled by the next window */
}

/* kc_spec_fast_window for the plan's length (p.fast: 2^8 .. 2^13). */
template <class B>
KC_HD void kc_spec_fast_any(B &b, const kc_feat_params_t &p, const float *xw, float2 *bufA,
                            float2 *bufB, double *dsh, float *out)
{
    switch (p.log2n) {
    case 8: kc_spec_fast_window<8>(b, p, xw, bufA, bufB, dsh, out); break;
    case 9: kc_spec_fast_window<9>(b, p, xw, bufA, bufB, dsh, out); break;
    case 10: kc_spec_fast_window<10>(b, p, xw, bufA, bufB, dsh, out); break;
    case 11: kc_spec_fast_window<11>(b, p, xw, bufA, bufB, dsh, out); break;
    case 12: kc_spec_fast_window<12>(b, p, xw, bufA, bufB, dsh, out); break;
    default: kc_spec_fast_window<13>(b, p, xw, bufA, bufB, dsh, out); break;
    }
}

#endif
