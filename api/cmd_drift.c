/* cmd_drift.c - drift results over kilnd's HTTP API (docs/drift.md):
 * `kiln drift show JOB_ID` (the verdict, the columns most drifted first,
 * assets, model quality, the report's path) and `kiln drift list [--model
 * NAME]`, as text or, with --json, the server's JSON. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "../core/kiln_alloc.h"
#include "cli.h"
#include "cli_util.h"
#include "jobs_cli.h"

static void drift_usage(FILE *f)
{
    fprintf(f, "usage: kiln drift show JOB_ID [--json] [--server URL] [--dir D]\n"
               "       kiln drift list [--model NAME] [--limit N] [--json] [--server URL]\n"
               "                       [--dir D]\n"
               "  show  a drift job's stored result: verdict, share of drifted columns, each\n"
               "        column's method, score and threshold (most drifted first), assets,\n"
               "        model quality, the on_drift job and the report's path\n"
               "  list  drift results, newest first (of one model with --model)\n"
               JCLI_COMMON_HELP);
}

static void when_text(long long ns, char *out, size_t cap)
{
    time_t s = (time_t)(ns / 1000000000LL);
    struct tm tm;
    if (ns <= 0 || !gmtime_r(&s, &tm) || !strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm))
        snprintf(out, cap, "-");
}

static void num_text(json_t *v, char *out, size_t cap)
{
    if (json_is_number(v))
        snprintf(out, cap, "%.4g", json_number_value(v));
    else
        snprintf(out, cap, "-");
}

static void model_text(json_t *o, char *out, size_t cap)
{
    const char *m = jcli_jstr(o, "model", NULL);
    if (m)
        snprintf(out, cap, "%s@%lld", m, jcli_jint(o, "model_version"));
    else
        snprintf(out, cap, "-");
}

static int print_show(json_t *o)
{
    json_t *res = json_object_get(o, "result");
    char text[256], a[64], b[64];
    model_text(o, text, sizeof text);
    printf("drift job %lld: %s, %lld of %lld columns drifted (share %.3f)\n",
           jcli_jint(o, "job_id"), json_is_true(json_object_get(o, "drifted")) ? "DRIFTED" : "no drift",
           jcli_jint(o, "n_drifted"), jcli_jint(o, "n_columns"),
           json_number_value(json_object_get(o, "share")));
    json_t *sum = json_object_get(res, "summary");
    if (sum)
        printf("  %-10s dataset drifts at share >= %.3g\n", "rule",
               json_number_value(json_object_get(sum, "drift_share")));
    printf("  %-10s %s\n", "model", text);
    printf("  %-10s %s (%lld rows)\n", "reference",
           jcli_jstr(json_object_get(res, "reference"), "path", "-"),
           jcli_jint(json_object_get(res, "reference"), "rows"));
    printf("  %-10s %s (%lld rows)\n", "current",
           jcli_jstr(json_object_get(res, "current"), "path", "-"),
           jcli_jint(json_object_get(res, "current"), "rows"));
    when_text(jcli_jint(o, "created_ns"), text, sizeof text);
    printf("  %-10s %s\n", "created", text);
    printf("  %-10s %s\n", "output", jcli_jstr(o, "output", "-"));
    printf("  %-10s %s\n", "report", jcli_jstr(o, "report", "-"));
    json_t *od = json_object_get(res, "on_drift");
    if (jcli_jint(o, "on_drift_job"))
        printf("  %-10s job %lld\n", "on_drift", jcli_jint(o, "on_drift_job"));
    else if (jcli_jstr(od, "error", NULL))
        printf("  %-10s failed: %s\n", "on_drift", jcli_jstr(od, "error", ""));
    else if (json_is_true(json_object_get(od, "configured")))
        printf("  %-10s not submitted (no drift)\n", "on_drift");

    jcli_table_t t = {.n_cols = 5};
    int failed = jcli_table_row(&t, (const char *const[]){"COLUMN", "METHOD", "SCORE",
                                                          "THRESHOLD", "DRIFTED"}) < 0;
    size_t i;
    json_t *c;
    /* The result's columns are in the report's order: most drifted first. */
    json_t *cols = json_object_get(res, "columns");
    if (!json_array_size(cols))
        cols = json_object_get(o, "columns");
    json_array_foreach(cols, i, c) {
        const char *name = jcli_jstr(c, "name", jcli_jstr(c, "column", "?"));
        num_text(json_object_get(c, "score"), a, sizeof a);
        num_text(json_object_get(c, "threshold"), b, sizeof b);
        failed |= jcli_table_row(&t, (const char *const[]){
            name, jcli_jstr(c, "method", "?"), a, b,
            json_is_true(json_object_get(c, "drifted")) ? "yes" : "no"}) < 0;
    }
    printf("\n");
    if (!failed)
        jcli_table_print(&t);
    jcli_table_free(&t);
    json_t *assets = json_object_get(res, "assets");
    if (json_array_size(assets)) {
        jcli_table_t at = {.n_cols = 5};
        failed = jcli_table_row(&at, (const char *const[]){"ASSET", "REF ROWS", "CUR ROWS",
                                                           "DRIFTED COLS", "DRIFTED"}) < 0;
        json_array_foreach(assets, i, c) {
            char id[32], nr[32], nc[32], nd[48];
            snprintf(id, sizeof id, "%lld", jcli_jint(c, "asset"));
            snprintf(nr, sizeof nr, "%lld", jcli_jint(c, "n_ref_rows"));
            snprintf(nc, sizeof nc, "%lld", jcli_jint(c, "n_cur_rows"));
            snprintf(nd, sizeof nd, "%lld/%lld", jcli_jint(c, "n_drifted"),
                     jcli_jint(c, "n_columns"));
            failed |= jcli_table_row(&at, (const char *const[]){
                id, nr, nc, nd, json_is_true(json_object_get(c, "drifted")) ? "yes" : "no"}) < 0;
        }
        printf("\n");
        if (!failed)
            jcli_table_print(&at);
        jcli_table_free(&at);
    }
    json_t *quality = json_object_get(res, "quality");
    if (json_array_size(quality)) {
        printf("\nmodel quality (reference: the run's held-out metrics)\n");
        json_array_foreach(quality, i, c) {
            num_text(json_object_get(c, "reference"), a, sizeof a);
            num_text(json_object_get(c, "current"), b, sizeof b);
            printf("  %-10s reference %s  current %s\n", jcli_jstr(c, "metric", "?"), a, b);
        }
    }
    json_t *notes = json_object_get(json_object_get(res, "job"), "notes");
    json_array_foreach(notes, i, c)
        if (json_is_string(c))
            printf("note: %s\n", json_string_value(c));
    return 0;
}

static int print_list(json_t *o)
{
    json_t *list = json_object_get(o, "drift"), *r;
    jcli_table_t t = {.n_cols = 6};
    int failed = jcli_table_row(&t, (const char *const[]){"JOB", "CREATED", "MODEL", "DRIFTED",
                                                          "SHARE", "ON_DRIFT"}) < 0;
    size_t i;
    json_array_foreach(list, i, r) {
        char id[32], when[40], model[200], share[64], child[32];
        snprintf(id, sizeof id, "%lld", jcli_jint(r, "job_id"));
        when_text(jcli_jint(r, "created_ns"), when, sizeof when);
        model_text(r, model, sizeof model);
        snprintf(share, sizeof share, "%lld/%lld (%.2f)", jcli_jint(r, "n_drifted"),
                 jcli_jint(r, "n_columns"), json_number_value(json_object_get(r, "share")));
        if (jcli_jint(r, "on_drift_job"))
            snprintf(child, sizeof child, "job %lld", jcli_jint(r, "on_drift_job"));
        else
            snprintf(child, sizeof child, "-");
        failed |= jcli_table_row(&t, (const char *const[]){
            id, when, model, json_is_true(json_object_get(r, "drifted")) ? "yes" : "no", share,
            child}) < 0;
    }
    if (!failed)
        jcli_table_print(&t);
    jcli_table_free(&t);
    if (failed)
        fprintf(stderr, "kiln drift list: out of memory\n");
    return failed;
}


static const char *check_model(const char *v)
{
    for (const char *p = v; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '.' || *p == '_' || *p == '-'))
            return "a model name holds only letters, digits, '.', '_' and '-':";
    return NULL;
}

static const char *check_limit(const char *v)
{
    char *end;
    long n = strtol(v, &end, 10);
    return *end || n < 1 || n > 100000 ? "--limit must be an integer in 1..100000:" : NULL;
}

static int do_drift(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        drift_usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    char path[512];
    if (!strcmp(argv[1], "show")) {
        jcli_ctx_t c = {.cmd = "drift show", .usage = drift_usage};
        const char *id_s = NULL;
        unsigned long long id;
        int r = jcli_parse_args(&c, argc - 1, argv + 1, NULL, &id_s);
        if (r)
            return r < 0 ? 0 : r;
        if (!id_s)
            return ka_usage_error(c.cmd, c.usage, "missing JOB_ID", NULL);
        if (jcli_parse_id(id_s, &id) < 0)
            return ka_usage_error(c.cmd, c.usage, "JOB_ID must be a whole number above 0:", id_s);
        snprintf(path, sizeof path, "/v1/drift/%llu", id);
        return jcli_get_and_print(&c, path, print_show);
    }
    if (!strcmp(argv[1], "list")) {
        jcli_ctx_t c = {.cmd = "drift list", .usage = drift_usage};
        const char *model = NULL, *limit = "100";
        const jcli_opt_t opts[] = {
            {.name = "--model", .value = &model, .nonempty = 1, .check = check_model},
            {.name = "--limit", .value = &limit, .nonempty = 1, .check = check_limit},
            {0}};
        int r = jcli_parse_args(&c, argc - 1, argv + 1, opts, NULL);
        if (r)
            return r < 0 ? 0 : r;
        if (model)
            snprintf(path, sizeof path, "/v1/drift?model=%s&limit=%s", model, limit);
        else
            snprintf(path, sizeof path, "/v1/drift?limit=%s", limit);
        return jcli_get_and_print(&c, path, print_list);
    }
    return ka_usage_error("drift", drift_usage, "unknown subcommand (show, list):", argv[1]);
}

int kiln_cmd_drift(int argc, char **argv)
{
    return jcli_with_curl(do_drift, argc, argv);
}
