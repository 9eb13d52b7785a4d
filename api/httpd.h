/* httpd.h - the HTTP JSON server kilnd mounts: libmicrohttpd accepts and
 * reads requests on its own thread, and every complete request is handed to
 * one libuv loop thread (a mutex-protected queue plus uv_async_send), so the
 * handler may touch scheduler state without locks.  A request may be
 * answered during the handler or later, on the loop thread. */
#ifndef KA_HTTPD_H
#define KA_HTTPD_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <uv.h>

#include "core/kiln_err.h"

typedef struct ka_httpd ka_httpd_t;

/* One request, as the handler sees it.  Every field is owned by the server
 * and valid until the request is answered (ka_req_respond*), which frees it. */
typedef struct ka_req {
    const char *method;     /* "GET", "POST", ... */
    const char *path;       /* URL path, percent-decoded, without the query */
    const char *body;       /* NUL-terminated copy of the body; "" when none */
    size_t      body_len;   /* bytes in body, not counting the NUL */
} ka_req_t;

/* Called on the loop thread for each request.  It must answer req exactly
 * once, now or on a later loop turn, with ka_req_respond* on the loop thread. */
typedef void (*ka_handler_fn)(void *ud, ka_req_t *req);

typedef struct {
    const char *host;       /* numeric address to bind; NULL: "127.0.0.1" ("::1" works too) */
    int         port;       /* 0: a free port (see ka_httpd_port) */
    size_t      max_body;   /* 0: 1 MiB; a bigger body gets 413 and never reaches the handler */
    size_t      max_pending;/* 0: 1024; requests admitted and not yet answered, beyond which
                             * new ones get 429 with Retry-After: 1 from the HTTP thread */
    const char *tls_cert_pem;   /* both set: HTTPS (GnuTLS) with this PEM certificate chain */
    const char *tls_key_pem;    /* and this PEM private key (the texts, not paths) */
} ka_httpd_opts_t;

/* Starts serving on opts->host:opts->port (opts may be NULL: all defaults);
 * handler(ud, req) runs on the thread running `loop`.  Call on that thread
 * (the async handle joins the loop).  *out is the server, stopped with
 * ka_httpd_stop.  Fails with KILN_EIO when the address cannot be bound
 * (the loop must then run once more to release the handle),
 * KILN_EINVAL for a host that is not a numeric address. */
int ka_httpd_start(uv_loop_t *loop, const ka_httpd_opts_t *opts, ka_handler_fn handler,
                   void *ud, ka_httpd_t **out, kiln_err_t *err);

/* The bound port (the one picked when opts->port was 0). */
int ka_httpd_port(const ka_httpd_t *httpd);

/* Stops the server, on the loop thread (a handler may call it).  Every
 * request not yet answered - waiting for the loop or held by the handler -
 * gets 503 and is freed: after this returns, the caller must not touch any
 * ka_req_t it still holds (answer them first if you prefer another status).
 * Waits up to 2 s for those 503s to be written, then closes every
 * connection.  The last memory is released by the async handle's close
 * callback, so the loop must run once more (uv_run returns after it).
 * Sets *httpd to NULL; NULL or *httpd == NULL is a no-op. */
void ka_httpd_stop(ka_httpd_t **httpd);

/* Query argument `key` of the request (percent-decoded), or NULL when absent;
 * "" for "?key" with no value.  Borrowed: valid until the request is answered. */
const char *ka_req_query(const ka_req_t *req, const char *key);
/* Request header `name` (case-insensitive), or NULL.  Borrowed as above. */
const char *ka_req_header(const ka_req_t *req, const char *name);

/* Answers req with status, a Content-Type (NULL: application/json) and a
 * copy of body[0..len) (body may be NULL when len is 0).  Frees req: call
 * exactly once per request, on the loop thread.  A 429 gets "Retry-After: 1"
 * added.  When even the response cannot be allocated, the connection is
 * closed instead. */
void ka_req_respond(ka_req_t *req, int status, const char *content_type, const char *body,
                    size_t len);
/* The same with extra response headers: headers is "Name: value" lines,
 * each ended by '\n' (NULL: none). */
void ka_req_respond_hdrs(ka_req_t *req, int status, const char *content_type,
                         const char *headers, const char *body, size_t len);
/* Answers with len bytes of the open file fd from offset, read by
 * libmicrohttpd as the client takes them (nothing copied into memory).
 * fd is owned from the call on: closed when the response is done, or at
 * once when it cannot be made (the connection is then closed).  Content-Type
 * NULL: application/octet-stream; headers as for ka_req_respond_hdrs. */
void ka_req_respond_fd(ka_req_t *req, int status, const char *content_type, const char *headers,
                       int fd, uint64_t offset, uint64_t len);
/* Answers with the compact JSON text of body; steals the reference to body
 * (NULL answers 500). */
void ka_req_respond_json(ka_req_t *req, int status, json_t *body);
/* Answers {"error": {"status": status, "message": "...", "field": field}};
 * "field" is left out when field is NULL. */
void ka_req_respond_error(ka_req_t *req, int status, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* The same error object as text, for code outside a request (the HTTP
 * thread's own 413/429/503).  New string from kiln_malloc, or NULL. */
char *ka_error_json(int status, const char *field, const char *message);

#endif
