/* train_ref.c - reference models for the GPU scoring checks (train_ref.h). */
#include "train_ref.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static uint64_t mix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static double gauss(uint64_t *s)
{
    double u = (double)((mix(s) >> 11) + 1) * 0x1.0p-53, v = (double)(mix(s) >> 11) * 0x1.0p-53;
    return sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v);
}

void gt_data(uint64_t seed, size_t n, size_t d, float *x, int32_t *y, float *target)
{
    uint64_t s = seed;
    for (size_t i = 0; i < n; i++) {
        int c = (int)(mix(&s) % 3);
        double t = 0;
        for (size_t j = 0; j < d; j++) {
            /* Class c shifts a few features; some features are rounded to
             * a coarse grid so that rows sit exactly on gbdt thresholds. */
            double v = gauss(&s) + (j % 3 == (size_t)c ? 1.5 : 0.0);
            if (j % 4 == 3)
                v = floor(v * 4.0) / 4.0;
            x[i * d + j] = (float)v;
            t += (j % 2 ? 0.5 : -0.25) * v;
        }
        y[i] = c;
        target[i] = (float)(t + 0.1 * gauss(&s));
    }
}

int gt_train(const float *x, const int32_t *y, const float *target, size_t n, size_t d,
             gt_models_t *m, kiln_err_t *err)
{
    int rc = 0;
    memset(m, 0, sizeof *m);
    int32_t *y2 = malloc(n * sizeof *y2);
    if (!y2)
        return kiln_err_set(err, KILN_ENOMEM, "train_ref: no memory");
    for (size_t i = 0; i < n; i++)
        y2[i] = y[i] > 0;
    km_data_t d3 = {x, n, d, y, NULL, 3}, d2 = {x, n, d, y2, NULL, 2}, dr = {x, n, d, NULL, target, 0};

    km_logreg_params_t lp = km_logreg_defaults();
    lp.threads = 4;
    km_mlp_params_t mp = km_mlp_defaults();
    mp.hidden[0] = 48;
    mp.n_hidden = 2;
    mp.hidden[1] = 24;
    mp.epochs = 4;
    mp.threads = 8;
    km_gbdt_params_t gp = km_gbdt_defaults();
    gp.n_rounds = 40;
    gp.max_leaves = 15;
    gp.n_threads = 4;
    km_anomaly_params_t ap;
    km_anomaly_params_default(&ap);
    km_data_t da = d3;            /* healthy = class 0 */

    m->name[0] = "logreg_binary"; m->kind[0] = 0;
    m->name[1] = "logreg_3class"; m->kind[1] = 0;
    m->name[2] = "mlp_3class";    m->kind[2] = 1;
    m->name[3] = "mlp_regressor"; m->kind[3] = 1;
    m->name[4] = "gbdt_binary";   m->kind[4] = 2;
    m->name[5] = "gbdt_3class";   m->kind[5] = 2;
    m->name[6] = "gbdt_regressor"; m->kind[6] = 2;
    m->name[7] = "anomaly";       m->kind[7] = 3;
    if ((rc = km_logreg_fit(&d2, &lp, NULL, (km_logreg_t **)&m->model[0], err)) < 0 ||
        (rc = km_logreg_fit(&d3, &lp, NULL, (km_logreg_t **)&m->model[1], err)) < 0 ||
        (rc = km_mlp_fit(&d3, &mp, NULL, (km_mlp_t **)&m->model[2], err)) < 0 ||
        (rc = km_mlp_fit(&dr, &mp, NULL, (km_mlp_t **)&m->model[3], err)) < 0 ||
        (rc = km_gbdt_fit(&d2, NULL, &gp, NULL, (km_gbdt_t **)&m->model[4], err)) < 0 ||
        (rc = km_gbdt_fit(&d3, NULL, &gp, NULL, (km_gbdt_t **)&m->model[5], err)) < 0 ||
        (rc = km_gbdt_fit(&dr, NULL, &gp, NULL, (km_gbdt_t **)&m->model[6], err)) < 0 ||
        (rc = km_anomaly_fit(&da, &ap, NULL, (km_anomaly_t **)&m->model[7], err)) < 0)
        gt_free(m);
    free(y2);
    return rc;
}

void gt_free(gt_models_t *m)
{
    for (int i = 0; i < GT_N_MODELS; i++) {
        switch (m->kind[i]) {
        case 0: km_logreg_free((km_logreg_t **)&m->model[i]); break;
        case 1: km_mlp_free((km_mlp_t **)&m->model[i]); break;
        case 2: km_gbdt_free((km_gbdt_t **)&m->model[i]); break;
        default: km_anomaly_free((km_anomaly_t **)&m->model[i]); break;
        }
    }
}

int gt_predict(const gt_models_t *m, int i, const float *x, size_t n, float *scores,
               int32_t *pred, kiln_err_t *err)
{
    switch (m->kind[i]) {
    case 0: return km_logreg_predict(m->model[i], x, n, scores, pred, err);
    case 1: return km_mlp_predict(m->model[i], x, n, scores, pred, err);
    case 2: return km_gbdt_predict(m->model[i], x, n, scores, pred, err);
    default: return km_anomaly_predict(m->model[i], x, n, scores, pred, err);
    }
}

size_t gt_n_outputs(const gt_models_t *m, int i)
{
    switch (m->kind[i]) {
    case 0: return km_logreg_n_outputs(m->model[i]);
    case 1: return km_mlp_n_outputs(m->model[i]);
    case 2: return km_gbdt_n_outputs(m->model[i]);
    default: return km_anomaly_n_outputs(m->model[i]);
    }
}

int gt_to_gpu(const gt_models_t *m, int i, kc_ctx_t *ctx, kc_model_t **out, kiln_err_t *err)
{
    switch (m->kind[i]) {
    case 0: return kc_model_from_logreg(ctx, m->model[i], out, err);
    case 1: return kc_model_from_mlp(ctx, m->model[i], out, err);
    case 2: return kc_model_from_gbdt(ctx, m->model[i], out, err);
    default: return kc_model_from_anomaly(ctx, m->model[i], out, err);
    }
}
