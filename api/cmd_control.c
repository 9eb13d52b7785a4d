/* cmd_control.c - the cluster commands that take one job ID, over kilnd's
 * HTTP API (docs/api.md): `kiln logs` prints a job's log, `kiln cancel`
 * cancels it. */
#include <stdio.h>

#include <jansson.h>

#include "../core/kiln_alloc.h"
#include "cli.h"
#include "cli_util.h"
#include "jobs_cli.h"

static void logs_usage(FILE *f)
{
    fprintf(f, "usage: kiln logs ID [--server URL] [--dir D]\n"
               "Prints the job's log: scheduler events and each task's output tail.\n"
               JCLI_COMMON_HELP);
}

static void cancel_usage(FILE *f)
{
    fprintf(f, "usage: kiln cancel ID [--json] [--server URL] [--dir D]\n"
               "Cancels a queued or running job (exit 1 if it had already ended).\n"
               JCLI_COMMON_HELP);
}

/* Parses `CMD ID [common options]`, finds kilnd and writes the job's
 * /v1/jobs/ID/action into path[64]; 0 ok, else the exit status (-1: --help
 * done). */
static int id_args(jcli_ctx_t *c, int argc, char **argv, const char *action,
                   unsigned long long *id, char path[64])
{
    const char *id_arg = NULL;
    int r = jcli_parse_args(c, argc, argv, NULL, &id_arg);
    if (r)
        return r;
    if (!id_arg)
        return ka_usage_error(c->cmd, c->usage, "missing job ID", NULL);
    if (jcli_parse_id(id_arg, id) < 0)
        return ka_usage_error(c->cmd, c->usage, "a job ID is a whole number above 0, got", id_arg);
    snprintf(path, 64, "/v1/jobs/%llu/%s", *id, action);
    return jcli_resolve(c);
}

static int do_logs(int argc, char **argv)
{
    jcli_ctx_t c = {.cmd = "logs", .usage = logs_usage};
    unsigned long long id;
    char path[64];
    int r = id_args(&c, argc, argv, "logs", &id, path);
    if (r)
        return r < 0 ? 0 : r;
    int status;
    char *body = NULL;
    if (jcli_call(&c, "GET", path, NULL, NULL, &status, &body))
        return 1;
    int rc = 0;
    if (status != 200) {
        jcli_print_server_error(&c, status, body);
        rc = 1;
    } else {
        fputs(body, stdout);
    }
    kiln_free(body);
    return rc;
}

static int do_cancel(int argc, char **argv)
{
    jcli_ctx_t c = {.cmd = "cancel", .usage = cancel_usage};
    unsigned long long id;
    char path[64];
    int r = id_args(&c, argc, argv, "cancel", &id, path);
    if (r)
        return r < 0 ? 0 : r;
    json_t *o;
    char *raw = NULL;
    if (jcli_call_json(&c, "POST", path, &o, &raw))
        return 1;
    if (c.json)
        printf("%s\n", raw);
    else
        printf("job %llu %s\n", id, jcli_jstr(o, "state", "cancelled"));
    kiln_free(raw);
    json_decref(o);
    return 0;
}

int kiln_cmd_logs(int argc, char **argv) { return jcli_with_curl(do_logs, argc, argv); }
int kiln_cmd_cancel(int argc, char **argv) { return jcli_with_curl(do_cancel, argc, argv); }
