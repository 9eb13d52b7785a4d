/* mlp.c - the multilayer perceptron of kernels/mlp.h: the model's shape,
 * parameter and data checks, predict, and the loss and gradient for tests.
 * Training is in mlp_train.c, one chunk's arithmetic in mlp_chunk.c, the
 * bytes in mlp_io.c. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "../../core/kiln_alloc.h"
#include "mlp_impl.h"

/* ---- model shape and validation ------------------------------------------ */

km_mlp_t *mlp_model_new(int d, const int *hidden, int n_hidden, int n_classes)
{
    km_mlp_t *m = kiln_calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->n_layers = n_hidden + 1;
    m->n_classes = n_classes;
    m->size[0] = d;
    for (int h = 0; h < n_hidden; h++)
        m->size[h + 1] = hidden[h];
    m->size[m->n_layers] = n_classes ? n_classes : 1;
    for (int l = 0; l < m->n_layers; l++) {
        m->w_off[l] = m->n_params;
        m->n_params += (size_t)m->size[l] * (size_t)m->size[l + 1] + (size_t)m->size[l + 1];
    }
    m->params = kiln_malloc_aligned(m->n_params * sizeof(float));
    if (!m->params) {
        kiln_free(m);
        return NULL;
    }
    return m;
}

void km_mlp_free(km_mlp_t **pm)
{
    if (!pm || !*pm)
        return;
    kiln_free_aligned((*pm)->params);
    kiln_free(*pm);
    *pm = NULL;
}

km_mlp_params_t km_mlp_defaults(void)
{
    km_mlp_params_t p = {.n_hidden = 1, .hidden = {100, 0, 0}, .lr = 1e-3, .beta1 = 0.9,
                         .beta2 = 0.999, .eps = 1e-8, .l2 = 1e-4, .batch = 200,
                         .epochs = 200, .threads = 1, .seed = 0};
    return p;
}

int mlp_check_params(const km_mlp_params_t *p, kiln_err_t *err)
{
    if (!p)
        return kiln_err_at(err, KILN_EINVAL, "params", "mlp: params is NULL");
    if (p->n_hidden < 1 || p->n_hidden > KM_MLP_MAX_HIDDEN)
        return kiln_err_at(err, KILN_EINVAL, "params.n_hidden",
                           "mlp: n_hidden is %d, must be 1..%d", p->n_hidden, KM_MLP_MAX_HIDDEN);
    for (int h = 0; h < p->n_hidden; h++)
        if (p->hidden[h] < 1 || p->hidden[h] > KM_MLP_MAX_WIDTH) {
            char where[32];
            snprintf(where, sizeof where, "params.hidden[%d]", h);
            return kiln_err_at(err, KILN_EINVAL, where, "mlp: hidden[%d] is %d units, must be 1..%d",
                               h, p->hidden[h], KM_MLP_MAX_WIDTH);
        }
    if (!(p->lr > 0.0 && p->lr <= 10.0))
        return kiln_err_at(err, KILN_EINVAL, "params.lr", "mlp: lr is %g, must be in (0, 10]", p->lr);
    if (!(p->beta1 >= 0.0 && p->beta1 < 1.0))
        return kiln_err_at(err, KILN_EINVAL, "params.beta1", "mlp: beta1 is %g, must be in [0, 1)", p->beta1);
    if (!(p->beta2 >= 0.0 && p->beta2 < 1.0))
        return kiln_err_at(err, KILN_EINVAL, "params.beta2", "mlp: beta2 is %g, must be in [0, 1)", p->beta2);
    if (!(p->eps > 0.0 && p->eps < 1.0))
        return kiln_err_at(err, KILN_EINVAL, "params.eps", "mlp: eps is %g, must be in (0, 1)", p->eps);
    if (!(p->l2 >= 0.0 && p->l2 <= 1e6))
        return kiln_err_at(err, KILN_EINVAL, "params.l2", "mlp: l2 is %g, must be in [0, 1e6]", p->l2);
    if (p->batch < 1)
        return kiln_err_at(err, KILN_EINVAL, "params.batch", "mlp: batch is %d rows, must be >= 1", p->batch);
    if (p->epochs < 1 || p->epochs > 1000000)
        return kiln_err_at(err, KILN_EINVAL, "params.epochs", "mlp: epochs is %d, must be 1..1000000", p->epochs);
    if (p->threads < 1 || p->threads > 64)
        return kiln_err_at(err, KILN_EINVAL, "params.threads", "mlp: threads is %d, must be 1..64", p->threads);
    return 0;
}

/* The data checks every rank makes on its own rows; counts[] (n_classes
 * entries) gets the rows per class. */
int mlp_check_data(const km_data_t *data, double *counts, kiln_err_t *err)
{
    if (!data || !data->x)
        return kiln_err_at(err, KILN_EINVAL, "data.x", "mlp: no data (x is NULL)");
    if (data->n == 0 || data->n > UINT32_MAX)
        return kiln_err_at(err, KILN_ESHAPE, "data.n", "mlp: %zu rows, must be 1..%u", data->n, UINT32_MAX);
    if (data->d == 0 || data->d > KM_MLP_MAX_INPUTS)
        return kiln_err_at(err, KILN_ESHAPE, "data.d", "mlp: %zu features per row, must be 1..%d",
                           data->d, KM_MLP_MAX_INPUTS);
    if (data->n_classes == 1 || data->n_classes < 0 || data->n_classes > KM_MLP_MAX_CLASSES)
        return kiln_err_at(err, KILN_EINVAL, "data.n_classes",
                           "mlp: n_classes is %d: a classifier needs 2..%d classes (one class only "
                           "cannot be learned), a regressor 0", data->n_classes, KM_MLP_MAX_CLASSES);
    if (data->n_classes ? !data->y : !data->target)
        return kiln_err_at(err, KILN_EINVAL, data->n_classes ? "data.y" : "data.target",
                           "mlp: %s is NULL", data->n_classes ? "y (class labels)" : "target");
    for (size_t i = 0; i < data->n; i++) {
        const float *row = data->x + i * data->d;
        float acc = 0.0f;
        for (size_t j = 0; j < data->d; j++)
            acc += row[j] * 0.0f;      /* NaN or Inf anywhere makes acc NaN */
        if (acc != 0.0f)
            for (size_t j = 0; j < data->d; j++)
                if (!isfinite(row[j]))
                    return kiln_err_at(err, KILN_ENONFINITE, "data.x",
                                       "mlp: x row %zu column %zu is %g", i, j, row[j]);
        if (data->n_classes) {
            const int32_t y = data->y[i];
            if (y < 0 || y >= data->n_classes)
                return kiln_err_at(err, KILN_EINVAL, "data.y", "mlp: y row %zu is class %d, not in 0..%d",
                                   i, (int)y, data->n_classes - 1);
            counts[y] += 1.0;
        } else if (!isfinite(data->target[i])) {
            return kiln_err_at(err, KILN_ENONFINITE, "data.target", "mlp: target row %zu is %g",
                               i, data->target[i]);
        }
    }
    return 0;
}

/* ---- predict, introspection, loss ------------------------------------------ */

/* Predict needs only the activations: no deltas (mlp_ws_free frees NULLs). */
struct km_mlp_ws {
    int      n_layers;
    int      size[MLP_MAX_LAYERS + 1];
    mlp_ws_t ws;
};

km_mlp_ws_t *km_mlp_ws_new(const km_mlp_t *m)
{
    if (!m)
        return NULL;
    km_mlp_ws_t *w = kiln_calloc(1, sizeof *w);
    if (!w)
        return NULL;
    w->n_layers = m->n_layers;
    for (int l = 0; l <= m->n_layers; l++) {
        w->size[l] = m->size[l];
        w->ws.act[l] = kiln_malloc_aligned((size_t)MLP_CHUNK_ROWS * (size_t)m->size[l] * sizeof(float));
        if (!w->ws.act[l]) {
            km_mlp_ws_free(&w);
            return NULL;
        }
    }
    return w;
}

void km_mlp_ws_free(km_mlp_ws_t **pw)
{
    if (!pw || !*pw)
        return;
    mlp_ws_free(&(*pw)->ws);
    kiln_free(*pw);
    *pw = NULL;
}

int km_mlp_predict_ws(const km_mlp_t *m, km_mlp_ws_t *w, const float *x, size_t n, float *scores,
                      int32_t *pred, kiln_err_t *err)
{
    if (!m || !w || (n && (!x || !scores)))
        return kiln_err_set(err, KILN_EINVAL, "mlp predict: model, workspace, x or scores is NULL");
    if (w->n_layers != m->n_layers || memcmp(w->size, m->size, (size_t)(m->n_layers + 1) * sizeof(int)))
        return kiln_err_set(err, KILN_EINVAL, "mlp predict: the workspace was made for a model of "
                            "other layer widths");
    const size_t d = (size_t)m->size[0], L = (size_t)m->n_layers, n_out = (size_t)m->size[L];
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < d; j++)
            if (!isfinite(x[i * d + j]))
                return kiln_err_at(err, KILN_ENONFINITE, "x", "mlp predict: x row %zu column %zu is %g",
                                   i, j, x[i * d + j]);
    mlp_ws_t *ws = &w->ws;
    for (size_t i0 = 0; i0 < n; i0 += MLP_CHUNK_ROWS) {
        const size_t M = n - i0 < MLP_CHUNK_ROWS ? n - i0 : MLP_CHUNK_ROWS;
        memcpy(ws->act[0], x + i0 * d, M * d * sizeof(float));
        mlp_forward(m, m->params, ws, M);
        memcpy(scores + i0 * n_out, ws->act[L], M * n_out * sizeof(float));
        if (pred && m->n_classes)
            for (size_t i = 0; i < M; i++) {
                const float *row = ws->act[L] + i * n_out;
                size_t best = 0;
                for (size_t c = 1; c < n_out; c++)
                    if (row[c] > row[best])
                        best = c;
                pred[i0 + i] = (int32_t)best;
            }
    }
    return 0;
}

int km_mlp_predict(const km_mlp_t *m, const float *x, size_t n, float *scores, int32_t *pred,
                   kiln_err_t *err)
{
    if (!m || (n && (!x || !scores)))
        return kiln_err_set(err, KILN_EINVAL, "mlp predict: model, x or scores is NULL");
    km_mlp_ws_t *w = km_mlp_ws_new(m);
    if (!w)
        return kiln_err_set(err, KILN_ENOMEM, "mlp predict: no memory for activations");
    int rc = km_mlp_predict_ws(m, w, x, n, scores, pred, err);
    km_mlp_ws_free(&w);
    return rc;
}

size_t km_mlp_n_outputs(const km_mlp_t *m) { return m ? (size_t)m->size[m->n_layers] : 0; }
size_t km_mlp_n_params(const km_mlp_t *m) { return m ? m->n_params : 0; }
const float *km_mlp_weights(const km_mlp_t *m) { return m ? m->params : NULL; }

int km_mlp_layer_sizes(const km_mlp_t *m, int sizes[KM_MLP_MAX_HIDDEN + 2])
{
    for (int l = 0; l <= m->n_layers; l++)
        sizes[l] = m->size[l];
    return m->n_layers + 1;
}

int km_mlp_loss_grad(const km_mlp_t *m, const km_data_t *data, double l2, double *loss,
                     double *grad, kiln_err_t *err)
{
    if (!m || !loss || !grad)
        return kiln_err_set(err, KILN_EINVAL, "mlp loss_grad: model, loss or grad is NULL");
    if (!data || data->d != (size_t)m->size[0] || data->n_classes != m->n_classes)
        return kiln_err_at(err, KILN_ESHAPE, "data", "mlp loss_grad: data is not shaped as the model "
                           "(d %d, %d classes)", m->size[0], m->n_classes);
    const size_t P = m->n_params, n = data->n;
    int rc = 0;
    mlp_ws_t ws;
    float *wt = kiln_malloc_aligned(P * sizeof *wt), *g = kiln_calloc(P, sizeof *g);
    size_t *idx = kiln_malloc((n ? n : 1) * sizeof *idx);
    if (mlp_ws_init(&ws, m) < 0 || !wt || !g || !idx) {
        rc = kiln_err_set(err, KILN_ENOMEM, "mlp loss_grad: no memory");
        goto out;
    }
    double *counts = NULL;
    if ((rc = mlp_check_data(data, counts = kiln_calloc((size_t)m->n_classes + 1, sizeof *counts), err)) < 0) {
        kiln_free(counts);
        goto out;
    }
    kiln_free(counts);
    mlp_transpose_weights(m, m->params, wt);
    for (size_t i = 0; i < n; i++)
        idx[i] = i;
    double sum = 0.0, sq = 0.0;
    for (size_t r = 0; r < n; r += MLP_CHUNK_ROWS)
        sum += mlp_chunk_grad(m, m->params, wt, &ws, data, idx + r, n - r < MLP_CHUNK_ROWS ? n - r : MLP_CHUNK_ROWS,
                          g, r == 0, 1);
    for (int l = 0; l < m->n_layers; l++) {
        const size_t base = m->w_off[l], nw = (size_t)m->size[l] * (size_t)m->size[l + 1];
        for (size_t q = base; q < base + nw; q++) {
            sq += (double)m->params[q] * m->params[q];
            grad[q] = ((double)g[q] + l2 * m->params[q]) / (double)n;
        }
        for (size_t q = base + nw; q < base + nw + (size_t)m->size[l + 1]; q++)
            grad[q] = (double)g[q] / (double)n;
    }
    *loss = (sum + 0.5 * l2 * sq) / (double)n;
out:
    mlp_ws_free(&ws);
    kiln_free_aligned(wt);
    kiln_free(g);
    kiln_free(idx);
    return rc;
}
