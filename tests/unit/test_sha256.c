/* test_sha256.c - SHA-256 against the FIPS 180-4 example vectors and against
 * python's hashlib (the oracle) for many lengths fed in uneven pieces; both
 * the portable code and, where the CPU has them, the SHA extensions. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "oracle.h"
#include "storage/sha256.h"

/* 0: portable code; 1: whatever init picked (SHA-NI when present). */
static int use_accel;

static void init(st_sha256_t *h)
{
    st_sha256_init(h);
    if (!use_accel)
        h->accel = 0;
}

static void hex_of(const void *data, size_t len, char hex[65])
{
    st_sha256_t h;
    uint8_t d[32];
    init(&h);
    st_sha256_update(&h, data, len);
    st_sha256_final(&h, d);
    st_sha256_hex(d, hex);
}

/* The published examples (FIPS 180-4 / NIST CSRC example values). */
static void test_known_vectors(void **state)
{
    (void)state;
    char hex[65];
    hex_of("", 0, hex);
    assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    hex_of("abc", 3, hex);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const char *m448 = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    hex_of(m448, strlen(m448), hex);
    assert_string_equal(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    const char *m896 = "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmno"
                       "ijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu";
    hex_of(m896, strlen(m896), hex);
    assert_string_equal(hex, "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");

    /* one million 'a', fed 1000 bytes at a time */
    char block[1000];
    memset(block, 'a', sizeof block);
    st_sha256_t h;
    uint8_t d[32];
    init(&h);
    for (int i = 0; i < 1000; i++)
        st_sha256_update(&h, block, sizeof block);
    st_sha256_final(&h, d);
    st_sha256_hex(d, hex);
    assert_string_equal(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

static uint32_t rng_state = 12345;
static uint32_t rng(void)
{
    rng_state = rng_state * 1664525u + 1013904223u;
    return rng_state >> 8;
}

/* Lengths around the 55/56/64-byte padding edges and some larger ones, each
 * fed in random pieces; hashlib gives the expected digests (one call). */
static void test_against_hashlib(void **state)
{
    (void)state;
    static const size_t lens[] = {0, 1, 3, 54, 55, 56, 57, 63, 64, 65, 119, 120, 127, 128, 129,
                                  191, 1000, 4096, 10007};
    enum { N = sizeof lens / sizeof lens[0] };
    size_t total = 0;
    for (size_t t = 0; t < N; t++)
        total += lens[t];
    uint8_t *buf = malloc(total);
    double *as_f64 = malloc(total * sizeof(double));
    uint8_t got[N][32];
    char params[512];
    int at = snprintf(params, sizeof params, "{\"lens\": [");
    assert_non_null(buf);
    assert_non_null(as_f64);
    for (size_t i = 0; i < total; i++) {
        buf[i] = (uint8_t)rng();
        as_f64[i] = buf[i];
    }
    for (size_t t = 0, off0 = 0; t < N; off0 += lens[t], t++) {
        st_sha256_t h;
        init(&h);
        for (size_t off = 0; off < lens[t];) {
            size_t piece = 1 + rng() % 150;
            if (piece > lens[t] - off)
                piece = lens[t] - off;
            st_sha256_update(&h, buf + off0 + off, piece);
            off += piece;
        }
        st_sha256_final(&h, got[t]);
        at += snprintf(params + at, sizeof params - (size_t)at, "%s%zu", t ? ", " : "", lens[t]);
    }
    snprintf(params + at, sizeof params - (size_t)at, "]}");
    double *want;
    size_t n;
    assert_int_equal(oracle_run("sha256", params, as_f64, 1, total, &want, &n), 0);
    assert_int_equal(n, 32 * N);
    for (size_t t = 0; t < N; t++)
        for (int i = 0; i < 32; i++)
            if (got[t][i] != (int)want[32 * t + (size_t)i])
                fail_msg("length %zu: byte %d differs from hashlib", lens[t], i);
    free(want);
    free(buf);
    free(as_f64);
}

static void test_hex(void **state)
{
    (void)state;
    uint8_t d[32];
    char hex[65];
    for (int i = 0; i < 32; i++)
        d[i] = (uint8_t)(i * 8 + 7);
    st_sha256_hex(d, hex);
    assert_int_equal(strlen(hex), 64);
    assert_memory_equal(hex, "070f171f", 8);
    assert_memory_equal(hex + 56, "e7eff7ff", 8);
}

static int portable(void **state)
{
    (void)state;
    use_accel = 0;
    return 0;
}

static int accelerated(void **state)
{
    st_sha256_t h;
    st_sha256_init(&h);
    if (!h.accel)
        print_message("no SHA extensions on this CPU: the portable code runs twice\n");
    (void)state;
    use_accel = 1;
    return 0;
}

/* The two code paths agree on 64 KiB of bytes fed in random pieces. */
static void test_paths_agree(void **state)
{
    (void)state;
    static uint8_t buf[65536];
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (uint8_t)rng();
    uint8_t d[2][32];
    for (int a = 0; a < 2; a++) {
        st_sha256_t h;
        st_sha256_init(&h);
        if (!a)
            h.accel = 0;
        for (size_t off = 0; off < sizeof buf;) {
            size_t piece = rng() % 3000;
            if (piece > sizeof buf - off)
                piece = sizeof buf - off;
            st_sha256_update(&h, buf + off, piece);
            off += piece;
        }
        st_sha256_final(&h, d[a]);
    }
    assert_memory_equal(d[0], d[1], 32);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_known_vectors, portable),
        cmocka_unit_test_setup(test_against_hashlib, portable),
        cmocka_unit_test_setup(test_known_vectors, accelerated),
        cmocka_unit_test_setup(test_against_hashlib, accelerated),
        cmocka_unit_test(test_paths_agree),
        cmocka_unit_test(test_hex),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
