/* train_logreg.cu - logreg's loss and gradient sums on the GPU (the
 * objective of kernels/logreg.h): Z = X W^T by cuBLAS DGEMM over x widened to
 * double once, one pass per row for the softmax (or sigmoid) loss and the
 * residual P - Y, then G = R^T X by DGEMM and the intercepts by DGEMV.  All in
 * double like logreg_eval.c; only the order of the sums differs. */
#include <cublas_v2.h>
#include <math.h>
#include <string.h>

#include "kc_int.h"

extern "C" {
#include "../../core/kiln_alloc.h"
}

struct kc_logreg_obj {
    kc_ctx_t      *ctx;               /* borrowed */
    cublasHandle_t blas;
    size_t         n, d;
    int            n_classes, rows;   /* rows: weight rows, 1 for binary */
    size_t         n_w;
    double        *d_x;               /* n x d, row-major */
    int32_t       *d_y;
    double        *d_w;               /* n_w */
    double        *d_z;               /* n x rows: margins, then residuals */
    double        *d_loss;            /* n: loss per row */
    double        *d_ones;            /* n */
    double        *d_out;             /* n_w + 1 */
};

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

__global__ void kc_widen_kernel(const float *__restrict__ x, size_t n, double *__restrict__ xd)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        xd[i] = (double)x[i];
}

__global__ void kc_fill_kernel(double *p, size_t n, double v)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        p[i] = v;
}

/* Binary: z[i] = x_i . w + b; loss log(1 + e^z) - y z written as
 * log1p(e^-|z|) + max(z, 0) - y z; z[i] becomes p - y. */
__global__ void kc_lr_binary_kernel(double *__restrict__ z, const int32_t *__restrict__ y,
                                    size_t n, double intercept, double *__restrict__ loss)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        const double v = z[i] + intercept, yi = (double)y[i];
        const double e = exp(-fabs(v)), inv = 1.0 / (1.0 + e);
        loss[i] = log1p(e) + fmax(v, 0.0) - yi * v;
        z[i] = (v >= 0 ? inv : e * inv) - yi;
    }
}

/* Multinomial: row i's K margins (+ intercepts w[k*(d+1)+d]) shifted by
 * their max; loss log sum e^(z-m) + m - z_y; the margins become p - [k==y]. */
__global__ void kc_lr_softmax_kernel(double *__restrict__ z, const int32_t *__restrict__ y,
                                     size_t n, int K, const double *__restrict__ w, size_t d,
                                     double *__restrict__ loss)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        double *zi = z + i * (size_t)K;
        const int yi = y[i];
        double m = -HUGE_VAL, zy = 0, s = 0;
        for (int k = 0; k < K; k++) {
            const double v = zi[k] + w[(size_t)k * (d + 1) + d];
            zi[k] = v;
            m = fmax(m, v);
            zy = k == yi ? v : zy;
        }
        for (int k = 0; k < K; k++) {
            const double e = exp(zi[k] - m);
            zi[k] = e;
            s += e;
        }
        loss[i] = log(s) + m - zy;
        const double inv = 1.0 / s;
        for (int k = 0; k < K; k++)
            zi[k] = zi[k] * inv - (k == yi ? 1.0 : 0.0);
    }
}

void kc_logreg_obj_destroy(kc_logreg_obj_t **po)
{
    if (!po || !*po)
        return;
    kc_logreg_obj_t *o = *po;
    if (o->blas)
        cublasDestroy(o->blas);
    kc_dev_free(o->ctx, (void **)&o->d_x);
    kc_dev_free(o->ctx, (void **)&o->d_y);
    kc_dev_free(o->ctx, (void **)&o->d_w);
    kc_dev_free(o->ctx, (void **)&o->d_z);
    kc_dev_free(o->ctx, (void **)&o->d_loss);
    kc_dev_free(o->ctx, (void **)&o->d_ones);
    kc_dev_free(o->ctx, (void **)&o->d_out);
    kiln_free(o);
    *po = NULL;
}

size_t kc_logreg_obj_n_weights(const kc_logreg_obj_t *o) { return o ? o->n_w : 0; }

/* The reference's checks of one rank's rows (logreg_obj.c): the first bad
 * row in row order, non-finite x before a label out of range. */
static int check_rows(const km_data_t *data, kiln_err_t *err)
{
    if (!data || data->d == 0 || data->n_classes < 2 || data->n_classes > KM_LOGREG_MAX_CLASSES)
        return kiln_err_set(err, KILN_EINVAL, "cuda logreg: data needs d >= 1 and 2..%d classes",
                            KM_LOGREG_MAX_CLASSES);
    if (data->n == 0 || !data->x || !data->y)
        return kiln_err_at(err, KILN_EINVAL, "n", "cuda logreg: no rows (n = %zu, or x/y NULL)",
                           data->n);
    if (data->d > KM_LOGREG_MAX_FEATURES || data->n > SIZE_MAX / sizeof(double) / data->d)
        return kiln_err_at(err, KILN_EINVAL, "d", "cuda logreg: %zu x %zu is too large", data->n,
                           data->d);
    for (size_t i = 0; i < data->n; i++) {
        const float *row = data->x + i * data->d;
        for (size_t j = 0; j < data->d; j++)
            if (!isfinite(row[j]))
                return kiln_err_at(err, KILN_ENONFINITE, "x",
                                   "logreg: row %zu of x holds NaN or Inf", i);
        if (data->y[i] < 0 || data->y[i] >= data->n_classes)
            return kiln_err_at(err, KILN_EINVAL, "y", "logreg: row %zu has label %d, outside [0, %d)",
                               i, (int)data->y[i], data->n_classes);
    }
    return 0;
}

int kc_logreg_obj_new(kc_ctx_t *ctx, const km_data_t *data, kc_logreg_obj_t **out,
                      kiln_err_t *err)
{
    int rc;
    *out = NULL;
    if ((rc = check_rows(data, err)) < 0 || (rc = kc_ctx_enter(ctx, err)) < 0)
        return rc;
    kc_logreg_obj_t *o = (kc_logreg_obj_t *)kiln_calloc(1, sizeof *o);
    if (!o)
        return kiln_err_set(err, KILN_ENOMEM, "cuda logreg: no memory for the objective");
    o->ctx = ctx;
    o->n = data->n;
    o->d = data->d;
    o->n_classes = data->n_classes;
    o->rows = data->n_classes == 2 ? 1 : data->n_classes;
    o->n_w = km_logreg_n_weights(data->d, data->n_classes);
    const size_t n = o->n, d = o->d;
    float *d_xf = NULL;
    cublasStatus_t s;
    if ((rc = kc_dev_alloc(ctx, n * d * sizeof(double), (void **)&o->d_x, err)) < 0 ||
        (rc = kc_dev_alloc(ctx, n * sizeof(int32_t), (void **)&o->d_y, err)) < 0 ||
        (rc = kc_dev_alloc(ctx, o->n_w * sizeof(double), (void **)&o->d_w, err)) < 0 ||
        (rc = kc_dev_alloc(ctx, n * (size_t)o->rows * sizeof(double), (void **)&o->d_z, err)) < 0 ||
        (rc = kc_dev_alloc(ctx, n * sizeof(double), (void **)&o->d_loss, err)) < 0 ||
        (rc = kc_dev_alloc(ctx, n * sizeof(double), (void **)&o->d_ones, err)) < 0 ||
        (rc = kc_dev_alloc(ctx, (o->n_w + 1) * sizeof(double), (void **)&o->d_out, err)) < 0 ||
        (rc = kc_dev_alloc(ctx, n * d * sizeof(float), (void **)&d_xf, err)) < 0 ||
        (rc = kc_copy_to_dev(ctx, d_xf, data->x, n * d * sizeof(float), err)) < 0 ||
        (rc = kc_copy_to_dev(ctx, o->d_y, data->y, n * sizeof(int32_t), err)) < 0)
        goto fail;
    {
        const unsigned grid = (unsigned)ctx->prop.multiProcessorCount * 8;
        kc_widen_kernel<<<grid, 256, 0, ctx->stream[0]>>>(d_xf, n * d, o->d_x);
        kc_fill_kernel<<<grid, 256, 0, ctx->stream[0]>>>(o->d_ones, n, 1.0);
        if ((rc = kc_check_launch(err, "kc_widen_kernel")) < 0 || (rc = kc_ctx_sync(ctx, err)) < 0)
            goto fail;
    }
    kc_dev_free(ctx, (void **)&d_xf);
    if ((s = cublasCreate(&o->blas)) != CUBLAS_STATUS_SUCCESS ||
        (s = cublasSetStream(o->blas, ctx->stream[0])) != CUBLAS_STATUS_SUCCESS ||
        (s = cublasSetMathMode(o->blas, CUBLAS_DEFAULT_MATH)) != CUBLAS_STATUS_SUCCESS) {
        rc = blas_err(err, s, "cublasCreate (logreg objective)");
        goto fail;
    }
    *out = o;
    return 0;
fail:
    kc_dev_free(ctx, (void **)&d_xf);
    kc_logreg_obj_destroy(&o);
    return rc;
}

int kc_logreg_obj_sums(kc_logreg_obj_t *o, const double *w, double *out, kiln_err_t *err)
{
    int rc;
    kc_ctx_t *ctx = o->ctx;
    cudaStream_t st = ctx->stream[0];
    if ((rc = kc_ctx_enter(ctx, err)) < 0)
        return rc;
    const int n = (int)o->n, d = (int)o->d, K = o->rows;
    if (o->n > (size_t)INT32_MAX)
        return kiln_err_set(err, KILN_EUNSUPPORTED, "cuda logreg: %zu rows, at most 2^31 - 1",
                            o->n);
    KC_TRY(cudaMemcpyAsync(o->d_w, w, o->n_w * sizeof(double), cudaMemcpyHostToDevice, st),
           "copying logreg weights");
    const double one = 1.0, zero = 0.0;
    /* Z (K x n column-major = n x K row-major) = W[:, :d] (K x d) . X^T. */
    BLAS_TRY(cublasDgemm(o->blas, CUBLAS_OP_T, CUBLAS_OP_N, K, n, d, &one, o->d_w, d + 1,
                         o->d_x, d, &zero, o->d_z, K), "cublasDgemm (X W^T)");
    const unsigned grid = (unsigned)ctx->prop.multiProcessorCount * 8;
    if (o->n_classes == 2) {
        double b;
        memcpy(&b, w + d, sizeof b);
        kc_lr_binary_kernel<<<grid, 256, 0, st>>>(o->d_z, o->d_y, o->n, b, o->d_loss);
    } else {
        kc_lr_softmax_kernel<<<grid, 128, 0, st>>>(o->d_z, o->d_y, o->n, K, o->d_w, o->d, o->d_loss);
    }
    if ((rc = kc_check_launch(err, "kc_lr_loss_kernel")) < 0)
        return rc;
    /* G[:, :d] (d x K, ld d+1) = X^T R; intercepts: R^T 1; loss: 1 . loss. */
    BLAS_TRY(cublasDgemm(o->blas, CUBLAS_OP_N, CUBLAS_OP_T, d, K, n, &one, o->d_x, d, o->d_z, K,
                         &zero, o->d_out, d + 1), "cublasDgemm (X^T R)");
    BLAS_TRY(cublasDgemv(o->blas, CUBLAS_OP_N, K, n, &one, o->d_z, K, o->d_ones, 1, &zero,
                         o->d_out + d, d + 1), "cublasDgemv (intercepts)");
    BLAS_TRY(cublasSetPointerMode(o->blas, CUBLAS_POINTER_MODE_DEVICE), "cublasSetPointerMode");
    cublasStatus_t s = cublasDdot(o->blas, n, o->d_loss, 1, o->d_ones, 1, o->d_out + o->n_w);
    cublasSetPointerMode(o->blas, CUBLAS_POINTER_MODE_HOST);
    if (s != CUBLAS_STATUS_SUCCESS)
        return blas_err(err, s, "cublasDdot (loss)");
    KC_TRY(cudaMemcpyAsync(out, o->d_out, (o->n_w + 1) * sizeof(double), cudaMemcpyDeviceToHost, st),
           "copying logreg sums");
    KC_TRY(cudaStreamSynchronize(st), "cudaStreamSynchronize (logreg sums)");
    return 0;
}

int kc_logreg_loss_grad(kc_logreg_obj_t *o, double l2, const double *w, double *loss,
                        double *grad, kiln_err_t *err)
{
    const size_t n_w = o->n_w, stride = o->d + 1;
    double *buf = (double *)kiln_malloc((n_w + 1) * sizeof *buf);
    if (!buf)
        return kiln_err_set(err, KILN_ENOMEM, "cuda logreg: no memory for %zu sums", n_w + 1);
    int rc = kc_logreg_obj_sums(o, w, buf, err);
    if (rc == 0) {
        /* logreg_obj.c's F: intercepts unpenalized, all over n. */
        const double inv_n = 1.0 / (double)o->n;
        double pen = 0;
        for (size_t k = 0; k < n_w; k++) {
            const double wk = k % stride == stride - 1 ? 0.0 : w[k];
            pen += wk * wk;
            grad[k] = (buf[k] + l2 * wk) * inv_n;
        }
        *loss = (buf[n_w] + 0.5 * l2 * pen) * inv_n;
    }
    kiln_free(buf);
    return rc;
}
