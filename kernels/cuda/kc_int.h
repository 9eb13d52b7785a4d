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

/* kc_time_stats with a choice of kernel, for the benchmark's side-by-side
 * runs: 0 the default, 1 the block-per-window kernel, 2.. warp-per-window
 * launch shapes (stats.cu says which).  Windows the warp kernel does not
 * take use the block kernels anyway. */
int kc_time_stats_variant(kc_ctx_t *ctx, const float *d_x, size_t n_windows, size_t window_len,
                          double sample_rate_hz, double util_threshold, kn_time_stats_t *d_out,
                          void *stream, int variant, kiln_err_t *err);

#define KC_TRY(call, what)                                        \
    do {                                                          \
        cudaError_t kc_e_ = (call);                               \
        if (kc_e_ != cudaSuccess)                                 \
            return kc_cuda_err(err, kc_e_, (what));               \
    } while (0)

#endif
