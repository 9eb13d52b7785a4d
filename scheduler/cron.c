/* cron.c - cron expressions (cron.h): parse into bit sets, then walk day by
 * day to the next matching minute.  Calendar arithmetic is done on days since
 * the epoch (H. Hinnant, "chrono-Compatible Low-Level Date Algorithms"), so
 * nothing depends on the process's time zone or on timegm. */
#include "cron.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NS_PER_S   1000000000LL
#define SEARCH_DAYS (366 * 9)   /* a Feb 29 comes within 8 years (2096 -> 2104) */

/* ---- calendar */

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

/* Days since 1970-01-01 -> proleptic Gregorian y, m (1-12), d (1-31). */
static void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
    z += 719468;
    int64_t era = floor_div(z, 146097);
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

void ks_cron_iso(int64_t t_ns, int compact, char *buf, size_t cap)
{
    int64_t s = floor_div(t_ns, NS_PER_S);
    int64_t days = floor_div(s, 86400), sod = s - days * 86400;
    int64_t y;
    int m, d;
    civil_from_days(days, &y, &m, &d);
    snprintf(buf, cap, compact ? "%04lld%02d%02dT%02d%02d%02dZ" : "%04lld-%02d-%02dT%02d:%02d:%02dZ",
             (long long)y, m, d, (int)(sod / 3600), (int)(sod / 60 % 60), (int)(sod % 60));
}

/* ---- parsing */

typedef struct {
    const char *name;     /* "minute" */
    int lo, hi;           /* accepted values (day-of-week: 0-7) */
    const char *const *names;   /* 3-letter names for lo.., or NULL */
} field_t;

static const char *const month_names[] = {"jan", "feb", "mar", "apr", "may", "jun",
                                          "jul", "aug", "sep", "oct", "nov", "dec", NULL};
static const char *const day_names[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat", NULL};

static const field_t fields[5] = {
    {"minute", 0, 59, NULL},
    {"hour", 0, 23, NULL},
    {"day-of-month", 1, 31, NULL},
    {"month", 1, 12, month_names},
    {"day-of-week", 0, 7, day_names},
};

#define FIELD_ERR(err, i, ...) field_err(err, i, __VA_ARGS__)

static int field_err(kiln_err_t *err, int i, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int field_err(kiln_err_t *err, int i, const char *fmt, ...)
{
    char what[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return kiln_err_at(err, KILN_ESPEC, "schedule", "schedule: field %d (%s): %s", i + 1,
                       fields[i].name, what);
}

/* One value at *p (a number or, where the field has them, a name); advances *p. */
static int parse_value(const char **p, int i, int *out, kiln_err_t *err)
{
    const field_t *f = &fields[i];
    const char *s = *p;
    if (isdigit((unsigned char)*s)) {
        long v = 0;
        while (isdigit((unsigned char)*s) && v < 100000)
            v = v * 10 + (*s++ - '0');
        if (isdigit((unsigned char)*s))
            return FIELD_ERR(err, i, "%.12s... is out of %d-%d", *p, f->lo, f->hi);
        if (v < f->lo || v > f->hi)
            return FIELD_ERR(err, i, "%ld is out of %d-%d", v, f->lo, f->hi);
        *out = (int)v;
        *p = s;
        return 0;
    }
    if (f->names && isalpha((unsigned char)s[0]) && isalpha((unsigned char)s[1]) &&
        isalpha((unsigned char)s[2]) && !isalpha((unsigned char)s[3])) {
        for (int k = 0; f->names[k]; k++)
            if (tolower((unsigned char)s[0]) == f->names[k][0] &&
                tolower((unsigned char)s[1]) == f->names[k][1] &&
                tolower((unsigned char)s[2]) == f->names[k][2]) {
                *out = f->lo + k;
                *p = s + 3;
                return 0;
            }
    }
    size_t n = strcspn(s, ",-/");
    if (f->names)
        return FIELD_ERR(err, i, "\"%.*s\" is not a number or a name (%s..%s)", (int)n, s,
                         f->names[0], i == 3 ? "dec" : "sat");
    return FIELD_ERR(err, i, "\"%.*s\" is not a number in %d-%d", (int)n, s, f->lo, f->hi);
}

/* One comma-separated item: "*", "*" + "/S", "A", "A-B", "A-B/S", "A/S" (A to the top). */
static int parse_item(const char *item, size_t len, int i, uint64_t *bits, kiln_err_t *err)
{
    const field_t *f = &fields[i];
    char buf[64];
    if (len == 0)
        return FIELD_ERR(err, i, "an empty list item");
    if (len >= sizeof buf)
        return FIELD_ERR(err, i, "\"%.20s...\" is too long", item);
    memcpy(buf, item, len);
    buf[len] = '\0';
    const char *p = buf;
    int lo, hi, step = 1, rc;
    if (*p == '*') {
        lo = f->lo;
        hi = f->hi;
        p++;
    } else {
        if ((rc = parse_value(&p, i, &lo, err)) < 0)
            return rc;
        hi = lo;
        if (*p == '-') {
            p++;
            if ((rc = parse_value(&p, i, &hi, err)) < 0)
                return rc;
            if (hi < lo)
                return FIELD_ERR(err, i, "the range %d-%d runs backwards", lo, hi);
        } else if (*p == '/') {
            hi = f->hi;   /* "A/S": from A to the top, as cronie reads it */
        }
    }
    if (*p == '/') {
        p++;
        const char *s0 = p;
        long v = 0;
        while (isdigit((unsigned char)*p) && v < 100000)
            v = v * 10 + (*p++ - '0');
        if (p == s0 || *p)
            return FIELD_ERR(err, i, "\"%s\": the step after '/' must be a whole number", buf);
        if (v < 1 || v > f->hi)
            return FIELD_ERR(err, i, "\"%s\": the step %ld is out of 1-%d", buf, v, f->hi);
        step = (int)v;
    }
    if (*p)
        return FIELD_ERR(err, i, "\"%s\" is not a value, a range or a step (unexpected \"%s\")",
                         buf, p);
    for (int v = lo; v <= hi; v += step)
        *bits |= (uint64_t)1 << v;
    return 0;
}

static int parse_field(const char *text, size_t len, int i, uint64_t *bits, kiln_err_t *err)
{
    *bits = 0;
    size_t a = 0;
    for (size_t b = 0; b <= len; b++) {
        if (b < len && text[b] != ',')
            continue;
        int rc = parse_item(text + a, b - a, i, bits, err);
        if (rc < 0)
            return rc;
        a = b + 1;
    }
    return 0;
}

static const struct {
    const char *name, *expr;
} macros[] = {
    {"@hourly", "0 * * * *"},  {"@daily", "0 0 * * *"},   {"@midnight", "0 0 * * *"},
    {"@weekly", "0 0 * * 0"},  {"@monthly", "0 0 1 * *"}, {"@yearly", "0 0 1 1 *"},
    {"@annually", "0 0 1 1 *"},
};

static int parse_every(const char *arg, ks_cron_t *out, kiln_err_t *err)
{
    while (*arg == ' ' || *arg == '\t')
        arg++;
    const char *p = arg;
    int64_t n = 0;
    while (isdigit((unsigned char)*p) && n < 1000000000LL)
        n = n * 10 + (*p++ - '0');
    int64_t unit = 0;
    if (p > arg && p[0] && !p[1])
        unit = p[0] == 's' ? 1 : p[0] == 'm' ? 60 : p[0] == 'h' ? 3600 : 0;
    if (!unit || n < 1)
        return kiln_err_at(err, KILN_ESPEC, "schedule",
                           "schedule: @every: \"%s\" is not N{s,m,h} with N >= 1 (e.g. \"@every "
                           "30s\", \"@every 15m\", \"@every 2h\")", arg);
    if (n > 366 * 86400 / unit)
        return kiln_err_at(err, KILN_ESPEC, "schedule",
                           "schedule: @every: \"%s\" is longer than a year (use a cron expression)",
                           arg);
    out->every_ns = n * unit * NS_PER_S;
    return 0;
}

int ks_cron_parse(const char *expr, ks_cron_t *out, kiln_err_t *err)
{
    memset(out, 0, sizeof *out);
    if (!expr)
        return kiln_err_at(err, KILN_ESPEC, "schedule", "schedule: missing");
    while (isspace((unsigned char)*expr))
        expr++;
    if (strlen(expr) >= KS_CRON_EXPR_MAX)
        return kiln_err_at(err, KILN_ESPEC, "schedule", "schedule: longer than %d bytes",
                           KS_CRON_EXPR_MAX - 1);
    char text[KS_CRON_EXPR_MAX];
    snprintf(text, sizeof text, "%s", expr);
    for (size_t n = strlen(text); n && isspace((unsigned char)text[n - 1]);)
        text[--n] = '\0';
    if (text[0] == '@') {
        if (!strncmp(text, "@every", 6) && (!text[6] || isspace((unsigned char)text[6])))
            return parse_every(text + 6, out, err);
        for (size_t k = 0; k < sizeof macros / sizeof macros[0]; k++)
            if (!strcmp(text, macros[k].name))
                return ks_cron_parse(macros[k].expr, out, err);
        return kiln_err_at(err, KILN_ESPEC, "schedule",
                           "schedule: unknown \"%s\" (known: @hourly, @daily, @midnight, @weekly, "
                           "@monthly, @yearly, @annually, @every N{s,m,h})", text);
    }
    const char *start[6];
    size_t len[6];
    int n = 0;
    for (const char *p = text; *p;) {
        while (isspace((unsigned char)*p))
            p++;
        if (!*p)
            break;
        const char *q = p;
        while (*q && !isspace((unsigned char)*q))
            q++;
        if (n < 6) {
            start[n] = p;
            len[n] = (size_t)(q - p);
        }
        n++;
        p = q;
    }
    if (n != 5)
        return kiln_err_at(err, KILN_ESPEC, "schedule",
                           "schedule: \"%s\" has %d field%s; expected 5 (minute hour "
                           "day-of-month month day-of-week) or @hourly, @daily, @weekly, "
                           "@every N{s,m,h}", text, n, n == 1 ? "" : "s");
    uint64_t bits[5];
    for (int i = 0; i < 5; i++) {
        int rc = parse_field(start[i], len[i], i, &bits[i], err);
        if (rc < 0)
            return rc;
    }
    out->minutes = bits[0];
    out->hours = (uint32_t)bits[1];
    out->days = (uint32_t)bits[2];
    out->months = (uint16_t)bits[3];
    out->weekdays = (uint8_t)((bits[4] | (bits[4] >> 7)) & 0x7f);   /* 7 is Sunday too */
    out->days_star = start[2][0] == '*';
    out->weekdays_star = start[4][0] == '*';
    int64_t next;
    if (ks_cron_next_after(out, 0, &next) < 0)
        return kiln_err_at(err, KILN_ESPEC, "schedule",
                           "schedule: \"%s\" never fires (no such day in the months given)", text);
    return 0;
}

/* ---- evaluation */

int ks_cron_next_after(const ks_cron_t *c, int64_t t_ns, int64_t *next_ns)
{
    if (c->every_ns > 0) {
        *next_ns = (floor_div(t_ns, c->every_ns) + 1) * c->every_ns;
        return 0;
    }
    /* The first whole minute strictly after t. */
    int64_t minute = floor_div(floor_div(t_ns, NS_PER_S), 60) + 1;
    int64_t day = floor_div(minute, 1440);
    int mod = (int)(minute - day * 1440);
    for (int k = 0; k < SEARCH_DAYS; k++, day++, mod = 0) {
        int64_t y;
        int m, d;
        civil_from_days(day, &y, &m, &d);
        if (!(c->months >> m & 1))
            continue;
        int wd = (int)(((day % 7) + 7 + 4) % 7);   /* 1970-01-01 was a Thursday */
        int dom_ok = c->days >> d & 1, dow_ok = c->weekdays >> wd & 1;
        int day_ok = (c->days_star || c->weekdays_star) ? dom_ok && dow_ok : dom_ok || dow_ok;
        if (!day_ok)
            continue;
        for (int h = mod / 60; h < 24; h++) {
            if (!(c->hours >> h & 1))
                continue;
            for (int mi = h == mod / 60 ? mod % 60 : 0; mi < 60; mi++)
                if (c->minutes >> mi & 1) {
                    *next_ns = ((day * 1440) + h * 60 + mi) * 60 * NS_PER_S;
                    return 0;
                }
        }
    }
    return KILN_ENOTFOUND;
}
