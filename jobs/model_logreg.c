/* model_logreg.c - the logreg model kind (model.h) over kernels/logreg.h.
 *   "model": {"kind": "logreg", "C": 1.0, "max_iter": 100, "tol": 1e-4}
 * C is scikit-learn's: the inverse of the L2 penalty. */
#include <stdio.h>
#include <stdlib.h>

#include "../core/kiln_alloc.h"
#include "../kernels/logreg.h"
#include "../kernels/kernels_cuda.h"
#include "model_int.h"

static int lr_parse(const void *model, void **params, kiln_err_t *err)
{
    static const char *const keys[] = {"C", "max_iter", "tol", NULL};
    const json_t *m = model;
    int rc = jb_model_check_keys(m, keys, err);
    if (rc < 0)
        return rc;
    km_logreg_params_t *p = kiln_malloc(sizeof *p);
    if (!p)
        return kiln_err_set(err, KILN_ENOMEM, "job: out of memory");
    *p = km_logreg_defaults();
    double c = 1.0 / p->l2;
    long long it = p->max_iter;
    if ((rc = jb_model_num(m, "C", 1e-9, 1e12, &c, err)) < 0 ||
        (rc = jb_model_int(m, "max_iter", 1, 100000, &it, err)) < 0 ||
        (rc = jb_model_num(m, "tol", 0, 1, &p->tol, err)) < 0) {
        kiln_free(p);
        return rc;
    }
    p->l2 = 1.0 / c;
    p->max_iter = (int)it;
    *params = p;
    return 0;
}

static char *lr_params_json(const void *params)
{
    const km_logreg_params_t *p = params;
    char buf[160];
    snprintf(buf, sizeof buf, "{\"C\":%.17g,\"max_iter\":%d,\"tol\":%.17g}", 1.0 / p->l2,
             p->max_iter, p->tol);
    char *s = malloc(sizeof buf);
    if (s)
        snprintf(s, sizeof buf, "%s", buf);
    return s;
}

static int lr_fit(const void *params, const km_data_t *train, const km_data_t *valid,
                  const km_reduce_t *reduce, int threads, uint64_t seed, void **model,
                  kiln_err_t *err)
{
    (void)valid;
    km_logreg_params_t p = *(const km_logreg_params_t *)params;
    p.threads = threads > 0 ? threads : 1;
    p.seed = seed;
    return km_logreg_fit(train, &p, reduce, (km_logreg_t **)model, err);
}

/* The same fit with the rows on the GPU (a context per fit: a train task
 * fits once). */
static int lr_fit_gpu(const void *params, const km_data_t *train, const km_reduce_t *reduce,
                  int device, uint64_t seed, void **model, kiln_err_t *err)
{
    km_logreg_params_t p = *(const km_logreg_params_t *)params;
    p.threads = 1;
    p.seed = seed;
    kc_ctx_t *ctx = NULL;
    int rc = kc_ctx_new(device, &ctx, err);
    if (rc == 0)
        rc = kc_logreg_fit(ctx, train, &p, reduce, (km_logreg_t **)model, err);
    kc_ctx_destroy(&ctx);
    return rc;
}

static int lr_predict(const void *model, const float *x, size_t n, float *scores, int32_t *pred,
                      kiln_err_t *err)
{
    return km_logreg_predict(model, x, n, scores, pred, err);
}

static size_t lr_n_outputs(const void *model)
{
    return km_logreg_n_outputs(model);
}

static int lr_save(const void *model, km_buf_t *b, kiln_err_t *err)
{
    return km_logreg_save(model, b, err);
}

static int lr_load(const void *bytes, size_t len, void **model, kiln_err_t *err)
{
    return km_logreg_load(bytes, len, (km_logreg_t **)model, err);
}

static void lr_free(void *model)
{
    km_logreg_t *m = model;
    km_logreg_free(&m);
}

static void lr_free_params(void *p)
{
    kiln_free(p);
}

const jb_model_kind_t jb_model_logreg = {
    .name = "logreg",
    .classifier = 1,
    .parse = lr_parse,
    .free_params = lr_free_params,
    .params_json = lr_params_json,
    .fit = lr_fit,
    .fit_gpu = lr_fit_gpu,
    .predict = lr_predict,
    .n_outputs = lr_n_outputs,
    .save = lr_save,
    .load = lr_load,
    .free_model = lr_free,
};
