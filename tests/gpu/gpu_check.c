/* gpu_check.c - test signals and the tolerance rules (see gpu_check.h and
 * tests/gpu/README.md). */
#include "gpu_check.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define GC_PI 3.14159265358979323846

/* splitmix64: a tiny seeded generator, independent of the models' RNG. */
static uint64_t mix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static double uni(uint64_t *s) { return (double)(mix(s) >> 11) * 0x1.0p-53; }
static double gauss(uint64_t *s)
{
    double u = uni(s), v = uni(s);
    return sqrt(-2.0 * log(u > 0 ? u : 1e-300)) * cos(2.0 * GC_PI * v);
}

static const char *const kind_names[GC_N_KINDS] = {
    "gaussian", "sines", "impulses", "constant", "offset", "spikes", "trend", "bin_tone"};

const char *gc_signal_name(size_t w) { return kind_names[w % GC_N_KINDS]; }

void gc_signal(uint64_t seed, size_t w, float *x, size_t n, double fs)
{
    uint64_t s = seed * 0x100000001b3ull + w;
    mix(&s);
    const double dt = 1.0 / fs;
    switch (w % GC_N_KINDS) {
    case 0: {
        double off = 4.0 * (uni(&s) - 0.5), sd = 0.1 + 2.0 * uni(&s);
        for (size_t i = 0; i < n; i++)
            x[i] = (float)(off + sd * gauss(&s));
        break;
    }
    case 1: {
        double f[3], a[3], ph[3];
        for (int k = 0; k < 3; k++) {
            f[k] = uni(&s) * 0.45 * fs;
            a[k] = 0.2 + uni(&s);
            ph[k] = 2 * GC_PI * uni(&s);
        }
        for (size_t i = 0; i < n; i++) {
            double v = 0.01 * gauss(&s);
            for (int k = 0; k < 3; k++)
                v += a[k] * sin(2 * GC_PI * f[k] * (double)i * dt + ph[k]);
            x[i] = (float)v;
        }
        break;
    }
    case 2: {
        /* Impacts at a defect rate exciting a 3 kHz-ish resonance. */
        double rate = 50 + 150 * uni(&s), res = 0.15 * fs + 0.1 * fs * uni(&s);
        double t0 = uni(&s) / rate;
        for (size_t i = 0; i < n; i++) {
            double t = (double)i * dt, since = fmod(t + t0, 1.0 / rate);
            x[i] = (float)(0.05 * gauss(&s) +
                           2.0 * exp(-since * 800.0) * sin(2 * GC_PI * res * since));
        }
        break;
    }
    case 3: {
        static const float values[] = {0.0f, 1.0f, -3.25f, 0.1f, 1e6f};
        float v = values[mix(&s) % 5];
        for (size_t i = 0; i < n; i++)
            x[i] = v;
        break;
    }
    case 4:
        for (size_t i = 0; i < n; i++)
            x[i] = (float)(40.0 + 1e-3 * gauss(&s));
        break;
    case 5:
        for (size_t i = 0; i < n; i++)
            x[i] = uni(&s) < 0.005 ? (float)(10.0 * gauss(&s)) : 0.0f;
        break;
    case 6: {
        double slope = 20.0 * (uni(&s) - 0.5);
        for (size_t i = 0; i < n; i++)
            x[i] = (float)(slope * (double)i * dt + 0.3 * gauss(&s));
        break;
    }
    default: {
        size_t k = 1 + mix(&s) % (n / 2 - 1);
        for (size_t i = 0; i < n; i++)
            x[i] = (float)cos(2 * GC_PI * (double)k * (double)i / (double)n);
        break;
    }
    }
}

static const char *const time_names[10] = {"mean", "std",  "rms",  "peak",  "p2p",
                                           "crest", "skew", "kurt", "slope", "util"};

static void add_stat(gc_report_t *rep, const char *name)
{
    gc_stat_t *st = &rep->stat[rep->n_stats++];
    memset(st, 0, sizeof *st);
    snprintf(st->name, sizeof st->name, "%s", name);
}

void gc_report_init(gc_report_t *rep, const char *prefix, const kc_feat_config_t *c)
{
    memset(rep, 0, sizeof *rep);
    snprintf(rep->prefix, sizeof rep->prefix, "%s", prefix);
    char name[64];
    if (c->time_stats)
        for (int k = 0; k < 10; k++)
            add_stat(rep, time_names[k]);
    if (c->spectrum) {
        for (size_t b = 0; b < c->n_bands; b++) {
            snprintf(name, sizeof name, "band_%.0f_%.0f", c->bands_hz[b][0], c->bands_hz[b][1]);
            add_stat(rep, name);
        }
        if (c->centroid)
            add_stat(rep, "centroid");
        if (c->dominant)
            add_stat(rep, "dominant");
    }
    if (c->envelope)
        for (size_t l = 0; l < c->n_lines; l++) {
            snprintf(name, sizeof name, "env_%.2fHz", c->line_hz[l]);
            add_stat(rep, name);
        }
}

static void account(gc_stat_t *st, double g, double c, double allowed, size_t row,
                    const char *what)
{
    const double d = fabs(g - c);
    const double e = allowed > 0 ? d / allowed : (d > 0 ? INFINITY : 0.0);
    st->n++;
    if (d > st->max_abs || isnan(d))
        st->max_abs = d;
    if (e > st->max_err || isnan(e))
        st->max_err = e;
    if (!(e <= 1.0)) {
        if (!st->n_bad)
            snprintf(st->first_bad, sizeof st->first_bad,
                     "row %zu (%s): gpu %.9g cpu %.9g allowed %.3g", row, what, g, c, allowed);
        st->n_bad++;
    }
}

/* Scale of a time feature: what its rounding error is relative to. */
static double time_scale(int k, const kn_time_stats_t *t, size_t n, double fs)
{
    switch (k) {
    case 0: case 1: case 2: case 3: case 4: return t->peak;
    case 5: case 7: return fabs(k == 5 ? t->crest : t->kurt);
    case 6: return 1.0;
    case 8: return t->peak * fs / (double)n;
    default: return 0.0;      /* util: a count, exact */
    }
}

void gc_compare_row(gc_report_t *rep, const gr_ref_t *ref, const float *gpu, const float *cpu,
                    size_t row, const char *what)
{
    const kc_feat_config_t *c = &ref->cfg;
    const size_t n = c->window_len;
    const double fs = c->sample_rate_hz;
    size_t o = 0;
    if (c->time_stats) {
        /* float of (nearly) the same double: 1e-6 relative, plus 1e-9 of
         * the feature's scale for values near zero. */
        for (int k = 0; k < 10; k++, o++)
            account(&rep->stat[o], gpu[o], cpu[o],
                    1e-6 * fabs(cpu[o]) + 1e-9 * time_scale(k, &ref->time, n, fs), row, what);
    }
    if (c->spectrum) {
        for (size_t b = 0; b < c->n_bands; b++, o++)
            account(&rep->stat[o], gpu[o], cpu[o], 1e-5 * fabs(cpu[o]) + 1e-6 * ref->total_power,
                    row, what);
        if (c->centroid) {
            account(&rep->stat[o], gpu[o], cpu[o], 1e-5 * fabs(cpu[o]) + 1e-6 * fs / 2, row, what);
            o++;
        }
        if (c->dominant) {
            gc_stat_t *st = &rep->stat[o];
            if (gpu[o] != cpu[o]) {
                /* Another bin is fine only when its reference power ties the max
                 * within float rounding of the spectrum. */
                const double kg = floor((double)gpu[o] * (double)n / fs + 0.5);
                const double kc = floor((double)cpu[o] * (double)n / fs + 0.5);
                int tie = kg >= 1 && kg <= (double)(n / 2) &&
                          ref->power[(size_t)kg] >= (1.0 - 1e-4) * ref->power[(size_t)kc];
                if (tie) {
                    st->n_ties++;
                    account(st, 0, 0, 1, row, what);
                } else {
                    account(st, gpu[o], cpu[o], 0, row, what);
                }
            } else {
                account(st, 0, 0, 1, row, what);
            }
            o++;
        }
    }
    if (c->envelope)
        for (size_t l = 0; l < c->n_lines; l++, o++)
            account(&rep->stat[o], gpu[o], cpu[o], 1e-3 * fabs(cpu[o]) + 2e-6 * ref->env_scale, row,
                    what);
}

void gc_line(const char *name, int ok, double max_err, const char *detail, int *passed,
             int *failed)
{
    printf("%s %s maxerr=%.3g%s%s\n", ok ? "ok  " : "FAIL", name, max_err, detail && *detail ? " " : "",
           detail ? detail : "");
    if (ok)
        (*passed)++;
    else
        (*failed)++;
}

void gc_report_print(const gc_report_t *rep, int *passed, int *failed)
{
    for (size_t i = 0; i < rep->n_stats; i++) {
        const gc_stat_t *st = &rep->stat[i];
        char name[160], detail[400];
        snprintf(name, sizeof name, "%s/%s", rep->prefix, st->name);
        if (st->n_bad)
            snprintf(detail, sizeof detail, "maxabs=%.3g rows=%zu bad=%zu first: %s", st->max_abs,
                     st->n, st->n_bad, st->first_bad);
        else
            snprintf(detail, sizeof detail, "maxabs=%.3g rows=%zu%s", st->max_abs, st->n,
                     st->n_ties ? " (near-ties)" : "");
        if (st->n_ties && !st->n_bad)
            snprintf(detail + strlen(detail), sizeof detail - strlen(detail), " ties=%zu",
                     st->n_ties);
        gc_line(name, st->n_bad == 0 && st->n > 0, st->max_err, detail, passed, failed);
    }
}

void gc_time_report_init(gc_report_t *rep, const char *prefix)
{
    memset(rep, 0, sizeof *rep);
    snprintf(rep->prefix, sizeof rep->prefix, "%s", prefix);
    for (int k = 0; k < 10; k++)
        add_stat(rep, time_names[k]);
}

void gc_compare_time(gc_report_t *rep, const kn_time_stats_t *g, const kn_time_stats_t *c,
                     size_t n, double fs, size_t row)
{
    const double gv[10] = {g->mean, g->std, g->rms, g->peak, g->p2p,
                           g->crest, g->skew, g->kurt, g->slope, g->util};
    const double cv[10] = {c->mean, c->std, c->rms, c->peak, c->p2p,
                           c->crest, c->skew, c->kurt, c->slope, c->util};
    char what[32];
    snprintf(what, sizeof what, "%s", gc_signal_name(row));
    for (int k = 0; k < 10; k++)
        account(&rep->stat[k], gv[k], cv[k], 1e-9 * (fabs(cv[k]) + time_scale(k, c, n, fs)), row,
                what);
}

void gc_config(int variant, size_t n, double fs, kc_feat_config_t *c)
{
    memset(c, 0, sizeof *c);
    c->window_len = n;
    c->sample_rate_hz = fs;
    c->time_stats = 1;
    c->util_threshold = 0.5;
    c->spectrum = 1;
    c->centroid = 1;
    c->dominant = 1;
    c->envelope = 1;
    kn_bearing_freqs_t f;   /* CWRU's drive-end SKF 6205 at 1797 rpm */
    kn_bearing_defect_freqs(9, 0.3126, 1.537, 0.0, 1797.0 / 60.0, &f);
    c->n_lines = 4;
    c->line_hz[0] = f.bpfo_hz;
    c->line_hz[1] = f.bpfi_hz;
    c->line_hz[2] = f.bsf_hz;
    c->line_hz[3] = f.ftf_hz;
    if (variant == 0) {
        /* The demo's spec: Hann, bands up to and past Nyquist, envelope band
         * away from DC (k0 > 0: the mean comes off first), 2 Hz tolerance. */
        static const double bands[5][2] = {
            {0, 500}, {500, 1500}, {1500, 3000}, {3000, 1e9}, {2000, 2000}};
        c->window = KN_WINDOW_HANN;
        c->n_bands = 5;
        memcpy(c->bands_hz, bands, sizeof bands);
        c->env_lo_hz = 0.2 * fs;
        c->env_hi_hz = 0.4 * fs;
        c->tolerance_hz = 2.0;
    } else if (variant == 2) {
        /* The benchmark's: the spectrum alone (the kernel's fast path), no
         * window, the demo's bands. */
        static const double bands[5][2] = {
            {0, 500}, {500, 1500}, {1500, 3000}, {3000, 1e9}, {2000, 2000}};
        c->time_stats = 0;
        c->envelope = 0;
        c->n_lines = 0;
        c->window = KN_WINDOW_NONE;
        c->n_bands = 5;
        memcpy(c->bands_hz, bands, sizeof bands);
    } else if (variant == 3) {
        /* The fast path with a Hann window, one band, no dominant. */
        c->time_stats = 0;
        c->envelope = 0;
        c->n_lines = 0;
        c->dominant = 0;
        c->window = KN_WINDOW_HANN;
        c->n_bands = 1;
        c->bands_hz[0][0] = fs / 8;
        c->bands_hz[0][1] = fs / 4;
    } else {
        /* No window, one band, envelope band from DC through Nyquist (DC and
         * Nyquist halving), a wide tolerance (many bins per line). */
        c->window = KN_WINDOW_NONE;
        c->n_bands = 1;
        c->bands_hz[0][0] = fs / 8;
        c->bands_hz[0][1] = fs / 4;
        c->env_lo_hz = 0.0;
        c->env_hi_hz = fs;
        c->tolerance_hz = 40.0;
    }
}
