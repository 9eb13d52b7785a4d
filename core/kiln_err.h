/* kiln_err.h - one table of kiln error codes and the error record every
 * fallible function fills.  Codes are negative so `if (rc < 0)` reads the
 * same everywhere, as in libuv. */
#ifndef KILN_ERR_H
#define KILN_ERR_H

#include <stddef.h>

/* XX(name, message): the enum, the names and the messages all come from here. */
#define KILN_ERRNO_MAP(XX)                                   \
    XX(EINVAL,      -1,  "invalid argument")                 \
    XX(ENOMEM,      -2,  "out of memory")                    \
    XX(EIO,         -3,  "input/output error")               \
    XX(EFORMAT,     -4,  "not a valid file of this kind")    \
    XX(ESCHEMA,     -5,  "dataset layout does not match")    \
    XX(ESHAPE,      -6,  "wrong shape")                      \
    XX(ETYPE,       -7,  "wrong type")                       \
    XX(ENONFINITE,  -8,  "NaN or Inf in data")               \
    XX(ENOTFOUND,   -9,  "not found")                        \
    XX(EJSON,       -10, "bad JSON")                         \
    XX(ESPEC,       -11, "bad specification")                \
    XX(EUNSUPPORTED,-12, "not supported")                    \
    XX(EEXIST,      -13, "already exists")                   \
    XX(EINTERNAL,   -14, "internal error")                   \
    XX(ESTALE,      -15, "stale lease")                      \
    XX(EBUSY,       -16, "over the admission limit")         \
    XX(ESTATE,      -17, "not allowed in this state")

typedef enum {
    KILN_OK = 0,
#define KILN_XX_ENUM(name, val, msg) KILN_##name = (val),
    KILN_ERRNO_MAP(KILN_XX_ENUM)
#undef KILN_XX_ENUM
} kiln_code_t;

/* The message is for the person who made the mistake: it names the file,
 * dataset, field or position.  `where` holds a dataset path, JSON field or
 * "line:column" when there is one. */
typedef struct {
    int  code;
    int  line;      /* 1-based JSON/CSV line, 0 if none */
    int  column;    /* 1-based column, 0 if none */
    char where[256];
    char msg[768];
} kiln_err_t;

/* Short fixed name ("KILN_ESHAPE") and generic message for a code. */
const char *kiln_err_name(int code);
const char *kiln_strerror(int code);

/* Fills err (if not NULL) with code and a printf-style message; returns code,
 * so callers write `return kiln_err_set(err, KILN_EINVAL, "...")`. */
int kiln_err_set(kiln_err_t *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Same, and records where (dataset path, field). */
int kiln_err_at(kiln_err_t *err, int code, const char *where, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

void kiln_err_clear(kiln_err_t *err);

#endif
