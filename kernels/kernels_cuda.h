/* kernels_cuda.h - the CUDA twins of the featurization, scoring and training kernels
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

/* Asynchronous copies on stream (NULL: the context's first); src/dst host
 * memory should be pinned (kc_host_alloc, kc_host_register) for the copy to
 * overlap other work.  kc_stream_sync waits for one stream. */
int  kc_copy_to_dev_async(kc_ctx_t *ctx, void *dst, const void *src, size_t bytes, void *stream,
                          kiln_err_t *err);
int  kc_copy_to_host_async(kc_ctx_t *ctx, void *dst, const void *src, size_t bytes,
                           void *stream, kiln_err_t *err);
int  kc_stream_sync(kc_ctx_t *ctx, void *stream, kiln_err_t *err);
/* Page-locks bytes of ordinary host memory at p (cudaHostRegister) so that
 * copies from and to it run as DMA; kc_host_unregister before freeing it. */
int  kc_host_register(kc_ctx_t *ctx, void *p, size_t bytes, kiln_err_t *err);
void kc_host_unregister(kc_ctx_t *ctx, void *p);

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

/* ---- training (kernels/cuda/train_*.cu, logreg_fit.c) ------------------
 * The rows live on the device for the whole fit; every result matches the
 * CPU reference (kernels/cpu/) within the tolerances in tests/gpu/README.md.
 * The GPU fits draw the same random numbers as the CPU ones (mlp: Glorot
 * init and each epoch's shuffle from km_rng seeded by params->seed), so the
 * same rows meet the same weights in the same batches; only float sums
 * differ in order.  reduce (models.h): logreg sums over ranks through it
 * (NCCL through kc_nccl_reduce, or MPI); mlp takes NULL only (one process),
 * KILN_EUNSUPPORTED otherwise. */

/* logreg's objective over rows copied to the device once (x as double, so
 * the products are the reference's double sums in another order).  data as
 * km_logreg_fit's (labels in [0, n_classes), finite x: KILN_EINVAL /
 * KILN_ENONFINITE naming the row).  *out: new, caller destroys; borrows ctx. */
typedef struct kc_logreg_obj kc_logreg_obj_t;
int  kc_logreg_obj_new(kc_ctx_t *ctx, const km_data_t *data, kc_logreg_obj_t **out,
                       kiln_err_t *err);
void kc_logreg_obj_destroy(kc_logreg_obj_t **o);
size_t kc_logreg_obj_n_weights(const kc_logreg_obj_t *o);
/* Unpenalized sums over this process's rows at w [n_weights] (layout of
 * logreg.h): out[0..n_w) the gradient sum, out[n_w] the loss sum, what one
 * rank contributes to km_reduce_t's sum.  Synchronous. */
int  kc_logreg_obj_sums(kc_logreg_obj_t *o, const double *w, double *out, kiln_err_t *err);
/* F(w) and grad F(w) over these rows alone, as km_logreg_loss_grad. */
int  kc_logreg_loss_grad(kc_logreg_obj_t *o, double l2, const double *w, double *loss,
                         double *grad, kiln_err_t *err);
/* km_logreg_fit with the objective on the GPU: the same L-BFGS (host side,
 * the weights are small; kernels/cuda/logreg_fit.c), the same stopping
 * rules; every rank calls reduce->sum the same number of times.  *out: a
 * km_logreg_t the caller frees with km_logreg_free. */
int  kc_logreg_fit(kc_ctx_t *ctx, const km_data_t *data, const km_logreg_params_t *p,
                   const km_reduce_t *reduce, km_logreg_t **out, kiln_err_t *err);

/* mlp: km_mlp_loss_grad on the GPU (all rows of data at m's weights, cuBLAS
 * SGEMM with TF32 off, float sums over the rows, the result in double). */
int  kc_mlp_loss_grad(kc_ctx_t *ctx, const km_mlp_t *m, const km_data_t *data, double l2,
                      double *loss, double *grad, kiln_err_t *err);
/* km_mlp_fit on the GPU: the same init, the same batches in the same order
 * (km_rng_shuffle per epoch), Adam in double as the reference; each step is
 * one CUDA graph (gather, forward, backward, Adam) replayed.  reduce must be
 * NULL or one rank.  *out: a km_mlp_t the caller frees with km_mlp_free. */
int  kc_mlp_fit(kc_ctx_t *ctx, const km_data_t *data, const km_mlp_params_t *p,
                const km_reduce_t *reduce, km_mlp_t **out, kiln_err_t *err);

/* gbdt: gradient/hessian/count histograms of quantile-binned features, as
 * gbdt_tree.c builds them for a node.  codes: feature-major [d x n] bin
 * codes (gb_bins_codes' layout), n_bins[d] in 1..256; copied to the device.
 * *out: new, caller destroys; borrows ctx. */
typedef struct kc_gbdt_hist kc_gbdt_hist_t;
int    kc_gbdt_hist_new(kc_ctx_t *ctx, const uint8_t *codes, size_t n, size_t d,
                        const uint16_t *n_bins, kc_gbdt_hist_t **out, kiln_err_t *err);
void   kc_gbdt_hist_destroy(kc_gbdt_hist_t **h);
/* Bins over all features: feature f's bins start at sum_{g<f} n_bins[g]. */
size_t kc_gbdt_hist_total_bins(const kc_gbdt_hist_t *h);
/* The histogram of rows d_rows[0..m) (device row ids < n; NULL: rows 0..m-1
 * with m <= n) into d_hist [total_bins x 4] doubles (gradient sum, hessian
 * sum, rows, 0: gbdt_tree.c's bin, so a reduce can sum it as is),
 * overwritten.  d_gh [n x 2] float (gradient, hessian) by row id.  Sums in
 * double (atomics: the order, so the last bits, vary run to run; counts are
 * exact).  Asynchronous on stream. */
int    kc_gbdt_hist_build(kc_gbdt_hist_t *h, const float *d_gh, const uint32_t *d_rows, size_t m,
                          double *d_hist, void *stream, kiln_err_t *err);

/* ---- NCCL (kernels/cuda/nccl.cu) ---------------------------------------
 * Data-parallel training across GPUs: one communicator per rank, its unique
 * id made by rank 0 (kc_nccl_id_new) and broadcast by the caller (MPI in
 * kiln's cluster layer), then kc_nccl_init on every rank.  Built without
 * NCCL (no nccl.h / libnccl: -DKC_NO_NCCL) every call is KILN_EUNSUPPORTED. */
#define KC_NCCL_ID_BYTES 128
typedef struct kc_nccl kc_nccl_t;
int  kc_nccl_id_new(char out[KC_NCCL_ID_BYTES], kiln_err_t *err);
/* Blocks until all n_ranks ranks have called it with the same id.  *out:
 * new, caller destroys; borrows ctx (its device is this rank's GPU). */
int  kc_nccl_init(kc_ctx_t *ctx, int n_ranks, int rank, const char id[KC_NCCL_ID_BYTES],
                  kc_nccl_t **out, kiln_err_t *err);
void kc_nccl_destroy(kc_nccl_t **c);
/* In-place sum over ranks of device buffers, synchronous (returns when the
 * sum is in d_buf); every rank calls it with the same n. */
int  kc_nccl_allreduce_f32(kc_nccl_t *c, float *d_buf, size_t n, kiln_err_t *err);
int  kc_nccl_allreduce_f64(kc_nccl_t *c, double *d_buf, size_t n, kiln_err_t *err);
/* A km_reduce_t whose sum() adds a host double buffer over the ranks
 * through the communicator (staged through device memory c keeps), for
 * km_<kind>_fit and kc_logreg_fit.  Valid while c lives. */
void kc_nccl_reduce(kc_nccl_t *c, km_reduce_t *out);

#ifdef __cplusplus
}
#endif

#endif
