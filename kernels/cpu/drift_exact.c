/* drift_exact.c - the exact path of the numeric drift statistics
 * (kernels/drift.h): the radix sort of the held values and, when the
 * reference has more than 20 distinct values, every statistic straight from
 * the two sorted samples: one branch-free merge for KS, Wasserstein, the
 * distinct count and the per-value class tests; binary searches on the bin
 * edges for PSI/JS and the plot (O(bins log n), not O(n)).  Columns with at
 * most 20 distinct reference values (one bin per value) take the segment
 * list of drift_stats.c instead. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../../core/kiln_alloc.h"
#include "drift_impl.h"

/* ---- sorting ------------------------------------------------------------- */

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* float bits <-> order-preserving key, branch-free (negative: all bits
 * flipped; positive: the sign bit set) */
static inline uint32_t to_key(uint32_t u) { return u ^ ((0u - (u >> 31)) | 0x80000000u); }
static inline uint32_t from_key(uint32_t k) { return k ^ ((0u - ((~k) >> 31)) | 0x80000000u); }

enum { DIGITS = 3 };
static const int digit_shift[DIGITS] = {0, 11, 22};
static const uint32_t digit_mask[DIGITS] = {2047u, 2047u, 1023u};

/* LSD radix sort on the order-preserving keys, 11 + 11 + 10 bits: one read
 * counts all three digits, a pass whose digit is the same for every value
 * is skipped, the first pass keys the floats and the last one unkeys them
 * as it scatters.  -0.0 sorts before +0.0 (they compare equal: a valid
 * order). */
void kn_drift_sort_floats(float *x, size_t n, float *tmp)
{
    if (n < 512 || n > UINT32_MAX) {
        qsort(x, n, sizeof *x, cmp_float);
        return;
    }
    uint32_t *a = (uint32_t *)(void *)x, *b = (uint32_t *)(void *)tmp;
    /* The top digit (sign, exponent) takes few values: it is counted in 4
     * copies so that repeated increments of one counter do not serialize. */
    uint32_t h0[2048] = {0}, h1[2048] = {0}, h2[4][1024] = {{0}};
    size_t i = 0;
    for (; i + 4 <= n; i += 4)
        for (int l = 0; l < 4; l++) {
            uint32_t k = to_key(a[i + l]);
            h0[k & 2047u]++;
            h1[(k >> 11) & 2047u]++;
            h2[l][k >> 22]++;
        }
    for (; i < n; i++) {
        uint32_t k = to_key(a[i]);
        h0[k & 2047u]++;
        h1[(k >> 11) & 2047u]++;
        h2[0][k >> 22]++;
    }
    for (int d = 0; d < 1024; d++)
        h2[0][d] += h2[1][d] + h2[2][d] + h2[3][d];
    uint32_t *hist[DIGITS] = {h0, h1, h2[0]};
    int active[DIGITS], n_active = 0;
    const uint32_t k0 = to_key(a[0]);
    for (int p = 0; p < DIGITS; p++)
        if (hist[p][(k0 >> digit_shift[p]) & digit_mask[p]] != n)
            active[n_active++] = p;
    uint32_t *src = a, *dst = b;
    for (int q = 0; q < n_active; q++) {
        const int p = active[q], sh = digit_shift[p];
        const uint32_t mask = digit_mask[p];
        uint32_t *off = hist[p], sum = 0;
        for (uint32_t d = 0; d <= mask; d++) {
            uint32_t h = off[d];
            off[d] = sum;
            sum += h;
        }
        const int first = q == 0, last = q == n_active - 1;
        if (first && last) {            /* one pass: floats in, floats out */
            for (size_t t = 0; t < n; t++)
                dst[off[(to_key(src[t]) >> sh) & mask]++] = src[t];
        } else if (first) {
            for (size_t t = 0; t < n; t++) {
                uint32_t k = to_key(src[t]);
                dst[off[(k >> sh) & mask]++] = k;
            }
        } else if (last) {
            for (size_t t = 0; t < n; t++) {
                uint32_t k = src[t];
                dst[off[(k >> sh) & mask]++] = from_key(k);
            }
        } else {
            for (size_t t = 0; t < n; t++) {
                uint32_t k = src[t];
                dst[off[(k >> sh) & mask]++] = k;
            }
        }
        uint32_t *sw = src;
        src = dst;
        dst = sw;
    }
    if (src != a)
        memcpy(a, src, n * sizeof *a);
}

/* ---- the merge ------------------------------------------------------------- */

/* A group is the run of one distinct value in ref and cur together, with
 * its counts (r, c).  Continuous data makes almost every group (1, 0) or
 * (0, 1); those are counted at the end (their terms times their number),
 * the others ("odd": ties) are summed as the walk meets them. */
typedef struct {
    double knorm, nr, nc, tot;
    double chisq, cont;         /* Evidently chisquare and chi2_contingency terms */
    uint64_t odd_r, odd_c;      /* counts in the odd groups */
    size_t n_odd;
} groups_t;

/* One group's terms, as class_tests in drift_stats.c forms them (more than
 * 2 groups here: no Yates correction). */
static void group_terms(const groups_t *g, double r, double c, double *chisq, double *cont)
{
    double e = r * g->knorm, d = c - e;
    *chisq = e > 0 ? d * d / e : (d != 0 ? INFINITY : NAN);
    double col = r + c, obs[2] = {r, c}, rows[2] = {g->nr, g->nc}, s = 0;
    for (int j = 0; j < 2; j++) {
        double ej = rows[j] * col / g->tot, dj = obs[j] - ej;
        s += dj * dj / ej;
    }
    *cont = s;
}

static void odd_group(groups_t *g, int64_t r, int64_t c)
{
    double a, b;
    group_terms(g, (double)r, (double)c, &a, &b);
    g->chisq += a;
    g->cont += b;
    g->odd_r += (uint64_t)r;
    g->odd_c += (uint64_t)c;
    g->n_odd++;
}

typedef struct {
    int64_t d_num;              /* max |i n_cur - j n_ref| over group ends */
    double w_num;               /* sum of gap * |i n_cur - j n_ref| */
    size_t groups;
} merged_t;

/* Walks the union of a[na] and b[nb] (ascending) in order with no
 * data-dependent branch but the rare tie.  Before element v, i reference and j current
 * values have been taken; when v is above the value before it, that
 * value's group is complete and i/n_ref - j/n_cur is the CDF difference
 * there (scipy's ks_2samp D is the max of its absolute value,
 * wasserstein_distance sums it times the gap to the next value).  Kept in
 * integers: num = i n_cur - j n_ref is exact (n_ref n_cur < 2^62).
 *
 * Each step waits on the load its comparison chose, so the walk runs from
 * both ends at once, two independent chains: the front takes the first
 * half in the order (value, reference before current), the back the rest
 * in reverse; with i, j taken from the back, the CDF difference below the
 * back's boundary is (n_ref - i)/n_ref - (n_cur - j)/n_cur, of magnitude
 * |i n_cur - j n_ref| again.  The selects are bit masks: a compiler turns
 * ternaries on floats into branches, which mispredict half the time. */
typedef struct {
    int64_t i, j, num, dm;
    double prev, w;
    size_t ends;                /* groups completed */
    int64_t last_ref;           /* the previous value came from the reference */
    int64_t in_tie, il, jl;     /* the current group has ties; i, j when it began */
} walk_t;

/* The tie bookkeeping runs only on a tie (gap 0) or at the end of a tied
 * group, both rare in continuous data: a well-predicted branch. */
#define WALK_STEP(st, v_, gap_of, from_ref)                                                      \
    do {                                                                                         \
        const double v = (double)(v_);    /* evaluated once, before i, j move */                 \
        const int64_t an_ = (st).num < 0 ? -(st).num : (st).num;                                \
        const double gap_ = gap_of;                                                              \
        (st).w += gap_ * (double)an_;                                                            \
        const int64_t end_ = gap_ > 0;                                                           \
        (st).ends += (size_t)end_;                                                               \
        const int64_t cand_ = an_ & -end_;                                                       \
        (st).dm = cand_ > (st).dm ? cand_ : (st).dm;                                             \
        if ((1 - end_) | (st).in_tie) {                                                          \
            if (!end_) {                                                                         \
                if (!(st).in_tie) {                                                              \
                    (st).il = (st).i - (st).last_ref;                                            \
                    (st).jl = (st).j - (1 - (st).last_ref);                                      \
                    (st).in_tie = 1;                                                             \
                }                                                                                \
            } else {                                                                             \
                odd_group(g, (st).i - (st).il, (st).j - (st).jl);                                \
                (st).in_tie = 0;                                                                 \
            }                                                                                    \
        }                                                                                        \
        (st).i += (from_ref);                                                                    \
        (st).j += 1 - (from_ref);                                                                \
        (st).num += ((NC + NR) & -(int64_t)(from_ref)) - NR;                                     \
        (st).prev = v;                                                                           \
        (st).last_ref = (from_ref);                                                              \
    } while (0)
#define FRONT(x, from_ref) WALK_STEP(f, x, v - f.prev, from_ref)
#define BACK(x, from_ref) WALK_STEP(bk, x, bk.prev - v, from_ref)

/* y, or x where take_x, by a mask */
static inline float pick(uint32_t xb, uint32_t yb, int64_t take_x)
{
    uint32_t vb = yb ^ ((xb ^ yb) & (0u - (uint32_t)take_x));
    float v;
    memcpy(&v, &vb, sizeof v);
    return v;
}

static inline int64_t le_bits(uint32_t xb, uint32_t yb)
{
    float x, y;
    memcpy(&x, &xb, sizeof x);
    memcpy(&y, &yb, sizeof y);
    return x <= y;
}

/* A walk that has taken its first value (from the reference when ref). */
static walk_t walk_start(float v, int64_t ref, int64_t NR, int64_t NC)
{
    walk_t w = {.i = ref, .j = 1 - ref, .num = ref ? NC : -NR, .prev = v, .last_ref = ref};
    return w;
}

/* The walk's current group: (r, c) counts; 1 when it has ties. */
static int64_t open_group(const walk_t *w, int64_t *r, int64_t *c)
{
    *r = w->in_tie ? w->i - w->il : w->last_ref;
    *c = w->in_tie ? w->j - w->jl : 1 - w->last_ref;
    return w->in_tie;
}

static void merge_walk(const float *a, size_t na, const float *b, size_t nb, merged_t *m,
                       groups_t *g)
{
    const int64_t NR = (int64_t)na, NC = (int64_t)nb;
    const uint32_t *ab = (const uint32_t *)(const void *)a, *bb = (const uint32_t *)(const void *)b;
    const size_t n_front = (na + nb) / 2, n_back = na + nb - n_front;   /* both >= 1 */
    walk_t f = walk_start(a[0] <= b[0] ? a[0] : b[0], a[0] <= b[0], NR, NC);
    walk_t bk = walk_start(a[na - 1] > b[nb - 1] ? a[na - 1] : b[nb - 1], a[na - 1] > b[nb - 1],
                           NR, NC);
    /* neither walk can run out of a side within min(n_front, na, nb) steps */
    size_t safe = n_front < na ? n_front : na, tf = 1, tb;
    safe = safe < nb ? safe : nb;
    for (; tf < safe; tf++) {
        const uint32_t xf = ab[f.i], yf = bb[f.j];
        const uint32_t xb = ab[NR - 1 - bk.i], yb = bb[NC - 1 - bk.j];
        const int64_t ref_f = le_bits(xf, yf), ref_b = 1 - le_bits(xb, yb);   /* back: x > y */
        const float vf = pick(xf, yf, ref_f), vb = pick(xb, yb, ref_b);
        FRONT(vf, ref_f);
        BACK(vb, ref_b);
    }
    for (tb = tf; tf < n_front && f.i < NR && f.j < NC; tf++) {
        const int64_t ref_f = le_bits(ab[f.i], bb[f.j]);
        FRONT(pick(ab[f.i], bb[f.j], ref_f), ref_f);
    }
    for (; tf < n_front && f.i < NR; tf++)
        FRONT(a[f.i], 1);
    for (; tf < n_front && f.j < NC; tf++)
        FRONT(b[f.j], 0);
    for (; tb < n_back && bk.i < NR && bk.j < NC; tb++) {
        const uint32_t xb = ab[NR - 1 - bk.i], yb = bb[NC - 1 - bk.j];
        const int64_t ref_b = 1 - le_bits(xb, yb);
        BACK(pick(xb, yb, ref_b), ref_b);
    }
    for (; tb < n_back && bk.i < NR; tb++)
        BACK(a[NR - 1 - bk.i], 1);
    for (; tb < n_back && bk.j < NC; tb++)
        BACK(b[NC - 1 - bk.j], 0);
    /* the junction (f.i + bk.i == na, f.j + bk.j == nb): one group across
     * it, or a boundary between the front's last value and the back's */
    int64_t fr, fc, br, bc;
    int64_t f_tie = open_group(&f, &fr, &fc), b_tie = open_group(&bk, &br, &bc);
    m->groups = f.ends + bk.ends + 1;
    m->w_num = f.w + bk.w;
    m->d_num = f.dm > bk.dm ? f.dm : bk.dm;
    if (f.prev == bk.prev) {
        odd_group(g, fr + br, fc + bc);
    } else {
        const int64_t an = f.num < 0 ? -f.num : f.num;
        m->w_num += (bk.prev - f.prev) * (double)an;
        m->d_num = an > m->d_num ? an : m->d_num;
        m->groups++;
        if (f_tie)
            odd_group(g, fr, fc);
        if (b_tie)
            odd_group(g, br, bc);
    }
}
#undef FRONT
#undef BACK
#undef WALK_STEP

/* ---- binning from sorted samples -------------------------------------------- */

/* Number of x[0..n) (ascending) with (double)x < e. */
static size_t count_below(const float *x, size_t n, double e)
{
    size_t lo = 0, len = n;
    while (len > 0) {
        size_t half = len / 2;
        if ((double)x[lo + half] < e) {
            lo += half + 1;
            len -= half + 1;
        } else {
            len = half;
        }
    }
    return lo;
}

/* bin_segments of drift_stats.c for distinct values: counts in nb bins over
 * edges first + i (last - first) / nb, a value v in the last bin whose edge
 * is <= v (numpy.histogram's rule), found by binary search per edge. */
static void bin_sorted(const float *a, size_t na, const float *b, size_t nb_vals, double first,
                       double last, int nb, double *br, double *bc)
{
    double step = (last - first) / nb;
    size_t pr = 0, pc = 0;
    for (int i = 0; i < nb; i++) {
        size_t cr = na, cc = nb_vals;
        if (i + 1 < nb) {
            double e = (double)(i + 1) * step + first;
            cr = count_below(a, na, e);
            cc = count_below(b, nb_vals, e);
        }
        br[i] = (double)(cr - pr);
        bc[i] = (double)(cc - pc);
        pr = cr;
        pc = cc;
    }
}

/* np.std(x) (ddof 0), two passes, 8 running sums (as numpy's pairwise sum
 * unrolls by 8) so that the adds pipeline. */
static double std_of(const float *x, size_t n)
{
    double acc[8] = {0};
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int l = 0; l < 8; l++)
            acc[l] += x[i + l];
    for (; i < n; i++)
        acc[0] += x[i];
    double m = (((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7])))
               / (double)n;
    double ss[8] = {0};
    for (i = 0; i + 8 <= n; i += 8)
        for (int l = 0; l < 8; l++) {
            double d = (double)x[i + l] - m;
            ss[l] += d * d;
        }
    for (; i < n; i++)
        ss[0] += ((double)x[i] - m) * ((double)x[i] - m);
    double s = ((ss[0] + ss[1]) + (ss[2] + ss[3])) + ((ss[4] + ss[5]) + (ss[6] + ss[7]));
    return sqrt(s / (double)n);
}

/* More than 20 distinct values in ascending x[n]? */
static int over_20_distinct(const float *x, size_t n)
{
    size_t distinct = 1;
    for (size_t i0 = 1; i0 < n; i0 += 4096) {
        size_t end = n - i0 < 4096 ? n : i0 + 4096;
        for (size_t i = i0; i < end; i++)
            distinct += x[i] != x[i - 1];
        if (distinct > 20)
            return 1;
    }
    return 0;
}

/* ---- the exact path ------------------------------------------------------------ */

int kn_drift_exact_stats(kn_drift_col_t *c, kn_drift_result_t *o, kiln_err_t *err)
{
    kn_drift_side_state_t *r = &c->side[KN_DRIFT_REF], *q = &c->side[KN_DRIFT_CUR];
    const size_t na = r->n, nb = q->n;
    size_t big = na > nb ? na : nb;
    float *tmp = kiln_malloc((big ? big : 1) * sizeof *tmp);
    if (!tmp)
        return kiln_err_set(err, KILN_ENOMEM, "drift: no memory to sort %zu values", na + nb);
    kn_drift_sort_floats(r->vals, na, tmp);
    kn_drift_sort_floats(q->vals, nb, tmp);
    kiln_free(tmp);
    if (!over_20_distinct(r->vals, na) || (double)na * (double)nb >= 0x1p62)
        return 0;

    const float *a = r->vals, *b = q->vals;
    const double nr = (double)na, nc = (double)nb;
    groups_t g = {.knorm = nc / nr, .nr = nr, .nc = nc, .tot = nr + nc};
    merged_t m;
    merge_walk(a, na, b, nb, &m, &g);
    const size_t k = m.groups;
    o->n_unique = k;

    o->ks_stat = (double)m.d_num / (nr * nc);
    o->ks_p = kn_drift_ks_pvalue(na, nb, o->ks_stat, &o->ks_exact);
    o->ks_error_bound = 0;
    o->wasserstein = m.w_num / (nr * nc);
    o->wasserstein_error_bound = 0;
    o->ref_std = std_of(a, na);
    o->wasserstein_norm = o->wasserstein / fmax(o->ref_std, 0.001);

    /* PSI/JS: numpy 'sturges' bins over ref and cur together (ref has > 20
     * distinct values, so hi > lo) */
    double lo = fmin(r->min, q->min), hi = fmax(r->max, q->max);
    double width = (hi - lo) / (log2(nr + nc) + 1.0);
    int n_bins = (int)ceil((hi - lo) / width);
    if (n_bins < 1)
        n_bins = 1;
    if ((size_t)n_bins > k + KN_DRIFT_HIST_BINS + 64)
        n_bins = (int)(k + KN_DRIFT_HIST_BINS + 64);
    double *br = kiln_malloc((size_t)n_bins * 2 * sizeof *br);
    if (!br)
        return kiln_err_set(err, KILN_ENOMEM, "drift: no memory for %d bins", n_bins);
    bin_sorted(a, na, b, nb, lo, hi, n_bins, br, br + n_bins);
    kn_drift_psi_js(br, br + n_bins, n_bins, nr, nc, o);
    kiln_free(br);
    o->hist_lo = lo;
    o->hist_hi = hi;
    double hr[KN_DRIFT_HIST_BINS], hc[KN_DRIFT_HIST_BINS];
    bin_sorted(a, na, b, nb, lo, hi, KN_DRIFT_HIST_BINS, hr, hc);
    for (int i = 0; i < KN_DRIFT_HIST_BINS; i++) {
        o->hist_ref[i] = (float)(hr[i] / nr);
        o->hist_cur[i] = (float)(hc[i] / nc);
    }

    /* class tests over the k > 20 groups: the odd ones were summed in the
     * walk, the (1, 0) and (0, 1) ones are counted from what is left */
    double t10[2], t01[2];
    group_terms(&g, 1, 0, &t10[0], &t10[1]);
    group_terms(&g, 0, 1, &t01[0], &t01[1]);
    double n10 = (double)(na - g.odd_r), n01 = (double)(nb - g.odd_c);
    o->chisquare_stat = g.chisq + (n10 > 0 ? n10 * t10[0] : 0) + (n01 > 0 ? n01 * t01[0] : 0);
    o->chisquare_p = kn_drift_chi2_sf(o->chisquare_stat, (double)(k - 1));
    o->chi2_dof = (int)(k - 1);
    o->chi2_stat = g.cont + n10 * t10[1] + n01 * t01[1];
    o->chi2_p = kn_drift_chi2_sf(o->chi2_stat, (double)(k - 1));
    /* Evidently z: the share of the smallest value on each side */
    const float v0 = a[0] < b[0] ? a[0] : b[0];
    size_t r0 = 0, c0 = 0;
    while (r0 < na && a[r0] == v0)
        r0++;
    while (c0 < nb && b[c0] == v0)
        c0++;
    double p1 = 1.0 - (double)r0 / nr, p2 = 1.0 - (double)c0 / nc;
    double pp = (p1 * nr + p2 * nc) / (nr + nc);
    double z = (p1 - p2) / sqrt(pp * (1 - pp) * (1.0 / nr + 1.0 / nc));
    o->z_p = 2 * (1 - 0.5 * erfc(-fabs(z) / M_SQRT2));
    return 1;
}
