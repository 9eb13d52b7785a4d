/* oracle.c - the C side of the numpy/scipy oracle: raw float64 files in,
 * raw float64 file out, one python process per call. */
#include "oracle.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <cmocka.h>

#include "core/kiln_alloc.h"

static int seq;

const char *oracle_tmp_path(char *buf, const char *suffix)
{
    const char *dir = getenv("TMPDIR");
    snprintf(buf, 512, "%s/kiln-oracle-%ld-%d%s", dir && *dir ? dir : "/tmp",
             (long)getpid(), seq++, suffix);
    return buf;
}

const char *oracle_data_dir(void)
{
    const char *d = getenv("KILN_DATA");
    return d && *d ? d : "../shared/data";
}

static int write_all(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    size_t w = fwrite(p, 1, n, f);
    return (fclose(f) == 0 && w == n) ? 0 : -1;
}

int oracle_run(const char *op, const char *params_json, const double *in,
               size_t rows, size_t cols, double **out, size_t *n_out)
{
    char in_path[512], out_path[512], params_path[512], cmd[4096];
    const char *py = getenv("KILN_PYTHON");
    const char *root = getenv("KILN_ROOT");
    int rc = -1;

    *out = NULL;
    *n_out = 0;
    oracle_tmp_path(in_path, ".in");
    oracle_tmp_path(out_path, ".out");
    oracle_tmp_path(params_path, ".json");
    if (write_all(in_path, in, rows * cols * sizeof(double)) != 0 ||
        write_all(params_path, params_json, strlen(params_json)) != 0) {
        fprintf(stderr, "oracle: cannot write %s\n", in_path);
        goto out;
    }
    snprintf(cmd, sizeof cmd, "'%s' '%s/tests/oracle/oracle.py' '%s' '%s' '%s' %zu %zu '%s'",
             py && *py ? py : ".venv/bin/python", root && *root ? root : ".",
             op, params_path, in_path, rows, cols, out_path);
    if (system(cmd) != 0) {
        fprintf(stderr, "oracle: failed: %s\n", cmd);
        goto out;
    }
    FILE *f = fopen(out_path, "rb");
    if (!f) {
        fprintf(stderr, "oracle: no output from %s\n", op);
        goto out;
    }
    fseek(f, 0, SEEK_END);
    long bytes = ftell(f);
    fseek(f, 0, SEEK_SET);
    *out = malloc(bytes > 0 ? (size_t)bytes : 1);
    if (*out && fread(*out, 1, (size_t)bytes, f) == (size_t)bytes) {
        *n_out = (size_t)bytes / sizeof(double);
        rc = 0;
    }
    fclose(f);
    if (rc != 0) {
        free(*out);
        *out = NULL;
    }
out:
    unlink(in_path);
    unlink(out_path);
    unlink(params_path);
    return rc;
}

int oracle_run_f(const char *op, const char *params_json, const float *in,
                 size_t rows, size_t cols, double **out, size_t *n_out)
{
    double *d = malloc(rows * cols * sizeof *d + 1);
    if (!d)
        return -1;
    for (size_t i = 0; i < rows * cols; i++)
        d[i] = in[i];
    int rc = oracle_run(op, params_json, d, rows, cols, out, n_out);
    free(d);
    return rc;
}

/* ---- helpers the cmocka tests share ----------------------------------- */

double oracle_uniform01(uint64_t *state)
{
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    return (double)(*state >> 11) / 9007199254740992.0;
}

double *oracle_pyf(size_t *n, const char *op, const char *fmt, ...)
{
    char params[4096];
    double dummy = 0, *out = NULL;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(params, sizeof params, fmt, ap);
    va_end(ap);
    assert_int_equal(oracle_run(op, params, &dummy, 1, 1, &out, n), 0);
    return out;
}

void oracle_content_hash(const char *path, char hex[65])
{
    size_t n;
    double *d = oracle_pyf(&n, "content_hash", "{\"path\": \"%s\"}", path);
    assert_int_equal(n, 32);
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", (unsigned)d[i]);
    free(d);
}

void oracle_assert_attr(const char *path, const char *obj, const char *name,
                        const char *const *want, size_t n_want)
{
    size_t n, at = 0;
    double *d = oracle_pyf(&n, "h5_attr", "{\"path\": \"%s\", \"obj\": \"%s\", \"name\": \"%s\"}",
                           path, obj, name);
    for (size_t i = 0; i < n_want; i++) {
        size_t len = strlen(want[i]);
        assert_true(at + len + 1 <= n);
        for (size_t k = 0; k < len; k++)
            assert_int_equal((int)d[at + k], (unsigned char)want[i][k]);
        assert_int_equal((int)d[at + len], 0);
        at += len + 1;
    }
    assert_int_equal(at, n);
    free(d);
}

int oracle_file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

void oracle_writer_tmp_path(char *buf, size_t len, const char *path)
{
    snprintf(buf, len, "%s.tmp.%ld", path, (long)getpid());
}

void oracle_alloc_fail_loop(int (*pass)(void *ctx, kiln_err_t *err), void *ctx,
                            const char *path, const char *tmp_path)
{
    int done = 0;
    long k;
    for (k = 1; k < 200 && !done; k++) {
        kiln_err_t err;
        kiln_alloc_fail_after(k);
        int rc = pass(ctx, &err);
        done = rc == 0;
        kiln_alloc_fail_after(0);
        if (!done) {
            if (rc != KILN_ENOMEM)
                fail_msg("k=%ld: expected KILN_ENOMEM, got %s: %s", k, kiln_err_name(rc), err.msg);
            assert_false(oracle_file_exists(tmp_path));
        }
        unlink(path);
    }
    assert_true(done);
    assert_true(k > 5);
}
