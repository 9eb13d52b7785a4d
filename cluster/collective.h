/* collective.h - collectives for data-parallel training over MPI ranks on
 * CPU (DESIGN.md, "cluster/"): a process started by mpirun joins the world
 * here and hands the model kernels a km_reduce_t (kernels/models.h) whose
 * sum() is an MPI allreduce.  Jobs call this module, never MPI directly.
 *
 * Threads: MPI is initialised at MPI_THREAD_FUNNELED: only the thread that
 * called kc_coll_init may call kc_coll_* (the model kernels call sum() from
 * their calling thread only; their helper threads never touch MPI). */
#ifndef KC_COLLECTIVE_H
#define KC_COLLECTIVE_H

#include "../core/kiln_err.h"
#include "../kernels/models.h"

typedef struct kc_coll kc_coll_t;

/* MPI_Init_thread(argc, argv, FUNNELED) once per process, then a private
 * duplicate of MPI_COMM_WORLD whose errors return (MPI_ERRORS_RETURN) rather
 * than abort.  *c: new, owned by the caller, released by kc_coll_finalize.
 * Errors: KILN_EIO with MPI's own message (no MPI, thread level too low),
 * KILN_ENOMEM. */
int kc_coll_init(int *argc, char ***argv, kc_coll_t **c, kiln_err_t *err);

/* This process's rank in [0, size) and the number of ranks. */
int kc_coll_rank(const kc_coll_t *c);
int kc_coll_size(const kc_coll_t *c);

/* The kernels' rank-sum hook over c: sum(ud, buf, n, err) is
 * MPI_Allreduce(MPI_IN_PLACE, buf, n, MPI_DOUBLE, MPI_SUM) in chunks of at
 * most INT_MAX doubles; a failure is KILN_EIO with MPI_Error_string's text.
 * Every rank must call sum() the same times with the same n (models.h).  The
 * result borrows c: it is valid until kc_coll_finalize. */
km_reduce_t kc_coll_reduce(kc_coll_t *c);

/* MPI_Bcast of bytes at buf from rank root to every rank; KILN_EIO as above. */
int kc_coll_bcast(kc_coll_t *c, void *buf, size_t bytes, int root, kiln_err_t *err);

/* *all = 1 on every rank when ok is nonzero on every rank, else 0 (a
 * logical-and allreduce): ranks agree on a path before a collective that
 * one of them could not join. */
int kc_coll_all(kc_coll_t *c, int ok, int *all, kiln_err_t *err);

/* A barrier over all ranks; KILN_EIO as above. */
int kc_coll_barrier(kc_coll_t *c, kiln_err_t *err);

/* Ends every rank's run at once with exit status code (MPI_Abort): for a
 * rank that failed where the others may be waiting in a collective that it
 * will never join.  Does not return. */
void kc_coll_abort(kc_coll_t *c, int code);

/* Frees the communicator and *c, calls MPI_Finalize, sets *c to NULL; NULL
 * or *c == NULL is fine.  Every rank calls it (it is collective). */
void kc_coll_finalize(kc_coll_t **c);

#endif
