/* h5util.h - storage-internal HDF5 helpers shared by sensor.c and
 * features.c: quiet error stacks, write-to-temp-then-rename, opening for
 * reading, string/number attributes and name checks (datasets: h5cols.h).
 * Not a public header: only the storage .c files include it.
 *
 * Every function that can fail takes `file` (the path as the caller gave it,
 * used only in messages) and fills err with "FILE: /DATASET: what" and
 * err->where = "/DATASET". */
#ifndef KILN_STORAGE_H5UTIL_H
#define KILN_STORAGE_H5UTIL_H

#include <hdf5.h>
#include <stddef.h>
#include <stdint.h>

#include "../core/kiln_err.h"

#define ST_H5_PATH_MAX 320        /* "/signals/" + a 255-byte name, NUL */
#define ST_H5_NAME_MAX 255        /* channel, label and feature names */
#define ST_H5_MAX_WINDOW_LEN (1u << 22)   /* 16 MiB of float32 per row at most */

/* HDF5 prints its own error stack by default; our messages replace it.
 * Begin saves the current thread's handler and silences it; end restores. */
typedef struct {
    H5E_auto2_t func;
    void       *data;
} st_h5_quiet_t;
void st_h5_quiet_begin(st_h5_quiet_t *q);
void st_h5_quiet_end(const st_h5_quiet_t *q);
/* free_fn(obj) between begin and end: the close and abort of a handle. */
void st_h5_quiet_free(void (*free_fn)(void *), void *obj);

/* ---- files ------------------------------------------------------------ */

/* Creates a temp file of this writer's own, exclusively (O_EXCL): PATH.tmp.<pid>
 * if no file has that name, else PATH.tmp.<pid>.<8 random hex>; an existing
 * file (another writer's, or a stale one) is never truncated or removed.
 * *tmp_path is owned by the caller (kiln_free).  Returns the open file in
 * *file.  Commit and discard remove only that file. */
int  st_h5_tmp_create(const char *path, hid_t *file, char **tmp_path, kiln_err_t *err);
/* Closes *file (every object in it must be closed already), fsyncs the temp
 * file and renames it to path.  On any failure the temp file is removed. */
int  st_h5_tmp_commit(hid_t *file, const char *tmp_path, const char *path, kiln_err_t *err);
/* Closes *file if open and removes the temp file; for abort paths. */
void st_h5_tmp_discard(hid_t *file, const char *tmp_path);

/* Attributes on obj (file root, a group or a dataset); obj_path names obj
 * in messages.  Strings are variable-length UTF-8, as h5py writes str. */
int st_h5_attr_put_str(hid_t obj, const char *file_label, const char *obj_path,
                       const char *name, const char *value, kiln_err_t *err);
int st_h5_attr_put_strs(hid_t obj, const char *file_label, const char *obj_path,
                        const char *name, const char *const *values, size_t n, kiln_err_t *err);
int st_h5_attr_put_f64(hid_t obj, const char *file_label, const char *obj_path,
                       const char *name, double value, kiln_err_t *err);
int st_h5_attr_put_i64(hid_t obj, const char *file_label, const char *obj_path,
                       const char *name, int64_t value, kiln_err_t *err);
/* "2026-11-25T15:42:48Z" into buf[32]. */
void st_h5_now_iso8601(char buf[32]);

/* ---- reading ---------------------------------------------------------- */

/* Checks path exists (KILN_ENOTFOUND) and is HDF5 (KILN_EFORMAT), then opens
 * it read-only. */
int st_h5_open_ro(const char *path, hid_t *file, kiln_err_t *err);
/* st_h5_open_ro, then checks the root attr `schema` is `schema`
 * (KILN_ESCHEMA otherwise).  *file is left open on a schema error too: the
 * caller closes it. */
int st_h5_open_schema(const char *path, const char *schema, hid_t *file, kiln_err_t *err);

/* Reads a scalar string attr (fixed or variable length) into a new string
 * (kiln_free).  Absent: KILN_ESCHEMA if required, else 0 with *out NULL. */
int st_h5_attr_get_str(hid_t obj, const char *file_label, const char *obj_path,
                       const char *name, int required, size_t max_len, char **out,
                       kiln_err_t *err);
/* Reads a 1-D string array attr: out[max_n] receives new strings (kiln_free
 * each, also on failure the ones filled are freed and *n is 0).  Absent: 0
 * strings, or KILN_ESCHEMA if required. */
int st_h5_attr_get_strs(hid_t obj, const char *file_label, const char *obj_path,
                        const char *name, int required, size_t max_n, size_t max_len,
                        char **out, size_t *n, kiln_err_t *err);
/* Reads a numeric scalar attr (any integer or float type) as double. */
int st_h5_attr_get_f64(hid_t obj, const char *file_label, const char *obj_path,
                       const char *name, double *out, kiln_err_t *err);

/* Words for a type a file holds, for "expected float32, found float64". */
void st_h5_type_words(hid_t type, char *buf, size_t len);

/* Names: 1..255 bytes, printable, no '/' ("." and ".." refused).  Returns 0
 * or KILN_EINVAL naming `what`. */
int st_h5_check_name(const char *name, const char *what, kiln_err_t *err);
/* A list of names (label or feature names): at most max_n, each 1..255
 * bytes without control characters, distinct if `distinct`.  KILN_EINVAL
 * "FILE: what: ..." otherwise. */
int st_h5_check_names(const char *file_label, const char *what, const char *const *names,
                      size_t n, size_t max_n, int distinct, kiln_err_t *err);
/* 64 lowercase hex chars. */
int st_h5_is_hex64(const char *s);

#endif
