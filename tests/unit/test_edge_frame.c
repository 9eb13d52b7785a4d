/* test_edge_frame.c - edge/frame (the window frame and result line of
 * kiln-edge): encode/parse round trip with the bytes laid out as frame.h
 * says, every bad header field refused naming it, JSON lines by array and by
 * channel name, bad JSON windows, result lines that fit or say they do not.
 * The engine behind it is checked end to end against the cluster in
 * tests/system/edge_parity.sh. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/kiln_alloc.h"
#include "edge/frame.h"

static void test_round_trip(void **state)
{
    (void)state;
    float x[2 * 5];
    for (int i = 0; i < 10; i++)
        x[i] = (float)i * 0.25f - 1.0f;
    ke_window_t w = {.asset = -7, .timestamp_ns = 1704067200123456789LL,
                     .sample_rate_hz = 12000.0, .n_channels = 2, .window_len = 5, .samples = x};
    unsigned char buf[KE_FRAME_HEADER_BYTES + sizeof x];
    ke_frame_encode(&w, buf);
    assert_memory_equal(buf, "KEW1", 4);
    assert_int_equal(buf[4], 2);
    assert_int_equal(buf[8], 5);
    ke_frame_hdr_t h;
    kiln_err_t err;
    assert_int_equal(ke_frame_parse_header(buf, sizeof buf, &h, &err), 0);
    assert_int_equal(h.n_channels, 2);
    assert_int_equal(h.window_len, 5);
    assert_int_equal(h.asset, -7);
    assert_true(h.timestamp_ns == 1704067200123456789LL);
    assert_true(h.sample_rate_hz == 12000.0);
    assert_int_equal(h.frame_bytes, sizeof buf);
    float y[10];
    ke_frame_samples(buf, &h, y);
    assert_memory_equal(x, y, sizeof x);
    /* unaligned frame start: the samples are copied bytewise */
    unsigned char *odd = malloc(sizeof buf + 1);
    memcpy(odd + 1, buf, sizeof buf);
    memset(y, 0, sizeof y);
    ke_frame_samples(odd + 1, &h, y);
    assert_memory_equal(x, y, sizeof x);
    free(odd);
}

static void expect_bad(const unsigned char *buf, size_t len, const char *where)
{
    ke_frame_hdr_t h;
    kiln_err_t err;
    kiln_err_clear(&err);
    assert_int_equal(ke_frame_parse_header(buf, len, &h, &err), KILN_EFORMAT);
    assert_string_equal(err.where, where);
}

static void test_bad_headers(void **state)
{
    (void)state;
    float x[4] = {0};
    ke_window_t w = {.asset = 1, .sample_rate_hz = 100, .n_channels = 1, .window_len = 4,
                     .samples = x};
    unsigned char good[KE_FRAME_HEADER_BYTES + 16], b[sizeof good];
    ke_frame_encode(&w, good);
    expect_bad(good, 31, "frame");
    memcpy(b, good, sizeof b); b[0] = 'X';             expect_bad(b, sizeof b, "magic");
    memcpy(b, good, sizeof b); b[4] = 0;               expect_bad(b, sizeof b, "n_channels");
    memcpy(b, good, sizeof b); b[4] = 65;              expect_bad(b, sizeof b, "n_channels");
    memcpy(b, good, sizeof b); b[6] = 1;               expect_bad(b, sizeof b, "reserved");
    memcpy(b, good, sizeof b); memset(b + 8, 0, 4);    expect_bad(b, sizeof b, "window_len");
    memcpy(b, good, sizeof b); memset(b + 8, 0xff, 4); expect_bad(b, sizeof b, "window_len");
    /* 64 channels of 2^20 samples: over the frame bound */
    memcpy(b, good, sizeof b); b[4] = 64; b[8] = 0; b[9] = 0; b[10] = 0x10; b[11] = 0;
    expect_bad(b, sizeof b, "window_len");
    double bad_rates[] = {0, -1, NAN, INFINITY};
    for (size_t i = 0; i < 4; i++) {
        memcpy(b, good, sizeof b);
        memcpy(b + 24, &bad_rates[i], 8);
        expect_bad(b, sizeof b, "sample_rate_hz");
    }
}

static ke_model_info_t info2(void)
{
    ke_model_info_t in;
    memset(&in, 0, sizeof in);
    snprintf(in.name, sizeof in.name, "bearing");
    snprintf(in.version, sizeof in.version, "4");
    in.n_channels = 2;
    snprintf(in.channels[0], KE_NAME_MAX, "DE");
    snprintf(in.channels[1], KE_NAME_MAX, "FE");
    in.n_outputs = 2;
    in.n_features = 3;
    return in;
}

static void test_json_windows(void **state)
{
    (void)state;
    ke_model_info_t in = info2();
    float *samples = NULL;
    size_t cap = 0;
    ke_window_t w;
    kiln_err_t err;
    const char *a = "{\"asset\": 3, \"timestamp_ns\": 5, \"sample_rate_hz\": 12000,"
                    " \"signals\": [[1, 2.5, 3], [4, 5, 0.1]]}";
    assert_int_equal(ke_frame_parse_json(a, strlen(a), &in, &w, &samples, &cap, &err), 0);
    assert_int_equal(w.n_channels, 2);
    assert_int_equal(w.window_len, 3);
    assert_int_equal(w.asset, 3);
    assert_true(w.samples[1] == 2.5f && w.samples[5] == 0.1f);
    /* by channel name, in the model's order whatever the object's */
    const char *b = "{\"sample_rate_hz\": 8000, \"signals\": {\"FE\": [9, 8], \"DE\": [1, 2]}}";
    assert_int_equal(ke_frame_parse_json(b, strlen(b), &in, &w, &samples, &cap, &err), 0);
    assert_true(w.samples[0] == 1 && w.samples[1] == 2 && w.samples[2] == 9);
    static const struct { const char *text, *where; } bad[] = {
        {"{\"signals\": [[1]]}", "sample_rate_hz"},                 /* no rate, none declared */
        {"{\"sample_rate_hz\": 1, \"signals\": []}", "signals"},
        {"{\"sample_rate_hz\": 1, \"signals\": [[1, 2], [3]]}", "signals"},
        {"{\"sample_rate_hz\": 1, \"signals\": [[1, \"x\"]]}", "signals"},
        {"{\"sample_rate_hz\": 1, \"signals\": {\"DE\": [1]}}", "signals"}, /* FE missing */
        {"{\"asset\": 1.5, \"sample_rate_hz\": 1, \"signals\": [[1]]}", "asset"},
        {"{\"asset\": 4294967296, \"sample_rate_hz\": 1, \"signals\": [[1]]}", "asset"},
        {"{\"timestamp_ns\": \"x\", \"sample_rate_hz\": 1, \"signals\": [[1]]}", "timestamp_ns"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        kiln_err_clear(&err);
        assert_true(ke_frame_parse_json(bad[i].text, strlen(bad[i].text), &in, &w, &samples, &cap,
                                        &err) < 0);
        assert_string_equal(err.where, bad[i].where);
    }
    assert_int_equal(ke_frame_parse_json("{nope", 5, &in, &w, &samples, &cap, &err), KILN_EJSON);
    kiln_free(samples);
}

static void test_result_line(void **state)
{
    (void)state;
    ke_model_info_t in = info2();
    float scores[2] = {0.25f, 0.1f}, feats[3] = {1, 2, NAN};
    ke_result_t r = {.asset = 2, .timestamp_ns = 9, .n_outputs = 2, .scores = scores,
                     .predicted = 0, .class_name = "in\"ner", .n_features = 3, .features = feats};
    char buf[1024];
    size_t n = ke_result_json(&r, &in, "press-7", 12.5, 1, buf, sizeof buf);
    assert_true(n > 0 && n < sizeof buf);
    assert_int_equal(strlen(buf), n);
    assert_string_equal(buf, "{\"device\":\"press-7\",\"model\":\"bearing@4\",\"asset\":2,"
                             "\"timestamp_ns\":9,\"predicted\":0,\"class\":\"in\\u0022ner\","
                             "\"scores\":[0.25,0.100000001],\"latency_us\":12.5,"
                             "\"features\":[1,2,null]}\n");
    /* 9 significant digits give the float32 back */
    assert_true((float)strtod("0.100000001", NULL) == 0.1f);
    assert_true(ke_result_json_cap(&in, "press-7", 1) >= n);
    assert_int_equal(ke_result_json(&r, &in, "press-7", 12.5, 1, buf, 20), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_bad_headers),
        cmocka_unit_test(test_json_windows),
        cmocka_unit_test(test_result_line),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
