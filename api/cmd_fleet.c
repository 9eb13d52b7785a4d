/* cmd_fleet.c - edge fleets over kilnd's admin API (docs/api.md, "Fleets"):
 *   kiln fleet create NAME [--canary SHARE] [--health-seconds N] [--no-encrypt]
 *   kiln fleet list | kiln fleet show NAME | kiln fleet pubkey NAME
 *   kiln device enroll --fleet F [--ttl-seconds N]   prints a one-time token
 *   kiln device list [--fleet F] | kiln device show ID | kiln device revoke ID
 *   kiln publish NAME@VERSION --fleet F [--canary SHARE] [--health-seconds N]
 *                [--expires-days D]
 *   kiln rollback --fleet F [--expires-days D] | kiln rollout status --fleet F */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "../core/kiln_alloc.h"
#include "cli.h"
#include "cli_util.h"
#include "jobs_cli.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: kiln fleet create NAME [--canary SHARE] [--health-seconds N] [--no-encrypt]\n"
            "       kiln fleet list | kiln fleet show NAME | kiln fleet pubkey NAME\n"
            "       kiln device enroll --fleet F [--ttl-seconds N]   (prints a one-time token)\n"
            "       kiln device list [--fleet F] | kiln device show ID | kiln device revoke ID\n"
            "       kiln publish NAME@VERSION --fleet F [--canary SHARE] [--health-seconds N]\n"
            "                    [--expires-days D]   (envelope expiry; default 30 days)\n"
            "       kiln rollback --fleet F [--expires-days D] | kiln rollout status --fleet F\n"
            "options for all:\n" JCLI_COMMON_HELP
            "  --json        print the server's JSON\n");
}

/* One call with an optional JSON body; 0 with *out (decref) or 1 printed. */
static int call(jcli_ctx_t *c, const char *method, const char *path, json_t *req, json_t **out)
{
    char *text = req ? json_dumps(req, JSON_COMPACT) : NULL;
    json_decref(req);
    int status = 0;
    char *body = NULL;
    *out = NULL;
    int rc = jcli_call(c, method, path, text, NULL, &status, &body);
    free(text);
    if (rc)
        return 1;
    if (status < 200 || status > 299) {
        jcli_print_server_error(c, status, body);
        kiln_free(body);
        return 1;
    }
    json_error_t jerr;
    *out = json_loads(body, 0, &jerr);
    if (c->json)
        printf("%s\n", body);
    kiln_free(body);
    if (!json_is_object(*out)) {
        fprintf(stderr, "kiln %s: kilnd's answer to %s %s is not a JSON object\n", c->cmd, method,
                path);
        json_decref(*out);
        return 1;
    }
    return 0;
}

static const char *check_share(const char *v)
{
    char *end;
    double x = strtod(v, &end);
    return *end || !(x > 0 && x <= 1) ? "--canary: expected a share in (0, 1]" : NULL;
}

static const char *check_count(const char *v)
{
    char *end;
    long long x = strtoll(v, &end, 10);
    return *end || x < 0 ? "expected a whole number >= 0" : NULL;
}

static const char *check_days(const char *v)
{
    char *end;
    double x = strtod(v, &end);
    return *end || !(x > 0 && x <= 3650) ? "--expires-days: expected a number of days in (0, 3650]"
                                         : NULL;
}

static void print_device(json_t *d)
{
    json_t *r = json_object_get(d, "report");
    char ver[64] = "-";
    if (jcli_jint(r, "version") > 0)
        snprintf(ver, sizeof ver, "%s@%lld", jcli_jstr(r, "model", "?"), jcli_jint(r, "version"));
    json_t *lat = json_object_get(r, "latency_us");
    const char *h = jcli_jstr(r, "health", "");
    printf("%-22s %-12s %-14s %-8s %-22s %-11s p50 %.0f us  p99 %.0f us\n",
           jcli_jstr(d, "id", ""), jcli_jstr(d, "fleet", ""), jcli_jstr(d, "name", ""),
           json_is_true(json_object_get(d, "revoked")) ? "revoked" : "active", ver,
           h[0] ? h : "-", json_number_value(json_object_get(lat, "p50")),
           json_number_value(json_object_get(lat, "p99")));
}

static void print_rollout(json_t *r)
{
    printf("rollout %lld: %s@%lld to fleet %s, stage %s%s%s%s\n", jcli_jint(r, "id"),
           jcli_jstr(r, "model", "?"), jcli_jint(r, "version"), jcli_jstr(r, "fleet", "?"),
           jcli_jstr(r, "stage", "?"), json_is_true(json_object_get(r, "rollback")) ? " (rollback)"
                                                                                    : "",
           jcli_jstr(r, "reason", "")[0] ? ": " : "", jcli_jstr(r, "reason", ""));
    printf("  canaries %lld (share %.2f), health window %lld s\n", jcli_jint(r, "canaries"),
           json_number_value(json_object_get(r, "canary_share")), jcli_jint(r, "health_window_s"));
    if (json_object_get(r, "seq"))
        printf("  seq %lld, envelope %s, bundle %s\n", jcli_jint(r, "seq"),
               jcli_jstr(r, "envelope_sha256", "?"), jcli_jstr(r, "bundle_sha256", "?"));
}

/* Sets the request fields that the optional flags name (NULL: left out);
 * returns b. */
static json_t *rollout_fields(json_t *b, const char *canary, const char *health, const char *days)
{
    if (canary)
        json_object_set_new(b, "canary_share", json_real(atof(canary)));
    if (health)
        json_object_set_new(b, "health_window_s", json_integer(atoll(health)));
    if (days)
        json_object_set_new(b, "expires_s", json_integer((json_int_t)(atof(days) * 86400)));
    return b;
}

/* POSTs b (stolen) to path and prints the rollout kilnd answers; the exit code. */
static int post_rollout(jcli_ctx_t *c, const char *path, json_t *b)
{
    json_t *o = NULL;
    if (call(c, "POST", path, b, &o))
        return 1;
    if (!c->json)
        print_rollout(o);
    json_decref(o);
    return 0;
}

/* GETs fleet name's publisher key into *o (decref); 0 or 1 printed. */
static int get_pubkey(jcli_ctx_t *c, const char *name, json_t **o)
{
    char path[512];
    snprintf(path, sizeof path, "/v1/fleets/%s/pubkey", name);
    return call(c, "GET", path, NULL, o);
}

static int fleet_main(int argc, char **argv)
{
    jcli_ctx_t c = {.cmd = "fleet", .usage = usage};
    if (argc < 2)
        return ka_usage_error("fleet", usage, "missing create, list or show", NULL);
    const char *sub = argv[1], *name = NULL, *canary = NULL, *health = NULL;
    int no_encrypt = 0;
    jcli_opt_t opts[] = {{"--canary", NULL, &canary, 1, check_share},
                         {"--health-seconds", NULL, &health, 1, check_count},
                         {"--no-encrypt", &no_encrypt, NULL, 0, NULL},
                         {NULL, NULL, NULL, 0, NULL}};
    int r = jcli_parse_args(&c, argc - 1, argv + 1, opts, &name);
    if (r)
        return r < 0 ? 0 : r;
    if (jcli_resolve(&c))
        return 1;
    json_t *o = NULL;
    char path[512];
    if (!strcmp(sub, "create")) {
        if (!name)
            return ka_usage_error("fleet", usage, "missing NAME", NULL);
        json_t *b = json_pack("{s:s, s:b}", "name", name, "encrypted", !no_encrypt);
        if (call(&c, "POST", "/v1/fleets", rollout_fields(b, canary, health, NULL), &o))
            return 1;
        if (!c.json)
            printf("fleet %s created (canary share %.2f, health window %lld s%s)\n", name,
                   json_number_value(json_object_get(o, "canary_share")),
                   jcli_jint(o, "health_window_s"),
                   json_is_true(json_object_get(o, "encrypted")) ? ", encrypted" : "");
    } else if (!strcmp(sub, "list")) {
        if (call(&c, "GET", "/v1/fleets", NULL, &o))
            return 1;
        size_t i;
        json_t *f;
        json_array_foreach(json_object_get(o, "fleets"), i, f) if (!c.json)
            printf("%-20s %3lld devices  canary %.2f  window %lld s%s\n", jcli_jstr(f, "name", ""),
                   jcli_jint(f, "devices"), json_number_value(json_object_get(f, "canary_share")),
                   jcli_jint(f, "health_window_s"),
                   json_is_true(json_object_get(f, "encrypted")) ? "  encrypted" : "");
    } else if (!strcmp(sub, "show")) {
        if (!name)
            return ka_usage_error("fleet", usage, "missing NAME", NULL);
        snprintf(path, sizeof path, "/v1/fleets/%s", name);
        if (call(&c, "GET", path, NULL, &o))
            return 1;
        if (!c.json) {
            printf("fleet %s: %lld devices, canary share %.2f, health window %lld s%s\n", name,
                   jcli_jint(o, "devices"), json_number_value(json_object_get(o, "canary_share")),
                   jcli_jint(o, "health_window_s"),
                   json_is_true(json_object_get(o, "encrypted")) ? ", encrypted" : "");
            json_t *ro = json_object_get(o, "rollout");
            if (json_is_object(ro))
                print_rollout(ro);
            size_t i;
            json_t *d;
            json_array_foreach(json_object_get(o, "device_list"), i, d) print_device(d);
            json_decref(o);
            o = NULL;
            c.json = 0;     /* the key is printed as a line, not as a second JSON text */
            if (get_pubkey(&c, name, &o))
                return 1;
            printf("publisher key (enroll agents with it): %s", jcli_jstr(o, "publisher_key", "?\n"));
        }
    } else if (!strcmp(sub, "pubkey")) {
        if (!name)
            return ka_usage_error("fleet", usage, "missing NAME", NULL);
        if (get_pubkey(&c, name, &o))
            return 1;
        if (!c.json)
            fputs(jcli_jstr(o, "publisher_key", ""), stdout);
    } else {
        return ka_usage_error("fleet", usage, "unknown subcommand", sub);
    }
    json_decref(o);
    return 0;
}

static int device_main(int argc, char **argv)
{
    jcli_ctx_t c = {.cmd = "device", .usage = usage};
    if (argc < 2)
        return ka_usage_error("device", usage, "missing enroll, list, show or revoke", NULL);
    const char *sub = argv[1], *id = NULL, *fleet = NULL, *ttl = NULL;
    jcli_opt_t opts[] = {{"--fleet", NULL, &fleet, 1, NULL},
                         {"--ttl-seconds", NULL, &ttl, 1, check_count},
                         {NULL, NULL, NULL, 0, NULL}};
    int r = jcli_parse_args(&c, argc - 1, argv + 1, opts, &id);
    if (r)
        return r < 0 ? 0 : r;
    if (jcli_resolve(&c))
        return 1;
    json_t *o = NULL;
    char path[512];
    if (!strcmp(sub, "enroll")) {
        if (!fleet)
            return ka_usage_error("device", usage, "enroll needs --fleet", NULL);
        snprintf(path, sizeof path, "/v1/fleets/%s/tokens", fleet);
        json_t *b = json_object();
        if (ttl)
            json_object_set_new(b, "ttl_s", json_integer(atoll(ttl)));
        if (call(&c, "POST", path, b, &o))
            return 1;
        if (!c.json) {
            printf("%s\n", jcli_jstr(o, "token", ""));
            fprintf(stderr, "kiln device: a one-time enrollment token for fleet %s; shown once, "
                            "valid until %lld (unix s)\n",
                    fleet, jcli_jint(o, "expires_ns") / 1000000000LL);
        }
    } else if (!strcmp(sub, "list")) {
        snprintf(path, sizeof path, "/v1/devices%s%s", fleet ? "?fleet=" : "", fleet ? fleet : "");
        if (call(&c, "GET", path, NULL, &o))
            return 1;
        size_t i;
        json_t *d;
        if (!c.json)
            json_array_foreach(json_object_get(o, "devices"), i, d) print_device(d);
    } else if (!strcmp(sub, "show")) {
        if (!id)
            return ka_usage_error("device", usage, "missing the device ID", NULL);
        snprintf(path, sizeof path, "/v1/devices/%s", id);
        if (call(&c, "GET", path, NULL, &o))
            return 1;
        if (!c.json) {
            print_device(o);
            /* the device's own words: why it refused an update or rolled back */
            const char *msg = jcli_jstr(json_object_get(o, "report"), "message", "");
            if (msg[0])
                printf("  says: %s\n", msg);
        }
    } else if (!strcmp(sub, "revoke")) {
        if (!id)
            return ka_usage_error("device", usage, "missing the device ID", NULL);
        snprintf(path, sizeof path, "/v1/devices/%s/revoke", id);
        if (call(&c, "POST", path, NULL, &o))
            return 1;
        if (!c.json)
            printf("device %s revoked\n", id);
    } else {
        return ka_usage_error("device", usage, "unknown subcommand", sub);
    }
    json_decref(o);
    return 0;
}

static int publish_main(int argc, char **argv)
{
    jcli_ctx_t c = {.cmd = "publish", .usage = usage};
    const char *ref = NULL, *fleet = NULL, *canary = NULL, *health = NULL, *days = NULL;
    jcli_opt_t opts[] = {{"--fleet", NULL, &fleet, 1, NULL},
                         {"--canary", NULL, &canary, 1, check_share},
                         {"--health-seconds", NULL, &health, 1, check_count},
                         {"--expires-days", NULL, &days, 1, check_days},
                         {NULL, NULL, NULL, 0, NULL}};
    int r = jcli_parse_args(&c, argc, argv, opts, &ref);
    if (r)
        return r < 0 ? 0 : r;
    if (!ref || !fleet)
        return ka_usage_error("publish", usage, "needs NAME@VERSION and --fleet", NULL);
    if (jcli_resolve(&c))
        return 1;
    json_t *b = json_pack("{s:s, s:s}", "model", ref, "fleet", fleet);
    return post_rollout(&c, "/v1/publish", rollout_fields(b, canary, health, days));
}

static int rollback_main(int argc, char **argv)
{
    jcli_ctx_t c = {.cmd = "rollback", .usage = usage};
    const char *fleet = NULL, *days = NULL;
    jcli_opt_t opts[] = {{"--fleet", NULL, &fleet, 1, NULL},
                         {"--expires-days", NULL, &days, 1, check_days},
                         {NULL, NULL, NULL, 0, NULL}};
    int r = jcli_parse_args(&c, argc, argv, opts, NULL);
    if (r)
        return r < 0 ? 0 : r;
    if (!fleet)
        return ka_usage_error("rollback", usage, "needs --fleet", NULL);
    if (jcli_resolve(&c))
        return 1;
    json_t *b = json_pack("{s:s}", "fleet", fleet);
    return post_rollout(&c, "/v1/rollback", rollout_fields(b, NULL, NULL, days));
}

static int rollout_main(int argc, char **argv)
{
    jcli_ctx_t c = {.cmd = "rollout", .usage = usage};
    const char *fleet = NULL, *sub = NULL;
    jcli_opt_t opts[] = {{"--fleet", NULL, &fleet, 1, NULL}, {NULL, NULL, NULL, 0, NULL}};
    int r = jcli_parse_args(&c, argc, argv, opts, &sub);
    if (r)
        return r < 0 ? 0 : r;
    if (!sub || strcmp(sub, "status") || !fleet)
        return ka_usage_error("rollout", usage, "expected `rollout status --fleet F`", NULL);
    if (jcli_resolve(&c))
        return 1;
    char path[512];
    snprintf(path, sizeof path, "/v1/fleets/%s/rollout", fleet);
    json_t *o = NULL;
    if (call(&c, "GET", path, NULL, &o))
        return 1;
    if (!c.json) {
        print_rollout(o);
        size_t i;
        json_t *d;
        json_array_foreach(json_object_get(o, "canary_devices"), i, d) print_device(d);
    }
    json_decref(o);
    return 0;
}

int kiln_cmd_fleet(int argc, char **argv) { return jcli_with_curl(fleet_main, argc, argv); }
int kiln_cmd_device(int argc, char **argv) { return jcli_with_curl(device_main, argc, argv); }
int kiln_cmd_publish(int argc, char **argv) { return jcli_with_curl(publish_main, argc, argv); }
int kiln_cmd_rollback(int argc, char **argv) { return jcli_with_curl(rollback_main, argc, argv); }
int kiln_cmd_rollout(int argc, char **argv) { return jcli_with_curl(rollout_main, argc, argv); }
