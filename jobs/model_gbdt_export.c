/* model_gbdt_export.c - a gbdt .kmodel as LightGBM model text
 * (model_gbdt_export.h says what is written and why it scores the same).
 * The trees are read from the model's own saved bytes (kernels/cpu/
 * gbdt_model.c, "KGBD" version 1), the versioned format, rather than from
 * the kernel's private structs. */
#include "model_gbdt_export.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../core/kiln_alloc.h"
#include "../kernels/scaler.h"

#define GBDT_MAGIC   0x4442474bu     /* "KGBD", kernels/cpu/gbdt_model.c */
#define GBDT_VERSION 1u
#define NODE_BYTES   24u             /* feature, threshold, child0, child1, value */

/* printf into b; numbers and short keys only (names go through km_buf_put). */
static void putf(km_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void putf(km_buf_t *b, const char *fmt, ...)
{
    char tmp[128];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof tmp) {
        b->oom = 1;     /* cannot happen for the formats used here */
        return;
    }
    km_buf_put(b, tmp, (size_t)n);
}

static void puts_b(km_buf_t *b, const char *s) { km_buf_put(b, s, strlen(s)); }

/* ---- the scaler folded into thresholds ---------------------------------- */

typedef struct {
    const km_scaler_t *scaler;
    size_t             d;
    float             *row, *z;     /* [d] each: one raw row, its z */
} zmap_t;

/* z of x in feature f, through the scaler's own transform. */
static float z_of(zmap_t *zm, size_t f, float x)
{
    zm->row[f] = x;
    km_scaler_transform(zm->scaler, zm->row, 1, zm->d, zm->z, NULL);
    zm->row[f] = 0;
    return zm->z[f];
}

/* Floats in order as integers: -FLT_MAX..FLT_MAX map to consecutive keys
 * (both zeros to 0), so bisection over keys is bisection over floats. */
static int64_t f_key(float x)
{
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    return (u & 0x80000000u) ? -(int64_t)(u & 0x7fffffffu) : (int64_t)u;
}

static float f_of_key(int64_t k)
{
    uint32_t u = k < 0 ? 0x80000000u | (uint32_t)(-k) : (uint32_t)k;
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}

/* The raw-feature threshold r for kiln's split z <= t: the largest finite
 * float with z(r) <= t (z is monotone non-decreasing: a subtraction and a
 * division by a positive scale in double, then a rounding).  Every finite
 * float x has x <= r exactly when z(x) <= t.  -DBL_MAX when no float goes
 * left. */
static double raw_threshold(zmap_t *zm, size_t f, float t)
{
    int64_t lo = f_key(-FLT_MAX), hi = f_key(FLT_MAX);
    if (!(z_of(zm, f, f_of_key(lo)) <= t))
        return -DBL_MAX;
    if (z_of(zm, f, f_of_key(hi)) <= t)
        return FLT_MAX;
    while (hi - lo > 1) {                   /* z(lo) <= t < z(hi) */
        int64_t mid = lo + (hi - lo) / 2;
        if (z_of(zm, f, f_of_key(mid)) <= t)
            lo = mid;
        else
            hi = mid;
    }
    return f_of_key(lo);
}

/* ---- one tree ------------------------------------------------------------ */

typedef struct {
    uint32_t feature, child[2];
    float    threshold;
    double   value;
    int32_t  index;          /* LightGBM's: internal node i, or ~leaf */
    int      reached;
} xnode_t;

static int bad_bytes(kiln_err_t *err, const char *what)
{
    return kiln_err_at(err, KILN_EFORMAT, "gbdt model", "gbdt export: %s", what);
}

/* Reads tree t's nodes from r into *nodes (new, caller frees) and checks
 * that they form a tree rooted at 0: children after their parent, each
 * node reached at most once.  *n_nodes set. */
static int read_tree(km_rd_t *r, size_t t, size_t d, xnode_t **nodes, uint32_t *n_nodes,
                     kiln_err_t *err)
{
    uint32_t nn;
    *nodes = NULL;
    if (km_rd_u32(r, &nn) < 0 || nn == 0 || nn > (r->len - r->off) / NODE_BYTES)
        return bad_bytes(err, "node count does not fit the bytes");
    xnode_t *nd = kiln_calloc(nn, sizeof *nd);
    if (!nd)
        return kiln_err_set(err, KILN_ENOMEM, "gbdt export: no memory for tree %zu", t);
    for (uint32_t i = 0; i < nn; i++) {
        km_rd_u32(r, &nd[i].feature);
        km_rd_f32s(r, &nd[i].threshold, 1);
        km_rd_u32(r, &nd[i].child[0]);
        km_rd_u32(r, &nd[i].child[1]);
        km_rd_f64s(r, &nd[i].value, 1);
    }
    nd[0].reached = 1;
    for (uint32_t i = 0; i < nn; i++) {
        int leaf = nd[i].child[0] == i && nd[i].child[1] == i;
        if (leaf || !nd[i].reached)
            continue;
        if (nd[i].feature >= d || !isfinite(nd[i].threshold) || nd[i].child[0] == nd[i].child[1])
            goto malformed;
        for (int c = 0; c < 2; c++) {
            uint32_t k = nd[i].child[c];
            if (k <= i || k >= nn || nd[k].reached)
                goto malformed;
            nd[k].reached = 1;
        }
    }
    *nodes = nd;
    *n_nodes = nn;
    return 0;
malformed:
    kiln_free(nd);
    return kiln_err_at(err, KILN_EFORMAT, "gbdt model",
                       "gbdt export: tree %zu is not a tree (a node out of range or with two "
                       "parents)", t);
}

static int is_leaf(const xnode_t *nd, uint32_t i)
{
    return nd[i].child[0] == i && nd[i].child[1] == i;
}

/* Tree t as LightGBM's "Tree=t" block into b; bias is added to every leaf
 * (the class's initial score, for the first round).  split_count[f] counts
 * the splits on feature f.  *n_leaves set. */
static void tree_text(km_buf_t *b, size_t t, xnode_t *nd, uint32_t nn, double bias,
                      double shrinkage, zmap_t *zm, size_t *split_count, size_t *n_leaves)
{
    size_t n_inner = 0, n_leaf = 0;
    for (uint32_t i = 0; i < nn; i++)
        if (nd[i].reached)
            nd[i].index = is_leaf(nd, i) ? ~(int32_t)n_leaf++ : (int32_t)n_inner++;
    *n_leaves = n_leaf;
    putf(b, "Tree=%zu\nnum_leaves=%zu\nnum_cat=0\n", t, n_leaf);
    /* one line per field, over the inner nodes or the leaves in index order */
    static const char *const inner_fields[] = {"split_feature", "split_gain", "threshold",
                                               "decision_type", "left_child", "right_child"};
    for (int fi = 0; fi < 6; fi++) {
        putf(b, "%s=", inner_fields[fi]);
        const char *sep = "";
        for (uint32_t i = 0; i < nn; i++) {
            if (!nd[i].reached || is_leaf(nd, i))
                continue;
            puts_b(b, sep);
            sep = " ";
            switch (fi) {
            case 0: putf(b, "%u", nd[i].feature); split_count[nd[i].feature]++; break;
            case 1: puts_b(b, "0"); break;
            case 2: putf(b, "%.17g", raw_threshold(zm, nd[i].feature, nd[i].threshold)); break;
            case 3: puts_b(b, "2"); break;
            default: putf(b, "%d", (int)nd[nd[i].child[fi - 4]].index); break;
            }
        }
        puts_b(b, "\n");
    }
    puts_b(b, "leaf_value=");
    const char *sep = "";
    for (uint32_t i = 0; i < nn; i++)
        if (nd[i].reached && is_leaf(nd, i)) {
            /* kiln adds init first, then each tree: (init + v) is that sum's first step */
            putf(b, "%s%.17g", sep, bias + nd[i].value);
            sep = " ";
        }
    puts_b(b, "\n");
    /* Not kept by kiln; a single-leaf tree has none, as LightGBM writes it. */
    static const char *const zero_fields[] = {"leaf_weight", "leaf_count", "internal_value",
                                              "internal_weight", "internal_count"};
    for (int fi = 0; fi < 5; fi++) {
        putf(b, "%s=", zero_fields[fi]);
        size_t n = n_leaf == 1 ? 0 : fi < 2 ? n_leaf : n_inner;
        for (size_t k = 0; k < n; k++)
            puts_b(b, k ? " 0" : "0");
        puts_b(b, "\n");
    }
    putf(b, "is_linear=0\nshrinkage=%.17g\n\n\n", shrinkage);
}

/* ---- the header and the tail ---------------------------------------------- */

/* A feature name LightGBM can split back out of its space-separated line. */
static void put_name(km_buf_t *b, const json_t *names, size_t f)
{
    const char *s = json_string_value(json_array_get(names, f));
    if (!s || !*s || json_array_size(names) == 0) {
        putf(b, "Column_%zu", f);
        return;
    }
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        char o = (c <= ' ' || c == 0x7f || strchr("\"',:[]{}=", c)) ? '_' : (char)c;
        km_buf_put(b, &o, 1);
    }
}

static const char *objective_name(int n_classes)
{
    return n_classes == 0 ? "regression" : n_classes == 2 ? "binary" : "multiclass";
}

/* The training parameters LightGBM has names for, from the header's params. */
static void put_params(km_buf_t *b, const json_t *params, int n_classes, size_t rounds)
{
    static const char *const map[][2] = {
        {"learning_rate", "learning_rate"}, {"max_leaves", "num_leaves"},
        {"max_depth", "max_depth"},         {"min_data_in_leaf", "min_data_in_leaf"},
        {"lambda_l2", "lambda_l2"},         {"max_bins", "max_bin"},
        {"bagging_fraction", "bagging_fraction"}, {"feature_fraction", "feature_fraction"},
        {"early_stopping_rounds", "early_stopping_round"}};
    putf(b, "parameters:\n[boosting: gbdt]\n[objective: %s]\n[num_class: %d]\n"
            "[num_iterations: %zu]\n",
         objective_name(n_classes), n_classes > 2 ? n_classes : 1, rounds);
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++) {
        const json_t *v = json_object_get(params, map[i][0]);
        if (json_is_integer(v))
            putf(b, "[%s: %lld]\n", map[i][1], (long long)json_integer_value(v));
        else if (json_is_number(v))
            putf(b, "[%s: %.17g]\n", map[i][1], json_number_value(v));
    }
    const json_t *bag = json_object_get(params, "bagging_fraction");
    if (json_is_number(bag) && json_number_value(bag) < 1)
        puts_b(b, "[bagging_freq: 1]\n");     /* kiln redraws every round */
    puts_b(b, "\nend of parameters\n\npandas_categorical:null\n");
}

typedef struct {
    size_t count, feature;
} fcount_t;

static int by_count(const void *a, const void *b)
{
    const fcount_t *x = a, *y = b;
    if (x->count != y->count)
        return x->count < y->count ? 1 : -1;
    return x->feature < y->feature ? -1 : x->feature > y->feature;
}

/* ---- the export ----------------------------------------------------------- */

int jb_gbdt_export_lightgbm(const jb_modelfile_t *mf, km_buf_t *out, jb_gbdt_export_info_t *info,
                            kiln_err_t *err)
{
    km_buf_t bytes = {0}, trees = {0};
    double *init = NULL;
    size_t *tree_sizes = NULL, *split_count = NULL;
    xnode_t *nodes = NULL;
    fcount_t *order = NULL;
    zmap_t zm = {0};
    int rc;

    if (!mf || !mf->kind || !mf->model || !out)
        return kiln_err_set(err, KILN_EINVAL, "gbdt export: NULL model or output");
    if (strcmp(mf->kind->name, "gbdt") != 0)
        return kiln_err_set(err, KILN_EUNSUPPORTED,
                            "a %s model: only gbdt models export to LightGBM's format",
                            mf->kind->name);
    if ((rc = mf->kind->save(mf->model, &bytes, err)) < 0)
        goto out;

    km_rd_t r = {bytes.p, bytes.len, 0};
    uint32_t magic, version, n_classes, per_round;
    uint64_t d, n_trees;
    if (km_rd_u32(&r, &magic) < 0 || magic != GBDT_MAGIC || km_rd_u32(&r, &version) < 0 ||
        version != GBDT_VERSION) {
        rc = bad_bytes(err, "the gbdt's saved bytes are not version 1 (update the exporter)");
        goto out;
    }
    if (km_rd_u64(&r, &d) < 0 || km_rd_u32(&r, &n_classes) < 0 ||
        km_rd_u32(&r, &per_round) < 0 || km_rd_u64(&r, &n_trees) < 0 ||
        d != mf->n_features || n_classes == 1 || per_round != (n_classes > 2 ? n_classes : 1u) ||
        n_trees % per_round || n_trees > (r.len - r.off) / (4 + NODE_BYTES)) {
        rc = bad_bytes(err, "header does not match the model file");
        goto out;
    }
    init = kiln_malloc(per_round * sizeof *init);
    /* a model without trees still needs one (single-leaf) tree per class */
    const size_t n_out_trees = n_trees ? (size_t)n_trees : per_round;
    tree_sizes = kiln_calloc(n_out_trees, sizeof *tree_sizes);
    split_count = kiln_calloc((size_t)d, sizeof *split_count);
    order = kiln_calloc((size_t)d, sizeof *order);
    zm = (zmap_t){mf->scaler, (size_t)d, kiln_calloc((size_t)d, sizeof(float)),
                  kiln_calloc((size_t)d, sizeof(float))};
    if (!init || !tree_sizes || !split_count || !order || !zm.row || !zm.z) {
        rc = kiln_err_set(err, KILN_ENOMEM, "gbdt export: out of memory");
        goto out;
    }
    if (km_rd_f64s(&r, init, per_round) < 0) {
        rc = bad_bytes(err, "truncated initial scores");
        goto out;
    }
    const json_t *params = json_object_get(mf->header, "params");
    const json_t *lr = json_object_get(params, "learning_rate");
    const double shrinkage = json_is_number(lr) ? json_number_value(lr) : 1.0;
    size_t max_leaves = 1;
    for (size_t t = 0; t < n_out_trees; t++) {
        size_t start = trees.len, n_leaves = 1;
        double bias = t < per_round ? init[t] : 0.0;
        if (n_trees == 0) {
            xnode_t leaf = {.child = {0, 0}, .reached = 1};
            tree_text(&trees, t, &leaf, 1, bias, 1.0, &zm, split_count, &n_leaves);
        } else {
            uint32_t nn = 0;
            if ((rc = read_tree(&r, t, (size_t)d, &nodes, &nn, err)) < 0)
                goto out;
            tree_text(&trees, t, nodes, nn, bias, shrinkage, &zm, split_count, &n_leaves);
            kiln_free(nodes);
            nodes = NULL;
        }
        tree_sizes[t] = trees.len - start;
        if (n_leaves > max_leaves)
            max_leaves = n_leaves;
    }
    if (r.off != r.len) {
        rc = bad_bytes(err, "trailing bytes after the last tree");
        goto out;
    }

    const json_t *names = json_object_get(mf->header, "feature_names");
    if (json_array_size(names) != d)
        names = NULL;
    const int lgb_classes = n_classes > 2 ? (int)n_classes : 1;
    putf(out, "tree\nversion=v4\nnum_class=%d\nnum_tree_per_iteration=%d\nlabel_index=0\n"
              "max_feature_idx=%llu\nobjective=",
         lgb_classes, lgb_classes, (unsigned long long)(d - 1));
    if (n_classes == 0)
        puts_b(out, "regression\n");
    else if (n_classes == 2)
        puts_b(out, "binary sigmoid:1\n");
    else
        putf(out, "multiclass num_class:%u\n", n_classes);
    puts_b(out, "feature_names=");
    for (size_t f = 0; f < d; f++) {
        if (f)
            puts_b(out, " ");
        put_name(out, names, f);
    }
    puts_b(out, "\nfeature_infos=");
    for (size_t f = 0; f < d; f++)
        puts_b(out, f ? " none" : "none");
    puts_b(out, "\ntree_sizes=");
    for (size_t t = 0; t < n_out_trees; t++)
        putf(out, t ? " %zu" : "%zu", tree_sizes[t]);
    puts_b(out, "\n\n");
    km_buf_put(out, trees.p, trees.len);
    puts_b(out, "end of trees\n\nfeature_importances:\n");
    for (size_t f = 0; f < d; f++)
        order[f] = (fcount_t){split_count[f], f};
    qsort(order, (size_t)d, sizeof *order, by_count);
    for (size_t f = 0; f < d && order[f].count; f++) {
        put_name(out, names, order[f].feature);
        putf(out, "=%zu\n", order[f].count);
    }
    puts_b(out, "\n");
    put_params(out, params, (int)n_classes, n_out_trees / per_round);
    if (out->oom || trees.oom) {
        rc = kiln_err_set(err, KILN_ENOMEM, "gbdt export: out of memory for the model text");
        goto out;
    }
    if (info)
        *info = (jb_gbdt_export_info_t){(size_t)d, (int)n_classes, n_out_trees, max_leaves,
                                        out->len};
    rc = 0;
out:
    kiln_free(nodes);
    kiln_free(zm.z);
    kiln_free(zm.row);
    kiln_free(order);
    kiln_free(split_count);
    kiln_free(tree_sizes);
    kiln_free(init);
    km_buf_free(&trees);
    km_buf_free(&bytes);
    return rc;
}

int jb_gbdt_export_lightgbm_file(const char *model_path, const char *out_path,
                                 jb_gbdt_export_info_t *info, kiln_err_t *err)
{
    jb_modelfile_t mf;
    km_buf_t text = {0};
    char tmp[4200];
    int rc = jb_modelfile_read(model_path, &mf, err);
    if (rc < 0)
        return rc;
    if ((rc = jb_gbdt_export_lightgbm(&mf, &text, info, err)) < 0) {
        char msg[sizeof err->msg];
        if (err) {
            memcpy(msg, err->msg, sizeof msg);
            snprintf(err->msg, sizeof err->msg, "%s: %.*s", model_path,
                     (int)(sizeof err->msg - strlen(model_path) - 3), msg);
        }
        goto out;
    }
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%d", out_path, (int)getpid()) >= (int)sizeof tmp) {
        rc = kiln_err_set(err, KILN_EINVAL, "%s: path too long", out_path);
        goto out;
    }
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        rc = kiln_err_set(err, KILN_EIO, "%s: %s", tmp, strerror(errno));
        goto out;
    }
    int bad = fwrite(text.p, 1, text.len, f) != text.len;
    bad |= fflush(f) != 0 || fsync(fileno(f)) != 0;
    bad |= fclose(f) != 0;
    if (bad || rename(tmp, out_path) < 0) {
        int e = errno;
        unlink(tmp);
        rc = kiln_err_set(err, KILN_EIO, "%s: %s", out_path, strerror(e));
    }
out:
    km_buf_free(&text);
    jb_modelfile_free(&mf);
    return rc;
}
