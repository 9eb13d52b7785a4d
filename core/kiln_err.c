/* kiln_err.c - error names, messages and the filling of kiln_err_t. */
#include "kiln_err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *kiln_err_name(int code)
{
    switch (code) {
    case KILN_OK: return "KILN_OK";
#define KILN_XX_NAME(name, val, msg) case KILN_##name: return "KILN_" #name;
    KILN_ERRNO_MAP(KILN_XX_NAME)
#undef KILN_XX_NAME
    default: return "KILN_EUNKNOWN";
    }
}

const char *kiln_strerror(int code)
{
    switch (code) {
    case KILN_OK: return "success";
#define KILN_XX_MSG(name, val, msg) case KILN_##name: return msg;
    KILN_ERRNO_MAP(KILN_XX_MSG)
#undef KILN_XX_MSG
    default: return "unknown error";
    }
}

static void err_vset(kiln_err_t *err, int code, const char *where,
                     const char *fmt, va_list ap)
{
    err->code = code;
    err->line = 0;
    err->column = 0;
    snprintf(err->where, sizeof err->where, "%s", where ? where : "");
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
}

int kiln_err_set(kiln_err_t *err, int code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        err_vset(err, code, NULL, fmt, ap);
        va_end(ap);
    }
    return code;
}

int kiln_err_at(kiln_err_t *err, int code, const char *where, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        err_vset(err, code, where, fmt, ap);
        va_end(ap);
    }
    return code;
}

void kiln_err_clear(kiln_err_t *err)
{
    if (err)
        memset(err, 0, sizeof *err);
}
