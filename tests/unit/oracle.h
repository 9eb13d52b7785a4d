/* oracle.h - asks numpy/scipy (tests/oracle/oracle.py, run by $KILN_PYTHON)
 * for the expected answer at test time, so no expected value is pasted in.
 * One python process answers all the calls of a test process (started by
 * the first call; a forked child gets its own). */
#ifndef KILN_TEST_ORACLE_H
#define KILN_TEST_ORACLE_H

#include <stddef.h>
#include <stdint.h>

#include "core/kiln_err.h"

/* Runs op (a function registered in tests/oracle/ops_*.py) on a float64
 * matrix in[rows*cols] with params (a JSON object text, may be "{}").
 * On success *out is a malloc'd float64 array of *n_out values (free()).
 * Returns 0, or -1 with a message on stderr. */
int oracle_run(const char *op, const char *params_json, const double *in,
               size_t rows, size_t cols, double **out, size_t *n_out);

/* Same with float32 input (converted exactly to float64). */
int oracle_run_f(const char *op, const char *params_json, const float *in,
                 size_t rows, size_t cols, double **out, size_t *n_out);

/* Path of a scratch file under $TMPDIR unique to this process: buf[512]. */
const char *oracle_tmp_path(char *buf, const char *suffix);

/* $KILN_DATA or ../shared/data. */
const char *oracle_data_dir(void);

/* ---- helpers the cmocka tests share (these assert) -------------------- */

/* One xorshift64 step of *state (nonzero; each test seeds its own): a
 * uniform double in [0, 1) with 53 random bits. */
double oracle_uniform01(uint64_t *state);

/* oracle_run of op with no input array and printf-style params (at most
 * 4095 bytes); asserts it succeeded.  Returns *n doubles (free()). */
double *oracle_pyf(size_t *n, const char *op, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The independent python content hash of the kiln file at path, as hex. */
void oracle_content_hash(const char *path, char hex[65]);

/* Asserts the string attr `name` of HDF5 object obj, as h5py reads it
 * (elements NUL-separated), holds exactly want[0..n_want). */
void oracle_assert_attr(const char *path, const char *obj, const char *name,
                        const char *const *want, size_t n_want);

/* 1 if path exists (stat succeeds), else 0. */
int oracle_file_exists(const char *path);

/* The temp file a kiln writer of path uses until commit: "PATH.tmp.<pid>". */
void oracle_writer_tmp_path(char *buf, size_t len, const char *path);

/* The allocation-failure loop of the storage tests: for k = 1, 2, ... (below
 * 200) fails the k-th allocation of pass(ctx, &err) until a pass returns 0.
 * Every failed pass must return KILN_ENOMEM and leave no file at tmp_path;
 * path is removed after each.  Asserts a pass succeeded, and only after
 * k > 5 (the injection reached several allocations). */
void oracle_alloc_fail_loop(int (*pass)(void *ctx, kiln_err_t *err), void *ctx,
                            const char *path, const char *tmp_path);

#endif
