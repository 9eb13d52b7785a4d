/* test_cron.c - cron expressions (scheduler/cron.h): every field's syntax and
 * errors, the macros, @every, and next_after checked two ways: hand-worked
 * dates (month and year ends, leap days, Vixie's day-of-month/day-of-week OR
 * rule) and a brute-force oracle that walks minute by minute with libc's
 * gmtime_r (an independent calendar) from random start times. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "oracle.h"
#include "scheduler/cron.h"

#define NS 1000000000LL

/* "YYYY-MM-DDTHH:MM:SSZ" -> ns, through libc (timegm). */
static int64_t at(const char *iso)
{
    struct tm tm = {0};
    int n = sscanf(iso, "%d-%d-%dT%d:%d:%d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
                   &tm.tm_min, &tm.tm_sec);
    assert_int_equal(n, 6);
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return (int64_t)timegm(&tm) * NS;
}

static ks_cron_t parse_ok(const char *expr)
{
    ks_cron_t c;
    kiln_err_t err;
    if (ks_cron_parse(expr, &c, &err) < 0)
        fail_msg("\"%s\" refused: %s", expr, err.msg);
    return c;
}

/* Asserts next_after(expr, from) is want (both ISO). */
static void expect_next(const char *expr, const char *from, const char *want)
{
    ks_cron_t c = parse_ok(expr);
    int64_t next = 0;
    assert_int_equal(ks_cron_next_after(&c, at(from), &next), 0);
    char got[32];
    ks_cron_iso(next, 0, got, sizeof got);
    if (strcmp(got, want))
        fail_msg("\"%s\" after %s: got %s, want %s", expr, from, got, want);
}

static void test_iso(void **state)
{
    (void)state;
    char buf[32];
    ks_cron_iso(at("2026-11-26T02:00:00Z") + 999999999, 0, buf, sizeof buf);
    assert_string_equal(buf, "2026-11-26T02:00:00Z");
    ks_cron_iso(at("2028-02-29T23:59:07Z"), 1, buf, sizeof buf);
    assert_string_equal(buf, "20280229T235907Z");
    ks_cron_iso(0, 0, buf, sizeof buf);
    assert_string_equal(buf, "1970-01-01T00:00:00Z");
}

static void test_fields(void **state)
{
    (void)state;
    /* every minute; strictly after: a time on a fire minute gives the next one */
    expect_next("* * * * *", "2026-01-01T10:00:00Z", "2026-01-01T10:01:00Z");
    expect_next("* * * * *", "2026-01-01T10:00:59Z", "2026-01-01T10:01:00Z");
    /* lists, ranges, steps */
    expect_next("*/15 * * * *", "2026-01-01T10:01:00Z", "2026-01-01T10:15:00Z");
    expect_next("*/15 * * * *", "2026-01-01T10:50:00Z", "2026-01-01T11:00:00Z");
    expect_next("5,35 * * * *", "2026-01-01T10:06:00Z", "2026-01-01T10:35:00Z");
    expect_next("0 1-5/2 * * *", "2026-01-01T01:00:00Z", "2026-01-01T03:00:00Z");
    expect_next("0 1-5/2 * * *", "2026-01-01T05:00:00Z", "2026-01-02T01:00:00Z");
    expect_next("10/20 * * * *", "2026-01-01T10:31:00Z", "2026-01-01T10:50:00Z");
    expect_next("0 2 * * *", "2026-11-25T02:00:00Z", "2026-11-26T02:00:00Z");
    /* names, any case; 7 is Sunday */
    expect_next("0 0 * * MON-fri", "2026-11-27T12:00:00Z", "2026-11-30T00:00:00Z");   /* Fri -> Mon */
    expect_next("0 0 * * 7", "2026-11-26T00:00:00Z", "2026-11-29T00:00:00Z");         /* Sunday */
    expect_next("0 0 * * 5-7", "2026-11-28T00:00:00Z", "2026-11-29T00:00:00Z");
    expect_next("0 0 1 jun,DEC *", "2026-07-01T00:00:00Z", "2026-12-01T00:00:00Z");
    expect_next("  0  0  1  6  *  ", "2026-07-01T00:00:00Z", "2027-06-01T00:00:00Z");
}

static void test_month_year_leap(void **state)
{
    (void)state;
    expect_next("0 0 1 * *", "2026-12-15T00:00:00Z", "2027-01-01T00:00:00Z");
    expect_next("59 23 31 12 *", "2026-12-31T23:59:00Z", "2027-12-31T23:59:00Z");
    expect_next("0 0 31 * *", "2026-04-01T00:00:00Z", "2026-05-31T00:00:00Z");   /* April has 30 */
    expect_next("0 12 30 * *", "2026-02-01T00:00:00Z", "2026-03-30T12:00:00Z");
    /* leap days: 2028 is a leap year, 2100 is not, 2000 was */
    expect_next("0 0 29 2 *", "2026-03-01T00:00:00Z", "2028-02-29T00:00:00Z");
    expect_next("0 0 29 2 *", "2096-03-01T00:00:00Z", "2104-02-29T00:00:00Z");
    expect_next("0 0 29 2 *", "1999-01-01T00:00:00Z", "2000-02-29T00:00:00Z");
    expect_next("0 0 * * *", "2028-02-28T00:00:00Z", "2028-02-29T00:00:00Z");
    expect_next("0 0 * * *", "2100-02-28T00:00:00Z", "2100-03-01T00:00:00Z");
}

/* Vixie: both day fields restricted -> either matches; one is '*' -> only the other. */
static void test_dom_dow_or(void **state)
{
    (void)state;
    /* the 13th or any Friday: from Mon 2026-11-02, Friday the 6th comes first */
    expect_next("0 0 13 * 5", "2026-11-02T00:00:00Z", "2026-11-06T00:00:00Z");
    /* from Sat 2026-11-07: the 13th is itself a Friday */
    expect_next("0 0 13 * 5", "2026-11-07T00:00:00Z", "2026-11-13T00:00:00Z");
    /* from Sat 2026-12-05: the 11th is a Friday, the 13th a Sunday -> the 11th */
    expect_next("0 0 13 * 5", "2026-12-05T00:00:00Z", "2026-12-11T00:00:00Z");
    expect_next("0 0 13 * 5", "2026-12-12T00:00:00Z", "2026-12-13T00:00:00Z");
    /* DOW '*': only the 13th */
    expect_next("0 0 13 * *", "2026-11-02T00:00:00Z", "2026-11-13T00:00:00Z");
    /* DOM '*' (a step starting with '*' counts as '*'): only Fridays */
    expect_next("0 0 * * 5", "2026-11-07T00:00:00Z", "2026-11-13T00:00:00Z");
    expect_next("0 0 */2 * 5", "2026-11-14T00:00:00Z", "2026-11-27T00:00:00Z");   /* the 20th is even */
}

static void test_macros_and_every(void **state)
{
    (void)state;
    expect_next("@hourly", "2026-11-26T02:30:00Z", "2026-11-26T03:00:00Z");
    expect_next("@daily", "2026-11-26T02:30:00Z", "2026-11-27T00:00:00Z");
    expect_next("@midnight", "2026-12-31T23:59:59Z", "2027-01-01T00:00:00Z");
    expect_next("@weekly", "2026-11-26T02:30:00Z", "2026-11-29T00:00:00Z");   /* Sunday */
    expect_next("@monthly", "2026-11-26T02:30:00Z", "2026-12-01T00:00:00Z");
    expect_next("@yearly", "2026-11-26T02:30:00Z", "2027-01-01T00:00:00Z");
    /* @every: multiples of the period since the epoch, strictly after */
    ks_cron_t c = parse_ok("@every 2s");
    int64_t next;
    assert_int_equal(c.every_ns, 2 * NS);
    assert_int_equal(ks_cron_next_after(&c, 10 * NS, &next), 0);
    assert_int_equal(next, 12 * NS);
    assert_int_equal(ks_cron_next_after(&c, 11 * NS + 5, &next), 0);
    assert_int_equal(next, 12 * NS);
    assert_int_equal(ks_cron_next_after(&c, 12 * NS - 1, &next), 0);
    assert_int_equal(next, 12 * NS);
    c = parse_ok("@every 1s");
    assert_int_equal(c.every_ns, NS);
    assert_int_equal(parse_ok("@every 15m").every_ns, 900 * NS);
    assert_int_equal(parse_ok("@every   3h").every_ns, 3 * 3600 * NS);
    expect_next("@every 90m", "2026-11-26T00:00:00Z", "2026-11-26T01:30:00Z");
}

/* Every kind of bad expression, and what its message must name. */
static void test_errors(void **state)
{
    (void)state;
    static const char *const bad[][2] = {
        {"0 25 * * *", "schedule: field 2 (hour): 25 is out of 0-23"},
        {"60 * * * *", "field 1 (minute): 60 is out of 0-59"},
        {"0 0 0 * *", "field 3 (day-of-month): 0 is out of 1-31"},
        {"0 0 32 * *", "field 3 (day-of-month): 32 is out of 1-31"},
        {"0 0 * 13 *", "field 4 (month): 13 is out of 1-12"},
        {"0 0 * * 8", "field 5 (day-of-week): 8 is out of 0-7"},
        {"0 0 * foo *", "field 4 (month): \"foo\" is not a number or a name (jan..dec)"},
        {"0 0 * * funday", "field 5 (day-of-week): \"funday\""},
        {"x * * * *", "field 1 (minute): \"x\" is not a number"},
        {"*/0 * * * *", "field 1 (minute): \"*/0\": the step 0 is out of 1-59"},
        {"*/ * * * *", "field 1 (minute): \"*/\": the step after '/' must be a whole number"},
        {"0 5-1 * * *", "field 2 (hour): the range 5-1 runs backwards"},
        {"1,,2 * * * *", "field 1 (minute): an empty list item"},
        {"1-2-3 * * * *", "field 1 (minute): \"1-2-3\""},
        {"99999999999 * * * *", "field 1 (minute)"},
        {"0 2 * *", "has 4 fields; expected 5"},
        {"0 2 * * * *", "has 6 fields"},
        {"", "has 0 fields"},
        {"0 0 30 2 *", "never fires"},
        {"0 0 31 4,6,9,11 *", "never fires"},
        {"@sometimes", "unknown \"@sometimes\""},
        {"@every", "@every: \"\" is not N{s,m,h}"},
        {"@every 0s", "@every: \"0s\" is not N{s,m,h} with N >= 1"},
        {"@every 5", "@every: \"5\""},
        {"@every 5d", "@every: \"5d\""},
        {"@every -5s", "@every"},
        {"@every 9000h", "longer than a year"},
        {"@hourly 5", "unknown"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ks_cron_t c;
        kiln_err_t err;
        memset(&err, 0, sizeof err);
        int rc = ks_cron_parse(bad[i][0], &c, &err);
        if (rc != KILN_ESPEC)
            fail_msg("\"%s\": rc %d, want KILN_ESPEC", bad[i][0], rc);
        if (!strstr(err.msg, bad[i][1]) || strncmp(err.msg, "schedule: ", 10))
            fail_msg("\"%s\": message \"%s\" does not say \"%s\"", bad[i][0], err.msg, bad[i][1]);
        assert_string_equal(err.where, "schedule");
    }
    char longexpr[300];
    memset(longexpr, '1', sizeof longexpr - 1);
    longexpr[sizeof longexpr - 1] = '\0';
    ks_cron_t c;
    kiln_err_t err;
    assert_int_equal(ks_cron_parse(longexpr, &c, &err), KILN_ESPEC);
    assert_non_null(strstr(err.msg, "longer than"));
    assert_int_equal(ks_cron_parse(NULL, &c, &err), KILN_ESPEC);
}

/* The oracle: the first minute after t whose gmtime_r fields match, walked
 * one minute at a time (limit minutes at most; -1 if none). */
static int64_t brute_next(const char *f[5], int64_t t_ns, int64_t limit)
{
    /* fields parsed again, independently: only lists of single numbers and
     * "*" here, so the oracle has no parser of its own to get wrong */
    int set[5][64];
    int star[5];
    for (int i = 0; i < 5; i++) {
        memset(set[i], 0, sizeof set[i]);
        star[i] = !strcmp(f[i], "*");
        char buf[128];
        snprintf(buf, sizeof buf, "%s", f[i]);
        for (char *tok = strtok(buf, ","); tok && !star[i]; tok = strtok(NULL, ","))
            set[i][atoi(tok)] = 1;
    }
    if (set[4][7])
        set[4][0] = 1;
    time_t m = (time_t)(t_ns / NS / 60 + 1) * 60;
    for (int64_t k = 0; k < limit; k++, m += 60) {
        struct tm tm;
        gmtime_r(&m, &tm);
        int ok_min = star[0] || set[0][tm.tm_min], ok_h = star[1] || set[1][tm.tm_hour];
        int ok_mon = star[3] || set[3][tm.tm_mon + 1];
        int dom = star[2] || set[2][tm.tm_mday], dow = star[4] || set[4][tm.tm_wday];
        int day = (star[2] || star[4]) ? dom && dow : dom || dow;
        if (ok_min && ok_h && ok_mon && day)
            return (int64_t)m * NS;
    }
    return -1;
}

static void test_against_brute_force(void **state)
{
    (void)state;
    static const char *const exprs[][5] = {
        {"0", "0", "*", "*", "*"},          {"30", "2", "*", "*", "1,3,5"},
        {"0", "0", "13", "*", "5"},         {"15,45", "*", "1,15", "*", "*"},
        {"0", "12", "31", "*", "*"},        {"0", "0", "29", "2", "*"},
        {"59", "23", "*", "12", "0,6"},     {"*", "*", "*", "*", "*"},
        {"7", "7", "7", "7", "7"},          {"0", "0", "1", "1,3", "2"},
    };
    uint64_t rng = 0x9e3779b97f4a7c15ULL;
    int64_t lo = at("1999-06-01T00:00:00Z"), span = at("2105-01-01T00:00:00Z") - lo;
    for (size_t e = 0; e < sizeof exprs / sizeof exprs[0]; e++) {
        char text[128];
        snprintf(text, sizeof text, "%s %s %s %s %s", exprs[e][0], exprs[e][1], exprs[e][2],
                 exprs[e][3], exprs[e][4]);
        ks_cron_t c = parse_ok(text);
        const char *f[5] = {exprs[e][0], exprs[e][1], exprs[e][2], exprs[e][3], exprs[e][4]};
        /* the leap-day one needs up to 8 years of minutes; the others < 2 years */
        int64_t limit = (int64_t)(strcmp(f[2], "29") ? 2 : 9) * 366 * 1440;
        int n_starts = strcmp(f[2], "29") ? 12 : 2;
        for (int k = 0; k < n_starts; k++) {
            int64_t t = lo + (int64_t)(oracle_uniform01(&rng) * (double)span);
            int64_t want = brute_next(f, t, limit), got = 0;
            assert_true(want > 0);
            assert_int_equal(ks_cron_next_after(&c, t, &got), 0);
            if (got != want) {
                char a[32], b[32], s[32];
                ks_cron_iso(got, 0, a, sizeof a);
                ks_cron_iso(want, 0, b, sizeof b);
                ks_cron_iso(t, 0, s, sizeof s);
                fail_msg("\"%s\" after %s: got %s, oracle %s", text, s, a, b);
            }
            /* and a chain of next_after from there stays on the oracle */
            for (int step = 0; step < 5; step++) {
                want = brute_next(f, got, limit);
                int64_t prev = got;
                assert_int_equal(ks_cron_next_after(&c, prev, &got), 0);
                assert_int_equal(got, want);
            }
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_iso),
        cmocka_unit_test(test_fields),
        cmocka_unit_test(test_month_year_leap),
        cmocka_unit_test(test_dom_dow_or),
        cmocka_unit_test(test_macros_and_every),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_against_brute_force),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
