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

typedef struct st_sensor_writer st_sensor_writer_t;
typedef struct st_sensor st_sensor_t;

/* Creates PATH.tmp.<pid>; nothing appears under PATH until commit.
 * compress: 0 none, 1..9 deflate level (with shuffle). */
int  st_sensor_create(const char *path, const st_sensor_meta_t *meta, int compress,
                      st_sensor_writer_t **out, kiln_err_t *err);

/* Appends n windows.  signals[c] points at n*window_len floats of channel c
 * (row-major, window after window).  label may be NULL only when !has_label,
 * target only when !has_target.  Rejects NaN/Inf (KILN_ENONFINITE naming the
 * channel and window). */
int  st_sensor_append(st_sensor_writer_t *w, size_t n, const float *const *signals,
                      const int32_t *asset, const int64_t *timestamp_ns,
                      const int32_t *label, const float *target, kiln_err_t *err);

/* Writes the content hash and `created`, closes, renames into place.  Frees
 * *w and sets it NULL whatever happens; on failure the temp file is removed.
 * hash_hex (may be NULL) receives 64 hex chars + NUL. */
int  st_sensor_commit(st_sensor_writer_t **w, char *hash_hex, kiln_err_t *err);

/* Removes the temp file and frees; harmless on NULL. */
void st_sensor_abort(st_sensor_writer_t **w);

/* Opens and validates: HDF5 signature, schema attr, every dataset present
 * with the right rank, length and type.  Errors name the file and dataset. */
int  st_sensor_open(const char *path, st_sensor_t **out, kiln_err_t *err);
const st_sensor_meta_t *st_sensor_meta(const st_sensor_t *ds);
const char *st_sensor_path(const st_sensor_t *ds);
int  st_sensor_channel_index(const st_sensor_t *ds, const char *name);  /* -1 if absent */

/* Reads windows [win0, win0+n) of channel ch into out[n*window_len].
 * Non-finite values give KILN_ENONFINITE naming file, dataset and window. */
int  st_sensor_read(st_sensor_t *ds, size_t ch, size_t win0, size_t n, float *out,
                    kiln_err_t *err);

/* Reads the per-window columns; any pointer may be NULL to skip it.
 * label/target read as -1 / NaN-free 0 when the dataset lacks them. */
int  st_sensor_read_meta(st_sensor_t *ds, size_t win0, size_t n, int32_t *asset,
                         int64_t *timestamp_ns, int32_t *label, float *target,
                         kiln_err_t *err);

/* Recomputes the content hash by streaming the file; hash_hex gets 65 bytes. */
int  st_sensor_hash(st_sensor_t *ds, char *hash_hex, kiln_err_t *err);

void st_sensor_close(st_sensor_t **ds);

#endif
