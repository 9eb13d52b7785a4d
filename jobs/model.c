/* model.c - the table of model kinds and the spec helpers they share
 * (model.h, model_int.h).  Adding a kind is one file and one line here. */
#include "model_int.h"

#include <stdio.h>
#include <string.h>

extern const jb_model_kind_t jb_model_logreg;
extern const jb_model_kind_t jb_model_anomaly;
extern const jb_model_kind_t jb_model_mlp;
extern const jb_model_kind_t jb_model_gbdt;

static const jb_model_kind_t *const kinds[] = {
    &jb_model_logreg,
    &jb_model_anomaly,
    &jb_model_mlp,
    &jb_model_gbdt,
};

const jb_model_kind_t *jb_model_kind_find(const char *name)
{
    for (size_t i = 0; name && i < sizeof kinds / sizeof kinds[0]; i++)
        if (!strcmp(kinds[i]->name, name))
            return kinds[i];
    return NULL;
}

const char *jb_model_kind_names(void)
{
    static const char names[] = "logreg, mlp, gbdt, anomaly";
    return names;
}

int jb_model_check_keys(const json_t *obj, const char *const *keys, kiln_err_t *err)
{
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)obj, key, v) {
        const char *const *k = keys;
        while (*k && strcmp(*k, key))
            k++;
        if (!*k && strcmp(key, "kind")) {
            char field[160];
            snprintf(field, sizeof field, "model.%s", key);
            return kiln_err_at(err, KILN_ESPEC, field, "job: model.%s: unknown field", key);
        }
    }
    return 0;
}

int jb_model_num(const json_t *obj, const char *key, double lo, double hi, double *out,
                 kiln_err_t *err)
{
    const json_t *v = json_object_get(obj, key);
    if (!v)
        return 0;
    char field[160];
    snprintf(field, sizeof field, "model.%s", key);
    if (!json_is_number(v) || !(json_number_value(v) >= lo && json_number_value(v) <= hi))
        return kiln_err_at(err, KILN_ESPEC, field, "job: model.%s: must be a number in [%g, %g]",
                           key, lo, hi);
    *out = json_number_value(v);
    return 0;
}

int jb_model_int(const json_t *obj, const char *key, long long lo, long long hi, long long *out,
                 kiln_err_t *err)
{
    const json_t *v = json_object_get(obj, key);
    if (!v)
        return 0;
    char field[160];
    snprintf(field, sizeof field, "model.%s", key);
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
        return kiln_err_at(err, KILN_ESPEC, field,
                           "job: model.%s: must be an integer in %lld..%lld", key, lo, hi);
    *out = json_integer_value(v);
    return 0;
}
