/* drift.h - distribution drift statistics for one column: a reference sample
 * against a current one, fed in chunks (kernels/cpu/drift*.c).  Each
 * statistic is defined as the peer a data scientist would check it with:
 *
 *   KS          scipy.stats.ks_2samp(ref, cur) (two-sided, method='auto':
 *               exact path counts when max(n_ref, n_cur) <= 10000, else
 *               kstwo.sf(D, round(n_ref n_cur / (n_ref + n_cur)))).
 *   Wasserstein scipy.stats.wasserstein_distance(ref, cur); normalized as
 *               Evidently 0.7 does: W / max(np.std(ref) (ddof 0), 0.001).
 *   PSI, JS     Evidently 0.7's binning (stattests/utils.get_binned_data):
 *               when the reference has more than 20 distinct values, the
 *               numpy 'sturges' bins over ref and cur together
 *               (ceil(log2(n_ref + n_cur) + 1) equal bins over [min, max]);
 *               else one bin per distinct value.  PSI = sum (r - c) ln(r/c)
 *               with Evidently's zero fill (an empty bin gets 1e-4, or
 *               min nonzero share / 1e6 when that is <= 1e-4); JS =
 *               scipy.spatial.distance.jensenshannon(r, c) (natural log)
 *               on the unfilled shares.  Note: these are NOT quantile bins
 *               of the reference: Evidently's docstring says quantiles, its
 *               code uses sturges bins, and kiln matches the code.
 *   chi-squared class columns: Evidently's "chisquare" (scipy.stats.chisquare
 *               of the current counts against the reference counts scaled
 *               to n_cur, K - 1 degrees of freedom) drives the verdict;
 *               scipy.stats.chi2_contingency on the 2 x K table (Yates'
 *               correction when K = 2, as scipy's default) is reported too.
 *   z           Evidently's two-proportion z-test for columns with at most
 *               two distinct values and <= 1000 reference rows.
 *
 * Default method per column, as Evidently 0.7's DataDriftPreset chooses
 * (legacy/calculations/stattests/registry.py), u = distinct values of ref
 * and cur together:
 *   numeric, n_ref <= 1000:  u <= 2 z, u <= 5 chisquare, else KS   (p-values)
 *   numeric, n_ref >  1000:  u <= 5 JS >= 0.1, else normalized W >= 0.1
 *   class,   n_ref <= 1000:  u <= 2 z, else chisquare               (p-values)
 *   class,   n_ref >  1000:  JS >= 0.1
 * p-value methods drift at p <= 0.05 (KS) or p < 0.05 (chisquare, z), the
 * distances at score >= threshold.  The dataset drifts when the share of
 * drifted columns is >= drift_share (0.5).
 *
 * Memory (numeric columns): values are kept exactly (float32) until ref and
 * cur together pass exact_max_values (default KN_DRIFT_EXACT_MAX, 4 MiB per
 * column); then the column switches, once, to a fixed sketch: a count per
 * bucket of the top KN_DRIFT_SKETCH_BITS bits of the order-preserving key
 * of the float32 (x - offset), offset = the median of the reference values
 * held when it switched.  A bucket spans a relative width of at most
 * 2^-(KN_DRIFT_SKETCH_BITS - 9) of |x - offset| (2^-11 = 0.05% for 20
 * bits), so resolution is finest near the reference median.  Counts are
 * exact, so:
 *   KS: D is the exact max over bucket edges; the true D is within
 *       ks_error_bound = max over buckets of max(p_ref, p_cur) (p = a
 *       bucket's share of its sample) of it.
 *   W:  F is taken as uniform inside each bucket; |W - W_true| <=
 *       wasserstein_error_bound = sum over buckets of width * (p_ref + p_cur).
 *   PSI/JS/plot bins: a bucket straddling a bin edge is split by width.
 * Both bounds are computed and returned with each result (0 on the exact
 * path).  Per column the sketch costs 2 x 4 MiB of address space, of which
 * only touched pages become resident (a few hundred KiB for most data).
 *
 * Threads: a column is used by one thread at a time; distinct columns need
 * no lock (no shared state).  kn_drift_feed_columns threads over columns. */
#ifndef KILN_KERNELS_DRIFT_H
#define KILN_KERNELS_DRIFT_H

#include <stddef.h>
#include <stdint.h>

#include "../core/kiln_err.h"

#define KN_DRIFT_EXACT_MAX   ((size_t)1 << 20)   /* values, ref + cur */
#define KN_DRIFT_SKETCH_BITS 20
#define KN_DRIFT_HIST_BINS   40
#define KN_DRIFT_MAX_CLASSES 65536               /* class labels 0..65535 */
#define KN_DRIFT_QUANTILE_BINS 10

typedef enum { KN_DRIFT_NUMERIC = 0, KN_DRIFT_CLASS = 1 } kn_drift_kind_t;
typedef enum { KN_DRIFT_REF = 0, KN_DRIFT_CUR = 1 } kn_drift_side_t;

typedef enum {
    KN_DRIFT_AUTO = 0,          /* Evidently's default choice (above) */
    KN_DRIFT_KS,                /* score = p-value */
    KN_DRIFT_WASSERSTEIN_NORM,  /* score = W / max(std(ref), 0.001) */
    KN_DRIFT_PSI,
    KN_DRIFT_JENSENSHANNON,
    KN_DRIFT_CHISQUARE,         /* Evidently's chisquare, score = p-value */
    KN_DRIFT_CHI2_CONTINGENCY,  /* scipy chi2_contingency 2 x K, score = p-value */
    KN_DRIFT_ZTEST,             /* score = p-value */
    KN_DRIFT_PSI_QUANTILE       /* PSI on KN_DRIFT_QUANTILE_BINS quantile bins of the reference */
} kn_drift_method_t;

/* "ks", "wasserstein", "psi", "jensenshannon", "chisquare",
 * "chi2_contingency", "z", "psi_quantile" (Evidently's names where it has one); "auto". */
const char *kn_drift_method_name(kn_drift_method_t m);
/* KILN_EINVAL for an unknown name. */
int kn_drift_method_parse(const char *name, kn_drift_method_t *out, kiln_err_t *err);

typedef struct {
    kn_drift_method_t method;   /* the one used (never AUTO) */
    double score;               /* p-value or distance, per method */
    double threshold;
    int    drifted;
    double p_value;             /* = score for p-value methods, else NaN */

    /* every statistic that applies to the column kind (NaN where not) */
    size_t n_ref, n_cur;
    size_t n_unique;            /* distinct values of ref and cur together (sketch: buckets) */
    int    sketched;            /* 1: numeric statistics come from the sketch */
    double ks_stat, ks_p;
    int    ks_exact;            /* 1: exact p (ks_2samp 'exact'), 0: asymptotic */
    double wasserstein, wasserstein_norm, ref_std;
    double psi, jensenshannon;
    int    n_bins;              /* bins PSI and JS used */
    /* PSI on the reference's deciles (the classic credit-risk PSI): edges
     * at np.quantile(ref, [0.1 .. 0.9]) (numpy's default 'linear'), equal
     * edges merged, bin = the number of edges <= x (np.searchsorted
     * side='right'), empty shares filled as Evidently does.  On the sketch
     * the edges are the buckets holding those quantiles (whole buckets go
     * to one bin).  NaN for class columns. */
    double psi_quantile;
    int    n_quantile_bins;
    double chisquare_stat, chisquare_p;
    double chi2_stat, chi2_p;   /* chi2_contingency */
    int    chi2_dof;
    double z_p;
    double ks_error_bound, wasserstein_error_bound;   /* 0 when exact */

    /* plot: shares of each sample in KN_DRIFT_HIST_BINS equal bins over
     * [hist_lo, hist_hi] = [min, max] of ref and cur together (numeric);
     * class columns: bin i is class label hist_lo + i (labels past 40
     * are not plotted). */
    double hist_lo, hist_hi;
    float  hist_ref[KN_DRIFT_HIST_BINS], hist_cur[KN_DRIFT_HIST_BINS];
} kn_drift_result_t;

typedef struct kn_drift_col kn_drift_col_t;

/* A column accumulator.  exact_max_values: 0 for KN_DRIFT_EXACT_MAX
 * (numeric only; tests set it small to reach the sketch).  *out is owned by
 * the caller: kn_drift_col_destroy (safe on NULL and twice). */
int  kn_drift_col_new(kn_drift_kind_t kind, size_t exact_max_values, kn_drift_col_t **out,
                      kiln_err_t *err);
void kn_drift_col_destroy(kn_drift_col_t **col);

/* Appends n values to one side.  NaN/Inf -> KILN_ENONFINITE (the row is
 * named, counted from the first value fed to that side); a wrong kind of
 * call -> KILN_ETYPE; a class label outside [0, KN_DRIFT_MAX_CLASSES) ->
 * KILN_EINVAL.  On error the column keeps what it had before the call. */
int kn_drift_feed(kn_drift_col_t *col, kn_drift_side_t side, const float *x, size_t n,
                  kiln_err_t *err);
int kn_drift_feed_class(kn_drift_col_t *col, kn_drift_side_t side, const int32_t *labels,
                        size_t n, kiln_err_t *err);

/* Computes every statistic and the verdict of method (AUTO: the default
 * choice) at threshold (NaN: the method's default).  An empty side ->
 * KILN_EINVAL.  May be called again (e.g. with another method); the column
 * may keep being fed after it. */
int kn_drift_finish(kn_drift_col_t *col, kn_drift_method_t method, double threshold,
                    kn_drift_result_t *out, kiln_err_t *err);

/* The default threshold of a method (0.05 or 0.1). */
double kn_drift_default_threshold(kn_drift_method_t m);

/* Feeds x[c][0..n) to cols[c] for c < n_cols, over n_threads pthreads
 * (<= 1: the calling thread).  Stops at the first error (err names the
 * column index). */
int kn_drift_feed_columns(kn_drift_col_t *const *cols, size_t n_cols, kn_drift_side_t side,
                          const float *const *x, size_t n, int n_threads, kiln_err_t *err);
/* kn_drift_finish of every column with KN_DRIFT_AUTO and default thresholds. */
int kn_drift_finish_columns(kn_drift_col_t *const *cols, size_t n_cols, int n_threads,
                            kn_drift_result_t *out, kiln_err_t *err);

/* Dataset verdict: drifted when n_drifted / n_cols >= drift_share (0.5 in
 * Evidently).  n_cols 0 -> KILN_EINVAL. */
int kn_drift_dataset(const kn_drift_result_t *cols, size_t n_cols, double drift_share,
                     size_t *n_drifted, int *drifted, kiln_err_t *err);

/* ---- p-values (kernels/cpu/drift_pval.c), exposed for tests ---------- */
/* ks_2samp's p for statistic d (two-sided), method='auto'; *exact tells
 * which path (may be NULL). */
double kn_drift_ks_pvalue(size_t n1, size_t n2, double d, int *exact);
/* scipy.stats.chi2.sf(x, dof), dof >= 1. */
double kn_drift_chi2_sf(double x, double dof);

#endif
