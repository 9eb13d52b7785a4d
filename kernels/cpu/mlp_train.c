/* mlp_train.c - km_mlp_fit: Glorot-uniform init, then epochs of shuffled
 * mini-batches with Adam (Kingma & Ba 2015, in scikit-learn's form:
 * lr_t = lr*sqrt(1-b2^t)/(1-b1^t)); a step's rows are spread over pthreads
 * by lane so the bytes never depend on the thread count. */
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <string.h>

#include "../../core/kiln_alloc.h"
#include "mlp_impl.h"

/* ---- fit: threads, steps, Adam ----------------------------------------------- */

/* Threads share a step through one ticket, (step generation << 32) | a bit
 * per claimed lane: a thread claims a lane by compare-and-swap, so a lane belongs to one
 * thread and one step, and a late or descheduled thread simply finds no lane
 * left instead of holding the others at a barrier (which, on a busy machine,
 * cost more than the work).  Thread 0 waits only for lanes_done (the items
 * done); a step is two generations: its lanes, then the update (lane sum and
 * Adam) cut into parts by weight range, which every thread works too. */
typedef struct {
    _Atomic uint64_t ticket;
    atomic_uint      lanes_done, sleepers;
    atomic_int       quit;
    pthread_mutex_t  lock;
    pthread_cond_t   wake;
} mlp_sync_t;

static void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

typedef struct {
    km_mlp_t               *m;
    const km_data_t        *data;
    const km_mlp_params_t  *p;
    const km_reduce_t      *reduce;     /* NULL: one rank */
    size_t                  n_total, batch, steps;
    size_t                 *perm;       /* this rank's rows, reshuffled each epoch */
    float                  *wt;         /* weights transposed, kept beside m->params */
    float                  *lane_grad;  /* KM_MLP_LANES x n_params */
    int                     lane_used[KM_MLP_LANES];
    double                 *grad_sum;   /* n_params, then the step's rows (for reduce) */
    double                 *adam_m, *adam_v;
    km_rng_t                rng;
    int                     threads;
    mlp_sync_t              sync;
    size_t                  step_lo, step_rows;   /* the published step's rows */
    int                     phase;      /* the published generation's items: PH_LANES or PH_UPDATE */
    int                     upd_sum;    /* PH_UPDATE: add the lanes first (no reduce) */
    double                  upd_rows;   /* PH_UPDATE: the step's rows over all ranks */
    long                    upd_step;   /* PH_UPDATE: Adam's step number, from 1 */
    int                     failed;     /* the reduce's error code; written by thread 0 */
    kiln_err_t             *err;
    mlp_ws_t                ws[KM_MLP_LANES];
} fit_ctx_t;

typedef struct {
    fit_ctx_t *ctx;
    int        tid;
} fit_arg_t;

/* floor(a * n_rank / n_total) for a <= n_total, without overflow while
 * n_total < 2^32: this rank's share of the first a rows of an epoch. */
static size_t share(size_t a, size_t n_rank, size_t n_total)
{
    return (a / n_total) * n_rank + ((a % n_total) * n_rank) / n_total;
}

/* grad_sum[lo, hi) = the used lanes' gradients, added in lane order. */
static void sum_lanes(fit_ctx_t *c, size_t lo, size_t hi)
{
    const size_t P = c->m->n_params;
    double *restrict gs = c->grad_sum;
    for (size_t q = lo; q < hi; q++)
        gs[q] = 0.0;
    for (int lane = 0; lane < KM_MLP_LANES; lane++) {
        if (!c->lane_used[lane])
            continue;
        const float *restrict g = c->lane_grad + (size_t)lane * P;
        for (size_t q = lo; q < hi; q++)
            gs[q] += (double)g[q];
    }
}

/* Adam on w[a, b), all weights (l2 > 0) or all biases (l2 = 0) of a layer;
 * one straight loop so it vectorises, sqrt and division included. */
static void adam_segment(fit_ctx_t *c, size_t a, size_t b, double l2, double inv_rows, double lr_t)
{
    const double b1 = c->p->beta1, b2 = c->p->beta2, eps = c->p->eps;
    float *restrict w = c->m->params;
    const double *restrict gs = c->grad_sum;
    double *restrict am = c->adam_m, *restrict av = c->adam_v;
    for (size_t q = a; q < b; q++) {
        const double g = (gs[q] + l2 * (double)w[q]) * inv_rows;
        am[q] = b1 * am[q] + (1.0 - b1) * g;
        av[q] = b2 * av[q] + (1.0 - b2) * g * g;
        w[q] = (float)((double)w[q] - lr_t * am[q] / (sqrt(av[q]) + eps));
    }
}

/* Adam on the weights [lo, hi) of the flat vector, from grad_sum over rows;
 * then the transposed copy of what changed. */
static void adam_range(fit_ctx_t *c, size_t lo, size_t hi, double rows, long step)
{
    const km_mlp_t *m = c->m;
    const km_mlp_params_t *p = c->p;
    const double lr_t = p->lr * sqrt(1.0 - pow(p->beta2, (double)step)) /
                        (1.0 - pow(p->beta1, (double)step));
    for (int l = 0; l < m->n_layers; l++) {
        const size_t K = (size_t)m->size[l], N = (size_t)m->size[l + 1];
        const size_t base = m->w_off[l], end_w = base + K * N, end_b = end_w + N;
        size_t a = lo > base ? lo : base, b = hi < end_w ? hi : end_w;
        if (a < b) {
            adam_segment(c, a, b, p->l2, 1.0 / rows, lr_t);
            if (l > 0)   /* only W_1.. are read transposed (no delta for the inputs) */
                mlp_transpose_range(m->params + base, c->wt + base, K, N, a - base, b - base);
        }
        a = lo > end_w ? lo : end_w;
        b = hi < end_b ? hi : end_b;
        if (a < b)
            adam_segment(c, a, b, 0.0, 1.0 / rows, lr_t);
    }
}

/* The update after a step's lanes is cut into UPD_PARTS ranges of the flat
 * weight vector (whole 16-weight groups): each adds the lanes over its range
 * in lane order (upd_sum) and runs Adam on it, so, like a lane, a part gives
 * the same bytes whichever thread takes it. */
#define UPD_PARTS KM_MLP_LANES
enum { PH_LANES, PH_UPDATE };

static void update_part(fit_ctx_t *c, size_t part)
{
    const size_t P = c->m->n_params, groups = (P + 15) / 16;
    const size_t lo = part * groups / UPD_PARTS * 16, hi0 = (part + 1) * groups / UPD_PARTS * 16;
    const size_t hi = hi0 < P ? hi0 : P;
    if (lo >= hi)
        return;
    if (c->upd_sum)
        sum_lanes(c, lo, hi);
    adam_range(c, lo, hi, c->upd_rows, c->upd_step);
}

static void lane_grad(fit_ctx_t *c, size_t lane, mlp_ws_t *ws)
{
    const size_t P = c->m->n_params, rows = c->step_rows, d = c->data->d;
    const size_t a = c->step_lo + lane * rows / KM_MLP_LANES;
    const size_t b = c->step_lo + (lane + 1) * rows / KM_MLP_LANES;
    float *g = c->lane_grad + lane * P;
    c->lane_used[lane] = a < b;
    /* The rows are scattered over x (a cache and TLB miss each): ask now for
     * the rows this lane will have in the next step of the epoch (this
     * thread, or the other core through the shared cache, will likely find
     * them there), so that their misses overlap this step's products. */
    const size_t next_lo = c->step_lo + c->step_rows;
    const size_t na = next_lo + lane * rows / KM_MLP_LANES;
    const size_t nb0 = next_lo + (lane + 1) * rows / KM_MLP_LANES;
    const size_t nb = nb0 < c->data->n ? nb0 : c->data->n;
    for (size_t r = na; r < nb; r++) {
        const size_t row_id = c->perm[r];
        const char *row = (const char *)(c->data->x + row_id * d);
        for (size_t o = 0; o < d * sizeof(float); o += 64)
            __builtin_prefetch(row + o);
        __builtin_prefetch(c->data->n_classes ? (const void *)(c->data->y + row_id)
                                              : (const void *)(c->data->target + row_id));
    }
    for (size_t r = a; r < b; r += MLP_CHUNK_ROWS)
        mlp_chunk_grad(c->m, c->m->params, c->wt, ws, c->data, c->perm + r,
                   b - r < MLP_CHUNK_ROWS ? b - r : MLP_CHUNK_ROWS, g, r == a, 0);
}

/* Claims and does items (lanes or update parts) of generation gen until none
 * is left.  The ticket's low bits mark the claimed items.  Thread tid first
 * takes its own share (items [tid*L/T, (tid+1)*L/T)), the same every step,
 * so a lane's gradient, and the Adam moments of an update part, stay in that
 * core's cache; then it takes what is left from the far end, so a late thread
 * costs the others only its unstarted items. */
static void work_lanes(fit_ctx_t *c, uint64_t gen, int tid, mlp_ws_t *ws)
{
    const int T = c->threads, own_lo = tid * KM_MLP_LANES / T, own_hi = (tid + 1) * KM_MLP_LANES / T;
    int order[KM_MLP_LANES], n = 0;
    for (int i = own_lo; i < own_hi; i++)
        order[n++] = i;
    for (int i = KM_MLP_LANES - 1; i >= 0; i--)
        if (i < own_lo || i >= own_hi)
            order[n++] = i;
    uint64_t t = atomic_load(&c->sync.ticket);
    for (int k = 0; k < KM_MLP_LANES; k++) {
        const int item = order[k];
        const uint64_t bit = (uint64_t)1 << item;
        for (;;) {
            if ((t >> 32) != gen)
                return;
            if (t & bit)
                break;
            if (!atomic_compare_exchange_weak(&c->sync.ticket, &t, t | bit))
                continue;
            if (c->phase == PH_LANES)   /* written before this generation's ticket */
                lane_grad(c, (size_t)item, ws);
            else
                update_part(c, (size_t)item);
            atomic_fetch_add(&c->sync.lanes_done, 1);
            t = atomic_load(&c->sync.ticket);
            break;
        }
    }
}

/* Helper threads: wait for a new generation (spin, then sleep), work it. */
static void *fit_thread(void *argp)
{
    fit_arg_t *a = argp;
    fit_ctx_t *c = a->ctx;
    mlp_sync_t *sy = &c->sync;
    uint64_t seen = 0;
    for (;;) {
        uint64_t gen = atomic_load(&sy->ticket) >> 32;
        for (int spins = 0; gen == seen && !atomic_load(&sy->quit) && spins < 4000; spins++) {
            cpu_relax();
            gen = atomic_load(&sy->ticket) >> 32;
        }
        if (gen == seen && !atomic_load(&sy->quit)) {
            pthread_mutex_lock(&sy->lock);
            atomic_fetch_add(&sy->sleepers, 1);
            while ((gen = atomic_load(&sy->ticket) >> 32) == seen && !atomic_load(&sy->quit))
                pthread_cond_wait(&sy->wake, &sy->lock);
            atomic_fetch_sub(&sy->sleepers, 1);
            pthread_mutex_unlock(&sy->lock);
        }
        if (atomic_load(&sy->quit))
            return NULL;
        work_lanes(c, gen, a->tid, &c->ws[a->tid]);
        seen = gen;
    }
}

static void wake_helpers(mlp_sync_t *sy)
{
    if (atomic_load(&sy->sleepers) > 0) {
        pthread_mutex_lock(&sy->lock);
        pthread_cond_broadcast(&sy->wake);
        pthread_mutex_unlock(&sy->lock);
    }
}

/* Publishes generation gen (its phase and inputs written before), works its
 * items beside the helpers and waits until all are done. */
static void run_generation(fit_ctx_t *c, uint64_t gen)
{
    mlp_sync_t *sy = &c->sync;
    atomic_store(&sy->lanes_done, 0);
    atomic_store(&sy->ticket, gen << 32);
    wake_helpers(sy);
    work_lanes(c, gen, 0, &c->ws[0]);
    for (int spins = 0; atomic_load(&sy->lanes_done) < KM_MLP_LANES; spins++) {
        if (spins < 4000)
            cpu_relax();
        else
            sched_yield();   /* a helper lost its core mid-item */
    }
}

/* Thread 0: epochs and steps; publishes each step, works lanes beside the
 * helpers, then (with a reduce: adds the lanes and reduces) publishes the
 * update parts. */
static void fit_loop(fit_ctx_t *c)
{
    const size_t P = c->m->n_params, n_local = c->data->n;
    uint64_t gen = 0;
    long step = 0;
    for (int epoch = 0; epoch < c->p->epochs; epoch++) {
        km_rng_shuffle(&c->rng, c->perm, n_local);
        for (size_t s = 0; s < c->steps; s++) {
            const size_t first = s * c->batch;
            const size_t last = first + c->batch < c->n_total ? first + c->batch : c->n_total;
            c->step_lo = share(first, n_local, c->n_total);
            c->step_rows = share(last, n_local, c->n_total) - c->step_lo;
            c->phase = PH_LANES;
            run_generation(c, ++gen);   /* publishes step_lo, step_rows */
            step++;
            double step_rows = (double)c->step_rows;
            c->upd_sum = 1;
            if (c->reduce) {
                sum_lanes(c, 0, P);
                c->grad_sum[P] = step_rows;
                int rc = c->reduce->sum(c->reduce->ud, c->grad_sum, P + 1, c->err);
                if (rc < 0) {
                    c->failed = rc;
                    return;
                }
                step_rows = c->grad_sum[P];
                c->upd_sum = 0;
            }
            if (step_rows > 0) {
                c->phase = PH_UPDATE;
                c->upd_rows = step_rows;
                c->upd_step = step;
                run_generation(c, ++gen);
            }
        }
    }
}

/* Glorot uniform as scikit-learn's _init_coef for ReLU nets: W and b of each
 * layer ~ U(-sqrt(6/(fan_in+fan_out)), +...), drawn W row-major then b. */
static void glorot_init(km_mlp_t *m, km_rng_t *rng)
{
    for (int l = 0; l < m->n_layers; l++) {
        const size_t K = (size_t)m->size[l], N = (size_t)m->size[l + 1];
        const double bound = sqrt(6.0 / (double)(K + N));
        float *w = m->params + m->w_off[l];
        for (size_t q = 0; q < K * N + N; q++)
            w[q] = (float)(-bound + 2.0 * bound * km_rng_uniform(rng));
    }
}

/* Checks this rank's data and, with a reduce, that all ranks agree (one sum
 * of fixed size, so a rank with bad data cannot leave the others waiting in
 * a second one); then that every class has rows somewhere.  *n_total: rows
 * over all ranks. */
static int check_all(const km_data_t *data, const km_reduce_t *rd, size_t *n_total,
                     kiln_err_t *err)
{
    double *counts = NULL;
    int rc = 0;
    const int nc = data && data->n_classes >= 2 && data->n_classes <= KM_MLP_MAX_CLASSES
                       ? data->n_classes : 0;
    if (nc && !(counts = kiln_calloc((size_t)nc, sizeof *counts)))
        return kiln_err_set(err, KILN_ENOMEM, "mlp: no memory for %d class counts", nc);
    int local = mlp_check_data(data, counts, err);
    *n_total = local == 0 ? data->n : 0;
    if (rd) {
        const double d = local == 0 ? (double)data->d : 0, k = local == 0 ? (double)nc : 0;
        double agree[6] = {local == 0, local == 0 ? (double)data->n : 0, d, k, d * d, k * k};
        if ((rc = rd->sum(rd->ud, agree, 6, err)) < 0)
            goto out;
        const double R = rd->n_ranks;
        if (local < 0) {
            rc = local;
            goto out;
        }
        if (agree[0] != R) {
            rc = kiln_err_set(err, KILN_EINVAL, "mlp: %g of %d ranks refused their data",
                              R - agree[0], rd->n_ranks);
            goto out;
        }
        /* all equal iff (sum v)^2 == R * sum v^2 (Cauchy-Schwarz) */
        if (agree[2] * agree[2] != R * agree[4] || agree[3] * agree[3] != R * agree[5]) {
            rc = kiln_err_at(err, KILN_ESHAPE, "data.d", "mlp: ranks disagree on d or n_classes "
                             "(this rank: d %zu, %d classes)", data->d, data->n_classes);
            goto out;
        }
        if (agree[1] > (double)UINT32_MAX) {
            rc = kiln_err_at(err, KILN_ESHAPE, "data.n", "mlp: %g rows over all ranks, at most %u",
                             agree[1], UINT32_MAX);
            goto out;
        }
        *n_total = (size_t)agree[1];
        if (nc && (rc = rd->sum(rd->ud, counts, (size_t)nc, err)) < 0)
            goto out;
    } else if ((rc = local) < 0) {
        goto out;
    }
    for (int k = 0; k < nc; k++)
        if (counts[k] == 0) {
            rc = kiln_err_at(err, KILN_EINVAL, "data.y", "mlp: class %d of %d has no rows%s", k, nc,
                             nc == 2 ? " (one class only)" : "");
            goto out;
        }
out:
    kiln_free(counts);
    return rc;
}

static void ctx_free(fit_ctx_t *c)
{
    for (int t = 0; t < KM_MLP_LANES; t++)
        mlp_ws_free(&c->ws[t]);
    kiln_free(c->perm);
    kiln_free_aligned(c->wt);
    kiln_free_aligned(c->lane_grad);
    kiln_free(c->grad_sum);
    kiln_free(c->adam_m);
    kiln_free(c->adam_v);
    if (c->m) {   /* set once the barrier's lock and condition exist */
        pthread_mutex_destroy(&c->sync.lock);
        pthread_cond_destroy(&c->sync.wake);
    }
}

int km_mlp_fit(const km_data_t *data, const km_mlp_params_t *p, const km_reduce_t *reduce,
               km_mlp_t **out, kiln_err_t *err)
{
    fit_ctx_t c;
    memset(&c, 0, sizeof c);
    pthread_t th[KM_MLP_LANES];
    fit_arg_t args[KM_MLP_LANES];
    km_mlp_t *m = NULL;
    int rc, started = 0;
    if (!out)
        return kiln_err_at(err, KILN_EINVAL, "out", "mlp: out is NULL");
    *out = NULL;
    if ((rc = mlp_check_params(p, err)) < 0)
        return rc;
    if (reduce && !reduce->sum)
        reduce = NULL;
    size_t n_total = 0;
    if ((rc = check_all(data, reduce, &n_total, err)) < 0)
        return rc;

    if (!(m = mlp_model_new((int)data->d, p->hidden, p->n_hidden, data->n_classes)))
        return kiln_err_set(err, KILN_ENOMEM, "mlp: no memory for the model");
    const size_t P = m->n_params;
    pthread_mutex_init(&c.sync.lock, NULL);
    pthread_cond_init(&c.sync.wake, NULL);
    c.m = m;
    c.data = data;
    c.p = p;
    c.reduce = reduce;
    c.err = err;
    c.n_total = n_total;
    c.batch = (size_t)p->batch < n_total ? (size_t)p->batch : n_total;
    c.steps = (n_total + c.batch - 1) / c.batch;
    c.threads = p->threads < KM_MLP_LANES ? p->threads : KM_MLP_LANES;
    c.perm = kiln_malloc(data->n * sizeof *c.perm);
    c.wt = kiln_malloc_aligned(P * sizeof *c.wt);
    c.lane_grad = kiln_malloc_aligned((size_t)KM_MLP_LANES * P * sizeof *c.lane_grad);
    c.grad_sum = kiln_calloc(P + 1, sizeof *c.grad_sum);
    c.adam_m = kiln_calloc(P, sizeof *c.adam_m);
    c.adam_v = kiln_calloc(P, sizeof *c.adam_v);
    if (!c.perm || !c.wt || !c.lane_grad || !c.grad_sum || !c.adam_m || !c.adam_v) {
        rc = kiln_err_set(err, KILN_ENOMEM, "mlp: no memory for training state (%zu weights)", P);
        goto out;
    }
    for (int t = 0; t < c.threads; t++)
        if (mlp_ws_init(&c.ws[t], m) < 0) {
            rc = kiln_err_set(err, KILN_ENOMEM, "mlp: no memory for thread %d's activations", t);
            goto out;
        }
    km_rng_seed(&c.rng, p->seed);
    glorot_init(m, &c.rng);
    mlp_transpose_weights(m, m->params, c.wt);

    /* A thread that cannot start is not needed: the result does not depend
     * on how many run, so the others take its lanes. */
    for (started = 1; started < c.threads; started++) {
        args[started] = (fit_arg_t){&c, started};
        if (pthread_create(&th[started], NULL, fit_thread, &args[started]) != 0)
            break;
    }
    c.threads = started;
    fit_loop(&c);
    atomic_store(&c.sync.quit, 1);
    pthread_mutex_lock(&c.sync.lock);
    pthread_cond_broadcast(&c.sync.wake);
    pthread_mutex_unlock(&c.sync.lock);
    for (int t = 1; t < started; t++)
        pthread_join(th[t], NULL);
    if (c.failed) {
        rc = c.failed;
        goto out;
    }
    *out = m;
    m = NULL;
    rc = 0;
out:
    ctx_free(&c);
    km_mlp_free(&m);
    return rc;
}
