/* spectrum.c - window functions and features of a one-sided power spectrum
 * (band energy, centroid, dominant frequency) computed from kn_rfft output.
 * Bin k sits at k * sample_rate_hz / n, computed in that order everywhere so
 * band edges fall on the same side as in the numpy oracle. */
#include "../kernels.h"

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

double kn_band_energy(const float *power, size_t n, double sample_rate_hz,
                      double lo_hz, double hi_hz)
{
    if (n == 0 || !(lo_hz < hi_hz) || !(sample_rate_hz > 0))
        return 0.0;
    const size_t n_bins = n / 2 + 1;
    /* Start one bin below the estimate of the first bin >= lo, then let the
     * exact per-bin test decide. */
    size_t k = 0;
    double k_est = floor(lo_hz * (double)n / sample_rate_hz) - 1.0;
    if (k_est > 0)
        k = k_est >= (double)n_bins ? n_bins : (size_t)k_est;
    while (k < n_bins && bin_hz(k, n, sample_rate_hz) < lo_hz)
        k++;
    double energy = 0;
    for (; k < n_bins && bin_hz(k, n, sample_rate_hz) < hi_hz; k++)
        energy += power[k];
    return energy;
}

double kn_spectral_centroid(const float *power, size_t n, double sample_rate_hz)
{
    if (n == 0)
        return 0.0;
    const size_t n_bins = n / 2 + 1;
    double weighted = 0, total = 0;
    for (size_t k = 0; k < n_bins; k++) {
        weighted += bin_hz(k, n, sample_rate_hz) * power[k];
        total += power[k];
    }
    return total > 0 ? weighted / total : 0.0;
}

double kn_dominant_freq(const float *power, size_t n, double sample_rate_hz)
{
    const size_t n_bins = n / 2 + 1;
    if (n < 2)
        return 0.0;
    size_t best = 1;
    for (size_t k = 2; k < n_bins; k++)
        if (power[k] > power[best])
            best = k;
    return bin_hz(best, n, sample_rate_hz);
}
