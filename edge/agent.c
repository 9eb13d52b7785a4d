/* agent.c - kiln-edge's serving loop (agent.h): inputs in, results out,
 * /metrics, on one libuv loop thread.  This file: the model directory, one
 * window scored, reload and the agent's lifetime; the inputs are in
 * agent_streams.c (stdin, the unix socket) and agent_mqtt.c, the counters
 * and /metrics in agent_metrics.c (agent_int.h). */
#include "edge/agent_int.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/kiln_alloc.h"
#include "edge/store.h"

double ke_agent_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec * 1e-3;
}

/* ---- the model directory --------------------------------------------- */

static int is_file(const char *dir, const char *name)
{
    char p[4200];
    struct stat st;
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

int ke_modeldir_load(const char *dir, const ke_engine_opts_t *opts, ke_engine_t **out,
                     const char **which, char *why, size_t why_cap, kiln_err_t *err)
{
    char cur[4100], prev[4100];
    if (strlen(dir) > 4000)
        return kiln_err_set(err, KILN_EINVAL, "--model-dir: path over 4000 bytes");
    *out = NULL;
    if (why_cap)
        why[0] = 0;
    snprintf(cur, sizeof cur, "%s/current", dir);
    snprintf(prev, sizeof prev, "%s/previous", dir);
    if (!is_file(cur, "model.kmodel") && !is_file(prev, "model.kmodel")) {
        *which = "dir";
        return ke_engine_load(dir, opts, out, err);
    }
    *which = "current";
    int rc = ke_engine_load(cur, opts, out, err);
    if (rc == 0)
        return 0;
    snprintf(why, why_cap, "%s", err->msg);
    if (!is_file(prev, "model.kmodel"))
        return rc;
    *which = "previous";
    kiln_err_t perr;
    if (ke_engine_load(prev, opts, out, &perr) == 0)
        return 0;
    return kiln_err_set(err, rc, "%s; and %s", why, perr.msg);
}

/* ---- one window ---------------------------------------------------------- */

size_t ke_agent_score_window(ke_agent_t *a, const char *source, const ke_window_t *w,
                             double t_in)
{
    kiln_err_t err;
    ke_result_t r;
    if (!a->engine) {
        ke_agent_count_error(a, "no-model");
        fprintf(stderr, "kiln-edge: %s: no model yet (waiting for the first update)\n", source);
        return 0;
    }
    if (ke_engine_score(a->engine, w, &r, &err) < 0) {
        ke_agent_count_error(a, err.code == KILN_ESHAPE ? "shape" : "score");
        fprintf(stderr, "kiln-edge: %s: %s\n", source, err.msg);
        return 0;
    }
    double lat = ke_agent_now_us() - t_in;
    size_t n = ke_result_json(&r, ke_engine_info(a->engine), a->device, lat, a->o.with_features,
                              a->out, a->out_cap);
    a->c.scored++;
    ke_stats_observe(&a->stats, lat, r.features, r.n_features);
    a->c.latency_sum_us += lat;
    if (lat > a->c.latency_max_us)
        a->c.latency_max_us = lat;
    if (a->reg) {
        kp_observe(a->m_latency, (const char *[]){source}, lat * 1e-6, &err);
        kp_add(a->m_scored, (const char *[]){source}, 1, &err);
    }
    return n;
}

/* ---- lifetime -------------------------------------------------------------- */

static void close_walk(uv_handle_t *h, void *ud)
{
    ke_agent_t *a = ud;
    if (uv_is_closing(h))
        return;
    if ((h->type == UV_NAMED_PIPE || h->type == UV_TTY) && h->data != a) {
        if (h->data == a->in)
            a->in = NULL;
        uv_close(h, ke_agent_stream_closed);
        return;
    }
    uv_close(h, NULL);
}

static void agent_stop(ke_agent_t *a)
{
    ke_update_stop(a->upd);
    ka_httpd_stop(&a->httpd);
    if (a->mq_poll_up) {
        uv_poll_stop(&a->mq_poll);
        a->mq_poll_up = 0;
    }
    if (a->mosq && a->mq_connected) {
        mosquitto_disconnect(a->mosq);
        mosquitto_loop_write(a->mosq, 1);
    }
    uv_stop(&a->loop);
}

void ke_agent_maybe_stop(ke_agent_t *a)
{
    if (a->in_done && !a->o.mqtt_host && !a->o.socket_path)
        agent_stop(a);
}

static void on_signal(uv_signal_t *h, int sig)
{
    ke_agent_t *a = h->data;
    if (sig == SIGHUP) {
        kiln_err_t err;
        if (ke_agent_reload(a, &err) < 0)
            fprintf(stderr, "kiln-edge: reload: %s; still serving %s\n", err.msg, a->c.running);
        return;
    }
    agent_stop(a);
}

static void set_running(ke_agent_t *a, const char *which)
{
    const ke_model_info_t *i = ke_engine_info(a->engine);
    snprintf(a->c.running, sizeof a->c.running, "%s@%s (%s)", i->name, i->version, which);
}

int ke_agent_reload(ke_agent_t *a, kiln_err_t *err)
{
    ke_engine_t *e = NULL;
    const char *which;
    char why[800];
    a->c.reloads++;
    int rc = ke_modeldir_load(a->o.model_dir, &a->eopts, &e, &which, why, sizeof why, err);
    if (rc < 0) {
        a->c.reload_failures++;
        ke_agent_count_error(a, "reload");
        return rc;
    }
    size_t cap = ke_result_json_cap(ke_engine_info(e), a->device, a->o.with_features);
    if (cap > a->out_cap) {
        char *o = kiln_realloc(a->out, cap);
        if (!o) {
            ke_engine_free(&e);
            a->c.reload_failures++;
            return kiln_err_set(err, KILN_ENOMEM, "reload: out of memory");
        }
        a->out = o;
        a->out_cap = cap;
    }
    if (ke_stats_reset(&a->stats, ke_engine_info(e)->n_features, 0) < 0) {
        ke_engine_free(&e);
        a->c.reload_failures++;
        return kiln_err_set(err, KILN_ENOMEM, "reload: out of memory");
    }
    ke_engine_free(&a->engine);
    a->engine = e;
    a->which = which;
    snprintf(a->why, sizeof a->why, "%s", why);
    set_running(a, which);
    ke_agent_metrics_model(a);
    if (why[0])
        fprintf(stderr, "kiln-edge: current model failed (%s); serving previous\n", why);
    fprintf(stderr, "kiln-edge: serving %s\n", a->c.running);
    return 0;
}

uv_loop_t *ke_agent_loop(ke_agent_t *a) { return &a->loop; }
const ke_engine_t *ke_agent_engine(ke_agent_t *a) { return a->engine; }
ke_stats_t *ke_agent_stats(ke_agent_t *a) { return &a->stats; }

const ke_model_info_t *ke_agent_model(ke_agent_t *a, const char **which, const char **why)
{
    *which = a->engine ? a->which : "";
    *why = a->engine ? a->why : "";
    return a->engine ? ke_engine_info(a->engine) : NULL;
}

int ke_agent_run(const ke_agent_opts_t *opts, ke_counters_t *counters, kiln_err_t *err)
{
    ke_agent_t *a = kiln_calloc(1, sizeof *a);
    int rc;
    if (!a)
        return kiln_err_set(err, KILN_ENOMEM, "kiln-edge: out of memory");
    a->o = *opts;
    a->eopts.max_assets = opts->max_assets;
    snprintf(a->device, sizeof a->device, "%s", opts->device_id ? opts->device_id : "edge");
    if (!opts->device_id && opts->device_dir) {
        /* an enrolled device names itself by its id in results and topics */
        ke_device_t dev;
        if ((rc = ke_device_read(opts->device_dir, &dev, err)) < 0) {
            kiln_free(a);
            return rc;
        }
        snprintf(a->device, sizeof a->device, "%s", dev.device_id);
    }
    if ((rc = uv_loop_init(&a->loop)) < 0) {
        kiln_free(a);
        return kiln_err_set(err, KILN_EIO, "kiln-edge: uv_loop_init: %s", uv_strerror(rc));
    }
    if (opts->device_dir)
        a->o.model_dir = opts->device_dir;
    if ((rc = ke_agent_reload(a, err)) < 0) {
        /* An enrolled device may start before its first model arrives. */
        char cur[4200];
        struct stat st;
        snprintf(cur, sizeof cur, "%s/current", opts->device_dir ? opts->device_dir : "");
        if (!opts->device_dir || lstat(cur, &st) == 0)
            goto out;
        fprintf(stderr, "kiln-edge: no model yet; waiting for the first update\n");
        a->c.reload_failures = 0;
        a->c.errors = 0;    /* waiting for the first model is not an error */
        rc = 0;
    }
    a->c.reloads = 0;
    if (opts->metrics_host && (rc = ke_agent_metrics_start(a, err)) < 0)
        goto out;
    uv_signal_init(&a->loop, &a->sigint);
    uv_signal_init(&a->loop, &a->sigterm);
    uv_signal_init(&a->loop, &a->sighup);
    a->sigint.data = a->sigterm.data = a->sighup.data = a;
    uv_signal_start(&a->sigint, on_signal, SIGINT);
    uv_signal_start(&a->sigterm, on_signal, SIGTERM);
    uv_signal_start(&a->sighup, on_signal, SIGHUP);
    signal(SIGPIPE, SIG_IGN);
    if ((opts->socket_path && (rc = ke_agent_socket_start(a, err)) < 0) ||
        (opts->mqtt_host && (rc = ke_agent_mqtt_start(a, err)) < 0) ||
        (opts->use_stdin && (rc = ke_agent_stdin_start(a, err)) < 0))
        goto out;
    if (opts->device_dir) {
        ke_update_opts_t uo = {opts->device_dir, opts->poll_s, opts->report_s,
                               opts->force_unhealthy};
        if ((rc = ke_update_start(a, &uo, &a->upd, err)) < 0)
            goto out;
    }
    uv_run(&a->loop, UV_RUN_DEFAULT);
out:
    ke_update_stop(a->upd);
    ka_httpd_stop(&a->httpd);
    if (a->mosq && a->mq_connected) {
        mosquitto_disconnect(a->mosq);
        mosquitto_loop_write(a->mosq, 1);
    }
    if (a->server_up && opts->socket_path)
        unlink(opts->socket_path);
    uv_walk(&a->loop, close_walk, a);
    uv_run(&a->loop, UV_RUN_DEFAULT);
    uv_loop_close(&a->loop);
    if (a->mosq) {
        mosquitto_destroy(a->mosq);
        mosquitto_lib_cleanup();
    }
    if (a->in)
        ke_agent_stream_free(a->in);
    if (counters)
        *counters = a->c;
    ke_update_free(&a->upd);
    ke_stats_free(&a->stats);
    ke_engine_free(&a->engine);
    kp_registry_destroy(&a->reg);
    kiln_free(a->out);
    kiln_free(a->samples);
    kiln_free(a);
    return rc;
}
