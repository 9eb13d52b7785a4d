/* rolling.c - rolling mean and population std over the last k values of one
 * feature of one asset (pandas rolling(k, min_periods=1), ddof=0).  Each push
 * recomputes both from the ring in two passes: k is small, and this never
 * drifts the way a running sum/sum-of-squares update does. */
#include "../kernels.h"

#include <assert.h>
#include <math.h>
#include <string.h>

#include "../../core/kiln_alloc.h"

int kn_rolling_init(kn_rolling_t *r, size_t k, kiln_err_t *err)
{
    memset(r, 0, sizeof *r);
    if (k == 0)
        return kiln_err_set(err, KILN_EINVAL,
                            "rolling window length k must be at least 1, got 0");
    if (k > (size_t)1 << 24)
        return kiln_err_set(err, KILN_EINVAL,
                            "rolling window length k = %zu is too large (at most %zu)",
                            k, (size_t)1 << 24);
    r->values = kiln_calloc(k, sizeof *r->values);
    if (!r->values)
        return kiln_err_set(err, KILN_ENOMEM,
                            "no memory for a rolling window of %zu values", k);
    r->k = k;
    return 0;
}

void kn_rolling_free(kn_rolling_t *r)
{
    if (!r)
        return;
    kiln_free(r->values);
    memset(r, 0, sizeof *r);
}

void kn_rolling_push(kn_rolling_t *r, double v, double *mean, double *std)
{
    assert(r->values && r->k > 0);
    r->values[r->head] = v;
    r->head = r->head + 1 == r->k ? 0 : r->head + 1;
    if (r->count < r->k)
        r->count++;
    /* While the ring fills, the values sit in slots 0..count-1; once full,
     * in all k slots: either way the first `count` slots. */
    const size_t count = r->count;
    double sum = 0, lo = r->values[0], hi = r->values[0];
    for (size_t i = 0; i < count; i++) {
        sum += r->values[i];
        lo = r->values[i] < lo ? r->values[i] : lo;
        hi = r->values[i] > hi ? r->values[i] : hi;
    }
    /* Equal values: the sum may round, but the answer is exactly (v, 0). */
    const double m = lo == hi ? lo : sum / (double)count;
    double ss = 0;
    for (size_t i = 0; lo != hi && i < count; i++) {
        double d = r->values[i] - m;
        ss += d * d;
    }
    if (mean)
        *mean = m;
    if (std)
        *std = sqrt(ss / (double)count);
}
