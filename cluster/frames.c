/* frames.c - encode, decode and validate the scheduler<->worker messages, and
 * move them over a ZeroMQ ROUTER/DEALER pair.  Everything a peer sends is
 * checked here, once, with every size bounded; code behind this trusts it. */
#include "cluster/frames.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdint.h>
#include <string.h>
#include <zmq.h>

#include "core/kiln_alloc.h"

static const char *const type_names[KC_MSG_TYPE_COUNT] = {
#define KC_XX_NAME(name, str) str,
    KC_MSG_TYPE_MAP(KC_XX_NAME)
#undef KC_XX_NAME
};

const char *kc_msg_type_name(kc_msg_type_t type)
{
    if ((int)type < 0 || type >= KC_MSG_TYPE_COUNT)
        return NULL;
    return type_names[type];
}

int kc_msg_type_from_name(const void *name, size_t len)
{
    for (int t = 0; t < KC_MSG_TYPE_COUNT; t++)
        if (strlen(type_names[t]) == len && memcmp(type_names[t], name, len) == 0)
            return t;
    return -1;
}

/* Every error names its frame: where = "frame N[: field]", column = N + 1. */
__attribute__((format(printf, 5, 6)))
static int frame_err(kiln_err_t *err, int code, int frame, const char *field,
                     const char *fmt, ...)
{
    if (!err)
        return code;
    char where[sizeof err->where];
    if (field)
        snprintf(where, sizeof where, "frame %d: %s", frame, field);
    else
        snprintf(where, sizeof where, "frame %d", frame);
    char text[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    kiln_err_at(err, code, where, "%s: %s", where, text);
    err->column = frame + 1;
    return code;
}

/* ---- required fields per type ------------------------------------------ */

typedef enum { F_STRING, F_ID, F_POSITIVE, F_NONNEG, F_OBJECT } field_kind_t;

typedef struct {
    const char  *name;
    field_kind_t kind;
} field_rule_t;

#define RULES_MAX 5
static const field_rule_t type_rules[KC_MSG_TYPE_COUNT][RULES_MAX] = {
    [KC_MSG_HELLO]     = {{"worker_id", F_STRING}, {"cores", F_POSITIVE},
                          {"memory_mb", F_POSITIVE}, {"gpus", F_NONNEG}},
    [KC_MSG_HEARTBEAT] = {{"worker_id", F_STRING}},
    [KC_MSG_TASK]      = {{"task_id", F_ID}, {"job_id", F_ID}, {"lease_id", F_STRING},
                          {"spec", F_OBJECT}},
    [KC_MSG_PROGRESS]  = {{"task_id", F_ID}, {"lease_id", F_STRING}, {"done", F_NONNEG},
                          {"total", F_NONNEG}},
    [KC_MSG_DONE]      = {{"task_id", F_ID}, {"lease_id", F_STRING}, {"output", F_STRING}},
    [KC_MSG_FAILED]    = {{"task_id", F_ID}, {"lease_id", F_STRING}, {"reason", F_STRING}},
    [KC_MSG_CANCEL]    = {{"task_id", F_ID}},
    [KC_MSG_EXEC]      = {{"command", F_STRING}},
    [KC_MSG_EXEC_REPLY] = {{"status", F_STRING}},
};

static int check_field(const json_t *body, const field_rule_t *rule, const char *type,
                       kiln_err_t *err)
{
    const json_t *v = json_object_get(body, rule->name);
    if (!v)
        return frame_err(err, KILN_ESPEC, 1, rule->name,
                         "a %s message needs field \"%s\"", type, rule->name);
    switch (rule->kind) {
    case F_STRING: {
        if (!json_is_string(v))
            return frame_err(err, KILN_ESPEC, 1, rule->name, "\"%s\" must be a string",
                             rule->name);
        size_t len = json_string_length(v);
        if (len == 0 || len > KC_STRING_MAX_BYTES)
            return frame_err(err, KILN_ESPEC, 1, rule->name,
                             "\"%s\" must have 1 to %d bytes, not %zu", rule->name,
                             KC_STRING_MAX_BYTES, len);
        return 0;
    }
    case F_OBJECT:
        if (!json_is_object(v))
            return frame_err(err, KILN_ESPEC, 1, rule->name, "\"%s\" must be an object",
                             rule->name);
        return 0;
    case F_ID:
    case F_NONNEG:
    case F_POSITIVE: {
        if (!json_is_integer(v))
            return frame_err(err, KILN_ESPEC, 1, rule->name, "\"%s\" must be an integer",
                             rule->name);
        json_int_t n = json_integer_value(v);
        json_int_t min = rule->kind == F_POSITIVE ? 1 : 0;
        if (n < min)
            return frame_err(err, KILN_ESPEC, 1, rule->name, "\"%s\" must be >= %d, not %lld",
                             rule->name, (int)min, (long long)n);
        return 0;
    }
    }
    return frame_err(err, KILN_EINTERNAL, 1, rule->name, "unknown field rule");
}

int kc_msg_validate(const kc_msg_t *msg, kiln_err_t *err)
{
    const char *type = kc_msg_type_name(msg->type);
    if (!type)
        return frame_err(err, KILN_EINVAL, 0, NULL, "message type %d is not one of kiln's",
                         (int)msg->type);
    if (!json_is_object(msg->body))
        return frame_err(err, KILN_ESPEC, 1, NULL, "the body must be a JSON object");
    if (msg->n_blobs > KC_BLOBS_MAX)
        return frame_err(err, KILN_EINVAL, KC_FRAMES_MAX, NULL, "more than %d frames",
                         KC_FRAMES_MAX);
    for (int i = 0; i < RULES_MAX && type_rules[msg->type][i].name; i++) {
        int rc = check_field(msg->body, &type_rules[msg->type][i], type, err);
        if (rc < 0)
            return rc;
    }
    if (msg->type == KC_MSG_PROGRESS) {
        json_int_t done = json_integer_value(json_object_get(msg->body, "done"));
        json_int_t total = json_integer_value(json_object_get(msg->body, "total"));
        if (done > total)
            return frame_err(err, KILN_ESPEC, 1, "done", "\"done\" (%lld) exceeds \"total\" (%lld)",
                             (long long)done, (long long)total);
    }
    return 0;
}

/* ---- messages ------------------------------------------------------------ */

kc_msg_t *kc_msg_new(kc_msg_type_t type, json_t *body)
{
    if (!body)
        body = json_object();
    if (!body)
        return NULL;
    kc_msg_t *msg = kiln_calloc(1, sizeof *msg);
    if (!msg) {
        json_decref(body);
        return NULL;
    }
    msg->type = type;
    msg->body = body;
    return msg;
}

int kc_msg_add_blob(kc_msg_t *msg, const void *data, size_t len, kiln_err_t *err)
{
    int frame = (int)(2 + msg->n_blobs);
    if (msg->n_blobs >= KC_BLOBS_MAX)
        return frame_err(err, KILN_EINVAL, frame, NULL, "at most %d binary frames",
                         KC_BLOBS_MAX);
    if (len > KC_BLOB_MAX_BYTES)
        return frame_err(err, KILN_EINVAL, frame, NULL, "%zu bytes exceeds the %zu-byte limit",
                         len, KC_BLOB_MAX_BYTES);
    void *copy = kiln_malloc(len ? len : 1);
    if (!copy)
        return frame_err(err, KILN_ENOMEM, frame, NULL, "out of memory for %zu bytes", len);
    if (len)
        memcpy(copy, data, len);
    msg->blobs[msg->n_blobs].data = copy;
    msg->blobs[msg->n_blobs].len = len;
    msg->n_blobs++;
    return 0;
}

void kc_msg_destroy(kc_msg_t **msg)
{
    if (!msg || !*msg)
        return;
    for (size_t i = 0; i < (*msg)->n_blobs; i++)
        kiln_free((*msg)->blobs[i].data);
    json_decref((*msg)->body);
    kiln_free(*msg);
    *msg = NULL;
}

/* ---- encode / decode ----------------------------------------------------- */

int kc_msg_encode(const kc_msg_t *msg, kc_wire_t *wire, kiln_err_t *err)
{
    memset(wire, 0, sizeof *wire);
    int rc = kc_msg_validate(msg, err);
    if (rc < 0)
        return rc;
    /* json_dumpb twice (size, then text) keeps the buffer on kiln's allocator. */
    size_t json_len = json_dumpb(msg->body, NULL, 0, JSON_COMPACT);
    if (json_len == 0)
        return frame_err(err, KILN_EJSON, 1, NULL, "the body cannot be encoded as JSON");
    if (json_len > KC_JSON_MAX_BYTES)
        return frame_err(err, KILN_EINVAL, 1, NULL, "%zu bytes of JSON exceeds the %zu-byte limit",
                         json_len, KC_JSON_MAX_BYTES);
    wire->json = kiln_malloc(json_len);
    if (!wire->json)
        return frame_err(err, KILN_ENOMEM, 1, NULL, "out of memory for %zu bytes", json_len);
    if (json_dumpb(msg->body, wire->json, json_len, JSON_COMPACT) != json_len) {
        kc_wire_free(wire);
        return frame_err(err, KILN_EINTERNAL, 1, NULL, "the JSON changed size while encoding");
    }
    const char *name = type_names[msg->type];
    wire->frame[0] = (kc_frame_t){name, strlen(name)};
    wire->frame[1] = (kc_frame_t){wire->json, json_len};
    for (size_t i = 0; i < msg->n_blobs; i++)
        wire->frame[2 + i] = (kc_frame_t){msg->blobs[i].data, msg->blobs[i].len};
    wire->n_frames = 2 + msg->n_blobs;
    return 0;
}

void kc_wire_free(kc_wire_t *wire)
{
    if (!wire)
        return;
    kiln_free(wire->json);
    memset(wire, 0, sizeof *wire);
}

int kc_msg_decode(const kc_frame_t *frames, size_t n_frames, kc_msg_t **out,
                  kiln_err_t *err)
{
    *out = NULL;
    if (n_frames == 0)
        return frame_err(err, KILN_EFORMAT, 0, NULL, "missing: the message has no frames");
    if (n_frames > KC_FRAMES_MAX)
        return frame_err(err, KILN_EFORMAT, KC_FRAMES_MAX, NULL,
                         "extra frame: %zu frames, at most %d", n_frames, KC_FRAMES_MAX);
    int type = kc_msg_type_from_name(frames[0].data, frames[0].len);
    if (type < 0) {
        /* show at most 32 printable bytes of what came */
        char shown[33];
        size_t n = frames[0].len < 32 ? frames[0].len : 32;
        const unsigned char *p = frames[0].data;
        for (size_t i = 0; i < n; i++)
            shown[i] = (p[i] >= 0x20 && p[i] < 0x7f) ? (char)p[i] : '?';
        shown[n] = 0;
        return frame_err(err, KILN_EFORMAT, 0, NULL, "unknown message type \"%s\"%s", shown,
                         frames[0].len > 32 ? "..." : "");
    }
    if (n_frames < 2)
        return frame_err(err, KILN_EFORMAT, 1, NULL, "missing: a %s message needs a JSON frame",
                         type_names[type]);
    if (frames[1].len > KC_JSON_MAX_BYTES)
        return frame_err(err, KILN_EFORMAT, 1, NULL, "%zu bytes of JSON exceeds the %zu-byte limit",
                         frames[1].len, KC_JSON_MAX_BYTES);
    for (size_t i = 2; i < n_frames; i++)
        if (frames[i].len > KC_BLOB_MAX_BYTES)
            return frame_err(err, KILN_EFORMAT, (int)i, NULL,
                             "%zu bytes exceeds the %zu-byte limit", frames[i].len,
                             KC_BLOB_MAX_BYTES);

    json_error_t jerr;
    json_t *body = json_loadb(frames[1].data, frames[1].len, JSON_REJECT_DUPLICATES, &jerr);
    if (!body) {
        int rc = frame_err(err, KILN_EJSON, 1, NULL, "bad JSON at %d:%d: %s", jerr.line,
                           jerr.column, jerr.text);
        if (err)
            err->line = jerr.line > 0 ? jerr.line : 0;
        return rc;
    }
    kc_msg_t *msg = kc_msg_new((kc_msg_type_t)type, body);   /* takes body */
    if (!msg)
        return frame_err(err, KILN_ENOMEM, 0, NULL, "out of memory for a message");
    int rc = kc_msg_validate(msg, err);
    for (size_t i = 2; rc == 0 && i < n_frames; i++)
        rc = kc_msg_add_blob(msg, frames[i].data, frames[i].len, err);
    if (rc < 0) {
        kc_msg_destroy(&msg);
        return rc;
    }
    *out = msg;
    return 0;
}

/* ---- sockets ------------------------------------------------------------- */

static int sock_type(void *sock, int *type, kiln_err_t *err)
{
    size_t len = sizeof *type;
    if (zmq_getsockopt(sock, ZMQ_TYPE, type, &len) != 0)
        return kiln_err_set(err, KILN_EINVAL, "not a ZeroMQ socket: %s", zmq_strerror(errno));
    if (*type != ZMQ_ROUTER && *type != ZMQ_DEALER)
        return kiln_err_set(err, KILN_EUNSUPPORTED,
                            "kiln frames travel over ROUTER or DEALER sockets only");
    return 0;
}

int kc_frames_socket_setup(void *sock, kiln_err_t *err)
{
    /* The largest single frame we accept; frame counts are checked on receipt. */
    int64_t max_bytes = (int64_t)KC_BLOB_MAX_BYTES;
    if (zmq_setsockopt(sock, ZMQ_MAXMSGSIZE, &max_bytes, sizeof max_bytes) != 0)
        return kiln_err_set(err, KILN_EIO, "ZMQ_MAXMSGSIZE: %s", zmq_strerror(errno));
    return 0;
}

static int send_part(void *sock, const void *data, size_t len, int more, kiln_err_t *err,
                     int frame)
{
    if (zmq_send(sock, data, len, more ? ZMQ_SNDMORE : 0) < 0) {
        int e = errno;
        return frame_err(err, e == EHOSTUNREACH ? KILN_ENOTFOUND : KILN_EIO, frame, NULL,
                         "send failed: %s", zmq_strerror(e));
    }
    return 0;
}

static int send_wire(void *sock, const kc_wire_t *wire, const kc_routing_id_t *routing_id,
                     int type, kiln_err_t *err)
{
    int rc = 0;
    /* Once the first part is queued ZeroMQ delivers all parts or none, so a
     * failure below the first part cannot leave half a message on the wire. */
    if (type == ZMQ_ROUTER) {
        if (zmq_send(sock, routing_id->bytes, routing_id->len, ZMQ_SNDMORE) < 0) {
            int e = errno;
            return kiln_err_set(err, e == EHOSTUNREACH ? KILN_ENOTFOUND : KILN_EIO,
                                "send to peer failed: %s", zmq_strerror(e));
        }
    }
    for (size_t i = 0; i < wire->n_frames; i++) {
        rc = send_part(sock, wire->frame[i].data, wire->frame[i].len, i + 1 < wire->n_frames,
                       err, (int)i);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int check_peer(void *sock, const kc_routing_id_t *routing_id, int *type, kiln_err_t *err)
{
    int rc = sock_type(sock, type, err);
    if (rc < 0)
        return rc;
    if (*type == ZMQ_ROUTER && (!routing_id || routing_id->len == 0 ||
                                routing_id->len > KC_ROUTING_ID_MAX))
        return kiln_err_set(err, KILN_EINVAL, "a ROUTER send needs the peer's routing id");
    if (*type == ZMQ_DEALER && routing_id)
        return kiln_err_set(err, KILN_EINVAL, "a DEALER send takes no routing id");
    return 0;
}

int kc_frames_send(void *sock, const kc_msg_t *msg, const kc_routing_id_t *routing_id,
                   kiln_err_t *err)
{
    int type, rc = check_peer(sock, routing_id, &type, err);
    if (rc < 0)
        return rc;
    kc_wire_t wire;
    if ((rc = kc_msg_encode(msg, &wire, err)) < 0)
        return rc;
    rc = send_wire(sock, &wire, routing_id, type, err);
    kc_wire_free(&wire);
    return rc;
}

int kc_frames_send_text(void *sock, kc_msg_type_t mtype, const char *json, size_t len,
                        const kc_routing_id_t *routing_id, kiln_err_t *err)
{
    const char *name = kc_msg_type_name(mtype);
    if (!name || !json || len < 2 || len > KC_JSON_MAX_BYTES || json[0] != '{')
        return kiln_err_set(err, KILN_EINVAL, "send: bad message type or JSON body");
    int type, rc = check_peer(sock, routing_id, &type, err);
    if (rc < 0)
        return rc;
    kc_wire_t wire = {0};
    wire.n_frames = 2;
    wire.frame[0] = (kc_frame_t){name, strlen(name)};
    wire.frame[1] = (kc_frame_t){json, len};
    return send_wire(sock, &wire, routing_id, type, err);
}

int kc_frames_recv(void *sock, int flags, kc_msg_t **out, kc_routing_id_t *routing_id,
                   kiln_err_t *err)
{
    *out = NULL;
    int type, rc = sock_type(sock, &type, err);
    if (rc < 0)
        return rc;
    if (type == ZMQ_ROUTER && !routing_id)
        return kiln_err_set(err, KILN_EINVAL, "a ROUTER receive needs a routing id to fill");
    if (flags & ~ZMQ_DONTWAIT)
        return kiln_err_set(err, KILN_EINVAL, "flags may be 0 or ZMQ_DONTWAIT, not %d", flags);

    /* parts[0] is the routing id on a ROUTER; more than we accept are
     * received and closed at once, only counted. */
    enum { PARTS_MAX = KC_FRAMES_MAX + 1 };
    zmq_msg_t parts[PARTS_MAX];
    size_t n_kept = 0, n_parts = 0;
    int more = 1;
    while (more) {
        zmq_msg_t part;
        zmq_msg_init(&part);
        /* Later parts of a multipart message are already here: no wait. */
        if (zmq_msg_recv(&part, sock, n_parts == 0 ? flags : 0) < 0) {
            int e = errno;
            zmq_msg_close(&part);
            if (n_parts == 0 && (e == EAGAIN || e == EINTR)) {
                rc = KC_FRAMES_NONE;
            } else {
                rc = kiln_err_set(err, KILN_EIO, "receive failed: %s", zmq_strerror(e));
            }
            goto out;
        }
        more = zmq_msg_more(&part);
        n_parts++;
        if (n_kept < PARTS_MAX)
            parts[n_kept++] = part;
        else
            zmq_msg_close(&part);
    }

    size_t first = 0;
    if (type == ZMQ_ROUTER) {
        size_t len = zmq_msg_size(&parts[0]);
        if (len == 0 || len > KC_ROUTING_ID_MAX) {
            rc = kiln_err_set(err, KILN_EFORMAT, "routing id of %zu bytes", len);
            goto out;
        }
        routing_id->len = len;
        memcpy(routing_id->bytes, zmq_msg_data(&parts[0]), len);
        first = 1;
    }
    size_t n_frames = n_parts - first;
    kc_frame_t frames[PARTS_MAX];
    size_t n_view = n_kept - first;
    for (size_t i = 0; i < n_view; i++)
        frames[i] = (kc_frame_t){zmq_msg_data(&parts[first + i]), zmq_msg_size(&parts[first + i])};
    if (n_frames > KC_FRAMES_MAX)
        rc = frame_err(err, KILN_EFORMAT, KC_FRAMES_MAX, NULL,
                       "extra frame: %zu frames, at most %d", n_frames, KC_FRAMES_MAX);
    else
        rc = kc_msg_decode(frames, n_frames, out, err);
out:
    for (size_t i = 0; i < n_kept; i++)
        zmq_msg_close(&parts[i]);
    return rc;
}
