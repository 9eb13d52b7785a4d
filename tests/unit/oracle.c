/* oracle.c - the C side of the numpy/scipy oracle: raw float64 files in,
 * raw float64 file out, one python process per call. */
#include "oracle.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
