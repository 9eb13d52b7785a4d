/* type_noop.c - the noop job type: `tasks` tasks that do nothing, or sleep,
 * fail or crash on request.  It measures the scheduler (dispatch rate,
 * submit-to-start latency) and drives the cluster's tests of retries,
 * timeouts, cancel and worker crashes without any data.
 *
 *   {"type": "noop", "tasks": 1000}              1000 tasks, run in-process
 *   "sleep_ms": 500                              each task sleeps (in a child)
 *   "fail": "always" | "crash" | "once"          error exit, SIGSEGV-like abort,
 *                                                or fail until `marker` exists
 *   "marker": "/path"                            with "once": created by the
 *                                                first attempt, which fails */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../core/kiln_alloc.h"
#include "jobspec.h"
#include "jobtype.h"

#define NOOP_TASKS_MAX 1000000

typedef enum { NOOP_OK = 0, NOOP_FAIL, NOOP_CRASH, NOOP_ONCE } noop_fail_t;

typedef struct {
    int64_t     tasks;
    int64_t     sleep_ms;
    noop_fail_t fail;
    char        marker[1024];
    int         ranks;
} noop_t;

static int noop_validate(const void *spec_, void **parsed, kiln_err_t *err)
{
    static const char *const keys[] = {"tasks", "sleep_ms", "fail", "marker", NULL};
    const json_t *spec = spec_;
    jb_common_t common;
    int rc;

    *parsed = NULL;
    if ((rc = jb_spec_check_keys(spec, keys, err)) < 0 ||
        (rc = jb_common_parse(spec, &common, err)) < 0)
        return rc;
    noop_t *n = kiln_calloc(1, sizeof *n);
    if (!n)
        return kiln_err_set(err, KILN_ENOMEM, "job: no memory for the spec");
    n->tasks = 1;
    n->ranks = common.resources.ranks;
    const json_t *v = json_object_get(spec, "tasks");
    if (v && (!json_is_integer(v) || json_integer_value(v) < 1 ||
              json_integer_value(v) > NOOP_TASKS_MAX)) {
        rc = kiln_err_at(err, KILN_ESPEC, "tasks", "job: tasks: must be an integer in 1..%d",
                         NOOP_TASKS_MAX);
        goto fail;
    }
    if (v)
        n->tasks = json_integer_value(v);
    v = json_object_get(spec, "sleep_ms");
    if (v && (!json_is_integer(v) || json_integer_value(v) < 0 ||
              json_integer_value(v) > 86400000)) {
        rc = kiln_err_at(err, KILN_ESPEC, "sleep_ms",
                         "job: sleep_ms: must be an integer in 0..86400000");
        goto fail;
    }
    if (v)
        n->sleep_ms = json_integer_value(v);
    v = json_object_get(spec, "fail");
    if (v) {
        const char *f = json_is_string(v) ? json_string_value(v) : "";
        if (!strcmp(f, "always"))
            n->fail = NOOP_FAIL;
        else if (!strcmp(f, "crash"))
            n->fail = NOOP_CRASH;
        else if (!strcmp(f, "once"))
            n->fail = NOOP_ONCE;
        else {
            rc = kiln_err_at(err, KILN_ESPEC, "fail",
                             "job: fail: must be \"always\", \"crash\" or \"once\"");
            goto fail;
        }
    }
    v = json_object_get(spec, "marker");
    if (v) {
        if (!json_is_string(v) || json_string_length(v) == 0 ||
            json_string_length(v) >= sizeof n->marker) {
            rc = kiln_err_at(err, KILN_ESPEC, "marker", "job: marker: must be a path");
            goto fail;
        }
        memcpy(n->marker, json_string_value(v), json_string_length(v) + 1);
    }
    if (n->fail == NOOP_ONCE && !n->marker[0]) {
        rc = kiln_err_at(err, KILN_ESPEC, "marker", "job: marker: \"fail\": \"once\" needs one");
        goto fail;
    }
    /* A gang runs one task per rank. */
    if (n->ranks > 1)
        n->tasks = n->ranks;
    *parsed = n;
    return 0;
fail:
    kiln_free(n);
    return rc;
}

static int noop_plan(const void *parsed, const jb_plan_ctx_t *ctx, jb_task_plan_t **tasks,
                     size_t *n_tasks, kiln_err_t *err)
{
    const noop_t *n = parsed;
    (void)ctx;
    jb_task_plan_t *t = kiln_calloc((size_t)n->tasks, sizeof *t);
    if (!t)
        return kiln_err_set(err, KILN_ENOMEM, "noop: no memory for %lld tasks",
                            (long long)n->tasks);
    for (int64_t i = 0; i < n->tasks; i++) {
        t[i].index = (size_t)i;
        t[i].win0 = 0;
        t[i].n_windows = 0;
    }
    *tasks = t;
    *n_tasks = (size_t)n->tasks;
    return 0;
}

static int noop_run(const void *parsed, const jb_task_plan_t *task, const char *out_path,
                    kiln_err_t *err)
{
    const noop_t *n = parsed;
    (void)out_path;
    if (n->sleep_ms > 0) {
        struct timespec ts = {n->sleep_ms / 1000, (long)(n->sleep_ms % 1000) * 1000000L};
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
            ;
    }
    switch (n->fail) {
    case NOOP_OK:
        return 0;
    case NOOP_FAIL:
        return kiln_err_set(err, KILN_EINVAL, "noop: task %zu fails as asked", task->index);
    case NOOP_CRASH:
        abort();
    case NOOP_ONCE: {
        int fd = open(n->marker, O_WRONLY | O_CREAT | O_EXCL, 0644);
        if (fd >= 0) {
            close(fd);
            return kiln_err_set(err, KILN_EINVAL, "noop: task %zu fails once (%s created)",
                                task->index, n->marker);
        }
        if (errno == EEXIST)
            return 0;
        return kiln_err_set(err, KILN_EIO, "noop: %s: %s", n->marker, strerror(errno));
    }
    }
    return 0;
}

static int noop_finish(const void *parsed, const char *const *outs, size_t n_outs,
                       const char *final_output, kiln_err_t *err)
{
    (void)parsed, (void)outs, (void)n_outs, (void)final_output, (void)err;
    return 0;
}

static void noop_free(void *parsed)
{
    kiln_free(parsed);
}

/* Only a task that returns at once without side effects runs in the worker. */
static int noop_inproc(const void *parsed)
{
    const noop_t *n = parsed;
    return n->sleep_ms == 0 && n->fail == NOOP_OK;
}

const jb_type_t jb_type_noop = {
    .name = "noop",
    .validate = noop_validate,
    .plan = noop_plan,
    .run_task = noop_run,
    .finish = noop_finish,
    .free_parsed = noop_free,
    .inproc = noop_inproc,
};
