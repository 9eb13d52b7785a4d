/* featspec.c - parse, validate and hash the `features` object of a
 * featurize job.  Every rejection names the field that is wrong. */
#include "featspec.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "../core/kiln_alloc.h"
#include "../storage/sha256.h"

static const char *const time_names[JB_T_COUNT] = {
    "mean", "std", "rms", "peak", "p2p", "crest", "skew", "kurt", "slope", "util",
};
static const char *const line_names[JB_LINE_COUNT] = {"bpfo", "bpfi", "bsf", "ftf"};

const char *jb_time_feature_name(jb_time_feature_t f) { return time_names[f]; }
const char *jb_line_name(jb_line_t l) { return line_names[l]; }

static int bad(kiln_err_t *err, const char *field, const char *fmt, const char *detail)
{
    char msg[512];
    snprintf(msg, sizeof msg, fmt, detail);
    return kiln_err_at(err, KILN_ESPEC, field, "%s: %s", field, msg);
}

/* Unknown keys are errors: a typo must not silently drop a feature. */
static int check_keys(json_t *obj, const char *path, const char *const *allowed,
                      kiln_err_t *err)
{
    const char *key;
    json_t *v;
    char field[256];

    if (!json_is_object(obj))
        return bad(err, path, "%s", "must be an object");
    json_object_foreach(obj, key, v) {
        int ok = 0;
        for (const char *const *a = allowed; *a; a++)
            if (!strcmp(key, *a))
                ok = 1;
        if (!ok) {
            snprintf(field, sizeof field, "%s.%s", path, key);
            return bad(err, field, "%s", "unknown field");
        }
    }
    return 0;
}

/* A finite number (integer or real) at obj.key; *present says if it was there. */
static int get_number(json_t *obj, const char *path, const char *key, int required,
                      double *out, int *present, kiln_err_t *err)
{
    char field[256];
    json_t *v = json_object_get(obj, key);

    snprintf(field, sizeof field, "%s.%s", path, key);
    if (present)
        *present = v != NULL;
    if (!v)
        return required ? bad(err, field, "%s", "missing") : 0;
    if (!json_is_number(v))
        return bad(err, field, "%s", "must be a number");
    *out = json_number_value(v);
    if (!isfinite(*out))
        return bad(err, field, "%s", "must be finite");
    return 0;
}

static int get_bool(json_t *obj, const char *path, const char *key, int *out,
                    kiln_err_t *err)
{
    char field[256];
    json_t *v = json_object_get(obj, key);

    snprintf(field, sizeof field, "%s.%s", path, key);
    if (!v)
        return 0;
    if (!json_is_boolean(v))
        return bad(err, field, "%s", "must be true or false");
    *out = json_is_true(v);
    return 0;
}

static int parse_channels(json_t *arr, jb_featspec_t *s, kiln_err_t *err)
{
    size_t i;
    json_t *v;
    char field[256];

    if (!json_is_array(arr) || json_array_size(arr) == 0)
        return bad(err, "features.channels", "%s", "must be a non-empty array of channel names");
    if (json_array_size(arr) > 64)
        return bad(err, "features.channels", "%s", "at most 64 channels");
    json_array_foreach(arr, i, v) {
        snprintf(field, sizeof field, "features.channels[%zu]", i);
        if (!json_is_string(v) || json_string_length(v) == 0 ||
            json_string_length(v) >= JB_FEAT_NAME_MAX)
            return bad(err, field, "%s", "must be a channel name (1-95 characters)");
        for (size_t j = 0; j < i; j++)
            if (!strcmp(s->channels[j], json_string_value(v)))
                return bad(err, field, "channel '%s' listed twice", json_string_value(v));
        snprintf(s->channels[i], JB_FEAT_NAME_MAX, "%s", json_string_value(v));
    }
    s->n_channels = json_array_size(arr);
    return 0;
}

static int parse_time(json_t *arr, jb_featspec_t *s, kiln_err_t *err)
{
    size_t i;
    json_t *v;
    char field[256];

    if (!json_is_array(arr))
        return bad(err, "features.time", "%s", "must be an array of feature names");
    json_array_foreach(arr, i, v) {
        snprintf(field, sizeof field, "features.time[%zu]", i);
        int found = -1;
        if (json_is_string(v))
            for (int t = 0; t < JB_T_COUNT; t++)
                if (!strcmp(json_string_value(v), time_names[t]))
                    found = t;
        if (found < 0)
            return bad(err, field, "%s",
                       "must be one of mean std rms peak p2p crest skew kurt slope util");
        for (size_t j = 0; j < s->n_time; j++)
            if ((int)s->time[j] == found)
                return bad(err, field, "'%s' listed twice", time_names[found]);
        s->time[s->n_time++] = (jb_time_feature_t)found;
    }
    return 0;
}

static int parse_spectrum(json_t *o, jb_featspec_t *s, kiln_err_t *err)
{
    static const char *const keys[] = {"window", "bands_hz", "centroid", "dominant", NULL};
    const char *path = "features.spectrum";
    char field[256];
    int rc;

    if ((rc = check_keys(o, path, keys, err)) < 0)
        return rc;
    s->has_spectrum = 1;
    s->window = KN_WINDOW_HANN;
    json_t *w = json_object_get(o, "window");
    if (w) {
        if (json_is_string(w) && !strcmp(json_string_value(w), "hann"))
            s->window = KN_WINDOW_HANN;
        else if (json_is_string(w) && !strcmp(json_string_value(w), "none"))
            s->window = KN_WINDOW_NONE;
        else
            return bad(err, "features.spectrum.window", "%s", "must be \"hann\" or \"none\"");
    }
    json_t *bands = json_object_get(o, "bands_hz");
    if (bands) {
        size_t i;
        json_t *b;
        if (!json_is_array(bands) || json_array_size(bands) > JB_MAX_BANDS)
            return bad(err, "features.spectrum.bands_hz", "%s",
                       "must be an array of at most 64 [lo, hi] pairs");
        json_array_foreach(bands, i, b) {
            snprintf(field, sizeof field, "features.spectrum.bands_hz[%zu]", i);
            if (!json_is_array(b) || json_array_size(b) != 2 ||
                !json_is_number(json_array_get(b, 0)) || !json_is_number(json_array_get(b, 1)))
                return bad(err, field, "%s", "must be [lo_hz, hi_hz]");
            double lo = json_number_value(json_array_get(b, 0));
            double hi = json_number_value(json_array_get(b, 1));
            if (!isfinite(lo) || !isfinite(hi) || lo < 0 || !(lo < hi))
                return bad(err, field, "%s", "needs 0 <= lo_hz < hi_hz");
            s->bands_hz[i][0] = lo;
            s->bands_hz[i][1] = hi;
        }
        s->n_bands = json_array_size(bands);
    }
    if ((rc = get_bool(o, path, "centroid", &s->centroid, err)) < 0 ||
        (rc = get_bool(o, path, "dominant", &s->dominant, err)) < 0)
        return rc;
    if (s->n_bands == 0 && !s->centroid && !s->dominant)
        return bad(err, path, "%s", "asks for no feature: give bands_hz, centroid or dominant");
    return 0;
}

static int parse_envelope(json_t *o, jb_featspec_t *s, kiln_err_t *err)
{
    static const char *const keys[] = {"band_hz", "shaft_hz", "bearing", "tolerance_hz",
                                       "lines", NULL};
    static const char *const bkeys[] = {"n_balls", "ball_d", "pitch_d", "contact_deg", NULL};
    const char *path = "features.envelope";
    char field[256];
    double n_balls = 0;
    int rc;

    if ((rc = check_keys(o, path, keys, err)) < 0)
        return rc;
    s->has_envelope = 1;
    json_t *band = json_object_get(o, "band_hz");
    if (!band)
        return bad(err, "features.envelope.band_hz", "%s", "missing");
    if (!json_is_array(band) || json_array_size(band) != 2 ||
        !json_is_number(json_array_get(band, 0)) || !json_is_number(json_array_get(band, 1)))
        return bad(err, "features.envelope.band_hz", "%s", "must be [lo_hz, hi_hz]");
    s->env_lo_hz = json_number_value(json_array_get(band, 0));
    s->env_hi_hz = json_number_value(json_array_get(band, 1));
    if (!(s->env_lo_hz >= 0) || !(s->env_lo_hz < s->env_hi_hz) || !isfinite(s->env_hi_hz))
        return bad(err, "features.envelope.band_hz", "%s", "needs 0 <= lo_hz < hi_hz");
    if ((rc = get_number(o, path, "shaft_hz", 1, &s->shaft_hz, NULL, err)) < 0)
        return rc;
    if (!(s->shaft_hz > 0))
        return bad(err, "features.envelope.shaft_hz", "%s", "must be > 0");
    s->tolerance_hz = 0;
    if ((rc = get_number(o, path, "tolerance_hz", 0, &s->tolerance_hz, NULL, err)) < 0)
        return rc;
    if (s->tolerance_hz < 0)
        return bad(err, "features.envelope.tolerance_hz", "%s", "must be >= 0");

    json_t *b = json_object_get(o, "bearing");
    if (!b)
        return bad(err, "features.envelope.bearing", "%s", "missing");
    if ((rc = check_keys(b, "features.envelope.bearing", bkeys, err)) < 0)
        return rc;
    const char *bp = "features.envelope.bearing";
    s->contact_deg = 0;
    if ((rc = get_number(b, bp, "n_balls", 1, &n_balls, NULL, err)) < 0 ||
        (rc = get_number(b, bp, "ball_d", 1, &s->ball_d, NULL, err)) < 0 ||
        (rc = get_number(b, bp, "pitch_d", 1, &s->pitch_d, NULL, err)) < 0 ||
        (rc = get_number(b, bp, "contact_deg", 0, &s->contact_deg, NULL, err)) < 0)
        return rc;
    if (n_balls < 1 || n_balls > 1000 || n_balls != floor(n_balls))
        return bad(err, "features.envelope.bearing.n_balls", "%s", "must be an integer 1..1000");
    s->n_balls = (int)n_balls;
    if (!(s->ball_d > 0) || !(s->pitch_d > s->ball_d))
        return bad(err, "features.envelope.bearing", "%s", "needs 0 < ball_d < pitch_d");
    if (s->contact_deg < 0 || s->contact_deg >= 90)
        return bad(err, "features.envelope.bearing.contact_deg", "%s", "must be in [0, 90)");

    json_t *lines = json_object_get(o, "lines");
    if (!lines) {
        for (int l = 0; l < JB_LINE_COUNT; l++)
            s->lines[s->n_lines++] = (jb_line_t)l;
        return 0;
    }
    size_t i;
    json_t *v;
    if (!json_is_array(lines) || json_array_size(lines) == 0)
        return bad(err, "features.envelope.lines", "%s", "must be a non-empty array");
    json_array_foreach(lines, i, v) {
        snprintf(field, sizeof field, "features.envelope.lines[%zu]", i);
        int found = -1;
        if (json_is_string(v))
            for (int l = 0; l < JB_LINE_COUNT; l++)
                if (!strcmp(json_string_value(v), line_names[l]))
                    found = l;
        if (found < 0)
            return bad(err, field, "%s", "must be one of bpfo bpfi bsf ftf");
        for (size_t j = 0; j < s->n_lines; j++)
            if ((int)s->lines[j] == found)
                return bad(err, field, "'%s' listed twice", line_names[found]);
        s->lines[s->n_lines++] = (jb_line_t)found;
    }
    return 0;
}

static int parse_rolling(json_t *o, jb_featspec_t *s, kiln_err_t *err)
{
    static const char *const keys[] = {"k", "of", NULL};
    double k = 0;
    char field[256], name[JB_FEAT_NAME_MAX];
    size_t i;
    json_t *v;
    int rc;

    if ((rc = check_keys(o, "features.rolling", keys, err)) < 0 ||
        (rc = get_number(o, "features.rolling", "k", 1, &k, NULL, err)) < 0)
        return rc;
    if (k < 1 || k > 100000 || k != floor(k))
        return bad(err, "features.rolling.k", "%s", "must be an integer 1..100000");
    s->rolling_k = (size_t)k;
    json_t *of = json_object_get(o, "of");
    if (!json_is_array(of) || json_array_size(of) == 0 || json_array_size(of) > JB_MAX_ROLL)
        return bad(err, "features.rolling.of", "%s",
                   "must be an array of 1..16 per-channel feature names");
    size_t per = jb_featspec_per_channel(s);
    json_array_foreach(of, i, v) {
        snprintf(field, sizeof field, "features.rolling.of[%zu]", i);
        int found = -1;
        for (size_t f = 0; json_is_string(v) && f < per; f++) {
            jb_featspec_feature_name(s, f, name);
            if (!strcmp(name, json_string_value(v)))
                found = (int)f;
        }
        if (found < 0)
            return bad(err, field, "%s", "must name a feature this spec computes (e.g. \"rms\")");
        s->roll_of[s->n_roll++] = found;
    }
    return 0;
}

size_t jb_featspec_per_channel(const jb_featspec_t *s)
{
    return s->n_time + s->n_bands + (size_t)(s->centroid != 0) + (size_t)(s->dominant != 0) +
           s->n_lines;
}

void jb_featspec_feature_name(const jb_featspec_t *s, size_t i, char *buf)
{
    if (i < s->n_time) {
        snprintf(buf, JB_FEAT_NAME_MAX, "%s", time_names[s->time[i]]);
        return;
    }
    i -= s->n_time;
    if (i < s->n_bands) {
        snprintf(buf, JB_FEAT_NAME_MAX, "band_%g_%g", s->bands_hz[i][0], s->bands_hz[i][1]);
        return;
    }
    i -= s->n_bands;
    if (s->centroid && i-- == 0) {
        snprintf(buf, JB_FEAT_NAME_MAX, "centroid");
        return;
    }
    if (s->dominant && i-- == 0) {
        snprintf(buf, JB_FEAT_NAME_MAX, "dominant");
        return;
    }
    snprintf(buf, JB_FEAT_NAME_MAX, "env_%s", line_names[s->lines[i]]);
}

int jb_featspec_parse(const void *features_json, jb_featspec_t *s, kiln_err_t *err)
{
    static const char *const keys[] = {"channels", "time", "util_threshold", "spectrum",
                                       "envelope", "rolling", NULL};
    json_t *o = (json_t *)features_json;
    int rc, has_util_thr = 0;

    memset(s, 0, sizeof *s);
    if (!o)
        return bad(err, "features", "%s", "missing");
    if ((rc = check_keys(o, "features", keys, err)) < 0)
        goto fail;
    json_t *v;
    if ((v = json_object_get(o, "channels")) && (rc = parse_channels(v, s, err)) < 0)
        goto fail;
    if ((v = json_object_get(o, "time")) && (rc = parse_time(v, s, err)) < 0)
        goto fail;
    if ((rc = get_number(o, "features", "util_threshold", 0, &s->util_threshold,
                         &has_util_thr, err)) < 0)
        goto fail;
    for (size_t i = 0; i < s->n_time; i++)
        if (s->time[i] == JB_T_UTIL && !has_util_thr) {
            rc = bad(err, "features.util_threshold", "%s", "missing (needed by \"util\")");
            goto fail;
        }
    if ((v = json_object_get(o, "spectrum")) && (rc = parse_spectrum(v, s, err)) < 0)
        goto fail;
    if ((v = json_object_get(o, "envelope")) && (rc = parse_envelope(v, s, err)) < 0)
        goto fail;
    if ((v = json_object_get(o, "rolling")) && (rc = parse_rolling(v, s, err)) < 0)
        goto fail;
    if (jb_featspec_per_channel(s) == 0) {
        rc = bad(err, "features", "%s", "asks for no feature");
        goto fail;
    }

    /* Canonical text: sorted keys, compact, full real precision, so equal
     * specs hash equal however they were written. */
    s->canonical_json = json_dumps(o, JSON_SORT_KEYS | JSON_COMPACT | JSON_REAL_PRECISION(17));
    if (!s->canonical_json) {
        rc = kiln_err_set(err, KILN_ENOMEM, "features: cannot serialize spec");
        goto fail;
    }
    st_sha256_t h;
    uint8_t digest[32];
    st_sha256_init(&h);
    st_sha256_update(&h, s->canonical_json, strlen(s->canonical_json));
    st_sha256_final(&h, digest);
    st_sha256_hex(digest, s->sha256);
    return 0;
fail:
    jb_featspec_free(s);
    return rc;
}

void jb_featspec_free(jb_featspec_t *s)
{
    if (s->canonical_json)
        free(s->canonical_json);       /* from jansson's allocator (malloc) */
    s->canonical_json = NULL;
}
