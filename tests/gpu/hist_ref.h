/* hist_ref.h - the CPU side of the gbdt histogram checks and benchmark:
 * quantile bin codes from kernels/cpu/gbdt_bins.c (the fit's own binning),
 * and the histogram of a node's rows built as kernels/cpu/gbdt_tree.c's
 * build_hist does (gather of (g, h) into partition order, whole features per
 * thread, two alternating copies of a feature's bins for large nodes), whose
 * function is private to that file. */
#ifndef KILN_TESTS_GPU_HIST_REF_H
#define KILN_TESTS_GPU_HIST_REF_H

#include <stddef.h>
#include <stdint.h>

#include "../../core/kiln_err.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Bin codes of x [n x d] with up to max_bins bins a feature: *codes is
 * feature-major [d x n] (free with gt_codes_free), n_bins[d] filled. */
int  gt_bin_codes(const float *x, size_t n, size_t d, int max_bins, int threads, uint8_t **codes,
                  uint16_t *n_bins, kiln_err_t *err);
void gt_codes_free(uint8_t **codes);

/* hist [total_bins x 4] = (g, h, count, 0) per bin over rows[0..m) (NULL:
 * rows 0..m-1), gh[2 r], gh[2 r + 1] = gradient, hessian of row r;
 * features spread over threads.  ogh: scratch of 2 m floats. */
void gt_hist_cpu(const uint8_t *codes, size_t n, size_t d, const uint16_t *n_bins,
                 const uint32_t *rows, size_t m, const float *gh, float *ogh, double *hist,
                 int threads);

#ifdef __cplusplus
}
#endif

#endif
