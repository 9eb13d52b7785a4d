/* idmap.c - int64 -> pointer hash map, linear probing (idmap.h). */
#include "idmap.h"

#include <string.h>

#include "core/kiln_alloc.h"

#define EMPTY   0
#define DELETED (-1)

static size_t slot_of(int64_t id, size_t cap)
{
    uint64_t h = (uint64_t)id * 0x9E3779B97F4A7C15ull;   /* Fibonacci hashing */
    return (size_t)(h >> 17) & (cap - 1);
}

void *ks_idmap_get(const ks_idmap_t *m, int64_t id)
{
    if (!m->cap || id <= 0)
        return NULL;
    for (size_t i = slot_of(id, m->cap);; i = (i + 1) & (m->cap - 1)) {
        if (m->keys[i] == id)
            return m->vals[i];
        if (m->keys[i] == EMPTY)
            return NULL;
    }
}

static int grow(ks_idmap_t *m)
{
    size_t cap = m->cap ? m->cap : 64;
    if ((m->n + 1) * 2 > cap)
        cap *= 2;
    int64_t *keys = kiln_calloc(cap, sizeof *keys);
    void **vals = kiln_calloc(cap, sizeof *vals);
    if (!keys || !vals) {
        kiln_free(keys);
        kiln_free(vals);
        return -1;
    }
    for (size_t i = 0; i < m->cap; i++) {
        if (m->keys[i] <= 0)
            continue;
        size_t j = slot_of(m->keys[i], cap);
        while (keys[j] != EMPTY)
            j = (j + 1) & (cap - 1);
        keys[j] = m->keys[i];
        vals[j] = m->vals[i];
    }
    kiln_free(m->keys);
    kiln_free(m->vals);
    m->keys = keys;
    m->vals = vals;
    m->cap = cap;
    m->used = m->n;
    return 0;
}

int ks_idmap_put(ks_idmap_t *m, int64_t id, void *val)
{
    if (id <= 0)
        return -1;
    /* Keep at most 3/4 of the slots used (deleted ones count): probes stay short. */
    if ((m->used + 1) * 4 > m->cap * 3 && grow(m) < 0)
        return -1;
    size_t tomb = (size_t)-1;
    for (size_t i = slot_of(id, m->cap);; i = (i + 1) & (m->cap - 1)) {
        if (m->keys[i] == id) {
            m->vals[i] = val;
            return 0;
        }
        if (m->keys[i] == DELETED && tomb == (size_t)-1)
            tomb = i;
        if (m->keys[i] == EMPTY) {
            if (tomb != (size_t)-1)
                i = tomb;
            else
                m->used++;
            m->keys[i] = id;
            m->vals[i] = val;
            m->n++;
            return 0;
        }
    }
}

void *ks_idmap_del(ks_idmap_t *m, int64_t id)
{
    if (!m->cap || id <= 0)
        return NULL;
    for (size_t i = slot_of(id, m->cap);; i = (i + 1) & (m->cap - 1)) {
        if (m->keys[i] == id) {
            void *v = m->vals[i];
            m->keys[i] = DELETED;
            m->vals[i] = NULL;
            m->n--;
            return v;
        }
        if (m->keys[i] == EMPTY)
            return NULL;
    }
}

int ks_idmap_next(const ks_idmap_t *m, size_t *it, int64_t *id, void **val)
{
    for (; *it < m->cap; (*it)++) {
        if (m->keys[*it] > 0) {
            *id = m->keys[*it];
            *val = m->vals[*it];
            (*it)++;
            return 1;
        }
    }
    return 0;
}

void ks_idmap_free(ks_idmap_t *m)
{
    kiln_free(m->keys);
    kiln_free(m->vals);
    memset(m, 0, sizeof *m);
}
