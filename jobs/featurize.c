/* featurize.c - run a feature spec over a sensor dataset.
 *
 * The calling thread owns all HDF5 I/O (Debian's HDF5 serializes every call
 * on one global lock, so parallel reads would not scale); a small pool of
 * compute threads turns batch b into feature rows while the calling thread
 * reads batch b+1.  Rolling features depend on window order, so the calling
 * thread adds them after each batch.  Memory: two batches of signal, two of
 * rows, and one ring per asset and rolling feature, whatever the file size. */
#include "featurize.h"

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../core/kiln_alloc.h"
#include "../storage/features.h"
#include "../storage/sensor.h"
#include "featcompute.h"
#include "featgpu.h"

/* Upper bound of one batch's signal buffer (there are two). */
#define FEAT_BATCH_BYTES ((size_t)64 << 20)

/* Rolling state, one set of rings per distinct asset, stays under this;
 * past it the job fails naming the input rather than growing with it. */
#define FEAT_ROLL_BYTES ((size_t)256 << 20)

/* ---- job spec ------------------------------------------------------- */

static int job_string(json_t *root, const char *key, int required, char *dst, size_t cap,
                      kiln_err_t *err)
{
    json_t *v = json_object_get(root, key);
    if (!v) {
        if (required)
            return kiln_err_at(err, KILN_ESPEC, key, "%s: missing", key);
        return 0;
    }
    if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) >= cap)
        return kiln_err_at(err, KILN_ESPEC, key, "%s: must be a non-empty string (< %zu bytes)",
                           key, cap);
    memcpy(dst, json_string_value(v), json_string_length(v) + 1);
    return 0;
}

int jb_featurize_job_parse(const char *text, const char *source, jb_featurize_job_t *job,
                           kiln_err_t *err)
{
    /* The common job fields of DESIGN.md are accepted and type-checked so
     * one spec runs alone or on the cluster. */
    static const struct { const char *key; json_type type; } known[] = {
        {"type", JSON_STRING}, {"name", JSON_STRING}, {"project", JSON_STRING},
        {"input", JSON_STRING}, {"output", JSON_STRING}, {"features", JSON_OBJECT},
        {"priority", JSON_INTEGER}, {"depends_on", JSON_ARRAY}, {"resources", JSON_OBJECT},
        {"max_retries", JSON_INTEGER}, {"timeout_s", JSON_REAL}, {"schedule", JSON_STRING},
        {"array", JSON_STRING},
    };
    json_error_t jerr;
    const char *key;
    json_t *v;
    int rc = 0;

    memset(job, 0, sizeof *job);
    json_t *root = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        rc = kiln_err_set(err, KILN_EJSON, "%s:%d:%d: %s", source, jerr.line, jerr.column,
                          jerr.text);
        if (err) {
            err->line = jerr.line;
            err->column = jerr.column;
        }
        return rc;
    }
    if (!json_is_object(root)) {
        rc = kiln_err_set(err, KILN_ESPEC, "%s: a job spec must be a JSON object", source);
        goto out;
    }
    json_object_foreach(root, key, v) {
        size_t i, nk = sizeof known / sizeof known[0];
        for (i = 0; i < nk && strcmp(known[i].key, key); i++)
            ;
        if (i == nk) {
            rc = kiln_err_at(err, KILN_ESPEC, key, "%s: %s: unknown field", source, key);
            goto out;
        }
        int ok = json_typeof(v) == known[i].type ||
                 (known[i].type == JSON_REAL && json_is_integer(v));
        if (!ok) {
            static const char *const tn[] = {"an object", "an array", "a string",
                                             "an integer", "a number", "a boolean",
                                             "a boolean", "null"};
            rc = kiln_err_at(err, KILN_ESPEC, key, "%s: %s: must be %s", source, key,
                             tn[known[i].type]);
            goto out;
        }
    }
    v = json_object_get(root, "type");
    if (!v || strcmp(json_string_value(v), "featurize")) {
        rc = kiln_err_at(err, KILN_ESPEC, "type", "%s: type: must be \"featurize\"", source);
        goto out;
    }
    if ((rc = job_string(root, "name", 0, job->name, sizeof job->name, err)) < 0 ||
        (rc = job_string(root, "project", 0, job->project, sizeof job->project, err)) < 0 ||
        (rc = job_string(root, "input", 0, job->input, sizeof job->input, err)) < 0 ||
        (rc = job_string(root, "output", 0, job->output, sizeof job->output, err)) < 0)
        goto out;
    if ((rc = jb_featspec_parse(json_object_get(root, "features"), &job->features, err)) < 0) {
        if (err) {
            /* prefix the spec's name; the field message keeps what fits */
            char msg[sizeof err->msg];
            size_t sl = strlen(source);
            if (sl + 2 < sizeof msg) {
                memcpy(msg, source, sl);
                memcpy(msg + sl, ": ", 2);
                snprintf(msg + sl + 2, sizeof msg - sl - 2, "%.*s",
                         (int)(sizeof msg - sl - 3), err->msg);
                memcpy(err->msg, msg, sizeof msg);
            }
        }
        goto out;
    }
out:
    json_decref(root);
    return rc;
}

void jb_featurize_job_free(jb_featurize_job_t *job) { jb_featspec_free(&job->features); }

/* ---- compute pool ------------------------------------------------------ */

/* One batch handed to the pool: signals [channel][window][sample], rows
 * [window][n_cols]. */
typedef struct {
    const float *signals;
    float       *rows;
    size_t       n_windows;
    atomic_size_t next;
} batch_work_t;

typedef struct {
    const jb_featctx_t *ctx;
    size_t          n_channels, window_len, n_cols;
    pthread_mutex_t mu;
    pthread_cond_t  cv_work, cv_done;
    unsigned long   generation;   /* guarded by mu: bumped per posted batch */
    int             busy;         /* guarded by mu: threads still on the batch */
    int             quit;         /* guarded by mu */
    batch_work_t    work;
    int             n_threads;
    pthread_t       threads[64];
} pool_t;

/* Windows are claimed a few at a time so the two threads stay balanced. */
#define CLAIM 4

static void pool_do(pool_t *p, float *scratch)
{
    batch_work_t *w = &p->work;
    const size_t stride = w->n_windows * p->window_len;
    for (;;) {
        size_t i0 = atomic_fetch_add(&w->next, CLAIM);
        if (i0 >= w->n_windows)
            break;
        size_t i1 = i0 + CLAIM < w->n_windows ? i0 + CLAIM : w->n_windows;
        for (size_t i = i0; i < i1; i++)
            for (size_t c = 0; c < p->n_channels; c++)
                jb_featctx_window(p->ctx, w->signals + c * stride + i * p->window_len,
                                  w->rows + i * p->n_cols + c * p->ctx->per_channel, scratch);
    }
}

static void *pool_main(void *arg)
{
    pool_t *p = arg;
    unsigned long seen = 0;
    float *scratch = kiln_malloc_aligned(jb_featctx_scratch_floats(p->ctx) * sizeof(float));

    for (;;) {
        pthread_mutex_lock(&p->mu);
        while (!p->quit && p->generation == seen)
            pthread_cond_wait(&p->cv_work, &p->mu);
        if (p->quit) {
            pthread_mutex_unlock(&p->mu);
            break;
        }
        seen = p->generation;
        pthread_mutex_unlock(&p->mu);

        if (scratch)        /* without scratch this thread sits the batch out */
            pool_do(p, scratch);

        pthread_mutex_lock(&p->mu);
        if (--p->busy == 0)
            pthread_cond_signal(&p->cv_done);
        pthread_mutex_unlock(&p->mu);
    }
    kiln_free_aligned(scratch);
    return NULL;
}

static int pool_start(pool_t *p, const jb_featctx_t *ctx, size_t n_channels, size_t n_cols,
                      int n_threads, kiln_err_t *err)
{
    memset(p, 0, sizeof *p);
    p->ctx = ctx;
    p->n_channels = n_channels;
    p->window_len = ctx->window_len;
    p->n_cols = n_cols;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv_work, NULL);
    pthread_cond_init(&p->cv_done, NULL);
    for (int i = 0; i < n_threads; i++) {
        if (pthread_create(&p->threads[i], NULL, pool_main, p) != 0)
            return kiln_err_set(err, KILN_ENOMEM, "featurize: cannot start compute thread %d",
                                i + 1);
        p->n_threads++;
    }
    return 0;
}

static void pool_post(pool_t *p, const float *signals, float *rows, size_t n_windows)
{
    pthread_mutex_lock(&p->mu);
    p->work.signals = signals;
    p->work.rows = rows;
    p->work.n_windows = n_windows;
    atomic_store(&p->work.next, 0);
    p->busy = p->n_threads;
    p->generation++;
    pthread_cond_broadcast(&p->cv_work);
    pthread_mutex_unlock(&p->mu);
}

static void pool_wait(pool_t *p)
{
    pthread_mutex_lock(&p->mu);
    while (p->busy > 0)
        pthread_cond_wait(&p->cv_done, &p->mu);
    pthread_mutex_unlock(&p->mu);
}

/* Windows a thread never reached because it had no scratch: finish them here. */
static int pool_finish_rest(pool_t *p, kiln_err_t *err)
{
    if (atomic_load(&p->work.next) >= p->work.n_windows)
        return 0;
    float *scratch = kiln_malloc_aligned(jb_featctx_scratch_floats(p->ctx) * sizeof(float));
    if (!scratch)
        return kiln_err_set(err, KILN_ENOMEM, "featurize: no memory for compute scratch");
    pool_do(p, scratch);
    kiln_free_aligned(scratch);
    return 0;
}

static void pool_stop(pool_t *p)
{
    pthread_mutex_lock(&p->mu);
    p->quit = 1;
    pthread_cond_broadcast(&p->cv_work);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->n_threads; i++)
        pthread_join(p->threads[i], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv_work);
    pthread_cond_destroy(&p->cv_done);
}

/* ---- rolling features: one set of rings per asset -------------------- */

typedef struct {
    int32_t       asset;
    int           used;
    kn_rolling_t *rings;      /* n_rings */
} roll_slot_t;

typedef struct {
    size_t       k, n_rings, cap, count;
    roll_slot_t *slots;       /* open addressing, cap a power of two */
    const char  *source;      /* input path, for messages (borrowed) */
    size_t       max_assets;  /* from FEAT_ROLL_BYTES and the ring sizes */
} roll_map_t;

static void roll_map_free(roll_map_t *m)
{
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->slots[i].used)
            continue;
        for (size_t r = 0; r < m->n_rings; r++)
            kn_rolling_free(&m->slots[i].rings[r]);
        kiln_free(m->slots[i].rings);
    }
    kiln_free(m->slots);
    m->slots = NULL;
    m->cap = 0;
}

static size_t roll_hash(int32_t asset, size_t cap)
{
    uint32_t h = (uint32_t)asset * 2654435761u;
    return (size_t)h & (cap - 1);
}

static int roll_map_grow(roll_map_t *m, kiln_err_t *err)
{
    size_t cap = m->cap ? m->cap * 2 : 64;
    roll_slot_t *s = kiln_calloc(cap, sizeof *s);
    if (!s)
        return kiln_err_set(err, KILN_ENOMEM, "featurize: no memory for rolling state");
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->slots[i].used)
            continue;
        size_t j = roll_hash(m->slots[i].asset, cap);
        while (s[j].used)
            j = (j + 1) & (cap - 1);
        s[j] = m->slots[i];
    }
    kiln_free(m->slots);
    m->slots = s;
    m->cap = cap;
    return 0;
}

static int roll_map_get(roll_map_t *m, int32_t asset, kn_rolling_t **rings, kiln_err_t *err)
{
    int rc;
    if ((m->count + 1) * 2 > m->cap && (rc = roll_map_grow(m, err)) < 0)
        return rc;
    size_t j = roll_hash(asset, m->cap);
    while (m->slots[j].used && m->slots[j].asset != asset)
        j = (j + 1) & (m->cap - 1);
    roll_slot_t *s = &m->slots[j];
    if (!s->used) {
        if (m->count >= m->max_assets)
            return kiln_err_set(err, KILN_EUNSUPPORTED,
                                "%s: more than %zu distinct assets with rolling features "
                                "(k=%zu): split the dataset or shorten features.rolling",
                                m->source, m->max_assets, m->k);
        s->rings = kiln_calloc(m->n_rings, sizeof *s->rings);
        if (!s->rings)
            return kiln_err_set(err, KILN_ENOMEM, "featurize: no memory for rolling state");
        for (size_t r = 0; r < m->n_rings; r++) {
            if ((rc = kn_rolling_init(&s->rings[r], m->k, err)) < 0) {
                for (size_t q = 0; q < r; q++)
                    kn_rolling_free(&s->rings[q]);
                kiln_free(s->rings);
                s->rings = NULL;
                return rc;
            }
        }
        s->used = 1;
        s->asset = asset;
        m->count++;
    }
    *rings = s->rings;
    return 0;
}

/* ---- the job ----------------------------------------------------------- */


static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct {
    float   *signals;   /* [channel][window][sample] */
    float   *rows;
    int32_t *asset, *label;
    int64_t *timestamp;
    float   *target;
} batch_buf_t;

static void batch_free(batch_buf_t *b)
{
    kiln_free_aligned(b->signals);
    kiln_free(b->rows);
    kiln_free(b->asset);
    kiln_free(b->label);
    kiln_free(b->timestamp);
    kiln_free(b->target);
    memset(b, 0, sizeof *b);
}

static int batch_alloc(batch_buf_t *b, size_t n_windows, size_t n_channels, size_t window_len,
                       size_t n_cols, kiln_err_t *err)
{
    b->signals = kiln_malloc_aligned(n_windows * n_channels * window_len * sizeof(float));
    b->rows = kiln_malloc(n_windows * n_cols * sizeof(float));
    b->asset = kiln_malloc(n_windows * sizeof(int32_t));
    b->label = kiln_malloc(n_windows * sizeof(int32_t));
    b->timestamp = kiln_malloc(n_windows * sizeof(int64_t));
    b->target = kiln_malloc(n_windows * sizeof(float));
    if (!b->signals || !b->rows || !b->asset || !b->label || !b->timestamp || !b->target) {
        batch_free(b);
        return kiln_err_set(err, KILN_ENOMEM, "featurize: no memory for a batch of %zu windows",
                            n_windows);
    }
    return 0;
}

static int batch_read(st_sensor_t *in, const int *chan_idx, size_t n_channels, size_t window_len,
                      size_t win0, size_t n, batch_buf_t *b, kiln_err_t *err)
{
    int rc;
    for (size_t c = 0; c < n_channels; c++)
        if ((rc = st_sensor_read(in, (size_t)chan_idx[c], win0, n,
                                 b->signals + c * n * window_len, err)) < 0)
            return rc;
    return st_sensor_read_meta(in, win0, n, b->asset, b->timestamp, b->label, b->target, err);
}

static int add_rolling(roll_map_t *m, const jb_featspec_t *s, size_t n_channels,
                       size_t per_channel, size_t n_cols, batch_buf_t *b, size_t n,
                       kiln_err_t *err)
{
    int rc;
    for (size_t i = 0; i < n; i++) {
        kn_rolling_t *rings = NULL;
        float *row = b->rows + i * n_cols;
        float *roll = row + n_channels * per_channel;
        if ((rc = roll_map_get(m, b->asset[i], &rings, err)) < 0)
            return rc;
        for (size_t c = 0; c < n_channels; c++)
            for (size_t f = 0; f < s->n_roll; f++) {
                double mean, std;
                size_t r = c * s->n_roll + f;
                kn_rolling_push(&rings[r], row[c * per_channel + (size_t)s->roll_of[f]], &mean,
                                &std);
                roll[2 * r] = (float)mean;
                roll[2 * r + 1] = (float)std;
            }
    }
    return 0;
}

/* Column names: "<channel>.<feature>", then "<channel>.<feature>.roll<k>_mean|_std". */
static int make_names(const jb_featspec_t *s, const st_sensor_meta_t *im, const int *chan_idx,
                      size_t n_channels, char **names, size_t n_cols, kiln_err_t *err)
{
    size_t per = jb_featspec_per_channel(s), col = 0;
    char fname[JB_FEAT_NAME_MAX];
    for (size_t c = 0; c < n_channels; c++)
        for (size_t f = 0; f < per; f++) {
            jb_featspec_feature_name(s, f, fname);
            names[col] = kiln_malloc(strlen(im->channels[chan_idx[c]]) + strlen(fname) + 2);
            if (!names[col])
                goto nomem;
            sprintf(names[col++], "%s.%s", im->channels[chan_idx[c]], fname);
        }
    for (size_t c = 0; c < n_channels; c++)
        for (size_t f = 0; f < s->n_roll; f++)
            for (int half = 0; half < 2; half++) {
                jb_featspec_feature_name(s, (size_t)s->roll_of[f], fname);
                names[col] = kiln_malloc(strlen(im->channels[chan_idx[c]]) + strlen(fname) + 40);
                if (!names[col])
                    goto nomem;
                sprintf(names[col++], "%s.%s.roll%zu_%s", im->channels[chan_idx[c]], fname,
                        s->rolling_k, half ? "std" : "mean");
            }
    (void)n_cols;
    return 0;
nomem:
    return kiln_err_set(err, KILN_ENOMEM, "featurize: no memory for feature names");
}

int jb_featurize_run(const jb_featspec_t *s, const char *input, const char *output,
                     const jb_featurize_opts_t *opts, jb_featurize_stats_t *stats,
                     kiln_err_t *err)
{
    return jb_featurize_run_range(s, input, output, 0, JB_FEAT_ALL_WINDOWS, opts, stats, err);
}

/* The GPU engine is made on its own thread while the first batch is read:
 * a CUDA context takes a few tenths of a second to come up. */
typedef struct {
    const jb_featctx_t *ctx;
    int                 device;
    void               *pin[2];     /* the batch buffers, page-locked here too */
    size_t              pin_bytes;
    jb_featgpu_t       *gpu;
    kiln_err_t          err;
    double              seconds;
} gpu_setup_t;

static void *gpu_setup_main(void *arg)
{
    gpu_setup_t *g = arg;
    double t0 = now_s();
    int rc = jb_featgpu_new(g->ctx, g->device, &g->gpu, &g->err);
    for (int i = 0; rc == 0 && i < 2; i++)
        rc = jb_featgpu_pin(g->gpu, g->pin[i], g->pin_bytes, &g->err);
    if (rc < 0)
        jb_featgpu_free(&g->gpu);
    g->seconds = now_s() - t0;
    return NULL;
}

int jb_featurize_run_range(const jb_featspec_t *s, const char *input, const char *output,
                           size_t first, size_t count, const jb_featurize_opts_t *opts,
                           jb_featurize_stats_t *stats, kiln_err_t *err)
{
    st_sensor_t *in = NULL;
    st_features_writer_t *w = NULL;
    jb_featctx_t ctx;
    pool_t pool;
    jb_featgpu_t *gpu = NULL;
    int pool_up = 0, rc;
    batch_buf_t buf[2] = {{0}, {0}};
    roll_map_t roll = {0};
    char **names = NULL;
    int chan_idx[ST_MAX_CHANNELS];
    size_t n_channels, n_cols = 0;
    double t0 = now_s();

    memset(&ctx, 0, sizeof ctx);
    memset(stats, 0, sizeof *stats);
    if ((rc = st_sensor_open(input, &in, err)) < 0)
        return rc;
    const st_sensor_meta_t *im = st_sensor_meta(in);

    if (s->n_channels == 0) {
        n_channels = im->n_channels;
        for (size_t c = 0; c < n_channels; c++)
            chan_idx[c] = (int)c;
    } else {
        n_channels = s->n_channels;
        for (size_t c = 0; c < n_channels; c++) {
            chan_idx[c] = st_sensor_channel_index(in, s->channels[c]);
            if (chan_idx[c] < 0) {
                char have[512] = "";
                for (size_t h = 0; h < im->n_channels; h++)
                    snprintf(have + strlen(have), sizeof have - strlen(have), "%s%s",
                             h ? ", " : "", im->channels[h]);
                rc = kiln_err_at(err, KILN_ESPEC, "features.channels",
                                 "features.channels[%zu]: no channel '%s' in %s (it has %s)", c,
                                 s->channels[c], input, have);
                goto out;
            }
        }
    }
    if ((rc = jb_featctx_init(&ctx, s, im->window_len, im->sample_rate_hz, err)) < 0)
        goto out;
    n_cols = n_channels * (ctx.per_channel + 2 * s->n_roll);
    if (n_cols > ST_MAX_FEATURES) {
        rc = kiln_err_set(err, KILN_ESPEC, "features: %zu columns, at most %d", n_cols,
                          ST_MAX_FEATURES);
        goto out;
    }
    names = kiln_calloc(n_cols, sizeof *names);
    if (!names) {
        rc = kiln_err_set(err, KILN_ENOMEM, "featurize: no memory for feature names");
        goto out;
    }
    if ((rc = make_names(s, im, chan_idx, n_channels, names, n_cols, err)) < 0)
        goto out;

    st_features_meta_t om;
    memset(&om, 0, sizeof om);
    om.n_features = n_cols;
    for (size_t i = 0; i < n_cols; i++)
        om.feature_names[i] = names[i];
    om.source_sha256 = im->content_sha256;
    om.spec_sha256 = s->sha256;
    om.spec_json = s->canonical_json;
    om.has_label = im->has_label;
    om.has_target = im->has_target;
    om.n_label_names = im->n_label_names;
    for (size_t i = 0; i < im->n_label_names && i < 256; i++)
        om.label_names[i] = im->label_names[i];
    if ((rc = st_features_create(output, &om, opts ? opts->compress : 0, &w, err)) < 0)
        goto out;

    /* Batches are sized in bytes, not windows: two signal buffers of at most
     * FEAT_BATCH_BYTES each, whatever the window length and channel count
     * (a file may claim 64 channels of 4 Mi samples). */
    const size_t window_bytes = n_channels * im->window_len * sizeof(float);
    size_t batch_cap = FEAT_BATCH_BYTES / (window_bytes ? window_bytes : 1);
    if (batch_cap < 1)
        batch_cap = 1;
    int n_threads = opts && opts->n_threads > 0 ? opts->n_threads
                                                : (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (n_threads < 1)
        n_threads = 1;
    if (n_threads > 64)
        n_threads = 64;
    /* The GPU wants the largest batches (a launch per channel per batch, and
     * the file read of one batch hides behind the GPU work of the other);
     * the CPU pool wants small ones that stay in cache. */
    const int want_gpu = opts && opts->use_gpu;
    size_t batch = opts && opts->batch_windows ? opts->batch_windows : want_gpu ? batch_cap : 256;
    if (batch > batch_cap)
        batch = batch_cap;
    /* Windows [first, first + total) of the input; rolling rings start
     * empty at `first`, so only a range from 0 matches a whole run there. */
    if (first > im->n_windows ||
        (count != JB_FEAT_ALL_WINDOWS && count > im->n_windows - first)) {
        rc = kiln_err_set(err, KILN_EINVAL,
                          "%s: windows [%zu, +%zu) outside the input's %zu windows", input,
                          first, count, im->n_windows);
        goto out;
    }
    const size_t total = count == JB_FEAT_ALL_WINDOWS ? im->n_windows - first : count;
    const size_t L = im->window_len;
    if (batch > total && total > 0)
        batch = total;
    if ((rc = batch_alloc(&buf[0], batch, n_channels, L, n_cols, err)) < 0 ||
        (rc = batch_alloc(&buf[1], batch, n_channels, L, n_cols, err)) < 0)
        goto out;
    roll.n_rings = n_channels * s->n_roll;
    roll.k = s->rolling_k;
    roll.source = input;
    if (roll.n_rings) {
        size_t per_asset = sizeof(roll_slot_t) * 2 +
                           roll.n_rings * (sizeof(kn_rolling_t) + roll.k * sizeof(double));
        roll.max_assets = FEAT_ROLL_BYTES / per_asset ? FEAT_ROLL_BYTES / per_asset : 1;
    }
    gpu_setup_t setup = {.ctx = &ctx, .device = want_gpu ? opts->gpu_device : 0,
                         .pin = {buf[0].signals, buf[1].signals},
                         .pin_bytes = batch * n_channels * L * sizeof(float)};
    pthread_t setup_thread;
    int setup_up = want_gpu && pthread_create(&setup_thread, NULL, gpu_setup_main, &setup) == 0;
    if (want_gpu && !setup_up)
        gpu_setup_main(&setup);
    size_t n_batches = (total + batch - 1) / batch;
    double t_read = now_s();
    if (n_batches > 0)
        rc = batch_read(in, chan_idx, n_channels, L, first, batch < total ? batch : total,
                        &buf[0], err);
    stats->read_s += now_s() - t_read;
    if (setup_up)
        pthread_join(setup_thread, NULL);
    gpu = setup.gpu;
    stats->gpu_setup_s = setup.seconds;
    if (rc < 0)
        goto out;
    if (want_gpu && !gpu)
        snprintf(stats->device, sizeof stats->device, "CPU, %d thread%s (GPU %d: %.200s)",
                 n_threads, n_threads == 1 ? "" : "s", opts->gpu_device, setup.err.msg);
    if (gpu) {
        /* This thread drives the GPU, batch after batch: no compute pool. */
        snprintf(stats->device, sizeof stats->device, "%s", jb_featgpu_device_name(gpu));
    } else {
        if (!stats->device[0])
            snprintf(stats->device, sizeof stats->device, "CPU, %d thread%s", n_threads,
                     n_threads == 1 ? "" : "s");
        pool_up = 1;
        if ((rc = pool_start(&pool, &ctx, n_channels, n_cols, n_threads, err)) < 0)
            goto out;
    }

    for (size_t b = 0; b < n_batches; b++) {
        batch_buf_t *cur = &buf[b & 1], *nxt = &buf[(b + 1) & 1];
        size_t win0 = b * batch, n = total - win0 < batch ? total - win0 : batch;

        /* This thread drives the GPU (one batch in flight) or hands the batch
         * to the pool; either way it reads the next one meanwhile. */
        if (gpu && (rc = jb_featgpu_submit(gpu, cur->signals, n, n_channels, err)) < 0)
            goto out;
        if (!gpu)
            pool_post(&pool, cur->signals, cur->rows, n);
        int rrc = 0;
        t_read = now_s();
        if (b + 1 < n_batches) {
            size_t nn = total - (win0 + n) < batch ? total - (win0 + n) : batch;
            rrc = batch_read(in, chan_idx, n_channels, L, first + win0 + n, nn, nxt, err);
        }
        double t_wait = now_s();
        stats->read_s += t_wait - t_read;
        if (!gpu)
            pool_wait(&pool);
        else if ((rc = jb_featgpu_finish(gpu, n, n_channels, cur->rows, n_cols, err)) < 0)
            goto out;
        stats->wait_s += now_s() - t_wait;
        if (rrc < 0) {
            rc = rrc;
            goto out;
        }
        if (!gpu && (rc = pool_finish_rest(&pool, err)) < 0)
            goto out;
        if (s->n_roll &&
            (rc = add_rolling(&roll, s, n_channels, ctx.per_channel, n_cols, cur, n, err)) < 0)
            goto out;
        if ((rc = st_features_append(w, n, cur->rows, cur->asset, cur->timestamp,
                                     im->has_label ? cur->label : NULL,
                                     im->has_target ? cur->target : NULL, err)) < 0)
            goto out;
        if (opts && opts->progress)
            opts->progress(opts->progress_ud, win0 + n, total);
    }
    if ((rc = st_features_commit(&w, stats->output_sha256, err)) < 0)
        goto out;

    stats->windows = total;
    stats->channels = n_channels;
    stats->window_len = L;
    stats->n_features = n_cols;
    stats->signal_bytes = (uint64_t)total * n_channels * L * sizeof(float);
    stats->seconds = now_s() - t0;
out:
    if (pool_up)
        pool_stop(&pool);
    st_features_abort(&w);
    jb_featgpu_free(&gpu);     /* unpins the batch buffers: before they go */
    batch_free(&buf[0]);
    batch_free(&buf[1]);
    roll_map_free(&roll);
    if (names) {
        for (size_t i = 0; i < n_cols; i++)
            kiln_free(names[i]);
        kiln_free(names);
    }
    jb_featctx_free(&ctx);
    st_sensor_close(&in);
    return rc;
}
