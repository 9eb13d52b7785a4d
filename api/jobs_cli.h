/* jobs_cli.h - what the cluster commands (cmd_submit.c, cmd_query.c,
 * cmd_control.c) share: finding kilnd, the options every command takes, one
 * argument parser, calls with their errors printed, job fields and tables. */
#ifndef KILN_API_JOBS_CLI_H
#define KILN_API_JOBS_CLI_H

#include <stddef.h>
#include <stdio.h>

#include <jansson.h>

#define JCLI_CALL_TIMEOUT_MS 30000

#define JCLI_COMMON_HELP                                                                       \
    "  --server URL  kilnd's API (default: --dir's kilnd.url, $KILN_SERVER, $KILN_DIR's\n"     \
    "                kilnd.url, then http://127.0.0.1:7878)\n"                                  \
    "  --dir D       the cluster directory kilnd runs with (reads D/kilnd.url)\n"

/* One command's run: its name and usage, the options every command takes
 * (--server, --dir, --json) and, after jcli_resolve, kilnd's URL. */
typedef struct {
    const char *cmd;
    void (*usage)(FILE *);
    const char *server, *dir;
    int json;
    char url[1024];
} jcli_ctx_t;

/* One of a command's own options.  A flag sets *flag to 1; an option with
 * a value (value not NULL) stores the next argument, borrowed from argv, in
 * *value.  nonempty: an empty value counts as missing.  check (may be NULL)
 * returns NULL for a good value, else the usage error's text (the value is
 * printed after it). */
typedef struct {
    const char *name;
    int *flag;
    const char **value;
    int nonempty;
    const char *(*check)(const char *value);
} jcli_opt_t;

/* Parses argv[1..], in order: the common options, --help/-h (usage to
 * stdout), opts (ended by an entry whose name is NULL; opts may be NULL)
 * and, when positional is not NULL, one argument not starting with '-' into
 * *positional (which starts NULL).  Returns 0 to go on, -1 when --help was
 * printed (exit 0), or the exit status of a usage error it printed. */
int jcli_parse_args(jcli_ctx_t *c, int argc, char **argv, const jcli_opt_t *opts,
                    const char **positional);

/* Finds kilnd into c->url; 0, or 1 with the reason printed. */
int jcli_resolve(jcli_ctx_t *c);

/* Prints the server's error object (or the raw body) for a non-2xx answer. */
void jcli_print_server_error(const jcli_ctx_t *c, int status, const char *body);

/* One call.  0 with *status and *body (kiln_free) set, or 1 with the
 * transport error printed. */
int jcli_call(const jcli_ctx_t *c, const char *method, const char *path, const char *req_body,
              const char *key, int *status, char **body);

/* A call whose 2xx answer is a JSON object: 0 with *out (decref), or 1
 * with the transport or server error printed.  raw (may be NULL) gets the
 * text for --json (kiln_free). */
int jcli_call_json(const jcli_ctx_t *c, const char *method, const char *path, json_t **out,
                   char **raw);

/* GETs path and prints the raw answer (--json) or what print makes of it;
 * 0, or 1 with the error printed. */
int jcli_get_and_print(jcli_ctx_t *c, const char *path, int (*print)(json_t *));

/* A job id argument: a whole number above 0; 0 or -1. */
int jcli_parse_id(const char *s, unsigned long long *id);

/* ---- job fields, read defensively (a newer kilnd may add or omit some) ---- */

/* o[key] as a string (borrowed), or dflt. */
const char *jcli_jstr(json_t *o, const char *key, const char *dflt);
/* o[key] as a whole number (a real is truncated), or 0. */
long long jcli_jint(json_t *o, const char *key);
/* The job's ended tasks (succeeded, failed, cancelled) and all its tasks. */
void jcli_task_counts(json_t *job, long long *done, long long *total);
/* "code: text", "text", or "" when the job has no reason. */
void jcli_reason_text(json_t *job, char *out, size_t cap);

/* ---- tables ---- */

#define JCLI_TABLE_MAX_COLS 10

/* Rows of text cells; set n_cols (at most JCLI_TABLE_MAX_COLS) and zero the
 * rest, add rows, print, free. */
typedef struct {
    size_t n_cols, n_rows, cap;
    char **cells;           /* n_rows x n_cols, kiln_strdup'd */
} jcli_table_t;

/* Copies n_cols cells (NULL: "") as a new row; 0, or -1 out of memory. */
int jcli_table_row(jcli_table_t *t, const char *const *cells);
/* Columns padded to their widest cell; the last one is not padded. */
void jcli_table_print(const jcli_table_t *t);
void jcli_table_free(jcli_table_t *t);

/* Runs fn between curl_global_init and curl_global_cleanup: curl's global
 * state belongs to main, and the commands are main's stand-ins. */
int jcli_with_curl(int (*fn)(int, char **), int argc, char **argv);

#endif
