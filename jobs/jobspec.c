/* jobspec.c - the common job fields (jobspec.h). */
#include "jobspec.h"

#include <errno.h>
#include <sys/stat.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

const char *const jb_common_keys[] = {
    "type", "name", "project", "priority", "depends_on", "resources",
    "max_retries", "timeout_s", "schedule", "array", NULL,
};

static int bad(kiln_err_t *err, const char *field, const char *what)
{
    return kiln_err_at(err, KILN_ESPEC, field, "job: %s: %s", field, what);
}

static int get_string(const json_t *spec, const char *key, char *dst, size_t cap,
                      const char *dflt, kiln_err_t *err)
{
    const json_t *v = json_object_get(spec, key);
    if (!v) {
        if (!dflt)
            return bad(err, key, "missing");
        snprintf(dst, cap, "%s", dflt);
        return 0;
    }
    if (!json_is_string(v))
        return bad(err, key, "must be a string");
    size_t n = json_string_length(v);
    if (n == 0)
        return bad(err, key, "must not be empty");
    if (n >= cap)
        return kiln_err_at(err, KILN_ESPEC, key, "job: %s: longer than %zu bytes", key,
                           cap - 1);
    if (memchr(json_string_value(v), '\0', n))
        return bad(err, key, "must not contain NUL");
    memcpy(dst, json_string_value(v), n + 1);
    return 0;
}

/* An integer field in [lo, hi]; absent leaves *out alone. */
static int get_int(const json_t *obj, const char *key, const char *field, int64_t lo,
                   int64_t hi, int64_t *out, kiln_err_t *err)
{
    const json_t *v = json_object_get(obj, key);
    if (!v)
        return 0;
    if (!json_is_integer(v))
        return bad(err, field, "must be an integer");
    json_int_t x = json_integer_value(v);
    if (x < lo || x > hi)
        return kiln_err_at(err, KILN_ESPEC, field, "job: %s: must be in %lld..%lld, not %lld",
                           field, (long long)lo, (long long)hi, (long long)x);
    *out = x;
    return 0;
}

static int parse_resources(const json_t *r, jb_resources_t *res, kiln_err_t *err)
{
    static const char *const keys[] = {"cores", "memory_mb", "gpus", "ranks", NULL};
    const char *key;
    json_t *v;
    if (!json_is_object(r))
        return bad(err, "resources", "must be an object");
    json_object_foreach((json_t *)r, key, v) {
        const char *const *k = keys;
        while (*k && strcmp(*k, key))
            k++;
        if (!*k) {
            char field[160];
            snprintf(field, sizeof field, "resources.%s", key);
            return bad(err, field, "unknown field");
        }
    }
    int64_t x;
    int rc;
    x = res->cores;
    if ((rc = get_int(r, "cores", "resources.cores", 1, 4096, &x, err)) < 0)
        return rc;
    res->cores = (int)x;
    x = res->memory_mb;
    if ((rc = get_int(r, "memory_mb", "resources.memory_mb", 0, (int64_t)1 << 40, &x, err)) < 0)
        return rc;
    res->memory_mb = x;
    x = res->gpus;
    if ((rc = get_int(r, "gpus", "resources.gpus", 0, 64, &x, err)) < 0)
        return rc;
    res->gpus = (int)x;
    x = res->ranks;
    if ((rc = get_int(r, "ranks", "resources.ranks", 1, 1024, &x, err)) < 0)
        return rc;
    res->ranks = (int)x;
    return 0;
}

static int parse_u63(const char **p, int64_t *out)
{
    const char *s = *p;
    if (*s < '0' || *s > '9')
        return -1;
    errno = 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (errno || v < 0)
        return -1;
    *out = v;
    *p = end;
    return 0;
}

int jb_array_parse(const char *text, int64_t *first, int64_t *last, int *cap, kiln_err_t *err)
{
    const char *p = text;
    int64_t a, b, c = 0;
    if (!text || parse_u63(&p, &a) < 0)
        goto bad;
    b = a;
    if (*p == '-') {
        p++;
        if (parse_u63(&p, &b) < 0)
            goto bad;
    }
    if (*p == '%') {
        p++;
        if (parse_u63(&p, &c) < 0 || c < 1 || c > JB_ARRAY_MAX)
            goto bad;
    }
    if (*p || b < a)
        goto bad;
    if (b - a + 1 > JB_ARRAY_MAX)
        return kiln_err_at(err, KILN_ESPEC, "array",
                           "job: array: %lld instances, more than %d", (long long)(b - a + 1),
                           JB_ARRAY_MAX);
    *first = a;
    *last = b;
    *cap = (int)c;
    return 0;
bad:
    return kiln_err_at(err, KILN_ESPEC, "array",
                       "job: array: \"%s\" is not FIRST-LAST[%%CAP] (e.g. \"0-999%%8\")",
                       text ? text : "");
}

int jb_common_parse(const void *spec_, jb_common_t *out, kiln_err_t *err)
{
    const json_t *spec = spec_;
    int rc;
    int64_t x;

    memset(out, 0, sizeof *out);
    out->resources.cores = 1;
    out->resources.ranks = 1;
    if (!json_is_object(spec))
        return kiln_err_set(err, KILN_ESPEC, "job: a job spec must be a JSON object");
    if ((rc = get_string(spec, "type", out->type, sizeof out->type, NULL, err)) < 0 ||
        (rc = get_string(spec, "name", out->name, sizeof out->name, out->type, err)) < 0 ||
        (rc = get_string(spec, "project", out->project, sizeof out->project, "default",
                         err)) < 0 ||
        (rc = get_string(spec, "schedule", out->schedule, sizeof out->schedule, "", err)) < 0)
        return rc;
    x = 0;
    if ((rc = get_int(spec, "priority", "priority", -JB_PRIORITY_MAX, JB_PRIORITY_MAX, &x,
                      err)) < 0)
        return rc;
    out->priority = (int)x;
    x = 0;
    if ((rc = get_int(spec, "max_retries", "max_retries", 0, 100, &x, err)) < 0)
        return rc;
    out->max_retries = (int)x;

    const json_t *v = json_object_get(spec, "timeout_s");
    if (v) {
        if (!json_is_number(v))
            return bad(err, "timeout_s", "must be a number");
        double t = json_number_value(v);
        if (!(t >= 0 && t <= 365.0 * 86400))
            return bad(err, "timeout_s", "must be between 0 and one year");
        out->timeout_s = t;
    }
    v = json_object_get(spec, "depends_on");
    if (v) {
        if (!json_is_array(v))
            return bad(err, "depends_on", "must be an array of job ids");
        if (json_array_size(v) > JB_DEPENDS_MAX)
            return kiln_err_at(err, KILN_ESPEC, "depends_on",
                               "job: depends_on: more than %d jobs", JB_DEPENDS_MAX);
        for (size_t i = 0; i < json_array_size(v); i++) {
            const json_t *e = json_array_get(v, i);
            char field[64];
            snprintf(field, sizeof field, "depends_on[%zu]", i);
            if (!json_is_integer(e) || json_integer_value(e) < 1)
                return bad(err, field, "must be a job id (an integer >= 1)");
            out->depends_on[out->n_depends_on++] = json_integer_value(e);
        }
    }
    v = json_object_get(spec, "resources");
    if (v && (rc = parse_resources(v, &out->resources, err)) < 0)
        return rc;
    v = json_object_get(spec, "array");
    if (v) {
        if (!json_is_string(v))
            return bad(err, "array", "must be a string such as \"0-999%8\"");
        if ((rc = jb_array_parse(json_string_value(v), &out->array_first, &out->array_last,
                                 &out->array_cap, err)) < 0)
            return rc;
        out->has_array = 1;
    }
    /* The cron syntax is the scheduler's to check (scheduler/cron.h); here
     * only what a recurring job cannot combine with.  Its runs are separate
     * jobs: one depends_on shared by every run would hold only for the first. */
    if (out->schedule[0] && out->n_depends_on)
        return kiln_err_at(err, KILN_ESPEC, "schedule",
                           "job: schedule: a recurring job cannot have depends_on (each run "
                           "would wait on the same jobs); leave depends_on out");
    if (out->schedule[0] && out->has_array)
        return kiln_err_at(err, KILN_ESPEC, "schedule",
                           "job: schedule: a recurring job cannot be an array");
    return 0;
}

int jb_spec_check_keys(const void *spec_, const char *const *type_keys, kiln_err_t *err)
{
    const json_t *spec = spec_;
    const char *key;
    json_t *v;
    if (!json_is_object(spec))
        return kiln_err_set(err, KILN_ESPEC, "job: a job spec must be a JSON object");
    json_object_foreach((json_t *)spec, key, v) {
        const char *const *k;
        for (k = jb_common_keys; *k && strcmp(*k, key); k++)
            ;
        if (*k)
            continue;
        for (k = type_keys; k && *k && strcmp(*k, key); k++)
            ;
        if (!k || !*k)
            return bad(err, key, "unknown field");
    }
    return 0;
}

int jb_spec_load_file(const char *path, const char *type, void **out, kiln_err_t *err)
{
    struct stat sb;
    json_error_t jerr;
    *out = NULL;
    if (stat(path, &sb) < 0)
        return kiln_err_set(err, KILN_EIO, "%s: cannot open: %s", path, strerror(errno));
    if (sb.st_size > (1 << 20))
        return kiln_err_set(err, KILN_ESPEC, "%s: larger than 1 MiB, not a job spec", path);
    json_t *spec = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (!spec)
        return kiln_err_set(err, KILN_EJSON, "%s:%d:%d: %s", path, jerr.line, jerr.column,
                            jerr.text);
    const char *t = json_string_value(json_object_get(spec, "type"));
    if (!json_is_object(spec) || !t || strcmp(t, type)) {
        json_decref(spec);
        return kiln_err_at(err, KILN_ESPEC, "type", "%s: type: a %s job spec has \"type\": \"%s\"",
                           path, type, type);
    }
    *out = spec;
    return 0;
}
