/* model_mlp.c - the mlp model kind (model.h) over kernels/mlp.h: 1 to 3
 * ReLU hidden layers trained with Adam on mini-batches; softmax for labels,
 * squared error for a target.
 *   "model": {"kind": "mlp", "hidden": [64, 32], "lr": 0.001, "batch": 200,
 *             "epochs": 20, "l2": 0.0001} */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/kiln_alloc.h"
#include "../kernels/mlp.h"
#include "../kernels/kernels_cuda.h"
#include "model_int.h"

static int mlp_parse(const void *model, void **params, kiln_err_t *err)
{
    static const char *const keys[] = {"hidden", "lr", "batch", "epochs", "l2", NULL};
    const json_t *m = model;
    int rc = jb_model_check_keys(m, keys, err);
    if (rc < 0)
        return rc;
    km_mlp_params_t *p = kiln_malloc(sizeof *p);
    if (!p)
        return kiln_err_set(err, KILN_ENOMEM, "job: out of memory");
    *p = km_mlp_defaults();
    p->epochs = 20;   /* sklearn's 200 is for its early stopping, which kiln has not */
    const json_t *h = json_object_get(m, "hidden");
    if (h) {
        if (!json_is_array(h) || json_array_size(h) < 1 ||
            json_array_size(h) > KM_MLP_MAX_HIDDEN) {
            rc = kiln_err_at(err, KILN_ESPEC, "model.hidden",
                             "job: model.hidden: 1 to %d layer sizes, e.g. [64, 32]",
                             KM_MLP_MAX_HIDDEN);
            goto fail;
        }
        p->n_hidden = (int)json_array_size(h);
        for (int i = 0; i < p->n_hidden; i++) {
            const json_t *u = json_array_get(h, (size_t)i);
            if (!json_is_integer(u) || json_integer_value(u) < 1 || json_integer_value(u) > 4096) {
                rc = kiln_err_at(err, KILN_ESPEC, "model.hidden",
                                 "job: model.hidden[%d]: a layer has 1..4096 units", i);
                goto fail;
            }
            p->hidden[i] = (int)json_integer_value(u);
        }
    }
    long long batch = p->batch, epochs = p->epochs;
    if ((rc = jb_model_num(m, "lr", 1e-9, 10, &p->lr, err)) < 0 ||
        (rc = jb_model_num(m, "l2", 0, 1e6, &p->l2, err)) < 0 ||
        (rc = jb_model_int(m, "batch", 1, 1000000, &batch, err)) < 0 ||
        (rc = jb_model_int(m, "epochs", 1, 100000, &epochs, err)) < 0)
        goto fail;
    p->batch = (int)batch;
    p->epochs = (int)epochs;
    *params = p;
    return 0;
fail:
    kiln_free(p);
    return rc;
}

static char *mlp_params_json(const void *params)
{
    const km_mlp_params_t *p = params;
    char buf[400], hid[80] = "";
    for (int i = 0; i < p->n_hidden; i++)
        snprintf(hid + strlen(hid), sizeof hid - strlen(hid), "%s%d", i ? "," : "", p->hidden[i]);
    snprintf(buf, sizeof buf,
             "{\"hidden\":[%s],\"lr\":%.17g,\"batch\":%d,\"epochs\":%d,\"l2\":%.17g}", hid, p->lr,
             p->batch, p->epochs, p->l2);
    char *s = malloc(strlen(buf) + 1);
    if (s)
        memcpy(s, buf, strlen(buf) + 1);
    return s;
}

static int mlp_fit(const void *params, const km_data_t *train, const km_data_t *valid,
                   const km_reduce_t *reduce, int threads, uint64_t seed, void **model,
                   kiln_err_t *err)
{
    (void)valid;
    km_mlp_params_t p = *(const km_mlp_params_t *)params;
    p.threads = threads > 0 ? threads : 1;
    p.seed = seed;
    return km_mlp_fit(train, &p, reduce, (km_mlp_t **)model, err);
}

/* The same fit with the rows on the GPU (a context per fit: a train task
 * fits once). */
static int mlp_fit_gpu(const void *params, const km_data_t *train, const km_reduce_t *reduce,
                  int device, uint64_t seed, void **model, kiln_err_t *err)
{
    km_mlp_params_t p = *(const km_mlp_params_t *)params;
    p.threads = 1;
    p.seed = seed;
    kc_ctx_t *ctx = NULL;
    int rc = kc_ctx_new(device, &ctx, err);
    if (rc == 0)
        rc = kc_mlp_fit(ctx, train, &p, reduce, (km_mlp_t **)model, err);
    kc_ctx_destroy(&ctx);
    return rc;
}

static int mlp_predict(const void *model, const float *x, size_t n, float *scores, int32_t *pred,
                       kiln_err_t *err)
{
    return km_mlp_predict(model, x, n, scores, pred, err);
}

static void *mlp_workspace_new(const void *model)
{
    return km_mlp_ws_new(model);
}

static void mlp_workspace_free(void *ws)
{
    km_mlp_ws_t *w = ws;
    km_mlp_ws_free(&w);
}

static int mlp_predict_ws(const void *model, void *ws, const float *x, size_t n, float *scores,
                          int32_t *pred, kiln_err_t *err)
{
    return km_mlp_predict_ws(model, ws, x, n, scores, pred, err);
}

static size_t mlp_n_outputs(const void *model)
{
    return km_mlp_n_outputs(model);
}

static int mlp_save(const void *model, km_buf_t *b, kiln_err_t *err)
{
    return km_mlp_save(model, b, err);
}

static int mlp_load(const void *bytes, size_t len, void **model, kiln_err_t *err)
{
    return km_mlp_load(bytes, len, (km_mlp_t **)model, err);
}

static void mlp_free(void *model)
{
    km_mlp_t *m = model;
    km_mlp_free(&m);
}

static void mlp_free_params(void *p)
{
    kiln_free(p);
}

const jb_model_kind_t jb_model_mlp = {
    .name = "mlp",
    .classifier = 1,
    .regressor = 1,
    .parse = mlp_parse,
    .free_params = mlp_free_params,
    .params_json = mlp_params_json,
    .fit = mlp_fit,
    .fit_gpu = mlp_fit_gpu,
    .predict = mlp_predict,
    .ws_new = mlp_workspace_new,
    .ws_free = mlp_workspace_free,
    .predict_ws = mlp_predict_ws,
    .n_outputs = mlp_n_outputs,
    .save = mlp_save,
    .load = mlp_load,
    .free_model = mlp_free,
};
