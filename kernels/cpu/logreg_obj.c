/* logreg_obj.c - logreg's objective F over all ranks (logreg.h): parameter
 * and data checks, the ranks' agreement through one sum, and F with its
 * gradient from the local sums. */
#include <math.h>
#include <string.h>

#include "../../core/kiln_alloc.h"
#include "logreg_impl.h"

/* ---- the objective F over all ranks --------------------------------------- */

static int obj_sum(const lr_obj_t *o, double *buf, size_t n, kiln_err_t *err)
{
    if (!o->reduce || !o->reduce->sum)
        return 0;
    int rc = o->reduce->sum(o->reduce->ud, buf, n, err);
    if (rc < 0 && err && err->code == 0)
        kiln_err_set(err, rc, "logreg: reduce->sum failed (%d)", rc);
    return rc < 0 ? rc : 0;
}

/* F(w) and grad F(w) (logreg.h); every rank calls sum() once. */
int lr_obj_eval(lr_obj_t *o, const double *w, double *f, double *g, kiln_err_t *err)
{
    const size_t n_w = o->ev.n_w, stride = o->ev.d + 1;
    lr_eval_local(&o->ev, w, o->buf);
    int rc = obj_sum(o, o->buf, n_w + 1, err);
    if (rc < 0)
        return rc;
    const double inv_n = 1.0 / o->n_total;
    double pen = 0;
    for (size_t k = 0; k < n_w; k++) {
        int is_intercept = k % stride == stride - 1;
        double wk = is_intercept ? 0.0 : w[k];
        pen += wk * wk;
        g[k] = (o->buf[k] + o->l2 * wk) * inv_n;
    }
    *f = (o->buf[n_w] + 0.5 * o->l2 * pen) * inv_n;
    return 0;
}

void lr_obj_free(lr_obj_t *o)
{
    kiln_free(o->ev.partial);
    kiln_free_aligned(o->ev.scratch);
    kiln_free(o->ev.bad_row);
    kiln_free(o->ev.bad_kind);
    kiln_free(o->buf);
    memset(o, 0, sizeof *o);
}

static int check_params(const km_logreg_params_t *p, kiln_err_t *err)
{
    if (!p)
        return kiln_err_set(err, KILN_EINVAL, "logreg: params is NULL");
    if (!(isfinite(p->l2) && p->l2 > 0))
        return kiln_err_at(err, KILN_EINVAL, "l2",
                           "logreg: l2 = %g: must be a finite number > 0 (l2 = 1/C)", p->l2);
    if (p->max_iter < 1)
        return kiln_err_at(err, KILN_EINVAL, "max_iter",
                           "logreg: max_iter = %d: must be >= 1", p->max_iter);
    if (!(isfinite(p->tol) && p->tol >= 0))
        return kiln_err_at(err, KILN_EINVAL, "tol",
                           "logreg: tol = %g: must be a finite number >= 0", p->tol);
    if (p->threads < 1 || p->threads > KM_LOGREG_MAX_THREADS)
        return kiln_err_at(err, KILN_EINVAL, "threads", "logreg: threads = %d: must be 1..%d",
                           p->threads, KM_LOGREG_MAX_THREADS);
    return 0;
}

/* Checks data and params, checks this rank's rows, agrees with the other
 * ranks through one sum of [class counts, n, d, refused] and allocates
 * the evaluator.  After a local error the rank still takes part in that sum,
 * so the others learn of it instead of waiting for it. */
int lr_obj_init(lr_obj_t *o, const km_data_t *data, const km_logreg_params_t *p,
                    const km_reduce_t *reduce, kiln_err_t *err)
{
    memset(o, 0, sizeof *o);
    int rc = check_params(p, err);
    if (rc < 0)
        return rc;
    if (!data)
        return kiln_err_set(err, KILN_EINVAL, "logreg: data is NULL");
    const int k_n = data->n_classes;
    const int ranks = reduce && reduce->sum ? reduce->n_ranks : 1;
    if (data->d == 0)
        return kiln_err_at(err, KILN_EINVAL, "d", "logreg: d = 0: x needs at least one feature");
    if (k_n < 2 || k_n > KM_LOGREG_MAX_CLASSES)
        return kiln_err_at(err, KILN_EINVAL, "n_classes",
                           "logreg: n_classes = %d: a classifier needs 2..%d classes", k_n,
                           KM_LOGREG_MAX_CLASSES);
    if (ranks < 1)
        return kiln_err_set(err, KILN_EINVAL, "logreg: reduce->n_ranks = %d", ranks);
    if (data->n == 0 && ranks == 1)
        return kiln_err_at(err, KILN_EINVAL, "n", "logreg: no rows (n = 0)");
    if (data->n > 0 && (!data->x || !data->y))
        return kiln_err_set(err, KILN_EINVAL, "logreg: %s is NULL with n = %zu rows",
                            !data->x ? "x" : "y", data->n);
    if (data->d > KM_LOGREG_MAX_FEATURES || data->n > SIZE_MAX / sizeof(float) / data->d)
        return kiln_err_at(err, KILN_EINVAL, "d", "logreg: %zu x %zu is too large (d <= %zu)",
                           data->n, data->d, KM_LOGREG_MAX_FEATURES);

    lr_eval_t *ev = &o->ev;
    ev->x = data->x;
    ev->y = data->y;
    ev->n = data->n;
    ev->d = data->d;
    ev->n_classes = k_n;
    ev->n_w = km_logreg_n_weights(data->d, k_n);
    ev->n_chunks = (data->n + KM_LOGREG_CHUNK_ROWS - 1) / KM_LOGREG_CHUNK_ROWS;
    ev->threads = p->threads;
    o->reduce = reduce;
    o->l2 = p->l2;
    size_t n_agree = (size_t)k_n + 3;
    size_t buf_len = ev->n_w + 1 > n_agree ? ev->n_w + 1 : n_agree;
    size_t n_ch = ev->n_chunks ? ev->n_chunks : 1;
    ev->partial = kiln_malloc(n_ch * (ev->n_w + 1) * sizeof(double));
    ev->bad_row = kiln_malloc(n_ch * sizeof(size_t));
    ev->bad_kind = kiln_malloc(n_ch * sizeof(int));
    ev->scratch = kiln_malloc_aligned((size_t)p->threads * BLOCK_ROWS * data->d * sizeof(double));
    o->buf = kiln_malloc(buf_len * sizeof(double));
    if (!ev->partial || !ev->bad_row || !ev->bad_kind || !ev->scratch || !o->buf) {
        lr_obj_free(o);
        return kiln_err_set(err, KILN_ENOMEM, "logreg: out of memory for %zu chunks of %zu weights",
                            n_ch, ev->n_w + 1);
    }

    /* local rows: the first bad row in row order, whatever the threads */
    lr_run(ev->n_chunks, ev->threads, lr_check_chunk, ev);
    size_t bad_row = 0;
    int bad_kind = 0;
    for (size_t c = 0; c < ev->n_chunks && !bad_kind; c++) {
        bad_row = ev->bad_row[c];
        bad_kind = ev->bad_kind[c];
    }
    double *agree = o->buf;
    memset(agree, 0, n_agree * sizeof *agree);
    if (!bad_kind)
        for (size_t i = 0; i < data->n; i++)
            agree[data->y[i]] += 1.0;
    agree[k_n] = (double)data->n;
    agree[k_n + 1] = (double)data->d;
    agree[k_n + 2] = bad_kind ? 1.0 : 0.0;
    rc = obj_sum(o, agree, n_agree, err);
    if (rc < 0)
        goto fail;
    if (bad_kind == 1) {
        rc = kiln_err_at(err, KILN_ENONFINITE, "x", "logreg: row %zu of x holds NaN or Inf",
                         bad_row - 1);
        goto fail;
    }
    if (bad_kind == 2) {
        rc = kiln_err_at(err, KILN_EINVAL, "y", "logreg: row %zu has label %d, outside [0, %d)",
                         bad_row - 1, (int)data->y[bad_row - 1], k_n);
        goto fail;
    }
    if (agree[k_n + 2] > 0) {
        rc = kiln_err_set(err, KILN_EINVAL, "logreg: %g other rank(s) refused their data",
                          agree[k_n + 2]);
        goto fail;
    }
    if (agree[k_n + 1] != (double)data->d * ranks) {
        rc = kiln_err_at(err, KILN_EINVAL, "d", "logreg: ranks disagree on d (this rank: %zu)",
                         data->d);
        goto fail;
    }
    o->n_total = agree[k_n];
    if (o->n_total == 0) {
        rc = kiln_err_at(err, KILN_EINVAL, "n", "logreg: no rows on any of %d ranks", ranks);
        goto fail;
    }
    int present = 0, first_present = -1, first_empty = -1;
    for (int k = 0; k < k_n; k++) {
        if (agree[k] > 0) {
            present++;
            first_present = first_present < 0 ? k : first_present;
        } else if (first_empty < 0) {
            first_empty = k;
        }
    }
    if (present == 1) {
        rc = kiln_err_at(err, KILN_EINVAL, "y",
                         "logreg: one class only (all %.0f rows are class %d of %d); a classifier "
                         "needs rows of at least two classes", o->n_total, first_present, k_n);
        goto fail;
    }
    if (first_empty >= 0) {
        rc = kiln_err_at(err, KILN_EINVAL, "y",
                         "logreg: class %d of n_classes = %d has no rows (%d classes present)",
                         first_empty, k_n, present);
        goto fail;
    }
    return 0;
fail:
    lr_obj_free(o);
    return rc;
}

int km_logreg_loss_grad(const km_data_t *data, const km_logreg_params_t *p, const double *w,
                        double *loss, double *grad, kiln_err_t *err)
{
    if (!w || !loss || !grad)
        return kiln_err_set(err, KILN_EINVAL, "logreg: loss_grad needs w, loss and grad");
    lr_obj_t o;
    int rc = lr_obj_init(&o, data, p, NULL, err);
    if (rc < 0)
        return rc;
    rc = lr_obj_eval(&o, w, loss, grad, err);
    lr_obj_free(&o);
    return rc;
}
