/* gbdt_bins.c - quantile bin edges for the gbdt kernel and the uint8 bin
 * codes of every value.  Edges are cut greedily at quantiles of a row
 * sample, as LightGBM's GreedyFindBin: up to max_bins distinct values get a
 * bin each, cut half-way between neighbours; more are grouped so bins hold
 * about equal counts. */
#include <math.h>
#include <string.h>

#include "../../core/kiln_alloc.h"
#include "gbdt_impl.h"

void gb_bins_free(gb_bins_t *b)
{
    kiln_free(b->n_bins);
    kiln_free(b->edges);
    kiln_free(b->hist_off);
    memset(b, 0, sizeof *b);
}

/* Floats as unsigned keys in the same order (negatives flipped). */
static inline uint32_t float_key(float v)
{
    uint32_t u;
    memcpy(&u, &v, 4);
    return (u >> 31) ? ~u : (u | 0x80000000u);
}

static inline float key_float(uint32_t u)
{
    u = (u >> 31) ? (u & 0x7fffffffu) : ~u;
    float v;
    memcpy(&v, &u, 4);
    return v;
}

/* LSD radix sort of keys[n], 4 passes of 8 bits through tmp[n]. */
static void radix_sort(uint32_t *keys, uint32_t *tmp, size_t n)
{
    for (int shift = 0; shift < 32; shift += 8) {
        size_t count[257] = {0};
        for (size_t i = 0; i < n; i++)
            count[((keys[i] >> shift) & 0xff) + 1]++;
        for (int b = 0; b < 256; b++)
            count[b + 1] += count[b];
        for (size_t i = 0; i < n; i++)
            tmp[count[(keys[i] >> shift) & 0xff]++] = keys[i];
        uint32_t *t = keys;
        keys = tmp;
        tmp = t;
    }
    /* Four passes: the sorted keys are back in the caller's keys[]. */
}

/* The edge between neighbours a < b: their midpoint, never rounded onto b
 * (b must stay in the upper bin). */
static float mid_edge(float a, float b)
{
    float e = (float)(((double)a + (double)b) * 0.5);
    return (e >= b || e < a) ? a : e;
}

/* Edges of one feature from its sorted sample keys[0..n); returns bins. */
static unsigned edges_from_sorted(const uint32_t *keys, size_t n, int max_bins, float *edges)
{
    /* Distinct values and their counts, written over a scratch view of keys'
     * floats: at most n. -0 and +0 are one value. */
    size_t m = 0;
    float prev = 0;
    for (size_t i = 0; i < n; i++) {
        float v = key_float(keys[i]);
        if (m == 0 || v != prev)
            m++;
        prev = v;
    }
    unsigned n_edges = 0;
    if (m <= (size_t)max_bins) {
        float last = 0;
        size_t seen = 0;
        for (size_t i = 0; i < n; i++) {
            float v = key_float(keys[i]);
            if (seen > 0 && v != last)
                edges[n_edges++] = mid_edge(last, v);
            if (seen == 0 || v != last)
                seen++;
            last = v;
        }
    } else {
        double remaining = (double)n;
        int bins_left = max_bins;
        size_t acc = 0, distinct_left = m;
        size_t i = 0;
        while (i < n && bins_left > 1) {
            float v = key_float(keys[i]);
            size_t j = i;
            while (j < n && key_float(keys[j]) == v)
                j++;
            acc += j - i;
            distinct_left--;
            if (j >= n)
                break;
            double target = remaining / bins_left;
            if ((double)acc >= target || distinct_left <= (size_t)(bins_left - 1)) {
                edges[n_edges++] = mid_edge(v, key_float(keys[j]));
                remaining -= (double)acc;
                acc = 0;
                bins_left--;
            }
            i = j;
        }
    }
    for (unsigned b = n_edges; b < GB_EDGE_STRIDE; b++)
        edges[b] = INFINITY;
    return n_edges + 1;
}

typedef struct {
    const float *sample;    /* column-major [d x n_sample] */
    size_t       n_sample;
    uint32_t    *keys, *tmp; /* per thread scratch, n_sample each */
    gb_bins_t   *b;
    int          max_bins;
    int          n_threads;
} edge_job_t;

/* One call per thread slot t (scratch t), features [d t / T, d (t+1) / T). */
static void edge_chunk(void *ctx, size_t lo, size_t hi)
{
    edge_job_t *j = ctx;
    const size_t d = j->b->d, n_slots = (size_t)j->n_threads;
    for (size_t t = lo; t < hi; t++) {
        uint32_t *keys = j->keys + t * j->n_sample, *tmp = j->tmp + t * j->n_sample;
        for (size_t f = d * t / n_slots; f < d * (t + 1) / n_slots; f++) {
            const float *col = j->sample + f * j->n_sample;
            for (size_t i = 0; i < j->n_sample; i++)
                keys[i] = float_key(col[i]);
            radix_sort(keys, tmp, j->n_sample);
            j->b->n_bins[f] = (uint16_t)edges_from_sorted(keys, j->n_sample, j->max_bins,
                                                          j->b->edges + f * GB_EDGE_STRIDE);
        }
    }
}

/* Rows of this rank's sample: all when n <= want, else want of them by
 * selection sampling (Knuth's algorithm S), ascending. */
static size_t pick_rows(size_t n, size_t want, km_rng_t *rng, size_t *rows)
{
    if (n <= want) {
        for (size_t i = 0; i < n; i++)
            rows[i] = i;
        return n;
    }
    size_t got = 0;
    for (size_t i = 0; i < n && got < want; i++)
        if (km_rng_uniform(rng) * (double)(n - i) < (double)(want - got))
            rows[got++] = i;
    return got;
}

int gb_bins_build(const km_data_t *train, const km_gbdt_params_t *p, const km_reduce_t *reduce,
                  const double *rank_n, gb_bins_t *out, kiln_err_t *err)
{
    const size_t d = train->d;
    const int n_ranks = reduce ? reduce->n_ranks : 1, rank = reduce ? reduce->rank : 0;
    const size_t quota = (p->bin_sample_rows + (size_t)n_ranks - 1) / (size_t)n_ranks;
    size_t total = 0, my_off = 0;
    for (int r = 0; r < n_ranks; r++) {
        size_t nr = (size_t)rank_n[r];
        size_t s = nr < quota ? nr : quota;
        if (r < rank)
            my_off += s;
        total += s;
    }
    size_t *rows = NULL;
    float *sample = NULL;
    double *buf = NULL;
    uint32_t *keys = NULL;
    int rc = 0;
    const int n_threads = p->n_threads;
    memset(out, 0, sizeof *out);
    out->d = d;
    out->n_bins = kiln_calloc(d, sizeof *out->n_bins);
    out->edges = kiln_malloc(d * GB_EDGE_STRIDE * sizeof *out->edges);
    out->hist_off = kiln_calloc(d, sizeof *out->hist_off);
    rows = kiln_malloc((quota ? quota : 1) * sizeof *rows);
    sample = kiln_malloc(total * d * sizeof *sample);
    keys = kiln_malloc(2 * (size_t)n_threads * total * sizeof *keys);
    if (reduce)
        buf = kiln_malloc(total * sizeof *buf);
    if (!out->n_bins || !out->edges || !out->hist_off || !rows || !sample || !keys ||
        (reduce && !buf)) {
        rc = kiln_err_set(err, KILN_ENOMEM, "gbdt: no memory for the bin sample (%zu rows)", total);
        goto out;
    }
    km_rng_t rng;
    km_rng_seed(&rng, p->seed ^ (0xB1B5ull + 0x9E3779B97F4A7C15ull * (uint64_t)rank));
    size_t n_mine = pick_rows(train->n, quota, &rng, rows);
    if (!reduce) {
        for (size_t j = 0; j < n_mine; j++)
            for (size_t f = 0; f < d; f++)
                sample[f * total + j] = train->x[rows[j] * d + f];
    } else {
        /* One sum per feature: my slice of the union, zeros elsewhere. */
        for (size_t f = 0; f < d; f++) {
            memset(buf, 0, total * sizeof *buf);
            for (size_t j = 0; j < n_mine; j++)
                buf[my_off + j] = train->x[rows[j] * d + f];
            if ((rc = reduce->sum(reduce->ud, buf, total, err)) < 0)
                goto out;
            for (size_t j = 0; j < total; j++)
                sample[f * total + j] = (float)buf[j];
        }
    }
    edge_job_t job = {sample, total, keys, keys + (size_t)n_threads * total, out, p->max_bins,
                      n_threads};
    gb_par_for(n_threads, (size_t)n_threads, edge_chunk, &job);
    for (size_t f = 0; f < d; f++) {
        out->hist_off[f] = out->total_bins;
        out->total_bins += out->n_bins[f];
    }
out:
    kiln_free(keys);
    kiln_free(buf);
    kiln_free(sample);
    kiln_free(rows);
    if (rc < 0)
        gb_bins_free(out);
    return rc;
}

typedef struct {
    const gb_bins_t *b;
    const float     *x;
    size_t           n;
    uint8_t         *codes;
} code_job_t;

static void code_chunk(void *ctx, size_t lo, size_t hi)
{
    code_job_t *j = ctx;
    const size_t d = j->b->d;
    /* Row blocks keep the strided reads of x in cache while each feature's
     * codes are written contiguously. */
    for (size_t r0 = lo; r0 < hi; r0 += 64) {
        size_t r1 = r0 + 64 < hi ? r0 + 64 : hi;
        for (size_t f = 0; f < d; f++) {
            const float *e = j->b->edges + f * GB_EDGE_STRIDE;
            uint8_t *c = j->codes + f * j->n;
            for (size_t i = r0; i < r1; i++)
                c[i] = (uint8_t)gb_bin_of(e, j->x[i * d + f]);
        }
    }
}

int gb_bins_codes(const gb_bins_t *b, const float *x, size_t n, int n_threads, uint8_t **codes,
                  kiln_err_t *err)
{
    *codes = kiln_malloc_aligned(b->d * n > 0 ? b->d * n : 1);
    if (!*codes)
        return kiln_err_set(err, KILN_ENOMEM, "gbdt: no memory for %zu x %zu bin codes", n, b->d);
    code_job_t job = {b, x, n, *codes};
    gb_par_for(n >= 4096 ? n_threads : 1, n, code_chunk, &job);
    return 0;
}
