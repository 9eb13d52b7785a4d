/* cmd_query.c - the read-only cluster commands over kilnd's HTTP API
 * (docs/api.md): `kiln status` (one job, or every open one), `kiln list`
 * and `kiln workers`, as aligned columns or the server's JSON. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "../core/kiln_alloc.h"
#include "cli.h"
#include "cli_util.h"
#include "jobs_cli.h"

/* Prints jobs (a JSON array) as ID STATE PROJECT NAME TASKS REASON; 0 or 1. */
static int print_jobs(json_t *jobs)
{
    static const char *const head[] = {"ID", "STATE", "PROJECT", "NAME", "TASKS", "REASON"};
    jcli_table_t t = {.n_cols = 6};
    int rc = jcli_table_row(&t, head);
    size_t i;
    json_t *job;
    json_array_foreach(jobs, i, job) {
        char id[32], tasks[48], reason[512];
        long long done, total;
        snprintf(id, sizeof id, "%lld", jcli_jint(job, "id"));
        jcli_task_counts(job, &done, &total);
        snprintf(tasks, sizeof tasks, "%lld/%lld", done, total);
        jcli_reason_text(job, reason, sizeof reason);
        const char *row[] = {id, jcli_jstr(job, "state", "?"), jcli_jstr(job, "project", ""),
                             jcli_jstr(job, "name", ""), tasks, reason};
        if (rc == 0)
            rc = jcli_table_row(&t, row);
    }
    if (rc == 0)
        jcli_table_print(&t);
    else
        fprintf(stderr, "kiln: out of memory\n");
    jcli_table_free(&t);
    return rc ? 1 : 0;
}

static void status_usage(FILE *f)
{
    fprintf(f, "usage: kiln status [ID] [--json] [--server URL] [--dir D]\n"
               "With ID: the job's state, reason, tasks, attempts and times.  Without: every\n"
               "queued or running job, newest first.\n"
               JCLI_COMMON_HELP);
}

static void list_usage(FILE *f)
{
    fprintf(f, "usage: kiln list [--state S] [--project P] [--limit N] [--json]\n"
               "                 [--server URL] [--dir D]\n"
               "Jobs, newest first: ID, STATE, PROJECT, NAME, TASKS done/total, REASON.\n"
               "  --state S     queued, running, succeeded, failed, cancelled, timeout,\n"
               "                node_fail or out_of_memory\n"
               "  --project P   only this project's jobs\n"
               "  --limit N     at most N jobs (kilnd's default when not given)\n"
               JCLI_COMMON_HELP);
}

static void workers_usage(FILE *f)
{
    fprintf(f, "usage: kiln workers [--json] [--server URL] [--dir D]\n"
               "The workers kilnd knows: resources (free/total), running tasks, state and the\n"
               "age of the last heartbeat.\n"
               JCLI_COMMON_HELP);
}

/* Appends "&key=value" (or "?key=value" first) percent-encoded to path. */
static void add_query(char *path, size_t cap, const char *key, const char *value)
{
    size_t n = strlen(path);
    n += (size_t)snprintf(path + n, n < cap ? cap - n : 0, "%s%s=", strchr(path, '?') ? "&" : "?",
                          key);
    for (const unsigned char *p = (const unsigned char *)value; *p && n + 4 < cap; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            *p == '-' || *p == '_' || *p == '.' || *p == '~')
            path[n++] = (char)*p;
        else
            n += (size_t)snprintf(path + n, cap - n, "%%%02X", *p);
    }
    path[n < cap ? n : cap - 1] = 0;
}

static void print_ns_time(const char *label, long long ns)
{
    if (ns <= 0) {
        printf("%-10s -\n", label);
        return;
    }
    time_t t = (time_t)(ns / 1000000000LL);
    struct tm tm;
    char buf[64];
    localtime_r(&t, &tm);
    strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
    printf("%-10s %s\n", label, buf);
}

static void print_job(json_t *job)
{
    char reason[512];
    long long done, total;
    jcli_reason_text(job, reason, sizeof reason);
    jcli_task_counts(job, &done, &total);
    json_t *t = json_object_get(job, "tasks");
    printf("job %lld  %s\n", jcli_jint(job, "id"), jcli_jstr(job, "state", "?"));
    printf("%-10s %s\n", "name", jcli_jstr(job, "name", ""));
    printf("%-10s %s\n", "project", jcli_jstr(job, "project", ""));
    printf("%-10s %s\n", "type", jcli_jstr(job, "type", ""));
    printf("%-10s %lld\n", "priority", jcli_jint(job, "priority"));
    if (reason[0])
        printf("%-10s %s\n", "reason", reason);
    printf("%-10s %lld/%lld done (queued %lld, running %lld, succeeded %lld, failed %lld, "
           "cancelled %lld)\n", "tasks", done, total, jcli_jint(t, "queued"),
           jcli_jint(t, "running"), jcli_jint(t, "succeeded"), jcli_jint(t, "failed"),
           jcli_jint(t, "cancelled"));
    printf("%-10s %lld of %lld retries\n", "attempts", jcli_jint(job, "attempts"),
           jcli_jint(job, "max_retries"));
    json_t *deps = json_object_get(job, "depends_on");
    if (json_array_size(deps)) {
        size_t i;
        json_t *d;
        printf("%-10s", "after");
        json_array_foreach(deps, i, d)
            printf("%s%lld", i ? ", " : " ", (long long)json_integer_value(d));
        printf("\n");
    }
    json_t *arr = json_object_get(job, "array");
    if (json_object_get(arr, "parent"))
        printf("%-10s instance %lld of array job %lld\n", "array", jcli_jint(arr, "index"),
               jcli_jint(arr, "parent"));
    else if (json_object_get(arr, "first"))
        printf("%-10s %lld-%lld, at most %lld at once\n", "array", jcli_jint(arr, "first"),
               jcli_jint(arr, "last"), jcli_jint(arr, "cap"));
    print_ns_time("submitted", jcli_jint(job, "submitted_ns"));
    print_ns_time("started", jcli_jint(job, "started_ns"));
    print_ns_time("ended", jcli_jint(job, "ended_ns"));
}

static int by_id_desc(const void *a, const void *b)
{
    long long x = jcli_jint(*(json_t *const *)a, "id"), y = jcli_jint(*(json_t *const *)b, "id");
    return x < y ? 1 : x > y ? -1 : 0;
}

static int do_status(int argc, char **argv)
{
    jcli_ctx_t c = {.cmd = "status", .usage = status_usage};
    const char *id_arg = NULL;
    int r = jcli_parse_args(&c, argc, argv, NULL, &id_arg);
    if (r)
        return r < 0 ? 0 : r;
    unsigned long long id = 0;
    if (id_arg && jcli_parse_id(id_arg, &id) < 0)
        return ka_usage_error(c.cmd, c.usage, "a job ID is a whole number above 0, got", id_arg);
    if (jcli_resolve(&c))
        return 1;

    json_t *o;
    char *raw = NULL;
    if (id_arg) {
        char path[64];
        snprintf(path, sizeof path, "/v1/jobs/%llu", id);
        if (jcli_call_json(&c, "GET", path, &o, &raw))
            return 1;
        if (c.json)
            printf("%s\n", raw);
        else
            print_job(o);
        kiln_free(raw);
        json_decref(o);
        return 0;
    }
    /* Not final = queued or running: one list each, merged newest first. */
    json_t *all = json_array();
    static const char *const open_states[] = {"queued", "running"};
    for (size_t s = 0; s < 2; s++) {
        char path[64];
        snprintf(path, sizeof path, "/v1/jobs?state=%s", open_states[s]);
        if (jcli_call_json(&c, "GET", path, &o, NULL)) {
            json_decref(all);
            return 1;
        }
        json_array_extend(all, json_object_get(o, "jobs"));
        json_decref(o);
    }
    size_t n = json_array_size(all);
    json_t **v = kiln_calloc(n ? n : 1, sizeof *v);
    json_t *sorted = json_array();
    if (!v || !sorted) {
        fprintf(stderr, "kiln status: out of memory\n");
        kiln_free(v);
        json_decref(sorted);
        json_decref(all);
        return 1;
    }
    for (size_t i = 0; i < n; i++)
        v[i] = json_array_get(all, i);
    qsort(v, n, sizeof *v, by_id_desc);
    for (size_t i = 0; i < n; i++)
        json_array_append(sorted, v[i]);
    kiln_free(v);
    json_decref(all);
    int rc = 0;
    if (c.json) {
        json_t *out = json_pack("{s:o}", "jobs", sorted);
        char *text = out ? json_dumps(out, JSON_COMPACT) : NULL;
        if (text)
            printf("%s\n", text);
        else
            rc = 1;
        free(text);
        json_decref(out);
    } else {
        rc = print_jobs(sorted);
        json_decref(sorted);
    }
    return rc;
}

static int do_list(int argc, char **argv)
{
    jcli_ctx_t c = {.cmd = "list", .usage = list_usage};
    const char *state = NULL, *project = NULL, *limit = NULL;
    const jcli_opt_t opts[] = {
        {.name = "--state", .value = &state},
        {.name = "--project", .value = &project},
        {.name = "--limit", .value = &limit},
        {0},
    };
    int r = jcli_parse_args(&c, argc, argv, opts, NULL);
    if (r)
        return r < 0 ? 0 : r;
    unsigned long long n;
    if (limit && ka_parse_u64(limit, &n, 0) < 0)
        return ka_usage_error(c.cmd, c.usage, "--limit is a whole number above 0, got", limit);
    if (jcli_resolve(&c))
        return 1;
    char path[1024] = "/v1/jobs";
    if (state)
        add_query(path, sizeof path, "state", state);
    if (project)
        add_query(path, sizeof path, "project", project);
    if (limit)
        add_query(path, sizeof path, "limit", limit);
    json_t *o;
    char *raw = NULL;
    if (jcli_call_json(&c, "GET", path, &o, &raw))
        return 1;
    int rc = 0;
    if (c.json)
        printf("%s\n", raw);
    else
        rc = print_jobs(json_object_get(o, "jobs"));
    kiln_free(raw);
    json_decref(o);
    return rc;
}

static int do_workers(int argc, char **argv)
{
    jcli_ctx_t c = {.cmd = "workers", .usage = workers_usage};
    int r = jcli_parse_args(&c, argc, argv, NULL, NULL);
    if (r)
        return r < 0 ? 0 : r;
    if (jcli_resolve(&c))
        return 1;
    json_t *o;
    char *raw = NULL;
    if (jcli_call_json(&c, "GET", "/v1/workers", &o, &raw))
        return 1;
    if (c.json) {
        printf("%s\n", raw);
        kiln_free(raw);
        json_decref(o);
        return 0;
    }
    kiln_free(raw);
    static const char *const head[] = {"ID",   "HOST",    "STATE",   "CORES",
                                       "MEMORY_MB", "GPUS", "RUNNING", "HEARTBEAT"};
    jcli_table_t t = {.n_cols = 8};
    int rc = jcli_table_row(&t, head);
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    long long now_ns = (long long)now.tv_sec * 1000000000LL + now.tv_nsec;
    size_t i;
    json_t *w;
    json_array_foreach(json_object_get(o, "workers"), i, w) {
        char cores[48], mem[64], gpus[48], running[24], beat[48];
        snprintf(cores, sizeof cores, "%lld/%lld", jcli_jint(w, "free_cores"),
                 jcli_jint(w, "cores"));
        snprintf(mem, sizeof mem, "%lld/%lld", jcli_jint(w, "free_memory_mb"),
                 jcli_jint(w, "memory_mb"));
        snprintf(gpus, sizeof gpus, "%lld/%lld", jcli_jint(w, "free_gpus"),
                 jcli_jint(w, "gpus"));
        snprintf(running, sizeof running, "%lld", jcli_jint(w, "running"));
        long long hb = jcli_jint(w, "last_heartbeat_ns");
        if (hb > 0)
            snprintf(beat, sizeof beat, "%.1f s ago", (double)(now_ns - hb) * 1e-9);
        else
            snprintf(beat, sizeof beat, "-");
        const char *row[] = {jcli_jstr(w, "id", "?"), jcli_jstr(w, "host", ""),
                             jcli_jstr(w, "state", "?"), cores, mem, gpus, running, beat};
        if (rc == 0)
            rc = jcli_table_row(&t, row);
    }
    if (rc == 0)
        jcli_table_print(&t);
    jcli_table_free(&t);
    json_decref(o);
    return rc ? 1 : 0;
}

int kiln_cmd_status(int argc, char **argv) { return jcli_with_curl(do_status, argc, argv); }
int kiln_cmd_list(int argc, char **argv) { return jcli_with_curl(do_list, argc, argv); }
int kiln_cmd_workers(int argc, char **argv) { return jcli_with_curl(do_workers, argc, argv); }
