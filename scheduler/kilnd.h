/* kilnd.h - the scheduler daemon: a libuv loop around the scheduler
 * (sched.h), with the workers' ZeroMQ ROUTER, the HTTP API (api/httpd.h),
 * a 100 ms timer, and one SQLite transaction per loop turn that commits
 * before anything that depends on it leaves the process (a task message, an
 * HTTP answer). */
#ifndef KILN_SCHEDULER_KILND_H
#define KILN_SCHEDULER_KILND_H

#include "core/kiln_err.h"
#include "sched.h"

typedef struct {
    const char *dir;          /* state.db, tasks/, logs/, kilnd.url, kilnd.zmq */
    const char *listen;       /* ZeroMQ endpoint for workers; "tcp://127.0.0.1:*" picks a port */
    const char *http_host;    /* default 127.0.0.1 */
    int         http_port;    /* 0: a free port */
    int         full_sync;    /* SQLite synchronous=FULL (survives power loss) */
    size_t      max_pending_http;
    /* The fleet endpoint for edge agents (docs/edge.md): a second listener,
     * HTTPS only, apart from the admin API.  fleet_host NULL: none. */
    const char *fleet_host;
    int         fleet_port;   /* 0: a free port (written to DIR/kilnd.fleet-url) */
    const char *fleet_cert;   /* PEM certificate (chain) file */
    const char *fleet_key;    /* PEM private key file */
    ks_opts_t   sched;        /* dir is filled in from `dir` */
} kd_opts_t;

/* Runs until SIGINT or SIGTERM; returns 0 after a clean stop. */
int kd_run(const kd_opts_t *opts, kiln_err_t *err);

#endif
