/* logreg.h - L2-penalized logistic regression (kernels/cpu/logreg.c): binary
 * (one weight row, sigmoid) and multiclass (one row per class, multinomial
 * softmax), fitted by full-batch L-BFGS.  Follows the rules of models.h.
 *
 * The objective is scikit-learn's (LogisticRegression, lbfgs, 1.5):
 *     F(w) = ( sum_i loss_i(w) + l2/2 * |coef|^2 ) / n
 * where loss_i is the log-loss of row i, coef are the weights without the
 * intercepts (never penalized) and n is the number of rows over all ranks.
 * scikit-learn minimizes C * sum_i loss_i + |coef|^2 / 2, which has the same
 * minimizer, so  l2 = 1 / C  reproduces LogisticRegression(C=C).  tol is
 * scikit-learn's too: stop when max_j |dF/dw_j| <= tol (scipy's pgtol), or
 * when F stops moving ((F_old - F) / max(|F_old|, |F|, 1) <= 64 eps, its
 * ftol), or after max_iter iterations (not an error, as in scikit-learn).
 *
 * Weight layout (km_logreg_weights, km_logreg_loss_grad): n_rows rows of d+1
 * doubles, row r = [coef_r[0..d), intercept_r]; n_rows = 1 for two classes
 * (the row scores class 1), n_classes otherwise.  From a zero start the
 * multiclass intercepts keep summing to 0, as scikit-learn's do.
 *
 * Threads: rows are cut into fixed chunks of KM_LOGREG_CHUNK_ROWS; each
 * chunk's gradient is summed in double, and chunk sums are added in chunk
 * order, so the model does not depend on the thread count.  The fit draws no
 * random numbers: seed is recorded for the models.h contract only.  The
 * model's bits are the same for every run and thread count of one build;
 * builds for targets with and without FMA differ in the last bits.
 *
 * Speed: one pass over x per evaluation (dot products, loss and gradient
 * fused; float32 x widened to double once per row); 1,000,000 x 64 rows
 * take ~13 ms per evaluation on 2 threads, about the memory bandwidth. */
#ifndef KILN_KERNELS_LOGREG_H
#define KILN_KERNELS_LOGREG_H

#include <stddef.h>
#include <stdint.h>

#include "models.h"

#define KM_LOGREG_CHUNK_ROWS  4096
#define KM_LOGREG_MAX_CLASSES 256
#define KM_LOGREG_MAX_THREADS 256
#define KM_LOGREG_MAX_FEATURES ((size_t)1 << 20)

typedef struct km_logreg km_logreg_t;

typedef struct {
    double   l2;        /* > 0; = 1 / C of scikit-learn's LogisticRegression */
    int      max_iter;  /* >= 1 L-BFGS iterations */
    double   tol;       /* >= 0, on max |gradient| of the mean objective F */
    int      threads;   /* 1 .. KM_LOGREG_MAX_THREADS */
    uint64_t seed;      /* unused by the fit (deterministic); kept for models.h */
} km_logreg_params_t;

/* scikit-learn's defaults: l2 = 1 (C = 1), max_iter = 100, tol = 1e-4; one
 * thread, seed 0. */
km_logreg_params_t km_logreg_defaults(void);

/* Fits data->x [n x d] (d <= KM_LOGREG_MAX_FEATURES) with labels data->y in
 * [0, n_classes) (data->target is ignored).  Besides its result the fit
 * holds threads x 8 x d doubles of scratch and a few doubles per chunk.  reduce: NULL for one process, else every rank passes its own rows
 * and the gradient is summed over ranks each evaluation (models.h); all ranks
 * end with the same model.  A rank's bad data (non-finite x, label out of
 * range) is reported to every rank through the first sum, so no rank is left
 * waiting in sum(): that rank gets the specific error, the others
 * KILN_EINVAL "another rank ...".  On success *out is a new model the caller
 * owns (km_logreg_free).  Errors: KILN_EINVAL (params, shapes, labels, a class
 * with no rows), KILN_ENONFINITE (names the row), KILN_ENOMEM, or what
 * reduce->sum returned. */
int km_logreg_fit(const km_data_t *data, const km_logreg_params_t *p,
                  const km_reduce_t *reduce, km_logreg_t **out, kiln_err_t *err);

/* The L-BFGS km_logreg_fit runs (kernels/cpu/logreg_lbfgs.c), over any
 * smooth objective: fg(ud, w, &f, g, err) fills F(w) and its gradient g[n]
 * (0, or an error that stops the search).  Starts from w = 0; w[n] gets the
 * minimizer; *converged 1 when the gradient's max norm fell to tol or F
 * stopped falling.  The CUDA fit (kernels_cuda.h, kc_logreg_fit) runs it
 * over its GPU objective. */
typedef int (*km_objective_fn)(void *ud, const double *w, double *f, double *g,
                               kiln_err_t *err);
int km_lbfgs_minimize(km_objective_fn fg, void *ud, size_t n, double *w, int max_iter,
                      double tol, int *n_iter, int *converged, kiln_err_t *err);

/* Class probabilities for x [n x d]: scores [n x n_outputs] (rows sum to 1),
 * pred [n] the most probable class (lowest id on a tie) when not NULL.
 * KILN_ENONFINITE names a row holding NaN or Inf. */
int km_logreg_predict(const km_logreg_t *m, const float *x, size_t n, float *scores,
                      int32_t *pred, kiln_err_t *err);

/* n_classes: a probability per class, two for a binary model. */
size_t km_logreg_n_outputs(const km_logreg_t *m);
size_t km_logreg_n_features(const km_logreg_t *m);
/* L-BFGS iterations the fit ran, and whether it stopped on tol/ftol (1) or
 * on max_iter or a failed line search (0). */
int    km_logreg_n_iter(const km_logreg_t *m, int *converged);
/* The weights (layout above), borrowed: valid until km_logreg_free. */
const double *km_logreg_weights(const km_logreg_t *m);
/* Weight count for d features and n_classes: rows * (d + 1). */
size_t km_logreg_n_weights(size_t d, int n_classes);

/* Appends the model to out (little-endian, versioned); KILN_ENOMEM if the
 * buffer could not grow.  load refuses a wrong magic, version, size, trailing
 * bytes or a non-finite weight with KILN_EFORMAT; *out is a new model. */
int  km_logreg_save(const km_logreg_t *m, km_buf_t *out, kiln_err_t *err);
int  km_logreg_load(const void *bytes, size_t len, km_logreg_t **out, kiln_err_t *err);
void km_logreg_free(km_logreg_t **m);

/* F(w) and its gradient over data (one process, p->l2 and p->threads; the
 * other params are ignored) at w [km_logreg_n_weights(d, n_classes)]: what
 * the fit minimizes, exposed for a numerical gradient check. */
int km_logreg_loss_grad(const km_data_t *data, const km_logreg_params_t *p, const double *w,
                        double *loss, double *grad, kiln_err_t *err);

#endif
