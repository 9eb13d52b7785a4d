/* feat_params.cu - host-side preparation of the fused-features kernel's
 * parameters: validation of the config, band and line bin ranges decided by
 * the reference's own rules (kernels/cpu/bins.h, kn_spectrum_peak_near), the
 * twiddle table and the window.  No CUDA calls: the emulation test uses it
 * on machines without a GPU. */
#include <math.h>
#include <string.h>

#include "kc_feat_plan.h"
#include "kc_spec_fast.h"

extern "C" {
#include "../cpu/bins.h"
}

#define KC_PI 3.14159265358979323846

void kc_twiddle_fill(float2 *tw)
{
    const int m = KC_FFT_MAX_LEN;
    for (int k = 0; k < m / 2; k++) {
        const double a = 2.0 * KC_PI * (double)k / (double)m;
        tw[k] = make_float2((float)cos(a), (float)-sin(a));
    }
}

void kc_sf_table_fill(int log2n, float2 *tw)
{
    const int lN = log2n - 1, le = kc_sf_log2e(log2n);
    int off = 0;
    for (int ls = le; ls < lN; ls += le) {
        const int lr = lN - ls < le ? lN - ls : le, Ns = 1 << ls;
        for (int r = 1; r < (1 << lr); r++)
            for (int k = 0; k < Ns; k++) {
                const double a = -2.0 * KC_PI * (double)(k * r) / (double)(Ns << lr);
                tw[off + (r - 1) * Ns + k] = make_float2((float)cos(a), (float)sin(a));
            }
        off += ((1 << lr) - 1) << ls;
    }
    const int n = 1 << log2n;
    for (int k = 0; k < n / 2; k++) {
        const double a = -2.0 * KC_PI * (double)k / (double)n;
        tw[off + k] = make_float2((float)cos(a), (float)sin(a));
    }
}

void kc_window_fill(kn_window_t kind, float *w, size_t n)
{
    if (kind != KN_WINDOW_HANN || n < 2) {
        for (size_t i = 0; i < n; i++)
            w[i] = 1.0f;
        return;
    }
    const double step = 2.0 * KC_PI / (double)(n - 1);
    for (size_t i = 0; i < n; i++)
        w[i] = (float)(0.5 - 0.5 * cos(step * (double)i));
}

int kc_feat_threads(int n)
{
    int t = (n / 8 + 31) & ~31;
    return t < 64 ? 64 : t > KC_FEAT_MAX_THREADS ? KC_FEAT_MAX_THREADS : t;
}

static int is_pow2(size_t n) { return n && !(n & (n - 1)); }

/* kn_spectrum_peak_near's bins for one line: the nearest bin always, and
 * the bins with |k fs/n - f| <= tol, which are contiguous because k fs / n
 * rounds monotonically; returned as [lo, hi] (lo > hi: none). */
static int line_bins(double f_hz, double tol_hz, int n, double fs, int *near_k, int *lo,
                     int *hi)
{
    const int n_bins = n / 2 + 1;
    const double bins_per_hz = (double)n / fs;
    double k_near = floor(f_hz * bins_per_hz + 0.5);
    k_near = k_near < 0 ? 0 : (k_near > (double)(n_bins - 1) ? (double)(n_bins - 1) : k_near);
    *near_k = (int)k_near;
    *lo = 1;
    *hi = 0;
    double k_lo = floor((f_hz - tol_hz) * bins_per_hz) - 1;
    double k_hi = ceil((f_hz + tol_hz) * bins_per_hz) + 1;
    if (k_hi < 0 || k_lo > (double)(n_bins - 1) || !(tol_hz >= 0))
        return 0;
    int k = k_lo < 0 ? 0 : (int)k_lo;
    int k_end = k_hi > (double)(n_bins - 1) ? n_bins - 1 : (int)k_hi;
    int first = -1, last = -1;
    for (; k <= k_end; k++) {
        double bin_hz = (double)k * fs / (double)n;
        if (fabs(bin_hz - f_hz) <= tol_hz) {
            if (first >= 0 && last != k - 1)
                return -1;      /* not contiguous: cannot happen, see above */
            if (first < 0)
                first = k;
            last = k;
        }
    }
    if (first >= 0) {
        *lo = first;
        *hi = last;
    }
    return 0;
}

int kc_feat_params_fill(const kc_feat_config_t *c, kc_feat_params_t *p, kiln_err_t *err)
{
    memset(p, 0, sizeof *p);
    const size_t n = c->window_len;
    const int fft = c->spectrum || c->envelope;
    if (!(c->sample_rate_hz > 0) || !isfinite(c->sample_rate_hz))
        return kiln_err_at(err, KILN_EINVAL, "sample_rate_hz",
                           "cuda features: sample rate %g Hz is not positive", c->sample_rate_hz);
    if (fft && (!is_pow2(n) || n < KC_FFT_MIN_LEN || n > KC_FFT_MAX_LEN))
        return kiln_err_at(err, KILN_EINVAL, "window_len",
                           "cuda features: windows of %zu samples: the GPU spectrum takes powers "
                           "of two from %d to %d (use the CPU path)", n, KC_FFT_MIN_LEN,
                           KC_FFT_MAX_LEN);
    if (n == 0 || n > (size_t)KC_FFT_MAX_LEN * 4)
        return kiln_err_at(err, KILN_EINVAL, "window_len",
                           "cuda features: windows of %zu samples do not fit one block's shared "
                           "memory (at most %d; kc_time_stats takes any length)", n,
                           KC_FFT_MAX_LEN * 4);
    if (c->n_bands > KC_MAX_BANDS || c->n_lines > KC_MAX_LINES)
        return kiln_err_at(err, KILN_EINVAL, c->n_bands > KC_MAX_BANDS ? "bands_hz" : "lines",
                           "cuda features: %zu bands / %zu lines (at most %d / %d)", c->n_bands,
                           c->n_lines, KC_MAX_BANDS, KC_MAX_LINES);
    p->n = (int)n;
    p->log2n = 0;
    while ((1u << p->log2n) < (unsigned)n)
        p->log2n++;
    p->fs = c->sample_rate_hz;
    p->time_stats = c->time_stats != 0;
    p->util_threshold = c->util_threshold;
    p->spectrum = c->spectrum != 0;
    p->envelope = c->envelope != 0;
    p->tw_log2 = KC_TW_LOG2;
    const size_t n_bins = n / 2 + 1;
    const double fs = c->sample_rate_hz;
    if (p->spectrum) {
        p->n_bands = (int)c->n_bands;
        for (size_t b = 0; b < c->n_bands; b++) {
            const double lo = c->bands_hz[b][0], hi = c->bands_hz[b][1];
            size_t k0 = 0, k1 = 0;
            if (lo < hi) {       /* kn_band_energy: 0 for an empty band */
                k0 = kn_first_bin_at(lo, n, n_bins, fs);
                k1 = kn_first_bin_at(hi, n, n_bins, fs);
                if (k1 < k0)
                    k1 = k0;
            }
            p->band_k0[b] = (int)k0;
            p->band_k1[b] = (int)k1;
        }
        p->centroid = c->centroid != 0;
        p->dominant = c->dominant != 0;
    }
    if (p->envelope) {
        size_t k0 = kn_first_bin_at(c->env_lo_hz, n, n_bins, fs);
        size_t k1 = kn_first_bin_at(c->env_hi_hz, n, n_bins, fs);
        if (k1 < k0)
            k1 = k0;
        p->env_k0 = (int)k0;
        p->env_k1 = (int)k1;
        p->n_lines = (int)c->n_lines;
        for (size_t l = 0; l < c->n_lines; l++)
            if (line_bins(c->line_hz[l], c->tolerance_hz, (int)n, fs, &p->line_near[l],
                          &p->line_lo[l], &p->line_hi[l]) < 0)
                return kiln_err_set(err, KILN_EINTERNAL,
                                    "cuda features: bins near line %zu (%g Hz) not contiguous",
                                    l, c->line_hz[l]);
    }
    p->fast = p->spectrum && !p->envelope && !p->time_stats && p->log2n >= KC_SF_MIN_LOG2N &&
              p->log2n <= KC_SF_MAX_LOG2N;
    p->n_out = (p->time_stats ? KC_N_TIME : 0) +
               (p->spectrum ? p->n_bands + p->centroid + p->dominant : 0) +
               (p->envelope ? p->n_lines : 0);
    return 0;
}
