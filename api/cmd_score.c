/* cmd_score.c - `kiln score SPEC.json`: runs a score job on this machine
 * through its job type (jobs/type_score.c, the code a worker runs) and
 * prints rows scored, rows/s and, for a labelled input, the accuracy
 * against the labels and the count of each predicted class.  There is no
 * registry here: the spec (or --model-file) names the model file. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "../core/kiln_alloc.h"
#include "../jobs/jobtype.h"
#include "../jobs/modelfile.h"
#include "../storage/predictions.h"
#include "../jobs/jobspec.h"
#include "cli.h"
#include "cli_util.h"
#include "jobs_cli.h"

#define SPEC_MAX_BYTES (1 << 20)
#define READ_ROWS 65536

static void usage(FILE *f)
{
    fprintf(f, "usage: kiln score SPEC.json [--model-file F] [--input I] [--output O] [--gpu D]\n"
               "                  [--json]\n"
               "Runs the score job SPEC.json ({\"type\": \"score\", \"input\": FEATURES_OR_SENSOR.h5,\n"
               "\"output\": PREDICTIONS.h5, \"model_file\": MODEL.kmodel}; see jobs/type_score.c)\n"
               "on this machine and writes a kiln.predictions.v1 file.  A sensor input is\n"
               "featurized first with the feature spec the model was trained on.  Prints the\n"
               "rows scored, rows/s and, when the input has labels, the accuracy against them.\n"
               "A registry reference (\"model\": \"bearing@production\") is resolved only by\n"
               "kilnd (`kiln submit`); here give the model file.\n"
               "  --model-file F  the .kmodel file (overrides the spec's model_file)\n"
               "  --input I       the dataset to score (overrides the spec's input)\n"
               "  --output O      the predictions file (overrides the spec's output)\n"
               "  --gpu D         score (and featurize a sensor input) on CUDA device D; the\n"
               "                  CPU when this machine or build has none (the log says why)\n"
               "  --json          print the summary as JSON\n");
}

static json_t *load_spec(const char *path, kiln_err_t *err)
{
    void *spec = NULL;
    return jb_spec_load_file(path, "score", &spec, err) < 0 ? NULL : spec;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Validates, plans (one task here) and runs; several tasks, should the type
 * plan them, go through its finish like on the cluster. */
static int run_score(const json_t *spec, const char *output, int gpu, kiln_err_t *err)
{
    const jb_type_t *type = jb_type_find("score");
    void *parsed = NULL;
    jb_task_plan_t *tasks = NULL;
    size_t n_tasks = 0;
    jb_plan_ctx_t ctx = {1, 0};
    char **parts = NULL;
    if (!type)
        return kiln_err_set(err, KILN_EINTERNAL, "this kiln has no score job type");
    int rc = type->validate(spec, &parsed, err);
    if (rc == 0)
        rc = type->plan(parsed, &ctx, &tasks, &n_tasks, err);
    for (size_t i = 0; rc == 0 && gpu >= 0 && i < n_tasks; i++) {
        tasks[i].use_gpu = 1;
        tasks[i].gpu_device = gpu;
    }
    if (rc == 0 && n_tasks == 1) {
        rc = type->run_task(parsed, &tasks[0], output, err);
    } else if (rc == 0) {
        parts = kiln_calloc(n_tasks, sizeof *parts);
        size_t len = strlen(output) + 48;
        for (size_t i = 0; parts && rc == 0 && i < n_tasks; i++) {
            if (!(parts[i] = kiln_malloc(len))) {
                rc = kiln_err_set(err, KILN_ENOMEM, "score: out of memory");
                break;
            }
            snprintf(parts[i], len, "%s.part%zu.%ld", output, i, (long)getpid());
            rc = type->run_task(parsed, &tasks[i], parts[i], err);
        }
        if (!parts)
            rc = kiln_err_set(err, KILN_ENOMEM, "score: out of memory");
        if (rc == 0)
            rc = type->finish(parsed, (const char *const *)parts, n_tasks, output, err);
        for (size_t i = 0; parts && i < n_tasks; i++) {
            if (parts[i])
                unlink(parts[i]);
            kiln_free(parts[i]);
        }
        kiln_free(parts);
    }
    kiln_free(tasks);
    if (parsed)
        type->free_parsed(parsed);
    return rc;
}

typedef struct {
    size_t    n_rows, n_labelled, hits;
    uint64_t *pred_count;        /* [n_classes + 1]: the last one counts -1 / out of range */
    size_t    n_classes;
    int       has_label;
    char      hash[65];
} summary_t;

/* The healthy class of an anomaly detector (its predictions are 0 healthy,
 * 1 anomaly, and are judged against label != healthy), or -1. */
static int healthy_class(const char *model_file)
{
    jb_modelfile_t m;
    kiln_err_t err;
    int healthy = -1;
    if (jb_modelfile_read(model_file, &m, &err) < 0)
        return -1;
    if (m.kind->unsupervised) {
        json_t *h = json_object_get(json_object_get(m.header, "params"), "healthy_class");
        healthy = json_is_integer(h) ? (int)json_integer_value(h) : 0;
    }
    jb_modelfile_free(&m);
    return healthy;
}

/* Streams the written predictions: accuracy and the predicted classes. */
static int summarize(const char *output, int healthy, summary_t *s, kiln_err_t *err)
{
    st_predictions_t *ds = NULL;
    int32_t *pred = NULL, *label = NULL;
    int rc = st_predictions_open(output, &ds, err);
    if (rc < 0)
        return rc;
    const st_predictions_meta_t *m = st_predictions_meta(ds);
    s->n_rows = m->n_rows;
    s->has_label = m->has_label;
    s->n_classes = healthy >= 0 ? 2 : m->n_class_names;
    if ((rc = st_predictions_hash(ds, s->hash, err)) < 0)
        goto out;
    pred = kiln_malloc(READ_ROWS * sizeof *pred);
    label = kiln_malloc(READ_ROWS * sizeof *label);
    s->pred_count = kiln_calloc(s->n_classes + 1, sizeof *s->pred_count);
    if (!pred || !label || !s->pred_count) {
        rc = kiln_err_set(err, KILN_ENOMEM, "score: out of memory");
        goto out;
    }
    for (size_t r = 0; r < m->n_rows; r += READ_ROWS) {
        size_t k = m->n_rows - r < READ_ROWS ? m->n_rows - r : READ_ROWS;
        if ((rc = st_predictions_read(ds, r, k, NULL, pred, err)) < 0 ||
            (rc = st_predictions_read_meta(ds, r, k, NULL, NULL, label, NULL, err)) < 0)
            goto out;
        for (size_t i = 0; i < k; i++) {
            int32_t p = pred[i];
            s->pred_count[p >= 0 && (size_t)p < s->n_classes ? (size_t)p : s->n_classes]++;
            if (!m->has_label || label[i] < 0)
                continue;
            int32_t truth = healthy >= 0 ? label[i] != healthy : label[i];
            s->n_labelled++;
            s->hits += p == truth;
        }
    }
out:
    kiln_free(pred);
    kiln_free(label);
    st_predictions_close(&ds);
    return rc;
}

static const char *class_name(const st_predictions_meta_t *m, int healthy, size_t c)
{
    if (healthy >= 0)
        return c == 0 ? "healthy" : "anomaly";
    return c < m->n_class_names ? m->class_names[c] : "?";
}

static int print_summary(const char *output, const char *model_file, int healthy,
                         const summary_t *s, double seconds, int as_json)
{
    st_predictions_t *ds = NULL;
    kiln_err_t err;
    if (st_predictions_open(output, &ds, &err) < 0) {
        fprintf(stderr, "kiln score: %s\n", err.msg);
        return 1;
    }
    const st_predictions_meta_t *m = st_predictions_meta(ds);
    double rate = seconds > 0 ? (double)s->n_rows / seconds : 0;
    double acc = s->n_labelled ? (double)s->hits / (double)s->n_labelled : 0;
    int rc = 0;
    if (as_json) {
        json_t *counts = json_object();
        for (size_t c = 0; counts && c <= s->n_classes; c++)
            if (c < s->n_classes || s->pred_count[c])
                json_object_set_new(counts, c < s->n_classes ? class_name(m, healthy, c) : "none",
                                    json_integer((json_int_t)s->pred_count[c]));
        json_t *o = json_pack("{s:s, s:s, s:s, s:I, s:f, s:f, s:s, s:s, s:o}", "output", output,
                              "model", m->model, "model_file", model_file,
                              "rows", (json_int_t)s->n_rows, "seconds", seconds, "rows_per_s",
                              rate, "content_sha256", s->hash, "model_sha256",
                              m->model_sha256 ? m->model_sha256 : "", "predicted_counts",
                              counts ? counts : json_object());
        if (o) {
            json_object_set_new(o, "n_labelled", json_integer((json_int_t)s->n_labelled));
            json_object_set_new(o, "accuracy", s->n_labelled ? json_real(acc) : json_null());
        }
        char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
        if (text)
            printf("%s\n", text);
        else
            rc = 1;
        free(text);
        json_decref(o);
    } else {
        printf("scored %zu rows in %.3f s (%.0f rows/s) -> %s\n", s->n_rows, seconds, rate, output);
        printf("  %-10s %s (%s)\n", "model", m->model, model_file);
        printf("  %-10s %s\n", "sha256", s->hash);
        if (s->n_labelled)
            printf("  %-10s %.4f (%zu of %zu labelled rows%s)\n", "accuracy", acc, s->hits,
                   s->n_labelled, healthy >= 0 ? ", anomaly = not the healthy class" : "");
        else if (s->has_label)
            printf("  %-10s - (no row has a known label)\n", "accuracy");
        if (s->n_classes) {
            printf("  predicted\n");
            for (size_t c = 0; c < s->n_classes; c++)
                printf("    %-16s %llu\n", class_name(m, healthy, c),
                       (unsigned long long)s->pred_count[c]);
            if (s->pred_count[s->n_classes])
                printf("    %-16s %llu\n", "(none)", (unsigned long long)s->pred_count[s->n_classes]);
        }
    }
    st_predictions_close(&ds);
    if (rc)
        fprintf(stderr, "kiln score: out of memory\n");
    return rc;
}

int kiln_cmd_score(int argc, char **argv)
{
    jcli_ctx_t c = {.cmd = "score", .usage = usage};
    const char *spec_path = NULL, *output = NULL, *input = NULL, *model_file = NULL, *gpu = NULL;
    const jcli_opt_t opts[] = {{.name = "--output", .value = &output, .nonempty = 1},
                               {.name = "--gpu", .value = &gpu, .check = ka_check_gpu},
                               {.name = "--input", .value = &input, .nonempty = 1},
                               {.name = "--model-file", .value = &model_file, .nonempty = 1},
                               {0}};
    kiln_err_t err;
    kiln_err_clear(&err);
    int r = jcli_parse_args(&c, argc, argv, opts, &spec_path);
    if (r)
        return r < 0 ? 0 : r;
    if (c.server || c.dir)
        return ka_usage_error(c.cmd, usage, "runs on this machine; to score on the cluster use",
                              "`kiln submit SPEC.json`");
    if (!spec_path)
        return ka_usage_error(c.cmd, usage, "missing SPEC.json", NULL);
    json_t *spec = load_spec(spec_path, &err);
    if (!spec) {
        fprintf(stderr, "kiln score: %s\n", err.msg);
        return 1;
    }
    int bad = 0;
    if (output)
        bad |= json_object_set_new(spec, "output", json_string(output));
    if (input)
        bad |= json_object_set_new(spec, "input", json_string(input));
    if (model_file)
        bad |= json_object_set_new(spec, "model_file", json_string(model_file));
    output = json_string_value(json_object_get(spec, "output"));
    model_file = json_string_value(json_object_get(spec, "model_file"));
    if (bad) {
        fprintf(stderr, "kiln score: out of memory (or a path that is not UTF-8)\n");
        json_decref(spec);
        return 1;
    }
    double t0 = now_s();
    int rc = run_score(spec, output ? output : "", ka_gpu_device(gpu), &err);
    double seconds = now_s() - t0;
    summary_t s = {0};
    int healthy = rc == 0 ? healthy_class(model_file) : -1;
    if (rc == 0)
        rc = summarize(output, healthy, &s, &err);
    int status = 0;
    if (rc < 0) {
        int field = (rc == KILN_ESPEC || err.where[0]) && err.where[0] != '/';
        fprintf(stderr, "kiln score: %s: %s%s%s%s\n", spec_path, err.msg,
                field && err.where[0] ? " (field: " : "", field ? err.where : "",
                field && err.where[0] ? ")" : "");
        status = 1;
    } else {
        status = print_summary(output, model_file, healthy, &s, seconds, c.json);
    }
    kiln_free(s.pred_count);
    json_decref(spec);
    return status;
}
