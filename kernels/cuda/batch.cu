/* batch.cu - kc_featurize_host: host windows to host features through the
 * fused kernel, in pinned chunks on the context's two streams.  While the
 * GPU computes chunk i on one stream, the host stages chunk i+1 into the
 * other stream's pinned buffer and its copy engine moves it, so transfers
 * and compute overlap; the host thread only blocks on the stream whose
 * buffers it is about to reuse. */
#include <string.h>

#include "kc_feat_plan.h"

/* Pointer attributes say whether x is already page-locked (then it is
 * copied from directly, no staging memcpy). */
static int is_pinned(const void *p)
{
    cudaPointerAttributes a;
    if (cudaPointerGetAttributes(&a, p) != cudaSuccess) {
        (void)cudaGetLastError();
        return 0;
    }
    return a.type == cudaMemoryTypeHost;
}

static int ensure_buffers(kc_feat_plan_t *pl, size_t chunk, kiln_err_t *err)
{
    int rc;
    if (pl->chunk_windows >= chunk)
        return 0;
    kc_ctx_t *ctx = pl->ctx;
    for (int i = 0; i < 2; i++) {
        kc_host_free(ctx, (void **)&pl->h_in[i]);
        kc_host_free(ctx, (void **)&pl->h_out[i]);
        kc_dev_free(ctx, (void **)&pl->d_in[i]);
        kc_dev_free(ctx, (void **)&pl->d_out[i]);
    }
    pl->chunk_windows = 0;
    const size_t in_bytes = chunk * (size_t)pl->p.n * sizeof(float);
    const size_t out_bytes = chunk * (size_t)pl->p.n_out * sizeof(float);
    for (int i = 0; i < 2; i++)
        if ((rc = kc_host_alloc(ctx, in_bytes, (void **)&pl->h_in[i], err)) < 0 ||
            (rc = kc_host_alloc(ctx, out_bytes, (void **)&pl->h_out[i], err)) < 0 ||
            (rc = kc_dev_alloc(ctx, in_bytes, (void **)&pl->d_in[i], err)) < 0 ||
            (rc = kc_dev_alloc(ctx, out_bytes, (void **)&pl->d_out[i], err)) < 0)
            return rc;
    pl->chunk_windows = chunk;
    return 0;
}

int kc_featurize_host(kc_feat_plan_t *pl, const float *x, size_t n_windows, size_t chunk,
                      float *out, kiln_err_t *err)
{
    int rc;
    if (!pl || (n_windows && (!x || !out)))
        return kiln_err_set(err, KILN_EINVAL, "cuda featurize: NULL plan or buffer");
    if (n_windows == 0)
        return 0;
    kc_ctx_t *ctx = pl->ctx;
    if ((rc = kc_ctx_enter(ctx, err)) < 0)
        return rc;
    const size_t n = (size_t)pl->p.n, n_out = (size_t)pl->p.n_out;
    if (chunk == 0)
        chunk = ((size_t)32 << 20) / (n * sizeof(float));
    if (chunk == 0)
        chunk = 1;
    if (chunk > n_windows)
        chunk = n_windows;
    if ((rc = ensure_buffers(pl, chunk, err)) < 0)
        return rc;
    const int direct = is_pinned(x);
    const size_t n_chunks = (n_windows + chunk - 1) / chunk;
    /* Chunk i uses buffer set i % 2; before reusing a set the host waits for
     * its stream, then hands the finished chunk i-2 to out. */
    for (size_t i = 0; i < n_chunks + 2; i++) {
        const int s = (int)(i & 1);
        cudaStream_t st = ctx->stream[s];
        if (i >= 2) {
            KC_TRY(cudaStreamSynchronize(st), "cudaStreamSynchronize (featurize chunk)");
            const size_t done = i - 2, w0 = done * chunk;
            const size_t nw = n_windows - w0 < chunk ? n_windows - w0 : chunk;
            memcpy(out + w0 * n_out, pl->h_out[s], nw * n_out * sizeof(float));
        }
        if (i >= n_chunks)
            continue;
        const size_t w0 = i * chunk, nw = n_windows - w0 < chunk ? n_windows - w0 : chunk;
        const float *src = x + w0 * n;
        if (!direct) {
            memcpy(pl->h_in[s], src, nw * n * sizeof(float));
            src = pl->h_in[s];
        }
        KC_TRY(cudaMemcpyAsync(pl->d_in[s], src, nw * n * sizeof(float), cudaMemcpyHostToDevice,
                               st),
               "cudaMemcpyAsync (featurize windows to the device)");
        if ((rc = kc_feat_run(pl, pl->d_in[s], nw, pl->d_out[s], st, err)) < 0) {
            cudaDeviceSynchronize();
            return rc;
        }
        KC_TRY(cudaMemcpyAsync(pl->h_out[s], pl->d_out[s], nw * n_out * sizeof(float),
                               cudaMemcpyDeviceToHost, st),
               "cudaMemcpyAsync (features to the host)");
    }
    return 0;
}
