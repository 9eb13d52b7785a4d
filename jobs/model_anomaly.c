/* model_anomaly.c - the anomaly model kind (model.h) over kernels/anomaly.h:
 * trained on the healthy rows only (Mahalanobis distance with shrinkage, a
 * threshold from the false-alarm rate), because faults are rare in
 * factories and a model that needs no fault labels is where plants start.
 *   "model": {"kind": "anomaly", "false_alarm_rate": 0.01, "healthy_class": 0,
 *             "shrinkage": "ledoit_wolf" | 0.1}
 * healthy_class is the class id of the healthy rows (label_names order). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/kiln_alloc.h"
#include "../kernels/anomaly.h"
#include "model_int.h"

static int an_parse(const void *model, void **params, kiln_err_t *err)
{
    static const char *const keys[] = {"false_alarm_rate", "healthy_class", "shrinkage", NULL};
    const json_t *m = model;
    int rc = jb_model_check_keys(m, keys, err);
    if (rc < 0)
        return rc;
    km_anomaly_params_t *p = kiln_malloc(sizeof *p);
    if (!p)
        return kiln_err_set(err, KILN_ENOMEM, "job: out of memory");
    km_anomaly_params_default(p);
    long long healthy = p->healthy_class;
    const json_t *sh = json_object_get(m, "shrinkage");
    if ((rc = jb_model_num(m, "false_alarm_rate", 1e-9, 0.5, &p->false_alarm_rate, err)) < 0 ||
        (rc = jb_model_int(m, "healthy_class", 0, 255, &healthy, err)) < 0)
        goto fail;
    p->healthy_class = (int32_t)healthy;
    if (json_is_string(sh) && !strcmp(json_string_value(sh), "ledoit_wolf"))
        p->shrinkage = KM_ANOMALY_LEDOIT_WOLF;
    else if (sh && (rc = jb_model_num(m, "shrinkage", 0, 1, &p->shrinkage, err)) < 0)
        goto fail;
    *params = p;
    return 0;
fail:
    kiln_free(p);
    return rc;
}

static char *an_params_json(const void *params)
{
    const km_anomaly_params_t *p = params;
    char buf[200], sh[40];
    if (p->shrinkage < 0)
        snprintf(sh, sizeof sh, "\"ledoit_wolf\"");
    else
        snprintf(sh, sizeof sh, "%.17g", p->shrinkage);
    snprintf(buf, sizeof buf, "{\"false_alarm_rate\":%.17g,\"healthy_class\":%d,\"shrinkage\":%s}",
             p->false_alarm_rate, p->healthy_class, sh);
    char *s = malloc(strlen(buf) + 1);
    if (s)
        memcpy(s, buf, strlen(buf) + 1);
    return s;
}

static int an_fit(const void *params, const km_data_t *train, const km_data_t *valid,
                  const km_reduce_t *reduce, int threads, uint64_t seed, void **model,
                  kiln_err_t *err)
{
    (void)valid, (void)threads, (void)seed;
    return km_anomaly_fit(train, params, reduce, (km_anomaly_t **)model, err);
}

static int an_predict(const void *model, const float *x, size_t n, float *scores, int32_t *pred,
                      kiln_err_t *err)
{
    return km_anomaly_predict(model, x, n, scores, pred, err);
}

static size_t an_n_outputs(const void *model)
{
    return km_anomaly_n_outputs(model);
}

static int an_save(const void *model, km_buf_t *b, kiln_err_t *err)
{
    return km_anomaly_save(model, b, err);
}

static int an_load(const void *bytes, size_t len, void **model, kiln_err_t *err)
{
    return km_anomaly_load(bytes, len, (km_anomaly_t **)model, err);
}

static void an_free(void *model)
{
    km_anomaly_t *m = model;
    km_anomaly_free(&m);
}

static void an_free_params(void *p)
{
    kiln_free(p);
}

static int an_healthy(const void *params)
{
    return ((const km_anomaly_params_t *)params)->healthy_class;
}

const jb_model_kind_t jb_model_anomaly = {
    .name = "anomaly",
    .unsupervised = 1,
    .parse = an_parse,
    .free_params = an_free_params,
    .params_json = an_params_json,
    .fit = an_fit,
    .predict = an_predict,
    .n_outputs = an_n_outputs,
    .save = an_save,
    .load = an_load,
    .free_model = an_free,
    .healthy_class = an_healthy,
};
