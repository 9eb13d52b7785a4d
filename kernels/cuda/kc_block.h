/* kc_block.h - the few collective operations a thread block does on one
 * window (strided loops, barriers, double-precision reductions, first
 * argmax, per-range sums), in two implementations with the same members:
 * kc_dblock runs them on the GPU (warp shuffles, shared scratch), kc_hblock
 * runs them as one sequential "thread" on the host.  The window algorithms
 * (kc_fft.h, kc_feat_body.h) are templates over the block, so the very code
 * the GPU runs is also checked on a machine without a GPU
 * (tests/gpu/emu.cu). */
#ifndef KILN_KERNELS_CUDA_KC_BLOCK_H
#define KILN_KERNELS_CUDA_KC_BLOCK_H

#include <cuda_runtime.h>
#include <limits.h>
#include <math.h>

#define KC_HD __host__ __device__ __forceinline__

/* Widest reduction (values reduced at once) any kernel asks for. */
#define KC_RED_MAX 8

struct kc_op_sum {
    KC_HD double operator()(double a, double b) const { return a + b; }
    static KC_HD double identity() { return 0.0; }
};
struct kc_op_max {
    KC_HD double operator()(double a, double b) const { return b > a ? b : a; }
    static KC_HD double identity() { return -HUGE_VAL; }
};

/* Read-only loads through the non-coherent cache on the GPU. */
template <class T> KC_HD T kc_ld(const T *p)
{
#ifdef __CUDA_ARCH__
    return __ldg(p);
#else
    return *p;
#endif
}

/* Streamed loads (evict first: read once, keep L2 for the tables). */
template <class T> KC_HD T kc_ldcs(const T *p)
{
#ifdef __CUDA_ARCH__
    return __ldcs(p);
#else
    return *p;
#endif
}

/* j with its low `bits` bits reversed (bits >= 1). */
KC_HD unsigned kc_brev(unsigned j, int bits)
{
#ifdef __CUDA_ARCH__
    return __brev(j) >> (32 - bits);
#else
    unsigned r = 0;
    for (int b = 0; b < bits; b++)
        r |= ((j >> b) & 1u) << (bits - 1 - b);
    return r;
#endif
}

/* (best, at) absorbs (ob, oa) when oa is a real index and is larger, or
 * equal and earlier: the same bin as a sequential first-max scan.
 * at == INT_MAX marks "nothing yet". */
KC_HD void kc_argmax_merge(float &best, int &at, float ob, int oa)
{
    if (oa != INT_MAX && (at == INT_MAX || ob > best || (ob == best && oa < at))) {
        best = ob;
        at = oa;
    }
}

/* ---- one sequential thread on the host --------------------------------- */

/* (Members are __host__ __device__ only so the shared templates compile;
 * the GPU never runs them.) */
struct kc_hblock {
    KC_HD int  tid() const { return 0; }
    KC_HD int  nthreads() const { return 1; }
    KC_HD void sync() {}

    /* out[K] = op over i in [0, count) of what f(i, acc) folds into acc. */
    template <int K, class Op, class F>
    KC_HD void reduce(int count, Op op, F f, double *out)
    {
        double acc[K];
        for (int k = 0; k < K; k++)
            acc[k] = Op::identity();
        for (int i = 0; i < count; i++)
            f(i, acc);
        for (int k = 0; k < K; k++)
            out[k] = op(Op::identity(), acc[k]);
    }

    /* The block's first argmax from every thread's (best, at): here the
     * one thread's. */
    KC_HD int argmax_combine(float, int at) { return at; }

    /* First i in [lo, hi) with the largest p[i] (hi > lo). */
    KC_HD int argmax_first(int lo, int hi, const float *p)
    {
        int at = lo;
        for (int i = lo + 1; i < hi; i++)
            if (p[i] > p[at])
                at = i;
        return at;
    }

    /* out[r] = sum of p[k] for k in [k0[r], k1[r]), in double. */
    KC_HD void range_sums(int n_ranges, const int *k0, const int *k1, const float *p, double *out)
    {
        for (int r = 0; r < n_ranges; r++) {
            double s = 0;
            for (int k = k0[r]; k < k1[r]; k++)
                s += p[k];
            out[r] = s;
        }
    }
};

/* ---- a CUDA thread block (blockDim.x a multiple of 32) ------------------ */

#ifdef __CUDACC__
template <class Op> __device__ __forceinline__ double kc_warp_reduce(double v, Op op)
{
    for (int off = 16; off > 0; off >>= 1)
        v = op(v, __shfl_xor_sync(0xffffffffu, v, off));
    return v;
}

struct kc_dblock {
    /* Shared scratch of at least (32 + 1) * KC_RED_MAX doubles. */
    double *red;

    __device__ int  tid() const { return (int)threadIdx.x; }
    __device__ int  nthreads() const { return (int)blockDim.x; }
    __device__ void sync() { __syncthreads(); }

    /* Every thread folds its strided items, warps reduce by shuffles, warp 0
     * reduces the warps' partials; all threads get the result.  The result
     * slots differ from the partial slots and are only written after the
     * barrier every thread crosses after reading the previous result, so
     * back-to-back reductions need no extra barrier. */
    template <int K, class Op, class F>
    __device__ void reduce(int count, Op op, F f, double *out)
    {
        double acc[K];
        for (int k = 0; k < K; k++)
            acc[k] = Op::identity();
        for (int i = (int)threadIdx.x; i < count; i += (int)blockDim.x)
            f(i, acc);
        const int lane = (int)threadIdx.x & 31, warp = (int)threadIdx.x >> 5;
        const int n_warps = ((int)blockDim.x + 31) >> 5;
        for (int k = 0; k < K; k++) {
            acc[k] = kc_warp_reduce(acc[k], op);
            if (lane == 0)
                red[k * 32 + warp] = acc[k];
        }
        __syncthreads();
        if (warp == 0)
            for (int k = 0; k < K; k++) {
                double v = lane < n_warps ? red[k * 32 + lane] : Op::identity();
                v = kc_warp_reduce(v, op);
                if (lane == 0)
                    red[32 * KC_RED_MAX + k] = v;
            }
        __syncthreads();
        for (int k = 0; k < K; k++)
            out[k] = red[32 * KC_RED_MAX + k];
    }

    static __device__ __forceinline__ void argmax_merge(float &best, int &at, float ob, int oa)
    {
        kc_argmax_merge(best, at, ob, oa);
    }

    /* The block's first argmax from every thread's (best, at), in every
     * thread; ends with a barrier (the scratch is reused). */
    __device__ int argmax_combine(float best, int at)
    {
        for (int off = 16; off > 0; off >>= 1) {
            float ob = __shfl_xor_sync(0xffffffffu, best, off);
            int oa = __shfl_xor_sync(0xffffffffu, at, off);
            argmax_merge(best, at, ob, oa);
        }
        int *slot = (int *)(red + 32 * KC_RED_MAX + KC_RED_MAX);
        const int lane = (int)threadIdx.x & 31, warp = (int)threadIdx.x >> 5;
        const int n_warps = ((int)blockDim.x + 31) >> 5;
        if (lane == 0) {
            red[warp] = (double)best;
            slot[32 + warp] = at;
        }
        __syncthreads();
        if (warp == 0) {
            best = lane < n_warps ? (float)red[lane] : 0.0f;
            at = lane < n_warps ? slot[32 + lane] : INT_MAX;
            for (int off = 16; off > 0; off >>= 1) {
                float ob = __shfl_xor_sync(0xffffffffu, best, off);
                int oa = __shfl_xor_sync(0xffffffffu, at, off);
                argmax_merge(best, at, ob, oa);
            }
            if (lane == 0)
                slot[0] = at;
        }
        __syncthreads();
        int r = slot[0];
        __syncthreads();   /* slot[] and red[] are reused by the next collective */
        return r;
    }

    __device__ int argmax_first(int lo, int hi, const float *p)
    {
        float best = 0.0f;
        int at = INT_MAX;
        for (int i = lo + (int)threadIdx.x; i < hi; i += (int)blockDim.x)
            argmax_merge(best, at, p[i], i);
        return argmax_combine(best, at);
    }

    /* One warp per range (ranges are independent); out must be shared
     * memory; a barrier ends it so every thread can read out. */
    __device__ void range_sums(int n_ranges, const int *k0, const int *k1, const float *p,
                               double *out)
    {
        const int lane = (int)threadIdx.x & 31, warp = (int)threadIdx.x >> 5;
        const int n_warps = ((int)blockDim.x + 31) >> 5;
        for (int r = warp; r < n_ranges; r += n_warps) {
            double s = 0;
            for (int k = k0[r] + lane; k < k1[r]; k += 32)
                s += p[k];
            s = kc_warp_reduce(s, kc_op_sum());
            if (lane == 0)
                out[r] = s;
        }
        __syncthreads();
    }
};

/* Doubles of shared scratch kc_dblock needs (red), argmax slots included. */
#define KC_DBLOCK_SCRATCH (32 * KC_RED_MAX + KC_RED_MAX + 64)
#endif

#endif
