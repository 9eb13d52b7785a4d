/* main.c - kiln-edge's command line: `kiln-edge serve` (edge/agent.h) and
 * `kiln-edge frame` (a window file into the binary frame, for clients and
 * tests).  docs/edge.md describes both. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edge/agent.h"
#include "edge/enroll.h"
#include "edge/frame.h"
#include "edge/send.h"

static void usage(FILE *f)
{
    fputs("usage: kiln-edge enroll --server https://HOST:PORT --ca CA.pem --token T --dir DIR\n"
          "                        [--name NAME] [--pubkey PK] [--fleet-key KEY]\n"
          "  makes the device key pair in DIR, enrolls, keeps the device id, server, CA,\n"
          "  publisher key and fleet key there (--pubkey/--fleet-key: when the enroll\n"
          "  answer does not carry them)\n"
          "       kiln-edge serve --dir DIR [--poll-seconds N] [--report-seconds N]\n"
          "                       [--force-unhealthy] [inputs as below]\n"
          "  an enrolled device: polls its fleet's manifest, downloads, verifies, swaps,\n"
          "  rolls back by itself, reports (docs/edge.md, \"Agent\")\n"
          "       kiln-edge serve --model-dir DIR [--mqtt HOST:PORT] [--device ID]\n"
          "                       [--socket PATH] [--stdin] [--metrics ADDR:PORT]\n"
          "                       [--features] [--max-assets N]\n"
          "  --model-dir  DIR/current (and DIR/previous, run when current fails to load\n"
          "               or fails its self-test), or a model in DIR itself: model.kmodel\n"
          "               [+ featspec.json] [+ manifest.json] [+ selftest.window]\n"
          "  --mqtt       broker to subscribe to kiln/edge/ID/windows (one binary frame per\n"
          "               message) and publish results to kiln/edge/ID/results\n"
          "  --device     ID: the MQTT client id, topic part and results' \"device\"\n"
          "               (default: the enrolled device id with --dir, else edge)\n"
          "  --socket     a unix socket taking frames or JSON lines; results go back on\n"
          "               the connection\n"
          "  --stdin      frames or JSON lines on stdin, results on stdout; with no other\n"
          "               input the agent exits at the end of stdin\n"
          "  --metrics    Prometheus /metrics on ADDR:PORT (numeric; port 0 picks one and\n"
          "               says which on stderr)\n"
          "  --features   results carry the feature row too\n"
          "  --max-assets rolling-feature state kept for N assets (default 256)\n"
          "SIGHUP reloads the model directory. At exit the counters go to stderr as JSON.\n"
          "       kiln-edge send --mqtt HOST:PORT [--device ID] < FRAMES\n"
          "  publishes each binary frame of stdin to kiln/edge/ID/windows, waits for its\n"
          "  result (one in flight), prints the results and, on stderr, the round trips\n",
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
        if (!strcmp(a, "--force-unhealthy")) {
            o.force_unhealthy = 1;
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
        else if (!strcmp(a, "--dir"))
            o.device_dir = v;
        else if (!strcmp(a, "--poll-seconds") || !strcmp(a, "--report-seconds")) {
            char *end;
            long n = strtol(v, &end, 10);
            if (*end || n < 1 || n > 86400) {
                fprintf(stderr, "kiln-edge: %s: 1..86400, got \"%s\"\n", a, v);
                return 2;
            }
            *(a[2] == 'p' ? &o.poll_s : &o.report_s) = (int)n;
        }
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
    if (!o.model_dir == !o.device_dir) {
        fprintf(stderr, "kiln-edge: serve: one of --model-dir or --dir is required\n");
        return 2;
    }
    if (!o.device_dir && !o.mqtt_host && !o.socket_path && !o.use_stdin) {
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

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int send_cmd(int argc, char **argv)
{
    char host[256];
    int port = 0, have = 0;
    const char *device = "edge";
    for (int i = 2; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--mqtt")) {
            if (parse_host_port("--mqtt", argv[i + 1], host, sizeof host, &port) < 0)
                return 2;
            have = 1;
        } else if (!strcmp(argv[i], "--device")) {
            device = argv[i + 1];
        } else {
            fprintf(stderr, "kiln-edge send: %s: unknown option\n", argv[i]);
            return 2;
        }
    }
    if (!have || argc % 2) {
        usage(stderr);
        return 2;
    }
    kiln_err_t err;
    ke_sender_t *s = NULL;
    if (ke_sender_open(host, port, device, 5000, &s, &err) < 0) {
        fprintf(stderr, "kiln-edge: %s\n", err.msg);
        return 1;
    }
    unsigned char hdr[KE_FRAME_HEADER_BYTES];
    unsigned char *frame = NULL;
    double *rtt = NULL;
    size_t n = 0, cap_rtt = 0, cap_frame = 0;
    char result[1 << 16];
    int rc = 0;
    while (fread(hdr, 1, sizeof hdr, stdin) == sizeof hdr) {
        ke_frame_hdr_t h;
        if (ke_frame_parse_header(hdr, sizeof hdr, &h, &err) < 0) {
            fprintf(stderr, "kiln-edge send: window %zu: %s\n", n, err.msg);
            rc = 1;
            break;
        }
        if (h.frame_bytes > cap_frame) {
            unsigned char *f = realloc(frame, h.frame_bytes);
            if (!f) {
                rc = 1;
                break;
            }
            frame = f;
            cap_frame = h.frame_bytes;
        }
        memcpy(frame, hdr, sizeof hdr);
        if (fread(frame + sizeof hdr, 1, h.frame_bytes - sizeof hdr, stdin) !=
            h.frame_bytes - sizeof hdr) {
            fprintf(stderr, "kiln-edge send: window %zu: short frame\n", n);
            rc = 1;
            break;
        }
        if (n == cap_rtt) {
            double *r = realloc(rtt, (cap_rtt = cap_rtt ? 2 * cap_rtt : 1024) * sizeof *r);
            if (!r) {
                rc = 1;
                break;
            }
            rtt = r;
        }
        if (ke_sender_send(s, frame, h.frame_bytes, 5000, result, sizeof result, &rtt[n],
                           &err) < 0) {
            fprintf(stderr, "kiln-edge send: window %zu: %s\n", n, err.msg);
            rc = 1;
            break;
        }
        printf("%s\n", result);
        n++;
    }
    fflush(stdout);
    if (n) {
        qsort(rtt, n, sizeof *rtt, cmp_double);
        fprintf(stderr, "{\"windows\":%zu,\"rtt_p50_us\":%.1f,\"rtt_p99_us\":%.1f}\n", n,
                rtt[n / 2], rtt[(size_t)((double)(n - 1) * 0.99)]);
    }
    free(frame);
    free(rtt);
    ke_sender_close(&s);
    return rc;
}

static int enroll_cmd(int argc, char **argv)
{
    ke_enroll_opts_t o = {0};
    for (int i = 2; i < argc; i += 2) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        const char **slot = !strcmp(a, "--server")      ? &o.server
                            : !strcmp(a, "--ca")        ? &o.ca_path
                            : !strcmp(a, "--token")     ? &o.token
                            : !strcmp(a, "--dir")       ? &o.dir
                            : !strcmp(a, "--name")      ? &o.name
                            : !strcmp(a, "--pubkey")    ? &o.pubkey_path
                            : !strcmp(a, "--fleet-key") ? &o.fleet_key_path
                                                        : NULL;
        if (!slot || !v) {
            fprintf(stderr, "kiln-edge enroll: %s: unknown option or missing value\n", a);
            usage(stderr);
            return 2;
        }
        *slot = v;
    }
    if (!o.server || !o.ca_path || !o.token || !o.dir) {
        fprintf(stderr, "kiln-edge enroll: --server, --ca, --token and --dir are required\n");
        return 2;
    }
    char id[64];
    kiln_err_t err;
    if (ke_enroll(&o, id, &err) < 0) {
        fprintf(stderr, "kiln-edge enroll: %s\n", err.msg);
        return 1;
    }
    printf("%s\n", id);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && !strcmp(argv[1], "enroll"))
        return enroll_cmd(argc, argv);
    if (argc >= 2 && !strcmp(argv[1], "send"))
        return send_cmd(argc, argv);
    if (argc >= 2 && !strcmp(argv[1], "serve"))
        return serve(argc, argv);
    if (argc >= 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
        usage(stdout);
        return 0;
    }
    usage(stderr);
    return 2;
}
