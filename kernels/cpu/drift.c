/* drift.c - column accumulators of the drift statistics (kernels/drift.h):
 * feeding (exact buffers, then the order-preserving bucket sketch), the
 * switch between them, and threading over columns.  The statistics
 * themselves are computed from a list of value segments in drift_stats.c. */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "../../core/kiln_alloc.h"
#include "drift_impl.h"

#define SKETCH_SHIFT (32 - KN_DRIFT_SKETCH_BITS)

uint32_t kn_drift_key(float d)
{
    d += 0.0f;                  /* -0 -> +0: one bucket for zero */
    uint32_t u;
    memcpy(&u, &d, sizeof u);
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

float kn_drift_unkey(uint32_t k)
{
    uint32_t u = (k & 0x80000000u) ? (k & 0x7FFFFFFFu) : ~k;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

int kn_drift_col_new(kn_drift_kind_t kind, size_t exact_max_values, kn_drift_col_t **out,
                     kiln_err_t *err)
{
    if (!out)
        return kiln_err_set(err, KILN_EINVAL, "drift: output pointer is NULL");
    *out = NULL;
    if (kind != KN_DRIFT_NUMERIC && kind != KN_DRIFT_CLASS)
        return kiln_err_set(err, KILN_EINVAL, "drift: unknown column kind %d", (int)kind);
    kn_drift_col_t *c = kiln_calloc(1, sizeof *c);
    if (!c)
        return kiln_err_set(err, KILN_ENOMEM, "drift: no memory for a column");
    c->kind = kind;
    c->exact_max = exact_max_values ? exact_max_values : KN_DRIFT_EXACT_MAX;
    *out = c;
    return 0;
}

void kn_drift_col_destroy(kn_drift_col_t **col)
{
    if (!col || !*col)
        return;
    kn_drift_col_t *c = *col;
    for (int s = 0; s < 2; s++) {
        kiln_free(c->side[s].vals);
        kiln_free(c->side[s].counts);
        kiln_free(c->side[s].class_counts);
    }
    kiln_free(c);
    *col = NULL;
}

static const char *side_name(kn_drift_side_t s) { return s == KN_DRIFT_REF ? "reference" : "current"; }

static int check_finite(const float *x, size_t n, size_t first_row, kn_drift_side_t side,
                        kiln_err_t *err)
{
    /* one branch-free OR over the chunk; the row is looked for only on failure */
    uint32_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &x[i], sizeof u);
        bad |= (uint32_t)((u & 0x7F800000u) == 0x7F800000u);
    }
    if (!bad)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i]))
            return kiln_err_at(err, KILN_ENONFINITE, side_name(side),
                               "drift: %s sample row %zu is %s (drop or impute missing values "
                               "before the drift statistics)",
                               side_name(side), first_row + i, isnan(x[i]) ? "NaN" : "Inf");
    return 0;
}

/* Moments about the first value fed (shifted sums keep their digits), for
 * the sketch's reference std; the exact path takes the std from the values
 * it holds, so they are summed only from the switch on.  Four running sums
 * so that the adds pipeline. */
static void add_moments(const kn_drift_col_t *c, kn_drift_side_state_t *s, const float *x,
                        size_t n)
{
    const double sh = c->shift;
    double s1[4] = {0}, s2[4] = {0};
    size_t i = 0;
    for (; i + 4 <= n; i += 4)
        for (int l = 0; l < 4; l++) {
            double d = (double)x[i + l] - sh;
            s1[l] += d;
            s2[l] += d * d;
        }
    for (; i < n; i++) {
        double d = (double)x[i] - sh;
        s1[0] += d;
        s2[0] += d * d;
    }
    s->sum += (s1[0] + s1[1]) + (s1[2] + s1[3]);
    s->sumsq += (s2[0] + s2[1]) + (s2[2] + s2[3]);
}

static void sketch_add(kn_drift_col_t *c, kn_drift_side_t side, const float *x, size_t n)
{
    uint32_t *counts = c->side[side].counts;
    const float off = c->offset_f;
    for (size_t i = 0; i < n; i++)
        counts[kn_drift_key(x[i] - off) >> SKETCH_SHIFT]++;
}

/* Exact buffers -> sketch, once: offset = median of the reference held
 * (the current sample's when no reference came yet). */
static int switch_to_sketch(kn_drift_col_t *c, kiln_err_t *err)
{
    kn_drift_side_state_t *base = c->side[KN_DRIFT_REF].n ? &c->side[KN_DRIFT_REF]
                                                          : &c->side[KN_DRIFT_CUR];
    float *tmp = kiln_malloc(base->n * sizeof *tmp);
    uint32_t *cr = kiln_calloc((size_t)1 << KN_DRIFT_SKETCH_BITS, sizeof *cr);
    uint32_t *cc = kiln_calloc((size_t)1 << KN_DRIFT_SKETCH_BITS, sizeof *cc);
    if (!tmp || !cr || !cc) {
        kiln_free(tmp);
        kiln_free(cr);
        kiln_free(cc);
        return kiln_err_set(err, KILN_ENOMEM, "drift: no memory for the column sketch (%zu MiB)",
                            (size_t)2 << (KN_DRIFT_SKETCH_BITS - 18));
    }
    for (int s = 0; s < 2; s++)  /* in feed order, before the sort */
        add_moments(c, &c->side[s], c->side[s].vals, c->side[s].n);
    kn_drift_sort_floats(base->vals, base->n, tmp);
    kiln_free(tmp);
    c->offset_f = base->vals[base->n / 2];
    c->side[KN_DRIFT_REF].counts = cr;
    c->side[KN_DRIFT_CUR].counts = cc;
    for (int s = 0; s < 2; s++) {
        sketch_add(c, (kn_drift_side_t)s, c->side[s].vals, c->side[s].n);
        kiln_free(c->side[s].vals);
        c->side[s].vals = NULL;
        c->side[s].cap = 0;
    }
    c->sketched = 1;
    return 0;
}

int kn_drift_feed(kn_drift_col_t *c, kn_drift_side_t side, const float *x, size_t n,
                  kiln_err_t *err)
{
    if (!c || (side != KN_DRIFT_REF && side != KN_DRIFT_CUR) || (n && !x))
        return kiln_err_set(err, KILN_EINVAL, "drift: feed with a NULL column/values or bad side");
    if (c->kind != KN_DRIFT_NUMERIC)
        return kiln_err_set(err, KILN_ETYPE, "drift: float values fed to a class column");
    kn_drift_side_state_t *s = &c->side[side];
    if (n == 0)
        return 0;
    int rc = check_finite(x, n, s->n, side, err);
    if (rc < 0)
        return rc;
    if (c->sketched && s->n + n > UINT32_MAX)
        return kiln_err_set(err, KILN_EINVAL,
                            "drift: more than %u values in the %s sample of one column",
                            UINT32_MAX, side_name(side));
    if (!c->sketched) {
        if (s->n + n > s->cap) {
            size_t cap = s->cap ? s->cap : 4096;
            while (cap < s->n + n)
                cap *= 2;
            float *v = kiln_realloc(s->vals, cap * sizeof *v);
            if (!v)
                return kiln_err_set(err, KILN_ENOMEM, "drift: no memory for %zu values", cap);
            s->vals = v;
            s->cap = cap;
        }
    }
    if (!c->have_shift) {
        c->shift = x[0];
        c->have_shift = 1;
    }
    float mn = s->n ? s->min : x[0], mx = s->n ? s->max : x[0];
    for (size_t i = 0; i < n; i++) {
        mn = x[i] < mn ? x[i] : mn;
        mx = x[i] > mx ? x[i] : mx;
    }
    s->min = mn;
    s->max = mx;
    if (c->sketched) {
        add_moments(c, s, x, n);
        sketch_add(c, side, x, n);
        s->n += n;
        return 0;
    }
    memcpy(s->vals + s->n, x, n * sizeof *x);
    s->n += n;
    if (c->side[0].n + c->side[1].n > c->exact_max)
        return switch_to_sketch(c, err);
    return 0;
}

int kn_drift_feed_class(kn_drift_col_t *c, kn_drift_side_t side, const int32_t *labels,
                        size_t n, kiln_err_t *err)
{
    if (!c || (side != KN_DRIFT_REF && side != KN_DRIFT_CUR) || (n && !labels))
        return kiln_err_set(err, KILN_EINVAL, "drift: feed with a NULL column/labels or bad side");
    if (c->kind != KN_DRIFT_CLASS)
        return kiln_err_set(err, KILN_ETYPE, "drift: class labels fed to a numeric column");
    kn_drift_side_state_t *s = &c->side[side];
    int32_t top = -1;
    for (size_t i = 0; i < n; i++) {
        if (labels[i] < 0 || labels[i] >= KN_DRIFT_MAX_CLASSES)
            return kiln_err_at(err, KILN_EINVAL, side_name(side),
                               "drift: %s sample row %zu has class label %d, outside [0, %d)",
                               side_name(side), s->n + i, (int)labels[i], KN_DRIFT_MAX_CLASSES);
        top = labels[i] > top ? labels[i] : top;
    }
    if ((size_t)(top + 1) > c->n_labels) {
        size_t want = (size_t)top + 1;
        for (int k = 0; k < 2; k++) {
            uint64_t *p = kiln_realloc(c->side[k].class_counts, want * sizeof *p);
            if (!p)
                return kiln_err_set(err, KILN_ENOMEM, "drift: no memory for %zu classes", want);
            memset(p + c->n_labels, 0, (want - c->n_labels) * sizeof *p);
            c->side[k].class_counts = p;
        }
        c->n_labels = want;
    }
    for (size_t i = 0; i < n; i++)
        s->class_counts[labels[i]]++;
    s->n += n;
    return 0;
}

/* ---- threads over columns ------------------------------------------------ */

/* Columns are handed out one at a time from a shared counter: their costs
 * differ (a drifted column's KS p-value sums many more terms), so a fixed
 * split (every other column) can leave one thread with all the slow ones.
 * Each result depends only on its column, so the bits do not depend on
 * which thread took it. */
typedef struct {
    atomic_size_t next;         /* the next column to take */
    atomic_int failed;          /* set at the first error: no more columns are taken */
} queue_t;

typedef struct {
    kn_drift_col_t *const *cols;
    size_t n_cols, n;
    kn_drift_side_t side;
    const float *const *x;
    kn_drift_result_t *out;     /* finish when not NULL */
    queue_t *queue;
    int rc;
    size_t failed_col;          /* the column of rc < 0 */
    kiln_err_t err;
} job_t;

static void *job_run(void *arg)
{
    job_t *j = arg;
    while (!atomic_load(&j->queue->failed)) {
        size_t c = atomic_fetch_add(&j->queue->next, 1);
        if (c >= j->n_cols)
            break;
        j->rc = j->out ? kn_drift_finish(j->cols[c], KN_DRIFT_AUTO, NAN, &j->out[c], &j->err)
                       : kn_drift_feed(j->cols[c], j->side, j->x[c], j->n, &j->err);
        if (j->rc < 0) {
            char where[32];
            snprintf(where, sizeof where, "column %zu", c);
            memcpy(j->err.where, where, sizeof where);
            j->failed_col = c;
            atomic_store(&j->queue->failed, 1);
            break;
        }
    }
    return NULL;
}

static int run_jobs(job_t *proto, int n_threads, kiln_err_t *err)
{
    enum { MAX_THREADS = 64 };
    if (n_threads < 1)
        n_threads = 1;
    if (n_threads > MAX_THREADS)
        n_threads = MAX_THREADS;
    if ((size_t)n_threads > proto->n_cols)
        n_threads = proto->n_cols ? (int)proto->n_cols : 1;
    queue_t queue;
    atomic_init(&queue.next, 0);
    atomic_init(&queue.failed, 0);
    job_t jobs[MAX_THREADS];
    pthread_t tid[MAX_THREADS];
    int started[MAX_THREADS] = {0};
    for (int t = 0; t < n_threads; t++) {
        jobs[t] = *proto;
        jobs[t].queue = &queue;
        jobs[t].rc = 0;
        kiln_err_clear(&jobs[t].err);
    }
    for (int t = 1; t < n_threads; t++)
        started[t] = pthread_create(&tid[t], NULL, job_run, &jobs[t]) == 0;
    job_run(&jobs[0]);          /* a thread that did not start leaves its share to the others */
    for (int t = 1; t < n_threads; t++)
        if (started[t])
            pthread_join(tid[t], NULL);
    int worst = -1;             /* the failed column with the lowest index */
    for (int t = 0; t < n_threads; t++)
        if (jobs[t].rc < 0 && (worst < 0 || jobs[t].failed_col < jobs[worst].failed_col))
            worst = t;
    if (worst >= 0) {
        if (err)
            *err = jobs[worst].err;
        return jobs[worst].rc;
    }
    return 0;
}

int kn_drift_feed_columns(kn_drift_col_t *const *cols, size_t n_cols, kn_drift_side_t side,
                          const float *const *x, size_t n, int n_threads, kiln_err_t *err)
{
    if (!cols || (n_cols && !x))
        return kiln_err_set(err, KILN_EINVAL, "drift: feed_columns with NULL columns or data");
    job_t proto = {.cols = cols, .n_cols = n_cols, .n = n, .side = side, .x = x};
    return run_jobs(&proto, n_threads, err);
}

int kn_drift_finish_columns(kn_drift_col_t *const *cols, size_t n_cols, int n_threads,
                            kn_drift_result_t *out, kiln_err_t *err)
{
    if (!cols || !out)
        return kiln_err_set(err, KILN_EINVAL, "drift: finish_columns with NULL columns or output");
    job_t proto = {.cols = cols, .n_cols = n_cols, .out = out};
    return run_jobs(&proto, n_threads, err);
}

int kn_drift_dataset(const kn_drift_result_t *cols, size_t n_cols, double drift_share,
                     size_t *n_drifted, int *drifted, kiln_err_t *err)
{
    if (!cols || n_cols == 0)
        return kiln_err_set(err, KILN_EINVAL, "drift: a dataset verdict needs at least one column");
    if (!(drift_share >= 0 && drift_share <= 1))
        return kiln_err_at(err, KILN_EINVAL, "drift_share", "drift: drift_share %g outside [0, 1]",
                           drift_share);
    size_t k = 0;
    for (size_t i = 0; i < n_cols; i++)
        k += cols[i].drifted != 0;
    if (n_drifted)
        *n_drifted = k;
    if (drifted)
        *drifted = (double)k / (double)n_cols >= drift_share;
    return 0;
}
