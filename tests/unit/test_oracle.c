/* test_oracle.c - the oracle bridge itself: values go to python and back
 * unchanged, and an unknown op is an error, not a silent pass. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "oracle.h"

static void test_roundtrip(void **state)
{
    (void)state;
    double in[6] = {1.5, -2.25, 3e-300, 1e300, 0.0, 7.0};
    double *out;
    size_t n;
    assert_int_equal(oracle_run("echo_sum", "{\"scale\": 2.0}", in, 2, 3, &out, &n), 0);
    assert_int_equal(n, 7);
    for (int i = 0; i < 6; i++)
        assert_memory_equal(&out[i], &in[i], sizeof(double));   /* bit-exact */
    free(out);
}

static void test_unknown_op(void **state)
{
    (void)state;
    double in[1] = {1}, *out;
    size_t n;
    assert_int_equal(oracle_run("no_such_op", "{}", in, 1, 1, &out, &n), -1);
    assert_null(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_unknown_op),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
