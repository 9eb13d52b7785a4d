/* cli.h - the `kiln` command's subcommands; each lives in api/cmd_<name>.c
 * and returns the process exit status (0 ok, 1 failure, 2 usage). */
#ifndef KILN_API_CLI_H
#define KILN_API_CLI_H

#include <stddef.h>

int kiln_cmd_ingest(int argc, char **argv);
int kiln_cmd_gen(int argc, char **argv);
int kiln_cmd_inspect(int argc, char **argv);
int kiln_cmd_featurize(int argc, char **argv);
int kiln_cmd_classes(int argc, char **argv);
/* cmd_submit.c, cmd_query.c, cmd_control.c (over jobs_cli.c): the cluster
 * commands, over kilnd's HTTP API (docs/api.md) */
int kiln_cmd_submit(int argc, char **argv);
int kiln_cmd_status(int argc, char **argv);
int kiln_cmd_list(int argc, char **argv);
int kiln_cmd_logs(int argc, char **argv);
int kiln_cmd_cancel(int argc, char **argv);
int kiln_cmd_workers(int argc, char **argv);
int kiln_cmd_local(int argc, char **argv);
/* cmd_models.c: the model registry (kilnd's /v1/models and /v1/runs) */
int kiln_cmd_models(int argc, char **argv);
int kiln_cmd_model(int argc, char **argv);
int kiln_cmd_runs(int argc, char **argv);
/* cmd_drift.c: drift results (kilnd's /v1/drift) */
int kiln_cmd_drift(int argc, char **argv);
/* cmd_fleet.c: edge fleets, devices, publish and rollouts (kilnd's /v1/fleets...) */
int kiln_cmd_fleet(int argc, char **argv);
int kiln_cmd_device(int argc, char **argv);
int kiln_cmd_publish(int argc, char **argv);
int kiln_cmd_rollback(int argc, char **argv);
int kiln_cmd_rollout(int argc, char **argv);
/* cmd_train.c: a train job on this machine, without a cluster */
int kiln_cmd_train(int argc, char **argv);
/* cmd_score.c: a score job on this machine, with a model file */
int kiln_cmd_score(int argc, char **argv);
/* cmd_export.c: a gbdt model file as LightGBM model text */
int kiln_cmd_export_lightgbm(int argc, char **argv);

/* cmd_models.c, for cmd_train.c too: a model's metrics (a json_t * object
 * as void *, to keep jansson out of this header), one "name value" line
 * each, then the confusion matrix with rows the true class and columns the
 * predicted one, labelled labels[i] (NULL, or past n_labels: the class
 * index).  indent goes before every line. */
void ka_print_metrics(const void *metrics, const char *const *labels, size_t n_labels,
                      const char *indent);
void ka_print_confusion(const void *confusion, const char *const *labels, size_t n_labels,
                        const char *indent);

#endif
