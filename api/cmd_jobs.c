/* cmd_jobs.c - the CLI's cluster commands over kilnd's HTTP API (docs/api.md):
 * `kiln submit`, `status`, `list`, `logs`, `cancel` and `workers`.  Each
 * finds kilnd (--server, --dir, KILN_SERVER, KILN_DIR), makes its calls
 * through api/client and prints aligned columns, or the server's JSON. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#include "../core/kiln_alloc.h"
#include "cli.h"
#include "cli_util.h"
#include "client.h"

#define CALL_TIMEOUT_MS  30000
#define SUBMIT_RETRIES   3          /* after a transport error, with the same key */
#define RETRY_BACKOFF_MS 200
#define POLL_MS          200
#define POLL_FAILURES    25         /* consecutive unreachable polls (5 s) before giving up */

/* Options every command takes. */
typedef struct {
    const char *cmd;
    void (*usage)(FILE *);
    const char *server, *dir;
    int json;
    char url[1024];
} cmd_ctx_t;

#define COMMON_HELP                                                                            \
    "  --server URL  kilnd's API (default: --dir's kilnd.url, $KILN_SERVER, $KILN_DIR's\n"     \
    "                kilnd.url, then http://127.0.0.1:7878)\n"                                  \
    "  --dir D       the cluster directory kilnd runs with (reads D/kilnd.url)\n"

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
    }
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* --server, --dir, --json, --help: 1 consumed (i advanced past a value),
 * 0 not a common option, -1 missing value. */
static int common_opt(cmd_ctx_t *c, int argc, char **argv, int *i)
{
    const char *a = argv[*i];
    const char *val = *i + 1 < argc ? argv[*i + 1] : NULL;
    if (!strcmp(a, "--json")) {
        c->json = 1;
        return 1;
    }
    if (!strcmp(a, "--server") || !strcmp(a, "--dir")) {
        if (!val)
            return -1;
        if (a[2] == 's')
            c->server = val;
        else
            c->dir = val;
        (*i)++;
        return 1;
    }
    return 0;
}

/* Finds kilnd; 0, or 1 with the reason printed. */
static int resolve(cmd_ctx_t *c)
{
    kiln_err_t err;
    kiln_err_clear(&err);
    if (ka_client_resolve_server(c->server, c->dir, c->url, sizeof c->url, &err) < 0) {
        fprintf(stderr, "kiln %s: %s\n", c->cmd, err.msg);
        return 1;
    }
    return 0;
}

/* Prints the server's error object (or the raw body) for a non-2xx answer. */
static void print_server_error(const cmd_ctx_t *c, int status, const char *body)
{
    json_t *o = json_loads(body ? body : "", 0, NULL);
    json_t *e = o ? json_object_get(o, "error") : NULL;
    const char *msg = e ? json_string_value(json_object_get(e, "message")) : NULL;
    const char *field = e ? json_string_value(json_object_get(e, "field")) : NULL;
    if (msg && field)
        fprintf(stderr, "kiln %s: %s (field: %s) [HTTP %d]\n", c->cmd, msg, field, status);
    else if (msg)
        fprintf(stderr, "kiln %s: %s [HTTP %d]\n", c->cmd, msg, status);
    else
        fprintf(stderr, "kiln %s: kilnd answered HTTP %d%s%.300s\n", c->cmd, status,
                body && body[0] ? ": " : "", body ? body : "");
    json_decref(o);
}

/* One call.  0 with *status and *body (kiln_free) set, or 1 with the
 * transport error printed. */
static int call(const cmd_ctx_t *c, const char *method, const char *path, const char *req_body,
                const char *key, int *status, char **body)
{
    kiln_err_t err;
    kiln_err_clear(&err);
    if (ka_client_request(c->url, method, path, req_body, key, CALL_TIMEOUT_MS, status, body, NULL,
                          &err) < 0) {
        fprintf(stderr, "kiln %s: %s\n", c->cmd, err.msg);
        return 1;
    }
    return 0;
}

/* A call whose 2xx answer is a JSON object: 0 with *out (decref), or 1
 * with the transport or server error printed.  raw (may be NULL) gets the
 * text for --json. */
static int call_json(const cmd_ctx_t *c, const char *method, const char *path, json_t **out,
                     char **raw)
{
    int status;
    char *body = NULL;
    *out = NULL;
    if (call(c, method, path, NULL, NULL, &status, &body))
        return 1;
    if (status < 200 || status > 299) {
        print_server_error(c, status, body);
        kiln_free(body);
        return 1;
    }
    json_error_t jerr;
    *out = json_loads(body, 0, &jerr);
    if (!json_is_object(*out)) {
        fprintf(stderr, "kiln %s: kilnd's answer to %s %s is not a JSON object: %s\n", c->cmd,
                method, path, jerr.text);
        json_decref(*out);
        *out = NULL;
        kiln_free(body);
        return 1;
    }
    if (raw)
        *raw = body;
    else
        kiln_free(body);
    return 0;
}

/* A job id argument: a whole number above 0; 0 or -1. */
static int parse_id(const char *s, unsigned long long *id)
{
    return ka_parse_u64(s, id, 0);
}

/* ---- job fields, read defensively (a newer kilnd may add or omit some) ---- */

static const char *jstr(json_t *o, const char *key, const char *dflt)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : dflt;
}

static long long jint(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    return json_is_integer(v) ? (long long)json_integer_value(v)
                              : json_is_real(v) ? (long long)json_real_value(v) : 0;
}

static void task_counts(json_t *job, long long *done, long long *total)
{
    json_t *t = json_object_get(job, "tasks");
    *total = jint(t, "total");
    *done = jint(t, "succeeded") + jint(t, "failed") + jint(t, "cancelled");
}

/* "code: text", "text", or "" when the job has no reason. */
static void reason_text(json_t *job, char *out, size_t cap)
{
    json_t *r = json_object_get(job, "reason");
    const char *code = jstr(r, "code", NULL), *text = jstr(r, "text", NULL);
    if (code && text)
        snprintf(out, cap, "%s: %s", code, text);
    else
        snprintf(out, cap, "%s", text ? text : code ? code : "");
}

static int is_final(const char *state)
{
    return strcmp(state, "queued") && strcmp(state, "running");
}

/* ---- tables ---- */

#define MAX_COLS 10

typedef struct {
    size_t n_cols, n_rows, cap;
    char **cells;           /* n_rows x n_cols, kiln_strdup'd */
} table_t;

static int table_row(table_t *t, const char *const *cells)
{
    if (t->n_rows == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 32;
        char **c = kiln_realloc(t->cells, cap * t->n_cols * sizeof *c);
        if (!c)
            return -1;
        t->cells = c;
        t->cap = cap;
    }
    for (size_t j = 0; j < t->n_cols; j++) {
        char *d = kiln_strdup(cells[j] ? cells[j] : "");
        if (!d) {
            for (size_t k = 0; k < j; k++)
                kiln_free(t->cells[t->n_rows * t->n_cols + k]);
            return -1;
        }
        t->cells[t->n_rows * t->n_cols + j] = d;
    }
    t->n_rows++;
    return 0;
}

/* Columns padded to their widest cell; the last one is not padded. */
static void table_print(const table_t *t)
{
    size_t width[MAX_COLS] = {0};
    for (size_t i = 0; i < t->n_rows; i++)
        for (size_t j = 0; j < t->n_cols; j++) {
            size_t n = strlen(t->cells[i * t->n_cols + j]);
            if (n > width[j])
                width[j] = n;
        }
    for (size_t i = 0; i < t->n_rows; i++) {
        for (size_t j = 0; j < t->n_cols; j++) {
            const char *s = t->cells[i * t->n_cols + j];
            if (j + 1 < t->n_cols)
                printf("%-*s  ", (int)width[j], s);
            else
                printf("%s", s);
        }
        printf("\n");
    }
}

static void table_free(table_t *t)
{
    for (size_t i = 0; i < t->n_rows * t->n_cols; i++)
        kiln_free(t->cells[i]);
    kiln_free(t->cells);
    t->cells = NULL;
    t->n_rows = t->cap = 0;
}

/* Prints jobs (a JSON array) as ID STATE PROJECT NAME TASKS REASON; 0 or 1. */
static int print_jobs(json_t *jobs)
{
    static const char *const head[] = {"ID", "STATE", "PROJECT", "NAME", "TASKS", "REASON"};
    table_t t = {.n_cols = 6};
    int rc = table_row(&t, head);
    size_t i;
    json_t *job;
    json_array_foreach(jobs, i, job) {
        char id[32], tasks[48], reason[512];
        long long done, total;
        snprintf(id, sizeof id, "%lld", jint(job, "id"));
        task_counts(job, &done, &total);
        snprintf(tasks, sizeof tasks, "%lld/%lld", done, total);
        reason_text(job, reason, sizeof reason);
        const char *row[] = {id, jstr(job, "state", "?"), jstr(job, "project", ""),
                             jstr(job, "name", ""), tasks, reason};
        if (rc == 0)
            rc = table_row(&t, row);
    }
    if (rc == 0)
        table_print(&t);
    else
        fprintf(stderr, "kiln: out of memory\n");
    table_free(&t);
    return rc ? 1 : 0;
}

/* ---- submit ---- */

static void submit_usage(FILE *f)
{
    fprintf(f,
            "usage: kiln submit SPEC.json [--wait] [--json] [--idempotency-key K]\n"
            "                  [--server URL] [--dir D]\n"
            "Sends the job spec (docs/api.md, POST /v1/jobs) to kilnd and prints\n"
            "`job ID submitted (STATE)`.  Relative \"input\" and \"output\" paths in the spec\n"
            "are made absolute against the current directory before sending, since kilnd\n"
            "and its workers run elsewhere.\n"
            "  --wait        follow the job until it ends (a progress bar when stderr is a\n"
            "                terminal); exit 0 only if it succeeded\n"
            "  --json        print kilnd's JSON answer (with --wait: the final job)\n"
            "  --idempotency-key K  submitting again with the same K returns the same job;\n"
            "                default: a random key, reused when a lost connection is retried\n" COMMON_HELP);
}

/* Makes spec[key] absolute against the current directory when it is a
 * relative path string. */
static int absolutize(json_t *spec, const char *key, const char *spec_path)
{
    const char *p = json_string_value(json_object_get(spec, key));
    if (!p || !p[0] || p[0] == '/')
        return 0;
    char cwd[4096];
    if (!getcwd(cwd, sizeof cwd)) {
        fprintf(stderr, "kiln submit: %s: cannot make \"%s\" absolute: %s\n", spec_path, key,
                strerror(errno));
        return -1;
    }
    while (p[0] == '.' && p[1] == '/')
        p += 2;
    size_t n = strlen(cwd) + strlen(p) + 2;
    char *abs = kiln_malloc(n);
    if (!abs)
        return -1;
    snprintf(abs, n, "%s/%s", cwd, p);
    int rc = json_object_set_new(spec, key, json_string(abs));
    kiln_free(abs);
    return rc;
}

/* 32 hex digits from the kernel's random source. */
static int random_key(char out[33])
{
    unsigned char b[16];
    size_t got = 0;
    while (got < sizeof b) {
        ssize_t n = getrandom(b + got, sizeof b - got, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        got += (size_t)n;
    }
    for (size_t i = 0; i < sizeof b; i++)
        snprintf(out + 2 * i, 3, "%02x", b[i]);
    return 0;
}

static void draw_progress(long long done, long long total, const char *state, double elapsed_s)
{
    enum { WIDTH = 20 };
    int fill = total > 0 ? (int)(done * WIDTH / total) : 0;
    if (fill > WIDTH)
        fill = WIDTH;
    fprintf(stderr, "\r[%.*s%.*s] %lld/%lld tasks  %-9s %.1f s ", fill, "####################",
            WIDTH - fill, "....................", done, total, state, elapsed_s);
    fflush(stderr);
}

/* Polls the job until it ends; prints the final state; 0 if it succeeded. */
static int wait_job(cmd_ctx_t *c, long long id)
{
    char path[64];
    snprintf(path, sizeof path, "/v1/jobs/%lld", id);
    int tty = isatty(STDERR_FILENO), drawn = 0, failures = 0;
    double t0 = now_s();
    for (;;) {
        int status;
        char *body = NULL;
        kiln_err_t err;
        kiln_err_clear(&err);
        if (ka_client_request(c->url, "GET", path, NULL, NULL, CALL_TIMEOUT_MS, &status, &body,
                              NULL, &err) < 0) {
            /* kilnd may be restarting: it keeps every accepted job. */
            if (++failures >= POLL_FAILURES) {
                fprintf(stderr, "%skiln %s: %s\n", drawn ? "\n" : "", c->cmd, err.msg);
                return 1;
            }
            sleep_ms(POLL_MS);
            continue;
        }
        failures = 0;
        if (status != 200) {
            if (drawn)
                fputc('\n', stderr);
            print_server_error(c, status, body);
            kiln_free(body);
            return 1;
        }
        json_t *job = json_loads(body, 0, NULL);
        const char *state = jstr(job, "state", NULL);
        if (!state) {
            fprintf(stderr, "%skiln %s: kilnd's answer for job %lld has no state\n",
                    drawn ? "\n" : "", c->cmd, id);
            json_decref(job);
            kiln_free(body);
            return 1;
        }
        long long done, total;
        task_counts(job, &done, &total);
        if (tty) {
            draw_progress(done, total, state, now_s() - t0);
            drawn = 1;
        }
        if (is_final(state)) {
            int ok = !strcmp(state, "succeeded");
            if (drawn)
                fputc('\n', stderr);
            if (c->json) {
                printf("%s\n", body);
            } else {
                char reason[512];
                reason_text(job, reason, sizeof reason);
                if (ok || !reason[0])
                    printf("job %lld %s\n", id, state);
                else
                    printf("job %lld %s: %s\n", id, state, reason);
            }
            json_decref(job);
            kiln_free(body);
            return ok ? 0 : 1;
        }
        json_decref(job);
        kiln_free(body);
        sleep_ms(POLL_MS);
    }
}

static int do_submit(int argc, char **argv)
{
    cmd_ctx_t c = {.cmd = "submit", .usage = submit_usage};
    const char *spec_path = NULL, *key_opt = NULL;
    int wait = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int r = common_opt(&c, argc, argv, &i);
        if (r < 0)
            return ka_usage_error(c.cmd, c.usage, "missing value after", a);
        if (r > 0)
            continue;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            c.usage(stdout);
            return 0;
        } else if (!strcmp(a, "--wait")) {
            wait = 1;
        } else if (!strcmp(a, "--idempotency-key")) {
            if (i + 1 >= argc || !argv[i + 1][0])
                return ka_usage_error(c.cmd, c.usage, "missing value after", a);
            key_opt = argv[++i];
            for (const char *k = key_opt; *k; k++)
                if ((unsigned char)*k < 0x21 || (unsigned char)*k > 0x7e)
                    return ka_usage_error(c.cmd, c.usage,
                                          "an idempotency key is printable ASCII without "
                                          "spaces, got", key_opt);
        } else if (a[0] != '-' && !spec_path) {
            spec_path = a;
        } else {
            return ka_usage_error(c.cmd, c.usage, "bad argument", a);
        }
    }
    if (!spec_path)
        return ka_usage_error(c.cmd, c.usage, "missing SPEC.json", NULL);

    json_error_t jerr;
    json_t *spec = json_load_file(spec_path, JSON_REJECT_DUPLICATES, &jerr);
    if (!spec) {
        if (jerr.line > 0)
            fprintf(stderr, "kiln submit: %s:%d:%d: %s\n", spec_path, jerr.line, jerr.column,
                    jerr.text);
        else
            fprintf(stderr, "kiln submit: %s: %s\n", spec_path, jerr.text);
        return 1;
    }
    if (!json_is_object(spec)) {
        fprintf(stderr, "kiln submit: %s: a job spec is a JSON object\n", spec_path);
        json_decref(spec);
        return 1;
    }
    if (absolutize(spec, "input", spec_path) < 0 || absolutize(spec, "output", spec_path) < 0) {
        json_decref(spec);
        return 1;
    }
    char *text = json_dumps(spec, JSON_COMPACT);
    json_decref(spec);
    if (!text) {
        fprintf(stderr, "kiln submit: out of memory\n");
        return 1;
    }
    char key[33];
    if (!key_opt) {
        if (random_key(key) < 0) {
            fprintf(stderr, "kiln submit: no random bytes for an idempotency key: %s\n",
                    strerror(errno));
            free(text);
            return 1;
        }
        key_opt = key;
    }
    if (resolve(&c)) {
        free(text);
        return 1;
    }

    /* The same key on every try: a submit that reached kilnd before the
     * connection broke is found again instead of made twice. */
    int status = 0, rc = -1;
    char *body = NULL;
    kiln_err_t err;
    kiln_err_clear(&err);
    for (int attempt = 0; attempt <= SUBMIT_RETRIES; attempt++) {
        if (attempt)
            sleep_ms(RETRY_BACKOFF_MS * attempt);
        rc = ka_client_request(c.url, "POST", "/v1/jobs", text, key_opt, CALL_TIMEOUT_MS, &status,
                               &body, NULL, &err);
        if (rc == 0 || rc != KILN_EIO)
            break;
    }
    free(text);
    if (rc < 0) {
        fprintf(stderr, "kiln submit: %s\n", err.msg);
        return 1;
    }
    if (status != 200 && status != 201) {
        print_server_error(&c, status, body);
        kiln_free(body);
        return 1;
    }
    json_t *ans = json_loads(body, 0, NULL);
    json_t *idv = json_object_get(ans, "id");
    if (!json_is_integer(idv)) {
        fprintf(stderr, "kiln submit: kilnd's answer has no job id: %.300s\n", body);
        json_decref(ans);
        kiln_free(body);
        return 1;
    }
    long long id = (long long)json_integer_value(idv);
    if (c.json && !wait)
        printf("%s\n", body);
    else if (!c.json)
        printf("job %lld %s (%s)\n", id,
               json_is_true(json_object_get(ans, "existed")) ? "already submitted with this key"
                                                             : "submitted",
               jstr(ans, "state", "?"));
    json_decref(ans);
    kiln_free(body);
    if (!wait)
        return 0;
    fflush(stdout);
    return wait_job(&c, id);
}

/* ---- status and list ---- */

static void status_usage(FILE *f)
{
    fprintf(f, "usage: kiln status [ID] [--json] [--server URL] [--dir D]\n"
               "With ID: the job's state, reason, tasks, attempts and times.  Without: every\n"
               "queued or running job, newest first.\n" COMMON_HELP);
}

static void list_usage(FILE *f)
{
    fprintf(f, "usage: kiln list [--state S] [--project P] [--limit N] [--json]\n"
               "                 [--server URL] [--dir D]\n"
               "Jobs, newest first: ID, STATE, PROJECT, NAME, TASKS done/total, REASON.\n"
               "  --state S     queued, running, succeeded, failed, cancelled, timeout,\n"
               "                node_fail or out_of_memory\n"
               "  --project P   only this project's jobs\n"
               "  --limit N     at most N jobs (kilnd's default when not given)\n" COMMON_HELP);
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
    reason_text(job, reason, sizeof reason);
    task_counts(job, &done, &total);
    json_t *t = json_object_get(job, "tasks");
    printf("job %lld  %s\n", jint(job, "id"), jstr(job, "state", "?"));
    printf("%-10s %s\n", "name", jstr(job, "name", ""));
    printf("%-10s %s\n", "project", jstr(job, "project", ""));
    printf("%-10s %s\n", "type", jstr(job, "type", ""));
    printf("%-10s %lld\n", "priority", jint(job, "priority"));
    if (reason[0])
        printf("%-10s %s\n", "reason", reason);
    printf("%-10s %lld/%lld done (queued %lld, running %lld, succeeded %lld, failed %lld, "
           "cancelled %lld)\n", "tasks", done, total, jint(t, "queued"), jint(t, "running"),
           jint(t, "succeeded"), jint(t, "failed"), jint(t, "cancelled"));
    printf("%-10s %lld of %lld retries\n", "attempts", jint(job, "attempts"),
           jint(job, "max_retries"));
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
        printf("%-10s instance %lld of array job %lld\n", "array", jint(arr, "index"),
               jint(arr, "parent"));
    else if (json_object_get(arr, "first"))
        printf("%-10s %lld-%lld, at most %lld at once\n", "array", jint(arr, "first"),
               jint(arr, "last"), jint(arr, "cap"));
    print_ns_time("submitted", jint(job, "submitted_ns"));
    print_ns_time("started", jint(job, "started_ns"));
    print_ns_time("ended", jint(job, "ended_ns"));
}

static int by_id_desc(const void *a, const void *b)
{
    long long x = jint(*(json_t *const *)a, "id"), y = jint(*(json_t *const *)b, "id");
    return x < y ? 1 : x > y ? -1 : 0;
}

static int do_status(int argc, char **argv)
{
    cmd_ctx_t c = {.cmd = "status", .usage = status_usage};
    const char *id_arg = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int r = common_opt(&c, argc, argv, &i);
        if (r < 0)
            return ka_usage_error(c.cmd, c.usage, "missing value after", a);
        if (r > 0)
            continue;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            c.usage(stdout);
            return 0;
        } else if (a[0] != '-' && !id_arg) {
            id_arg = a;
        } else {
            return ka_usage_error(c.cmd, c.usage, "bad argument", a);
        }
    }
    unsigned long long id = 0;
    if (id_arg && parse_id(id_arg, &id) < 0)
        return ka_usage_error(c.cmd, c.usage, "a job ID is a whole number above 0, got", id_arg);
    if (resolve(&c))
        return 1;

    json_t *o;
    char *raw = NULL;
    if (id_arg) {
        char path[64];
        snprintf(path, sizeof path, "/v1/jobs/%llu", id);
        if (call_json(&c, "GET", path, &o, &raw))
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
        if (call_json(&c, "GET", path, &o, NULL)) {
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
    cmd_ctx_t c = {.cmd = "list", .usage = list_usage};
    const char *state = NULL, *project = NULL, *limit = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        int r = common_opt(&c, argc, argv, &i);
        if (r < 0)
            return ka_usage_error(c.cmd, c.usage, "missing value after", a);
        if (r > 0)
            continue;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            c.usage(stdout);
            return 0;
        } else if (!strcmp(a, "--state") || !strcmp(a, "--project") || !strcmp(a, "--limit")) {
            if (!val)
                return ka_usage_error(c.cmd, c.usage, "missing value after", a);
            *(a[2] == 's' ? &state : a[2] == 'p' ? &project : &limit) = val;
            i++;
        } else {
            return ka_usage_error(c.cmd, c.usage, "bad argument", a);
        }
    }
    unsigned long long n;
    if (limit && ka_parse_u64(limit, &n, 0) < 0)
        return ka_usage_error(c.cmd, c.usage, "--limit is a whole number above 0, got", limit);
    if (resolve(&c))
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
    if (call_json(&c, "GET", path, &o, &raw))
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

/* ---- logs, cancel, workers ---- */

static void logs_usage(FILE *f)
{
    fprintf(f, "usage: kiln logs ID [--server URL] [--dir D]\n"
               "Prints the job's log: scheduler events and each task's output tail.\n" COMMON_HELP);
}

static void cancel_usage(FILE *f)
{
    fprintf(f, "usage: kiln cancel ID [--json] [--server URL] [--dir D]\n"
               "Cancels a queued or running job (exit 1 if it had already ended).\n" COMMON_HELP);
}

static void workers_usage(FILE *f)
{
    fprintf(f, "usage: kiln workers [--json] [--server URL] [--dir D]\n"
               "The workers kilnd knows: resources (free/total), running tasks, state and the\n"
               "age of the last heartbeat.\n" COMMON_HELP);
}

/* Parses `CMD ID [common options]`; 0 ok, else the exit status (-1: --help done). */
static int id_args(cmd_ctx_t *c, int argc, char **argv, unsigned long long *id)
{
    const char *id_arg = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int r = common_opt(c, argc, argv, &i);
        if (r < 0)
            return ka_usage_error(c->cmd, c->usage, "missing value after", a);
        if (r > 0)
            continue;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            c->usage(stdout);
            return -1;
        } else if (a[0] != '-' && !id_arg) {
            id_arg = a;
        } else {
            return ka_usage_error(c->cmd, c->usage, "bad argument", a);
        }
    }
    if (!id_arg)
        return ka_usage_error(c->cmd, c->usage, "missing job ID", NULL);
    if (parse_id(id_arg, id) < 0)
        return ka_usage_error(c->cmd, c->usage, "a job ID is a whole number above 0, got", id_arg);
    return resolve(c);
}

static int do_logs(int argc, char **argv)
{
    cmd_ctx_t c = {.cmd = "logs", .usage = logs_usage};
    unsigned long long id;
    int r = id_args(&c, argc, argv, &id);
    if (r)
        return r < 0 ? 0 : r;
    char path[64];
    snprintf(path, sizeof path, "/v1/jobs/%llu/logs", id);
    int status;
    char *body = NULL;
    if (call(&c, "GET", path, NULL, NULL, &status, &body))
        return 1;
    int rc = 0;
    if (status != 200) {
        print_server_error(&c, status, body);
        rc = 1;
    } else {
        fputs(body, stdout);
    }
    kiln_free(body);
    return rc;
}

static int do_cancel(int argc, char **argv)
{
    cmd_ctx_t c = {.cmd = "cancel", .usage = cancel_usage};
    unsigned long long id;
    int r = id_args(&c, argc, argv, &id);
    if (r)
        return r < 0 ? 0 : r;
    char path[64];
    snprintf(path, sizeof path, "/v1/jobs/%llu/cancel", id);
    json_t *o;
    char *raw = NULL;
    if (call_json(&c, "POST", path, &o, &raw))
        return 1;
    if (c.json)
        printf("%s\n", raw);
    else
        printf("job %llu %s\n", id, jstr(o, "state", "cancelled"));
    kiln_free(raw);
    json_decref(o);
    return 0;
}

static int do_workers(int argc, char **argv)
{
    cmd_ctx_t c = {.cmd = "workers", .usage = workers_usage};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int r = common_opt(&c, argc, argv, &i);
        if (r < 0)
            return ka_usage_error(c.cmd, c.usage, "missing value after", a);
        if (r > 0)
            continue;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            c.usage(stdout);
            return 0;
        }
        return ka_usage_error(c.cmd, c.usage, "bad argument", a);
    }
    if (resolve(&c))
        return 1;
    json_t *o;
    char *raw = NULL;
    if (call_json(&c, "GET", "/v1/workers", &o, &raw))
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
    table_t t = {.n_cols = 8};
    int rc = table_row(&t, head);
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    long long now_ns = (long long)now.tv_sec * 1000000000LL + now.tv_nsec;
    size_t i;
    json_t *w;
    json_array_foreach(json_object_get(o, "workers"), i, w) {
        char cores[48], mem[64], gpus[48], running[24], beat[48];
        snprintf(cores, sizeof cores, "%lld/%lld", jint(w, "free_cores"), jint(w, "cores"));
        snprintf(mem, sizeof mem, "%lld/%lld", jint(w, "free_memory_mb"), jint(w, "memory_mb"));
        snprintf(gpus, sizeof gpus, "%lld/%lld", jint(w, "free_gpus"), jint(w, "gpus"));
        snprintf(running, sizeof running, "%lld", jint(w, "running"));
        long long hb = jint(w, "last_heartbeat_ns");
        if (hb > 0)
            snprintf(beat, sizeof beat, "%.1f s ago", (double)(now_ns - hb) * 1e-9);
        else
            snprintf(beat, sizeof beat, "-");
        const char *row[] = {jstr(w, "id", "?"), jstr(w, "host", ""), jstr(w, "state", "?"),
                             cores, mem, gpus, running, beat};
        if (rc == 0)
            rc = table_row(&t, row);
    }
    if (rc == 0)
        table_print(&t);
    table_free(&t);
    json_decref(o);
    return rc ? 1 : 0;
}

/* curl's global state belongs to main; these commands are main's stand-ins. */
static int with_curl(int (*fn)(int, char **), int argc, char **argv)
{
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "kiln: cannot initialise libcurl\n");
        return 1;
    }
    int rc = fn(argc, argv);
    curl_global_cleanup();
    return rc;
}

int kiln_cmd_submit(int argc, char **argv) { return with_curl(do_submit, argc, argv); }
int kiln_cmd_status(int argc, char **argv) { return with_curl(do_status, argc, argv); }
int kiln_cmd_list(int argc, char **argv) { return with_curl(do_list, argc, argv); }
int kiln_cmd_logs(int argc, char **argv) { return with_curl(do_logs, argc, argv); }
int kiln_cmd_cancel(int argc, char **argv) { return with_curl(do_cancel, argc, argv); }
int kiln_cmd_workers(int argc, char **argv) { return with_curl(do_workers, argc, argv); }
