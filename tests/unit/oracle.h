/* oracle.h - asks numpy/scipy (tests/oracle/oracle.py, run by $KILN_PYTHON)
 * for the expected answer at test time, so no expected value is pasted in. */
#ifndef KILN_TEST_ORACLE_H
#define KILN_TEST_ORACLE_H

#include <stddef.h>

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

#endif
