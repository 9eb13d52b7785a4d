/* featgpu.h - the featurize job's GPU path: a batch of windows through the
 * fused CUDA kernels (kernels/kernels_cuda.h) into the same feature rows
 * jb_featctx_window gives on the CPU, within the tolerances of
 * tests/gpu/README.md.  Rolling features stay on the CPU (featurize.c). */
#ifndef KILN_JOBS_FEATGPU_H
#define KILN_JOBS_FEATGPU_H

#include <stddef.h>

#include "featcompute.h"

typedef struct jb_featgpu jb_featgpu_t;

/* An engine for ctx's spec (borrowed; it must outlive the engine) on GPU
 * `device`.  KILN_EUNSUPPORTED (no GPU, a build without CUDA) or KILN_EINVAL
 * (a window length the GPU path does not take) mean: featurize on the CPU;
 * err says why. */
int  jb_featgpu_new(const jb_featctx_t *ctx, int device, jb_featgpu_t **out, kiln_err_t *err);
void jb_featgpu_free(jb_featgpu_t **g);
/* The GPU's name, for logs. */
const char *jb_featgpu_device_name(const jb_featgpu_t *g);

/* Page-locks a host buffer of the caller's (at most 4 per engine) so the
 * copies from it run as DMA beside the caller's other work; the engine
 * unlocks them when freed, so free the engine before the buffers. */
int  jb_featgpu_pin(jb_featgpu_t *g, void *p, size_t bytes, kiln_err_t *err);

/* Starts a batch (layout as jb_featgpu_batch) and returns at once: the
 * signals must stay untouched until jb_featgpu_finish, which waits for it
 * and fills rows.  One batch in flight per engine. */
int  jb_featgpu_submit(jb_featgpu_t *g, const float *signals, size_t n_windows,
                       size_t n_channels, kiln_err_t *err);
int  jb_featgpu_finish(jb_featgpu_t *g, size_t n_windows, size_t n_channels, float *rows,
                       size_t n_cols, kiln_err_t *err);

/* Features of n_windows windows of n_channels channels (channel c's windows
 * at signals + c * n_windows * window_len) into rows [n_windows x n_cols],
 * channel c's features at column c * per_channel, as featurize.c's pool. */
int  jb_featgpu_batch(jb_featgpu_t *g, const float *signals, size_t n_windows,
                      size_t n_channels, float *rows, size_t n_cols, kiln_err_t *err);

#endif
