/* sha256.c - FIPS 180-4 SHA-256, streaming: the content hashes of datasets
 * and artifacts.  A plain C compression function, and on x86 CPUs with the
 * SHA extensions (SHA-NI) the same function with sha256rnds2/msg1/msg2,
 * about 4x faster; test_sha256 checks both against hashlib. */
#include "sha256.h"

#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#include <immintrin.h>
#define ST_SHA_X86 1
#endif

static const uint32_t K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

static uint32_t rotr(uint32_t x, unsigned n) { return (x >> n) | (x << (32 - n)); }

/* One 64-byte block: the compression function of FIPS 180-4 section 6.2.2. */
static void compress(uint32_t state[8], const uint8_t block[64])
{
    uint32_t w[64];
    for (int t = 0; t < 16; t++)
        w[t] = (uint32_t)block[4 * t] << 24 | (uint32_t)block[4 * t + 1] << 16 |
               (uint32_t)block[4 * t + 2] << 8 | (uint32_t)block[4 * t + 3];
    for (int t = 16; t < 64; t++) {
        uint32_t s0 = rotr(w[t - 15], 7) ^ rotr(w[t - 15], 18) ^ (w[t - 15] >> 3);
        uint32_t s1 = rotr(w[t - 2], 17) ^ rotr(w[t - 2], 19) ^ (w[t - 2] >> 10);
        w[t] = w[t - 16] + s0 + w[t - 7] + s1;
    }
    uint32_t a = state[0], b = state[1], c = state[2], d = state[3];
    uint32_t e = state[4], f = state[5], g = state[6], h = state[7];
    for (int t = 0; t < 64; t++) {
        uint32_t t1 = h + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + K[t] + w[t];
        uint32_t t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
        h = g; g = f; f = e; e = d + t1;
        d = c; c = b; b = a; a = t1 + t2;
    }
    state[0] += a; state[1] += b; state[2] += c; state[3] += d;
    state[4] += e; state[5] += f; state[6] += g; state[7] += h;
}

#ifdef ST_SHA_X86
/* Blocks through SHA-NI.  The state lives as ABEF/CDGH, the order
 * sha256rnds2 wants (Intel, "New Instructions Supporting the Secure Hash
 * Algorithm on Intel Architecture Processors", 2013). */
__attribute__((target("sha,sse4.1,ssse3")))
static void compress_shani(uint32_t state[8], const uint8_t *data, size_t blocks)
{
    const __m128i bswap = _mm_set_epi64x(0x0c0d0e0f08090a0bLL, 0x0405060700010203LL);
    __m128i tmp = _mm_loadu_si128((const __m128i *)&state[0]);
    __m128i state1 = _mm_loadu_si128((const __m128i *)&state[4]);
    tmp = _mm_shuffle_epi32(tmp, 0xB1);                   /* CDAB */
    state1 = _mm_shuffle_epi32(state1, 0x1B);             /* EFGH */
    __m128i state0 = _mm_alignr_epi8(tmp, state1, 8);     /* ABEF */
    state1 = _mm_blend_epi16(state1, tmp, 0xF0);          /* CDGH */

    for (; blocks; blocks--, data += 64) {
        __m128i abef = state0, cdgh = state1, w[4];
        for (int g = 0; g < 16; g++) {
            if (g < 4) {
                w[g] = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(data + 16 * g)), bswap);
            } else {  /* W[4g..4g+3] from the four groups before it */
                __m128i w0 = w[g & 3], w1 = w[(g + 1) & 3], w2 = w[(g + 2) & 3], w3 = w[(g + 3) & 3];
                __m128i x = _mm_add_epi32(_mm_sha256msg1_epu32(w0, w1), _mm_alignr_epi8(w3, w2, 4));
                w[g & 3] = _mm_sha256msg2_epu32(x, w3);
            }
            __m128i msg = _mm_add_epi32(w[g & 3], _mm_loadu_si128((const __m128i *)&K[4 * g]));
            state1 = _mm_sha256rnds2_epu32(state1, state0, msg);
            state0 = _mm_sha256rnds2_epu32(state0, state1, _mm_shuffle_epi32(msg, 0x0E));
        }
        state0 = _mm_add_epi32(state0, abef);
        state1 = _mm_add_epi32(state1, cdgh);
    }
    tmp = _mm_shuffle_epi32(state0, 0x1B);                /* FEBA */
    state1 = _mm_shuffle_epi32(state1, 0xB1);             /* DCHG */
    state0 = _mm_blend_epi16(tmp, state1, 0xF0);          /* DCBA */
    state1 = _mm_alignr_epi8(state1, tmp, 8);             /* ABEF */
    _mm_storeu_si128((__m128i *)&state[0], state0);
    _mm_storeu_si128((__m128i *)&state[4], state1);
}

/* CPUID rather than __builtin_cpu_supports("sha"), which clang 14 lacks:
 * leaf 7 EBX bit 29 is SHA, leaf 1 ECX bits 9 and 19 are SSSE3 and SSE4.1. */
static int cpu_has_sha(void)
{
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 9)) || !(c & (1u << 19)))
        return 0;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d))
        return 0;
    return (b >> 29) & 1u;
}
#endif

static void compress_blocks(st_sha256_t *h, const uint8_t *p, size_t blocks)
{
#ifdef ST_SHA_X86
    if (h->accel) {
        compress_shani(h->state, p, blocks);
        return;
    }
#endif
    for (; blocks; blocks--, p += 64)
        compress(h->state, p);
}

void st_sha256_init(st_sha256_t *h)
{
    static const uint32_t H0[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    memcpy(h->state, H0, sizeof H0);
    h->bytes = 0;
    h->buf_len = 0;
#ifdef ST_SHA_X86
    h->accel = cpu_has_sha();
#else
    h->accel = 0;
#endif
}

void st_sha256_update(st_sha256_t *h, const void *data, size_t len)
{
    const uint8_t *p = data;
    h->bytes += len;
    if (h->buf_len) {
        size_t take = 64 - h->buf_len < len ? 64 - h->buf_len : len;
        memcpy(h->buf + h->buf_len, p, take);
        h->buf_len += take;
        p += take;
        len -= take;
        if (h->buf_len < 64)
            return;
        compress_blocks(h, h->buf, 1);
        h->buf_len = 0;
    }
    if (len >= 64) {
        compress_blocks(h, p, len / 64);
        p += len & ~(size_t)63;
        len &= 63;
    }
    if (len) {
        memcpy(h->buf, p, len);
        h->buf_len = len;
    }
}

void st_sha256_final(st_sha256_t *h, uint8_t digest[32])
{
    uint64_t bits = h->bytes * 8;
    uint8_t pad[72] = {0x80};
    /* 0x80, zeros up to 56 mod 64, then the 64-bit big-endian bit length. */
    size_t pad_len = (h->buf_len < 56 ? 56 : 120) - h->buf_len;
    for (int i = 0; i < 8; i++)
        pad[pad_len + i] = (uint8_t)(bits >> (56 - 8 * i));
    uint64_t saved = h->bytes;
    st_sha256_update(h, pad, pad_len + 8);
    h->bytes = saved;
    for (int i = 0; i < 8; i++) {
        digest[4 * i] = (uint8_t)(h->state[i] >> 24);
        digest[4 * i + 1] = (uint8_t)(h->state[i] >> 16);
        digest[4 * i + 2] = (uint8_t)(h->state[i] >> 8);
        digest[4 * i + 3] = (uint8_t)h->state[i];
    }
}

void st_sha256_hex(const uint8_t digest[32], char hex[65])
{
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        hex[2 * i] = digits[digest[i] >> 4];
        hex[2 * i + 1] = digits[digest[i] & 15];
    }
    hex[64] = '\0';
}
