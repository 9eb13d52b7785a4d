/* prom.h - Prometheus metrics for every kiln daemon: a registry of counter,
 * gauge and histogram families with labels, rendered in the text exposition
 * format 0.0.4 (HELP/TYPE lines, escaped label values, histograms as
 * cumulative _bucket{le=...} with +Inf, _sum and _count).  docs/metrics.md
 * lists what kilnd and kiln-worker expose.
 *
 * One thread: a registry and its families have no lock; the daemons touch
 * them only on their loop thread (the HTTP server hands /metrics there). */
#ifndef KP_PROM_H
#define KP_PROM_H

#include <stddef.h>

#include "core/kiln_err.h"

/* The Content-Type of kp_render's text. */
#define KP_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"
#define KP_LABELS_MAX   8     /* label names per family */
#define KP_BUCKETS_MAX  64    /* histogram bounds, +Inf not counted */

typedef struct kp_registry kp_registry_t;
typedef struct kp_family kp_family_t;

typedef enum { KP_COUNTER, KP_GAUGE, KP_HISTOGRAM } kp_kind_t;

int  kp_registry_new(kp_registry_t **out, kiln_err_t *err);
/* Frees the registry and every family in it; sets *r to NULL. */
void kp_registry_destroy(kp_registry_t **r);

/* Registers a family, or finds the one already registered under `name`
 * when kind, labels and bounds are the same (KILN_EINVAL when they differ).
 * labels: comma-separated label names ("type,state"), "" or NULL for none.
 * Names follow Prometheus: metric [a-zA-Z_:][a-zA-Z0-9_:]*, label
 * [a-zA-Z_][a-zA-Z0-9_]* not starting with "__"; "le" is the histogram's
 * own.  help is one line of text (escaped on output).  *out is borrowed: it
 * lives as long as the registry.  Histogram bounds: n_bounds (1..
 * KP_BUCKETS_MAX) finite, strictly increasing upper bounds; +Inf is added. */
int kp_counter(kp_registry_t *r, const char *name, const char *help, const char *labels,
               kp_family_t **out, kiln_err_t *err);
int kp_gauge(kp_registry_t *r, const char *name, const char *help, const char *labels,
             kp_family_t **out, kiln_err_t *err);
int kp_histogram(kp_registry_t *r, const char *name, const char *help, const char *labels,
                 const double *bounds, size_t n_bounds, kp_family_t **out, kiln_err_t *err);

/* The series of f with these label values: one value per label name, in
 * the order registered (values may be NULL for a family without labels;
 * a NULL value counts as "").  The series is made on first use (starting
 * at 0).  Values are copied; bytes that are not UTF-8 become U+FFFD when
 * rendered, so a bad worker id cannot spoil a scrape.
 *
 * kp_add: a counter or gauge grows by v (a counter refuses v < 0 and NaN).
 * kp_set: a gauge takes v; so does a counter whose source of truth lives
 *         elsewhere (a count kept in the state store), v >= 0.
 * kp_observe: a histogram counts v in the first bucket whose bound is >= v. */
int kp_add(kp_family_t *f, const char *const *values, double v, kiln_err_t *err);
int kp_set(kp_family_t *f, const char *const *values, double v, kiln_err_t *err);
int kp_observe(kp_family_t *f, const char *const *values, double v, kiln_err_t *err);

/* Drops every series of f: for gauges rebuilt at each scrape, so a worker
 * that left does not stay on the page. */
void kp_clear(kp_family_t *f);

/* The series' value (a histogram: its count); 0 when the series does not
 * exist.  For tests and for code that reads back what it set. */
double kp_value(const kp_family_t *f, const char *const *values);

/* The whole registry as exposition text, families in registration order
 * (a family with no series gets its HELP and TYPE only).  *text is
 * kiln_malloc'd and NUL-terminated; *len its length. */
int kp_render(const kp_registry_t *r, char **text, size_t *len, kiln_err_t *err);

/* The process_* families every Prometheus client library exports
 * (process_cpu_seconds_total, process_resident_memory_bytes,
 * process_virtual_memory_bytes, process_start_time_seconds,
 * process_open_fds, process_max_fds), read from /proc/self now: call it
 * before each kp_render.  Registers them on the first call. */
int kp_process_collect(kp_registry_t *r, kiln_err_t *err);

/* One HTTP request to a daemon that serves only /metrics (the worker, the
 * edge agent), without the HTTP server (a layer above): returns the status.
 * 200: *text is r, collected and rendered (kiln_malloc'd, caller frees),
 * *len its length; 404, 405 or 503: err says why, naming the daemon as
 * who ("a worker"). */
int kp_serve(kp_registry_t *r, const char *who, const char *method, const char *path,
             char **text, size_t *len, kiln_err_t *err);

#endif
