/* drift_job.h - the drift job's parsed spec, shared by its files:
 * jobs/type_drift.c (spec, resolve, plan, finish, record) and the task in
 * jobs/drift_run.c, drift_columns.c, drift_accum.c and drift_quality.c
 * (datasets read in chunks into kn_drift columns, the per-asset and
 * model-quality parts, the report). */
#ifndef KILN_JOBS_DRIFT_JOB_H
#define KILN_JOBS_DRIFT_JOB_H

#include <stddef.h>
#include <stdint.h>

#include "../core/kiln_err.h"
#include "../kernels/drift.h"

#define JB_DRIFT_PATH_MAX 4096
#define JB_DRIFT_ID_MAX 256
#define JB_DRIFT_COL_NAME_MAX 256
#define JB_DRIFT_OVERRIDES_MAX 4096
#define JB_DRIFT_ASSETS_MAX 64       /* by_asset: assets beyond are left out, and said */

typedef struct {
    char              name[JB_DRIFT_COL_NAME_MAX];
    kn_drift_method_t method;        /* AUTO: the default choice */
    double            threshold;     /* NaN: the method's default */
} jb_drift_override_t;

typedef struct {
    char   name[128];
    char   reference[JB_DRIFT_PATH_MAX];
    char   reference_sha256[65];     /* by model: the run's dataset hash ("" otherwise) */
    char   current[JB_DRIFT_PATH_MAX];
    char   output[JB_DRIFT_PATH_MAX];
    char   report[JB_DRIFT_PATH_MAX];
    /* a model (reference {"model": ...}, resolved by kilnd at submit) */
    char   model_ref[JB_DRIFT_ID_MAX];   /* as the spec gave it, "" if none */
    char   model_file[JB_DRIFT_PATH_MAX];
    char   model_id[JB_DRIFT_ID_MAX];    /* "NAME@VERSION" */
    char   model_name[JB_DRIFT_ID_MAX];
    int64_t model_version;
    jb_drift_override_t *overrides;
    size_t n_overrides;
    double drift_share;
    int    by_asset;
    int    threads;
    void  *on_drift_submit;          /* json_t *, owned; NULL if none */
} jb_drift_spec_t;

/* The task (drift_run.c): computes and writes the report (HTML at
 * t->report) and the JSON document to out_path (temp name, then rename). */
int jb_drift_run(const jb_drift_spec_t *t, const char *out_path, kiln_err_t *err);

#endif
