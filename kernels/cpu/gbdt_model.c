/* gbdt_model.c - the trained gbdt model: flattened trees, prediction, and
 * the saved byte format.  Prediction walks a block of rows through one tree
 * at a time, each tree for a fixed number of steps (leaves point at
 * themselves), so the inner loop has no data-dependent branch and the rows
 * of a block are independent chains the CPU overlaps. */
#include <math.h>
#include <string.h>

#include "../../core/kiln_alloc.h"
#include "gbdt_impl.h"

#define GB_MAGIC   0x4442474bu     /* "KGBD" little-endian */
#define GB_VERSION 1u
#define PRED_BLOCK 32

int gb_model_new(size_t d, int n_classes, int n_threads, km_gbdt_t **out, kiln_err_t *err)
{
    km_gbdt_t *m = kiln_calloc(1, sizeof *m);
    size_t per_round = n_classes > 2 ? (size_t)n_classes : 1;
    if (!m || !(m->init = kiln_calloc(per_round, sizeof *m->init)) ||
        !(m->tree_start = kiln_calloc(1, sizeof *m->tree_start))) {
        km_gbdt_free(&m);
        return kiln_err_set(err, KILN_ENOMEM, "gbdt: no memory for a model");
    }
    m->n_features = d;
    m->n_classes = n_classes;
    m->per_round = per_round;
    m->n_threads = n_threads;
    *out = m;
    return 0;
}

void km_gbdt_free(km_gbdt_t **mp)
{
    if (!mp || !*mp)
        return;
    km_gbdt_t *m = *mp;
    kiln_free(m->init);
    kiln_free(m->nodes);
    kiln_free(m->value);
    kiln_free(m->tree_start);
    kiln_free(m->tree_depth);
    kiln_free(m);
    *mp = NULL;
}

size_t km_gbdt_n_outputs(const km_gbdt_t *m) { return m->n_classes ? (size_t)m->n_classes : 1; }
size_t km_gbdt_n_trees(const km_gbdt_t *m) { return m->n_trees; }
size_t km_gbdt_n_features(const km_gbdt_t *m) { return m->n_features; }

/* Longest root-to-leaf path; children always sit after their parent. */
static uint32_t tree_depth(const gb_node_t *nd, size_t n_nodes, uint32_t *scratch)
{
    uint32_t max = 0;
    memset(scratch, 0, n_nodes * sizeof *scratch);
    for (size_t i = 0; i < n_nodes; i++) {
        if (nd[i].child[0] == (int32_t)i)
            continue;
        for (int c = 0; c < 2; c++) {
            uint32_t dc = scratch[i] + 1;
            if (dc > scratch[nd[i].child[c]])
                scratch[nd[i].child[c]] = dc;
            if (dc > max)
                max = dc;
        }
    }
    return max;
}

static int reserve(km_gbdt_t *m, size_t more_nodes)
{
    if (m->n_trees + 1 >= m->cap_trees) {
        size_t cap = m->cap_trees ? 2 * m->cap_trees : 64;
        size_t *ts = kiln_realloc(m->tree_start, (cap + 1) * sizeof *ts);
        if (!ts)
            return -1;
        m->tree_start = ts;
        uint32_t *td = kiln_realloc(m->tree_depth, cap * sizeof *td);
        if (!td)
            return -1;
        m->tree_depth = td;
        m->cap_trees = cap;
    }
    if (m->n_nodes + more_nodes > m->cap_nodes) {
        size_t cap = m->cap_nodes ? m->cap_nodes : 1024;
        while (cap < m->n_nodes + more_nodes)
            cap *= 2;
        gb_node_t *nd = kiln_realloc(m->nodes, cap * sizeof *nd);
        if (!nd)
            return -1;
        m->nodes = nd;
        double *v = kiln_realloc(m->value, cap * sizeof *v);
        if (!v)
            return -1;
        m->value = v;
        m->cap_nodes = cap;
    }
    return 0;
}

int gb_model_add_tree(km_gbdt_t *m, const gb_node_t *nodes, const double *value, size_t n_nodes,
                      kiln_err_t *err)
{
    uint32_t *scratch = kiln_malloc(n_nodes * sizeof *scratch);
    if (!scratch || reserve(m, n_nodes) < 0) {
        kiln_free(scratch);
        return kiln_err_set(err, KILN_ENOMEM, "gbdt: no memory for tree %zu", m->n_trees);
    }
    memcpy(m->nodes + m->n_nodes, nodes, n_nodes * sizeof *nodes);
    memcpy(m->value + m->n_nodes, value, n_nodes * sizeof *value);
    m->tree_depth[m->n_trees] = tree_depth(nodes, n_nodes, scratch);
    m->n_nodes += n_nodes;
    m->n_trees++;
    m->tree_start[m->n_trees] = m->n_nodes;
    kiln_free(scratch);
    return 0;
}

void gb_model_truncate(km_gbdt_t *m, size_t n_trees)
{
    if (n_trees < m->n_trees) {
        m->n_trees = n_trees;
        m->n_nodes = m->tree_start[n_trees];
    }
}

/* rows[0..n_rows) of x through tree t; leaf values added to raw[r * stride]. */
static void tree_block(const km_gbdt_t *m, size_t t, const float *x, size_t n_rows, double *raw,
                       size_t stride)
{
    const gb_node_t *nd = m->nodes + m->tree_start[t];
    const double *val = m->value + m->tree_start[t];
    const size_t d = m->n_features;
    int32_t at[PRED_BLOCK] = {0};
    for (uint32_t s = 0; s < m->tree_depth[t]; s++)
        for (size_t r = 0; r < n_rows; r++) {
            const gb_node_t *q = nd + at[r];
            at[r] = q->child[x[r * d + (size_t)q->feature] > q->threshold];
        }
    for (size_t r = 0; r < n_rows; r++)
        raw[r * stride] += val[at[r]];
}

void gb_model_add_tree_raw(const km_gbdt_t *m, size_t t, const float *x, size_t n, double *raw,
                           size_t stride)
{
    for (size_t r0 = 0; r0 < n; r0 += PRED_BLOCK) {
        size_t nr = n - r0 < PRED_BLOCK ? n - r0 : PRED_BLOCK;
        tree_block(m, t, x + r0 * m->n_features, nr, raw + r0 * stride, stride);
    }
}

/* One row through every tree, ROW_GROUP trees in lockstep: a lone row
 * walked one tree at a time is one long chain of dependent loads, while a
 * group's walks are independent and overlap.  Leaf values are added in tree
 * order, as tree_block adds them, so the sums are the same to the bit. */
#define ROW_GROUP 16

static void row_trees(const km_gbdt_t *m, const float *x, double *raw)
{
    const size_t K = m->per_round;
    for (size_t t0 = 0; t0 < m->n_trees; t0 += ROW_GROUP) {
        size_t ng = m->n_trees - t0 < ROW_GROUP ? m->n_trees - t0 : ROW_GROUP;
        const gb_node_t *base[ROW_GROUP];
        int32_t at[ROW_GROUP] = {0};
        uint32_t steps = 0;
        for (size_t g = 0; g < ng; g++) {
            base[g] = m->nodes + m->tree_start[t0 + g];
            if (m->tree_depth[t0 + g] > steps)
                steps = m->tree_depth[t0 + g];
        }
        for (uint32_t s = 0; s < steps; s++)
            for (size_t g = 0; g < ng; g++) {
                const gb_node_t *q = base[g] + at[g];
                at[g] = q->child[x[q->feature] > q->threshold];
            }
        for (size_t g = 0; g < ng; g++)
            raw[(t0 + g) % K] += m->value[m->tree_start[t0 + g] + (size_t)at[g]];
    }
}

typedef struct {
    const km_gbdt_t *m;
    const float     *x;
    size_t           n;
    float           *scores;
    int32_t         *pred;
} pred_job_t;

/* Raw scores to outputs: sigmoid, softmax (max subtracted) or the value. */
static void finish_row(const km_gbdt_t *m, const double *raw, float *score, int32_t *pred)
{
    int32_t best = 0;
    if (m->n_classes == 0) {
        score[0] = (float)raw[0];
    } else if (m->n_classes == 2) {
        double p1 = 1.0 / (1.0 + exp(-raw[0]));
        score[0] = (float)(1.0 - p1);
        score[1] = (float)p1;
        best = raw[0] > 0;
    } else {
        double mx = raw[0], sum = 0;
        for (size_t k = 1; k < m->per_round; k++)
            if (raw[k] > mx) {
                mx = raw[k];
                best = (int32_t)k;
            }
        for (size_t k = 0; k < m->per_round; k++)
            sum += exp(raw[k] - mx);
        for (size_t k = 0; k < m->per_round; k++)
            score[k] = (float)(exp(raw[k] - mx) / sum);
    }
    if (pred)
        *pred = best;
}

static void pred_chunk(void *ctx, size_t lo, size_t hi)
{
    pred_job_t *j = ctx;
    const km_gbdt_t *m = j->m;
    const size_t K = m->per_round, n_out = km_gbdt_n_outputs(m);
    double raw[PRED_BLOCK * GB_MAX_CLASSES];
    for (size_t b = lo; b < hi; b++) {
        size_t r0 = b * PRED_BLOCK;
        size_t nr = j->n - r0 < PRED_BLOCK ? j->n - r0 : PRED_BLOCK;
        for (size_t r = 0; r < nr; r++)
            for (size_t k = 0; k < K; k++)
                raw[r * K + k] = m->init[k];
        const float *xb = j->x + r0 * m->n_features;
        if (nr <= 2)    /* a window at the edge: one row */
            for (size_t r = 0; r < nr; r++)
                row_trees(m, xb + r * m->n_features, raw + r * K);
        else
            for (size_t t = 0; t < m->n_trees; t++)
                tree_block(m, t, xb, nr, raw + t % K, K);
        for (size_t r = 0; r < nr; r++)
            finish_row(m, raw + r * K, j->scores + (r0 + r) * n_out,
                       j->pred ? j->pred + r0 + r : NULL);
    }
}

int km_gbdt_predict(const km_gbdt_t *m, const float *x, size_t n, float *scores, int32_t *pred,
                    kiln_err_t *err)
{
    if (!m || !x || !scores)
        return kiln_err_set(err, KILN_EINVAL, "gbdt predict: NULL model, x or scores");
    const size_t d = m->n_features;
    for (size_t i = 0; i < n; i++) {
        int bad = 0;
        for (size_t f = 0; f < d; f++)
            bad |= !isfinite(x[i * d + f]);
        if (bad)
            for (size_t f = 0; f < d; f++)
                if (!isfinite(x[i * d + f]))
                    return kiln_err_at(err, KILN_ENONFINITE, "x",
                                       "gbdt predict: x row %zu column %zu is %g", i, f,
                                       (double)x[i * d + f]);
    }
    pred_job_t job = {m, x, n, scores, pred};
    size_t n_blocks = (n + PRED_BLOCK - 1) / PRED_BLOCK;
    gb_par_for(n >= 8192 ? m->n_threads : 1, n_blocks, pred_chunk, &job);
    return 0;
}

/* ---- bytes: "KGBD", version, d, n_classes, per_round, n_trees, init[],
 * then per tree n_nodes and (feature, threshold, child0, child1, value) */

int km_gbdt_save(const km_gbdt_t *m, km_buf_t *b, kiln_err_t *err)
{
    km_buf_u32(b, GB_MAGIC);
    km_buf_u32(b, GB_VERSION);
    km_buf_u64(b, m->n_features);
    km_buf_u32(b, (uint32_t)m->n_classes);
    km_buf_u32(b, (uint32_t)m->per_round);
    km_buf_u64(b, m->n_trees);
    km_buf_f64s(b, m->init, m->per_round);
    for (size_t t = 0; t < m->n_trees; t++) {
        size_t s = m->tree_start[t], e = m->tree_start[t + 1];
        km_buf_u32(b, (uint32_t)(e - s));
        for (size_t i = s; i < e; i++) {
            km_buf_u32(b, (uint32_t)m->nodes[i].feature);
            km_buf_f32s(b, &m->nodes[i].threshold, 1);
            km_buf_u32(b, (uint32_t)m->nodes[i].child[0]);
            km_buf_u32(b, (uint32_t)m->nodes[i].child[1]);
            km_buf_f64s(b, &m->value[i], 1);
        }
    }
    if (b->oom)
        return kiln_err_set(err, KILN_ENOMEM, "gbdt save: no memory for the model bytes");
    return 0;
}

#define NODE_BYTES 24u

static int bad(kiln_err_t *err, const char *what)
{
    return kiln_err_at(err, KILN_EFORMAT, "gbdt model", "gbdt load: %s", what);
}

int km_gbdt_load(const void *bytes, size_t len, km_gbdt_t **out, kiln_err_t *err)
{
    km_rd_t r = {bytes, len, 0};
    uint32_t magic, version, n_classes, per_round;
    uint64_t d, n_trees;
    km_gbdt_t *m = NULL;
    gb_node_t *nodes = NULL;
    double *value = NULL;
    int rc;
    *out = NULL;
    if (!bytes || km_rd_u32(&r, &magic) < 0 || magic != GB_MAGIC)
        return bad(err, "not a gbdt model (magic)");
    if (km_rd_u32(&r, &version) < 0 || version != GB_VERSION)
        return bad(err, "unknown version");
    if (km_rd_u64(&r, &d) < 0 || km_rd_u32(&r, &n_classes) < 0 || km_rd_u32(&r, &per_round) < 0 ||
        km_rd_u64(&r, &n_trees) < 0)
        return bad(err, "truncated header");
    if (d == 0 || d > (1u << 24))
        return bad(err, "feature count out of range");
    if (n_classes == 1 || n_classes > GB_MAX_CLASSES ||
        per_round != (n_classes > 2 ? n_classes : 1u))
        return bad(err, "class count out of range");
    if (n_trees % per_round || n_trees > (len - r.off) / (4 + NODE_BYTES))
        return bad(err, "tree count does not fit the bytes");
    if ((rc = gb_model_new((size_t)d, (int)n_classes, 2, &m, err)) < 0)
        return rc;
    if (km_rd_f64s(&r, m->init, per_round) < 0) {
        rc = bad(err, "truncated initial scores");
        goto out;
    }
    for (uint32_t k = 0; k < per_round; k++)
        if (!isfinite(m->init[k])) {
            rc = bad(err, "non-finite initial score");
            goto out;
        }
    for (uint64_t t = 0; t < n_trees; t++) {
        uint32_t nn;
        if (km_rd_u32(&r, &nn) < 0 || nn == 0 || nn > (len - r.off) / NODE_BYTES) {
            rc = bad(err, "node count does not fit the bytes");
            goto out;
        }
        nodes = kiln_malloc(nn * sizeof *nodes);
        value = kiln_malloc(nn * sizeof *value);
        if (!nodes || !value) {
            rc = kiln_err_set(err, KILN_ENOMEM, "gbdt load: no memory for tree %llu",
                              (unsigned long long)t);
            goto out;
        }
        for (uint32_t i = 0; i < nn; i++) {
            uint32_t f, c0, c1;
            float thr;
            km_rd_u32(&r, &f);
            km_rd_f32s(&r, &thr, 1);
            km_rd_u32(&r, &c0);
            km_rd_u32(&r, &c1);
            km_rd_f64s(&r, &value[i], 1);
            int leaf = c0 == i && c1 == i;
            if (!isfinite(value[i]) ||
                (!leaf && (f >= d || !isfinite(thr) || c0 <= i || c1 <= i || c0 >= nn ||
                           c1 >= nn || c0 == c1))) {
                rc = bad(err, "malformed tree node");
                goto out;
            }
            /* A leaf's walk must stay put whatever x holds. */
            nodes[i] = leaf ? (gb_node_t){0, INFINITY, {(int32_t)i, (int32_t)i}}
                            : (gb_node_t){(int32_t)f, thr, {(int32_t)c0, (int32_t)c1}};
            if (!leaf)
                value[i] = 0;
        }
        if ((rc = gb_model_add_tree(m, nodes, value, nn, err)) < 0)
            goto out;
        kiln_free(nodes);
        kiln_free(value);
        nodes = NULL;
        value = NULL;
    }
    if (r.off != len) {
        rc = bad(err, "trailing bytes after the last tree");
        goto out;
    }
    *out = m;
    m = NULL;
    rc = 0;
out:
    kiln_free(nodes);
    kiln_free(value);
    km_gbdt_free(&m);
    return rc;
}
