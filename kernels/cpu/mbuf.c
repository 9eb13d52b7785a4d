/* mbuf.c - the model kernels' byte buffers and random numbers (models.h).
 * Values are stored little-endian whatever the host, so a saved model's
 * bytes (and their hash) are the same on every machine. */
#include <math.h>
#include <string.h>

#include "../../core/kiln_alloc.h"
#include "../models.h"

void km_buf_put(km_buf_t *b, const void *v, size_t len)
{
    if (b->oom || len == 0)
        return;
    if (b->len + len > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + len)
            cap *= 2;
        unsigned char *p = kiln_realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, v, len);
    b->len += len;
}

void km_buf_u64(km_buf_t *b, uint64_t v)
{
    unsigned char le[8];
    for (int i = 0; i < 8; i++)
        le[i] = (unsigned char)(v >> (8 * i));
    km_buf_put(b, le, 8);
}

void km_buf_u32(km_buf_t *b, uint32_t v)
{
    unsigned char le[4];
    for (int i = 0; i < 4; i++)
        le[i] = (unsigned char)(v >> (8 * i));
    km_buf_put(b, le, 4);
}

void km_buf_f32s(km_buf_t *b, const float *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &v[i], 4);
        km_buf_u32(b, u);
    }
}

void km_buf_f64s(km_buf_t *b, const double *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint64_t u;
        memcpy(&u, &v[i], 8);
        km_buf_u64(b, u);
    }
}

void km_buf_free(km_buf_t *b)
{
    kiln_free(b->p);
    memset(b, 0, sizeof *b);
}

int km_rd_get(km_rd_t *r, void *v, size_t len)
{
    if (len > r->len - r->off)
        return -1;
    memcpy(v, r->p + r->off, len);
    r->off += len;
    return 0;
}

int km_rd_u64(km_rd_t *r, uint64_t *v)
{
    unsigned char le[8];
    if (km_rd_get(r, le, 8) < 0)
        return -1;
    *v = 0;
    for (int i = 0; i < 8; i++)
        *v |= (uint64_t)le[i] << (8 * i);
    return 0;
}

int km_rd_u32(km_rd_t *r, uint32_t *v)
{
    unsigned char le[4];
    if (km_rd_get(r, le, 4) < 0)
        return -1;
    *v = 0;
    for (int i = 0; i < 4; i++)
        *v |= (uint32_t)le[i] << (8 * i);
    return 0;
}

int km_rd_f32s(km_rd_t *r, float *v, size_t n)
{
    if (n > (r->len - r->off) / 4)
        return -1;
    for (size_t i = 0; i < n; i++) {
        uint32_t u = 0;
        km_rd_u32(r, &u);
        memcpy(&v[i], &u, 4);
    }
    return 0;
}

int km_rd_f64s(km_rd_t *r, double *v, size_t n)
{
    if (n > (r->len - r->off) / 8)
        return -1;
    for (size_t i = 0; i < n; i++) {
        uint64_t u = 0;
        km_rd_u64(r, &u);
        memcpy(&v[i], &u, 8);
    }
    return 0;
}

/* FNV-1a 64: any single changed byte changes the hash (each step is a
 * bijection of the state), which is what a corrupt-byte check needs. */
uint64_t km_fnv1a64(const unsigned char *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

/* ---- random numbers */

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void km_rng_seed(km_rng_t *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&seed);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

uint64_t km_rng_next(km_rng_t *r)
{
    uint64_t *s = r->s;
    uint64_t out = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return out;
}

double km_rng_uniform(km_rng_t *r)
{
    return (double)(km_rng_next(r) >> 11) * 0x1.0p-53;
}

double km_rng_normal(km_rng_t *r)
{
    /* Box-Muller; the second value is dropped so a draw is one call. */
    double u1 = km_rng_uniform(r), u2 = km_rng_uniform(r);
    if (u1 < 1e-300)
        u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

void km_rng_shuffle(km_rng_t *r, size_t *idx, size_t n)
{
    for (size_t i = 0; i < n; i++)
        idx[i] = i;
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)(km_rng_next(r) % i);
        size_t t = idx[i - 1];
        idx[i - 1] = idx[j];
        idx[j] = t;
    }
}
