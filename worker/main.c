/* main.c - kiln-worker's command line: option parsing, then the loop
 * (worker.h), or one task in this process with `--run-task FILE`, or one
 * rank of a data-parallel train job under mpirun with `--train-ranks`. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "worker/gang.h"
#include "worker/ranks.h"
#include "worker/runtask.h"
#include "worker/worker.h"

static void usage(FILE *f)
{
    fputs("usage: kiln-worker --connect ENDPOINT [--id ID] [--cores N] [--memory-mb M]\n"
          "                   [--gpus G] [--dir D] [--heartbeat-ms MS] [--exe PATH]\n"
          "                   [--metrics HOST:PORT]\n"
          "       kiln-worker --run-task FILE\n"
          "       mpirun -np R kiln-worker --train-ranks SPEC.json [--output OUT.kmodel]\n"
          "       kiln-worker --mpi-agent HOST COMMAND...  (mpirun's launch agent in a gang)\n"
          "  --connect       kilnd's worker endpoint, e.g. tcp://127.0.0.1:7879\n"
          "  --id            worker id (default: hostname-pid)\n"
          "  --cores         cores offered (default: online CPUs)\n"
          "  --memory-mb     memory offered in MiB (default: MemTotal)\n"
          "  --gpus          GPUs offered: auto (default: the CUDA devices found) or N;\n"
          "                  a task of a job with resources.gpus gets one of them\n"
          "  --dir           scratch directory for task files and logs\n"
          "                  (default: $TMPDIR/kiln-worker-ID, created)\n"
          "  --heartbeat-ms  heartbeat period (default: 500)\n"
          "  --exe           program run as `PATH --run-task FILE` (default: this one)\n"
          "  --metrics       serve Prometheus /metrics on HOST:PORT (numeric address,\n"
          "                  e.g. 127.0.0.1:9101; port 0 picks one; the URL goes to\n"
          "                  DIR/metrics.url); default: off\n"
          "  --train-ranks   one rank of the train job SPEC.json, data-parallel over\n"
          "                  the R ranks mpirun starts (R must be the spec's\n"
          "                  resources.ranks): each rank trains on every R-th training\n"
          "                  row, sums go through MPI allreduce, rank 0 writes the model\n"
          "                  file (--output, default: the spec's \"output\").  As root:\n"
          "                  OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1;\n"
          "                  on one machine: OMPI_MCA_btl=self,vader\n",
          f);
}

static int parse_int(const char *opt, const char *text, long long lo, long long hi,
                     long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (errno || end == text || *end || v < lo || v > hi) {
        fprintf(stderr, "kiln-worker: %s: expected an integer in %lld..%lld, got \"%s\"\n", opt,
                lo, hi, text);
        return -1;
    }
    *out = v;
    return 0;
}

static int copy_str(const char *opt, const char *text, char *dst, size_t cap)
{
    size_t n = strlen(text);
    if (n == 0 || n >= cap) {
        fprintf(stderr, "kiln-worker: %s: must be 1..%zu characters\n", opt, cap - 1);
        return -1;
    }
    memcpy(dst, text, n + 1);
    return 0;
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
    long long v;
    if (!colon || n == 0 || n >= cap) {
        fprintf(stderr, "kiln-worker: %s: expected HOST:PORT (e.g. 127.0.0.1:9101), got \"%s\"\n",
                opt, text);
        return -1;
    }
    if (parse_int(opt, colon + 1, 0, 65535, &v) < 0)
        return -1;
    memcpy(host, h, n);
    host[n] = '\0';
    *port = (int)v;
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 3 && !strcmp(argv[1], "--run-task"))
        return kw_run_task_main(argv[2]);
    if (argc >= 2 && !strcmp(argv[1], "--mpi-agent"))
        return kw_mpi_agent_main(argc, argv);
    if (argc >= 2 && !strcmp(argv[1], "--train-ranks")) {
        const char *spec = argc >= 3 ? argv[2] : NULL, *output = NULL;
        if (argc == 5 && !strcmp(argv[3], "--output") && argv[4][0])
            output = argv[4];
        if (!spec || !spec[0] || (argc != 3 && !output)) {
            fprintf(stderr, "kiln-worker: --train-ranks SPEC.json [--output OUT.kmodel]\n");
            usage(stderr);
            return 2;
        }
        return kw_train_ranks_main(&argc, &argv, spec, output);
    }

    kw_opts_t opts;
    memset(&opts, 0, sizeof opts);
    opts.gpus = KW_GPUS_AUTO;
    for (int i = 1; i < argc; i++) {
        const char *opt = argv[i];
        if (!strcmp(opt, "--help") || !strcmp(opt, "-h")) {
            usage(stdout);
            return 0;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "kiln-worker: %s: unknown option or missing value\n", opt);
            usage(stderr);
            return 2;
        }
        const char *val = argv[++i];
        long long v = 0;
        int rc;
        if (!strcmp(opt, "--connect"))
            rc = copy_str(opt, val, opts.connect, sizeof opts.connect);
        else if (!strcmp(opt, "--id"))
            rc = copy_str(opt, val, opts.id, sizeof opts.id);
        else if (!strcmp(opt, "--dir"))
            rc = copy_str(opt, val, opts.dir, sizeof opts.dir);
        else if (!strcmp(opt, "--exe"))
            rc = copy_str(opt, val, opts.exe, sizeof opts.exe);
        else if (!strcmp(opt, "--metrics"))
            rc = parse_host_port(opt, val, opts.metrics_host, sizeof opts.metrics_host,
                                 &opts.metrics_port);
        else if (!strcmp(opt, "--cores")) {
            rc = parse_int(opt, val, 1, 1 << 20, &v);
            opts.cores = (int)v;
        } else if (!strcmp(opt, "--memory-mb")) {
            rc = parse_int(opt, val, 1, (long long)1 << 40, &v);
            opts.memory_mb = v;
        } else if (!strcmp(opt, "--gpus")) {
            rc = strcmp(val, "auto") ? parse_int(opt, val, 0, KW_GPUS_MAX, &v) : 0;
            opts.gpus = strcmp(val, "auto") ? (int)v : KW_GPUS_AUTO;
        } else if (!strcmp(opt, "--heartbeat-ms")) {
            rc = parse_int(opt, val, 1, 3600000, &v);
            opts.heartbeat_ms = (int)v;
        } else {
            fprintf(stderr, "kiln-worker: %s: unknown option\n", opt);
            usage(stderr);
            return 2;
        }
        if (rc < 0)
            return 2;
    }
    kiln_err_t err;
    if (kw_opts_finish(&opts, &err) < 0 || kw_worker_run(&opts, &err) < 0) {
        fprintf(stderr, "kiln-worker: error: %s\n", err.msg);
        return 1;
    }
    return 0;
}
