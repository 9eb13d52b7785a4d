/* agent_metrics.c - what the agent counts (ke_counters_t, agent.h) and the
 * same figures as Prometheus families served on /metrics (cluster/prom.h,
 * api/httpd.h: each request is handed to the loop thread). */
#include "edge/agent_int.h"

#include <stdlib.h>
#include <string.h>

#include "core/kiln_alloc.h"

/* ---- metrics ----------------------------------------------------------- */

static const double latency_bounds[] = {10e-6, 20e-6, 50e-6, 100e-6, 150e-6, 200e-6, 300e-6,
                                        500e-6, 1e-3,  2e-3,  5e-3,   10e-3,  50e-3,  0.25};

void ke_agent_metrics_model(ke_agent_t *a)
{
    kiln_err_t err;
    if (!a->reg || !a->engine)
        return;
    const ke_model_info_t *i = ke_engine_info(a->engine);
    char *end;
    double v = strtod(i->version, &end);
    kp_clear(a->m_info);
    kp_set(a->m_info, (const char *[]){i->name, i->version, i->kind, i->model_sha256}, 1, &err);
    kp_set(a->m_version, NULL, *end ? 0 : v, &err);
}

static void on_http(void *ud, ka_req_t *req)
{
    ke_agent_t *a = ud;
    char *text;
    size_t len;
    kiln_err_t err;
    int status = kp_serve(a->reg, "kiln-edge", req->method, req->path, &text, &len, &err);
    if (status != 200) {
        ka_req_respond_error(req, status, NULL, "%s", err.msg);
        return;
    }
    ka_req_respond(req, 200, KP_CONTENT_TYPE, text, len);
    kiln_free(text);
}

int ke_agent_metrics_start(ke_agent_t *a, kiln_err_t *err)
{
    int rc;
    if ((rc = kp_registry_new(&a->reg, err)) < 0 ||
        (rc = kp_histogram(a->reg, "kiln_edge_inference_seconds",
                           "Window in to score out: featurize and score one window.", "source",
                           latency_bounds, sizeof latency_bounds / sizeof *latency_bounds,
                           &a->m_latency, err)) < 0 ||
        (rc = kp_counter(a->reg, "kiln_edge_windows_total", "Windows received, good or bad.",
                         "source", &a->m_windows, err)) < 0 ||
        (rc = kp_counter(a->reg, "kiln_edge_windows_scored_total", "Windows scored.", "source",
                         &a->m_scored, err)) < 0 ||
        (rc = kp_counter(a->reg, "kiln_edge_errors_total",
                         "Windows not scored: bad frames, wrong shapes, failed scores; and "
                         "failed reloads and publishes.", "reason", &a->m_errors, err)) < 0 ||
        (rc = kp_gauge(a->reg, "kiln_edge_model_info", "The model served; always 1.",
                       "name,version,kind,sha256", &a->m_info, err)) < 0 ||
        (rc = kp_gauge(a->reg, "kiln_edge_model_version",
                       "The served model's version (0 when not a number).", NULL, &a->m_version,
                       err)) < 0)
        return rc;
    ke_agent_metrics_model(a);
    ka_httpd_opts_t ho = {.host = a->o.metrics_host, .port = a->o.metrics_port,
                          .max_body = 4096, .max_pending = 64};
    if ((rc = ka_httpd_start(&a->loop, &ho, on_http, a, &a->httpd, err)) < 0)
        return rc;
    const int v6 = strchr(a->o.metrics_host, ':') != NULL;
    fprintf(stderr, "kiln-edge: metrics on http://%s%s%s:%d/metrics\n", v6 ? "[" : "",
            a->o.metrics_host, v6 ? "]" : "", ka_httpd_port(a->httpd));
    return 0;
}

void ke_agent_count_error(ke_agent_t *a, const char *reason)
{
    kiln_err_t err;
    a->c.errors++;
    if (a->reg)
        kp_add(a->m_errors, (const char *[]){reason}, 1, &err);
}

void ke_agent_count_in(ke_agent_t *a, const char *source)
{
    kiln_err_t err;
    a->c.windows_in++;
    if (!strcmp(source, "mqtt"))
        a->c.from_mqtt++;
    else if (!strcmp(source, "socket"))
        a->c.from_socket++;
    else
        a->c.from_stdin++;
    if (a->reg)
        kp_add(a->m_windows, (const char *[]){source}, 1, &err);
}
