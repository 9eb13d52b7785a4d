/* train_gbdt.cu - gbdt's histogram building on the GPU (LightGBM's
 * histogram-based split finding, Ke et al. 2017, as kernels/cpu/gbdt_tree.c
 * builds it): for each feature and bin, the sums of the gradient and the
 * hessian of a node's rows and their count.  A block takes one feature and a
 * range of rows; each warp adds into its own copy of the feature's histogram
 * in shared memory (double atomics for the sums, integer ones for the count,
 * so rows in one bin contend only within a warp), and the block adds its
 * copies into the global histogram at the end. */
#include <string.h>

#include "kc_int.h"

extern "C" {
#include "../../core/kiln_alloc.h"
}

#define HIST_THREADS 256
#define HIST_COPIES  (HIST_THREADS / 32)
#define HIST_BINS    256

struct kc_gbdt_hist {
    kc_ctx_t *ctx;            /* borrowed */
    size_t    n, d, total_bins;
    uint8_t  *d_codes;        /* d x n, feature-major */
    uint32_t *d_off;          /* d: first bin of each feature */
    uint16_t *d_nb;           /* d: bins of each feature */
};

__global__ void __launch_bounds__(HIST_THREADS)
kc_gbdt_hist_kernel(const uint8_t *__restrict__ codes, size_t n, const float2 *__restrict__ gh,
                    const uint32_t *__restrict__ rows, size_t m, size_t rows_per_block,
                    const uint32_t *__restrict__ off, const uint16_t *__restrict__ nbins,
                    double *__restrict__ hist)
{
    __shared__ double   sg[HIST_COPIES][HIST_BINS], sh[HIST_COPIES][HIST_BINS];
    __shared__ unsigned sc[HIST_COPIES][HIST_BINS];
    const unsigned f = blockIdx.y, nb = nbins[f], copy = threadIdx.x / 32;
    for (unsigned i = threadIdx.x; i < HIST_COPIES * HIST_BINS; i += blockDim.x) {
        (&sg[0][0])[i] = 0.0;
        (&sh[0][0])[i] = 0.0;
        (&sc[0][0])[i] = 0;
    }
    __syncthreads();
    const uint8_t *col = codes + (size_t)f * n;
    const size_t lo = blockIdx.x * rows_per_block;
    const size_t hi = lo + rows_per_block < m ? lo + rows_per_block : m;
    if (rows) {
        for (size_t i = lo + threadIdx.x; i < hi; i += blockDim.x) {
            const uint32_t r = __ldg(rows + i);
            const unsigned b = __ldg(col + r);
            const float2 v = __ldg(gh + r);
            atomicAdd(&sg[copy][b], (double)v.x);
            atomicAdd(&sh[copy][b], (double)v.y);
            atomicAdd(&sc[copy][b], 1u);
        }
    } else {
        for (size_t i = lo + threadIdx.x; i < hi; i += blockDim.x) {
            const unsigned b = __ldg(col + i);
            const float2 v = __ldg(gh + i);
            atomicAdd(&sg[copy][b], (double)v.x);
            atomicAdd(&sh[copy][b], (double)v.y);
            atomicAdd(&sc[copy][b], 1u);
        }
    }
    __syncthreads();
    double *out = hist + (size_t)off[f] * 4;
    for (unsigned b = threadIdx.x; b < nb; b += blockDim.x) {
        double g = 0, h = 0;
        unsigned c = 0;
        for (int k = 0; k < HIST_COPIES; k++) {
            g += sg[k][b];
            h += sh[k][b];
            c += sc[k][b];
        }
        if (c) {
            atomicAdd(out + 4 * b, g);
            atomicAdd(out + 4 * b + 1, h);
            atomicAdd(out + 4 * b + 2, (double)c);
        }
    }
}

int kc_gbdt_hist_new(kc_ctx_t *ctx, const uint8_t *codes, size_t n, size_t d,
                     const uint16_t *n_bins, kc_gbdt_hist_t **out, kiln_err_t *err)
{
    int rc;
    *out = NULL;
    if (!codes || !n_bins || n == 0 || d == 0 || n > UINT32_MAX || d > 65535)
        return kiln_err_set(err, KILN_EINVAL, "cuda gbdt: %zu rows x %zu features (1..2^32-1 "
                            "x 1..65535, codes and n_bins given)", n, d);
    if ((rc = kc_ctx_enter(ctx, err)) < 0)
        return rc;
    kc_gbdt_hist_t *h = (kc_gbdt_hist_t *)kiln_calloc(1, sizeof *h);
    uint32_t *off = (uint32_t *)kiln_malloc(d * sizeof *off);
    if (!h || !off) {
        kiln_free(h);
        kiln_free(off);
        return kiln_err_set(err, KILN_ENOMEM, "cuda gbdt: no memory for %zu features", d);
    }
    h->ctx = ctx;
    h->n = n;
    h->d = d;
    for (size_t f = 0; f < d; f++) {
        if (n_bins[f] < 1 || n_bins[f] > HIST_BINS) {
            rc = kiln_err_at(err, KILN_EINVAL, "n_bins", "cuda gbdt: feature %zu has %u bins (1..%d)",
                             f, (unsigned)n_bins[f], HIST_BINS);
            goto fail;
        }
        off[f] = (uint32_t)h->total_bins;
        h->total_bins += n_bins[f];
    }
    if ((rc = kc_dev_alloc(ctx, n * d, (void **)&h->d_codes, err)) < 0 ||
        (rc = kc_copy_to_dev(ctx, h->d_codes, codes, n * d, err)) < 0 ||
        (rc = kc_dev_alloc(ctx, d * sizeof(uint32_t), (void **)&h->d_off, err)) < 0 ||
        (rc = kc_copy_to_dev(ctx, h->d_off, off, d * sizeof(uint32_t), err)) < 0 ||
        (rc = kc_dev_alloc(ctx, d * sizeof(uint16_t), (void **)&h->d_nb, err)) < 0 ||
        (rc = kc_copy_to_dev(ctx, h->d_nb, n_bins, d * sizeof(uint16_t), err)) < 0)
        goto fail;
    kiln_free(off);
    *out = h;
    return 0;
fail:
    kiln_free(off);
    kc_gbdt_hist_destroy(&h);
    return rc;
}

void kc_gbdt_hist_destroy(kc_gbdt_hist_t **ph)
{
    if (!ph || !*ph)
        return;
    kc_gbdt_hist_t *h = *ph;
    kc_dev_free(h->ctx, (void **)&h->d_codes);
    kc_dev_free(h->ctx, (void **)&h->d_off);
    kc_dev_free(h->ctx, (void **)&h->d_nb);
    kiln_free(h);
    *ph = NULL;
}

size_t kc_gbdt_hist_total_bins(const kc_gbdt_hist_t *h) { return h ? h->total_bins : 0; }

int kc_gbdt_hist_build(kc_gbdt_hist_t *h, const float *d_gh, const uint32_t *d_rows, size_t m,
                       double *d_hist, void *stream, kiln_err_t *err)
{
    int rc;
    if (!d_gh || !d_hist || (!d_rows && m > h->n))
        return kiln_err_set(err, KILN_EINVAL, "cuda gbdt: histogram of %zu rows of %zu (gh, hist "
                            "given)", m, h->n);
    if ((rc = kc_ctx_enter(h->ctx, err)) < 0)
        return rc;
    cudaStream_t st = kc_stream_of(h->ctx, stream);
    KC_TRY(cudaMemsetAsync(d_hist, 0, h->total_bins * 4 * sizeof(double), st), "cudaMemsetAsync (histogram)");
    if (m == 0)
        return 0;
    /* About 4 blocks per SM over all features, at least 2048 rows a block. */
    const size_t sms = (size_t)h->ctx->prop.multiProcessorCount;
    size_t per_feature = (sms * 4 + h->d - 1) / h->d, by_rows = (m + 2047) / 2048;
    per_feature = per_feature < by_rows ? per_feature : by_rows;
    per_feature = per_feature < 1 ? 1 : per_feature > 65535 ? 65535 : per_feature;
    const size_t rows_per_block = (m + per_feature - 1) / per_feature;
    const dim3 grid((unsigned)((m + rows_per_block - 1) / rows_per_block), (unsigned)h->d);
    kc_gbdt_hist_kernel<<<grid, HIST_THREADS, 0, st>>>(h->d_codes, h->n, (const float2 *)d_gh,
                                                      d_rows, m, rows_per_block, h->d_off, h->d_nb,
                                                      d_hist);
    return kc_check_launch(err, "kc_gbdt_hist_kernel");
}
