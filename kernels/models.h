/* models.h - what every model kernel shares (kernels/cpu/<kind>.c, each with
 * its own header kernels/<kind>.h): the training data as plain arrays, the
 * hook through which data-parallel training sums across ranks, and the byte
 * buffer models are saved into.
 *
 * Rules for every model kind:
 *  - fit is deterministic: the same data, params and seed give the same model
 *    bytes (any randomness comes from km_rng_* seeded by params, never from
 *    time or addresses; threads never change the order of a floating-point sum
 *    whose result is saved).
 *  - predict writes scores [n x n_outputs] row-major (probabilities for a
 *    classifier, the value for a regressor, the distance for anomaly) and, for
 *    a classifier or anomaly detector, the predicted class per row.
 *  - save writes a versioned little-endian byte string; load checks its magic,
 *    version and sizes and refuses anything else with KILN_EFORMAT.
 *  - data-parallel training: each rank calls fit on its own rows with the same
 *    params and a km_reduce_t whose sum() adds a buffer across ranks in place
 *    (Open MPI's allreduce in the cluster layer; NULL: one process).  Every rank
 *    calls sum() the same number of times with the same n, and the ranks end
 *    with the same model. */
#ifndef KILN_KERNELS_MODELS_H
#define KILN_KERNELS_MODELS_H

#include <stddef.h>
#include <stdint.h>

#include "../core/kiln_err.h"

typedef struct {
    const float   *x;          /* n x d, row-major */
    size_t         n, d;
    const int32_t *y;          /* class ids in [0, n_classes), or NULL */
    const float   *target;     /* regression target, or NULL */
    int            n_classes;  /* >= 2 for a classifier, 0 for regression */
} km_data_t;

/* Sums buf[0..n) over all ranks, in place, the same result on every rank.
 * NULL sum: a single process. */
typedef struct {
    int  (*sum)(void *ud, double *buf, size_t n, kiln_err_t *err);
    void  *ud;
    int    rank, n_ranks;      /* 0 and 1 for a single process */
} km_reduce_t;

/* A growable little-endian byte buffer for save/load (kernels/cpu/mbuf.c). */
typedef struct {
    unsigned char *p;
    size_t         len, cap;
    int            oom;        /* a put failed: the buffer is incomplete */
} km_buf_t;

void km_buf_put(km_buf_t *b, const void *v, size_t len);
void km_buf_u32(km_buf_t *b, uint32_t v);
void km_buf_u64(km_buf_t *b, uint64_t v);
void km_buf_f32s(km_buf_t *b, const float *v, size_t n);
void km_buf_f64s(km_buf_t *b, const double *v, size_t n);
void km_buf_free(km_buf_t *b);

/* Reading side: every get fails (returns -1) past the end. */
typedef struct {
    const unsigned char *p;
    size_t               len, off;
} km_rd_t;

int km_rd_get(km_rd_t *r, void *v, size_t len);
int km_rd_u32(km_rd_t *r, uint32_t *v);
int km_rd_u64(km_rd_t *r, uint64_t *v);
int km_rd_f32s(km_rd_t *r, float *v, size_t n);
int km_rd_f64s(km_rd_t *r, double *v, size_t n);

/* FNV-1a 64 of n bytes: the checksum a saved record ends with, so that
 * load refuses any changed byte. */
uint64_t km_fnv1a64(const unsigned char *p, size_t n);

/* The deterministic generator models use (splitmix64-seeded xoshiro256**). */
typedef struct {
    uint64_t s[4];
} km_rng_t;

void     km_rng_seed(km_rng_t *r, uint64_t seed);
uint64_t km_rng_next(km_rng_t *r);
double   km_rng_uniform(km_rng_t *r);            /* [0, 1) */
double   km_rng_normal(km_rng_t *r);             /* N(0, 1) */
/* A uniform permutation of [0, n) into idx (Fisher-Yates). */
void     km_rng_shuffle(km_rng_t *r, size_t *idx, size_t n);

#endif
