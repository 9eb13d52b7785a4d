/* logreg_lbfgs.c - full-batch L-BFGS for logreg (Nocedal & Wright,
 * Numerical Optimization, 2nd ed., Alg. 7.4 two-loop recursion; Alg.
 * 3.5/3.6 strong-Wolfe line search with cubic interpolation, eq. 3.59). */
#include <math.h>
#include <string.h>

#include "../../core/kiln_alloc.h"
#include "logreg_impl.h"

/* ---- L-BFGS ----------------------------------------------------------------- */

static double dotn(const double *a, const double *b, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += a[i] * b[i];
    return s;
}

typedef struct {
    km_objective_fn fg;
    void     *ud;
    size_t    n;
    const double *w0, *dir;     /* phi(a) = F(w0 + a dir) */
    double    f0, dphi0;
    double   *w, *g, f, dphi;   /* the last point evaluated */
    int       evals;
} lr_ls_t;

static int ls_try(lr_ls_t *ls, double a, kiln_err_t *err)
{
    for (size_t i = 0; i < ls->n; i++)
        ls->w[i] = ls->w0[i] + a * ls->dir[i];
    ls->evals++;
    int rc = ls->fg(ls->ud, ls->w, &ls->f, ls->g, err);
    ls->dphi = dotn(ls->g, ls->dir, ls->n);
    return rc;
}

/* Minimizer of the cubic through (lo, f_lo, d_lo) and (hi, f_hi, d_hi)
 * (N&W eq. 3.59), kept inside the middle 80% of the interval, else its
 * midpoint. */
static double cubic_step(double lo, double f_lo, double d_lo, double hi, double f_hi, double d_hi)
{
    double d1 = d_lo + d_hi - 3.0 * (f_lo - f_hi) / (lo - hi);
    double disc = d1 * d1 - d_lo * d_hi;
    double mid = 0.5 * (lo + hi), a = mid;
    if (disc >= 0 && isfinite(disc)) {
        double d2 = (hi > lo ? 1.0 : -1.0) * sqrt(disc);
        double den = d_hi - d_lo + 2.0 * d2;
        if (den != 0)
            a = hi - (hi - lo) * (d_hi + d2 - d1) / den;
    }
    double lo_b = fmin(lo, hi) + 0.1 * fabs(hi - lo), hi_b = fmax(lo, hi) - 0.1 * fabs(hi - lo);
    return isfinite(a) && a >= lo_b && a <= hi_b ? a : mid;
}

/* Strong-Wolfe line search (N&W Alg. 3.5 and zoom, 3.6).  Returns 0 with the
 * accepted point in ls->w/g/f, 1 when no such step was found in
 * LS_MAX_EVALS evaluations, or a negative error. */
static int line_search(lr_ls_t *ls, double a1, kiln_err_t *err)
{
    double a_prev = 0, f_prev = ls->f0, d_prev = ls->dphi0, a = a1;
    double lo, f_lo, d_lo, hi, f_hi, d_hi;
    int rc;
    for (;;) {
        if ((rc = ls_try(ls, a, err)) < 0)
            return rc;
        if (ls->f > ls->f0 + LS_C1 * a * ls->dphi0 || (ls->evals > 1 && ls->f >= f_prev)) {
            lo = a_prev, f_lo = f_prev, d_lo = d_prev, hi = a, f_hi = ls->f, d_hi = ls->dphi;
            break;
        }
        if (fabs(ls->dphi) <= -LS_C2 * ls->dphi0)
            return 0;
        if (ls->dphi >= 0) {
            lo = a, f_lo = ls->f, d_lo = ls->dphi, hi = a_prev, f_hi = f_prev, d_hi = d_prev;
            break;
        }
        if (ls->evals >= LS_MAX_EVALS)
            return 1;
        a_prev = a, f_prev = ls->f, d_prev = ls->dphi;
        a *= 2.0;
    }
    while (ls->evals < LS_MAX_EVALS) {
        if (fabs(hi - lo) <= 1e-15 * fmax(fabs(lo), fabs(hi)))
            return 1;
        a = cubic_step(lo, f_lo, d_lo, hi, f_hi, d_hi);
        if ((rc = ls_try(ls, a, err)) < 0)
            return rc;
        if (ls->f > ls->f0 + LS_C1 * a * ls->dphi0 || ls->f >= f_lo) {
            hi = a, f_hi = ls->f, d_hi = ls->dphi;
        } else {
            if (fabs(ls->dphi) <= -LS_C2 * ls->dphi0)
                return 0;
            if (ls->dphi * (hi - lo) >= 0)
                hi = lo, f_hi = f_lo, d_hi = d_lo;
            lo = a, f_lo = ls->f, d_lo = ls->dphi;
        }
    }
    return 1;
}

int km_lbfgs_minimize(km_objective_fn fg, void *ud, size_t n, double *w, int max_iter,
                      double tol, int *n_iter, int *converged, kiln_err_t *err)
{
    const size_t m = LBFGS_M;
    double *mem = kiln_calloc((2 * m + 5) * n + 2 * m, sizeof(double));
    if (!mem)
        return kiln_err_set(err, KILN_ENOMEM, "logreg: out of memory for L-BFGS (%zu weights)", n);
    double *s = mem, *y = s + m * n, *g = y + m * n, *dir = g + n, *w_new = dir + n;
    double *g_new = w_new + n, *x = g_new + n, *rho = x + n, *alpha = rho + m;
    size_t n_pairs = 0, newest = 0;
    double f, f_new;
    int rc = fg(ud, x, &f, g, err), iter = 0;
    *converged = 0;
    while (rc >= 0) {
        double g_inf = 0;
        for (size_t i = 0; i < n; i++)
            g_inf = fmax(g_inf, fabs(g[i]));
        if (g_inf <= tol) {
            *converged = 1;
            break;
        }
        if (iter >= max_iter)
            break;
        /* two-loop recursion: dir = -H g, H0 = (s.y / y.y) I */
        for (size_t i = 0; i < n; i++)
            dir[i] = -g[i];
        for (size_t k = 0; k < n_pairs; k++) {
            size_t j = (newest + m - k) % m;
            alpha[j] = rho[j] * dotn(s + j * n, dir, n);
            for (size_t i = 0; i < n; i++)
                dir[i] -= alpha[j] * y[j * n + i];
        }
        if (n_pairs) {
            const double *yn = y + newest * n;
            double gamma = dotn(s + newest * n, yn, n) / dotn(yn, yn, n);
            for (size_t i = 0; i < n; i++)
                dir[i] *= gamma;
        }
        for (size_t k = n_pairs; k-- > 0;) {
            size_t j = (newest + m - k) % m;
            double beta = rho[j] * dotn(y + j * n, dir, n);
            for (size_t i = 0; i < n; i++)
                dir[i] += (alpha[j] - beta) * s[j * n + i];
        }
        double dphi0 = dotn(g, dir, n);
        if (!(dphi0 < 0)) {      /* lost descent (rounding): restart from -g */
            n_pairs = 0;
            for (size_t i = 0; i < n; i++)
                dir[i] = -g[i];
            dphi0 = dotn(g, dir, n);
        }
        double a1 = n_pairs ? 1.0 : fmin(1.0, 1.0 / sqrt(dotn(dir, dir, n)));
        lr_ls_t ls = {.fg = fg, .ud = ud, .n = n, .w0 = x, .dir = dir, .f0 = f,
                      .dphi0 = dphi0, .w = w_new, .g = g_new};
        rc = line_search(&ls, a1, err);
        if (rc != 0)
            break;           /* 1: no acceptable step; keep x, not converged */
        iter++;
        f_new = ls.f;
        size_t slot = n_pairs ? (newest + 1) % m : newest;
        double sy = 0, yy = 0;
        for (size_t i = 0; i < n; i++) {
            s[slot * n + i] = w_new[i] - x[i];
            y[slot * n + i] = g_new[i] - g[i];
            sy += s[slot * n + i] * y[slot * n + i];
            yy += y[slot * n + i] * y[slot * n + i];
        }
        if (sy > 2.2e-16 * yy) {  /* keep H positive definite */
            rho[slot] = 1.0 / sy;
            newest = slot;
            n_pairs = n_pairs < m ? n_pairs + 1 : m;
        }
        memcpy(x, w_new, n * sizeof *x);
        memcpy(g, g_new, n * sizeof *g);
        double f_old = f;
        f = f_new;
        if (f_old - f <= 64 * 2.220446049250313e-16 * fmax(fmax(fabs(f_old), fabs(f)), 1.0)) {
            *converged = 1;
            break;
        }
    }
    if (rc > 0)
        rc = 0;
    memcpy(w, x, n * sizeof *w);
    *n_iter = iter;
    kiln_free(mem);
    return rc;
}

static int obj_fg(void *ud, const double *w, double *f, double *g, kiln_err_t *err)
{
    return lr_obj_eval(ud, w, f, g, err);
}

int lr_lbfgs(lr_obj_t *o, double *w, int max_iter, double tol, int *n_iter, int *converged,
             kiln_err_t *err)
{
    return km_lbfgs_minimize(obj_fg, o, o->ev.n_w, w, max_iter, tol, n_iter, converged, err);
}
