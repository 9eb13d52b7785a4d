/* sha256.h - FIPS 180-4 SHA-256, streaming, for content hashes.  Plain C,
 * with the x86 SHA extensions used when the CPU has them (same digests). */
#ifndef KILN_STORAGE_SHA256_H
#define KILN_STORAGE_SHA256_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint32_t state[8];
    uint64_t bytes;
    uint8_t  buf[64];
    size_t   buf_len;
    int      accel;     /* set by init: 1 when the CPU's SHA extensions do the
                           work (x86 SHA-NI); a test may clear it after init to
                           exercise the portable code */
} st_sha256_t;

void st_sha256_init(st_sha256_t *h);
void st_sha256_update(st_sha256_t *h, const void *data, size_t len);
void st_sha256_final(st_sha256_t *h, uint8_t digest[32]);
/* Hex of a 32-byte digest: 64 chars + NUL into hex[65]. */
void st_sha256_hex(const uint8_t digest[32], char hex[65]);

#endif
