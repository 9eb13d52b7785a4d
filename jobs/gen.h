/* gen.h - synthetic bearing vibration datasets of any size, for scale tests
 * and demos.  Every window is a function of (seed, window index) alone, so
 * the output is identical whatever the thread count or batch size. */
#ifndef KILN_JOBS_GEN_H
#define KILN_JOBS_GEN_H

#include <stddef.h>
#include <stdint.h>

#include "../core/kiln_err.h"
#include "ingest.h"

/* Classes, in label order. */
enum { JB_GEN_NORMAL = 0, JB_GEN_OUTER_RACE = 1, JB_GEN_INNER_RACE = 2, JB_GEN_BALL = 3 };

typedef struct {
    size_t      n_windows;       /* required, > 0 */
    size_t      window_len;      /* 0 = 2048 */
    double      sample_rate_hz;  /* 0 = 12000 */
    size_t      n_assets;        /* 0 = 16 */
    const char *channels;        /* NULL = "vib_x,vib_y,temp"; names starting with
                                    "temp" are temperature, the rest vibration */
    uint64_t    seed;
    int         compress;        /* 0 none, 1..9 deflate */
    int         n_threads;       /* synthesis threads, 0 = 2 */
} jb_gen_opts_t;

/* Writes the dataset to out_path.  Window w belongs to asset w % n_assets
 * and is its (w / n_assets)-th snapshot; snapshots are 10 minutes apart
 * from 2024-01-01T00:00:00Z; /target = snapshots left in the asset's life.
 * Labels: 0 normal, 1 outer_race, 2 inner_race, 3 ball. */
int jb_gen(const char *out_path, const jb_gen_opts_t *opts, jb_ingest_summary_t *sum,
           kiln_err_t *err);

/* The physics of an asset, for tests and reports: shaft speed in Hz (20-40)
 * and the fault class it develops late in life (1..3).  The bearing is an
 * SKF 6205 (9 balls, d 0.3126 in, D 1.537 in, contact 0 degrees). */
double jb_gen_asset_shaft_hz(uint64_t seed, int asset);
int    jb_gen_asset_fault(uint64_t seed, int asset);

/* Structural resonance excited by each impulse, Hz, at a sample rate. */
double jb_gen_resonance_hz(double sample_rate_hz);

#endif
