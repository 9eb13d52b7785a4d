/* mlp_io.c - km_mlp_save / km_mlp_load: u32 magic "KMLP", u32 version,
 * u32 n_classes, u32 n_layers, u32 size[0..n_layers], then the weights as
 * f32 in km_mlp_weights' order, all little-endian. */
#include <math.h>

#include "mlp_impl.h"

int km_mlp_save(const km_mlp_t *m, km_buf_t *b, kiln_err_t *err)
{
    if (!m || !b)
        return kiln_err_set(err, KILN_EINVAL, "mlp save: model or buffer is NULL");
    km_buf_u32(b, MLP_MAGIC);
    km_buf_u32(b, MLP_VERSION);
    km_buf_u32(b, (uint32_t)m->n_classes);
    km_buf_u32(b, (uint32_t)m->n_layers);
    for (int l = 0; l <= m->n_layers; l++)
        km_buf_u32(b, (uint32_t)m->size[l]);
    km_buf_f32s(b, m->params, m->n_params);
    if (b->oom)
        return kiln_err_set(err, KILN_ENOMEM, "mlp save: no memory for %zu weights", m->n_params);
    return 0;
}

int km_mlp_load(const unsigned char *bytes, size_t len, km_mlp_t **out, kiln_err_t *err)
{
    km_rd_t r = {bytes, bytes ? len : 0, 0};
    uint32_t magic = 0, version = 0, n_classes = 0, n_layers = 0, size[MLP_MAX_LAYERS + 1] = {0};
    if (!out)
        return kiln_err_set(err, KILN_EINVAL, "mlp load: out is NULL");
    *out = NULL;
    if (km_rd_u32(&r, &magic) < 0 || magic != MLP_MAGIC)
        return kiln_err_set(err, KILN_EFORMAT, "mlp load: not an mlp model (magic)");
    if (km_rd_u32(&r, &version) < 0 || version != MLP_VERSION)
        return kiln_err_set(err, KILN_EFORMAT, "mlp load: version %u, this build reads %u",
                            version, MLP_VERSION);
    if (km_rd_u32(&r, &n_classes) < 0 || n_classes == 1 || n_classes > KM_MLP_MAX_CLASSES ||
        km_rd_u32(&r, &n_layers) < 0 || n_layers < 2 || n_layers > MLP_MAX_LAYERS)
        return kiln_err_set(err, KILN_EFORMAT, "mlp load: bad class or layer count");
    for (uint32_t l = 0; l <= n_layers; l++)
        if (km_rd_u32(&r, &size[l]) < 0)
            return kiln_err_set(err, KILN_EFORMAT, "mlp load: truncated layer sizes");
    int hidden[KM_MLP_MAX_HIDDEN];
    for (uint32_t l = 1; l < n_layers; l++) {
        if (size[l] < 1 || size[l] > KM_MLP_MAX_WIDTH)
            return kiln_err_set(err, KILN_EFORMAT, "mlp load: hidden layer %u has %u units", l, size[l]);
        hidden[l - 1] = (int)size[l];
    }
    if (size[0] < 1 || size[0] > KM_MLP_MAX_INPUTS || size[n_layers] != (n_classes ? n_classes : 1))
        return kiln_err_set(err, KILN_EFORMAT, "mlp load: bad input or output width");
    km_mlp_t *m = mlp_model_new((int)size[0], hidden, (int)n_layers - 1, (int)n_classes);
    if (!m)
        return kiln_err_set(err, KILN_ENOMEM, "mlp load: no memory for the model");
    if (r.len - r.off != m->n_params * 4) {
        int rc = kiln_err_set(err, KILN_EFORMAT, "mlp load: %zu weight bytes, the layers need %zu",
                              r.len - r.off, m->n_params * 4);
        km_mlp_free(&m);
        return rc;
    }
    km_rd_f32s(&r, m->params, m->n_params);
    for (size_t q = 0; q < m->n_params; q++)
        if (!isfinite(m->params[q])) {
            km_mlp_free(&m);
            return kiln_err_set(err, KILN_EFORMAT, "mlp load: weight %zu is not finite", q);
        }
    *out = m;
    return 0;
}

