/* gpu_check.h - what the GPU parity test and the host emulation share:
 * test signals (several distributions, seeded) and the tolerance rules that
 * compare a GPU feature row with the reference row (tests/gpu/README.md
 * states them), accumulating the largest error per feature and printing
 * one "ok NAME maxerr=..." or "FAIL NAME ..." line per check. */
#ifndef KILN_TESTS_GPU_GPU_CHECK_H
#define KILN_TESTS_GPU_GPU_CHECK_H

#include <stddef.h>
#include <stdint.h>

#include "cpu_ref.h"

#ifdef __cplusplus
extern "C" {
#endif

#define GC_N_KINDS 8      /* signal kinds gc_signal makes */
#define GC_MAX_OUT (10 + KC_MAX_BANDS + 2 + KC_MAX_LINES)

/* Window w of kind (w % GC_N_KINDS) into x[n], deterministic in (seed, w):
 * 0 Gaussian noise with an offset, 1 sine mixture, 2 bearing-like impulses
 * ringing at a resonance, 3 constant, 4 large offset with tiny noise, 5 sparse
 * spikes, 6 trend plus noise, 7 a pure tone on a bin (ties in the power). */
void gc_signal(uint64_t seed, size_t w, float *x, size_t n, double fs);
const char *gc_signal_name(size_t w);

/* Maximum normalised error and failures of one named check. */
typedef struct {
    char   name[64];
    double max_err;          /* max over rows of |g - c| / allowed, 1 = at the limit */
    double max_abs;          /* max |g - c| */
    size_t n, n_bad, n_ties; /* dominant: rows where a near-tie picked another bin */
    char   first_bad[256];
} gc_stat_t;

typedef struct {
    char      prefix[48];
    size_t    n_stats;
    gc_stat_t stat[GC_MAX_OUT];
} gc_report_t;

/* One report per (config, data set): names come from the config. */
void gc_report_init(gc_report_t *rep, const char *prefix, const kc_feat_config_t *cfg);
/* Compares one GPU row with the reference row the ref just computed for the
 * same window (its spectra and scales are read for the rules). */
void gc_compare_row(gc_report_t *rep, const gr_ref_t *ref, const float *gpu, const float *cpu,
                    size_t row, const char *what);
/* Prints a line per feature; adds to *passed / *failed. */
void gc_report_print(const gc_report_t *rep, int *passed, int *failed);

/* The time statistics in double (kc_time_stats) against kn_time_stats:
 * |g - c| <= 1e-9 (|c| + scale); a report with ten entries. */
void gc_time_report_init(gc_report_t *rep, const char *prefix);
void gc_compare_time(gc_report_t *rep, const kn_time_stats_t *g, const kn_time_stats_t *c,
                     size_t n, double fs, size_t row);

/* The feature configurations every test runs: variant 0 is the demo's
 * (Hann, five bands, envelope 0.2..0.4 fs, CWRU 6205 lines, 2 Hz), variant
 * 1 no window, envelope from DC through Nyquist, 40 Hz tolerance; variants
 * 2 and 3 the power spectrum alone (the kernel's fast path for 256 ... 8192
 * samples): 2 the benchmark's (no window, the demo's bands), 3 Hann, one
 * band, centroid, no dominant. */
#define GC_N_CONFIGS 4
void gc_config(int variant, size_t n, double fs, kc_feat_config_t *c);

/* A plain check line: ok when err <= 1 (err already normalised). */
void gc_line(const char *name, int ok, double max_err, const char *detail, int *passed,
             int *failed);

#ifdef __cplusplus
}
#endif

#endif
