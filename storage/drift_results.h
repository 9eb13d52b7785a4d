/* drift_results.h - drift jobs' verdicts in the state store (schema v6,
 * table drift_results), and the training input path a run remembers so a
 * drift job can take a model's training data as its reference.  Written on
 * the scheduler's thread by the drift type's record step; read by the API
 * (GET /v1/drift/ID, /v1/drift?model=NAME) and /metrics. */
#ifndef KILN_STORAGE_DRIFT_RESULTS_H
#define KILN_STORAGE_DRIFT_RESULTS_H

#include <stddef.h>
#include <stdint.h>

#include "storage/state.h"

/* One drift job's result.  From st_drift_result_get the strings are owned
 * (st_drift_result_free); in a list callback they are borrowed. */
typedef struct {
    int64_t job_id;
    char   *model_name;        /* "" when the reference was a path */
    int64_t model_version;     /* 0 when no model */
    int64_t created_ns;
    int     drifted;           /* the dataset verdict */
    double  share;             /* drifted columns / columns */
    int64_t n_columns, n_drifted;
    int64_t child_job_id;      /* the on_drift job, 0 if none */
    char   *columns_json;      /* [{"column","method","score","threshold","drifted"}...] */
    char   *result_json;       /* the job's whole summary document */
} st_drift_result_t;

typedef int (*st_drift_result_cb)(const st_drift_result_t *r, void *ud);

/* Stores (or replaces: a job records once, a retry of the record step again) r. */
int  st_drift_result_put(st_state_t *st, const st_drift_result_t *r, kiln_err_t *err);
/* KILN_ENOTFOUND naming the job when it has no result. */
int  st_drift_result_get(st_state_t *st, int64_t job_id, st_drift_result_t *out,
                         kiln_err_t *err);
void st_drift_result_free(st_drift_result_t *r);
/* Newest first; model_name NULL: all; limit <= 0: all.  cb returns non-zero
 * to stop. */
int  st_drift_result_list(st_state_t *st, const char *model_name, int64_t limit,
                          st_drift_result_cb cb, void *ud, kiln_err_t *err);
/* The newest result of each model (model_name != ""), for /metrics. */
int  st_drift_result_latest_per_model(st_state_t *st, st_drift_result_cb cb, void *ud,
                                      kiln_err_t *err);

/* The path a run trained on (train jobs record it; "" for runs recorded
 * before schema v6).  KILN_ENOTFOUND for an unknown run; KILN_EINVAL when
 * it does not fit in cap. */
int st_registry_run_set_input(st_state_t *st, int64_t run_id, const char *path,
                              kiln_err_t *err);
int st_registry_run_input(st_state_t *st, int64_t run_id, char *path, size_t cap,
                          kiln_err_t *err);

#endif
