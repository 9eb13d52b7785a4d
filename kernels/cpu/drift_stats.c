/* drift_stats.c - the drift statistics of one column (kernels/drift.h).
 * Every path reduces the column to an ascending list of segments: a
 * distinct value (exact path, class label: lo == hi) or a sketch bucket
 * (lo < hi, values assumed uniform inside), each with its reference and
 * current counts.  KS, Wasserstein, the binnings and the class tests all
 * read that list, so the exact and sketch paths share one implementation. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../../core/kiln_alloc.h"
#include "drift_impl.h"

#define SKETCH_SHIFT (32 - KN_DRIFT_SKETCH_BITS)

typedef struct {
    double lo, hi;
    uint64_t r, c;
} seg_t;

/* ---- segments ------------------------------------------------------------ */

static int segs_exact(kn_drift_col_t *c, seg_t **out, size_t *n_out, kiln_err_t *err)
{
    kn_drift_side_state_t *r = &c->side[KN_DRIFT_REF], *q = &c->side[KN_DRIFT_CUR];
    seg_t *s = kiln_malloc((r->n + q->n) * sizeof *s);   /* r, q sorted by the caller */
    if (!s)
        return kiln_err_set(err, KILN_ENOMEM, "drift: no memory for %zu segments", r->n + q->n);
    size_t i = 0, j = 0, k = 0;
    while (i < r->n || j < q->n) {
        float v = i < r->n && (j >= q->n || r->vals[i] <= q->vals[j]) ? r->vals[i] : q->vals[j];
        seg_t sg = {v, v, 0, 0};
        while (i < r->n && r->vals[i] == v) {
            sg.r++;
            i++;
        }
        while (j < q->n && q->vals[j] == v) {
            sg.c++;
            j++;
        }
        s[k++] = sg;
    }
    *out = s;
    *n_out = k;
    return 0;
}

static int segs_sketch(kn_drift_col_t *c, seg_t **out, size_t *n_out, kiln_err_t *err)
{
    const kn_drift_side_state_t *r = &c->side[KN_DRIFT_REF], *q = &c->side[KN_DRIFT_CUR];
    float lo_v = r->min < q->min ? r->min : q->min, hi_v = r->max > q->max ? r->max : q->max;
    const float off = c->offset_f;
    uint32_t b0 = kn_drift_key(lo_v - off) >> SKETCH_SHIFT;
    uint32_t b1 = kn_drift_key(hi_v - off) >> SKETCH_SHIFT;
    size_t used = 0;
    for (uint32_t b = b0; b <= b1; b++)
        used += (r->counts[b] | q->counts[b]) != 0;
    seg_t *s = kiln_malloc((used ? used : 1) * sizeof *s);
    if (!s)
        return kiln_err_set(err, KILN_ENOMEM, "drift: no memory for %zu sketch segments", used);
    size_t k = 0;
    for (uint32_t b = b0; b <= b1; b++) {
        if (!(r->counts[b] | q->counts[b]))
            continue;
        uint32_t kl = b << SKETCH_SHIFT, kh = kl | ((1u << SKETCH_SHIFT) - 1);
        double lo = (double)off + (double)kn_drift_unkey(kl);
        double hi = (double)off + (double)kn_drift_unkey(kh);
        if (!(lo >= lo_v)) /* also NaN bucket edges past the largest finite key */
            lo = lo_v;
        if (!(hi <= hi_v))
            hi = hi_v;
        if (hi < lo)
            hi = lo;
        s[k++] = (seg_t){lo, hi, r->counts[b], q->counts[b]};
    }
    *out = s;
    *n_out = k;
    return 0;
}

static int segs_class(kn_drift_col_t *c, seg_t **out, size_t *n_out, kiln_err_t *err)
{
    size_t used = 0;
    for (size_t l = 0; l < c->n_labels; l++)
        used += (c->side[0].class_counts[l] | c->side[1].class_counts[l]) != 0;
    seg_t *s = kiln_malloc((used ? used : 1) * sizeof *s);
    if (!s)
        return kiln_err_set(err, KILN_ENOMEM, "drift: no memory for %zu classes", used);
    size_t k = 0;
    for (size_t l = 0; l < c->n_labels; l++) {
        uint64_t a = c->side[0].class_counts[l], b = c->side[1].class_counts[l];
        if (a | b)
            s[k++] = (seg_t){(double)l, (double)l, a, b};
    }
    *out = s;
    *n_out = k;
    return 0;
}

/* ---- binning --------------------------------------------------------------- */

/* Adds each segment's counts to nb bins over edges first + i * (last - first)
 * / nb (numpy.linspace), numpy.histogram's rule (bin i holds edge_i <= x <
 * edge_i+1, the last bin also its right edge); a ranged segment is split
 * by the overlap of its width. */
static void bin_segments(const seg_t *s, size_t n_seg, double first, double last, int nb,
                         double *br, double *bc)
{
    double step = (last - first) / nb, denom = last - first;
    long pt = 0;
    memset(br, 0, (size_t)nb * sizeof *br);
    memset(bc, 0, (size_t)nb * sizeof *bc);
#define EDGE(i) ((i) == nb ? last : (double)(i) * step + first)
    for (size_t k = 0; k < n_seg; k++) {
        double lo = s[k].lo, hi = s[k].hi;
        if (hi <= lo) {         /* segments ascend: the bin only moves up */
            while (pt < nb - 1 && lo >= EDGE(pt + 1))
                pt++;
            br[pt] += (double)s[k].r;
            bc[pt] += (double)s[k].c;
            continue;
        }
        long i = (long)((lo - first) / denom * nb);
        if (i >= nb)
            i = nb - 1;
        if (i < 0)
            i = 0;
        while (i > 0 && lo < EDGE(i))
            i--;
        for (; i < nb; i++) {
            double a = fmax(lo, EDGE(i)), b = fmin(hi, EDGE(i + 1));
            if (i == nb - 1)
                b = hi;
            if (b > a) {
                double f = (b - a) / (hi - lo);
                br[i] += f * (double)s[k].r;
                bc[i] += f * (double)s[k].c;
            }
            if (EDGE(i + 1) >= hi)
                break;
        }
    }
#undef EDGE
}

/* Evidently's zero fill (get_binned_data, feel_zeroes=True). */
void kn_drift_fill_zeroes(double *p, int n)
{
    double mn = INFINITY;
    for (int i = 0; i < n; i++)
        if (p[i] != 0 && p[i] < mn)
            mn = p[i];
    if (!isfinite(mn))
        return;
    double fill = mn <= 0.0001 ? mn / 1e6 : 0.0001;
    for (int i = 0; i < n; i++)
        if (p[i] == 0)
            p[i] = fill;
}

double kn_drift_psi_of(const double *r, const double *c, int n)
{
    double s = 0;
    for (int i = 0; i < n; i++)
        s += (r[i] - c[i]) * log(r[i] / c[i]);
    return s;
}

/* scipy.spatial.distance.jensenshannon(p, q), natural log. */
static double js_of(const double *p0, const double *q0, int n)
{
    double sp = 0, sq = 0, js = 0;
    for (int i = 0; i < n; i++) {
        sp += p0[i];
        sq += q0[i];
    }
    for (int i = 0; i < n; i++) {
        double p = p0[i] / sp, q = q0[i] / sq, m = (p + q) / 2;
        if (p > 0)
            js += p * log(p / m);
        if (q > 0)
            js += q * log(q / m);
    }
    return sqrt(js / 2);
}

/* PSI and JS on shares br/nr, bc/nc (the arrays are overwritten). */
void kn_drift_psi_js(double *br, double *bc, int nb, double nr, double nc, kn_drift_result_t *o)
{
    for (int i = 0; i < nb; i++) {
        br[i] /= nr;
        bc[i] /= nc;
    }
    o->jensenshannon = js_of(br, bc, nb);
    kn_drift_fill_zeroes(br, nb);
    kn_drift_fill_zeroes(bc, nb);
    o->psi = kn_drift_psi_of(br, bc, nb);
    o->n_bins = nb;
}

/* ---- class tests ------------------------------------------------------------ */

static void class_tests(const seg_t *s, size_t k, double nr, double nc, kn_drift_result_t *o)
{
    /* Evidently chisquare: cur counts against ref counts * nc/nr, K-1 dof */
    double stat = 0, knorm = nc / nr;
    for (size_t i = 0; i < k; i++) {
        double e = (double)s[i].r * knorm, d = (double)s[i].c - e;
        stat += e > 0 ? d * d / e : (d != 0 ? INFINITY : NAN);
    }
    o->chisquare_stat = stat;
    o->chisquare_p = k >= 2 ? kn_drift_chi2_sf(stat, (double)(k - 1)) : NAN;
    /* chi2_contingency on the 2 x K table, Yates' correction at 1 dof */
    double tot = nr + nc, cs = 0;
    o->chi2_dof = (int)(k ? k - 1 : 0);
    for (size_t i = 0; i < k && k >= 2; i++) {
        double col = (double)(s[i].r + s[i].c);
        double obs[2] = {(double)s[i].r, (double)s[i].c}, rows[2] = {nr, nc};
        for (int j = 0; j < 2; j++) {
            double e = rows[j] * col / tot, d = obs[j] - e;
            if (k == 2) {
                double mag = fmin(0.5, fabs(d));
                d = d > 0 ? d - mag : d + mag;
            }
            cs += d * d / e;
        }
    }
    o->chi2_stat = cs;
    o->chi2_p = k >= 2 ? kn_drift_chi2_sf(cs, (double)(k - 1)) : 1.0;
    /* Evidently z: share of the smallest key on each side */
    if (k == 1) {
        o->z_p = 1.0;
    } else {
        double p1 = 1.0 - (double)s[0].r / nr, p2 = 1.0 - (double)s[0].c / nc;
        double pp = (p1 * nr + p2 * nc) / (nr + nc);
        double z = (p1 - p2) / sqrt(pp * (1 - pp) * (1.0 / nr + 1.0 / nc));
        o->z_p = 2 * (1 - 0.5 * erfc(-fabs(z) / M_SQRT2));
    }
}

/* ---- finish ----------------------------------------------------------------- */

static kn_drift_method_t auto_method(kn_drift_kind_t kind, size_t n_ref, size_t u)
{
    if (n_ref <= 1000) {
        if (u <= 2)
            return KN_DRIFT_ZTEST;
        if (kind == KN_DRIFT_CLASS || u <= 5)
            return KN_DRIFT_CHISQUARE;
        return KN_DRIFT_KS;
    }
    if (kind == KN_DRIFT_CLASS || u <= 5)
        return KN_DRIFT_JENSENSHANNON;
    return KN_DRIFT_WASSERSTEIN_NORM;
}

double kn_drift_default_threshold(kn_drift_method_t m)
{
    switch (m) {
    case KN_DRIFT_KS:
    case KN_DRIFT_CHISQUARE:
    case KN_DRIFT_CHI2_CONTINGENCY:
    case KN_DRIFT_ZTEST:
        return 0.05;
    default:
        return 0.1;
    }
}

static const char *const method_names[] = {"auto", "ks", "wasserstein", "psi", "jensenshannon",
                                           "chisquare", "chi2_contingency", "z", "psi_quantile"};

const char *kn_drift_method_name(kn_drift_method_t m)
{
    return (unsigned)m < sizeof method_names / sizeof *method_names ? method_names[m] : "unknown";
}

int kn_drift_method_parse(const char *name, kn_drift_method_t *out, kiln_err_t *err)
{
    for (size_t i = 0; name && i < sizeof method_names / sizeof *method_names; i++)
        if (strcmp(name, method_names[i]) == 0) {
            *out = (kn_drift_method_t)i;
            return 0;
        }
    return kiln_err_at(err, KILN_EINVAL, "method",
                       "drift: unknown method '%s' (auto, ks, wasserstein, psi, jensenshannon, "
                       "chisquare, chi2_contingency, z, psi_quantile)", name ? name : "(null)");
}

static double integral_abs_linear(double d0, double d1)
{
    /* mean of |d| over a segment where d goes linearly from d0 to d1 */
    if ((d0 >= 0) == (d1 >= 0))
        return fabs(d0 + d1) / 2;
    double a = fabs(d0), b = fabs(d1);
    return (a * a + b * b) / (2 * (a + b));
}

/* Every statistic from the segment list (class columns, the sketch, exact
 * columns with <= 20 distinct reference values); o->n_unique = segments. */
static int stats_from_segments(kn_drift_col_t *c, kn_drift_result_t *o, kiln_err_t *err)
{
    seg_t *s = NULL;
    size_t k = 0;
    int rc = c->kind == KN_DRIFT_CLASS ? segs_class(c, &s, &k, err)
             : c->sketched             ? segs_sketch(c, &s, &k, err)
                                       : segs_exact(c, &s, &k, err);
    if (rc < 0)
        return rc;
    o->n_unique = k;
    const size_t n_ref = c->side[0].n, n_cur = c->side[1].n;
    const double nr = (double)n_ref, nc = (double)n_cur;
    size_t ref_unique = 0;
    for (size_t i = 0; i < k; i++)
        ref_unique += s[i].r != 0;

    double *br = kiln_malloc((k + KN_DRIFT_HIST_BINS + 64) * 2 * sizeof *br);
    if (!br) {
        kiln_free(s);
        return kiln_err_set(err, KILN_ENOMEM, "drift: no memory for %zu bins", k);
    }
    double *bc = br + k + KN_DRIFT_HIST_BINS + 64;

    if (c->kind == KN_DRIFT_NUMERIC) {
        /* KS and W in one walk; bounds from the ranged (sketch) segments */
        double fr = 0, fc = 0, dmax = 0, w = 0, ks_b = 0, w_b = 0, prev = s[0].lo, d0 = 0;
        for (size_t i = 0; i < k; i++) {
            w += (s[i].lo - prev) * fabs(d0);
            fr += (double)s[i].r;
            fc += (double)s[i].c;
            double d1 = fr / nr - fc / nc;      /* as scipy: count / n, then the difference */
            double width = s[i].hi - s[i].lo;
            if (width > 0) {
                double pr = (double)s[i].r / nr, pc = (double)s[i].c / nc;
                w += width * integral_abs_linear(d0, d1);
                w_b += width * (pr + pc);
                ks_b = pr > ks_b ? pr : ks_b;
                ks_b = pc > ks_b ? pc : ks_b;
            }
            double ad = fabs(d1);
            dmax = ad > dmax ? ad : dmax;
            prev = s[i].hi;
            d0 = d1;
        }
        o->ks_stat = dmax;
        o->ks_p = kn_drift_ks_pvalue(n_ref, n_cur, dmax, &o->ks_exact);
        o->ks_error_bound = ks_b;
        o->wasserstein = w;
        o->wasserstein_error_bound = w_b;
        const kn_drift_side_state_t *r = &c->side[KN_DRIFT_REF];
        double var;
        if (!c->sketched) {     /* two passes over the exact reference */
            double m = 0, ss = 0;
            for (size_t i = 0; i < n_ref; i++)
                m += r->vals[i];
            m /= nr;
            for (size_t i = 0; i < n_ref; i++)
                ss += ((double)r->vals[i] - m) * ((double)r->vals[i] - m);
            var = ss / nr;
        } else {
            double m = r->sum / nr;
            var = fmax(r->sumsq / nr - m * m, 0);
        }
        o->ref_std = sqrt(var);
        o->wasserstein_norm = w / fmax(o->ref_std, 0.001);

        double lo = fmin(c->side[0].min, c->side[1].min), hi = fmax(c->side[0].max, c->side[1].max);
        if (ref_unique > 20) {  /* numpy 'sturges' over ref and cur together */
            double width = (hi - lo) / (log2(nr + nc) + 1.0);
            int nb = (int)ceil((hi - lo) / width);
            if (nb < 1)
                nb = 1;
            if ((size_t)nb > k + KN_DRIFT_HIST_BINS + 64)
                nb = (int)(k + KN_DRIFT_HIST_BINS + 64);
            bin_segments(s, k, lo, hi, nb, br, bc);
            kn_drift_psi_js(br, bc, nb, nr, nc, o);
        }
        double plo = lo == hi ? lo - 0.5 : lo, phi = lo == hi ? hi + 0.5 : hi;
        o->hist_lo = plo;
        o->hist_hi = phi;
        double hr[KN_DRIFT_HIST_BINS], hc[KN_DRIFT_HIST_BINS];
        bin_segments(s, k, plo, phi, KN_DRIFT_HIST_BINS, hr, hc);
        for (int i = 0; i < KN_DRIFT_HIST_BINS; i++) {
            o->hist_ref[i] = (float)(hr[i] / nr);
            o->hist_cur[i] = (float)(hc[i] / nc);
        }
    } else {
        o->hist_lo = s[0].lo;
        o->hist_hi = s[0].lo + KN_DRIFT_HIST_BINS - 1;
        for (size_t i = 0; i < k; i++) {
            double b = s[i].lo - s[0].lo;
            if (b < KN_DRIFT_HIST_BINS) {
                o->hist_ref[(int)b] = (float)((double)s[i].r / nr);
                o->hist_cur[(int)b] = (float)((double)s[i].c / nc);
            }
        }
    }
    if (c->kind == KN_DRIFT_CLASS || ref_unique <= 20) {   /* one bin per value */
        for (size_t i = 0; i < k; i++) {
            br[i] = (double)s[i].r;
            bc[i] = (double)s[i].c;
        }
        kn_drift_psi_js(br, bc, (int)k, nr, nc, o);
    }
    class_tests(s, k, nr, nc, o);
    kiln_free(br);
    kiln_free(s);
    return 0;
}

int kn_drift_finish(kn_drift_col_t *c, kn_drift_method_t method, double threshold,
                    kn_drift_result_t *out, kiln_err_t *err)
{
    if (!c || !out)
        return kiln_err_set(err, KILN_EINVAL, "drift: finish with a NULL column or result");
    if ((unsigned)method > KN_DRIFT_PSI_QUANTILE)
        return kiln_err_set(err, KILN_EINVAL, "drift: unknown method %d", (int)method);
    if (c->kind == KN_DRIFT_CLASS && (method == KN_DRIFT_KS || method == KN_DRIFT_WASSERSTEIN_NORM ||
                                      method == KN_DRIFT_PSI_QUANTILE))
        return kiln_err_at(err, KILN_EINVAL, "method",
                           "drift: method %s needs a numeric column, not class labels",
                           kn_drift_method_name(method));
    const size_t n_ref = c->side[0].n, n_cur = c->side[1].n;
    if (n_ref == 0 || n_cur == 0)
        return kiln_err_at(err, KILN_EINVAL, n_ref ? "current" : "reference",
                           "drift: the %s sample is empty", n_ref ? "current" : "reference");
    const double nan = NAN;
    kn_drift_result_t res, *o = &res;  /* *out is written only on success */
    memset(&res, 0, sizeof res);
    res.n_ref = n_ref;
    res.n_cur = n_cur;
    res.sketched = c->sketched;
    res.ks_stat = res.ks_p = res.wasserstein = res.wasserstein_norm = res.ref_std = nan;
    res.psi = res.jensenshannon = res.chisquare_stat = res.chisquare_p = nan;
    res.chi2_stat = res.chi2_p = res.z_p = res.psi_quantile = nan;
    int rc = 0;
    if (c->kind == KN_DRIFT_NUMERIC && !c->sketched)
        rc = kn_drift_exact_stats(c, &res, err);    /* 0: sorted, needs the segments */
    if (rc == 0)
        rc = stats_from_segments(c, &res, err);
    if (rc < 0)
        return rc;
    if (c->kind == KN_DRIFT_NUMERIC)
        kn_drift_psi_quantile(c, &res);   /* the exact samples are sorted by now */
    const size_t k = res.n_unique;
    o->method = method == KN_DRIFT_AUTO ? auto_method(c->kind, n_ref, k) : method;
    o->threshold = isnan(threshold) ? kn_drift_default_threshold(o->method) : threshold;
    o->p_value = nan;
    switch (o->method) {
    case KN_DRIFT_KS:
        o->score = o->p_value = o->ks_p;
        o->drifted = o->score <= o->threshold;
        break;
    case KN_DRIFT_CHISQUARE:
        o->score = o->p_value = o->chisquare_p;
        o->drifted = o->score < o->threshold;
        break;
    case KN_DRIFT_CHI2_CONTINGENCY:
        o->score = o->p_value = o->chi2_p;
        o->drifted = o->score < o->threshold;
        break;
    case KN_DRIFT_ZTEST:
        o->score = o->p_value = o->z_p;
        o->drifted = o->score < o->threshold;
        break;
    case KN_DRIFT_WASSERSTEIN_NORM:
        o->score = o->wasserstein_norm;
        o->drifted = o->score >= o->threshold;
        break;
    case KN_DRIFT_PSI_QUANTILE:
        o->score = o->psi_quantile;
        o->drifted = o->score >= o->threshold;
        break;
    case KN_DRIFT_PSI:
        o->score = o->psi;
        o->drifted = o->score >= o->threshold;
        break;
    default:
        o->score = o->jensenshannon;
        o->drifted = o->score >= o->threshold;
        break;
    }
    *out = res;
    return 0;
}
