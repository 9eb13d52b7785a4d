/* logreg_impl.h - what the logreg files share inside kernels/cpu (not
 * public): the model struct, the row passes over threads (logreg_eval.c),
 * the objective over ranks (logreg_obj.c) and L-BFGS (logreg_lbfgs.c);
 * logreg.c holds the model, fit, predict and the bytes. */
#ifndef KILN_KERNELS_CPU_LOGREG_IMPL_H
#define KILN_KERNELS_CPU_LOGREG_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "../logreg.h"

struct km_logreg {
    size_t  d;
    int     n_classes;
    int     n_iter, converged;
    double  l2;
    double *w;              /* km_logreg_n_weights(d, n_classes) */
};

#define LR_MAGIC      0x52474C4Bu   /* "KLGR" as little-endian bytes */
#define LR_VERSION    1u
#define LBFGS_M       10            /* correction pairs, as scipy's maxcor */
#define LS_MAX_EVALS  50            /* scikit-learn passes maxls = 50 */
#define LS_C1         1e-4          /* sufficient decrease */
#define LS_C2         0.9           /* curvature (N&W's value for quasi-Newton) */
#define BLOCK_ROWS    8             /* rows sharing one pass over w and g */

/* ---- row passes (logreg_eval.c) ----------------------------------------- */

typedef struct {
    const float   *x;
    const int32_t *y;
    size_t         n, d;
    int            n_classes;
    size_t         n_w;         /* weights; a chunk slot is n_w + 1 (loss last) */
    size_t         n_chunks;
    int            threads;
    const double  *w;           /* the point being evaluated */
    double        *partial;     /* n_chunks x (n_w + 1) */
    double        *scratch;     /* per thread: BLOCK_ROWS x d, a block of x as double */
    size_t        *bad_row;     /* validation: per chunk, first bad row + 1 */
    int           *bad_kind;    /* 1 non-finite x, 2 label out of range */
} lr_eval_t;

/* Runs chunk(ctx, c, thread) for c in [0, n_chunks) on up to `threads`
 * threads; each chunk must write only its own slot. */
void lr_run(size_t n_chunks, int threads, void (*chunk)(void *, size_t, int), void *ctx);
/* out[0..n_w) = gradient sum, out[n_w] = loss sum over this rank's rows at w,
 * chunk sums added in chunk order. */
void lr_eval_local(lr_eval_t *ev, const double *w, double *out);
/* Validation of chunk c's rows into bad_row[c] / bad_kind[c] (an lr_run chunk). */
void lr_check_chunk(void *ctx, size_t c, int thread);
/* 0 when x[0..d) holds NaN or Inf. */
int lr_row_finite(const float *x, size_t d);
/* One row as the passes see it: xd = x widened to double; w . xd. */
void   lr_widen_row(const float *x, size_t d, double *xd);
double lr_dot_row(const double *xd, const double *w, size_t d);

/* ---- the objective F over all ranks (logreg_obj.c) ---------------------- */

typedef struct {
    lr_eval_t          ev;
    const km_reduce_t *reduce;
    double             n_total;    /* rows over all ranks */
    double             l2;
    double            *buf;        /* n_w + 1: the rank sums, then the global ones */
} lr_obj_t;

/* Checks data and params, this rank's rows and the ranks' agreement, and
 * allocates the evaluator; on error nothing is left to free. */
int  lr_obj_init(lr_obj_t *o, const km_data_t *data, const km_logreg_params_t *p,
                 const km_reduce_t *reduce, kiln_err_t *err);
/* F(w) and grad F(w) (logreg.h); every rank calls sum() once. */
int  lr_obj_eval(lr_obj_t *o, const double *w, double *f, double *g, kiln_err_t *err);
void lr_obj_free(lr_obj_t *o);

/* ---- L-BFGS (logreg_lbfgs.c) -------------------------------------------- */

/* Minimizes F from w = 0; w[n_w] receives the result. */
int lr_lbfgs(lr_obj_t *o, double *w, int max_iter, double tol, int *n_iter, int *converged,
             kiln_err_t *err);

#endif
