/* routes_edge.c - the fleet endpoint for edge agents (docs/edge.md, "Fleet
 * protocol"; docs/api.md, "Fleet endpoint"), served on its own HTTPS
 * listener apart from the admin API:
 *   POST /edge/v1/enroll           a one-time token and the device's own public key
 *   GET  /edge/v1/manifest         the signed envelope this device should run
 *   GET  /edge/v1/bundle/SHA256    a bundle of the device's fleet (Range: resume)
 *   POST /edge/v1/report           running model, health, latency, feature statistics
 * Every call but enroll is signed by the device (fleet.h, ks_edge_auth). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "cluster/edge_sig.h"
#include "core/kiln_alloc.h"
#include "fleet.h"
#include "routes.h"
#include "storage/artifacts.h"

#define EDGE_ENVELOPE_MAX ((size_t)1 << 20)  /* storage/bundle.h's ST_BUNDLE_ENVELOPE_MAX */

static json_t *body_json(struct kd *kd, ka_req_t *req)
{
    json_error_t jerr;
    json_t *b = json_loadb(req->body, req->body_len, 0, &jerr);
    if (!json_is_object(b)) {
        json_decref(b);
        kd_reply_error(kd, req, 400, NULL, "the body must be a JSON object");
        return NULL;
    }
    return b;
}

static void enroll(struct kd *kd, ka_req_t *req, st_state_t *st)
{
    json_t *b = body_json(kd, req);
    if (!b)
        return;
    const char *key;
    json_t *v;
    json_object_foreach(b, key, v) {
        if (strcmp(key, "token") && strcmp(key, "public_key") && strcmp(key, "name")) {
            kd_reply_error(kd, req, 400, key, "%s: unknown field", key);
            json_decref(b);
            return;
        }
    }
    const char *token = json_string_value(json_object_get(b, "token"));
    const char *pk_b64 = json_string_value(json_object_get(b, "public_key"));
    const char *name = json_string_value(json_object_get(b, "name"));
    kiln_err_t err = {0};
    unsigned char pk[32];
    int64_t t = 0, now = ks_now_ns();
    if (!token || !pk_b64) {
        kd_reply_error(kd, req, 400, token ? "public_key" : "token",
                       "enroll needs \"token\" and \"public_key\" (base64 Ed25519)");
        goto out;
    }
    if (kc_edge_pk_decode(pk_b64, pk, &err) < 0) {
        kd_reply_kerr(kd, req, &err);
        goto out;
    }
    /* Proof of possession: the call is signed by the key being enrolled. */
    if (kc_edge_time_parse(ka_req_header(req, "X-Kiln-Time"), &t, &err) < 0 ||
        kc_edge_verify(pk, req->method, req->path, t, req->body, req->body_len,
                       ka_req_header(req, "X-Kiln-Sig"), &err) < 0) {
        kd_reply_error(kd, req, 401, err.where, "enroll: %s (sign it with the key you enroll)",
                       err.msg);
        goto out;
    }
    if (llabs(t - now / 1000000) > KC_EDGE_WINDOW_MS) {
        kd_reply_error(kd, req, 401, "X-Kiln-Time",
                       "X-Kiln-Time: more than %d s from the server's clock",
                       KC_EDGE_WINDOW_MS / 1000);
        goto out;
    }
    st_device_t d;
    if (st_device_enroll(st, token, pk, name, now, &d, &err) < 0) {
        int status = err.code == KILN_ENOTFOUND || err.code == KILN_ESTATE ? 401 : 0;
        if (status)
            kd_reply_error(kd, req, status, "token", "%s", err.msg);
        else
            kd_reply_kerr(kd, req, &err);
        goto out;
    }
    /* The signed time is this device's first: a replay of the enroll call
     * cannot be reused as a later call. */
    st_device_seen(st, d.id, t, now, &err);
    /* The trust anchor (publisher public key) and, for an encrypted fleet,
     * the fleet key: only here, over TLS, to the device that just proved
     * its key and spent a one-time token. */
    char pub[256], fkey[256];
    int have_fkey = 0;
    kiln_err_t kerr = {0};
    int krc = ks_publisher_pubkey_text(kd_dir(kd), pub, sizeof pub, &kerr);
    if (krc == 0) {
        krc = ks_fleet_key_text(st, d.fleet, fkey, sizeof fkey, &kerr);
        have_fkey = krc == 0;
        if (krc == KILN_ENOTFOUND)
            krc = 0;        /* a fleet without encryption */
    }
    if (krc < 0) {
        kd_reply_error(kd, req, 500, NULL, "enroll: the keys for the device cannot be read: %s",
                       kerr.msg);
        st_device_free(&d);
        goto out;
    }
    json_t *o = json_pack("{s:s, s:s, s:s, s:I, s:s}", "device_id", d.id, "fleet", d.fleet,
                          "name", d.name, "enrolled_ns", (json_int_t)d.enrolled_ns,
                          "publisher_key", pub);
    if (o && have_fkey)
        json_object_set_new(o, "fleet_key", json_string(fkey));
    sodium_memzero(fkey, sizeof fkey);
    kd_reply(kd, req, 201, o, NULL, 0);
    st_device_free(&d);
out:
    json_decref(b);
}

static char *read_blob(struct kd *kd, const char *sha, size_t *len, kiln_err_t *err)
{
    char root[1100];
    snprintf(root, sizeof root, "%s/artifacts", kd_dir(kd));
    void *bytes = NULL;
    if (st_artifact_get(root, sha, EDGE_ENVELOPE_MAX, &bytes, len, err) < 0)
        return NULL;
    return bytes;
}

static void manifest(struct kd *kd, ka_req_t *req, st_state_t *st, const st_device_t *d)
{
    kiln_err_t err = {0};
    st_rollout_t r;
    if (st_rollout_current(st, d->fleet, &r, &err) < 0) {
        if (err.code == KILN_ENOTFOUND)
            kd_reply_text(kd, req, 204, NULL, kiln_strdup(""), 0);
        else
            kd_reply_kerr(kd, req, &err);
        return;
    }
    if (r.stage == ST_ROLLOUT_CANARY || r.stage == ST_ROLLOUT_HALTED) {
        int canary = 0;
        if (st_rollout_is_canary(st, r.id, d->id, &canary, &err) < 0) {
            kd_reply_kerr(kd, req, &err);
            return;
        }
        /* The rest of the fleet keeps the last version that went full. */
        if (!canary && st_rollout_last_good(st, d->fleet, r.id, &r, &err) < 0) {
            if (err.code == KILN_ENOTFOUND)
                kd_reply_text(kd, req, 204, NULL, kiln_strdup(""), 0);
            else
                kd_reply_kerr(kd, req, &err);
            return;
        }
    }
    size_t len = 0;
    char *env = read_blob(kd, r.envelope_sha256, &len, &err);
    if (!env) {
        kd_reply_error(kd, req, 500, NULL, "rollout %lld: its envelope is unreadable: %s",
                       (long long)r.id, err.msg);
        return;
    }
    char hdr[128];
    snprintf(hdr, sizeof hdr, "X-Kiln-Rollout: %lld\nCache-Control: no-store\n",
             (long long)r.id);
    kd_reply_text_hdrs(kd, req, 200, "application/json", kiln_strdup(hdr), env, len);
}

/* "bytes=A-" or "bytes=A-B" against size: [*from, *to] inclusive; 0, or -1
 * when it cannot be satisfied or is not understood. */
static int parse_range(const char *h, uint64_t size, uint64_t *from, uint64_t *to)
{
    unsigned long long a, b;
    char tail;
    if (sscanf(h, "bytes=%llu-%llu%c", &a, &b, &tail) == 2) {
        if (b < a)
            return -1;
    } else if (sscanf(h, "bytes=%llu-%c", &a, &tail) == 1 && h[strlen(h) - 1] == '-') {
        b = size ? size - 1 : 0;
    } else {
        return -1;
    }
    if (a >= size)
        return -1;
    if (b >= size)
        b = size - 1;
    *from = a;
    *to = b;
    return 0;
}

static void bundle(struct kd *kd, ka_req_t *req, st_state_t *st, const st_device_t *d,
                   const char *sha)
{
    kiln_err_t err = {0};
    int yes = 0;
    if (st_rollout_has_blob(st, d->fleet, sha, &yes, &err) < 0) {
        kd_reply_kerr(kd, req, &err);
        return;
    }
    if (!yes) {
        kd_reply_error(kd, req, 404, "sha256",
                       "no bundle %s was published to fleet %s", sha, d->fleet);
        return;
    }
    char root[1100], path[1300];
    snprintf(root, sizeof root, "%s/artifacts", kd_dir(kd));
    struct stat sb;
    int fd = -1;
    if (st_artifact_path(root, sha, path, sizeof path) < 0 ||
        (fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) < 0 || fstat(fd, &sb) < 0 ||
        !S_ISREG(sb.st_mode)) {
        if (fd >= 0)
            close(fd);
        kd_reply_error(kd, req, 500, NULL, "bundle %s is published but missing from the store",
                       sha);
        return;
    }
    uint64_t size = (uint64_t)sb.st_size, from = 0, to = size ? size - 1 : 0;
    const char *range = ka_req_header(req, "Range");
    int partial = 0;
    if (range) {
        if (parse_range(range, size, &from, &to) < 0) {
            close(fd);
            char *h = kiln_malloc(64);
            if (h)
                snprintf(h, 64, "Content-Range: bytes */%" PRIu64 "\n", size);
            char *msg = kiln_strdup("range not satisfiable\n");
            kd_reply_text_hdrs(kd, req, 416, NULL, h, msg, msg ? strlen(msg) : 0);
            return;
        }
        partial = 1;
    }
    char *h = kiln_malloc(160);
    if (!h) {
        close(fd);
        kd_reply_error(kd, req, 503, NULL, "out of memory");
        return;
    }
    if (partial)
        snprintf(h, 160, "Accept-Ranges: bytes\nContent-Range: bytes %" PRIu64 "-%" PRIu64
                 "/%" PRIu64 "\n", from, to, size);
    else
        snprintf(h, 160, "Accept-Ranges: bytes\n");
    /* Served from the file (libmicrohttpd reads it as the agent takes it):
     * a thousand agents pulling one bundle cost no memory per download. */
    kd_reply_fd(kd, req, partial ? 206 : 200, "application/octet-stream", h, fd, from,
                size ? to - from + 1 : 0);
}

static int num(const json_t *o, const char *key, double *out)
{
    const json_t *v = json_object_get(o, key);
    if (!v)
        return 0;
    if (!json_is_number(v) || json_number_value(v) < 0)
        return -1;
    *out = json_number_value(v);
    return 0;
}

static void report(struct kd *kd, ka_req_t *req, st_state_t *st, const st_device_t *d)
{
    json_t *b = body_json(kd, req);
    if (!b)
        return;
    static const char *const known[] = {"model", "version", "health", "latency_us", "features",
                                        "message"};
    const char *key;
    json_t *v;
    json_object_foreach(b, key, v) {
        size_t i = 0;
        while (i < sizeof known / sizeof known[0] && strcmp(key, known[i]))
            i++;
        if (i == sizeof known / sizeof known[0]) {
            kd_reply_error(kd, req, 400, key, "%s: unknown field", key);
            json_decref(b);
            return;
        }
    }
    st_device_report_t r = {0};
    const json_t *ver = json_object_get(b, "version");
    const json_t *lat = json_object_get(b, "latency_us");
    const json_t *feat = json_object_get(b, "features");
    r.model = json_string_value(json_object_get(b, "model"));
    r.health = json_string_value(json_object_get(b, "health"));
    const json_t *msg = json_object_get(b, "message");
    char *features = NULL;
    kiln_err_t err = {0};
    if (ver && (!json_is_integer(ver) || json_integer_value(ver) < 0)) {
        kd_reply_error(kd, req, 400, "version", "version: must be a whole number >= 0");
        goto out;
    }
    r.model_version = ver ? json_integer_value(ver) : 0;
    if (msg && !json_is_string(msg)) {
        kd_reply_error(kd, req, 400, "message", "message: must be a string");
        goto out;
    }
    r.message = json_string_value(msg);
    if (lat && (!json_is_object(lat) || num(lat, "p50", &r.latency_p50_us) < 0 ||
                num(lat, "p99", &r.latency_p99_us) < 0)) {
        kd_reply_error(kd, req, 400, "latency_us",
                       "latency_us: an object {\"p50\": us, \"p99\": us} of numbers >= 0");
        goto out;
    }
    if (feat && !json_is_object(feat)) {
        kd_reply_error(kd, req, 400, "features", "features: must be a JSON object");
        goto out;
    }
    if (feat && !(features = json_dumps(feat, JSON_COMPACT | JSON_SORT_KEYS))) {
        kd_reply_error(kd, req, 503, NULL, "out of memory");
        goto out;
    }
    r.features_json = features;
    if (st_device_report(st, d->id, &r, ks_now_ns(), &err) < 0) {
        kd_reply_kerr(kd, req, &err);
        goto out;
    }
    kd_reply(kd, req, 200, json_pack("{s:s, s:b}", "device_id", d->id, "recorded", 1), NULL, 0);
out:
    free(features);     /* jansson's allocator */
    json_decref(b);
}

void kd_route_edge(struct kd *kd, ka_req_t *req)
{
    const char *m = req->method, *p = req->path;
    int get = !strcmp(m, "GET"), post = !strcmp(m, "POST");
    st_state_t *st = ks_sched_state(kd_sched(kd));
    const char *bundle_prefix = "/edge/v1/bundle/";
    int known = !strcmp(p, "/edge/v1/enroll") || !strcmp(p, "/edge/v1/manifest") ||
                !strcmp(p, "/edge/v1/report") || !strncmp(p, bundle_prefix, 16);
    if (!known) {
        kd_reply_error(kd, req, 404, NULL,
                       "%s %s: not a fleet endpoint route (the admin API listens apart; "
                       "docs/edge.md, \"Fleet protocol\")", m, p);
        return;
    }
    int want_post = !strcmp(p, "/edge/v1/enroll") || !strcmp(p, "/edge/v1/report");
    if (want_post ? !post : !get) {
        kd_reply_error(kd, req, 405, NULL, "%s %s: method not allowed", m, p);
        return;
    }
    if (!strcmp(p, "/edge/v1/enroll")) {
        enroll(kd, req, st);
        return;
    }
    ks_edge_creds_t c = {ka_req_header(req, "X-Kiln-Device"), ka_req_header(req, "X-Kiln-Time"),
                         ka_req_header(req, "X-Kiln-Sig")};
    st_device_t d;
    kiln_err_t err = {0};
    int status = 0;
    if (ks_edge_auth(st, &c, m, p, req->body, req->body_len, ks_now_ns(), &d, &status,
                     &err) < 0) {
        kd_reply_error(kd, req, status, err.where[0] ? err.where : NULL, "%s", err.msg);
        return;
    }
    if (!strcmp(p, "/edge/v1/manifest"))
        manifest(kd, req, st, &d);
    else if (!strcmp(p, "/edge/v1/report"))
        report(kd, req, st, &d);
    else
        bundle(kd, req, st, &d, p + 16);
    st_device_free(&d);
}
