/* routes_fleet.c - fleets, devices and rollouts on the admin API
 * (docs/api.md, "Fleets"):
 *   GET    /v1/fleets                     every fleet
 *   POST   /v1/fleets                     {"name", "encrypted", "canary_share", "health_window_s"}
 *   GET    /v1/fleets/NAME                the fleet, its devices and current rollout
 *   PUT    /v1/fleets/NAME                {"canary_share", "health_window_s"}
 *   DELETE /v1/fleets/NAME                a fleet without enrolled devices
 *   POST   /v1/fleets/NAME/tokens         {"ttl_s"}: a one-time enrollment token
 *   GET    /v1/fleets/NAME/rollout        the current rollout and its canaries
 *   GET    /v1/fleets/NAME/pubkey         the publisher public key agents are enrolled with
 *   GET    /v1/devices?fleet=F            devices with their last report
 *   GET    /v1/devices/ID                 one device
 *   POST   /v1/devices/ID/revoke          revoke its enrollment
 *   GET    /v1/rollouts?fleet=F&limit=N   rollouts, newest first
 *   POST   /v1/publish                    {"model": "NAME@VERSION", "fleet", "canary_share",
 *                                          "health_window_s", "expires_s"}
 *   POST   /v1/rollback                   {"fleet", "expires_s"}
 * The /edge/v1 routes are not here: they live on the fleet endpoint. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/edge_sig.h"
#include "fleet.h"
#include "routes.h"
#include "storage/fleets.h"
#include "storage/registry.h"

#define DEFAULT_CANARY_SHARE 0.1
#define DEFAULT_HEALTH_S     300
#define DEFAULT_TOKEN_TTL_S  86400

static json_t *fleet_json(const st_fleet_t *f)
{
    return json_pack("{s:s, s:I, s:b, s:f, s:I, s:I}", "name", f->name, "created_ns",
                     (json_int_t)f->created_ns, "encrypted", f->encrypted, "canary_share",
                     f->canary_share, "health_window_s", (json_int_t)f->health_window_s,
                     "devices", (json_int_t)f->n_devices);
}

static json_t *device_json(const st_device_t *d)
{
    char pk[KC_EDGE_PK_B64_MAX];
    kc_edge_pk_encode(d->pubkey, pk);
    json_error_t jerr;
    json_t *feat = d->features_json[0] ? json_loads(d->features_json, 0, &jerr) : NULL;
    return json_pack("{s:s, s:s, s:s, s:I, s:b, s:I, s:s, s:I, s:{s:s, s:I, s:s, s:{s:f, s:f}, "
                     "s:s, s:o, s:I}}",
                     "id", d->id, "fleet", d->fleet, "name", d->name, "enrolled_ns",
                     (json_int_t)d->enrolled_ns, "revoked", d->revoked, "revoked_ns",
                     (json_int_t)d->revoked_ns, "public_key", pk, "last_seen_ns",
                     (json_int_t)d->last_seen_ns, "report", "model", d->model, "version",
                     (json_int_t)d->model_version, "health", d->health, "latency_us", "p50",
                     d->latency_p50_us, "p99", d->latency_p99_us, "message", d->message, "features",
                     feat ? feat : json_null(), "at_ns", (json_int_t)d->report_ns);
}

static json_t *rollout_json(const st_rollout_t *r)
{
    return json_pack("{s:I, s:s, s:s, s:I, s:s, s:f, s:I, s:I, s:I, s:I, s:s, s:s, s:s, s:b, "
                     "s:I, s:I, s:I}",
                     "id", (json_int_t)r->id, "fleet", r->fleet, "model", r->model, "version",
                     (json_int_t)r->version, "stage", st_rollout_stage_name(r->stage),
                     "canary_share", r->canary_share, "health_window_s",
                     (json_int_t)r->health_window_s, "started_ns", (json_int_t)r->started_ns,
                     "stage_ns", (json_int_t)r->stage_ns, "healthy_since_ns",
                     (json_int_t)r->healthy_since_ns, "reason", r->reason, "envelope_sha256",
                     r->envelope_sha256, "bundle_sha256", r->bundle_sha256, "rollback",
                     r->rollback, "canaries", (json_int_t)r->n_canaries, "expires_at",
                     (json_int_t)r->expires_at, "expires_s", (json_int_t)r->expires_s);
}

static int fleet_item(const st_fleet_t *f, void *ud)
{
    json_array_append_new(ud, fleet_json(f));
    return 0;
}

static int device_item(const st_device_t *d, void *ud)
{
    json_array_append_new(ud, device_json(d));
    return 0;
}

static int rollout_item(const st_rollout_t *r, void *ud)
{
    json_array_append_new(ud, rollout_json(r));
    return 0;
}

/* The body's JSON object with only the fields in allowed (NULL-ended), or
 * an answered 400. */
static json_t *body_fields(struct kd *kd, ka_req_t *req, const char *const *allowed)
{
    json_error_t jerr;
    json_t *b = req->body_len ? json_loadb(req->body, req->body_len, 0, &jerr) : json_object();
    if (!json_is_object(b)) {
        json_decref(b);
        kd_reply_error(kd, req, 400, NULL, "the body must be a JSON object");
        return NULL;
    }
    const char *key;
    json_t *v;
    json_object_foreach(b, key, v) {
        const char *const *a = allowed;
        while (*a && strcmp(*a, key))
            a++;
        if (!*a) {
            kd_reply_error(kd, req, 400, key, "%s: unknown field", key);
            json_decref(b);
            return NULL;
        }
    }
    return b;
}

/* b[key] as a number into *out (unchanged when absent); 1 with a 400 sent. */
static int opt_number(struct kd *kd, ka_req_t *req, json_t *b, const char *key, double *out)
{
    json_t *v = json_object_get(b, key);
    if (!v)
        return 0;
    if (!json_is_number(v)) {
        kd_reply_error(kd, req, 400, key, "%s: must be a number", key);
        return 1;
    }
    *out = json_number_value(v);
    return 0;
}

static void fleet_create(struct kd *kd, ka_req_t *req, st_state_t *st)
{
    static const char *const allowed[] = {"name", "encrypted", "canary_share", "health_window_s",
                                          NULL};
    json_t *b = body_fields(kd, req, allowed);
    if (!b)
        return;
    const char *name = json_string_value(json_object_get(b, "name"));
    json_t *enc = json_object_get(b, "encrypted");
    double share = DEFAULT_CANARY_SHARE, window = DEFAULT_HEALTH_S;
    kiln_err_t err = {0};
    if (!name)
        kd_reply_error(kd, req, 400, "name", "name: a fleet name is required");
    else if (enc && !json_is_boolean(enc))
        kd_reply_error(kd, req, 400, "encrypted", "encrypted: must be true or false");
    else if (!opt_number(kd, req, b, "canary_share", &share) &&
             !opt_number(kd, req, b, "health_window_s", &window)) {
        st_fleet_t f;
        int encrypted = enc ? json_is_true(enc) : 1;
        if (st_fleet_create(st, name, encrypted, share, (int64_t)window, ks_now_ns(), &err) < 0 ||
            st_fleet_get(st, name, &f, &err) < 0) {
            if (err.code == KILN_EEXIST)
                kd_reply_error(kd, req, 409, "name", "%s", err.msg);
            else
                kd_reply_kerr(kd, req, &err);
        } else {
            kd_reply(kd, req, 201, fleet_json(&f), NULL, 0);
        }
    }
    json_decref(b);
}

static void fleet_show(struct kd *kd, ka_req_t *req, st_state_t *st, const char *name)
{
    kiln_err_t err = {0};
    st_fleet_t f;
    if (st_fleet_get(st, name, &f, &err) < 0) {
        kd_reply_kerr(kd, req, &err);
        return;
    }
    json_t *o = fleet_json(&f), *devs = json_array();
    st_device_list(st, name, device_item, devs, &err);
    json_object_set_new(o, "device_list", devs);
    st_rollout_t r;
    json_object_set_new(o, "rollout",
                        st_rollout_current(st, name, &r, &err) == 0 ? rollout_json(&r)
                                                                    : json_null());
    kd_reply(kd, req, 200, o, NULL, 0);
}

static void fleet_update(struct kd *kd, ka_req_t *req, st_state_t *st, const char *name)
{
    static const char *const allowed[] = {"canary_share", "health_window_s", NULL};
    json_t *b = body_fields(kd, req, allowed);
    if (!b)
        return;
    double share = -1, window = -1;
    kiln_err_t err = {0};
    st_fleet_t f;
    if (!opt_number(kd, req, b, "canary_share", &share) &&
        !opt_number(kd, req, b, "health_window_s", &window)) {
        if (json_object_get(b, "health_window_s") && window < 0)
            kd_reply_error(kd, req, 400, "health_window_s", "health_window_s: must be >= 0");
        else if (st_fleet_update(st, name, share, (int64_t)window, &err) < 0 ||
                 st_fleet_get(st, name, &f, &err) < 0)
            kd_reply_kerr(kd, req, &err);
        else
            kd_reply(kd, req, 200, fleet_json(&f), NULL, 0);
    }
    json_decref(b);
}

static void token_create(struct kd *kd, ka_req_t *req, st_state_t *st, const char *name)
{
    static const char *const allowed[] = {"ttl_s", NULL};
    json_t *b = body_fields(kd, req, allowed);
    if (!b)
        return;
    double ttl = DEFAULT_TOKEN_TTL_S;
    kiln_err_t err = {0};
    char token[ST_TOKEN_HEX + 1];
    int64_t expires = 0;
    if (!opt_number(kd, req, b, "ttl_s", &ttl)) {
        if (st_fleet_token_create(st, name, (int64_t)ttl, ks_now_ns(), token, &expires, &err) < 0)
            kd_reply_kerr(kd, req, &err);
        else
            kd_reply(kd, req, 201,
                     json_pack("{s:s, s:s, s:I}", "fleet", name, "token", token, "expires_ns",
                               (json_int_t)expires),
                     NULL, 0);
    }
    json_decref(b);
}

typedef struct {
    json_t *list;
} canaries_ud_t;

static void rollout_status(struct kd *kd, ka_req_t *req, st_state_t *st, const char *name)
{
    kiln_err_t err = {0};
    st_fleet_t f;
    st_rollout_t r;
    if (st_fleet_get(st, name, &f, &err) < 0 || st_rollout_current(st, name, &r, &err) < 0) {
        kd_reply_kerr(kd, req, &err);
        return;
    }
    json_t *o = rollout_json(&r), *c = json_array();
    st_rollout_canaries(st, r.id, device_item, c, &err);
    json_object_set_new(o, "canary_devices", c);
    kd_reply(kd, req, 200, o, NULL, 0);
}

/* b[key], when present, a number >= 0 into *out; 1 with a 400 sent. */
static int opt_count(struct kd *kd, ka_req_t *req, json_t *b, const char *key, int64_t *out)
{
    double v = -1;
    if (opt_number(kd, req, b, key, &v))
        return 1;
    if (json_object_get(b, key)) {
        if (v < 0) {
            kd_reply_error(kd, req, 400, key, "%s: must be a number >= 0", key);
            return 1;
        }
        *out = (int64_t)v;
    }
    return 0;
}

static json_t *release_json(const st_rollout_t *r, uint64_t seq)
{
    json_t *o = rollout_json(r);
    json_object_set_new(o, "seq", json_integer((json_int_t)seq));
    return o;
}

/* Publish (scheduler/fleet_publish.c): only a model whose run passed its
 * validation gate; the answer is the new rollout and its seq. */
static void publish(struct kd *kd, ka_req_t *req, st_state_t *st)
{
    static const char *const allowed[] = {"model", "fleet", "canary_share", "health_window_s",
                                          "expires_s", NULL};
    json_t *b = body_fields(kd, req, allowed);
    if (!b)
        return;
    ks_publish_t p = {json_string_value(json_object_get(b, "model")),
                      json_string_value(json_object_get(b, "fleet")), -1, -1, 0};
    kiln_err_t err = {0};
    st_rollout_t r;
    uint64_t seq = 0;
    if (!p.model_ref || !p.fleet) {
        kd_reply_error(kd, req, 400, p.model_ref ? "fleet" : "model",
                       "publish needs \"model\" (NAME@VERSION) and \"fleet\"");
    } else if (!opt_number(kd, req, b, "canary_share", &p.canary_share) &&
               !opt_count(kd, req, b, "health_window_s", &p.health_window_s) &&
               !opt_count(kd, req, b, "expires_s", &p.expires_s)) {
        if (json_object_get(b, "canary_share") && !(p.canary_share > 0 && p.canary_share <= 1))
            kd_reply_error(kd, req, 400, "canary_share", "canary_share: must be in (0, 1]");
        else if (json_object_get(b, "expires_s") && p.expires_s < 1)
            kd_reply_error(kd, req, 400, "expires_s", "expires_s: must be >= 1");
        else if (ks_fleet_publish(st, kd_dir(kd), &p, ks_now_ns(), &r, &seq, &err) < 0)
            kd_reply_kerr(kd, req, &err);
        else
            kd_reply(kd, req, 201, release_json(&r, seq), NULL, 0);
    }
    json_decref(b);
}

static void rollback(struct kd *kd, ka_req_t *req, st_state_t *st)
{
    static const char *const allowed[] = {"fleet", "expires_s", NULL};
    json_t *b = body_fields(kd, req, allowed);
    if (!b)
        return;
    const char *fleet = json_string_value(json_object_get(b, "fleet"));
    kiln_err_t err = {0};
    st_rollout_t r;
    int64_t expires_s = 0;
    uint64_t seq = 0;
    if (!fleet)
        kd_reply_error(kd, req, 400, "fleet", "rollback needs \"fleet\"");
    else if (!opt_count(kd, req, b, "expires_s", &expires_s)) {
        if (ks_fleet_rollback(st, kd_dir(kd), fleet, expires_s, ks_now_ns(), &r, &seq, &err) < 0)
            kd_reply_kerr(kd, req, &err);
        else
            kd_reply(kd, req, 201, release_json(&r, seq), NULL, 0);
    }
    json_decref(b);
}

/* The public key every agent of any fleet must be enrolled with. */
static void pubkey(struct kd *kd, ka_req_t *req, st_state_t *st, const char *name)
{
    kiln_err_t err = {0};
    st_fleet_t f;
    char text[256];
    if (st_fleet_get(st, name, &f, &err) < 0 ||
        ks_publisher_pubkey_text(kd_dir(kd), text, sizeof text, &err) < 0) {
        kd_reply_kerr(kd, req, &err);
        return;
    }
    kd_reply(kd, req, 200,
             json_pack("{s:s, s:s, s:s}", "fleet", name, "publisher_key", text, "algorithm",
                       "ed25519"),
             NULL, 0);
}

/* "/v1/fleets/NAME[/rest]" -> name, rest; 0 when not one, -1 after a 400. */
static int split(struct kd *kd, ka_req_t *req, const char *prefix, char *name, size_t cap,
                 const char **rest)
{
    size_t pl = strlen(prefix);
    if (strncmp(req->path, prefix, pl))
        return 0;
    const char *p = req->path + pl;
    const char *slash = strchr(p, '/');
    size_t n = slash ? (size_t)(slash - p) : strlen(p);
    if (n == 0 || n >= cap) {
        kd_reply_error(kd, req, 400, NULL, "%s: bad name", req->path);
        return -1;
    }
    memcpy(name, p, n);
    name[n] = '\0';
    *rest = slash ? slash : "";
    return 1;
}

int kd_route_fleet(struct kd *kd, ka_req_t *req)
{
    const char *m = req->method, *p = req->path;
    int get = !strcmp(m, "GET"), post = !strcmp(m, "POST"), put = !strcmp(m, "PUT"),
        del = !strcmp(m, "DELETE");
    st_state_t *st = ks_sched_state(kd_sched(kd));
    kiln_err_t err = {0};
    char name[ST_NAME_MAX];
    const char *rest;
    int k;

    if (!strcmp(p, "/v1/fleets")) {
        if (post)
            fleet_create(kd, req, st);
        else if (get) {
            json_t *list = json_array();
            int rc = st_fleet_list(st, fleet_item, list, &err);
            kd_reply_list(kd, req, rc, "fleets", list, &err);
        } else
            goto bad_method;
        return 1;
    }
    if ((k = split(kd, req, "/v1/fleets/", name, sizeof name, &rest)) != 0) {
        if (k < 0)
            return 1;
        if (!*rest) {
            if (get)
                fleet_show(kd, req, st, name);
            else if (put)
                fleet_update(kd, req, st, name);
            else if (del) {
                if (st_fleet_delete(st, name, &err) < 0)
                    kd_reply_kerr(kd, req, &err);
                else
                    kd_reply(kd, req, 200, json_pack("{s:s, s:b}", "fleet", name, "deleted", 1),
                             NULL, 0);
            } else
                goto bad_method;
        } else if (!strcmp(rest, "/tokens")) {
            if (!post)
                goto bad_method;
            token_create(kd, req, st, name);
        } else if (!strcmp(rest, "/rollout")) {
            if (!get)
                goto bad_method;
            rollout_status(kd, req, st, name);
        } else if (!strcmp(rest, "/pubkey")) {
            if (!get)
                goto bad_method;
            pubkey(kd, req, st, name);
        } else {
            goto not_found;
        }
        return 1;
    }
    if (!strcmp(p, "/v1/devices")) {
        if (!get)
            goto bad_method;
        json_t *list = json_array();
        int rc = st_device_list(st, kd_query_filter(req, "fleet"), device_item, list, &err);
        kd_reply_list(kd, req, rc, "devices", list, &err);
        return 1;
    }
    if ((k = split(kd, req, "/v1/devices/", name, sizeof name, &rest)) != 0) {
        if (k < 0)
            return 1;
        st_device_t d;
        if (!*rest) {
            if (!get)
                goto bad_method;
            if (st_device_get(st, name, &d, &err) < 0) {
                kd_reply_kerr(kd, req, &err);
            } else {
                kd_reply(kd, req, 200, device_json(&d), NULL, 0);
                st_device_free(&d);
            }
        } else if (!strcmp(rest, "/revoke")) {
            if (!post)
                goto bad_method;
            if (st_device_revoke(st, name, ks_now_ns(), &err) < 0)
                kd_reply_kerr(kd, req, &err);
            else
                kd_reply(kd, req, 200, json_pack("{s:s, s:b}", "id", name, "revoked", 1), NULL,
                         0);
        } else {
            goto not_found;
        }
        return 1;
    }
    if (!strcmp(p, "/v1/rollouts")) {
        if (!get)
            goto bad_method;
        long long limit;
        if (kd_query_limit(kd, req, &limit))
            return 1;
        json_t *list = json_array();
        int rc = st_rollout_list(st, kd_query_filter(req, "fleet"), limit, rollout_item, list,
                                 &err);
        kd_reply_list(kd, req, rc, "rollouts", list, &err);
        return 1;
    }
    if (!strcmp(p, "/v1/publish") || !strcmp(p, "/v1/rollback")) {
        if (!post)
            goto bad_method;
        if (p[4] == 'p')
            publish(kd, req, st);
        else
            rollback(kd, req, st);
        return 1;
    }
    return 0;
not_found:
    kd_reply_error(kd, req, 404, NULL, "%s %s: no such endpoint (see docs/api.md)", m, p);
    return 1;
bad_method:
    kd_reply_error(kd, req, 405, NULL, "%s %s: method not allowed", m, p);
    return 1;
}
