/* routes.h - kilnd's HTTP API (docs/api.md): each request, on the loop
 * thread, becomes a scheduler call and a JSON answer.  Answers are queued
 * (kd_reply) and leave only after the loop turn's transaction commits. */
#ifndef KILN_SCHEDULER_ROUTES_H
#define KILN_SCHEDULER_ROUTES_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "api/httpd.h"
#include "sched.h"

struct kd;

typedef struct {
    ka_req_t   *req;
    int         status;
    json_t     *body;     /* JSON answer (owned), or NULL when text is set */
    const char *text;     /* kiln_malloc'd text/plain answer, or NULL */
    size_t      len;
    const char *content_type;   /* text's (static string); NULL: text/plain; charset=utf-8 */
    char       *headers;  /* kiln_malloc'd "Name: value\n" lines for a text answer, or NULL */
    int         from_fd;  /* 1: the body is fd_len bytes of fd from fd_off (fd owned) */
    int         fd;
    uint64_t    fd_off, fd_len;
} kd_reply_t;

/* routes.c */
void kd_route(struct kd *kd, ka_req_t *req);
/* Queues {"error": {"status", "message", "field"}} (field may be NULL). */
void kd_reply_error(struct kd *kd, ka_req_t *req, int status, const char *field,
                    const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* A kiln error as its HTTP status (400, 404, 409, 429, 503, 500) and message. */
void kd_reply_kerr(struct kd *kd, ka_req_t *req, const kiln_err_t *err);

/* routes_models.c: /v1/models..., /v1/runs...; 1 when it answered req. */
int kd_route_models(struct kd *kd, ka_req_t *req);
/* ?limit= of a list route into *limit (100 when absent); 1 when it was bad
 * and a 400 went out, else 0. */
int kd_query_limit(struct kd *kd, ka_req_t *req, long long *limit);
/* ?name= of a list route as a filter: NULL when absent or empty (borrowed from req). */
const char *kd_query_filter(ka_req_t *req, const char *name);
/* Answers a list route whose st_*_list call returned rc after filling list
 * (stolen): 200 {key: list}, or err's status when rc < 0. */
void kd_reply_list(struct kd *kd, ka_req_t *req, int rc, const char *key, json_t *list,
                   const kiln_err_t *err);
/* routes_drift.c: /v1/drift...; 1 when it answered req (kd_route_models asks). */
int kd_route_drift(struct kd *kd, ka_req_t *req);

/* kilnd.c */
ks_sched_t *kd_sched(struct kd *kd);
/* Queues an answer: body (stolen) as JSON, or text (kiln_malloc'd, stolen). */
void kd_reply(struct kd *kd, ka_req_t *req, int status, json_t *body, const char *text,
              size_t len);
/* Queues text (kiln_malloc'd, stolen) with its Content-Type (a static string). */
void kd_reply_text(struct kd *kd, ka_req_t *req, int status, const char *content_type,
                   const char *text, size_t len);
/* The same with extra headers ("Name: value\n" lines, kiln_malloc'd, stolen;
 * may be NULL). */
void kd_reply_text_hdrs(struct kd *kd, ka_req_t *req, int status, const char *content_type,
                        char *headers, const char *text, size_t len);

/* Queues fd_len bytes of the open file fd (stolen: closed when sent or on
 * failure) from fd_off, with headers as above: served from the file by
 * libmicrohttpd, not copied into memory. */
void kd_reply_fd(struct kd *kd, ka_req_t *req, int status, const char *content_type,
                 char *headers, int fd, uint64_t fd_off, uint64_t fd_len);

/* routes_fleet.c: the admin API's fleet routes (/v1/fleets..., /v1/devices...,
 * /v1/publish, /v1/rollback, /v1/rollouts...); 1 when it answered req. */
int kd_route_fleet(struct kd *kd, ka_req_t *req);
/* routes_edge.c: the fleet endpoint's routes for agents (/edge/v1/...), on
 * the separate HTTPS listener; answers every request. */
void kd_route_edge(struct kd *kd, ka_req_t *req);
/* The state directory kilnd runs in (artifacts, fleet keys). */
const char *kd_dir(struct kd *kd);

#endif
