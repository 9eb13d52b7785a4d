/* routes.h - kilnd's HTTP API (docs/api.md): each request, on the loop
 * thread, becomes a scheduler call and a JSON answer.  Answers are queued
 * (kd_reply) and leave only after the loop turn's transaction commits. */
#ifndef KILN_SCHEDULER_ROUTES_H
#define KILN_SCHEDULER_ROUTES_H

#include <jansson.h>
#include <stddef.h>

#include "api/httpd.h"
#include "sched.h"

struct kd;

typedef struct {
    ka_req_t   *req;
    int         status;
    json_t     *body;     /* JSON answer (owned), or NULL when text is set */
    const char *text;     /* kiln_malloc'd text/plain answer, or NULL */
    size_t      len;
} kd_reply_t;

/* routes.c */
void kd_route(struct kd *kd, ka_req_t *req);

/* kilnd.c */
ks_sched_t *kd_sched(struct kd *kd);
/* Queues an answer: body (stolen) as JSON, or text (kiln_malloc'd, stolen). */
void kd_reply(struct kd *kd, ka_req_t *req, int status, json_t *body, const char *text,
              size_t len);

#endif
