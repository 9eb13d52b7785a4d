/* stats.cu - kn_time_stats over a batch of windows at memory speed: one
 * thread block per window, each thread keeps its float4 slices in registers,
 * so the signal is read from global memory exactly once; the mean comes
 * from a first block reduction and the central moments, about that mean,
 * from a second over the same registers (the reference's two passes, no
 * cancellation).  Windows too long for the registers, or not float4
 * aligned, take a strided path that reads them twice (the second read
 * mostly from L2). */
#include <stdint.h>

#include "kc_feat_body.h"
#include "kc_int.h"

#define KC_STATS_THREADS 128

/* Folds one float of sample index i into the first-pass sums. */
__device__ __forceinline__ void pass1(float v, double thr, double *a, float &lo, float &hi)
{
    const double d = v;
    a[0] += d;
    a[1] += d * d;
    a[2] += d > thr ? 1.0 : 0.0;
    lo = fminf(lo, v);
    hi = fmaxf(hi, v);
}

__device__ __forceinline__ void pass2(float v, int i, double mean, double i_mean, double *a)
{
    const double d = (double)v - mean, d2 = d * d;
    a[0] += d2;
    a[1] += d2 * d;
    a[2] += d2 * d2;
    a[3] += ((double)i - i_mean) * d;
}

/* Block-wide sums (and max) of K doubles; result in every thread. */
template <int K, class Op>
__device__ __forceinline__ void block_reduce(double *v, Op op, double *red)
{
    const int lane = (int)threadIdx.x & 31, warp = (int)threadIdx.x >> 5;
    const int n_warps = (int)blockDim.x >> 5;
    for (int k = 0; k < K; k++) {
        v[k] = kc_warp_reduce(v[k], op);
        if (lane == 0)
            red[k * 32 + warp] = v[k];
    }
    __syncthreads();
    if (warp == 0)
        for (int k = 0; k < K; k++) {
            double x = lane < n_warps ? red[k * 32 + lane] : Op::identity();
            x = kc_warp_reduce(x, op);
            if (lane == 0)
                red[32 * KC_RED_MAX + k] = x;
        }
    __syncthreads();
    for (int k = 0; k < K; k++)
        v[k] = red[32 * KC_RED_MAX + k];
    __syncthreads();
}

__device__ __forceinline__ void write_stats(kn_time_stats_t *out, const double *o)
{
    if (threadIdx.x < KC_N_TIME)
        ((double *)out)[threadIdx.x] = o[threadIdx.x];
}

/* ITEMS float4 per thread: windows of up to KC_STATS_THREADS * 4 * ITEMS. */
template <int ITEMS>
__global__ void __launch_bounds__(KC_STATS_THREADS)
kc_stats_reg_kernel(const float *__restrict__ x, size_t n_windows, int n, double fs, double thr,
                    kn_time_stats_t *__restrict__ out)
{
    __shared__ double red[KC_DBLOCK_SCRATCH];
    const int n4 = n / 4;
    for (size_t w = blockIdx.x; w < n_windows; w += gridDim.x) {
        const float4 *x4 = (const float4 *)(x + w * (size_t)n);
        float4 v[ITEMS];
        /* All loads first: ITEMS independent 16-byte requests in flight. */
#pragma unroll
        for (int it = 0; it < ITEMS; it++) {
            const int j = (int)threadIdx.x + it * KC_STATS_THREADS;
            v[it] = j < n4 ? __ldcs(x4 + j) : make_float4(0, 0, 0, 0);
        }
        double a[3] = {0, 0, 0};
        float lo = HUGE_VALF, hi = -HUGE_VALF;
#pragma unroll
        for (int it = 0; it < ITEMS; it++) {
            const int j = (int)threadIdx.x + it * KC_STATS_THREADS;
            if (j < n4) {
                pass1(v[it].x, thr, a, lo, hi);
                pass1(v[it].y, thr, a, lo, hi);
                pass1(v[it].z, thr, a, lo, hi);
                pass1(v[it].w, thr, a, lo, hi);
            }
        }
        double s1[5] = {a[0], a[1], a[2], 0, 0};
        block_reduce<3>(s1, kc_op_sum(), red);
        double mm[2] = {(double)hi, -(double)lo};
        block_reduce<2>(mm, kc_op_max(), red);
        const double mean = s1[0] / (double)n, i_mean = 0.5 * ((double)n - 1.0);
        double b[4] = {0, 0, 0, 0};
#pragma unroll
        for (int it = 0; it < ITEMS; it++) {
            const int j = (int)threadIdx.x + it * KC_STATS_THREADS;
            if (j < n4) {
                pass2(v[it].x, 4 * j, mean, i_mean, b);
                pass2(v[it].y, 4 * j + 1, mean, i_mean, b);
                pass2(v[it].z, 4 * j + 2, mean, i_mean, b);
                pass2(v[it].w, 4 * j + 3, mean, i_mean, b);
            }
        }
        block_reduce<4>(b, kc_op_sum(), red);
        double o[KC_N_TIME];
        kc_stats_finish(n, fs, -mm[1], mm[0], s1[0], s1[1], s1[2], b[0], b[1], b[2], b[3], o);
        write_stats(out + w, o);
    }
}

/* Any length and alignment: the shared-memory-free generic path. */
__global__ void __launch_bounds__(KC_STATS_THREADS)
kc_stats_any_kernel(const float *__restrict__ x, size_t n_windows, int n, double fs, double thr,
                    kn_time_stats_t *__restrict__ out)
{
    __shared__ double red[KC_DBLOCK_SCRATCH];
    for (size_t w = blockIdx.x; w < n_windows; w += gridDim.x) {
        const float *xw = x + w * (size_t)n;
        double a[3] = {0, 0, 0};
        float lo = HUGE_VALF, hi = -HUGE_VALF;
        for (int i = (int)threadIdx.x; i < n; i += KC_STATS_THREADS)
            pass1(__ldg(xw + i), thr, a, lo, hi);
        double s1[3] = {a[0], a[1], a[2]};
        block_reduce<3>(s1, kc_op_sum(), red);
        double mm[2] = {(double)hi, -(double)lo};
        block_reduce<2>(mm, kc_op_max(), red);
        const double mean = s1[0] / (double)n, i_mean = 0.5 * ((double)n - 1.0);
        double b[4] = {0, 0, 0, 0};
        for (int i = (int)threadIdx.x; i < n; i += KC_STATS_THREADS)
            pass2(__ldg(xw + i), i, mean, i_mean, b);
        block_reduce<4>(b, kc_op_sum(), red);
        double o[KC_N_TIME];
        kc_stats_finish(n, fs, -mm[1], mm[0], s1[0], s1[1], s1[2], b[0], b[1], b[2], b[3], o);
        write_stats(out + w, o);
    }
}

int kc_time_stats(kc_ctx_t *ctx, const float *d_x, size_t n_windows, size_t window_len,
                  double sample_rate_hz, double util_threshold, kn_time_stats_t *d_out,
                  void *stream, kiln_err_t *err)
{
    int rc;
    if (!ctx || (n_windows && (!d_x || !d_out)))
        return kiln_err_set(err, KILN_EINVAL, "cuda time stats: NULL context or buffer");
    if (window_len == 0 || window_len > (size_t)1 << 30)
        return kiln_err_at(err, KILN_EINVAL, "window_len",
                           "cuda time stats: windows of %zu samples (1 to 2^30)", window_len);
    if (n_windows == 0)
        return 0;
    if ((rc = kc_ctx_enter(ctx, err)) < 0)
        return rc;
    const int n = (int)window_len;
    const size_t max_grid = (size_t)ctx->prop.multiProcessorCount * 32;
    const unsigned grid = (unsigned)(n_windows < max_grid ? n_windows : max_grid);
    cudaStream_t st = kc_stream_of(ctx, stream);
    const int aligned = n % 4 == 0 && (uintptr_t)d_x % 16 == 0;
    const int per_block4 = KC_STATS_THREADS * 4;
    double fs = sample_rate_hz, thr = util_threshold;
    if (aligned && n <= per_block4)
        kc_stats_reg_kernel<1><<<grid, KC_STATS_THREADS, 0, st>>>(d_x, n_windows, n, fs, thr, d_out);
    else if (aligned && n <= 2 * per_block4)
        kc_stats_reg_kernel<2><<<grid, KC_STATS_THREADS, 0, st>>>(d_x, n_windows, n, fs, thr, d_out);
    else if (aligned && n <= 4 * per_block4)
        kc_stats_reg_kernel<4><<<grid, KC_STATS_THREADS, 0, st>>>(d_x, n_windows, n, fs, thr, d_out);
    else if (aligned && n <= 8 * per_block4)
        kc_stats_reg_kernel<8><<<grid, KC_STATS_THREADS, 0, st>>>(d_x, n_windows, n, fs, thr, d_out);
    else
        kc_stats_any_kernel<<<grid, KC_STATS_THREADS, 0, st>>>(d_x, n_windows, n, fs, thr, d_out);
    return kc_check_launch(err, "kc_stats_kernel");
}
