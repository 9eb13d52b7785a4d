/* predictions.h - kiln.predictions.v1 datasets in HDF5: what a score job
 * writes.  /score float32 [n_rows, n_outputs] with attr output_names,
 * /predicted int32 [n_rows] (a class id; -1 where the model predicts none,
 * e.g. a regressor), and /asset /timestamp (/label /target when the input
 * had them) carried over from the scored dataset.  Root attrs: schema,
 * model ("bearing@3"), model_sha256 (the model file's bytes),
 * source_sha256 (the scored dataset's content hash), class_names, created,
 * content_sha256.  Same write-then-rename and streaming rules as sensor.h. */
#ifndef KILN_STORAGE_PREDICTIONS_H
#define KILN_STORAGE_PREDICTIONS_H

#include <stddef.h>
#include <stdint.h>

#include "../core/kiln_err.h"

#define ST_PREDICTIONS_SCHEMA "kiln.predictions.v1"
#define ST_PRED_MAX_OUTPUTS 256
#define ST_PRED_MAX_CLASSES 256

typedef struct {
    size_t      n_outputs;
    const char *output_names[ST_PRED_MAX_OUTPUTS];
    size_t      n_class_names;                /* labels are in -1..n-1 (any >= -1 if 0) */
    const char *class_names[ST_PRED_MAX_CLASSES];
    const char *model;                        /* "NAME@VERSION" or a file name; 1..255 bytes */
    const char *model_sha256;                 /* NULL or 64 lowercase hex */
    const char *source_sha256;                /* NULL or 64 lowercase hex */
    int         has_label, has_target;
    /* filled by the reader only: */
    size_t      n_rows;
    const char *created;
    const char *content_sha256;
} st_predictions_meta_t;

/* Content hash: the rule of sensor.h, with the header
 *   str("kiln.predictions.v1") strs("output_names", names)
 *   strs("class_names", names) str("model_sha256") str(model_sha256)
 *   str("source_sha256") str(source_sha256)
 * (a NULL hash counts as ""), then the records of /asset, /label,
 * /predicted, /score, /target, /timestamp (those present), in that
 * byte-wise order.  The attr `model` (a name for people) is left out, like
 * `created`: the model is identified by the hash of its bytes, so the same
 * model file scored locally or through the registry gives the same hash. */

typedef struct st_predictions_writer st_predictions_writer_t;
typedef struct st_predictions st_predictions_t;

/* As st_features_create: PATH.tmp.<pid>, renamed into place on commit.
 * Checks 1..ST_PRED_MAX_OUTPUTS distinct output names, up to
 * ST_PRED_MAX_CLASSES distinct class names (1..255 bytes, no control
 * characters), model 1..255 bytes without control characters, the hashes
 * NULL or 64 lowercase hex, compress 0..9; KILN_EINVAL otherwise. */
int  st_predictions_create(const char *path, const st_predictions_meta_t *meta, int compress,
                           st_predictions_writer_t **out, kiln_err_t *err);
/* scores: n*n_outputs floats, row-major; predicted: n class ids (>= -1).
 * NaN/Inf in scores or target (KILN_ENONFINITE), predicted below -1 or
 * labels out of range (KILN_EINVAL) are refused before anything is
 * written; after an I/O error the writer can only be aborted. */
int  st_predictions_append(st_predictions_writer_t *w, size_t n, const float *scores,
                           const int32_t *predicted, const int32_t *asset,
                           const int64_t *timestamp_ns, const int32_t *label,
                           const float *target, kiln_err_t *err);
/* Seals the hash into content_sha256 and renames into place; *w is freed
 * either way.  hash_hex (may be NULL) gets 65 bytes. */
int  st_predictions_commit(st_predictions_writer_t **w, char *hash_hex, kiln_err_t *err);
/* Removes the temp file; nothing appears under the final name. */
void st_predictions_abort(st_predictions_writer_t **w);

/* Checks the schema, /score float32 2-D with attr output_names matching its
 * width, /predicted int32 1-D and the per-row datasets of n_rows rows.  The
 * meta's strings are owned by *out until st_predictions_close. */
int  st_predictions_open(const char *path, st_predictions_t **out, kiln_err_t *err);
const st_predictions_meta_t *st_predictions_meta(const st_predictions_t *ds);
/* Rows [row0, row0+n): scores (n*n_outputs) and/or predicted (either NULL). */
int  st_predictions_read(st_predictions_t *ds, size_t row0, size_t n, float *scores,
                         int32_t *predicted, kiln_err_t *err);
/* The per-row columns; label/target read as -1 / 0 when absent (each may be NULL). */
int  st_predictions_read_meta(st_predictions_t *ds, size_t row0, size_t n, int32_t *asset,
                              int64_t *timestamp_ns, int32_t *label, float *target,
                              kiln_err_t *err);
/* Recomputes the content hash by streaming the file; hash_hex gets 65 bytes. */
int  st_predictions_hash(st_predictions_t *ds, char *hash_hex, kiln_err_t *err);
void st_predictions_close(st_predictions_t **ds);

#endif
