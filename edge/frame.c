/* frame.c - the window frame and the result line of kiln-edge (frame.h):
 * checked once here, at the boundary; the engine behind it trusts them. */
#include "edge/frame.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/kiln_alloc.h"

static uint16_t rd16(const unsigned char *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t rd32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t rd64(const unsigned char *p) { return rd32(p) | (uint64_t)rd32(p + 4) << 32; }
static void wr32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}
static void wr64(unsigned char *p, uint64_t v)
{
    wr32(p, (uint32_t)v);
    wr32(p + 4, (uint32_t)(v >> 32));
}

int ke_frame_parse_header(const void *p_, size_t len, ke_frame_hdr_t *h, kiln_err_t *err)
{
    const unsigned char *p = p_;
    if (len < KE_FRAME_HEADER_BYTES)
        return kiln_err_at(err, KILN_EFORMAT, "frame", "frame: %zu bytes, the header alone is %d",
                           len, KE_FRAME_HEADER_BYTES);
    if (memcmp(p, KE_FRAME_MAGIC, 4))
        return kiln_err_at(err, KILN_EFORMAT, "magic",
                           "frame: magic is not \"KEW1\" (bytes %02x %02x %02x %02x)", p[0], p[1],
                           p[2], p[3]);
    h->n_channels = rd16(p + 4);
    h->window_len = rd32(p + 8);
    h->asset = (int32_t)rd32(p + 12);
    h->timestamp_ns = (int64_t)rd64(p + 16);
    uint64_t bits = rd64(p + 24);
    memcpy(&h->sample_rate_hz, &bits, sizeof bits);
    if (h->n_channels < 1 || h->n_channels > KE_MAX_CHANNELS)
        return kiln_err_at(err, KILN_EFORMAT, "n_channels", "frame: n_channels %zu outside 1..%d",
                           h->n_channels, KE_MAX_CHANNELS);
    if (rd16(p + 6))
        return kiln_err_at(err, KILN_EFORMAT, "reserved", "frame: reserved bytes 6..7 not 0");
    if (h->window_len < 1 || h->window_len > KE_MAX_WINDOW_LEN)
        return kiln_err_at(err, KILN_EFORMAT, "window_len", "frame: window_len %zu outside 1..%zu",
                           h->window_len, KE_MAX_WINDOW_LEN);
    if (!(h->sample_rate_hz > 0) || !isfinite(h->sample_rate_hz))
        return kiln_err_at(err, KILN_EFORMAT, "sample_rate_hz",
                           "frame: sample_rate_hz %g is not a finite number > 0",
                           h->sample_rate_hz);
    h->frame_bytes = KE_FRAME_HEADER_BYTES + 4 * h->n_channels * h->window_len;
    if (h->frame_bytes > KE_FRAME_MAX_BYTES)
        return kiln_err_at(err, KILN_EFORMAT, "window_len",
                           "frame: %zu channels x %zu samples is over %zu bytes", h->n_channels,
                           h->window_len, KE_FRAME_MAX_BYTES);
    return 0;
}

void ke_frame_samples(const void *p, const ke_frame_hdr_t *h, float *dst)
{
    const unsigned char *s = (const unsigned char *)p + KE_FRAME_HEADER_BYTES;
    const size_t n = h->n_channels * h->window_len;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    memcpy(dst, s, n * sizeof(float));
#else
    for (size_t i = 0; i < n; i++) {
        uint32_t v = rd32(s + 4 * i);
        memcpy(&dst[i], &v, 4);
    }
#endif
}

void ke_frame_encode(const ke_window_t *w, void *out)
{
    unsigned char *p = out;
    memcpy(p, KE_FRAME_MAGIC, 4);
    p[4] = (unsigned char)w->n_channels;
    p[5] = (unsigned char)(w->n_channels >> 8);
    p[6] = p[7] = 0;
    wr32(p + 8, (uint32_t)w->window_len);
    wr32(p + 12, (uint32_t)w->asset);
    wr64(p + 16, (uint64_t)w->timestamp_ns);
    uint64_t bits;
    memcpy(&bits, &w->sample_rate_hz, sizeof bits);
    wr64(p + 24, bits);
    const size_t n = w->n_channels * w->window_len;
    for (size_t i = 0; i < n; i++) {
        uint32_t v;
        memcpy(&v, &w->samples[i], 4);
        wr32(p + KE_FRAME_HEADER_BYTES + 4 * i, v);
    }
}

/* One channel's samples (a JSON array of numbers) into dst[len]. */
static int json_channel(const json_t *a, size_t c, size_t len, float *dst, kiln_err_t *err)
{
    if (!json_is_array(a) || json_array_size(a) != len)
        return kiln_err_at(err, KILN_EFORMAT, "signals",
                           "window: signals[%zu]: an array of %zu numbers (as signals[0])", c, len);
    for (size_t i = 0; i < len; i++) {
        const json_t *v = json_array_get(a, i);
        if (!json_is_number(v))
            return kiln_err_at(err, KILN_EFORMAT, "signals",
                               "window: signals[%zu][%zu]: not a number", c, i);
        dst[i] = (float)json_number_value(v);
    }
    return 0;
}

int ke_frame_parse_json(const char *text, size_t len, const ke_model_info_t *info,
                        ke_window_t *w, float **samples, size_t *cap, kiln_err_t *err)
{
    json_error_t je;
    json_t *o = json_loadb(text, len, 0, &je);
    int rc = 0;
    if (!o)
        return kiln_err_set(err, KILN_EJSON, "window: JSON column %d: %s", je.column, je.text);
    const json_t *asset = json_object_get(o, "asset"), *ts = json_object_get(o, "timestamp_ns");
    const json_t *rate = json_object_get(o, "sample_rate_hz"), *sig = json_object_get(o, "signals");
    memset(w, 0, sizeof *w);
    if (!json_is_object(o)) {
        rc = kiln_err_set(err, KILN_EFORMAT, "window: a JSON object is expected");
        goto out;
    }
    if (asset && (!json_is_integer(asset) || json_integer_value(asset) < INT32_MIN ||
                  json_integer_value(asset) > INT32_MAX)) {
        rc = kiln_err_at(err, KILN_EFORMAT, "asset", "window: asset: a 32-bit integer");
        goto out;
    }
    if (ts && !json_is_integer(ts)) {
        rc = kiln_err_at(err, KILN_EFORMAT, "timestamp_ns", "window: timestamp_ns: an integer");
        goto out;
    }
    w->sample_rate_hz = rate ? json_number_value(rate) : info->sample_rate_hz;
    if (!(w->sample_rate_hz > 0) || !isfinite(w->sample_rate_hz)) {
        rc = kiln_err_at(err, KILN_EFORMAT, "sample_rate_hz",
                         "window: sample_rate_hz: a number > 0 (the model declares none)");
        goto out;
    }
    w->asset = asset ? (int32_t)json_integer_value(asset) : 0;
    w->timestamp_ns = ts ? (int64_t)json_integer_value(ts) : 0;
    size_t n_ch = json_is_array(sig) ? json_array_size(sig) : json_is_object(sig) ? info->n_channels : 0;
    const json_t *first = json_is_array(sig)    ? json_array_get(sig, 0)
                          : json_is_object(sig) ? json_object_get(sig, info->channels[0])
                                                : NULL;
    if (n_ch < 1 || n_ch > KE_MAX_CHANNELS || !json_is_array(first) ||
        json_array_size(first) < 1 || json_array_size(first) > KE_MAX_WINDOW_LEN) {
        rc = kiln_err_at(err, KILN_EFORMAT, "signals",
                         "window: signals: an array of 1..%d channels or an object by channel "
                         "name (%s, ...), each 1..%zu numbers", KE_MAX_CHANNELS,
                         info->channels[0], KE_MAX_WINDOW_LEN);
        goto out;
    }
    w->n_channels = n_ch;
    w->window_len = json_array_size(first);
    size_t need = n_ch * w->window_len;
    if (need > *cap) {
        float *p = kiln_realloc(*samples, need * sizeof *p);
        if (!p) {
            rc = kiln_err_set(err, KILN_ENOMEM, "window: out of memory for %zu samples", need);
            goto out;
        }
        *samples = p;
        *cap = need;
    }
    for (size_t c = 0; c < n_ch && rc == 0; c++) {
        const json_t *a = json_is_array(sig) ? json_array_get(sig, c)
                                             : json_object_get(sig, info->channels[c]);
        if (!a) {
            rc = kiln_err_at(err, KILN_EFORMAT, "signals", "window: signals: no channel '%s'",
                             info->channels[c]);
            break;
        }
        rc = json_channel(a, c, w->window_len, *samples + c * w->window_len, err);
    }
    w->samples = *samples;
out:
    json_decref(o);
    return rc;
}

size_t ke_result_json_cap(const ke_model_info_t *info, const char *device, int with_features)
{
    return 512 + 2 * strlen(device ? device : "") + 2 * KE_NAME_MAX + 64 +
           (info->n_outputs + (with_features ? info->n_features : 0)) * 18;
}

/* Appends with snprintf; *o stays <= cap, and past it the result is 0. */
#define PUT(...)                                                                  \
    do {                                                                          \
        int n_ = snprintf(buf + o, o < cap ? cap - o : 0, __VA_ARGS__);           \
        o += n_ > 0 ? (size_t)n_ : 0;                                             \
    } while (0)

size_t ke_result_json(const ke_result_t *r, const ke_model_info_t *info, const char *device,
                      double latency_us, int with_features, char *buf, size_t cap)
{
    size_t o = 0;
    PUT("{\"device\":\"%s\",\"model\":\"%s@%s\",\"asset\":%d,\"timestamp_ns\":%lld,"
        "\"predicted\":%d,\"class\":",
        device ? device : "", info->name, info->version, (int)r->asset,
        (long long)r->timestamp_ns, (int)r->predicted);
    if (r->class_name) {
        PUT("\"");
        for (const char *c = r->class_name; *c; c++)
            if ((unsigned char)*c < 0x20 || *c == '"' || *c == '\\')
                PUT("\\u%04x", (unsigned char)*c);
            else
                PUT("%c", *c);
        PUT("\"");
    } else {
        PUT("null");
    }
    PUT(",\"scores\":[");
    for (size_t i = 0; i < r->n_outputs; i++)
        PUT(isfinite(r->scores[i]) ? "%s%.9g" : "%snull", i ? "," : "", (double)r->scores[i]);
    PUT("],\"latency_us\":%.1f", latency_us);
    if (with_features) {
        PUT(",\"features\":[");
        for (size_t i = 0; i < r->n_features; i++)
            PUT(isfinite(r->features[i]) ? "%s%.9g" : "%snull", i ? "," : "",
                (double)r->features[i]);
        PUT("]");
    }
    PUT("}\n");
    return o < cap ? o : 0;
}
