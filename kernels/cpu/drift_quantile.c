/* drift_quantile.c - PSI on quantile bins of the reference (drift.h,
 * psi_quantile): the edges are computed as numpy computes np.quantile's
 * default ('linear'), so a test can ask numpy for the same bins. */
#include <math.h>

#include "drift_impl.h"

#define SKETCH_SHIFT (32 - KN_DRIFT_SKETCH_BITS)
#define NQ KN_DRIFT_QUANTILE_BINS

/* numpy's _lerp: from the far end when t >= 0.5, so the result is monotone. */
static double lerp(double a, double b, double t)
{
    double d = b - a;
    return t >= 0.5 ? b - d * (1 - t) : a + d * t;
}

/* np.quantile(v, q) of sorted v[n], method 'linear' (alpha = beta = 1),
 * with numpy's own order of operations for the virtual index. */
static double quantile(const float *v, size_t n, double q)
{
    double virt = (double)n * q + (1.0 + q * (1.0 - 1.0 - 1.0)) - 1.0;
    double prev = floor(virt);
    if (prev < 0)
        prev = 0;
    if (prev > (double)(n - 1))
        prev = (double)(n - 1);
    size_t i = (size_t)prev, j = i + 1 < n ? i + 1 : n - 1;
    double t = virt - prev;
    if (virt >= (double)(n - 1))
        return v[n - 1];
    return lerp(v[i], v[j], t);
}

/* Values of sorted v[n] below x. */
static size_t below(const float *v, size_t n, double x)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if ((double)v[mid] < x)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static void psi_from_counts(double *br, double *bc, int nb, double nr, double nc,
                            kn_drift_result_t *o)
{
    for (int i = 0; i < nb; i++) {
        br[i] /= nr;
        bc[i] /= nc;
    }
    kn_drift_fill_zeroes(br, nb);
    kn_drift_fill_zeroes(bc, nb);
    o->psi_quantile = kn_drift_psi_of(br, bc, nb);
    o->n_quantile_bins = nb;
}

static void exact(const kn_drift_col_t *c, kn_drift_result_t *o)
{
    const kn_drift_side_state_t *r = &c->side[KN_DRIFT_REF], *q = &c->side[KN_DRIFT_CUR];
    double edge[NQ + 1];
    int ne = 0;
    for (int k = 1; k < NQ; k++) {
        double e = quantile(r->vals, r->n, (double)k * (1.0 / NQ));
        if (ne == 0 || e != edge[ne - 1])      /* np.unique: ties merge bins */
            edge[ne++] = e;
    }
    /* bin i = [edge[i-1], edge[i]), the first from -inf, the last to +inf */
    double br[NQ + 1], bc[NQ + 1];
    size_t pr = 0, pc = 0;
    for (int i = 0; i <= ne; i++) {
        size_t ar = i < ne ? below(r->vals, r->n, edge[i]) : r->n;
        size_t ac = i < ne ? below(q->vals, q->n, edge[i]) : q->n;
        br[i] = (double)(ar - pr);
        bc[i] = (double)(ac - pc);
        pr = ar;
        pc = ac;
    }
    psi_from_counts(br, bc, ne + 1, (double)r->n, (double)q->n, o);
}

/* On the sketch an edge is the bucket where the reference's cumulative
 * count first reaches the quantile's rank; that bucket and those above it
 * (to the next edge) form a bin. */
static void sketch(const kn_drift_col_t *c, kn_drift_result_t *o)
{
    const kn_drift_side_state_t *r = &c->side[KN_DRIFT_REF], *q = &c->side[KN_DRIFT_CUR];
    float lo_v = r->min < q->min ? r->min : q->min, hi_v = r->max > q->max ? r->max : q->max;
    uint32_t b0 = kn_drift_key(lo_v - c->offset_f) >> SKETCH_SHIFT;
    uint32_t b1 = kn_drift_key(hi_v - c->offset_f) >> SKETCH_SHIFT;
    double br[NQ + 1] = {0}, bc[NQ + 1] = {0};
    const double nr = (double)r->n;
    double cum = 0;
    int bin = 0, k = 1;
    for (uint32_t b = b0; b <= b1; b++) {
        if (!(r->counts[b] | q->counts[b]))
            continue;
        int opened = 0;
        /* this bucket holds the k-th quantile: it opens the next bin */
        while (k < NQ && cum + (double)r->counts[b] >= (double)k / NQ * nr && cum > 0) {
            k++;
            opened = 1;
        }
        bin += opened;
        br[bin] += (double)r->counts[b];
        bc[bin] += (double)q->counts[b];
        cum += (double)r->counts[b];
    }
    psi_from_counts(br, bc, bin + 1, nr, (double)q->n, o);
}

void kn_drift_psi_quantile(const kn_drift_col_t *c, kn_drift_result_t *o)
{
    if (c->kind != KN_DRIFT_NUMERIC || c->side[0].n == 0 || c->side[1].n == 0)
        return;
    if (c->sketched)
        sketch(c, o);
    else
        exact(c, o);
}
