/* kc_int.h - what the kernels/cuda/ files share (not public): the context,
 * the CUDA error translation and launch checks. */
#ifndef KILN_KERNELS_CUDA_KC_INT_H
#define KILN_KERNELS_CUDA_KC_INT_H

#include <cuda_runtime.h>

#include "../kernels_cuda.h"

struct kc_ctx {
    int          device;
    cudaStream_t stream[2];
    void        *cublas;        /* cublasHandle_t, made on first use (score_mlp.cu) */
    cudaDeviceProp prop;
};

/* A failed CUDA call as a kiln error naming the call; memory exhaustion is
 * KILN_ENOMEM, a missing device or driver KILN_EUNSUPPORTED, the rest
 * KILN_EIO.  Clears the sticky-free last error so the next call starts clean. */
int kc_cuda_err(kiln_err_t *err, cudaError_t e, const char *what);

/* Makes ctx's device current for this thread (the runtime's current device is
 * per thread, so every entry point sets it). */
int kc_ctx_enter(kc_ctx_t *ctx, kiln_err_t *err);

/* cudaStream_t from the public void * (NULL: the context's first stream). */
static inline cudaStream_t kc_stream_of(kc_ctx_t *ctx, void *stream)
{
    return stream ? (cudaStream_t)stream : ctx->stream[0];
}

/* Checks a launch: cudaGetLastError always (cheap, no sync); with
 * KC_DEBUG_SYNC defined also waits for the kernel so faults name it. */
int kc_check_launch(kiln_err_t *err, const char *kernel);

#define KC_TRY(call, what)                                        \
    do {                                                          \
        cudaError_t kc_e_ = (call);                               \
        if (kc_e_ != cudaSuccess)                                 \
            return kc_cuda_err(err, kc_e_, (what));               \
    } while (0)

#endif
