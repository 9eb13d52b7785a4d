/* train_mlp.cu - the multilayer perceptron's training on the GPU, as
 * kernels/cpu/mlp_train.c: a step gathers its batch rows (the epoch's
 * permutation on the device), runs forward (cuBLAS SGEMM per layer, TF32
 * off, then bias and ReLU), softmax + cross-entropy (or squared error),
 * backward (gW = A^T D and D W^T by SGEMM, bias sums by SGEMV, the ReLU mask)
 * and Adam in double (Kingma & Ba 2015 in scikit-learn's form, lr_t =
 * lr sqrt(1-b2^t)/(1-b1^t)).  The step number and the batch offset live in
 * device memory, so one full step is captured once as a CUDA graph and
 * replayed: a 200-row step is ~20 tiny launches, and the graph keeps the GPU
 * from waiting on the host between them. */
#include <cublas_v2.h>
#include <math.h>
#include <string.h>

#include "kc_int.h"

extern "C" {
#include "../../core/kiln_alloc.h"
}

#define NET_MAX_LAYERS (KM_MLP_MAX_HIDDEN + 1)
#define NET_WORKSPACE  ((size_t)32 << 20)   /* cuBLAS workspace: no allocation inside a graph */

typedef struct {
    unsigned long long step;     /* step within the epoch: the batch is perm[step * batch ...] */
    long long          t;        /* Adam's step number, from 1 */
    double             lr_t;
} net_state_t;

typedef struct {
    int    n_layers;
    size_t w_off[NET_MAX_LAYERS], w_end[NET_MAX_LAYERS];   /* layer l's W is [w_off, w_end) */
} net_layout_t;

typedef struct {
    kc_ctx_t      *ctx;
    cudaStream_t   st;
    cublasHandle_t blas;
    void          *d_ws;
    int            n_layers, n_classes, size[NET_MAX_LAYERS + 1];
    size_t         P;
    net_layout_t   lay;
    size_t         n, d, batch;   /* rows on the device, rows per step at most */
    float         *d_x, *d_t;
    int32_t       *d_y, *d_yb;
    float         *d_tb;
    uint32_t      *d_perm;
    float         *d_w, *d_g, *d_ones;
    double        *d_m, *d_v, *d_loss;
    float         *d_act[NET_MAX_LAYERS + 1], *d_delta[2];
    net_state_t   *d_state;
} net_t;

static int blas_err(kiln_err_t *err, cublasStatus_t s, const char *what)
{
    return kiln_err_set(err, s == CUBLAS_STATUS_ALLOC_FAILED ? KILN_ENOMEM : KILN_EIO,
                        "cublas: %s: %s", what, cublasGetStatusString(s));
}

#define BLAS_TRY(call, what)                                      \
    do {                                                          \
        cublasStatus_t bs_ = (call);                              \
        if (bs_ != CUBLAS_STATUS_SUCCESS)                         \
            return blas_err(err, bs_, (what));                    \
    } while (0)

/* ---- kernels ---------------------------------------------------------------- */

#define GRID_STRIDE(i, n)                                                              \
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < (n);            \
         i += (size_t)gridDim.x * blockDim.x)

/* a0[i][j] = x[perm[off + i]][j], off = step * batch + base (state) or base. */
__global__ void kc_mlp_gather_kernel(const float *__restrict__ x, size_t d,
                                     const int32_t *__restrict__ y, const float *__restrict__ tgt,
                                     const uint32_t *__restrict__ perm,
                                     const net_state_t *__restrict__ state, size_t batch,
                                     size_t base, size_t M, float *__restrict__ a0,
                                     int32_t *__restrict__ yb, float *__restrict__ tb)
{
    const size_t off = (state ? state->step * batch : 0) + base;
    GRID_STRIDE(q, M * d) {
        const size_t i = q / d, j = q - i * d;
        const size_t r = perm[off + i];
        a0[q] = x[r * d + j];
        if (j == 0) {
            if (y)
                yb[i] = y[r];
            else
                tb[i] = tgt[r];
        }
    }
}

__global__ void kc_mlp_bias_kernel(float *__restrict__ z, size_t M, int N,
                                   const float *__restrict__ bias, int relu)
{
    GRID_STRIDE(q, M * (size_t)N) {
        const float v = z[q] + bias[q % (size_t)N];
        z[q] = relu ? (v > 0.0f ? v : 0.0f) : v;
    }
}

/* Per row: softmax as mlp_forward (float, exp below e^-60 is 0), then
 * D = P - onehot(y) (or z - target), and the row's loss in double as
 * mlp_chunk_grad (log-loss clipped at float64 eps; half the squared error). */
__global__ void kc_mlp_out_kernel(float *__restrict__ z, size_t M, int N, int classify,
                                  const int32_t *__restrict__ yb, const float *__restrict__ tb,
                                  double *__restrict__ loss)
{
    GRID_STRIDE(i, M) {
        float *row = z + i * (size_t)N;
        if (!classify) {
            const float dlt = row[0] - tb[i];
            row[0] = dlt;
            if (loss)
                loss[i] = 0.5 * (double)dlt * (double)dlt;
            continue;
        }
        float top = row[0], sum = 0.0f;
        for (int c = 1; c < N; c++)
            top = row[c] > top ? row[c] : top;
        for (int c = 0; c < N; c++) {
            const float e = row[c] - top;
            const float v = e > -60.0f ? expf(e) : 0.0f;
            row[c] = v;
            sum += v;
        }
        const float inv = 1.0f / sum;
        const int y = yb[i];
        for (int c = 0; c < N; c++)
            row[c] *= inv;
        if (loss) {
            const double p = row[y];
            loss[i] = -log(p > 2.220446049250313e-16 ? p : 2.220446049250313e-16);
        }
        row[y] -= 1.0f;
    }
}

/* The delta below a hidden layer: (D W^T) where that layer's output > 0. */
__global__ void kc_mlp_mask_kernel(float *__restrict__ dp, const float *__restrict__ a, size_t n)
{
    GRID_STRIDE(q, n) dp[q] = a[q] > 0.0f ? dp[q] : 0.0f;
}

__global__ void kc_mlp_tick_kernel(net_state_t *s, double lr, double b1, double b2)
{
    const long long t = ++s->t;
    s->lr_t = lr * sqrt(1.0 - pow(b2, (double)t)) / (1.0 - pow(b1, (double)t));
}

__global__ void kc_mlp_advance_kernel(net_state_t *s) { s->step++; }

/* adam_segment of mlp_train.c over all P weights: the gradient sum over the
 * step's rows plus l2 w (weights only, not biases), over the rows. */
__global__ void kc_mlp_adam_kernel(float *__restrict__ w, const float *__restrict__ g,
                                   double *__restrict__ am, double *__restrict__ av, size_t P,
                                   const net_layout_t lay, double l2, double inv_rows, double b1,
                                   double b2, double eps, const net_state_t *__restrict__ s)
{
    const double lr_t = s->lr_t;
    GRID_STRIDE(q, P) {
        int is_w = 0;
        for (int l = 0; l < lay.n_layers; l++)
            is_w |= q >= lay.w_off[l] && q < lay.w_end[l];
        const double wq = (double)w[q];
        const double gq = ((double)g[q] + (is_w ? l2 : 0.0) * wq) * inv_rows;
        const double m = b1 * am[q] + (1.0 - b1) * gq, v = b2 * av[q] + (1.0 - b2) * gq * gq;
        am[q] = m;
        av[q] = v;
        w[q] = (float)(wq - lr_t * m / (sqrt(v) + eps));
    }
}

__global__ void kc_mlp_iota_kernel(uint32_t *p, size_t n)
{
    GRID_STRIDE(i, n) p[i] = (uint32_t)i;
}

__global__ void kc_mlp_fill_kernel(float *p, size_t n, float v)
{
    GRID_STRIDE(i, n) p[i] = v;
}

/* ---- the net on the device ------------------------------------------------------ */

static unsigned grid_for(const net_t *t, size_t n)
{
    size_t g = (n + 255) / 256, cap = (size_t)t->ctx->prop.multiProcessorCount * 8;
    return (unsigned)(g < 1 ? 1 : g > cap ? cap : g);
}

static void net_free(net_t *t)
{
    kc_ctx_t *c = t->ctx;
    if (t->blas)
        cublasDestroy(t->blas);
    void **bufs[] = {&t->d_ws, (void **)&t->d_x, (void **)&t->d_t, (void **)&t->d_y,
                     (void **)&t->d_yb, (void **)&t->d_tb, (void **)&t->d_perm, (void **)&t->d_w,
                     (void **)&t->d_g, (void **)&t->d_ones, (void **)&t->d_m, (void **)&t->d_v,
                     (void **)&t->d_loss, (void **)&t->d_delta[0], (void **)&t->d_delta[1],
                     (void **)&t->d_state};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++)
        kc_dev_free(c, bufs[i]);
    for (int l = 0; l <= NET_MAX_LAYERS; l++)
        kc_dev_free(c, (void **)&t->d_act[l]);
    memset(t, 0, sizeof *t);
}

/* Shapes from sizes[0..n_layers], the rows of data copied to the device,
 * buffers for batch rows a step. */
static int net_init(net_t *t, kc_ctx_t *ctx, const int *sizes, int n_layers, int n_classes,
                    const km_data_t *data, size_t batch, kiln_err_t *err)
{
    int rc;
    memset(t, 0, sizeof *t);
    t->ctx = ctx;
    if ((rc = kc_ctx_enter(ctx, err)) < 0)
        return rc;
    t->st = ctx->stream[0];
    t->n_layers = n_layers;
    t->n_classes = n_classes;
    t->lay.n_layers = n_layers;
    size_t widest = 0;
    for (int l = 0; l <= n_layers; l++) {
        t->size[l] = sizes[l];
        widest = (size_t)sizes[l] > widest ? (size_t)sizes[l] : widest;
    }
    for (int l = 0; l < n_layers; l++) {
        t->lay.w_off[l] = t->P;
        t->lay.w_end[l] = t->P + (size_t)sizes[l] * (size_t)sizes[l + 1];
        t->P = t->lay.w_end[l] + (size_t)sizes[l + 1];
    }
    t->n = data->n;
    t->d = data->d;
    t->batch = batch;
    const size_t n = t->n, d = t->d, P = t->P;
    if ((rc = kc_dev_alloc(ctx, NET_WORKSPACE, &t->d_ws, err)) < 0 ||
        (rc = kc_dev_alloc(ctx, n * d * sizeof(float), (void **)&t->d_x, err)) < 0 ||
        (rc = kc_copy_to_dev(ctx, t->d_x, data->x, n * d * sizeof(float), err)) < 0 ||
        (rc = kc_dev_alloc(ctx, n * sizeof(uint32_t), (void **)&t->d_perm, err)) < 0 ||
        (rc = kc_dev_alloc(ctx, P * sizeof(float), (void **)&t->d_w, err)) < 0 ||
        (rc = kc_dev_alloc(ctx, P * sizeof(float), (void **)&t->d_g, err)) < 0 ||
        (rc = kc_dev_alloc(ctx, P * sizeof(double), (void **)&t->d_m, err)) < 0 ||
        (rc = kc_dev_alloc(ctx, P * sizeof(double), (void **)&t->d_v, err)) < 0 ||
        (rc = kc_dev_alloc(ctx, batch * sizeof(float), (void **)&t->d_ones, err)) < 0 ||
        (rc = kc_dev_alloc(ctx, batch * sizeof(double), (void **)&t->d_loss, err)) < 0 ||
        (rc = kc_dev_alloc(ctx, batch * sizeof(int32_t), (void **)&t->d_yb, err)) < 0 ||
        (rc = kc_dev_alloc(ctx, batch * sizeof(float), (void **)&t->d_tb, err)) < 0 ||
        (rc = kc_dev_alloc(ctx, batch * widest * sizeof(float), (void **)&t->d_delta[0], err)) < 0 ||
        (rc = kc_dev_alloc(ctx, batch * widest * sizeof(float), (void **)&t->d_delta[1], err)) < 0 ||
        (rc = kc_dev_alloc(ctx, sizeof(net_state_t), (void **)&t->d_state, err)) < 0)
        return rc;
    for (int l = 0; l <= n_layers; l++)
        if ((rc = kc_dev_alloc(ctx, batch * (size_t)sizes[l] * sizeof(float), (void **)&t->d_act[l], err)) < 0)
            return rc;
    if (n_classes) {
        if ((rc = kc_dev_alloc(ctx, n * sizeof(int32_t), (void **)&t->d_y, err)) < 0 ||
            (rc = kc_copy_to_dev(ctx, t->d_y, data->y, n * sizeof(int32_t), err)) < 0)
            return rc;
    } else if ((rc = kc_dev_alloc(ctx, n * sizeof(float), (void **)&t->d_t, err)) < 0 ||
               (rc = kc_copy_to_dev(ctx, t->d_t, data->target, n * sizeof(float), err)) < 0) {
        return rc;
    }
    KC_TRY(cudaMemsetAsync(t->d_m, 0, P * sizeof(double), t->st), "cudaMemsetAsync");
    KC_TRY(cudaMemsetAsync(t->d_v, 0, P * sizeof(double), t->st), "cudaMemsetAsync");
    KC_TRY(cudaMemsetAsync(t->d_state, 0, sizeof(net_state_t), t->st), "cudaMemsetAsync");
    kc_mlp_fill_kernel<<<grid_for(t, batch), 256, 0, t->st>>>(t->d_ones, batch, 1.0f);
    kc_mlp_iota_kernel<<<grid_for(t, n), 256, 0, t->st>>>(t->d_perm, n);
    if ((rc = kc_check_launch(err, "kc_mlp_fill_kernel")) < 0)
        return rc;
    cublasStatus_t s;
    if ((s = cublasCreate(&t->blas)) != CUBLAS_STATUS_SUCCESS ||
        (s = cublasSetStream(t->blas, t->st)) != CUBLAS_STATUS_SUCCESS ||
        (s = cublasSetMathMode(t->blas, CUBLAS_DEFAULT_MATH)) != CUBLAS_STATUS_SUCCESS ||
        (s = cublasSetWorkspace(t->blas, t->d_ws, NET_WORKSPACE)) != CUBLAS_STATUS_SUCCESS)
        return blas_err(err, s, "cublasCreate (mlp training)");
    return kc_ctx_sync(ctx, err);
}

/* Forward and backward of M <= batch rows perm[off ...] (off from the device
 * state when by_state, else base) into d_g: stored (accumulate 0) or added
 * (accumulate 1), the unnormalised sum over rows as mlp_chunk_grad's.
 * want_loss: each row's loss into d_loss. */
static int net_grad(net_t *t, size_t M, int by_state, size_t base, int accumulate, int want_loss,
                    kiln_err_t *err)
{
    const int L = t->n_layers;
    const float one = 1.0f, zero = 0.0f, beta = accumulate ? 1.0f : 0.0f;
    const int Mi = (int)M;
    kc_mlp_gather_kernel<<<grid_for(t, M * t->d), 256, 0, t->st>>>(
        t->d_x, t->d, t->d_y, t->d_t, t->d_perm, by_state ? t->d_state : NULL, t->batch, base, M,
        t->d_act[0], t->d_yb, t->d_tb);
    for (int l = 1; l <= L; l++) {
        const int K = t->size[l - 1], N = t->size[l];
        const float *W = t->d_w + t->lay.w_off[l - 1], *bias = t->d_w + t->lay.w_end[l - 1];
        /* row-major Z [M x N] = A [M x K] W [K x N]: column-major Z^T = W^T A^T */
        BLAS_TRY(cublasSgemm(t->blas, CUBLAS_OP_N, CUBLAS_OP_N, N, Mi, K, &one, W, N,
                             t->d_act[l - 1], K, &zero, t->d_act[l], N), "cublasSgemm (forward)");
        kc_mlp_bias_kernel<<<grid_for(t, M * (size_t)N), 256, 0, t->st>>>(t->d_act[l], M, N, bias, l < L);
    }
    const int n_out = t->size[L];
    /* The output layer's activations become its delta in place. */
    kc_mlp_out_kernel<<<grid_for(t, M), 128, 0, t->st>>>(t->d_act[L], M, n_out, t->n_classes != 0,
                                                         t->d_yb, t->d_tb, want_loss ? t->d_loss : NULL);
    float *D = t->d_act[L];
    for (int l = L; l >= 1; l--) {
        const int K = t->size[l - 1], N = t->size[l];
        float *gW = t->d_g + t->lay.w_off[l - 1], *gb = t->d_g + t->lay.w_end[l - 1];
        /* gW [K x N] = A^T D: column-major gW^T = D^T A */
        BLAS_TRY(cublasSgemm(t->blas, CUBLAS_OP_N, CUBLAS_OP_T, N, K, Mi, &one, D, N,
                             t->d_act[l - 1], K, &beta, gW, N), "cublasSgemm (weight gradient)");
        BLAS_TRY(cublasSgemv(t->blas, CUBLAS_OP_N, N, Mi, &one, D, N, t->d_ones, 1, &beta, gb, 1),
                 "cublasSgemv (bias gradient)");
        if (l == 1)
            break;
        /* D_prev [M x K] = D W^T: column-major D_prev^T = W D^T */
        float *Dp = t->d_delta[(L - l) & 1];
        const float *W = t->d_w + t->lay.w_off[l - 1];
        BLAS_TRY(cublasSgemm(t->blas, CUBLAS_OP_T, CUBLAS_OP_N, K, Mi, N, &one, W, N, D, N, &zero,
                             Dp, K), "cublasSgemm (delta)");
        kc_mlp_mask_kernel<<<grid_for(t, M * (size_t)K), 256, 0, t->st>>>(Dp, t->d_act[l - 1], M * (size_t)K);
        D = Dp;
    }
    return kc_check_launch(err, "kc_mlp step kernels");
}

/* One training step of M rows at the device state's batch offset. */
static int net_step(net_t *t, size_t M, const km_mlp_params_t *p, kiln_err_t *err)
{
    int rc = net_grad(t, M, 1, 0, 0, 0, err);
    if (rc < 0)
        return rc;
    kc_mlp_tick_kernel<<<1, 1, 0, t->st>>>(t->d_state, p->lr, p->beta1, p->beta2);
    kc_mlp_adam_kernel<<<grid_for(t, t->P), 256, 0, t->st>>>(
        t->d_w, t->d_g, t->d_m, t->d_v, t->P, t->lay, p->l2, 1.0 / (double)M, p->beta1, p->beta2,
        p->eps, t->d_state);
    kc_mlp_advance_kernel<<<1, 1, 0, t->st>>>(t->d_state);
    return kc_check_launch(err, "kc_mlp_adam_kernel");
}

/* ---- public ------------------------------------------------------------------- */

/* mlp_check_data's rules (kernels/cpu/mlp.c) for one process's rows. */
static int check_data(const km_data_t *data, kiln_err_t *err)
{
    if (!data || !data->x || data->n == 0 || data->n > UINT32_MAX || data->d == 0 ||
        data->d > KM_MLP_MAX_INPUTS)
        return kiln_err_at(err, KILN_ESHAPE, "data", "mlp: no rows, or n/d out of range");
    if (data->n_classes == 1 || data->n_classes < 0 || data->n_classes > KM_MLP_MAX_CLASSES ||
        (data->n_classes ? !data->y : !data->target))
        return kiln_err_at(err, KILN_EINVAL, "data.n_classes",
                           "mlp: n_classes is %d (2.. for a classifier with y, 0 for a regressor "
                           "with target)", data->n_classes);
    for (size_t i = 0; i < data->n; i++) {
        for (size_t j = 0; j < data->d; j++)
            if (!isfinite(data->x[i * data->d + j]))
                return kiln_err_at(err, KILN_ENONFINITE, "data.x", "mlp: x row %zu column %zu is %g",
                                   i, j, data->x[i * data->d + j]);
        if (data->n_classes && (data->y[i] < 0 || data->y[i] >= data->n_classes))
            return kiln_err_at(err, KILN_EINVAL, "data.y", "mlp: y row %zu is class %d, not in 0..%d",
                               i, (int)data->y[i], data->n_classes - 1);
        if (!data->n_classes && !isfinite(data->target[i]))
            return kiln_err_at(err, KILN_ENONFINITE, "data.target", "mlp: target row %zu is %g", i,
                               data->target[i]);
    }
    return 0;
}

int kc_mlp_loss_grad(kc_ctx_t *ctx, const km_mlp_t *m, const km_data_t *data, double l2,
                     double *loss, double *grad, kiln_err_t *err)
{
    int sizes[KM_MLP_MAX_HIDDEN + 2], rc;
    if (!m || !loss || !grad)
        return kiln_err_set(err, KILN_EINVAL, "cuda mlp loss_grad: model, loss or grad is NULL");
    const int n_sizes = km_mlp_layer_sizes(m, sizes), L = n_sizes - 1;
    const int n_classes = sizes[L] >= 2 ? sizes[L] : 0;
    if (!data || data->d != (size_t)sizes[0] || data->n_classes != n_classes)
        return kiln_err_at(err, KILN_ESHAPE, "data", "cuda mlp loss_grad: data is not shaped as "
                           "the model (d %d, %d classes)", sizes[0], n_classes);
    if ((rc = check_data(data, err)) < 0)
        return rc;
    const size_t n = data->n, chunk = n < 65536 ? n : 65536, P = km_mlp_n_params(m);
    const float *w = km_mlp_weights(m);
    net_t t;
    float *g = (float *)kiln_malloc(P * sizeof *g);
    double *lrow = (double *)kiln_malloc(chunk * sizeof *lrow), sum = 0.0, sq = 0.0;
    if (!g || !lrow) {
        rc = kiln_err_set(err, KILN_ENOMEM, "cuda mlp loss_grad: no memory");
        memset(&t, 0, sizeof t);
        goto out;
    }
    if ((rc = net_init(&t, ctx, sizes, L, n_classes, data, chunk, err)) < 0 ||
        (rc = kc_copy_to_dev(ctx, t.d_w, w, P * sizeof(float), err)) < 0)
        goto out;
    /* Rows in order, in chunks: the float gradient accumulates over chunks
     * as mlp_chunk_grad's does; the losses are added in double on the host. */
    for (size_t r = 0; r < n; r += chunk) {
        const size_t M = n - r < chunk ? n - r : chunk;
        if ((rc = net_grad(&t, M, 0, r, r > 0, 1, err)) < 0 ||
            (rc = kc_copy_to_host(ctx, lrow, t.d_loss, M * sizeof(double), err)) < 0)
            goto out;
        for (size_t i = 0; i < M; i++)
            sum += lrow[i];
    }
    if ((rc = kc_copy_to_host(ctx, g, t.d_g, P * sizeof(float), err)) < 0)
        goto out;
    for (int l = 0; l < L; l++) {
        for (size_t q = t.lay.w_off[l]; q < t.lay.w_end[l]; q++) {
            sq += (double)w[q] * w[q];
            grad[q] = ((double)g[q] + l2 * w[q]) / (double)n;
        }
        for (size_t q = t.lay.w_end[l]; q < t.lay.w_end[l] + (size_t)sizes[l + 1]; q++)
            grad[q] = (double)g[q] / (double)n;
    }
    *loss = (sum + 0.5 * l2 * sq) / (double)n;
out:
    net_free(&t);
    kiln_free(g);
    kiln_free(lrow);
    return rc;
}

#define MLP_MAGIC   0x504c4d4bu   /* km_mlp_save's header, version 1 */
#define MLP_VERSION 1u

/* A CUDA failure inside kc_mlp_fit: through the cleanup at out. */
#define FIT_TRY(call, what)                                       \
    do {                                                          \
        cudaError_t fe_ = (call);                                 \
        if (fe_ != cudaSuccess) {                                 \
            rc = kc_cuda_err(err, fe_, (what));                   \
            goto out;                                             \
        }                                                         \
    } while (0)

int kc_mlp_fit(kc_ctx_t *ctx, const km_data_t *data, const km_mlp_params_t *p,
               const km_reduce_t *reduce, km_mlp_t **out, kiln_err_t *err)
{
    int rc, sizes[KM_MLP_MAX_HIDDEN + 2];
    *out = NULL;
    if (reduce && reduce->sum && reduce->n_ranks > 1)
        return kiln_err_set(err, KILN_EUNSUPPORTED,
                            "cuda mlp: data-parallel fit (%d ranks) is not on the GPU yet",
                            reduce->n_ranks);
    if (!p || p->n_hidden < 1 || p->n_hidden > KM_MLP_MAX_HIDDEN || !(p->lr > 0) ||
        !(p->beta1 >= 0 && p->beta1 < 1) || !(p->beta2 >= 0 && p->beta2 < 1) || !(p->eps > 0) ||
        !(p->l2 >= 0) || p->batch < 1 || p->epochs < 1)
        return kiln_err_set(err, KILN_EINVAL, "cuda mlp: params out of range (see mlp.h)");
    for (int h = 0; h < p->n_hidden; h++)
        if (p->hidden[h] < 1 || p->hidden[h] > KM_MLP_MAX_WIDTH)
            return kiln_err_at(err, KILN_EINVAL, "params.hidden", "mlp: hidden[%d] is %d units", h,
                               p->hidden[h]);
    if ((rc = check_data(data, err)) < 0)
        return rc;
    const size_t n = data->n;
    if (data->n_classes) {
        size_t *seen = (size_t *)kiln_calloc((size_t)data->n_classes, sizeof *seen);
        if (!seen)
            return kiln_err_set(err, KILN_ENOMEM, "mlp: no memory for class counts");
        for (size_t i = 0; i < n; i++)
            seen[data->y[i]]++;
        int empty = -1;
        for (int k = 0; k < data->n_classes && empty < 0; k++)
            empty = seen[k] ? -1 : k;
        kiln_free(seen);
        if (empty >= 0)
            return kiln_err_at(err, KILN_EINVAL, "data.y", "mlp: class %d of %d has no rows", empty,
                               data->n_classes);
    }
    const int L = p->n_hidden + 1;
    sizes[0] = (int)data->d;
    for (int h = 0; h < p->n_hidden; h++)
        sizes[h + 1] = p->hidden[h];
    sizes[L] = data->n_classes ? data->n_classes : 1;
    const size_t batch = (size_t)p->batch < n ? (size_t)p->batch : n;
    const size_t full = n / batch, rem = n - full * batch;

    net_t t;
    km_buf_t b;
    memset(&b, 0, sizeof b);
    km_rng_t rng;
    size_t *perm = (size_t *)kiln_malloc(n * sizeof *perm);
    uint32_t *perm32[2] = {NULL, NULL};
    cudaEvent_t copied[2] = {NULL, NULL};
    cudaGraph_t graph = NULL;
    cudaGraphExec_t exec = NULL;
    float *w = NULL;
    memset(&t, 0, sizeof t);
    if (!perm) {
        rc = kiln_err_set(err, KILN_ENOMEM, "mlp: no memory for %zu row ids", n);
        goto out;
    }
    if ((rc = net_init(&t, ctx, sizes, L, data->n_classes, data, batch, err)) < 0 ||
        (rc = kc_host_alloc(ctx, n * sizeof(uint32_t), (void **)&perm32[0], err)) < 0 ||
        (rc = kc_host_alloc(ctx, n * sizeof(uint32_t), (void **)&perm32[1], err)) < 0)
        goto out;
    if (!(w = (float *)kiln_malloc(t.P * sizeof *w))) {
        rc = kiln_err_set(err, KILN_ENOMEM, "mlp: no memory for %zu weights", t.P);
        goto out;
    }
    /* Glorot uniform as mlp_train.c's glorot_init, from the same generator
     * the shuffles then continue. */
    km_rng_seed(&rng, p->seed);
    for (int l = 0; l < L; l++) {
        const size_t K = (size_t)sizes[l], N = (size_t)sizes[l + 1];
        const double bound = sqrt(6.0 / (double)(K + N));
        float *wl = w + t.lay.w_off[l];
        for (size_t q = 0; q < K * N + N; q++)
            wl[q] = (float)(-bound + 2.0 * bound * km_rng_uniform(&rng));
    }
    if ((rc = kc_copy_to_dev(ctx, t.d_w, w, t.P * sizeof(float), err)) < 0)
        goto out;
    for (int i = 0; i < 2; i++)
        FIT_TRY(cudaEventCreateWithFlags(&copied[i], cudaEventDisableTiming), "cudaEventCreate");
    /* One full step as a graph; without one (capture refused), plain launches. */
    if (full > 0 && cudaStreamBeginCapture(t.st, cudaStreamCaptureModeThreadLocal) == cudaSuccess) {
        kiln_err_t cap_err;
        int crc = net_step(&t, batch, p, &cap_err);
        cudaError_t e = cudaStreamEndCapture(t.st, &graph);
        if (crc < 0 || e != cudaSuccess || cudaGraphInstantiate(&exec, graph, 0) != cudaSuccess) {
            exec = NULL;
            (void)cudaGetLastError();
        }
    }
    (void)cudaGetLastError();
    for (int epoch = 0; epoch < p->epochs; epoch++) {
        uint32_t *p32 = perm32[epoch & 1];
        km_rng_shuffle(&rng, perm, n);
        FIT_TRY(cudaEventSynchronize(copied[epoch & 1]), "cudaEventSynchronize");   /* p32 free again */
        for (size_t i = 0; i < n; i++)
            p32[i] = (uint32_t)perm[i];
        FIT_TRY(cudaMemcpyAsync(t.d_perm, p32, n * sizeof *p32, cudaMemcpyHostToDevice, t.st),
               "copying the epoch's permutation");
        FIT_TRY(cudaEventRecord(copied[epoch & 1], t.st), "cudaEventRecord");
        FIT_TRY(cudaMemsetAsync(&t.d_state->step, 0, sizeof t.d_state->step, t.st), "cudaMemsetAsync");
        for (size_t s = 0; s < full; s++) {
            if (exec)
                FIT_TRY(cudaGraphLaunch(exec, t.st), "cudaGraphLaunch (mlp step)");
            else if ((rc = net_step(&t, batch, p, err)) < 0)
                goto out;
        }
        if (rem && (rc = net_step(&t, rem, p, err)) < 0)
            goto out;
    }
    if ((rc = kc_copy_to_host(ctx, w, t.d_w, t.P * sizeof(float), err)) < 0)
        goto out;
    /* The model through km_mlp_load of km_mlp_save's bytes (mlp_io.c). */
    km_buf_u32(&b, MLP_MAGIC);
    km_buf_u32(&b, MLP_VERSION);
    km_buf_u32(&b, (uint32_t)data->n_classes);
    km_buf_u32(&b, (uint32_t)L);
    for (int l = 0; l <= L; l++)
        km_buf_u32(&b, (uint32_t)sizes[l]);
    km_buf_f32s(&b, w, t.P);
    rc = b.oom ? kiln_err_set(err, KILN_ENOMEM, "mlp: no memory for the model bytes")
               : km_mlp_load(b.p, b.len, out, err);
out:
    if (exec)
        cudaGraphExecDestroy(exec);
    if (graph)
        cudaGraphDestroy(graph);
    cudaStreamSynchronize(t.st);
    for (int i = 0; i < 2; i++) {
        if (copied[i])
            cudaEventDestroy(copied[i]);
        kc_host_free(ctx, (void **)&perm32[i]);
    }
    (void)cudaGetLastError();
    km_buf_free(&b);
    kiln_free(w);
    kiln_free(perm);
    net_free(&t);
    return rc;
}
