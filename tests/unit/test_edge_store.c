/* test_edge_store.c - edge/store and edge/stats, the pieces of kiln-edge's
 * update path that stand alone: the state file round trip (and a malformed
 * one named), the symlink swap stopped after every step as if killed
 * (current always names the old or the new model, never neither; a swap
 * before any model; the agent's own rollback), the pause hook the system
 * test edge_kill9_swap.sh kills at, garbage collection keeping
 * what the links name, the resume offset and which answers a resumed
 * download may use, and the report's latency quantiles and feature
 * statistics.  The whole path runs against kilnd in
 * tests/system/edge_update.sh. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "edge/stats.h"
#include "edge/store.h"

static char *tmpdir(void)
{
    static char buf[256];
    const char *t = getenv("TMPDIR");
    snprintf(buf, sizeof buf, "%s/edge-store-XXXXXX", t ? t : "/tmp");
    assert_non_null(mkdtemp(buf));
    return buf;
}

static void rm_rf(const char *d)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", d);
    assert_int_equal(system(cmd), 0);
}

static void mkmodel(const char *dir, const char *name)
{
    char p[1024];
    snprintf(p, sizeof p, "%s/models", dir);
    mkdir(p, 0700);
    snprintf(p, sizeof p, "%s/models/%s", dir, name);
    assert_int_equal(mkdir(p, 0700), 0);
    snprintf(p, sizeof p, "%s/models/%s/model.kmodel", dir, name);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs(name, f);
    fclose(f);
}

/* Which model DIR/link resolves to ("" when none), by following it. */
static void resolve(const char *dir, const char *link, char *out, size_t cap)
{
    char p[1024];
    snprintf(p, sizeof p, "%s/%s/model.kmodel", dir, link);
    out[0] = 0;
    FILE *f = fopen(p, "r");
    if (!f)
        return;
    size_t n = fread(out, 1, cap - 1, f);
    out[n] = 0;
    fclose(f);
}

static void test_state_file(void **state)
{
    (void)state;
    char *d = tmpdir();
    ke_state_t s, r;
    kiln_err_t err;
    assert_int_equal(ke_state_read(d, &r, &err), 0);      /* none yet: empty */
    assert_int_equal(r.last_seq, 0);
    assert_string_equal(r.model, "");
    memset(&s, 0, sizeof s);
    s.last_seq = 12;
    s.version = 7;
    s.failed_seq = 11;
    snprintf(s.model, sizeof s.model, "bearing");
    snprintf(s.current, sizeof s.current, "models/s12-v7-1");
    assert_int_equal(ke_state_write(d, &s, &err), 0);
    assert_int_equal(ke_state_read(d, &r, &err), 0);
    assert_int_equal(r.last_seq, 12);
    assert_int_equal(r.version, 7);
    assert_int_equal(r.failed_seq, 11);
    assert_string_equal(r.model, "bearing");
    assert_string_equal(r.current, "models/s12-v7-1");
    char p[1024];
    snprintf(p, sizeof p, "%s/state.json.tmp.%ld", d, (long)getpid());
    assert_int_not_equal(access(p, F_OK), 0);             /* no temporary left */
    snprintf(p, sizeof p, "%s/state.json", d);
    struct stat st;
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    /* malformed: named, and not taken as empty */
    FILE *f = fopen(p, "w");
    fputs("{\"last_seq\": \"twelve\"}", f);
    fclose(f);
    assert_true(ke_state_read(d, &r, &err) < 0);
    assert_non_null(strstr(err.msg, "last_seq"));
    f = fopen(p, "w");
    fputs("{\"last_seq\": 3,", f);
    fclose(f);
    assert_true(ke_state_read(d, &r, &err) < 0);
    assert_non_null(strstr(err.msg, "state.json"));
    /* device.json round trip, and a missing one says to enroll */
    ke_device_t dv, dr;
    assert_true(ke_device_read(d, &dr, &err) < 0);
    assert_non_null(strstr(err.msg, "enroll"));
    memset(&dv, 0, sizeof dv);
    snprintf(dv.device_id, sizeof dv.device_id, "dev-0123456789abcdef");
    snprintf(dv.fleet, sizeof dv.fleet, "plant-7");
    snprintf(dv.server, sizeof dv.server, "https://127.0.0.1:8443");
    assert_int_equal(ke_device_write(d, &dv, &err), 0);
    assert_int_equal(ke_device_read(d, &dr, &err), 0);
    assert_string_equal(dr.device_id, dv.device_id);
    assert_string_equal(dr.fleet, "plant-7");
    assert_string_equal(dr.server, dv.server);
    rm_rf(d);
}

/* A swap killed after each of its steps leaves current = old or new. */
static void test_swap_every_step(void **state)
{
    (void)state;
    kiln_err_t err;
    for (int stop = 1; stop <= 5; stop++) {
        char *d = tmpdir();
        mkmodel(d, "old");
        mkmodel(d, "new");
        mkmodel(d, "older");
        assert_int_equal(ke_store_swap(d, "models/older", 0, &err), 0);
        assert_int_equal(ke_store_swap(d, "models/old", 0, &err), 0);
        char cur[64], prev[64];
        resolve(d, "current", cur, sizeof cur);
        assert_string_equal(cur, "old");
        int rc = ke_store_swap(d, "models/new", stop == 5 ? 0 : stop, &err);
        assert_int_equal(rc, 0);
        resolve(d, "current", cur, sizeof cur);
        resolve(d, "previous", prev, sizeof prev);
        /* previous is renamed before current: after step 2 it is the old one */
        assert_true(!strcmp(cur, "old") || !strcmp(cur, "new"));
        assert_true(!strcmp(prev, "old") || !strcmp(prev, "older"));
        if (stop >= 4) {
            assert_string_equal(cur, "new");
            assert_string_equal(prev, "old");
        } else {
            assert_string_equal(cur, "old");
        }
        /* a later swap after the "crash" picks up (leftover .new links) */
        assert_int_equal(ke_store_swap(d, "models/new", 0, &err), 0);
        resolve(d, "current", cur, sizeof cur);
        assert_string_equal(cur, "new");
        rm_rf(d);
    }
}

static void test_swap_first_rollback_gc(void **state)
{
    (void)state;
    kiln_err_t err;
    char *d = tmpdir();
    char cur[64], prev[64], t[256];
    mkmodel(d, "a");
    assert_true(ke_store_rollback(d, &err) < 0);          /* nothing to go back to */
    assert_int_equal(ke_store_swap(d, "models/a", 0, &err), 0);
    resolve(d, "current", cur, sizeof cur);
    assert_string_equal(cur, "a");
    assert_int_equal(ke_store_link(d, "previous", t, sizeof t, &err), 0);
    assert_string_equal(t, "");                            /* no previous yet */
    mkmodel(d, "b");
    mkmodel(d, "stale");
    assert_int_equal(ke_store_swap(d, "models/b", 0, &err), 0);
    assert_int_equal(ke_store_rollback(d, &err), 0);
    resolve(d, "current", cur, sizeof cur);
    resolve(d, "previous", prev, sizeof prev);
    assert_string_equal(cur, "a");
    assert_string_equal(prev, "a");
    char p[1024];
    snprintf(p, sizeof p, "%s/download", d);
    mkdir(p, 0700);
    snprintf(p, sizeof p, "%s/download/abcd.part", d);
    FILE *f = fopen(p, "w");
    fclose(f);
    snprintf(p, sizeof p, "%s/download/ffff.part", d);
    f = fopen(p, "w");
    fclose(f);
    ke_store_gc(d, "abcd");
    snprintf(p, sizeof p, "%s/models/b", d);
    assert_int_not_equal(access(p, F_OK), 0);              /* named by neither link */
    snprintf(p, sizeof p, "%s/models/stale", d);
    assert_int_not_equal(access(p, F_OK), 0);
    snprintf(p, sizeof p, "%s/models/a/model.kmodel", d);
    assert_int_equal(access(p, F_OK), 0);
    snprintf(p, sizeof p, "%s/download/abcd.part", d);
    assert_int_equal(access(p, F_OK), 0);
    snprintf(p, sizeof p, "%s/download/ffff.part", d);
    assert_int_not_equal(access(p, F_OK), 0);
    /* current as a real directory is refused by name */
    char *d2 = tmpdir();
    snprintf(p, sizeof p, "%s/current", d2);
    mkdir(p, 0700);
    assert_true(ke_store_swap(d2, "models/x", 0, &err) < 0);
    assert_non_null(strstr(err.msg, "not a symlink"));
    rm_rf(d2);
    rm_rf(d);
}

/* What ke_store_swap (and a direct ke_store_test_pause) says on stderr
 * with KILN_TEST_SWAP_PAUSE set to spec; out gets the text. */
static void swap_saying(const char *spec, const char *dir, const char *target, char *out,
                        size_t cap)
{
    char log[1024];
    kiln_err_t err;
    snprintf(log, sizeof log, "%s/stderr.txt", dir);
    fflush(stderr);
    int saved = dup(2);
    FILE *f = fopen(log, "w+");
    assert_non_null(f);
    dup2(fileno(f), 2);
    if (spec)
        setenv("KILN_TEST_SWAP_PAUSE", spec, 1);
    else
        unsetenv("KILN_TEST_SWAP_PAUSE");
    int rc = ke_store_swap(dir, target, 0, &err);
    ke_store_test_pause("staged");
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    unsetenv("KILN_TEST_SWAP_PAUSE");
    assert_int_equal(rc, 0);
    rewind(f);
    size_t n = fread(out, 1, cap - 1, f);
    out[n] = 0;
    fclose(f);
}

/* The system tests' pause hook: it names its point, pauses only at the very
 * point named (not a prefix of it, not with a bad or zero delay, not at
 * "previous" when there is no previous), and the swap completes after it. */
static void test_pause_hook(void **state)
{
    (void)state;
    char *d = tmpdir();
    char said[1024], cur[64];
    mkmodel(d, "a");
    mkmodel(d, "b");
    swap_saying("previous:1", d, "models/a", said, sizeof said);   /* first swap: none */
    assert_string_equal(said, "");
    swap_saying(NULL, d, "models/b", said, sizeof said);
    assert_string_equal(said, "");
    const char *points[] = {"previous", "current-link", "current-renamed", "staged"};
    for (size_t i = 0; i < 4; i++) {
        char spec[64], want[128];
        snprintf(spec, sizeof spec, "%s:1", points[i]);
        snprintf(want, sizeof want, "kiln-edge: swap: pausing at %s (1 ms)\n", points[i]);
        swap_saying(spec, d, i % 2 ? "models/b" : "models/a", said, sizeof said);
        assert_string_equal(said, want);
        resolve(d, "current", cur, sizeof cur);
        assert_string_equal(cur, i % 2 ? "b" : "a");
    }
    const char *quiet[] = {"current:1", "current-link", "current-link:0", "current-link:x",
                           ":5", "state:1"};
    for (size_t i = 0; i < 6; i++) {
        swap_saying(quiet[i], d, i % 2 ? "models/b" : "models/a", said, sizeof said);
        assert_string_equal(said, "");
    }
    rm_rf(d);
}

static void test_resume(void **state)
{
    (void)state;
    int trunc;
    assert_int_equal(ke_resume_offset(0, 1000, &trunc), 0);
    assert_false(trunc);
    assert_int_equal(ke_resume_offset(400, 1000, &trunc), 400);
    assert_false(trunc);
    assert_int_equal(ke_resume_offset(1000, 1000, &trunc), 1000);   /* complete */
    assert_false(trunc);
    assert_int_equal(ke_resume_offset(1001, 1000, &trunc), 0);      /* longer: start over */
    assert_true(trunc);
    /* answers to Range: bytes=400- */
    assert_int_equal(ke_resume_accept(400, 206, 400), 400);
    assert_int_equal(ke_resume_accept(400, 206, 0), -1);            /* another range */
    assert_int_equal(ke_resume_accept(400, 206, -1), -1);           /* no Content-Range */
    assert_int_equal(ke_resume_accept(400, 200, -1), 0);            /* whole body: rewrite */
    assert_int_equal(ke_resume_accept(400, 416, -1), -1);
    assert_int_equal(ke_resume_accept(0, 200, -1), 0);
}

static void test_stats(void **state)
{
    (void)state;
    ke_stats_t s;
    memset(&s, 0, sizeof s);
    assert_int_equal(ke_stats_reset(&s, 2, 4), 0);
    assert_true(ke_stats_quantile_us(&s, 0.5) == 0);
    /* 100 windows at 80 us (bucket 50..100), 1 at 400 us (300..500) */
    float row[2] = {1, -1};
    for (int i = 0; i < 100; i++)
        ke_stats_observe(&s, 80, row, 2);
    ke_stats_observe(&s, 400, row, 2);
    double p50 = ke_stats_quantile_us(&s, 0.5), p99 = ke_stats_quantile_us(&s, 0.99);
    /* histogram_quantile's linear interpolation inside the bucket */
    assert_true(p50 > 50 && p50 <= 100);
    assert_true(p99 > 50 && p99 <= 100);
    assert_true(ke_stats_quantile_us(&s, 1.0) > 300 && ke_stats_quantile_us(&s, 1.0) <= 500);
    /* the feature ring keeps the last 4 rows */
    float rows[4][2] = {{2, 10}, {4, 10}, {6, 10}, {8, 10}};
    for (int i = 0; i < 4; i++)
        ke_stats_observe(&s, 80, rows[i], 2);
    const char *names[2] = {"rms", NULL};
    json_t *j = ke_stats_features_json(&s, names);
    assert_non_null(j);
    assert_int_equal(json_integer_value(json_object_get(j, "windows")), 4);
    assert_int_equal(json_integer_value(json_object_get(j, "scored")), 105);
    json_t *rms = json_object_get(json_object_get(j, "stats"), "rms");
    json_t *f1 = json_object_get(json_object_get(j, "stats"), "f1");
    assert_non_null(rms);
    assert_non_null(f1);
    /* exact in double for these values */
    assert_true(json_real_value(json_object_get(rms, "mean")) == 5.0);
    assert_true(fabs(json_real_value(json_object_get(rms, "std")) - sqrt(5.0)) < 1e-12);
    assert_true(json_real_value(json_object_get(rms, "min")) == 2.0);
    assert_true(json_real_value(json_object_get(rms, "max")) == 8.0);
    assert_true(json_real_value(json_object_get(f1, "std")) == 0.0);
    json_decref(j);
    /* a row of another width is counted, not stored */
    float wide[3] = {0, 0, 0};
    ke_stats_observe(&s, 80, wide, 3);
    assert_int_equal(s.filled, 4);
    ke_stats_free(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_state_file),
        cmocka_unit_test(test_swap_every_step),
        cmocka_unit_test(test_swap_first_rollback_gc),
        cmocka_unit_test(test_pause_hook),
        cmocka_unit_test(test_resume),
        cmocka_unit_test(test_stats),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
