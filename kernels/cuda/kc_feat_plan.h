/* kc_feat_plan.h - the fused-features plan shared by features.cu (the
 * kernel and its launch) and batch.cu (the host-to-host driver), and the
 * host-only preparation of a window's parameters (feat_params.cu), which
 * the no-GPU emulation test links too. */
#ifndef KILN_KERNELS_CUDA_KC_FEAT_PLAN_H
#define KILN_KERNELS_CUDA_KC_FEAT_PLAN_H

#include "kc_feat_body.h"
#include "kc_int.h"

#define KC_TW_LOG2 13               /* log2 KC_FFT_MAX_LEN */
/* 256 threads and at least 4 resident blocks (a 64-register budget): the
 * FFT passes are latency-bound, so occupancy beats more threads per window. */
#define KC_FEAT_MAX_THREADS 256
#define KC_FEAT_MIN_BLOCKS  4

struct kc_feat_plan {
    kc_ctx_t        *ctx;           /* borrowed */
    kc_feat_config_t cfg;
    kc_feat_params_t p;             /* p.tw and p.window point at device memory */
    float2          *d_tw;          /* owned */
    float           *d_window;      /* owned, NULL without a window */
    int              threads;       /* per block */
    size_t           shared_bytes;  /* dynamic, per block */
    int              vec4;          /* windows start 16-byte aligned when x is */
    /* the spectrum-only kernel (kc_spec_fast.h) when p.fast */
    float2          *d_sf_tw;       /* owned: its twiddle table */
    int              sf_blocks_per_sm;
    int              use_fast;      /* 1; the benchmark sets 0 to time the general kernel */
    int              sf_grid_mult;  /* grid = SMs x resident blocks x this (4) */
    /* kc_featurize_host's double buffers, made on first use */
    size_t           chunk_windows;
    float           *h_in[2], *h_out[2];   /* pinned */
    float           *d_in[2], *d_out[2];
};

/* Checks cfg and fills p (all but tw and window) exactly as the reference
 * decides bins: KILN_EINVAL names the bad field. */
int kc_feat_params_fill(const kc_feat_config_t *cfg, kc_feat_params_t *p, kiln_err_t *err);

/* tw[KC_FFT_MAX_LEN / 2] = exp(-2 pi i k / KC_FFT_MAX_LEN), from double. */
void kc_twiddle_fill(float2 *tw);

/* kn_window_fill's coefficients (numpy.hanning for KN_WINDOW_HANN). */
void kc_window_fill(kn_window_t kind, float *w, size_t n);

/* The fast path's twiddle table for windows of 2^log2n samples
 * (kc_sf_table_len float2, layout in kc_spec_fast.h), from double. */
void kc_sf_table_fill(int log2n, float2 *tw);

/* Threads per block for windows of n samples: one radix-2^2 butterfly of
 * the n/2-point transform per thread, 64..KC_FEAT_MAX_THREADS. */
int kc_feat_threads(int n);

#endif
