/* logreg_fit.c - kc_logreg_fit: km_logreg_fit's L-BFGS on the host over the
 * GPU objective (kc_logreg_obj_sums).  The weights are small (rows x (d+1)
 * doubles), so only the sums over the rows run on the device.  The driver
 * is kernels/cpu/logreg_lbfgs.c's own (km_lbfgs_minimize, logreg.h) over
 * this file's objective, so the stopping rules are the CPU fit's.
 * Plain C over the public API of kernels_cuda.h: no CUDA header. */
#include <math.h>
#include <string.h>

#include "../../core/kiln_alloc.h"
#include "../kernels_cuda.h"

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

static int obj_fg(void *ud, const double *w, double *f, double *g, kiln_err_t *err)
{
    return obj_eval(ud, w, f, g, err);
}

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
    if ((rc = km_lbfgs_minimize(obj_fg, &o, o.n_w, w, p->max_iter, p->tol, &n_iter, &converged,
                                err)) < 0)
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
