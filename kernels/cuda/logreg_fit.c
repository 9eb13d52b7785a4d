/* logreg_fit.c - kc_logreg_fit: km_logreg_fit's L-BFGS on the host over the
 * GPU objective (kc_logreg_obj_sums).  The weights are small (rows x (d+1)
 * doubles), so only the sums over the rows run on the device.  The driver
 * is kernels/cpu/logreg_lbfgs.c's (Nocedal & Wright, Numerical Optimization,
 * 2nd ed.: Alg. 7.4 two-loop recursion, Alg. 3.5/3.6 strong-Wolfe line search
 * with cubic interpolation, eq. 3.59) with the same constants and stopping
 * rules; that file's objective is private to kernels/cpu, hence this twin.
 * Plain C over the public API of kernels_cuda.h: no CUDA header. */
#include <math.h>
#include <string.h>

#include "../../core/kiln_alloc.h"
#include "../kernels_cuda.h"

#define LBFGS_M      10      /* correction pairs, as scipy's maxcor */
#define LS_MAX_EVALS 50      /* scikit-learn passes maxls = 50 */
#define LS_C1        1e-4
#define LS_C2        0.9
#define LR_MAGIC     0x52474C4Bu   /* km_logreg_save's header, version 1 */
#define LR_VERSION   1u

typedef struct {
    kc_logreg_obj_t   *obj;
    const km_reduce_t *reduce;
    size_t             n_w, stride;
    double             n_total, l2;
    double            *buf;     /* n_w + 1 */
    int                evals;
} fit_obj_t;

static int do_sum(const km_reduce_t *rd, double *buf, size_t n, kiln_err_t *err)
{
    if (!rd || !rd->sum)
        return 0;
    int rc = rd->sum(rd->ud, buf, n, err);
    if (rc < 0 && err && err->code == 0)
        kiln_err_set(err, rc, "logreg: reduce->sum failed (%d)", rc);
    return rc < 0 ? rc : 0;
}

/* F(w), grad F(w) over all ranks (logreg_obj.c's definition). */
static int obj_eval(fit_obj_t *o, const double *w, double *f, double *g, kiln_err_t *err)
{
    int rc = kc_logreg_obj_sums(o->obj, w, o->buf, err);
    if (rc == 0)
        rc = do_sum(o->reduce, o->buf, o->n_w + 1, err);
    if (rc < 0)
        return rc;
    o->evals++;
    const double inv_n = 1.0 / o->n_total;
    double pen = 0;
    for (size_t k = 0; k < o->n_w; k++) {
        const double wk = k % o->stride == o->stride - 1 ? 0.0 : w[k];
        pen += wk * wk;
        g[k] = (o->buf[k] + o->l2 * wk) * inv_n;
    }
    *f = (o->buf[o->n_w] + 0.5 * o->l2 * pen) * inv_n;
    return 0;
}

static double dotn(const double *a, const double *b, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += a[i] * b[i];
    return s;
}

typedef struct {
    fit_obj_t    *o;
    size_t        n;
    const double *w0, *dir;
    double        f0, dphi0;
    double       *w, *g, f, dphi;
    int           evals;
} ls_t;

static int ls_try(ls_t *ls, double a, kiln_err_t *err)
{
    for (size_t i = 0; i < ls->n; i++)
        ls->w[i] = ls->w0[i] + a * ls->dir[i];
    ls->evals++;
    int rc = obj_eval(ls->o, ls->w, &ls->f, ls->g, err);
    ls->dphi = dotn(ls->g, ls->dir, ls->n);
    return rc;
}

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

/* 0: accepted point in ls->w/g/f; 1: none in LS_MAX_EVALS; < 0: error. */
static int line_search(ls_t *ls, double a1, kiln_err_t *err)
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

/* Minimizes F from w = 0 into w (logreg_lbfgs.c's lr_lbfgs, line for line). */
static int lbfgs(fit_obj_t *o, double *w, int max_iter, double tol, int *n_iter, int *converged,
                 kiln_err_t *err)
{
    const size_t n = o->n_w, m = LBFGS_M;
    double *mem = kiln_calloc((2 * m + 5) * n + 2 * m, sizeof(double));
    if (!mem)
        return kiln_err_set(err, KILN_ENOMEM, "logreg: out of memory for L-BFGS (%zu weights)", n);
    double *s = mem, *y = s + m * n, *g = y + m * n, *dir = g + n, *w_new = dir + n;
    double *g_new = w_new + n, *x = g_new + n, *rho = x + n, *alpha = rho + m;
    size_t n_pairs = 0, newest = 0;
    double f, f_new;
    int rc = obj_eval(o, x, &f, g, err), iter = 0;
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
        if (!(dphi0 < 0)) {
            n_pairs = 0;
            for (size_t i = 0; i < n; i++)
                dir[i] = -g[i];
            dphi0 = dotn(g, dir, n);
        }
        double a1 = n_pairs ? 1.0 : fmin(1.0, 1.0 / sqrt(dotn(dir, dir, n)));
        ls_t ls = {.o = o, .n = n, .w0 = x, .dir = dir, .f0 = f, .dphi0 = dphi0,
                   .w = w_new, .g = g_new};
        rc = line_search(&ls, a1, err);
        if (rc != 0)
            break;
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
        if (sy > 2.2e-16 * yy) {
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

/* The ranks agree through one sum of [class counts, n, d, refused] before
 * anything else (logreg_obj.c), so a rank with bad rows fails them all. */
static int agree(const km_data_t *data, int local_rc, const km_reduce_t *rd, double *n_total,
                 kiln_err_t *err)
{
    const int k_n = data->n_classes, ranks = rd && rd->sum ? rd->n_ranks : 1;
    double a[KM_LOGREG_MAX_CLASSES + 3];
    memset(a, 0, sizeof a);
    if (local_rc == 0)
        for (size_t i = 0; i < data->n; i++)
            a[data->y[i]] += 1.0;
    a[k_n] = local_rc == 0 ? (double)data->n : 0;
    a[k_n + 1] = (double)data->d;
    a[k_n + 2] = local_rc < 0;
    kiln_err_t mine;
    if (err)
        mine = *err;
    int rc = do_sum(rd, a, (size_t)k_n + 3, err);
    if (rc < 0)
        return rc;
    if (local_rc < 0) {
        if (err)
            *err = mine;
        return local_rc;
    }
    if (a[k_n + 2] > 0)
        return kiln_err_set(err, KILN_EINVAL, "logreg: %g other rank(s) refused their data",
                            a[k_n + 2]);
    if (a[k_n + 1] != (double)data->d * ranks)
        return kiln_err_at(err, KILN_EINVAL, "d", "logreg: ranks disagree on d (this rank: %zu)",
                           data->d);
    int present = 0, first_empty = -1;
    for (int k = 0; k < k_n; k++) {
        if (a[k] > 0)
            present++;
        else if (first_empty < 0)
            first_empty = k;
    }
    if (first_empty >= 0)
        return kiln_err_at(err, KILN_EINVAL, "y",
                           "logreg: class %d of n_classes = %d has no rows (%d classes present)",
                           first_empty, k_n, present);
    *n_total = a[k_n];
    return 0;
}

int kc_logreg_fit(kc_ctx_t *ctx, const km_data_t *data, const km_logreg_params_t *p,
                  const km_reduce_t *reduce, km_logreg_t **out, kiln_err_t *err)
{
    fit_obj_t o;
    memset(&o, 0, sizeof o);
    double *w = NULL;
    km_buf_t b = {0};
    int rc, n_iter = 0, converged = 0;
    *out = NULL;
    if (!p || !(isfinite(p->l2) && p->l2 > 0) || p->max_iter < 1 || !(isfinite(p->tol) && p->tol >= 0))
        return kiln_err_set(err, KILN_EINVAL, "logreg: params need l2 > 0, max_iter >= 1, tol >= 0");
    if (!data || data->n_classes < 2 || data->n_classes > KM_LOGREG_MAX_CLASSES || data->d == 0)
        return kiln_err_set(err, KILN_EINVAL, "logreg: data needs d >= 1 and 2..%d classes",
                            KM_LOGREG_MAX_CLASSES);
    if (reduce && !reduce->sum)
        reduce = NULL;
    rc = kc_logreg_obj_new(ctx, data, &o.obj, err);
    if (rc == KILN_ENOMEM || rc == KILN_EIO || rc == KILN_EUNSUPPORTED)
        return rc;    /* a device failure, not the data: no agreement to reach */
    if ((rc = agree(data, rc, reduce, &o.n_total, err)) < 0)
        goto out;
    o.reduce = reduce;
    o.n_w = km_logreg_n_weights(data->d, data->n_classes);
    o.stride = data->d + 1;
    o.l2 = p->l2;
    o.buf = kiln_malloc((o.n_w + 1) * sizeof *o.buf);
    w = kiln_calloc(o.n_w, sizeof *w);
    if (!o.buf || !w) {
        rc = kiln_err_set(err, KILN_ENOMEM, "logreg: out of memory for %zu weights", o.n_w);
        goto out;
    }
    if ((rc = lbfgs(&o, w, p->max_iter, p->tol, &n_iter, &converged, err)) < 0)
        goto out;
    /* The model through km_logreg_load of km_logreg_save's bytes: the public
     * way to make a km_logreg_t (load checks every field). */
    km_buf_u32(&b, LR_MAGIC);
    km_buf_u32(&b, LR_VERSION);
    km_buf_u32(&b, (uint32_t)data->n_classes);
    km_buf_u32(&b, (uint32_t)converged);
    km_buf_u64(&b, data->d);
    km_buf_u32(&b, (uint32_t)n_iter);
    km_buf_u32(&b, 0);
    km_buf_f64s(&b, &o.l2, 1);
    km_buf_f64s(&b, w, o.n_w);
    if (b.oom) {
        rc = kiln_err_set(err, KILN_ENOMEM, "logreg: out of memory for the model bytes");
        goto out;
    }
    rc = km_logreg_load(b.p, b.len, out, err);
out:
    km_buf_free(&b);
    kiln_free(w);
    kiln_free(o.buf);
    kc_logreg_obj_destroy(&o.obj);
    return rc;
}
