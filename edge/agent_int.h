/* agent_int.h - what the agent's files (edge/agent*.c) share and nothing
 * else may use: the agent itself, owned by its loop thread, and the pieces
 * each file offers the others.  agent.c: lifetime, reload, scoring one
 * window; agent_metrics.c: counting and /metrics; agent_streams.c: stdin and
 * the unix socket; agent_mqtt.c: MQTT. */
#ifndef KE_AGENT_INT_H
#define KE_AGENT_INT_H

#include <mosquitto.h>
#include <uv.h>

#include "api/httpd.h"
#include "cluster/prom.h"
#include "edge/agent.h"
#include "edge/frame.h"
#include "edge/update.h"

/* A byte stream windows arrive on (agent_streams.c). */
typedef struct ke_stream ke_stream_t;

struct ke_agent {
    ke_agent_opts_t  o;
    uv_loop_t        loop;
    ke_engine_t     *engine;
    ke_engine_opts_t eopts;
    char             device[KE_DEVICE_MAX];
    ke_counters_t    c;
    char            *out;        /* a result line */
    size_t           out_cap;
    float           *samples;    /* a decoded window */
    size_t           samples_cap;

    /* stdin */
    ke_stream_t     *in;
    uv_idle_t        in_idle;    /* a regular file: read a chunk per loop turn */
    int              in_file, in_done;

    /* unix socket */
    uv_pipe_t        server;
    int              server_up;
    int              n_conns;

    /* MQTT */
    struct mosquitto *mosq;
    uv_poll_t         mq_poll;
    uv_timer_t        mq_timer;
    int               mq_poll_up, mq_connected, mq_tried;
    char              topic_in[KE_DEVICE_MAX + 32], topic_out[KE_DEVICE_MAX + 32];

    /* signals, metrics */
    uv_signal_t       sigint, sigterm, sighup;
    kp_registry_t    *reg;
    ka_httpd_t       *httpd;
    kp_family_t      *m_latency, *m_scored, *m_errors, *m_info, *m_version, *m_windows;

    /* the update path (edge/update.h) and what its reports carry */
    ke_update_t      *upd;
    ke_stats_t        stats;
    const char       *which;
    char              why[800];
};

/* ---- agent.c ------------------------------------------------------------- */

/* CLOCK_MONOTONIC in microseconds. */
double ke_agent_now_us(void);
/* Scores w (arrived at t_in) and writes its result line into a->out;
 * returns the line's length, 0 on an error (counted and told on stderr). */
size_t ke_agent_score_window(ke_agent_t *a, const char *source, const ke_window_t *w,
                             double t_in);
/* Stops the loop once stdin has ended and it was the only input. */
void ke_agent_maybe_stop(ke_agent_t *a);

/* ---- agent_metrics.c ------------------------------------------------------- */

/* The /metrics families and server (a->reg: NULL without --metrics). */
int  ke_agent_metrics_start(ke_agent_t *a, kiln_err_t *err);
/* The served model's info and version gauges, after a (re)load. */
void ke_agent_metrics_model(ke_agent_t *a);
/* A window received from source ("stdin", "socket", "mqtt"). */
void ke_agent_count_in(ke_agent_t *a, const char *source);
/* A window not scored, or a failed reload or publish, by reason. */
void ke_agent_count_error(ke_agent_t *a, const char *reason);

/* ---- agent_streams.c ------------------------------------------------------- */

int  ke_agent_stdin_start(ke_agent_t *a, kiln_err_t *err);
int  ke_agent_socket_start(ke_agent_t *a, kiln_err_t *err);
/* uv_close's callback for a stream's handle: frees the stream (h->data). */
void ke_agent_stream_closed(uv_handle_t *h);
void ke_agent_stream_free(ke_stream_t *s);

/* ---- agent_mqtt.c ---------------------------------------------------------- */

int  ke_agent_mqtt_start(ke_agent_t *a, kiln_err_t *err);

#endif
