/* spectrum.c - window functions and features of a one-sided power spectrum
 * (band energy, centroid, dominant frequency) computed from kn_rfft output.
 * Bin k sits at k * sample_rate_hz / n, computed in that order everywhere so
 * band edges fall on the same side as in the numpy oracle. */
#include "../kernels.h"
#include "bins.h"

#include <math.h>

#define KN_PI 3.14159265358979323846

void kn_window_fill(kn_window_t kind, float *w, size_t n)
{
    if (kind != KN_WINDOW_HANN || n < 2) {
        /* numpy.hanning(1) is [1.0]; no window is all ones. */
        for (size_t i = 0; i < n; i++)
            w[i] = 1.0f;
        return;
    }
    const double step = 2.0 * KN_PI / (double)(n - 1);
    for (size_t i = 0; i < n; i++)
        w[i] = (float)(0.5 - 0.5 * cos(step * (double)i));
}

void kn_power_spectrum(const float *spec, size_t n, float *power)
{
    if (n == 0)
        return;
    const size_t n_bins = n / 2 + 1;
    const double inv_n2 = 1.0 / ((double)n * (double)n);
    for (size_t k = 0; k < n_bins; k++) {
        double re = spec[2 * k], im = spec[2 * k + 1];
        power[k] = (float)(2.0 * (re * re + im * im) * inv_n2);
    }
    /* DC, and the Nyquist bin of an even length, have no mirror image. */
    power[0] = (float)(((double)spec[0] * spec[0] + (double)spec[1] * spec[1]) * inv_n2);
    if (n % 2 == 0 && n_bins > 1) {
        double re = spec[2 * (n_bins - 1)], im = spec[2 * (n_bins - 1) + 1];
        power[n_bins - 1] = (float)((re * re + im * im) * inv_n2);
    }
}

static double bin_hz(size_t k, size_t n, double sample_rate_hz)
{
    return (double)k * sample_rate_hz / (double)n;
}

/* Eight partial sums so the loops vectorize (see stats.c). */
#define LANES 8

double kn_band_energy(const float *power, size_t n, double sample_rate_hz,
                      double lo_hz, double hi_hz)
{
    if (n == 0 || !(lo_hz < hi_hz) || !(sample_rate_hz > 0))
        return 0.0;
    const size_t n_bins = n / 2 + 1;
    size_t k0 = kn_first_bin_at(lo_hz, n, n_bins, sample_rate_hz);
    size_t k1 = kn_first_bin_at(hi_hz, n, n_bins, sample_rate_hz);
    double part[LANES] = {0}, energy = 0;
    size_t k = k0;
    for (; k + LANES <= k1; k += LANES)
        for (int l = 0; l < LANES; l++)
            part[l] += power[k + (size_t)l];
    for (; k < k1; k++)
        energy += power[k];
    for (int l = 0; l < LANES; l++)
        energy += part[l];
    return energy;
}

double kn_spectral_centroid(const float *power, size_t n, double sample_rate_hz)
{
    if (n == 0)
        return 0.0;
    const size_t n_bins = n / 2 + 1;
    /* sum f_k p_k = (fs / n) sum k p_k: the bin spacing comes out once. */
    double w[LANES] = {0}, t[LANES] = {0}, weighted = 0, total = 0;
    size_t k = 0;
    for (; k + LANES <= n_bins; k += LANES)
        for (int l = 0; l < LANES; l++) {
            w[l] += (double)(k + (size_t)l) * power[k + (size_t)l];
            t[l] += power[k + (size_t)l];
        }
    for (; k < n_bins; k++) {
        weighted += (double)k * power[k];
        total += power[k];
    }
    for (int l = 0; l < LANES; l++) {
        weighted += w[l];
        total += t[l];
    }
    return total > 0 ? weighted * sample_rate_hz / (double)n / total : 0.0;
}

double kn_dominant_freq(const float *power, size_t n, double sample_rate_hz)
{
    const size_t n_bins = n / 2 + 1;
    if (n < 2)
        return 0.0;
    /* The largest value first (sixteen lanes vectorize), then its first bin:
     * the same bin as a single scan that keeps the first of equal maxima. */
    float lane[16];
    for (int l = 0; l < 16; l++)
        lane[l] = power[1];
    size_t k = 1;
    for (; k + 16 <= n_bins; k += 16)
        for (int l = 0; l < 16; l++)
            lane[l] = power[k + (size_t)l] > lane[l] ? power[k + (size_t)l] : lane[l];
    float best = lane[0];
    for (int l = 1; l < 16; l++)
        best = lane[l] > best ? lane[l] : best;
    for (; k < n_bins; k++)
        best = power[k] > best ? power[k] : best;
    size_t at = 1;
    while (at < n_bins && !(power[at] == best))
        at++;
    return bin_hz(at < n_bins ? at : 1, n, sample_rate_hz);
}
