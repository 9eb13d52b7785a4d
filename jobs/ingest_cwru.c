/* ingest_cwru.c - CWRU bearing recordings (.mat) to a sensor dataset: every
 * recording resampled to one rate with the polyphase anti-aliasing filter,
 * cut into windows and appended one recording at a time.  Also holds the
 * small helpers shared by the ingest and gen jobs. */
#include "ingest.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <matio.h>

#include "../core/kiln_alloc.h"
#include "../kernels/kernels.h"

/* ---- shared helpers -------------------------------------------------- */

void jb_summary_init(jb_ingest_summary_t *sum, const st_sensor_meta_t *meta)
{
    memset(sum, 0, sizeof *sum);
    sum->window_len = meta->window_len;
    sum->sample_rate_hz = meta->sample_rate_hz;
    sum->n_channels = meta->n_channels;
    for (size_t c = 0; c < meta->n_channels; c++)
        snprintf(sum->channels[c], JB_NAME_MAX, "%s", meta->channels[c]);
    sum->n_labels = meta->has_label ? meta->n_label_names : 0;
    for (size_t l = 0; l < sum->n_labels; l++)
        snprintf(sum->label_names[l], JB_NAME_MAX, "%s", meta->label_names[l]);
}

int jb_split_names(const char *list, char names[][JB_NAME_MAX], size_t max, size_t *n,
                   const char *what, kiln_err_t *err)
{
    *n = 0;
    const char *p = list;
    while (1) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        while (len && isspace((unsigned char)*p)) { p++; len--; }
        while (len && isspace((unsigned char)p[len - 1])) len--;
        if (len == 0)
            return kiln_err_at(err, KILN_EINVAL, what, "%s: empty name in '%s'", what, list);
        if (len >= JB_NAME_MAX)
            return kiln_err_at(err, KILN_EINVAL, what, "%s: name '%.*s' longer than %d characters",
                               what, (int)len, p, JB_NAME_MAX - 1);
        if (*n == max)
            return kiln_err_at(err, KILN_EINVAL, what, "%s: more than %zu names", what, max);
        for (size_t i = 0; i < *n; i++)
            if (strlen(names[i]) == len && !memcmp(names[i], p, len))
                return kiln_err_at(err, KILN_EINVAL, what, "%s: '%.*s' given twice", what,
                                   (int)len, p);
        memcpy(names[*n], p, len);
        names[*n][len] = '\0';
        (*n)++;
        if (!end)
            return 0;
        p = end + 1;
    }
}

/* ---- CWRU ------------------------------------------------------------- */

#define CWRU_BATCH 64           /* windows per st_sensor_append */

static const char *const cwru_classes[] = {"normal", "inner_race", "outer_race", "ball"};
static const char *const cwru_known_channels[] = {"DE", "FE", "BA"};
enum { CWRU_N_KNOWN = 3 };

typedef struct {
    const char *path;
    const char *base;          /* file name without folders */
    int         label;
    int         record;        /* CWRU record number = asset */
    double      rate_hz;
    double      rpm;
    char        var[CWRU_N_KNOWN][JB_NAME_MAX];   /* "" when the channel is absent */
} cwru_file_t;

static const char *base_name(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

static int has_ci(const char *s, const char *needle)
{
    size_t n = strlen(needle);
    for (; *s; s++)
        if (!strncasecmp(s, needle, n))
            return 1;
    return 0;
}

/* Class, rate and record from the file name, e.g. 12k_Drive_End_OR007@6_0_130.mat. */
static int cwru_parse_name(cwru_file_t *f, double unprefixed_rate_hz, kiln_err_t *err)
{
    const char *b = f->base;
    if (has_ci(b, "normal"))
        f->label = 0;
    else if (strstr(b, "_IR"))
        f->label = 1;
    else if (strstr(b, "_OR"))
        f->label = 2;
    else if (strstr(b, "_B0"))
        f->label = 3;
    else
        return kiln_err_at(err, KILN_EINVAL, f->path,
                           "%s: cannot tell the fault class from the file name (expected "
                           "'normal', '_IR', '_OR' or '_B0xx')", f->path);
    /* The 12 kHz / 48 kHz prefix gives the rate.  The normal baseline
     * (normal_0_97.mat) has none; it was recorded at 48 kHz: its 243,938
     * samples last 5.08 s at 48 kHz, like CWRU's other 48 kHz records, and its
     * spectral lines match the 12 kHz files only when read at 48 kHz (see
     * shared/data/README.md).  opts->cwru_unprefixed_rate_hz overrides. */
    if (!strncasecmp(b, "12k", 3))
        f->rate_hz = 12000.0;
    else if (!strncasecmp(b, "48k", 3))
        f->rate_hz = 48000.0;
    else if (f->label == 0)
        f->rate_hz = unprefixed_rate_hz;
    else
        return kiln_err_at(err, KILN_EINVAL, f->path,
                           "%s: file name does not start with 12k or 48k: sample rate unknown",
                           f->path);
    const char *dot = strrchr(b, '.');
    const char *end = dot ? dot : b + strlen(b);
    const char *p = end;
    while (p > b && isdigit((unsigned char)p[-1]))
        p--;
    if (p == end || end - p > 6)
        return kiln_err_at(err, KILN_EINVAL, f->path,
                           "%s: no CWRU record number at the end of the file name", f->path);
    f->record = atoi(p);
    return 0;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !strcmp(s + n - m, suffix);
}

static mat_t *cwru_open(const char *path, kiln_err_t *err)
{
    FILE *probe = fopen(path, "rb");
    if (!probe) {
        kiln_err_at(err, KILN_ENOTFOUND, path, "%s: cannot open", path);
        return NULL;
    }
    fclose(probe);
    mat_t *mat = Mat_Open(path, MAT_ACC_RDONLY);
    if (!mat)
        kiln_err_at(err, KILN_EFORMAT, path, "%s: not a MATLAB .mat file libmatio can read", path);
    return mat;
}

/* Reads a real numeric variable as doubles: *out (kiln_malloc) of *n values. */
/* 64 Mi samples: a 48 kHz recording of 23 minutes; CWRU's are 5 to 20 s. */
#define CWRU_MAX_SAMPLES (64 * 1024 * 1024)

static int cwru_read_var(mat_t *mat, const char *path, const char *name, double **out,
                         size_t *n, kiln_err_t *err)
{
    *out = NULL;
    *n = 0;
    matvar_t *v = Mat_VarRead(mat, name);
    int rc = 0;
    if (!v || !v->data) {
        rc = kiln_err_at(err, KILN_EFORMAT, name, "%s: cannot read variable %s", path, name);
        goto out;
    }
    size_t count = 1;
    for (int d = 0; d < v->rank; d++)
        count *= v->dims[d];
    if (v->isComplex || v->rank != 2 || (v->dims[0] != 1 && v->dims[1] != 1) || count == 0) {
        rc = kiln_err_at(err, KILN_ESHAPE, name, "%s: variable %s is not a real vector", path, name);
        goto out;
    }
    /* Only dense numeric arrays: a sparse or logical variable can report a
     * numeric data_type while v->data points at something else, so the
     * element count is also checked against the bytes matio holds. */
    int numeric = v->class_type == MAT_C_DOUBLE || v->class_type == MAT_C_SINGLE ||
                  v->class_type == MAT_C_INT8 || v->class_type == MAT_C_UINT8 ||
                  v->class_type == MAT_C_INT16 || v->class_type == MAT_C_UINT16 ||
                  v->class_type == MAT_C_INT32 || v->class_type == MAT_C_UINT32;
    size_t elem = Mat_SizeOf(v->data_type);
    if (!numeric || v->isLogical || elem == 0 || count > v->nbytes / elem) {
        rc = kiln_err_at(err, KILN_ETYPE, name,
                         "%s: variable %s is not a dense numeric array (class %d)", path, name,
                         (int)v->class_type);
        goto out;
    }
    /* One recording is held in memory while it is resampled: bound it. */
    if (count > CWRU_MAX_SAMPLES) {
        rc = kiln_err_at(err, KILN_ESHAPE, name,
                         "%s: variable %s holds %zu samples, more than the %d this ingest "
                         "holds in memory", path, name, count, CWRU_MAX_SAMPLES);
        goto out;
    }
    double *x = kiln_malloc(count * sizeof *x);
    if (!x) {
        rc = kiln_err_set(err, KILN_ENOMEM, "%s: no memory for %s (%zu values)", path, name, count);
        goto out;
    }
    for (size_t i = 0; i < count; i++) {
        switch (v->data_type) {
        case MAT_T_DOUBLE: x[i] = ((const double *)v->data)[i]; break;
        case MAT_T_SINGLE: x[i] = ((const float *)v->data)[i]; break;
        case MAT_T_UINT16: x[i] = ((const uint16_t *)v->data)[i]; break;
        case MAT_T_INT16:  x[i] = ((const int16_t *)v->data)[i]; break;
        case MAT_T_INT32:  x[i] = ((const int32_t *)v->data)[i]; break;
        case MAT_T_UINT8:  x[i] = ((const uint8_t *)v->data)[i]; break;
        default:
            kiln_free(x);
            rc = kiln_err_at(err, KILN_ETYPE, name, "%s: variable %s has an unsupported type (%d)",
                             path, name, (int)v->data_type);
            goto out;
        }
        if (!isfinite(x[i])) {
            kiln_free(x);
            rc = kiln_err_at(err, KILN_ENONFINITE, name, "%s: variable %s holds NaN or Inf at %zu",
                             path, name, i);
            goto out;
        }
    }
    *out = x;
    *n = count;
out:
    Mat_VarFree(v);
    return rc;
}

/* Pass 1 for one file: names of its channel variables and its rpm. */
static int cwru_scan(cwru_file_t *f, kiln_err_t *err)
{
    static const char *const suffix[CWRU_N_KNOWN] = {"_DE_time", "_FE_time", "_BA_time"};
    char rpm_var[JB_NAME_MAX] = "";
    mat_t *mat = cwru_open(f->path, err);
    if (!mat)
        return err ? err->code : KILN_EIO;
    matvar_t *v;
    while ((v = Mat_VarReadNextInfo(mat)) != NULL) {
        if (v->name && strlen(v->name) < JB_NAME_MAX) {
            for (int c = 0; c < CWRU_N_KNOWN; c++)
                if (ends_with(v->name, suffix[c]))
                    snprintf(f->var[c], JB_NAME_MAX, "%s", v->name);
            if (ends_with(v->name, "RPM"))
                snprintf(rpm_var, JB_NAME_MAX, "%s", v->name);
        }
        Mat_VarFree(v);
    }
    int rc = 0;
    if (!f->var[0][0] && !f->var[1][0] && !f->var[2][0]) {
        rc = kiln_err_at(err, KILN_ENOTFOUND, "_DE_time", "%s: no variable ending in _DE_time, "
                         "_FE_time or _BA_time", f->path);
        goto out;
    }
    f->rpm = 0;
    if (rpm_var[0]) {      /* stored as uint16 in CWRU's files; matio gives a double */
        double *rpm;
        size_t n;
        if ((rc = cwru_read_var(mat, f->path, rpm_var, &rpm, &n, err)) < 0)
            goto out;
        f->rpm = rpm[0];
        kiln_free(rpm);
    }
out:
    Mat_Close(mat);
    return rc;
}

/* Pass 2 for one file: read, resample, window, append. */
static int cwru_ingest_file(const cwru_file_t *f, const int *chan_idx, size_t n_chan,
                            double out_rate_hz, size_t window_len, size_t hop,
                            st_sensor_writer_t *w, jb_ingest_summary_t *sum, kiln_err_t *err)
{
    int rc = 0;
    double *raw = NULL;
    double *res[ST_MAX_CHANNELS] = {0};
    float *batch[ST_MAX_CHANNELS] = {0};
    kn_resampler_t *rs = NULL;
    size_t n_out = 0;
    mat_t *mat = cwru_open(f->path, err);
    if (!mat)
        return err ? err->code : KILN_EIO;

    /* the resampler reduces the ratio by its gcd itself */
    long in_rate = lround(f->rate_hz), to_rate = lround(out_rate_hz);
    if ((rc = kn_resampler_new((int)to_rate, (int)in_rate, &rs, err)) < 0)
        goto out;
    size_t n_in0 = 0;
    for (size_t c = 0; c < n_chan; c++) {
        const char *var = f->var[chan_idx[c]];
        size_t n_in;
        if ((rc = cwru_read_var(mat, f->path, var, &raw, &n_in, err)) < 0)
            goto out;
        if (c == 0) {
            n_in0 = n_in;
        } else if (n_in != n_in0) {
            rc = kiln_err_at(err, KILN_ESHAPE, var, "%s: %s holds %zu samples, %s holds %zu",
                             f->path, var, n_in, f->var[chan_idx[0]], n_in0);
            goto out;
        }
        n_out = kn_resample_out_len(rs, n_in);
        res[c] = kiln_malloc(n_out * sizeof(double));
        if (!res[c]) {
            rc = kiln_err_set(err, KILN_ENOMEM, "%s: no memory to resample %s", f->path, var);
            goto out;
        }
        kn_resample(rs, raw, n_in, res[c]);
        kiln_free(raw);
        raw = NULL;
    }
    size_t n_win = n_out >= window_len ? (n_out - window_len) / hop + 1 : 0;
    for (size_t c = 0; c < n_chan; c++)
        if (!(batch[c] = kiln_malloc(CWRU_BATCH * window_len * sizeof(float)))) {
            rc = kiln_err_set(err, KILN_ENOMEM, "no memory for a batch of windows");
            goto out;
        }
    int32_t asset[CWRU_BATCH], label[CWRU_BATCH];
    int64_t ts[CWRU_BATCH];
    for (size_t w0 = 0; w0 < n_win; w0 += CWRU_BATCH) {
        size_t nb = n_win - w0 < CWRU_BATCH ? n_win - w0 : CWRU_BATCH;
        for (size_t k = 0; k < nb; k++) {
            size_t start = (w0 + k) * hop;
            for (size_t c = 0; c < n_chan; c++)
                for (size_t i = 0; i < window_len; i++)
                    batch[c][k * window_len + i] = (float)res[c][start + i];
            asset[k] = f->record;
            label[k] = f->label;
            ts[k] = (int64_t)llround((double)start * 1e9 / out_rate_hz);  /* ns from recording start */
        }
        if ((rc = st_sensor_append(w, nb, (const float *const *)batch, asset, ts, label, NULL,
                                   err)) < 0)
            goto out;
    }
    sum->n_windows += n_win;
    sum->label_counts[f->label] += n_win;
out:
    for (size_t c = 0; c < n_chan; c++) {
        kiln_free(res[c]);
        kiln_free(batch[c]);
    }
    kiln_free(raw);
    kn_resampler_destroy(&rs);
    Mat_Close(mat);
    return rc;
}

int jb_ingest_cwru(const char *out_path, const char *const *mat_paths, size_t n_paths,
                   const jb_ingest_opts_t *opts, jb_ingest_summary_t *sum, kiln_err_t *err)
{
    jb_ingest_opts_t o = {0};
    if (opts)
        o = *opts;
    size_t window_len = o.window_len ? o.window_len : 2048;
    size_t hop = o.hop ? o.hop : window_len;
    double unprefixed = o.cwru_unprefixed_rate_hz > 0 ? o.cwru_unprefixed_rate_hz : 48000.0;
    if (n_paths == 0)
        return kiln_err_set(err, KILN_EINVAL, "no .mat files given");
    if (o.target_rate_hz < 0 || o.target_rate_hz > 1e7 ||
        (o.target_rate_hz > 0 && o.target_rate_hz != floor(o.target_rate_hz)))
        return kiln_err_set(err, KILN_EINVAL,
                            "--rate must be a whole number of Hz up to 10 MHz, got %g",
                            o.target_rate_hz);
    if (unprefixed > 1e7 || unprefixed != floor(unprefixed))
        return kiln_err_set(err, KILN_EINVAL,
                            "--normal-rate must be a whole number of Hz up to 10 MHz, got %g",
                            unprefixed);

    int rc = 0;
    char *source = NULL;
    st_sensor_writer_t *w = NULL;
    cwru_file_t *files = kiln_calloc(n_paths, sizeof *files);
    if (!files)
        return kiln_err_set(err, KILN_ENOMEM, "no memory for %zu file records", n_paths);

    /* Pass 1: names, rates, channels, rpm; nothing is written until all pass. */
    double min_rate = 0;
    int present[CWRU_N_KNOWN] = {1, 1, 1};
    for (size_t i = 0; i < n_paths; i++) {
        cwru_file_t *f = &files[i];
        f->path = mat_paths[i];
        f->base = base_name(mat_paths[i]);
        if ((rc = cwru_parse_name(f, unprefixed, err)) < 0 || (rc = cwru_scan(f, err)) < 0)
            goto out;
        for (int c = 0; c < CWRU_N_KNOWN; c++)
            present[c] &= f->var[c][0] != 0;
        if (min_rate == 0 || f->rate_hz < min_rate)
            min_rate = f->rate_hz;
    }
    double out_rate = o.target_rate_hz > 0 ? o.target_rate_hz : min_rate;

    int chan_idx[ST_MAX_CHANNELS];
    size_t n_chan = 0;
    if (o.channels) {
        char names[ST_MAX_CHANNELS][JB_NAME_MAX];
        size_t n;
        if ((rc = jb_split_names(o.channels, names, CWRU_N_KNOWN, &n, "--channels", err)) < 0)
            goto out;
        for (size_t k = 0; k < n; k++) {
            int c = -1;
            for (int j = 0; j < CWRU_N_KNOWN; j++)
                if (!strcasecmp(names[k], cwru_known_channels[j]))
                    c = j;
            if (c < 0) {
                rc = kiln_err_at(err, KILN_EINVAL, "--channels", "--channels: unknown CWRU "
                                 "channel '%s' (DE, FE or BA)", names[k]);
                goto out;
            }
            for (size_t i = 0; i < n_paths; i++)
                if (!files[i].var[c][0]) {
                    rc = kiln_err_at(err, KILN_ENOTFOUND, cwru_known_channels[c],
                                     "%s: no variable ending in _%s_time", files[i].path,
                                     cwru_known_channels[c]);
                    goto out;
                }
            chan_idx[n_chan++] = c;
        }
    } else {
        /* Every CWRU recording has the drive-end channel; FE and BA are kept
         * when every file has them (BA is missing from the normal baseline). */
        for (size_t i = 0; i < n_paths; i++)
            if (!files[i].var[0][0]) {
                rc = kiln_err_at(err, KILN_ENOTFOUND, "_DE_time", "%s: no variable ending in "
                                 "_DE_time (the drive-end channel every CWRU recording has; "
                                 "give --channels to ingest others)", files[i].path);
                goto out;
            }
        for (int c = 0; c < CWRU_N_KNOWN; c++)
            if (present[c])
                chan_idx[n_chan++] = c;
    }

    /* source attr: one line per recording with its rpm. */
    size_t cap = 256 + n_paths * (strlen("; (record , class , rpm , Hz)") + 64);
    for (size_t i = 0; i < n_paths; i++)
        cap += strlen(files[i].base);
    if (!(source = kiln_malloc(cap))) {
        rc = kiln_err_set(err, KILN_ENOMEM, "no memory for the source text");
        goto out;
    }
    size_t len = (size_t)snprintf(source, cap, "CWRU Bearing Data Center; resampled to %.0f Hz "
                                  "(polyphase, Kaiser beta 5); files:", out_rate);
    for (size_t i = 0; i < n_paths && len < cap; i++)
        len += (size_t)snprintf(source + len, cap - len, "%s %s (record %d, class %s, rpm %.0f, %.0f Hz)",
                                i ? ";" : "", files[i].base, files[i].record,
                                cwru_classes[files[i].label], files[i].rpm, files[i].rate_hz);

    st_sensor_meta_t meta = {0};
    meta.sample_rate_hz = out_rate;
    meta.window_len = window_len;
    meta.n_channels = n_chan;
    for (size_t c = 0; c < n_chan; c++)
        meta.channels[c] = cwru_known_channels[chan_idx[c]];
    meta.source = source;
    meta.has_label = 1;
    meta.n_label_names = 4;
    for (int l = 0; l < 4; l++)
        meta.label_names[l] = cwru_classes[l];
    jb_ingest_summary_t local;
    jb_ingest_summary_t *s = sum ? sum : &local;
    jb_summary_init(s, &meta);

    if ((rc = st_sensor_create(out_path, &meta, o.compress, &w, err)) < 0)
        goto out;
    /* Pass 2: one recording in memory at a time. */
    for (size_t i = 0; i < n_paths; i++)
        if ((rc = cwru_ingest_file(&files[i], chan_idx, n_chan, out_rate, window_len, hop, w, s,
                                   err)) < 0)
            goto out;
    if (s->n_windows == 0) {
        rc = kiln_err_set(err, KILN_ESHAPE, "no recording is as long as one window of %zu samples",
                          window_len);
        goto out;
    }
    rc = st_sensor_commit(&w, s->hash, err);
out:
    st_sensor_abort(&w);
    kiln_free(source);
    kiln_free(files);
    return rc;
}
