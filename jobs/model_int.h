/* model_int.h - what the model kind adapters (jobs/model_<kind>.c) share:
 * reading the spec's "model" object with errors that name model.<key>. */
#ifndef KILN_JOBS_MODEL_INT_H
#define KILN_JOBS_MODEL_INT_H

#include <jansson.h>

#include "model.h"

/* KILN_ESPEC naming model.<key> for a key of obj not in keys ("kind" is always allowed). */
int jb_model_check_keys(const json_t *obj, const char *const *keys, kiln_err_t *err);
/* A number in [lo, hi]; absent leaves *out as it is. */
int jb_model_num(const json_t *obj, const char *key, double lo, double hi, double *out,
                 kiln_err_t *err);
/* An integer in [lo, hi]; absent leaves *out as it is. */
int jb_model_int(const json_t *obj, const char *key, long long lo, long long hi, long long *out,
                 kiln_err_t *err);

#endif
