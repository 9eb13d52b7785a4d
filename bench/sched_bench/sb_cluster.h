/* sb_cluster.h - the cluster sched_bench measures: one kilnd with a fresh
 * state directory and SB_N_WORKERS kiln-worker on this machine, and the
 * jobs submitted and polled through its HTTP API (bench/README.md,
 * "Scheduler"). */
#ifndef KILN_BENCH_SB_CLUSTER_H
#define KILN_BENCH_SB_CLUSTER_H

#include <jansson.h>
#include <stdint.h>

#include "bench/sched_bench/sb_proc.h"

#define SB_N_WORKERS 4

typedef struct {
    char      dir[1024];
    char      url[512];
    char      zmq[512];
    sb_proc_t procs[1 + SB_N_WORKERS];   /* [0] kilnd, then the workers */
    size_t    n_procs;
    char      version[64];
} sb_cluster_t;

/* Starts kilnd in a mkdtemp directory, waits for kilnd.url/kilnd.zmq,
 * starts the workers with `cores` slots each and waits until /v1/health
 * counts them all; -1 with a message (and the logs' tails) otherwise.
 * The caller calls sb_cluster_stop either way. */
int sb_cluster_start(sb_cluster_t *c, const char *bin_dir, int cores);
/* Workers first, then kilnd; the directory removed. */
void sb_cluster_stop(sb_cluster_t *c);
/* 1 (with a message and the log's tail) when a process of c has exited. */
int sb_kilnd_dead(sb_cluster_t *c, const char *while_doing);

/* Submits spec; *id = the job's id. */
int sb_submit(sb_cluster_t *c, const char *spec, int64_t *id);
/* Polls GET /v1/jobs/ID every poll_ms until the job ended (or, with
 * until_started, until started_ns != 0); the job's final answer in *out
 * (caller decrefs).  -1 when it ended in any state but succeeded, or after
 * timeout_s. */
int sb_wait_job(sb_cluster_t *c, int64_t id, double poll_ms, double timeout_s, int until_started,
                json_t **out);
/* o[key] as an integer, 0 when absent or not one. */
int64_t sb_jint(const json_t *o, const char *key);

#endif
