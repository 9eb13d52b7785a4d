/* routes_models.c - the model registry over HTTP (docs/api.md):
 *   GET  /v1/models                       names, latest versions, aliases
 *   GET  /v1/models/REF                   REF = NAME, NAME@VERSION, NAME@ALIAS: the version and its run
 *   POST /v1/models/NAME/promote          {"version": 3, "alias": "production"}
 *   POST /v1/models/NAME/rollback         {"alias": "production"}
 *   GET  /v1/runs?model=NAME&limit=N      runs, newest first
 *   GET  /v1/runs/ID                      one run
 *   GET  /v1/drift...                     drift results (routes_drift.c) */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "routes.h"
#include "sched.h"
#include "storage/registry.h"

static json_t *run_json(const st_run_t *r)
{
    json_error_t jerr;
    json_t *params = json_loads(r->params_json, 0, &jerr);
    json_t *metrics = json_loads(r->metrics_json, 0, &jerr);
    return json_pack("{s:I, s:I, s:s, s:s, s:o, s:I, s:s, s:s, s:s, s:o, s:f, s:b, s:s, s:I}",
                     "id", (json_int_t)r->id, "job_id", (json_int_t)r->job_id, "model",
                     r->model_name, "kind", r->kind, "params", params ? params : json_null(),
                     "seed", (json_int_t)r->seed, "dataset_sha256", r->dataset_sha256,
                     "featspec_sha256", r->featspec_sha256, "code_version", r->code_version,
                     "metrics", metrics ? metrics : json_null(), "duration_s", r->duration_s,
                     "accepted", r->accepted, "artifact_sha256", r->artifact_sha256,
                     "created_ns", (json_int_t)r->created_ns);
}

static int alias_item(const char *alias, int64_t version, void *ud)
{
    json_object_set_new(ud, alias, json_integer(version));
    return 0;
}

typedef struct {
    st_state_t *st;
    json_t     *list;
} models_ud_t;

static int model_item(const char *name, int64_t latest, int64_t n, void *ud)
{
    models_ud_t *m = ud;
    json_t *aliases = json_object();
    kiln_err_t err;
    st_registry_alias_list(m->st, name, alias_item, aliases, &err);
    json_array_append_new(m->list, json_pack("{s:s, s:I, s:I, s:o}", "name", name, "latest",
                                             (json_int_t)latest, "versions", (json_int_t)n,
                                             "aliases", aliases));
    return 0;
}

static int run_item(const st_run_t *r, void *ud)
{
    json_t *o = run_json(r);
    if (o)
        json_array_append_new(ud, o);
    return 0;
}

/* The body's JSON object, or an answered 400. */
static json_t *body_object(struct kd *kd, ka_req_t *req)
{
    json_error_t jerr;
    json_t *b = req->body_len ? json_loadb(req->body, req->body_len, 0, &jerr) : json_object();
    if (!json_is_object(b)) {
        json_decref(b);
        kd_reply_error(kd, req, 400, NULL, "the body must be a JSON object");
        return NULL;
    }
    return b;
}

static void promote(struct kd *kd, ka_req_t *req, st_state_t *st, const char *name, int back)
{
    json_t *b = body_object(kd, req);
    if (!b)
        return;
    const char *key;
    json_t *v;
    json_object_foreach(b, key, v) {
        if (strcmp(key, "alias") && (back || strcmp(key, "version"))) {
            kd_reply_error(kd, req, 400, key, "%s: unknown field", key);
            json_decref(b);
            return;
        }
    }
    const json_t *a = json_object_get(b, "alias");
    const char *alias = a ? json_string_value(a) : "production";
    if (!alias) {
        kd_reply_error(kd, req, 400, "alias", "alias: must be a string");
        json_decref(b);
        return;
    }
    kiln_err_t err = {0};
    int64_t version = 0;
    int rc;
    if (back) {
        rc = st_registry_alias_rollback(st, name, alias, ks_now_ns(), &version, &err);
    } else {
        const json_t *ver = json_object_get(b, "version");
        if (!json_is_integer(ver) || json_integer_value(ver) < 1) {
            kd_reply_error(kd, req, 400, "version", "version: a version number (>= 1) is required");
            json_decref(b);
            return;
        }
        version = json_integer_value(ver);
        rc = st_registry_alias_set(st, name, alias, version, ks_now_ns(), &err);
    }
    if (rc < 0)
        kd_reply_kerr(kd, req, &err);
    else
        kd_reply(kd, req, 200,
                 json_pack("{s:s, s:s, s:I}", "model", name, "alias", alias, "version",
                           (json_int_t)version),
                 NULL, 0);
    json_decref(b);
}

int kd_route_models(struct kd *kd, ka_req_t *req)
{
    const char *p = req->path;
    int get = !strcmp(req->method, "GET"), post = !strcmp(req->method, "POST");
    st_state_t *st = ks_sched_state(kd_sched(kd));
    kiln_err_t err = {0};

    if (kd_route_drift(kd, req))
        return 1;
    if (!strcmp(p, "/v1/models")) {
        if (!get)
            kd_reply_error(kd, req, 405, NULL, "%s %s: method not allowed", req->method, p);
        else {
            models_ud_t m = {st, json_array()};
            if (st_registry_model_list(st, model_item, &m, &err) < 0) {
                json_decref(m.list);
                kd_reply_kerr(kd, req, &err);
            } else {
                kd_reply(kd, req, 200, json_pack("{s:o}", "models", m.list), NULL, 0);
            }
        }
        return 1;
    }
    if (!strncmp(p, "/v1/models/", 11)) {
        char ref[256];
        const char *rest = strchr(p + 11, '/');
        size_t n = rest ? (size_t)(rest - (p + 11)) : strlen(p + 11);
        if (n == 0 || n >= sizeof ref) {
            if (n)
                kd_reply_error(kd, req, 400, "model",
                               "%s: a model reference is at most %zu characters", p,
                               sizeof ref - 1);
            else
                kd_reply_error(kd, req, 400, "model", "%s: no model name", p);
            return 1;
        }
        memcpy(ref, p + 11, n);
        ref[n] = '\0';
        if (rest && (!strcmp(rest, "/promote") || !strcmp(rest, "/rollback"))) {
            if (!post)
                kd_reply_error(kd, req, 405, NULL, "%s %s: method not allowed", req->method, p);
            else
                promote(kd, req, st, ref, !strcmp(rest, "/rollback"));
            return 1;
        }
        if (rest) {
            kd_reply_error(kd, req, 404, NULL, "%s %s: no such endpoint (see docs/api.md)",
                           req->method, p);
            return 1;
        }
        if (!get) {
            kd_reply_error(kd, req, 405, NULL, "%s %s: method not allowed", req->method, p);
            return 1;
        }
        st_model_t m;
        st_run_t run;
        if (st_registry_model_resolve(st, ref, &m, &err) < 0 ||
            st_registry_run_get(st, m.run_id, &run, &err) < 0) {
            kd_reply_kerr(kd, req, &err);
            return 1;
        }
        json_t *aliases = json_object();
        json_t *rj = run_json(&run);
        st_registry_alias_list(st, m.name, alias_item, aliases, &err);
        /* json_pack takes the "o" references even when it fails. */
        json_t *o = NULL;
        if (rj && aliases)
            o = json_pack("{s:s, s:I, s:s, s:I, s:o, s:o}", "name", m.name, "version",
                          (json_int_t)m.version, "artifact_sha256", m.artifact_sha256,
                          "created_ns", (json_int_t)m.created_ns, "aliases", aliases, "run", rj);
        else {
            json_decref(rj);
            json_decref(aliases);
        }
        if (o)
            kd_reply(kd, req, 200, o, NULL, 0);
        else
            kd_reply_error(kd, req, 500, NULL, "model %s: cannot show its run", ref);
        st_registry_run_free(&run);
        return 1;
    }
    if (!strcmp(p, "/v1/runs")) {
        if (!get) {
            kd_reply_error(kd, req, 405, NULL, "%s %s: method not allowed", req->method, p);
            return 1;
        }
        long long limit;
        if (kd_query_limit(kd, req, &limit))
            return 1;
        json_t *list = json_array();
        int rc = st_registry_run_list(st, kd_query_filter(req, "model"), limit, run_item, list,
                                      &err);
        kd_reply_list(kd, req, rc, "runs", list, &err);
        return 1;
    }
    if (!strncmp(p, "/v1/runs/", 9)) {
        char *end;
        errno = 0;
        long long id = strtoll(p + 9, &end, 10);
        if (errno || *end || id < 1) {
            kd_reply_error(kd, req, 400, "id", "%s: the run id must be a positive integer", p);
            return 1;
        }
        if (!get) {
            kd_reply_error(kd, req, 405, NULL, "%s %s: method not allowed", req->method, p);
            return 1;
        }
        st_run_t run;
        if (st_registry_run_get(st, id, &run, &err) < 0) {
            kd_reply_kerr(kd, req, &err);
            return 1;
        }
        kd_reply(kd, req, 200, run_json(&run), NULL, 0);
        st_registry_run_free(&run);
        return 1;
    }
    return 0;
}
