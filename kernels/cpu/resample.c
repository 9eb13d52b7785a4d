/* resample.c - rational resampling by up/down with a polyphase FIR filter,
 * designed exactly as scipy.signal.resample_poly does by default:
 * firwin(2*half_len+1, 1/max(up,down), window=('kaiser', 5.0)) * up, with
 * half_len = 10*max(up,down), zero padding outside the signal and the group
 * delay removed.  Only the output samples are computed (polyphase, as in
 * Vaidyanathan, "Multirate Systems and Filter Banks", 1993, sec. 4.3). */
#include "../kernels.h"

#include <math.h>
#include <string.h>

#include "../../core/kiln_alloc.h"

#define KN_PI 3.14159265358979323846
#define KAISER_BETA 5.0
#define MAX_RATE 65536  /* filter of 20*MAX_RATE+1 taps: bounded memory */

struct kn_resampler {
    size_t up, down;        /* gcd-reduced */
    size_t half_len;        /* 10 * max(up, down) */
    size_t taps_per_phase;  /* ceil((2*half_len+1) / up) */
    /* taps[p*taps_per_phase + q] = h[p + (taps_per_phase-1-q)*up] (0 past
     * the end): phase p's taps reversed, so each output is a forward dot
     * product with consecutive input samples. */
    double *taps;
};

static size_t gcd_size(size_t a, size_t b)
{
    while (b) {
        size_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

/* Modified Bessel function I0 by its power series sum ((x/2)^k / k!)^2,
 * which converges to double precision in a few dozen terms for |x| <= 5. */
static double bessel_i0(double x)
{
    const double q = 0.25 * x * x;
    double term = 1.0, sum = 1.0;
    for (int k = 1; k < 500; k++) {
        term *= q / ((double)k * (double)k);
        sum += term;
        if (term < sum * 1e-17)
            break;
    }
    return sum;
}

/* scipy.signal.firwin(numtaps, cutoff, window=('kaiser', beta)) for a
 * low-pass (cutoff relative to Nyquist), scaled to unit DC gain, times gain. */
static void design_lowpass(double *h, size_t numtaps, double cutoff, double gain)
{
    const double alpha = 0.5 * (double)(numtaps - 1);
    const double i0_beta = bessel_i0(KAISER_BETA);
    double sum = 0;
    for (size_t i = 0; i < numtaps; i++) {
        double m = (double)i - alpha;
        /* numpy.sinc: sin(pi x) / (pi x), 1 at 0 */
        double y = KN_PI * (cutoff * m);
        double sinc = y == 0 ? 1.0 : sin(y) / y;
        double r = (m / alpha);
        double arg = 1.0 - r * r;
        double win = bessel_i0(KAISER_BETA * sqrt(arg > 0 ? arg : 0.0)) / i0_beta;
        h[i] = cutoff * sinc * win;
        sum += h[i];
    }
    for (size_t i = 0; i < numtaps; i++)
        h[i] = h[i] / sum * gain;
}

int kn_resampler_new(int up, int down, kn_resampler_t **out, kiln_err_t *err)
{
    double *h = NULL;
    kn_resampler_t *r = NULL;
    *out = NULL;
    if (up < 1 || down < 1)
        return kiln_err_set(err, KILN_EINVAL,
                            "resample factors must be >= 1, got up=%d down=%d", up, down);
    size_t g = gcd_size((size_t)up, (size_t)down);
    size_t u = (size_t)up / g, d = (size_t)down / g;
    size_t max_rate = u > d ? u : d;
    if (max_rate > MAX_RATE)
        return kiln_err_set(err, KILN_EINVAL,
                            "resample ratio %d/%d reduces to %zu/%zu: factors above %d "
                            "are not supported", up, down, u, d, MAX_RATE);
    r = kiln_calloc(1, sizeof *r);
    if (!r)
        goto nomem;
    r->up = u;
    r->down = d;
    if (u == 1 && d == 1) {     /* identity: resample_poly returns a copy */
        *out = r;
        return 0;
    }
    r->half_len = 10 * max_rate;
    const size_t numtaps = 2 * r->half_len + 1;
    r->taps_per_phase = (numtaps + u - 1) / u;
    h = kiln_malloc(numtaps * sizeof *h);
    r->taps = kiln_calloc(u * r->taps_per_phase, sizeof *r->taps);
    if (!h || !r->taps)
        goto nomem;
    design_lowpass(h, numtaps, 1.0 / (double)max_rate, (double)u);
    const size_t K = r->taps_per_phase;
    for (size_t p = 0; p < u; p++)
        for (size_t m = 0; m < K && p + m * u < numtaps; m++)
            r->taps[p * K + (K - 1 - m)] = h[p + m * u];
    kiln_free(h);
    *out = r;
    return 0;
nomem:
    kiln_free(h);
    kn_resampler_destroy(&r);
    return kiln_err_set(err, KILN_ENOMEM, "no memory for a %d/%d resampling filter",
                        up, down);
}

void kn_resampler_destroy(kn_resampler_t **r)
{
    if (!r || !*r)
        return;
    kiln_free((*r)->taps);
    kiln_free(*r);
    *r = NULL;
}

size_t kn_resample_out_len(const kn_resampler_t *r, size_t n_in)
{
    size_t total = n_in * r->up;
    return total / r->down + (total % r->down != 0);
}

/* Four independent sums so the loop pipelines (and vectorizes) without
 * reassociating one floating-point accumulator. */
static double dot(const double *a, const double *b, size_t n)
{
    double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        s0 += a[i] * b[i];
        s1 += a[i + 1] * b[i + 1];
        s2 += a[i + 2] * b[i + 2];
        s3 += a[i + 3] * b[i + 3];
    }
    for (; i < n; i++)
        s0 += a[i] * b[i];
    return (s0 + s1) + (s2 + s3);
}

void kn_resample(const kn_resampler_t *r, const double *in, size_t n_in, double *out)
{
    const size_t n_out = kn_resample_out_len(r, n_in);
    if (!r->taps) {
        if (n_out)
            memmove(out, in, n_in * sizeof *out);
        return;
    }
    const size_t K = r->taps_per_phase;
    /* Output i is sum_j in[j] h[i*down + half_len - j*up]: with
     * t = i*down + half_len, phase p = t mod up and j_hi = t div up, the
     * taps of phase p meet in[j_hi-K+1 .. j_hi]. */
    for (size_t i = 0; i < n_out; i++) {
        const size_t t = i * r->down + r->half_len;
        const double *taps = r->taps + (t % r->up) * K;
        const size_t j_hi = t / r->up;
        if (j_hi + 1 >= K && j_hi < n_in) {
            out[i] = dot(taps, in + (j_hi + 1 - K), K);
            continue;
        }
        /* Near the edges: the signal is zero outside [0, n_in). */
        size_t q_lo = j_hi + 1 >= K ? 0 : K - 1 - j_hi;
        size_t q_end = j_hi < n_in ? K : (j_hi - n_in + 1 > K ? 0 : K - (j_hi - n_in + 1));
        double acc = 0;
        for (size_t q = q_lo; q < q_end; q++)
            acc += taps[q] * in[j_hi + 1 - K + q];
        out[i] = acc;
    }
}
