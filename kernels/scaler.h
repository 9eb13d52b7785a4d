/* scaler.h - per-feature standardization learned at train time, as
 * sklearn.preprocessing.StandardScaler: z = (x - mean) / scale with the
 * population std as scale (1 for a constant feature).  Every model is trained
 * on standardized features, so the train job saves the scaler beside it and
 * scoring applies the very same bytes. */
#ifndef KILN_KERNELS_SCALER_H
#define KILN_KERNELS_SCALER_H

#include <stddef.h>
#include <stdint.h>

#include "models.h"

typedef struct km_scaler km_scaler_t;

/* Learns mean and std of each of data->d features over data->x (data->y and
 * target are not used) in one streaming pass: two-pass sums inside blocks of
 * rows, merged block after block and then rank after rank with Chan et al.'s
 * formula ("Updating formulae and a pairwise algorithm for computing sample
 * variances", 1979), all in double.
 *
 * Data-parallel: reduce (NULL: one process) is called exactly once, with a
 * buffer of n_ranks * (2 + 2d) doubles in which each rank fills its own slot;
 * every rank merges the slots in rank order, so every rank ends with the same
 * scaler.  A NaN/Inf on any rank, or no rows on all ranks together, fails
 * every rank (after the sum, so no rank is left waiting).
 *
 * A feature is constant, and gets scale 1, when its variance is at most
 * sklearn's bound n*eps*var + (n*mean*eps)^2 (sklearn's _is_constant_feature).
 * On success *out is a new scaler the caller frees with km_scaler_free. */
int km_scaler_fit(const km_data_t *data, const km_reduce_t *reduce, km_scaler_t **out,
                  kiln_err_t *err);

/* out[i*d + j] = (x[i*d + j] - mean[j]) / scale[j], computed in double and
 * rounded to float.  out may be x (in place).  d must be the scaler's width.
 * NaN/Inf pass through unchanged in kind (the model's predict refuses them). */
int km_scaler_transform(const km_scaler_t *s, const float *x, size_t n, size_t d,
                        float *out, kiln_err_t *err);

/* Appends the scaler to b: magic "KSCL", version 1, d, n_samples, mean[d],
 * var[d], scale[d] (little-endian), then an FNV-1a 64 checksum of all the
 * bytes before it, so any changed byte is refused on load. */
int km_scaler_save(const km_scaler_t *s, km_buf_t *b, kiln_err_t *err);

/* Reads one scaler at r's position (and moves past it).  Anything but what
 * km_scaler_save wrote fails with KILN_EFORMAT (wrong magic, version, size,
 * checksum, a non-finite or non-positive value).  *out: new, caller frees. */
int km_scaler_read(km_rd_t *r, km_scaler_t **out, kiln_err_t *err);

/* A new scaler from exactly bytes[0..len) as km_scaler_save wrote it; trailing
 * bytes are KILN_EFORMAT too (use km_scaler_read to read one from a longer
 * buffer, e.g. the scaler beside a model). */
int km_scaler_load(const void *bytes, size_t len, km_scaler_t **out, kiln_err_t *err);

/* Frees *s and sets it to NULL; NULL or *s == NULL is fine. */
void km_scaler_free(km_scaler_t **s);

/* Borrowed views, valid until free: d values each. */
size_t        km_scaler_n_features(const km_scaler_t *s);
uint64_t      km_scaler_n_samples(const km_scaler_t *s);
const double *km_scaler_mean(const km_scaler_t *s);
const double *km_scaler_var(const km_scaler_t *s);    /* population variance */
const double *km_scaler_scale(const km_scaler_t *s);

#endif
