/* featspec.h - feature specs (the `features` object of a featurize job,
 * docs/featurize.md): parsed once at the boundary, validated field by field,
 * hashed canonically.  Behind this boundary the spec is trusted. */
#ifndef KILN_JOBS_FEATSPEC_H
#define KILN_JOBS_FEATSPEC_H

#include <stddef.h>

#include "../core/kiln_err.h"
#include "../kernels/kernels.h"

#define JB_MAX_BANDS 64
#define JB_MAX_ROLL 16
#define JB_FEAT_NAME_MAX 96

typedef enum {
    JB_T_MEAN, JB_T_STD, JB_T_RMS, JB_T_PEAK, JB_T_P2P, JB_T_CREST,
    JB_T_SKEW, JB_T_KURT, JB_T_SLOPE, JB_T_UTIL, JB_T_COUNT
} jb_time_feature_t;

typedef enum { JB_LINE_BPFO, JB_LINE_BPFI, JB_LINE_BSF, JB_LINE_FTF, JB_LINE_COUNT } jb_line_t;

typedef struct {
    /* channels: names as in the dataset; n_channels = 0 means all */
    size_t n_channels;
    char   channels[64][JB_FEAT_NAME_MAX];

    size_t            n_time;
    jb_time_feature_t time[JB_T_COUNT];
    double            util_threshold;

    int         has_spectrum;
    kn_window_t window;
    size_t      n_bands;
    double      bands_hz[JB_MAX_BANDS][2];
    int         centroid, dominant;

    int       has_envelope;
    double    env_lo_hz, env_hi_hz, shaft_hz, tolerance_hz;
    int       n_balls;
    double    ball_d, pitch_d, contact_deg;
    size_t    n_lines;
    jb_line_t lines[JB_LINE_COUNT];

    size_t rolling_k;                 /* 0: no rolling features */
    size_t n_roll;
    int    roll_of[JB_MAX_ROLL];      /* index into the per-channel feature list */

    char sha256[65];                  /* of the canonical JSON of the spec */
    char *canonical_json;             /* owned */
} jb_featspec_t;

/* Parses the `features` object (a jansson json_t *, passed as void * so this
 * header does not pull jansson into every includer).  Errors name the field,
 * e.g. "features.spectrum.bands_hz[2]: lo must be < hi". */
int  jb_featspec_parse(const void *features_json, jb_featspec_t *spec, kiln_err_t *err);
void jb_featspec_free(jb_featspec_t *spec);

/* Per-channel feature count and the name of per-channel feature i
 * ("rms", "band_0_1000", "env_bpfo"), written into buf[JB_FEAT_NAME_MAX]. */
size_t jb_featspec_per_channel(const jb_featspec_t *spec);
void   jb_featspec_feature_name(const jb_featspec_t *spec, size_t i, char *buf);

const char *jb_time_feature_name(jb_time_feature_t f);
const char *jb_line_name(jb_line_t l);

#endif
