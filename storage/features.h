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

typedef struct st_features_writer st_features_writer_t;
typedef struct st_features st_features_t;

int  st_features_create(const char *path, const st_features_meta_t *meta, int compress,
                        st_features_writer_t **out, kiln_err_t *err);
/* rows: n*n_features floats, row-major. */
int  st_features_append(st_features_writer_t *w, size_t n, const float *rows,
                        const int32_t *asset, const int64_t *timestamp_ns,
                        const int32_t *label, const float *target, kiln_err_t *err);
int  st_features_commit(st_features_writer_t **w, char *hash_hex, kiln_err_t *err);
void st_features_abort(st_features_writer_t **w);

int  st_features_open(const char *path, st_features_t **out, kiln_err_t *err);
const st_features_meta_t *st_features_meta(const st_features_t *ds);
int  st_features_read(st_features_t *ds, size_t row0, size_t n, float *rows, kiln_err_t *err);
int  st_features_read_meta(st_features_t *ds, size_t row0, size_t n, int32_t *asset,
                           int64_t *timestamp_ns, int32_t *label, float *target,
                           kiln_err_t *err);
int  st_features_hash(st_features_t *ds, char *hash_hex, kiln_err_t *err);
void st_features_close(st_features_t **ds);

#endif
