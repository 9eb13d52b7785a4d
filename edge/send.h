/* send.h - an MQTT client of kiln-edge (`kiln-edge send`, the tests and
 * bench/edge_bench.c): publishes one window frame to kiln/edge/ID/windows and
 * waits for its result on kiln/edge/ID/results, one window at a time, so the
 * time between is the agent's window-in to score-out plus two broker hops. */
#ifndef KE_SEND_H
#define KE_SEND_H

#include <stddef.h>

#include "core/kiln_err.h"

typedef struct ke_sender ke_sender_t;

/* Connects and subscribes to the device's results (waits for the SUBACK,
 * at most timeout_ms). */
int  ke_sender_open(const char *host, int port, const char *device, int timeout_ms,
                    ke_sender_t **out, kiln_err_t *err);
void ke_sender_close(ke_sender_t **s);

/* Publishes frame[0..len) and waits (at most timeout_ms) for one result,
 * copied into result[cap] NUL-terminated (truncated to fit); *rtt_us the
 * time between.  KILN_EIO when no result came. */
int  ke_sender_send(ke_sender_t *s, const void *frame, size_t len, int timeout_ms, char *result,
                    size_t cap, double *rtt_us, kiln_err_t *err);

#endif
