/* gen.c - synthetic bearing vibration: shaft harmonics + a train of impulses
 * at the bearing defect frequency, each ringing a decaying structural
 * resonance (the standard model of McFadden & Smith, "Model for the
 * vibration produced by a single point defect in a rolling element
 * bearing", JSV 1984), + Gaussian noise; and a temperature channel.
 * Assets degrade: later snapshots are more likely faulty and more severe. */
#include "gen.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/kiln_alloc.h"
#include "../kernels/kernels.h"

#define GEN_BATCH        256          /* windows per st_sensor_append */
#define GEN_MAX_THREADS  16
#define GEN_T0_NS        1704067200000000000LL   /* 2024-01-01T00:00:00Z */
#define GEN_SNAPSHOT_NS  600000000000LL          /* 10 minutes between snapshots */
/* The last snapshot whose timestamp fits int64 ns: 12,532,175 (year 2262). */
#define GEN_MAX_LIFE     ((size_t)((INT64_MAX - GEN_T0_NS) / GEN_SNAPSHOT_NS))
/* window_len x channels at most: both batch buffers together stay <= 1 GiB. */
#define GEN_MAX_BATCH_SAMPLES ((size_t)1 << 27)
#define GEN_DECAY_PER_S  4605.0       /* exp(-4605 t) = 0.01 at t = 1 ms: ~1 ms ringdown */
#define GEN_NOISE_G      0.05         /* vibration noise std, g */
#define GEN_TEMP_NOISE_C 0.02

static const char *const gen_classes[4] = {"normal", "outer_race", "inner_race", "ball"};

/* ---- PRNG: splitmix64 seeding xoshiro256** (Blackman & Vigna 2018) ---- */
typedef struct { uint64_t s[4]; } gen_rng_t;

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static void rng_seed(gen_rng_t *r, uint64_t seed, uint64_t stream, uint64_t index)
{
    uint64_t x = seed ^ (stream * 0xD1B54A32D192ED03ULL);
    x = splitmix64(&x) ^ index;
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&x);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static inline uint64_t rng_next(gen_rng_t *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

static inline double rng_uniform(gen_rng_t *r)          /* [0, 1) */
{
    return (double)(rng_next(r) >> 11) * 0x1.0p-53;
}

static double rng_normal(gen_rng_t *r)
{
    double u1 = 1.0 - rng_uniform(r), u2 = rng_uniform(r);
    return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

/* Adds sigma * N(0,1) to x[0..n) by Box-Muller in float: both outputs of
 * each pair are used; one 64-bit draw gives the two 32-bit uniforms. */
static void add_noise(gen_rng_t *r, float *x, size_t n, float sigma)
{
    size_t i = 0;
    for (; i + 1 < n; i += 2) {
        uint64_t v = rng_next(r);
        float u1 = ((float)(uint32_t)(v >> 40) + 1.0f) * 0x1.0p-24f;   /* (0, 1] */
        float u2 = (float)(uint32_t)((v >> 8) & 0xFFFFFF) * 0x1.0p-24f;
        float rad = sigma * sqrtf(-2.0f * logf(u1));
        float sn = sinf(6.2831853f * u2), cs = cosf(6.2831853f * u2);
        x[i] += rad * cs;
        x[i + 1] += rad * sn;
    }
    if (i < n)
        x[i] += sigma * (float)rng_normal(r);
}

/* ---- asset physics ------------------------------------------------------ */

typedef struct {
    double shaft_hz, onset, base_temp_c;
    int    fault;
    kn_bearing_freqs_t f;
} gen_asset_t;

static void asset_params(uint64_t seed, int asset, gen_asset_t *a)
{
    gen_rng_t r;
    rng_seed(&r, seed, 1, (uint64_t)asset);
    a->shaft_hz = 20.0 + 20.0 * rng_uniform(&r);
    a->onset = 0.3 + 0.4 * rng_uniform(&r);
    a->base_temp_c = 35.0 + 10.0 * rng_uniform(&r);
    a->fault = 1 + (int)((seed + (uint64_t)asset) % 3);
    /* SKF 6205-2RS (CWRU drive end): 9 balls, d = 0.3126 in, D = 1.537 in. */
    kn_bearing_defect_freqs(9, 0.3126, 1.537, 0.0, a->shaft_hz, &a->f);
}

double jb_gen_asset_shaft_hz(uint64_t seed, int asset)
{
    gen_asset_t a;
    asset_params(seed, asset, &a);
    return a.shaft_hz;
}

int jb_gen_asset_fault(uint64_t seed, int asset)
{
    gen_asset_t a;
    asset_params(seed, asset, &a);
    return a.fault;
}

double jb_gen_resonance_hz(double sample_rate_hz)
{
    return fmin(3000.0, 0.3 * sample_rate_hz);
}

/* ---- synthesis ------------------------------------------------------------ */

typedef struct {
    size_t  n_windows, window_len, n_assets, n_life, n_chan;
    size_t  batch_cap;            /* windows per batch, <= GEN_BATCH */
    double  rate_hz;
    uint64_t seed;
    int     is_temp[ST_MAX_CHANNELS];
    int     vib_index[ST_MAX_CHANNELS];
    gen_asset_t *assets;
    float  *kernel;               /* resonance impulse response */
    size_t  kernel_len;
} gen_ctx_t;

typedef struct {
    float   *sig[ST_MAX_CHANNELS];   /* batch_cap * window_len each */
    int32_t  asset[GEN_BATCH], label[GEN_BATCH];
    int64_t  ts[GEN_BATCH];
    float    target[GEN_BATCH];
    size_t   w0, n;                  /* windows [w0, w0+n) */
} gen_batch_t;

typedef struct {
    const gen_ctx_t *g;
    gen_batch_t *b;
    size_t k0, k1;                   /* slice of the batch */
    float *imp;                      /* window_len scratch */
} gen_task_t;

static void synth_window(const gen_ctx_t *g, gen_batch_t *b, size_t k, float *imp)
{
    size_t w = b->w0 + k, L = g->window_len;
    int asset = (int)(w % g->n_assets);
    size_t life = w / g->n_assets;
    const gen_asset_t *a = &g->assets[asset];
    double p = g->n_life > 1 ? (double)life / (double)(g->n_life - 1) : 0.0;
    gen_rng_t r;
    rng_seed(&r, g->seed, 2, (uint64_t)w);

    /* Class: the chance of the asset's fault rises as a logistic around onset. */
    double p_fault = 1.0 / (1.0 + exp(-(p - a->onset) / 0.05));
    int label = rng_uniform(&r) < p_fault ? a->fault : JB_GEN_NORMAL;
    double severity = label ? fmin(1.0, fmax(0.15, (p - a->onset + 0.1) / (1.0 - a->onset + 0.1)))
                            : 0.0;
    b->asset[k] = asset;
    b->label[k] = label;
    b->ts[k] = GEN_T0_NS + (int64_t)life * GEN_SNAPSHOT_NS;
    b->target[k] = (float)(g->n_life - 1 - life);

    /* Impulse train: period 1/f_defect with 1% random slip, each impulse
     * scaled by severity; inner race modulated at the shaft rate (the defect
     * turns with the shaft through the load zone), ball at the cage rate. */
    memset(imp, 0, L * sizeof *imp);
    if (label) {
        double f_d = label == JB_GEN_OUTER_RACE ? a->f.bpfo_hz
                   : label == JB_GEN_INNER_RACE ? a->f.bpfi_hz : a->f.bsf_hz;
        double f_mod = label == JB_GEN_INNER_RACE ? a->shaft_hz : a->f.ftf_hz;
        double depth = label == JB_GEN_OUTER_RACE ? 0.0 : 0.8;
        double phi = 2.0 * M_PI * rng_uniform(&r);
        double period = 1.0 / f_d, amp = 1.5 * severity;
        double t = -(double)g->kernel_len / g->rate_hz - rng_uniform(&r) * period;
        double t_end = (double)L / g->rate_hz;
        for (; t < t_end; t += period * (1.0 + 0.01 * rng_normal(&r))) {
            double ak = amp * (1.0 + 0.1 * rng_normal(&r)) *
                        (1.0 - depth * 0.5 * (1.0 - cos(2.0 * M_PI * f_mod * t + phi)));
            long i0 = lround(t * g->rate_hz);
            size_t j0 = i0 < 0 ? (size_t)(-i0) : 0;
            for (size_t j = j0; j < g->kernel_len && (size_t)(i0 + (long)j) < L; j++)
                imp[i0 + (long)j] += (float)ak * g->kernel[j];
        }
    }

    double temp = a->base_temp_c + 3.0 * p + 0.5 * sin(2.0 * M_PI * (double)life / 144.0) +
                  12.0 * severity + 0.1 * rng_normal(&r);
    for (size_t c = 0; c < g->n_chan; c++) {
        float *x = b->sig[c] + k * L;
        if (g->is_temp[c]) {
            float slope = (float)(0.05 * severity / g->rate_hz);   /* deg C per sample */
            for (size_t i = 0; i < L; i++)
                x[i] = (float)temp + slope * (float)i;
            add_noise(&r, x, L, GEN_TEMP_NOISE_C);
            continue;
        }
        /* Shaft harmonics 1x, 2x, 3x by complex rotation (no sin per sample). */
        int v = g->vib_index[c];
        float gain = 1.0f / (1.0f + 0.4f * (float)v);
        double hre[3], him[3], rre[3], rim[3];
        static const double harm_amp[3] = {0.10, 0.04, 0.02};
        for (int h = 0; h < 3; h++) {
            double ph = 2.0 * M_PI * rng_uniform(&r), dph = 2.0 * M_PI * (h + 1) * a->shaft_hz / g->rate_hz;
            hre[h] = harm_amp[h] * gain * cos(ph);
            him[h] = harm_amp[h] * gain * sin(ph);
            rre[h] = cos(dph);
            rim[h] = sin(dph);
        }
        for (size_t i = 0; i < L; i++) {
            double s = 0;
            for (int h = 0; h < 3; h++) {
                s += him[h];
                double re = hre[h] * rre[h] - him[h] * rim[h];
                him[h] = hre[h] * rim[h] + him[h] * rre[h];
                hre[h] = re;
            }
            x[i] = (float)s + gain * imp[i];
        }
        add_noise(&r, x, L, (float)GEN_NOISE_G);
    }
}

static void *synth_task(void *arg)
{
    gen_task_t *t = arg;
    for (size_t k = t->k0; k < t->k1; k++)
        synth_window(t->g, t->b, k, t->imp);
    return NULL;
}

/* Starts n_threads threads on slices of batch b; a slice whose thread could
 * not start is done here, before returning.  synth_join waits for the rest. */
static void synth_batch(const gen_ctx_t *g, gen_batch_t *b, gen_task_t *tasks, int n_threads,
                        pthread_t *tid, int *started)
{
    for (int i = 0; i < n_threads; i++) {
        tasks[i].g = g;
        tasks[i].b = b;
        tasks[i].k0 = b->n * (size_t)i / (size_t)n_threads;
        tasks[i].k1 = b->n * (size_t)(i + 1) / (size_t)n_threads;
        started[i] = pthread_create(&tid[i], NULL, synth_task, &tasks[i]) == 0;
        if (!started[i])
            synth_task(&tasks[i]);
    }
}

static void synth_join(int n_threads, pthread_t *tid, int *started)
{
    for (int i = 0; i < n_threads; i++)
        if (started[i]) {
            pthread_join(tid[i], NULL);
            started[i] = 0;
        }
}

static void batch_set(gen_batch_t *b, size_t w0, size_t n_windows, size_t batch_cap)
{
    b->w0 = w0;
    b->n = n_windows - w0 < batch_cap ? n_windows - w0 : batch_cap;
}

int jb_gen(const char *out_path, const jb_gen_opts_t *opts, jb_ingest_summary_t *sum,
           kiln_err_t *err)
{
    jb_gen_opts_t o = *opts;
    if (!o.window_len) o.window_len = 2048;
    if (o.sample_rate_hz == 0) o.sample_rate_hz = 12000;
    if (!o.n_assets) o.n_assets = 16;
    if (!o.channels) o.channels = "vib_x,vib_y,temp";
    if (o.n_threads <= 0) o.n_threads = 2;
    if (o.n_threads > GEN_MAX_THREADS) o.n_threads = GEN_MAX_THREADS;
    if (o.n_windows == 0)
        return kiln_err_at(err, KILN_EINVAL, "windows", "gen: the number of windows must be > 0");
    if (o.window_len < 16 || o.window_len > (1u << 22))
        return kiln_err_at(err, KILN_EINVAL, "window_len", "gen: window length %zu outside "
                           "16..4194304", o.window_len);
    if (!(o.sample_rate_hz >= 1000.0 && o.sample_rate_hz <= 1e7))
        return kiln_err_at(err, KILN_EINVAL, "rate", "gen: sample rate %g Hz outside 1000..1e7 "
                           "(the defect frequencies and resonance need at least 1 kHz)",
                           o.sample_rate_hz);
    if (o.n_assets > (size_t)INT32_MAX)
        return kiln_err_at(err, KILN_EINVAL, "assets", "gen: too many assets");

    char names[ST_MAX_CHANNELS][JB_NAME_MAX];
    gen_ctx_t g = {0};
    int rc = jb_split_names(o.channels, names, ST_MAX_CHANNELS, &g.n_chan, "channels", err);
    if (rc < 0)
        return rc;
    /* snapshots per asset, rounded up without the wrap of n_windows + n_assets - 1 */
    size_t n_life = o.n_windows / o.n_assets + (o.n_windows % o.n_assets != 0);
    if (n_life - 1 > GEN_MAX_LIFE)
        return kiln_err_at(err, KILN_EINVAL, "windows", "gen: --windows %zu over --assets %zu "
                           "is %zu snapshots an asset; 10 minutes apart from 2024 their "
                           "timestamps overflow 64-bit nanoseconds past %zu", o.n_windows,
                           o.n_assets, n_life, GEN_MAX_LIFE + 1);
    if (g.n_chan * o.window_len > GEN_MAX_BATCH_SAMPLES)
        return kiln_err_at(err, KILN_EINVAL, "window_len", "gen: --window-len %zu x %zu "
                           "--channels is above %zu samples a window (the batch buffers would "
                           "pass 1 GiB)", o.window_len, g.n_chan, GEN_MAX_BATCH_SAMPLES);
    g.n_windows = o.n_windows;
    g.window_len = o.window_len;
    g.n_assets = o.n_assets;
    g.n_life = n_life;
    /* long windows: fewer per batch, so 2 batches stay within 1 GiB */
    g.batch_cap = GEN_MAX_BATCH_SAMPLES / (g.n_chan * g.window_len);
    if (g.batch_cap > GEN_BATCH)
        g.batch_cap = GEN_BATCH;
    g.rate_hz = o.sample_rate_hz;
    g.seed = o.seed;
    int n_vib = 0;
    for (size_t c = 0; c < g.n_chan; c++) {
        g.is_temp[c] = !strncmp(names[c], "temp", 4);
        g.vib_index[c] = g.is_temp[c] ? -1 : n_vib++;
    }

    st_sensor_writer_t *w = NULL;
    char *source = NULL;
    gen_batch_t batch[2];
    gen_task_t tasks[GEN_MAX_THREADS] = {{0}};
    pthread_t tid[GEN_MAX_THREADS];
    int started[GEN_MAX_THREADS] = {0};
    jb_ingest_summary_t local;
    jb_ingest_summary_t *s = sum ? sum : &local;
    memset(batch, 0, sizeof batch);

    /* Resonance kernel: exp(-decay t) sin(2 pi f_r t), 1.5 ms long. */
    double f_res = jb_gen_resonance_hz(g.rate_hz);
    g.kernel_len = (size_t)ceil(0.0015 * g.rate_hz) + 1;
    g.kernel = kiln_malloc(g.kernel_len * sizeof *g.kernel);
    g.assets = kiln_malloc(g.n_assets * sizeof *g.assets);
    size_t src_cap = 512 + (g.n_assets < 64 ? g.n_assets : 64) * 48;
    source = kiln_malloc(src_cap);
    if (!g.kernel || !g.assets || !source) {
        rc = kiln_err_set(err, KILN_ENOMEM, "gen: no memory for %zu assets", g.n_assets);
        goto out;
    }
    for (size_t j = 0; j < g.kernel_len; j++) {
        double t = (double)j / g.rate_hz;
        g.kernel[j] = (float)(exp(-GEN_DECAY_PER_S * t) * sin(2.0 * M_PI * f_res * t));
    }
    for (size_t i = 0; i < g.n_assets; i++)
        asset_params(g.seed, (int)i, &g.assets[i]);
    size_t len = (size_t)snprintf(source, src_cap, "kiln gen: seed %llu; SKF 6205 bearing; "
                                  "resonance %.0f Hz; snapshots 10 min apart; shaft Hz by asset:",
                                  (unsigned long long)g.seed, f_res);
    for (size_t i = 0; i < g.n_assets && i < 64 && len < src_cap; i++)
        len += (size_t)snprintf(source + len, src_cap - len, " %zu=%.3f", i, g.assets[i].shaft_hz);
    if (g.n_assets > 64 && len < src_cap)
        snprintf(source + len, src_cap - len, " ...");

    for (int bi = 0; bi < 2; bi++)
        for (size_t c = 0; c < g.n_chan; c++)
            if (!(batch[bi].sig[c] = kiln_malloc(g.batch_cap * g.window_len * sizeof(float)))) {
                rc = kiln_err_set(err, KILN_ENOMEM, "gen: no memory for a batch");
                goto out;
            }
    for (int i = 0; i < o.n_threads; i++)
        if (!(tasks[i].imp = kiln_malloc(g.window_len * sizeof(float)))) {
            rc = kiln_err_set(err, KILN_ENOMEM, "gen: no memory for scratch");
            goto out;
        }

    st_sensor_meta_t meta = {0};
    meta.sample_rate_hz = g.rate_hz;
    meta.window_len = g.window_len;
    meta.n_channels = g.n_chan;
    for (size_t c = 0; c < g.n_chan; c++)
        meta.channels[c] = names[c];
    meta.source = source;
    meta.has_label = 1;
    meta.has_target = 1;
    meta.n_label_names = 4;
    for (int l = 0; l < 4; l++)
        meta.label_names[l] = gen_classes[l];
    jb_summary_init(s, &meta);
    if ((rc = st_sensor_create(out_path, &meta, o.compress, &w, err)) < 0)
        goto out;

    /* Pipeline: threads synthesize batch i+1 while this thread appends batch i. */
    int cur = 0;
    batch_set(&batch[0], 0, g.n_windows, g.batch_cap);
    synth_batch(&g, &batch[0], tasks, o.n_threads, tid, started);
    synth_join(o.n_threads, tid, started);
    while (batch[cur].n) {
        gen_batch_t *b = &batch[cur], *nb = &batch[!cur];
        size_t next = b->w0 + b->n;
        nb->n = 0;
        if (next < g.n_windows) {
            batch_set(nb, next, g.n_windows, g.batch_cap);
            synth_batch(&g, nb, tasks + 0, o.n_threads, tid, started);
        }
        rc = st_sensor_append(w, b->n, (const float *const *)b->sig, b->asset, b->ts, b->label,
                              b->target, err);
        synth_join(o.n_threads, tid, started);
        if (rc < 0)
            goto out;
        for (size_t k = 0; k < b->n; k++)
            s->label_counts[b->label[k]]++;
        s->n_windows += b->n;
        b->n = 0;
        cur = !cur;
    }
    rc = st_sensor_commit(&w, s->hash, err);
out:
    synth_join(o.n_threads, tid, started);
    st_sensor_abort(&w);
    for (int i = 0; i < GEN_MAX_THREADS; i++)
        kiln_free(tasks[i].imp);
    for (int bi = 0; bi < 2; bi++)
        for (size_t c = 0; c < ST_MAX_CHANNELS; c++)
            kiln_free(batch[bi].sig[c]);
    kiln_free(g.kernel);
    kiln_free(g.assets);
    kiln_free(source);
    return rc;
}
