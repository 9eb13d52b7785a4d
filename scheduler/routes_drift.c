/* routes_drift.c - drift results over HTTP (docs/api.md, docs/drift.md):
 *   GET /v1/drift?model=NAME&limit=N   results, newest first (summary rows)
 *   GET /v1/drift/JOB_ID               one drift job's stored result
 * kd_route_models hands /v1/drift... here. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "routes.h"
#include "sched.h"
#include "storage/drift_results.h"

/* The stored row as JSON; full adds the result document. */
static json_t *result_json(const st_drift_result_t *r, int full)
{
    json_error_t jerr;
    json_t *o = json_pack("{s:I, s:s?, s:I, s:I, s:b, s:f, s:I, s:I}", "job_id",
                          (json_int_t)r->job_id, "model",
                          r->model_name && r->model_name[0] ? r->model_name : NULL,
                          "model_version", (json_int_t)r->model_version, "created_ns",
                          (json_int_t)r->created_ns, "drifted", r->drifted, "share", r->share,
                          "n_columns", (json_int_t)r->n_columns, "n_drifted",
                          (json_int_t)r->n_drifted);
    if (!o)
        return NULL;
    if (r->child_job_id)
        json_object_set_new(o, "on_drift_job", json_integer(r->child_job_id));
    json_t *doc = full ? json_loads(r->result_json, 0, &jerr) : NULL;
    json_t *cols = json_loads(r->columns_json, 0, &jerr);
    if (doc) {
        json_object_set_new(o, "output", json_incref(json_object_get(doc, "output")));
        json_object_set_new(o, "report", json_incref(json_object_get(doc, "report")));
        json_object_set_new(o, "result", doc);
    }
    json_object_set_new(o, "columns", cols ? cols : json_array());
    return o;
}

static int list_item(const st_drift_result_t *r, void *ud)
{
    json_t *o = result_json(r, 0);
    if (o) {
        json_object_del(o, "columns");
        json_array_append_new(ud, o);
    }
    return 0;
}

int kd_route_drift(struct kd *kd, ka_req_t *req)
{
    const char *p = req->path;
    st_state_t *st = ks_sched_state(kd_sched(kd));
    kiln_err_t err = {0};
    if (strcmp(p, "/v1/drift") && strncmp(p, "/v1/drift/", 10))
        return 0;
    if (strcmp(req->method, "GET")) {
        kd_reply_error(kd, req, 405, NULL, "%s %s: method not allowed", req->method, p);
        return 1;
    }
    if (!strcmp(p, "/v1/drift")) {
        long long limit;
        if (kd_query_limit(kd, req, &limit))
            return 1;
        json_t *list = json_array();
        int rc = st_drift_result_list(st, kd_query_filter(req, "model"), limit, list_item, list,
                                      &err);
        kd_reply_list(kd, req, rc, "drift", list, &err);
        return 1;
    }
    char *end;
    errno = 0;
    long long id = strtoll(p + 10, &end, 10);
    if (errno || *end || id < 1) {
        kd_reply_error(kd, req, 400, "id", "%s: the drift job's id must be a positive integer", p);
        return 1;
    }
    st_drift_result_t r;
    if (st_drift_result_get(st, id, &r, &err) < 0) {
        kd_reply_kerr(kd, req, &err);
        return 1;
    }
    json_t *o = result_json(&r, 1);
    st_drift_result_free(&r);
    if (o)
        kd_reply(kd, req, 200, o, NULL, 0);
    else
        kd_reply_error(kd, req, 500, NULL, "drift result of job %lld: out of memory", id);
    return 1;
}
