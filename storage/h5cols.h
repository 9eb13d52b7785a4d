/* h5cols.h - storage-internal: the datasets of kiln files.  Writers append
 * rows to extendible chunked columns (hashing as they go); readers open a
 * dataset with its type and shape checked and read row ranges by hyperslab,
 * so memory never grows with the file.  Errors as in h5util.h. */
#ifndef KILN_STORAGE_H5COLS_H
#define KILN_STORAGE_H5COLS_H

#include "h5util.h"
#include "sha256.h"

/* The three element types kiln datasets use. */
typedef enum { ST_H5_F32, ST_H5_I32, ST_H5_I64 } st_h5_kind_t;
const char *st_h5_kind_name(st_h5_kind_t kind);      /* "float32" ... */
size_t      st_h5_kind_size(st_h5_kind_t kind);

/* Rows per chunk for rows of row_len elements: at most max_rows, and a
 * chunk of about 512 KiB (never fewer than 1 row). */
size_t st_h5_chunk_rows(size_t row_len, size_t elem_size, size_t max_rows);

/* ---- writing ---------------------------------------------------------- */

/* One extendible dataset [n_rows] or [n_rows, row_len], growing along rows.
 * The per-dataset digest of the content hash is accumulated as rows go in. */
typedef struct {
    hid_t        dset;            /* H5I_INVALID_HID when closed */
    st_h5_kind_t kind;
    size_t       row_len;         /* 0: a 1-D column; else elements per row */
    uint64_t     n_rows;
    st_sha256_t  sha;
    char         path[ST_H5_PATH_MAX];
} st_h5_col_t;

/* Marks c closed so st_h5_col_close is always safe. */
void st_h5_col_init(st_h5_col_t *c);
/* Chunks hold at most max_chunk_rows rows (0: 16384) and about 512 KiB. */
int  st_h5_col_create(st_h5_col_t *c, hid_t file, const char *file_label, const char *path,
                      st_h5_kind_t kind, size_t row_len, size_t max_chunk_rows, int compress,
                      kiln_err_t *err);
/* Appends n rows of native-endian elements. */
int  st_h5_col_append(st_h5_col_t *c, const char *file_label, const void *data, size_t n,
                      kiln_err_t *err);
void st_h5_col_close(st_h5_col_t *c);

/* ---- reading ---------------------------------------------------------- */

/* A dataset found by a reader, checked for element type and rank. */
typedef struct {
    hid_t        dset;
    st_h5_kind_t kind;
    size_t       row_len;         /* 0 for 1-D */
    uint64_t     n_rows;
    char         path[ST_H5_PATH_MAX];
} st_h5_ds_t;

void st_h5_ds_init(st_h5_ds_t *d);
/* Opens path; checks the type is kind, the rank is 1 (row_len 0) or 2, and
 * for rank 2 that dim 1 equals row_len (row_len SIZE_MAX: any, stored in
 * d->row_len).  KILN_ESCHEMA if missing, KILN_ETYPE, KILN_ESHAPE. */
int  st_h5_ds_open(st_h5_ds_t *d, hid_t file, const char *file_label, const char *path,
                   st_h5_kind_t kind, size_t row_len, kiln_err_t *err);
/* KILN_ESHAPE unless d has n_rows rows. */
int  st_h5_ds_expect_rows(const st_h5_ds_t *d, const char *file_label, uint64_t n_rows,
                          const char *what, kiln_err_t *err);
/* Reads rows [row0, row0+n) into out (native).  Float rows are checked:
 * NaN/Inf gives KILN_ENONFINITE naming the row (`row_word`: "window"/"row"). */
int  st_h5_ds_read(st_h5_ds_t *d, const char *file_label, uint64_t row0, size_t n, void *out,
                   const char *row_word, kiln_err_t *err);
/* Streams the whole dataset through SHA-256 of its little-endian bytes. */
int  st_h5_ds_digest(st_h5_ds_t *d, const char *file_label, uint8_t digest[32], kiln_err_t *err);
void st_h5_ds_close(st_h5_ds_t *d);

/* ---- the per-row columns both schemas carry --------------------------- */

/* /asset int32, /timestamp int64, optional /label int32, /target float32. */
typedef struct {
    st_h5_col_t asset, timestamp, label, target;
    int         has_label, has_target;
    size_t      n_label_names;    /* labels must be in -1..n-1 (any >= -1 if 0) */
} st_h5_rowcols_t;

void st_h5_rowcols_init(st_h5_rowcols_t *r);
int  st_h5_rowcols_create(st_h5_rowcols_t *r, hid_t file, const char *file_label,
                          int has_label, int has_target, size_t n_label_names, int compress,
                          kiln_err_t *err);
/* Checks a batch before anything is written: label/target present when
 * declared, labels in range (KILN_EINVAL), targets finite (KILN_ENONFINITE). */
int  st_h5_rowcols_check(const st_h5_rowcols_t *r, const char *file_label, uint64_t row0,
                         size_t n, const int32_t *asset, const int64_t *timestamp,
                         const int32_t *label, const float *target, const char *row_word,
                         kiln_err_t *err);
int  st_h5_rowcols_append(st_h5_rowcols_t *r, const char *file_label, size_t n,
                          const int32_t *asset, const int64_t *timestamp, const int32_t *label,
                          const float *target, kiln_err_t *err);
void st_h5_rowcols_close(st_h5_rowcols_t *r);

/* Checks a batch of n rows of row_len float32 values for dataset ds_path
 * before anything is written: present (KILN_EINVAL "no values given") and
 * finite (KILN_ENONFINITE "NaN at row_word R, elem_word E", R from row0). */
int  st_h5_check_floats(const char *file_label, const char *ds_path, const float *values,
                        size_t n, size_t row_len, uint64_t row0, const char *row_word,
                        const char *elem_word, kiln_err_t *err);
/* The checks an append starts with: KILN_EIO if an earlier write `broken`
 * the writer, KILN_EINVAL if n rows of row_len float32 overflow a size_t
 * ("batch of N <row_word>s is too large"). */
int  st_h5_check_batch(const char *file_label, int broken, size_t n, size_t row_len,
                       const char *row_word, kiln_err_t *err);

typedef struct {
    st_h5_ds_t asset, timestamp, label, target;
    int        has_label, has_target;
    size_t     n_label_names;
} st_h5_rowds_t;

void st_h5_rowds_init(st_h5_rowds_t *r);
/* Opens and checks the four datasets against n_rows (`rows_from` says where
 * that count came from, for messages). */
int  st_h5_rowds_open(st_h5_rowds_t *r, hid_t file, const char *file_label, uint64_t n_rows,
                      const char *rows_from, size_t n_label_names, kiln_err_t *err);
int  st_h5_rowds_read(st_h5_rowds_t *r, const char *file_label, uint64_t row0, size_t n,
                      int32_t *asset, int64_t *timestamp, int32_t *label, float *target,
                      const char *row_word, kiln_err_t *err);
void st_h5_rowds_close(st_h5_rowds_t *r);

/* ---- the content hash (definition in sensor.h) ------------------------ */

typedef struct {
    const char *path;             /* "/signals/DE" */
    uint64_t    n_rows;
    uint64_t    row_len;          /* 1 for a 1-D dataset */
    uint8_t     digest[32];
} st_h5_part_t;

void st_h5_hash_str(st_sha256_t *h, const char *s);          /* bytes and a NUL */
void st_h5_hash_u64(st_sha256_t *h, uint64_t v);             /* 8 bytes LE */
void st_h5_hash_f64(st_sha256_t *h, double v);               /* IEEE bits, LE */
void st_h5_hash_strs(st_sha256_t *h, const char *name, const char *const *s, size_t n);
/* SHA-256 of native elements as little-endian bytes. */
void st_h5_hash_le(st_sha256_t *h, const void *data, size_t n_elems, size_t elem_size);
/* The part of a column written so far (digest of a copy of its state). */
void st_h5_col_part(const st_h5_col_t *c, st_h5_part_t *part);
/* Streams d into part. */
int  st_h5_ds_part(st_h5_ds_t *d, const char *file_label, st_h5_part_t *part, kiln_err_t *err);
/* Sorts parts by path (bytewise) and hashes each record; then finalizes h. */
void st_h5_hash_finish(st_sha256_t *h, st_h5_part_t *parts, size_t n, char hex[65]);
/* Adds the parts of the per-row datasets present (asset, timestamp, then
 * label and target if there) at parts[*n_parts], advancing *n_parts. */
int  st_h5_rowds_parts(st_h5_rowds_t *r, const char *file_label, st_h5_part_t *parts,
                       size_t *n_parts, kiln_err_t *err);

/* ---- what every writer and reader holds -------------------------------- */

/* A writer's file and per-row columns; sensor.c and features.c embed one
 * beside their own columns.  The writer owns path and tmp_path. */
typedef struct {
    char           *path, *tmp_path;
    hid_t           file;
    uint64_t        n_rows;
    int             broken;           /* an I/O error left columns uneven */
    st_sha256_t     header;           /* the hash's header, already fed */
    st_h5_rowcols_t rows;
} st_h5_writer_t;

void st_h5_writer_init(st_h5_writer_t *w);
/* Copies path, creates the temp file and writes the root attr schema. */
int  st_h5_writer_start(st_h5_writer_t *w, const char *path, const char *schema,
                        kiln_err_t *err);
/* Appends the per-row columns once the schema's own went in with own_rc;
 * a failure marks the writer broken, success counts the n rows. */
int  st_h5_writer_append_rows(st_h5_writer_t *w, int own_rc, size_t n, const int32_t *asset,
                              const int64_t *timestamp, const int32_t *label,
                              const float *target, kiln_err_t *err);
/* KILN_EIO if broken; else adds the per-row parts to parts[0..*n_parts)
 * (the schema's own) and seals the file (st_h5_seal) with hash hex.  parts
 * needs room for 4 more. */
int  st_h5_writer_seal(st_h5_writer_t *w, st_h5_part_t *parts, size_t n_parts, char hex[65],
                       kiln_err_t *err);
/* After the schema's own objects are closed: closes the per-row columns,
 * renames the temp file into place and copies hex to hash_hex (if given). */
int  st_h5_writer_commit(st_h5_writer_t *w, const char hex[65], char *hash_hex, kiln_err_t *err);
/* Closes what is open, removes the temp file unless committed, frees the
 * paths (not w itself). */
void st_h5_writer_free(st_h5_writer_t *w);

/* A reader's file and per-row datasets.  The reader owns path. */
typedef struct {
    char         *path;
    hid_t         file;
    st_h5_rowds_t rows;
} st_h5_reader_t;

void st_h5_reader_init(st_h5_reader_t *r);
/* Copies path and opens it, checking the root attr schema. */
int  st_h5_reader_start(st_h5_reader_t *r, const char *path, const char *schema,
                        kiln_err_t *err);
/* st_h5_rowds_read with HDF5's error printing off. */
int  st_h5_reader_read_meta(st_h5_reader_t *r, uint64_t row0, size_t n, int32_t *asset,
                            int64_t *timestamp, int32_t *label, float *target,
                            const char *row_word, kiln_err_t *err);
/* Closes the datasets and the file and frees path (not r itself). */
void st_h5_reader_free(st_h5_reader_t *r);

#endif
