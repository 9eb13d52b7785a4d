/* kiln_sbuf.h - a growable NUL-terminated text buffer for output built by
 * hand (Prometheus pages, the scheduler's task messages), where a failed
 * allocation is remembered (oom) rather than checked at every append. */
#ifndef KILN_SBUF_H
#define KILN_SBUF_H

#include <stddef.h>

typedef struct {
    char  *p;      /* NULL until the first append; kiln_free it (or kiln_sbuf_free) */
    size_t len, cap;
    int    oom;    /* an append failed: the text is incomplete */
} kiln_sbuf_t;

/* Appends n bytes of s (no-op once oom). */
void kiln_sbuf_put(kiln_sbuf_t *b, const char *s, size_t n);
void kiln_sbuf_puts(kiln_sbuf_t *b, const char *s);
void kiln_sbuf_free(kiln_sbuf_t *b);

#endif
