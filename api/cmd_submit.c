/* cmd_submit.c - `kiln submit`: sends a job spec to kilnd (POST /v1/jobs,
 * docs/api.md) with an idempotency key, retried on a lost connection, and
 * with --wait follows the job to its end behind a progress bar. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "../core/kiln_alloc.h"
#include "cli.h"
#include "cli_util.h"
#include "client.h"
#include "jobs_cli.h"

#define SUBMIT_RETRIES   3          /* after a transport error, with the same key */
#define RETRY_BACKOFF_MS 200
#define POLL_MS          200
#define POLL_FAILURES    25         /* consecutive unreachable polls (5 s) before giving up */

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
            "                default: a random key, reused when a lost connection is retried\n"
            JCLI_COMMON_HELP);
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

static int is_final(const char *state)
{
    return strcmp(state, "queued") && strcmp(state, "running");
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
static int wait_job(jcli_ctx_t *c, long long id)
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
        if (ka_client_request(c->url, "GET", path, NULL, NULL, JCLI_CALL_TIMEOUT_MS, &status,
                              &body, NULL, &err) < 0) {
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
            jcli_print_server_error(c, status, body);
            kiln_free(body);
            return 1;
        }
        json_t *job = json_loads(body, 0, NULL);
        const char *state = jcli_jstr(job, "state", NULL);
        if (!state) {
            fprintf(stderr, "%skiln %s: kilnd's answer for job %lld has no state\n",
                    drawn ? "\n" : "", c->cmd, id);
            json_decref(job);
            kiln_free(body);
            return 1;
        }
        long long done, total;
        jcli_task_counts(job, &done, &total);
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
                jcli_reason_text(job, reason, sizeof reason);
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

/* --idempotency-key's value: printable ASCII without spaces. */
static const char *check_key(const char *key)
{
    for (const char *k = key; *k; k++)
        if ((unsigned char)*k < 0x21 || (unsigned char)*k > 0x7e)
            return "an idempotency key is printable ASCII without spaces, got";
    return NULL;
}

static int do_submit(int argc, char **argv)
{
    jcli_ctx_t c = {.cmd = "submit", .usage = submit_usage};
    const char *spec_path = NULL, *key_opt = NULL;
    int wait = 0;
    const jcli_opt_t opts[] = {
        {.name = "--wait", .flag = &wait},
        {.name = "--idempotency-key", .value = &key_opt, .nonempty = 1, .check = check_key},
        {0},
    };
    int r = jcli_parse_args(&c, argc, argv, opts, &spec_path);
    if (r)
        return r < 0 ? 0 : r;
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
    if (jcli_resolve(&c)) {
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
        rc = ka_client_request(c.url, "POST", "/v1/jobs", text, key_opt, JCLI_CALL_TIMEOUT_MS,
                               &status, &body, NULL, &err);
        if (rc == 0 || rc != KILN_EIO)
            break;
    }
    free(text);
    if (rc < 0) {
        fprintf(stderr, "kiln submit: %s\n", err.msg);
        return 1;
    }
    if (status != 200 && status != 201) {
        jcli_print_server_error(&c, status, body);
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
               jcli_jstr(ans, "state", "?"));
    json_decref(ans);
    kiln_free(body);
    if (!wait)
        return 0;
    fflush(stdout);
    return wait_job(&c, id);
}

int kiln_cmd_submit(int argc, char **argv) { return jcli_with_curl(do_submit, argc, argv); }
