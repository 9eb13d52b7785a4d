/* metrics.h - kiln-worker's own /metrics (docs/metrics.md): tasks run by
 * job type and outcome, their run times, busy cores and GPUs, the GPU
 * devices and their memory, and the process, in Prometheus text format
 * (cluster/prom.h), served on `--metrics HOST:PORT` by api/httpd.h's server
 * on the worker's loop thread.  Off by default: with no --metrics every
 * function here is a no-op on a NULL handle. */
#ifndef KW_METRICS_H
#define KW_METRICS_H

#include <uv.h>

#include "../core/kiln_err.h"
#include "worker.h"

typedef struct kw_metrics kw_metrics_t;

/* Serves GET /metrics on opts->metrics_host:opts->metrics_port (port 0: a
 * free one) from `loop`, on its thread, and writes the full URL to
 * DIR/metrics.url (by rename) for `kiln local` and scripts.  KILN_EIO when
 * the address cannot be bound (the loop must then run once more). */
int  kw_metrics_start(uv_loop_t *loop, const kw_opts_t *opts, kw_metrics_t **out,
                      kiln_err_t *err);
/* The bound port (the one picked when opts->metrics_port was 0). */
int  kw_metrics_port(const kw_metrics_t *m);
/* A task of job type `type` ended after `seconds`: outcome "succeeded" or
 * the failure code (error, signal, out_of_memory, cancelled). */
void kw_metrics_task_ended(kw_metrics_t *m, const char *type, const char *outcome,
                           double seconds);
/* What running tasks hold now: their number, cores (sum of their
 * resources.cores) and which devices (gpu_busy[0..opts->gpus)). */
void kw_metrics_busy(kw_metrics_t *m, int tasks, int cores, const unsigned char *gpu_busy);
/* Stops the server (answering what waits with 503) and frees m; the loop
 * must run once more.  Sets *m to NULL; NULL is a no-op. */
void kw_metrics_stop(kw_metrics_t **m);

#endif
