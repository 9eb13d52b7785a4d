/* collective.c - MPI collectives for data-parallel training (collective.h).
 * The only file of kiln that includes mpi.h. */
#include <limits.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

#include "../core/kiln_alloc.h"
#include "collective.h"

struct kc_coll {
    MPI_Comm comm;      /* a duplicate of MPI_COMM_WORLD, errors return */
    int      rank, size;
};

/* KILN_EIO naming the call and MPI's own text for code. */
static int mpi_fail(kiln_err_t *err, const char *call, int code)
{
    char text[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(code, text, &len) != MPI_SUCCESS || len <= 0)
        snprintf(text, sizeof text, "MPI error %d", code);
    text[len > 0 && len < MPI_MAX_ERROR_STRING ? len : MPI_MAX_ERROR_STRING - 1] = '\0';
    return kiln_err_set(err, KILN_EIO, "mpi: %s: %s", call, text);
}

int kc_coll_init(int *argc, char ***argv, kc_coll_t **c, kiln_err_t *err)
{
    int provided = 0, inited = 0, rc;
    *c = NULL;
    MPI_Initialized(&inited);
    if (!inited) {
        /* MPI_Init's own failures abort under the default handler: there is
         * no communicator yet whose handler we could set. */
        if ((rc = MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided)) != MPI_SUCCESS)
            return mpi_fail(err, "MPI_Init_thread", rc);
    } else {
        MPI_Query_thread(&provided);
    }
    if (provided < MPI_THREAD_FUNNELED) {
        MPI_Finalize();
        return kiln_err_set(err, KILN_EIO, "mpi: thread level %d, FUNNELED (%d) is needed",
                            provided, MPI_THREAD_FUNNELED);
    }
    kc_coll_t *k = kiln_calloc(1, sizeof *k);
    if (!k) {
        MPI_Finalize();
        return kiln_err_set(err, KILN_ENOMEM, "mpi: out of memory");
    }
    k->comm = MPI_COMM_NULL;
    const char *call = "MPI_Comm_set_errhandler";
    if ((rc = MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN)) != MPI_SUCCESS ||
        (call = "MPI_Comm_dup", rc = MPI_Comm_dup(MPI_COMM_WORLD, &k->comm)) != MPI_SUCCESS ||
        (call = "MPI_Comm_set_errhandler",
         rc = MPI_Comm_set_errhandler(k->comm, MPI_ERRORS_RETURN)) != MPI_SUCCESS ||
        (call = "MPI_Comm_rank", rc = MPI_Comm_rank(k->comm, &k->rank)) != MPI_SUCCESS ||
        (call = "MPI_Comm_size", rc = MPI_Comm_size(k->comm, &k->size)) != MPI_SUCCESS) {
        mpi_fail(err, call, rc);
        kc_coll_finalize(&k);
        return KILN_EIO;
    }
    *c = k;
    return 0;
}

int kc_coll_rank(const kc_coll_t *c)
{
    return c->rank;
}

int kc_coll_size(const kc_coll_t *c)
{
    return c->size;
}

/* The km_reduce_t's sum: in place over all ranks, INT_MAX doubles at a time
 * (MPI counts are int). */
static int coll_sum(void *ud, double *buf, size_t n, kiln_err_t *err)
{
    kc_coll_t *c = ud;
    while (n > 0) {
        int count = n > (size_t)INT_MAX ? INT_MAX : (int)n;
        int rc = MPI_Allreduce(MPI_IN_PLACE, buf, count, MPI_DOUBLE, MPI_SUM, c->comm);
        if (rc != MPI_SUCCESS)
            return mpi_fail(err, "MPI_Allreduce", rc);
        buf += count;
        n -= (size_t)count;
    }
    return 0;
}

km_reduce_t kc_coll_reduce(kc_coll_t *c)
{
    km_reduce_t r = {coll_sum, c, c->rank, c->size};
    return r;
}

int kc_coll_bcast(kc_coll_t *c, void *buf, size_t bytes, int root, kiln_err_t *err)
{
    if (bytes > INT_MAX)
        return kiln_err_set(err, KILN_EINVAL, "MPI_Bcast: %zu bytes (at most %d)", bytes,
                            INT_MAX);
    int rc = MPI_Bcast(buf, (int)bytes, MPI_BYTE, root, c->comm);
    return rc == MPI_SUCCESS ? 0 : mpi_fail(err, "MPI_Bcast", rc);
}

int kc_coll_all(kc_coll_t *c, int ok, int *all, kiln_err_t *err)
{
    int mine = ok != 0, every = 0;
    int rc = MPI_Allreduce(&mine, &every, 1, MPI_INT, MPI_LAND, c->comm);
    if (rc != MPI_SUCCESS)
        return mpi_fail(err, "MPI_Allreduce", rc);
    *all = every;
    return 0;
}

int kc_coll_barrier(kc_coll_t *c, kiln_err_t *err)
{
    int rc = MPI_Barrier(c->comm);
    return rc == MPI_SUCCESS ? 0 : mpi_fail(err, "MPI_Barrier", rc);
}

void kc_coll_abort(kc_coll_t *c, int code)
{
    MPI_Abort(c ? c->comm : MPI_COMM_WORLD, code);
    _Exit(code);   /* MPI_Abort does not return; this keeps the contract if it did */
}

void kc_coll_finalize(kc_coll_t **c)
{
    if (!c || !*c)
        return;
    if ((*c)->comm != MPI_COMM_NULL)
        MPI_Comm_free(&(*c)->comm);
    kiln_free(*c);
    *c = NULL;
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized)
        MPI_Finalize();
}
