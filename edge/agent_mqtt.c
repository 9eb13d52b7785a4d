/* agent_mqtt.c - the agent's MQTT input: windows from
 * kiln/edge/DEVICE/windows, results to kiln/edge/DEVICE/results.
 * libmosquitto joins the loop as it documents for external loops: a
 * uv_poll_t on mosquitto_socket(), then mosquitto_loop_read/write/misc, and
 * a timer that reconnects after a cut (the agent keeps serving its other
 * inputs meanwhile). */
#include "edge/agent_int.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "core/kiln_alloc.h"

static void mq_update_poll(ke_agent_t *a);

static void mq_lost(ke_agent_t *a)
{
    if (a->mq_poll_up) {
        uv_poll_stop(&a->mq_poll);
        uv_close((uv_handle_t *)&a->mq_poll, NULL);
        a->mq_poll_up = 0;
    }
    if (a->mq_connected)
        fprintf(stderr, "kiln-edge: mqtt: connection lost; reconnecting\n");
    a->mq_connected = 0;
}

static void on_mq_poll(uv_poll_t *h, int status, int events)
{
    ke_agent_t *a = h->data;
    int rc = MOSQ_ERR_SUCCESS;
    if (status < 0) {
        mq_lost(a);
        return;
    }
    if (events & UV_READABLE)
        rc = mosquitto_loop_read(a->mosq, 64);
    if (rc == MOSQ_ERR_SUCCESS && (events & UV_WRITABLE || mosquitto_want_write(a->mosq)))
        rc = mosquitto_loop_write(a->mosq, 64);
    if (rc != MOSQ_ERR_SUCCESS) {
        mq_lost(a);
        return;
    }
    mq_update_poll(a);
}

static void mq_update_poll(ke_agent_t *a)
{
    if (!a->mq_poll_up)
        return;
    int ev = UV_READABLE | (mosquitto_want_write(a->mosq) ? UV_WRITABLE : 0);
    uv_poll_start(&a->mq_poll, ev, on_mq_poll);
}

static void mq_try_connect(ke_agent_t *a)
{
    int rc = a->mq_tried ? mosquitto_reconnect(a->mosq)
                         : mosquitto_connect(a->mosq, a->o.mqtt_host, a->o.mqtt_port, 30);
    a->mq_tried = 1;
    if (rc != MOSQ_ERR_SUCCESS)
        return;
    int fd = mosquitto_socket(a->mosq);
    if (fd < 0 || uv_poll_init(&a->loop, &a->mq_poll, fd) < 0)
        return;
    a->mq_poll.data = a;
    a->mq_poll_up = 1;
    mq_update_poll(a);
}

static void on_mq_timer(uv_timer_t *t)
{
    ke_agent_t *a = t->data;
    if (!a->mq_poll_up) {
        mq_try_connect(a);
        return;
    }
    if (mosquitto_loop_misc(a->mosq) != MOSQ_ERR_SUCCESS)
        mq_lost(a);
    else
        mq_update_poll(a);
}

static void on_mq_connect(struct mosquitto *m, void *ud, int rc)
{
    ke_agent_t *a = ud;
    if (rc != 0) {
        fprintf(stderr, "kiln-edge: mqtt: connection refused: %s\n", mosquitto_connack_string(rc));
        return;
    }
    a->mq_connected = 1;
    a->c.mqtt_connects++;
    mosquitto_subscribe(m, NULL, a->topic_in, 0);
}

static void on_mq_subscribe(struct mosquitto *m, void *ud, int mid, int n, const int *qos)
{
    ke_agent_t *a = ud;
    (void)m, (void)mid, (void)n, (void)qos;
    fprintf(stderr, "kiln-edge: mqtt: subscribed to %s, results to %s\n", a->topic_in,
            a->topic_out);
}

static void on_mq_message(struct mosquitto *m, void *ud, const struct mosquitto_message *msg)
{
    ke_agent_t *a = ud;
    double t_in = ke_agent_now_us();
    kiln_err_t err;
    ke_frame_hdr_t h;
    ke_agent_count_in(a, "mqtt");
    if (ke_frame_parse_header(msg->payload, (size_t)msg->payloadlen, &h, &err) < 0 ||
        (h.frame_bytes != (size_t)msg->payloadlen &&
         kiln_err_set(&err, KILN_EFORMAT, "frame: %d bytes, the header says %zu",
                      msg->payloadlen, h.frame_bytes) < 0)) {
        ke_agent_count_error(a, "frame");
        fprintf(stderr, "kiln-edge: mqtt %s: %s\n", msg->topic, err.msg);
        return;
    }
    size_t need = h.n_channels * h.window_len;
    if (need > a->samples_cap) {
        float *f = kiln_realloc(a->samples, need * sizeof *f);
        if (!f) {
            ke_agent_count_error(a, "memory");
            return;
        }
        a->samples = f;
        a->samples_cap = need;
    }
    ke_frame_samples(msg->payload, &h, a->samples);
    ke_window_t w = {h.asset, h.timestamp_ns, h.sample_rate_hz, h.n_channels, h.window_len,
                     a->samples};
    size_t n = ke_agent_score_window(a, "mqtt", &w, t_in);
    if (!n)
        return;
    /* Without the newline: one result per message. */
    if (mosquitto_publish(m, NULL, a->topic_out, (int)n - 1, a->out, 0, false) ==
        MOSQ_ERR_SUCCESS)
        a->c.published++;
    else
        ke_agent_count_error(a, "publish");
}

int ke_agent_mqtt_start(ke_agent_t *a, kiln_err_t *err)
{
    mosquitto_lib_init();
    snprintf(a->topic_in, sizeof a->topic_in, "kiln/edge/%s/windows", a->device);
    snprintf(a->topic_out, sizeof a->topic_out, "kiln/edge/%s/results", a->device);
    a->mosq = mosquitto_new(a->device, true, a);
    if (!a->mosq)
        return kiln_err_set(err, KILN_ENOMEM, "--mqtt: mosquitto_new: %s", strerror(errno));
    mosquitto_connect_callback_set(a->mosq, on_mq_connect);
    mosquitto_subscribe_callback_set(a->mosq, on_mq_subscribe);
    mosquitto_message_callback_set(a->mosq, on_mq_message);
    uv_timer_init(&a->loop, &a->mq_timer);
    a->mq_timer.data = a;
    mq_try_connect(a);
    if (!a->mq_poll_up)
        fprintf(stderr, "kiln-edge: mqtt: %s:%d not reachable yet; retrying every second\n",
                a->o.mqtt_host, a->o.mqtt_port);
    uv_timer_start(&a->mq_timer, on_mq_timer, 1000, 1000);
    return 0;
}
