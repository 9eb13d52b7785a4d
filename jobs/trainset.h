/* trainset.h - a feature dataset in memory for training: the matrix, the
 * column to learn (class labels or a regression target), asset and time per
 * row, and the time-aware validation split: the last fraction of each
 * asset's time is held out, never a random shuffle, because a model that
 * has seen a machine's future scores better than it will in service. */
#ifndef KILN_JOBS_TRAINSET_H
#define KILN_JOBS_TRAINSET_H

#include <stddef.h>
#include <stdint.h>

#include "../core/kiln_err.h"

#define JB_TRAIN_MAX_ROWS ((size_t)50000000)

typedef enum { JB_LEARN_LABEL = 0, JB_LEARN_TARGET = 1 } jb_learn_t;

typedef struct {
    float   *x;                 /* n x d, row-major */
    size_t   n, d;
    int32_t *label;             /* JB_LEARN_LABEL: 0..n_classes-1 */
    float   *target;            /* JB_LEARN_TARGET */
    int32_t *asset;
    int64_t *timestamp_ns;
    int      n_classes;         /* label names in the file (0 for a target) */
    char   **feature_names;     /* d strings */
    char   **class_names;       /* n_classes strings */
    char     content_sha256[65];
    char     spec_sha256[65];   /* the feature spec that made it ("" if none) */
    char    *spec_json;         /* that spec's canonical text, or NULL */
} jb_trainset_t;

/* Loads path (kiln.features.v1) with what to learn.  Rows whose label is
 * -1 (unknown) are dropped for JB_LEARN_LABEL.  Errors name the file: no
 * /label or /target, no rows left, more than JB_TRAIN_MAX_ROWS rows. */
int  jb_trainset_load(const char *path, jb_learn_t learn, jb_trainset_t *out, kiln_err_t *err);
void jb_trainset_free(jb_trainset_t *ts);

/* Splits row indices: for each asset, its rows sorted by time, the last
 * ceil(fraction x count) go to validation (an asset with one row trains).
 * fraction in [0, 1); 0 puts every row in train.  *train and *valid are
 * kiln_malloc'd, in the original row order. */
int jb_trainset_split_time(const jb_trainset_t *ts, double fraction, size_t **train,
                           size_t *n_train, size_t **valid, size_t *n_valid, kiln_err_t *err);

/* Copies the rows idx[0..n) into x (n x d) and label/target (either may be
 * NULL to skip). */
void jb_trainset_gather(const jb_trainset_t *ts, const size_t *idx, size_t n, float *x,
                        int32_t *label, float *target);

#endif
