/* gbdt_par.c - the gbdt kernels' fork-join: a range cut into one chunk per
 * thread.  Threads are started per call (tens of microseconds), which the
 * callers only pay on work of at least tens of thousands of rows. */
#include <pthread.h>

#include "gbdt_impl.h"

typedef struct {
    void (*fn)(void *ctx, size_t lo, size_t hi);
    void  *ctx;
    size_t lo, hi;
} par_job_t;

static void *par_main(void *arg)
{
    par_job_t *j = arg;
    j->fn(j->ctx, j->lo, j->hi);
    return NULL;
}

void gb_par_for(int n_threads, size_t n, void (*fn)(void *ctx, size_t lo, size_t hi), void *ctx)
{
    if (n_threads > GB_MAX_THREADS)
        n_threads = GB_MAX_THREADS;
    if ((size_t)n_threads > n)
        n_threads = (int)n;
    if (n_threads <= 1) {
        if (n)
            fn(ctx, 0, n);
        return;
    }
    par_job_t job[GB_MAX_THREADS];
    pthread_t tid[GB_MAX_THREADS];
    int started[GB_MAX_THREADS] = {0};
    for (int t = 0; t < n_threads; t++) {
        job[t] = (par_job_t){fn, ctx, n * (size_t)t / (size_t)n_threads,
                             n * (size_t)(t + 1) / (size_t)n_threads};
    }
    for (int t = 1; t < n_threads; t++)
        started[t] = pthread_create(&tid[t], NULL, par_main, &job[t]) == 0;
    fn(ctx, job[0].lo, job[0].hi);
    /* A chunk whose thread did not start runs here: same result, later. */
    for (int t = 1; t < n_threads; t++) {
        if (started[t])
            pthread_join(tid[t], NULL);
        else
            fn(ctx, job[t].lo, job[t].hi);
    }
}
