/* score_mlp.cu - the multilayer perceptron's forward pass on the GPU, as
 * km_mlp_predict: each layer a cuBLAS SGEMM (float32, no TF32: the default
 * math mode, set explicitly) then bias and ReLU in one elementwise pass; the
 * output layer's softmax (exp below e^-60 is 0, as the reference) per row.
 * Row-major activations [M x K] times W [K x N] row-major is, in cuBLAS's
 * column-major terms, C^T = W^T A^T with W^T being W's memory as is. */
#include <cublas_v2.h>
#include <string.h>

#include "kc_score.h"

extern "C" {
#include "../../core/kiln_alloc.h"
}

void kc_cublas_destroy(void *handle)
{
    cublasDestroy((cublasHandle_t)handle);
}

static int cublas_err(kiln_err_t *err, cublasStatus_t s, const char *what)
{
    return kiln_err_set(err, s == CUBLAS_STATUS_ALLOC_FAILED ? KILN_ENOMEM : KILN_EIO,
                        "cublas: %s: %s", what, cublasGetStatusString(s));
}

static int ctx_cublas(kc_ctx_t *ctx, cublasHandle_t *out, kiln_err_t *err)
{
    if (!ctx->cublas) {
        cublasHandle_t h;
        cublasStatus_t s = cublasCreate(&h);
        if (s != CUBLAS_STATUS_SUCCESS)
            return cublas_err(err, s, "cublasCreate");
        if ((s = cublasSetMathMode(h, CUBLAS_DEFAULT_MATH)) != CUBLAS_STATUS_SUCCESS) {
            cublasDestroy(h);
            return cublas_err(err, s, "cublasSetMathMode");
        }
        ctx->cublas = (void *)h;
    }
    *out = (cublasHandle_t)ctx->cublas;
    return 0;
}

__global__ void kc_bias_act_kernel(float *__restrict__ z, size_t M, int N,
                                   const float *__restrict__ bias, int relu)
{
    const size_t total = M * (size_t)N;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total;
         i += (size_t)gridDim.x * blockDim.x) {
        const float v = z[i] + __ldg(bias + i % (size_t)N);
        z[i] = relu ? (v > 0.0f ? v : 0.0f) : v;
    }
}

/* One thread per row: softmax in float in the reference's order, then the
 * scores and the most probable class (lowest on a tie). */
__global__ void kc_softmax_kernel(const float *__restrict__ z, size_t M, int N, int classify,
                                  float *__restrict__ scores, int32_t *__restrict__ pred)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < M;
         i += (size_t)gridDim.x * blockDim.x) {
        const float *row = z + i * (size_t)N;
        float *out = scores + i * (size_t)N;
        if (!classify) {
            for (int c = 0; c < N; c++)
                out[c] = row[c];
            continue;
        }
        float top = row[0], sum = 0.0f;
        for (int c = 1; c < N; c++)
            top = row[c] > top ? row[c] : top;
        for (int c = 0; c < N; c++) {
            const float e = row[c] - top;
            const float v = e > -60.0f ? expf(e) : 0.0f;
            out[c] = v;
            sum += v;
        }
        const float inv = 1.0f / sum;
        int best = 0;
        for (int c = 0; c < N; c++) {
            out[c] *= inv;
            if (out[c] > out[best])
                best = c;
        }
        if (pred)
            pred[i] = best;
    }
}

int kc_model_from_mlp(kc_ctx_t *ctx, const km_mlp_t *mlp, kc_model_t **out, kiln_err_t *err)
{
    int rc, sizes[KM_MLP_MAX_HIDDEN + 2];
    *out = NULL;
    if (!mlp)
        return kiln_err_set(err, KILN_EINVAL, "cuda score: NULL mlp model");
    if ((rc = kc_ctx_enter(ctx, err)) < 0)
        return rc;
    const int n_sizes = km_mlp_layer_sizes(mlp, sizes);
    kc_model_t *m = (kc_model_t *)kiln_calloc(1, sizeof *m);
    if (!m)
        return kiln_err_set(err, KILN_ENOMEM, "cuda score: no memory for a model");
    m->ctx = ctx;
    m->kind = KC_MLP;
    m->n_layers = n_sizes - 1;
    memcpy(m->size, sizes, (size_t)n_sizes * sizeof *sizes);
    m->d = (size_t)sizes[0];
    m->n_out = (size_t)sizes[m->n_layers];
    /* A classifier has a probability per class (>= 2); a regressor one value. */
    m->n_classes = m->n_out >= 2 ? (int)m->n_out : 0;
    size_t off = 0, widest = 0;
    for (int l = 0; l < m->n_layers; l++) {
        m->w_off[l] = off;
        off += (size_t)sizes[l] * (size_t)sizes[l + 1] + (size_t)sizes[l + 1];
        if ((size_t)sizes[l + 1] > widest)
            widest = (size_t)sizes[l + 1];
    }
    if (off != km_mlp_n_params(mlp)) {
        kc_model_destroy(&m);
        return kiln_err_set(err, KILN_EINTERNAL, "cuda score: mlp has %zu params, layers say %zu",
                            km_mlp_n_params(mlp), off);
    }
    const size_t act = (size_t)KC_SCORE_ROWS_PER_CHUNK * widest * sizeof(float);
    if ((rc = kc_dev_alloc(ctx, off * sizeof(float), (void **)&m->d_params, err)) < 0 ||
        (rc = kc_copy_to_dev(ctx, m->d_params, km_mlp_weights(mlp), off * sizeof(float), err)) < 0 ||
        (rc = kc_dev_alloc(ctx, act, (void **)&m->d_act[0], err)) < 0 ||
        (rc = kc_dev_alloc(ctx, act, (void **)&m->d_act[1], err)) < 0) {
        kc_model_destroy(&m);
        return rc;
    }
    *out = m;
    return 0;
}

int kc_mlp_score(kc_model_t *m, const float *d_x, size_t n, float *d_scores, int32_t *d_pred,
                 kiln_err_t *err)
{
    int rc;
    cublasHandle_t h = NULL;
    cublasStatus_t s;
    if ((rc = ctx_cublas(m->ctx, &h, err)) < 0)
        return rc;
    cudaStream_t st = m->ctx->stream[0];
    if ((s = cublasSetStream(h, st)) != CUBLAS_STATUS_SUCCESS)
        return cublas_err(err, s, "cublasSetStream");
    kc_launch_nonfinite(d_x, n, m->d, m->d_bad, st);
    const float one = 1.0f, zero = 0.0f;
    const unsigned grid = (unsigned)m->ctx->prop.multiProcessorCount * 8;
    for (size_t r0 = 0; r0 < n; r0 += KC_SCORE_ROWS_PER_CHUNK) {
        const size_t M = n - r0 < KC_SCORE_ROWS_PER_CHUNK ? n - r0 : KC_SCORE_ROWS_PER_CHUNK;
        const float *a = d_x + r0 * m->d;
        float *z = NULL;
        for (int l = 0; l < m->n_layers; l++) {
            const int K = m->size[l], N = m->size[l + 1];
            const float *W = m->d_params + m->w_off[l], *bias = W + (size_t)K * N;
            z = m->d_act[l & 1];
            s = cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, N, (int)M, K, &one, W, N, a, K, &zero, z, N);
            if (s != CUBLAS_STATUS_SUCCESS)
                return cublas_err(err, s, "cublasSgemm (mlp layer)");
            kc_bias_act_kernel<<<grid, 256, 0, st>>>(z, M, N, bias, l + 1 < m->n_layers);
            a = z;
        }
        kc_softmax_kernel<<<grid, 128, 0, st>>>(z, M, (int)m->n_out, m->n_classes != 0,
                                                d_scores + r0 * m->n_out, d_pred ? d_pred + r0 : NULL);
        if ((rc = kc_check_launch(err, "kc_softmax_kernel")) < 0)
            return rc;
    }
    return 0;
}
