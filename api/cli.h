/* cli.h - the `kiln` command's subcommands; each lives in api/cmd_<name>.c
 * and returns the process exit status (0 ok, 1 failure, 2 usage). */
#ifndef KILN_API_CLI_H
#define KILN_API_CLI_H

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

#endif
