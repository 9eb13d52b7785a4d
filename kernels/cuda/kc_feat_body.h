/* kc_feat_body.h - the features of one window, computed by one thread block
 * from the window in shared memory, in the order and with the definitions of
 * jobs/featcompute.c: kn_time_stats, then the windowed power spectrum's band
 * energies, centroid and dominant frequency, then the envelope spectrum's
 * peaks near the defect lines.  A template over kc_block.h's blocks: the GPU
 * kernel (features.cu) and the host emulation (tests/gpu/emu.cu) run this
 * same code.  All bin ranges arrive precomputed by the host with the
 * reference's own rule (kernels/cpu/bins.h), so no band edge is decided in
 * device arithmetic. */
#ifndef KILN_KERNELS_CUDA_KC_FEAT_BODY_H
#define KILN_KERNELS_CUDA_KC_FEAT_BODY_H

#include <float.h>

#include "kc_fft.h"

#define KC_N_TIME 10
#define KC_MAX_LINES_BODY 4

/* Everything a window needs, passed by value to the kernel. */
typedef struct {
    int    n, log2n;
    double fs;
    int    time_stats;
    double util_threshold;
    int    spectrum, n_bands, centroid, dominant;
    int    band_k0[64], band_k1[64];          /* [k0, k1) per band */
    int    envelope, env_k0, env_k1;          /* pass band [k0, k1), k1 >= k0 */
    int    n_lines;
    int    line_near[4], line_lo[4], line_hi[4]; /* nearest bin; [lo, hi] within tol (empty: lo > hi) */
    int    n_out;
    int    tw_log2;
    const float2 *tw;                         /* device (or host, emulated) */
    const float  *window;                     /* n coefficients, or NULL for none */
    int    fast;                              /* kc_spec_fast.h takes this config */
    const float2 *sf_tw;                      /* its twiddle table (kc_sf_table_len) */
} kc_feat_params_t;

/* Shared-memory floats the body needs: xs (n + 2, room for the n/2 + 1
 * complex bins the envelope keeps there), the complex buffer (n/2 complex,
 * n complex with the envelope) and the power / amplitude bins (n/2 + 1),
 * each part rounded to 4 floats (16 bytes). */
KC_HD int kc_round4(int x) { return (x + 3) & ~3; }
KC_HD size_t kc_feat_shared_floats(int n, int spectrum, int envelope)
{
    size_t f = (size_t)kc_round4(n + 2);
    if (spectrum || envelope)
        f += (size_t)(envelope ? 2 * n : n) + (size_t)kc_round4(n / 2 + 1);
    return f;
}

/* kn_time_stats from the reductions (kernels/cpu/stats.c, same formulas). */
KC_HD void kc_stats_finish(int n, double fs, double x_min, double x_max, double total,
                           double total_sq, double n_above, double c2, double c3, double c4,
                           double c_cov, double *o)
{
    const double dn = (double)n, mean = total / dn;
    c2 /= dn;
    c3 /= dn;
    c4 /= dn;
    const double rms = sqrt(total_sq / dn);
    const double peak = fabs(x_max) > fabs(x_min) ? fabs(x_max) : fabs(x_min);
    o[0] = mean;
    o[1] = sqrt(c2);
    o[2] = rms;
    o[3] = peak;
    o[4] = x_max - x_min;
    o[5] = rms > 0 ? peak / rms : 0.0;
    o[6] = 0;
    o[7] = 0;
    if (c2 > (DBL_EPSILON * mean) * (DBL_EPSILON * mean)) {
        o[6] = c3 / (c2 * sqrt(c2));
        o[7] = c4 / (c2 * c2);
    }
    o[8] = n > 1 ? fs * c_cov / (dn * (dn * dn - 1.0) / 12.0) : 0.0;
    o[9] = n_above / dn;
}

/* kn_time_stats from sums about a shift c near the mean (kc_stats_warp_kernel):
 * s1..s4 the sums of d, d^2, d^3, d^4 with d = x - c, si the sum of i d.
 * The moments about the mean c + s1/n follow by the binomial shift; c is
 * within float rounding of the mean, so the shift terms are tiny and
 * nothing cancels; s1 = 0 (a constant window with c its value) leaves
 * them exactly 0, as the reference's.  Spread over a warp: the two square roots and
 * the four divisions are each one instruction sequence with a different
 * operand per lane (lanes 0..3), so the warp pays for one of each instead
 * of all of them (the fp64 pipe is what limits kc_stats_warp_kernel).
 * spread(f, dst, k) sets dst[i] = f(i) for i < k: on the GPU each lane
 * evaluates f(lane) once and the values are shuffled; on the host it is a
 * loop.  Divisions by n are multiplications by 1/n (one rounding apart).
 * The result is in o of every lane. */
template <class Spread>
KC_HD void kc_stats_finish_lanes(Spread spread, int n, double fs, double inv_n, double x_min,
                                 double x_max, double n_above, double c, double s1, double s2,
                                 double s3, double s4, double si, double *o)
{
    const double dn = (double)n, dl = s1 * inv_n, dl2 = dl * dl;
    const double c2 = (s2 - dl * s1) * inv_n;
    const double c3 = (s3 - 3.0 * dl * s2 + 2.0 * dl2 * s1) * inv_n;
    const double c4 = (s4 - 4.0 * dl * s3 + 6.0 * dl2 * s2 - 3.0 * dl2 * dl * s1) * inv_n;
    const double cov = si - 0.5 * (dn - 1.0) * s1;
    const double mean = (dn * c + s1) * inv_n;
    const double ms = (s2 + c * (2.0 * s1 + dn * c)) * inv_n;
    double r[4];
    spread([&](int l) { return sqrt((l & 1) ? ms : c2); }, r, 2);
    const double sd = r[0], rms = r[1];
    const double peak = fabs(x_max) > fabs(x_min) ? fabs(x_max) : fabs(x_min);
    spread([&](int l) {
        const double num = l == 0 ? peak : l == 1 ? c3 : l == 2 ? c4 : fs * cov;
        const double den = l == 0 ? rms : l == 1 ? c2 * sd : l == 2 ? c2 * c2
                                                            : dn * (dn * dn - 1.0) / 12.0;
        return num / den;
    }, r, 4);
    o[0] = mean;
    o[1] = sd;
    o[2] = rms;
    o[3] = peak;
    o[4] = x_max - x_min;
    o[5] = rms > 0 ? r[0] : 0.0;
    o[6] = 0;
    o[7] = 0;
    if (c2 > (DBL_EPSILON * mean) * (DBL_EPSILON * mean)) {
        o[6] = r[1];
        o[7] = r[2];
    }
    o[8] = n > 1 ? r[3] : 0.0;
    o[9] = n_above * inv_n;
}

/* The host's spread: a loop. */
struct kc_spread_host {
    template <class F> KC_HD void operator()(F f, double *dst, int k) const
    {
        for (int i = 0; i < k; i++)
            dst[i] = f(i);
    }
};

/* Time statistics of xs[0..n) into o[KC_N_TIME] (every thread gets them). */
template <class B>
KC_HD void kc_stats_window(B &b, const float *xs, int n, double fs, double thr, double *o)
{
    if (n == 0) {
        for (int k = 0; k < KC_N_TIME; k++)
            o[k] = 0;
        return;
    }
    double s1[3];
    b.template reduce<3>(n, kc_op_sum(), [&](int i, double *a) {
        const double v = xs[i];
        a[0] += v;
        a[1] += v * v;
        a[2] += v > thr ? 1.0 : 0.0;
    }, s1);
    /* max x and max -x: exact in double, so min and max are the floats'. */
    double mm[2];
    b.template reduce<2>(n, kc_op_max(), [&](int i, double *a) {
        const double v = xs[i];
        a[0] = v > a[0] ? v : a[0];
        a[1] = -v > a[1] ? -v : a[1];
    }, mm);
    const double mean = s1[0] / (double)n, i_mean = 0.5 * ((double)n - 1.0);
    double s2[4];
    b.template reduce<4>(n, kc_op_sum(), [&](int i, double *a) {
        const double d = (double)xs[i] - mean, d2 = d * d;
        a[0] += d2;
        a[1] += d2 * d;
        a[2] += d2 * d2;
        a[3] += ((double)i - i_mean) * d;
    }, s2);
    kc_stats_finish(n, fs, -mm[1], mm[0], s1[0], s1[1], s1[2], s2[0], s2[1], s2[2], s2[3], o);
}

/* Band energies, centroid and dominant frequency (those p asks for, in
 * that order) of the power bins pbuf[0..n/2] (shared, complete: the caller
 * synchronised) into out[] (thread 0 writes); returns how many.  Band and
 * centroid sums in double, as kn_band_energy / kn_spectral_centroid. */
template <class B>
KC_HD int kc_power_features(B &b, const kc_feat_params_t &p, const float *pbuf, double *dsh,
                            float *out)
{
    const int n = p.n, N = n / 2;
    const double fs = p.fs;
    int o = 0;
    if (p.n_bands) {
        b.range_sums(p.n_bands, p.band_k0, p.band_k1, pbuf, dsh);
        if (b.tid() == 0)
            for (int r = 0; r < p.n_bands; r++)
                out[o + r] = (float)dsh[r];
        o += p.n_bands;
        b.sync();   /* dsh is reused below */
    }
    if (p.centroid) {
        double c[2];
        b.template reduce<2>(N + 1, kc_op_sum(), [&](int k, double *a) {
            a[0] += (double)k * pbuf[k];
            a[1] += pbuf[k];
        }, c);
        if (b.tid() == 0)
            out[o] = (float)(c[1] > 0 ? c[0] * fs / (double)n / c[1] : 0.0);
        o++;
    }
    if (p.dominant) {
        const int at = b.argmax_first(1, N + 1, pbuf);
        if (b.tid() == 0)
            out[o] = (float)((double)at * fs / (double)n);
        o++;
    }
    return o;
}

/* All features of the window in xs[0..n) into out[p.n_out] (written by
 * thread 0).  cbuf and pbuf as kc_feat_shared_floats lays them out; dsh:
 * 64 doubles of block-visible scratch.  xs is overwritten by the envelope. */
template <class B>
KC_HD void kc_window_features(B &b, const kc_feat_params_t &p, float *xs, float2 *cbuf,
                              float *pbuf, double *dsh, float *out)
{
    const int n = p.n, N = n / 2;
    const double fs = p.fs;
    int o = 0;

    if (p.time_stats) {
        double t[KC_N_TIME];
        kc_stats_window(b, xs, n, fs, p.util_threshold, t);
        if (b.tid() == 0)
            for (int k = 0; k < KC_N_TIME; k++)
                out[k] = (float)t[k];
        o += KC_N_TIME;
    }

    if (p.spectrum) {
        const float *w = p.window;
        const double inv_n2 = 1.0 / ((double)n * (double)n);
        /* p_k = 2|X_k|^2 / n^2, DC and Nyquist once (kn_power_spectrum). */
        kc_rfft(b, cbuf, p.log2n, p.tw, p.tw_log2,
                [&](int i) { return w ? xs[i] * kc_ld(w + i) : xs[i]; },
                [&](int k, float re, float im) {
                    const double m2 = (double)re * re + (double)im * im;
                    pbuf[k] = (float)((k == 0 || k == N ? 1.0 : 2.0) * m2 * inv_n2);
                });
        o += kc_power_features(b, p, pbuf, dsh, out + o);
    }

    if (p.envelope) {
        const int k0 = p.env_k0, k1 = p.env_k1;
        float mean = 0.0f;
        if (k0 > 0) {
            /* DC is out of band: the mean comes off first (envelope.c). */
            double s;
            b.template reduce<1>(n, kc_op_sum(), [&](int i, double *a) { a[0] += xs[i]; }, &s);
            mean = (float)(s / (double)n);
        }
        /* 1. Spectrum of x; its n/2 + 1 bins go where xs was. */
        float2 *X = (float2 *)xs;
        kc_rfft(b, cbuf, p.log2n, p.tw, p.tw_log2,
                [&](int i) { return xs[i] - mean; },
                [&](int k, float re, float im) { X[k] = make_float2(re, im); });
        /* 2. One-sided analytic spectrum: in-band bins doubled, DC and
         *    Nyquist (when in band) kept once, the rest zero; loaded
         *    bit-reversed for the inverse transform of n points. */
        for (int j = b.tid(); j < n; j += b.nthreads()) {
            float2 v = make_float2(0.0f, 0.0f);
            if (j >= k0 && j < k1) {
                v = X[j];
                if (!(j == 0 || j == N)) {
                    v.x *= 2.0f;
                    v.y *= 2.0f;
                }
            }
            cbuf[kc_brev((unsigned)j, p.log2n)] = v;
        }
        b.sync();
        /* 3. Analytic signal (times n) and its magnitude, the envelope. */
        kc_cfft_bitrev(b, cbuf, p.log2n, p.tw, p.tw_log2, 1);
        const float inv_nf = 1.0f / (float)n;
        for (int t = b.tid(); t < n; t += b.nthreads()) {
            const float2 z = cbuf[t];
            xs[t] = sqrtf(z.x * z.x + z.y * z.y) * inv_nf;
        }
        b.sync();
        double s;
        b.template reduce<1>(n, kc_op_sum(), [&](int i, double *a) { a[0] += xs[i]; }, &s);
        const float env_mean = (float)(s / (double)n);
        /* 4. Amplitude spectrum of the mean-free envelope, |E_k| 2/n. */
        const float amp_scale = 2.0f / (float)n;
        kc_rfft(b, cbuf, p.log2n, p.tw, p.tw_log2,
                [&](int i) { return xs[i] - env_mean; },
                [&](int k, float re, float im) { pbuf[k] = sqrtf(re * re + im * im) * amp_scale; });
        /* 5. Peak near each line: the nearest bin, and [lo, hi]. */
        if (p.n_lines == 0)
            return;
        int span = 1;
        for (int l = 0; l < p.n_lines; l++)
            if (p.line_hi[l] - p.line_lo[l] + 1 > span)
                span = p.line_hi[l] - p.line_lo[l] + 1;
        double pk[KC_MAX_LINES_BODY];
        b.template reduce<KC_MAX_LINES_BODY>(span, kc_op_max(), [&](int i, double *a) {
            for (int l = 0; l < p.n_lines; l++) {
                double v = i == 0 ? (double)pbuf[p.line_near[l]] : -HUGE_VAL;
                const int k = p.line_lo[l] + i;
                if (k <= p.line_hi[l] && (double)pbuf[k] > v)
                    v = pbuf[k];
                a[l] = v > a[l] ? v : a[l];
            }
        }, pk);
        if (b.tid() == 0)
            for (int l = 0; l < p.n_lines; l++)
                out[o + l] = (float)pk[l];
        o += p.n_lines;
    }
    (void)o;
}

#endif
