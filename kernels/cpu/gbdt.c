/* gbdt.c - the boosting rounds of the gbdt kernel (gbdt.h): checks, the
 * starting score (LightGBM's boost_from_average), gradients of the loss,
 * bagging and feature draws, one tree per class per round (gbdt_tree.c),
 * and early stopping on the validation loss. */
#include <math.h>
#include <string.h>

#include "../../core/kiln_alloc.h"
#include "gbdt_impl.h"

km_gbdt_params_t km_gbdt_defaults(void)
{
    return (km_gbdt_params_t){
        .n_rounds = 100, .max_leaves = 31, .max_depth = -1, .min_data_in_leaf = 20,
        .min_sum_hessian_in_leaf = 1e-3, .lambda_l2 = 0.0, .learning_rate = 0.1,
        .max_bins = 255, .bin_sample_rows = 200000, .bagging_fraction = 1.0,
        .feature_fraction = 1.0, .early_stopping_rounds = 0, .n_threads = 2, .seed = 1,
    };
}

#define BAD_PARAM(field, ...) kiln_err_at(err, KILN_EINVAL, "params." field, __VA_ARGS__)

static int check_params(const km_gbdt_params_t *p, kiln_err_t *err)
{
    if (p->n_rounds < 1 || p->n_rounds > 1000000)
        return BAD_PARAM("n_rounds", "gbdt: n_rounds must be 1..1000000, not %d", p->n_rounds);
    if (p->max_leaves < 2 || p->max_leaves > 65536)
        return BAD_PARAM("max_leaves", "gbdt: max_leaves must be 2..65536, not %d", p->max_leaves);
    if (p->max_depth == 0 || p->max_depth < -1)
        return BAD_PARAM("max_depth", "gbdt: max_depth must be -1 or >= 1, not %d", p->max_depth);
    if (p->min_data_in_leaf < 1)
        return BAD_PARAM("min_data_in_leaf", "gbdt: min_data_in_leaf must be >= 1, not %d",
                         p->min_data_in_leaf);
    if (!(p->min_sum_hessian_in_leaf >= 0) || !isfinite(p->min_sum_hessian_in_leaf))
        return BAD_PARAM("min_sum_hessian_in_leaf",
                         "gbdt: min_sum_hessian_in_leaf must be finite and >= 0, not %g",
                         p->min_sum_hessian_in_leaf);
    if (!(p->lambda_l2 >= 0) || !isfinite(p->lambda_l2))
        return BAD_PARAM("lambda_l2", "gbdt: lambda_l2 must be finite and >= 0, not %g",
                         p->lambda_l2);
    if (!(p->learning_rate > 0 && p->learning_rate <= 1000))
        return BAD_PARAM("learning_rate", "gbdt: learning_rate must be in (0, 1000], not %g",
                         p->learning_rate);
    if (p->max_bins < 2 || p->max_bins > GB_MAX_BINS)
        return BAD_PARAM("max_bins", "gbdt: max_bins must be 2..255, not %d", p->max_bins);
    if (p->bin_sample_rows < 1 || p->bin_sample_rows > 100000000)
        return BAD_PARAM("bin_sample_rows", "gbdt: bin_sample_rows must be 1..1e8, not %zu",
                         p->bin_sample_rows);
    if (!(p->bagging_fraction > 0 && p->bagging_fraction <= 1))
        return BAD_PARAM("bagging_fraction", "gbdt: bagging_fraction must be in (0, 1], not %g",
                         p->bagging_fraction);
    if (!(p->feature_fraction > 0 && p->feature_fraction <= 1))
        return BAD_PARAM("feature_fraction", "gbdt: feature_fraction must be in (0, 1], not %g",
                         p->feature_fraction);
    if (p->early_stopping_rounds < 0)
        return BAD_PARAM("early_stopping_rounds", "gbdt: early_stopping_rounds must be >= 0, not %d",
                         p->early_stopping_rounds);
    if (p->n_threads < 1 || p->n_threads > GB_MAX_THREADS)
        return BAD_PARAM("n_threads", "gbdt: n_threads must be 1..64, not %d", p->n_threads);
    return 0;
}

/* The boundary check of one data set; name is "train" or "valid". */
static int check_data(const km_data_t *s, const char *name, kiln_err_t *err)
{
    if (!s->x)
        return kiln_err_at(err, KILN_EINVAL, name, "gbdt: %s.x is NULL", name);
    if (s->n == 0)
        return kiln_err_at(err, KILN_EINVAL, name, "gbdt: %s has no rows (n == 0)", name);
    if (s->n > UINT32_MAX)
        return kiln_err_at(err, KILN_EUNSUPPORTED, name, "gbdt: %s has %zu rows, over 2^32 - 1",
                           name, s->n);
    if (s->d == 0 || s->d > (1u << 24))
        return kiln_err_at(err, KILN_ESHAPE, name, "gbdt: %s has %zu features (1..2^24)", name,
                           s->d);
    if (s->n_classes == 1 || s->n_classes < 0 || s->n_classes > GB_MAX_CLASSES)
        return kiln_err_at(err, KILN_EINVAL, name,
                           "gbdt: %s.n_classes must be 0 (regression) or 2..%d, not %d", name,
                           GB_MAX_CLASSES, s->n_classes);
    if (s->n_classes && !s->y)
        return kiln_err_at(err, KILN_EINVAL, name, "gbdt: %s.y is NULL for a classifier", name);
    if (!s->n_classes && !s->target)
        return kiln_err_at(err, KILN_EINVAL, name, "gbdt: %s.target is NULL for a regression",
                           name);
    for (size_t i = 0; i < s->n; i++) {
        const float *row = s->x + i * s->d;
        int bad = 0;
        for (size_t f = 0; f < s->d; f++)
            bad |= !isfinite(row[f]);
        if (bad)
            for (size_t f = 0; f < s->d; f++)
                if (!isfinite(row[f]))
                    return kiln_err_at(err, KILN_ENONFINITE, name,
                                       "gbdt: %s row %zu column %zu is %g", name, i, f,
                                       (double)row[f]);
        if (s->n_classes && (s->y[i] < 0 || s->y[i] >= s->n_classes))
            return kiln_err_at(err, KILN_EINVAL, name, "gbdt: %s row %zu has class %d, not 0..%d",
                               name, i, (int)s->y[i], s->n_classes - 1);
        if (!s->n_classes && !isfinite(s->target[i]))
            return kiln_err_at(err, KILN_ENONFINITE, name, "gbdt: %s row %zu has target %g", name,
                               i, (double)s->target[i]);
    }
    return 0;
}

static int check_local(const km_data_t *train, const km_data_t *valid, const km_gbdt_params_t *p,
                       kiln_err_t *err)
{
    int rc;
    if (!p)
        return kiln_err_set(err, KILN_EINVAL, "gbdt: params are NULL");
    if ((rc = check_params(p, err)) < 0 || (rc = check_data(train, "train", err)) < 0)
        return rc;
    if (p->early_stopping_rounds > 0 && !valid)
        return BAD_PARAM("early_stopping_rounds",
                         "gbdt: early_stopping_rounds = %d needs a validation set",
                         p->early_stopping_rounds);
    if (valid) {
        if ((rc = check_data(valid, "valid", err)) < 0)
            return rc;
        if (valid->d != train->d || valid->n_classes != train->n_classes)
            return kiln_err_at(err, KILN_ESHAPE, "valid",
                               "gbdt: valid has %zu features and %d classes, train %zu and %d",
                               valid->d, valid->n_classes, train->d, train->n_classes);
    }
    return 0;
}

/* ---- gradients */

typedef struct {
    const km_data_t *s;
    const double    *raw;       /* [n x K] */
    float           *gh;        /* [K x n x 2]: per class, (gradient, hessian) pairs */
    size_t           K;
} grad_job_t;

static void grad_chunk(void *ctx, size_t lo, size_t hi)
{
    const grad_job_t *j = ctx;
    const size_t n = j->s->n, K = j->K;
    if (j->s->n_classes == 0) {             /* L2: g = f - y, h = 1 */
        for (size_t i = lo; i < hi; i++) {
            j->gh[2 * i] = (float)(j->raw[i] - j->s->target[i]);
            j->gh[2 * i + 1] = 1.0f;
        }
    } else if (j->s->n_classes == 2) {      /* logloss: g = p - y, h = p (1 - p) */
        for (size_t i = lo; i < hi; i++) {
            double p = 1.0 / (1.0 + exp(-j->raw[i]));
            j->gh[2 * i] = (float)(p - (double)(j->s->y[i] == 1));
            j->gh[2 * i + 1] = (float)(p * (1.0 - p));
        }
    } else {    /* softmax; LightGBM scales h by K / (K - 1) */
        const double factor = (double)K / (double)(K - 1);
        for (size_t i = lo; i < hi; i++) {
            const double *r = j->raw + i * K;
            double mx = r[0], sum = 0;
            for (size_t k = 1; k < K; k++)
                mx = r[k] > mx ? r[k] : mx;
            for (size_t k = 0; k < K; k++)
                sum += exp(r[k] - mx);
            for (size_t k = 0; k < K; k++) {
                double p = exp(r[k] - mx) / sum;
                float *o = j->gh + 2 * (k * n + i);
                o[0] = (float)(p - (double)(j->s->y[i] == (int32_t)k));
                o[1] = (float)(factor * p * (1.0 - p));
            }
        }
    }
}

/* Summed loss of raw scores on s: logloss, multi-logloss or squared error. */
static double loss_sum(const km_data_t *s, const double *raw, size_t K)
{
    double sum = 0;
    for (size_t i = 0; i < s->n; i++) {
        if (s->n_classes == 0) {
            double e = raw[i] - s->target[i];
            sum += e * e;
        } else if (s->n_classes == 2) {
            double p = 1.0 / (1.0 + exp(-raw[i]));
            p = s->y[i] == 1 ? p : 1.0 - p;
            sum -= log(p > 1e-15 ? p : 1e-15);
        } else {
            const double *r = raw + i * K;
            double mx = r[0], z = 0;
            for (size_t k = 1; k < K; k++)
                mx = r[k] > mx ? r[k] : mx;
            for (size_t k = 0; k < K; k++)
                z += exp(r[k] - mx);
            double p = exp(r[s->y[i]] - mx) / z;
            sum -= log(p > 1e-15 ? p : 1e-15);
        }
    }
    return sum;
}

/* ---- the first sum: checks and label statistics over all ranks */

enum { HEAD_BAD, HEAD_VALID, HEAD_CLASSES, HEAD_D, HEAD_TARGET, HEAD_COUNTS };

static int agree(const km_data_t *train, const km_data_t *valid, const km_reduce_t *rd,
                 int local_rc, double *head, size_t head_n, kiln_err_t *err)
{
    const int n_ranks = rd ? rd->n_ranks : 1, rank = rd ? rd->rank : 0;
    double *rank_n = head + HEAD_COUNTS + GB_MAX_CLASSES;
    memset(head, 0, head_n * sizeof *head);
    head[HEAD_BAD] = local_rc < 0;
    if (local_rc >= 0) {
        head[HEAD_VALID] = valid != NULL;
        head[HEAD_CLASSES] = train->n_classes;
        head[HEAD_D] = (double)train->d;
        rank_n[rank] = (double)train->n;
        for (size_t i = 0; i < train->n; i++) {
            if (train->n_classes)
                head[HEAD_COUNTS + train->y[i]] += 1;
            else
                head[HEAD_TARGET] += train->target[i];
        }
    }
    int rc = rd ? rd->sum(rd->ud, head, head_n, err) : 0;
    if (rc < 0 || local_rc < 0)
        return rc < 0 ? rc : local_rc;
    if (head[HEAD_BAD] > 0)
        return kiln_err_set(err, KILN_EINVAL, "gbdt: %g other rank(s) refused their data or params",
                            head[HEAD_BAD]);
    if (head[HEAD_CLASSES] != n_ranks * (double)train->n_classes ||
        head[HEAD_D] != n_ranks * (double)train->d)
        return kiln_err_set(err, KILN_ESHAPE, "gbdt: ranks disagree on features or classes");
    if (head[HEAD_VALID] != 0 && head[HEAD_VALID] != n_ranks)
        return kiln_err_at(err, KILN_EINVAL, "valid",
                           "gbdt: %g of %d ranks passed a validation set: all or none",
                           head[HEAD_VALID], n_ranks);
    if (train->n_classes) {
        int present = 0, only = 0;
        for (int k = 0; k < train->n_classes; k++)
            if (head[HEAD_COUNTS + k] > 0) {
                present++;
                only = k;
            }
        if (present < 2)
            return kiln_err_at(err, KILN_EINVAL, "train.y",
                               "gbdt: train has only one class (%d) of %d", only,
                               train->n_classes);
    }
    return 0;
}

/* ---- fit */

int km_gbdt_fit(const km_data_t *train, const km_data_t *valid, const km_gbdt_params_t *p,
                const km_reduce_t *reduce, km_gbdt_t **out, kiln_err_t *err)
{
    if (!out || !train)
        return kiln_err_set(err, KILN_EINVAL, "gbdt: NULL train or out");
    *out = NULL;
    const km_reduce_t *rd = reduce && reduce->sum ? reduce : NULL;
    if (rd && (rd->n_ranks < 1 || rd->n_ranks > 65536 || rd->rank < 0 || rd->rank >= rd->n_ranks))
        return kiln_err_set(err, KILN_EINVAL, "gbdt: reduce rank %d of %d is out of range",
                            rd->rank, rd->n_ranks);
    const int n_ranks = rd ? rd->n_ranks : 1;
    const size_t head_n = HEAD_COUNTS + GB_MAX_CLASSES + (size_t)n_ranks;
    double *head = kiln_malloc(head_n * sizeof *head);
    if (!head)
        return kiln_err_set(err, KILN_ENOMEM, "gbdt: no memory");
    int rc = check_local(train, valid, p, err);
    rc = agree(train, valid, rd, rc, head, head_n, err);

    const size_t n = train->n, d = train->d;
    const size_t K = train->n_classes > 2 ? (size_t)train->n_classes : 1;
    const size_t nv = valid ? valid->n : 0;
    gb_bins_t bins = {0};
    uint8_t *codes = NULL, *feat_used = NULL;
    gb_grower_t *gr = NULL;
    km_gbdt_t *m = NULL;
    double *raw = NULL, *vraw = NULL;
    float *gh = NULL;
    uint32_t *bag = NULL;
    size_t *perm = NULL;
    if (rc < 0)
        goto out;
    if ((rc = gb_bins_build(train, p, rd, head + HEAD_COUNTS + GB_MAX_CLASSES, &bins, err)) < 0 ||
        (rc = gb_bins_codes(&bins, train->x, n, p->n_threads, &codes, err)) < 0 ||
        (rc = gb_grower_new(&bins, codes, n, p, rd, &gr, err)) < 0 ||
        (rc = gb_model_new(d, train->n_classes, p->n_threads, &m, err)) < 0)
        goto out;
    raw = kiln_malloc(n * K * sizeof *raw);
    vraw = kiln_malloc((nv ? nv : 1) * K * sizeof *vraw);
    gh = kiln_malloc_aligned(2 * n * K * sizeof *gh);
    bag = kiln_malloc(n * sizeof *bag);
    perm = kiln_malloc(d * sizeof *perm);
    feat_used = kiln_malloc(d);
    if (!raw || !vraw || !gh || !bag || !perm || !feat_used) {
        rc = kiln_err_set(err, KILN_ENOMEM, "gbdt: no memory for %zu rows of scores", n);
        goto out;
    }

    /* Starting scores from the global label statistics. */
    double n_all = 0;
    for (int r = 0; r < n_ranks; r++)
        n_all += head[HEAD_COUNTS + GB_MAX_CLASSES + r];
    if (train->n_classes == 0) {
        m->init[0] = head[HEAD_TARGET] / n_all;
    } else if (train->n_classes == 2) {
        double p1 = head[HEAD_COUNTS + 1] / n_all;
        m->init[0] = log(p1 / (1.0 - p1));
    } else {
        for (size_t k = 0; k < K; k++) {
            double pk = head[HEAD_COUNTS + k] / n_all;
            m->init[k] = log(pk > 1e-15 ? pk : 1e-15);
        }
    }
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < K; k++)
            raw[i * K + k] = m->init[k];
    for (size_t i = 0; i < nv; i++)
        for (size_t k = 0; k < K; k++)
            vraw[i * K + k] = m->init[k];

    /* Feature draws are the same on every rank; bags are each rank's own. */
    km_rng_t feat_rng, bag_rng;
    km_rng_seed(&feat_rng, p->seed ^ 0xFEA7u);
    km_rng_seed(&bag_rng, p->seed ^ (0xBA66u + 0x9E3779B97F4A7C15ull * (uint64_t)(rd ? rd->rank : 0)));
    const size_t n_feat = (size_t)fmax(1.0, floor((double)d * p->feature_fraction + 0.5));
    double best_loss = INFINITY;
    int best_round = -1;
    grad_job_t gj = {train, raw, gh, K};
    for (int round = 0; round < p->n_rounds; round++) {
        if (p->bagging_fraction < 1.0) {
            size_t n_in = 0;
            for (size_t i = 0; i < n; i++)
                if (km_rng_uniform(&bag_rng) < p->bagging_fraction)
                    bag[n_in++] = (uint32_t)i;
            gb_grower_set_rows(gr, bag, n_in);
        }
        gb_par_for(n >= 16384 ? p->n_threads : 1, n, grad_chunk, &gj);
        for (size_t k = 0; k < K; k++) {
            if (n_feat < d) {
                km_rng_shuffle(&feat_rng, perm, d);
                memset(feat_used, 0, d);
                for (size_t f = 0; f < n_feat; f++)
                    feat_used[perm[f]] = 1;
                gb_grower_set_features(gr, feat_used);
            }
            if ((rc = gb_grower_grow(gr, gh + 2 * k * n, m, raw + k, K, err)) < 0)
                goto out;
            if (valid)
                gb_model_add_tree_raw(m, m->n_trees - 1, valid->x, nv, vraw + k, K);
        }
        if (!valid)
            continue;
        double vl[2] = {loss_sum(valid, vraw, K), (double)nv};
        if (rd && (rc = rd->sum(rd->ud, vl, 2, err)) < 0)
            goto out;
        double loss = vl[0] / vl[1];
        if (loss < best_loss) {
            best_loss = loss;
            best_round = round;
        } else if (p->early_stopping_rounds > 0 &&
                   round - best_round >= p->early_stopping_rounds) {
            break;
        }
    }
    if (valid && p->early_stopping_rounds > 0 && best_round >= 0)
        gb_model_truncate(m, (size_t)(best_round + 1) * K);
    *out = m;
    m = NULL;
    rc = 0;
out:
    kiln_free(feat_used);
    kiln_free(perm);
    kiln_free(bag);
    kiln_free_aligned(gh);
    kiln_free(vraw);
    kiln_free(raw);
    km_gbdt_free(&m);
    gb_grower_free(&gr);
    kiln_free_aligned(codes);
    gb_bins_free(&bins);
    kiln_free(head);
    return rc;
}
