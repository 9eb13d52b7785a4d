/* kc_fft.h - in-place power-of-two FFTs on one window held by a thread
 * block in shared memory (templates over kc_block.h's blocks).
 *
 * Decimation in time (Cooley-Tukey) on bit-reversed input, two radix-2
 * stages fused per pass (a radix-2^2 butterfly on four points), so a
 * transform of N = 2^m points takes ceil(m/2) passes and barriers.  The real
 * transform of n points is a complex one of n/2 points on (x[2j], x[2j+1])
 * followed by the split step X_k = E_k + W_n^k O_k (Numerical Recipes 12.3).
 * Twiddles W_M^j = exp(-2 pi i j / M) come from one table of exp(-2 pi i k /
 * KC_FFT_MAX_LEN), k < KC_FFT_MAX_LEN / 2, computed in double on the host
 * and rounded to float once. */
#ifndef KILN_KERNELS_CUDA_KC_FFT_H
#define KILN_KERNELS_CUDA_KC_FFT_H

#include "kc_block.h"

KC_HD float2 kc_cmul(float2 a, float2 b)
{
    return make_float2(a.x * b.x - a.y * b.y, a.x * b.y + a.y * b.x);
}
KC_HD float2 kc_cadd(float2 a, float2 b) { return make_float2(a.x + b.x, a.y + b.y); }
KC_HD float2 kc_csub(float2 a, float2 b) { return make_float2(a.x - b.x, a.y - b.y); }

/* W_M^j (M = 2^log2m) from the table, conjugated for the inverse. */
KC_HD float2 kc_twiddle(const float2 *tw, int tw_log2, int j, int log2m, int inverse)
{
    float2 w = kc_ld(tw + ((unsigned)j << (tw_log2 - log2m)));
    if (inverse)
        w.y = -w.y;
    return w;
}

/* In-place transform of buf[0..2^log2n), which must hold the input in
 * bit-reversed order; forward e^{-2 pi i k t / N}, inverse e^{+...}
 * unnormalized.  Starts after the caller's barrier, ends with one. */
template <class B>
KC_HD void kc_cfft_bitrev(B &b, float2 *buf, int log2n, const float2 *tw, int tw_log2,
                          int inverse)
{
    const int N = 1 << log2n;
    int s = 0;
    if (log2n & 1) {
        for (int i = b.tid(); i < N / 2; i += b.nthreads()) {
            float2 a = buf[2 * i], c = buf[2 * i + 1];
            buf[2 * i] = kc_cadd(a, c);
            buf[2 * i + 1] = kc_csub(a, c);
        }
        b.sync();
        s = 1;
    }
    for (; s < log2n; s += 2) {
        const int h = 1 << s;
        for (int item = b.tid(); item < N / 4; item += b.nthreads()) {
            const int j = item & (h - 1);
            const int a0 = ((item >> s) << (s + 2)) + j;
            const float2 w1 = kc_twiddle(tw, tw_log2, j, s + 1, inverse);
            const float2 w2 = kc_twiddle(tw, tw_log2, j, s + 2, inverse);
            /* W_{4h}^{j+h} = W_{4h}^j * W_4^1, and W_4^1 = -i (+i inverse):
             * an exact swap, not a product. */
            const float2 w3 = inverse ? make_float2(-w2.y, w2.x) : make_float2(w2.y, -w2.x);
            float2 x0 = buf[a0], x1 = kc_cmul(buf[a0 + h], w1);
            float2 x2 = buf[a0 + 2 * h], x3 = kc_cmul(buf[a0 + 3 * h], w1);
            float2 y0 = kc_cadd(x0, x1), y1 = kc_csub(x0, x1);
            float2 y2 = kc_cadd(x2, x3), y3 = kc_csub(x2, x3);
            float2 t2 = kc_cmul(y2, w2), t3 = kc_cmul(y3, w3);
            buf[a0] = kc_cadd(y0, t2);
            buf[a0 + 2 * h] = kc_csub(y0, t2);
            buf[a0 + h] = kc_cadd(y1, t3);
            buf[a0 + 3 * h] = kc_csub(y1, t3);
        }
        b.sync();
    }
}

/* Real FFT of n = 2^log2n points given as in(i) (a functor, so windowing or
 * an offset is applied while loading): packs, transforms in place in
 * buf[0..n/2), then calls sink(k, re, im) for k = 0..n/2 (numpy.fft.rfft
 * convention).  buf is only read by the split step, so sink may write
 * anywhere else.  Ends with a barrier after the sinks. */
template <class B, class In, class Sink>
KC_HD void kc_rfft(B &b, float2 *buf, int log2n, const float2 *tw, int tw_log2, In in,
                   Sink sink)
{
    const int lN = log2n - 1, N = 1 << lN;
    for (int j = b.tid(); j < N; j += b.nthreads())
        buf[kc_brev((unsigned)j, lN)] = make_float2(in(2 * j), in(2 * j + 1));
    b.sync();
    kc_cfft_bitrev(b, buf, lN, tw, tw_log2, 0);
    for (int k = b.tid(); k <= N; k += b.nthreads()) {
        const float2 zk = buf[k & (N - 1)], zm = buf[(N - k) & (N - 1)];
        /* E = (Z_k + conj Z_{N-k}) / 2, O = -i (Z_k - conj Z_{N-k}) / 2. */
        const float2 e = make_float2(0.5f * (zk.x + zm.x), 0.5f * (zk.y - zm.y));
        const float2 o = make_float2(0.5f * (zk.y + zm.y), -0.5f * (zk.x - zm.x));
        const float2 w = k < N ? kc_twiddle(tw, tw_log2, k, log2n, 0) : make_float2(-1.0f, 0.0f);
        const float2 x = kc_cadd(e, kc_cmul(w, o));
        sink(k, x.x, x.y);
    }
    b.sync();
}

#endif
