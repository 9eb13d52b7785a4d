/* worker.h - kiln-worker's loop and its side of the protocol
 * (docs/cluster.md): a DEALER to kilnd joined to a libuv loop through
 * ZMQ_FD, hello and heartbeats, tasks run in-process or in children,
 * cancel, and a clean stop on SIGINT/SIGTERM. */
#ifndef KW_WORKER_H
#define KW_WORKER_H

#include <stdint.h>

#include "../cluster/frames.h"
#include "../core/kiln_err.h"

#define KW_PATH_MAX            1024
#define KW_GPUS_MAX            64
#define KW_HEARTBEAT_MS_DEFAULT 500

typedef struct {
    char    connect[KW_PATH_MAX];            /* required: kilnd's ROUTER endpoint */
    char    id[KC_ROUTING_ID_MAX + 1];       /* "" = hostname-pid */
    int     cores;                           /* 0 = online CPUs */
    int64_t memory_mb;                       /* 0 = MemTotal */
    int     gpus;                            /* KW_GPUS_AUTO = the CUDA devices found */
    char    gpu_names[KW_GPUS_MAX][96];      /* filled by kw_opts_finish when found */
    int64_t gpu_memory_mb[KW_GPUS_MAX];
    char    dir[KW_PATH_MAX];                /* "" = $TMPDIR (or /tmp)/kiln-worker-<id> */
    int     heartbeat_ms;                    /* 0 = KW_HEARTBEAT_MS_DEFAULT */
    char    exe[KW_PATH_MAX];                /* what runs `--run-task`; "" = /proc/self/exe */
    char    metrics_host[64];                /* --metrics HOST:PORT: numeric address of
                                              * /metrics (metrics.h); "" = none */
    int     metrics_port;                    /* 0 = a free port, written to DIR/metrics.url */
} kw_opts_t;

#define KW_GPUS_AUTO (-1)

/* Fills the defaults of the fields left at zero (gpus KW_GPUS_AUTO: the
 * CUDA devices this machine has, with their names and memory; 0 where the
 * build or the machine has none) and creates dir (one level, as mkdir
 * does).  Errors name the option. */
int kw_opts_finish(kw_opts_t *opts, kiln_err_t *err);

/* Runs the worker until SIGINT or SIGTERM, then stops its children and
 * returns 0; negative when it cannot start (socket, loop). */
int kw_worker_run(const kw_opts_t *opts, kiln_err_t *err);

#endif
