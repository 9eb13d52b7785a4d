/* scaler.c - StandardScaler fit/transform/save/load (kernels/scaler.h).
 * Moments are merged with Chan's pairwise update, never from sum x^2 - n m^2,
 * so features with a large offset keep their digits. */
#include <float.h>
#include <math.h>
#include <string.h>

#include "../../core/kiln_alloc.h"
#include "../scaler.h"

#define SCALER_MAGIC   0x4C43534Bu    /* "KSCL" little-endian */
#define SCALER_VERSION 1u
#define BLOCK_ROWS     512            /* a block is read twice while in cache */

struct km_scaler {
    size_t   d;
    uint64_t n_samples;
    double  *mean, *var, *scale;    /* one allocation of 3d, mean first */
};

static km_scaler_t *scaler_new(size_t d)
{
    km_scaler_t *s = kiln_calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->mean = kiln_calloc(3 * d, sizeof(double));
    if (!s->mean) {
        kiln_free(s);
        return NULL;
    }
    s->d = d;
    s->var = s->mean + d;
    s->scale = s->mean + 2 * d;
    return s;
}

void km_scaler_free(km_scaler_t **s)
{
    if (!s || !*s)
        return;
    kiln_free((*s)->mean);
    kiln_free(*s);
    *s = NULL;
}

/* Chan et al.: (n_a, mean_a, m2_a) absorbs (n_b, mean_b, m2_b). */
static void chan_merge(double *n_a, double *mean_a, double *m2_a, double n_b,
                       const double *mean_b, const double *m2_b, size_t d)
{
    if (n_b == 0)
        return;
    double n = *n_a + n_b, w_b = n_b / n, w_ab = *n_a * n_b / n;
    for (size_t j = 0; j < d; j++) {
        double delta = mean_b[j] - mean_a[j];
        mean_a[j] += delta * w_b;
        m2_a[j] += m2_b[j] + delta * delta * w_ab;
    }
    *n_a = n;
}

/* One rank's rows into slot = [count, bad, mean[d], m2[d]], block by block.
 * bmean/bm2 are d doubles of scratch.  Returns 0, or KILN_ENONFINITE with the
 * first bad row and feature in err. */
static int local_moments(const km_data_t *data, double *slot, double *bmean, double *bm2,
                         kiln_err_t *err)
{
    const size_t d = data->d;
    double *mean = slot + 2, *m2 = slot + 2 + d;
    for (size_t r0 = 0; r0 < data->n; r0 += BLOCK_ROWS) {
        size_t nb = data->n - r0 < BLOCK_ROWS ? data->n - r0 : BLOCK_ROWS;
        const float *xb = data->x + r0 * d;
        memset(bmean, 0, d * sizeof *bmean);
        memset(bm2, 0, d * sizeof *bm2);
        for (size_t i = 0; i < nb; i++)
            for (size_t j = 0; j < d; j++)
                bmean[j] += xb[i * d + j];
        for (size_t j = 0; j < d; j++) {
            if (!isfinite(bmean[j])) {
                for (size_t i = 0; i < nb; i++)
                    if (!isfinite(xb[i * d + j]))
                        return kiln_err_at(err, KILN_ENONFINITE, "x",
                                           "scaler: row %zu feature %zu is %g", r0 + i, j,
                                           (double)xb[i * d + j]);
                /* finite floats summing past DBL_MAX cannot happen (< 2^128 each) */
            }
            bmean[j] /= (double)nb;
        }
        for (size_t i = 0; i < nb; i++)
            for (size_t j = 0; j < d; j++) {
                double c = xb[i * d + j] - bmean[j];
                bm2[j] += c * c;
            }
        chan_merge(&slot[0], mean, m2, (double)nb, bmean, bm2, d);
    }
    return 0;
}

int km_scaler_fit(const km_data_t *data, const km_reduce_t *reduce, km_scaler_t **out,
                  kiln_err_t *err)
{
    double *all = NULL, *scratch = NULL;
    km_scaler_t *s = NULL;
    int rc;

    if (!out)
        return kiln_err_set(err, KILN_EINVAL, "scaler: out is NULL");
    *out = NULL;
    if (!data || data->d == 0)
        return kiln_err_at(err, KILN_EINVAL, "d", "scaler: no features (d = 0)");
    if (data->n > 0 && !data->x)
        return kiln_err_at(err, KILN_EINVAL, "x", "scaler: x is NULL with n = %zu", data->n);
    const int n_ranks = reduce && reduce->sum ? reduce->n_ranks : 1;
    const int rank = reduce && reduce->sum ? reduce->rank : 0;
    if (n_ranks < 1 || rank < 0 || rank >= n_ranks)
        return kiln_err_set(err, KILN_EINVAL, "scaler: rank %d of %d ranks", rank, n_ranks);
    const size_t d = data->d, slot_len = 2 + 2 * d;
    if (d > SIZE_MAX / sizeof(double) / 4 / (size_t)n_ranks)
        return kiln_err_at(err, KILN_EINVAL, "d", "scaler: d = %zu is too large", d);

    all = kiln_calloc((size_t)n_ranks * slot_len, sizeof *all);
    scratch = kiln_malloc(2 * d * sizeof *scratch);
    s = scaler_new(d);
    if (!all || !scratch || !s) {
        /* Every rank has the same d and n_ranks, so they all tend to fail
         * here alike; a lone rank out of memory cannot join the sum anyway. */
        rc = kiln_err_set(err, KILN_ENOMEM, "scaler: no memory for %zu features", d);
        goto out;
    }
    double *mine = all + (size_t)rank * slot_len;
    int local_rc = local_moments(data, mine, scratch, scratch + d, err);
    if (local_rc < 0) {
        memset(mine, 0, slot_len * sizeof *mine);
        mine[1] = 1;
    }
    if (reduce && reduce->sum) {
        rc = reduce->sum(reduce->ud, all, (size_t)n_ranks * slot_len, err);
        if (rc < 0)
            goto out;
    }
    if (local_rc < 0) {
        rc = local_rc;
        goto out;
    }
    double n = 0, *m2 = scratch;
    memset(m2, 0, d * sizeof *m2);
    for (int k = 0; k < n_ranks; k++) {
        const double *slot = all + (size_t)k * slot_len;
        if (slot[1] != 0) {
            rc = kiln_err_at(err, KILN_ENONFINITE, "x",
                             "scaler: rank %d has NaN or Inf in its rows", k);
            goto out;
        }
        chan_merge(&n, s->mean, m2, slot[0], slot + 2, slot + 2 + d, d);
    }
    if (n == 0) {
        rc = kiln_err_at(err, KILN_EINVAL, "n", "scaler: no rows on any of %d ranks", n_ranks);
        goto out;
    }
    s->n_samples = (uint64_t)n;
    for (size_t j = 0; j < d; j++) {
        double var = m2[j] / n;
        double bound = n * DBL_EPSILON * var + (n * s->mean[j] * DBL_EPSILON) * (n * s->mean[j] * DBL_EPSILON);
        s->var[j] = var;
        s->scale[j] = var <= bound ? 1.0 : sqrt(var);
    }
    *out = s;
    s = NULL;
    rc = 0;
out:
    km_scaler_free(&s);
    kiln_free(scratch);
    kiln_free(all);
    return rc;
}

int km_scaler_transform(const km_scaler_t *s, const float *x, size_t n, size_t d,
                        float *out, kiln_err_t *err)
{
    if (!s)
        return kiln_err_set(err, KILN_EINVAL, "scaler: scaler is NULL");
    if (d != s->d)
        return kiln_err_at(err, KILN_ESHAPE, "d", "scaler: rows have %zu features, scaler %zu",
                           d, s->d);
    if (n > 0 && (!x || !out))
        return kiln_err_set(err, KILN_EINVAL, "scaler: x or out is NULL with n = %zu", n);
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < d; j++)
            out[i * d + j] = (float)(((double)x[i * d + j] - s->mean[j]) / s->scale[j]);
    return 0;
}

int km_scaler_save(const km_scaler_t *s, km_buf_t *b, kiln_err_t *err)
{
    if (!s || !b)
        return kiln_err_set(err, KILN_EINVAL, "scaler: save of NULL");
    if (b->oom)
        return kiln_err_set(err, KILN_ENOMEM, "scaler: buffer already incomplete");
    size_t start = b->len;
    km_buf_u32(b, SCALER_MAGIC);
    km_buf_u32(b, SCALER_VERSION);
    km_buf_u64(b, (uint64_t)s->d);
    km_buf_u64(b, s->n_samples);
    km_buf_f64s(b, s->mean, 3 * s->d);
    if (b->oom)
        return kiln_err_set(err, KILN_ENOMEM, "scaler: no memory to save %zu features", s->d);
    km_buf_u64(b, km_fnv1a64(b->p + start, b->len - start));
    if (b->oom)
        return kiln_err_set(err, KILN_ENOMEM, "scaler: no memory to save %zu features", s->d);
    return 0;
}

int km_scaler_read(km_rd_t *r, km_scaler_t **out, kiln_err_t *err)
{
    uint32_t magic = 0, version = 0;
    uint64_t d = 0, n_samples = 0, sum = 0;
    km_scaler_t *s = NULL;

    if (!out)
        return kiln_err_set(err, KILN_EINVAL, "scaler: out is NULL");
    *out = NULL;
    if (!r || (!r->p && r->len > 0) || r->off > r->len)
        return kiln_err_set(err, KILN_EINVAL, "scaler: bad reader");
    const size_t start = r->off;
    int rc = 0;
    if (km_rd_u32(r, &magic) < 0 || magic != SCALER_MAGIC) {
        rc = kiln_err_set(err, KILN_EFORMAT, "scaler: not a saved scaler (magic)");
        goto out;
    }
    if (km_rd_u32(r, &version) < 0 || version != SCALER_VERSION) {
        rc = kiln_err_set(err, KILN_EFORMAT, "scaler: version %u, this build reads %u",
                          version, SCALER_VERSION);
        goto out;
    }
    if (km_rd_u64(r, &d) < 0 || km_rd_u64(r, &n_samples) < 0) {
        rc = kiln_err_set(err, KILN_EFORMAT, "scaler: truncated header");
        goto out;
    }
    /* bound d by the bytes actually there before allocating anything */
    if (d == 0 || d > (r->len - r->off) / 24) {
        rc = kiln_err_set(err, KILN_EFORMAT, "scaler: %llu features do not fit in %zu bytes",
                          (unsigned long long)d, r->len - r->off);
        goto out;
    }
    if (n_samples == 0) {
        rc = kiln_err_set(err, KILN_EFORMAT, "scaler: fitted on 0 rows");
        goto out;
    }
    s = scaler_new((size_t)d);
    if (!s) {
        rc = kiln_err_set(err, KILN_ENOMEM, "scaler: no memory for %llu features",
                          (unsigned long long)d);
        goto out;
    }
    s->n_samples = n_samples;
    if (km_rd_f64s(r, s->mean, 3 * s->d) < 0) {
        rc = kiln_err_set(err, KILN_EFORMAT, "scaler: truncated values");
        goto out;
    }
    const size_t body_end = r->off;
    if (km_rd_u64(r, &sum) < 0 || sum != km_fnv1a64(r->p + start, body_end - start)) {
        rc = kiln_err_set(err, KILN_EFORMAT, "scaler: checksum mismatch (corrupt bytes)");
        goto out;
    }
    for (size_t j = 0; j < s->d; j++)
        if (!isfinite(s->mean[j]) || !(s->var[j] >= 0) || !isfinite(s->var[j]) ||
            !(s->scale[j] > 0) || !isfinite(s->scale[j])) {
            rc = kiln_err_at(err, KILN_EFORMAT, "scale", "scaler: feature %zu has a bad value", j);
            goto out;
        }
    *out = s;
    s = NULL;
out:
    if (rc < 0)
        r->off = start;
    km_scaler_free(&s);
    return rc;
}

int km_scaler_load(const void *bytes, size_t len, km_scaler_t **out, kiln_err_t *err)
{
    km_rd_t r = {bytes, len, 0};
    int rc = km_scaler_read(&r, out, err);
    if (rc == 0 && r.off != len) {
        km_scaler_free(out);
        return kiln_err_set(err, KILN_EFORMAT, "scaler: %zu trailing bytes after the scaler",
                            len - r.off);
    }
    return rc;
}

size_t km_scaler_n_features(const km_scaler_t *s) { return s->d; }
uint64_t km_scaler_n_samples(const km_scaler_t *s) { return s->n_samples; }
const double *km_scaler_mean(const km_scaler_t *s) { return s->mean; }
const double *km_scaler_var(const km_scaler_t *s) { return s->var; }
const double *km_scaler_scale(const km_scaler_t *s) { return s->scale; }
