/* test_state.c - the scheduler's state store: schema and reopen, jobs with
 * idempotency keys and deps, state transitions, task leases, requeue on
 * worker loss, a 10,000-task transaction, durability across kill -9, bad
 * input, and allocation failure on open and get. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>
#include <sqlite3.h>

#include "core/kiln_alloc.h"
#include "storage/state.h"

/* A fresh database path under TMPDIR per test. */
static void db_path(char *buf, size_t n, const char *name)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(buf, n, "%s/kiln_state_%d_%s.db", tmp && tmp[0] ? tmp : "/tmp", (int)getpid(), name);
    char side[600];
    unlink(buf);
    snprintf(side, sizeof side, "%s-wal", buf);
    unlink(side);
    snprintf(side, sizeof side, "%s-shm", buf);
    unlink(side);
}

static st_state_job_t make_job(const char *name, const char *project)
{
    st_state_job_t j = {0};
    j.project = (char *)project;
    j.name = (char *)name;
    j.type = "featurize";
    j.priority = 5;
    j.spec_json = "{\"type\":\"featurize\"}";
    j.max_retries = 2;
    j.timeout_s = 60;
    j.submitted_ns = 1000;
    return j;
}

static int64_t insert(st_state_t *st, const char *name, const char *project)
{
    st_state_job_t j = make_job(name, project);
    int64_t id = 0;
    kiln_err_t err;
    assert_int_equal(st_state_job_insert(st, &j, &id, NULL, &err), 0);
    assert_true(id > 0);
    return id;
}

static void test_schema_reopen(void **state)
{
    (void)state;
    char path[512];
    db_path(path, sizeof path, "schema");
    st_state_t *st = NULL;
    kiln_err_t err;
    assert_int_equal(st_state_open(path, &st, &err), 0);
    int64_t id = insert(st, "a", "p");
    st_state_close(&st);
    assert_null(st);
    st_state_close(&st);    /* harmless twice */

    st_state_opts_t opts = {.full_sync = 1, .busy_timeout_ms = 100};
    assert_int_equal(st_state_open_opts(path, &opts, &st, &err), 0);
    st_state_job_t j;
    assert_int_equal(st_state_job_get(st, id, &j, &err), 0);
    assert_string_equal(j.name, "a");
    st_state_job_free(&j);
    st_state_close(&st);

    /* The file is in WAL mode: the -wal file appears beside it while open. */
    assert_int_equal(st_state_open(path, &st, &err), 0);
    insert(st, "b", "p");
    char wal[600];
    snprintf(wal, sizeof wal, "%s-wal", path);
    assert_int_equal(access(wal, F_OK), 0);
    st_state_close(&st);
    unlink(path);
}

static void test_insert_get_list(void **state)
{
    (void)state;
    char path[512];
    db_path(path, sizeof path, "jobs");
    st_state_t *st = NULL;
    kiln_err_t err;
    assert_int_equal(st_state_open(path, &st, &err), 0);
    int64_t a = insert(st, "a", "plant-7");
    int64_t b = insert(st, "b", "plant-8");
    st_state_job_t jc = make_job("c", "plant-7");
    int64_t deps[] = {a, b};
    jc.depends_on = deps;
    jc.n_depends_on = 2;
    int64_t c;
    assert_int_equal(st_state_job_insert(st, &jc, &c, NULL, &err), 0);

    st_state_job_t g;
    assert_int_equal(st_state_job_get(st, c, &g, &err), 0);
    assert_int_equal(g.id, c);
    assert_string_equal(g.project, "plant-7");
    assert_string_equal(g.type, "featurize");
    assert_string_equal(g.spec_json, "{\"type\":\"featurize\"}");
    assert_int_equal(g.priority, 5);
    assert_int_equal(g.max_retries, 2);
    assert_int_equal(g.timeout_s, 60);
    assert_int_equal(g.submitted_ns, 1000);
    assert_int_equal(g.state, ST_STATE_QUEUED);
    assert_null(g.idempotency_key);
    assert_null(g.reason_code);
    assert_int_equal(g.n_depends_on, 2);
    assert_int_equal(g.depends_on[0], a);
    assert_int_equal(g.depends_on[1], b);
    st_state_job_free(&g);

    assert_int_equal(st_state_job_get(st, 999, &g, &err), KILN_ENOTFOUND);

    /* A dependency on a job that does not exist is refused, nothing stored. */
    int64_t ghost[] = {4242};
    jc.depends_on = ghost;
    jc.n_depends_on = 1;
    int64_t d = 0;
    assert_int_equal(st_state_job_insert(st, &jc, &d, NULL, &err), KILN_ENOTFOUND);
    assert_non_null(strstr(err.msg, "4242"));
    int64_t n;
    assert_int_equal(st_state_job_count(st, ST_STATE_QUEUED, &n, &err), 0);
    assert_int_equal(n, 3);
    st_state_close(&st);
    unlink(path);
}

struct collect { int n; int64_t ids[16]; char projects[16][32]; };
static int collect_job(const st_state_job_t *j, void *ud)
{
    struct collect *c = ud;
    c->ids[c->n] = j->id;
    snprintf(c->projects[c->n], 32, "%s", j->project);
    c->n++;
    return 0;
}
static int stop_first(const st_state_job_t *j, void *ud)
{
    (void)j;
    (*(int *)ud)++;
    return 1;
}

static void test_list_filter(void **state)
{
    (void)state;
    char path[512];
    db_path(path, sizeof path, "list");
    st_state_t *st = NULL;
    kiln_err_t err;
    assert_int_equal(st_state_open(path, &st, &err), 0);
    int64_t a = insert(st, "a", "p1");
    int64_t b = insert(st, "b", "p2");
    int64_t c = insert(st, "c", "p1");
    assert_int_equal(st_state_job_set_state(st, b, ST_STATE_RUNNING, NULL, NULL, 5, &err), 0);

    struct collect all = {0}, p1 = {0}, queued = {0}, both = {0};
    assert_int_equal(st_state_job_list(st, NULL, NULL, collect_job, &all, &err), 0);
    assert_int_equal(all.n, 3);
    assert_int_equal(all.ids[0], a);
    assert_int_equal(st_state_job_list(st, NULL, "p1", collect_job, &p1, &err), 0);
    assert_int_equal(p1.n, 2);
    assert_int_equal(p1.ids[1], c);
    st_state_status_t q = ST_STATE_QUEUED, r = ST_STATE_RUNNING;
    assert_int_equal(st_state_job_list(st, &q, NULL, collect_job, &queued, &err), 0);
    assert_int_equal(queued.n, 2);
    assert_int_equal(st_state_job_list(st, &r, "p2", collect_job, &both, &err), 0);
    assert_int_equal(both.n, 1);
    assert_int_equal(both.ids[0], b);
    assert_string_equal(both.projects[0], "p2");
    int calls = 0;
    assert_int_equal(st_state_job_list(st, NULL, NULL, stop_first, &calls, &err), 0);
    assert_int_equal(calls, 1);
    st_state_close(&st);
    unlink(path);
}

static void test_idempotency(void **state)
{
    (void)state;
    char path[512];
    db_path(path, sizeof path, "idem");
    st_state_t *st = NULL;
    kiln_err_t err;
    assert_int_equal(st_state_open(path, &st, &err), 0);
    st_state_job_t j = make_job("a", "p");
    j.idempotency_key = "client-42-req-1";
    int64_t id1 = 0, id2 = 0;
    int existed = -1;
    assert_int_equal(st_state_job_insert(st, &j, &id1, &existed, &err), 0);
    assert_int_equal(existed, 0);
    j.name = "a-retry";
    assert_int_equal(st_state_job_insert(st, &j, &id2, &existed, &err), 0);
    assert_int_equal(existed, 1);
    assert_int_equal(id1, id2);
    j.idempotency_key = "client-42-req-2";
    assert_int_equal(st_state_job_insert(st, &j, &id2, &existed, &err), 0);
    assert_int_equal(existed, 0);
    assert_true(id2 != id1);
    int64_t n;
    assert_int_equal(st_state_job_count(st, ST_STATE_QUEUED, &n, &err), 0);
    assert_int_equal(n, 2);
    st_state_job_t g;
    assert_int_equal(st_state_job_get(st, id1, &g, &err), 0);
    assert_string_equal(g.name, "a");
    assert_string_equal(g.idempotency_key, "client-42-req-1");
    st_state_job_free(&g);
    st_state_close(&st);
    unlink(path);
}

static void test_transitions(void **state)
{
    (void)state;
    char path[512];
    db_path(path, sizeof path, "trans");
    st_state_t *st = NULL;
    kiln_err_t err;
    assert_int_equal(st_state_open(path, &st, &err), 0);
    int64_t a = insert(st, "a", "p");
    assert_int_equal(st_state_job_set_state(st, a, ST_STATE_QUEUED, "dependency",
                                            "waiting for job 12", 10, &err), 0);
    st_state_job_t g;
    assert_int_equal(st_state_job_get(st, a, &g, &err), 0);
    assert_string_equal(g.reason_code, "dependency");
    assert_string_equal(g.reason_text, "waiting for job 12");
    st_state_job_free(&g);
    assert_int_equal(st_state_job_set_state(st, a, ST_STATE_RUNNING, NULL, NULL, 20, &err), 0);
    assert_int_equal(st_state_job_set_state(st, a, ST_STATE_SUCCEEDED, NULL, NULL, 30, &err), 0);
    assert_int_equal(st_state_job_get(st, a, &g, &err), 0);
    assert_int_equal(g.state, ST_STATE_SUCCEEDED);
    assert_int_equal(g.started_ns, 20);
    assert_int_equal(g.ended_ns, 30);
    assert_null(g.reason_code);
    st_state_job_free(&g);

    /* Every final state is final: nothing moves out of it. */
    for (int f = ST_STATE_SUCCEEDED; f < ST_STATE_N_STATUS; f++) {
        int64_t id = insert(st, "f", "p");
        assert_int_equal(st_state_job_set_state(st, id, (st_state_status_t)f, "r", "t", 1, &err), 0);
        assert_true(st_state_status_is_final((st_state_status_t)f));
        for (int to = 0; to < ST_STATE_N_STATUS; to++) {
            assert_int_equal(st_state_job_set_state(st, id, (st_state_status_t)to, NULL, NULL, 2,
                                                    &err), KILN_EINVAL);
            assert_non_null(strstr(err.msg, st_state_status_name((st_state_status_t)f)));
        }
        assert_int_equal(st_state_job_get(st, id, &g, &err), 0);
        assert_int_equal(g.state, f);
        st_state_job_free(&g);
    }
    assert_false(st_state_status_is_final(ST_STATE_QUEUED));
    assert_false(st_state_status_is_final(ST_STATE_RUNNING));
    assert_int_equal(st_state_job_set_state(st, 999, ST_STATE_RUNNING, NULL, NULL, 1, &err),
                     KILN_ENOTFOUND);
    assert_int_equal(st_state_job_set_state(st, a, (st_state_status_t)99, NULL, NULL, 1, &err),
                     KILN_EINVAL);
    int64_t n;
    assert_int_equal(st_state_job_count(st, ST_STATE_SUCCEEDED, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_int_equal(st_state_job_count(st, ST_STATE_OUT_OF_MEMORY, &n, &err), 0);
    assert_int_equal(n, 1);

    /* Names round-trip; unknown names are refused naming the text. */
    for (int s = 0; s < ST_STATE_N_STATUS; s++) {
        st_state_status_t back;
        assert_int_equal(st_state_status_parse(st_state_status_name((st_state_status_t)s), &back,
                                               &err), 0);
        assert_int_equal(back, s);
    }
    st_state_status_t back;
    assert_int_equal(st_state_status_parse("done", &back, &err), KILN_EINVAL);
    assert_non_null(strstr(err.msg, "\"done\""));
    assert_int_equal(st_state_status_parse(NULL, &back, &err), KILN_EINVAL);
    assert_null(st_state_status_name((st_state_status_t)-1));
    assert_string_equal(st_state_status_name(ST_STATE_NODE_FAIL), "node_fail");
    st_state_close(&st);
    unlink(path);
}

struct tasks { int n; st_state_status_t state[8]; int attempts[8]; char lease[8][32];
               char out[8][64]; };
static int collect_task(const st_state_task_t *t, void *ud)
{
    struct tasks *c = ud;
    c->state[c->n] = t->state;
    c->attempts[c->n] = t->attempts;
    snprintf(c->lease[c->n], 32, "%s", t->lease_id ? t->lease_id : "");
    snprintf(c->out[c->n], 64, "%s", t->output_path ? t->output_path : "");
    c->n++;
    return 0;
}

static int collect_ids(const st_state_job_t *j, void *ud)
{
    struct { int64_t *ids; int n; } *c = ud;
    c->ids[c->n++] = j->id;
    return 0;
}

static void test_leases_and_requeue(void **state)
{
    (void)state;
    char path[512];
    db_path(path, sizeof path, "lease");
    st_state_t *st = NULL;
    kiln_err_t err;
    assert_int_equal(st_state_open(path, &st, &err), 0);
    int64_t job = insert(st, "a", "p");
    int64_t t[3];
    for (int i = 0; i < 3; i++)
        assert_int_equal(st_state_task_insert(st, job, i, i * 100, 100, &t[i], &err), 0);
    assert_int_equal(st_state_worker_hello(st, "w1", 8, 16000, 1, 1, &err), 0);
    assert_int_equal(st_state_worker_hello(st, "w2", 4, 8000, 0, 1, &err), 0);

    assert_int_equal(st_state_task_claim(st, t[0], "L1", "w1", 5, &err), 0);
    assert_int_equal(st_state_task_claim(st, t[1], "L2", "w1", 5, &err), 0);
    assert_int_equal(st_state_task_claim(st, t[2], "L3", "w2", 5, &err), 0);
    /* A running task cannot be claimed again. */
    assert_int_equal(st_state_task_claim(st, t[0], "L9", "w2", 6, &err), KILN_EINVAL);
    assert_non_null(strstr(err.msg, "running"));
    assert_int_equal(st_state_task_claim(st, 9999, "L9", "w2", 6, &err), KILN_ENOTFOUND);

    /* w1 is lost: its two tasks go back to the queue with attempts + 1. */
    assert_int_equal(st_state_worker_mark_lost(st, "w1", &err), 0);
    int64_t n = 0;
    assert_int_equal(st_state_task_requeue_worker(st, "w1", &n, &err), 0);
    assert_int_equal(n, 2);
    st_state_worker_t w;
    assert_int_equal(st_state_worker_get(st, "w1", &w, &err), 0);
    assert_int_equal(w.lost, 1);

    /* The lost worker's late "done" carries a stale lease: refused. */
    assert_int_equal(st_state_task_finish(st, t[0], "L1", ST_STATE_SUCCEEDED, "out.L1", 7, &err),
                     KILN_ESTALE);
    assert_non_null(strstr(err.msg, "stale lease"));
    assert_int_equal(st_state_task_claim(st, t[0], "L4", "w2", 8, &err), 0);
    assert_int_equal(st_state_task_finish(st, t[0], "L1", ST_STATE_SUCCEEDED, "out.L1", 9, &err),
                     KILN_ESTALE);
    assert_non_null(strstr(err.msg, "L4"));
    assert_int_equal(st_state_task_finish(st, t[0], "L4", ST_STATE_SUCCEEDED, "out.L4", 10, &err),
                     0);
    /* Run twice, commits once: a second finish under the same lease is refused too. */
    assert_int_equal(st_state_task_finish(st, t[0], "L4", ST_STATE_SUCCEEDED, "out.again", 11,
                                          &err), KILN_ESTALE);
    assert_int_equal(st_state_task_finish(st, t[2], "L3", ST_STATE_FAILED, NULL, 12, &err), 0);
    assert_int_equal(st_state_task_finish(st, t[1], "L2", ST_STATE_CANCELLED, NULL, 12, &err),
                     KILN_EINVAL);
    assert_int_equal(st_state_task_finish(st, t[1], "", ST_STATE_SUCCEEDED, NULL, 12, &err),
                     KILN_EINVAL);

    struct tasks c = {0};
    assert_int_equal(st_state_task_list(st, job, collect_task, &c, &err), 0);
    assert_int_equal(c.n, 3);
    assert_int_equal(c.state[0], ST_STATE_SUCCEEDED);
    assert_string_equal(c.out[0], "out.L4");
    assert_int_equal(c.attempts[0], 1);
    assert_int_equal(c.state[1], ST_STATE_QUEUED);
    assert_int_equal(c.attempts[1], 1);
    assert_string_equal(c.lease[1], "");
    assert_int_equal(c.state[2], ST_STATE_FAILED);
    assert_int_equal(c.attempts[2], 0);

    /* Workers: hello again revives and updates; heartbeat of a stranger fails. */
    assert_int_equal(st_state_worker_hello(st, "w1", 16, 32000, 2, 20, &err), 0);
    assert_int_equal(st_state_worker_heartbeat(st, "w1", 25, &err), 0);
    assert_int_equal(st_state_worker_get(st, "w1", &w, &err), 0);
    assert_int_equal(w.lost, 0);
    assert_int_equal(w.cores, 16);
    assert_int_equal(w.memory_mb, 32000);
    assert_int_equal(w.gpus, 2);
    assert_int_equal(w.last_heartbeat_ns, 25);
    assert_int_equal(st_state_worker_heartbeat(st, "ghost", 25, &err), KILN_ENOTFOUND);
    assert_non_null(strstr(err.msg, "ghost"));
    assert_int_equal(st_state_worker_mark_lost(st, "ghost", &err), KILN_ENOTFOUND);
    assert_int_equal(st_state_worker_get(st, "ghost", &w, &err), KILN_ENOTFOUND);
    assert_int_equal(st_state_worker_hello(st, "", 1, 1, 0, 1, &err), KILN_EINVAL);
    assert_int_equal(st_state_worker_hello(st, "w3", 0, 1, 0, 1, &err), KILN_EINVAL);
    assert_int_equal(st_state_task_insert(st, 4242, 0, 0, 10, NULL, &err), KILN_ENOTFOUND);
    assert_int_equal(st_state_task_insert(st, job, 0, 0, -1, NULL, &err), KILN_EINVAL);
    st_state_close(&st);
    unlink(path);
}

/* One task requeued under its own lease only; a job's open tasks cancelled
 * at once; array columns and newest-first listing. */
static void test_requeue_cancel_array(void **state)
{
    (void)state;
    char path[512];
    db_path(path, sizeof path, "requeue");
    st_state_t *st = NULL;
    kiln_err_t err;
    assert_int_equal(st_state_open(path, &st, &err), 0);
    int64_t parent = insert(st, "arr", "p");
    st_state_job_t j = make_job("arr[3]", "p");
    j.array_parent = parent;
    j.array_index = 3;
    int64_t child = 0;
    assert_int_equal(st_state_job_insert(st, &j, &child, NULL, &err), 0);
    st_state_job_t got;
    assert_int_equal(st_state_job_get(st, child, &got, &err), 0);
    assert_int_equal(got.array_parent, parent);
    assert_int_equal(got.array_index, 3);
    st_state_job_free(&got);
    assert_int_equal(st_state_job_get(st, parent, &got, &err), 0);
    assert_int_equal(got.array_parent, 0);
    assert_int_equal(got.array_index, -1);
    st_state_job_free(&got);

    int64_t t[3];
    for (int i = 0; i < 3; i++)
        assert_int_equal(st_state_task_insert(st, child, i, 0, 0, &t[i], &err), 0);
    assert_int_equal(st_state_task_claim(st, t[0], "A", "w", 1, &err), 0);
    assert_int_equal(st_state_task_claim(st, t[1], "B", "w", 1, &err), 0);
    assert_int_equal(st_state_task_requeue(st, t[0], "B", &err), KILN_ESTALE);
    assert_int_equal(st_state_task_requeue(st, t[0], "A", &err), 0);
    assert_int_equal(st_state_task_requeue(st, t[0], "A", &err), KILN_ESTALE);
    assert_int_equal(st_state_task_claim(st, t[0], "C", "w", 2, &err), 0);
    assert_int_equal(st_state_task_finish(st, t[1], "B", ST_STATE_SUCCEEDED, NULL, 3, &err), 0);
    int64_t n = 0;
    assert_int_equal(st_state_task_cancel_job(st, child, 4, &n, &err), 0);
    assert_int_equal(n, 2); /* t[0] running, t[2] queued; t[1] had succeeded */
    assert_int_equal(st_state_task_finish(st, t[0], "C", ST_STATE_SUCCEEDED, NULL, 5, &err),
                     KILN_ESTALE);
    assert_int_equal(st_state_job_set_attempts(st, child, 2, &err), 0);
    assert_int_equal(st_state_job_get(st, child, &got, &err), 0);
    assert_int_equal(got.attempts, 2);
    st_state_job_free(&got);
    assert_int_equal(st_state_job_set_attempts(st, 999, 2, &err), KILN_ENOTFOUND);

    int64_t ids[2];
    struct { int64_t *ids; int n; } c = {ids, 0};
    assert_int_equal(st_state_job_list_opts(st, NULL, NULL, 1, 2, collect_ids, &c, &err), 0);
    assert_int_equal(c.n, 2);
    assert_int_equal(ids[0], child);
    assert_int_equal(ids[1], parent);
    st_state_close(&st);
    unlink(path);
}

static int count_tasks(const st_state_task_t *t, void *ud)
{
    (void)t;
    (*(int *)ud)++;
    return 0;
}

static void test_batch_10000(void **state)
{
    (void)state;
    char path[512];
    db_path(path, sizeof path, "batch");
    st_state_t *st = NULL;
    kiln_err_t err;
    assert_int_equal(st_state_open(path, &st, &err), 0);
    int64_t job = insert(st, "big", "p");
    assert_int_equal(st_state_begin(st, &err), 0);
    for (int i = 0; i < 10000; i++)
        assert_int_equal(st_state_task_insert(st, job, i, (int64_t)i * 64, 64, NULL, &err), 0);
    assert_int_equal(st_state_commit(st, &err), 0);
    /* A rolled-back batch leaves nothing. */
    int64_t job2 = insert(st, "gone", "p");
    assert_int_equal(st_state_begin(st, &err), 0);
    for (int i = 0; i < 100; i++)
        assert_int_equal(st_state_task_insert(st, job2, i, i, 1, NULL, &err), 0);
    assert_int_equal(st_state_rollback(st, &err), 0);
    st_state_close(&st);

    assert_int_equal(st_state_open(path, &st, &err), 0);
    int n = 0, n2 = 0;
    assert_int_equal(st_state_task_list(st, job, count_tasks, &n, &err), 0);
    assert_int_equal(n, 10000);
    assert_int_equal(st_state_task_list(st, job2, count_tasks, &n2, &err), 0);
    assert_int_equal(n2, 0);
    /* A commit with no transaction open is an error, not a silent success. */
    assert_int_equal(st_state_commit(st, &err), KILN_EINTERNAL);
    assert_non_null(strstr(err.msg, "committing"));
    st_state_close(&st);
    unlink(path);
}

/* The child commits 5 jobs, starts a transaction with 7 more and is killed
 * with SIGKILL before committing: the parent must see exactly the 5. */
static void test_durability_kill9(void **state)
{
    (void)state;
    char path[512];
    db_path(path, sizeof path, "kill");
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        st_state_t *st = NULL;
        kiln_err_t err;
        if (st_state_open(path, &st, &err) < 0)
            _exit(2);
        if (st_state_begin(st, &err) < 0)
            _exit(3);
        for (int i = 0; i < 5; i++) {
            st_state_job_t j = make_job("kept", "p");
            int64_t id;
            if (st_state_job_insert(st, &j, &id, NULL, &err) < 0)
                _exit(4);
        }
        if (st_state_commit(st, &err) < 0)
            _exit(5);
        if (st_state_begin(st, &err) < 0)
            _exit(6);
        for (int i = 0; i < 7; i++) {
            st_state_job_t j = make_job("lost", "p");
            int64_t id;
            if (st_state_job_insert(st, &j, &id, NULL, &err) < 0)
                _exit(7);
        }
        kill(getpid(), SIGKILL);
        _exit(8);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGKILL);

    st_state_t *st = NULL;
    kiln_err_t err;
    assert_int_equal(st_state_open(path, &st, &err), 0);
    struct collect all = {0};
    assert_int_equal(st_state_job_list(st, NULL, NULL, collect_job, &all, &err), 0);
    assert_int_equal(all.n, 5);
    for (int i = 0; i < 5; i++) {
        st_state_job_t g;
        assert_int_equal(st_state_job_get(st, all.ids[i], &g, &err), 0);
        assert_string_equal(g.name, "kept");
        st_state_job_free(&g);
    }
    st_state_close(&st);
    unlink(path);
}

static void test_bad_input(void **state)
{
    (void)state;
    char path[512];
    kiln_err_t err;
    st_state_t *st = NULL;
    assert_int_equal(st_state_open(NULL, &st, &err), KILN_EINVAL);
    assert_int_equal(st_state_open("", &st, &err), KILN_EINVAL);
    assert_int_equal(st_state_open("/nonexistent-dir-kiln/x.db", &st, &err), KILN_EIO);
    assert_non_null(strstr(err.msg, "/nonexistent-dir-kiln/x.db"));
    assert_null(st);

    /* A file that is not a database: a clear error naming the path. */
    db_path(path, sizeof path, "notadb");
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    for (int i = 0; i < 200; i++)
        fputs("this is a text file, not an SQLite database\n", f);
    fclose(f);
    assert_int_equal(st_state_open(path, &st, &err), KILN_EFORMAT);
    assert_non_null(strstr(err.msg, path));
    assert_null(st);
    unlink(path);

    /* A database from a newer kiln is refused, not rewritten. */
    db_path(path, sizeof path, "newer");
    assert_int_equal(st_state_open(path, &st, &err), 0);
    st_state_close(&st);
    sqlite3 *raw = NULL;
    assert_int_equal(sqlite3_open(path, &raw), SQLITE_OK);
    assert_int_equal(sqlite3_exec(raw, "PRAGMA user_version = 99", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(raw);
    assert_int_equal(st_state_open(path, &st, &err), KILN_EUNSUPPORTED);
    assert_non_null(strstr(err.msg, path));
    assert_non_null(strstr(err.msg, "99"));
    assert_null(st);
    unlink(path);

    db_path(path, sizeof path, "bad");
    assert_int_equal(st_state_open(path, &st, &err), 0);
    const char *fields[] = {"project", "name", "type", "spec_json"};
    for (int k = 0; k < 4; k++) {
        for (int empty = 0; empty < 2; empty++) {
            st_state_job_t j = make_job("n", "p");
            char **slot = k == 0 ? &j.project : k == 1 ? &j.name : k == 2 ? &j.type : &j.spec_json;
            *slot = empty ? "" : NULL;
            int64_t id;
            assert_int_equal(st_state_job_insert(st, &j, &id, NULL, &err), KILN_EINVAL);
            assert_string_equal(err.where, fields[k]);
        }
    }
    st_state_job_t j = make_job("n", "p");
    j.idempotency_key = "";
    int64_t id;
    assert_int_equal(st_state_job_insert(st, &j, &id, NULL, &err), KILN_EINVAL);
    j = make_job("n", "p");
    j.max_retries = -1;
    assert_int_equal(st_state_job_insert(st, &j, &id, NULL, &err), KILN_EINVAL);
    j = make_job("n", "p");
    j.n_depends_on = 1;
    assert_int_equal(st_state_job_insert(st, &j, &id, NULL, &err), KILN_EINVAL);
    assert_int_equal(st_state_job_insert(st, NULL, &id, NULL, &err), KILN_EINVAL);
    assert_int_equal(st_state_job_insert(NULL, &j, &id, NULL, &err), KILN_EINVAL);
    st_state_status_t bogus = (st_state_status_t)42;
    assert_int_equal(st_state_job_list(st, &bogus, NULL, collect_job, NULL, &err), KILN_EINVAL);
    assert_int_equal(st_state_job_count(st, bogus, &id, &err), KILN_EINVAL);
    assert_int_equal(st_state_task_claim(st, 1, NULL, "w", 0, &err), KILN_EINVAL);
    assert_int_equal(st_state_task_claim(st, 1, "L", "", 0, &err), KILN_EINVAL);
    int64_t n;
    assert_int_equal(st_state_job_count(st, ST_STATE_QUEUED, &n, &err), 0);
    assert_int_equal(n, 0);
    st_state_close(&st);
    unlink(path);
}

/* Every allocation of open (SQLite's included, which goes through
 * kiln_alloc) fails in turn: each is an error, nothing leaks (ASan), and
 * the database is usable afterwards. */
static void test_alloc_fail_open(void **state)
{
    (void)state;
    char path[512];
    db_path(path, sizeof path, "oom_open");
    kiln_err_t err;
    st_state_t *st = NULL;
    int ok = 0;
    for (long k = 1; k < 20000 && !ok; k++) {
        kiln_alloc_fail_after(k);
        int rc = st_state_open(path, &st, &err);
        kiln_alloc_fail_after(0);
        if (rc == 0) {
            ok = 1;
            assert_true(k > 2);
        } else {
            assert_null(st);
            assert_int_equal(rc, KILN_ENOMEM);
            assert_true(err.msg[0] != '\0');
        }
        st_state_close(&st);
    }
    assert_true(ok);
    assert_int_equal(st_state_open(path, &st, &err), 0);
    insert(st, "after", "p");
    int64_t n;
    assert_int_equal(st_state_job_count(st, ST_STATE_QUEUED, &n, &err), 0);
    assert_int_equal(n, 1);
    st_state_close(&st);
    unlink(path);
}

static void test_alloc_fail_get(void **state)
{
    (void)state;
    char path[512];
    db_path(path, sizeof path, "oom_get");
    kiln_err_t err;
    st_state_t *st = NULL;
    assert_int_equal(st_state_open(path, &st, &err), 0);
    int64_t deps[6];
    for (int i = 0; i < 6; i++)
        deps[i] = insert(st, "dep", "p");
    st_state_job_t j = make_job("target", "p");
    j.idempotency_key = "key";
    j.depends_on = deps;
    j.n_depends_on = 6;
    int64_t id;
    assert_int_equal(st_state_job_insert(st, &j, &id, NULL, &err), 0);
    assert_int_equal(st_state_job_set_state(st, id, ST_STATE_QUEUED, "dependency", "waiting", 1,
                                            &err), 0);
    int ok = 0, failures = 0;
    for (long k = 1; k < 1000 && !ok; k++) {
        st_state_job_t g;
        kiln_alloc_fail_after(k);
        int rc = st_state_job_get(st, id, &g, &err);
        kiln_alloc_fail_after(0);
        if (rc == 0) {
            ok = 1;
            assert_string_equal(g.name, "target");
            assert_string_equal(g.reason_text, "waiting");
            assert_int_equal(g.n_depends_on, 6);
            st_state_job_free(&g);
        } else {
            failures++;
            assert_int_equal(rc, KILN_ENOMEM);
        }
    }
    assert_true(ok);
    assert_true(failures >= 8);     /* 7 strings + depends_on at least */
    st_state_close(&st);
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_schema_reopen),
        cmocka_unit_test(test_insert_get_list),
        cmocka_unit_test(test_list_filter),
        cmocka_unit_test(test_idempotency),
        cmocka_unit_test(test_transitions),
        cmocka_unit_test(test_leases_and_requeue),
        cmocka_unit_test(test_requeue_cancel_array),
        cmocka_unit_test(test_batch_10000),
        cmocka_unit_test(test_durability_kill9),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_alloc_fail_open),
        cmocka_unit_test(test_alloc_fail_get),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
