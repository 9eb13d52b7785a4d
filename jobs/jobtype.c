/* jobtype.c - the table of job types (jobtype.h).  One line per type. */
#include "jobtype.h"

#include <string.h>

extern const jb_type_t jb_type_featurize;
extern const jb_type_t jb_type_noop;
extern const jb_type_t jb_type_score;
extern const jb_type_t jb_type_train;

static const jb_type_t *const types[] = {
    &jb_type_featurize,
    &jb_type_noop,
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
