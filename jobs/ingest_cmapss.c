/* ingest_cmapss.c - NASA C-MAPSS turbofan text (train_FD00x / test_FD00x +
 * RUL_FD00x) to a sensor dataset of one-sample windows, one per engine cycle,
 * with the remaining useful life as /target.  Holds one engine at a time. */
#include "ingest.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/kiln_alloc.h"

#define CM_FIELDS   26         /* unit, cycle, 3 settings, 21 sensors */
#define CM_CHANNELS 24
#define CM_LINE_MAX 4096

static const char *const cm_channels[CM_CHANNELS] = {
    "setting1", "setting2", "setting3",
    "s1", "s2", "s3", "s4", "s5", "s6", "s7", "s8", "s9", "s10", "s11",
    "s12", "s13", "s14", "s15", "s16", "s17", "s18", "s19", "s20", "s21"};

/* One engine's rows, channel-major so they append as they are. */
typedef struct {
    int     unit;
    size_t  n, cap;
    int64_t *cycle;
    float   *values[CM_CHANNELS];
    int32_t *asset;
    int64_t *ts;
    float   *target;
} cm_unit_t;

static void cm_unit_free(cm_unit_t *u)
{
    kiln_free(u->cycle);
    kiln_free(u->asset);
    kiln_free(u->ts);
    kiln_free(u->target);
    for (int c = 0; c < CM_CHANNELS; c++)
        kiln_free(u->values[c]);
    memset(u, 0, sizeof *u);
}

static int cm_unit_grow(cm_unit_t *u)
{
    size_t cap = u->cap ? u->cap * 2 : 512;
    void *p;
#define CM_GROW(field)                                                  \
    if (!(p = kiln_realloc(u->field, cap * sizeof *u->field)))          \
        return KILN_ENOMEM;                                             \
    u->field = p;
    CM_GROW(cycle)
    CM_GROW(asset)
    CM_GROW(ts)
    CM_GROW(target)
    for (int c = 0; c < CM_CHANNELS; c++) {
        CM_GROW(values[c])
    }
#undef CM_GROW
    u->cap = cap;
    return 0;
}

/* Reads the RUL file: one integer per line (trailing spaces allowed). */
static int cm_read_rul(const char *path, double **out, size_t *n_out, kiln_err_t *err)
{
    *out = NULL;
    *n_out = 0;
    FILE *f = fopen(path, "r");
    if (!f)
        return kiln_err_at(err, KILN_ENOTFOUND, path, "%s: cannot open", path);
    char line[CM_LINE_MAX];
    size_t n = 0, cap = 0;
    double *v = NULL;
    int rc = 0, lineno = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        char *p = line, *end;
        while (isspace((unsigned char)*p))
            p++;
        if (!*p)
            continue;
        errno = 0;
        long val = strtol(p, &end, 10);
        while (isspace((unsigned char)*end))
            end++;
        if (end == p || *end || errno || val < 0) {
            rc = kiln_err_at(err, KILN_EFORMAT, path, "%s line %d: expected one non-negative "
                             "integer (the RUL), got '%.40s'", path, lineno, p);
            if (err)
                err->line = lineno;
            goto out;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 128;
            double *nv = kiln_realloc(v, cap * sizeof *v);
            if (!nv) {
                rc = kiln_err_set(err, KILN_ENOMEM, "%s: no memory", path);
                goto out;
            }
            v = nv;
        }
        v[n++] = (double)val;
    }
    if (n == 0)
        rc = kiln_err_at(err, KILN_EFORMAT, path, "%s: no RUL values", path);
out:
    fclose(f);
    if (rc < 0)
        kiln_free(v);
    else {
        *out = v;
        *n_out = n;
    }
    return rc;
}

/* Fills targets for the buffered engine and appends it. */
static int cm_flush(cm_unit_t *u, const double *rul, size_t n_rul, const char *rul_path,
                    st_sensor_writer_t *w, jb_ingest_summary_t *sum, kiln_err_t *err)
{
    if (u->n == 0)
        return 0;
    double end_rul = 0;
    if (rul) {
        if (u->unit < 1 || (size_t)u->unit > n_rul)
            return kiln_err_at(err, KILN_ENOTFOUND, rul_path, "%s: no RUL line for unit %d "
                               "(the file has %zu)", rul_path, u->unit, n_rul);
        end_rul = rul[u->unit - 1];
    }
    int64_t last = u->cycle[u->n - 1];
    for (size_t i = 0; i < u->n; i++) {
        u->asset[i] = u->unit;
        u->ts[i] = u->cycle[i] * 1000000000LL;     /* cycle number read as seconds */
        u->target[i] = (float)(end_rul + (double)(last - u->cycle[i]));
    }
    int rc = st_sensor_append(w, u->n, (const float *const *)u->values, u->asset, u->ts, NULL,
                              u->target, err);
    if (rc < 0)
        return rc;
    sum->n_windows += u->n;
    u->n = 0;
    return 0;
}

int jb_ingest_cmapss(const char *out_path, const char *data_path, const char *rul_path,
                     const jb_ingest_opts_t *opts, jb_ingest_summary_t *sum, kiln_err_t *err)
{
    int compress = opts ? opts->compress : 0;
    int rc = 0, lineno = 0;
    double *rul = NULL;
    size_t n_rul = 0;
    FILE *f = NULL;
    char *source = NULL;
    st_sensor_writer_t *w = NULL;
    cm_unit_t u = {0};
    jb_ingest_summary_t local;
    jb_ingest_summary_t *s = sum ? sum : &local;

    if (!data_path)
        return kiln_err_set(err, KILN_EINVAL, "no C-MAPSS data file given");
    if (rul_path && (rc = cm_read_rul(rul_path, &rul, &n_rul, err)) < 0)
        return rc;
    if (!(f = fopen(data_path, "r"))) {
        rc = kiln_err_at(err, KILN_ENOTFOUND, data_path, "%s: cannot open", data_path);
        goto out;
    }
    size_t cap = strlen(data_path) + (rul_path ? strlen(rul_path) : 0) + 256;
    if (!(source = kiln_malloc(cap))) {
        rc = kiln_err_set(err, KILN_ENOMEM, "no memory");
        goto out;
    }
    snprintf(source, cap, "NASA C-MAPSS %s file %s%s%s; one window per cycle; timestamp = cycle "
             "x 1e9 ns; target = RUL in cycles", rul_path ? "test" : "train", data_path,
             rul_path ? ", RUL file " : "", rul_path ? rul_path : "");
    st_sensor_meta_t meta = {0};
    meta.sample_rate_hz = 1.0;
    meta.window_len = 1;
    meta.n_channels = CM_CHANNELS;
    for (int c = 0; c < CM_CHANNELS; c++)
        meta.channels[c] = cm_channels[c];
    meta.source = source;
    meta.has_target = 1;
    jb_summary_init(s, &meta);
    if ((rc = st_sensor_create(out_path, &meta, compress, &w, err)) < 0)
        goto out;

    char line[CM_LINE_MAX];
    int last_unit = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        size_t len = strlen(line);
        if (len == sizeof line - 1 && line[len - 1] != '\n') {
            rc = kiln_err_at(err, KILN_EFORMAT, data_path, "%s line %d: line longer than %d bytes",
                             data_path, lineno, CM_LINE_MAX - 2);
            goto bad_line;
        }
        double v[CM_FIELDS];
        int nf = 0;
        char *p = line;
        while (1) {
            while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
                p++;
            if (!*p)
                break;
            if (nf == CM_FIELDS) {
                rc = kiln_err_at(err, KILN_EFORMAT, data_path, "%s line %d: more than %d fields",
                                 data_path, lineno, CM_FIELDS);
                goto bad_line;
            }
            char *end;
            v[nf] = strtod(p, &end);
            if (end == p || (*end && !isspace((unsigned char)*end)) || !isfinite(v[nf])) {
                char *tok_end = p;
                while (*tok_end && !isspace((unsigned char)*tok_end))
                    tok_end++;
                rc = kiln_err_at(err, KILN_EFORMAT, data_path, "%s line %d: field %d: '%.*s' is "
                                 "not a finite number", data_path, lineno, nf + 1,
                                 (int)(tok_end - p > 40 ? 40 : tok_end - p), p);
                goto bad_line;
            }
            if (!isfinite((float)v[nf])) {      /* finite, but Inf once stored as float32 */
                rc = kiln_err_at(err, KILN_ENONFINITE, data_path, "%s line %d: field %d: "
                                 "'%.*s' is beyond the float32 range (+-3.4e38)", data_path,
                                 lineno, nf + 1, (int)(end - p > 40 ? 40 : end - p), p);
                if (err)
                    err->column = nf + 1;
                goto bad_line;
            }
            nf++;
            p = end;
        }
        if (nf == 0)
            continue;           /* blank line */
        if (nf != CM_FIELDS) {
            rc = kiln_err_at(err, KILN_EFORMAT, data_path, "%s line %d: %d fields, expected %d "
                             "(unit, cycle, 3 settings, 21 sensors)", data_path, lineno, nf,
                             CM_FIELDS);
            goto bad_line;
        }
        if (v[0] != floor(v[0]) || v[0] < 1 || v[0] > 1e6 || v[1] != floor(v[1]) || v[1] < 0 ||
            v[1] > 1e9) {
            rc = kiln_err_at(err, KILN_EFORMAT, data_path, "%s line %d: unit and cycle must be "
                             "positive integers, got %g and %g", data_path, lineno, v[0], v[1]);
            goto bad_line;
        }
        int unit = (int)v[0];
        int64_t cycle = (int64_t)v[1];
        if (unit != u.unit) {
            if (unit < last_unit || (unit == last_unit && u.n)) {
                rc = kiln_err_at(err, KILN_EFORMAT, data_path, "%s line %d: unit %d after unit %d: "
                                 "rows must be grouped by unit in increasing order", data_path,
                                 lineno, unit, u.unit);
                goto bad_line;
            }
            if ((rc = cm_flush(&u, rul, n_rul, rul_path, w, s, err)) < 0)
                goto out;
            u.unit = last_unit = unit;
        } else if (cycle <= u.cycle[u.n - 1]) {
            rc = kiln_err_at(err, KILN_EFORMAT, data_path, "%s line %d: cycle %lld of unit %d does "
                             "not follow cycle %lld", data_path, lineno, (long long)cycle, unit,
                             (long long)u.cycle[u.n - 1]);
            goto bad_line;
        }
        if (u.n == u.cap && cm_unit_grow(&u) < 0) {
            rc = kiln_err_set(err, KILN_ENOMEM, "%s: no memory for unit %d", data_path, unit);
            goto out;
        }
        u.cycle[u.n] = cycle;
        for (int c = 0; c < CM_CHANNELS; c++)
            u.values[c][u.n] = (float)v[2 + c];
        u.n++;
    }
    if (ferror(f)) {
        rc = kiln_err_at(err, KILN_EIO, data_path, "%s: read error", data_path);
        goto out;
    }
    if ((rc = cm_flush(&u, rul, n_rul, rul_path, w, s, err)) < 0)
        goto out;
    if (s->n_windows == 0) {
        rc = kiln_err_at(err, KILN_EFORMAT, data_path, "%s: no data rows", data_path);
        goto out;
    }
    rc = st_sensor_commit(&w, s->hash, err);
    goto out;
bad_line:
    if (err)
        err->line = lineno;
out:
    st_sensor_abort(&w);
    cm_unit_free(&u);
    if (f)
        fclose(f);
    kiln_free(source);
    kiln_free(rul);
    return rc;
}
