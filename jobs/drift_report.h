/* drift_report.h - the report of a drift job (docs/drift.md, "Report"): one
 * self-contained HTML file (inline CSS and SVG, nothing fetched) that people
 * open in a browser, and the same data as JSON for programs.  The job fills a
 * jb_drift_report_t from its kn_drift_result_t's; this module only presents. */
#ifndef KILN_JOBS_DRIFT_REPORT_H
#define KILN_JOBS_DRIFT_REPORT_H

#include <stddef.h>
#include <stdint.h>

#include "../core/kiln_err.h"
#include "../kernels/drift.h"

#define JB_DRIFT_REPORT_SCHEMA "kiln.drift_report.v1"

/* One row of the per-asset table: the asset's own columns compared, reference
 * against current rows of that asset.  share = n_drifted / n_columns.  Both
 * files list assets drifted first, then by share (highest first). */
typedef struct {
    int32_t asset_id;
    size_t  n_ref_rows, n_cur_rows;
    size_t  n_columns, n_drifted;
    int     drifted;                 /* the asset's dataset verdict */
} jb_drift_report_asset_t;

/* One model quality metric on reference and current labels ("accuracy",
 * "macro_f1"); NaN where not known. */
typedef struct {
    const char *metric;
    double      reference, current;
} jb_drift_report_quality_t;

/* Everything is borrowed: the report never frees or keeps a pointer.
 * Strings may hold anything (they come from files): the writers escape
 * them, and bytes that are not UTF-8 become U+FFFD. */
typedef struct {
    const char *title;               /* job name; NULL: "Drift report" */
    const char *job_id;              /* NULL: not shown */
    const char *model;               /* "name@version"; NULL: no model */
    const char *reference_path, *current_path;   /* NULL: not shown */
    size_t      n_ref_rows, n_cur_rows;
    int64_t     created_unix_s;      /* 0: the time of writing */

    /* columns, in the dataset's order; column_kinds NULL: numeric when the
     * result has a KS statistic, class otherwise (drift.h: NaN where a
     * statistic does not apply). */
    const char *const       *column_names;
    const kn_drift_kind_t   *column_kinds;
    const kn_drift_result_t *results;
    size_t                   n_columns;

    /* the dataset drifts when n_drifted / n_columns >= drift_share;
     * 0 (or NaN): 0.5, Evidently's default.  n_drifted and the verdict are
     * computed from results (kn_drift_dataset), so the summary can never
     * disagree with the table. */
    double drift_share;

    const jb_drift_report_asset_t   *assets;     /* may be NULL */
    size_t                           n_assets;
    const jb_drift_report_quality_t *quality;    /* may be NULL */
    size_t                           n_quality;
} jb_drift_report_t;

/* The dataset summary: n_drifted columns, their share and the verdict at
 * the effective drift_share.  KILN_EINVAL when the report has no columns or
 * lacks names or results. */
int jb_drift_report_summary(const jb_drift_report_t *r, size_t *n_drifted, double *share,
                            int *drifted, kiln_err_t *err);

/* The table order, most drifted first: drifted columns before the others,
 * then by how far past (or short of) the threshold the score lies, as
 * log10(threshold / p) for p-value methods and log10(score / threshold) for
 * distances, so p-values and distances mix; ties keep dataset order.
 * order[0..n_columns) receives column indices (caller's array). */
int jb_drift_report_order(const jb_drift_report_t *r, size_t *order, kiln_err_t *err);

/* The JSON document (schema JB_DRIFT_REPORT_SCHEMA, docs/drift.md): summary,
 * every statistic of every column in table order (NaN and Inf -> null),
 * histograms, assets, quality.  *out is a new jansson json_t * reference
 * (void ** to keep jansson out of this header): the caller json_decref's it. */
int jb_drift_report_json(const jb_drift_report_t *r, void **out, kiln_err_t *err);

/* Write the HTML page or the JSON document to path, through path.tmp.PID and
 * a rename, so a reader never sees half a report.  KILN_EIO names the path
 * and the system's reason; the temporary file is removed on failure. */
int jb_drift_report_write_html(const jb_drift_report_t *r, const char *path, kiln_err_t *err);
int jb_drift_report_write_json(const jb_drift_report_t *r, const char *path, kiln_err_t *err);

#endif
