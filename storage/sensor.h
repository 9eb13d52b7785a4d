/* sensor.h - kiln.sensor.v1 datasets in HDF5 (layout in DESIGN.md).
 * Writers append windows in batches to a temporary file beside the final
 * name and rename it into place on commit; readers stream window ranges
 * chunk by chunk, so memory never grows with the file. */
#ifndef KILN_STORAGE_SENSOR_H
#define KILN_STORAGE_SENSOR_H

#include <stddef.h>
#include <stdint.h>

#include "../core/kiln_err.h"

#define ST_SENSOR_SCHEMA "kiln.sensor.v1"
#define ST_MAX_CHANNELS 64
#define ST_MAX_LABELS 256

/* What a writer is told and what a reader finds.  Strings are owned by
 * whoever filled the struct (the caller for create, the reader for open). */
typedef struct {
    double      sample_rate_hz;
    size_t      window_len;
    size_t      n_channels;
    const char *channels[ST_MAX_CHANNELS];
    const char *source;                   /* free text: where the data came from */
    int         has_label;                /* /label present */
    int         has_target;               /* /target present */
    size_t      n_label_names;
    const char *label_names[ST_MAX_LABELS];
    /* filled by the reader only: */
    size_t      n_windows;
    const char *created;                  /* ISO 8601 UTC */
    const char *content_sha256;           /* 64 hex chars */
} st_sensor_meta_t;

/* Content hash (attr content_sha256, 64 lowercase hex chars).  It covers
 * what the data says, not when or from where it was written (`created` and
 * `source` are left out), and it is computed while streaming, so it does not
 * depend on how the windows were batched.  With
 *   str(s)       = the bytes of s and one NUL byte
 *   u64(v)       = v as 8 bytes little-endian
 *   f64(x)       = the IEEE-754 binary64 bits of x as u64
 *   strs(n, L)   = str(n) u64(len(L)) str(L[0]) str(L[1]) ...
 *   digest(d)    = SHA-256 of dataset d's elements as little-endian bytes
 *                  (float32 / int32 / int64), in row-major order
 * content_sha256 = SHA-256 of
 *   str("kiln.sensor.v1") str("sample_rate_hz") f64(sample_rate_hz)
 *   str("window_len") u64(window_len) strs("channels", channels in order)
 *   strs("label_names", label names)
 * followed, for each dataset in byte-wise order of its path ("/asset",
 * "/label", "/signals/<ch>"..., "/target", "/timestamp"), by
 *   str(path) u64(rows) u64(elements per row, 1 for 1-D) digest(dataset).
 * Features datasets use the same rule with their own header (features.h).
 * tests/oracle/ops_storage.py has an independent implementation.
 *
 * Channel order is kept in the attr `channels` (string list) on /signals;
 * a file without it (e.g. written by other tools) lists the channels in
 * name order. */

typedef struct st_sensor_writer st_sensor_writer_t;
typedef struct st_sensor st_sensor_t;

/* Creates PATH.tmp.<pid> (with a random suffix when that name is taken), exclusively;
 * nothing appears under PATH until commit. which
 * replaces an existing PATH atomically.  meta and its strings are only
 * read during the call.  Checks: sample_rate_hz finite > 0, 1 <= window_len <=
 * 4194304, 1..ST_MAX_CHANNELS channels with distinct names of 1..255 bytes
 * without '/' or control characters; KILN_EINVAL otherwise.
 * compress: 0 none, 1..9 deflate level (with shuffle).  Signals are chunked
 * by 64 windows (more for short windows, so a chunk holds >= 64 KiB; fewer
 * for long ones, so it holds <= 512 KiB). */
int  st_sensor_create(const char *path, const st_sensor_meta_t *meta, int compress,
                      st_sensor_writer_t **out, kiln_err_t *err);

/* Appends n windows.  signals[c] points at n*window_len floats of channel c
 * (row-major, window after window).  label may be NULL only when !has_label,
 * target only when !has_target.  Rejects NaN/Inf (KILN_ENONFINITE naming the
 * channel and window) and labels outside -1..n_label_names-1 (KILN_EINVAL;
 * any label >= -1 when there are no label names) before writing anything;
 * after an I/O error the writer can only be aborted. */
int  st_sensor_append(st_sensor_writer_t *w, size_t n, const float *const *signals,
                      const int32_t *asset, const int64_t *timestamp_ns,
                      const int32_t *label, const float *target, kiln_err_t *err);

/* Writes the content hash and `created`, closes, renames into place.  Frees
 * *w and sets it NULL whatever happens; on failure the temp file is removed.
 * hash_hex (may be NULL) receives 64 hex chars + NUL. */
int  st_sensor_commit(st_sensor_writer_t **w, char *hash_hex, kiln_err_t *err);

/* Removes the temp file and frees; harmless on NULL. */
void st_sensor_abort(st_sensor_writer_t **w);

/* Opens and validates: the path exists (KILN_ENOTFOUND), is HDF5
 * (KILN_EFORMAT), attr schema is kiln.sensor.v1 and sample_rate_hz,
 * window_len are sane (KILN_ESCHEMA), every dataset is present (KILN_ESCHEMA)
 * with the right type (KILN_ETYPE) and rank and length (KILN_ESHAPE).
 * Errors read "FILE: /DATASET: what" and err->where is the dataset path.
 * *out is the caller's (st_sensor_close); the strings in its meta belong
 * to *out and live until close. */
int  st_sensor_open(const char *path, st_sensor_t **out, kiln_err_t *err);
const st_sensor_meta_t *st_sensor_meta(const st_sensor_t *ds);
const char *st_sensor_path(const st_sensor_t *ds);
int  st_sensor_channel_index(const st_sensor_t *ds, const char *name);  /* -1 if absent */

/* Reads windows [win0, win0+n) of channel ch into out[n*window_len].
 * Non-finite values give KILN_ENONFINITE naming file, dataset and window. */
int  st_sensor_read(st_sensor_t *ds, size_t ch, size_t win0, size_t n, float *out,
                    kiln_err_t *err);

/* Reads the per-window columns; any pointer may be NULL to skip it.
 * label/target read as -1 / 0 when the dataset lacks them.  A NaN/Inf target
 * is KILN_ENONFINITE; a label outside -1..n_label_names-1 KILN_ESCHEMA. */
int  st_sensor_read_meta(st_sensor_t *ds, size_t win0, size_t n, int32_t *asset,
                         int64_t *timestamp_ns, int32_t *label, float *target,
                         kiln_err_t *err);

/* Recomputes the content hash by streaming the file; hash_hex gets 65 bytes. */
int  st_sensor_hash(st_sensor_t *ds, char *hash_hex, kiln_err_t *err);

void st_sensor_close(st_sensor_t **ds);

/* The root attr `schema` of any kiln HDF5 file ("kiln.sensor.v1",
 * "kiln.features.v1", ...) into schema[64], so a tool can pick the reader.
 * Same file checks and errors as st_sensor_open. */
int  st_dataset_schema(const char *path, char schema[64], kiln_err_t *err);

#endif
