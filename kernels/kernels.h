/* kernels.h - the device-neutral kernel API.  Pure compute on arrays: no I/O,
 * no allocation except in *_new/plan functions.  Signals are float32; sums
 * are accumulated in double where the result is a statistic.
 *
 * The C reference lives in kernels/cpu/ and is the oracle for every other
 * device.  Nothing here names a device-specific type: plans are opaque, data
 * are plain arrays and every result is a plain struct, so CUDA twins
 * (kernels/cuda/, not written yet) can add batched entry points taking a
 * kn_device_t beside these per-window calls without changing their callers'
 * data layout. */
#ifndef KILN_KERNELS_H
#define KILN_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "../core/kiln_err.h"

/* Where a batched kernel runs; only KN_DEVICE_CPU exists so far. */
typedef enum { KN_DEVICE_CPU = 0, KN_DEVICE_CUDA = 1 } kn_device_t;

/* ---- FFT (kernels/cpu/fft.c) -------------------------------------------
 * A plan for transforms of length n.  Supported n: any n >= 2.  Lengths whose
 * prime factors are 2, 3 and 5 run the mixed-radix path; any other length
 * runs Bluestein's chirp-z algorithm over a power-of-two transform.
 * A plan is immutable after creation and may be shared by threads; each
 * thread passes its own scratch (kn_fft_scratch_floats floats, 64-byte
 * aligned is best). */
typedef struct kn_fft_plan kn_fft_plan_t;

int    kn_fft_plan_new(size_t n, kn_fft_plan_t **out, kiln_err_t *err);
void   kn_fft_plan_destroy(kn_fft_plan_t **plan);
size_t kn_fft_len(const kn_fft_plan_t *plan);
size_t kn_fft_scratch_floats(const kn_fft_plan_t *plan);

/* Forward real FFT, numpy.fft.rfft convention (unnormalized, e^{-2 pi i k t/n}):
 * in[n] real -> out[(n/2+1)*2] interleaved re,im. */
void kn_rfft(const kn_fft_plan_t *plan, const float *in, float *out, float *scratch);

/* Complex FFT of length n, interleaved re,im, in[2n] -> out[2n] (in == out
 * allowed).  inverse = 0: numpy.fft.fft; inverse = 1: n * numpy.fft.ifft
 * (unnormalized). */
void kn_cfft(const kn_fft_plan_t *plan, const float *in, float *out,
             int inverse, float *scratch);

/* ---- time-domain statistics (kernels/cpu/stats.c) ----------------------
 * Population moments (ddof = 0).  skew = m3 / m2^1.5, kurt = m4 / m2^2
 * (Pearson, 3 for a Gaussian; scipy.stats.kurtosis(fisher=False)).  For a
 * constant window skew = 0 and kurt = 0, crest = 0 when rms = 0.
 * ("Constant" as scipy tests it: m2 <= (DBL_EPSILON * mean)^2, where scipy
 * returns NaN.)  peak = max |x|, p2p = max x - min x, crest = peak / rms.
 * n = 1: slope 0; n = 0: every field 0.
 * slope: least-squares slope in signal units per second, sample i at
 * t = i / sample_rate_hz.  util: fraction of samples strictly above
 * util_threshold. */
typedef struct {
    double mean, std, rms, peak, p2p, crest, skew, kurt, slope, util;
} kn_time_stats_t;

void kn_time_stats(const float *x, size_t n, double sample_rate_hz,
                   double util_threshold, kn_time_stats_t *out);

/* ---- spectra (kernels/cpu/spectrum.c) ----------------------------------
 * Window applied before the FFT. */
typedef enum { KN_WINDOW_NONE = 0, KN_WINDOW_HANN = 1 } kn_window_t;

/* Periodic-free symmetric Hann as numpy.hanning(n): w[i] = 0.5 - 0.5 cos(2 pi i/(n-1)). */
void kn_window_fill(kn_window_t kind, float *w, size_t n);

/* One-sided power spectrum scaled so that it sums to mean(x^2) (Parseval):
 * p[0] = |X0|^2/n^2, p[k] = 2|Xk|^2/n^2 for 0<k<n/2, p[n/2] = |X_{n/2}|^2/n^2
 * for even n.  spec is kn_rfft output; n_bins = n/2+1. */
void kn_power_spectrum(const float *spec, size_t n, float *power);

/* Bin k is at k * sample_rate_hz / n. */
double kn_band_energy(const float *power, size_t n, double sample_rate_hz,
                      double lo_hz, double hi_hz);      /* bins with lo <= f < hi */
double kn_spectral_centroid(const float *power, size_t n, double sample_rate_hz); /* sum f p / sum p, 0 if sum p == 0 */
double kn_dominant_freq(const float *power, size_t n, double sample_rate_hz);     /* f of max p over k >= 1 (first on ties) */

/* ---- envelope (kernels/cpu/envelope.c) ---------------------------------
 * Envelope spectrum (Randall & Antoni, "Rolling element bearing
 * diagnostics - a tutorial", MSSP 2011): band-pass x to [lo_hz, hi_hz) by
 * zeroing rfft bins outside it, form the analytic signal by the Hilbert
 * transform (as scipy.signal.hilbert of the band-passed signal), take its
 * magnitude e, and return amp[k] = |rfft(e - mean(e))|_k * 2/n for
 * k = 0..n/2.  scratch: kn_envelope_scratch_floats(plan) floats. */
size_t kn_envelope_scratch_floats(const kn_fft_plan_t *plan);
void   kn_envelope_spectrum(const kn_fft_plan_t *plan, const float *x,
                            double sample_rate_hz, double lo_hz, double hi_hz,
                            float *amp, float *scratch);

/* Largest amp within [f_hz - tol_hz, f_hz + tol_hz] (at least the nearest bin,
 * clamped to 0..n/2, so f outside [0, fs/2] reads the edge bin). */
double kn_spectrum_peak_near(const float *amp, size_t n, double sample_rate_hz,
                             double f_hz, double tol_hz);

/* Bearing defect frequencies in Hz from geometry (any length unit, same for
 * both diameters) and shaft speed; standard kinematics with contact angle:
 *   BPFO = Z/2 fr (1 - d/D cos a), BPFI = Z/2 fr (1 + d/D cos a),
 *   FTF = fr/2 (1 - d/D cos a), BSF = D/d fr (1 - (d/D cos a)^2)
 * BSF is the CWRU convention: twice the ball spin frequency (the rate a ball
 * defect strikes a race). */
typedef struct { double bpfo_hz, bpfi_hz, bsf_hz, ftf_hz; } kn_bearing_freqs_t;
void kn_bearing_defect_freqs(int n_balls, double ball_d, double pitch_d,
                             double contact_deg, double shaft_hz,
                             kn_bearing_freqs_t *out);

/* ---- rolling statistics across windows (kernels/cpu/rolling.c) ---------
 * Mean and population std of the last k values pushed (fewer while the ring
 * is filling: min_periods = 1, like pandas rolling(k, min_periods=1) with
 * ddof=0).  The caller keeps one ring per asset and per feature. */
typedef struct {
    size_t k, count, head;
    double *values;         /* k slots, owned */
} kn_rolling_t;

int  kn_rolling_init(kn_rolling_t *r, size_t k, kiln_err_t *err);
void kn_rolling_free(kn_rolling_t *r);
/* init: k >= 1 (KILN_EINVAL otherwise); free is safe twice and after a
 * failed init.  push: mean or std may be NULL. */
void kn_rolling_push(kn_rolling_t *r, double v, double *mean, double *std);

/* ---- resampling (kernels/cpu/resample.c) -------------------------------
 * Rational resampling by up/down with a polyphase FIR anti-aliasing filter,
 * designed as scipy.signal.resample_poly does by default: gcd-reduced
 * up/down, cutoff 1/max(up,down), half length 10*max(up,down), Kaiser
 * window beta 5.0, gain up; output length ceil(n_in*up/down), zero padded
 * at the edges, delay compensated. */
typedef struct kn_resampler kn_resampler_t;

int    kn_resampler_new(int up, int down, kn_resampler_t **out, kiln_err_t *err);
void   kn_resampler_destroy(kn_resampler_t **r);
size_t kn_resample_out_len(const kn_resampler_t *r, size_t n_in);
/* Whole-signal resampling; out has kn_resample_out_len(r, n_in) slots and
 * does not overlap in.  up, down >= 1 and each at most 65536 after gcd
 * reduction (KILN_EINVAL); up == down copies in. */
void   kn_resample(const kn_resampler_t *r, const double *in, size_t n_in, double *out);

#endif
