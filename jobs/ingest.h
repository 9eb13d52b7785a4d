/* ingest.h - turns outside data (CWRU .mat recordings, C-MAPSS text, CSV)
 * into kiln.sensor.v1 datasets.  Each ingest streams: it holds one
 * recording, one engine or one window per asset at a time, never the
 * whole input.  Input is checked here, at the boundary; errors name the
 * file and the variable, column or line. */
#ifndef KILN_JOBS_INGEST_H
#define KILN_JOBS_INGEST_H

#include <stddef.h>
#include <stdint.h>

#include "../core/kiln_err.h"
#include "../storage/sensor.h"

#define JB_NAME_MAX 64          /* longest channel or class name + 1 */

typedef struct {
    double      target_rate_hz;   /* CWRU: output rate, 0 = lowest input rate.
                                     CSV: sample rate, 0 = inferred from the
                                     median timestamp step of the first asset */
    size_t      window_len;       /* 0 = default: CWRU 2048; CSV requires it;
                                     C-MAPSS ignores it (always 1) */
    size_t      hop;              /* samples between window starts, 0 = window_len */
    int         compress;         /* 0 none, 1..9 deflate */
    const char *channels;         /* comma list to keep, NULL = all (CWRU: those
                                     present in every file) */
    double      cwru_unprefixed_rate_hz; /* CWRU files whose name does not start
                                     with 12k/48k (the normal baseline); 0 = 48000 */
} jb_ingest_opts_t;

/* What was written, for the CLI to print. */
typedef struct {
    size_t n_windows;
    size_t window_len;
    double sample_rate_hz;
    size_t n_channels;
    char   channels[ST_MAX_CHANNELS][JB_NAME_MAX];
    size_t n_labels;                           /* 0 when the dataset has no /label */
    char   label_names[ST_MAX_LABELS][JB_NAME_MAX];
    size_t label_counts[ST_MAX_LABELS];
    size_t n_unlabelled;                       /* windows with label -1 */
    size_t n_dropped_samples;                  /* CSV: tail samples short of a window */
    char   hash[65];                           /* content_sha256 */
} jb_ingest_summary_t;

/* CWRU bearing recordings (MATLAB 5 .mat, read with libmatio).  Variables are
 * found by suffix (_DE_time, _FE_time, _BA_time, RPM); the class comes from the
 * file name, the rate from its 12k/48k prefix, the asset from its last number
 * (the CWRU record).  Labels: 0 normal, 1 inner_race, 2 outer_race, 3 ball. */
int jb_ingest_cwru(const char *out_path, const char *const *mat_paths, size_t n_paths,
                   const jb_ingest_opts_t *opts, jb_ingest_summary_t *sum, kiln_err_t *err);

/* NASA C-MAPSS text (26 space-separated fields per row).  rul_path NULL: a
 * training file, target = last cycle - cycle; otherwise a test file, target =
 * RUL-file value + last cycle - cycle.  One window of one sample per row at
 * 1 Hz (one sample per cycle), 24 channels setting1..3, s1..s21, asset = unit,
 * timestamp = cycle * 1e9 ns (the cycle number read as seconds). */
int jb_ingest_cmapss(const char *out_path, const char *data_path, const char *rul_path,
                     const jb_ingest_opts_t *opts, jb_ingest_summary_t *sum,
                     kiln_err_t *err);

/* CSV with a header: timestamp (seconds or ISO 8601 UTC), asset (integer),
 * channel columns, optional label (integers, or class names numbered in
 * first-seen order).  Windows are window_len consecutive rows of one asset;
 * a window's label is its majority label.  Two streaming passes: the first
 * checks every row, collects class names and infers the rate; the second
 * writes. */
int jb_ingest_csv(const char *out_path, const char *csv_path, const jb_ingest_opts_t *opts,
                  jb_ingest_summary_t *sum, kiln_err_t *err);

/* Internal to jobs/ingest_*.c and jobs/gen.c: fills the summary's channel and
 * label fields from meta and zeroes the counts. */
void jb_summary_init(jb_ingest_summary_t *sum, const st_sensor_meta_t *meta);

/* Internal: splits a comma list into at most max names (copied into
 * names[][JB_NAME_MAX]); errors name `what` (e.g. "--channels"). */
int jb_split_names(const char *list, char names[][JB_NAME_MAX], size_t max, size_t *n,
                   const char *what, kiln_err_t *err);

#endif
