/* drift_report_int.h - what the drift report's files (jobs/drift_report*.c)
 * share and nothing outside them may use: the verdict helpers and the table
 * order, the text helpers and the output files (drift_report.c). */
#ifndef KILN_JOBS_DRIFT_REPORT_INT_H
#define KILN_JOBS_DRIFT_REPORT_INT_H

#include <stdint.h>
#include <stdio.h>

#include "drift_report.h"

/* ---- verdicts and order ----------------------------------------------- */

/* r->drift_share, or 0.5 (Evidently's default) when 0 or NaN. */
double jb_drift_report_share(const jb_drift_report_t *r);
/* 1 for the methods whose score is a p-value (ks, chisquare, chi2, z). */
int jb_drift_report_is_pvalue(kn_drift_method_t m);
/* The column's kind: r->column_kinds, else numeric when it has a KS stat. */
kn_drift_kind_t jb_drift_report_kind(const jb_drift_report_t *r, size_t i);
/* How far past the threshold, in decades, positive when drifted; NaN when
 * the score is unknown. */
double jb_drift_report_margin(const kn_drift_result_t *c);
/* Sorted indices into a new array (kiln_free): columns by margin, assets
 * by share of drifted columns. */
int jb_drift_report_rank(const jb_drift_report_t *r, int assets, size_t **out, kiln_err_t *err);

/* ---- text ------------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at s (1..4), 0 when not valid. */
size_t jb_drift_report_utf8_len(const unsigned char *s);
/* s with each invalid byte replaced by U+FFFD, as a new kiln_malloc string;
 * NULL when out of memory. */
char *jb_drift_report_utf8_clean(const char *s);
/* "12%" or "12.5%" of a share in [0, 1]. */
void jb_drift_report_percent(char *buf, size_t n, double share);
/* "class" or "numeric" (static). */
const char *jb_drift_report_kind_name(kn_drift_kind_t k);
/* unix_s as ISO 8601 UTC ("2024-05-01T12:00:00Z"). */
void jb_drift_report_iso_time(char *buf, size_t n, int64_t unix_s);
/* r->created_unix_s, or now when 0. */
int64_t jb_drift_report_created(const jb_drift_report_t *r);

/* ---- output files: PATH.tmp.PID, then rename -------------------------- */

/* Creates path.tmp.PID (its name into tmp[n]) for writing. */
int jb_drift_report_open_tmp(const char *path, char *tmp, size_t n, FILE **f, kiln_err_t *err);
/* Closes f; renames tmp to path when ok and every write went through,
 * else removes tmp. */
int jb_drift_report_commit_tmp(FILE *f, int ok, const char *tmp, const char *path,
                               kiln_err_t *err);

#endif
