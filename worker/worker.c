/* worker.c - kiln-worker's loop and protocol (worker.h).  One thread: a libuv
 * loop owns the DEALER socket, the heartbeat timer, the signals and the
 * children.  ZMQ_FD is edge-triggered (DESIGN.md, "Known pitfalls"), so every
 * wake and every send ends in kw_pump, which flushes what waits to go out and
 * reads until ZMQ_EVENTS no longer says ZMQ_POLLIN. */
#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>
#include <zmq.h>

#include "../core/kiln_alloc.h"
#include "../jobs/jobtype.h"
#include "child.h"
#include "gang.h"
#include "metrics.h"
#include "worker.h"

/* Messages read per pump before the loop gets a turn (timers, children):
 * the rest is read from an idle callback, since the edge will not come again. */
#define KW_PUMP_BUDGET 4096
/* Messages queued inside ZeroMQ.  Tasks: room for a scheduler's burst.
 * Replies: the pipe keeps them across a kilnd restart (ZMQ_IMMEDIATE off),
 * but heartbeats pile up there while kilnd is away, so it stays smaller;
 * past it replies wait in the worker's own queue and heartbeats pause. */
#define KW_RCVHWM 100000
#define KW_SNDHWM 10000
#define KW_RECONNECT_MS 100

typedef struct kw_out {
    kc_msg_t      *msg;
    struct kw_out *next;
} kw_out_t;

typedef struct {
    kw_opts_t   opts;
    const char *exe;
    char        host[256];
    long        pid;
    uv_loop_t   loop;
    void       *zctx, *sock;
    uv_poll_t   poll;
    uv_timer_t  heartbeat;
    uv_signal_t sigint, sigterm;
    uv_idle_t   resume;        /* continues a pump that used up its budget */
    kw_child_t *children;      /* running task children, newest first */
    kw_out_t   *out_head, *out_tail;  /* replies waiting for ZMQ_POLLOUT, oldest first */
    int         pumping;       /* inside kw_pump: a send there needs no pump of its own */
    int         stopping;      /* a signal came: children are being stopped */
    int         closed;        /* handles closed, the loop is ending */
    unsigned char gpu_busy[KW_GPUS_MAX];   /* devices a running task holds */
    kw_metrics_t *metrics;     /* --metrics; NULL when off */
} kw_worker_t;

static void kw_pump(kw_worker_t *w);

static int zmq_events(kw_worker_t *w)
{
    int ev = 0;
    size_t sz = sizeof ev;
    if (zmq_getsockopt(w->sock, ZMQ_EVENTS, &ev, &sz) != 0)
        return 0;
    return ev;
}

/* 1 when msg left (or was dropped for an error), 0 when ZeroMQ has no room. */
static int try_send(kw_worker_t *w, const kc_msg_t *msg)
{
    if (!(zmq_events(w) & ZMQ_POLLOUT))
        return 0;
    kiln_err_t err;
    if (kc_frames_send(w->sock, msg, NULL, &err) < 0)
        fprintf(stderr, "kiln-worker %s: %s not sent: %s\n", w->opts.id,
                kc_msg_type_name(msg->type), err.msg);
    return 1;
}

/* Sends msg (taken, also on failure) in order after whatever waits. */
static void kw_send(kw_worker_t *w, kc_msg_t *msg)
{
    if (!msg) {
        fprintf(stderr, "kiln-worker %s: no memory for a message\n", w->opts.id);
        return;
    }
    if (!w->out_head && try_send(w, msg)) {
        kc_msg_destroy(&msg);
    } else {
        kw_out_t *o = kiln_malloc(sizeof *o);
        if (!o) {
            fprintf(stderr, "kiln-worker %s: no memory to queue a %s\n", w->opts.id,
                    kc_msg_type_name(msg->type));
            kc_msg_destroy(&msg);
        } else {
            *o = (kw_out_t){msg, NULL};
            if (w->out_tail)
                w->out_tail->next = o;
            else
                w->out_head = o;
            w->out_tail = o;
        }
    }
    kw_pump(w);
}

static void flush_out(kw_worker_t *w)
{
    while (w->out_head && try_send(w, w->out_head->msg)) {
        kw_out_t *o = w->out_head;
        w->out_head = o->next;
        if (!w->out_head)
            w->out_tail = NULL;
        kc_msg_destroy(&o->msg);
        kiln_free(o);
    }
}

/* ---- outgoing messages ------------------------------------------------ */

static kc_msg_t *status_msg(kw_worker_t *w, kc_msg_type_t type)
{
    json_t *running = json_array();
    for (kw_child_t *c = w->children; c && running; c = c->next)
        json_array_append_new(running, json_pack("{s:I, s:s}", "task_id", (json_int_t)c->task_id,
                                                 "lease_id", c->lease_id));
    json_t *body = json_pack("{s:s, s:i, s:I, s:i, s:I, s:s, s:o*}", "worker_id", w->opts.id,
                             "cores", w->opts.cores, "memory_mb", (json_int_t)w->opts.memory_mb,
                             "gpus", w->opts.gpus, "pid", (json_int_t)w->pid, "host", w->host,
                             "running", running);
    if (body && w->opts.gpu_names[0][0]) {
        json_t *names = json_array(), *mem = json_array();
        for (int d = 0; d < w->opts.gpus && names && mem; d++) {
            json_array_append_new(names, json_string(w->opts.gpu_names[d]));
            json_array_append_new(mem, json_integer(w->opts.gpu_memory_mb[d]));
        }
        json_object_set_new(body, "gpu_names", names ? names : json_null());
        json_object_set_new(body, "gpu_memory_mb", mem ? mem : json_null());
    }
    return body ? kc_msg_new(type, body) : NULL;
}

static void send_failed(kw_worker_t *w, int64_t task_id, const char *lease_id, const char *code,
                        const char *reason, const char *tail, size_t tail_len)
{
    char line[1024];
    if (!kw_one_line(line, sizeof line, reason, strlen(reason)))
        snprintf(line, sizeof line, "%s", code);
    kc_msg_t *msg = kc_msg_new(KC_MSG_FAILED,
                               json_pack("{s:I, s:s, s:s, s:s}", "task_id", (json_int_t)task_id,
                                         "lease_id", lease_id, "code", code, "reason", line));
    kiln_err_t err;
    if (msg && tail && tail_len && kc_msg_add_blob(msg, tail, tail_len, &err) < 0)
        fprintf(stderr, "kiln-worker %s: task %lld: log tail left out: %s\n", w->opts.id,
                (long long)task_id, err.msg);
    kw_send(w, msg);
}

static void send_done(kw_worker_t *w, int64_t task_id, const char *lease_id, const char *output,
                      uint64_t elapsed_ms, const char *tail, size_t tail_len)
{
    kc_msg_t *msg = kc_msg_new(KC_MSG_DONE,
                               json_pack("{s:I, s:s, s:s, s:I}", "task_id", (json_int_t)task_id,
                                         "lease_id", lease_id, "output", output, "elapsed_ms",
                                         (json_int_t)elapsed_ms));
    kiln_err_t err;
    if (msg && tail && tail_len && kc_msg_add_blob(msg, tail, tail_len, &err) < 0)
        fprintf(stderr, "kiln-worker %s: task %lld: log tail left out: %s\n", w->opts.id,
                (long long)task_id, err.msg);
    kw_send(w, msg);
}

/* ---- children --------------------------------------------------------- */

static kw_child_t *find_child(kw_worker_t *w, int64_t task_id)
{
    for (kw_child_t *c = w->children; c; c = c->next)
        if (c->task_id == task_id)
            return c;
    return NULL;
}

static void close_all(kw_worker_t *w);

/* /metrics' gauges of what the running children hold. */
static void busy_changed(kw_worker_t *w)
{
    int tasks = 0, cores = 0;
    for (kw_child_t *c = w->children; c; c = c->next) {
        tasks++;
        cores += c->cores;
    }
    kw_metrics_busy(w->metrics, tasks, cores, w->gpu_busy);
}

static void on_child_exit(kw_child_t *c, void *arg)
{
    kw_worker_t *w = arg;
    for (kw_child_t **p = &w->children; *p; p = &(*p)->next)
        if (*p == c) {
            *p = c->next;
            break;
        }
    /* A worker that is stopping says nothing: kilnd requeues its tasks. */
    if (!w->stopping) {
        kw_child_result_t r;
        kw_child_result(c, &r);
        kw_metrics_task_ended(w->metrics, c->type, r.code ? r.code : "succeeded",
                              (double)(uv_hrtime() - c->start_ns) / 1e9);
        if (!r.code)
            send_done(w, c->task_id, c->lease_id, c->output,
                      (uv_hrtime() - c->start_ns) / 1000000u, r.tail, r.tail_len);
        else
            send_failed(w, c->task_id, c->lease_id, r.code, r.reason, r.tail, r.tail_len);
        kw_child_result_free(&r);
    }
    if (c->gpu >= 0 && c->gpu < KW_GPUS_MAX)
        w->gpu_busy[c->gpu] = 0;
    kw_child_destroy(&c);
    busy_changed(w);
    if (w->stopping && !w->children)
        close_all(w);
}

/* ---- incoming messages ------------------------------------------------ */

/* A task field that must be an integer >= 0 when present; default 0. */
static int task_size(const json_t *body, const char *key, size_t *out, kiln_err_t *err)
{
    const json_t *v = json_object_get(body, key);
    *out = 0;
    if (!v)
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return kiln_err_at(err, KILN_ESPEC, key, "task: %s: must be an integer >= 0", key);
    *out = (size_t)json_integer_value(v);
    return 0;
}

static void on_task(kw_worker_t *w, const json_t *body)
{
    const int64_t task_id = json_integer_value(json_object_get(body, "task_id"));
    const char *lease_id = json_string_value(json_object_get(body, "lease_id"));
    const json_t *spec = json_object_get(body, "spec");
    const char *output = json_string_value(json_object_get(body, "output"));
    jb_task_plan_t plan = {0};
    kiln_err_t err;
    void *parsed = NULL;

    if (find_child(w, task_id))
        return;    /* a duplicate of a running task */
    if (!output || !output[0]) {
        send_failed(w, task_id, lease_id, "error", "task: output: must be a path", NULL, 0);
        return;
    }
    if (task_size(body, "index", &plan.index, &err) < 0 ||
        task_size(body, "win0", &plan.win0, &err) < 0 ||
        task_size(body, "n_windows", &plan.n_windows, &err) < 0) {
        send_failed(w, task_id, lease_id, "error", err.msg, NULL, 0);
        return;
    }
    const char *name = json_string_value(json_object_get(spec, "type"));
    const jb_type_t *type = name ? jb_type_find(name) : NULL;
    if (!type) {
        snprintf(err.msg, sizeof err.msg, "job: type: unknown job type \"%.200s\"",
                 name ? name : "");
        send_failed(w, task_id, lease_id, "error", err.msg, NULL, 0);
        return;
    }
    if (type->validate(spec, &parsed, &err) < 0) {
        send_failed(w, task_id, lease_id, "error", err.msg, NULL, 0);
        return;
    }
    if (type->inproc && type->inproc(parsed)) {
        /* The fast path: no file, no child, the reply at once. */
        uint64_t t0 = uv_hrtime();
        int rc = type->run_task(parsed, &plan, output, &err);
        type->free_parsed(parsed);
        kw_metrics_task_ended(w->metrics, type->name, rc >= 0 ? "succeeded" : rc == KILN_ENOMEM
                              ? "out_of_memory" : "error", (double)(uv_hrtime() - t0) / 1e9);
        if (rc < 0)
            send_failed(w, task_id, lease_id, rc == KILN_ENOMEM ? "out_of_memory" : "error",
                        err.msg, NULL, 0);
        else
            send_done(w, task_id, lease_id, output, (uv_hrtime() - t0) / 1000000u, NULL, 0);
        return;
    }
    type->free_parsed(parsed);

    /* A job with resources.gpus gets one of our free devices ("gpu"); an MPI
     * gang's launcher starts mpirun with this program as its agent, which
     * reaches kilnd where we do. */
    int gpu = -1;
    const json_t *want = json_object_get(json_object_get(spec, "resources"), "gpus");
    if (json_integer_value(want) > 0) {
        for (int d = 0; d < w->opts.gpus && d < KW_GPUS_MAX && gpu < 0; d++)
            if (!w->gpu_busy[d])
                gpu = d;
        if (gpu < 0)
            fprintf(stderr, "kiln-worker %s: task %lld asks for a GPU and none is free: on the "
                    "CPU\n", w->opts.id, (long long)task_id);
    }
    json_t *copy = NULL;
    if (json_object_get(body, "gang_role") || gpu >= 0) {
        copy = json_copy((json_t *)body);
        if (copy && gpu >= 0)
            json_object_set_new(copy, "gpu", json_integer(gpu));
        if (copy && json_object_get(body, "gang_role")) {
            json_object_set_new(copy, "worker_exe", json_string(w->exe));
            json_object_set_new(copy, "scheduler_endpoint", json_string(w->opts.connect));
        }
    }
    char *text = json_dumps(copy ? copy : body, JSON_COMPACT);
    json_decref(copy);
    kw_child_t *c = NULL;
    int rc = text ? kw_child_start(&w->loop, w->exe, w->opts.dir, task_id, lease_id, output,
                                   text, strlen(text), on_child_exit, w, &c, &err)
                  : kiln_err_set(&err, KILN_ENOMEM, "task %lld: no memory", (long long)task_id);
    free(text);
    if (rc < 0) {
        send_failed(w, task_id, lease_id, rc == KILN_ENOMEM ? "out_of_memory" : "error",
                    err.msg, NULL, 0);
        return;
    }
    c->gpu = gpu;
    if (gpu >= 0)
        w->gpu_busy[gpu] = 1;
    snprintf(c->type, sizeof c->type, "%s", type->name);
    const json_t *cores = json_object_get(json_object_get(spec, "resources"), "cores");
    c->cores = json_integer_value(cores) > 0 && json_integer_value(cores) < 1 << 20
                   ? (int)json_integer_value(cores) : 1;
    c->next = w->children;
    w->children = c;
    busy_changed(w);
    kw_send(w, kc_msg_new(KC_MSG_PROGRESS,
                          json_pack("{s:I, s:s, s:i, s:i}", "task_id", (json_int_t)task_id,
                                    "lease_id", lease_id, "done", 0, "total", 1)));
}

static void on_cancel(kw_worker_t *w, const json_t *body)
{
    kw_child_t *c = find_child(w, json_integer_value(json_object_get(body, "task_id")));
    const char *lease_id = json_string_value(json_object_get(body, "lease_id"));
    /* Unknown tasks, and other leases of this one, are not ours to stop. */
    if (c && (!lease_id || !strcmp(lease_id, c->lease_id)))
        kw_child_stop(c);
}

/* mpirun's daemon command for a holder task of an MPI gang: written where
 * the holder looks for it (gang.h), by rename so it never reads half. */
static void on_exec(kw_worker_t *w, const json_t *body)
{
    kw_child_t *c = find_child(w, json_integer_value(json_object_get(body, "task_id")));
    const char *lease_id = json_string_value(json_object_get(body, "lease_id"));
    const char *cmd = json_string_value(json_object_get(body, "command"));
    if (!c || !lease_id || strcmp(lease_id, c->lease_id) || !cmd) {
        fprintf(stderr, "kiln-worker %s: exec for a task not running here: ignored\n", w->opts.id);
        return;
    }
    char path[KW_CHILD_PATH_MAX + 16], tmp[KW_CHILD_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s" KW_GANG_EXEC_SUFFIX, c->json_path);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    int ok = f && fputs(cmd, f) >= 0;
    if (f && fclose(f) != 0)
        ok = 0;
    if (!ok || rename(tmp, path) != 0) {
        unlink(tmp);
        send_failed(w, c->task_id, c->lease_id, "error", "cannot hand mpirun's daemon command "
                    "to the holder task", NULL, 0);
        kw_child_stop(c);
    }
}

static void on_message(kw_worker_t *w, const kc_msg_t *msg)
{
    switch (msg->type) {
    case KC_MSG_TASK:
        if (!w->stopping)
            on_task(w, msg->body);
        break;
    case KC_MSG_CANCEL:
        on_cancel(w, msg->body);
        break;
    case KC_MSG_EXEC:
        on_exec(w, msg->body);
        break;
    default:
        fprintf(stderr, "kiln-worker %s: ignored a %s from kilnd\n", w->opts.id,
                kc_msg_type_name(msg->type));
        break;
    }
}

static void on_resume(uv_idle_t *h)
{
    uv_idle_stop(h);
    kw_pump(h->data);
}

/* The drain rule: flush, then read while ZMQ_EVENTS says ZMQ_POLLIN.  The
 * last thing before going back to the loop is always a ZMQ_EVENTS read. */
static void kw_pump(kw_worker_t *w)
{
    if (w->pumping || w->closed)
        return;
    w->pumping = 1;
    int budget = KW_PUMP_BUDGET;
    for (;;) {
        flush_out(w);
        if (!(zmq_events(w) & ZMQ_POLLIN))
            break;
        if (budget-- == 0) {
            uv_idle_start(&w->resume, on_resume);
            break;
        }
        kc_msg_t *msg = NULL;
        kiln_err_t err;
        int rc = kc_frames_recv(w->sock, ZMQ_DONTWAIT, &msg, NULL, &err);
        if (rc == KC_FRAMES_NONE)
            continue;
        if (rc < 0) {
            fprintf(stderr, "kiln-worker %s: bad message from kilnd: %s\n", w->opts.id, err.msg);
            if (err.code == KILN_EIO)
                break;
            continue;
        }
        on_message(w, msg);
        kc_msg_destroy(&msg);
    }
    w->pumping = 0;
}

/* ---- the loop --------------------------------------------------------- */

static void on_poll(uv_poll_t *h, int status, int events)
{
    (void)status, (void)events;
    kw_pump(h->data);
}

static void on_heartbeat(uv_timer_t *h)
{
    kw_worker_t *w = h->data;
    /* Nothing goes while replies wait for room: kilnd is away or slow, and
     * the next heartbeat after them says the same. */
    if (!w->out_head)
        kw_send(w, status_msg(w, KC_MSG_HEARTBEAT));
    else
        kw_pump(w);    /* and a missed edge costs one period at most */
}

static void close_all(kw_worker_t *w)
{
    if (w->closed)
        return;
    w->closed = 1;
    kw_metrics_stop(&w->metrics);
    uv_close((uv_handle_t *)&w->poll, NULL);
    uv_close((uv_handle_t *)&w->heartbeat, NULL);
    uv_close((uv_handle_t *)&w->sigint, NULL);
    uv_close((uv_handle_t *)&w->sigterm, NULL);
    uv_close((uv_handle_t *)&w->resume, NULL);
}

static void on_signal(uv_signal_t *h, int signum)
{
    kw_worker_t *w = h->data;
    if (w->stopping)
        return;
    w->stopping = 1;
    fprintf(stderr, "kiln-worker %s: %s: stopping\n", w->opts.id, kw_signal_name(signum));
    uv_timer_stop(&w->heartbeat);
    for (kw_child_t *c = w->children; c; c = c->next)
        kw_child_stop(c);
    if (!w->children)
        close_all(w);
}

static int socket_open(kw_worker_t *w, kiln_err_t *err)
{
    const int reconnect_ms = KW_RECONNECT_MS, linger = 0, sndtimeo = 0;
    const int sndhwm = KW_SNDHWM, rcvhwm = KW_RCVHWM;
    w->zctx = zmq_ctx_new();
    if (!w->zctx)
        return kiln_err_set(err, KILN_EIO, "zmq_ctx_new: %s", zmq_strerror(errno));
    w->sock = zmq_socket(w->zctx, ZMQ_DEALER);
    if (!w->sock)
        return kiln_err_set(err, KILN_EIO, "zmq_socket: %s", zmq_strerror(errno));
    int rc = kc_frames_socket_setup(w->sock, err);
    if (rc < 0)
        return rc;
    /* SNDTIMEO 0: a send never blocks the loop; kw_send checks ZMQ_POLLOUT
     * first and keeps what does not fit. */
    if (zmq_setsockopt(w->sock, ZMQ_ROUTING_ID, w->opts.id, strlen(w->opts.id)) != 0 ||
        zmq_setsockopt(w->sock, ZMQ_RECONNECT_IVL, &reconnect_ms, sizeof reconnect_ms) != 0 ||
        zmq_setsockopt(w->sock, ZMQ_LINGER, &linger, sizeof linger) != 0 ||
        zmq_setsockopt(w->sock, ZMQ_SNDHWM, &sndhwm, sizeof sndhwm) != 0 ||
        zmq_setsockopt(w->sock, ZMQ_RCVHWM, &rcvhwm, sizeof rcvhwm) != 0 ||
        zmq_setsockopt(w->sock, ZMQ_SNDTIMEO, &sndtimeo, sizeof sndtimeo) != 0)
        return kiln_err_set(err, KILN_EIO, "worker socket options: %s", zmq_strerror(errno));
    if (zmq_connect(w->sock, w->opts.connect) != 0)
        return kiln_err_at(err, KILN_EINVAL, "--connect", "--connect %s: %s", w->opts.connect,
                           zmq_strerror(errno));
    return 0;
}

static int loop_open(kw_worker_t *w, kiln_err_t *err)
{
    int fd;
    size_t sz = sizeof fd;
    if (zmq_getsockopt(w->sock, ZMQ_FD, &fd, &sz) != 0)
        return kiln_err_set(err, KILN_EIO, "ZMQ_FD: %s", zmq_strerror(errno));
    int rc = uv_loop_init(&w->loop);
    if (rc < 0)
        return kiln_err_set(err, KILN_EIO, "uv_loop_init: %s", uv_strerror(rc));
    w->poll.data = w->heartbeat.data = w->sigint.data = w->sigterm.data = w->resume.data = w;
    if ((rc = uv_poll_init(&w->loop, &w->poll, fd)) < 0) {
        uv_loop_close(&w->loop);
        return kiln_err_set(err, KILN_EIO, "uv_poll_init: %s", uv_strerror(rc));
    }
    uv_timer_init(&w->loop, &w->heartbeat);
    uv_signal_init(&w->loop, &w->sigint);
    uv_signal_init(&w->loop, &w->sigterm);
    uv_idle_init(&w->loop, &w->resume);
    if ((rc = uv_poll_start(&w->poll, UV_READABLE, on_poll)) < 0 ||
        (rc = uv_signal_start(&w->sigint, on_signal, SIGINT)) < 0 ||
        (rc = uv_signal_start(&w->sigterm, on_signal, SIGTERM)) < 0 ||
        (rc = uv_timer_start(&w->heartbeat, on_heartbeat, (uint64_t)w->opts.heartbeat_ms,
                             (uint64_t)w->opts.heartbeat_ms)) < 0) {
        close_all(w);
        uv_run(&w->loop, UV_RUN_DEFAULT);
        uv_loop_close(&w->loop);
        return kiln_err_set(err, KILN_EIO, "worker loop: %s", uv_strerror(rc));
    }
    return 0;
}

int kw_worker_run(const kw_opts_t *opts, kiln_err_t *err)
{
    kw_worker_t *w = kiln_calloc(1, sizeof *w);
    if (!w)
        return kiln_err_set(err, KILN_ENOMEM, "no memory for the worker");
    w->opts = *opts;
    w->exe = w->opts.exe[0] ? w->opts.exe : "/proc/self/exe";
    w->pid = (long)getpid();
    if (gethostname(w->host, sizeof w->host) != 0 || !w->host[0])
        snprintf(w->host, sizeof w->host, "localhost");
    w->host[sizeof w->host - 1] = '\0';

    int rc = socket_open(w, err);
    if (rc == 0)
        rc = loop_open(w, err);
    if (rc == 0 && w->opts.metrics_host[0] &&
        (rc = kw_metrics_start(&w->loop, &w->opts, &w->metrics, err)) < 0) {
        close_all(w);
        uv_run(&w->loop, UV_RUN_DEFAULT);
        uv_loop_close(&w->loop);
        char why[sizeof err->msg];
        snprintf(why, sizeof why, "%s", err->msg);
        kiln_err_at(err, rc, "--metrics", "--metrics %s:%d: %.600s", w->opts.metrics_host,
                    w->opts.metrics_port, why);
    }
    if (rc == 0 && w->metrics)
        fprintf(stderr, "kiln-worker %s: metrics on %s port %d (/metrics; URL in "
                "%s/metrics.url)\n", w->opts.id, w->opts.metrics_host,
                kw_metrics_port(w->metrics), w->opts.dir);
    if (rc == 0) {
        const int named = w->opts.gpus > 0 && w->opts.gpu_names[0][0];
        fprintf(stderr, "kiln-worker %s: connecting to %s (cores %d, memory %lld MiB, gpus %d%s%s%s, "
                "dir %s)\n", w->opts.id, w->opts.connect, w->opts.cores,
                (long long)w->opts.memory_mb, w->opts.gpus, named ? ": " : "",
                named ? w->opts.gpu_names[0] : "", named && w->opts.gpus > 1 ? ", ..." : "",
                w->opts.dir);
        kw_send(w, status_msg(w, KC_MSG_HELLO));
        uv_run(&w->loop, UV_RUN_DEFAULT);
        uv_loop_close(&w->loop);
        fprintf(stderr, "kiln-worker %s: stopped\n", w->opts.id);
    }
    while (w->out_head) {
        kw_out_t *o = w->out_head;
        w->out_head = o->next;
        kc_msg_destroy(&o->msg);
        kiln_free(o);
    }
    if (w->sock)
        zmq_close(w->sock);
    if (w->zctx)
        zmq_ctx_term(w->zctx);
    kiln_free(w);
    return rc;
}
