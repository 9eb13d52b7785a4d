/* gbdt_tree.c - grows one gbdt tree leaf-wise from gradient histograms
 * (LightGBM: Ke et al. 2017, section 2; the split gain is XGBoost's
 * G_L^2/(H_L+l2) + G_R^2/(H_R+l2) - G^2/(H+l2), Chen & Guestrin 2016).
 * Each leaf owns a range of a row-index partition; only the smaller child of
 * a split gets its histogram built, the larger is parent minus smaller.
 * Histograms are per feature and each thread builds whole features, so the
 * sums (and the model) do not depend on the thread count.  With a reduce,
 * each built histogram is summed over ranks before anything reads it, and
 * every decision uses the summed (global) counts, so ranks stay in step. */
#include <math.h>
#include <string.h>
#ifdef __AVX__
#include <immintrin.h>
#endif

#include "../../core/kiln_alloc.h"
#include "gbdt_impl.h"

/* One histogram bin; 32 bytes so a row's update is one 4-wide add. */
typedef struct {
    double g, h, c, pad;        /* gradient, hessian, rows, 0 */
} hbin_t;

typedef struct {
    size_t start, count;        /* this rank's rows: idx[start, start + count) */
    double sum_g, sum_h, cnt;   /* over all ranks */
    int    depth, node, slot;   /* slot: which pool histogram is this leaf's */
    double gain;                /* best split's gain; 0: none */
    int    feat, bin;           /* bins <= bin go left */
    double lg, lh, lc;          /* left side's sums */
} leaf_t;

struct gb_grower {
    const gb_bins_t        *bins;
    const uint8_t          *codes;     /* feature-major [d x n] */
    size_t                  n;
    const km_gbdt_params_t *p;
    const km_reduce_t      *reduce;
    uint32_t *in_rows, *out_rows;      /* this round's bag and the rest */
    size_t    n_in, n_out;
    uint32_t *idx, *tmp;               /* the partition and its scratch */
    float    *ogh;                     /* (gradient, hessian) in partition order */
    hbin_t   *pool;                    /* max_leaves histograms */
    size_t   *used;                    /* features the trees may split on */
    size_t    n_used;
    leaf_t   *leaves;
    gb_node_t *nodes;
    double    *value;
    int32_t   *node_bin;
};

void gb_grower_free(gb_grower_t **gp)
{
    if (!gp || !*gp)
        return;
    gb_grower_t *g = *gp;
    kiln_free(g->in_rows);
    kiln_free(g->out_rows);
    kiln_free(g->idx);
    kiln_free(g->tmp);
    kiln_free_aligned(g->ogh);
    kiln_free_aligned(g->pool);
    kiln_free(g->used);
    kiln_free(g->leaves);
    kiln_free(g->nodes);
    kiln_free(g->value);
    kiln_free(g->node_bin);
    kiln_free(g);
    *gp = NULL;
}

int gb_grower_new(const gb_bins_t *bins, const uint8_t *codes, size_t n, const km_gbdt_params_t *p,
                  const km_reduce_t *reduce, gb_grower_t **out, kiln_err_t *err)
{
    gb_grower_t *g = kiln_calloc(1, sizeof *g);
    const size_t L = (size_t)p->max_leaves, pool_bytes = L * bins->total_bins * sizeof(hbin_t);
    if (!g)
        goto oom;
    g->bins = bins;
    g->codes = codes;
    g->n = n;
    g->p = p;
    g->reduce = reduce;
    g->in_rows = kiln_malloc(n * sizeof *g->in_rows);
    g->out_rows = kiln_malloc(n * sizeof *g->out_rows);
    g->idx = kiln_malloc(n * sizeof *g->idx);
    g->tmp = kiln_malloc(n * sizeof *g->tmp);
    g->ogh = kiln_malloc_aligned(2 * n * sizeof *g->ogh);
    /* Zeroed: a reduce sums whole histograms, unused features included. */
    g->pool = kiln_malloc_aligned(pool_bytes);
    g->used = kiln_malloc(bins->d * sizeof *g->used);
    g->leaves = kiln_calloc(L, sizeof *g->leaves);
    g->nodes = kiln_malloc((2 * L - 1) * sizeof *g->nodes);
    g->value = kiln_malloc((2 * L - 1) * sizeof *g->value);
    g->node_bin = kiln_malloc((2 * L - 1) * sizeof *g->node_bin);
    if (!g->in_rows || !g->out_rows || !g->idx || !g->tmp || !g->ogh || !g->pool ||
        !g->used || !g->leaves || !g->nodes || !g->value || !g->node_bin)
        goto oom;
    memset(g->pool, 0, pool_bytes);
    for (size_t i = 0; i < n; i++)
        g->in_rows[i] = (uint32_t)i;
    g->n_in = n;
    for (size_t f = 0; f < bins->d; f++)
        g->used[f] = f;
    g->n_used = bins->d;
    *out = g;
    return 0;
oom:
    gb_grower_free(&g);
    return kiln_err_set(err, KILN_ENOMEM,
                        "gbdt: no memory for %zu rows and %d leaves of histograms", n,
                        p->max_leaves);
}

void gb_grower_set_rows(gb_grower_t *g, const uint32_t *in, size_t n_in)
{
    memcpy(g->in_rows, in, n_in * sizeof *in);
    g->n_in = n_in;
    g->n_out = 0;
    size_t j = 0;
    for (size_t i = 0; i < g->n; i++) {
        if (j < n_in && in[j] == i)
            j++;
        else
            g->out_rows[g->n_out++] = (uint32_t)i;
    }
}

void gb_grower_set_features(gb_grower_t *g, const uint8_t *used)
{
    g->n_used = 0;
    for (size_t f = 0; f < g->bins->d; f++)
        if (used[f])
            g->used[g->n_used++] = f;
}

/* ---- histograms */

typedef struct {
    const gb_grower_t *g;
    const uint32_t    *rows;   /* NULL: rows 0..m-1 in order */
    size_t             m;
    const float       *gh;     /* (gradient, hessian) pairs in the order of rows */
    hbin_t            *hist;
} hist_job_t;

/* Adds row i's pair into bin e: one 4-wide add of (g, h, 1, 0). */
static inline void hist_add(hbin_t *e, const float *gh)
{
#ifdef __AVX__
    __m128 v = _mm_castpd_ps(_mm_load_sd((const double *)(const void *)gh));
    v = _mm_or_ps(v, _mm_set_ps(0.0f, 1.0f, 0.0f, 0.0f));
    _mm256_storeu_pd(&e->g, _mm256_add_pd(_mm256_loadu_pd(&e->g), _mm256_cvtps_pd(v)));
#else
    e->g += gh[0];
    e->h += gh[1];
    e->c += 1.0;
#endif
}

/* Rows of one leaf often share a bin (a feature the leaf was split on, or a
 * skewed one), and back-to-back adds to one bin wait on each other's
 * store.  Large leaves therefore alternate rows between two copies of the
 * feature's histogram and add the copies at the end: the same sums for any
 * thread count, since one thread owns the feature. */
#define HIST_TWO_COPIES_MIN 2048

static void hist_feature(const uint8_t *col, const uint32_t *rows, size_t m, const float *gh,
                         hbin_t *h, hbin_t *h2, unsigned nb)
{
    memset(h, 0, nb * sizeof *h);
    if (m < HIST_TWO_COPIES_MIN) {
        for (size_t i = 0; i < m; i++)
            hist_add(&h[rows ? col[rows[i]] : col[i]], gh + 2 * i);
        return;
    }
    memset(h2, 0, nb * sizeof *h2);
    size_t i = 0;
    if (rows) {
        /* The codes of a sparse leaf are scattered over the column: ask for
         * them a few dozen rows ahead. */
        for (; i + 1 < m; i += 2) {
            if (i + 65 < m) {
                __builtin_prefetch(&col[rows[i + 64]]);
                __builtin_prefetch(&col[rows[i + 65]]);
            }
            hist_add(&h[col[rows[i]]], gh + 2 * i);
            hist_add(&h2[col[rows[i + 1]]], gh + 2 * i + 2);
        }
        if (i < m)
            hist_add(&h[col[rows[i]]], gh + 2 * i);
    } else {
        for (; i + 1 < m; i += 2) {
            hist_add(&h[col[i]], gh + 2 * i);
            hist_add(&h2[col[i + 1]], gh + 2 * i + 2);
        }
        if (i < m)
            hist_add(&h[col[i]], gh + 2 * i);
    }
    for (unsigned b = 0; b < nb; b++) {
        h[b].g += h2[b].g;
        h[b].h += h2[b].h;
        h[b].c += h2[b].c;
    }
}

static void hist_chunk(void *ctx, size_t lo, size_t hi)
{
    const hist_job_t *j = ctx;
    const gb_grower_t *g = j->g;
    hbin_t h2[GB_MAX_BINS];
    for (size_t u = lo; u < hi; u++) {
        size_t f = g->used[u];
        hist_feature(g->codes + f * g->n, j->rows, j->m, j->gh,
                     j->hist + g->bins->hist_off[f], h2, g->bins->n_bins[f]);
    }
}

/* The histogram of leaf rows idx[start, start + count) into hist, summed
 * over ranks. */
static int build_hist(gb_grower_t *g, const leaf_t *lf, const float *gh, hbin_t *hist,
                      kiln_err_t *err)
{
    hist_job_t job = {g, g->idx + lf->start, lf->count, g->ogh, hist};
    if (lf->count == g->n) {
        job.rows = NULL;        /* every row, in order: no gather */
        job.gh = gh;
    } else {
        uint64_t *dst = (uint64_t *)(void *)g->ogh;
        const uint64_t *src = (const uint64_t *)(const void *)gh;
        for (size_t i = 0; i < lf->count; i++)
            dst[i] = src[job.rows[i]];
    }
    int threads = lf->count * g->n_used >= 65536 ? g->p->n_threads : 1;
    gb_par_for(threads, g->n_used, hist_chunk, &job);
    if (g->reduce)
        return g->reduce->sum(g->reduce->ud, (double *)hist, g->bins->total_bins * 4, err);
    return 0;
}

static void subtract_hist(const gb_grower_t *g, hbin_t *parent, const hbin_t *child)
{
    for (size_t u = 0; u < g->n_used; u++) {
        size_t f = g->used[u], off = g->bins->hist_off[f];
        for (size_t b = 0; b < g->bins->n_bins[f]; b++) {
            parent[off + b].g -= child[off + b].g;
            parent[off + b].h -= child[off + b].h;
            parent[off + b].c -= child[off + b].c;
        }
    }
}

/* ---- splits */

static int can_split(const gb_grower_t *g, const leaf_t *lf)
{
    return lf->cnt >= 2.0 * g->p->min_data_in_leaf &&
           (g->p->max_depth < 0 || lf->depth < g->p->max_depth);
}

static void find_best(const gb_grower_t *g, leaf_t *lf)
{
    const km_gbdt_params_t *p = g->p;
    const double l2 = p->lambda_l2, min_data = p->min_data_in_leaf,
                 min_hess = p->min_sum_hessian_in_leaf;
    const double G = lf->sum_g, H = lf->sum_h, N = lf->cnt;
    lf->gain = 0;
    lf->feat = -1;
    if (!can_split(g, lf) || !(H + l2 > 0))
        return;
    const double parent = G * G / (H + l2);
    const hbin_t *hist = g->pool + (size_t)lf->slot * g->bins->total_bins;
    for (size_t u = 0; u < g->n_used; u++) {
        size_t f = g->used[u];
        const hbin_t *h = hist + g->bins->hist_off[f];
        const unsigned nb = g->bins->n_bins[f];
        double lg = 0, lh = 0, lc = 0;
        for (unsigned b = 0; b + 1 < nb; b++) {
            lg += h[b].g;
            lh += h[b].h;
            lc += h[b].c;
            if (lc < min_data || lh < min_hess || !(lh + l2 > 0))
                continue;
            double rc = N - lc, rh = H - lh, rg = G - lg;
            if (rc < min_data)
                break;
            if (rh < min_hess || !(rh + l2 > 0))
                continue;
            double gain = lg * lg / (lh + l2) + rg * rg / (rh + l2) - parent;
            /* Strictly greater: ties keep the lowest feature and bin. */
            if (gain > lf->gain) {
                lf->gain = gain;
                lf->feat = (int)f;
                lf->bin = (int)b;
                lf->lg = lg;
                lf->lh = lh;
                lf->lc = lc;
            }
        }
    }
}

static void set_leaf_node(gb_grower_t *g, int node)
{
    g->nodes[node] = (gb_node_t){0, INFINITY, {node, node}};
    g->value[node] = 0;
    g->node_bin[node] = 0;
}

/* Splits leaf L into L (left) and R = n_leaves (right); returns the error of
 * the one histogram build. */
static int split_leaf(gb_grower_t *g, int L, int R, int *n_nodes, const float *gh,
                      kiln_err_t *err)
{
    leaf_t *lf = &g->leaves[L], *rt = &g->leaves[R];
    const int f = lf->feat, bin = lf->bin, node = lf->node, a = *n_nodes, b = *n_nodes + 1;
    *n_nodes += 2;
    g->nodes[node] = (gb_node_t){f, g->bins->edges[(size_t)f * GB_EDGE_STRIDE + (size_t)bin],
                                 {a, b}};
    g->node_bin[node] = bin;
    set_leaf_node(g, a);
    set_leaf_node(g, b);

    /* Stable partition: left rows stay in place, right rows go via tmp. */
    const uint8_t *col = g->codes + (size_t)f * g->n;
    uint32_t *rows = g->idx + lf->start;
    size_t nl = 0, nr = 0;
    for (size_t i = 0; i < lf->count; i++) {
        uint32_t r = rows[i];
        if (col[r] <= bin)
            rows[nl++] = r;
        else
            g->tmp[nr++] = r;
    }
    memcpy(rows + nl, g->tmp, nr * sizeof *rows);

    *rt = *lf;
    rt->start = lf->start + nl;
    rt->count = nr;
    rt->sum_g = lf->sum_g - lf->lg;
    rt->sum_h = lf->sum_h - lf->lh;
    rt->cnt = lf->cnt - lf->lc;
    rt->depth = lf->depth + 1;
    rt->node = b;
    lf->count = nl;
    lf->sum_g = lf->lg;
    lf->sum_h = lf->lh;
    lf->cnt = lf->lc;
    lf->depth++;
    lf->node = a;
    lf->gain = rt->gain = 0;
    rt->slot = R;
    if (!can_split(g, lf) && !can_split(g, rt))
        return 0;               /* neither child will read a histogram */

    /* The smaller child (by global rows, so every rank agrees) is built into
     * the free slot R; the parent's slot becomes the larger child's. */
    const size_t B = g->bins->total_bins;
    const int parent_slot = lf->slot;
    leaf_t *small = lf->cnt <= rt->cnt ? lf : rt, *large = small == lf ? rt : lf;
    small->slot = R;
    large->slot = parent_slot;
    int rc = build_hist(g, small, gh, g->pool + (size_t)R * B, err);
    if (rc < 0)
        return rc;
    subtract_hist(g, g->pool + (size_t)parent_slot * B, g->pool + (size_t)R * B);
    find_best(g, lf);
    find_best(g, rt);
    return 0;
}

int gb_grower_grow(gb_grower_t *g, const float *gh, km_gbdt_t *m,
                   double *raw, size_t stride, kiln_err_t *err)
{
    const km_gbdt_params_t *p = g->p;
    int n_leaves = 1, n_nodes = 1, rc;
    memcpy(g->idx, g->in_rows, g->n_in * sizeof *g->idx);
    leaf_t *root = &g->leaves[0];
    memset(root, 0, sizeof *root);
    root->count = g->n_in;
    set_leaf_node(g, 0);
    if ((rc = build_hist(g, root, gh, g->pool, err)) < 0)
        return rc;
    /* Global sums: every row falls in one bin of any feature. */
    const hbin_t *h0 = g->pool + g->bins->hist_off[g->used[0]];
    for (unsigned b = 0; b < g->bins->n_bins[g->used[0]]; b++) {
        root->sum_g += h0[b].g;
        root->sum_h += h0[b].h;
        root->cnt += h0[b].c;
    }
    find_best(g, root);
    while (n_leaves < p->max_leaves) {
        int best = -1;
        for (int l = 0; l < n_leaves; l++)
            if (g->leaves[l].gain > 0 && (best < 0 || g->leaves[l].gain > g->leaves[best].gain))
                best = l;
        if (best < 0)
            break;
        if ((rc = split_leaf(g, best, n_leaves, &n_nodes, gh, err)) < 0)
            return rc;
        n_leaves++;
    }
    /* Leaf outputs -G / (H + l2), shrunk by the learning rate. */
    for (int l = 0; l < n_leaves; l++) {
        const leaf_t *lf = &g->leaves[l];
        double den = lf->sum_h + p->lambda_l2;
        double v = den > 0 ? -lf->sum_g / den * p->learning_rate : 0.0;
        g->value[lf->node] = v;
        for (size_t i = 0; i < lf->count; i++)
            raw[(size_t)g->idx[lf->start + i] * stride] += v;
    }
    /* Rows out of the bag walk the tree on their bin codes. */
    for (size_t i = 0; i < g->n_out; i++) {
        size_t r = g->out_rows[i];
        int nd = 0;
        while (g->nodes[nd].child[0] != nd) {
            const gb_node_t *q = &g->nodes[nd];
            nd = q->child[g->codes[(size_t)q->feature * g->n + r] > (unsigned)g->node_bin[nd]];
        }
        raw[r * stride] += g->value[nd];
    }
    return gb_model_add_tree(m, g->nodes, g->value, (size_t)n_nodes, err);
}
