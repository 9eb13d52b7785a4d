/* scoregpu.c - the score job's GPU path (scoregpu.h). */
#include "scoregpu.h"

#include <stdio.h>
#include <string.h>

#include "../core/kiln_alloc.h"
#include "../kernels/kernels_cuda.h"

struct jb_scoregpu {
    const jb_modelfile_t *m;
    kc_ctx_t             *kc;
    kc_model_t           *model;
    float                *z;        /* standardized rows [cap x n_features] */
    size_t                cap;
    char                  name[280];
};

/* kc_model_from_<kind> by the file's kind name; a kind without a GPU twin
 * is KILN_EUNSUPPORTED like a missing GPU. */
static int upload(jb_scoregpu_t *g, kiln_err_t *err)
{
    const char *kind = g->m->kind->name;
    if (!strcmp(kind, "logreg"))
        return kc_model_from_logreg(g->kc, g->m->model, &g->model, err);
    if (!strcmp(kind, "mlp"))
        return kc_model_from_mlp(g->kc, g->m->model, &g->model, err);
    if (!strcmp(kind, "gbdt"))
        return kc_model_from_gbdt(g->kc, g->m->model, &g->model, err);
    if (!strcmp(kind, "anomaly"))
        return kc_model_from_anomaly(g->kc, g->m->model, &g->model, err);
    return kiln_err_set(err, KILN_EUNSUPPORTED, "GPU path: no GPU scoring for %s models", kind);
}

int jb_scoregpu_new(const jb_modelfile_t *m, int device, jb_scoregpu_t **out, kiln_err_t *err)
{
    *out = NULL;
    jb_scoregpu_t *g = kiln_calloc(1, sizeof *g);
    if (!g)
        return kiln_err_set(err, KILN_ENOMEM, "GPU path: out of memory");
    g->m = m;
    kc_device_info_t info;
    int rc;
    if ((rc = kc_device_info(device, &info, err)) < 0 || (rc = kc_ctx_new(device, &g->kc, err)) < 0 ||
        (rc = upload(g, err)) < 0) {
        jb_scoregpu_free(&g);
        return rc;
    }
    if (kc_model_n_features(g->model) != m->n_features) {
        kiln_err_set(err, KILN_EINTERNAL, "GPU path: the model takes %zu features, its file %zu",
                     kc_model_n_features(g->model), m->n_features);
        jb_scoregpu_free(&g);
        return KILN_EINTERNAL;
    }
    snprintf(g->name, sizeof g->name, "GPU %d (%.200s)", device, info.name);
    *out = g;
    return 0;
}

void jb_scoregpu_free(jb_scoregpu_t **gp)
{
    if (!gp || !*gp)
        return;
    jb_scoregpu_t *g = *gp;
    kc_model_destroy(&g->model);
    kc_ctx_destroy(&g->kc);
    kiln_free(g->z);
    kiln_free(g);
    *gp = NULL;
}

const char *jb_scoregpu_device_name(const jb_scoregpu_t *g)
{
    return g->name;
}

int jb_scoregpu_predict(jb_scoregpu_t *g, const float *x, size_t n, float *scores,
                        int32_t *pred, kiln_err_t *err)
{
    const size_t d = g->m->n_features;
    if (n > g->cap) {
        float *z = kiln_realloc(g->z, n * d * sizeof *z);
        if (!z)
            return kiln_err_set(err, KILN_ENOMEM, "GPU path: out of memory for %zu rows", n);
        g->z = z;
        g->cap = n;
    }
    /* The scaler runs here, as on the CPU path: the same float32 inputs
     * reach the model either way. */
    int rc = km_scaler_transform(g->m->scaler, x, n, d, g->z, err);
    return rc < 0 ? rc : kc_model_predict(g->model, g->z, n, scores, pred, err);
}
