/* test_frames.c - the scheduler<->worker frames: round trips of every type,
 * every rejection naming its frame and field, a real ROUTER/DEALER exchange,
 * ZMQ_DONTWAIT on an empty socket, and allocation failure in decode. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <zmq.h>

#include "cluster/frames.h"
#include "core/kiln_alloc.h"

/* One valid body per type, in enum order. */
static const char *good_body[KC_MSG_TYPE_COUNT] = {
    [KC_MSG_HELLO]     = "{\"worker_id\":\"w1\",\"cores\":16,\"memory_mb\":131072,\"gpus\":0}",
    [KC_MSG_HEARTBEAT] = "{\"worker_id\":\"w1\"}",
    [KC_MSG_TASK]      = "{\"task_id\":7,\"job_id\":3,\"lease_id\":\"L-7-1\","
                         "\"spec\":{\"type\":\"featurize\",\"windows\":[0,100]}}",
    [KC_MSG_PROGRESS]  = "{\"task_id\":7,\"lease_id\":\"L-7-1\",\"done\":40,\"total\":100}",
    [KC_MSG_DONE]      = "{\"task_id\":7,\"lease_id\":\"L-7-1\",\"output\":\"/tmp/o.h5\"}",
    [KC_MSG_FAILED]    = "{\"task_id\":7,\"lease_id\":\"L-7-1\",\"reason\":\"kernel crashed\"}",
    [KC_MSG_CANCEL]    = "{\"task_id\":7}",
    [KC_MSG_EXEC]      = "{\"task_id\":7,\"lease_id\":\"L-7-1\",\"command\":\"orted -mca x y\"}",
    [KC_MSG_EXEC_REPLY] = "{\"status\":\"ok\"}",
};

/* memmem is a GNU extension; the build is POSIX. */
static const void *find_bytes(const void *hay, size_t hay_len, const char *needle, size_t len)
{
    const char *h = hay;
    for (size_t i = 0; i + len <= hay_len; i++)
        if (memcmp(h + i, needle, len) == 0)
            return h + i;
    return NULL;
}

static kc_msg_t *make_msg(kc_msg_type_t type, const char *json)
{
    json_error_t jerr;
    json_t *body = json_loads(json, 0, &jerr);
    assert_non_null(body);
    kc_msg_t *msg = kc_msg_new(type, body);
    assert_non_null(msg);
    return msg;
}

static void test_type_names(void **state)
{
    (void)state;
    const char *want[] = {"hello", "heartbeat", "task", "progress", "done", "failed", "cancel",
                          "exec", "exec_reply"};
    for (int t = 0; t < KC_MSG_TYPE_COUNT; t++) {
        assert_string_equal(kc_msg_type_name((kc_msg_type_t)t), want[t]);
        assert_int_equal(kc_msg_type_from_name(want[t], strlen(want[t])), t);
    }
    assert_null(kc_msg_type_name(KC_MSG_TYPE_COUNT));
    assert_int_equal(kc_msg_type_from_name("hell", 4), -1);
    assert_int_equal(kc_msg_type_from_name("hello\0", 6), -1);   /* no trailing NUL on the wire */
    assert_int_equal(kc_msg_type_from_name("", 0), -1);
}

/* Every type encodes to [name, compact JSON, blobs...] and decodes to an
 * equal message. */
static void test_round_trip(void **state)
{
    (void)state;
    kiln_err_t err;
    for (int t = 0; t < KC_MSG_TYPE_COUNT; t++) {
        kc_msg_t *msg = make_msg((kc_msg_type_t)t, good_body[t]);
        size_t n_blobs = (size_t)t % 3;      /* 0, 1 or 2 binary frames, one empty */
        unsigned char bytes[300];
        for (size_t i = 0; i < sizeof bytes; i++)
            bytes[i] = (unsigned char)(i * 7 + t);
        for (size_t b = 0; b < n_blobs; b++)
            assert_int_equal(kc_msg_add_blob(msg, bytes, b == 0 ? sizeof bytes : 0, &err), 0);

        kc_wire_t wire;
        assert_int_equal(kc_msg_encode(msg, &wire, &err), 0);
        assert_int_equal(wire.n_frames, 2 + n_blobs);
        assert_int_equal(wire.frame[0].len, strlen(kc_msg_type_name((kc_msg_type_t)t)));
        assert_memory_equal(wire.frame[0].data, kc_msg_type_name((kc_msg_type_t)t),
                            wire.frame[0].len);
        /* compact: no space after a separator */
        assert_null(find_bytes(wire.frame[1].data, wire.frame[1].len, ", ", 2));
        assert_null(find_bytes(wire.frame[1].data, wire.frame[1].len, "\": ", 3));

        kc_msg_t *back = NULL;
        assert_int_equal(kc_msg_decode(wire.frame, wire.n_frames, &back, &err), 0);
        assert_non_null(back);
        assert_int_equal(back->type, t);
        assert_true(json_equal(back->body, msg->body));
        assert_int_equal(back->n_blobs, n_blobs);
        for (size_t b = 0; b < n_blobs; b++) {
            assert_int_equal(back->blobs[b].len, msg->blobs[b].len);
            if (back->blobs[b].len)
                assert_memory_equal(back->blobs[b].data, bytes, back->blobs[b].len);
        }
        kc_wire_free(&wire);
        kc_msg_destroy(&back);
        kc_msg_destroy(&msg);
        assert_null(msg);
        kc_msg_destroy(&msg);   /* a second destroy is harmless */
    }
}

static void expect_reject(const kc_frame_t *frames, size_t n, int code, int frame,
                          const char *where)
{
    kc_msg_t *msg = (kc_msg_t *)0x1;
    kiln_err_t err;
    kiln_err_clear(&err);
    int rc = kc_msg_decode(frames, n, &msg, &err);
    if (rc != code || kc_err_frame(&err) != frame || strcmp(err.where, where) != 0)
        fail_msg("want %s at \"%s\" (frame %d), got %s at \"%s\" (frame %d): %s",
                 kiln_err_name(code), where, frame, kiln_err_name(rc), err.where,
                 kc_err_frame(&err), err.msg);
    assert_null(msg);
    assert_non_null(strstr(err.msg, where));   /* the message names it too */
}

#define F(s) ((kc_frame_t){(s), sizeof(s) - 1})

static void test_bad_frames(void **state)
{
    (void)state;
    kc_frame_t fr[KC_FRAMES_MAX + 1] = {{0}};

    expect_reject(fr, 0, KILN_EFORMAT, 0, "frame 0");
    fr[0] = F("helo");
    fr[1] = F("{}");
    expect_reject(fr, 2, KILN_EFORMAT, 0, "frame 0");
    fr[0] = F("HELLO");
    expect_reject(fr, 2, KILN_EFORMAT, 0, "frame 0");
    fr[0] = F("cancel");
    expect_reject(fr, 1, KILN_EFORMAT, 1, "frame 1");          /* JSON frame missing */
    fr[1] = F("{\"task_id\":1}");
    for (size_t i = 2; i <= KC_FRAMES_MAX; i++)
        fr[i] = F("blob");
    expect_reject(fr, KC_FRAMES_MAX + 1, KILN_EFORMAT, KC_FRAMES_MAX, "frame 8");   /* extra */

    fr[1] = F("{\"task_id\":1");                                 /* does not parse */
    expect_reject(fr, 2, KILN_EJSON, 1, "frame 1");
    fr[1] = F("{\"task_id\":1,\"task_id\":2}");                  /* duplicate key */
    expect_reject(fr, 2, KILN_EJSON, 1, "frame 1");
    fr[1] = F("[1,2]");                                          /* not an object */
    expect_reject(fr, 2, KILN_ESPEC, 1, "frame 1");
    fr[1] = F("");
    expect_reject(fr, 2, KILN_EJSON, 1, "frame 1");

    /* sizes: checked before any byte is read or copied */
    size_t big_json = KC_JSON_MAX_BYTES + 1;
    char *json = malloc(big_json);
    assert_non_null(json);
    memset(json, ' ', big_json);
    json[0] = '{';
    json[big_json - 1] = '}';
    fr[1] = (kc_frame_t){json, big_json};
    expect_reject(fr, 2, KILN_EFORMAT, 1, "frame 1");
    free(json);
    fr[1] = F("{\"task_id\":1}");
    char *blob = malloc(KC_BLOB_MAX_BYTES + 1);     /* never touched: pages stay unmapped */
    assert_non_null(blob);
    fr[2] = F("ok");
    fr[3] = (kc_frame_t){blob, KC_BLOB_MAX_BYTES + 1};
    expect_reject(fr, 4, KILN_EFORMAT, 3, "frame 3");
    free(blob);
}

/* A body with field `name` replaced by raw JSON `value` (or removed when
 * value is NULL), starting from the type's good body. */
static void expect_field_reject(kc_msg_type_t type, const char *name, const char *value)
{
    json_error_t jerr;
    json_t *body = json_loads(good_body[type], 0, &jerr);
    assert_non_null(body);
    if (value)
        json_object_set_new(body, name, json_loads(value, JSON_DECODE_ANY, &jerr));
    else
        json_object_del(body, name);
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    const char *tname = kc_msg_type_name(type);
    kc_frame_t fr[2] = {{tname, strlen(tname)}, {text, strlen(text)}};
    char where[64];
    snprintf(where, sizeof where, "frame 1: %s", name);
    expect_reject(fr, 2, KILN_ESPEC, 1, where);
    free(text);
}

static void test_bad_fields(void **state)
{
    (void)state;
    static const struct {
        kc_msg_type_t type;
        const char *field;
        const char *wrong_type;   /* a value of the wrong JSON type */
        const char *out_of_range; /* right type, wrong value; NULL if none */
    } cases[] = {
        {KC_MSG_HELLO, "worker_id", "42", "\"\""},
        {KC_MSG_HELLO, "cores", "\"16\"", "0"},
        {KC_MSG_HELLO, "memory_mb", "1.5", "-1"},
        {KC_MSG_HELLO, "gpus", "true", "-1"},
        {KC_MSG_HEARTBEAT, "worker_id", "null", "\"\""},
        {KC_MSG_TASK, "task_id", "\"7\"", "-1"},
        {KC_MSG_TASK, "job_id", "3.0", "-3"},
        {KC_MSG_TASK, "lease_id", "7", "\"\""},
        {KC_MSG_TASK, "spec", "[]", NULL},
        {KC_MSG_PROGRESS, "task_id", "[7]", "-7"},
        {KC_MSG_PROGRESS, "lease_id", "{}", "\"\""},
        {KC_MSG_PROGRESS, "done", "\"40\"", "-1"},
        {KC_MSG_PROGRESS, "total", "false", "-100"},
        {KC_MSG_DONE, "task_id", "null", "-2"},
        {KC_MSG_DONE, "lease_id", "1", "\"\""},
        {KC_MSG_DONE, "output", "[\"/tmp\"]", "\"\""},
        {KC_MSG_FAILED, "task_id", "\"x\"", "-1"},
        {KC_MSG_FAILED, "lease_id", "2", "\"\""},
        {KC_MSG_FAILED, "reason", "{}", "\"\""},
        {KC_MSG_CANCEL, "task_id", "\"7\"", "-1"},
        {KC_MSG_EXEC, "command", "7", "\"\""},
        {KC_MSG_EXEC_REPLY, "status", "true", "\"\""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        expect_field_reject(cases[i].type, cases[i].field, NULL);           /* missing */
        expect_field_reject(cases[i].type, cases[i].field, cases[i].wrong_type);
        if (cases[i].out_of_range)
            expect_field_reject(cases[i].type, cases[i].field, cases[i].out_of_range);
    }
    /* done beyond total names "done" */
    expect_field_reject(KC_MSG_PROGRESS, "done", "101");
    /* an over-long string */
    char *long_id = malloc(KC_STRING_MAX_BYTES + 4);   /* "a...a": one byte over */
    assert_non_null(long_id);
    memset(long_id, 'a', KC_STRING_MAX_BYTES + 3);
    long_id[0] = '"';
    long_id[KC_STRING_MAX_BYTES + 2] = '"';
    long_id[KC_STRING_MAX_BYTES + 3] = 0;
    expect_field_reject(KC_MSG_HEARTBEAT, "worker_id", long_id);
    free(long_id);

    /* encode refuses what decode would refuse, and names the same field */
    kiln_err_t err;
    kc_wire_t wire;
    kc_msg_t *msg = make_msg(KC_MSG_HELLO, "{\"worker_id\":\"w\",\"cores\":0,\"memory_mb\":1,\"gpus\":0}");
    assert_int_equal(kc_msg_encode(msg, &wire, &err), KILN_ESPEC);
    assert_string_equal(err.where, "frame 1: cores");
    assert_null(wire.json);
    kc_msg_destroy(&msg);
    /* too many binary frames */
    msg = make_msg(KC_MSG_CANCEL, good_body[KC_MSG_CANCEL]);
    for (int i = 0; i < KC_BLOBS_MAX; i++)
        assert_int_equal(kc_msg_add_blob(msg, "x", 1, &err), 0);
    assert_int_equal(kc_msg_add_blob(msg, "x", 1, &err), KILN_EINVAL);
    assert_int_equal(kc_err_frame(&err), KC_FRAMES_MAX);
    kc_msg_destroy(&msg);
}

/* ---- sockets ------------------------------------------------------------- */

typedef struct {
    void *ctx, *router, *dealer;
} net_t;

static void net_open(net_t *n, const char *dealer_id)
{
    kiln_err_t err;
    n->ctx = zmq_ctx_new();
    assert_non_null(n->ctx);
    n->router = zmq_socket(n->ctx, ZMQ_ROUTER);
    n->dealer = zmq_socket(n->ctx, ZMQ_DEALER);
    assert_non_null(n->router);
    assert_non_null(n->dealer);
    assert_int_equal(kc_frames_socket_setup(n->router, &err), 0);
    assert_int_equal(kc_frames_socket_setup(n->dealer, &err), 0);
    int timeout_ms = 5000;   /* a lost message fails the test instead of hanging it */
    int linger_ms = 0;
    void *socks[2] = {n->router, n->dealer};
    for (int i = 0; i < 2; i++) {
        assert_int_equal(zmq_setsockopt(socks[i], ZMQ_RCVTIMEO, &timeout_ms, sizeof timeout_ms), 0);
        assert_int_equal(zmq_setsockopt(socks[i], ZMQ_LINGER, &linger_ms, sizeof linger_ms), 0);
    }
    if (dealer_id)
        assert_int_equal(zmq_setsockopt(n->dealer, ZMQ_ROUTING_ID, dealer_id, strlen(dealer_id)), 0);
    assert_int_equal(zmq_bind(n->router, "tcp://127.0.0.1:*"), 0);
    char endpoint[256];
    size_t len = sizeof endpoint;
    assert_int_equal(zmq_getsockopt(n->router, ZMQ_LAST_ENDPOINT, endpoint, &len), 0);
    assert_int_equal(zmq_connect(n->dealer, endpoint), 0);
}

static void net_close(net_t *n)
{
    zmq_close(n->dealer);
    zmq_close(n->router);
    zmq_ctx_term(n->ctx);
}

static void send_json(void *sock, kc_msg_type_t type, const char *json,
                      const kc_routing_id_t *rid)
{
    kiln_err_t err;
    kc_msg_t *msg = make_msg(type, json);
    int rc = kc_frames_send(sock, msg, rid, &err);
    if (rc != 0)
        fail_msg("send %s: %s", kc_msg_type_name(type), err.msg);
    kc_msg_destroy(&msg);
}

static kc_msg_t *recv_ok(void *sock, kc_routing_id_t *rid, kc_msg_type_t want)
{
    kiln_err_t err;
    kc_msg_t *msg = NULL;
    int rc = kc_frames_recv(sock, 0, &msg, rid, &err);
    if (rc != 0)
        fail_msg("recv: rc %d: %s", rc, err.msg);
    assert_int_equal(msg->type, want);
    return msg;
}

static json_int_t get_int(const kc_msg_t *msg, const char *field)
{
    return json_integer_value(json_object_get(msg->body, field));
}

/* hello -> task -> progress -> done over loopback TCP, with routing ids. */
static void test_router_dealer_exchange(void **state)
{
    (void)state;
    net_t n;
    net_open(&n, "worker-1");
    kiln_err_t err;
    kc_routing_id_t rid;

    send_json(n.dealer, KC_MSG_HELLO, good_body[KC_MSG_HELLO], NULL);
    kc_msg_t *msg = recv_ok(n.router, &rid, KC_MSG_HELLO);
    assert_int_equal(rid.len, strlen("worker-1"));
    assert_memory_equal(rid.bytes, "worker-1", rid.len);
    assert_int_equal(get_int(msg, "cores"), 16);
    kc_msg_destroy(&msg);

    send_json(n.router, KC_MSG_TASK, good_body[KC_MSG_TASK], &rid);
    msg = recv_ok(n.dealer, NULL, KC_MSG_TASK);
    assert_string_equal(json_string_value(json_object_get(msg->body, "lease_id")), "L-7-1");
    assert_int_equal(get_int(msg, "job_id"), 3);
    kc_msg_destroy(&msg);

    send_json(n.dealer, KC_MSG_PROGRESS, good_body[KC_MSG_PROGRESS], NULL);
    kc_routing_id_t rid2;
    msg = recv_ok(n.router, &rid2, KC_MSG_PROGRESS);
    assert_memory_equal(rid2.bytes, "worker-1", rid2.len);
    assert_int_equal(get_int(msg, "done"), 40);
    kc_msg_destroy(&msg);

    /* done, with a binary frame */
    msg = make_msg(KC_MSG_DONE, good_body[KC_MSG_DONE]);
    float metrics[4] = {0.5f, 1.5f, 2.5f, 3.5f};
    assert_int_equal(kc_msg_add_blob(msg, metrics, sizeof metrics, &err), 0);
    assert_int_equal(kc_frames_send(n.dealer, msg, NULL, &err), 0);
    kc_msg_destroy(&msg);
    msg = recv_ok(n.router, &rid2, KC_MSG_DONE);
    assert_int_equal(msg->n_blobs, 1);
    assert_int_equal(msg->blobs[0].len, sizeof metrics);
    assert_memory_equal(msg->blobs[0].data, metrics, sizeof metrics);
    kc_msg_destroy(&msg);

    /* misuse: a ROUTER send needs a routing id, a DEALER send takes none */
    msg = make_msg(KC_MSG_CANCEL, good_body[KC_MSG_CANCEL]);
    assert_int_equal(kc_frames_send(n.router, msg, NULL, &err), KILN_EINVAL);
    assert_int_equal(kc_frames_send(n.dealer, msg, &rid, &err), KILN_EINVAL);
    kc_msg_destroy(&msg);
    assert_int_equal(kc_frames_recv(n.router, 0, &msg, NULL, &err), KILN_EINVAL);
    net_close(&n);
}

static void send_raw(void *sock, const char *const *parts, size_t n)
{
    for (size_t i = 0; i < n; i++)
        assert_true(zmq_send(sock, parts[i], strlen(parts[i]), i + 1 < n ? ZMQ_SNDMORE : 0) >= 0);
}

/* A bad message from a peer is consumed whole and says who sent it; the
 * next message is read from its own first frame. */
static void test_recv_rejects_and_stays_aligned(void **state)
{
    (void)state;
    net_t n;
    net_open(&n, "w-bad");
    kiln_err_t err;
    kc_routing_id_t rid;
    kc_msg_t *msg = NULL;

    const char *unknown[] = {"bogus", "{}", "tail"};
    send_raw(n.dealer, unknown, 3);
    const char *too_many[] = {"cancel", "{\"task_id\":1}", "a", "b", "c", "d", "e", "f", "g", "h"};
    send_raw(n.dealer, too_many, 10);
    const char *bad_field[] = {"progress", "{\"task_id\":1,\"lease_id\":\"L\",\"done\":2,\"total\":1}"};
    send_raw(n.dealer, bad_field, 2);
    send_json(n.dealer, KC_MSG_HEARTBEAT, good_body[KC_MSG_HEARTBEAT], NULL);

    memset(&rid, 0, sizeof rid);
    assert_int_equal(kc_frames_recv(n.router, 0, &msg, &rid, &err), KILN_EFORMAT);
    assert_null(msg);
    assert_int_equal(kc_err_frame(&err), 0);
    assert_memory_equal(rid.bytes, "w-bad", rid.len);
    assert_int_equal(kc_frames_recv(n.router, 0, &msg, &rid, &err), KILN_EFORMAT);
    assert_int_equal(kc_err_frame(&err), KC_FRAMES_MAX);
    assert_int_equal(kc_frames_recv(n.router, 0, &msg, &rid, &err), KILN_ESPEC);
    assert_string_equal(err.where, "frame 1: done");
    msg = recv_ok(n.router, &rid, KC_MSG_HEARTBEAT);
    kc_msg_destroy(&msg);
    net_close(&n);
}

/* ZMQ_DONTWAIT on an empty socket is "nothing", not an error; a drain loop
 * reads every queued message and stops there. */
static void test_dontwait_drain(void **state)
{
    (void)state;
    net_t n;
    net_open(&n, NULL);   /* the ROUTER makes up this DEALER's routing id */
    kiln_err_t err;
    kc_routing_id_t rid;
    kc_msg_t *msg = (kc_msg_t *)0x1;
    assert_int_equal(kc_frames_recv(n.router, ZMQ_DONTWAIT, &msg, &rid, &err), KC_FRAMES_NONE);
    assert_null(msg);
    assert_int_equal(kc_frames_recv(n.dealer, ZMQ_DONTWAIT, &msg, NULL, &err), KC_FRAMES_NONE);
    assert_int_equal(kc_frames_recv(n.dealer, 42, &msg, NULL, &err), KILN_EINVAL);

    enum { N_BEATS = 50 };
    for (int i = 0; i < N_BEATS; i++)
        send_json(n.dealer, KC_MSG_HEARTBEAT, good_body[KC_MSG_HEARTBEAT], NULL);
    /* wait (blocking, bounded by RCVTIMEO) for the first, then drain */
    msg = recv_ok(n.router, &rid, KC_MSG_HEARTBEAT);
    assert_true(rid.len > 0);
    kc_msg_destroy(&msg);
    int got = 1, rc;
    for (int spins = 0; got < N_BEATS && spins < 5000; spins++) {
        while ((rc = kc_frames_recv(n.router, ZMQ_DONTWAIT, &msg, &rid, &err)) == 0) {
            got++;
            kc_msg_destroy(&msg);
        }
        assert_int_equal(rc, KC_FRAMES_NONE);
        if (got < N_BEATS) {
            zmq_pollitem_t item = {n.router, 0, ZMQ_POLLIN, 0};
            zmq_poll(&item, 1, 10);
        }
    }
    assert_int_equal(got, N_BEATS);
    assert_int_equal(kc_frames_recv(n.router, ZMQ_DONTWAIT, &msg, &rid, &err), KC_FRAMES_NONE);

    int64_t max_bytes = 0;
    size_t len = sizeof max_bytes;
    assert_int_equal(zmq_getsockopt(n.router, ZMQ_MAXMSGSIZE, &max_bytes, &len), 0);
    assert_int_equal(max_bytes, (int64_t)KC_BLOB_MAX_BYTES);
    net_close(&n);
}

/* Fail the Nth kiln allocation in decode and encode for every N until one
 * succeeds: each failure is KILN_ENOMEM with nothing returned, and (under
 * ASan/LSan) nothing leaked.  jansson's own allocations are not injected. */
static void test_alloc_failure(void **state)
{
    (void)state;
    kiln_err_t err;
    kc_msg_t *src = make_msg(KC_MSG_DONE, good_body[KC_MSG_DONE]);
    assert_int_equal(kc_msg_add_blob(src, "abcdef", 6, &err), 0);
    assert_int_equal(kc_msg_add_blob(src, "xyz", 3, &err), 0);
    kc_wire_t wire;
    assert_int_equal(kc_msg_encode(src, &wire, &err), 0);

    int failures = 0;
    for (long nth = 1; nth < 100; nth++) {
        kc_msg_t *msg = (kc_msg_t *)0x1;
        kiln_alloc_fail_after(nth);
        int rc = kc_msg_decode(wire.frame, wire.n_frames, &msg, &err);
        kiln_alloc_fail_after(0);
        if (rc == 0) {
            assert_true(json_equal(msg->body, src->body));
            assert_int_equal(msg->n_blobs, 2);
            kc_msg_destroy(&msg);
            break;
        }
        assert_int_equal(rc, KILN_ENOMEM);
        assert_null(msg);
        failures++;
    }
    assert_int_equal(failures, 3);   /* the message, then each of the two blobs */

    failures = 0;
    for (long nth = 1; nth < 100; nth++) {
        kc_wire_t w2;
        kiln_alloc_fail_after(nth);
        int rc = kc_msg_encode(src, &w2, &err);
        kiln_alloc_fail_after(0);
        if (rc == 0) {
            assert_int_equal(w2.frame[1].len, wire.frame[1].len);
            kc_wire_free(&w2);
            break;
        }
        assert_int_equal(rc, KILN_ENOMEM);
        assert_null(w2.json);
        failures++;
    }
    assert_int_equal(failures, 1);   /* the JSON text */
    kc_wire_free(&wire);
    kc_msg_destroy(&src);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_type_names),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_bad_frames),
        cmocka_unit_test(test_bad_fields),
        cmocka_unit_test(test_router_dealer_exchange),
        cmocka_unit_test(test_recv_rejects_and_stays_aligned),
        cmocka_unit_test(test_dontwait_drain),
        cmocka_unit_test(test_alloc_failure),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
