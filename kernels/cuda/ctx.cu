/* ctx.cu - devices, contexts, memory helpers and the CUDA error translation
 * shared by the other kernels/cuda/ files.  Host code only. */
#include <stdio.h>
#include <string.h>

#include "kc_int.h"

extern "C" {
#include "../../core/kiln_alloc.h"
}

int kc_cuda_err(kiln_err_t *err, cudaError_t e, const char *what)
{
    int code = KILN_EIO;
    if (e == cudaErrorMemoryAllocation)
        code = KILN_ENOMEM;
    else if (e == cudaErrorNoDevice || e == cudaErrorInsufficientDriver ||
             e == cudaErrorInvalidDevice || e == cudaErrorInitializationError ||
             e == cudaErrorSystemDriverMismatch || e == cudaErrorCompatNotSupportedOnDevice)
        code = KILN_EUNSUPPORTED;
    (void)cudaGetLastError();
    return kiln_err_set(err, code, "cuda: %s: %s (%s)", what, cudaGetErrorString(e),
                        cudaGetErrorName(e));
}

int kc_check_launch(kiln_err_t *err, const char *kernel)
{
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess)
        return kc_cuda_err(err, e, kernel);
#ifdef KC_DEBUG_SYNC
    e = cudaDeviceSynchronize();
    if (e != cudaSuccess)
        return kc_cuda_err(err, e, kernel);
#endif
    return 0;
}

int kc_device_count(int *count, kiln_err_t *err)
{
    (void)err;
    int n = 0;
    *count = 0;
    /* No driver, no device or a driver too old all mean "use the CPU". */
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        (void)cudaGetLastError();
        return 0;
    }
    *count = n;
    return 0;
}

int kc_device_info(int device, kc_device_info_t *info, kiln_err_t *err)
{
    cudaDeviceProp p;
    memset(info, 0, sizeof *info);
    KC_TRY(cudaGetDeviceProperties(&p, device), "cudaGetDeviceProperties");
    info->device = device;
    snprintf(info->name, sizeof info->name, "%s", p.name);
    info->memory_bytes = p.totalGlobalMem;
    info->cc_major = p.major;
    info->cc_minor = p.minor;
    info->n_sms = p.multiProcessorCount;
    return 0;
}

int kc_ctx_enter(kc_ctx_t *ctx, kiln_err_t *err)
{
    KC_TRY(cudaSetDevice(ctx->device), "cudaSetDevice");
    return 0;
}

int kc_ctx_new(int device, kc_ctx_t **out, kiln_err_t *err)
{
    int n = 0, rc;
    *out = NULL;
    kc_device_count(&n, err);
    if (n == 0)
        return kiln_err_set(err, KILN_EUNSUPPORTED, "cuda: no GPU on this machine (or no driver)");
    if (device < 0 || device >= n)
        return kiln_err_set(err, KILN_EINVAL, "cuda: device %d does not exist (%d GPU(s))",
                            device, n);
    kc_ctx_t *ctx = (kc_ctx_t *)kiln_calloc(1, sizeof *ctx);
    if (!ctx)
        return kiln_err_set(err, KILN_ENOMEM, "cuda: no memory for a context");
    ctx->device = device;
    cudaError_t e = cudaSetDevice(device);
    if (e == cudaSuccess)
        e = cudaGetDeviceProperties(&ctx->prop, device);
    if (e == cudaSuccess)
        e = cudaStreamCreateWithFlags(&ctx->stream[0], cudaStreamNonBlocking);
    if (e == cudaSuccess)
        e = cudaStreamCreateWithFlags(&ctx->stream[1], cudaStreamNonBlocking);
    if (e != cudaSuccess) {
        rc = kc_cuda_err(err, e, "creating the context's streams");
        kc_ctx_destroy(&ctx);
        return rc;
    }
    *out = ctx;
    return 0;
}

/* Defined in score_mlp.cu (which owns the cuBLAS dependency). */
void kc_cublas_destroy(void *handle);

void kc_ctx_destroy(kc_ctx_t **pctx)
{
    if (!pctx || !*pctx)
        return;
    kc_ctx_t *ctx = *pctx;
    cudaSetDevice(ctx->device);
    if (ctx->cublas)
        kc_cublas_destroy(ctx->cublas);
    for (int i = 0; i < 2; i++)
        if (ctx->stream[i])
            cudaStreamDestroy(ctx->stream[i]);
    (void)cudaGetLastError();
    kiln_free(ctx);
    *pctx = NULL;
}

void *kc_ctx_stream(kc_ctx_t *ctx, int i)
{
    return (void *)ctx->stream[i & 1];
}

int kc_ctx_sync(kc_ctx_t *ctx, kiln_err_t *err)
{
    int rc;
    if ((rc = kc_ctx_enter(ctx, err)) < 0)
        return rc;
    KC_TRY(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
    return 0;
}

int kc_dev_alloc(kc_ctx_t *ctx, size_t bytes, void **out, kiln_err_t *err)
{
    int rc;
    *out = NULL;
    if ((rc = kc_ctx_enter(ctx, err)) < 0)
        return rc;
    cudaError_t e = cudaMalloc(out, bytes ? bytes : 1);
    if (e != cudaSuccess) {
        *out = NULL;
        (void)cudaGetLastError();
        return kiln_err_set(err, e == cudaErrorMemoryAllocation ? KILN_ENOMEM : KILN_EIO,
                            "cuda: cudaMalloc of %zu bytes on device %d: %s", bytes,
                            ctx->device, cudaGetErrorString(e));
    }
    return 0;
}

void kc_dev_free(kc_ctx_t *ctx, void **p)
{
    if (!p || !*p)
        return;
    if (ctx)
        cudaSetDevice(ctx->device);
    cudaFree(*p);
    (void)cudaGetLastError();
    *p = NULL;
}

int kc_host_alloc(kc_ctx_t *ctx, size_t bytes, void **out, kiln_err_t *err)
{
    int rc;
    *out = NULL;
    if ((rc = kc_ctx_enter(ctx, err)) < 0)
        return rc;
    cudaError_t e = cudaMallocHost(out, bytes ? bytes : 1);
    if (e != cudaSuccess) {
        *out = NULL;
        (void)cudaGetLastError();
        return kiln_err_set(err, e == cudaErrorMemoryAllocation ? KILN_ENOMEM : KILN_EIO,
                            "cuda: cudaMallocHost of %zu pinned bytes: %s", bytes,
                            cudaGetErrorString(e));
    }
    return 0;
}

void kc_host_free(kc_ctx_t *ctx, void **p)
{
    (void)ctx;
    if (!p || !*p)
        return;
    cudaFreeHost(*p);
    (void)cudaGetLastError();
    *p = NULL;
}

int kc_copy_to_dev(kc_ctx_t *ctx, void *dst, const void *src, size_t bytes, kiln_err_t *err)
{
    int rc;
    if ((rc = kc_ctx_enter(ctx, err)) < 0)
        return rc;
    KC_TRY(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, ctx->stream[0]),
           "cudaMemcpyAsync host to device");
    KC_TRY(cudaStreamSynchronize(ctx->stream[0]), "cudaStreamSynchronize after a copy to the device");
    return 0;
}

int kc_copy_to_host(kc_ctx_t *ctx, void *dst, const void *src, size_t bytes, kiln_err_t *err)
{
    int rc;
    if ((rc = kc_ctx_enter(ctx, err)) < 0)
        return rc;
    KC_TRY(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, ctx->stream[0]),
           "cudaMemcpyAsync device to host");
    KC_TRY(cudaStreamSynchronize(ctx->stream[0]), "cudaStreamSynchronize after a copy to the host");
    return 0;
}

int kc_copy_to_dev_async(kc_ctx_t *ctx, void *dst, const void *src, size_t bytes, void *stream,
                         kiln_err_t *err)
{
    int rc;
    if ((rc = kc_ctx_enter(ctx, err)) < 0)
        return rc;
    KC_TRY(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, kc_stream_of(ctx, stream)),
           "cudaMemcpyAsync host to device");
    return 0;
}

int kc_copy_to_host_async(kc_ctx_t *ctx, void *dst, const void *src, size_t bytes,
                          void *stream, kiln_err_t *err)
{
    int rc;
    if ((rc = kc_ctx_enter(ctx, err)) < 0)
        return rc;
    KC_TRY(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, kc_stream_of(ctx, stream)),
           "cudaMemcpyAsync device to host");
    return 0;
}

int kc_stream_sync(kc_ctx_t *ctx, void *stream, kiln_err_t *err)
{
    int rc;
    if ((rc = kc_ctx_enter(ctx, err)) < 0)
        return rc;
    KC_TRY(cudaStreamSynchronize(kc_stream_of(ctx, stream)), "cudaStreamSynchronize");
    return 0;
}

int kc_host_register(kc_ctx_t *ctx, void *p, size_t bytes, kiln_err_t *err)
{
    int rc;
    if ((rc = kc_ctx_enter(ctx, err)) < 0)
        return rc;
    KC_TRY(cudaHostRegister(p, bytes, cudaHostRegisterDefault), "cudaHostRegister");
    return 0;
}

void kc_host_unregister(kc_ctx_t *ctx, void *p)
{
    if (!p)
        return;
    if (ctx)
        cudaSetDevice(ctx->device);
    cudaHostUnregister(p);
    (void)cudaGetLastError();
}
