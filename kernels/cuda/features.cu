/* features.cu - the fused window-features kernel: one thread block per
 * window reads it from global memory once into shared memory, then time
 * statistics, the power spectrum's features and the envelope spectrum's
 * lines are computed there (kc_feat_body.h); only the feature row goes back
 * to global memory.  Plus the plan that holds its tables on the device. */
#include <stdint.h>
#include <string.h>

#include "kc_feat_plan.h"
#include "kc_spec_fast.h"

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

/* The power-spectrum features alone (kc_spec_fast.h): a block of
 * kc_sf_threads(LOG2N) threads per window, two padded complex buffers of
 * dynamic shared memory, resident blocks looping over the windows. */
template <int LOG2N>
__global__ void __launch_bounds__(kc_sf_threads(LOG2N))
kc_spec_kernel(const kc_feat_params_t p, const float *__restrict__ x, size_t n_windows,
               float *__restrict__ out)
{
    extern __shared__ float4 kc_smem4[];
    __shared__ double red[KC_DBLOCK_SCRATCH];
    __shared__ double dsh[KC_MAX_BANDS];
    float2 *buf_a = (float2 *)kc_smem4, *buf_b = buf_a + kc_sf_buf_len(LOG2N);
    kc_dblock b = {red};
    for (size_t w = blockIdx.x; w < n_windows; w += gridDim.x)
        kc_spec_fast_window<LOG2N>(b, p, x + (w << LOG2N), buf_a, buf_b, dsh,
                                   out + w * (size_t)p.n_out);
}

static size_t sf_shared_bytes(int log2n) { return 2 * (size_t)kc_sf_buf_len(log2n) * sizeof(float2); }

/* Shared-memory attribute and resident blocks per SM of one instantiation. */
template <int L> static int sf_prepare(kc_feat_plan_t *pl, kiln_err_t *err)
{
    const size_t shm = sf_shared_bytes(L);
    cudaError_t e = cudaFuncSetAttribute(kc_spec_kernel<L>,
                                         cudaFuncAttributeMaxDynamicSharedMemorySize, (int)shm);
    if (e != cudaSuccess)
        return kc_cuda_err(err, e, "cudaFuncSetAttribute(kc_spec_kernel, shared memory)");
    int per_sm = 0;
    e = cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kc_spec_kernel<L>,
                                                      kc_sf_threads(L), shm);
    if (e != cudaSuccess)
        return kc_cuda_err(err, e, "cudaOccupancyMaxActiveBlocksPerMultiprocessor(kc_spec_kernel)");
    pl->sf_blocks_per_sm = per_sm > 0 ? per_sm : 1;
    return 0;
}

static int sf_prepare_any(kc_feat_plan_t *pl, kiln_err_t *err)
{
    switch (pl->p.log2n) {
    case 8: return sf_prepare<8>(pl, err);
    case 9: return sf_prepare<9>(pl, err);
    case 10: return sf_prepare<10>(pl, err);
    case 11: return sf_prepare<11>(pl, err);
    case 12: return sf_prepare<12>(pl, err);
    default: return sf_prepare<13>(pl, err);
    }
}

static void sf_launch(const kc_feat_plan_t *pl, unsigned grid, const float *d_x, size_t n_windows,
                      float *d_out, cudaStream_t st)
{
    const int L = pl->p.log2n;
    const size_t shm = sf_shared_bytes(L);
#define KC_SF_LAUNCH(LL) \
    kc_spec_kernel<LL><<<grid, kc_sf_threads(LL), shm, st>>>(pl->p, d_x, n_windows, d_out)
    switch (L) {
    case 8: KC_SF_LAUNCH(8); break;
    case 9: KC_SF_LAUNCH(9); break;
    case 10: KC_SF_LAUNCH(10); break;
    case 11: KC_SF_LAUNCH(11); break;
    case 12: KC_SF_LAUNCH(12); break;
    default: KC_SF_LAUNCH(13); break;
    }
#undef KC_SF_LAUNCH
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
    kc_dev_free(ctx, (void **)&pl->d_sf_tw);
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
    pl->use_fast = 1;
    pl->sf_grid_mult = 4;
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
    if (pl->p.fast) {
        const size_t len = (size_t)kc_sf_table_len(pl->p.log2n);
        float2 *sf = (float2 *)kiln_malloc(len * sizeof *sf);
        if (!sf) {
            rc = kiln_err_set(err, KILN_ENOMEM, "cuda features: no memory for twiddles");
            goto fail;
        }
        kc_sf_table_fill(pl->p.log2n, sf);
        rc = kc_dev_alloc(ctx, len * sizeof *sf, (void **)&pl->d_sf_tw, err);
        if (rc == 0)
            rc = kc_copy_to_dev(ctx, pl->d_sf_tw, sf, len * sizeof *sf, err);
        kiln_free(sf);
        if (rc < 0 || (rc = sf_prepare_any(pl, err)) < 0)
            goto fail;
        pl->p.sf_tw = pl->d_sf_tw;
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
    if (pl->p.fast && pl->use_fast && (uintptr_t)d_x % 8 == 0) {
        /* 4x the resident blocks, each looping over windows: a little faster
         * than exactly the resident ones (measured on an H200, bench/gpu/RESULTS.md),
         * the late blocks even out the tail. */
        const size_t sf_grid = (size_t)pl->ctx->prop.multiProcessorCount *
                               (size_t)pl->sf_blocks_per_sm * (size_t)pl->sf_grid_mult;
        sf_launch(pl, (unsigned)(n_windows < sf_grid ? n_windows : sf_grid), d_x, n_windows,
                  d_out, kc_stream_of(pl->ctx, stream));
        return kc_check_launch(err, "kc_spec_kernel");
    }
    /* Enough resident blocks to fill the device; each loops over windows. */
    const size_t max_grid = (size_t)pl->ctx->prop.multiProcessorCount * 64;
    const unsigned grid = (unsigned)(n_windows < max_grid ? n_windows : max_grid);
    const int vec4 = pl->vec4 && ((uintptr_t)d_x % 16) == 0;
    kc_feat_kernel<<<grid, pl->threads, pl->shared_bytes, kc_stream_of(pl->ctx, stream)>>>(
        pl->p, d_x, n_windows, d_out, vec4);
    return kc_check_launch(err, "kc_feat_kernel");
}
