/* anomaly.c - Gaussian anomaly detector (kernels/anomaly.h): mean and
 * shrunk covariance of the healthy rows, Cholesky factor, Mahalanobis
 * distance, and a threshold from a quantile of the training distances. */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../../core/kiln_alloc.h"
#include "../anomaly.h"

#define ANOMALY_MAGIC   0x4F4E414Bu   /* "KANO" little-endian */
#define ANOMALY_VERSION 1u
#define MAX_QUANTILE_SAMPLE ((size_t)1 << 20)
/* A Cholesky pivot at or below this fraction of the largest variance means
 * the covariance is singular to working precision. */
#define PIVOT_RTOL 1e-12

struct km_anomaly {
    size_t   d;
    uint64_t n_train;
    double   rate, shrinkage, threshold;
    double  *mean;      /* d; one allocation with cov and chol */
    double  *cov;       /* d x d, symmetric */
    double  *chol;      /* d x d, lower triangle: cov = L L^T */
};

void km_anomaly_params_default(km_anomaly_params_t *p)
{
    p->false_alarm_rate = 0.01;
    p->healthy_class = 0;
    p->shrinkage = KM_ANOMALY_LEDOIT_WOLF;
    p->quantile_sample = 8192;
}

static km_anomaly_t *model_new(size_t d)
{
    km_anomaly_t *m = kiln_calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->mean = kiln_calloc(d + 2 * d * d, sizeof(double));
    if (!m->mean) {
        kiln_free(m);
        return NULL;
    }
    m->d = d;
    m->cov = m->mean + d;
    m->chol = m->cov + d * d;
    return m;
}

void km_anomaly_free(km_anomaly_t **m)
{
    if (!m || !*m)
        return;
    kiln_free((*m)->mean);
    kiln_free(*m);
    *m = NULL;
}

/* Cholesky-Banachiewicz of m->cov into m->chol.  Returns -1 - j for the
 * first feature j whose pivot is not positive, 0 on success. */
static long cholesky(km_anomaly_t *m)
{
    const size_t d = m->d;
    double max_diag = 0;
    for (size_t j = 0; j < d; j++)
        if (m->cov[j * d + j] > max_diag)
            max_diag = m->cov[j * d + j];
    memset(m->chol, 0, d * d * sizeof *m->chol);
    for (size_t i = 0; i < d; i++) {
        double *li = m->chol + i * d;
        for (size_t j = 0; j <= i; j++) {
            const double *lj = m->chol + j * d;
            double a = m->cov[i * d + j];
            for (size_t k = 0; k < j; k++)
                a -= li[k] * lj[k];
            if (i == j) {
                if (!(a > PIVOT_RTOL * max_diag) || !isfinite(a))
                    return -1 - (long)i;
                li[i] = sqrt(a);
            } else {
                li[j] = a / lj[j];
            }
        }
    }
    return 0;
}

/* ||L^-1 (x - mean)||, forward substitution; z is d doubles of scratch. */
static double mahalanobis(const km_anomaly_t *m, const float *x, double *z)
{
    const size_t d = m->d;
    double q = 0;
    for (size_t i = 0; i < d; i++) {
        const double *li = m->chol + i * d;
        double a = (double)x[i] - m->mean[i];
        for (size_t k = 0; k < i; k++)
            a -= li[k] * z[k];
        z[i] = a / li[i];
        q += z[i] * z[i];
    }
    return sqrt(q);
}

static int row_is_healthy(const km_data_t *data, const km_anomaly_params_t *p, size_t i)
{
    return !data->y || data->y[i] == p->healthy_class;
}

/* 0, or the first healthy row with NaN/Inf reported in err. */
static int check_row(const km_data_t *data, size_t i, kiln_err_t *err)
{
    const float *row = data->x + i * data->d;
    for (size_t j = 0; j < data->d; j++)
        if (!isfinite(row[j]))
            return kiln_err_at(err, KILN_ENONFINITE, "x", "anomaly: row %zu feature %zu is %g",
                               i, j, (double)row[j]);
    return 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

typedef struct {
    double value, weight;
} wpoint_t;

static int cmp_wpoint(const void *a, const void *b)
{
    const wpoint_t *x = a, *y = b;
    if (x->value != y->value)
        return (x->value > y->value) - (x->value < y->value);
    return (x->weight > y->weight) - (x->weight < y->weight);
}

/* numpy.quantile(..., method="linear") generalized to weighted points: a
 * point of weight w starting at cumulative weight c stands at row position
 * c + (w - 1) / 2 (its middle row), and the quantile interpolates linearly
 * between positions around (N - 1) * q.  With all weights 1 this is numpy's
 * definition exactly. */
static double weighted_quantile(wpoint_t *pts, size_t k, double total, double q)
{
    qsort(pts, k, sizeof *pts, cmp_wpoint);
    const double h = (total - 1) * q;
    double c = 0, prev_pos = 0, prev_v = pts[0].value;
    for (size_t i = 0; i < k; i++) {
        double pos = c + (pts[i].weight - 1) / 2;
        if (pos >= h) {
            if (i == 0 || pos == prev_pos)
                return pts[i].value;
            double t = (h - prev_pos) / (pos - prev_pos);
            return prev_v + t * (pts[i].value - prev_v);
        }
        prev_pos = pos;
        prev_v = pts[i].value;
        c += pts[i].weight;
    }
    return pts[k - 1].value;
}

static int check_params(const km_anomaly_params_t *p, kiln_err_t *err)
{
    if (!(p->false_alarm_rate > 0 && p->false_alarm_rate < 1))
        return kiln_err_at(err, KILN_EINVAL, "false_alarm_rate",
                           "anomaly: false_alarm_rate %g is not in (0, 1)", p->false_alarm_rate);
    if (p->shrinkage != KM_ANOMALY_LEDOIT_WOLF && !(p->shrinkage >= 0 && p->shrinkage <= 1))
        return kiln_err_at(err, KILN_EINVAL, "shrinkage",
                           "anomaly: shrinkage %g is neither in [0, 1] nor Ledoit-Wolf (-1)",
                           p->shrinkage);
    if (p->quantile_sample < 16 || p->quantile_sample > MAX_QUANTILE_SAMPLE)
        return kiln_err_at(err, KILN_EINVAL, "quantile_sample",
                           "anomaly: quantile_sample %zu is not in [16, %zu]", p->quantile_sample,
                           MAX_QUANTILE_SAMPLE);
    return 0;
}

/* Sums buf over ranks (nothing to do for one process). */
static int rank_sum(const km_reduce_t *reduce, double *buf, size_t n, kiln_err_t *err)
{
    if (!reduce || !reduce->sum)
        return 0;
    return reduce->sum(reduce->ud, buf, n, err);
}

/* Ledoit-Wolf shrinkage, sklearn.covariance.ledoit_wolf_shrinkage written
 * with its scalars: beta_ = sum_k ||x_k||^4 (quartic), delta_ = ||cov||_F^2. */
static double ledoit_wolf(const double *cov, size_t d, double n, double quartic)
{
    if (d == 1)
        return 0;       /* sklearn: a single feature is never shrunk */
    double trace = 0, frob2 = 0, off2 = 0;
    for (size_t i = 0; i < d; i++)
        trace += cov[i * d + i];
    const double mu = trace / (double)d;
    for (size_t i = 0; i < d; i++)
        for (size_t j = 0; j < d; j++) {
            double c = cov[i * d + j], t = c - (i == j ? mu : 0);
            frob2 += c * c;
            off2 += t * t;
        }
    double beta = (quartic / n - frob2) / ((double)d * n);
    double delta = off2 / (double)d;
    if (beta > delta)
        beta = delta;
    if (beta == 0)
        return 0;
    double s = beta / delta;
    return s < 0 ? 0 : s > 1 ? 1 : s;
}

int km_anomaly_fit(const km_data_t *data, const km_anomaly_params_t *params,
                   const km_reduce_t *reduce, km_anomaly_t **out, kiln_err_t *err)
{
    km_anomaly_params_t p;
    km_anomaly_t *m = NULL;
    double *moments = NULL, *scatter = NULL, *z = NULL, *dist = NULL, *gather = NULL;
    wpoint_t *pts = NULL;
    int rc, local_rc = 0;

    if (!out)
        return kiln_err_set(err, KILN_EINVAL, "anomaly: out is NULL");
    *out = NULL;
    if (params)
        p = *params;
    else
        km_anomaly_params_default(&p);
    if ((rc = check_params(&p, err)) < 0)
        return rc;
    if (!data || data->d == 0)
        return kiln_err_at(err, KILN_EINVAL, "d", "anomaly: no features (d = 0)");
    const size_t d = data->d;
    const int n_ranks = reduce && reduce->sum ? reduce->n_ranks : 1;
    const int rank = reduce && reduce->sum ? reduce->rank : 0;
    if (n_ranks < 1 || rank < 0 || rank >= n_ranks)
        return kiln_err_set(err, KILN_EINVAL, "anomaly: rank %d of %d ranks", rank, n_ranks);
    if (d > 65536)
        return kiln_err_at(err, KILN_EINVAL, "d", "anomaly: %zu features, at most 65536", d);
    const size_t slot_len = 2 + p.quantile_sample, n_tri = d * (d + 1) / 2;
    if ((size_t)n_ranks > SIZE_MAX / sizeof(double) / slot_len)
        return kiln_err_set(err, KILN_EINVAL, "anomaly: %d ranks is too many", n_ranks);

    m = model_new(d);
    moments = kiln_calloc(2 + d, sizeof *moments);
    scatter = kiln_calloc(n_tri + 1, sizeof *scatter);
    z = kiln_malloc(d * sizeof *z);
    gather = kiln_calloc((size_t)n_ranks * slot_len, sizeof *gather);
    if (!m || !moments || !scatter || !z || !gather) {
        rc = kiln_err_set(err, KILN_ENOMEM, "anomaly: no memory for %zu features", d);
        goto out;
    }
    m->rate = p.false_alarm_rate;

    /* pass 1: healthy count and sum of x */
    if (data->n > 0 && !data->x)
        local_rc = kiln_err_at(err, KILN_EINVAL, "x", "anomaly: x is NULL with n = %zu", data->n);
    size_t n_local = 0;
    for (size_t i = 0; local_rc == 0 && i < data->n; i++) {
        if (!row_is_healthy(data, &p, i))
            continue;
        if ((local_rc = check_row(data, i, err)) < 0)
            break;
        const float *row = data->x + i * d;
        for (size_t j = 0; j < d; j++)
            moments[2 + j] += row[j];
        n_local++;
    }
    if (local_rc < 0) {
        memset(moments, 0, (2 + d) * sizeof *moments);
        moments[1] = 1;
    } else {
        moments[0] = (double)n_local;
    }
    if ((rc = rank_sum(reduce, moments, 2 + d, err)) < 0)
        goto out;
    if (local_rc < 0) {
        rc = local_rc;
        goto out;
    }
    if (moments[1] != 0) {
        rc = kiln_err_at(err, KILN_ENONFINITE, "x", "anomaly: another rank has NaN or Inf");
        goto out;
    }
    const double n = moments[0];
    if (n < 2) {
        rc = kiln_err_at(err, KILN_EINVAL, "y",
                         "anomaly: %.0f healthy rows (class %d) in all, need at least 2", n,
                         (int)p.healthy_class);
        goto out;
    }
    m->n_train = (uint64_t)n;
    for (size_t j = 0; j < d; j++)
        m->mean[j] = moments[2 + j] / n;

    /* pass 2: scatter about the global mean (lower triangle, packed) and
     * sum ||x - mean||^4 for Ledoit-Wolf */
    for (size_t i = 0; i < data->n; i++) {
        if (!row_is_healthy(data, &p, i))
            continue;
        const float *row = data->x + i * d;
        double nrm2 = 0;
        for (size_t j = 0; j < d; j++) {
            z[j] = row[j] - m->mean[j];
            nrm2 += z[j] * z[j];
        }
        for (size_t a = 0; a < d; a++) {
            double *sa = scatter + a * (a + 1) / 2;
            for (size_t b = 0; b <= a; b++)
                sa[b] += z[a] * z[b];
        }
        scatter[n_tri] += nrm2 * nrm2;
    }
    if ((rc = rank_sum(reduce, scatter, n_tri + 1, err)) < 0)
        goto out;
    for (size_t a = 0; a < d; a++)
        for (size_t b = 0; b <= a; b++)
            m->cov[a * d + b] = m->cov[b * d + a] = scatter[a * (a + 1) / 2 + b] / n;
    m->shrinkage = p.shrinkage == KM_ANOMALY_LEDOIT_WOLF
                       ? ledoit_wolf(m->cov, d, n, scatter[n_tri])
                       : p.shrinkage;
    double trace = 0;
    for (size_t j = 0; j < d; j++)
        trace += m->cov[j * d + j];
    const double s = m->shrinkage, mu = trace / (double)d;
    for (size_t a = 0; a < d; a++)
        for (size_t b = 0; b < d; b++)
            m->cov[a * d + b] = (1 - s) * m->cov[a * d + b] + (a == b ? s * mu : 0);
    long bad = cholesky(m);
    if (bad < 0) {
        /* Same data on every rank after the sums, so all ranks fail here. */
        rc = kiln_err_at(err, KILN_EINVAL, "shrinkage",
                         "anomaly: covariance of %zu features is not positive definite at "
                         "feature %ld after shrinkage %g (a constant or duplicated feature? "
                         "use shrinkage > 0 or drop it)", d, -1 - bad, s);
        goto out;
    }

    /* pass 3: this rank's sorted distances, sent whole or as evenly spaced
     * order statistics; every rank merges the same slots the same way */
    dist = kiln_malloc((n_local ? n_local : 1) * sizeof *dist);
    if (!dist) {
        /* cannot skip the sum: send an empty slot flagged as failed */
        local_rc = kiln_err_set(err, KILN_ENOMEM, "anomaly: no memory for %zu distances",
                                n_local);
    } else {
        size_t k = 0;
        for (size_t i = 0; i < data->n; i++)
            if (row_is_healthy(data, &p, i))
                dist[k++] = mahalanobis(m, data->x + i * d, z);
        qsort(dist, n_local, sizeof *dist, cmp_double);
    }
    double *mine = gather + (size_t)rank * slot_len;
    if (local_rc < 0) {
        mine[1] = -1;
    } else {
        size_t k_send = n_local < p.quantile_sample ? n_local : p.quantile_sample;
        mine[0] = (double)n_local;
        mine[1] = (double)k_send;
        for (size_t j = 0; j < k_send; j++) {
            /* middle row of the j-th of k_send equal shares */
            size_t at = k_send == n_local ? j : ((2 * j + 1) * n_local) / (2 * k_send);
            mine[2 + j] = dist[at];
        }
    }
    if ((rc = rank_sum(reduce, gather, (size_t)n_ranks * slot_len, err)) < 0)
        goto out;
    if (local_rc < 0) {
        rc = local_rc;
        goto out;
    }
    size_t n_pts = 0;
    for (int r = 0; r < n_ranks; r++) {
        double k_r = gather[(size_t)r * slot_len + 1];
        if (k_r < 0) {
            rc = kiln_err_set(err, KILN_ENOMEM, "anomaly: rank %d ran out of memory", r);
            goto out;
        }
        n_pts += (size_t)k_r;
    }
    pts = kiln_malloc(n_pts * sizeof *pts);
    if (!pts) {
        rc = kiln_err_set(err, KILN_ENOMEM, "anomaly: no memory for %zu quantile points", n_pts);
        goto out;
    }
    size_t at = 0;
    for (int r = 0; r < n_ranks; r++) {
        const double *slot = gather + (size_t)r * slot_len;
        size_t k_r = (size_t)slot[1];
        for (size_t j = 0; j < k_r; j++) {
            pts[at].value = slot[2 + j];
            pts[at].weight = slot[0] / (double)k_r;
            at++;
        }
    }
    m->threshold = weighted_quantile(pts, n_pts, n, 1 - p.false_alarm_rate);
    *out = m;
    m = NULL;
    rc = 0;
out:
    kiln_free(pts);
    kiln_free(gather);
    kiln_free(dist);
    kiln_free(z);
    kiln_free(scatter);
    kiln_free(moments);
    km_anomaly_free(&m);
    return rc;
}

int km_anomaly_predict(const km_anomaly_t *m, const float *x, size_t n, float *scores,
                       int32_t *pred, kiln_err_t *err)
{
    if (!m)
        return kiln_err_set(err, KILN_EINVAL, "anomaly: model is NULL");
    if (n > 0 && (!x || !scores))
        return kiln_err_set(err, KILN_EINVAL, "anomaly: x or scores is NULL with n = %zu", n);
    double *z = kiln_malloc(m->d * sizeof *z);
    if (!z)
        return kiln_err_set(err, KILN_ENOMEM, "anomaly: no memory for %zu features", m->d);
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        const float *row = x + i * m->d;
        for (size_t j = 0; j < m->d; j++)
            if (!isfinite(row[j])) {
                rc = kiln_err_at(err, KILN_ENONFINITE, "x", "anomaly: row %zu feature %zu is %g",
                                 i, j, (double)row[j]);
                goto out;
            }
        double dist = mahalanobis(m, row, z);
        scores[i] = (float)dist;
        if (pred)
            pred[i] = dist > m->threshold;
    }
out:
    kiln_free(z);
    return rc;
}

int km_anomaly_save(const km_anomaly_t *m, km_buf_t *b, kiln_err_t *err)
{
    if (!m || !b)
        return kiln_err_set(err, KILN_EINVAL, "anomaly: save of NULL");
    if (b->oom)
        return kiln_err_set(err, KILN_ENOMEM, "anomaly: buffer already incomplete");
    const size_t start = b->len;
    const double head[3] = {m->rate, m->shrinkage, m->threshold};
    km_buf_u32(b, ANOMALY_MAGIC);
    km_buf_u32(b, ANOMALY_VERSION);
    km_buf_u64(b, (uint64_t)m->d);
    km_buf_u64(b, m->n_train);
    km_buf_f64s(b, head, 3);
    km_buf_f64s(b, m->mean, m->d + m->d * m->d);
    if (!b->oom)
        km_buf_u64(b, km_fnv1a64(b->p + start, b->len - start));
    if (b->oom)
        return kiln_err_set(err, KILN_ENOMEM, "anomaly: no memory to save %zu features", m->d);
    return 0;
}

int km_anomaly_read(km_rd_t *r, km_anomaly_t **out, kiln_err_t *err)
{
    uint32_t magic = 0, version = 0;
    uint64_t d = 0, n_train = 0, sum = 0;
    double head[3];
    km_anomaly_t *m = NULL;
    int rc = 0;

    if (!out)
        return kiln_err_set(err, KILN_EINVAL, "anomaly: out is NULL");
    *out = NULL;
    if (!r || (!r->p && r->len > 0) || r->off > r->len)
        return kiln_err_set(err, KILN_EINVAL, "anomaly: bad reader");
    const size_t start = r->off;
    if (km_rd_u32(r, &magic) < 0 || magic != ANOMALY_MAGIC) {
        rc = kiln_err_set(err, KILN_EFORMAT, "anomaly: not a saved anomaly model (magic)");
        goto out;
    }
    if (km_rd_u32(r, &version) < 0 || version != ANOMALY_VERSION) {
        rc = kiln_err_set(err, KILN_EFORMAT, "anomaly: version %u, this build reads %u", version,
                          ANOMALY_VERSION);
        goto out;
    }
    if (km_rd_u64(r, &d) < 0 || km_rd_u64(r, &n_train) < 0 || km_rd_f64s(r, head, 3) < 0) {
        rc = kiln_err_set(err, KILN_EFORMAT, "anomaly: truncated header");
        goto out;
    }
    /* bound d by the bytes there before allocating: d + d*d doubles follow */
    const size_t left = (r->len - r->off) / 8;
    if (d == 0 || d > 65536 || d + d * d > left) {
        rc = kiln_err_set(err, KILN_EFORMAT, "anomaly: %llu features do not fit in %zu bytes",
                          (unsigned long long)d, r->len - r->off);
        goto out;
    }
    if (!(m = model_new((size_t)d))) {
        rc = kiln_err_set(err, KILN_ENOMEM, "anomaly: no memory for %llu features",
                          (unsigned long long)d);
        goto out;
    }
    km_rd_f64s(r, m->mean, m->d + m->d * m->d);     /* fits: checked above */
    const size_t body_end = r->off;
    if (km_rd_u64(r, &sum) < 0 || sum != km_fnv1a64(r->p + start, body_end - start)) {
        rc = kiln_err_set(err, KILN_EFORMAT, "anomaly: checksum mismatch (corrupt bytes)");
        goto out;
    }
    m->n_train = n_train;
    m->rate = head[0];
    m->shrinkage = head[1];
    m->threshold = head[2];
    if (n_train < 2 || !(m->rate > 0 && m->rate < 1) ||
        !(m->shrinkage >= 0 && m->shrinkage <= 1) || !(m->threshold >= 0) ||
        !isfinite(m->threshold)) {
        rc = kiln_err_set(err, KILN_EFORMAT, "anomaly: header values out of range");
        goto out;
    }
    for (size_t j = 0; j < m->d + m->d * m->d; j++)
        if (!isfinite(m->mean[j])) {
            rc = kiln_err_set(err, KILN_EFORMAT, "anomaly: value %zu is not finite", j);
            goto out;
        }
    if (cholesky(m) < 0) {
        rc = kiln_err_set(err, KILN_EFORMAT, "anomaly: saved covariance is not positive definite");
        goto out;
    }
    *out = m;
    m = NULL;
out:
    if (rc < 0)
        r->off = start;
    km_anomaly_free(&m);
    return rc;
}

double km_anomaly_threshold(const km_anomaly_t *m) { return m->threshold; }
int km_anomaly_load(const void *bytes, size_t len, km_anomaly_t **out, kiln_err_t *err)
{
    km_rd_t r = {bytes, len, 0};
    int rc = km_anomaly_read(&r, out, err);
    if (rc == 0 && r.off != len) {
        km_anomaly_free(out);
        return kiln_err_set(err, KILN_EFORMAT, "anomaly: %zu trailing bytes after the model",
                            len - r.off);
    }
    return rc;
}

size_t km_anomaly_n_features(const km_anomaly_t *m) { return m->d; }
size_t km_anomaly_n_outputs(const km_anomaly_t *m) { (void)m; return 1; }
uint64_t km_anomaly_n_train(const km_anomaly_t *m) { return m->n_train; }
double km_anomaly_shrinkage(const km_anomaly_t *m) { return m->shrinkage; }
const double *km_anomaly_location(const km_anomaly_t *m) { return m->mean; }
const double *km_anomaly_covariance(const km_anomaly_t *m) { return m->cov; }
