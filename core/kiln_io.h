/* kiln_io.h - small POSIX I/O helpers every layer shares. */
#ifndef KILN_IO_H
#define KILN_IO_H

#include <stddef.h>

/* Writes all len bytes of buf to fd, retrying short writes and EINTR;
 * 0, or -1 with errno set (a write of 0 bytes counts as a failure). */
int kiln_write_all(int fd, const void *buf, size_t len);

#endif
