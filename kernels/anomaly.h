/* anomaly.h - the anomaly detector model kind: a Gaussian model of healthy
 * rows (mean and shrunk covariance), the Mahalanobis distance as the score,
 * and a threshold set so that a chosen fraction of healthy training rows is
 * flagged.  Its input is standardized features (km_scaler, saved beside it by
 * the train job); the detector does not scale by itself. */
#ifndef KILN_KERNELS_ANOMALY_H
#define KILN_KERNELS_ANOMALY_H

#include <stddef.h>
#include <stdint.h>

#include "models.h"

/* shrinkage value meaning "estimate it" (Ledoit-Wolf). */
#define KM_ANOMALY_LEDOIT_WOLF (-1.0)

typedef struct {
    /* Fraction of healthy rows the threshold flags: the threshold is the
     * (1 - rate) quantile of the training distances.  In (0, 1); 0.01. */
    double   false_alarm_rate;
    /* With data->y: rows whose class is healthy_class are the healthy ones
     * (others, -1 "unknown" included, are ignored).  Without y every row is
     * healthy.  Default 0. */
    int32_t  healthy_class;
    /* Covariance = (1 - s) * empirical + s * (trace / d) * I, as sklearn's
     * ShrunkCovariance.  KM_ANOMALY_LEDOIT_WOLF (default): s from Ledoit and
     * Wolf, "A well-conditioned estimator for large-dimensional covariance
     * matrices" (2004), computed exactly as sklearn.covariance.LedoitWolf;
     * 0 gives sklearn's EmpiricalCovariance; any fixed s in [0, 1]. */
    double   shrinkage;
    /* Distances each rank contributes to the threshold's quantile (>= 16).
     * A rank with at most this many healthy rows sends all its distances;
     * one with more sends that many evenly spaced order statistics, each
     * standing for n_rank / quantile_sample rows.  The threshold is then
     * numpy.quantile(distances, 1 - rate) ("linear") exactly while every rank
     * holds <= quantile_sample healthy rows, and otherwise off by at most
     * n_total / quantile_sample rows in rank (with the default 8192: the
     * achieved training false-alarm rate is within 1/8192 of the target). */
    size_t   quantile_sample;
} km_anomaly_params_t;

typedef struct km_anomaly km_anomaly_t;

void km_anomaly_params_default(km_anomaly_params_t *p);

/* Fits on the healthy rows of data (x: n x d, standardized).  params NULL:
 * defaults.  Three passes over the rows, each followed by one reduce->sum
 * (NULL: one process): (1) count and sum x, (2) the scatter matrix about the
 * global mean and sum ||x - mean||^4 (Ledoit-Wolf needs it), (3) the
 * distances for the threshold, gathered as each rank's slot of
 * n_ranks * (2 + quantile_sample) doubles.  Every rank ends with the same
 * model.  Arguments that are the same on every rank (params, d, reduce) are
 * checked before any sum; a rank's own bad data (NaN/Inf in a healthy row)
 * is carried through the sums so every rank fails together.  A rank that
 * cannot allocate its working buffers before the first sum returns
 * KILN_ENOMEM at once (it cannot take part); later failures go through the
 * sums.  Memory: O(d^2 + n_ranks * quantile_sample) plus one double per
 * healthy row of this rank (its distances, sorted for the quantile).
 *
 * Errors: KILN_EINVAL for bad params, fewer than 2 healthy rows in all, or a
 * covariance that is not positive definite even after shrinkage (e.g. a
 * constant or duplicated feature with shrinkage 0); KILN_ENONFINITE for
 * NaN/Inf.  *out: new model, caller frees with km_anomaly_free. */
int km_anomaly_fit(const km_data_t *data, const km_anomaly_params_t *params,
                   const km_reduce_t *reduce, km_anomaly_t **out, kiln_err_t *err);

/* For each of n rows of x (n x d, d = km_anomaly_dim): scores[i] = the
 * Mahalanobis distance sqrt((x - mean)^T C^-1 (x - mean)) (computed in double
 * by a triangular solve with the Cholesky factor of C, then rounded to
 * float), and pred[i] = 1 (anomaly) when that distance > threshold, else 0.
 * pred may be NULL.  KILN_ENONFINITE names the first row with NaN/Inf. */
int km_anomaly_predict(const km_anomaly_t *m, const float *x, size_t n, float *scores,
                       int32_t *pred, kiln_err_t *err);

/* Appends the model to b: magic "KANO", version 1, d, n_train, rate,
 * shrinkage, threshold, mean[d], covariance[d*d] (little-endian), then an
 * FNV-1a 64 checksum of the bytes before it. */
int km_anomaly_save(const km_anomaly_t *m, km_buf_t *b, kiln_err_t *err);

/* Reads one model at r's position and moves past it; KILN_EFORMAT for
 * anything km_anomaly_save did not write (magic, version, sizes, checksum,
 * bad values, a covariance that is not positive definite).  *out: new,
 * caller frees. */
int km_anomaly_read(km_rd_t *r, km_anomaly_t **out, kiln_err_t *err);

/* A new model from exactly bytes[0..len) as km_anomaly_save wrote it; trailing
 * bytes are KILN_EFORMAT too (use km_anomaly_read to read one from a longer
 * buffer, e.g. the scaler beside a model). */
int km_anomaly_load(const void *bytes, size_t len, km_anomaly_t **out, kiln_err_t *err);

/* Frees *m and sets it to NULL; NULL or *m == NULL is fine. */
void km_anomaly_free(km_anomaly_t **m);

double        km_anomaly_threshold(const km_anomaly_t *m);
size_t        km_anomaly_n_features(const km_anomaly_t *m);
size_t        km_anomaly_n_outputs(const km_anomaly_t *m);     /* 1: the distance */
uint64_t      km_anomaly_n_train(const km_anomaly_t *m);    /* healthy rows, all ranks */
double        km_anomaly_shrinkage(const km_anomaly_t *m);  /* the s used */
/* Borrowed, valid until free: mean[d] and the shrunk covariance[d*d]. */
const double *km_anomaly_location(const km_anomaly_t *m);
const double *km_anomaly_covariance(const km_anomaly_t *m);

#endif
