/* runtask.c - `kiln-worker --run-task FILE` (runtask.h).  This process holds
 * no ZeroMQ context and talks to the worker only through its exit code and
 * its stderr, which the worker sends back as the log tail. */
#include <jansson.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>

#include "../jobs/jobtype.h"
#include "child.h"
#include "gang.h"
#include "runtask.h"

/* A non-negative integer field of the task, default 0. */
static int get_size(const json_t *task, const char *key, const char *path, size_t *out,
                    kiln_err_t *err)
{
    const json_t *v = json_object_get(task, key);
    *out = 0;
    if (!v)
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return kiln_err_at(err, KILN_ESPEC, key, "%s: %s: must be an integer >= 0", path, key);
    *out = (size_t)json_integer_value(v);
    return 0;
}

/* "gpu": the CUDA device the worker gave this task, if any. */
static int get_gpu(const json_t *task, const char *path, jb_task_plan_t *plan, kiln_err_t *err)
{
    const json_t *v = json_object_get(task, "gpu");
    plan->use_gpu = 0;
    plan->gpu_device = 0;
    if (!v)
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 1024)
        return kiln_err_at(err, KILN_ESPEC, "gpu", "%s: gpu: must be a device index", path);
    plan->use_gpu = 1;
    plan->gpu_device = (int)json_integer_value(v);
    return 0;
}

/* AddressSanitizer reserves terabytes of shadow address space, so under it
 * an RLIMIT_AS would fail every task: SAN builds run without the limit. */
#if defined(__SANITIZE_ADDRESS__)
#define KW_LIMIT_AS 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define KW_LIMIT_AS 0
#endif
#endif
#ifndef KW_LIMIT_AS
#define KW_LIMIT_AS 1
#endif

static int limit_memory(const json_t *spec, const char *path, kiln_err_t *err)
{
    if (!KW_LIMIT_AS)
        return 0;
    const json_t *mb = json_object_get(json_object_get(spec, "resources"), "memory_mb");
    if (!json_is_integer(mb) || json_integer_value(mb) <= 0)
        return 0;
    json_int_t v = json_integer_value(mb);
    if (v > (json_int_t)(INT64_MAX >> 21))
        return 0;    /* beyond any machine: no limit */
    struct rlimit rl = {.rlim_cur = (rlim_t)v << 20, .rlim_max = (rlim_t)v << 20};
    if (setrlimit(RLIMIT_AS, &rl) != 0)
        return kiln_err_at(err, KILN_EIO, "spec.resources.memory_mb",
                           "%s: cannot limit memory to %lld MiB", path, (long long)v);
#ifdef M_ARENA_MAX
    /* glibc reserves up to 64 MiB of address space per thread's arena: under
     * RLIMIT_AS that, not the data, would run a threaded task out of memory. */
    mallopt(M_ARENA_MAX, 2);
#endif
    return 0;
}

int kw_run_task_file(const char *path, kiln_err_t *err)
{
    json_error_t je;
    void *parsed = NULL;
    const jb_type_t *type = NULL;
    int rc;

    json_t *task = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    if (!task)
        return kiln_err_set(err, KILN_EJSON, "%s:%d:%d: %s", path, je.line, je.column, je.text);
    const json_t *spec = json_object_get(task, "spec");
    const json_t *out = json_object_get(task, "output");
    jb_task_plan_t plan;
    if (!json_is_object(spec)) {
        rc = kiln_err_at(err, KILN_ESPEC, "spec", "%s: spec: must be an object", path);
        goto out;
    }
    if (!json_is_string(out) || json_string_length(out) == 0) {
        rc = kiln_err_at(err, KILN_ESPEC, "output", "%s: output: must be a path", path);
        goto out;
    }
    if ((rc = get_size(task, "index", path, &plan.index, err)) < 0 ||
        (rc = get_size(task, "win0", path, &plan.win0, err)) < 0 ||
        (rc = get_size(task, "n_windows", path, &plan.n_windows, err)) < 0 ||
        (rc = get_gpu(task, path, &plan, err)) < 0 ||
        (rc = limit_memory(spec, path, err)) < 0)
        goto out;
    const char *name = json_string_value(json_object_get(spec, "type"));
    type = name ? jb_type_find(name) : NULL;
    if (!type) {
        rc = kiln_err_at(err, KILN_ESPEC, "type", "job: type: unknown job type \"%s\"",
                         name ? name : "");
        goto out;
    }
    if ((rc = type->validate(spec, &parsed, err)) < 0)
        goto out;
    if (json_object_get(task, "gang_role"))
        rc = kw_gang_run(task, path, err);   /* one rank of an MPI program */
    else
        rc = type->run_task(parsed, &plan, json_string_value(out), err);
out:
    if (parsed)
        type->free_parsed(parsed);
    json_decref(task);
    return rc;
}

int kw_run_task_main(const char *path)
{
    kiln_err_t err;
    kiln_err_clear(&err);
    int rc = kw_run_task_file(path, &err);
    fflush(stdout);
    if (rc == 0)
        return KW_EXIT_OK;
    char line[sizeof err.msg];
    if (!kw_one_line(line, sizeof line, err.msg, strlen(err.msg)))
        snprintf(line, sizeof line, "%s", kiln_strerror(rc));
    fprintf(stderr, "\n" KW_ERROR_PREFIX "%s\n", line);
    fflush(stderr);
    return rc == KILN_ENOMEM ? KW_EXIT_NOMEM : KW_EXIT_ERROR;
}
