/* registry.h - the model registry, in the scheduler's state store (one
 * SQLite connection, so a train job's run, model version and alias change
 * commit in the loop turn's transaction): every training run with its
 * lineage and metrics, model versions under a name, and aliases
 * ("production", "staging") that promote and roll back. */
#ifndef KILN_STORAGE_REGISTRY_H
#define KILN_STORAGE_REGISTRY_H

#include <stdint.h>

#include "storage/state.h"

#define ST_NAME_MAX 128

/* A training run.  From st_registry_run_get the strings are owned (free with
 * st_registry_run_free); in a list callback they are borrowed. */
typedef struct {
    int64_t id;
    int64_t job_id;
    char   *model_name;
    char   *kind;              /* logreg, mlp, gbdt, anomaly */
    char   *params_json;
    int64_t seed;
    char   *dataset_sha256;    /* the training data's content hash */
    char   *featspec_sha256;   /* the feature spec's hash */
    char   *code_version;
    char   *metrics_json;
    double  duration_s;
    int     accepted;          /* 0: the validation gate rejected it */
    char   *artifact_sha256;   /* the model's bytes in the artifact store */
    int64_t created_ns;
} st_run_t;

typedef struct {
    char    name[ST_NAME_MAX];
    int64_t version;
    int64_t run_id;
    char    artifact_sha256[65];
    int64_t created_ns;
} st_model_t;

typedef int (*st_run_cb)(const st_run_t *run, void *ud);
/* name, its latest version and how many versions it has. */
typedef int (*st_model_cb)(const char *name, int64_t latest, int64_t n_versions, void *ud);
typedef int (*st_alias_cb)(const char *alias, int64_t version, void *ud);

/* Records a run (id, created_ns taken from run; *id the new run). */
int  st_registry_run_insert(st_state_t *st, const st_run_t *run, int64_t *id, kiln_err_t *err);
int  st_registry_run_get(st_state_t *st, int64_t id, st_run_t *out, kiln_err_t *err);
void st_registry_run_free(st_run_t *run);
/* Newest first; model_name NULL: every model's; limit <= 0: all. */
int  st_registry_run_list(st_state_t *st, const char *model_name, int64_t limit, st_run_cb cb,
                          void *ud, kiln_err_t *err);

/* A new version of `name` from an accepted run: *version = latest + 1. */
int st_registry_model_add(st_state_t *st, const char *name, int64_t run_id,
                          const char *artifact_sha256, int64_t now_ns, int64_t *version,
                          kiln_err_t *err);
/* Resolves "NAME", "NAME@VERSION" or "NAME@ALIAS" (the latest version for a
 * bare name).  KILN_ENOTFOUND naming what is missing; KILN_EINVAL for a
 * malformed reference. */
int st_registry_model_resolve(st_state_t *st, const char *ref, st_model_t *out, kiln_err_t *err);
int st_registry_model_list(st_state_t *st, st_model_cb cb, void *ud, kiln_err_t *err);

/* Points alias at version (which must exist) and remembers it. */
int st_registry_alias_set(st_state_t *st, const char *name, const char *alias, int64_t version,
                          int64_t now_ns, kiln_err_t *err);
/* Points alias back at the version it had before the last set; *version the
 * one it now names.  KILN_ESTATE when there is nothing to go back to. */
int st_registry_alias_rollback(st_state_t *st, const char *name, const char *alias,
                               int64_t now_ns, int64_t *version, kiln_err_t *err);
int st_registry_alias_list(st_state_t *st, const char *name, st_alias_cb cb, void *ud,
                           kiln_err_t *err);

#endif
