/* kiln_alloc.c - heap wrapper with failure injection for tests. */
#include "kiln_alloc.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* The only mutable file-scope state in the library: a test hook, off (0)
 * unless a test turns it on.  Atomic, because featurize's compute threads
 * allocate their scratch while the calling thread allocates too. */
static atomic_long alloc_countdown;

static int alloc_should_fail(void)
{
    long c = atomic_load_explicit(&alloc_countdown, memory_order_relaxed);
    while (c > 1) {
        if (atomic_compare_exchange_weak(&alloc_countdown, &c, c - 1))
            return 0;
    }
    return c == 1;          /* stays at 1: every later allocation fails too */
}

void kiln_alloc_fail_after(long n) { atomic_store(&alloc_countdown, n > 0 ? n : 0); }

void *kiln_malloc(size_t size) { return alloc_should_fail() ? NULL : malloc(size ? size : 1); }

void *kiln_calloc(size_t n, size_t size)
{
    return alloc_should_fail() ? NULL : calloc(n ? n : 1, size ? size : 1);
}

void *kiln_realloc(void *p, size_t size)
{
    return alloc_should_fail() ? NULL : realloc(p, size ? size : 1);
}

char *kiln_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = kiln_malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

void kiln_free(void *p) { free(p); }

void *kiln_malloc_aligned(size_t size)
{
    if (alloc_should_fail() || size > SIZE_MAX - 63)
        return NULL;
    size = (size + 63) & ~(size_t)63;
    return aligned_alloc(64, size ? size : 64);
}

void kiln_free_aligned(void *p) { free(p); }
