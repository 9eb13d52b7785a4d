/* httpd.c - libmicrohttpd (one internal polling thread, suspend/resume) in
 * front of a libuv loop.  A complete request is copied out of MHD (method,
 * path, headers, query, body), its connection suspended and the request
 * queued for the loop; the loop's answer is attached and the connection
 * resumed, and MHD's thread queues the response when it calls us again.
 *
 * Threads and locks: the MHD thread runs on_access/on_completed; the loop
 * thread runs on_async, ka_req_respond* and ka_httpd_stop.  httpd->lock
 * guards the queue, the outstanding list, the counters and, once a request
 * has been handed to the loop, its phase, response and reservation.  It is
 * never held while calling into MHD or the handler. */
#include "httpd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#include "core/kiln_alloc.h"

#define KA_DEFAULT_HOST        "127.0.0.1"
#define KA_DEFAULT_MAX_BODY    ((size_t)1 << 20)
#define KA_DEFAULT_MAX_PENDING 1024
#define KA_STOP_DRAIN_MS       2000
#define KA_ASYNC_BATCH         256     /* requests per loop wake before yielding */

typedef enum {
    KA_PHASE_RECEIVING = 0,     /* MHD thread reads the body */
    KA_PHASE_REJECTED,          /* answered by the MHD thread itself (413, 429, 503) */
    KA_PHASE_QUEUED,            /* suspended, waiting in the queue for the loop */
    KA_PHASE_HANDLING,          /* the handler holds it */
    KA_PHASE_ANSWERED           /* response attached, connection resumed */
} ka_phase_t;

typedef struct {
    const char *key;
    const char *value;
    int         is_header;      /* 1 header, 0 query argument */
} ka_kv_t;

typedef struct ka_conn {
    ka_req_t pub;               /* first member: a ka_req_t * is a ka_conn_t * */
    ka_httpd_t *httpd;
    struct MHD_Connection *mc;  /* NULL once MHD finished with it (an orphan) */
    char  *body;
    size_t body_len, body_cap;
    char  *arena;               /* method, path, keys and values of kv */
    ka_kv_t *kv;
    size_t   n_kv;
    int    reject_status;
    char   reject_msg[160];
    /* guarded by httpd->lock once handed off: */
    ka_phase_t phase;
    int    reserved;            /* holds one of max_pending's slots */
    int    answered;            /* counted in httpd->n_answering */
    struct MHD_Response *response;
    unsigned status;
    struct ka_conn *qnext;      /* the queue for the loop */
    struct ka_conn *prev, *next;/* outstanding: queued or handling */
} ka_conn_t;

struct ka_httpd {
    uv_loop_t *loop;
    uv_async_t async;
    struct MHD_Daemon *mhd;
    ka_handler_fn handler;
    void *ud;
    size_t max_body, max_pending;
    int port;
    pthread_mutex_t lock;
    pthread_cond_t drained;     /* n_answering went down */
    /* guarded by lock: */
    int stopping;
    size_t pending;             /* reserved slots */
    size_t n_answering;         /* answered, response not yet finished by MHD */
    ka_conn_t *queue_head, *queue_tail;
    ka_conn_t *outstanding;
};

char *ka_error_json(int status, const char *field, const char *message)
{
    json_t *inner = json_pack("{s:i, s:s}", "status", status, "message", message ? message : "");
    if (inner && field && json_object_set_new(inner, "field", json_string(field)) < 0) {
        json_decref(inner);
        inner = NULL;
    }
    json_t *obj = inner ? json_pack("{s:o}", "error", inner) : NULL;
    char *text = obj ? json_dumps(obj, JSON_COMPACT) : NULL;
    json_decref(obj);
    if (!text)
        return NULL;
    char *copy = kiln_strdup(text);
    free(text);     /* jansson's allocator is the default malloc */
    return copy;
}

/* A response for the MHD thread's own answers; NULL when out of memory. */
static struct MHD_Response *make_response(const char *content_type, const char *body, size_t len,
                                          int status)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(len, (void *)(body ? body : ""), MHD_RESPMEM_MUST_COPY);
    if (!r)
        return NULL;
    if (MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
                                content_type ? content_type : "application/json") == MHD_NO ||
        (status == 429 && MHD_add_response_header(r, "Retry-After", "1") == MHD_NO)) {
        MHD_destroy_response(r);
        return NULL;
    }
    return r;
}

static struct MHD_Response *make_error(int status, const char *msg)
{
    char *text = ka_error_json(status, NULL, msg);
    if (!text)
        return NULL;
    struct MHD_Response *r = make_response(NULL, text, strlen(text), status);
    kiln_free(text);
    return r;
}

static enum MHD_Result queue_error(struct MHD_Connection *mc, int status, const char *msg)
{
    struct MHD_Response *r = make_error(status, msg);
    if (!r)
        return MHD_NO;
    enum MHD_Result ok = MHD_queue_response(mc, (unsigned)status, r);
    MHD_destroy_response(r);
    return ok;
}

static void release_slot_locked(ka_httpd_t *h, ka_conn_t *c)
{
    if (c->reserved) {
        c->reserved = 0;
        h->pending--;
    }
}

static void outstanding_remove_locked(ka_httpd_t *h, ka_conn_t *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else if (h->outstanding == c)
        h->outstanding = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
}

static void conn_free(ka_conn_t *c)
{
    if (!c)
        return;
    if (c->response)
        MHD_destroy_response(c->response);
    kiln_free(c->body);
    kiln_free(c->arena);
    kiln_free(c->kv);
    kiln_free(c);
}

/* ---- copying a request out of MHD (MHD thread) ---- */

typedef struct {
    ka_conn_t *c;
    size_t n, bytes;            /* counting pass */
    char  *at;                  /* copying pass: next free byte of the arena */
    int    is_header;
} kv_walk_t;

static enum MHD_Result kv_count(void *cls, enum MHD_ValueKind kind, const char *key,
                                const char *value)
{
    (void)kind;
    kv_walk_t *w = cls;
    w->n++;
    w->bytes += strlen(key) + 1 + (value ? strlen(value) : 0) + 1;
    return MHD_YES;
}

static char *arena_put(char **at, const char *s)
{
    char *d = *at;
    size_t n = strlen(s) + 1;
    memcpy(d, s, n);
    *at += n;
    return d;
}

static enum MHD_Result kv_copy(void *cls, enum MHD_ValueKind kind, const char *key,
                               const char *value)
{
    (void)kind;
    kv_walk_t *w = cls;
    ka_kv_t *kv = &w->c->kv[w->c->n_kv++];
    kv->key = arena_put(&w->at, key);
    kv->value = arena_put(&w->at, value ? value : "");
    kv->is_header = w->is_header;
    return MHD_YES;
}

/* Fills c->pub and c->kv from the connection; KILN_ENOMEM when out of memory. */
static int copy_request(ka_conn_t *c, struct MHD_Connection *mc, const char *method,
                        const char *url)
{
    kv_walk_t w = {.c = c};
    MHD_get_connection_values(mc, MHD_HEADER_KIND, kv_count, &w);
    MHD_get_connection_values(mc, MHD_GET_ARGUMENT_KIND, kv_count, &w);
    size_t n = w.n;
    c->arena = kiln_malloc(w.bytes + strlen(method) + strlen(url) + 2);
    c->kv = kiln_calloc(n ? n : 1, sizeof *c->kv);
    if (!c->arena || !c->kv)
        return KILN_ENOMEM;
    w.at = c->arena;
    c->pub.method = arena_put(&w.at, method);
    c->pub.path = arena_put(&w.at, url);
    /* The counts cannot change between the passes: the connection is ours. */
    w.is_header = 1;
    MHD_get_connection_values(mc, MHD_HEADER_KIND, kv_copy, &w);
    w.is_header = 0;
    MHD_get_connection_values(mc, MHD_GET_ARGUMENT_KIND, kv_copy, &w);
    if (!c->body && !(c->body = kiln_malloc(1)))
        return KILN_ENOMEM;
    c->body[c->body_len] = 0;
    c->pub.body = c->body;
    c->pub.body_len = c->body_len;
    return 0;
}

static int append_body(ka_conn_t *c, const char *data, size_t n)
{
    if (c->body_len + n + 1 > c->body_cap) {
        size_t cap = c->body_cap ? c->body_cap : 4096;
        while (cap < c->body_len + n + 1)
            cap *= 2;
        if (cap > c->httpd->max_body + 1)
            cap = c->httpd->max_body + 1;
        char *b = kiln_realloc(c->body, cap);
        if (!b)
            return KILN_ENOMEM;
        c->body = b;
        c->body_cap = cap;
    }
    memcpy(c->body + c->body_len, data, n);
    c->body_len += n;
    return 0;
}

static void reject(ka_conn_t *c, int status, const char *msg)
{
    ka_httpd_t *h = c->httpd;
    pthread_mutex_lock(&h->lock);
    release_slot_locked(h, c);
    pthread_mutex_unlock(&h->lock);
    c->phase = KA_PHASE_REJECTED;
    c->reject_status = status;
    snprintf(c->reject_msg, sizeof c->reject_msg, "%s", msg);
    kiln_free(c->body);
    c->body = NULL;
    c->body_len = c->body_cap = 0;
}

static enum MHD_Result on_first_call(ka_httpd_t *h, struct MHD_Connection *mc, void **con_cls)
{
    ka_conn_t *c = kiln_calloc(1, sizeof *c);
    if (!c)
        return MHD_NO;      /* closes the connection */
    c->httpd = h;
    c->mc = mc;
    *con_cls = c;

    char msg[160];
    const char *cl = MHD_lookup_connection_value(mc, MHD_HEADER_KIND,
                                                 MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl) {
        unsigned long long declared = strtoull(cl, NULL, 10);
        if (declared > h->max_body) {
            /* Answer before reading: MHD then refuses the body and closes. */
            snprintf(msg, sizeof msg, "request body of %llu bytes is over the limit of %zu bytes",
                     declared, h->max_body);
            c->phase = KA_PHASE_REJECTED;
            return queue_error(mc, 413, msg);
        }
    }
    int status = 0;
    pthread_mutex_lock(&h->lock);
    if (h->stopping)
        status = 503;
    else if (h->pending >= h->max_pending)
        status = 429;
    else {
        h->pending++;
        c->reserved = 1;
    }
    pthread_mutex_unlock(&h->lock);
    if (status == 503)
        reject(c, 503, "kilnd is shutting down");
    else if (status == 429) {
        snprintf(msg, sizeof msg, "%zu requests are waiting already; retry in 1 s", h->max_pending);
        reject(c, 429, msg);
    }
    return MHD_YES;
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *mc, const char *url,
                                 const char *method, const char *version,
                                 const char *upload_data, size_t *upload_data_size,
                                 void **con_cls)
{
    (void)version;
    ka_httpd_t *h = cls;
    ka_conn_t *c = *con_cls;
    if (!c)
        return on_first_call(h, mc, con_cls);

    if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;      /* consumed (or discarded) */
        if (c->phase != KA_PHASE_RECEIVING)
            return MHD_YES;
        if (c->body_len + n > h->max_body) {
            char msg[160];
            snprintf(msg, sizeof msg, "request body is over the limit of %zu bytes", h->max_body);
            reject(c, 413, msg);
        } else if (append_body(c, upload_data, n) < 0) {
            reject(c, 503, "kilnd is out of memory");
        }
        return MHD_YES;
    }

    /* The request is complete, or this is the call after a resume. */
    pthread_mutex_lock(&h->lock);
    ka_phase_t phase = c->phase;
    struct MHD_Response *r = c->response;
    unsigned status = c->status;
    c->response = NULL;
    pthread_mutex_unlock(&h->lock);

    switch (phase) {
    case KA_PHASE_ANSWERED: {
        if (!r)
            return MHD_NO;
        enum MHD_Result ok = MHD_queue_response(mc, status, r);
        MHD_destroy_response(r);
        return ok;
    }
    case KA_PHASE_REJECTED:
        return c->reject_status ? queue_error(mc, c->reject_status, c->reject_msg) : MHD_YES;
    case KA_PHASE_QUEUED:
    case KA_PHASE_HANDLING:
        return MHD_YES;     /* a spurious call while suspended: nothing to do yet */
    case KA_PHASE_RECEIVING:
        break;
    }

    if (copy_request(c, mc, method, url) < 0) {
        reject(c, 503, "kilnd is out of memory");
        return queue_error(mc, 503, c->reject_msg);
    }
    /* Suspend before the loop can see it, so its resume always follows. */
    MHD_suspend_connection(mc);
    pthread_mutex_lock(&h->lock);
    int stopping = h->stopping;
    if (!stopping) {
        c->phase = KA_PHASE_QUEUED;
        if (h->queue_tail)
            h->queue_tail->qnext = c;
        else
            h->queue_head = c;
        h->queue_tail = c;
        c->next = h->outstanding;
        if (c->next)
            c->next->prev = c;
        h->outstanding = c;
    } else {
        release_slot_locked(h, c);
        c->phase = KA_PHASE_ANSWERED;
        c->status = 503;
        c->response = make_error(503, "kilnd is shutting down");
    }
    pthread_mutex_unlock(&h->lock);
    if (stopping)
        MHD_resume_connection(mc);
    else
        uv_async_send(&h->async);
    return MHD_YES;
}

static void on_completed(void *cls, struct MHD_Connection *mc, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)mc;
    (void)toe;
    ka_httpd_t *h = cls;
    ka_conn_t *c = *con_cls;
    if (!c)
        return;
    *con_cls = NULL;
    int keep = 0;
    pthread_mutex_lock(&h->lock);
    if (c->phase == KA_PHASE_QUEUED || c->phase == KA_PHASE_HANDLING) {
        /* MHD dropped a connection the loop still holds: the loop's answer
         * will free it (or ka_httpd_stop will). */
        c->mc = NULL;
        keep = 1;
    } else {
        release_slot_locked(h, c);
        if (c->answered) {
            c->answered = 0;
            h->n_answering--;
            pthread_cond_broadcast(&h->drained);
        }
    }
    pthread_mutex_unlock(&h->lock);
    if (!keep)
        conn_free(c);
}

/* ---- the loop side ---- */

static void on_async(uv_async_t *async)
{
    ka_httpd_t *h = async->data;
    for (int i = 0; i < KA_ASYNC_BATCH; i++) {
        pthread_mutex_lock(&h->lock);
        ka_conn_t *c = h->stopping ? NULL : h->queue_head;
        if (c) {
            h->queue_head = c->qnext;
            if (!h->queue_head)
                h->queue_tail = NULL;
            c->qnext = NULL;
            c->phase = KA_PHASE_HANDLING;
        }
        pthread_mutex_unlock(&h->lock);
        if (!c)
            return;
        h->handler(h->ud, &c->pub);     /* may answer, keep, or even stop the server */
    }
    pthread_mutex_lock(&h->lock);
    int more = !h->stopping && h->queue_head;
    pthread_mutex_unlock(&h->lock);
    if (more)
        uv_async_send(async);   /* let other handles run between batches */
}

/* Adds "Name: value\n" lines to r; MHD_NO when one is malformed or no memory. */
static int add_headers(struct MHD_Response *r, const char *headers)
{
    while (headers && *headers) {
        const char *nl = strchr(headers, '\n');
        size_t n = nl ? (size_t)(nl - headers) : strlen(headers);
        char line[512];
        if (n >= sizeof line)
            return 0;
        memcpy(line, headers, n);
        line[n] = '\0';
        char *colon = strchr(line, ':');
        if (!colon)
            return 0;
        *colon = '\0';
        const char *v = colon + 1;
        while (*v == ' ')
            v++;
        if (MHD_add_response_header(r, line, v) == MHD_NO)
            return 0;
        headers += n + (nl ? 1 : 0);
    }
    return 1;
}

void ka_req_respond(ka_req_t *req, int status, const char *content_type, const char *body,
                    size_t len)
{
    ka_req_respond_hdrs(req, status, content_type, NULL, body, len);
}

/* Hands r (NULL: close the connection) to the MHD thread as req's answer. */
static void respond_with(ka_req_t *req, int status, struct MHD_Response *r)
{
    ka_conn_t *c = (ka_conn_t *)req;
    ka_httpd_t *h = c->httpd;
    pthread_mutex_lock(&h->lock);
    outstanding_remove_locked(h, c);
    release_slot_locked(h, c);
    struct MHD_Connection *mc = c->mc;
    if (mc) {
        c->phase = KA_PHASE_ANSWERED;
        c->response = r;        /* NULL: on_access closes the connection */
        c->status = (unsigned)status;
        c->answered = 1;
        h->n_answering++;
    }
    pthread_mutex_unlock(&h->lock);
    if (mc) {
        MHD_resume_connection(mc);      /* c belongs to the MHD thread from here */
    } else {
        if (r)
            MHD_destroy_response(r);
        conn_free(c);
    }
}

void ka_req_respond_hdrs(ka_req_t *req, int status, const char *content_type,
                         const char *headers, const char *body, size_t len)
{
    if (!req)
        return;
    struct MHD_Response *r = make_response(content_type, body, len, status);
    if (r && headers && !add_headers(r, headers)) {
        MHD_destroy_response(r);
        r = NULL;
    }
    respond_with(req, status, r);
}

void ka_req_respond_fd(ka_req_t *req, int status, const char *content_type, const char *headers,
                       int fd, uint64_t offset, uint64_t len)
{
    if (!req) {
        if (fd >= 0)
            close(fd);
        return;
    }
    /* MHD owns fd from here (closed with the response); it reads with
     * pread as the client takes the bytes, so a bundle pulled by many
     * agents is never held in memory. */
    struct MHD_Response *r = fd >= 0 ? MHD_create_response_from_fd_at_offset64(len, fd, offset)
                                     : NULL;
    if (!r && fd >= 0)
        close(fd);
    if (r && (MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
                                      content_type ? content_type
                                                   : "application/octet-stream") == MHD_NO ||
              (headers && !add_headers(r, headers)))) {
        MHD_destroy_response(r);
        r = NULL;
    }
    respond_with(req, status, r);
}

void ka_req_respond_json(ka_req_t *req, int status, json_t *body)
{
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (!text) {
        ka_req_respond_error(req, 500, NULL, "cannot format the response");
        return;
    }
    ka_req_respond(req, status, "application/json", text, strlen(text));
    free(text);
}

void ka_req_respond_error(ka_req_t *req, int status, const char *field, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    char *text = ka_error_json(status, field, msg);
    if (text)
        ka_req_respond(req, status, "application/json", text, strlen(text));
    else
        ka_req_respond(req, status, "text/plain", msg, strlen(msg));
    kiln_free(text);
}

static const char *find_kv(const ka_req_t *req, const char *key, int is_header)
{
    if (!req || !key)
        return NULL;
    const ka_conn_t *c = (const ka_conn_t *)req;
    for (size_t i = 0; i < c->n_kv; i++) {
        const ka_kv_t *kv = &c->kv[i];
        if (kv->is_header != is_header)
            continue;
        if (is_header ? !strcasecmp(kv->key, key) : !strcmp(kv->key, key))
            return kv->value;
    }
    return NULL;
}

const char *ka_req_query(const ka_req_t *req, const char *key) { return find_kv(req, key, 0); }

const char *ka_req_header(const ka_req_t *req, const char *name) { return find_kv(req, name, 1); }

/* ---- start and stop ---- */

static void on_async_closed(uv_handle_t *handle)
{
    ka_httpd_t *h = handle->data;
    pthread_cond_destroy(&h->drained);
    pthread_mutex_destroy(&h->lock);
    kiln_free(h);
}


int ka_httpd_start(uv_loop_t *loop, const ka_httpd_opts_t *opts, ka_handler_fn handler,
                   void *ud, ka_httpd_t **out, kiln_err_t *err)
{
    ka_httpd_opts_t o = opts ? *opts : (ka_httpd_opts_t){0};
    const char *host = o.host && o.host[0] ? o.host : KA_DEFAULT_HOST;
    if (!loop || !handler || !out)
        return kiln_err_set(err, KILN_EINVAL, "ka_httpd_start: loop, handler and out are required");
    *out = NULL;
    if (o.port < 0 || o.port > 65535)
        return kiln_err_at(err, KILN_EINVAL, "port", "port %d is not in 0..65535", o.port);

    struct sockaddr_in sin = {0};
    struct sockaddr_in6 sin6 = {0};
    const struct sockaddr *sa;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | MHD_ALLOW_SUSPEND_RESUME;
    if (inet_pton(AF_INET, host, &sin.sin_addr) == 1) {
        sin.sin_family = AF_INET;
        sin.sin_port = htons((uint16_t)o.port);
        sa = (const struct sockaddr *)&sin;
    } else if (inet_pton(AF_INET6, host, &sin6.sin6_addr) == 1) {
        sin6.sin6_family = AF_INET6;
        sin6.sin6_port = htons((uint16_t)o.port);
        sa = (const struct sockaddr *)&sin6;
        flags |= MHD_USE_IPv6;
    } else {
        return kiln_err_at(err, KILN_EINVAL, "host", "host '%s' is not a numeric IPv4 or IPv6 address",
                           host);
    }

    ka_httpd_t *h = kiln_calloc(1, sizeof *h);
    if (!h)
        return kiln_err_set(err, KILN_ENOMEM, "no memory for the HTTP server");
    h->loop = loop;
    h->handler = handler;
    h->ud = ud;
    h->max_body = o.max_body ? o.max_body : KA_DEFAULT_MAX_BODY;
    h->max_pending = o.max_pending ? o.max_pending : KA_DEFAULT_MAX_PENDING;
    if (pthread_mutex_init(&h->lock, NULL)) {
        kiln_free(h);
        return kiln_err_set(err, KILN_ENOMEM, "cannot create the HTTP server's lock");
    }
    if (pthread_cond_init(&h->drained, NULL)) {
        pthread_mutex_destroy(&h->lock);
        kiln_free(h);
        return kiln_err_set(err, KILN_ENOMEM, "cannot create the HTTP server's condition");
    }
    int uvrc = uv_async_init(loop, &h->async, on_async);
    if (uvrc < 0) {
        pthread_cond_destroy(&h->drained);
        pthread_mutex_destroy(&h->lock);
        kiln_free(h);
        return kiln_err_set(err, KILN_EIO, "cannot join the loop: %s", uv_strerror(uvrc));
    }
    h->async.data = h;

    /* Connections beyond pending: room for the ones that get 429 quickly. */
    unsigned conn_limit = (unsigned)(h->max_pending + 256 < 60000 ? h->max_pending + 256 : 60000);
    errno = 0;
    int tls = o.tls_cert_pem && o.tls_key_pem;
    if (tls)
        h->mhd = MHD_start_daemon(flags | MHD_USE_TLS, (uint16_t)o.port, NULL, NULL, on_access, h,
                                  MHD_OPTION_SOCK_ADDR, sa,
                                  MHD_OPTION_NOTIFY_COMPLETED, on_completed, h,
                                  MHD_OPTION_CONNECTION_LIMIT, conn_limit,
                                  MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)60,
                                  MHD_OPTION_HTTPS_MEM_KEY, o.tls_key_pem,
                                  MHD_OPTION_HTTPS_MEM_CERT, o.tls_cert_pem,
                                  MHD_OPTION_END);
    else
        h->mhd = MHD_start_daemon(flags, (uint16_t)o.port, NULL, NULL, on_access, h,
                                  MHD_OPTION_SOCK_ADDR, sa,
                                  MHD_OPTION_NOTIFY_COMPLETED, on_completed, h,
                                  MHD_OPTION_CONNECTION_LIMIT, conn_limit,
                                  MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)60,
                                  MHD_OPTION_END);
    if (!h->mhd) {
        int e = errno;
        /* The handle's memory is freed by its close callback, on a later loop turn. */
        uv_close((uv_handle_t *)&h->async, on_async_closed);
        return kiln_err_at(err, KILN_EIO, "port", "cannot listen on %s:%d%s%s%s", host, o.port,
                           tls ? " with TLS (is the certificate and key PEM a matching pair?)"
                               : "",
                           e ? ": " : "", e ? strerror(e) : "");
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(h->mhd, MHD_DAEMON_INFO_BIND_PORT);
    h->port = info ? info->port : o.port;
    *out = h;
    return 0;
}

int ka_httpd_port(const ka_httpd_t *httpd) { return httpd ? httpd->port : -1; }

void ka_httpd_stop(ka_httpd_t **httpd)
{
    if (!httpd || !*httpd)
        return;
    ka_httpd_t *h = *httpd;
    *httpd = NULL;

    /* Answer everything the loop has not: 503, resumed outside the lock. */
    ka_conn_t *resume = NULL, *orphans = NULL;
    pthread_mutex_lock(&h->lock);
    h->stopping = 1;
    h->queue_head = h->queue_tail = NULL;
    while (h->outstanding) {
        ka_conn_t *c = h->outstanding;
        outstanding_remove_locked(h, c);
        release_slot_locked(h, c);
        c->qnext = NULL;
        if (!c->mc) {
            c->next = orphans;
            orphans = c;
            continue;
        }
        c->phase = KA_PHASE_ANSWERED;
        c->status = 503;
        c->response = make_error(503, "kilnd is shutting down");
        c->answered = 1;
        h->n_answering++;
        c->next = resume;
        resume = c;
    }
    pthread_mutex_unlock(&h->lock);
    while (resume) {
        ka_conn_t *c = resume;
        resume = c->next;       /* read before the resume hands c to MHD */
        c->next = NULL;
        MHD_resume_connection(c->mc);
    }
    while (orphans) {
        ka_conn_t *c = orphans;
        orphans = c->next;
        conn_free(c);
    }

    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += KA_STOP_DRAIN_MS / 1000;
    pthread_mutex_lock(&h->lock);
    while (h->n_answering > 0)
        if (pthread_cond_timedwait(&h->drained, &h->lock, &deadline) == ETIMEDOUT)
            break;
    pthread_mutex_unlock(&h->lock);

    MHD_stop_daemon(h->mhd);    /* joins MHD's thread; on_completed frees the rest */
    h->mhd = NULL;
    uv_close((uv_handle_t *)&h->async, on_async_closed);
}
