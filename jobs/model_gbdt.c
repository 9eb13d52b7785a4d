/* model_gbdt.c - the gbdt model kind (model.h) over kernels/gbdt.h:
 * histogram gradient-boosted trees, for labels or a target.
 *   "model": {"kind": "gbdt", "trees": 100, "max_leaves": 31, "max_depth": -1,
 *             "learning_rate": 0.1, "min_data_in_leaf": 20, "lambda_l2": 0,
 *             "max_bins": 255, "bagging_fraction": 1, "feature_fraction": 1,
 *             "early_stopping_rounds": 0}
 * Early stopping watches the time-aware validation rows. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/kiln_alloc.h"
#include "../kernels/gbdt.h"
#include "model_int.h"

static int gb_parse(const void *model, void **params, kiln_err_t *err)
{
    static const char *const keys[] = {"trees", "max_leaves", "max_depth", "learning_rate",
                                       "min_data_in_leaf", "lambda_l2", "max_bins",
                                       "bagging_fraction", "feature_fraction",
                                       "early_stopping_rounds", NULL};
    const json_t *m = model;
    int rc = jb_model_check_keys(m, keys, err);
    if (rc < 0)
        return rc;
    km_gbdt_params_t *p = kiln_malloc(sizeof *p);
    if (!p)
        return kiln_err_set(err, KILN_ENOMEM, "job: out of memory");
    *p = km_gbdt_defaults();
    long long trees = p->n_rounds, leaves = p->max_leaves, depth = p->max_depth,
              min_data = p->min_data_in_leaf, bins = p->max_bins,
              early = p->early_stopping_rounds;
    if ((rc = jb_model_int(m, "trees", 1, 100000, &trees, err)) < 0 ||
        (rc = jb_model_int(m, "max_leaves", 2, 65536, &leaves, err)) < 0 ||
        (rc = jb_model_int(m, "max_depth", -1, 1000, &depth, err)) < 0 ||
        (rc = jb_model_int(m, "min_data_in_leaf", 1, 100000000, &min_data, err)) < 0 ||
        (rc = jb_model_int(m, "max_bins", 2, 255, &bins, err)) < 0 ||
        (rc = jb_model_int(m, "early_stopping_rounds", 0, 100000, &early, err)) < 0 ||
        (rc = jb_model_num(m, "learning_rate", 1e-9, 1000, &p->learning_rate, err)) < 0 ||
        (rc = jb_model_num(m, "lambda_l2", 0, 1e12, &p->lambda_l2, err)) < 0 ||
        (rc = jb_model_num(m, "bagging_fraction", 1e-9, 1, &p->bagging_fraction, err)) < 0 ||
        (rc = jb_model_num(m, "feature_fraction", 1e-9, 1, &p->feature_fraction, err)) < 0) {
        kiln_free(p);
        return rc;
    }
    if (depth == 0) {
        kiln_free(p);
        return kiln_err_at(err, KILN_ESPEC, "model.max_depth",
                           "job: model.max_depth: -1 (no limit) or at least 1");
    }
    p->n_rounds = (int)trees;
    p->max_leaves = (int)leaves;
    p->max_depth = (int)depth;
    p->min_data_in_leaf = (int)min_data;
    p->max_bins = (int)bins;
    p->early_stopping_rounds = (int)early;
    *params = p;
    return 0;
}

static char *gb_params_json(const void *params)
{
    const km_gbdt_params_t *p = params;
    char buf[512];
    snprintf(buf, sizeof buf,
             "{\"trees\":%d,\"max_leaves\":%d,\"max_depth\":%d,\"learning_rate\":%.17g,"
             "\"min_data_in_leaf\":%d,\"lambda_l2\":%.17g,\"max_bins\":%d,"
             "\"bagging_fraction\":%.17g,\"feature_fraction\":%.17g,"
             "\"early_stopping_rounds\":%d}",
             p->n_rounds, p->max_leaves, p->max_depth, p->learning_rate, p->min_data_in_leaf,
             p->lambda_l2, p->max_bins, p->bagging_fraction, p->feature_fraction,
             p->early_stopping_rounds);
    char *s = malloc(strlen(buf) + 1);
    if (s)
        memcpy(s, buf, strlen(buf) + 1);
    return s;
}

static int gb_fit(const void *params, const km_data_t *train, const km_data_t *valid,
                  const km_reduce_t *reduce, int threads, uint64_t seed, void **model,
                  kiln_err_t *err)
{
    km_gbdt_params_t p = *(const km_gbdt_params_t *)params;
    p.n_threads = threads > 0 ? (threads > 64 ? 64 : threads) : 1;
    p.seed = seed;
    if (!valid)
        p.early_stopping_rounds = 0;   /* nothing held out to watch */
    return km_gbdt_fit(train, valid, &p, reduce, (km_gbdt_t **)model, err);
}

static int gb_predict(const void *model, const float *x, size_t n, float *scores, int32_t *pred,
                      kiln_err_t *err)
{
    return km_gbdt_predict(model, x, n, scores, pred, err);
}

static size_t gb_n_outputs(const void *model)
{
    return km_gbdt_n_outputs(model);
}

static int gb_save(const void *model, km_buf_t *b, kiln_err_t *err)
{
    return km_gbdt_save(model, b, err);
}

static int gb_load(const void *bytes, size_t len, void **model, kiln_err_t *err)
{
    return km_gbdt_load(bytes, len, (km_gbdt_t **)model, err);
}

static void gb_free(void *model)
{
    km_gbdt_t *m = model;
    km_gbdt_free(&m);
}

static void gb_free_params(void *p)
{
    kiln_free(p);
}

const jb_model_kind_t jb_model_gbdt = {
    .name = "gbdt",
    .classifier = 1,
    .regressor = 1,
    .parse = gb_parse,
    .free_params = gb_free_params,
    .params_json = gb_params_json,
    .fit = gb_fit,
    .predict = gb_predict,
    .n_outputs = gb_n_outputs,
    .save = gb_save,
    .load = gb_load,
    .free_model = gb_free,
};
