/* test_ingest_mat.c - .mat files whose channel variable is numeric-looking
 * but not a dense numeric array (sparse, logical, text): CWRU ingest must
 * refuse them with a message naming file and variable, never read past
 * what matio holds (the sparse case read out of bounds before). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "jobs/ingest.h"
#include "tests/unit/oracle.h"

static void test_not_dense_numeric(void **state)
{
    (void)state;
    static const char *const kinds[] = {"sparse", "logical", "char"};
    char dir[512], mat[600], out[600], params[2048];
    oracle_tmp_path(dir, "");
    assert_int_equal(mkdir(dir, 0700), 0);
    snprintf(mat, sizeof mat, "%s/12k_Drive_End_IR007_0_105.mat", dir);
    snprintf(out, sizeof out, "%s/out.h5", dir);
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        double dummy = 0, *o;
        size_t no;
        snprintf(params, sizeof params,
                 "{\"path\": \"%s\", \"name\": \"X105_DE_time\", \"rpm\": \"X105RPM\", "
                 "\"kind\": \"%s\", \"n\": 5000}", mat, kinds[k]);
        assert_int_equal(oracle_run("savemat_odd", params, &dummy, 1, 1, &o, &no), 0);
        free(o);
        const char *paths[1] = {mat};
        jb_ingest_opts_t opts = {.window_len = 256, .channels = "DE"};
        jb_ingest_summary_t sum;
        kiln_err_t err = {0};
        int rc = jb_ingest_cwru(out, paths, 1, &opts, &sum, &err);
        if (rc >= 0 || !strstr(err.msg, mat) || !strstr(err.msg, "X105_DE_time"))
            fail_msg("%s: rc %d, message '%s'", kinds[k], rc, err.msg);
        assert_int_equal(access(out, F_OK), -1);
        unlink(mat);
    }
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_not_dense_numeric),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
