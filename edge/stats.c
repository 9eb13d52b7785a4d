/* stats.c - latency quantiles and live feature statistics for kiln-edge's
 * reports (stats.h). */
#include "edge/stats.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/kiln_alloc.h"
#include "core/kiln_err.h"

/* The bounds of agent_metrics.c's kiln_edge_inference_seconds, in microseconds. */
static const double bounds_us[KE_STATS_BUCKETS - 1] = {10, 20, 50, 100, 150, 200, 300,
                                                       500, 1e3, 2e3, 5e3, 1e4, 5e4, 2.5e5};

int ke_stats_reset(ke_stats_t *s, size_t n_features, size_t window_cap)
{
    if (!window_cap)
        window_cap = 256;
    if (s->rows && s->n_features == n_features && s->window_cap == window_cap)
        return 0;
    kiln_free(s->rows);
    s->rows = NULL;
    s->n_features = s->head = s->filled = 0;
    s->window_cap = window_cap;
    if (!n_features)
        return 0;
    if (!(s->rows = kiln_calloc(window_cap * n_features, sizeof *s->rows)))
        return KILN_ENOMEM;
    s->n_features = n_features;
    return 0;
}

void ke_stats_free(ke_stats_t *s)
{
    kiln_free(s->rows);
    memset(s, 0, sizeof *s);
}

void ke_stats_observe(ke_stats_t *s, double latency_us, const float *features, size_t n)
{
    size_t b = 0;
    while (b < KE_STATS_BUCKETS - 1 && latency_us > bounds_us[b])
        b++;
    s->counts[b]++;
    s->n_latency++;
    s->scored++;
    if (!s->rows || !features || n != s->n_features)
        return;
    memcpy(s->rows + s->head * n, features, n * sizeof *features);
    s->head = (s->head + 1) % s->window_cap;
    if (s->filled < s->window_cap)
        s->filled++;
}

double ke_stats_quantile_us(const ke_stats_t *s, double q)
{
    if (!s->n_latency)
        return 0;
    double rank = q * (double)s->n_latency, below = 0;
    for (size_t b = 0; b < KE_STATS_BUCKETS; b++) {
        double c = (double)s->counts[b];
        if (below + c >= rank && c > 0) {
            if (b == KE_STATS_BUCKETS - 1)      /* +Inf: the highest finite bound */
                return bounds_us[KE_STATS_BUCKETS - 2];
            double lo = b ? bounds_us[b - 1] : 0, hi = bounds_us[b];
            return lo + (hi - lo) * (rank - below) / c;
        }
        below += c;
    }
    return bounds_us[KE_STATS_BUCKETS - 2];
}

json_t *ke_stats_features_json(const ke_stats_t *s, const char *const *names)
{
    json_t *stats = json_object();
    json_t *out = json_pack("{s:I, s:I, s:o}", "windows", (json_int_t)s->filled, "scored",
                            (json_int_t)s->scored, "stats", stats);
    if (!out)
        return NULL;
    for (size_t f = 0; f < s->n_features && s->filled; f++) {
        double sum = 0, sq = 0, lo = INFINITY, hi = -INFINITY;
        size_t n = 0;
        for (size_t r = 0; r < s->filled; r++) {
            double v = s->rows[r * s->n_features + f];
            if (!isfinite(v))
                continue;
            sum += v;
            sq += v * v;
            lo = v < lo ? v : lo;
            hi = v > hi ? v : hi;
            n++;
        }
        char fallback[32];
        const char *name = names && names[f] ? names[f] : fallback;
        snprintf(fallback, sizeof fallback, "f%zu", f);
        if (!n) {
            json_object_set_new(stats, name, json_pack("{s:I}", "n", (json_int_t)0));
            continue;
        }
        double mean = sum / (double)n, var = sq / (double)n - mean * mean;
        json_object_set_new(stats, name,
                            json_pack("{s:I, s:f, s:f, s:f, s:f}", "n", (json_int_t)n, "mean",
                                      mean, "std", var > 0 ? sqrt(var) : 0.0, "min", lo, "max",
                                      hi));
    }
    return out;
}
