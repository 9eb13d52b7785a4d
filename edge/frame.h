/* frame.h - how windows reach kiln-edge and how results leave it
 * (docs/edge.md, Inference).  One binary frame per window, the same bytes on
 * MQTT (one frame per message), the unix socket and stdin (frames back to
 * back), all integers and floats little-endian:
 *
 *   off size
 *    0   4   magic "KEW1"
 *    4   2   u16 n_channels (1..64)
 *    6   2   u16 reserved, 0
 *    8   4   u32 window_len (1..2^20 samples)
 *   12   4   i32 asset id
 *   16   8   i64 timestamp, ns since the epoch
 *   24   8   f64 sample_rate_hz (> 0)
 *   32   4*n_channels*window_len  float32 samples, channel-major
 *
 * stdin and the socket also take JSON lines (a line starting with '{'):
 *   {"asset": 3, "timestamp_ns": 0, "sample_rate_hz": 12000,
 *    "signals": [[...], [...]]}     (or {"de": [...], "fe": [...]} by name)
 * Results are JSON lines (ke_result_json). */
#ifndef KE_FRAME_H
#define KE_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "core/kiln_err.h"
#include "edge/infer.h"

#define KE_FRAME_MAGIC "KEW1"
#define KE_FRAME_HEADER_BYTES 32
/* The largest frame accepted, header included: bounds every buffer. */
#define KE_FRAME_MAX_BYTES ((size_t)64 << 20)
#define KE_JSON_LINE_MAX   ((size_t)64 << 20)

typedef struct {
    size_t  n_channels, window_len;
    int32_t asset;
    int64_t timestamp_ns;
    double  sample_rate_hz;
    size_t  frame_bytes;     /* header + samples */
} ke_frame_hdr_t;

/* Parses and checks the 32-byte header at p (len >= 32).  KILN_EFORMAT
 * naming the field for a bad magic, count, length or rate. */
int ke_frame_parse_header(const void *p, size_t len, ke_frame_hdr_t *h, kiln_err_t *err);

/* The samples of a frame whose header is h, from p (the frame's first
 * byte, h->frame_bytes readable) into dst (n_channels * window_len floats,
 * any alignment of p). */
void ke_frame_samples(const void *p, const ke_frame_hdr_t *h, float *dst);

/* Writes a frame into out (KE_FRAME_HEADER_BYTES + 4*C*L bytes): for tests,
 * benchmarks and clients. */
void ke_frame_encode(const ke_window_t *w, void *out);

/* One JSON line (text[0..len), no newline needed) into a window whose
 * samples go to *samples (kiln_realloc'd to fit; *cap in floats; the
 * caller frees).  Channel names, when the signals are an object, come from
 * info.  Errors name the field. */
int ke_frame_parse_json(const char *text, size_t len, const ke_model_info_t *info,
                        ke_window_t *w, float **samples, size_t *cap, kiln_err_t *err);

/* The result as one JSON line with a trailing newline, into buf[cap]
 * (no allocation): {"device", "model": "NAME@VERSION", "asset",
 * "timestamp_ns", "predicted", "class", "scores": [...], "latency_us"} and,
 * when with_features, "features": [...].  Floats print with 9 significant
 * digits, enough to give back the very float32.  Returns the length, or 0
 * when cap is too small (ke_result_json_cap says what is enough). */
size_t ke_result_json(const ke_result_t *r, const ke_model_info_t *info, const char *device,
                      double latency_us, int with_features, char *buf, size_t cap);
size_t ke_result_json_cap(const ke_model_info_t *info, const char *device, int with_features);

#endif
