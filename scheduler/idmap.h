/* idmap.h - an open-addressing hash map from positive int64 ids to
 * pointers: the scheduler's jobs and running tasks by id, looked up on
 * every worker message, so it must not allocate per lookup. */
#ifndef KILN_SCHEDULER_IDMAP_H
#define KILN_SCHEDULER_IDMAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    int64_t *keys;     /* 0: empty, -1: deleted */
    void   **vals;
    size_t   cap;      /* a power of two, or 0 */
    size_t   n;        /* live entries */
    size_t   used;     /* live + deleted slots */
} ks_idmap_t;

/* Zero-initialised is an empty map. */
void  *ks_idmap_get(const ks_idmap_t *m, int64_t id);
/* Inserts or replaces (id > 0).  Returns 0, or -1 out of memory. */
int    ks_idmap_put(ks_idmap_t *m, int64_t id, void *val);
/* Removes id if present; returns its value or NULL. */
void  *ks_idmap_del(ks_idmap_t *m, int64_t id);
void   ks_idmap_free(ks_idmap_t *m);

/* Iteration: for (size_t i = 0; ks_idmap_next(m, &i, &id, &val);) ... ;
 * the map must not change during it. */
int    ks_idmap_next(const ks_idmap_t *m, size_t *it, int64_t *id, void **val);

#endif
