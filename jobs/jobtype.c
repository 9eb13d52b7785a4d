/* jobtype.c - the table of job types (jobtype.h).  One line per type. */
#include "jobtype.h"

#include <string.h>

#include "../core/kiln_alloc.h"

extern const jb_type_t jb_type_drift;
extern const jb_type_t jb_type_featurize;
extern const jb_type_t jb_type_noop;
extern const jb_type_t jb_type_pipeline;
extern const jb_type_t jb_type_publish;
extern const jb_type_t jb_type_score;
extern const jb_type_t jb_type_train;

static const jb_type_t *const types[] = {
    &jb_type_drift,
    &jb_type_featurize,
    &jb_type_noop,
    &jb_type_pipeline,
    &jb_type_publish,
    &jb_type_score,
    &jb_type_train,
};

const jb_type_t *jb_type_find(const char *name)
{
    if (!name)
        return NULL;
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if (strcmp(types[i]->name, name) == 0)
            return types[i];
    return NULL;
}

const jb_type_t *const *jb_type_all(size_t *n)
{
    *n = sizeof types / sizeof types[0];
    return types;
}

int jb_plan_even(const jb_plan_ctx_t *ctx, size_t total, int splittable, const char *what,
                 jb_task_plan_t **tasks, size_t *n_tasks, kiln_err_t *err)
{
    size_t n = 1;
    if (splittable && total > 0 && ctx) {
        if (ctx->windows_per_task > 0)
            n = (total + ctx->windows_per_task - 1) / ctx->windows_per_task;
        else if (ctx->target_tasks > 1)
            n = ctx->target_tasks;
        if (n > total)
            n = total;
    }
    jb_task_plan_t *t = kiln_calloc(n, sizeof *t);
    if (!t)
        return kiln_err_set(err, KILN_ENOMEM, "%s: no memory to plan %zu tasks", what, n);
    size_t base = total / n, extra = total % n, at = 0;
    for (size_t i = 0; i < n; i++) {
        t[i].index = i;
        t[i].win0 = at;
        t[i].n_windows = base + (i < extra);
        at += t[i].n_windows;
    }
    *tasks = t;
    *n_tasks = n;
    return 0;
}
