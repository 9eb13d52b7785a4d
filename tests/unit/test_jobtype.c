/* test_jobtype.c - the job-type table and the featurize type: lookup,
 * shard plans that cover every window once, one task with rolling
 * features, validation errors that name the field, and shards run and
 * merged giving the same content hash as one whole run; an output never
 * appears under its final name before it is complete. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include <jansson.h>

#include "core/kiln_alloc.h"
#include "jobs/featurize.h"
#include "jobs/gen.h"
#include "jobs/jobtype.h"
#include "storage/features.h"
#include "tests/unit/oracle.h"

#define N_WIN 150

static const char *features_plain =
    "{\"time\": [\"rms\", \"kurt\"],"
    " \"spectrum\": {\"bands_hz\": [[0, 1000], [1000, 4000]], \"dominant\": true},"
    " \"envelope\": {\"band_hz\": [2000, 5000], \"shaft_hz\": 30, \"tolerance_hz\": 6,"
    "   \"bearing\": {\"n_balls\": 9, \"ball_d\": 0.3126, \"pitch_d\": 1.537}}}";

static const char *features_rolling =
    "{\"time\": [\"rms\"], \"rolling\": {\"k\": 3, \"of\": [\"rms\"]}}";

typedef struct {
    char in[512];
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof *f);
    kiln_err_t err;
    jb_gen_opts_t g = {.n_windows = N_WIN, .window_len = 512, .sample_rate_hz = 12000,
                       .n_assets = 4, .channels = "vib_x,temp", .seed = 9};
    jb_ingest_summary_t sum;
    oracle_tmp_path(f->in, ".h5");
    if (jb_gen(f->in, &g, &sum, &err) < 0) {
        fprintf(stderr, "gen: %s\n", err.msg);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    unlink(f->in);
    free(f);
    return 0;
}

/* A featurize job spec over the fixture's input as jansson JSON. */
static json_t *job_json(const fixture_t *f, const char *features)
{
    json_error_t je;
    json_t *feat = json_loads(features, 0, &je);
    assert_non_null(feat);
    json_t *j = json_pack("{s:s, s:s, s:s, s:o}", "type", "featurize", "name", "t",
                          "input", f->in, "features", feat);
    assert_non_null(j);
    return j;
}

static void *validated(const jb_type_t *t, const fixture_t *f, const char *features)
{
    void *parsed = NULL;
    kiln_err_t err;
    json_t *j = job_json(f, features);
    int rc = t->validate(j, &parsed, &err);
    json_decref(j);
    if (rc < 0)
        fprintf(stderr, "validate: %s\n", err.msg);
    assert_int_equal(rc, 0);
    assert_non_null(parsed);
    return parsed;
}

static void test_lookup(void **state)
{
    (void)state;
    const jb_type_t *t = jb_type_find("featurize");
    assert_non_null(t);
    assert_string_equal(t->name, "featurize");
    assert_non_null(t->validate);
    assert_non_null(t->plan);
    assert_non_null(t->run_task);
    assert_non_null(t->finish);
    assert_non_null(t->free_parsed);
    assert_null(jb_type_find("nosuch"));
    assert_null(jb_type_find(""));
    assert_null(jb_type_find(NULL));
    size_t n;
    const jb_type_t *const *all = jb_type_all(&n);
    assert_true(n >= 1);
    for (size_t i = 0; i < n; i++)
        assert_ptr_equal(jb_type_find(all[i]->name), all[i]);
}

/* Plans, asked for by count and by size, cover [0, N_WIN) in order, once. */
static void test_plan_cover(void **state)
{
    fixture_t *f = *state;
    const jb_type_t *t = jb_type_find("featurize");
    void *p = validated(t, f, features_plain);
    static const struct { jb_plan_ctx_t ctx; size_t want; } cases[] = {
        {{0, 0}, 1},        {{1, 0}, 1},   {{2, 0}, 2},     {{7, 0}, 7},
        {{N_WIN, 0}, N_WIN}, {{1000, 0}, N_WIN}, {{0, 50}, 3}, {{0, 40}, 4},
        {{5, 149}, 2},      {{0, 1000}, 1},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        jb_task_plan_t *tasks = NULL;
        size_t n = 0;
        kiln_err_t err;
        assert_int_equal(t->plan(p, &cases[c].ctx, &tasks, &n, &err), 0);
        assert_int_equal(n, cases[c].want);
        size_t next = 0, lo = SIZE_MAX, hi = 0;
        for (size_t i = 0; i < n; i++) {
            assert_int_equal(tasks[i].index, i);
            assert_int_equal(tasks[i].win0, next);
            assert_true(tasks[i].n_windows > 0);
            if (cases[c].ctx.windows_per_task)
                assert_true(tasks[i].n_windows <= cases[c].ctx.windows_per_task);
            lo = tasks[i].n_windows < lo ? tasks[i].n_windows : lo;
            hi = tasks[i].n_windows > hi ? tasks[i].n_windows : hi;
            next += tasks[i].n_windows;
        }
        assert_int_equal(next, N_WIN);
        assert_true(hi - lo <= 1);   /* even shards */
        kiln_free(tasks);
    }
    t->free_parsed(p);
}

/* Rolling features: one task over everything whatever is asked. */
static void test_plan_rolling_one_task(void **state)
{
    fixture_t *f = *state;
    const jb_type_t *t = jb_type_find("featurize");
    void *p = validated(t, f, features_rolling);
    jb_plan_ctx_t ctx = {.target_tasks = 8, .windows_per_task = 10};
    jb_task_plan_t *tasks = NULL;
    size_t n = 0;
    kiln_err_t err;
    assert_int_equal(t->plan(p, &ctx, &tasks, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_int_equal(tasks[0].win0, 0);
    assert_int_equal(tasks[0].n_windows, N_WIN);
    kiln_free(tasks);
    t->free_parsed(p);
}

static void expect_invalid(const jb_type_t *t, const char *text, const char *field)
{
    json_error_t je;
    json_t *j = json_loads(text, 0, &je);
    assert_non_null(j);
    void *parsed = (void *)1;
    kiln_err_t err;
    memset(&err, 0, sizeof err);
    int rc = t->validate(j, &parsed, &err);
    json_decref(j);
    assert_true(rc < 0);
    assert_null(parsed);
    if (!strstr(err.msg, field))
        fprintf(stderr, "message '%s' does not name '%s'\n", err.msg, field);
    assert_non_null(strstr(err.msg, field));
}

static void test_validate_errors(void **state)
{
    (void)state;
    const jb_type_t *t = jb_type_find("featurize");
    expect_invalid(t, "{\"type\": \"featurize\", \"input\": \"x.h5\", \"bogus\": 1, "
                      "\"features\": {\"time\": [\"rms\"]}}", "bogus");
    expect_invalid(t, "{\"type\": \"featurize\", \"input\": 3, "
                      "\"features\": {\"time\": [\"rms\"]}}", "input");
    expect_invalid(t, "{\"type\": \"featurize\", \"features\": {\"time\": [\"rms\"]}}",
                   "input");
    expect_invalid(t, "{\"type\": \"featurize\", \"input\": \"x.h5\", "
                      "\"features\": {\"time\": [\"nosuch\"]}}", "features.time");
    expect_invalid(t, "{\"type\": \"featurize\", \"input\": \"x.h5\", \"priority\": \"high\", "
                      "\"features\": {\"time\": [\"rms\"]}}", "priority");
    expect_invalid(t, "{\"type\": \"train\", \"input\": \"x.h5\", "
                      "\"features\": {\"time\": [\"rms\"]}}", "type");
    expect_invalid(t, "[1, 2]", "object");
}

static void content_hash(const char *path, char out[65])
{
    st_features_t *ds = NULL;
    kiln_err_t err;
    assert_int_equal(st_features_open(path, &ds, &err), 0);
    const st_features_meta_t *m = st_features_meta(ds);
    assert_non_null(m->content_sha256);
    snprintf(out, 65, "%s", m->content_sha256);
    st_features_close(&ds);
}

/* Runs the plan of `features` for ctx, merges, and compares the merged
 * content hash with one whole jb_featurize_run. */
static void shard_merge_equal(const fixture_t *f, const char *features, jb_plan_ctx_t ctx,
                              size_t want_tasks)
{
    const jb_type_t *t = jb_type_find("featurize");
    void *p = validated(t, f, features);
    const jb_featurize_job_t *job = p;
    jb_task_plan_t *tasks = NULL;
    size_t n = 0;
    kiln_err_t err;
    assert_int_equal(t->plan(p, &ctx, &tasks, &n, &err), 0);
    assert_int_equal(n, want_tasks);

    char **outs = calloc(n, sizeof *outs);
    for (size_t i = 0; i < n; i++) {
        outs[i] = malloc(512);
        oracle_tmp_path(outs[i], ".h5");
        unlink(outs[i]);
        int rc = t->run_task(p, &tasks[i], outs[i], &err);
        if (rc < 0)
            fprintf(stderr, "task %zu: %s\n", i, err.msg);
        assert_int_equal(rc, 0);
    }
    char merged[512], whole[512], h_merged[65], h_whole[65];
    oracle_tmp_path(merged, ".h5");
    oracle_tmp_path(whole, ".h5");
    unlink(merged);
    int rc = t->finish(p, (const char *const *)outs, n, merged, &err);
    if (rc < 0)
        fprintf(stderr, "finish: %s\n", err.msg);
    assert_int_equal(rc, 0);

    jb_featurize_stats_t st;
    jb_featurize_opts_t o = {.n_threads = 2, .batch_windows = 33};
    assert_int_equal(jb_featurize_run(&job->features, f->in, whole, &o, &st, &err), 0);

    content_hash(merged, h_merged);
    content_hash(whole, h_whole);
    assert_string_equal(h_merged, h_whole);
    assert_string_equal(h_whole, st.output_sha256);

    st_features_t *ds;
    assert_int_equal(st_features_open(merged, &ds, &err), 0);
    assert_int_equal(st_features_meta(ds)->n_rows, N_WIN);
    char rehash[65];
    assert_int_equal(st_features_hash(ds, rehash, &err), 0);
    assert_string_equal(rehash, h_whole);
    st_features_close(&ds);

    if (n > 1) {   /* the hash does see order: shards merged backwards differ */
        const char **rev = calloc(n, sizeof *rev);
        for (size_t i = 0; i < n; i++)
            rev[i] = outs[n - 1 - i];
        assert_int_equal(t->finish(p, rev, n, merged, &err), 0);
        content_hash(merged, h_merged);
        assert_string_not_equal(h_merged, h_whole);
        free(rev);
    }

    for (size_t i = 0; i < n; i++) {
        unlink(outs[i]);
        free(outs[i]);
    }
    free(outs);
    unlink(merged);
    unlink(whole);
    kiln_free(tasks);
    t->free_parsed(p);
}

static void test_shards_merge_equal_whole(void **state)
{
    fixture_t *f = *state;
    shard_merge_equal(f, features_plain, (jb_plan_ctx_t){.target_tasks = 4}, 4);
    shard_merge_equal(f, features_plain, (jb_plan_ctx_t){.windows_per_task = 64}, 3);
    shard_merge_equal(f, features_plain, (jb_plan_ctx_t){.target_tasks = 1}, 1);
    shard_merge_equal(f, features_rolling, (jb_plan_ctx_t){.target_tasks = 4}, 1);
}

/* A range past the end of the input fails and writes nothing. */
static void test_range_bounds(void **state)
{
    fixture_t *f = *state;
    const jb_type_t *t = jb_type_find("featurize");
    void *p = validated(t, f, features_plain);
    char out[512];
    kiln_err_t err;
    oracle_tmp_path(out, ".h5");
    unlink(out);
    jb_task_plan_t bad = {.index = 0, .win0 = 100, .n_windows = 51};
    assert_int_equal(t->run_task(p, &bad, out, &err), KILN_EINVAL);
    assert_int_equal(access(out, F_OK), -1);
    bad.win0 = N_WIN + 1;
    bad.n_windows = 0;
    assert_int_equal(t->run_task(p, &bad, out, &err), KILN_EINVAL);
    assert_int_equal(access(out, F_OK), -1);
    t->free_parsed(p);
}

typedef struct {
    const char *path;
    int calls, seen;
} watch_t;

static void watch_progress(void *ud, size_t done, size_t total)
{
    watch_t *w = ud;
    (void)done;
    (void)total;
    w->calls++;
    if (access(w->path, F_OK) == 0)
        w->seen++;
}

/* Shard outputs and the merged output: nothing under the final name while
 * being written, nor after any allocation failure. */
static void test_no_partial_output(void **state)
{
    fixture_t *f = *state;
    const jb_type_t *t = jb_type_find("featurize");
    void *p = validated(t, f, features_plain);
    const jb_featurize_job_t *job = p;
    char out[512];
    kiln_err_t err;
    oracle_tmp_path(out, ".h5");
    unlink(out);

    /* during the run: polled after every batch */
    watch_t w = {.path = out};
    jb_featurize_opts_t o = {.n_threads = 1, .batch_windows = 10, .progress = watch_progress,
                             .progress_ud = &w};
    jb_featurize_stats_t st;
    assert_int_equal(jb_featurize_run_range(&job->features, f->in, out, 20, 45, &o, &st, &err),
                     0);
    assert_int_equal(st.windows, 45);
    assert_int_equal(w.calls, 5);
    assert_int_equal(w.seen, 0);
    assert_int_equal(access(out, F_OK), 0);
    unlink(out);

    /* every allocation failure in a task */
    jb_task_plan_t task = {.index = 1, .win0 = 50, .n_windows = 50};
    int n;
    for (n = 1; n < 2000; n++) {
        kiln_alloc_fail_after(n);
        int rc = t->run_task(p, &task, out, &err);
        kiln_alloc_fail_after(0);
        if (rc == 0)
            break;
        assert_int_equal(rc, KILN_ENOMEM);
        assert_int_equal(access(out, F_OK), -1);
    }
    assert_true(n > 1 && n < 2000);

    /* every allocation failure in finish */
    char merged[512];
    oracle_tmp_path(merged, ".h5");
    unlink(merged);
    const char *outs[2] = {out, out};
    for (n = 1; n < 2000; n++) {
        kiln_alloc_fail_after(n);
        int rc = t->finish(p, outs, 2, merged, &err);
        kiln_alloc_fail_after(0);
        if (rc == 0)
            break;
        assert_int_equal(rc, KILN_ENOMEM);
        assert_int_equal(access(merged, F_OK), -1);
    }
    assert_true(n > 1 && n < 2000);
    st_features_t *ds;
    assert_int_equal(st_features_open(merged, &ds, &err), 0);
    assert_int_equal(st_features_meta(ds)->n_rows, 100);
    st_features_close(&ds);
    unlink(merged);
    unlink(out);
    t->free_parsed(p);
}

/* Shards of different specs are refused by finish. */
static void test_finish_mismatch(void **state)
{
    fixture_t *f = *state;
    const jb_type_t *t = jb_type_find("featurize");
    void *p1 = validated(t, f, features_plain);
    void *p2 = validated(t, f, features_rolling);
    char a[512], b[512], merged[512];
    kiln_err_t err;
    oracle_tmp_path(a, ".h5");
    oracle_tmp_path(b, ".h5");
    oracle_tmp_path(merged, ".h5");
    unlink(merged);
    jb_task_plan_t t0 = {.index = 0, .win0 = 0, .n_windows = 10},
                   t1 = {.index = 1, .win0 = 10, .n_windows = 10};
    assert_int_equal(t->run_task(p1, &t0, a, &err), 0);
    assert_int_equal(t->run_task(p2, &t1, b, &err), 0);
    const char *outs[2] = {a, b};
    assert_int_equal(t->finish(p1, outs, 2, merged, &err), KILN_ESCHEMA);
    assert_non_null(strstr(err.msg, b));
    assert_int_equal(access(merged, F_OK), -1);
    assert_int_equal(t->finish(p1, outs, 0, merged, &err), KILN_EINVAL);
    unlink(a);
    unlink(b);
    t->free_parsed(p1);
    t->free_parsed(p2);
}

/* A pipeline's steps come out ordered by what they wait for, whatever the
 * spec's order; references are replaced; name and project are inherited. */
static void test_pipeline_order(void **state)
{
    (void)state;
    const jb_type_t *t = jb_type_find("pipeline");
    assert_non_null(t);
    assert_non_null(t->steps);
    const char *text =
        "{\"type\":\"pipeline\",\"name\":\"p\",\"project\":\"plant\",\"steps\":["
        "{\"name\":\"score\",\"job\":{\"type\":\"score\",\"model_file\":\"${train.output}\","
        "\"input\":\"${feat.output}\",\"output\":\"preds.h5\"}},"
        "{\"name\":\"train\",\"cache\":false,\"job\":{\"type\":\"train\",\"input\":\"dir/${feat.output}\","
        "\"output\":\"m.kmodel\",\"model\":{\"kind\":\"logreg\"},\"target\":\"label\"}},"
        "{\"name\":\"feat\",\"job\":{\"type\":\"featurize\",\"input\":\"raw.h5\",\"output\":\"f.h5\","
        "\"features\":{\"time\":[\"rms\"]}}},"
        "{\"name\":\"last\",\"after\":[\"score\"],\"job\":{\"type\":\"noop\"}}]}";
    json_error_t jerr;
    json_t *spec = json_loads(text, 0, &jerr);
    assert_non_null(spec);
    void *parsed = NULL;
    kiln_err_t err = {0};
    int rc = t->validate(spec, &parsed, &err);
    if (rc < 0)
        fail_msg("%s", err.msg);
    size_t n;
    const jb_step_t *st = t->steps(parsed, &n);
    assert_int_equal(n, 4);
    assert_string_equal(st[0].name, "feat");
    assert_string_equal(st[1].name, "train");
    assert_string_equal(st[2].name, "score");
    assert_string_equal(st[3].name, "last");
    assert_int_equal(st[1].n_deps, 1);
    assert_int_equal(st[1].deps[0], 0);
    assert_int_equal(st[2].n_deps, 2);
    assert_int_equal(st[3].n_deps, 1);
    assert_int_equal(st[3].deps[0], 2);
    assert_int_equal(st[1].cache, 0);
    assert_int_equal(st[2].cache, 1);
    assert_string_equal(json_string_value(json_object_get(st[1].spec, "input")), "dir/f.h5");
    assert_string_equal(json_string_value(json_object_get(st[2].spec, "model_file")), "m.kmodel");
    assert_string_equal(json_string_value(json_object_get(st[2].spec, "name")), "p.score");
    assert_string_equal(json_string_value(json_object_get(st[2].spec, "project")), "plant");
    t->free_parsed(parsed);
    json_decref(spec);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lookup),
        cmocka_unit_test(test_pipeline_order),
        cmocka_unit_test(test_plan_cover),
        cmocka_unit_test(test_plan_rolling_one_task),
        cmocka_unit_test(test_validate_errors),
        cmocka_unit_test(test_shards_merge_equal_whole),
        cmocka_unit_test(test_range_bounds),
        cmocka_unit_test(test_no_partial_output),
        cmocka_unit_test(test_finish_mismatch),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
