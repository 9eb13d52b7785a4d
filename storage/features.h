/* features.h - kiln.features.v1 datasets in HDF5: /features float32
 * [n_rows, n_features] with attr feature_names, /asset /timestamp /label
 * /target carried over from the sensor dataset, attrs source_sha256 and
 * spec_sha256.  Same write-then-rename and streaming rules as sensor.h. */
#ifndef KILN_STORAGE_FEATURES_H
#define KILN_STORAGE_FEATURES_H

#include <stddef.h>
#include <stdint.h>

#include "../core/kiln_err.h"

#define ST_FEATURES_SCHEMA "kiln.features.v1"
#define ST_MAX_FEATURES 4096

typedef struct {
    size_t      n_features;
    const char *feature_names[ST_MAX_FEATURES];
    const char *source_sha256;            /* hash of the sensor dataset */
    const char *spec_sha256;              /* hash of the feature spec */
    const char *spec_json;                /* canonical spec text, stored as attr */
    int         has_label, has_target;
    size_t      n_label_names;
    const char *label_names[256];
    /* filled by the reader only: */
    size_t      n_rows;
    const char *created;
    const char *content_sha256;
} st_features_meta_t;

/* Content hash: the rule of sensor.h, with the header
 *   str("kiln.features.v1") strs("feature_names", names)
 *   strs("label_names", names) str("source_sha256") str(source_sha256)
 *   str("spec_sha256") str(spec_sha256)
 * (a NULL hash counts as ""), then the records of /asset, /features,
 * /label, /target, /timestamp (those present), in that byte-wise order. */

typedef struct st_features_writer st_features_writer_t;
typedef struct st_features st_features_t;

/* As st_sensor_create: PATH.tmp.<pid>, renamed into place on commit.
 * Checks 1..ST_MAX_FEATURES distinct feature names and up to 256 label
 * names (1..255 bytes, no control characters), source_sha256/spec_sha256
 * NULL or 64 lowercase hex, spec_json NULL or at most 1 MiB; KILN_EINVAL.
 * /features is chunked by up to 1024 rows (about 512 KiB at most). */
int  st_features_create(const char *path, const st_features_meta_t *meta, int compress,
                        st_features_writer_t **out, kiln_err_t *err);
/* rows: n*n_features floats, row-major.  Same checks as st_sensor_append
 * (NaN/Inf in rows or target, labels in range) before anything is written. */
int  st_features_append(st_features_writer_t *w, size_t n, const float *rows,
                        const int32_t *asset, const int64_t *timestamp_ns,
                        const int32_t *label, const float *target, kiln_err_t *err);
int  st_features_commit(st_features_writer_t **w, char *hash_hex, kiln_err_t *err);
void st_features_abort(st_features_writer_t **w);

/* Validates as st_sensor_open does: schema, /features float32 2-D with
 * attr feature_names matching its width, per-row datasets of n_rows.  The
 * meta's strings are owned by *out until st_features_close. */
int  st_features_open(const char *path, st_features_t **out, kiln_err_t *err);
const st_features_meta_t *st_features_meta(const st_features_t *ds);
int  st_features_read(st_features_t *ds, size_t row0, size_t n, float *rows, kiln_err_t *err);
int  st_features_read_meta(st_features_t *ds, size_t row0, size_t n, int32_t *asset,
                           int64_t *timestamp_ns, int32_t *label, float *target,
                           kiln_err_t *err);
/* Recomputes the content hash by streaming the file; hash_hex gets 65 bytes. */
int  st_features_hash(st_features_t *ds, char *hash_hex, kiln_err_t *err);
void st_features_close(st_features_t **ds);

#endif
