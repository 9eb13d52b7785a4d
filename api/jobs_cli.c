/* jobs_cli.c - what the cluster commands share (jobs_cli.h): their argument
 * parser, finding kilnd, calls through api/client with the errors printed,
 * job fields read defensively and aligned tables. */
#include "jobs_cli.h"

#include <string.h>

#include <curl/curl.h>

#include "../core/kiln_alloc.h"
#include "cli_util.h"
#include "client.h"

/* --server, --dir, --json: 1 consumed (i advanced past a value), 0 not a
 * common option, -1 missing value. */
static int common_opt(jcli_ctx_t *c, int argc, char **argv, int *i)
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

static const jcli_opt_t *find_opt(const jcli_opt_t *opts, const char *a)
{
    for (; opts && opts->name; opts++)
        if (!strcmp(a, opts->name))
            return opts;
    return NULL;
}

int jcli_parse_args(jcli_ctx_t *c, int argc, char **argv, const jcli_opt_t *opts,
                    const char **positional)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        int r = common_opt(c, argc, argv, &i);
        if (r < 0)
            return ka_usage_error(c->cmd, c->usage, "missing value after", a);
        if (r > 0)
            continue;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            c->usage(stdout);
            return -1;
        }
        const jcli_opt_t *o = find_opt(opts, a);
        if (o && !o->value) {
            *o->flag = 1;
        } else if (o) {
            if (!val || (o->nonempty && !val[0]))
                return ka_usage_error(c->cmd, c->usage, "missing value after", a);
            const char *why = o->check ? o->check(val) : NULL;
            if (why)
                return ka_usage_error(c->cmd, c->usage, why, val);
            *o->value = val;
            i++;
        } else if (positional && a[0] != '-' && !*positional) {
            *positional = a;
        } else {
            return ka_usage_error(c->cmd, c->usage, "bad argument", a);
        }
    }
    return 0;
}

int jcli_resolve(jcli_ctx_t *c)
{
    kiln_err_t err;
    kiln_err_clear(&err);
    if (ka_client_resolve_server(c->server, c->dir, c->url, sizeof c->url, &err) < 0) {
        fprintf(stderr, "kiln %s: %s\n", c->cmd, err.msg);
        return 1;
    }
    return 0;
}

void jcli_print_server_error(const jcli_ctx_t *c, int status, const char *body)
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

int jcli_call(const jcli_ctx_t *c, const char *method, const char *path, const char *req_body,
              const char *key, int *status, char **body)
{
    kiln_err_t err;
    kiln_err_clear(&err);
    if (ka_client_request(c->url, method, path, req_body, key, JCLI_CALL_TIMEOUT_MS, status, body,
                          NULL, &err) < 0) {
        fprintf(stderr, "kiln %s: %s\n", c->cmd, err.msg);
        return 1;
    }
    return 0;
}

int jcli_call_json(const jcli_ctx_t *c, const char *method, const char *path, json_t **out,
                   char **raw)
{
    int status;
    char *body = NULL;
    *out = NULL;
    if (jcli_call(c, method, path, NULL, NULL, &status, &body))
        return 1;
    if (status < 200 || status > 299) {
        jcli_print_server_error(c, status, body);
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

int jcli_parse_id(const char *s, unsigned long long *id)
{
    return ka_parse_u64(s, id, 0);
}

/* ---- job fields ---- */

const char *jcli_jstr(json_t *o, const char *key, const char *dflt)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : dflt;
}

long long jcli_jint(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    return json_is_integer(v) ? (long long)json_integer_value(v)
                              : json_is_real(v) ? (long long)json_real_value(v) : 0;
}

void jcli_task_counts(json_t *job, long long *done, long long *total)
{
    json_t *t = json_object_get(job, "tasks");
    *total = jcli_jint(t, "total");
    *done = jcli_jint(t, "succeeded") + jcli_jint(t, "failed") + jcli_jint(t, "cancelled");
}

void jcli_reason_text(json_t *job, char *out, size_t cap)
{
    json_t *r = json_object_get(job, "reason");
    const char *code = jcli_jstr(r, "code", NULL), *text = jcli_jstr(r, "text", NULL);
    if (code && text)
        snprintf(out, cap, "%s: %s", code, text);
    else
        snprintf(out, cap, "%s", text ? text : code ? code : "");
}

/* ---- tables ---- */

int jcli_table_row(jcli_table_t *t, const char *const *cells)
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

void jcli_table_print(const jcli_table_t *t)
{
    size_t width[JCLI_TABLE_MAX_COLS] = {0};
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

void jcli_table_free(jcli_table_t *t)
{
    for (size_t i = 0; i < t->n_rows * t->n_cols; i++)
        kiln_free(t->cells[i]);
    kiln_free(t->cells);
    t->cells = NULL;
    t->n_rows = t->cap = 0;
}

int jcli_with_curl(int (*fn)(int, char **), int argc, char **argv)
{
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "kiln: cannot initialise libcurl\n");
        return 1;
    }
    int rc = fn(argc, argv);
    curl_global_cleanup();
    return rc;
}

int jcli_get_and_print(jcli_ctx_t *c, const char *path, int (*print)(json_t *))
{
    json_t *o;
    char *raw = NULL;
    if (jcli_resolve(c) || jcli_call_json(c, "GET", path, &o, &raw))
        return 1;
    int rc = 0;
    if (c->json)
        printf("%s\n", raw);
    else
        rc = print(o);
    kiln_free(raw);
    json_decref(o);
    return rc;
}
