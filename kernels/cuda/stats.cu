/* stats.cu - kn_time_stats over a batch of windows at memory speed.
 * Windows of up to 2048 samples (float4 aligned): one warp per window, each
 * lane holds its float4 slices in registers (all loads issued before the
 * first use), so the signal is read from global memory exactly once; a
 * float pass gives min, max, count and a shift near the mean (warp
 * shuffles, no barrier), a double pass over the same registers the moments
 * about that shift (see kc_stats_warp_kernel).  Longer aligned windows
 * take one thread block per window with block reductions; windows that are
 * not float4 aligned a strided path that reads them twice (the second read
 * mostly from L2). */
#include <stdint.h>

#include "kc_feat_body.h"
#include "kc_int.h"

#define KC_STATS_THREADS 128
/* The warp-per-window kernel: 8 warps per block, 2 blocks per SM at least
 * (a 128-register budget: 64 floats of window per lane plus the sums). */
#define KC_STATS_WARP_THREADS   256
#define KC_STATS_WARP_MIN_BLOCKS 2

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

/* (double)v, converted again here: without it the compiler keeps pass 1's
 * conversions of the whole window alive (two registers per sample) for
 * pass 2 and spills. */
__device__ __forceinline__ double f2d_again(float v)
{
    double d;
    asm volatile("cvt.f64.f32 %0, %1;" : "=d"(d) : "f"(v));
    return d;
}

/* kc_stats_finish_lanes's spread on a warp: f(lane) once, then shuffles. */
struct kc_spread_warp {
    int lane;
    template <class F> __device__ __forceinline__ void operator()(F f, double *dst, int k) const
    {
        const double v = f(lane);
        for (int i = 0; i < k; i++)
            dst[i] = __shfl_sync(0xffffffffu, v, i);
    }
};

/* Warp-wide sum of a double, min / max of floats, sum of an int. */
__device__ __forceinline__ double warp_sum(double v)
{
    for (int off = 16; off > 0; off >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, off);
    return v;
}

/* One warp per window: ITEMS float4 per lane, windows of up to 128 * ITEMS
 * samples.  Pass 1 is float only: min, max, the util count (thr_f is
 * util_threshold rounded down to a float, kc_util_thr_f, so v > thr_f is
 * exactly the reference's (double)v > thr) and a float estimate c of the
 * mean.  Pass 2 sums in double the powers of d = x - c and i d; the
 * moments about the true mean c + S1/n follow exactly from the binomial
 * shift (c is within float rounding of the mean, so the shift terms are
 * tiny and nothing cancels).  A constant window gets c = its value, so
 * every d is 0 and the constant-window rule sees c2 = 0 exactly, as the
 * reference does.  One conversion and about seven double operations per
 * sample (the fp64 pipe is the limit, not the loads). */
template <int ITEMS, int THREADS, int MIN_BLOCKS, int PREFETCH>
__global__ void __launch_bounds__(THREADS, MIN_BLOCKS)
kc_stats_warp_kernel(const float *__restrict__ x, size_t n_windows, int n, double fs, float thr_f,
                     kn_time_stats_t *__restrict__ out)
{
    const int lane = (int)threadIdx.x & 31, wpb = (int)blockDim.x >> 5;
    const size_t n_warps = (size_t)gridDim.x * (size_t)wpb;
    const int n4 = n / 4;
    const double lane_i = (double)(4 * lane), inv_n = 1.0 / (double)n;
    for (size_t w = (size_t)blockIdx.x * (size_t)wpb + (threadIdx.x >> 5); w < n_windows;
         w += n_warps) {
        const float4 *x4 = (const float4 *)(x + w * (size_t)n);
        if (PREFETCH && w + n_warps < n_windows) {
            /* The warp's next window into L2 while this one is computed:
             * more bytes in flight without registers. */
            const char *next = (const char *)(x + (w + n_warps) * (size_t)n);
            for (int line = lane; line < n / 32; line += 32)
                asm volatile("prefetch.global.L2 [%0];" ::"l"(next + 128 * line));
        }
        float4 v[ITEMS];
        /* All loads first: ITEMS independent 16-byte requests per lane. */
#pragma unroll
        for (int it = 0; it < ITEMS; it++) {
            const int j = lane + 32 * it;
            v[it] = j < n4 ? __ldcs(x4 + j) : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        }
        float s = 0.0f, lo = HUGE_VALF, hi = -HUGE_VALF;
        int above = 0;
#pragma unroll
        for (int it = 0; it < ITEMS; it++) {
            if (lane + 32 * it < n4) {
                const float4 f = v[it];
                s += (f.x + f.y) + (f.z + f.w);
                above += (f.x > thr_f) + (f.y > thr_f) + (f.z > thr_f) + (f.w > thr_f);
                lo = fminf(lo, fminf(fminf(f.x, f.y), fminf(f.z, f.w)));
                hi = fmaxf(hi, fmaxf(fmaxf(f.x, f.y), fmaxf(f.z, f.w)));
            }
        }
        for (int off = 16; off > 0; off >>= 1) {
            s += __shfl_xor_sync(0xffffffffu, s, off);
            above += __shfl_xor_sync(0xffffffffu, above, off);
            lo = fminf(lo, __shfl_xor_sync(0xffffffffu, lo, off));
            hi = fmaxf(hi, __shfl_xor_sync(0xffffffffu, hi, off));
        }
        float cf = s / (float)n;
        if (lo == hi || !isfinite(cf))
            cf = lo;
        const double c = cf;
        double s1 = 0, s2 = 0, s3 = 0, s4 = 0, si = 0;
#pragma unroll
        for (int it = 0; it < ITEMS; it++) {
            if (lane + 32 * it < n4) {
                const float4 f = v[it];
                const double a = f2d_again(f.x) - c, b = f2d_again(f.y) - c;
                const double e = f2d_again(f.z) - c, g = f2d_again(f.w) - c;
                const double a2 = a * a, b2 = b * b, e2 = e * e, g2 = g * g;
                const double q = (a + b) + (e + g);
                s1 += q;
                s2 += (a2 + b2) + (e2 + g2);
                /* chained FMAs: fewer fp64 operations than pairwise sums */
                s3 = fma(g2, g, fma(e2, e, fma(b2, b, fma(a2, a, s3))));
                s4 = fma(g2, g2, fma(e2, e2, fma(b2, b2, fma(a2, a2, s4))));
                /* sum of i d over the four: 4j q + (b + 2 e + 3 g) */
                si += fma(lane_i + (double)(128 * it), q, fma(3.0, g, fma(2.0, e, b)));
            }
        }
        s1 = warp_sum(s1);
        s2 = warp_sum(s2);
        s3 = warp_sum(s3);
        s4 = warp_sum(s4);
        si = warp_sum(si);
        double o[KC_N_TIME];
        kc_stats_finish_lanes(kc_spread_warp{lane}, n, fs, inv_n, (double)lo, (double)hi,
                              (double)above, c, s1, s2, s3, s4, si, o);
        /* Lane k writes field k: one 80-byte store per window. */
        double mine = o[0];
#pragma unroll
        for (int k = 1; k < KC_N_TIME; k++)
            mine = lane == k ? o[k] : mine;
        if (lane < KC_N_TIME)
            ((double *)(out + w))[lane] = mine;
    }
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

/* util_threshold as a float t with (double)v > thr exactly when v > t, for
 * every float v: thr rounded down to a float (a NaN stays NaN: both false). */
static float kc_util_thr_f(double thr)
{
    float t = (float)thr;
    if ((double)t > thr)
        t = nextafterf(t, -HUGE_VALF);
    return t;
}

int kc_time_stats_variant(kc_ctx_t *ctx, const float *d_x, size_t n_windows, size_t window_len,
                          double sample_rate_hz, double util_threshold, kn_time_stats_t *d_out,
                          void *stream, int variant, kiln_err_t *err)
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
    const size_t n_sms = (size_t)ctx->prop.multiProcessorCount;
    const size_t max_grid = n_sms * 32;
    const unsigned grid = (unsigned)(n_windows < max_grid ? n_windows : max_grid);
    cudaStream_t st = kc_stream_of(ctx, stream);
    const int aligned = n % 4 == 0 && (uintptr_t)d_x % 16 == 0;
    const int per_block4 = KC_STATS_THREADS * 4;
    double fs = sample_rate_hz, thr = util_threshold;
    if (aligned && n <= 32 * 4 * 16 && variant != 1) {
        /* Warp per window on a grid of resident blocks looping over the
         * windows (variant 3: one window per warp, no loop); 256 threads, 2
         * blocks per SM (128 registers) or, variants 4 and 6, 128 threads, 5
         * blocks (96 registers, a few spills); variants 5 and 6 prefetch
         * each warp's next window into L2. */
        const int small = variant == 4 || variant == 6, pf = variant == 5 || variant == 6;
        const size_t threads = small ? 128 : KC_STATS_WARP_THREADS;
        const size_t wpb = threads / 32;
        const size_t blocks_needed = (n_windows + wpb - 1) / wpb;
        size_t cap = n_sms * (small ? 5 : KC_STATS_WARP_MIN_BLOCKS);
        if (variant == 3)
            cap = (size_t)1 << 30;
        const unsigned wgrid = (unsigned)(blocks_needed < cap ? blocks_needed : cap);
        const float thr_f = kc_util_thr_f(thr);
#define KC_WARP_LAUNCH(I)                                                                  \
    kc_stats_warp_kernel<I, KC_STATS_WARP_THREADS, KC_STATS_WARP_MIN_BLOCKS, 0>            \
        <<<wgrid, KC_STATS_WARP_THREADS, 0, st>>>(d_x, n_windows, n, fs, thr_f, d_out)
        if (n <= 128)
            KC_WARP_LAUNCH(1);
        else if (n <= 256)
            KC_WARP_LAUNCH(2);
        else if (n <= 512)
            KC_WARP_LAUNCH(4);
        else if (n <= 1024)
            KC_WARP_LAUNCH(8);
        else if (small && pf)
            kc_stats_warp_kernel<16, 128, 5, 1><<<wgrid, 128, 0, st>>>(d_x, n_windows, n, fs, thr_f, d_out);
        else if (small)
            kc_stats_warp_kernel<16, 128, 5, 0><<<wgrid, 128, 0, st>>>(d_x, n_windows, n, fs, thr_f, d_out);
        else if (pf)
            kc_stats_warp_kernel<16, KC_STATS_WARP_THREADS, KC_STATS_WARP_MIN_BLOCKS, 1>
                <<<wgrid, KC_STATS_WARP_THREADS, 0, st>>>(d_x, n_windows, n, fs, thr_f, d_out);
        else
            KC_WARP_LAUNCH(16);
#undef KC_WARP_LAUNCH
        return kc_check_launch(err, "kc_stats_warp_kernel");
    }
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

int kc_time_stats(kc_ctx_t *ctx, const float *d_x, size_t n_windows, size_t window_len,
                  double sample_rate_hz, double util_threshold, kn_time_stats_t *d_out,
                  void *stream, kiln_err_t *err)
{
    return kc_time_stats_variant(ctx, d_x, n_windows, window_len, sample_rate_hz,
                                 util_threshold, d_out, stream, 0, err);
}
