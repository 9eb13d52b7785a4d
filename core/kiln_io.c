/* kiln_io.c - POSIX I/O helpers (kiln_io.h). */
#include "kiln_io.h"

#include <errno.h>
#include <unistd.h>

int kiln_write_all(int fd, const void *buf, size_t len)
{
    const unsigned char *p = buf;
    while (len) {
        ssize_t w = write(fd, p, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        len -= (size_t)w;
    }
    return 0;
}
