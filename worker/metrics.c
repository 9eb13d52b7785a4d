/* metrics.c - kiln-worker's /metrics (metrics.h).  The counters and the
 * histogram grow as tasks end; the gauges are set when running tasks
 * change; the process_* families are read at each scrape.
 *
 * Layering: the HTTP server is api/httpd.c, one layer sideways (api/ and
 * worker/ are both layer 5 in DESIGN.md).  It depends only on core/,
 * libmicrohttpd and libuv, and kilnd's API uses the very same one; moving
 * it down into cluster/ is the clean fix, left for when nobody else has
 * api/httpd.c open. */
#include "metrics.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "../api/httpd.h"
#include "../cluster/prom.h"
#include "../core/kiln_alloc.h"

struct kw_metrics {
    kp_registry_t *reg;
    ka_httpd_t    *httpd;
    int            gpus;
    char           gpu_ids[KW_GPUS_MAX][8];
    kp_family_t *tasks_total, *task_seconds, *running, *cores, *gpus_state, *gpu_busy, *info,
        *gpu_memory;
    int            offered_cores;
};

/* The same buckets as kilnd's kiln_task_duration_seconds. */
static const double task_bounds[] = {0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600,
                                     14400};

static int families(kw_metrics_t *m, const kw_opts_t *o, kiln_err_t *err)
{
    int rc;
    if ((rc = kp_registry_new(&m->reg, err)) < 0 ||
        (rc = kp_gauge(m->reg, "kiln_worker_info", "This worker; always 1.", "worker,host",
                       &m->info, err)) < 0 ||
        (rc = kp_counter(m->reg, "kiln_worker_tasks_total", "Tasks this worker ran, by job type "
                         "and outcome (succeeded, error, signal, out_of_memory, cancelled).",
                         "type,outcome", &m->tasks_total, err)) < 0 ||
        (rc = kp_histogram(m->reg, "kiln_worker_task_duration_seconds", "Run time of each task "
                           "this worker ran, by job type.", "type", task_bounds,
                           sizeof task_bounds / sizeof task_bounds[0], &m->task_seconds,
                           err)) < 0 ||
        (rc = kp_gauge(m->reg, "kiln_worker_tasks_running", "Tasks running now.", NULL,
                       &m->running, err)) < 0 ||
        (rc = kp_gauge(m->reg, "kiln_worker_cores", "Cores this worker offers, by state (busy: "
                       "the resources.cores of running tasks; free).", "state", &m->cores,
                       err)) < 0)
        return rc;
    char host[256] = "";
    if (gethostname(host, sizeof host) != 0)
        host[0] = '\0';
    host[sizeof host - 1] = '\0';
    if ((rc = kp_set(m->info, (const char *[]){o->id, host}, 1, err)) < 0)
        return rc;
    if (o->gpus <= 0)
        return 0;
    if ((rc = kp_gauge(m->reg, "kiln_worker_gpus", "GPUs this worker offers, by state (busy, "
                       "free).", "state", &m->gpus_state, err)) < 0 ||
        (rc = kp_gauge(m->reg, "kiln_worker_gpu_busy", "1 while a task holds the device.",
                       "gpu", &m->gpu_busy, err)) < 0 ||
        (rc = kp_gauge(m->reg, "kiln_worker_gpu_memory_bytes", "Memory of each CUDA device, as "
                       "the driver reported it at start.", "gpu,name", &m->gpu_memory,
                       err)) < 0)
        return rc;
    for (int d = 0; d < o->gpus && d < KW_GPUS_MAX; d++) {
        snprintf(m->gpu_ids[d], sizeof m->gpu_ids[d], "%d", d);
        if (o->gpu_memory_mb[d] > 0 &&
            (rc = kp_set(m->gpu_memory, (const char *[]){m->gpu_ids[d], o->gpu_names[d]},
                         (double)o->gpu_memory_mb[d] * 1048576.0, err)) < 0)
            return rc;
    }
    return 0;
}

static void on_http(void *ud, ka_req_t *req)
{
    kw_metrics_t *m = ud;
    char *text;
    size_t len;
    kiln_err_t err;
    int status = kp_serve(m->reg, "a worker", req->method, req->path, &text, &len, &err);
    if (status != 200) {
        ka_req_respond_error(req, status, NULL, "%s", err.msg);
        return;
    }
    ka_req_respond(req, 200, KP_CONTENT_TYPE, text, len);
    kiln_free(text);
}

static int write_url(const kw_opts_t *o, int port, kiln_err_t *err)
{
    char path[KW_PATH_MAX + 32], tmp[KW_PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/metrics.url", o->dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    const int v6 = strchr(o->metrics_host, ':') != NULL;
    FILE *f = fopen(tmp, "w");
    if (!f || fprintf(f, "http://%s%s%s:%d/metrics\n", v6 ? "[" : "", o->metrics_host,
                      v6 ? "]" : "", port) < 0 || fclose(f) != 0 || rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return kiln_err_set(err, KILN_EIO, "%s: %s", path, strerror(e));
    }
    return 0;
}

int kw_metrics_start(uv_loop_t *loop, const kw_opts_t *o, kw_metrics_t **out, kiln_err_t *err)
{
    *out = NULL;
    kw_metrics_t *m = kiln_calloc(1, sizeof *m);
    if (!m)
        return kiln_err_set(err, KILN_ENOMEM, "--metrics: out of memory");
    m->gpus = o->gpus < KW_GPUS_MAX ? o->gpus : KW_GPUS_MAX;
    m->offered_cores = o->cores;
    int rc = families(m, o, err);
    if (rc == 0) {
        unsigned char idle[KW_GPUS_MAX] = {0};
        kw_metrics_busy(m, 0, 0, idle);
        ka_httpd_opts_t ho = {.host = o->metrics_host, .port = o->metrics_port, .max_body = 4096,
                              .max_pending = 64};
        rc = ka_httpd_start(loop, &ho, on_http, m, &m->httpd, err);
    }
    if (rc == 0)
        rc = write_url(o, ka_httpd_port(m->httpd), err);
    if (rc < 0) {
        kw_metrics_stop(&m);
        return rc;
    }
    *out = m;
    return 0;
}

int kw_metrics_port(const kw_metrics_t *m)
{
    return m && m->httpd ? ka_httpd_port(m->httpd) : 0;
}

void kw_metrics_task_ended(kw_metrics_t *m, const char *type, const char *outcome,
                           double seconds)
{
    kiln_err_t err;
    if (!m)
        return;
    const char *t = type && type[0] ? type : "unknown";
    kp_add(m->tasks_total, (const char *[]){t, outcome}, 1, &err);
    kp_observe(m->task_seconds, (const char *[]){t}, seconds < 0 ? 0 : seconds, &err);
}

void kw_metrics_busy(kw_metrics_t *m, int tasks, int cores, const unsigned char *gpu_busy)
{
    kiln_err_t err;
    if (!m)
        return;
    kp_set(m->running, NULL, tasks, &err);
    kp_set(m->cores, (const char *[]){"busy"}, cores, &err);
    /* Tasks may ask for more cores than offered; free never goes below 0. */
    kp_set(m->cores, (const char *[]){"free"}, cores < m->offered_cores
                                                   ? m->offered_cores - cores : 0, &err);
    if (m->gpus <= 0)
        return;
    int busy = 0;
    for (int d = 0; d < m->gpus; d++) {
        busy += gpu_busy[d] != 0;
        kp_set(m->gpu_busy, (const char *[]){m->gpu_ids[d]}, gpu_busy[d] != 0, &err);
    }
    kp_set(m->gpus_state, (const char *[]){"busy"}, busy, &err);
    kp_set(m->gpus_state, (const char *[]){"free"}, m->gpus - busy, &err);
}

void kw_metrics_stop(kw_metrics_t **mp)
{
    if (!mp || !*mp)
        return;
    kw_metrics_t *m = *mp;
    ka_httpd_stop(&m->httpd);
    kp_registry_destroy(&m->reg);
    kiln_free(m);
    *mp = NULL;
}
