/* test_gbdt_export.c - jobs/model_gbdt_export: the LightGBM text of small
 * binary and 3-class gbdt models trained on features with large offsets (so
 * the scaler matters).  Structure: header lines, one "Tree=" block per kiln
 * tree with tree_sizes its exact length, num_leaves kiln's leaf count.
 * Semantics, read back by a walker written here: on the raw rows, and on
 * rows placed exactly on and just past every exported threshold, the text's
 * raw score equals kiln's (init + trees on the scaled row) bit for bit; each
 * threshold r is the last float whose z goes left.  LightGBM itself reads
 * the text in tests/system/gbdt_export_lightgbm.sh.  Also: a model without
 * trees, a non-gbdt model and a non-tree refused, files, and every
 * allocation failure. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include <jansson.h>

#include "oracle.h"
#include "core/kiln_alloc.h"
#include "kernels/gbdt.h"
#include "kernels/cpu/gbdt_impl.h"
#include "kernels/scaler.h"
#include "jobs/model_gbdt_export.h"
#include "jobs/modelfile.h"

#define D 6
#define N 600

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

/* Features around 100 * f with spread 10 (f + 1): z is far from x. */
static void make_data(int n_classes, float *x, int32_t *y)
{
    for (size_t i = 0; i < N; i++) {
        double s = 0;
        for (int f = 0; f < D; f++) {
            double u = oracle_uniform01(&rng_state) - 0.5;
            x[i * D + f] = (float)(100.0 * f + 10.0 * (f + 1) * u);
            if (f < 3)
                s += u * (f == 1 ? -1 : 1);
        }
        s += 0.2 * (oracle_uniform01(&rng_state) - 0.5);
        y[i] = n_classes == 2 ? s > 0 : s < -0.25 ? 0 : s < 0.25 ? 1 : 2;
    }
}

/* A .kmodel in memory: scaler on x, gbdt on z, through the file format. */
static void make_model(int n_classes, jb_modelfile_t *mf, float **x_out)
{
    float *x = malloc(N * D * sizeof *x), *z = malloc(N * D * sizeof *z);
    int32_t *y = malloc(N * sizeof *y);
    make_data(n_classes, x, y);
    kiln_err_t err;
    km_scaler_t *sc = NULL;
    km_data_t raw = {x, N, D, y, NULL, n_classes};
    assert_int_equal(km_scaler_fit(&raw, NULL, &sc, &err), 0);
    assert_int_equal(km_scaler_transform(sc, x, N, D, z, &err), 0);
    km_gbdt_params_t p = km_gbdt_defaults();
    p.n_rounds = 12;
    p.max_leaves = 7;
    p.max_bins = 31;
    p.min_data_in_leaf = 10;
    p.n_threads = 1;
    km_data_t train = {z, N, D, y, NULL, n_classes};
    km_gbdt_t *m = NULL;
    assert_int_equal(km_gbdt_fit(&train, NULL, &p, NULL, &m, &err), 0);
    json_t *h = json_pack("{s:s, s:[s,s,s,s,s,s], s:{s:f}}", "kind", "gbdt", "feature_names",
                          "f0 spaced", "f1", "f2", "f3", "f4", "f5", "params", "learning_rate",
                          p.learning_rate);
    km_buf_t b = {0};
    assert_int_equal(jb_modelfile_write(NULL, h, sc, jb_model_kind_find("gbdt"), m, &b, &err), 0);
    assert_int_equal(jb_modelfile_parse(b.p, b.len, mf, &err), 0);
    km_buf_free(&b);
    json_decref(h);
    km_gbdt_free(&m);
    km_scaler_free(&sc);
    free(z);
    free(y);
    *x_out = x;
}

/* ---- reading the text back ------------------------------------------------ */

typedef struct {
    int     n_leaves;
    int     split_feature[64], left[64], right[64];
    double  threshold[64], leaf_value[65];
} ltree_t;

typedef struct {
    char   *text;
    int     num_class, per_iter;
    size_t  n_trees;
    ltree_t trees[256];
} lmodel_t;

/* The value of "key=" on the line that starts with it, at or after from. */
static const char *field(const char *from, const char *end, const char *key)
{
    size_t k = strlen(key);
    for (const char *p = from; p && p < end; p = strchr(p, '\n')) {
        if (*p == '\n')
            p++;
        if (!strncmp(p, key, k) && p[k] == '=')
            return p + k + 1;
    }
    fail_msg("no %s= line", key);
    return NULL;
}

static int ints(const char *s, int *out, int max)
{
    int n = 0;
    while (*s && *s != '\n') {
        char *e;
        long v = strtol(s, &e, 10);
        assert_true(e != s && n < max);
        out[n++] = (int)v;
        s = e;
        while (*s == ' ')
            s++;
    }
    return n;
}

static int doubles(const char *s, double *out, int max)
{
    int n = 0;
    while (*s && *s != '\n') {
        char *e;
        double v = strtod(s, &e);
        assert_true(e != s && n < max);
        out[n++] = v;
        s = e;
        while (*s == ' ')
            s++;
    }
    return n;
}

/* Parses the header and every tree; asserts tree_sizes are the blocks' lengths. */
static void parse_text(const km_buf_t *b, lmodel_t *lm)
{
    memset(lm, 0, sizeof *lm);
    lm->text = malloc(b->len + 1);
    memcpy(lm->text, b->p, b->len);
    lm->text[b->len] = '\0';
    const char *t = lm->text, *end = t + b->len;
    assert_memory_equal(t, "tree\nversion=v4\n", 16);
    lm->num_class = atoi(field(t, end, "num_class"));
    lm->per_iter = atoi(field(t, end, "num_tree_per_iteration"));
    assert_int_equal(atoi(field(t, end, "max_feature_idx")), D - 1);
    assert_memory_equal(field(t, end, "feature_names"), "f0_spaced f1 f2", 15);
    int sizes[256];
    int n_sizes = ints(field(t, end, "tree_sizes"), sizes, 256);
    const char *blk = strstr(t, "\n\nTree=0\n");
    assert_non_null(blk);
    blk += 2;
    for (int i = 0; i < n_sizes; i++) {
        char head[32];
        snprintf(head, sizeof head, "Tree=%d\n", i);
        assert_memory_equal(blk, head, strlen(head));
        const char *next = blk + sizes[i];
        assert_true(next < end);
        assert_true(!strncmp(next, "Tree=", 5) || !strncmp(next, "end of trees\n", 13));
        ltree_t *tr = &lm->trees[i];
        tr->n_leaves = atoi(field(blk, next, "num_leaves"));
        assert_int_equal(atoi(field(blk, next, "num_cat")), 0);
        int n_inner = tr->n_leaves - 1, dt[64];
        assert_int_equal(ints(field(blk, next, "split_feature"), tr->split_feature, 64), n_inner);
        assert_int_equal(doubles(field(blk, next, "threshold"), tr->threshold, 64), n_inner);
        assert_int_equal(ints(field(blk, next, "decision_type"), dt, 64), n_inner);
        assert_int_equal(ints(field(blk, next, "left_child"), tr->left, 64), n_inner);
        assert_int_equal(ints(field(blk, next, "right_child"), tr->right, 64), n_inner);
        assert_int_equal(doubles(field(blk, next, "leaf_value"), tr->leaf_value, 65),
                         tr->n_leaves);
        for (int k = 0; k < n_inner; k++)
            assert_int_equal(dt[k], 2);     /* numerical, missing type None */
        assert_memory_equal(next - 3, "\n\n\n", 3);
        blk = next;
    }
    assert_memory_equal(blk, "end of trees\n", 13);
    lm->n_trees = (size_t)n_sizes;
}

/* LightGBM's walk: x <= threshold goes left; summed per class in tree order. */
static void text_raw(const lmodel_t *lm, const float *x, double *raw)
{
    for (int k = 0; k < lm->per_iter; k++)
        raw[k] = 0.0;
    for (size_t t = 0; t < lm->n_trees; t++) {
        const ltree_t *tr = &lm->trees[t];
        int node = 0, leaf = 0;
        if (tr->n_leaves > 1) {
            while (node >= 0)
                node = (double)x[tr->split_feature[node]] <= tr->threshold[node] ? tr->left[node]
                                                                                 : tr->right[node];
            leaf = ~node;
        }
        raw[t % (size_t)lm->per_iter] += tr->leaf_value[leaf];
    }
}

/* kiln's raw score of raw row x: the scaler, then init and every tree. */
static void kiln_raw(const jb_modelfile_t *mf, const float *x, double *raw)
{
    const km_gbdt_t *m = mf->model;
    float z[D];
    assert_int_equal(km_scaler_transform(mf->scaler, x, 1, D, z, NULL), 0);
    for (size_t k = 0; k < m->per_round; k++)
        raw[k] = m->init[k];
    for (size_t t = 0; t < m->n_trees; t++)
        gb_model_add_tree_raw(m, t, z, 1, raw + t % m->per_round, m->per_round);
}

static void assert_same_raw(const jb_modelfile_t *mf, const lmodel_t *lm, const float *x)
{
    double a[8], b[8];
    kiln_raw(mf, x, a);
    text_raw(lm, x, b);
    for (int k = 0; k < lm->per_iter; k++)
        if (a[k] != b[k])
            fail_msg("raw score %d: kiln %.17g, text %.17g", k, a[k], b[k]);
}

static void check_model(int n_classes)
{
    jb_modelfile_t mf;
    float *x;
    make_model(n_classes, &mf, &x);
    const km_gbdt_t *m = mf.model;
    km_buf_t b = {0};
    jb_gbdt_export_info_t info;
    kiln_err_t err;
    assert_int_equal(jb_gbdt_export_lightgbm(&mf, &b, &info, &err), 0);
    lmodel_t *lm = malloc(sizeof *lm);
    parse_text(&b, lm);
    const int K = n_classes > 2 ? n_classes : 1;
    assert_int_equal(lm->num_class, K);
    assert_int_equal(lm->per_iter, K);
    assert_non_null(strstr(lm->text, n_classes == 2 ? "\nobjective=binary sigmoid:1\n"
                                                    : "\nobjective=multiclass num_class:3\n"));
    assert_int_equal(lm->n_trees, km_gbdt_n_trees(m));
    assert_int_equal(info.n_trees, km_gbdt_n_trees(m));
    assert_int_equal(info.n_bytes, b.len);
    assert_true(lm->n_trees == 12u * (size_t)K);

    size_t split_seen = 0;
    for (size_t t = 0; t < lm->n_trees; t++) {
        const gb_node_t *nd = m->nodes + m->tree_start[t];
        size_t nn = m->tree_start[t + 1] - m->tree_start[t], leaves = 0, inner = 0;
        for (size_t i = 0; i < nn; i++)
            leaves += nd[i].child[0] == (int32_t)i;
        assert_int_equal(lm->trees[t].n_leaves, (int)leaves);
        assert_true(leaves >= 2);      /* these data always split */
        /* inner nodes in kiln's index order are the text's; each threshold
         * r: z(r) <= t < z(next float up) */
        for (size_t i = 0; i < nn; i++) {
            if (nd[i].child[0] == (int32_t)i)
                continue;
            const ltree_t *tr = &lm->trees[t];
            int f = tr->split_feature[inner];
            double r = tr->threshold[inner];
            assert_int_equal(f, nd[i].feature);
            assert_true(r == (double)(float)r);
            float row[D] = {0}, zr[D];
            row[f] = (float)r;
            km_scaler_transform(mf.scaler, row, 1, D, zr, NULL);
            assert_true(zr[f] <= nd[i].threshold);
            row[f] = nextafterf((float)r, INFINITY);
            km_scaler_transform(mf.scaler, row, 1, D, zr, NULL);
            assert_true(zr[f] > nd[i].threshold);
            /* rows on the threshold and one float past it, whole model */
            float on[D], past[D];
            memcpy(on, x + (split_seen % N) * D, sizeof on);
            on[f] = (float)r;
            memcpy(past, on, sizeof past);
            past[f] = nextafterf((float)r, INFINITY);
            assert_same_raw(&mf, lm, on);
            assert_same_raw(&mf, lm, past);
            inner++;
            split_seen++;
        }
    }
    assert_true(split_seen > 12);
    for (size_t i = 0; i < N; i++)
        assert_same_raw(&mf, lm, x + i * D);

    free(lm->text);
    free(lm);
    km_buf_free(&b);
    jb_modelfile_free(&mf);
    free(x);
}

static void test_binary(void **state)
{
    (void)state;
    check_model(2);
}

static void test_multiclass(void **state)
{
    (void)state;
    check_model(3);
}

/* A model with no trees still scores its initial values: one single-leaf
 * tree per class, as LightGBM writes such a tree. */
static void test_no_trees(void **state)
{
    (void)state;
    jb_modelfile_t mf;
    float *x;
    make_model(3, &mf, &x);
    km_gbdt_t *m = mf.model;
    gb_model_truncate(m, 0);
    km_buf_t b = {0};
    kiln_err_t err;
    assert_int_equal(jb_gbdt_export_lightgbm(&mf, &b, NULL, &err), 0);
    lmodel_t *lm = malloc(sizeof *lm);
    parse_text(&b, lm);
    assert_int_equal(lm->n_trees, 3);
    for (int k = 0; k < 3; k++) {
        assert_int_equal(lm->trees[k].n_leaves, 1);
        assert_true(lm->trees[k].leaf_value[0] == m->init[k]);
    }
    assert_non_null(strstr(lm->text, "num_leaves=1\nnum_cat=0\nsplit_feature=\nsplit_gain=\n"));
    assert_same_raw(&mf, lm, x);
    free(lm->text);
    free(lm);
    km_buf_free(&b);
    jb_modelfile_free(&mf);
    free(x);
}

/* A logreg model is refused with its kind named; so is a "tree" whose node
 * has two parents (km_gbdt_load does not look for that). */
static void test_refused(void **state)
{
    (void)state;
    float x[40 * 2];
    int32_t y[40];
    for (int i = 0; i < 40; i++) {
        x[2 * i] = (float)i;
        x[2 * i + 1] = (float)(i % 7);
        y[i] = i >= 20;
    }
    const jb_model_kind_t *lr = jb_model_kind_find("logreg");
    json_t *spec = json_pack("{s:s}", "kind", "logreg");
    void *params = NULL, *model = NULL;
    kiln_err_t err;
    km_data_t d = {x, 40, 2, y, NULL, 2};
    assert_int_equal(lr->parse(spec, &params, &err), 0);
    assert_int_equal(lr->fit(params, &d, NULL, NULL, 1, 1, &model, &err), 0);
    jb_modelfile_t mf = {.kind = lr, .model = model, .n_features = 2};
    km_buf_t b = {0};
    assert_int_equal(jb_gbdt_export_lightgbm(&mf, &b, NULL, &err), KILN_EUNSUPPORTED);
    assert_non_null(strstr(err.msg, "a logreg model"));
    assert_non_null(strstr(err.msg, "only gbdt"));
    assert_int_equal(b.len, 0);
    lr->free_model(model);
    lr->free_params(params);
    json_decref(spec);

    jb_modelfile_t gm;
    float *gx;
    make_model(2, &gm, &gx);
    km_gbdt_t *m = gm.model;
    gb_model_truncate(m, 0);
    const gb_node_t dag[4] = {{0, 0.f, {1, 2}}, {1, 0.f, {2, 3}},
                              {0, INFINITY, {2, 2}}, {0, INFINITY, {3, 3}}};
    const double value[4] = {0, 0, 0.5, -0.5};
    assert_int_equal(gb_model_add_tree(m, dag, value, 4, &err), 0);
    assert_int_equal(jb_gbdt_export_lightgbm(&gm, &b, NULL, &err), KILN_EFORMAT);
    assert_non_null(strstr(err.msg, "tree 0 is not a tree"));
    km_buf_free(&b);
    jb_modelfile_free(&gm);
    free(gx);
}

/* The file variant: the same bytes; errors name the model file. */
static void test_files(void **state)
{
    (void)state;
    jb_modelfile_t mf;
    float *x;
    make_model(2, &mf, &x);
    char model_path[512], out_path[512];
    oracle_tmp_path(model_path, ".kmodel");
    oracle_tmp_path(out_path, ".txt");
    km_buf_t fb = {0}, mem = {0};
    kiln_err_t err;
    assert_int_equal(jb_modelfile_write(model_path, mf.header, mf.scaler, mf.kind, mf.model, &fb,
                                        &err), 0);
    jb_gbdt_export_info_t info;
    assert_int_equal(jb_gbdt_export_lightgbm_file(model_path, out_path, &info, &err), 0);
    assert_int_equal(jb_gbdt_export_lightgbm(&mf, &mem, NULL, &err), 0);
    FILE *f = fopen(out_path, "rb");
    assert_non_null(f);
    char *got = malloc(mem.len + 1);
    assert_int_equal(fread(got, 1, mem.len + 1, f), mem.len);
    fclose(f);
    assert_memory_equal(got, mem.p, mem.len);
    assert_int_equal(info.n_bytes, mem.len);
    free(got);
    unlink(out_path);

    char missing[600];
    snprintf(missing, sizeof missing, "%s.absent", model_path);
    assert_int_equal(jb_gbdt_export_lightgbm_file(missing, out_path, NULL, &err), KILN_ENOTFOUND);
    assert_non_null(strstr(err.msg, missing));
    assert_false(oracle_file_exists(out_path));
    unlink(model_path);
    km_buf_free(&fb);
    km_buf_free(&mem);
    jb_modelfile_free(&mf);
    free(x);
}

/* Every allocation of an export failing in turn: KILN_ENOMEM, no leak (ASan). */
static void test_alloc_failures(void **state)
{
    (void)state;
    jb_modelfile_t mf;
    float *x;
    make_model(3, &mf, &x);
    int ok = 0;
    long k;
    for (k = 1; k < 200 && !ok; k++) {
        km_buf_t b = {0};
        kiln_err_t err;
        kiln_alloc_fail_after(k);
        int rc = jb_gbdt_export_lightgbm(&mf, &b, NULL, &err);
        kiln_alloc_fail_after(0);
        if (rc == 0)
            ok = 1;
        else
            assert_int_equal(rc, KILN_ENOMEM);
        km_buf_free(&b);
    }
    assert_true(ok);
    assert_true(k > 5);
    jb_modelfile_free(&mf);
    free(x);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_binary),
        cmocka_unit_test(test_multiclass),
        cmocka_unit_test(test_no_trees),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_files),
        cmocka_unit_test(test_alloc_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
