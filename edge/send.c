/* send.c - the MQTT client of send.h: libmosquitto driven by
 * mosquitto_loop() on the caller's thread, one window in flight. */
#include "edge/send.h"

#include <mosquitto.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core/kiln_alloc.h"

struct ke_sender {
    struct mosquitto *mosq;
    char  topic_in[160], topic_out[160];
    int   subscribed, got;
    char *result;
    size_t cap;
};

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

static void on_subscribe(struct mosquitto *m, void *ud, int mid, int n, const int *qos)
{
    (void)m, (void)mid, (void)n, (void)qos;
    ((ke_sender_t *)ud)->subscribed = 1;
}

static void on_message(struct mosquitto *m, void *ud, const struct mosquitto_message *msg)
{
    ke_sender_t *s = ud;
    (void)m;
    if (s->result && s->cap) {
        size_t n = (size_t)msg->payloadlen < s->cap - 1 ? (size_t)msg->payloadlen : s->cap - 1;
        memcpy(s->result, msg->payload, n);
        s->result[n] = 0;
    }
    s->got++;
}

/* Runs the client until *flag or the deadline. */
static int wait_for(ke_sender_t *s, int *flag, int timeout_ms)
{
    double end = now_ms() + timeout_ms;
    while (!*flag) {
        if (now_ms() > end)
            return -1;
        if (mosquitto_loop(s->mosq, 10, 1) != MOSQ_ERR_SUCCESS)
            return -1;
    }
    return 0;
}

int ke_sender_open(const char *host, int port, const char *device, int timeout_ms,
                   ke_sender_t **out, kiln_err_t *err)
{
    *out = NULL;
    ke_sender_t *s = kiln_calloc(1, sizeof *s);
    if (!s)
        return kiln_err_set(err, KILN_ENOMEM, "send: out of memory");
    mosquitto_lib_init();
    snprintf(s->topic_in, sizeof s->topic_in, "kiln/edge/%s/windows", device);
    snprintf(s->topic_out, sizeof s->topic_out, "kiln/edge/%s/results", device);
    s->mosq = mosquitto_new(NULL, true, s);
    int rc;
    if (!s->mosq) {
        rc = kiln_err_set(err, KILN_ENOMEM, "send: mosquitto_new failed");
        goto fail;
    }
    mosquitto_subscribe_callback_set(s->mosq, on_subscribe);
    mosquitto_message_callback_set(s->mosq, on_message);
    int mrc = mosquitto_connect(s->mosq, host, port, 30);
    if (mrc != MOSQ_ERR_SUCCESS) {
        rc = kiln_err_set(err, KILN_EIO, "send: %s:%d: %s", host, port, mosquitto_strerror(mrc));
        goto fail;
    }
    if (mosquitto_subscribe(s->mosq, NULL, s->topic_out, 0) != MOSQ_ERR_SUCCESS ||
        wait_for(s, &s->subscribed, timeout_ms) < 0) {
        rc = kiln_err_set(err, KILN_EIO, "send: %s:%d: no SUBACK for %s in %d ms", host, port,
                          s->topic_out, timeout_ms);
        goto fail;
    }
    *out = s;
    return 0;
fail:
    ke_sender_close(&s);
    return rc;
}

void ke_sender_close(ke_sender_t **sp)
{
    ke_sender_t *s = sp ? *sp : NULL;
    if (!s)
        return;
    if (s->mosq) {
        mosquitto_disconnect(s->mosq);
        mosquitto_destroy(s->mosq);
    }
    mosquitto_lib_cleanup();
    kiln_free(s);
    *sp = NULL;
}

int ke_sender_send(ke_sender_t *s, const void *frame, size_t len, int timeout_ms, char *result,
                   size_t cap, double *rtt_us, kiln_err_t *err)
{
    s->result = result;
    s->cap = cap;
    s->got = 0;
    if (cap)
        result[0] = 0;
    double t0 = now_ms();
    int mrc = mosquitto_publish(s->mosq, NULL, s->topic_in, (int)len, frame, 0, false);
    if (mrc != MOSQ_ERR_SUCCESS)
        return kiln_err_set(err, KILN_EIO, "send: publish: %s", mosquitto_strerror(mrc));
    int rc = wait_for(s, &s->got, timeout_ms);
    *rtt_us = (now_ms() - t0) * 1e3;
    s->result = NULL;
    if (rc < 0)
        return kiln_err_set(err, KILN_EIO, "send: no result on %s within %d ms", s->topic_out,
                            timeout_ms);
    return 0;
}
