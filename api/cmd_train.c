/* cmd_train.c - `kiln train SPEC.json`: runs a train job on this machine
 * through its job type (jobs/type_train.c, the code a worker runs) and
 * prints the model file's metrics and gate verdict.  There is no registry
 * here: that is kilnd's (`kiln submit`, then `kiln models`). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#include "../core/kiln_alloc.h"
#include "../jobs/jobtype.h"
#include "../jobs/modelfile.h"
#include "../jobs/jobspec.h"
#include "cli.h"
#include "cli_util.h"
#include "jobs_cli.h"

#define SPEC_MAX_BYTES (1 << 20)   /* job specs are small; kilnd takes at most this */

static void usage(FILE *f)
{
    fprintf(f, "usage: kiln train SPEC.json [--output OUT.kmodel] [--gpu D] [--json]\n"
               "Runs the train job SPEC.json ({\"type\": \"train\", \"input\": FEATURES.h5,\n"
               "\"model\": {\"kind\": ...}, \"target\": \"label\", \"validation\": {...}}; see\n"
               "jobs/type_train.c) on this machine, writes the model file and prints its\n"
               "metrics on the held-out rows and the gate verdict.  A model under a gate is\n"
               "still written (exit 0) and said to be rejected.  Nothing is registered.\n"
               "  --output OUT  the model file (default: the spec's \"output\"; one is needed)\n"
               "  --gpu D       fit on CUDA device D (logreg, mlp; the others, or a machine\n"
               "                or build without a GPU, fit on the CPU: the log says why)\n"
               "  --json        print the model file's header (kind, params, metrics,\n"
               "                accepted, rejected_because, lineage) as JSON\n");
}

/* The spec at path as a JSON object (new reference), or NULL with err set. */
static json_t *load_spec(const char *path, kiln_err_t *err)
{
    void *spec = NULL;
    return jb_spec_load_file(path, "train", &spec, err) < 0 ? NULL : spec;
}

/* The confusion matrix's labels: the class names, or for an anomaly
 * detector (judged healthy vs not) the healthy class and "anomaly". */
static size_t class_labels(const json_t *header, const char **labels, size_t cap, char *healthy,
                           size_t healthy_cap)
{
    json_t *names = json_object_get(header, "class_names");
    json_t *h = json_object_get(json_object_get(header, "params"), "healthy_class");
    size_t n = 0;
    if (json_is_integer(h)) {
        const char *name = json_string_value(json_array_get(names, (size_t)json_integer_value(h)));
        snprintf(healthy, healthy_cap, "%s", name ? name : "healthy");
        labels[n++] = healthy;
        labels[n++] = "anomaly";
        return n;
    }
    for (; n < cap && n < json_array_size(names); n++)
        labels[n] = json_string_value(json_array_get(names, n));
    return n;
}

static void print_summary(const char *spec_path, const char *output, const json_t *h)
{
    const char *labels[256];
    char healthy[160];
    size_t n_labels = class_labels(h, labels, sizeof labels / sizeof labels[0], healthy,
                                   sizeof healthy);
    char *params = json_dumps(json_object_get(h, "params"), JSON_COMPACT | JSON_SORT_KEYS);
    printf("trained %s (%s, learns the %s) -> %s\n", spec_path,
           json_string_value(json_object_get(h, "kind")),
           json_string_value(json_object_get(h, "learn")), output);
    printf("  %-10s %s\n", "params", params ? params : "-");
    printf("  %-10s %lld\n", "seed", (long long)json_integer_value(json_object_get(h, "seed")));
    printf("  %-10s %s\n", "dataset", json_string_value(json_object_get(h, "dataset_sha256")));
    printf("  %-10s %s\n", "featspec", json_string_value(json_object_get(h, "featspec_sha256")));
    printf("metrics (held-out rows)\n");
    ka_print_metrics(json_object_get(h, "metrics"), labels, n_labels, "  ");
    if (json_is_true(json_object_get(h, "accepted")))
        printf("accepted: the model passed its gates\n");
    else
        printf("REJECTED: %s\n  (the model file is written; kilnd would record the run but add "
               "no model version)\n",
               json_string_value(json_object_get(h, "rejected_because")));
    free(params);
}

/* Validates, plans and runs the one task into output; 0 or a KILN_E code. */
static int run_train(const json_t *spec, const char *output, int gpu, kiln_err_t *err)
{
    const jb_type_t *type = jb_type_find("train");
    void *parsed = NULL;
    jb_task_plan_t *tasks = NULL;
    size_t n_tasks = 0;
    jb_plan_ctx_t ctx = {0};
    if (!type)
        return kiln_err_set(err, KILN_EINTERNAL, "this kiln has no train job type");
    int rc = type->validate(spec, &parsed, err);
    if (rc == 0)
        rc = type->plan(parsed, &ctx, &tasks, &n_tasks, err);
    /* Ranks > 1 plan a task per rank; task 0 alone says how to launch them. */
    if (rc == 0 && n_tasks == 0)
        rc = kiln_err_set(err, KILN_EINTERNAL, "train: no task planned");
    if (rc == 0 && gpu >= 0) {
        tasks[0].use_gpu = 1;
        tasks[0].gpu_device = gpu;
    }
    if (rc == 0)
        rc = type->run_task(parsed, &tasks[0], output, err);
    kiln_free(tasks);
    if (parsed)
        type->free_parsed(parsed);
    return rc;
}

int kiln_cmd_train(int argc, char **argv)
{
    /* jobs_cli's parser, for the same option rules as the cluster commands;
     * --server and --dir mean nothing here. */
    jcli_ctx_t c = {.cmd = "train", .usage = usage};
    const char *spec_path = NULL, *output = NULL, *gpu = NULL;
    const jcli_opt_t opts[] = {{.name = "--output", .value = &output, .nonempty = 1},
                               {.name = "--gpu", .value = &gpu, .check = ka_check_gpu}, {0}};
    kiln_err_t err;
    kiln_err_clear(&err);
    int r = jcli_parse_args(&c, argc, argv, opts, &spec_path);
    if (r)
        return r < 0 ? 0 : r;
    if (c.server || c.dir)
        return ka_usage_error(c.cmd, usage, "runs on this machine; to train on the cluster use",
                              "`kiln submit SPEC.json`");
    if (!spec_path)
        return ka_usage_error(c.cmd, usage, "missing SPEC.json", NULL);

    json_t *spec = load_spec(spec_path, &err);
    if (!spec) {
        fprintf(stderr, "kiln train: %s\n", err.msg);
        return 1;
    }
    if (!output)
        output = json_string_value(json_object_get(spec, "output"));
    if (!output || !output[0]) {
        fprintf(stderr, "kiln train: %s: output missing (give it in the spec or as --output)\n",
                spec_path);
        json_decref(spec);
        return 1;
    }
    jb_modelfile_t m = {0};
    int rc = run_train(spec, output, ka_gpu_device(gpu), &err);
    if (rc == 0)
        rc = jb_modelfile_read(output, &m, &err);
    if (rc < 0) {
        int field = rc == KILN_ESPEC && err.where[0];
        fprintf(stderr, "kiln train: %s: %s%s%s%s\n", spec_path, err.msg, field ? " (field: " : "",
                field ? err.where : "", field ? ")" : "");
        json_decref(spec);
        return 1;
    }
    char *text = c.json ? json_dumps(m.header, JSON_COMPACT) : NULL;
    if (c.json && text)
        printf("%s\n", text);
    else if (c.json)
        rc = -1;
    else
        print_summary(spec_path, output, m.header);
    free(text);
    jb_modelfile_free(&m);
    json_decref(spec);
    if (rc < 0)
        fprintf(stderr, "kiln train: out of memory\n");
    return rc < 0 ? 1 : 0;
}
