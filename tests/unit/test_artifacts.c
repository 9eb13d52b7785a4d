/* test_artifacts.c - the content-addressed store: put is idempotent and
 * atomic, get checks the bytes against their name. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/kiln_alloc.h"
#include "oracle.h"
#include "storage/artifacts.h"

static void test_put_get(void **state)
{
    (void)state;
    char root[512], path[1200], cmd[1300];
    oracle_tmp_path(root, "artifacts");
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    assert_int_equal(system(cmd), 0);
    kiln_err_t err;
    char hex[65], hex2[65];
    const char *blob = "model bytes";
    assert_int_equal(st_artifact_put(root, blob, strlen(blob), hex, &err), 0);
    assert_int_equal(strlen(hex), 64);
    assert_int_equal(st_artifact_put(root, blob, strlen(blob), hex2, &err), 0);
    assert_string_equal(hex, hex2);
    assert_int_equal(st_artifact_path(root, hex, path, sizeof path), 0);
    assert_int_equal(access(path, R_OK), 0);
    char sha[200];
    snprintf(cmd, sizeof cmd, "sha256sum '%s'", path);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    assert_non_null(fgets(sha, sizeof sha, p));
    pclose(p);
    assert_int_equal(strncmp(sha, hex, 64), 0);

    void *bytes;
    size_t len;
    assert_int_equal(st_artifact_get(root, hex, 1 << 20, &bytes, &len, &err), 0);
    assert_int_equal(len, strlen(blob));
    assert_memory_equal(bytes, blob, len);
    kiln_free(bytes);
    assert_int_equal(st_artifact_get(root, hex, 4, &bytes, &len, &err), KILN_EFORMAT);

    /* a corrupted blob is refused; a missing one and a bad name too */
    FILE *f = fopen(path, "ab");
    assert_non_null(f);
    fputs("!", f);
    fclose(f);
    assert_int_equal(st_artifact_get(root, hex, 1 << 20, &bytes, &len, &err), KILN_EFORMAT);
    assert_non_null(strstr(err.msg, "corrupt"));
    char other[65];
    memset(other, 'a', 64);
    other[64] = '\0';
    assert_int_equal(st_artifact_get(root, other, 1 << 20, &bytes, &len, &err), KILN_ENOTFOUND);
    assert_int_equal(st_artifact_get(root, "../etc/passwd", 1 << 20, &bytes, &len, &err),
                     KILN_EINVAL);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_put_get),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
