/* stats.c - time-domain statistics of one window (kn_time_stats): moments,
 * peak values, least-squares trend and utilization, in two passes over the
 * float32 samples with every sum accumulated in double. */
#include "../kernels.h"

#include <float.h>
#include <math.h>
#include <stdint.h>

/* Independent accumulators per sum: without -ffast-math the compiler may not
 * reorder a floating-point reduction, so the lanes are written out and the
 * fixed-width inner loops vectorize (SLP) on their own. */
#define LANES 8

void kn_time_stats(const float *x, size_t n, double sample_rate_hz,
                   double util_threshold, kn_time_stats_t *out)
{
    kn_time_stats_t s = {0};
    if (n == 0) {
        *out = s;
        return;
    }

    /* Pass 1a: min and max in float (exact), sixteen lanes. */
    float lo[16], hi[16];
    for (int l = 0; l < 16; l++)
        lo[l] = hi[l] = x[0];
    const size_t n16 = n - n % 16;
    for (size_t i = 0; i < n16; i += 16)
        for (int l = 0; l < 16; l++) {
            float v = x[i + (size_t)l];
            lo[l] = v < lo[l] ? v : lo[l];
            hi[l] = v > hi[l] ? v : hi[l];
        }
    for (size_t i = n16; i < n; i++) {
        lo[0] = x[i] < lo[0] ? x[i] : lo[0];
        hi[0] = x[i] > hi[0] ? x[i] : hi[0];
    }
    double x_min = lo[0], x_max = hi[0];
    for (int l = 1; l < 16; l++) {
        x_min = lo[l] < x_min ? lo[l] : x_min;
        x_max = hi[l] > x_max ? hi[l] : x_max;
    }

    /* Pass 1b: sum, sum of squares and count above the threshold, in
     * double.  (Kept apart from 1a: mixing float and double lanes in one
     * loop stopped gcc from vectorizing it.) */
    double sum[LANES] = {0}, sumsq[LANES] = {0};
    int64_t above[LANES] = {0};
    const size_t n_main = n - n % LANES;
    for (size_t i = 0; i < n_main; i += LANES) {
        for (int l = 0; l < LANES; l++) {
            double v = x[i + (size_t)l];
            sum[l] += v;
            sumsq[l] += v * v;
        }
    }
    for (size_t i = 0; i < n_main; i += LANES)
        for (int l = 0; l < LANES; l++)
            above[l] += (double)x[i + (size_t)l] > util_threshold;
    for (size_t i = n_main; i < n; i++) {
        double v = x[i];
        sum[0] += v;
        sumsq[0] += v * v;
        above[0] += v > util_threshold;
    }
    double total = 0, total_sq = 0, n_above = 0;
    for (int l = 0; l < LANES; l++) {
        total += sum[l];
        total_sq += sumsq[l];
        n_above += (double)above[l];
    }
    const double dn = (double)n;
    const double mean = total / dn;

    /* Pass 2: central moments about the mean (no cancellation), and the
     * trend numerator sum (i - i_mean) (x_i - mean). */
    const double i_mean = 0.5 * (dn - 1.0);
    double m2[LANES] = {0}, m3[LANES] = {0}, m4[LANES] = {0}, cov[LANES] = {0};
    /* i - i_mean carried in double (exact: integers and halves far below
     * 2^53); converting the size_t index each time kept the loop scalar. */
    double t_lane[LANES];
    for (int l = 0; l < LANES; l++)
        t_lane[l] = (double)l - i_mean;
    for (size_t i = 0; i < n_main; i += LANES) {
        for (int l = 0; l < LANES; l++) {
            double d = (double)x[i + (size_t)l] - mean;
            double d2 = d * d;
            m2[l] += d2;
            m3[l] += d2 * d;
            m4[l] += d2 * d2;
            cov[l] += t_lane[l] * d;
            t_lane[l] += (double)LANES;
        }
    }
    for (size_t i = n_main; i < n; i++) {
        double d = (double)x[i] - mean;
        double d2 = d * d;
        m2[0] += d2;
        m3[0] += d2 * d;
        m4[0] += d2 * d2;
        cov[0] += ((double)i - i_mean) * d;
    }
    double c2 = 0, c3 = 0, c4 = 0, c_cov = 0;
    for (int l = 0; l < LANES; l++) {
        c2 += m2[l];
        c3 += m3[l];
        c4 += m4[l];
        c_cov += cov[l];
    }
    c2 /= dn;
    c3 /= dn;
    c4 /= dn;

    s.mean = mean;
    s.std = sqrt(c2);
    s.rms = sqrt(total_sq / dn);
    s.peak = fabs(x_max) > fabs(x_min) ? fabs(x_max) : fabs(x_min);
    s.p2p = x_max - x_min;
    s.crest = s.rms > 0 ? s.peak / s.rms : 0.0;
    /* A window whose variance is below the rounding of its mean is constant
     * (scipy.stats.skew uses the same test and returns NaN; we return 0). */
    if (c2 > (DBL_EPSILON * mean) * (DBL_EPSILON * mean)) {
        s.skew = c3 / (c2 * sqrt(c2));
        s.kurt = c4 / (c2 * c2);
    }
    /* Least squares on t_i = i / fs: slope = fs * sum (i - i_mean) d_i /
     * sum (i - i_mean)^2, and sum (i - i_mean)^2 = n (n^2 - 1) / 12. */
    if (n > 1)
        s.slope = sample_rate_hz * c_cov / (dn * (dn * dn - 1.0) / 12.0);
    s.util = n_above / dn;
    *out = s;
}
