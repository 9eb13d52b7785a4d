/* routes.c - kilnd's HTTP API (routes.h, docs/api.md). */
#include "routes.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cluster/prom.h"
#include "core/kiln_alloc.h"
#include "routes_ui.h"

#define LOG_TAIL_MAX ((size_t)1 << 20)

void kd_reply_error(struct kd *kd, ka_req_t *req, int status, const char *field,
                    const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    json_t *e = json_pack("{s:i, s:s}", "status", status, "message", msg);
    if (e && field && field[0])
        json_object_set_new(e, "field", json_string(field));
    kd_reply(kd, req, status, e ? json_pack("{s:o}", "error", e) : NULL, NULL, 0);
}

/* A kiln error as an HTTP status. */
static int status_of(int code)
{
    switch (code) {
    case KILN_EJSON:
    case KILN_ESPEC:
    case KILN_EINVAL:
    case KILN_ETYPE:
    case KILN_EUNSUPPORTED: return 400;
    case KILN_ENOTFOUND: return 404;
    case KILN_ESTATE: return 409;
    case KILN_EBUSY: return 429;
    case KILN_ENOMEM: return 503;
    default: return 500;
    }
}

void kd_reply_kerr(struct kd *kd, ka_req_t *req, const kiln_err_t *err)
{
    kd_reply_error(kd, req, status_of(err->code), err->where[0] ? err->where : NULL, "%s",
                err->msg);
}

int kd_query_limit(struct kd *kd, ka_req_t *req, long long *limit)
{
    const char *v = ka_req_query(req, "limit");
    *limit = 100;
    if (!v)
        return 0;
    char *end;
    errno = 0;
    *limit = strtoll(v, &end, 10);
    if (errno || *end || *limit < 1 || *limit > 100000) {
        kd_reply_error(kd, req, 400, "limit", "limit: must be an integer in 1..100000");
        return 1;
    }
    return 0;
}

const char *kd_query_filter(ka_req_t *req, const char *name)
{
    const char *v = ka_req_query(req, name);
    return v && v[0] ? v : NULL;
}

void kd_reply_list(struct kd *kd, ka_req_t *req, int rc, const char *key, json_t *list,
                   const kiln_err_t *err)
{
    if (rc < 0) {
        json_decref(list);
        kd_reply_kerr(kd, req, err);
    } else {
        kd_reply(kd, req, 200, json_pack("{s:o}", key, list), NULL, 0);
    }
}

/* "/v1/jobs/12/cancel" -> id 12, rest "/cancel".  0 if not a job path, -1
 * when the segment after /v1/jobs/ is not a positive integer ("abc", "-3"). */
static int job_path(const char *path, int64_t *id, const char **rest)
{
    if (strncmp(path, "/v1/jobs/", 9))
        return 0;
    const char *p = path + strlen("/v1/jobs/");
    if (*p < '0' || *p > '9')
        return -1;
    errno = 0;
    char *end;
    long long v = strtoll(p, &end, 10);
    if (errno || v <= 0 || (*end && *end != '/'))
        return -1;
    *id = v;
    *rest = end;
    return 1;
}

static void submit(struct kd *kd, ka_req_t *req)
{
    ks_sched_t *s = kd_sched(kd);
    kiln_err_t err = {0};
    int64_t id = 0;
    int existed = 0;
    if (req->body_len == 0) {
        kd_reply_error(kd, req, 400, NULL, "job: the request has no body (a JSON job spec)");
        return;
    }
    const char *key = ka_req_header(req, "Idempotency-Key");
    if (ks_sched_submit(s, req->body, req->body_len, key, &id, &existed, &err) < 0) {
        if (err.code == KILN_ENOTFOUND)   /* a job or model the spec names: the spec is bad */
            kd_reply_error(kd, req, 400, err.where[0] ? err.where : "depends_on", "%s", err.msg);
        else
            kd_reply_kerr(kd, req, &err);
        return;
    }
    json_t *job = existed ? ks_sched_job_json(s, id, &err) : NULL;
    const char *state = job ? json_string_value(json_object_get(job, "state")) : "queued";
    kd_reply(kd, req, existed ? 200 : 201,
             json_pack("{s:I, s:s, s:b}", "id", (json_int_t)id, "state", state ? state : "queued",
                       "existed", existed),
             NULL, 0);
    json_decref(job);
}

static void list(struct kd *kd, ka_req_t *req)
{
    kiln_err_t err = {0};
    st_state_status_t st, *stp = NULL;
    const char *state = ka_req_query(req, "state");
    const char *project = ka_req_query(req, "project");
    const char *limit_s = ka_req_query(req, "limit");
    if (state) {
        if (st_state_status_parse(state, &st, &err) < 0) {
            kd_reply_error(kd, req, 400, "state",
                        "state: \"%s\" is not a job state (queued, running, succeeded, failed, "
                        "cancelled, timeout, node_fail, out_of_memory)", state);
            return;
        }
        stp = &st;
    }
    int64_t limit = 100;
    if (limit_s) {
        char *end;
        errno = 0;
        long long v = strtoll(limit_s, &end, 10);
        if (errno || *end || v < 1 || v > 100000) {
            kd_reply_error(kd, req, 400, "limit", "limit: must be an integer in 1..100000");
            return;
        }
        limit = v;
    }
    json_t *o = ks_sched_jobs_json(kd_sched(kd), stp, project && project[0] ? project : NULL,
                                   limit, &err);
    if (!o)
        kd_reply_kerr(kd, req, &err);
    else
        kd_reply(kd, req, 200, o, NULL, 0);
}

static void logs(struct kd *kd, ka_req_t *req, int64_t id)
{
    kiln_err_t err = {0};
    char path[1200];
    if (ks_sched_log_path(kd_sched(kd), id, path, sizeof path, &err) < 0) {
        kd_reply_kerr(kd, req, &err);
        return;
    }
    FILE *f = fopen(path, "r");
    if (!f) {
        char *empty = kiln_strdup("");
        kd_reply(kd, req, 200, NULL, empty, 0);
        return;
    }
    /* The tail: a job's log is read often while it runs and may be long. */
    struct stat sb;
    size_t size = fstat(fileno(f), &sb) == 0 ? (size_t)sb.st_size : 0;
    size_t n = size > LOG_TAIL_MAX ? LOG_TAIL_MAX : size;
    if (size > n)
        fseek(f, (long)(size - n), SEEK_SET);
    char *buf = kiln_malloc(n + 1);
    size_t got = buf ? fread(buf, 1, n, f) : 0;
    fclose(f);
    if (!buf) {
        kd_reply_error(kd, req, 503, NULL, "out of memory reading the log");
        return;
    }
    buf[got] = '\0';
    kd_reply(kd, req, 200, NULL, buf, got);
}

void kd_route(struct kd *kd, ka_req_t *req)
{
    ks_sched_t *s = kd_sched(kd);
    const char *m = req->method, *p = req->path;
    int get = !strcmp(m, "GET"), post = !strcmp(m, "POST");
    kiln_err_t err = {0};

    if (!strcmp(p, "/v1/health") || !strcmp(p, "/health")) {
        if (!get)
            goto bad_method;
        kd_reply(kd, req, 200, ks_sched_health_json(s), NULL, 0);
        return;
    }
    if (!strcmp(p, "/metrics")) {
        /* Open like the rest of the API (docs/metrics.md, "Access"). */
        if (!get)
            goto bad_method;
        char *text = NULL;
        size_t len = 0;
        if (ks_sched_metrics(s, &text, &len, &err) < 0)
            kd_reply_kerr(kd, req, &err);
        else
            kd_reply_text(kd, req, 200, KP_CONTENT_TYPE, text, len);
        return;
    }
    if (kd_route_models(kd, req))
        return;
    if (kd_route_fleet(kd, req))   /* fleets, devices, rollouts (docs/api.md, "Fleets") */
        return;
    if (kd_route_ui(kd, req))   /* the dashboard, /ui/ (docs/dashboard.md) */
        return;
    if (!strcmp(p, "/v1/workers")) {
        if (!get)
            goto bad_method;
        kd_reply(kd, req, 200, ks_sched_workers_json(s), NULL, 0);
        return;
    }
    if (!strcmp(p, "/v1/jobs") || !strcmp(p, "/v1/jobs/")) {
        if (post)
            submit(kd, req);
        else if (get)
            list(kd, req);
        else
            goto bad_method;
        return;
    }
    int64_t id;
    const char *rest;
    int jp = job_path(p, &id, &rest);
    if (jp < 0) {
        kd_reply_error(kd, req, 400, "id", "%s: the job id must be a positive integer", p);
        return;
    }
    if (jp > 0 && (!*rest || !strcmp(rest, "/"))) {
        if (!get)
            goto bad_method;
        json_t *o = ks_sched_job_json(s, id, &err);
        if (!o)
            kd_reply_kerr(kd, req, &err);
        else
            kd_reply(kd, req, 200, o, NULL, 0);
        return;
    }
    if (jp > 0 && !strcmp(rest, "/cancel")) {
        if (!post)
            goto bad_method;
        if (ks_sched_cancel(s, id, &err) < 0) {
            kd_reply_kerr(kd, req, &err);
            return;
        }
        kd_reply(kd, req, 200, json_pack("{s:I, s:s}", "id", (json_int_t)id, "state", "cancelled"),
                 NULL, 0);
        return;
    }
    if (jp > 0 && !strcmp(rest, "/logs")) {
        if (!get)
            goto bad_method;
        logs(kd, req, id);
        return;
    }
    kd_reply_error(kd, req, 404, NULL, "%s %s: no such endpoint (see docs/api.md)", m, p);
    return;
bad_method:
    kd_reply_error(kd, req, 405, NULL, "%s %s: method not allowed", m, p);
}
