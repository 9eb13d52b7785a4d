/* prom.c - Prometheus registry and text exposition format 0.0.4 (prom.h).
 * Series are kept in a plain array per family and found by a linear scan:
 * a daemon has tens of series per family (job types x states, workers),
 * and a scrape renders them all anyway. */
#include "prom.h"

#include <dirent.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "core/kiln_alloc.h"
#include "core/kiln_sbuf.h"

typedef struct {
    char    **values;        /* n_labels strings, owned */
    double    value;         /* counter, gauge */
    uint64_t *buckets;       /* histogram: n_bounds + 1 counts, not cumulative; last is +Inf */
    double    sum;
    uint64_t  count;
} kp_series_t;

struct kp_family {
    char       *name, *help;
    kp_kind_t   kind;
    size_t      n_labels;
    char       *labels[KP_LABELS_MAX];
    double     *bounds;
    size_t      n_bounds;
    kp_series_t *series;
    size_t      n_series, cap_series;
};

struct kp_registry {
    kp_family_t **fams;
    size_t        n_fams, cap_fams;
};

static const char *const kind_names[] = {"counter", "gauge", "histogram"};

/* ---- registry */

int kp_registry_new(kp_registry_t **out, kiln_err_t *err)
{
    *out = kiln_calloc(1, sizeof **out);
    return *out ? 0 : kiln_err_set(err, KILN_ENOMEM, "metrics: out of memory");
}

static void series_free(kp_series_t *s, size_t n_labels)
{
    for (size_t i = 0; i < n_labels; i++)
        kiln_free(s->values[i]);
    kiln_free(s->values);
    kiln_free(s->buckets);
}

void kp_clear(kp_family_t *f)
{
    if (!f)
        return;
    for (size_t i = 0; i < f->n_series; i++)
        series_free(&f->series[i], f->n_labels);
    f->n_series = 0;
}

static void family_free(kp_family_t *f)
{
    if (!f)
        return;
    kp_clear(f);
    kiln_free(f->series);
    for (size_t i = 0; i < f->n_labels; i++)
        kiln_free(f->labels[i]);
    kiln_free(f->bounds);
    kiln_free(f->name);
    kiln_free(f->help);
    kiln_free(f);
}

void kp_registry_destroy(kp_registry_t **r)
{
    if (!r || !*r)
        return;
    for (size_t i = 0; i < (*r)->n_fams; i++)
        family_free((*r)->fams[i]);
    kiln_free((*r)->fams);
    kiln_free(*r);
    *r = NULL;
}

/* ---- names */

static int name_ok(const char *s, int colon)
{
    if (!s || !*s)
        return 0;
    for (const char *p = s; *p; p++) {
        char c = *p;
        int alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
                    (colon && c == ':');
        if (!alpha && !(p > s && c >= '0' && c <= '9'))
            return 0;
    }
    return 1;
}

/* "type,state" into f->labels. */
static int parse_labels(kp_family_t *f, const char *labels, kiln_err_t *err)
{
    const char *p = labels ? labels : "";
    while (*p) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        char name[128];
        if (n == 0 || n >= sizeof name)
            return kiln_err_at(err, KILN_EINVAL, f->name, "metric %s: empty or long label name "
                               "in \"%s\"", f->name, labels);
        memcpy(name, p, n);
        name[n] = '\0';
        if (!name_ok(name, 0) || !strncmp(name, "__", 2) ||
            (f->kind == KP_HISTOGRAM && !strcmp(name, "le")))
            return kiln_err_at(err, KILN_EINVAL, f->name, "metric %s: \"%s\" is not a label name "
                               "Prometheus accepts", f->name, name);
        for (size_t i = 0; i < f->n_labels; i++)
            if (!strcmp(f->labels[i], name))
                return kiln_err_at(err, KILN_EINVAL, f->name, "metric %s: label \"%s\" twice",
                                   f->name, name);
        if (f->n_labels == KP_LABELS_MAX)
            return kiln_err_at(err, KILN_EINVAL, f->name, "metric %s: more than %d labels",
                               f->name, KP_LABELS_MAX);
        if (!(f->labels[f->n_labels] = kiln_strdup(name)))
            return kiln_err_set(err, KILN_ENOMEM, "metrics: out of memory");
        f->n_labels++;
        p += n;
        if (*p == ',')
            p++;
    }
    return 0;
}

static int same_shape(const kp_family_t *a, const kp_family_t *b)
{
    if (a->kind != b->kind || a->n_labels != b->n_labels || a->n_bounds != b->n_bounds)
        return 0;
    for (size_t i = 0; i < a->n_labels; i++)
        if (strcmp(a->labels[i], b->labels[i]))
            return 0;
    for (size_t i = 0; i < a->n_bounds; i++)
        if (a->bounds[i] != b->bounds[i])
            return 0;
    return 1;
}

static int family_new(kp_registry_t *r, kp_kind_t kind, const char *name, const char *help,
                      const char *labels, const double *bounds, size_t n_bounds,
                      kp_family_t **out, kiln_err_t *err)
{
    *out = NULL;
    if (!r || !name_ok(name, 1))
        return kiln_err_at(err, KILN_EINVAL, name ? name : "", "metric name \"%s\": Prometheus "
                           "accepts [a-zA-Z_:][a-zA-Z0-9_:]*", name ? name : "(null)");
    if (kind == KP_HISTOGRAM) {
        if (n_bounds == 0 || n_bounds > KP_BUCKETS_MAX || !bounds)
            return kiln_err_at(err, KILN_EINVAL, name, "metric %s: 1..%d bucket bounds", name,
                               KP_BUCKETS_MAX);
        for (size_t i = 0; i < n_bounds; i++)
            if (!isfinite(bounds[i]) || (i > 0 && !(bounds[i] > bounds[i - 1])))
                return kiln_err_at(err, KILN_EINVAL, name, "metric %s: bucket bounds must be "
                                   "finite and strictly increasing (bound %zu)", name, i);
    }
    kp_family_t *f = kiln_calloc(1, sizeof *f);
    if (!f)
        return kiln_err_set(err, KILN_ENOMEM, "metrics: out of memory");
    f->kind = kind;
    int rc = 0;
    if (!(f->name = kiln_strdup(name)) || !(f->help = kiln_strdup(help ? help : ""))) {
        rc = kiln_err_set(err, KILN_ENOMEM, "metrics: out of memory");
        goto fail;
    }
    if ((rc = parse_labels(f, labels, err)) < 0)
        goto fail;
    if (kind == KP_HISTOGRAM) {
        if (!(f->bounds = kiln_malloc(n_bounds * sizeof *f->bounds))) {
            rc = kiln_err_set(err, KILN_ENOMEM, "metrics: out of memory");
            goto fail;
        }
        memcpy(f->bounds, bounds, n_bounds * sizeof *bounds);
        f->n_bounds = n_bounds;
    }
    for (size_t i = 0; i < r->n_fams; i++) {
        if (strcmp(r->fams[i]->name, name))
            continue;
        if (!same_shape(r->fams[i], f)) {
            rc = kiln_err_at(err, KILN_EINVAL, name, "metric %s: registered already as another "
                             "%s", name, kind_names[r->fams[i]->kind]);
            goto fail;
        }
        family_free(f);
        *out = r->fams[i];
        return 0;
    }
    if (r->n_fams == r->cap_fams) {
        size_t cap = r->cap_fams ? r->cap_fams * 2 : 16;
        kp_family_t **v = kiln_realloc(r->fams, cap * sizeof *v);
        if (!v) {
            rc = kiln_err_set(err, KILN_ENOMEM, "metrics: out of memory");
            goto fail;
        }
        r->fams = v;
        r->cap_fams = cap;
    }
    r->fams[r->n_fams++] = f;
    *out = f;
    return 0;
fail:
    family_free(f);
    return rc;
}

int kp_counter(kp_registry_t *r, const char *name, const char *help, const char *labels,
               kp_family_t **out, kiln_err_t *err)
{
    return family_new(r, KP_COUNTER, name, help, labels, NULL, 0, out, err);
}

int kp_gauge(kp_registry_t *r, const char *name, const char *help, const char *labels,
             kp_family_t **out, kiln_err_t *err)
{
    return family_new(r, KP_GAUGE, name, help, labels, NULL, 0, out, err);
}

int kp_histogram(kp_registry_t *r, const char *name, const char *help, const char *labels,
                 const double *bounds, size_t n_bounds, kp_family_t **out, kiln_err_t *err)
{
    return family_new(r, KP_HISTOGRAM, name, help, labels, bounds, n_bounds, out, err);
}

/* ---- series */

static const char *value_at(const char *const *values, size_t i)
{
    return values && values[i] ? values[i] : "";
}

static kp_series_t *series_find(const kp_family_t *f, const char *const *values)
{
    for (size_t s = 0; s < f->n_series; s++) {
        size_t i = 0;
        while (i < f->n_labels && !strcmp(f->series[s].values[i], value_at(values, i)))
            i++;
        if (i == f->n_labels)
            return &f->series[s];
    }
    return NULL;
}

static kp_series_t *series_get(kp_family_t *f, const char *const *values, kiln_err_t *err)
{
    kp_series_t *s = series_find(f, values);
    if (s)
        return s;
    if (f->n_series == f->cap_series) {
        size_t cap = f->cap_series ? f->cap_series * 2 : 8;
        kp_series_t *v = kiln_realloc(f->series, cap * sizeof *v);
        if (!v)
            goto oom;
        f->series = v;
        f->cap_series = cap;
    }
    kp_series_t n = {0};
    if (!(n.values = kiln_calloc(f->n_labels ? f->n_labels : 1, sizeof *n.values)))
        goto oom;
    for (size_t i = 0; i < f->n_labels; i++)
        if (!(n.values[i] = kiln_strdup(value_at(values, i)))) {
            series_free(&n, f->n_labels);
            goto oom;
        }
    if (f->kind == KP_HISTOGRAM &&
        !(n.buckets = kiln_calloc(f->n_bounds + 1, sizeof *n.buckets))) {
        series_free(&n, f->n_labels);
        goto oom;
    }
    f->series[f->n_series] = n;
    return &f->series[f->n_series++];
oom:
    kiln_err_set(err, KILN_ENOMEM, "metric %s: out of memory", f->name);
    return NULL;
}

int kp_add(kp_family_t *f, const char *const *values, double v, kiln_err_t *err)
{
    if (!f || f->kind == KP_HISTOGRAM)
        return kiln_err_set(err, KILN_EINVAL, "metric %s: add is for counters and gauges",
                            f ? f->name : "(null)");
    if (f->kind == KP_COUNTER && !(v >= 0))
        return kiln_err_at(err, KILN_EINVAL, f->name, "counter %s: cannot grow by %g", f->name,
                           v);
    kp_series_t *s = series_get(f, values, err);
    if (!s)
        return KILN_ENOMEM;
    s->value += v;
    return 0;
}

int kp_set(kp_family_t *f, const char *const *values, double v, kiln_err_t *err)
{
    if (!f || f->kind == KP_HISTOGRAM)
        return kiln_err_set(err, KILN_EINVAL, "metric %s: set is for gauges and counters",
                            f ? f->name : "(null)");
    if (f->kind == KP_COUNTER && !(v >= 0))
        return kiln_err_at(err, KILN_EINVAL, f->name, "counter %s: cannot be %g", f->name, v);
    kp_series_t *s = series_get(f, values, err);
    if (!s)
        return KILN_ENOMEM;
    s->value = v;
    return 0;
}

int kp_observe(kp_family_t *f, const char *const *values, double v, kiln_err_t *err)
{
    if (!f || f->kind != KP_HISTOGRAM)
        return kiln_err_set(err, KILN_EINVAL, "metric %s: observe is for histograms",
                            f ? f->name : "(null)");
    if (isnan(v))
        return kiln_err_at(err, KILN_EINVAL, f->name, "histogram %s: NaN observed", f->name);
    kp_series_t *s = series_get(f, values, err);
    if (!s)
        return KILN_ENOMEM;
    size_t b = 0;
    while (b < f->n_bounds && v > f->bounds[b])
        b++;
    s->buckets[b]++;
    s->sum += v;
    s->count++;
    return 0;
}

double kp_value(const kp_family_t *f, const char *const *values)
{
    const kp_series_t *s = f ? series_find(f, values) : NULL;
    if (!s)
        return 0;
    return f->kind == KP_HISTOGRAM ? (double)s->count : s->value;
}

/* ---- rendering */


/* Length of the valid UTF-8 sequence at s (RFC 3629: no overlongs, no
 * surrogates, nothing past U+10FFFF), 0 when it is not one. */
static size_t utf8_len(const unsigned char *s)
{
    unsigned c = s[0];
    if (c < 0x80)
        return 1;
    size_t n;
    unsigned lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF)
        n = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        if (c == 0xE0)
            lo = 0xA0;
        if (c == 0xED)
            hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        if (c == 0xF0)
            lo = 0x90;
        if (c == 0xF4)
            hi = 0x8F;
    } else
        return 0;
    if (s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if (s[i] < 0x80 || s[i] > 0xBF)
            return 0;
    return n;
}

/* The format's escapes: \\ and \n everywhere, \" in label values only;
 * bytes that are not UTF-8 become U+FFFD (a scrape with one is refused). */
static void put_escaped(kiln_sbuf_t *b, const char *s, int quote)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        size_t n = utf8_len(p);
        if (n == 0) {
            kiln_sbuf_puts(b, "\xEF\xBF\xBD");
            p++;
        } else if (*p == '\\') {
            kiln_sbuf_puts(b, "\\\\");
            p++;
        } else if (*p == '\n') {
            kiln_sbuf_puts(b, "\\n");
            p++;
        } else if (quote && *p == '"') {
            kiln_sbuf_puts(b, "\\\"");
            p++;
        } else {
            kiln_sbuf_put(b, (const char *)p, n);
            p += n;
        }
    }
}

/* Go's ParseFloat reads what this writes: the shortest of %.15g/%.17g that
 * reads back exactly, and +Inf, -Inf, NaN by name. */
static void put_num(kiln_sbuf_t *b, double v)
{
    char s[40];
    if (isnan(v))
        snprintf(s, sizeof s, "NaN");
    else if (isinf(v))
        snprintf(s, sizeof s, v > 0 ? "+Inf" : "-Inf");
    else {
        snprintf(s, sizeof s, "%.15g", v);
        if (strtod(s, NULL) != v)
            snprintf(s, sizeof s, "%.17g", v);
    }
    kiln_sbuf_puts(b, s);
}

static void put_u64(kiln_sbuf_t *b, uint64_t v)
{
    char s[24];
    snprintf(s, sizeof s, "%llu", (unsigned long long)v);
    kiln_sbuf_puts(b, s);
}

/* name{l1="v1",l2="v2"[,le="x"]} */
static void put_series_name(kiln_sbuf_t *b, const kp_family_t *f, const kp_series_t *s,
                            const char *suffix, const double *le, int le_inf)
{
    kiln_sbuf_puts(b, f->name);
    kiln_sbuf_puts(b, suffix);
    if (f->n_labels == 0 && !le && !le_inf)
        return;
    kiln_sbuf_puts(b, "{");
    for (size_t i = 0; i < f->n_labels; i++) {
        if (i)
            kiln_sbuf_puts(b, ",");
        kiln_sbuf_puts(b, f->labels[i]);
        kiln_sbuf_puts(b, "=\"");
        put_escaped(b, s->values[i], 1);
        kiln_sbuf_puts(b, "\"");
    }
    if (le || le_inf) {
        kiln_sbuf_puts(b, f->n_labels ? ",le=\"" : "le=\"");
        if (le)
            put_num(b, *le);
        else
            kiln_sbuf_puts(b, "+Inf");
        kiln_sbuf_puts(b, "\"");
    }
    kiln_sbuf_puts(b, "}");
}

static void render_family(kiln_sbuf_t *b, const kp_family_t *f)
{
    kiln_sbuf_puts(b, "# HELP ");
    kiln_sbuf_puts(b, f->name);
    kiln_sbuf_puts(b, " ");
    put_escaped(b, f->help, 0);
    kiln_sbuf_puts(b, "\n# TYPE ");
    kiln_sbuf_puts(b, f->name);
    kiln_sbuf_puts(b, " ");
    kiln_sbuf_puts(b, kind_names[f->kind]);
    kiln_sbuf_puts(b, "\n");
    for (size_t i = 0; i < f->n_series; i++) {
        const kp_series_t *s = &f->series[i];
        if (f->kind != KP_HISTOGRAM) {
            put_series_name(b, f, s, "", NULL, 0);
            kiln_sbuf_puts(b, " ");
            put_num(b, s->value);
            kiln_sbuf_puts(b, "\n");
            continue;
        }
        uint64_t cum = 0;
        for (size_t k = 0; k <= f->n_bounds; k++) {
            cum += s->buckets[k];
            put_series_name(b, f, s, "_bucket", k < f->n_bounds ? &f->bounds[k] : NULL,
                            k == f->n_bounds);
            kiln_sbuf_puts(b, " ");
            put_u64(b, cum);
            kiln_sbuf_puts(b, "\n");
        }
        put_series_name(b, f, s, "_sum", NULL, 0);
        kiln_sbuf_puts(b, " ");
        put_num(b, s->sum);
        kiln_sbuf_puts(b, "\n");
        put_series_name(b, f, s, "_count", NULL, 0);
        kiln_sbuf_puts(b, " ");
        put_u64(b, s->count);
        kiln_sbuf_puts(b, "\n");
    }
}

int kp_render(const kp_registry_t *r, char **text, size_t *len, kiln_err_t *err)
{
    kiln_sbuf_t b = {0};
    *text = NULL;
    *len = 0;
    kiln_sbuf_puts(&b, "");   /* "" for an empty registry, not NULL */
    for (size_t i = 0; r && i < r->n_fams; i++)
        render_family(&b, r->fams[i]);
    if (b.oom) {
        kiln_free(b.p);
        return kiln_err_set(err, KILN_ENOMEM, "metrics: out of memory rendering");
    }
    *text = b.p;
    *len = b.len;
    return 0;
}

/* ---- process_* */

/* /proc/stat's btime: the boot time in seconds since the epoch. */
static double boot_time_s(void)
{
    FILE *f = fopen("/proc/stat", "r");
    char line[256];
    long long bt = 0;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "btime %lld", &bt) == 1)
            break;
    if (f)
        fclose(f);
    return (double)bt;
}

int kp_process_collect(kp_registry_t *r, kiln_err_t *err)
{
    kp_family_t *cpu, *rss, *vms, *start, *fds, *maxfds;
    int rc;
    if ((rc = kp_counter(r, "process_cpu_seconds_total", "Total user and system CPU time spent "
                         "in seconds.", NULL, &cpu, err)) < 0 ||
        (rc = kp_gauge(r, "process_resident_memory_bytes", "Resident memory size in bytes.", NULL,
                       &rss, err)) < 0 ||
        (rc = kp_gauge(r, "process_virtual_memory_bytes", "Virtual memory size in bytes.", NULL,
                       &vms, err)) < 0 ||
        (rc = kp_gauge(r, "process_start_time_seconds", "Start time of the process since unix "
                       "epoch in seconds.", NULL, &start, err)) < 0 ||
        (rc = kp_gauge(r, "process_open_fds", "Number of open file descriptors.", NULL, &fds,
                       err)) < 0 ||
        (rc = kp_gauge(r, "process_max_fds", "Maximum number of open file descriptors.", NULL,
                       &maxfds, err)) < 0)
        return rc;

    /* /proc/self/stat: fields after the ")" that closes comm (which may hold
     * spaces) start at field 3; utime 14, stime 15, starttime 22, vsize 23,
     * rss 24 (proc(5)). */
    char line[1024] = "";
    FILE *f = fopen("/proc/self/stat", "r");
    size_t n = f ? fread(line, 1, sizeof line - 1, f) : 0;
    if (f)
        fclose(f);
    line[n] = '\0';
    const char *p = strrchr(line, ')');
    unsigned long long utime = 0, stime = 0, starttime = 0, vsize = 0;
    long long rss_pages = 0;
    if (p && sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d %*d "
                    "%*d %*d %*d %llu %llu %lld", &utime, &stime, &starttime, &vsize,
                    &rss_pages) == 5) {
        const double hz = (double)sysconf(_SC_CLK_TCK);
        const double page = (double)sysconf(_SC_PAGESIZE);
        if ((rc = kp_set(cpu, NULL, (double)(utime + stime) / hz, err)) < 0 ||
            (rc = kp_set(rss, NULL, (double)rss_pages * page, err)) < 0 ||
            (rc = kp_set(vms, NULL, (double)vsize, err)) < 0 ||
            (rc = kp_set(start, NULL, boot_time_s() + (double)starttime / hz, err)) < 0)
            return rc;
    }
    DIR *d = opendir("/proc/self/fd");
    if (d) {
        size_t open_fds = 0;
        for (struct dirent *e; (e = readdir(d));)
            open_fds += e->d_name[0] != '.';
        closedir(d);
        if ((rc = kp_set(fds, NULL, (double)(open_fds ? open_fds - 1 : 0), err)) < 0)
            return rc;   /* less the one opendir holds */
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
        (rc = kp_set(maxfds, NULL, (double)rl.rlim_cur, err)) < 0)
        return rc;
    return 0;
}

int kp_serve(kp_registry_t *r, const char *who, const char *method, const char *path,
             char **text, size_t *len, kiln_err_t *err)
{
    *text = NULL;
    *len = 0;
    if (strcmp(path, "/metrics")) {
        kiln_err_set(err, KILN_ENOTFOUND, "%s: %s serves only /metrics", path, who);
        return 404;
    }
    if (strcmp(method, "GET")) {
        kiln_err_set(err, KILN_EINVAL, "%s /metrics: method not allowed", method);
        return 405;
    }
    kiln_err_t why;
    if (kp_process_collect(r, &why) < 0 || kp_render(r, text, len, &why) < 0) {
        kiln_err_set(err, why.code, "metrics: %s", why.msg);
        return 503;
    }
    return 200;
}
