/* stats.h - what kiln-edge's report says about serving: inference latency
 * p50/p99 from a histogram with /metrics' buckets (interpolated within a
 * bucket as Prometheus' histogram_quantile does), windows scored, and live
 * feature statistics (per feature mean, std, min, max over the last N
 * windows) for drift jobs.  Owned by the agent's loop thread; observing
 * allocates nothing. */
#ifndef KE_STATS_H
#define KE_STATS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define KE_STATS_BUCKETS 15   /* 14 bounds (10 us .. 0.25 s) and +Inf */

typedef struct {
    uint64_t counts[KE_STATS_BUCKETS];
    uint64_t n_latency;
    uint64_t scored;            /* since start */
    size_t   n_features, window_cap, head, filled;
    float   *rows;              /* window_cap x n_features, a ring */
} ke_stats_t;

/* (Re)sizes the feature ring for n_features (kept when unchanged; rows seen
 * are forgotten when it changes).  window_cap 0: 256.  0 or KILN_ENOMEM. */
int  ke_stats_reset(ke_stats_t *s, size_t n_features, size_t window_cap);
void ke_stats_free(ke_stats_t *s);
void ke_stats_observe(ke_stats_t *s, double latency_us, const float *features, size_t n);
/* Latency quantile q in (0, 1], in microseconds; 0 with nothing observed. */
double ke_stats_quantile_us(const ke_stats_t *s, double q);
/* {"windows": n in the ring, "scored": total, "stats": {NAME: {"mean",
 * "std", "min", "max"}}}: a new reference; names[i] may be NULL ("f<i>"). */
json_t *ke_stats_features_json(const ke_stats_t *s, const char *const *names);

#endif
