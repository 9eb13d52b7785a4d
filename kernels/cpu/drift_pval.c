/* drift_pval.c - p-values of the drift tests (kernels/drift.h): the
 * two-sample KS p-value as scipy 1.14's ks_2samp(method='auto') computes it,
 * and the chi-squared survival function.
 *
 * KS exact path (max(n1, n2) <= 10000): Hodges' lattice-path counts
 * (Hodges 1958), for n1 == n2 the alternating series of
 * _compute_prob_outside_square, else the "1 - p inside method" recursion of
 * Viehmann (arXiv 2102.08037) that scipy uses.  Asymptotic path: the exact
 * one-sample two-sided KS distribution kstwo.sf(D, round(n1 n2/(n1+n2)))
 * after Simard & L'Ecuyer (2011): Durbin's matrix (Marsaglia, Tsang, Wang
 * 2003), Pelz-Good, and 2 x the one-sided Smirnov tail (Birnbaum-Tingey sum)
 * in the same regions as scipy's _kolmogn.  Where scipy takes Pomeranz's
 * recursion (n <= 140, 0.754693 < n d^2 <= 4) we take Durbin's matrix, which
 * computes the same exact probability. */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../drift.h"

#define KS_MAX_AUTO_N 10000

static double clip01(double p) { return p < 0 ? 0 : p > 1 ? 1 : p; }

/* Pr(D_{n,n} >= h/n), scipy's Horner form of 2 sum (-1)^(k+1) C(2n, n-kh)/C(2n, n). */
static double prob_outside_square(long n, long h)
{
    double p = 0.0;
    for (long k = n / h; k >= 0; k--) {
        double p1 = 1.0;
        for (long j = 0; j < h; j++)
            p1 = (double)(n - k * h - j) * p1 / (double)(n + k * h + j + 1);
        p = p1 * (1.0 - p);
    }
    return 2 * p;
}

/* 1 - (paths staying strictly inside |x/m - y/n| < h/lcm) / C(m+n, n), one
 * sliding column of the lattice at a time.  Returns NaN if it cannot. */
static double outer_prob_inside(long m, long n, long g, long h)
{
    if (m < n) {
        long t = m; m = n; n = t;
    }
    long mg = m / g, ng = n / g;
    long minj = 0, maxj = (long)ceil((double)h / (double)mg);
    if (maxj > n + 1)
        maxj = n + 1;
    long curlen = maxj - minj;
    long len_a = 2 * maxj + 2 < n + 1 ? 2 * maxj + 2 : n + 1;
    double *a = malloc((size_t)len_a * sizeof *a);
    if (!a)
        return NAN;
    for (long j = 0; j < len_a; j++)
        a[j] = j < maxj ? 0.0 : 1.0;
    double result = NAN;
    for (long i = 1; i <= m; i++) {
        long lastminj = minj, lastlen = curlen;
        minj = (long)floor((double)(ng * i - h) / (double)mg) + 1;
        if (minj < 0)
            minj = 0;
        if (minj > n)
            minj = n;
        maxj = (long)ceil((double)(ng * i + h) / (double)mg);
        if (maxj > n + 1)
            maxj = n + 1;
        if (maxj <= minj) {
            result = 1.0;
            goto out;
        }
        double val = minj == 0 ? 0.0 : 1.0;
        for (long jj = 0; jj < maxj - minj; jj++) {
            long j = jj + minj, src = jj + minj - lastminj;
            if (src < 0 || src >= len_a || jj >= len_a)
                goto out;           /* cannot happen for valid h; NaN -> asymptotic */
            val = (a[src] * (double)i + val * (double)j) / (double)(i + j);
            a[jj] = val;
        }
        curlen = maxj - minj;
        for (long j = curlen; j < curlen + (lastlen - curlen) && j < len_a; j++)
            a[j] = 1.0;
    }
    result = a[maxj - minj - 1];
out:
    free(a);
    return result;
}

static long gcd_l(long a, long b)
{
    while (b) {
        long t = a % b;
        a = b;
        b = t;
    }
    return a;
}

/* log(n!/n^n) by Stirling with n log n removed first (scipy's form). */
static double log_nfact_div_npow(double n)
{
    static const double c[] = {-2.955065359477124183e-2, 6.4102564102564102564e-3,
                               -1.9175269175269175269e-3, 8.4175084175084175084e-4,
                               -5.952380952380952381e-4, 7.9365079365079365079e-4,
                               -2.7777777777777777778e-3, 8.3333333333333333333e-2};
    double rn = 1.0 / n, r2 = rn / n, poly = 0;
    for (size_t i = 0; i < sizeof c / sizeof *c; i++)
        poly = poly * r2 + c[i];
    return log(n) / 2 - n + log(2 * M_PI) / 2 + rn * poly;
}

/* Pr(D_n <= d) by Durbin's matrix: the k-th diagonal entry of
 * (n!/n^n) H^n, H of size 2k-1, with a separate binary exponent. */
static double kolmogn_dmtw(long n, double d)
{
    double nd = (double)n * d;
    if (d >= 1.0)
        return 1.0;
    if (nd <= 0.5)
        return 0.0;
    long k = (long)ceil(nd);
    double h = (double)k - nd;
    long m = 2 * k - 1;
    size_t mm = (size_t)m * (size_t)m;
    double *buf = calloc(4 * mm + 2 * (size_t)m, sizeof *buf);
    if (!buf)
        return NAN;
    double *hm = buf, *pw = buf + mm, *tmp = buf + 2 * mm, *tmp2 = buf + 3 * mm;
    double *v = buf + 4 * mm, *w = v + m;
    double fac = 1.0;
    for (long j = 1; j <= m; j++) {
        v[j - 1] = 1.0 - pow(h, (double)j);
        w[j - 1] = fac;
        fac /= (double)j;
        v[j - 1] *= fac;
    }
    double tt = pow(fmax(2 * h - 1.0, 0), (double)m) - 2 * pow(h, (double)m);
    v[m - 1] = (1.0 + tt) * fac;
    for (long i = 1; i < m; i++)
        for (long r = i - 1; r < m; r++)
            hm[r * m + i] = w[r - (i - 1)];
    for (long r = 0; r < m; r++)
        hm[r * m] = v[r];
    for (long c = 0; c < m; c++)
        hm[(m - 1) * m + c] = v[m - 1 - c];
    for (long r = 0; r < m; r++)
        pw[r * m + r] = 1.0;
    const double ep128 = ldexp(1.0, 128), em128 = ldexp(1.0, -128);
    long nn = n, expnt = 0, hexpnt = 0;
    while (nn > 0) {
        if (nn % 2) {
            memset(tmp, 0, mm * sizeof *tmp);
            for (long r = 0; r < m; r++)
                for (long q = 0; q < m; q++) {
                    double a = pw[r * m + q];
                    for (long c = 0; c < m; c++)
                        tmp[r * m + c] += a * hm[q * m + c];
                }
            memcpy(pw, tmp, mm * sizeof *tmp);
            expnt += hexpnt;
        }
        memset(tmp2, 0, mm * sizeof *tmp2);
        for (long r = 0; r < m; r++)
            for (long q = 0; q < m; q++) {
                double a = hm[r * m + q];
                for (long c = 0; c < m; c++)
                    tmp2[r * m + c] += a * hm[q * m + c];
            }
        memcpy(hm, tmp2, mm * sizeof *tmp2);
        hexpnt *= 2;
        if (fabs(hm[(k - 1) * m + (k - 1)]) > ep128) {
            for (size_t i = 0; i < mm; i++)
                hm[i] /= ep128;
            hexpnt += 128;
        }
        nn /= 2;
    }
    double p = pw[(k - 1) * m + (k - 1)];
    for (long i = 1; i <= n; i++) {
        p = (double)i * p / (double)n;
        if (fabs(p) < em128) {
            p *= ep128;
            expnt -= 128;
        }
    }
    free(buf);
    if (expnt != 0)
        p = ldexp(p, (int)expnt);
    return clip01(p);
}

/* Pelz-Good asymptotic series for Pr(D_n <= x); sf = 1: the complement. */
static double kolmogn_pelz_good(double n, double x, int sf)
{
    if (x <= 0.0)
        return sf ? 1.0 : 0.0;
    if (x >= 1.0)
        return sf ? 0.0 : 1.0;
    const double pi2 = M_PI * M_PI, pi4 = pi2 * pi2, pi6 = pi4 * pi2;
    double z = sqrt(n) * x, z2 = z * z, z3 = z2 * z, z4 = z2 * z2, z6 = z4 * z2;
    double qlog = -pi2 / 8 / z2;
    if (qlog < -708)
        return sf ? 1.0 : 0.0;
    double q = exp(qlog);
    double k1a = -z2, k1b = pi2 / 4;
    double k2a = 6 * z6 + 2 * z4, k2b = (2 * z4 - 5 * z2) * pi2 / 4, k2c = pi4 * (1 - 2 * z2) / 16;
    double k3d = pi6 * (5 - 30 * z2) / 64, k3c = pi4 * (-60 * z2 + 212 * z4) / 16;
    double k3b = pi2 * (135 * z4 - 96 * z6) / 4, k3a = -30 * z6 - 90 * z4 * z4;
    double kk[4] = {0, 0, 0, 0};
    long maxk = (long)ceil(16 * z / M_PI);
    for (long k = maxk; k > 0; k--) {
        double m = (double)(2 * k - 1), m2 = m * m, m4 = m2 * m2, m6 = m4 * m2;
        double qp = pow(q, 8.0 * (double)k);
        double coeffs[4] = {1.0, k1a + k1b * m2, k2a + k2b * m2 + k2c * m4,
                            k3a + k3b * m2 + k3c * m4 + k3d * m6};
        for (int i = 0; i < 4; i++)
            kk[i] = kk[i] * qp + coeffs[i];
    }
    const double sqrt2pi = sqrt(2 * M_PI);
    double den[4] = {z, 6 * z4, 72 * z4 * z3, 6480 * z6 * z4};
    for (int i = 0; i < 4; i++)
        kk[i] = kk[i] * q * sqrt2pi / den[i];
    double q2 = exp(-pi2 / 2 / z2), k2extra = 0, k3extra = 0, sqrt3z = sqrt(3.0) * z;
    for (long k = maxk; k > 0; k--) {
        double kd = (double)k, ks2 = kd * kd, qp = pow(q2, ks2), kspi = M_PI * kd;
        k2extra += ks2 * qp;
        k3extra += (sqrt3z + kspi) * (sqrt3z - kspi) * ks2 * qp;
    }
    kk[2] += k2extra * pi2 * sqrt2pi / (-36 * z3);
    kk[3] += k3extra * pi2 * sqrt2pi / (216 * z6);
    for (int i = 1; i < 4; i++)
        kk[i] /= pow(n, i / 2.0);
    if (sf) {
        for (int i = 0; i < 4; i++)
            kk[i] = -kk[i];
        kk[0] += 1;
    }
    return kk[0] + kk[1] + kk[2] + kk[3];
}

/* One-sided Smirnov tail Pr(D+_n >= x) by the Birnbaum-Tingey sum
 * x sum_v C(n,v) (x+v/n)^(v-1) (1-x-v/n)^(n-v), terms summed from logs;
 * for n > 1e6 cephes' approximation exp(-(6nx+1)^2/(18n)), as scipy. */
static double smirnov_sf(long n, double x)
{
    if (n == 1)
        return 1 - x;
    if (x <= 0)
        return 1.0;
    if (x >= 1)
        return 0.0;
    double nx = (double)n * x;
    if (nx <= 1.0)
        return 1 - x * pow(1 + x, (double)(n - 1));
    if (-2 * (double)n * x * x < -708.39)
        return 0.0;
    if (floor(nx) >= (double)(n - 1))
        return pow(1 - x, (double)n);
    if (n > 1000000)
        return exp(-pow(6.0 * nx + 1, 2) / 18.0 / (double)n);
    long last = (long)floor((double)n * (1 - x));
    if ((double)last >= (double)n * (1 - x))
        last--;                 /* the v = n(1-x) term is 0^... : excluded, as cephes */
    /* log C(n, v) by the ratio recurrence: no lgamma per term */
    double sum = 0, ln = (double)n, lx = x, lc = 0, peak = -INFINITY;
    for (long v = 0; v <= last; v++) {
        double lv = (double)v, a = lx + lv / ln;
        if (1 - a <= 0)
            break;
        double lt = lc + (lv - 1) * log(a) + (ln - lv) * log1p(-a);
        if (lt > peak)
            peak = lt;
        sum += exp(lt);
        if (lt < peak - 50 && v > nx)
            break;              /* past the peak, terms below 1e-22 of it */
        lc += log((ln - lv) / (lv + 1));
    }
    return clip01((double)(lx * sum));
}

/* scipy.stats.kstwo.sf(x, n): _kolmogn(n, x, cdf=False). */
static double kstwo_sf(long n, double x)
{
    if (x >= 1.0)
        return 0.0;
    if (x <= 0.0)
        return 1.0;
    double nd = (double)n, t = nd * x;
    if (t <= 1.0) {
        if (t <= 0.5)
            return 1.0;
        double prob;
        if (n <= 140) {
            prob = 1.0;
            for (long i = 1; i <= n; i++)
                prob *= (double)i * (1.0 / nd) * (2 * t - 1);
        } else {
            prob = exp(log_nfact_div_npow(nd) + nd * log(2 * t - 1));
        }
        return clip01(1.0 - prob);
    }
    if (t >= nd - 1)
        return clip01(2 * pow(1.0 - x, nd));
    if (x >= 0.5)
        return clip01(2 * smirnov_sf(n, x));
    double nxsq = t * x;
    if (n <= 140) {
        if (nxsq <= 4)
            return clip01(1.0 - kolmogn_dmtw(n, x));
        return clip01(2 * smirnov_sf(n, x));
    }
    if (nxsq >= 370.0)
        return 0.0;
    if (nxsq >= 2.2)
        return clip01(2 * smirnov_sf(n, x));
    if (n <= 100000 && nd * pow(x, 1.5) <= 1.4)
        return clip01(1.0 - kolmogn_dmtw(n, x));
    return clip01(kolmogn_pelz_good(nd, x, 1));
}

double kn_drift_ks_pvalue(size_t n1, size_t n2, double d, int *exact)
{
    if (exact)
        *exact = 0;
    if (n1 == 0 || n2 == 0 || !(d >= 0))
        return NAN;
    if ((n1 > n2 ? n1 : n2) <= KS_MAX_AUTO_N) {
        long g = gcd_l((long)n1, (long)n2);
        long lcm = ((long)n1 / g) * (long)n2;
        long h = (long)nearbyint(d * (double)lcm);
        double p;
        if (h == 0)
            p = 1.0;
        else if (n1 == n2)
            p = prob_outside_square((long)n1, h);
        else
            p = outer_prob_inside((long)n1, (long)n2, g, h);
        if (p >= 0 && p <= 1) {
            if (exact)
                *exact = 1;
            return p;
        }
    }
    double m = (double)(n1 > n2 ? n1 : n2), n = (double)(n1 > n2 ? n2 : n1);
    double en = m * n / (m + n);
    return kstwo_sf((long)nearbyint(en), d);
}

/* Regularized upper incomplete gamma Q(a, x): series for x < a + 1, else
 * Lentz's continued fraction (Numerical Recipes 6.2). */
static double gamma_q(double a, double x)
{
    if (x <= 0)
        return 1.0;
    if (isinf(x))
        return 0.0;
    double lg = lgamma(a);
    if (x < a + 1) {
        double ap = a, sum = 1.0 / a, del = sum;
        for (int i = 0; i < 10000; i++) {
            ap += 1;
            del *= x / ap;
            sum += del;
            if (fabs(del) < fabs(sum) * 1e-17)
                break;
        }
        return 1.0 - sum * exp(-x + a * log(x) - lg);
    }
    const double tiny = 1e-300;
    double b = x + 1 - a, c = 1 / tiny, d = 1 / b, h = d;
    for (int i = 1; i < 10000; i++) {
        double an = -i * (i - a);
        b += 2;
        d = an * d + b;
        if (fabs(d) < tiny)
            d = tiny;
        c = b + an / c;
        if (fabs(c) < tiny)
            c = tiny;
        d = 1 / d;
        double del = d * c;
        h *= del;
        if (fabs(del - 1) < 1e-17)
            break;
    }
    return exp(-x + a * log(x) - lg) * h;
}

double kn_drift_chi2_sf(double x, double dof)
{
    if (!(dof > 0) || isnan(x))
        return NAN;
    return clip01(gamma_q(dof / 2, x / 2));
}
