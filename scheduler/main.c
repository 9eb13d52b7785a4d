/* main.c - `kilnd`: options, then the scheduler loop (kilnd.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/kiln_alloc.h"
#include "scheduler/kilnd.h"

#define MAX_QUOTAS 64

static void usage(FILE *f)
{
    fprintf(f,
            "usage: kilnd --dir DIR [options]\n"
            "\n"
            "The kiln scheduler: jobs, tasks and workers in DIR/state.db (SQLite, WAL),\n"
            "workers over ZeroMQ, the HTTP JSON API (docs/api.md).  Stops on SIGINT/SIGTERM.\n"
            "\n"
            "  --dir DIR               state, task outputs, logs; created if missing\n"
            "  --listen ENDPOINT       ZeroMQ endpoint for workers (tcp://127.0.0.1:7879;\n"
            "                          tcp://127.0.0.1:* picks a port, written to DIR/kilnd.zmq)\n"
            "  --http HOST:PORT        the API (127.0.0.1:7878; port 0 picks one, written to\n"
            "                          DIR/kilnd.url)\n"
            "  --lease-ms N            a worker silent this long is lost (5000)\n"
            "  --retry-backoff-ms N    first retry delay, doubled per attempt (1000)\n"
            "  --max-active-jobs N     admission limit: queued + running jobs (10000)\n"
"  --fleet-listen HOST:PORT  the edge agents' fleet endpoint, HTTPS, apart from the API\n"
            "                          (port 0 picks one, written to DIR/kilnd.fleet-url)\n"
            "  --fleet-cert FILE       its PEM certificate (chain)\n"
            "  --fleet-key FILE        its PEM private key\n"
            "  --max-pending-http N    requests waiting for the loop before 429 (1024)\n"
            "  --target-tasks N        shards per splittable job (2 x the workers' cores)\n"
            "  --quota PROJECT=CORES   cap a project's running cores (repeatable)\n"
            "  --full-sync             SQLite synchronous=FULL: survive power loss, not only kill -9\n");
}

static int parse_int(const char *opt, const char *v, long long lo, long long hi, long long *out)
{
    char *end;
    errno = 0;
    long long x = v ? strtoll(v, &end, 10) : 0;
    if (!v || errno || *end || x < lo || x > hi) {
        fprintf(stderr, "kilnd: %s: expected an integer in %lld..%lld, got \"%s\"\n", opt, lo, hi,
                v ? v : "");
        return -1;
    }
    *out = x;
    return 0;
}

int main(int argc, char **argv)
{
    kd_opts_t o = {0};
    ks_quota_t quotas[MAX_QUOTAS];
    size_t n_quotas = 0;
    char host[256] = "127.0.0.1", fleet_host[256] = "";
    o.listen = "tcp://127.0.0.1:7879";
    o.http_port = 7878;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        long long x;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--full-sync")) {
            o.full_sync = 1;
            continue;
        }
        if (!v) {
            fprintf(stderr, "kilnd: %s needs a value (see --help)\n", a);
            return 2;
        }
        i++;
        if (!strcmp(a, "--dir")) {
            o.dir = v;
        } else if (!strcmp(a, "--listen")) {
            o.listen = v;
        } else if (!strcmp(a, "--http")) {
            const char *colon = strrchr(v, ':');
            if (!colon || (size_t)(colon - v) >= sizeof host ||
                parse_int("--http", colon + 1, 0, 65535, &x) < 0) {
                fprintf(stderr, "kilnd: --http: expected HOST:PORT, got \"%s\"\n", v);
                return 2;
            }
            memcpy(host, v, (size_t)(colon - v));
            host[colon - v] = '\0';
            o.http_port = (int)x;
        } else if (!strcmp(a, "--fleet-listen")) {
            const char *colon = strrchr(v, ':');
            if (!colon || colon == v || (size_t)(colon - v) >= sizeof fleet_host ||
                parse_int("--fleet-listen", colon + 1, 0, 65535, &x) < 0) {
                fprintf(stderr, "kilnd: --fleet-listen: expected HOST:PORT, got \"%s\"\n", v);
                return 2;
            }
            memcpy(fleet_host, v, (size_t)(colon - v));
            fleet_host[colon - v] = '\0';
            o.fleet_port = (int)x;
        } else if (!strcmp(a, "--fleet-cert")) {
            o.fleet_cert = v;
        } else if (!strcmp(a, "--fleet-key")) {
            o.fleet_key = v;
        } else if (!strcmp(a, "--lease-ms")) {
            if (parse_int(a, v, 100, 3600000, &x) < 0)
                return 2;
            o.sched.lease_ms = x;
        } else if (!strcmp(a, "--retry-backoff-ms")) {
            if (parse_int(a, v, 1, 3600000, &x) < 0)
                return 2;
            o.sched.retry_backoff_ms = x;
        } else if (!strcmp(a, "--max-active-jobs")) {
            if (parse_int(a, v, 1, 100000000, &x) < 0)
                return 2;
            o.sched.max_active_jobs = (size_t)x;
        } else if (!strcmp(a, "--max-pending-http")) {
            if (parse_int(a, v, 1, 1000000, &x) < 0)
                return 2;
            o.max_pending_http = (size_t)x;
        } else if (!strcmp(a, "--target-tasks")) {
            if (parse_int(a, v, 1, 100000, &x) < 0)
                return 2;
            o.sched.target_tasks = (size_t)x;
        } else if (!strcmp(a, "--quota")) {
            const char *eq = strchr(v, '=');
            if (!eq || eq == v || n_quotas == MAX_QUOTAS ||
                parse_int("--quota", eq + 1, 1, 1000000, &x) < 0) {
                fprintf(stderr, "kilnd: --quota: expected PROJECT=CORES, got \"%s\"\n", v);
                return 2;
            }
            char *p = kiln_malloc((size_t)(eq - v) + 1);
            if (!p)
                return 1;
            memcpy(p, v, (size_t)(eq - v));
            p[eq - v] = '\0';
            quotas[n_quotas++] = (ks_quota_t){p, (int)x};
        } else {
            fprintf(stderr, "kilnd: unknown option %s (see --help)\n", a);
            return 2;
        }
    }
    if (!o.dir) {
        fprintf(stderr, "kilnd: --dir is required (see --help)\n");
        return 2;
    }
    if (mkdir(o.dir, 0755) < 0 && errno != EEXIST) {
        fprintf(stderr, "kilnd: %s: %s\n", o.dir, strerror(errno));
        return 1;
    }
    o.http_host = host;
    o.fleet_host = fleet_host[0] ? fleet_host : NULL;
    if (!o.fleet_host && (o.fleet_cert || o.fleet_key)) {
        fprintf(stderr, "kilnd: --fleet-cert and --fleet-key need --fleet-listen\n");
        return 2;
    }
    o.sched.quotas = quotas;
    o.sched.n_quotas = n_quotas;
    kiln_err_t err = {0};
    int rc = kd_run(&o, &err);
    for (size_t i = 0; i < n_quotas; i++)
        kiln_free((void *)quotas[i].quota_project);
    if (rc < 0) {
        fprintf(stderr, "kilnd: %s\n", err.msg);
        return 1;
    }
    return 0;
}
