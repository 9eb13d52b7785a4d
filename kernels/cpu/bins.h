/* bins.h - where a frequency falls on an n-point spectrum, shared by the
 * spectrum and envelope kernels so band edges fall on the same bin in both:
 * bin k sits at k * fs / n, computed in that order (as the numpy oracle). */
#ifndef KILN_KERNELS_CPU_BINS_H
#define KILN_KERNELS_CPU_BINS_H

#include <stddef.h>

/* First bin k (0..n_bins) with k fs / n >= f_hz: an estimate, then the
 * exact per-bin test moves it onto the right bin, so loops over a band
 * carry no division per bin. */
static inline size_t kn_first_bin_at(double f_hz, size_t n, size_t n_bins, double fs)
{
    double est = f_hz * (double)n / fs;
    size_t k = !(est > 1.0) ? 0 : est >= (double)n_bins ? n_bins : (size_t)est - 1;
    while (k > 0 && (double)(k - 1) * fs / (double)n >= f_hz)
        k--;
    while (k < n_bins && !((double)k * fs / (double)n >= f_hz))
        k++;
    return k;
}

#endif
