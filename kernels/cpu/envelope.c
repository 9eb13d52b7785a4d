/* envelope.c - envelope spectrum for bearing diagnostics (Randall & Antoni,
 * "Rolling element bearing diagnostics - a tutorial", MSSP 25, 2011):
 * band-pass by zeroing FFT bins, analytic signal by the FFT Hilbert
 * transform (Marple 1999, as scipy.signal.hilbert), envelope = its
 * magnitude, then the amplitude spectrum of the mean-free envelope; and the
 * bearing defect frequencies its lines are looked up at. */
#include "../kernels.h"
#include "bins.h"

#include <math.h>

#define KN_PI 3.14159265358979323846

/* Scratch layout, each part a multiple of 16 floats (64 bytes) so an aligned
 * scratch stays aligned: [2n complex buffer][n envelope][FFT scratch]. */
static size_t round16(size_t n)
{
    return (n + 15) & ~(size_t)15;
}

size_t kn_envelope_scratch_floats(const kn_fft_plan_t *plan)
{
    size_t n = kn_fft_len(plan);
    return round16(2 * n) + round16(n) + kn_fft_scratch_floats(plan);
}

/* Sum of n floats in double.  Eight independent partial sums: a single
 * accumulator is a serial dependency the compiler may not reorder (no
 * -ffast-math), eight fixed lanes vectorize. */
static double sum_lanes(const float *x, size_t n)
{
    double part[8] = {0};
    size_t main_n = n - n % 8;
    for (size_t i = 0; i < main_n; i += 8)
        for (int l = 0; l < 8; l++)
            part[l] += (double)x[i + (size_t)l];
    for (size_t i = main_n; i < n; i++)
        part[0] += (double)x[i];
    double total = 0;
    for (int l = 0; l < 8; l++)
        total += part[l];
    return total;
}

void kn_envelope_spectrum(const kn_fft_plan_t *plan, const float *x,
                          double sample_rate_hz, double lo_hz, double hi_hz,
                          float *amp, float *scratch)
{
    const size_t n = kn_fft_len(plan);
    const size_t n_bins = n / 2 + 1;
    float *z = scratch;                         /* 2n floats, complex */
    float *env = scratch + round16(2 * n);      /* n floats */
    float *fft_scratch = env + round16(n);

    /* 1. Spectrum of x, band-passed by keeping bins with lo <= f < hi
     *    (f = k fs / n, as in kn_band_energy).  The pass band is found once
     *    as a bin range [k0, k1), so the loops below carry no division. */
    size_t k0 = kn_first_bin_at(lo_hz, n, n_bins, sample_rate_hz);
    size_t k1 = kn_first_bin_at(hi_hz, n, n_bins, sample_rate_hz);
    if (k1 < k0)
        k1 = k0;
    if (k0 > 0) {
        /* DC is outside the band, so the mean can come off first: a large
         * offset (a temperature near 40 with millikelvin noise) would
         * otherwise spread float rounding into the small in-band bins. */
        const float mean = (float)(sum_lanes(x, n) / (double)n);
        for (size_t t = 0; t < n; t++)
            env[t] = x[t] - mean;
        kn_rfft(plan, env, z, fft_scratch);
    } else {
        kn_rfft(plan, x, z, fft_scratch);
    }
    /* 2. One-sided spectrum of the analytic signal: DC (and the Nyquist bin
     *    of an even n) once, positive frequencies twice, negative ones 0. */
    for (size_t k = 0; k < 2 * k0; k++)
        z[k] = 0.0f;
    for (size_t k = 2 * k0; k < 2 * k1; k++)
        z[k] *= 2.0f;
    for (size_t k = 2 * k1; k < 2 * n; k++)
        z[k] = 0.0f;
    if (k0 == 0 && k1 > 0) {
        z[0] *= 0.5f;
        z[1] *= 0.5f;
    }
    if (n % 2 == 0 && n / 2 >= k0 && n / 2 < k1) {
        z[n] *= 0.5f;
        z[n + 1] *= 0.5f;
    }
    /* 3. Analytic signal (times n: the inverse is unnormalized) and its
     *    magnitude, the envelope, in float (relative error ~1e-7, far below
     *    the float FFT's); its mean, summed in double, comes off before the
     *    spectrum. */
    kn_cfft(plan, z, z, 1, fft_scratch);
    const float inv_nf = 1.0f / (float)n;
    for (size_t t = 0; t < n; t++) {
        float re = z[2 * t], im = z[2 * t + 1];
        env[t] = sqrtf(re * re + im * im) * inv_nf;
    }
    const float mean = (float)(sum_lanes(env, n) / (double)n);
    for (size_t t = 0; t < n; t++)
        env[t] -= mean;
    /* 4. Amplitude spectrum of the envelope: |E_k| * 2/n. */
    kn_rfft(plan, env, z, fft_scratch);
    const float amp_scale = 2.0f / (float)n;
    for (size_t k = 0; k < n_bins; k++) {
        float re = z[2 * k], im = z[2 * k + 1];
        amp[k] = sqrtf(re * re + im * im) * amp_scale;
    }
}

double kn_spectrum_peak_near(const float *amp, size_t n, double sample_rate_hz,
                             double f_hz, double tol_hz)
{
    if (n == 0 || !(sample_rate_hz > 0))
        return 0.0;
    const size_t n_bins = n / 2 + 1;
    const double bins_per_hz = (double)n / sample_rate_hz;
    /* The nearest bin always counts, even when the tolerance is below half
     * a bin or f lies outside [0, fs/2]. */
    double k_near = floor(f_hz * bins_per_hz + 0.5);
    k_near = k_near < 0 ? 0 : (k_near > (double)(n_bins - 1) ? (double)(n_bins - 1) : k_near);
    double best = amp[(size_t)k_near];
    /* Then every bin within tol, found by an estimate one bin wide on each
     * side and the exact test |k fs/n - f| <= tol. */
    double k_lo = floor((f_hz - tol_hz) * bins_per_hz) - 1;
    double k_hi = ceil((f_hz + tol_hz) * bins_per_hz) + 1;
    if (k_hi < 0 || k_lo > (double)(n_bins - 1) || !(tol_hz >= 0))
        return best;
    size_t k = k_lo < 0 ? 0 : (size_t)k_lo;
    size_t k_end = k_hi > (double)(n_bins - 1) ? n_bins - 1 : (size_t)k_hi;
    for (; k <= k_end; k++) {
        double bin_hz = (double)k * sample_rate_hz / (double)n;
        if (fabs(bin_hz - f_hz) <= tol_hz && amp[k] > best)
            best = amp[k];
    }
    return best;
}

void kn_bearing_defect_freqs(int n_balls, double ball_d, double pitch_d,
                             double contact_deg, double shaft_hz,
                             kn_bearing_freqs_t *out)
{
    const double ratio = ball_d / pitch_d * cos(contact_deg * KN_PI / 180.0);
    out->bpfo_hz = 0.5 * n_balls * shaft_hz * (1.0 - ratio);
    out->bpfi_hz = 0.5 * n_balls * shaft_hz * (1.0 + ratio);
    out->ftf_hz = 0.5 * shaft_hz * (1.0 - ratio);
    out->bsf_hz = pitch_d / ball_d * shaft_hz * (1.0 - ratio * ratio);
}
