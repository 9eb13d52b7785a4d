/* ingest_csv.c - CSV sensor logs (timestamp, asset, channels..., [label]) to a
 * sensor dataset.  Rows of one asset form windows of window_len consecutive
 * samples; assets may interleave.  Two streaming passes: the first checks
 * every row, collects class names and infers the sample rate, so nothing is
 * written for a bad file; the second writes.  Memory: one window per asset. */
#include "ingest.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/kiln_alloc.h"

#define CSV_MAX_COLS   1024
#define CSV_LINE_MAX   (1 << 20)
#define CSV_BATCH      64
#define CSV_RATE_STEPS 1024       /* steps of the first asset used for the median */
#define CSV_ASSET_BYTES_MAX ((size_t)256 << 20)   /* all per-asset window buffers together */
#define CSV_WINDOW_LEN_MAX ((size_t)1 << 22)      /* st_sensor_create's limit */
#define CSV_BATCH_BYTES_MAX ((size_t)256 << 20)   /* one batch of windows, all channels */

typedef struct {
    int32_t  id;
    size_t   n;            /* samples buffered */
    size_t   skip;         /* samples still to skip when hop > window_len */
    int64_t  last_ts;
    int      seen;         /* last_ts is valid */
    float   *values;       /* n_chan * window_len, channel-major */
    int64_t *ts;           /* window_len */
    int32_t *labels;       /* window_len */
} csv_asset_t;

/* Assets in first-seen order, and an open-addressing map id -> index + 1
 * (0: empty slot; load at most 1/2), so a row finds its asset in O(1). */
typedef struct {
    csv_asset_t *v;
    size_t       n, cap;
    uint32_t    *slot;
    size_t       n_slots;  /* a power of two, or 0 */
} csv_assets_t;

typedef struct {
    const char *path;
    const jb_ingest_opts_t *opts;
    FILE   *f;
    char   *line;          /* CSV_LINE_MAX + 2 bytes: a line, its '\n', NUL */
    int     lineno;
    char   *fields[CSV_MAX_COLS];
    size_t  n_cols;
    size_t  n_header_cols;
    int     col_ts, col_asset, col_label;
    size_t  n_chan;
    int     chan_col[ST_MAX_CHANNELS];
    char    chan_name[ST_MAX_CHANNELS][JB_NAME_MAX];
    int     label_mode;    /* 0 none seen yet, 1 integers, 2 names */
    size_t  n_names;
    char    names[ST_MAX_LABELS][JB_NAME_MAX];
    int     max_int_label;
    /* row just parsed */
    int64_t row_ts;
    int32_t row_asset;
    int32_t row_label;
    float   row_values[ST_MAX_CHANNELS];
    csv_assets_t assets;
    size_t  window_len;
} csv_ctx_t;

static int row_err(csv_ctx_t *x, kiln_err_t *err, int code, int col, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static int row_err(csv_ctx_t *x, kiln_err_t *err, int code, int col, const char *fmt, ...)
{
    if (!err)
        return code;
    char msg[512], where[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(where, sizeof where, "%s:%d", x->path, x->lineno);
    kiln_err_at(err, code, where, "%s line %d: %s", x->path, x->lineno, msg);
    err->line = x->lineno;
    err->column = col;
    return code;
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    if (n >= 2 && s[0] == '"' && s[n - 1] == '"') {
        s[n - 1] = '\0';
        s++;
    }
    return s;
}

/* Reads the next line into x->line and splits it; returns 1, 0 at EOF, <0.
 * Bounded: a line longer than CSV_LINE_MAX bytes is refused after reading at
 * most CSV_LINE_MAX + 1 of its bytes, never held whole. */
static int next_row(csv_ctx_t *x, kiln_err_t *err)
{
    while (1) {
        if (!fgets(x->line, CSV_LINE_MAX + 2, x->f)) {
            if (ferror(x->f))
                return kiln_err_at(err, KILN_EIO, x->path, "%s: read error after line %d",
                                   x->path, x->lineno);
            return 0;
        }
        x->lineno++;
        size_t len = strlen(x->line);
        int has_newline = len && x->line[len - 1] == '\n';
        if (len - (size_t)has_newline > CSV_LINE_MAX)
            return row_err(x, err, KILN_EFORMAT, 0, "line %d longer than %d bytes", x->lineno,
                           CSV_LINE_MAX);
        if (!has_newline && !feof(x->f))      /* fgets stopped short of '\n': a NUL byte */
            return row_err(x, err, KILN_EFORMAT, 0, "line %d holds a NUL byte", x->lineno);
        char *p = x->line;
        if (x->lineno == 1 && !memcmp(p, "\xEF\xBB\xBF", 3))
            p += 3;                                   /* UTF-8 byte-order mark */
        char *t = p;
        while (isspace((unsigned char)*t))
            t++;
        if (!*t)
            continue;                                 /* blank line */
        x->n_cols = 0;
        while (1) {
            char *comma = strchr(p, ',');
            if (comma)
                *comma = '\0';
            if (x->n_cols == CSV_MAX_COLS)
                return row_err(x, err, KILN_EFORMAT, 0, "more than %d columns", CSV_MAX_COLS);
            x->fields[x->n_cols++] = trim(p);
            if (!comma)
                break;
            p = comma + 1;
        }
        return 1;
    }
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int parse_digits(const char *s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i]))
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

/* YYYY-MM-DDTHH:MM:SS[.fff][Z] (space allowed for T) or seconds as a number.
 * Returns 0, -1 for neither form, -2 for a time int64 ns since 1970 cannot
 * hold (before 1677-09-21 or after 2262-04-11). */
static int parse_timestamp(const char *s, int64_t *ns)
{
    int y, mo, d, h, mi, sec;
    if (strlen(s) >= 19 && s[4] == '-' && s[7] == '-' && (s[10] == 'T' || s[10] == ' ') &&
        s[13] == ':' && s[16] == ':') {
        if (parse_digits(s, 4, &y) || parse_digits(s + 5, 2, &mo) || parse_digits(s + 8, 2, &d) ||
            parse_digits(s + 11, 2, &h) || parse_digits(s + 14, 2, &mi) ||
            parse_digits(s + 17, 2, &sec))
            return -1;
        if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
            return -1;
        const char *p = s + 19;
        int64_t frac = 0, scale = 100000000;
        if (*p == '.') {
            p++;
            if (!isdigit((unsigned char)*p))
                return -1;
            for (; isdigit((unsigned char)*p); p++, scale /= 10)
                if (scale)
                    frac += (*p - '0') * scale;
        }
        if (*p == 'Z')
            p++;
        else if (!strcmp(p, "+00:00"))
            p += 6;
        if (*p)
            return -1;
        /* seconds fit easily (|y| <= 9999); the nanoseconds may not */
        int64_t secs = ((days_from_civil(y, mo, d) * 24 + h) * 60 + mi) * 60 + sec;
        if (__builtin_mul_overflow(secs, 1000000000LL, ns) || __builtin_add_overflow(*ns, frac, ns))
            return -2;
        return 0;
    }
    char *end;
    double v = strtod(s, &end);
    if (end == s || *end || !isfinite(v))
        return -1;
    if (fabs(v) > 9.2e9)                    /* 9.2e18 ns < INT64_MAX, rounding included */
        return -2;
    *ns = (int64_t)llround(v * 1e9);
    return 0;
}

static int parse_header(csv_ctx_t *x, kiln_err_t *err)
{
    int rc = next_row(x, err);
    if (rc < 0)
        return rc;
    if (rc == 0)
        return kiln_err_at(err, KILN_EFORMAT, x->path, "%s: empty file: a header row "
                           "(timestamp,asset,channels...[,label]) is required", x->path);
    x->col_ts = x->col_asset = x->col_label = -1;
    for (size_t i = 0; i < x->n_cols; i++) {
        const char *name = x->fields[i];
        int *slot = !strcmp(name, "timestamp") ? &x->col_ts
                  : !strcmp(name, "asset")     ? &x->col_asset
                  : !strcmp(name, "label")     ? &x->col_label : NULL;
        if (slot) {
            if (*slot >= 0)
                return row_err(x, err, KILN_EFORMAT, (int)i + 1, "column '%s' appears twice", name);
            *slot = (int)i;
        }
    }
    if (x->col_ts < 0 || x->col_asset < 0)
        return row_err(x, err, KILN_EFORMAT, 0, "header lacks the required column '%s'",
                       x->col_ts < 0 ? "timestamp" : "asset");
    if (x->opts->channels) {
        size_t n;
        int rc2 = jb_split_names(x->opts->channels, x->chan_name, ST_MAX_CHANNELS, &n,
                                 "--channels", err);
        if (rc2 < 0)
            return rc2;
        for (size_t c = 0; c < n; c++) {
            x->chan_col[c] = -1;
            for (size_t i = 0; i < x->n_cols; i++)
                if (!strcmp(x->fields[i], x->chan_name[c]))
                    x->chan_col[c] = (int)i;
            if (x->chan_col[c] < 0 || x->chan_col[c] == x->col_ts ||
                x->chan_col[c] == x->col_asset || x->chan_col[c] == x->col_label)
                return row_err(x, err, KILN_EFORMAT, 0, "header lacks the channel column '%s'",
                               x->chan_name[c]);
        }
        x->n_chan = n;
    } else {
        for (size_t i = 0; i < x->n_cols; i++) {
            if ((int)i == x->col_ts || (int)i == x->col_asset || (int)i == x->col_label)
                continue;
            if (!x->fields[i][0])
                return row_err(x, err, KILN_EFORMAT, (int)i + 1, "column %zu has no name", i + 1);
            if (strlen(x->fields[i]) >= JB_NAME_MAX)
                return row_err(x, err, KILN_EFORMAT, (int)i + 1, "column name '%.40s...' is "
                               "longer than %d characters", x->fields[i], JB_NAME_MAX - 1);
            if (x->n_chan == ST_MAX_CHANNELS)
                return row_err(x, err, KILN_EFORMAT, (int)i + 1, "more than %d channel columns",
                               ST_MAX_CHANNELS);
            for (size_t c = 0; c < x->n_chan; c++)
                if (!strcmp(x->chan_name[c], x->fields[i]))
                    return row_err(x, err, KILN_EFORMAT, (int)i + 1, "column '%s' appears twice",
                                   x->fields[i]);
            snprintf(x->chan_name[x->n_chan], JB_NAME_MAX, "%s", x->fields[i]);
            x->chan_col[x->n_chan++] = (int)i;
        }
    }
    if (x->n_chan == 0)
        return row_err(x, err, KILN_EFORMAT, 0, "no channel columns besides timestamp, asset "
                       "and label");
    x->n_header_cols = x->n_cols;
    return 0;
}

static int is_integer(const char *s, long *v)
{
    char *end;
    errno = 0;
    *v = strtol(s, &end, 10);
    return end != s && !*end && !errno;
}

/* Parses the current row into x->row_*; collect = 1 (first pass) learns
 * class names, collect = 0 maps them. */
static int parse_row(csv_ctx_t *x, int collect, kiln_err_t *err)
{
    if (x->n_cols != x->n_header_cols)
        return row_err(x, err, KILN_EFORMAT, 0, "%zu fields, the header has %zu", x->n_cols,
                       x->n_header_cols);
    const char *ts = x->fields[x->col_ts];
    int trc = parse_timestamp(ts, &x->row_ts);
    if (trc == -2)
        return row_err(x, err, KILN_EFORMAT, x->col_ts + 1, "timestamp '%.40s' is outside what "
                       "64-bit nanoseconds since 1970 hold (about 1677-09-21 to 2262-04-11, "
                       "or +-9.2e9 seconds)", ts);
    if (trc < 0)
        return row_err(x, err, KILN_EFORMAT, x->col_ts + 1, "timestamp '%.40s' is neither "
                       "seconds nor ISO 8601 UTC (YYYY-MM-DDTHH:MM:SS[.fff][Z])", ts);
    long a;
    if (!is_integer(x->fields[x->col_asset], &a) || a < INT32_MIN || a > INT32_MAX)
        return row_err(x, err, KILN_EFORMAT, x->col_asset + 1, "asset '%.40s' is not a 32-bit "
                       "integer", x->fields[x->col_asset]);
    x->row_asset = (int32_t)a;
    for (size_t c = 0; c < x->n_chan; c++) {
        const char *s = x->fields[x->chan_col[c]];
        char *end;
        double v = strtod(s, &end);
        if (end == s || *end)
            return row_err(x, err, KILN_EFORMAT, x->chan_col[c] + 1, "column '%s': '%.40s' is "
                           "not a number", x->chan_name[c], s);
        if (!isfinite(v) || !isfinite((float)v))
            return row_err(x, err, KILN_ENONFINITE, x->chan_col[c] + 1, "column '%s': '%.40s' "
                           "is not finite (NaN or Inf, or beyond float32)", x->chan_name[c], s);
        x->row_values[c] = (float)v;
    }
    x->row_label = -1;
    if (x->col_label < 0 || !x->fields[x->col_label][0])
        return 0;                                   /* no label: -1 */
    const char *lab = x->fields[x->col_label];
    long li;
    if (x->label_mode == 0)
        x->label_mode = is_integer(lab, &li) ? 1 : 2;
    if (x->label_mode == 1) {
        if (!is_integer(lab, &li) || li < -1 || li >= ST_MAX_LABELS)
            return row_err(x, err, KILN_EFORMAT, x->col_label + 1, "label '%.40s': the labels of "
                           "this file are integers (-1..%d)", lab, ST_MAX_LABELS - 1);
        x->row_label = (int32_t)li;
        if (li > x->max_int_label)
            x->max_int_label = (int)li;
        return 0;
    }
    for (size_t k = 0; k < x->n_names; k++)
        if (!strcmp(x->names[k], lab)) {
            x->row_label = (int32_t)k;
            return 0;
        }
    if (!collect)
        return row_err(x, err, KILN_EINTERNAL, x->col_label + 1, "label '%s' unseen in pass 1", lab);
    if (x->n_names == ST_MAX_LABELS)
        return row_err(x, err, KILN_EFORMAT, x->col_label + 1, "more than %d distinct labels",
                       ST_MAX_LABELS);
    if (strlen(lab) >= JB_NAME_MAX)
        return row_err(x, err, KILN_EFORMAT, x->col_label + 1, "label '%.40s...' longer than %d "
                       "characters", lab, JB_NAME_MAX - 1);
    snprintf(x->names[x->n_names], JB_NAME_MAX, "%s", lab);
    x->row_label = (int32_t)x->n_names++;
    return 0;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static size_t asset_hash(int32_t id, size_t mask)
{
    return (size_t)(((uint32_t)id * 2654435761u) >> 7) & mask;   /* Knuth's multiplicative */
}

static csv_asset_t *asset_find(const csv_assets_t *as, int32_t id)
{
    if (!as->n_slots)
        return NULL;
    size_t mask = as->n_slots - 1;
    for (size_t i = asset_hash(id, mask);; i = (i + 1) & mask) {
        uint32_t k = as->slot[i];
        if (!k)
            return NULL;
        if (as->v[k - 1].id == id)
            return &as->v[k - 1];
    }
}

/* Adds asset id (absent) without buffers; returns it, or NULL for no memory. */
static csv_asset_t *asset_add(csv_assets_t *as, int32_t id)
{
    if (as->n == as->cap) {
        size_t nc = as->cap ? as->cap * 2 : 16;
        csv_asset_t *nv = kiln_realloc(as->v, nc * sizeof *nv);
        if (!nv)
            return NULL;
        as->v = nv;
        as->cap = nc;
    }
    if (2 * (as->n + 1) > as->n_slots) {
        size_t ns = as->n_slots ? as->n_slots * 2 : 64;
        uint32_t *nslot = kiln_calloc(ns, sizeof *nslot);
        if (!nslot)
            return NULL;
        for (size_t k = 0; k < as->n; k++) {
            size_t i = asset_hash(as->v[k].id, ns - 1);
            while (nslot[i])
                i = (i + 1) & (ns - 1);
            nslot[i] = (uint32_t)(k + 1);
        }
        kiln_free(as->slot);
        as->slot = nslot;
        as->n_slots = ns;
    }
    size_t i = asset_hash(id, as->n_slots - 1);
    while (as->slot[i])
        i = (i + 1) & (as->n_slots - 1);
    csv_asset_t *a = &as->v[as->n];
    memset(a, 0, sizeof *a);
    a->id = id;
    as->slot[i] = (uint32_t)++as->n;
    return a;
}

static void assets_free(csv_assets_t *as)
{
    for (size_t i = 0; i < as->n; i++) {
        kiln_free(as->v[i].values);
        kiln_free(as->v[i].ts);
        kiln_free(as->v[i].labels);
    }
    kiln_free(as->v);
    kiln_free(as->slot);
    memset(as, 0, sizeof *as);
}

/* Bytes one asset costs in pass 2: its window buffers and its share of the
 * table and map.  n_chan <= 64 and L <= 2^22: no overflow in size_t. */
static size_t asset_bytes(size_t n_chan, size_t L)
{
    return sizeof(csv_asset_t) + 4 * sizeof(uint32_t) +
           L * (n_chan * sizeof(float) + sizeof(int64_t) + sizeof(int32_t));
}

/* The asset of the row just parsed, added if new (pass 1 only) within the
 * bound on per-asset memory; then checks its timestamps increase. */
static int row_asset(csv_ctx_t *x, int pass1, csv_asset_t **out, kiln_err_t *err)
{
    csv_asset_t *a = asset_find(&x->assets, x->row_asset);
    if (!a) {
        if (!pass1)
            return row_err(x, err, KILN_EFORMAT, x->col_asset + 1, "asset %d was not in the "
                           "file when it was first read (did the file change?)",
                           (int)x->row_asset);
        size_t each = asset_bytes(x->n_chan, x->window_len);
        if ((x->assets.n + 1) > CSV_ASSET_BYTES_MAX / each)
            return row_err(x, err, KILN_EUNSUPPORTED, x->col_asset + 1, "asset %d is distinct "
                           "asset number %zu; at window length %zu with %zu channels each asset "
                           "buffers %zu bytes, and %zu assets would need more than the %zu MiB "
                           "limit", (int)x->row_asset, x->assets.n + 1, x->window_len,
                           x->n_chan, each, x->assets.n + 1, CSV_ASSET_BYTES_MAX >> 20);
        if (!(a = asset_add(&x->assets, x->row_asset)))
            return row_err(x, err, KILN_ENOMEM, 0, "no memory for asset %d (%zu assets so far)",
                           (int)x->row_asset, x->assets.n);
    }
    if (a->seen && x->row_ts <= a->last_ts)
        return row_err(x, err, KILN_EFORMAT, x->col_ts + 1, "timestamp of asset %d does not "
                       "increase (previous row of this asset is later or equal)", (int)a->id);
    *out = a;
    return 0;
}

static int csv_open(csv_ctx_t *x, kiln_err_t *err)
{
    x->lineno = 0;
    x->n_chan = 0;
    if (!(x->f = fopen(x->path, "r")))
        return kiln_err_at(err, KILN_ENOTFOUND, x->path, "%s: cannot open", x->path);
    return parse_header(x, err);
}

/* Pass 1: every row checked (timestamps increase per asset), assets and
 * names collected, rate inferred. */
static int csv_scan(csv_ctx_t *x, double *rate_hz, size_t *n_rows, kiln_err_t *err)
{
    int64_t steps[CSV_RATE_STEPS];
    size_t n_steps = 0;
    int32_t first_asset = 0;
    int rc;
    *n_rows = 0;
    if ((rc = csv_open(x, err)) < 0)
        return rc;
    while ((rc = next_row(x, err)) > 0) {
        csv_asset_t *a = NULL;
        if ((rc = parse_row(x, 1, err)) < 0 || (rc = row_asset(x, 1, &a, err)) < 0)
            return rc;
        if (*n_rows == 0)
            first_asset = x->row_asset;
        else if (a->seen && x->row_asset == first_asset && n_steps < CSV_RATE_STEPS &&
                 __builtin_sub_overflow(x->row_ts, a->last_ts, &steps[n_steps++]))
            return row_err(x, err, KILN_EFORMAT, x->col_ts + 1, "timestamp step of asset %d "
                           "from the previous row overflows 64-bit nanoseconds", (int)a->id);
        a->last_ts = x->row_ts;
        a->seen = 1;
        (*n_rows)++;
    }
    if (rc < 0)
        return rc;
    if (*n_rows == 0)
        return kiln_err_at(err, KILN_EFORMAT, x->path, "%s: header but no data rows", x->path);
    if (*rate_hz > 0)
        return 0;
    if (n_steps == 0)
        return kiln_err_at(err, KILN_EINVAL, x->path, "%s: cannot infer the sample rate: asset %d "
                           "has one row; give the rate", x->path, (int)first_asset);
    qsort(steps, n_steps, sizeof steps[0], cmp_i64);
    int64_t median = steps[n_steps / 2];
    if (median <= 0)
        return kiln_err_at(err, KILN_EINVAL, x->path, "%s: cannot infer the sample rate: the "
                           "median timestamp step of asset %d is %lld ns", x->path,
                           (int)first_asset, (long long)median);
    *rate_hz = 1e9 / (double)median;
    return 0;
}

typedef struct {
    size_t   n, cap, n_chan, window_len;   /* cap <= CSV_BATCH windows */
    float   *values[ST_MAX_CHANNELS];
    int32_t  asset[CSV_BATCH], label[CSV_BATCH];
    int64_t  ts[CSV_BATCH];
} csv_batch_t;

static int batch_flush(csv_batch_t *b, st_sensor_writer_t *w, int has_label,
                       jb_ingest_summary_t *s, kiln_err_t *err)
{
    if (b->n == 0)
        return 0;
    int rc = st_sensor_append(w, b->n, (const float *const *)b->values, b->asset, b->ts,
                              has_label ? b->label : NULL, NULL, err);
    if (rc < 0)
        return rc;
    s->n_windows += b->n;
    for (size_t k = 0; k < b->n; k++) {
        if (b->label[k] < 0)
            s->n_unlabelled += has_label ? 1 : 0;
        else
            s->label_counts[b->label[k]]++;
    }
    b->n = 0;
    return 0;
}

/* Moves a full asset buffer into the batch; label by majority (ties: lowest). */
static void emit_window(csv_asset_t *a, csv_batch_t *b)
{
    size_t L = b->window_len;
    for (size_t c = 0; c < b->n_chan; c++)
        memcpy(b->values[c] + b->n * L, a->values + c * L, L * sizeof(float));
    size_t counts[ST_MAX_LABELS] = {0};
    int best = -1;
    for (size_t i = 0; i < L; i++)
        if (a->labels[i] >= 0)
            counts[a->labels[i]]++;
    for (int l = 0; l < ST_MAX_LABELS; l++)
        if (counts[l] && (best < 0 || counts[l] > counts[best]))
            best = l;
    b->asset[b->n] = a->id;
    b->ts[b->n] = a->ts[0];
    b->label[b->n] = best;
    b->n++;
}

/* Gives asset a its window buffers at its first row of pass 2. */
static int asset_buffers(csv_asset_t *a, size_t n_chan, size_t L)
{
    if (a->values)
        return 0;
    a->values = kiln_malloc(n_chan * L * sizeof(float));
    a->ts = kiln_malloc(L * sizeof(int64_t));
    a->labels = kiln_malloc(L * sizeof(int32_t));
    return a->values && a->ts && a->labels ? 0 : -1;     /* assets_free frees a partial set */
}

int jb_ingest_csv(const char *out_path, const char *csv_path, const jb_ingest_opts_t *opts,
                  jb_ingest_summary_t *sum, kiln_err_t *err)
{
    jb_ingest_opts_t o = {0};
    if (opts)
        o = *opts;
    if (o.window_len == 0)
        return kiln_err_set(err, KILN_EINVAL, "CSV ingest needs a window length");
    if (o.window_len > CSV_WINDOW_LEN_MAX)
        return kiln_err_at(err, KILN_EINVAL, "window_len", "%s: window length %zu is above the "
                           "maximum %zu", csv_path, o.window_len, CSV_WINDOW_LEN_MAX);
    if (o.hop > CSV_WINDOW_LEN_MAX)
        return kiln_err_at(err, KILN_EINVAL, "hop", "%s: hop %zu is above the maximum %zu",
                           csv_path, o.hop, CSV_WINDOW_LEN_MAX);
    if (!(o.target_rate_hz >= 0) || !isfinite(o.target_rate_hz))
        return kiln_err_set(err, KILN_EINVAL, "%s: sample rate %g is not a finite number >= 0",
                            csv_path, o.target_rate_hz);
    size_t L = o.window_len, hop = o.hop ? o.hop : L;
    csv_ctx_t *x = kiln_calloc(1, sizeof *x);
    if (!x)
        return kiln_err_set(err, KILN_ENOMEM, "%s: no memory", csv_path);
    x->path = csv_path;
    x->opts = &o;
    x->window_len = L;
    if (!(x->line = kiln_malloc(CSV_LINE_MAX + 2))) {
        kiln_free(x);
        return kiln_err_set(err, KILN_ENOMEM, "%s: no memory for a line buffer", csv_path);
    }
    x->max_int_label = -1;
    size_t n_rows = 0;
    csv_batch_t batch = {.n_chan = 0, .window_len = L};
    st_sensor_writer_t *w = NULL;
    char *source = NULL;
    jb_ingest_summary_t local;
    jb_ingest_summary_t *s = sum ? sum : &local;
    double rate = o.target_rate_hz;
    int rc;

    if ((rc = csv_scan(x, &rate, &n_rows, err)) < 0)
        goto out;
    fclose(x->f);
    x->f = NULL;
    for (size_t i = 0; i < x->assets.n; i++) {       /* pass 2 checks the order again */
        x->assets.v[i].seen = 0;
        x->assets.v[i].last_ts = 0;
    }

    size_t cap = strlen(csv_path) + 128;
    if (!(source = kiln_malloc(cap))) {
        rc = kiln_err_set(err, KILN_ENOMEM, "%s: no memory", csv_path);
        goto out;
    }
    snprintf(source, cap, "CSV %s (%zu rows)", csv_path, n_rows);
    st_sensor_meta_t meta = {0};
    meta.sample_rate_hz = rate;
    meta.window_len = L;
    meta.n_channels = x->n_chan;
    for (size_t c = 0; c < x->n_chan; c++)
        meta.channels[c] = x->chan_name[c];
    meta.source = source;
    meta.has_label = x->col_label >= 0;
    if (x->label_mode == 1) {                 /* integer labels: named by their number */
        x->n_names = (size_t)(x->max_int_label + 1);
        for (size_t k = 0; k < x->n_names; k++)
            snprintf(x->names[k], JB_NAME_MAX, "%zu", k);
    }
    meta.n_label_names = x->n_names;
    for (size_t k = 0; k < x->n_names; k++)
        meta.label_names[k] = x->names[k];
    jb_summary_init(s, &meta);
    batch.n_chan = x->n_chan;
    /* long windows: fewer per batch, so a batch stays within CSV_BATCH_BYTES_MAX */
    batch.cap = CSV_BATCH_BYTES_MAX / (x->n_chan * L * sizeof(float));
    batch.cap = batch.cap < 1 ? 1 : batch.cap > CSV_BATCH ? CSV_BATCH : batch.cap;
    for (size_t c = 0; c < x->n_chan; c++)
        if (!(batch.values[c] = kiln_malloc(batch.cap * L * sizeof(float)))) {
            rc = kiln_err_set(err, KILN_ENOMEM, "%s: no memory for a batch of windows", csv_path);
            goto out;
        }
    if ((rc = st_sensor_create(out_path, &meta, o.compress, &w, err)) < 0)
        goto out;

    /* Pass 2: rows already checked; names are known. */
    if ((rc = csv_open(x, err)) < 0)
        goto out;
    while ((rc = next_row(x, err)) > 0) {
        if ((rc = parse_row(x, 0, err)) < 0)
            goto out;
        csv_asset_t *a = NULL;
        if ((rc = row_asset(x, 0, &a, err)) < 0)
            goto out;
        if (asset_buffers(a, x->n_chan, L) < 0) {
            rc = row_err(x, err, KILN_ENOMEM, 0, "no memory for the window of asset %d",
                         (int)a->id);
            goto out;
        }
        a->last_ts = x->row_ts;
        a->seen = 1;
        if (a->skip) {
            a->skip--;
            continue;
        }
        for (size_t c = 0; c < x->n_chan; c++)
            a->values[c * L + a->n] = x->row_values[c];
        a->ts[a->n] = x->row_ts;
        a->labels[a->n] = x->row_label;
        if (++a->n < L)
            continue;
        emit_window(a, &batch);
        if (batch.n == batch.cap && (rc = batch_flush(&batch, w, meta.has_label, s, err)) < 0)
            goto out;
        if (hop >= L) {
            a->n = 0;
            a->skip = hop - L;
        } else {                      /* overlapping windows: keep the last L - hop samples */
            size_t keep = L - hop;
            for (size_t c = 0; c < x->n_chan; c++)
                memmove(a->values + c * L, a->values + c * L + hop, keep * sizeof(float));
            memmove(a->ts, a->ts + hop, keep * sizeof(int64_t));
            memmove(a->labels, a->labels + hop, keep * sizeof(int32_t));
            a->n = keep;
        }
    }
    if (rc < 0 || (rc = batch_flush(&batch, w, meta.has_label, s, err)) < 0)
        goto out;
    for (size_t i = 0; i < x->assets.n; i++)
        s->n_dropped_samples += x->assets.v[i].n;
    if (s->n_windows == 0) {
        rc = kiln_err_at(err, KILN_ESHAPE, csv_path, "%s: no asset has %zu rows, the window "
                         "length", csv_path, L);
        goto out;
    }
    rc = st_sensor_commit(&w, s->hash, err);
out:
    st_sensor_abort(&w);
    assets_free(&x->assets);
    for (size_t c = 0; c < ST_MAX_CHANNELS; c++)
        kiln_free(batch.values[c]);
    if (x->f)
        fclose(x->f);
    kiln_free(x->line);
    kiln_free(x);
    kiln_free(source);
    return rc;
}
