/* cmd_classes.c - `kiln classes FEATURES.h5`: how well each feature separates
 * the labelled classes.  Streams the feature dataset once, keeps per-class
 * means and variances (Welford), and ranks features by the Fisher ratio:
 * variance of the class means over the mean within-class variance. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/kiln_alloc.h"
#include "../storage/features.h"
#include "cli.h"

#define MAX_CLASSES 64

typedef struct {
    double n, mean, m2;
} welford_t;

static void usage(FILE *f)
{
    fprintf(f, "usage: kiln classes FEATURES.h5 [--top N] [--features NAME,NAME...]\n"
               "Prints per-class means of the features that best separate the classes\n"
               "(Fisher ratio: variance of class means / mean within-class variance).\n");
}

typedef struct {
    size_t col;
    double fisher;
} ranked_t;

static int by_fisher(const void *a, const void *b)
{
    double fa = ((const ranked_t *)a)->fisher, fb = ((const ranked_t *)b)->fisher;
    return fa < fb ? 1 : fa > fb ? -1 : 0;
}

int kiln_cmd_classes(int argc, char **argv)
{
    const char *path = NULL, *only = NULL;
    size_t top = 8;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(argv[i], "--top") && i + 1 < argc) {
            top = (size_t)strtoul(argv[++i], NULL, 10);
        } else if (!strcmp(argv[i], "--features") && i + 1 < argc) {
            only = argv[++i];
        } else if (argv[i][0] != '-' && !path) {
            path = argv[i];
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (!path || top == 0) {
        usage(stderr);
        return 2;
    }

    kiln_err_t err;
    st_features_t *ds = NULL;
    int status = 1;
    welford_t *acc = NULL;
    float *rows = NULL;
    int32_t *label = NULL;
    ranked_t *rank = NULL;

    if (st_features_open(path, &ds, &err) < 0) {
        fprintf(stderr, "kiln classes: %s\n", err.msg);
        return 1;
    }
    const st_features_meta_t *m = st_features_meta(ds);
    size_t nf = m->n_features, nc = m->n_label_names;
    if (!m->has_label || nc == 0 || nc > MAX_CLASSES) {
        fprintf(stderr, "kiln classes: %s: no class labels to compare\n", path);
        goto out;
    }
    const size_t batch = 1024;
    acc = kiln_calloc(nf * nc, sizeof *acc);
    rows = kiln_malloc(batch * nf * sizeof *rows);
    label = kiln_malloc(batch * sizeof *label);
    rank = kiln_calloc(nf, sizeof *rank);
    if (!acc || !rows || !label || !rank) {
        fprintf(stderr, "kiln classes: out of memory\n");
        goto out;
    }
    for (size_t r0 = 0; r0 < m->n_rows; r0 += batch) {
        size_t n = m->n_rows - r0 < batch ? m->n_rows - r0 : batch;
        if (st_features_read(ds, r0, n, rows, &err) < 0 ||
            st_features_read_meta(ds, r0, n, NULL, NULL, label, NULL, &err) < 0) {
            fprintf(stderr, "kiln classes: %s\n", err.msg);
            goto out;
        }
        for (size_t i = 0; i < n; i++) {
            if (label[i] < 0 || (size_t)label[i] >= nc)
                continue;
            welford_t *a = acc + (size_t)label[i] * nf;
            for (size_t f = 0; f < nf; f++) {
                double x = rows[i * nf + f], d = x - a[f].mean;
                a[f].n += 1;
                a[f].mean += d / a[f].n;
                a[f].m2 += d * (x - a[f].mean);
            }
        }
    }
    size_t n_ranked = 0;
    for (size_t f = 0; f < nf; f++) {
        if (only) {
            /* match a whole comma-separated name */
            const char *p = strstr(only, m->feature_names[f]);
            size_t len = strlen(m->feature_names[f]);
            int hit = 0;
            while (p && !hit) {
                hit = (p == only || p[-1] == ',') && (p[len] == 0 || p[len] == ',');
                p = strstr(p + 1, m->feature_names[f]);
            }
            if (!hit)
                continue;
        }
        double grand = 0, k = 0, within = 0, between = 0;
        for (size_t c = 0; c < nc; c++)
            if (acc[c * nf + f].n > 1) {
                grand += acc[c * nf + f].mean;
                within += acc[c * nf + f].m2 / acc[c * nf + f].n;
                k += 1;
            }
        if (k < 2)
            continue;
        grand /= k;
        for (size_t c = 0; c < nc; c++)
            if (acc[c * nf + f].n > 1) {
                double d = acc[c * nf + f].mean - grand;
                between += d * d;
            }
        between /= k;
        within /= k;
        rank[n_ranked].col = f;
        rank[n_ranked++].fisher = within > 0 ? between / within : INFINITY;
    }
    qsort(rank, n_ranked, sizeof *rank, by_fisher);
    if (top > n_ranked)
        top = n_ranked;

    printf("%s: %zu rows, %zu features; class means of the %zu most separating features\n",
           path, m->n_rows, nf, top);
    printf("%-22s %8s", "feature", "fisher");
    for (size_t c = 0; c < nc; c++)
        printf(" %12.12s", m->label_names[c]);
    printf("\n%-22s %8s", "(windows)", "");
    for (size_t c = 0; c < nc; c++)
        printf(" %12.0f", acc[c * nf].n);
    printf("\n");
    for (size_t r = 0; r < top; r++) {
        size_t f = rank[r].col;
        printf("%-22.22s %8.2f", m->feature_names[f], rank[r].fisher);
        for (size_t c = 0; c < nc; c++)
            printf(" %12.4g", acc[c * nf + f].mean);
        printf("\n");
    }
    status = 0;
out:
    kiln_free(acc);
    kiln_free(rows);
    kiln_free(label);
    kiln_free(rank);
    st_features_close(&ds);
    return status;
}
