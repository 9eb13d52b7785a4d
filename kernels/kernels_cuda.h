/* kernels_cuda.h - the CUDA twins of the featurization and scoring kernels
 * (kernels/cuda/), callable from C.  Every result matches the C reference in
 * kernels/cpu/ within the tolerances stated in tests/gpu/README.md.
 *
 * Plain C types only: contexts, plans and models are opaque; device buffers
 * are void * / float * obtained from kc_dev_alloc; streams are passed as
 * void * (a cudaStream_t, NULL = the context's first stream).  Every function
 * that can fail returns 0 or a negative KILN_E... code and fills err: a
 * machine without a GPU (or without a driver) is KILN_EUNSUPPORTED, a CUDA
 * failure KILN_EIO (KILN_ENOMEM when device or pinned memory ran out) with
 * the CUDA call and its message in err->msg.  No global mutable state: all of
 * it hangs off a kc_ctx_t. */
#ifndef KILN_KERNELS_CUDA_H
#define KILN_KERNELS_CUDA_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#include "../core/kiln_err.h"
#include "kernels.h"
#include "models.h"
#include "logreg.h"
#include "mlp.h"
#include "gbdt.h"
#include "anomaly.h"

/* ---- devices and contexts (kernels/cuda/ctx.cu) ------------------------ */

typedef struct {
    int    device;
    char   name[256];
    size_t memory_bytes;
    int    cc_major, cc_minor;     /* compute capability */
    int    n_sms;
} kc_device_info_t;

/* Number of usable GPUs; 0 (and return 0) when there is no driver or no
 * device, so a caller can fall back to the CPU without treating it as an
 * error. */
int  kc_device_count(int *count, kiln_err_t *err);
int  kc_device_info(int device, kc_device_info_t *info, kiln_err_t *err);

/* A context binds one device and owns two streams (for the double-buffered
 * drivers) and a cuBLAS handle made on first use.  One host thread uses a
 * context at a time.  *out: new, caller destroys. */
typedef struct kc_ctx kc_ctx_t;
int  kc_ctx_new(int device, kc_ctx_t **out, kiln_err_t *err);
void kc_ctx_destroy(kc_ctx_t **ctx);
/* The context's stream i (0 or 1) as a cudaStream_t. */
void *kc_ctx_stream(kc_ctx_t *ctx, int i);
/* Waits for all work on the context's device; reports a pending kernel error. */
int  kc_ctx_sync(kc_ctx_t *ctx, kiln_err_t *err);

/* Device memory (cudaMalloc) and pinned host memory (cudaMallocHost) for C
 * callers; free functions take &p, set it NULL and accept NULL. */
int  kc_dev_alloc(kc_ctx_t *ctx, size_t bytes, void **out, kiln_err_t *err);
void kc_dev_free(kc_ctx_t *ctx, void **p);
int  kc_host_alloc(kc_ctx_t *ctx, size_t bytes, void **out, kiln_err_t *err);
void kc_host_free(kc_ctx_t *ctx, void **p);
/* Synchronous copies (on stream 0). */
int  kc_copy_to_dev(kc_ctx_t *ctx, void *dst, const void *src, size_t bytes, kiln_err_t *err);
int  kc_copy_to_host(kc_ctx_t *ctx, void *dst, const void *src, size_t bytes, kiln_err_t *err);

/* ---- time-domain statistics (kernels/cuda/stats.cu) -------------------- */

/* kn_time_stats of each window of d_x [n_windows x window_len] (device
 * memory, float32) into d_out [n_windows] (device memory): one read of the
 * signal, sums in double, exactly the reference's definitions (population
 * moments, constant-window rule, slope in units per second, util strictly
 * above the threshold).  Asynchronous on stream (NULL: the context's first);
 * launch errors are reported here, kernel faults at the next sync. */
int kc_time_stats(kc_ctx_t *ctx, const float *d_x, size_t n_windows, size_t window_len,
                  double sample_rate_hz, double util_threshold, kn_time_stats_t *d_out,
                  void *stream, kiln_err_t *err);

/* ---- fused window features (kernels/cuda/features.cu, batch.cu) -------- */

#define KC_MAX_BANDS     64
#define KC_MAX_LINES     4
#define KC_FFT_MIN_LEN   16
#define KC_FFT_MAX_LEN   8192

/* What to compute for each window; one output row per window holds, in this
 * order: the ten kn_time_stats_t fields in their struct order (time_stats),
 * each band's energy, the centroid, the dominant frequency (spectrum, on the
 * windowed signal), then the peak of the envelope spectrum near each line
 * (envelope, on the raw signal), all as float32 like jobs/featcompute.c. */
typedef struct {
    size_t      window_len;        /* a power of two in [KC_FFT_MIN_LEN, KC_FFT_MAX_LEN]
                                      when spectrum or envelope is on */
    double      sample_rate_hz;    /* > 0 */
    int         time_stats;
    double      util_threshold;
    int         spectrum;
    kn_window_t window;
    size_t      n_bands;           /* <= KC_MAX_BANDS, [lo, hi) Hz each */
    double      bands_hz[KC_MAX_BANDS][2];
    int         centroid, dominant;
    int         envelope;
    double      env_lo_hz, env_hi_hz, tolerance_hz;
    size_t      n_lines;           /* <= KC_MAX_LINES */
    double      line_hz[KC_MAX_LINES];
} kc_feat_config_t;

/* A plan: the twiddle table, window coefficients and bin ranges on the
 * device, made once.  KILN_EINVAL for a length the GPU path does not take
 * (not a power of two, out of range): the caller uses the CPU path then.
 * The plan borrows ctx; kc_feat_run may be called from one thread at a time
 * per plan (kc_featurize_host keeps its staging buffers in the plan). */
typedef struct kc_feat_plan kc_feat_plan_t;
int    kc_feat_plan_new(kc_ctx_t *ctx, const kc_feat_config_t *cfg, kc_feat_plan_t **out,
                        kiln_err_t *err);
void   kc_feat_plan_destroy(kc_feat_plan_t **plan);
size_t kc_feat_n_outputs(const kc_feat_plan_t *plan);

/* Features of d_x [n_windows x window_len] into d_out [n_windows x
 * kc_feat_n_outputs], both device memory, asynchronous on stream.  One
 * thread block per window: the window is read from global memory once and
 * the spectra never leave shared memory.  A config with the power spectrum
 * alone (no time statistics, no envelope) and 256 ... 8192 samples takes a
 * leaner kernel (Stockham FFT in registers, features folded per thread). */
int kc_feat_run(kc_feat_plan_t *plan, const float *d_x, size_t n_windows, float *d_out,
                void *stream, kiln_err_t *err);

/* Host to host: x [n_windows x window_len] -> out [n_windows x n_outputs],
 * streamed through pinned chunks of chunk_windows windows (0: about 32 MiB of
 * signal) on the context's two streams, so the copy of one chunk overlaps the
 * compute of the other.  x already in pinned memory (kc_host_alloc) is copied
 * from directly.  Synchronous: returns when out is filled. */
int kc_featurize_host(kc_feat_plan_t *plan, const float *x, size_t n_windows,
                      size_t chunk_windows, float *out, kiln_err_t *err);

/* ---- scoring (kernels/cuda/score*.cu) ---------------------------------- */

/* A model copied to the device from a trained CPU model (which the caller
 * keeps; nothing is borrowed).  gbdt: at most KC_GBDT_MAX_CLASSES trees per
 * round; anomaly: at most KC_ANOMALY_MAX_FEATURES features; beyond those,
 * KILN_EUNSUPPORTED (score on the CPU). */
#define KC_GBDT_MAX_CLASSES     16
#define KC_ANOMALY_MAX_FEATURES 128

typedef struct kc_model kc_model_t;
int  kc_model_from_logreg(kc_ctx_t *ctx, const km_logreg_t *m, kc_model_t **out, kiln_err_t *err);
int  kc_model_from_mlp(kc_ctx_t *ctx, const km_mlp_t *m, kc_model_t **out, kiln_err_t *err);
int  kc_model_from_gbdt(kc_ctx_t *ctx, const km_gbdt_t *m, kc_model_t **out, kiln_err_t *err);
int  kc_model_from_anomaly(kc_ctx_t *ctx, const km_anomaly_t *m, kc_model_t **out,
                           kiln_err_t *err);
void   kc_model_destroy(kc_model_t **m);
size_t kc_model_n_features(const kc_model_t *m);
size_t kc_model_n_outputs(const kc_model_t *m);

/* As km_<kind>_predict: d_scores [n x n_outputs], d_pred [n] (may be NULL),
 * all device memory, synchronous (it must read back whether a row held NaN
 * or Inf: KILN_ENONFINITE names the first such row, as the CPU does). */
int kc_model_predict_dev(kc_model_t *m, const float *d_x, size_t n, float *d_scores,
                         int32_t *d_pred, kiln_err_t *err);
/* Host to host through device buffers the model keeps between calls. */
int kc_model_predict(kc_model_t *m, const float *x, size_t n, float *scores, int32_t *pred,
                     kiln_err_t *err);

#ifdef __cplusplus
}
#endif

#endif
