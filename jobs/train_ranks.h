/* train_ranks.h - the train job's task on one rank of a data-parallel run
 * (and, with no reduce, the whole task in one process: jobs/type_train.c's
 * run_task is this with reduce NULL).
 *
 * Every rank loads the whole dataset and makes the same time split
 * (trainset.h), then trains on its shard of the training rows, cut by
 * stride: rank r of R takes train rows r, r+R, r+2R, ... of the split's
 * train index list (itself in the file's row order), so every rank gets
 * rows from every asset and every stretch of time, and the shard sizes differ
 * by at most one.  The scaler and the model are fitted through reduce, so all
 * ranks end with the global scaler and the same model; every rank evaluates
 * the same full validation set (the held-out rows are not sharded), and
 * rank 0 alone writes the .kmodel.  With one rank the shard is the whole
 * list: the model file is byte for byte what the single-process run writes. */
#ifndef KILN_JOBS_TRAIN_RANKS_H
#define KILN_JOBS_TRAIN_RANKS_H

#include <stdint.h>

#include "../core/kiln_err.h"
#include "../kernels/models.h"
#include "jobspec.h"
#include "model.h"
#include "trainset.h"

/* The train job's parsed spec: what jb_type_train's validate makes (its
 * `parsed`), read-only afterwards. */
typedef struct {
    char        input[4096];
    char        name[JB_SPEC_NAME_MAX];
    const jb_model_kind_t *kind;
    void       *params;
    jb_learn_t  learn;
    double      fraction;
    double      min_accuracy, min_f1, min_auc, max_rmse, max_mae;   /* NAN: no gate */
    uint64_t    seed;
    int         threads;
    int         ranks;      /* resources.ranks: the ranks a distributed run must have */
} jb_train_spec_t;

/* Runs the train task on this rank.  parsed_train_spec: a jb_train_spec_t
 * from jb_type_find("train")->validate.  reduce: NULL (or a NULL sum) for one
 * process; else the collective over all ranks (cluster/collective.h), whose
 * n_ranks must equal the spec's resources.ranks (KILN_ESPEC naming
 * "resources.ranks" on every rank otherwise, before any sum).  out_path: the
 * model file, written by rank 0 only (temp name, then rename); other ranks
 * write nothing.  Every rank returns the same code for an error that comes
 * from the data or the spec (each rank loads the same file; the kernels
 * fail all ranks together); a rank's own failure (out of memory, rank 0's
 * write) is that rank's alone, and a caller with ranks still waiting must
 * abort the run (kc_coll_abort). */
int jb_train_rank_run(const void *parsed_train_spec, const km_reduce_t *reduce,
                      const char *out_path, kiln_err_t *err);

/* Where a train task fits: gpu_device >= 0 asks for that CUDA device (the
 * kinds with a GPU fit: logreg, mlp); device comes back naming where the
 * fit ran ("GPU 0", or "CPU, N threads" with the reason the GPU was not
 * used), for the task's log. */
typedef struct {
    int  gpu_device;
    char device[320];
} jb_train_where_t;

/* jb_train_rank_run with a choice of device (where may be NULL: the CPU). */
int jb_train_rank_run_on(const void *parsed_train_spec, const km_reduce_t *reduce,
                         jb_train_where_t *where, const char *out_path, kiln_err_t *err);

#endif
