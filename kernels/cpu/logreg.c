/* logreg.c - L2 logistic regression (binary sigmoid, multinomial softmax)
 * fitted by full-batch L-BFGS (Nocedal & Wright, Numerical Optimization,
 * 2nd ed., Alg. 7.4 two-loop recursion; Alg. 3.5/3.6 strong-Wolfe line search
 * with cubic interpolation, eq. 3.59).  The objective is scikit-learn's (see
 * logreg.h); one pass over x per evaluation computes loss and gradient.
 * Here: the model, fit, predict and save/load; the passes over x are in
 * logreg_eval.c, the objective in logreg_obj.c, L-BFGS in logreg_lbfgs.c. */
#include <math.h>
#include <string.h>

#include "../../core/kiln_alloc.h"
#include "logreg_impl.h"

size_t km_logreg_n_weights(size_t d, int n_classes)
{
    size_t rows = n_classes == 2 ? 1 : (size_t)(n_classes > 0 ? n_classes : 0);
    return rows * (d + 1);
}

km_logreg_params_t km_logreg_defaults(void)
{
    km_logreg_params_t p = {.l2 = 1.0, .max_iter = 100, .tol = 1e-4, .threads = 1, .seed = 0};
    return p;
}

/* ---- the model ---------------------------------------------------------------- */

static km_logreg_t *model_new(size_t d, int n_classes)
{
    km_logreg_t *m = kiln_calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->d = d;
    m->n_classes = n_classes;
    m->w = kiln_calloc(km_logreg_n_weights(d, n_classes), sizeof(double));
    if (!m->w) {
        kiln_free(m);
        return NULL;
    }
    return m;
}

void km_logreg_free(km_logreg_t **m)
{
    if (!m || !*m)
        return;
    kiln_free((*m)->w);
    kiln_free(*m);
    *m = NULL;
}

int km_logreg_fit(const km_data_t *data, const km_logreg_params_t *p, const km_reduce_t *reduce,
                  km_logreg_t **out, kiln_err_t *err)
{
    if (!out)
        return kiln_err_set(err, KILN_EINVAL, "logreg: out is NULL");
    *out = NULL;
    lr_obj_t o;
    int rc = lr_obj_init(&o, data, p, reduce, err);
    if (rc < 0)
        return rc;
    km_logreg_t *m = model_new(data->d, data->n_classes);
    if (!m) {
        rc = kiln_err_set(err, KILN_ENOMEM, "logreg: out of memory for the model");
        goto out;
    }
    m->l2 = p->l2;
    rc = lr_lbfgs(&o, m->w, p->max_iter, p->tol, &m->n_iter, &m->converged, err);
    if (rc < 0) {
        km_logreg_free(&m);
        goto out;
    }
    *out = m;
out:
    lr_obj_free(&o);
    return rc;
}

size_t km_logreg_n_outputs(const km_logreg_t *m) { return m ? (size_t)m->n_classes : 0; }

size_t km_logreg_n_features(const km_logreg_t *m) { return m ? m->d : 0; }

const double *km_logreg_weights(const km_logreg_t *m) { return m ? m->w : NULL; }

int km_logreg_n_iter(const km_logreg_t *m, int *converged)
{
    if (converged)
        *converged = m ? m->converged : 0;
    return m ? m->n_iter : 0;
}

int km_logreg_predict(const km_logreg_t *m, const float *x, size_t n, float *scores,
                      int32_t *pred, kiln_err_t *err)
{
    if (!m)
        return kiln_err_set(err, KILN_EINVAL, "logreg: predict with a NULL model");
    if (n > 0 && (!x || !scores))
        return kiln_err_set(err, KILN_EINVAL, "logreg: predict needs x and scores for %zu rows", n);
    const size_t d = m->d, stride = d + 1;
    const int k_n = m->n_classes;
    double z[KM_LOGREG_MAX_CLASSES];
    double *xd = kiln_malloc(d * sizeof *xd);
    if (!xd)
        return kiln_err_set(err, KILN_ENOMEM, "logreg: predict: out of memory for a row");
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        if (!lr_row_finite(x + i * d, d)) {
            rc = kiln_err_at(err, KILN_ENONFINITE, "x",
                             "logreg: predict: row %zu of x holds NaN or Inf", i);
            break;
        }
        lr_widen_row(x + i * d, d, xd);
        float *sc = scores + i * (size_t)k_n;
        if (k_n == 2) {
            double zi;
            zi = lr_dot_row(xd, m->w, d);
            zi += m->w[d];
            double e = exp(-fabs(zi)), p_hi = 1.0 / (1.0 + e), p_lo = e / (1.0 + e);
            sc[0] = (float)(zi >= 0 ? p_lo : p_hi);
            sc[1] = (float)(zi >= 0 ? p_hi : p_lo);
            if (pred)
                pred[i] = zi > 0;
            continue;
        }
        int best = 0;
        for (int k = 0; k < k_n; k++) {
            const double *wk = m->w + (size_t)k * stride;
            z[k] = lr_dot_row(xd, wk, d);
            z[k] += wk[d];
            best = z[k] > z[best] ? k : best;
        }
        double s = 0, z_max = z[best];
        for (int k = 0; k < k_n; k++) {
            z[k] = exp(z[k] - z_max);
            s += z[k];
        }
        for (int k = 0; k < k_n; k++)
            sc[k] = (float)(z[k] / s);
        if (pred)
            pred[i] = best;
    }
    kiln_free(xd);
    return rc;
}

/* ---- save / load ---------------------------------------------------------------
 * u32 magic "KLGR", u32 version, u32 n_classes, u32 converged, u64 d,
 * u32 n_iter, u32 0, f64 l2, then the weights as f64 (logreg.h layout). */

int km_logreg_save(const km_logreg_t *m, km_buf_t *out, kiln_err_t *err)
{
    if (!m || !out)
        return kiln_err_set(err, KILN_EINVAL, "logreg: save needs a model and a buffer");
    km_buf_u32(out, LR_MAGIC);
    km_buf_u32(out, LR_VERSION);
    km_buf_u32(out, (uint32_t)m->n_classes);
    km_buf_u32(out, (uint32_t)m->converged);
    km_buf_u64(out, m->d);
    km_buf_u32(out, (uint32_t)m->n_iter);
    km_buf_u32(out, 0);
    km_buf_f64s(out, &m->l2, 1);
    km_buf_f64s(out, m->w, km_logreg_n_weights(m->d, m->n_classes));
    if (out->oom)
        return kiln_err_set(err, KILN_ENOMEM, "logreg: out of memory saving the model");
    return 0;
}

int km_logreg_load(const void *bytes, size_t len, km_logreg_t **out, kiln_err_t *err)
{
    if (!out)
        return kiln_err_set(err, KILN_EINVAL, "logreg: load: out is NULL");
    *out = NULL;
    if (!bytes && len > 0)
        return kiln_err_set(err, KILN_EINVAL, "logreg: load: bytes is NULL");
    km_rd_t r = {.p = bytes, .len = len, .off = 0};
    uint32_t magic = 0, version = 0, n_classes = 0, converged = 0, n_iter = 0, zero = 0;
    uint64_t d = 0;
    double l2 = 0;
    if (km_rd_u32(&r, &magic) < 0 || magic != LR_MAGIC)
        return kiln_err_set(err, KILN_EFORMAT, "logreg: load: not a logreg model (bad magic)");
    if (km_rd_u32(&r, &version) < 0 || version != LR_VERSION)
        return kiln_err_set(err, KILN_EFORMAT, "logreg: load: version %u, this build reads %u",
                            version, LR_VERSION);
    if (km_rd_u32(&r, &n_classes) < 0 || km_rd_u32(&r, &converged) < 0 ||
        km_rd_u64(&r, &d) < 0 || km_rd_u32(&r, &n_iter) < 0 || km_rd_u32(&r, &zero) < 0 ||
        km_rd_f64s(&r, &l2, 1) < 0)
        return kiln_err_set(err, KILN_EFORMAT, "logreg: load: truncated header (%zu bytes)", len);
    if (n_classes < 2 || n_classes > KM_LOGREG_MAX_CLASSES || converged > 1 || zero != 0 ||
        n_iter > (uint32_t)INT32_MAX || !(isfinite(l2) && l2 > 0))
        return kiln_err_set(err, KILN_EFORMAT, "logreg: load: corrupt header");
    /* each weight takes 8 bytes, so d is bounded by len before any product */
    if (d == 0 || d > len)
        return kiln_err_set(err, KILN_EFORMAT, "logreg: load: d = %llu does not fit %zu bytes",
                            (unsigned long long)d, len);
    size_t n_w = km_logreg_n_weights((size_t)d, (int)n_classes);
    if (len - r.off != n_w * 8)
        return kiln_err_set(err, KILN_EFORMAT,
                            "logreg: load: %zu bytes of weights, %zu expected (truncated or "
                            "trailing bytes)", len - r.off, n_w * 8);
    km_logreg_t *m = model_new((size_t)d, (int)n_classes);
    if (!m)
        return kiln_err_set(err, KILN_ENOMEM, "logreg: load: out of memory");
    km_rd_f64s(&r, m->w, n_w);
    for (size_t i = 0; i < n_w; i++) {
        if (!isfinite(m->w[i])) {
            km_logreg_free(&m);
            return kiln_err_set(err, KILN_EFORMAT, "logreg: load: weight %zu is not finite", i);
        }
    }
    m->l2 = l2;
    m->n_iter = (int)n_iter;
    m->converged = (int)converged;
    *out = m;
    return 0;
}

