/* kilnd.c - the scheduler daemon's loop (kilnd.h).
 *
 * Each loop turn: events (worker messages, HTTP requests, the timer, a
 * finished merge) change the scheduler inside one SQLite transaction that
 * the first change opens; the uv_check handle that runs after them
 * dispatches, commits, and only then sends task messages and HTTP answers,
 * so nothing is acknowledged that a kill -9 could lose.  ZMQ_FD is
 * edge-triggered: after the sends, ZMQ_EVENTS is read again and an idle
 * handle keeps the loop spinning while input waits. */
#include "kilnd.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sodium.h>
#include <uv.h>
#include <zmq.h>

#include "api/httpd.h"
#include "core/kiln_alloc.h"
#include "fleet.h"
#include "routes.h"

#define KD_DRAIN_BUDGET 8192    /* messages per turn before HTTP and timers get theirs */
#define KD_HWM          200000

typedef struct {
    char          *worker_id;
    kc_msg_type_t  type;
    char          *json;
    size_t         len;
} kd_out_t;

typedef struct {
    uv_work_t   work;
    struct kd  *kd;
    int64_t     job_id;
    const jb_type_t *type;
    const void *parsed;
    const char *const *outputs;
    size_t      n;
    char       *final_output;
    int         rc;
    kiln_err_t  err;
} kd_finish_t;

typedef struct kd kd_t;

struct kd {
    uv_loop_t    loop;
    void        *zctx, *router;
    uv_poll_t    zpoll;
    uv_idle_t    zidle;
    uv_check_t   check;
    uv_timer_t   tick;
    uv_signal_t  sigint, sigterm;
    st_state_t  *st;
    ks_sched_t  *sched;
    ka_httpd_t  *httpd;
    ka_httpd_t  *fleet_httpd;   /* the edge agents' HTTPS listener, or NULL */
    const char  *dir;
    unsigned     ticks;
    char         refresh_err[sizeof(((kiln_err_t *)0)->msg)];  /* the last re-signing failure told */
    int          in_txn;
    kd_out_t    *out;
    size_t       n_out, cap_out;
    kd_reply_t  *replies;
    size_t       n_replies, cap_replies;
    int          finishing;     /* merges in the thread pool */
    int          stopping;
};

void kd_txn(struct kd *kd)
{
    kiln_err_t err;
    if (kd->in_txn)
        return;
    if (st_state_begin(kd->st, &err) < 0) {
        fprintf(stderr, "kilnd: %s\n", err.msg);
        return;
    }
    kd->in_txn = 1;
}

ks_sched_t *kd_sched(struct kd *kd)
{
    return kd->sched;
}

const char *kd_dir(struct kd *kd)
{
    return kd->dir;
}

static void queue_reply(struct kd *kd, const kd_reply_t *r)
{
    if (kd->n_replies == kd->cap_replies) {
        size_t cap = kd->cap_replies ? kd->cap_replies * 2 : 64;
        kd_reply_t *v = kiln_realloc(kd->replies, cap * sizeof *v);
        if (!v) {
            json_decref(r->body);
            kiln_free((void *)r->text);
            kiln_free(r->headers);
            if (r->from_fd)
                close(r->fd);
            ka_req_respond_error(r->req, 503, NULL, "kilnd: out of memory");
            return;
        }
        kd->replies = v;
        kd->cap_replies = cap;
    }
    kd->replies[kd->n_replies++] = *r;
}

void kd_reply(struct kd *kd, ka_req_t *req, int status, json_t *body, const char *text,
              size_t len)
{
    queue_reply(kd, &(kd_reply_t){.req = req, .status = status, .body = body, .text = text,
                                  .len = len});
}

void kd_reply_text(struct kd *kd, ka_req_t *req, int status, const char *content_type,
                   const char *text, size_t len)
{
    queue_reply(kd, &(kd_reply_t){.req = req, .status = status, .text = text, .len = len,
                                  .content_type = content_type});
}

void kd_reply_text_hdrs(struct kd *kd, ka_req_t *req, int status, const char *content_type,
                        char *headers, const char *text, size_t len)
{
    queue_reply(kd, &(kd_reply_t){.req = req, .status = status, .text = text, .len = len,
                                  .content_type = content_type, .headers = headers});
}

void kd_reply_fd(struct kd *kd, ka_req_t *req, int status, const char *content_type,
                 char *headers, int fd, uint64_t fd_off, uint64_t fd_len)
{
    queue_reply(kd, &(kd_reply_t){.req = req, .status = status, .content_type = content_type,
                                  .headers = headers, .from_fd = 1, .fd = fd, .fd_off = fd_off,
                                  .fd_len = fd_len});
}

/* ---- sending (after the commit) */

static void on_send(void *ud, const char *worker_id, kc_msg_type_t type, char *json, size_t len)
{
    struct kd *kd = ud;
    if (kd->n_out == kd->cap_out) {
        size_t cap = kd->cap_out ? kd->cap_out * 2 : 256;
        kd_out_t *v = kiln_realloc(kd->out, cap * sizeof *v);
        if (!v) {
            kiln_free(json);
            return;
        }
        kd->out = v;
        kd->cap_out = cap;
    }
    char *id = kiln_strdup(worker_id);
    if (!id) {
        kiln_free(json);
        return;
    }
    kd->out[kd->n_out++] = (kd_out_t){id, type, json, len};
}

static void flush(struct kd *kd)
{
    kiln_err_t err;
    for (size_t i = 0; i < kd->n_out; i++) {
        kc_routing_id_t rid;
        size_t len = strlen(kd->out[i].worker_id);
        if (len > 0 && len <= KC_ROUTING_ID_MAX) {
            rid.len = len;
            memcpy(rid.bytes, kd->out[i].worker_id, len);
            if (kc_frames_send_text(kd->router, kd->out[i].type, kd->out[i].json,
                                    kd->out[i].len, &rid, &err) < 0)
                fprintf(stderr, "kilnd: %s to %s not sent: %s\n",
                        kc_msg_type_name(kd->out[i].type), kd->out[i].worker_id, err.msg);
        }
        kiln_free(kd->out[i].json);
        kiln_free(kd->out[i].worker_id);
    }
    kd->n_out = 0;
    for (size_t i = 0; i < kd->n_replies; i++) {
        kd_reply_t *r = &kd->replies[i];
        if (r->from_fd) {
            ka_req_respond_fd(r->req, r->status, r->content_type, r->headers, r->fd, r->fd_off,
                              r->fd_len);
            kiln_free(r->headers);
        } else if (r->text) {
            ka_req_respond_hdrs(r->req, r->status,
                                r->content_type ? r->content_type : "text/plain; charset=utf-8",
                                r->headers, r->text, r->len);
            kiln_free((void *)r->text);
            kiln_free(r->headers);
        } else {
            ka_req_respond_json(r->req, r->status, r->body);
        }
    }
    kd->n_replies = 0;
}

static void on_zidle(uv_idle_t *h);

static void close_walk(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

/* ---- the turn's end */

static int zevents(struct kd *kd)
{
    int ev = 0;
    size_t sz = sizeof ev;
    return zmq_getsockopt(kd->router, ZMQ_EVENTS, &ev, &sz) == 0 ? ev : 0;
}

static void commit(struct kd *kd)
{
    kiln_err_t err;
    if (!kd->in_txn)
        return;
    kd->in_txn = 0;
    if (st_state_commit(kd->st, &err) < 0) {
        /* Nothing may leave that the store did not keep: a failed commit is
         * fatal, and a restart reloads what was committed. */
        fprintf(stderr, "kilnd: commit failed, stopping: %s\n", err.msg);
        exit(1);
    }
}

static void on_check(uv_check_t *h)
{
    struct kd *kd = h->data;
    if (kd->sched && !kd->stopping) {
        kd_txn(kd);
        ks_sched_dispatch(kd->sched);
    }
    commit(kd);
    flush(kd);
    /* The sends may have swallowed the edge: look again. */
    if (kd->router && !kd->stopping && (zevents(kd) & ZMQ_POLLIN))
        uv_idle_start(&kd->zidle, on_zidle);
}

/* ---- worker messages */

static void drain(struct kd *kd)
{
    kiln_err_t err;
    int n = 0;
    kd_txn(kd);
    while (n < KD_DRAIN_BUDGET && (zevents(kd) & ZMQ_POLLIN)) {
        kc_msg_t *msg = NULL;
        kc_routing_id_t rid;
        int rc = kc_frames_recv(kd->router, ZMQ_DONTWAIT, &msg, &rid, &err);
        if (rc == KC_FRAMES_NONE)
            break;
        n++;
        char wid[KC_ROUTING_ID_MAX + 1];
        memcpy(wid, rid.bytes, rid.len);
        wid[rid.len] = '\0';
        if (rc < 0) {
            fprintf(stderr, "kilnd: bad message from worker \"%s\" dropped: %s\n", wid, err.msg);
            continue;
        }
        if (ks_sched_on_msg(kd->sched, wid, msg, &err) < 0)
            fprintf(stderr, "kilnd: worker \"%s\": %s\n", wid, err.msg);
        kc_msg_destroy(&msg);
    }
}

static void on_zpoll(uv_poll_t *h, int status, int events)
{
    (void)status, (void)events;
    drain(h->data);
}

static void on_zidle(uv_idle_t *h)
{
    struct kd *kd = h->data;
    uv_idle_stop(h);
    drain(kd);
}

/* ---- timer, finish, signals */

static void on_resigned(const char *fleet, int64_t rollout_id, int64_t expires_at, void *ud)
{
    (void)ud;
    fprintf(stderr, "kilnd: fleet %s: rollout %lld's envelope re-signed (same seq and bundle), "
            "now valid until %lld (unix s)\n", fleet, (long long)rollout_id,
            (long long)expires_at);
}

/* Served envelopes re-signed before they expire (jobs/fleet_refresh.h); a
 * failure is told once until it changes. */
static void refresh_envelopes(struct kd *kd)
{
    kiln_err_t err = {0};
    if (ks_fleet_refresh(ks_sched_state(kd->sched), kd->dir, ks_now_ns(), on_resigned, NULL,
                         NULL, &err) == 0) {
        kd->refresh_err[0] = '\0';
    } else if (strcmp(kd->refresh_err, err.msg)) {
        fprintf(stderr, "kilnd: re-signing envelopes: %s\n", err.msg);
        memcpy(kd->refresh_err, err.msg, sizeof kd->refresh_err);
    }
}

/* Bundles and envelopes of rollouts older than the newest KS_FLEET_KEEP
 * per fleet (and its two newest that went full) leave the artifact store
 * (jobs/fleet_gc.h). */
static void collect_releases(struct kd *kd)
{
    ks_gc_stats_t gc = {0, 0};
    kiln_err_t err = {0};
    if (ks_fleet_gc(ks_sched_state(kd->sched), kd->dir, KS_FLEET_KEEP, &gc, &err) < 0)
        fprintf(stderr, "kilnd: removing old releases: %s\n", err.msg);
    if (gc.files)
        fprintf(stderr, "kilnd: removed %lld blobs (%.1f MB) of rollouts older than each fleet's "
                "newest %d\n", (long long)gc.files, gc.bytes / 1e6, KS_FLEET_KEEP);
}

static void on_tick(uv_timer_t *h)
{
    struct kd *kd = h->data;
    kd_txn(kd);
    ks_sched_tick(kd->sched);
    /* Rollouts move on reports that arrive over seconds: once a second. */
    if (++kd->ticks % 10 == 0) {
        ks_fleet_tick(ks_sched_state(kd->sched), ks_now_ns());
        refresh_envelopes(kd);
    }
    /* Old releases' blobs: once a minute, the first a second after start. */
    if (kd->ticks % 600 == 10)
        collect_releases(kd);
}

static void finish_work(uv_work_t *w)
{
    kd_finish_t *f = w->data;
    memset(&f->err, 0, sizeof f->err);
    f->rc = f->type->finish(f->parsed, f->outputs, f->n, f->final_output, &f->err);
}

static void finish_after(uv_work_t *w, int status)
{
    kd_finish_t *f = w->data;
    struct kd *kd = f->kd;
    kd->finishing--;
    if (status == UV_ECANCELED) {
        f->rc = KILN_EINTERNAL;
        kiln_err_set(&f->err, KILN_EINTERNAL, "kilnd stopped before the merge ran");
    }
    if (kd->sched && !(status == UV_ECANCELED && kd->stopping)) {
        kd_txn(kd);
        ks_sched_finish_done(kd->sched, f->job_id, f->rc, &f->err);
    }
    kiln_free(f->final_output);
    kiln_free(f);
}

static void on_finish(void *ud, int64_t job_id, const jb_type_t *type, const void *parsed,
                      const char *const *outputs, size_t n, const char *final_output)
{
    struct kd *kd = ud;
    kd_finish_t *f = kiln_calloc(1, sizeof *f);
    char *out = kiln_strdup(final_output);
    if (!f || !out) {
        kiln_free(f);
        kiln_free(out);
        kiln_err_t err;
        kiln_err_set(&err, KILN_ENOMEM, "out of memory starting the merge");
        ks_sched_finish_done(kd->sched, job_id, KILN_ENOMEM, &err);
        return;
    }
    *f = (kd_finish_t){.kd = kd, .job_id = job_id, .type = type, .parsed = parsed,
                       .outputs = outputs, .n = n, .final_output = out};
    f->work.data = f;
    kd->finishing++;
    if (uv_queue_work(&kd->loop, &f->work, finish_work, finish_after) < 0) {
        kd->finishing--;
        kiln_free(out);
        kiln_free(f);
        kiln_err_t err;
        kiln_err_set(&err, KILN_EINTERNAL, "cannot queue the merge");
        ks_sched_finish_done(kd->sched, job_id, KILN_EINTERNAL, &err);
    }
}

static void on_signal(uv_signal_t *h, int signum)
{
    struct kd *kd = h->data;
    if (kd->stopping)
        return;
    fprintf(stderr, "kilnd: %s: stopping\n", signum == SIGINT ? "SIGINT" : "SIGTERM");
    kd->stopping = 1;
    commit(kd);
    flush(kd);
    ka_httpd_stop(&kd->httpd);
    ka_httpd_stop(&kd->fleet_httpd);
    uv_walk(&kd->loop, close_walk, NULL);
}

static void on_http(void *ud, ka_req_t *req)
{
    struct kd *kd = ud;
    if (kd->stopping) {
        ka_req_respond_error(req, 503, NULL, "kilnd is stopping");
        return;
    }
    kd_txn(kd);
    kd_route(kd, req);
}

static void on_fleet_http(void *ud, ka_req_t *req)
{
    struct kd *kd = ud;
    if (kd->stopping) {
        ka_req_respond_error(req, 503, NULL, "kilnd is stopping");
        return;
    }
    kd_txn(kd);
    kd_route_edge(kd, req);
}

static int write_file(const char *dir, const char *name, const char *text, kiln_err_t *err);

/* A whole PEM file, NUL-terminated (kiln_free), or NULL with err set. */
static char *read_pem(const char *path, const char *what, kiln_err_t *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        kiln_err_at(err, KILN_EIO, what, "%s %s: %s", what, path, strerror(errno));
        return NULL;
    }
    char *buf = kiln_malloc(1 << 20);
    size_t n = buf ? fread(buf, 1, (1 << 20) - 1, f) : 0;
    fclose(f);
    if (!buf || n == 0) {
        kiln_free(buf);
        kiln_err_at(err, buf ? KILN_EFORMAT : KILN_ENOMEM, what, "%s %s: empty or unreadable",
                    what, path);
        return NULL;
    }
    buf[n] = '\0';
    return buf;
}

static int fleet_start(struct kd *kd, const kd_opts_t *o, kiln_err_t *err)
{
    if (!o->fleet_cert || !o->fleet_key)
        return kiln_err_at(err, KILN_EINVAL, "fleet-cert",
                           "the fleet endpoint speaks HTTPS only: --fleet-cert and --fleet-key "
                           "are required with --fleet-listen");
    char *cert = read_pem(o->fleet_cert, "--fleet-cert", err);
    char *key = cert ? read_pem(o->fleet_key, "--fleet-key", err) : NULL;
    int rc = KILN_EIO;
    if (cert && key) {
        ka_httpd_opts_t ho = {.host = o->fleet_host, .port = o->fleet_port,
                              .max_pending = o->max_pending_http, .tls_cert_pem = cert,
                              .tls_key_pem = key};
        rc = ka_httpd_start(&kd->loop, &ho, on_fleet_http, kd, &kd->fleet_httpd, err);
    }
    if (key)
        sodium_memzero(key, strlen(key));
    kiln_free(cert);
    kiln_free(key);
    if (rc < 0)
        return rc;
    char text[300];
    snprintf(text, sizeof text, "https://%s:%d", o->fleet_host, ka_httpd_port(kd->fleet_httpd));
    fprintf(stderr, "kilnd: fleet endpoint %s\n", text);
    return write_file(o->dir, "kilnd.fleet-url", text, err);
}

/* ---- start and stop */

static int write_file(const char *dir, const char *name, const char *text, kiln_err_t *err)
{
    char path[1100], tmp[1200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid());
    FILE *f = fopen(tmp, "w");
    if (!f || fprintf(f, "%s\n", text) < 0 || fclose(f) != 0 || rename(tmp, path) < 0) {
        int e = errno;
        unlink(tmp);
        return kiln_err_set(err, KILN_EIO, "%s: %s", path, strerror(e));
    }
    return 0;
}

static int zmq_start(struct kd *kd, const char *endpoint, kiln_err_t *err)
{
    int hwm = KD_HWM, linger = 0, zero = 0;
    if (!(kd->zctx = zmq_ctx_new()) || !(kd->router = zmq_socket(kd->zctx, ZMQ_ROUTER)))
        return kiln_err_set(err, KILN_EIO, "zmq: %s", zmq_strerror(errno));
    int rc = kc_frames_socket_setup(kd->router, err);
    if (rc < 0)
        return rc;
    if (zmq_setsockopt(kd->router, ZMQ_SNDHWM, &hwm, sizeof hwm) != 0 ||
        zmq_setsockopt(kd->router, ZMQ_RCVHWM, &hwm, sizeof hwm) != 0 ||
        zmq_setsockopt(kd->router, ZMQ_LINGER, &linger, sizeof linger) != 0 ||
        zmq_setsockopt(kd->router, ZMQ_SNDTIMEO, &zero, sizeof zero) != 0)
        return kiln_err_set(err, KILN_EIO, "zmq options: %s", zmq_strerror(errno));
    /* A worker that reconnects under its id after kilnd lost it takes the
     * name over rather than being refused. */
    int one = 1;
    zmq_setsockopt(kd->router, ZMQ_ROUTER_HANDOVER, &one, sizeof one);
    if (zmq_bind(kd->router, endpoint) != 0)
        return kiln_err_set(err, KILN_EIO, "cannot bind %s: %s", endpoint, zmq_strerror(errno));
    int fd;
    size_t sz = sizeof fd;
    if (zmq_getsockopt(kd->router, ZMQ_FD, &fd, &sz) != 0)
        return kiln_err_set(err, KILN_EIO, "ZMQ_FD: %s", zmq_strerror(errno));
    if (uv_poll_init(&kd->loop, &kd->zpoll, fd) < 0)
        return kiln_err_set(err, KILN_EIO, "uv_poll_init on ZMQ_FD failed");
    kd->zpoll.data = kd;
    uv_poll_start(&kd->zpoll, UV_READABLE, on_zpoll);
    return 0;
}

int kd_run(const kd_opts_t *o, kiln_err_t *err)
{
    struct kd *kd = kiln_calloc(1, sizeof *kd);
    if (!kd)
        return kiln_err_set(err, KILN_ENOMEM, "kilnd: out of memory");
    int rc = 0;
    char path[1100];
    uv_loop_init(&kd->loop);
    uv_idle_init(&kd->loop, &kd->zidle);
    uv_check_init(&kd->loop, &kd->check);
    uv_timer_init(&kd->loop, &kd->tick);
    uv_signal_init(&kd->loop, &kd->sigint);
    uv_signal_init(&kd->loop, &kd->sigterm);
    kd->zidle.data = kd->check.data = kd->tick.data = kd;
    kd->sigint.data = kd->sigterm.data = kd;
    kd->dir = o->dir;

    st_state_opts_t so = {o->full_sync, 0};
    snprintf(path, sizeof path, "%s/state.db", o->dir);
    if ((rc = st_state_open_opts(path, &so, &kd->st, err)) < 0)
        goto out;
    ks_opts_t sopts = o->sched;
    sopts.dir = o->dir;
    ks_ops_t ops = {on_send, on_finish};
    /* Reloading writes (reasons, ended jobs): one transaction. */
    kd_txn(kd);
    if ((rc = ks_sched_open(kd->st, &sopts, &ops, kd, &kd->sched, err)) < 0)
        goto out;
    commit(kd);
    if ((rc = zmq_start(kd, o->listen, err)) < 0)
        goto out;
    ka_httpd_opts_t ho = {.host = o->http_host, .port = o->http_port,
                          .max_pending = o->max_pending_http};
    if ((rc = ka_httpd_start(&kd->loop, &ho, on_http, kd, &kd->httpd, err)) < 0)
        goto out;
    char text[1200];
    size_t sz = sizeof text;
    if (zmq_getsockopt(kd->router, ZMQ_LAST_ENDPOINT, text, &sz) == 0 &&
        (rc = write_file(o->dir, "kilnd.zmq", text, err)) < 0)
        goto out;
    snprintf(text, sizeof text, "http://%s:%d", o->http_host ? o->http_host : "127.0.0.1",
             ka_httpd_port(kd->httpd));
    if (o->fleet_host && (rc = fleet_start(kd, o, err)) < 0)
        goto out;
    if ((rc = write_file(o->dir, "kilnd.url", text, err)) < 0)
        goto out;
    fprintf(stderr, "kilnd: API %s, workers ", text);
    sz = sizeof text;
    zmq_getsockopt(kd->router, ZMQ_LAST_ENDPOINT, text, &sz);
    fprintf(stderr, "%s, state %s\n", text, path);

    uv_check_start(&kd->check, on_check);
    uv_timer_start(&kd->tick, on_tick, 100, 100);
    uv_signal_start(&kd->sigint, on_signal, SIGINT);
    uv_signal_start(&kd->sigterm, on_signal, SIGTERM);
    uv_run(&kd->loop, UV_RUN_DEFAULT);
    rc = 0;
out:
    if (!kd->stopping) {
        kd->stopping = 1;
        ka_httpd_stop(&kd->httpd);
        ka_httpd_stop(&kd->fleet_httpd);
        uv_walk(&kd->loop, close_walk, NULL);
    }
    uv_run(&kd->loop, UV_RUN_DEFAULT);   /* close callbacks, pending merges */
    if (kd->st)
        commit(kd);   /* merges that ended during the stop */
    for (size_t i = 0; i < kd->n_out; i++) {
        kiln_free(kd->out[i].json);
        kiln_free(kd->out[i].worker_id);
    }
    kiln_free(kd->out);
    kiln_free(kd->replies);
    ks_sched_close(&kd->sched);
    st_state_close(&kd->st);
    if (kd->router)
        zmq_close(kd->router);
    if (kd->zctx)
        zmq_ctx_term(kd->zctx);
    uv_loop_close(&kd->loop);
    kiln_free(kd);
    return rc;
}
