/* sha256.h - FIPS 180-4 SHA-256, streaming, for content hashes. */
#ifndef KILN_STORAGE_SHA256_H
#define KILN_STORAGE_SHA256_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint32_t state[8];
    uint64_t bytes;
    uint8_t  buf[64];
    size_t   buf_len;
} st_sha256_t;

void st_sha256_init(st_sha256_t *h);
void st_sha256_update(st_sha256_t *h, const void *data, size_t len);
void st_sha256_final(st_sha256_t *h, uint8_t digest[32]);
/* Hex of a 32-byte digest: 64 chars + NUL into hex[65]. */
void st_sha256_hex(const uint8_t digest[32], char hex[65]);

#endif
