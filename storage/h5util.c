/* h5util.c - HDF5 plumbing shared by sensor.c and features.c: quiet error
 * stacks, the temp-file-and-rename commit, opening a file for reading,
 * string and number attributes, and name checks. */
#include "h5util.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../core/kiln_alloc.h"

void st_h5_quiet_begin(st_h5_quiet_t *q)
{
    q->func = NULL;
    q->data = NULL;
    H5Eget_auto2(H5E_DEFAULT, &q->func, &q->data);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

void st_h5_quiet_end(const st_h5_quiet_t *q) { H5Eset_auto2(H5E_DEFAULT, q->func, q->data); }

void st_h5_quiet_free(void (*free_fn)(void *), void *obj)
{
    st_h5_quiet_t q;
    st_h5_quiet_begin(&q);
    free_fn(obj);
    st_h5_quiet_end(&q);
}

/* Creates a temp name of our own: PATH.tmp.<pid> if free, else
 * PATH.tmp.<pid>.<random hex>, each with O_CREAT|O_EXCL, so two writers (pid
 * namespaces, shared filesystems) never share one and a stale or foreign temp
 * file is never truncated.  Returns an errno value, 0 on success. */
static int tmp_name_claim(const char *path, char *buf, size_t len)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t x = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 30) ^
                 ((uint64_t)getpid() << 16) ^ (uint64_t)(uintptr_t)buf;
    for (int attempt = 0; attempt < 32; attempt++) {
        if (attempt == 0) {
            snprintf(buf, len, "%s.tmp.%ld", path, (long)getpid());
        } else {
            x ^= x << 13;                     /* xorshift64 (Marsaglia 2003) */
            x ^= x >> 7;
            x ^= x << 17;
            snprintf(buf, len, "%s.tmp.%ld.%08lx", path, (long)getpid(),
                     (unsigned long)(x & 0xffffffffu));
        }
        int fd = open(buf, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd >= 0) {
            close(fd);
            return 0;
        }
        if (errno != EEXIST)
            return errno;
    }
    return EEXIST;
}

int st_h5_tmp_create(const char *path, hid_t *file, char **tmp_path, kiln_err_t *err)
{
    size_t len = strlen(path) + 48;
    hid_t fapl = H5I_INVALID_HID;
    *file = H5I_INVALID_HID;
    *tmp_path = kiln_malloc(len);
    if (!*tmp_path)
        return kiln_err_set(err, KILN_ENOMEM, "%s: out of memory", path);
    int e = tmp_name_claim(path, *tmp_path, len);
    if (e) {
        kiln_err_set(err, KILN_EIO, "%s: cannot create a temp file %s: %s", path, *tmp_path,
                     strerror(e));
        kiln_free(*tmp_path);
        *tmp_path = NULL;
        return KILN_EIO;
    }
    /* The empty file is ours: HDF5 truncates it in place. 1.8+ object headers:
     * dense attribute storage, so 4096 feature names (64 KiB of heap ids)
     * still fit in one attribute. */
    fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl >= 0 && H5Pset_libver_bounds(fapl, H5F_LIBVER_V18, H5F_LIBVER_LATEST) >= 0)
        *file = H5Fcreate(*tmp_path, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    if (fapl >= 0)
        H5Pclose(fapl);
    if (*file < 0) {
        e = errno;
        kiln_err_set(err, KILN_EIO, "%s: cannot create %s: %s", path, *tmp_path, strerror(e));
        unlink(*tmp_path);                    /* ours: created above */
        kiln_free(*tmp_path);
        *tmp_path = NULL;
        return KILN_EIO;
    }
    return 0;
}

static int fsync_path(const char *path, int flags)
{
    int fd = open(path, flags);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

int st_h5_tmp_commit(hid_t *file, const char *tmp_path, const char *path, kiln_err_t *err)
{
    herr_t closed = H5Fclose(*file);
    *file = H5I_INVALID_HID;
    if (closed < 0) {
        unlink(tmp_path);
        return kiln_err_set(err, KILN_EIO, "%s: cannot finish writing %s", path, tmp_path);
    }
    if (fsync_path(tmp_path, O_RDONLY) != 0 || rename(tmp_path, path) != 0) {
        int e = errno;
        unlink(tmp_path);
        return kiln_err_set(err, KILN_EIO, "%s: cannot move %s into place: %s", path, tmp_path,
                            strerror(e));
    }
    /* Make the rename itself durable; a failure here loses nothing written. */
    char dir[4096];
    const char *slash = strrchr(path, '/');
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - path) + (slash == path), path);
    fsync_path(dir, O_RDONLY | O_DIRECTORY);
    return 0;
}

void st_h5_tmp_discard(hid_t *file, const char *tmp_path)
{
    if (*file >= 0)
        H5Fclose(*file);
    *file = H5I_INVALID_HID;
    if (tmp_path)
        unlink(tmp_path);
}

static hid_t vlen_str_type(void)
{
    hid_t t = H5Tcopy(H5T_C_S1);
    if (t >= 0 && (H5Tset_size(t, H5T_VARIABLE) < 0 || H5Tset_cset(t, H5T_CSET_UTF8) < 0)) {
        H5Tclose(t);
        return H5I_INVALID_HID;
    }
    return t;
}

/* Writes one attribute of type `type` and the given space. */
static int attr_put(hid_t obj, const char *file_label, const char *obj_path, const char *name,
                    hid_t type, hid_t space, const void *buf, kiln_err_t *err)
{
    hid_t a = H5I_INVALID_HID;
    int rc = 0;
    if (type < 0 || space < 0 ||
        (a = H5Acreate2(obj, name, type, space, H5P_DEFAULT, H5P_DEFAULT)) < 0 ||
        H5Awrite(a, type, buf) < 0)
        rc = kiln_err_at(err, KILN_EIO, obj_path, "%s: %s: cannot write attribute '%s'",
                         file_label, obj_path, name);
    if (a >= 0)
        H5Aclose(a);
    return rc;
}

int st_h5_attr_put_str(hid_t obj, const char *file_label, const char *obj_path,
                       const char *name, const char *value, kiln_err_t *err)
{
    hid_t t = vlen_str_type(), s = H5Screate(H5S_SCALAR);
    const char *v = value ? value : "";
    int rc = attr_put(obj, file_label, obj_path, name, t, s, &v, err);
    if (s >= 0)
        H5Sclose(s);
    if (t >= 0)
        H5Tclose(t);
    return rc;
}

int st_h5_attr_put_strs(hid_t obj, const char *file_label, const char *obj_path,
                        const char *name, const char *const *values, size_t n, kiln_err_t *err)
{
    hsize_t dim = n;
    hid_t t = vlen_str_type(), s = H5Screate_simple(1, &dim, NULL);
    static const char *const none[1] = {""};
    int rc = attr_put(obj, file_label, obj_path, name, t, s, n ? (const void *)values : none, err);
    if (s >= 0)
        H5Sclose(s);
    if (t >= 0)
        H5Tclose(t);
    return rc;
}

/* One scalar numeric attribute, stored little-endian as `type`. */
static int attr_put_scalar(hid_t obj, const char *file_label, const char *obj_path,
                           const char *name, hid_t type, const void *value, kiln_err_t *err)
{
    hid_t s = H5Screate(H5S_SCALAR);
    int rc = attr_put(obj, file_label, obj_path, name, type, s, value, err);
    if (s >= 0)
        H5Sclose(s);
    return rc;
}

int st_h5_attr_put_f64(hid_t obj, const char *file_label, const char *obj_path,
                       const char *name, double value, kiln_err_t *err)
{
    return attr_put_scalar(obj, file_label, obj_path, name, H5T_IEEE_F64LE, &value, err);
}

int st_h5_attr_put_i64(hid_t obj, const char *file_label, const char *obj_path,
                       const char *name, int64_t value, kiln_err_t *err)
{
    return attr_put_scalar(obj, file_label, obj_path, name, H5T_STD_I64LE, &value, err);
}

void st_h5_now_iso8601(char buf[32])
{
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(buf, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}
/* ---- reading ---------------------------------------------------------- */

int st_h5_open_ro(const char *path, hid_t *file, kiln_err_t *err)
{
    struct stat st;
    *file = H5I_INVALID_HID;
    if (stat(path, &st) != 0) {
        int e = errno;
        return kiln_err_set(err, e == ENOENT ? KILN_ENOTFOUND : KILN_EIO, "%s: %s", path,
                            strerror(e));
    }
    if (S_ISDIR(st.st_mode))
        return kiln_err_set(err, KILN_EFORMAT, "%s: is a directory, not an HDF5 file", path);
    if (st.st_size == 0)
        return kiln_err_set(err, KILN_EFORMAT, "%s: empty file, not an HDF5 file", path);
    if (H5Fis_hdf5(path) <= 0)
        return kiln_err_set(err, KILN_EFORMAT, "%s: not an HDF5 file", path);
    *file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (*file < 0)
        return kiln_err_set(err, KILN_EFORMAT, "%s: cannot open as HDF5 (damaged file?)", path);
    return 0;
}

int st_h5_open_schema(const char *path, const char *schema, hid_t *file, kiln_err_t *err)
{
    char *found = NULL;
    int rc;
    if ((rc = st_h5_open_ro(path, file, err)) < 0 ||
        (rc = st_h5_attr_get_str(*file, path, "/", "schema", 1, 64, &found, err)) < 0)
        return rc;
    if (strcmp(found, schema) != 0)
        rc = kiln_err_at(err, KILN_ESCHEMA, "/", "%s: /: schema is '%s', expected '%s'", path,
                         found, schema);
    kiln_free(found);
    return rc;
}

/* Words for a type a file holds, for "expected float32, found float64". */
void st_h5_type_words(hid_t t, char *buf, size_t len)
{
    size_t bits = H5Tget_size(t) * 8;
    switch (H5Tget_class(t)) {
    case H5T_FLOAT: snprintf(buf, len, "float%zu", bits); break;
    case H5T_INTEGER:
        snprintf(buf, len, "%s%zu", H5Tget_sign(t) == H5T_SGN_NONE ? "uint" : "int", bits);
        break;
    case H5T_STRING: snprintf(buf, len, "string"); break;
    case H5T_COMPOUND: snprintf(buf, len, "compound"); break;
    case H5T_ENUM: snprintf(buf, len, "enum"); break;
    case H5T_ARRAY: snprintf(buf, len, "array type"); break;
    case H5T_VLEN: snprintf(buf, len, "variable-length sequence"); break;
    case H5T_OPAQUE: snprintf(buf, len, "opaque"); break;
    case H5T_BITFIELD: snprintf(buf, len, "bitfield"); break;
    case H5T_REFERENCE: snprintf(buf, len, "reference"); break;
    default: snprintf(buf, len, "unknown type"); break;
    }
}

/* Opens attribute name on obj: 1 found, 0 absent, <0 error set. */
static int attr_open(hid_t obj, const char *file_label, const char *obj_path, const char *name,
                     int required, hid_t *a, kiln_err_t *err)
{
    *a = H5I_INVALID_HID;
    htri_t exists = H5Aexists(obj, name);
    if (exists <= 0) {
        if (!required)
            return 0;
        return kiln_err_at(err, KILN_ESCHEMA, obj_path, "%s: %s: missing attribute '%s'",
                           file_label, obj_path, name);
    }
    *a = H5Aopen(obj, name, H5P_DEFAULT);
    if (*a < 0)
        return kiln_err_at(err, KILN_EFORMAT, obj_path, "%s: %s: cannot read attribute '%s'",
                           file_label, obj_path, name);
    return 1;
}

/* Reads every element of a string attribute a (n elements, n <= max_n) into
 * out[], each a new string of at most max_len bytes. */
static int attr_read_strings(hid_t a, const char *file_label, const char *obj_path,
                             const char *name, size_t max_n, size_t max_len, char **out,
                             size_t *n_out, int want_scalar, kiln_err_t *err)
{
    hid_t ftype = H5Aget_type(a), space = H5Aget_space(a), mtype = H5I_INVALID_HID;
    char **vlen = NULL;
    char *fixed = NULL;
    char words[32];
    size_t n = 0, filled = 0;
    int rc = 0;

    *n_out = 0;
    if (ftype < 0 || space < 0) {
        rc = kiln_err_at(err, KILN_EFORMAT, obj_path, "%s: %s: cannot read attribute '%s'",
                         file_label, obj_path, name);
        goto out;
    }
    if (H5Tget_class(ftype) != H5T_STRING) {
        st_h5_type_words(ftype, words, sizeof words);
        rc = kiln_err_at(err, KILN_ETYPE, obj_path,
                         "%s: %s: attribute '%s': expected string, found %s", file_label,
                         obj_path, name, words);
        goto out;
    }
    H5S_class_t sclass = H5Sget_simple_extent_type(space);
    hssize_t npoints = H5Sget_simple_extent_npoints(space);
    int ndims = H5Sget_simple_extent_ndims(space);
    if (sclass == H5S_NULL || npoints < 0 || ndims > 1 ||
        (want_scalar && npoints != 1) || (size_t)npoints > max_n) {
        rc = kiln_err_at(err, KILN_ESHAPE, obj_path,
                         "%s: %s: attribute '%s': expected %s, found %lld values", file_label,
                         obj_path, name, want_scalar ? "one string" : "a list of strings",
                         (long long)npoints);
        goto out;
    }
    n = (size_t)npoints;
    if (n == 0)
        goto out;
    htri_t is_var = H5Tis_variable_str(ftype);
    size_t fsize = H5Tget_size(ftype);
    if (is_var > 0) {
        mtype = vlen_str_type();
        vlen = kiln_calloc(n, sizeof *vlen);
        if (!vlen) {
            rc = kiln_err_set(err, KILN_ENOMEM, "%s: out of memory", file_label);
            goto out;
        }
        if (mtype < 0 || H5Tset_cset(mtype, H5Tget_cset(ftype)) < 0 || H5Aread(a, mtype, vlen) < 0) {
            kiln_free(vlen);
            vlen = NULL;
            rc = kiln_err_at(err, KILN_EFORMAT, obj_path, "%s: %s: cannot read attribute '%s'",
                             file_label, obj_path, name);
            goto out;
        }
    } else {
        if (fsize == 0 || fsize > max_len + 1 + 64) {   /* allow some NUL padding */
            rc = kiln_err_at(err, KILN_ESCHEMA, obj_path,
                             "%s: %s: attribute '%s': strings longer than %zu bytes", file_label,
                             obj_path, name, max_len);
            goto out;
        }
        mtype = H5Tcopy(ftype);
        fixed = kiln_malloc(n * fsize);
        if (!fixed) {
            rc = kiln_err_set(err, KILN_ENOMEM, "%s: out of memory", file_label);
            goto out;
        }
        if (mtype < 0 || H5Aread(a, mtype, fixed) < 0) {
            rc = kiln_err_at(err, KILN_EFORMAT, obj_path, "%s: %s: cannot read attribute '%s'",
                             file_label, obj_path, name);
            goto out;
        }
    }
    int space_pad = !vlen && H5Tget_strpad(ftype) == H5T_STR_SPACEPAD;
    for (size_t i = 0; i < n; i++) {
        const char *s = vlen ? (vlen[i] ? vlen[i] : "") : fixed + i * fsize;
        size_t len = strnlen(s, vlen ? max_len + 1 : fsize);
        while (space_pad && len && s[len - 1] == ' ')
            len--;
        if (len > max_len) {
            rc = kiln_err_at(err, KILN_ESCHEMA, obj_path,
                             "%s: %s: attribute '%s': string longer than %zu bytes", file_label,
                             obj_path, name, max_len);
            goto out;
        }
        out[i] = kiln_malloc(len + 1);
        if (!out[i]) {
            rc = kiln_err_set(err, KILN_ENOMEM, "%s: out of memory", file_label);
            goto out;
        }
        memcpy(out[i], s, len);
        out[i][len] = '\0';
        filled++;
    }
out:
    if (vlen) {
        H5Dvlen_reclaim(mtype, space, H5P_DEFAULT, vlen);
        kiln_free(vlen);
    }
    kiln_free(fixed);
    if (rc < 0) {
        for (size_t i = 0; i < filled; i++) {
            kiln_free(out[i]);
            out[i] = NULL;
        }
    } else {
        *n_out = n;
    }
    if (mtype >= 0)
        H5Tclose(mtype);
    if (space >= 0)
        H5Sclose(space);
    if (ftype >= 0)
        H5Tclose(ftype);
    return rc;
}

int st_h5_attr_get_str(hid_t obj, const char *file_label, const char *obj_path,
                       const char *name, int required, size_t max_len, char **out,
                       kiln_err_t *err)
{
    hid_t a;
    size_t n = 0;
    *out = NULL;
    int found = attr_open(obj, file_label, obj_path, name, required, &a, err);
    if (found <= 0)
        return found;
    int rc = attr_read_strings(a, file_label, obj_path, name, 1, max_len, out, &n, 1, err);
    H5Aclose(a);
    return rc;
}

int st_h5_attr_get_strs(hid_t obj, const char *file_label, const char *obj_path,
                        const char *name, int required, size_t max_n, size_t max_len,
                        char **out, size_t *n, kiln_err_t *err)
{
    hid_t a;
    *n = 0;
    int found = attr_open(obj, file_label, obj_path, name, required, &a, err);
    if (found <= 0)
        return found;
    int rc = attr_read_strings(a, file_label, obj_path, name, max_n, max_len, out, n, 0, err);
    H5Aclose(a);
    return rc;
}

int st_h5_attr_get_f64(hid_t obj, const char *file_label, const char *obj_path,
                       const char *name, double *out, kiln_err_t *err)
{
    hid_t a, t = H5I_INVALID_HID, s = H5I_INVALID_HID;
    char words[32];
    int rc = attr_open(obj, file_label, obj_path, name, 1, &a, err);
    if (rc < 0)
        return rc;
    rc = 0;
    t = H5Aget_type(a);
    s = H5Aget_space(a);
    H5T_class_t cls = t >= 0 ? H5Tget_class(t) : H5T_NO_CLASS;
    if (cls != H5T_INTEGER && cls != H5T_FLOAT) {
        if (t >= 0)
            st_h5_type_words(t, words, sizeof words);
        else
            snprintf(words, sizeof words, "unknown type");
        rc = kiln_err_at(err, KILN_ETYPE, obj_path,
                         "%s: %s: attribute '%s': expected a number, found %s", file_label,
                         obj_path, name, words);
    } else if (s < 0 || H5Sget_simple_extent_npoints(s) != 1) {
        rc = kiln_err_at(err, KILN_ESHAPE, obj_path,
                         "%s: %s: attribute '%s': expected one number", file_label, obj_path, name);
    } else if (H5Aread(a, H5T_NATIVE_DOUBLE, out) < 0) {
        rc = kiln_err_at(err, KILN_EFORMAT, obj_path, "%s: %s: cannot read attribute '%s'",
                         file_label, obj_path, name);
    }
    if (s >= 0)
        H5Sclose(s);
    if (t >= 0)
        H5Tclose(t);
    H5Aclose(a);
    return rc;
}
int st_h5_check_name(const char *name, const char *what, kiln_err_t *err)
{
    size_t len = name ? strlen(name) : 0;
    if (len == 0 || len > ST_H5_NAME_MAX)
        return kiln_err_at(err, KILN_EINVAL, what, "%s name must be 1..%d bytes", what,
                           ST_H5_NAME_MAX);
    if (!strcmp(name, ".") || !strcmp(name, ".."))
        return kiln_err_at(err, KILN_EINVAL, what, "%s name '%s' not allowed", what, name);
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)name[i];
        if (ch == '/' || ch < 0x20 || ch == 0x7f)
            return kiln_err_at(err, KILN_EINVAL, what,
                               "%s name '%s': no '/' or control characters allowed", what, name);
    }
    return 0;
}

int st_h5_is_hex64(const char *s)
{
    if (!s || strlen(s) != 64)
        return 0;
    for (int i = 0; i < 64; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return 1;
}

int st_h5_check_names(const char *file_label, const char *what, const char *const *names,
                      size_t n, size_t max_n, int distinct, kiln_err_t *err)
{
    if (n > max_n)
        return kiln_err_at(err, KILN_EINVAL, what, "%s: %s: %zu names, at most %zu", file_label,
                           what, n, max_n);
    if (n && !names)
        return kiln_err_at(err, KILN_EINVAL, what, "%s: %s: no names given", file_label, what);
    for (size_t i = 0; i < n; i++) {
        size_t len = names[i] ? strlen(names[i]) : 0;
        if (len == 0 || len > ST_H5_NAME_MAX)
            return kiln_err_at(err, KILN_EINVAL, what, "%s: %s: name %zu must be 1..%d bytes",
                               file_label, what, i, ST_H5_NAME_MAX);
        for (size_t k = 0; k < len; k++)
            if ((unsigned char)names[i][k] < 0x20 || names[i][k] == 0x7f)
                return kiln_err_at(err, KILN_EINVAL, what,
                                   "%s: %s: name %zu has a control character", file_label, what, i);
        for (size_t k = 0; distinct && k < i; k++)
            if (!strcmp(names[k], names[i]))
                return kiln_err_at(err, KILN_EINVAL, what, "%s: %s: '%s' given twice", file_label,
                                   what, names[i]);
    }
    return 0;
}
