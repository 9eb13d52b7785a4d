/* gbdt_impl.h - what the gbdt files share inside kernels/cpu (not public):
 * bin edges and codes (gbdt_bins.c), the model's flattened trees
 * (gbdt_model.c), the tree grower (gbdt_tree.c) and a fork-join helper
 * (gbdt_par.c).  gbdt.c drives the boosting rounds. */
#ifndef KILN_KERNELS_CPU_GBDT_IMPL_H
#define KILN_KERNELS_CPU_GBDT_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "../gbdt.h"

#define GB_MAX_BINS     255
#define GB_EDGE_STRIDE  256     /* edges per feature, +inf padded */
#define GB_MAX_THREADS  64
#define GB_MAX_CLASSES  256

/* ---- fork-join: fn(ctx, lo, hi) on contiguous chunks of [0, n) ---------- */

/* Splits [0, n) into n_threads chunks in order and runs them at once (the
 * caller's thread takes the first).  Chunks never overlap, so a fn whose
 * every output depends only on its own index gives the same bytes for any
 * n_threads.  Falls back to one thread if a thread cannot start. */
void gb_par_for(int n_threads, size_t n, void (*fn)(void *ctx, size_t lo, size_t hi),
                void *ctx);

/* ---- bins ---------------------------------------------------------------- */

typedef struct {
    size_t    d;
    uint16_t *n_bins;       /* [d]: 1..255 */
    float    *edges;        /* [d * 256]: bin b holds x <= edges[b], +inf padded */
    size_t   *hist_off;     /* [d]: first histogram bin of feature f */
    size_t    total_bins;
} gb_bins_t;

/* Edges from a sample of train's rows (all of them when few), merged over
 * ranks through reduce; rank_n[r] = rows on rank r (from the first sum). */
int gb_bins_build(const km_data_t *train, const km_gbdt_params_t *p, const km_reduce_t *reduce,
                  const double *rank_n, gb_bins_t *out, kiln_err_t *err);
/* Bin codes, feature-major: codes[f * n + i].  *codes is the caller's
 * (kiln_free_aligned). */
int gb_bins_codes(const gb_bins_t *b, const float *x, size_t n, int n_threads, uint8_t **codes,
                  kiln_err_t *err);
void gb_bins_free(gb_bins_t *b);

/* Bin of x: the number of edges below it, by a binary search over 255
 * edges written with masks, not branches (random data mispredicts half of
 * a branchy search's eight steps). */
static inline unsigned gb_bin_of(const float *edges, float x)
{
    unsigned b = 0;
    for (unsigned step = 128; step; step >>= 1)
        b += step & (0u - (unsigned)(edges[b + step - 1] < x));
    return b;
}

/* ---- the model ------------------------------------------------------------ */

/* A leaf is a node whose children are itself (feature 0, threshold +inf), so
 * prediction walks every tree a fixed depth with no branch per node. */
typedef struct {
    int32_t feature;
    float   threshold;     /* x <= threshold goes to child[0] */
    int32_t child[2];      /* tree-local node indices; > own index, or own for a leaf */
} gb_node_t;

struct km_gbdt {
    size_t     n_features;
    int        n_classes;       /* 0: regression */
    size_t     per_round;       /* trees per round: n_classes > 2 ? n_classes : 1 */
    size_t     n_trees;
    double    *init;            /* [per_round] starting raw score */
    size_t     n_nodes, cap_nodes;
    gb_node_t *nodes;           /* all trees, one after another */
    double    *value;           /* [n_nodes]: leaf output (0 at inner nodes) */
    size_t    *tree_start;      /* [n_trees + 1] */
    uint32_t  *tree_depth;      /* [n_trees] */
    size_t     cap_trees;
    int        n_threads;       /* predict's threads (from fit; 2 after load) */
};

int  gb_model_new(size_t d, int n_classes, int n_threads, km_gbdt_t **out, kiln_err_t *err);
/* Appends one tree of n_nodes nodes (copied). */
int  gb_model_add_tree(km_gbdt_t *m, const gb_node_t *nodes, const double *value, size_t n_nodes,
                       kiln_err_t *err);
/* Keeps the first n_trees trees. */
void gb_model_truncate(km_gbdt_t *m, size_t n_trees);
/* Raw score of tree t on rows x[n x d] added into raw[i * stride]. */
void gb_model_add_tree_raw(const km_gbdt_t *m, size_t t, const float *x, size_t n,
                           double *raw, size_t stride);

/* ---- one tree ------------------------------------------------------------ */

typedef struct gb_grower gb_grower_t;

/* Scratch for growing trees over n local rows: the caller keeps bins and
 * codes alive while the grower lives. */
int  gb_grower_new(const gb_bins_t *bins, const uint8_t *codes, size_t n,
                   const km_gbdt_params_t *p, const km_reduce_t *reduce, gb_grower_t **out,
                   kiln_err_t *err);
void gb_grower_free(gb_grower_t **g);
/* The rows (ascending) and features this round's trees use; in[] is
 * copied.  used[f] != 0 for a feature the trees may split on. */
void gb_grower_set_rows(gb_grower_t *g, const uint32_t *in, size_t n_in);
void gb_grower_set_features(gb_grower_t *g, const uint8_t *used);
/* Grows one tree on gh[2 i], gh[2 i + 1] = gradient, hessian of row i (8
 * bytes a row: one load in the histogram loop), appends it to m, and adds
 * its output to raw[i * stride] for every local row. */
int  gb_grower_grow(gb_grower_t *g, const float *gh, km_gbdt_t *m, double *raw, size_t stride,
                    kiln_err_t *err);

#endif
