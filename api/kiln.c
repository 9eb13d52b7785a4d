/* kiln.c - the `kiln` command: dispatches to one file per subcommand. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const struct {
    const char *name;
    int (*fn)(int, char **);
    const char *help;
} commands[] = {
    {"ingest",    kiln_cmd_ingest,    "convert CWRU .mat, C-MAPSS text or CSV into a sensor dataset"},
    {"gen",       kiln_cmd_gen,       "generate a synthetic vibration sensor dataset"},
    {"inspect",   kiln_cmd_inspect,   "print a dataset's schema, shape, channels, labels and hash"},
    {"featurize", kiln_cmd_featurize, "run a feature spec over a sensor dataset"},
    {"classes",   kiln_cmd_classes,   "rank features by how well they separate the labelled classes"},
    {"submit",    kiln_cmd_submit,    "send a job spec to kilnd (--wait follows it to the end)"},
    {"status",    kiln_cmd_status,    "a job's state and tasks, or every queued and running job"},
    {"list",      kiln_cmd_list,      "jobs by state and project, newest first"},
    {"logs",      kiln_cmd_logs,      "a job's log: scheduler events and task output"},
    {"cancel",    kiln_cmd_cancel,    "cancel a queued or running job"},
    {"workers",   kiln_cmd_workers,   "the workers kilnd knows and what they have free"},
    {"train",     kiln_cmd_train,     "train a model from a feature dataset on this machine"},
    {"score",     kiln_cmd_score,     "score a feature or sensor dataset with a model file on this machine"},
    {"export-lightgbm", kiln_cmd_export_lightgbm, "write a gbdt model file as LightGBM model text"},
    {"models",    kiln_cmd_models,    "the registry's models: latest version and aliases"},
    {"model",     kiln_cmd_model,     "show a model version, promote it to an alias, roll back"},
    {"runs",      kiln_cmd_runs,      "train runs and their metrics; compare two runs"},
    {"drift",     kiln_cmd_drift,     "drift jobs' results: show one (verdict, columns, report), list"},
    {"fleet",     kiln_cmd_fleet,     "edge fleets: create, list, show"},
    {"device",    kiln_cmd_device,    "edge devices: enroll (a one-time token), list, revoke"},
    {"publish",   kiln_cmd_publish,   "publish a validated model version to a fleet (staged rollout)"},
    {"rollback",  kiln_cmd_rollback,  "send a fleet back to its previous version (signed)"},
    {"rollout",   kiln_cmd_rollout,   "a fleet's rollout: stage, canaries and their health"},
    {"local",     kiln_cmd_local,     "run kilnd and N workers on this machine until Ctrl-C"},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: kiln COMMAND [ARGS]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].help);
    fprintf(f, "\n`kiln COMMAND --help` shows a command's options.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name))
            return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "kiln: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
