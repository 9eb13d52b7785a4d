/* test_sched.c - the scheduler's decisions without sockets: a real state
 * store on disk, workers played by the test through ks_sched_on_msg, and the
 * messages the scheduler sends collected from its ops. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "core/kiln_alloc.h"
#include "oracle.h"
#include "scheduler/cron.h"
#include "scheduler/sched.h"

#define MAX_SENT 4096

typedef struct {
    char    worker[64];
    int     type;
    int64_t task_id, job_id;
    char    lease[64];
} sent_t;

typedef struct {
    char        dir[512];
    st_state_t *st;
    ks_sched_t *s;
    sent_t      sent[MAX_SENT];
    size_t      n_sent;
    int         finishes;
} fx_t;

static void on_send(void *ud, const char *worker_id, kc_msg_type_t type, char *json, size_t len)
{
    fx_t *f = ud;
    json_error_t jerr;
    json_t *b = json_loadb(json, len, 0, &jerr);
    assert_non_null(b);
    if (f->n_sent < MAX_SENT) {
        sent_t *m = &f->sent[f->n_sent++];
        snprintf(m->worker, sizeof m->worker, "%s", worker_id);
        m->type = type;
        m->task_id = json_integer_value(json_object_get(b, "task_id"));
        m->job_id = json_integer_value(json_object_get(b, "job_id"));
        snprintf(m->lease, sizeof m->lease, "%s", json_string_value(json_object_get(b, "lease_id")));
    }
    json_decref(b);
    kiln_free(json);
}

static void on_finish(void *ud, int64_t job_id, const jb_type_t *type, const void *parsed,
                      const char *const *outputs, size_t n, const char *final_output)
{
    fx_t *f = ud;
    (void)type, (void)parsed, (void)outputs, (void)n, (void)final_output;
    f->finishes++;
    ks_sched_finish_done(f->s, job_id, 0, NULL);
}

static void open_sched(fx_t *f, const ks_opts_t *extra)
{
    kiln_err_t err;
    char db[600];
    snprintf(db, sizeof db, "%s/state.db", f->dir);
    assert_int_equal(st_state_open(db, &f->st, &err), 0);
    ks_opts_t o = extra ? *extra : (ks_opts_t){0};
    o.dir = f->dir;
    if (!o.retry_backoff_ms)
        o.retry_backoff_ms = 1;
    ks_ops_t ops = {on_send, on_finish};
    assert_int_equal(ks_sched_open(f->st, &o, &ops, f, &f->s, &err), 0);
}

static void close_sched(fx_t *f)
{
    ks_sched_close(&f->s);
    st_state_close(&f->st);
}

static fx_t *fx_new(const ks_opts_t *o)
{
    fx_t *f = calloc(1, sizeof *f);
    assert_non_null(f);
    const char *tmp = getenv("TMPDIR");
    snprintf(f->dir, sizeof f->dir, "%s/kiln_sched_XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
    assert_non_null(mkdtemp(f->dir));
    open_sched(f, o);
    return f;
}

static void fx_free(fx_t *f)
{
    close_sched(f);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
}

static int64_t submit(fx_t *f, const char *spec)
{
    int64_t id = 0;
    int existed = 0;
    kiln_err_t err;
    int rc = ks_sched_submit(f->s, spec, strlen(spec), NULL, &id, &existed, &err);
    if (rc < 0)
        fail_msg("submit %s: %s", spec, err.msg);
    return id;
}

static void msg(fx_t *f, const char *worker, kc_msg_type_t type, json_t *body)
{
    kc_msg_t *m = kc_msg_new(type, body);
    assert_non_null(m);
    kiln_err_t err;
    assert_int_equal(ks_sched_on_msg(f->s, worker, m, &err), 0);
    kc_msg_destroy(&m);
}

static void hello(fx_t *f, const char *worker, int cores, int gpus)
{
    msg(f, worker, KC_MSG_HELLO,
        json_pack("{s:s, s:i, s:i, s:i, s:[]}", "worker_id", worker, "cores", cores, "memory_mb",
                  4096, "gpus", gpus, "running"));
}

static void done(fx_t *f, const sent_t *t)
{
    msg(f, t->worker, KC_MSG_DONE,
        json_pack("{s:I, s:s, s:s}", "task_id", (json_int_t)t->task_id, "lease_id", t->lease,
                  "output", "x"));
}

static void failed(fx_t *f, const sent_t *t, const char *code)
{
    msg(f, t->worker, KC_MSG_FAILED,
        json_pack("{s:I, s:s, s:s, s:s}", "task_id", (json_int_t)t->task_id, "lease_id", t->lease,
                  "reason", "boom", "code", code));
}

/* Tasks sent since index from, of type task. */
static size_t tasks_since(const fx_t *f, size_t from)
{
    size_t n = 0;
    for (size_t i = from; i < f->n_sent; i++)
        n += f->sent[i].type == KC_MSG_TASK;
    return n;
}

static json_t *job(fx_t *f, int64_t id)
{
    kiln_err_t err;
    json_t *j = ks_sched_job_json(f->s, id, &err);
    assert_non_null(j);
    return j;
}

static void assert_job(fx_t *f, int64_t id, const char *state, const char *reason_code)
{
    json_t *j = job(f, id);
    const char *st = json_string_value(json_object_get(j, "state"));
    if (strcmp(st, state))
        fail_msg("job %lld is %s, expected %s (%s)", (long long)id, st, state,
                 json_dumps(json_object_get(j, "reason"), 0));
    if (reason_code) {
        const char *rc =
            json_string_value(json_object_get(json_object_get(j, "reason"), "code"));
        if (!rc || strcmp(rc, reason_code))
            fail_msg("job %lld reason %s, expected %s", (long long)id, rc ? rc : "(none)",
                     reason_code);
    }
    json_decref(j);
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---- tests */

static void test_submit_errors(void **state)
{
    (void)state;
    ks_opts_t o = {.max_active_jobs = 2};
    fx_t *f = fx_new(&o);
    kiln_err_t err;
    int64_t id;
    int existed;
    const char *bad[][2] = {
        {"{\"type\":", "line 1"},
        {"[1]", "object"},
        {"{\"type\":\"noop\",\"bogus\":1}", "bogus"},
        {"{\"type\":\"nosuch\"}", "unknown job type"},
        {"{\"type\":\"noop\",\"priority\":\"high\"}", "priority"},
        {"{\"type\":\"noop\",\"resources\":{\"cores\":0}}", "resources.cores"},
        {"{\"type\":\"noop\",\"resources\":{\"disks\":1}}", "resources.disks"},
        {"{\"type\":\"noop\",\"array\":\"5-1\"}", "array"},
        {"{\"type\":\"noop\",\"depends_on\":[99]}", "99"},
        {"{\"type\":\"noop\",\"tasks\":0}", "tasks"},
        {"{\"type\":\"noop\",\"schedule\":\"0 25 * * *\"}",
         "schedule: field 2 (hour): 25 is out of 0-23"},
        {"{\"type\":\"noop\",\"schedule\":\"@every 0s\"}", "schedule: @every"},
        {"{\"type\":\"noop\",\"schedule\":5}", "schedule: must be a string"},
        {"{\"type\":\"noop\",\"schedule\":\"@daily\",\"depends_on\":[1]}",
         "schedule: a recurring job cannot have depends_on"},
        {"{\"type\":\"noop\",\"schedule\":\"@daily\",\"array\":\"0-3\"}",
         "schedule: a recurring job cannot be an array"},
        {"{\"type\":\"noop\",\"schedule\":\"@daily\",\"tasks\":0}", "tasks"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = ks_sched_submit(f->s, bad[i][0], strlen(bad[i][0]), NULL, &id, &existed, &err);
        assert_true(rc < 0);
        if (!strstr(err.msg, bad[i][1]))
            fail_msg("%s: message \"%s\" does not name %s", bad[i][0], err.msg, bad[i][1]);
    }
    /* Nothing was stored by any of them. */
    json_t *l = ks_sched_jobs_json(f->s, NULL, NULL, 0, &err);
    assert_int_equal(json_array_size(json_object_get(l, "jobs")), 0);
    json_decref(l);

    /* Idempotency, then admission. */
    const char *spec = "{\"type\":\"noop\"}";
    int64_t a, b;
    assert_int_equal(ks_sched_submit(f->s, spec, strlen(spec), "k1", &a, &existed, &err), 0);
    assert_int_equal(existed, 0);
    assert_int_equal(ks_sched_submit(f->s, spec, strlen(spec), "k1", &b, &existed, &err), 0);
    assert_int_equal(existed, 1);
    assert_int_equal(a, b);
    submit(f, spec);
    assert_int_equal(ks_sched_submit(f->s, spec, strlen(spec), NULL, &id, &existed, &err),
                     KILN_EBUSY);
    fx_free(f);
}

/* Higher priority first; within a priority, the project using fewer cores. */
static void test_priority_fair_share(void **state)
{
    (void)state;
    fx_t *f = fx_new(NULL);
    int64_t a1 = submit(f, "{\"type\":\"noop\",\"project\":\"a\",\"tasks\":4}");
    int64_t a2 = submit(f, "{\"type\":\"noop\",\"project\":\"a\",\"tasks\":4}");
    int64_t b1 = submit(f, "{\"type\":\"noop\",\"project\":\"b\",\"tasks\":4}");
    ks_sched_dispatch(f->s);
    assert_job(f, a1, "queued", "no_workers");
    hello(f, "w1", 2, 0);
    ks_sched_dispatch(f->s);
    assert_int_equal(tasks_since(f, 0), 2);
    /* One core each: a (lowest id at equal use), then b (a now uses one). */
    assert_int_equal(f->sent[0].job_id, a1);
    assert_int_equal(f->sent[1].job_id, b1);
    assert_job(f, a2, "queued", "resources");
    /* A later high-priority job jumps the queue. */
    int64_t hi = submit(f, "{\"type\":\"noop\",\"project\":\"a\",\"priority\":10}");
    done(f, &f->sent[0]);
    ks_sched_dispatch(f->s);
    assert_int_equal(f->sent[2].job_id, hi);
    fx_free(f);
}

static void test_quota_and_gang(void **state)
{
    (void)state;
    ks_quota_t q = {"p", 1};
    ks_opts_t o = {.quotas = &q, .n_quotas = 1};
    fx_t *f = fx_new(&o);
    hello(f, "w1", 4, 0);
    int64_t j = submit(f, "{\"type\":\"noop\",\"project\":\"p\",\"tasks\":3}");
    ks_sched_dispatch(f->s);
    assert_int_equal(tasks_since(f, 0), 1);
    assert_job(f, j, "running", NULL);

    /* A gang of 6 ranks does not fit the 3 free cores: nothing starts. */
    int64_t g = submit(f, "{\"type\":\"noop\",\"resources\":{\"ranks\":6}}");
    size_t mark = f->n_sent;
    ks_sched_dispatch(f->s);
    assert_int_equal(tasks_since(f, mark), 0);
    assert_job(f, g, "queued", "gang");
    /* Another worker: all six ranks start in the same pass. */
    hello(f, "w2", 4, 0);
    ks_sched_dispatch(f->s);
    assert_int_equal(tasks_since(f, mark), 6);
    assert_job(f, g, "running", NULL);
    /* One rank fails (no retries): the gang ends and its other ranks are called back. */
    size_t first = mark;
    while (f->sent[first].job_id != g)
        first++;
    size_t before = f->n_sent;
    failed(f, &f->sent[first], "error");
    assert_job(f, g, "failed", "task_failed");
    size_t cancels = 0;
    for (size_t i = before; i < f->n_sent; i++)
        cancels += f->sent[i].type == KC_MSG_CANCEL;
    assert_int_equal(cancels, 5);
    fx_free(f);
}

static void test_no_worker_fits(void **state)
{
    (void)state;
    fx_t *f = fx_new(NULL);
    hello(f, "w1", 2, 0);
    int64_t j = submit(f, "{\"type\":\"noop\",\"resources\":{\"gpus\":2}}");
    ks_sched_dispatch(f->s);
    json_t *o = job(f, j);
    const char *text = json_string_value(json_object_get(json_object_get(o, "reason"), "text"));
    assert_non_null(strstr(text, "no worker with 1 core, 2 GPUs"));
    json_decref(o);
    hello(f, "gpu1", 8, 2);
    ks_sched_dispatch(f->s);
    assert_int_equal(tasks_since(f, 0), 1);
    assert_string_equal(f->sent[0].worker, "gpu1");
    fx_free(f);
}

static void test_array_cap(void **state)
{
    (void)state;
    fx_t *f = fx_new(NULL);
    hello(f, "w1", 8, 0);
    int64_t a = submit(f, "{\"type\":\"noop\",\"array\":\"0-4%2\"}");
    ks_sched_dispatch(f->s);
    ks_sched_dispatch(f->s);
    assert_int_equal(tasks_since(f, 0), 2);
    assert_job(f, a, "running", NULL);
    size_t handled = 0;
    for (int round = 0; round < 10 && handled < f->n_sent; round++) {
        size_t n = f->n_sent;
        for (; handled < n; handled++)
            done(f, &f->sent[handled]);
        ks_sched_dispatch(f->s);
        ks_sched_dispatch(f->s);
        /* never more than the cap in flight */
        assert_true(f->n_sent - handled <= 2);
    }
    assert_int_equal(f->n_sent, 5);
    assert_job(f, a, "succeeded", NULL);
    json_t *o = job(f, a);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(o, "tasks"), "succeeded")),
                     5);
    json_decref(o);
    fx_free(f);
}

static void test_deps_retries_timeout(void **state)
{
    (void)state;
    fx_t *f = fx_new(NULL);
    hello(f, "w1", 4, 0);
    int64_t a = submit(f, "{\"type\":\"noop\",\"max_retries\":1}");
    char spec[128];
    snprintf(spec, sizeof spec, "{\"type\":\"noop\",\"depends_on\":[%lld]}", (long long)a);
    int64_t b = submit(f, spec);
    snprintf(spec, sizeof spec, "{\"type\":\"noop\",\"depends_on\":[%lld]}", (long long)b);
    int64_t c = submit(f, spec);
    ks_sched_dispatch(f->s);
    assert_int_equal(tasks_since(f, 0), 1);
    assert_job(f, b, "queued", "dependency");
    /* First failure: a retry after the backoff; second: a fails, b and c are cancelled. */
    failed(f, &f->sent[0], "signal");
    assert_job(f, a, "running", NULL);
    sleep_ms(5);
    ks_sched_dispatch(f->s);
    assert_int_equal(tasks_since(f, 0), 2);
    failed(f, &f->sent[1], "error");
    assert_job(f, a, "failed", "task_failed");
    assert_job(f, b, "cancelled", "dependency_failed");
    assert_job(f, c, "cancelled", "dependency_failed");

    /* Timeout. */
    int64_t t = submit(f, "{\"type\":\"noop\",\"timeout_s\":0.05}");
    ks_sched_dispatch(f->s);
    sleep_ms(80);
    ks_sched_tick(f->s);
    assert_job(f, t, "timeout", "timeout");
    /* The late result under the old lease changes nothing. */
    done(f, &f->sent[f->n_sent - 2]);
    assert_job(f, t, "timeout", "timeout");
    fx_free(f);
}

/* A lost worker's tasks run elsewhere; a restart keeps running tasks. */
static void test_lost_worker_and_reload(void **state)
{
    (void)state;
    ks_opts_t o = {.lease_ms = 100};
    fx_t *f = fx_new(&o);
    hello(f, "w1", 2, 0);
    int64_t j = submit(f, "{\"type\":\"noop\",\"tasks\":2}");
    ks_sched_dispatch(f->s);
    assert_int_equal(tasks_since(f, 0), 2);
    sleep_ms(150);
    hello(f, "w2", 2, 0);
    ks_sched_tick(f->s);
    ks_sched_dispatch(f->s);
    assert_int_equal(tasks_since(f, 2), 2);
    assert_string_equal(f->sent[f->n_sent - 1].worker, "w2");
    /* w1's late done is ignored; w2's count. */
    done(f, &f->sent[0]);
    assert_job(f, j, "running", NULL);
    done(f, &f->sent[2]);

    /* Restart: the store is all the new scheduler has. */
    sent_t other = f->sent[3];
    close_sched(f);
    f->n_sent = 0;
    open_sched(f, &o);
    assert_job(f, j, "running", NULL);
    /* w2 comes back still running the other task under its lease: it is kept... */
    msg(f, "w2", KC_MSG_HEARTBEAT,
        json_pack("{s:s, s:i, s:i, s:i, s:[{s:I, s:s}]}", "worker_id", "w2", "cores", 2,
                  "memory_mb", 4096, "gpus", 0, "running", "task_id",
                  (json_int_t)other.task_id, "lease_id", other.lease));
    ks_sched_dispatch(f->s);
    assert_int_equal(tasks_since(f, 0), 0);
    /* ...and a lease it holds that the scheduler does not gets a cancel. */
    msg(f, "w2", KC_MSG_HEARTBEAT,
        json_pack("{s:s, s:[{s:I, s:s}, {s:I, s:s}]}", "worker_id", "w2", "running", "task_id",
                  (json_int_t)other.task_id, "lease_id", other.lease, "task_id", (json_int_t)999,
                  "lease_id", "stale"));
    assert_int_equal(f->n_sent, 1);
    assert_int_equal(f->sent[0].type, KC_MSG_CANCEL);
    assert_int_equal(f->sent[0].task_id, 999);
    done(f, &other);
    assert_job(f, j, "succeeded", NULL);

    /* A task its worker no longer lists, well after dispatch, runs again. */
    int64_t k = submit(f, "{\"type\":\"noop\"}");
    ks_sched_dispatch(f->s);
    assert_int_equal(tasks_since(f, 0), 1);
    sleep_ms(150);
    msg(f, "w2", KC_MSG_HEARTBEAT, json_pack("{s:s, s:[]}", "worker_id", "w2", "running"));
    ks_sched_dispatch(f->s);
    assert_int_equal(tasks_since(f, 0), 2);
    done(f, &f->sent[f->n_sent - 1]);
    assert_job(f, k, "succeeded", NULL);
    fx_free(f);
}

/* Out of memory is final (no retry); a task that keeps losing its worker ends node_fail. */
static void test_oom_and_node_fail(void **state)
{
    (void)state;
    ks_opts_t o = {.lease_ms = 50, .max_node_fails = 2};
    fx_t *f = fx_new(&o);
    hello(f, "w1", 2, 0);
    int64_t m = submit(f, "{\"type\":\"noop\",\"max_retries\":3}");
    ks_sched_dispatch(f->s);
    failed(f, &f->sent[0], "out_of_memory");
    assert_job(f, m, "out_of_memory", "out_of_memory");

    int64_t n = submit(f, "{\"type\":\"noop\"}");
    char id[16];
    for (int round = 0; round < 3; round++) {
        snprintf(id, sizeof id, "n%d", round);
        hello(f, id, 2, 0);
        size_t mark = f->n_sent;
        ks_sched_dispatch(f->s);
        assert_int_equal(tasks_since(f, mark), 1);
        sleep_ms(80);   /* every worker goes silent */
        ks_sched_tick(f->s);
    }
    assert_job(f, n, "node_fail", "node_fail");
    fx_free(f);
}

/* /metrics (sched_metrics.c): job counts from the store, the task-duration
 * histogram, workers and GPUs from the hello, drift scores set by a drift job. */
static void test_metrics(void **state)
{
    (void)state;
    fx_t *f = fx_new(NULL);
    msg(f, "w1", KC_MSG_HELLO,
        json_pack("{s:s, s:i, s:i, s:i, s:[], s:[s,s], s:[i,i]}", "worker_id", "w1", "cores", 4,
                  "memory_mb", 4096, "gpus", 2, "running", "gpu_names", "NVIDIA H200",
                  "NVIDIA H200", "gpu_memory_mb", 1000, 2000));
    int64_t a = submit(f, "{\"type\":\"noop\"}");
    int64_t b = submit(f, "{\"type\":\"noop\"}");
    submit(f, "{\"type\":\"noop\",\"resources\":{\"cores\":64}}");   /* never fits */
    ks_sched_dispatch(f->s);
    assert_int_equal(tasks_since(f, 0), 2);
    done(f, &f->sent[0]);
    failed(f, &f->sent[1], "error");
    assert_job(f, a, "succeeded", NULL);
    assert_job(f, b, "failed", "task_failed");
    kiln_err_t err;
    assert_int_equal(ks_sched_set_drift_score(f->s, "bearing", "rms\"ch1", 0.5, &err), 0);
    assert_int_equal(ks_sched_set_drift_score(f->s, "", "x", 1, &err), KILN_EINVAL);
    char *text = NULL;
    size_t len = 0;
    assert_int_equal(ks_sched_metrics(f->s, &text, &len, &err), 0);
    assert_int_equal(strlen(text), len);
    const char *want[] = {
        "kiln_jobs_total{type=\"noop\",state=\"submitted\"} 3\n",
        "kiln_jobs_total{type=\"noop\",state=\"started\"} 2\n",
        "kiln_jobs_total{type=\"noop\",state=\"succeeded\"} 1\n",
        "kiln_jobs_total{type=\"noop\",state=\"failed\"} 1\n",
        "kiln_jobs{type=\"noop\",state=\"queued\"} 1\n",
        "kiln_queue_depth 1\n",
        "kiln_task_duration_seconds_count{type=\"noop\"} 2\n",
        "kiln_task_duration_seconds_bucket{type=\"noop\",le=\"+Inf\"} 2\n",
        "kiln_workers{state=\"alive\"} 1\n",
        "kiln_worker_cores{worker=\"w1\",state=\"free\"} 4\n",
        "kiln_worker_gpus{worker=\"w1\",state=\"free\"} 2\n",
        "kiln_worker_gpu_memory_bytes{worker=\"w1\"} 3145728000\n",
        "kiln_worker_info{worker=\"w1\",host=\"\",gpu_names=\"NVIDIA H200, NVIDIA H200\"} 1\n",
        "kiln_feature_drift_score{model=\"bearing\",feature=\"rms\\\"ch1\"} 0.5\n",
        "\nprocess_resident_memory_bytes ",
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        if (!strstr(text, want[i]))
            fail_msg("/metrics lacks %s in:\n%s", want[i], text);
    assert_null(strstr(text, "state=\"cancelled\""));
    kiln_free(text);
    fx_free(f);
}

/* ---- recurring jobs */

static void sleep_until_ns(int64_t t_ns)
{
    int64_t d = t_ns - ks_now_ns();
    if (d > 0) {
        struct timespec ts = {(time_t)(d / 1000000000), (long)(d % 1000000000)};
        nanosleep(&ts, NULL);
    }
}

/* The template's "schedule" object field (an integer; -1 for null). */
static int64_t sched_field(fx_t *f, int64_t id, const char *field)
{
    json_t *o = job(f, id);
    json_t *v = json_object_get(json_object_get(o, "schedule"), field);
    int64_t x = json_is_integer(v) ? json_integer_value(v) : -1;
    json_decref(o);
    return x;
}

static size_t n_jobs(fx_t *f)
{
    kiln_err_t err;
    json_t *l = ks_sched_jobs_json(f->s, NULL, NULL, 0, &err);
    assert_non_null(l);
    size_t n = json_array_size(json_object_get(l, "jobs"));
    json_decref(l);
    return n;
}

/* A template fires an instance once its time has passed, not before; while
 * that instance is unfinished the next time is skipped (no pile-up). */
static void test_recurring_fires(void **state)
{
    (void)state;
    ks_opts_t o = {.max_active_jobs = 1};
    fx_t *f = fx_new(&o);
    hello(f, "w1", 2, 0);
    int64_t t = submit(f, "{\"type\":\"noop\",\"name\":\"tick\",\"schedule\":\"@every 1s\"}");
    assert_job(f, t, "queued", "schedule");
    json_t *o1 = job(f, t);
    assert_string_equal(json_string_value(json_object_get(json_object_get(o1, "schedule"), "expr")),
                        "@every 1s");
    assert_true(json_is_null(json_object_get(o1, "scheduled_by")));
    const char *text = json_string_value(json_object_get(json_object_get(o1, "reason"), "text"));
    assert_non_null(strstr(text, "next run at "));
    assert_non_null(strstr(text, "(0 runs so far)"));
    json_decref(o1);
    /* the template is the one active job admission allows */
    kiln_err_t err;
    int64_t id;
    int existed;
    const char *plain = "{\"type\":\"noop\"}";
    assert_int_equal(ks_sched_submit(f->s, plain, strlen(plain), NULL, &id, &existed, &err),
                     KILN_EBUSY);

    int64_t next = sched_field(f, t, "next_run_ns");
    assert_true(next > ks_now_ns() - 1000000);
    ks_sched_tick(f->s);
    ks_sched_dispatch(f->s);
    if (ks_now_ns() < next) {   /* the tick ran before the fire time: nothing yet */
        assert_int_equal(sched_field(f, t, "runs"), 0);
        assert_int_equal(tasks_since(f, 0), 0);
    }
    sleep_until_ns(next + 20000000);
    ks_sched_tick(f->s);
    ks_sched_dispatch(f->s);
    assert_int_equal(sched_field(f, t, "runs"), 1);
    assert_int_equal(tasks_since(f, 0), 1);
    int64_t inst = f->sent[0].job_id;
    assert_true(inst != t);
    json_t *oi = job(f, inst);
    char want[64], when[32];
    ks_cron_iso(next, 0, when, sizeof when);
    snprintf(want, sizeof want, "tick@%s", when);
    assert_string_equal(json_string_value(json_object_get(oi, "name")), want);
    assert_int_equal(json_integer_value(json_object_get(oi, "scheduled_by")), t);
    assert_true(json_is_null(json_object_get(oi, "schedule")));
    assert_null(json_object_get(json_object_get(oi, "spec"), "schedule"));
    json_decref(oi);
    assert_job(f, inst, "running", NULL);
    assert_job(f, t, "queued", "schedule");
    o1 = job(f, t);
    text = json_string_value(json_object_get(json_object_get(o1, "reason"), "text"));
    assert_non_null(strstr(text, "(1 run so far)"));
    json_decref(o1);

    /* The next time comes while the instance runs: skipped, no second instance. */
    int64_t next2 = sched_field(f, t, "next_run_ns");
    assert_int_equal(next2, next + 1000000000LL);
    sleep_until_ns(next2 + 20000000);
    ks_sched_tick(f->s);
    ks_sched_dispatch(f->s);
    assert_int_equal(sched_field(f, t, "runs"), 1);
    assert_int_equal(sched_field(f, t, "skipped"), 1);
    assert_int_equal(tasks_since(f, 0), 1);
    assert_int_equal(n_jobs(f), 2);
    /* Once it ended, the following time makes the second run. */
    done(f, &f->sent[0]);
    assert_job(f, inst, "succeeded", NULL);
    int64_t next3 = sched_field(f, t, "next_run_ns");
    sleep_until_ns(next3 + 20000000);
    ks_sched_tick(f->s);
    ks_sched_dispatch(f->s);
    assert_int_equal(sched_field(f, t, "runs"), 2);
    assert_int_equal(tasks_since(f, 0), 2);
    assert_int_equal(n_jobs(f), 3);
    fx_free(f);
}

/* A restart keeps the next fire time; one down over several fire times
 * fires once; the store refuses a second instance for one fire time;
 * cancelling the template stops the runs but not the running instance. */
static void test_recurring_reload_cancel(void **state)
{
    (void)state;
    fx_t *f = fx_new(NULL);
    int64_t t = submit(f, "{\"type\":\"noop\",\"name\":\"nightly\",\"schedule\":\"@every 1s\"}");
    int64_t n1 = sched_field(f, t, "next_run_ns");
    sleep_until_ns(n1 + 20000000);
    ks_sched_tick(f->s);
    ks_sched_dispatch(f->s);
    assert_int_equal(sched_field(f, t, "runs"), 1);
    int64_t next = sched_field(f, t, "next_run_ns");
    int64_t inst1 = t + 1;
    assert_job(f, inst1, "queued", "no_workers");

    /* Restart before the next time: the same next time, runs, and link. */
    close_sched(f);
    open_sched(f, NULL);
    assert_int_equal(sched_field(f, t, "next_run_ns"), next);
    assert_int_equal(sched_field(f, t, "runs"), 1);
    assert_job(f, t, "queued", "schedule");
    json_t *oi = job(f, inst1);
    assert_int_equal(json_integer_value(json_object_get(oi, "scheduled_by")), t);
    json_decref(oi);
    /* The reloaded instance still counts: its template skips while it is queued. */
    sleep_until_ns(next + 20000000);
    ks_sched_tick(f->s);
    assert_int_equal(sched_field(f, t, "runs"), 1);
    assert_int_equal(sched_field(f, t, "skipped"), 1);
    kiln_err_t err;
    assert_int_equal(ks_sched_cancel(f->s, inst1, &err), 0);
    assert_job(f, t, "queued", "schedule");

    /* Down over two or more fire times: one catch-up instance, for the stored time. */
    int64_t missed = sched_field(f, t, "next_run_ns");
    close_sched(f);
    sleep_until_ns(missed + 2500000000LL);
    open_sched(f, NULL);
    size_t before = n_jobs(f);
    ks_sched_tick(f->s);
    ks_sched_tick(f->s);
    assert_int_equal(sched_field(f, t, "runs"), 2);
    assert_int_equal(n_jobs(f), before + 1);
    assert_true(sched_field(f, t, "next_run_ns") > ks_now_ns() - 200000000LL);
    int64_t inst2 = t + 2;
    oi = job(f, inst2);
    char want[64], when[32];
    ks_cron_iso(missed, 0, when, sizeof when);
    snprintf(want, sizeof want, "nightly@%s", when);
    assert_string_equal(json_string_value(json_object_get(oi, "name")), want);
    json_decref(oi);

    /* The store itself refuses a second instance for the same fire time. */
    st_state_job_t row = {0};
    row.project = "default";
    row.name = "dup";
    row.type = "noop";
    row.spec_json = "{\"type\":\"noop\"}";
    row.scheduled_by = t;
    row.scheduled_for_ns = missed;
    int64_t dup;
    assert_int_equal(st_state_job_insert(f->st, &row, &dup, NULL, &err), KILN_EEXIST);
    assert_non_null(strstr(err.msg, "already has an instance"));

    /* Cancel the template: it ends, the running instance goes on, no more runs. */
    hello(f, "w1", 2, 0);
    ks_sched_dispatch(f->s);
    assert_int_equal(tasks_since(f, 0), 1);
    assert_job(f, inst2, "running", NULL);
    assert_int_equal(ks_sched_cancel(f->s, t, &err), 0);
    assert_job(f, t, "cancelled", "cancelled");
    assert_job(f, inst2, "running", NULL);
    assert_int_equal(sched_field(f, t, "next_run_ns"), -1);   /* null: no next run */
    assert_int_equal(sched_field(f, t, "runs"), 2);
    size_t n = n_jobs(f);
    sleep_ms(1100);
    ks_sched_tick(f->s);
    ks_sched_dispatch(f->s);
    assert_int_equal(n_jobs(f), n);
    done(f, &f->sent[0]);
    assert_job(f, inst2, "succeeded", NULL);
    /* and after a restart too */
    close_sched(f);
    open_sched(f, NULL);
    sleep_ms(1100);
    ks_sched_tick(f->s);
    assert_int_equal(n_jobs(f), n);
    fx_free(f);
}

/* Stores of schema version 1, 3, 4 and 5 are upgraded in place to 6: their
 * jobs read back, and recurring jobs work on them. */
static void test_schema_upgrade(void **state)
{
    (void)state;
    static const char *const downgrade[] = {
        /* to version 5: no drift results, runs without their input path */
        "DROP TABLE drift_results; ALTER TABLE runs DROP COLUMN input_path;"
        "PRAGMA user_version = 5;",
        /* to version 4: no step cache */
        "DROP TABLE drift_results; ALTER TABLE runs DROP COLUMN input_path;"
        "DROP TABLE step_cache; PRAGMA user_version = 4;",
        /* to version 3: no recurring jobs */
        "DROP TABLE drift_results; ALTER TABLE runs DROP COLUMN input_path;"
        "DROP TABLE step_cache; DROP INDEX jobs_scheduled; DROP TABLE schedules;"
        "ALTER TABLE jobs DROP COLUMN scheduled_by; ALTER TABLE jobs DROP COLUMN scheduled_for_ns;"
        "PRAGMA user_version = 3;",
        /* to version 1: no arrays, no registry either */
        "DROP TABLE drift_results; ALTER TABLE runs DROP COLUMN input_path;"
        "DROP TABLE step_cache; DROP INDEX jobs_scheduled; DROP TABLE schedules;"
        "ALTER TABLE jobs DROP COLUMN scheduled_by; ALTER TABLE jobs DROP COLUMN scheduled_for_ns;"
        "DROP INDEX jobs_array; ALTER TABLE jobs DROP COLUMN array_parent;"
        "ALTER TABLE jobs DROP COLUMN array_index; DROP TABLE alias_history; DROP TABLE aliases;"
        "DROP TABLE models; DROP TABLE runs; PRAGMA user_version = 1;",
    };
    for (size_t k = 0; k < sizeof downgrade / sizeof downgrade[0]; k++) {
        fx_t *f = fx_new(NULL);
        int64_t old = submit(f, "{\"type\":\"noop\",\"name\":\"old\"}");
        close_sched(f);
        char db[600];
        snprintf(db, sizeof db, "%s/state.db", f->dir);
        sqlite3 *raw = NULL;
        assert_int_equal(sqlite3_open(db, &raw), SQLITE_OK);
        char *msg = NULL;
        if (sqlite3_exec(raw, downgrade[k], NULL, NULL, &msg) != SQLITE_OK)
            fail_msg("downgrade %zu: %s", k, msg);
        sqlite3_close(raw);
        open_sched(f, NULL);
        ks_sched_dispatch(f->s);
        assert_job(f, old, "queued", "no_workers");
        json_t *o = job(f, old);
        assert_string_equal(json_string_value(json_object_get(o, "name")), "old");
        assert_true(json_is_null(json_object_get(o, "scheduled_by")));
        json_decref(o);
        int64_t t = submit(f, "{\"type\":\"noop\",\"schedule\":\"@hourly\"}");
        assert_job(f, t, "queued", "schedule");
        assert_int_equal(sched_field(f, t, "runs"), 0);
        fx_free(f);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_submit_errors),
        cmocka_unit_test(test_priority_fair_share),
        cmocka_unit_test(test_quota_and_gang),
        cmocka_unit_test(test_no_worker_fits),
        cmocka_unit_test(test_array_cap),
        cmocka_unit_test(test_deps_retries_timeout),
        cmocka_unit_test(test_lost_worker_and_reload),
        cmocka_unit_test(test_oom_and_node_fail),
        cmocka_unit_test(test_metrics),
        cmocka_unit_test(test_recurring_fires),
        cmocka_unit_test(test_recurring_reload_cancel),
        cmocka_unit_test(test_schema_upgrade),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
