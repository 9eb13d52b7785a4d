/* test_featspec.c - feature specs and featurize job specs: what parses, the
 * names it yields, the canonical hash, and every rejection naming its field. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "jobs/featurize.h"

static const char *good_spec =
    "{\"type\": \"featurize\", \"name\": \"t\", \"input\": \"in.h5\", \"output\": \"out.h5\",\n"
    " \"features\": {\"channels\": [\"DE\", \"FE\"],\n"
    "   \"time\": [\"rms\", \"kurt\", \"util\"], \"util_threshold\": 0.5,\n"
    "   \"spectrum\": {\"window\": \"hann\", \"bands_hz\": [[0, 1000], [1000, 2500.5]],\n"
    "                \"centroid\": true, \"dominant\": true},\n"
    "   \"envelope\": {\"band_hz\": [2000, 5000], \"shaft_hz\": 29.95, \"tolerance_hz\": 6,\n"
    "                \"bearing\": {\"n_balls\": 9, \"ball_d\": 0.3126, \"pitch_d\": 1.537},\n"
    "                \"lines\": [\"bpfo\", \"bpfi\"]},\n"
    "   \"rolling\": {\"k\": 4, \"of\": [\"rms\", \"env_bpfo\"]}}}";

static void test_good_spec(void **state)
{
    (void)state;
    jb_featurize_job_t job;
    kiln_err_t err;
    char name[JB_FEAT_NAME_MAX];

    assert_int_equal(jb_featurize_job_parse(good_spec, "good.json", &job, &err), 0);
    const jb_featspec_t *s = &job.features;
    assert_string_equal(job.input, "in.h5");
    assert_string_equal(job.output, "out.h5");
    assert_int_equal(s->n_channels, 2);
    /* 3 time + 2 bands + centroid + dominant + 2 lines */
    assert_int_equal(jb_featspec_per_channel(s), 9);
    const char *want[] = {"rms", "kurt", "util", "band_0_1000", "band_1000_2500.5",
                          "centroid", "dominant", "env_bpfo", "env_bpfi"};
    for (size_t i = 0; i < 9; i++) {
        jb_featspec_feature_name(s, i, name);
        assert_string_equal(name, want[i]);
    }
    assert_int_equal(s->rolling_k, 4);
    assert_int_equal(s->n_roll, 2);
    assert_int_equal(s->roll_of[0], 0);
    assert_int_equal(s->roll_of[1], 7);
    assert_int_equal(strlen(s->sha256), 64);
    jb_featurize_job_free(&job);
}

/* Key order and whitespace do not change the hash; a value does. */
static void test_hash_canonical(void **state)
{
    (void)state;
    jb_featurize_job_t a, b, c;
    kiln_err_t err;
    const char *s1 = "{\"type\":\"featurize\",\"features\":{\"time\":[\"rms\"],"
                     "\"spectrum\":{\"centroid\":true,\"window\":\"none\"}}}";
    const char *s2 = "{ \"features\" : { \"spectrum\" : { \"window\" : \"none\", "
                     "\"centroid\" : true }, \"time\" : [ \"rms\" ] }, \"type\" : \"featurize\" }";
    const char *s3 = "{\"type\":\"featurize\",\"features\":{\"time\":[\"rms\"],"
                     "\"spectrum\":{\"centroid\":true,\"window\":\"hann\"}}}";
    assert_int_equal(jb_featurize_job_parse(s1, "s1", &a, &err), 0);
    assert_int_equal(jb_featurize_job_parse(s2, "s2", &b, &err), 0);
    assert_int_equal(jb_featurize_job_parse(s3, "s3", &c, &err), 0);
    assert_string_equal(a.features.sha256, b.features.sha256);
    assert_string_not_equal(a.features.sha256, c.features.sha256);
    jb_featurize_job_free(&a);
    jb_featurize_job_free(&b);
    jb_featurize_job_free(&c);
}

/* Each bad spec must fail with KILN_ESPEC (or EJSON) and a message naming
 * the field. */
static void test_bad_specs(void **state)
{
    (void)state;
    static const struct { const char *json; const char *field; } cases[] = {
        {"{\"type\":\"featurize\",\"features\":{\"time\":[\"rms\"]},\"colour\":1}", "colour"},
        {"{\"type\":\"train\",\"features\":{\"time\":[\"rms\"]}}", "type"},
        {"{\"features\":{\"time\":[\"rms\"]}}", "type"},
        {"{\"type\":\"featurize\",\"input\":7,\"features\":{\"time\":[\"rms\"]}}", "input"},
        {"{\"type\":\"featurize\",\"priority\":\"high\",\"features\":{\"time\":[\"rms\"]}}",
         "priority"},
        {"{\"type\":\"featurize\"}", "features"},
        {"{\"type\":\"featurize\",\"features\":{}}", "features"},
        {"{\"type\":\"featurize\",\"features\":{\"time\":[\"rms\"],\"extra\":1}}",
         "features.extra"},
        {"{\"type\":\"featurize\",\"features\":{\"time\":[\"rmss\"]}}", "features.time[0]"},
        {"{\"type\":\"featurize\",\"features\":{\"time\":[\"rms\",\"rms\"]}}", "features.time[1]"},
        {"{\"type\":\"featurize\",\"features\":{\"time\":\"rms\"}}", "features.time"},
        {"{\"type\":\"featurize\",\"features\":{\"time\":[\"util\"]}}", "features.util_threshold"},
        {"{\"type\":\"featurize\",\"features\":{\"time\":[\"rms\"],\"channels\":[]}}",
         "features.channels"},
        {"{\"type\":\"featurize\",\"features\":{\"time\":[\"rms\"],\"channels\":[\"a\",\"a\"]}}",
         "features.channels[1]"},
        {"{\"type\":\"featurize\",\"features\":{\"spectrum\":{\"bands_hz\":[[10,5]]}}}",
         "features.spectrum.bands_hz[0]"},
        {"{\"type\":\"featurize\",\"features\":{\"spectrum\":{\"bands_hz\":[[1,5],[1]]}}}",
         "features.spectrum.bands_hz[1]"},
        {"{\"type\":\"featurize\",\"features\":{\"spectrum\":{\"window\":\"hamming\","
         "\"centroid\":true}}}", "features.spectrum.window"},
        {"{\"type\":\"featurize\",\"features\":{\"spectrum\":{\"centroid\":1}}}",
         "features.spectrum.centroid"},
        {"{\"type\":\"featurize\",\"features\":{\"spectrum\":{}}}", "features.spectrum"},
        {"{\"type\":\"featurize\",\"features\":{\"envelope\":{\"band_hz\":[1,2],\"shaft_hz\":30,"
         "\"bearing\":{\"n_balls\":9.5,\"ball_d\":1,\"pitch_d\":5}}}}",
         "features.envelope.bearing.n_balls"},
        {"{\"type\":\"featurize\",\"features\":{\"envelope\":{\"band_hz\":[1,2],\"shaft_hz\":30,"
         "\"bearing\":{\"n_balls\":9,\"ball_d\":5,\"pitch_d\":1}}}}", "features.envelope.bearing"},
        {"{\"type\":\"featurize\",\"features\":{\"envelope\":{\"band_hz\":[1,2],"
         "\"bearing\":{\"n_balls\":9,\"ball_d\":1,\"pitch_d\":5}}}}", "features.envelope.shaft_hz"},
        {"{\"type\":\"featurize\",\"features\":{\"envelope\":{\"band_hz\":[1,2],\"shaft_hz\":30,"
         "\"bearing\":{\"n_balls\":9,\"ball_d\":1,\"pitch_d\":5},\"lines\":[\"bpfx\"]}}}",
         "features.envelope.lines[0]"},
        {"{\"type\":\"featurize\",\"features\":{\"time\":[\"rms\"],\"rolling\":{\"k\":0,"
         "\"of\":[\"rms\"]}}}", "features.rolling.k"},
        {"{\"type\":\"featurize\",\"features\":{\"time\":[\"rms\"],\"rolling\":{\"k\":3,"
         "\"of\":[\"kurt\"]}}}", "features.rolling.of[0]"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        jb_featurize_job_t job;
        kiln_err_t err;
        kiln_err_clear(&err);
        int rc = jb_featurize_job_parse(cases[i].json, "spec.json", &job, &err);
        if (rc != KILN_ESPEC || !strstr(err.msg, cases[i].field) || !strstr(err.msg, "spec.json"))
            fail_msg("case %zu: rc %d, message '%s' should name '%s'", i, rc, err.msg,
                     cases[i].field);
    }
}

static void test_bad_json_position(void **state)
{
    (void)state;
    jb_featurize_job_t job;
    kiln_err_t err;
    assert_int_equal(jb_featurize_job_parse("{\"type\": \"featurize\",\n \"features\": {,}}",
                                            "x.json", &job, &err), KILN_EJSON);
    assert_int_equal(err.line, 2);
    assert_non_null(strstr(err.msg, "x.json:2:"));
    assert_int_equal(jb_featurize_job_parse("[1, 2]", "x.json", &job, &err), KILN_ESPEC);
    assert_int_equal(jb_featurize_job_parse("{\"type\":\"featurize\",\"type\":\"featurize\","
                                            "\"features\":{\"time\":[\"rms\"]}}",
                                            "dup.json", &job, &err), KILN_EJSON);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_spec),
        cmocka_unit_test(test_hash_canonical),
        cmocka_unit_test(test_bad_specs),
        cmocka_unit_test(test_bad_json_position),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
