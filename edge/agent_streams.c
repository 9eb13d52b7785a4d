/* agent_streams.c - the agent's byte-stream inputs: stdin (a pipe, a tty,
 * or a regular file read a chunk per loop turn) and the unix socket's
 * connections.  Each stream carries binary frames or JSON lines
 * (edge/frame.h); a result goes back where its window came from. */
#include "edge/agent_int.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/kiln_alloc.h"

#define KE_READ_CHUNK  ((size_t)256 << 10)
#define KE_MAX_CONNS   64

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
        double t_in = ke_agent_now_us();
        ke_window_t w;
        if (*p == '{') {
            unsigned char *nl = memchr(p, '\n', avail);
            if (!nl) {
                if (avail > KE_JSON_LINE_MAX) {
                    ke_agent_count_in(a, s->source);
                    ke_agent_count_error(a, "frame");
                    fprintf(stderr, "kiln-edge: %s: a JSON line over %zu bytes\n", s->source,
                            KE_JSON_LINE_MAX);
                    s->dead = 1;
                }
                break;
            }
            ke_agent_count_in(a, s->source);
            if (!a->engine) {
                ke_agent_count_error(a, "no-model");
                fprintf(stderr, "kiln-edge: %s: no model yet\n", s->source);
            } else if (ke_frame_parse_json((const char *)p, (size_t)(nl - p),
                                           ke_engine_info(a->engine), &w, &a->samples,
                                           &a->samples_cap, &err) < 0) {
                ke_agent_count_error(a, "frame");
                fprintf(stderr, "kiln-edge: %s: %s\n", s->source, err.msg);
            } else {
                size_t n = ke_agent_score_window(a, s->source, &w, t_in);
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
            ke_agent_count_in(a, s->source);
            ke_agent_count_error(a, "frame");
            fprintf(stderr, "kiln-edge: %s: %s; the rest of this stream is not read\n", s->source,
                    err.msg);
            s->dead = 1;
            break;
        }
        if (avail < h.frame_bytes)
            break;
        ke_agent_count_in(a, s->source);
        size_t need = h.n_channels * h.window_len;
        if (need > a->samples_cap) {
            float *f = kiln_realloc(a->samples, need * sizeof *f);
            if (!f) {
                ke_agent_count_error(a, "memory");
                off += h.frame_bytes;
                continue;
            }
            a->samples = f;
            a->samples_cap = need;
        }
        ke_frame_samples(p, &h, a->samples);
        w = (ke_window_t){h.asset, h.timestamp_ns, h.sample_rate_hz, h.n_channels, h.window_len,
                          a->samples};
        size_t n = ke_agent_score_window(a, s->source, &w, t_in);
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

void ke_agent_stream_free(ke_stream_t *s)
{
    kiln_free(s->buf);
    kiln_free(s);
}

void ke_agent_stream_closed(uv_handle_t *h) { ke_agent_stream_free(h->data); }

static void stream_end(ke_stream_t *s)
{
    ke_agent_t *a = s->agent;
    if (s == a->in) {
        a->in_done = 1;
        a->in = NULL;
        if (a->in_file) {
            uv_idle_stop(&a->in_idle);
            ke_agent_stream_free(s);
        } else {
            uv_close((uv_handle_t *)s->handle, ke_agent_stream_closed);
        }
        ke_agent_maybe_stop(a);
        return;
    }
    a->n_conns--;
    uv_close((uv_handle_t *)s->handle, ke_agent_stream_closed);
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
        ke_agent_count_error(s->agent, "frame");
        fprintf(stderr, "kiln-edge: %s: a frame over %zu bytes\n", s->source, KE_FRAME_MAX_BYTES);
    }
    if (nread < 0) {
        if (s->len && !s->dead) {
            ke_agent_count_error(s->agent, "frame");
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
        ke_agent_count_error(s->agent, "write");
        return;
    }
    memcpy(req + 1, line + done, n - done);
    b = uv_buf_init((char *)(req + 1), (unsigned)(n - done));
    if (uv_write(req, s->handle, &b, 1, on_written) < 0) {
        kiln_free(req);
        ke_agent_count_error(s->agent, "write");
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
        ke_agent_count_error(a, "frame");
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
        ke_agent_count_error(a, "frame");
        fprintf(stderr, "kiln-edge: stdin: %zu bytes of an unfinished window at the end\n",
                s->len);
    }
    stream_end(s);
}

int ke_agent_stdin_start(ke_agent_t *a, kiln_err_t *err)
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
        uv_close((uv_handle_t *)s->handle, ke_agent_stream_closed);
        return;
    }
    a->n_conns++;
    uv_read_start(s->handle, on_alloc, on_read);
}

int ke_agent_socket_start(ke_agent_t *a, kiln_err_t *err)
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
