/* kiln_sbuf.c - growable text buffer (kiln_sbuf.h). */
#include "kiln_sbuf.h"

#include <string.h>

#include "kiln_alloc.h"

void kiln_sbuf_put(kiln_sbuf_t *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = kiln_realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void kiln_sbuf_puts(kiln_sbuf_t *b, const char *s)
{
    kiln_sbuf_put(b, s, strlen(s));
}

void kiln_sbuf_free(kiln_sbuf_t *b)
{
    kiln_free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
    b->oom = 0;
}
