/* fuzz_frames.c - libFuzzer target: any bytes as a received scheduler<->worker
 * message.  The input is cut into frames at each 0x1e byte (ASCII record
 * separator).  Decode must return a message or an error that names a frame,
 * never crash, leak or read out of bounds; a message that decodes must
 * encode and decode again to an equal one. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/frames.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    kc_frame_t frames[KC_FRAMES_MAX + 4];
    size_t n = 0, start = 0;
    for (size_t i = 0; i <= size && n < sizeof frames / sizeof frames[0]; i++) {
        if (i == size || data[i] == 0x1e) {
            frames[n++] = (kc_frame_t){data + start, i - start};
            start = i + 1;
        }
    }
    kc_msg_t *msg = NULL;
    kiln_err_t err;
    kiln_err_clear(&err);
    if (kc_msg_decode(frames, n, &msg, &err) == 0) {
        kc_wire_t wire;
        if (kc_msg_encode(msg, &wire, &err) != 0)
            abort();    /* what decode accepts, encode must too */
        kc_msg_t *again = NULL;
        if (kc_msg_decode(wire.frame, wire.n_frames, &again, &err) != 0 ||
            again->type != msg->type || !json_equal(again->body, msg->body) ||
            again->n_blobs != msg->n_blobs)
            abort();
        kc_msg_destroy(&again);
        kc_wire_free(&wire);
        kc_msg_destroy(&msg);
    } else if (err.msg[0] == 0 || kc_err_frame(&err) < 0) {
        abort();    /* every rejection must say why, and where */
    }
    return 0;
}
