/* test_prom.c - cluster/prom (Prometheus text format 0.0.4): HELP/TYPE
 * lines, label order and escaping (\\, \", \n; bad UTF-8 as U+FFFD),
 * counters and gauges, histogram buckets against a count done here by
 * hand from random observations, number formatting, the names Prometheus
 * refuses, re-registration, the process_* families, and every allocation
 * failure.  The real parser is Prometheus itself, in
 * tests/system/metrics_prometheus.sh (promtool and a scrape). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/prom.h"
#include "core/kiln_alloc.h"
#include "oracle.h"

static char *render(kp_registry_t *r)
{
    char *text = NULL;
    size_t len = 0;
    kiln_err_t err;
    assert_int_equal(kp_render(r, &text, &len, &err), 0);
    assert_non_null(text);
    assert_int_equal(strlen(text), len);
    return text;
}

static void assert_has(const char *text, const char *line)
{
    if (!strstr(text, line))
        fail_msg("missing \"%s\" in:\n%s", line, text);
}

static void test_counter_gauge(void **state)
{
    (void)state;
    kp_registry_t *r = NULL;
    kp_family_t *jobs, *depth, *again;
    kiln_err_t err;
    assert_int_equal(kp_registry_new(&r, &err), 0);
    assert_int_equal(kp_counter(r, "kiln_jobs_total", "Jobs that reached a state.", "type,state",
                                &jobs, &err), 0);
    assert_int_equal(kp_gauge(r, "kiln_queue_depth", "Queued jobs.", NULL, &depth, &err), 0);
    char *text = render(r);
    /* Families with no series still say what they are. */
    assert_string_equal(text, "# HELP kiln_jobs_total Jobs that reached a state.\n"
                              "# TYPE kiln_jobs_total counter\n"
                              "# HELP kiln_queue_depth Queued jobs.\n"
                              "# TYPE kiln_queue_depth gauge\n");
    kiln_free(text);

    const char *ok[] = {"train", "succeeded"}, *bad[] = {"train", "failed"};
    assert_int_equal(kp_add(jobs, ok, 1, &err), 0);
    assert_int_equal(kp_add(jobs, ok, 2, &err), 0);
    assert_int_equal(kp_add(jobs, bad, 1, &err), 0);
    assert_int_equal(kp_set(depth, NULL, 7, &err), 0);
    assert_int_equal(kp_add(depth, NULL, -2.5, &err), 0);
    assert_true(kp_value(jobs, ok) == 3);
    assert_true(kp_value(depth, NULL) == 4.5);
    const char *none[] = {"score", "succeeded"};
    assert_true(kp_value(jobs, none) == 0);
    /* A counter never goes down, nor takes NaN. */
    assert_int_equal(kp_add(jobs, ok, -1, &err), KILN_EINVAL);
    assert_int_equal(kp_add(jobs, ok, NAN, &err), KILN_EINVAL);
    assert_int_equal(kp_set(jobs, ok, -1, &err), KILN_EINVAL);
    assert_int_equal(kp_observe(jobs, ok, 1, &err), KILN_EINVAL);
    assert_true(kp_value(jobs, ok) == 3);

    text = render(r);
    assert_string_equal(text, "# HELP kiln_jobs_total Jobs that reached a state.\n"
                              "# TYPE kiln_jobs_total counter\n"
                              "kiln_jobs_total{type=\"train\",state=\"succeeded\"} 3\n"
                              "kiln_jobs_total{type=\"train\",state=\"failed\"} 1\n"
                              "# HELP kiln_queue_depth Queued jobs.\n"
                              "# TYPE kiln_queue_depth gauge\n"
                              "kiln_queue_depth 4.5\n");
    kiln_free(text);

    /* The same family again is the same family; another shape is refused. */
    assert_int_equal(kp_counter(r, "kiln_jobs_total", "x", "type,state", &again, &err), 0);
    assert_ptr_equal(again, jobs);
    assert_int_equal(kp_gauge(r, "kiln_jobs_total", "x", "type,state", &again, &err),
                     KILN_EINVAL);
    assert_int_equal(kp_counter(r, "kiln_jobs_total", "x", "type", &again, &err), KILN_EINVAL);

    kp_clear(jobs);
    assert_true(kp_value(jobs, ok) == 0);
    text = render(r);
    assert_null(strstr(text, "kiln_jobs_total{"));
    kiln_free(text);
    kp_registry_destroy(&r);
    assert_null(r);
    kp_registry_destroy(&r);   /* harmless twice */
}

static void test_escaping(void **state)
{
    (void)state;
    kp_registry_t *r = NULL;
    kp_family_t *f;
    kiln_err_t err;
    assert_int_equal(kp_registry_new(&r, &err), 0);
    assert_int_equal(kp_gauge(r, "kiln_feature_drift_score", "Drift \\ score\nper \"feature\".",
                              "model,feature", &f, &err), 0);
    const char *v[] = {"a\\b\"c\nd", "rms/ch\"1\""};
    assert_int_equal(kp_set(f, v, 0.25, &err), 0);
    /* Not UTF-8: a lone continuation byte, an overlong '/', a surrogate,
     * a truncated sequence at the end; valid multibyte text stays. */
    const char *u[] = {"x\x80y\xC0\xAFz\xED\xA0\x80w", "temp\xC2\xB0" "C\xE2\x82"};
    assert_int_equal(kp_set(f, u, 1, &err), 0);
    const char *empty[] = {NULL, ""};
    assert_int_equal(kp_set(f, empty, 2, &err), 0);
    char *text = render(r);
    /* HELP escapes \\ and \n but not quotes; label values all three. */
    assert_has(text, "# HELP kiln_feature_drift_score Drift \\\\ score\\nper \"feature\".\n");
    assert_has(text, "kiln_feature_drift_score{model=\"a\\\\b\\\"c\\nd\","
                     "feature=\"rms/ch\\\"1\\\"\"} 0.25\n");
    assert_has(text, "kiln_feature_drift_score{model=\"x\xEF\xBF\xBDy\xEF\xBF\xBD\xEF\xBF\xBDz"
                     "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBDw\",feature=\"temp\xC2\xB0" "C"
                     "\xEF\xBF\xBD\xEF\xBF\xBD\"} 1\n");
    assert_has(text, "kiln_feature_drift_score{model=\"\",feature=\"\"} 2\n");
    /* One line per series: no raw newline inside a line. */
    int lines = 0;
    for (const char *p = text; *p; p++)
        lines += *p == '\n';
    assert_int_equal(lines, 2 + 3);
    kiln_free(text);
    kp_registry_destroy(&r);
}

static void test_numbers(void **state)
{
    (void)state;
    kp_registry_t *r = NULL;
    kp_family_t *f;
    kiln_err_t err;
    assert_int_equal(kp_registry_new(&r, &err), 0);
    assert_int_equal(kp_gauge(r, "g", "", "k", &f, &err), 0);
    const struct {
        const char *k;
        double v;
        const char *want;
    } cases[] = {
        {"a", 0.1, "g{k=\"a\"} 0.1\n"},
        {"b", 1e20, "g{k=\"b\"} 1e+20\n"},
        {"c", -3, "g{k=\"c\"} -3\n"},
        {"d", INFINITY, "g{k=\"d\"} +Inf\n"},
        {"e", -INFINITY, "g{k=\"e\"} -Inf\n"},
        {"f", NAN, "g{k=\"f\"} NaN\n"},
        {"g", 9007199254740993.0, "g{k=\"g\"} 9007199254740992\n"},
        {"h", 1.0 / 3, "g{k=\"h\"} 0.33333333333333331\n"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        assert_int_equal(kp_set(f, (const char *[]){cases[i].k}, cases[i].v, &err), 0);
    char *text = render(r);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        assert_has(text, cases[i].want);
    kiln_free(text);
    kp_registry_destroy(&r);
}

/* Counts the lines "name{type="T",le="B"} N" of text into n[]. */
static void parse_buckets(const char *text, const char *type, const double *bounds, size_t nb,
                          unsigned long long *n, double *sum, unsigned long long *count)
{
    char key[128];
    for (size_t k = 0; k <= nb; k++) {
        char le[40];
        if (k < nb)
            snprintf(le, sizeof le, "%.15g", bounds[k]);
        else
            snprintf(le, sizeof le, "+Inf");
        snprintf(key, sizeof key, "kiln_task_duration_seconds_bucket{type=\"%s\",le=\"%s\"} ",
                 type, le);
        const char *p = strstr(text, key);
        if (!p)
            fail_msg("missing %s", key);
        n[k] = strtoull(p + strlen(key), NULL, 10);
    }
    snprintf(key, sizeof key, "kiln_task_duration_seconds_sum{type=\"%s\"} ", type);
    const char *p = strstr(text, key);
    assert_non_null(p);
    *sum = strtod(p + strlen(key), NULL);
    snprintf(key, sizeof key, "kiln_task_duration_seconds_count{type=\"%s\"} ", type);
    p = strstr(text, key);
    assert_non_null(p);
    *count = strtoull(p + strlen(key), NULL, 10);
}

static void test_histogram(void **state)
{
    (void)state;
    kp_registry_t *r = NULL;
    kp_family_t *h;
    kiln_err_t err;
    const double bounds[] = {0.005, 0.05, 0.5, 1, 5, 60};
    const size_t nb = sizeof bounds / sizeof bounds[0];
    assert_int_equal(kp_registry_new(&r, &err), 0);
    assert_int_equal(kp_histogram(r, "kiln_task_duration_seconds", "Task run time.", "type",
                                  bounds, nb, &h, &err), 0);
    /* Random durations over 0..100 s plus every bound itself (le is "<="):
     * the expected cumulative counts are a direct count per bound. */
    uint64_t seed = 0x9e3779b97f4a7c15ULL;
    enum { N = 5000 };
    static double obs[N + 16];
    size_t n_obs = 0;
    for (int i = 0; i < N; i++)
        obs[n_obs++] = 100 * pow(oracle_uniform01(&seed), 4);
    for (size_t k = 0; k < nb; k++)
        obs[n_obs++] = bounds[k];
    obs[n_obs++] = 0;
    obs[n_obs++] = 1e9;
    double want_sum = 0;
    for (size_t i = 0; i < n_obs; i++) {
        assert_int_equal(kp_observe(h, (const char *[]){"train"}, obs[i], &err), 0);
        want_sum += obs[i];
    }
    assert_int_equal(kp_observe(h, (const char *[]){"score"}, 0.7, &err), 0);
    assert_int_equal(kp_observe(h, (const char *[]){"score"}, NAN, &err), KILN_EINVAL);
    assert_int_equal(kp_set(h, (const char *[]){"score"}, 1, &err), KILN_EINVAL);

    char *text = render(r);
    assert_has(text, "# TYPE kiln_task_duration_seconds histogram\n");
    unsigned long long got[KP_BUCKETS_MAX + 1], count;
    double sum;
    parse_buckets(text, "train", bounds, nb, got, &sum, &count);
    for (size_t k = 0; k <= nb; k++) {
        unsigned long long want = 0;
        for (size_t i = 0; i < n_obs; i++)
            want += k == nb || obs[i] <= bounds[k];
        assert_int_equal(got[k], want);
    }
    assert_int_equal(count, n_obs);
    assert_true(kp_value(h, (const char *[]){"train"}) == (double)n_obs);
    /* The sum is written to 17 digits when 15 do not read back. */
    assert_true(fabs(sum - want_sum) <= 1e-9 * want_sum);
    parse_buckets(text, "score", bounds, nb, got, &sum, &count);
    assert_int_equal(got[2], 0);
    assert_int_equal(got[3], 1);
    assert_int_equal(got[nb], 1);
    assert_int_equal(count, 1);
    /* A histogram without labels puts le alone in the braces. */
    kp_family_t *h2;
    assert_int_equal(kp_histogram(r, "h2_seconds", "x", NULL, bounds, 1, &h2, &err), 0);
    assert_int_equal(kp_observe(h2, NULL, 3, &err), 0);
    kiln_free(text);
    text = render(r);
    assert_has(text, "h2_seconds_bucket{le=\"0.005\"} 0\nh2_seconds_bucket{le=\"+Inf\"} 1\n"
                     "h2_seconds_sum 3\nh2_seconds_count 1\n");
    kiln_free(text);
    kp_registry_destroy(&r);
}

static void test_bad_names(void **state)
{
    (void)state;
    kp_registry_t *r = NULL;
    kp_family_t *f;
    kiln_err_t err;
    const double ok[] = {1, 2}, dup[] = {1, 1}, inf[] = {1, INFINITY}, down[] = {2, 1};
    assert_int_equal(kp_registry_new(&r, &err), 0);
    assert_int_equal(kp_counter(r, "1abc", "", NULL, &f, &err), KILN_EINVAL);
    assert_non_null(strstr(err.msg, "1abc"));
    assert_int_equal(kp_counter(r, "a-b", "", NULL, &f, &err), KILN_EINVAL);
    assert_int_equal(kp_counter(r, "", "", NULL, &f, &err), KILN_EINVAL);
    assert_int_equal(kp_counter(r, NULL, "", NULL, &f, &err), KILN_EINVAL);
    assert_int_equal(kp_counter(r, "ns:sub_total", "", NULL, &f, &err), 0);   /* colons ok */
    assert_int_equal(kp_gauge(r, "g", "", "a:b", &f, &err), KILN_EINVAL);
    assert_int_equal(kp_gauge(r, "g", "", "__name", &f, &err), KILN_EINVAL);
    assert_int_equal(kp_gauge(r, "g", "", "a,,b", &f, &err), KILN_EINVAL);
    assert_int_equal(kp_gauge(r, "g", "", "a,a", &f, &err), KILN_EINVAL);
    assert_non_null(strstr(err.msg, "twice"));
    assert_int_equal(kp_gauge(r, "g", "", "a,b,c,d,e,f,g,h,i", &f, &err), KILN_EINVAL);
    assert_int_equal(kp_gauge(r, "g", "", "le", &f, &err), 0);   /* only histograms own le */
    assert_int_equal(kp_histogram(r, "h", "", "le", ok, 2, &f, &err), KILN_EINVAL);
    assert_int_equal(kp_histogram(r, "h", "", NULL, ok, 0, &f, &err), KILN_EINVAL);
    assert_int_equal(kp_histogram(r, "h", "", NULL, dup, 2, &f, &err), KILN_EINVAL);
    assert_int_equal(kp_histogram(r, "h", "", NULL, inf, 2, &f, &err), KILN_EINVAL);
    assert_int_equal(kp_histogram(r, "h", "", NULL, down, 2, &f, &err), KILN_EINVAL);
    assert_int_equal(kp_histogram(r, "h", "", NULL, ok, 2, &f, &err), 0);
    kp_family_t *g;
    assert_int_equal(kp_histogram(r, "h", "", NULL, ok, 1, &g, &err), KILN_EINVAL);
    char *text = render(r);
    /* Only the three good families made it in. */
    assert_string_equal(text, "# HELP ns:sub_total \n# TYPE ns:sub_total counter\n"
                              "# HELP g \n# TYPE g gauge\n# HELP h \n# TYPE h histogram\n");
    kiln_free(text);
    kp_registry_destroy(&r);
}

/* The value on the line "\nNAME VALUE" of text; fails the test when absent. */
static double line_value(const char *text, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = strstr(text, name); p; p = strstr(p + 1, name))
        if (p > text && p[-1] == '\n' && p[n] == ' ')
            return strtod(p + n + 1, NULL);
    fail_msg("missing %s in\n%s", name, text);
    return -1;
}

static void test_process(void **state)
{
    (void)state;
    kp_registry_t *r = NULL;
    kiln_err_t err;
    assert_int_equal(kp_registry_new(&r, &err), 0);
    assert_int_equal(kp_process_collect(r, &err), 0);
    assert_int_equal(kp_process_collect(r, &err), 0);   /* the second call updates */
    char *text = render(r);
    const char *names[] = {"process_cpu_seconds_total", "process_resident_memory_bytes",
                           "process_virtual_memory_bytes", "process_start_time_seconds",
                           "process_open_fds", "process_max_fds"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        double v = line_value(text, names[i]);
        assert_true(v >= 0);
        if (strstr(names[i], "resident") || strstr(names[i], "start") ||
            strstr(names[i], "open_fds"))
            assert_true(v > 0);
    }
    /* The start time is in the past and after 2020 (seconds, not ticks). */
    double start = line_value(text, "process_start_time_seconds");
    assert_true(start > 1.5e9 && start < 1e11);
    kiln_free(text);
    kp_registry_destroy(&r);
}

/* Every allocation fails in turn: an error, no leak (ASan), no crash. */
static int chaos_pass(void)
{
    kp_registry_t *r = NULL;
    kp_family_t *c, *h;
    kiln_err_t err;
    const double b[] = {1, 2, 3};
    char *text = NULL;
    size_t len;
    int rc;
    if ((rc = kp_registry_new(&r, &err)) < 0)
        return rc;
    if ((rc = kp_counter(r, "c_total", "help", "a,b", &c, &err)) < 0 ||
        (rc = kp_histogram(r, "h", "help", "t", b, 3, &h, &err)) < 0 ||
        (rc = kp_add(c, (const char *[]){"x", "y"}, 1, &err)) < 0 ||
        (rc = kp_add(c, (const char *[]){"x", "z"}, 1, &err)) < 0 ||
        (rc = kp_observe(h, (const char *[]){"t1"}, 2, &err)) < 0 ||
        (rc = kp_render(r, &text, &len, &err)) < 0)
        goto out;
    kiln_free(text);
out:
    kp_registry_destroy(&r);
    return rc;
}

static void test_alloc_failures(void **state)
{
    (void)state;
    int k, rc = -1;
    for (k = 1; k < 200 && rc != 0; k++) {
        kiln_alloc_fail_after(k);
        rc = chaos_pass();
        kiln_alloc_fail_after(0);
        if (rc != 0)
            assert_int_equal(rc, KILN_ENOMEM);
    }
    assert_int_equal(rc, 0);
    assert_true(k > 10);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counter_gauge),
        cmocka_unit_test(test_escaping),
        cmocka_unit_test(test_numbers),
        cmocka_unit_test(test_histogram),
        cmocka_unit_test(test_bad_names),
        cmocka_unit_test(test_process),
        cmocka_unit_test(test_alloc_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
