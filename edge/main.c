/* main.c - kiln-edge's command line: `kiln-edge serve` (edge/agent.h) and
 * `kiln-edge frame` (a window file into the binary frame, for clients and
 * tests).  docs/edge.md describes both. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edge/agent.h"
#include "edge/frame.h"

static void usage(FILE *f)
{
    fputs("usage: kiln-edge serve --model-dir DIR [--mqtt HOST:PORT] [--device ID]\n"
          "                       [--socket PATH] [--stdin] [--metrics ADDR:PORT]\n"
          "                       [--features] [--max-assets N]\n"
          "  --model-dir  DIR/current (and DIR/previous, run when current fails to load\n"
          "               or fails its self-test), or a model in DIR itself: model.kmodel\n"
          "               [+ featspec.json] [+ manifest.json] [+ selftest.window]\n"
          "  --mqtt       broker to subscribe to kiln/edge/ID/windows (one binary frame per\n"
          "               message) and publish results to kiln/edge/ID/results\n"
          "  --device     ID: the MQTT client id and topic part (default: edge)\n"
          "  --socket     a unix socket taking frames or JSON lines; results go back on\n"
          "               the connection\n"
          "  --stdin      frames or JSON lines on stdin, results on stdout; with no other\n"
          "               input the agent exits at the end of stdin\n"
          "  --metrics    Prometheus /metrics on ADDR:PORT (numeric; port 0 picks one and\n"
          "               says which on stderr)\n"
          "  --features   results carry the feature row too\n"
          "  --max-assets rolling-feature state kept for N assets (default 256)\n"
          "SIGHUP reloads the model directory. At exit the counters go to stderr as JSON.\n",
          f);
}

/* "127.0.0.1:9101" or "[::1]:9101" into host and port (0..65535). */
static int parse_host_port(const char *opt, const char *text, char *host, size_t cap, int *port)
{
    const char *colon = strrchr(text, ':');
    const char *h = text;
    size_t n = colon ? (size_t)(colon - text) : 0;
    if (n >= 2 && h[0] == '[' && h[n - 1] == ']') {
        h++;
        n -= 2;
    }
    char *end;
    errno = 0;
    long p = colon ? strtol(colon + 1, &end, 10) : -1;
    if (!colon || n == 0 || n >= cap || errno || end == colon + 1 || *end || p < 0 || p > 65535) {
        fprintf(stderr, "kiln-edge: %s: expected HOST:PORT, got \"%s\"\n", opt, text);
        return -1;
    }
    memcpy(host, h, n);
    host[n] = 0;
    *port = (int)p;
    return 0;
}

static int serve(int argc, char **argv)
{
    ke_agent_opts_t o = {0};
    char mqtt_host[256], metrics_host[256];
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--stdin")) {
            o.use_stdin = 1;
            continue;
        }
        if (!strcmp(a, "--features")) {
            o.with_features = 1;
            continue;
        }
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        }
        if (!v) {
            fprintf(stderr, "kiln-edge: %s: unknown option or missing value\n", a);
            usage(stderr);
            return 2;
        }
        i++;
        if (!strcmp(a, "--model-dir"))
            o.model_dir = v;
        else if (!strcmp(a, "--device")) {
            size_t n = strlen(v);
            int ok = n > 0 && n < KE_DEVICE_MAX;
            for (size_t k = 0; ok && k < n; k++)
                ok = (v[k] >= 'a' && v[k] <= 'z') || (v[k] >= 'A' && v[k] <= 'Z') ||
                     (v[k] >= '0' && v[k] <= '9') || v[k] == '-' || v[k] == '_' || v[k] == '.';
            if (!ok) {
                fprintf(stderr, "kiln-edge: --device: 1..%d of [A-Za-z0-9._-], got \"%s\"\n",
                        KE_DEVICE_MAX - 1, v);
                return 2;
            }
            o.device_id = v;
        } else if (!strcmp(a, "--mqtt")) {
            if (parse_host_port(a, v, mqtt_host, sizeof mqtt_host, &o.mqtt_port) < 0)
                return 2;
            o.mqtt_host = mqtt_host;
        } else if (!strcmp(a, "--metrics")) {
            if (parse_host_port(a, v, metrics_host, sizeof metrics_host, &o.metrics_port) < 0)
                return 2;
            o.metrics_host = metrics_host;
        } else if (!strcmp(a, "--socket"))
            o.socket_path = v;
        else if (!strcmp(a, "--max-assets")) {
            char *end;
            long n = strtol(v, &end, 10);
            if (*end || n < 1 || n > 65536) {
                fprintf(stderr, "kiln-edge: --max-assets: 1..65536, got \"%s\"\n", v);
                return 2;
            }
            o.max_assets = (size_t)n;
        } else {
            fprintf(stderr, "kiln-edge: %s: unknown option\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (!o.model_dir) {
        fprintf(stderr, "kiln-edge: serve: --model-dir is required\n");
        return 2;
    }
    if (!o.mqtt_host && !o.socket_path && !o.use_stdin) {
        fprintf(stderr, "kiln-edge: serve: no input (--mqtt, --socket or --stdin)\n");
        return 2;
    }
    ke_counters_t c;
    kiln_err_t err;
    memset(&c, 0, sizeof c);
    int rc = ke_agent_run(&o, &c, &err);
    fprintf(stderr,
            "{\"running\":\"%s\",\"windows_in\":%" PRIu64 ",\"scored\":%" PRIu64
            ",\"errors\":%" PRIu64 ",\"from_mqtt\":%" PRIu64 ",\"from_socket\":%" PRIu64
            ",\"from_stdin\":%" PRIu64 ",\"published\":%" PRIu64 ",\"reloads\":%" PRIu64
            ",\"reload_failures\":%" PRIu64 ",\"mean_latency_us\":%.1f,\"max_latency_us\":%.1f}\n",
            c.running, c.windows_in, c.scored, c.errors, c.from_mqtt, c.from_socket, c.from_stdin,
            c.published, c.reloads, c.reload_failures,
            c.scored ? c.latency_sum_us / (double)c.scored : 0.0, c.latency_max_us);
    if (rc < 0) {
        fprintf(stderr, "kiln-edge: %s\n", err.msg);
        return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && !strcmp(argv[1], "serve"))
        return serve(argc, argv);
    if (argc >= 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
        usage(stdout);
        return 0;
    }
    usage(stderr);
    return 2;
}
