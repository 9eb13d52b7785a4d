/* kiln_alloc.h - the one door to the heap, so tests can fail the Nth
 * allocation and prove each cleanup ladder (as jansson's test_chaos does). */
#ifndef KILN_ALLOC_H
#define KILN_ALLOC_H

#include <stddef.h>

void *kiln_malloc(size_t size);
void *kiln_calloc(size_t n, size_t size);
void *kiln_realloc(void *p, size_t size);
char *kiln_strdup(const char *s);
void  kiln_free(void *p);
/* 64-byte aligned, for SIMD scratch; free with kiln_free_aligned. */
void *kiln_malloc_aligned(size_t size);
void  kiln_free_aligned(void *p);

/* Test hook: the Nth allocation from now (1-based) and all after it fail;
 * n <= 0 turns failure injection off.  Process-wide and not thread-safe:
 * only single-threaded tests use it. */
void kiln_alloc_fail_after(long n);

#endif
