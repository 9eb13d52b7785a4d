/* agent.c - kiln-edge's serving loop (agent.h): inputs in, results out,
 * /metrics, on one libuv loop thread.  MQTT joins the loop as libmosquitto
 * documents for external loops: a uv_poll_t on mosquitto_socket(), then
 * mosquitto_loop_read/write/misc, and a timer that reconnects after a cut
 * (the agent keeps serving its other inputs meanwhile). */
#include "edge/agent.h"

#include <errno.h>
#include <mosquitto.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "api/httpd.h"
#include "cluster/prom.h"
#include "core/kiln_alloc.h"
#include "edge/frame.h"
#include "edge/store.h"
#include "edge/update.h"

#define KE_READ_CHUNK  ((size_t)256 << 10)
#define KE_MAX_CONNS   64

typedef struct ke_stream ke_stream_t;

struct ke_stream {
    ke_agent_t    *agent;
    const char    *source;      /* "stdin", "socket" */
    uv_stream_t   *handle;      /* NULL for stdin read by the idle reader */
    union {
        uv_pipe_t pipe;
        uv_tty_t  tty;
    } h;
    unsigned char *buf;
    size_t         len, cap;
    int            dead;        /* a frame could not be parsed: the rest is not read */
};

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

static double now_us(void)
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

/* ---- metrics ----------------------------------------------------------- */

static const double latency_bounds[] = {10e-6, 20e-6, 50e-6, 100e-6, 150e-6, 200e-6, 300e-6,
                                        500e-6, 1e-3,  2e-3,  5e-3,   10e-3,  50e-3,  0.25};

static void metrics_model(ke_agent_t *a)
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

static int metrics_start(ke_agent_t *a, kiln_err_t *err)
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
    metrics_model(a);
    ka_httpd_opts_t ho = {.host = a->o.metrics_host, .port = a->o.metrics_port,
                          .max_body = 4096, .max_pending = 64};
    if ((rc = ka_httpd_start(&a->loop, &ho, on_http, a, &a->httpd, err)) < 0)
        return rc;
    const int v6 = strchr(a->o.metrics_host, ':') != NULL;
    fprintf(stderr, "kiln-edge: metrics on http://%s%s%s:%d/metrics\n", v6 ? "[" : "",
            a->o.metrics_host, v6 ? "]" : "", ka_httpd_port(a->httpd));
    return 0;
}

static void count_error(ke_agent_t *a, const char *reason)
{
    kiln_err_t err;
    a->c.errors++;
    if (a->reg)
        kp_add(a->m_errors, (const char *[]){reason}, 1, &err);
}

/* ---- one window ---------------------------------------------------------- */

/* Scores w (arrived at t_in) and writes its result line into a->out;
 * returns the line's length, 0 on an error (counted and told on stderr). */
static size_t score_window(ke_agent_t *a, const char *source, const ke_window_t *w, double t_in)
{
    kiln_err_t err;
    ke_result_t r;
    if (!a->engine) {
        count_error(a, "no-model");
        fprintf(stderr, "kiln-edge: %s: no model yet (waiting for the first update)\n", source);
        return 0;
    }
    if (ke_engine_score(a->engine, w, &r, &err) < 0) {
        count_error(a, err.code == KILN_ESHAPE ? "shape" : "score");
        fprintf(stderr, "kiln-edge: %s: %s\n", source, err.msg);
        return 0;
    }
    double lat = now_us() - t_in;
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

static void count_in(ke_agent_t *a, const char *source)
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

/* ---- streams: stdin and socket connections --------------------------------- */

static void emit(ke_stream_t *s, const char *line, size_t n);

/* Consumes every whole frame or line at the front of s->buf. */
static void stream_drain(ke_stream_t *s)
{
    ke_agent_t *a = s->agent;
    size_t off = 0;
    kiln_err_t err;
    while (!s->dead && off < s->len) {
        unsigned char *p = s->buf + off;
        size_t avail = s->len - off;
        if (*p == '\n' || *p == '\r' || *p == ' ' || *p == '\t') {
            off++;
            continue;
        }
        double t_in = now_us();
        ke_window_t w;
        if (*p == '{') {
            unsigned char *nl = memchr(p, '\n', avail);
            if (!nl) {
                if (avail > KE_JSON_LINE_MAX) {
                    count_in(a, s->source);
                    count_error(a, "frame");
                    fprintf(stderr, "kiln-edge: %s: a JSON line over %zu bytes\n", s->source,
                            KE_JSON_LINE_MAX);
                    s->dead = 1;
                }
                break;
            }
            count_in(a, s->source);
            if (!a->engine) {
                count_error(a, "no-model");
                fprintf(stderr, "kiln-edge: %s: no model yet\n", s->source);
            } else if (ke_frame_parse_json((const char *)p, (size_t)(nl - p),
                                           ke_engine_info(a->engine), &w, &a->samples,
                                           &a->samples_cap, &err) < 0) {
                count_error(a, "frame");
                fprintf(stderr, "kiln-edge: %s: %s\n", s->source, err.msg);
            } else {
                size_t n = score_window(a, s->source, &w, t_in);
                if (n)
                    emit(s, a->out, n);
            }
            off += (size_t)(nl - p) + 1;
            continue;
        }
        if (avail < KE_FRAME_HEADER_BYTES)
            break;
        ke_frame_hdr_t h;
        if (ke_frame_parse_header(p, avail, &h, &err) < 0) {
            count_in(a, s->source);
            count_error(a, "frame");
            fprintf(stderr, "kiln-edge: %s: %s; the rest of this stream is not read\n", s->source,
                    err.msg);
            s->dead = 1;
            break;
        }
        if (avail < h.frame_bytes)
            break;
        count_in(a, s->source);
        size_t need = h.n_channels * h.window_len;
        if (need > a->samples_cap) {
            float *f = kiln_realloc(a->samples, need * sizeof *f);
            if (!f) {
                count_error(a, "memory");
                off += h.frame_bytes;
                continue;
            }
            a->samples = f;
            a->samples_cap = need;
        }
        ke_frame_samples(p, &h, a->samples);
        w = (ke_window_t){h.asset, h.timestamp_ns, h.sample_rate_hz, h.n_channels, h.window_len,
                          a->samples};
        size_t n = score_window(a, s->source, &w, t_in);
        if (n)
            emit(s, a->out, n);
        off += h.frame_bytes;
    }
    if (off) {
        memmove(s->buf, s->buf + off, s->len - off);
        s->len -= off;
    }
}

/* Room for KE_READ_CHUNK more bytes (up to a whole frame and a chunk). */
static int stream_reserve(ke_stream_t *s)
{
    if (s->cap - s->len >= KE_READ_CHUNK)
        return 0;
    size_t cap = s->cap ? s->cap * 2 : 2 * KE_READ_CHUNK;
    while (cap - s->len < KE_READ_CHUNK)
        cap *= 2;
    if (cap > KE_FRAME_MAX_BYTES + 2 * KE_READ_CHUNK)
        return -1;
    unsigned char *b = kiln_realloc(s->buf, cap);
    if (!b)
        return -1;
    s->buf = b;
    s->cap = cap;
    return 0;
}

static void stream_free(ke_stream_t *s)
{
    kiln_free(s->buf);
    kiln_free(s);
}

static void on_stream_closed(uv_handle_t *h) { stream_free(h->data); }

static void maybe_stop(ke_agent_t *a);

static void stream_end(ke_stream_t *s)
{
    ke_agent_t *a = s->agent;
    if (s == a->in) {
        a->in_done = 1;
        a->in = NULL;
        if (a->in_file) {
            uv_idle_stop(&a->in_idle);
            stream_free(s);
        } else {
            uv_close((uv_handle_t *)s->handle, on_stream_closed);
        }
        maybe_stop(a);
        return;
    }
    a->n_conns--;
    uv_close((uv_handle_t *)s->handle, on_stream_closed);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    ke_stream_t *s = h->data;
    (void)hint;
    if (stream_reserve(s) < 0) {
        *buf = uv_buf_init(NULL, 0);
        return;
    }
    *buf = uv_buf_init((char *)s->buf + s->len, (unsigned)(s->cap - s->len));
}

static void on_read(uv_stream_t *h, ssize_t nread, const uv_buf_t *buf)
{
    ke_stream_t *s = h->data;
    (void)buf;
    if (nread > 0) {
        s->len += (size_t)nread;
        stream_drain(s);
        if (s->dead) {
            uv_read_stop(h);
            stream_end(s);
        }
        return;
    }
    if (nread == UV_ENOBUFS) {
        count_error(s->agent, "frame");
        fprintf(stderr, "kiln-edge: %s: a frame over %zu bytes\n", s->source, KE_FRAME_MAX_BYTES);
    }
    if (nread < 0) {
        if (s->len && !s->dead) {
            count_error(s->agent, "frame");
            fprintf(stderr, "kiln-edge: %s: %zu bytes of an unfinished window at the end\n",
                    s->source, s->len);
        }
        uv_read_stop(h);
        stream_end(s);
    }
}

static void on_written(uv_write_t *req, int status)
{
    (void)status;
    kiln_free(req);
}

/* A result line to where its window came from: stdout, or the connection. */
static void emit(ke_stream_t *s, const char *line, size_t n)
{
    if (s == s->agent->in) {
        fwrite(line, 1, n, stdout);
        fflush(stdout);
        return;
    }
    uv_buf_t b = uv_buf_init((char *)line, (unsigned)n);
    int w = uv_try_write(s->handle, &b, 1);
    if (w == (int)n)
        return;
    size_t done = w > 0 ? (size_t)w : 0;
    uv_write_t *req = kiln_malloc(sizeof *req + n - done);
    if (!req) {
        count_error(s->agent, "write");
        return;
    }
    memcpy(req + 1, line + done, n - done);
    b = uv_buf_init((char *)(req + 1), (unsigned)(n - done));
    if (uv_write(req, s->handle, &b, 1, on_written) < 0) {
        kiln_free(req);
        count_error(s->agent, "write");
    }
}

static ke_stream_t *stream_new(ke_agent_t *a, const char *source)
{
    ke_stream_t *s = kiln_calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->agent = a;
    s->source = source;
    return s;
}

/* stdin as a regular file: libuv cannot poll one, so a chunk per turn. */
static void on_in_idle(uv_idle_t *h)
{
    ke_agent_t *a = h->data;
    ke_stream_t *s = a->in;
    if (stream_reserve(s) < 0) {
        count_error(a, "frame");
        stream_end(s);
        return;
    }
    ssize_t n = read(0, s->buf + s->len, KE_READ_CHUNK);
    if (n < 0 && errno == EINTR)
        return;
    if (n > 0) {
        s->len += (size_t)n;
        stream_drain(s);
        if (s->dead)
            stream_end(s);
        return;
    }
    if (s->len && !s->dead) {
        count_error(a, "frame");
        fprintf(stderr, "kiln-edge: stdin: %zu bytes of an unfinished window at the end\n",
                s->len);
    }
    stream_end(s);
}

static int stdin_start(ke_agent_t *a, kiln_err_t *err)
{
    ke_stream_t *s = stream_new(a, "stdin");
    if (!s)
        return kiln_err_set(err, KILN_ENOMEM, "--stdin: out of memory");
    a->in = s;
    uv_handle_type t = uv_guess_handle(0);
    int rc = 0;
    if (t == UV_FILE) {
        a->in_file = 1;
        uv_idle_init(&a->loop, &a->in_idle);
        a->in_idle.data = a;
        uv_idle_start(&a->in_idle, on_in_idle);
        return 0;
    }
    if (t == UV_TTY) {
        rc = uv_tty_init(&a->loop, &s->h.tty, 0, 1);
        s->handle = (uv_stream_t *)&s->h.tty;
    } else {
        rc = uv_pipe_init(&a->loop, &s->h.pipe, 0);
        if (rc == 0 && (rc = uv_pipe_open(&s->h.pipe, 0)) < 0)
            uv_close((uv_handle_t *)&s->h.pipe, NULL);
        s->handle = (uv_stream_t *)&s->h.pipe;
    }
    if (rc < 0) {
        a->in = NULL;
        kiln_free(s);
        return kiln_err_set(err, KILN_EIO, "--stdin: %s", uv_strerror(rc));
    }
    s->handle->data = s;
    uv_read_start(s->handle, on_alloc, on_read);
    return 0;
}

static void on_connection(uv_stream_t *server, int status)
{
    ke_agent_t *a = server->data;
    if (status < 0)
        return;
    ke_stream_t *s = stream_new(a, "socket");
    if (!s || uv_pipe_init(&a->loop, &s->h.pipe, 0) < 0) {
        kiln_free(s);
        return;
    }
    s->handle = (uv_stream_t *)&s->h.pipe;
    s->handle->data = s;
    if (uv_accept(server, s->handle) < 0 || a->n_conns >= KE_MAX_CONNS) {
        uv_close((uv_handle_t *)s->handle, on_stream_closed);
        return;
    }
    a->n_conns++;
    uv_read_start(s->handle, on_alloc, on_read);
}

static int socket_start(ke_agent_t *a, kiln_err_t *err)
{
    int rc;
    unlink(a->o.socket_path);
    if ((rc = uv_pipe_init(&a->loop, &a->server, 0)) < 0)
        return kiln_err_set(err, KILN_EIO, "--socket: %s", uv_strerror(rc));
    a->server_up = 1;
    a->server.data = a;
    if ((rc = uv_pipe_bind(&a->server, a->o.socket_path)) < 0 ||
        (rc = uv_listen((uv_stream_t *)&a->server, 16, on_connection)) < 0)
        return kiln_err_at(err, KILN_EIO, "--socket", "--socket %s: %s", a->o.socket_path,
                           uv_strerror(rc));
    fprintf(stderr, "kiln-edge: listening on %s\n", a->o.socket_path);
    return 0;
}

/* ---- MQTT --------------------------------------------------------------- */

static void mq_update_poll(ke_agent_t *a);

static void mq_lost(ke_agent_t *a)
{
    if (a->mq_poll_up) {
        uv_poll_stop(&a->mq_poll);
        uv_close((uv_handle_t *)&a->mq_poll, NULL);
        a->mq_poll_up = 0;
    }
    if (a->mq_connected)
        fprintf(stderr, "kiln-edge: mqtt: connection lost; reconnecting\n");
    a->mq_connected = 0;
}

static void on_mq_poll(uv_poll_t *h, int status, int events)
{
    ke_agent_t *a = h->data;
    int rc = MOSQ_ERR_SUCCESS;
    if (status < 0) {
        mq_lost(a);
        return;
    }
    if (events & UV_READABLE)
        rc = mosquitto_loop_read(a->mosq, 64);
    if (rc == MOSQ_ERR_SUCCESS && (events & UV_WRITABLE || mosquitto_want_write(a->mosq)))
        rc = mosquitto_loop_write(a->mosq, 64);
    if (rc != MOSQ_ERR_SUCCESS) {
        mq_lost(a);
        return;
    }
    mq_update_poll(a);
}

static void mq_update_poll(ke_agent_t *a)
{
    if (!a->mq_poll_up)
        return;
    int ev = UV_READABLE | (mosquitto_want_write(a->mosq) ? UV_WRITABLE : 0);
    uv_poll_start(&a->mq_poll, ev, on_mq_poll);
}

static void mq_try_connect(ke_agent_t *a)
{
    int rc = a->mq_tried ? mosquitto_reconnect(a->mosq)
                         : mosquitto_connect(a->mosq, a->o.mqtt_host, a->o.mqtt_port, 30);
    a->mq_tried = 1;
    if (rc != MOSQ_ERR_SUCCESS)
        return;
    int fd = mosquitto_socket(a->mosq);
    if (fd < 0 || uv_poll_init(&a->loop, &a->mq_poll, fd) < 0)
        return;
    a->mq_poll.data = a;
    a->mq_poll_up = 1;
    mq_update_poll(a);
}

static void on_mq_timer(uv_timer_t *t)
{
    ke_agent_t *a = t->data;
    if (!a->mq_poll_up) {
        mq_try_connect(a);
        return;
    }
    if (mosquitto_loop_misc(a->mosq) != MOSQ_ERR_SUCCESS)
        mq_lost(a);
    else
        mq_update_poll(a);
}

static void on_mq_connect(struct mosquitto *m, void *ud, int rc)
{
    ke_agent_t *a = ud;
    if (rc != 0) {
        fprintf(stderr, "kiln-edge: mqtt: connection refused: %s\n", mosquitto_connack_string(rc));
        return;
    }
    a->mq_connected = 1;
    a->c.mqtt_connects++;
    mosquitto_subscribe(m, NULL, a->topic_in, 0);
}

static void on_mq_subscribe(struct mosquitto *m, void *ud, int mid, int n, const int *qos)
{
    ke_agent_t *a = ud;
    (void)m, (void)mid, (void)n, (void)qos;
    fprintf(stderr, "kiln-edge: mqtt: subscribed to %s, results to %s\n", a->topic_in,
            a->topic_out);
}

static void on_mq_message(struct mosquitto *m, void *ud, const struct mosquitto_message *msg)
{
    ke_agent_t *a = ud;
    double t_in = now_us();
    kiln_err_t err;
    ke_frame_hdr_t h;
    count_in(a, "mqtt");
    if (ke_frame_parse_header(msg->payload, (size_t)msg->payloadlen, &h, &err) < 0 ||
        (h.frame_bytes != (size_t)msg->payloadlen &&
         kiln_err_set(&err, KILN_EFORMAT, "frame: %d bytes, the header says %zu",
                      msg->payloadlen, h.frame_bytes) < 0)) {
        count_error(a, "frame");
        fprintf(stderr, "kiln-edge: mqtt %s: %s\n", msg->topic, err.msg);
        return;
    }
    size_t need = h.n_channels * h.window_len;
    if (need > a->samples_cap) {
        float *f = kiln_realloc(a->samples, need * sizeof *f);
        if (!f) {
            count_error(a, "memory");
            return;
        }
        a->samples = f;
        a->samples_cap = need;
    }
    ke_frame_samples(msg->payload, &h, a->samples);
    ke_window_t w = {h.asset, h.timestamp_ns, h.sample_rate_hz, h.n_channels, h.window_len,
                     a->samples};
    size_t n = score_window(a, "mqtt", &w, t_in);
    if (!n)
        return;
    /* Without the newline: one result per message. */
    if (mosquitto_publish(m, NULL, a->topic_out, (int)n - 1, a->out, 0, false) ==
        MOSQ_ERR_SUCCESS)
        a->c.published++;
    else
        count_error(a, "publish");
}

static int mqtt_start(ke_agent_t *a, kiln_err_t *err)
{
    mosquitto_lib_init();
    snprintf(a->topic_in, sizeof a->topic_in, "kiln/edge/%s/windows", a->device);
    snprintf(a->topic_out, sizeof a->topic_out, "kiln/edge/%s/results", a->device);
    a->mosq = mosquitto_new(a->device, true, a);
    if (!a->mosq)
        return kiln_err_set(err, KILN_ENOMEM, "--mqtt: mosquitto_new: %s", strerror(errno));
    mosquitto_connect_callback_set(a->mosq, on_mq_connect);
    mosquitto_subscribe_callback_set(a->mosq, on_mq_subscribe);
    mosquitto_message_callback_set(a->mosq, on_mq_message);
    uv_timer_init(&a->loop, &a->mq_timer);
    a->mq_timer.data = a;
    mq_try_connect(a);
    if (!a->mq_poll_up)
        fprintf(stderr, "kiln-edge: mqtt: %s:%d not reachable yet; retrying every second\n",
                a->o.mqtt_host, a->o.mqtt_port);
    uv_timer_start(&a->mq_timer, on_mq_timer, 1000, 1000);
    return 0;
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
        uv_close(h, on_stream_closed);
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

static void maybe_stop(ke_agent_t *a)
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
        count_error(a, "reload");
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
    metrics_model(a);
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
    if (opts->metrics_host && (rc = metrics_start(a, err)) < 0)
        goto out;
    uv_signal_init(&a->loop, &a->sigint);
    uv_signal_init(&a->loop, &a->sigterm);
    uv_signal_init(&a->loop, &a->sighup);
    a->sigint.data = a->sigterm.data = a->sighup.data = a;
    uv_signal_start(&a->sigint, on_signal, SIGINT);
    uv_signal_start(&a->sigterm, on_signal, SIGTERM);
    uv_signal_start(&a->sighup, on_signal, SIGHUP);
    signal(SIGPIPE, SIG_IGN);
    if ((opts->socket_path && (rc = socket_start(a, err)) < 0) ||
        (opts->mqtt_host && (rc = mqtt_start(a, err)) < 0) ||
        (opts->use_stdin && (rc = stdin_start(a, err)) < 0))
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
        stream_free(a->in);
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
