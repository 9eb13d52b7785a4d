/* jobspec.h - the fields every job spec shares (DESIGN.md, "Jobs"): type,
 * name, project, priority, depends_on, resources, max_retries, timeout_s,
 * schedule and array.  The scheduler reads them here; each type's validate
 * reads its own fields and accepts these (jb_common_keys). */
#ifndef KILN_JOBS_JOBSPEC_H
#define KILN_JOBS_JOBSPEC_H

#include <stddef.h>
#include <stdint.h>

#include "../core/kiln_err.h"

#define JB_SPEC_NAME_MAX      128
#define JB_DEPENDS_MAX   64
#define JB_ARRAY_MAX     100000     /* instances in one array */
#define JB_PRIORITY_MAX  1000

typedef struct {
    int     cores;        /* per task (per rank); default 1 */
    int64_t memory_mb;    /* per task; 0: no limit */
    int     gpus;         /* per task; default 0 */
    int     ranks;        /* tasks that start together (gang); default 1 */
} jb_resources_t;

typedef struct {
    char    type[JB_SPEC_NAME_MAX];
    char    name[JB_SPEC_NAME_MAX];      /* default: the type */
    char    project[JB_SPEC_NAME_MAX];   /* default: "default" */
    int     priority;               /* -JB_PRIORITY_MAX..JB_PRIORITY_MAX, higher first */
    int64_t depends_on[JB_DEPENDS_MAX];
    size_t  n_depends_on;
    jb_resources_t resources;
    int     max_retries;            /* 0..100 */
    double  timeout_s;              /* 0: none */
    char    schedule[JB_SPEC_NAME_MAX];  /* cron expression (scheduler/cron.h), "" if none; a job
                                       with one is a recurring job's template */
    /* array "A-B%C" or "A-B" or "N": instances A..B, at most C at once (0: no cap) */
    int     has_array;
    int64_t array_first, array_last;
    int     array_cap;
} jb_common_t;

/* The common keys, NULL-terminated, for a type's unknown-field check. */
extern const char *const jb_common_keys[];

/* Reads and checks the common fields of spec (a jansson json_t *, passed as
 * void *); other keys are left to the type.  Errors are KILN_ESPEC naming the
 * field ("resources.cores", "depends_on[2]", "array").  "schedule" is taken
 * as text (its syntax is checked by kilnd); it cannot go with depends_on or
 * array. */
int jb_common_parse(const void *spec, jb_common_t *out, kiln_err_t *err);

/* Parses an array expression ("0-999%8", "5", "1-3"). */
int jb_array_parse(const char *text, int64_t *first, int64_t *last, int *cap, kiln_err_t *err);

/* Reads a job spec file (at most 1 MiB) whose "type" must be `type`:
 * *out a new jansson json_t * reference (passed as void ** to keep jansson
 * out of this header).  KILN_EIO, KILN_EJSON (path:line:column), or
 * KILN_ESPEC naming "type". */
int jb_spec_load_file(const char *path, const char *type, void **out, kiln_err_t *err);

/* KILN_ESPEC naming the first key of spec that is neither common nor in
 * type_keys (NULL-terminated). */
int jb_spec_check_keys(const void *spec, const char *const *type_keys, kiln_err_t *err);

#endif
