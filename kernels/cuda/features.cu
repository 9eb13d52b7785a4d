/* features.cu - the fused window-features kernel: one thread block per
 * window reads it from global memory once into shared memory, then time
 * statistics, the power spectrum's features and the envelope spectrum's
 * lines are computed there (kc_feat_body.h); only the feature row goes back
 * to global memory.  Plus the plan that holds its tables on the device. */
#include <stdint.h>
#include <string.h>

#include "kc_feat_plan.h"

extern "C" {
#include "../../core/kiln_alloc.h"
}

__global__ void __launch_bounds__(KC_FEAT_MAX_THREADS, KC_FEAT_MIN_BLOCKS)
kc_feat_kernel(const kc_feat_params_t p, const float *__restrict__ x, size_t n_windows,
               float *__restrict__ out, int vec4)
{
    extern __shared__ float4 kc_smem4[];
    __shared__ double red[KC_DBLOCK_SCRATCH];
    __shared__ double dsh[KC_MAX_BANDS];
    float *sm = (float *)kc_smem4;
    const int n = p.n;
    float *xs = sm;
    float2 *cbuf = (float2 *)(sm + kc_round4(n + 2));
    float *pbuf = sm + kc_round4(n + 2) + (p.envelope ? 2 * n : n);
    kc_dblock b = {red};

    for (size_t w = blockIdx.x; w < n_windows; w += gridDim.x) {
        const float *xw = x + w * (size_t)n;
        if (vec4) {
            const float4 *x4 = (const float4 *)xw;
            /* Streamed once: evict-first loads keep L2 for the tables. */
            for (int i = (int)threadIdx.x; i < n / 4; i += (int)blockDim.x)
                kc_smem4[i] = __ldcs(x4 + i);
        } else {
            for (int i = (int)threadIdx.x; i < n; i += (int)blockDim.x)
                xs[i] = __ldcs(xw + i);
        }
        __syncthreads();
        kc_window_features(b, p, xs, cbuf, pbuf, dsh, out + w * (size_t)p.n_out);
        __syncthreads();    /* xs is refilled for the next window */
    }
}

size_t kc_feat_n_outputs(const kc_feat_plan_t *plan) { return plan ? (size_t)plan->p.n_out : 0; }

void kc_feat_plan_destroy(kc_feat_plan_t **pp)
{
    if (!pp || !*pp)
        return;
    kc_feat_plan_t *pl = *pp;
    kc_ctx_t *ctx = pl->ctx;
    cudaSetDevice(ctx->device);
    /* Pending work may still read the tables. */
    cudaStreamSynchronize(ctx->stream[0]);
    cudaStreamSynchronize(ctx->stream[1]);
    kc_dev_free(ctx, (void **)&pl->d_tw);
    kc_dev_free(ctx, (void **)&pl->d_window);
    for (int i = 0; i < 2; i++) {
        kc_host_free(ctx, (void **)&pl->h_in[i]);
        kc_host_free(ctx, (void **)&pl->h_out[i]);
        kc_dev_free(ctx, (void **)&pl->d_in[i]);
        kc_dev_free(ctx, (void **)&pl->d_out[i]);
    }
    kiln_free(pl);
    *pp = NULL;
}

int kc_feat_plan_new(kc_ctx_t *ctx, const kc_feat_config_t *cfg, kc_feat_plan_t **out,
                     kiln_err_t *err)
{
    int rc;
    float2 *tw = NULL;
    float *win = NULL;
    *out = NULL;
    kc_feat_plan_t *pl = (kc_feat_plan_t *)kiln_calloc(1, sizeof *pl);
    if (!pl)
        return kiln_err_set(err, KILN_ENOMEM, "cuda features: no memory for a plan");
    pl->ctx = ctx;
    pl->cfg = *cfg;
    if ((rc = kc_feat_params_fill(cfg, &pl->p, err)) < 0 || (rc = kc_ctx_enter(ctx, err)) < 0)
        goto fail;
    {
        const int n = pl->p.n;
        pl->threads = kc_feat_threads(n);
        pl->shared_bytes = kc_feat_shared_floats(n, pl->p.spectrum, pl->p.envelope) * sizeof(float);
        cudaFuncAttributes fa;
        cudaError_t fe = cudaFuncGetAttributes(&fa, kc_feat_kernel);
        if (fe != cudaSuccess) {
            rc = kc_cuda_err(err, fe, "cudaFuncGetAttributes(kc_feat_kernel)");
            goto fail;
        }
        const size_t static_bytes = fa.sharedSizeBytes;
        if (pl->shared_bytes + static_bytes > ctx->prop.sharedMemPerBlockOptin) {
            rc = kiln_err_at(err, KILN_EINVAL, "window_len",
                             "cuda features: windows of %d samples need %zu bytes of shared "
                             "memory per block, the device has %zu", n,
                             pl->shared_bytes + static_bytes,
                             (size_t)ctx->prop.sharedMemPerBlockOptin);
            goto fail;
        }
        /* The attribute belongs to the kernel, not to the plan: set it to
         * the most any plan may use, so a later plan for shorter windows
         * cannot lower it under this one's need. */
        cudaError_t e = cudaFuncSetAttribute(kc_feat_kernel,
                                             cudaFuncAttributeMaxDynamicSharedMemorySize,
                                             (int)(ctx->prop.sharedMemPerBlockOptin - static_bytes));
        if (e != cudaSuccess) {
            rc = kc_cuda_err(err, e, "cudaFuncSetAttribute(kc_feat_kernel, shared memory)");
            goto fail;
        }
        pl->vec4 = n % 4 == 0;
        if (pl->p.spectrum || pl->p.envelope) {
            tw = (float2 *)kiln_malloc(KC_FFT_MAX_LEN / 2 * sizeof *tw);
            if (!tw) {
                rc = kiln_err_set(err, KILN_ENOMEM, "cuda features: no memory for twiddles");
                goto fail;
            }
            kc_twiddle_fill(tw);
            if ((rc = kc_dev_alloc(ctx, KC_FFT_MAX_LEN / 2 * sizeof *tw, (void **)&pl->d_tw, err)) < 0 ||
                (rc = kc_copy_to_dev(ctx, pl->d_tw, tw, KC_FFT_MAX_LEN / 2 * sizeof *tw, err)) < 0)
                goto fail;
            pl->p.tw = pl->d_tw;
        }
        if (pl->p.spectrum && cfg->window != KN_WINDOW_NONE) {
            win = (float *)kiln_malloc((size_t)n * sizeof *win);
            if (!win) {
                rc = kiln_err_set(err, KILN_ENOMEM, "cuda features: no memory for the window");
                goto fail;
            }
            kc_window_fill(cfg->window, win, (size_t)n);
            if ((rc = kc_dev_alloc(ctx, (size_t)n * sizeof *win, (void **)&pl->d_window, err)) < 0 ||
                (rc = kc_copy_to_dev(ctx, pl->d_window, win, (size_t)n * sizeof *win, err)) < 0)
                goto fail;
            pl->p.window = pl->d_window;
        }
    }
    kiln_free(tw);
    kiln_free(win);
    *out = pl;
    return 0;
fail:
    kiln_free(tw);
    kiln_free(win);
    kc_feat_plan_destroy(&pl);
    return rc;
}

int kc_feat_run(kc_feat_plan_t *pl, const float *d_x, size_t n_windows, float *d_out,
                void *stream, kiln_err_t *err)
{
    int rc;
    if (!pl || (n_windows && (!d_x || !d_out)))
        return kiln_err_set(err, KILN_EINVAL, "cuda features: NULL plan or buffer");
    if (n_windows == 0)
        return 0;
    if ((rc = kc_ctx_enter(pl->ctx, err)) < 0)
        return rc;
    /* Enough resident blocks to fill the device; each loops over windows. */
    const size_t max_grid = (size_t)pl->ctx->prop.multiProcessorCount * 64;
    const unsigned grid = (unsigned)(n_windows < max_grid ? n_windows : max_grid);
    const int vec4 = pl->vec4 && ((uintptr_t)d_x % 16) == 0;
    kc_feat_kernel<<<grid, pl->threads, pl->shared_bytes, kc_stream_of(pl->ctx, stream)>>>(
        pl->p, d_x, n_windows, d_out, vec4);
    return kc_check_launch(err, "kc_feat_kernel");
}
