/* drift_impl.h - the column accumulator's layout, shared by drift.c
 * (feeding) and drift_stats.c (statistics); not part of the public API. */
#ifndef KILN_KERNELS_DRIFT_IMPL_H
#define KILN_KERNELS_DRIFT_IMPL_H

#include <stdint.h>
#include <stdio.h>

#include "../drift.h"

typedef struct {
    size_t n;                   /* values (or labels) fed */
    float *vals;                /* exact path: n of cap, unordered until finish */
    size_t cap;
    uint32_t *counts;           /* sketch: 2^KN_DRIFT_SKETCH_BITS bucket counts */
    uint64_t *class_counts;     /* class columns: n_labels counts */
    double sum, sumsq;          /* of x - shift, from the switch to the sketch on */
    float min, max;
} kn_drift_side_state_t;

struct kn_drift_col {
    kn_drift_kind_t kind;
    size_t exact_max;
    int sketched;
    float offset_f;             /* sketch key of x is the key of x - offset_f */
    int have_shift;
    float shift;                /* moments are summed about this first value */
    size_t n_labels;
    kn_drift_side_state_t side[2];
};

/* Order-preserving uint32 key of a float and its inverse. */
uint32_t kn_drift_key(float d);
float    kn_drift_unkey(uint32_t k);
/* Ascending sort of x[n] (LSD radix on the keys); tmp holds n floats
 * (drift_exact.c). */
void     kn_drift_sort_floats(float *x, size_t n, float *tmp);

/* Exact path (drift_exact.c): sorts both samples in place; when the
 * reference has more than 20 distinct values fills every numeric statistic
 * of *o (KS, W, std, PSI/JS, plot, class tests, n_unique) and returns 1;
 * returns 0 (samples sorted, *o untouched) when the column needs the
 * segment list; KILN_ENOMEM. */
int      kn_drift_exact_stats(kn_drift_col_t *c, kn_drift_result_t *o, kiln_err_t *err);
/* PSI and JS on shares br/nr, bc/nc, nb bins (the arrays are overwritten;
 * drift_stats.c). */
void     kn_drift_psi_js(double *br, double *bc, int nb, double nr, double nc,
                         kn_drift_result_t *o);

/* Evidently's zero fill of shares p[n], and PSI of two filled share rows
 * (drift_stats.c). */
void     kn_drift_fill_zeroes(double *p, int n);
double   kn_drift_psi_of(const double *r, const double *c, int n);
/* o->psi_quantile and o->n_quantile_bins of a numeric column whose exact
 * samples are sorted, or from its sketch (drift_quantile.c). */
void     kn_drift_psi_quantile(const kn_drift_col_t *c, kn_drift_result_t *o);

#endif
