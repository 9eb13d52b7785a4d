/* gpu_ranks.c - NCCL over MPI ranks, one GPU each (gpu_ranks.h). */
#include "gpu_ranks.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/kiln_alloc.h"
#include "../kernels/kernels_cuda.h"

struct kc_gpu_rank {
    int        device;
    kc_ctx_t  *ctx;
    kc_nccl_t *comm;
};

static int local_rank(void)
{
    static const char *const vars[] = {"OMPI_COMM_WORLD_LOCAL_RANK", "SLURM_LOCALID",
                                       "PMIX_LOCAL_RANK"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
        const char *v = getenv(vars[i]);
        if (v && *v)
            return atoi(v);
    }
    return 0;
}

void kc_gpu_rank_close(kc_gpu_rank_t **gp)
{
    if (!gp || !*gp)
        return;
    kc_nccl_destroy(&(*gp)->comm);
    kc_ctx_destroy(&(*gp)->ctx);
    kiln_free(*gp);
    *gp = NULL;
}

int kc_gpu_rank_open(kc_coll_t *c, kc_gpu_rank_t **out, char *why, size_t cap, kiln_err_t *err)
{
    const int rank = kc_coll_rank(c), n = kc_coll_size(c);
    char id[KC_NCCL_ID_BYTES];
    kiln_err_t gerr;
    int rc, n_gpus = 0, all = 0;
    *out = NULL;
    kiln_err_clear(&gerr);
    memset(id, 0, sizeof id);
    kc_gpu_rank_t *g = kiln_calloc(1, sizeof *g);
    int ok = g != NULL;
    if (!ok)
        kiln_err_set(&gerr, KILN_ENOMEM, "out of memory");
    if (ok && (kc_device_count(&n_gpus, &gerr) < 0 || n_gpus == 0)) {
        if (!gerr.msg[0])
            kiln_err_set(&gerr, KILN_EUNSUPPORTED, "no GPU on this node");
        ok = 0;
    }
    if (ok) {
        g->device = local_rank() % n_gpus;
        ok = kc_ctx_new(g->device, &g->ctx, &gerr) == 0;
    }
    if (ok && rank == 0)
        ok = kc_nccl_id_new(id, &gerr) == 0;
    /* First agreement: a rank without a GPU (or rank 0 without an id) means
     * nobody calls NCCL's init, which would wait for it forever. */
    if ((rc = kc_coll_all(c, ok, &all, err)) < 0)
        goto fail;
    if (!all) {
        snprintf(why, cap, ok ? "another rank has no GPU path" : "rank %d: %.200s", rank, gerr.msg);
        goto fallback;
    }
    if ((rc = kc_coll_bcast(c, id, sizeof id, 0, err)) < 0)
        goto fail;
    ok = kc_nccl_init(g->ctx, n, rank, id, &g->comm, &gerr) == 0;
    /* Second agreement: NCCL refused on some rank (two ranks on one GPU, say). */
    if ((rc = kc_coll_all(c, ok, &all, err)) < 0)
        goto fail;
    if (!all) {
        snprintf(why, cap, ok ? "NCCL failed on another rank" : "rank %d: %.200s", rank, gerr.msg);
        goto fallback;
    }
    *out = g;
    return 0;
fallback:
    kc_gpu_rank_close(&g);
    return 0;
fail:
    kc_gpu_rank_close(&g);
    return rc;
}

int kc_gpu_rank_device(const kc_gpu_rank_t *g)
{
    return g->device;
}

km_reduce_t kc_gpu_rank_reduce(kc_gpu_rank_t *g)
{
    km_reduce_t r;
    kc_nccl_reduce(g->comm, &r);
    return r;
}
