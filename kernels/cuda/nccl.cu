/* nccl.cu - NCCL communicators for data-parallel training across GPUs: the
 * unique id (made by rank 0, broadcast by the caller), one communicator per
 * rank, in-place sum allreduce of device buffers, and a km_reduce_t over it
 * so the model fits (models.h) can sum through NCCL.  Built with
 * -DKC_NO_NCCL where NCCL is missing: every call is KILN_EUNSUPPORTED. */
#include <string.h>

#include "kc_int.h"

extern "C" {
#include "../../core/kiln_alloc.h"
}

#ifndef KC_NO_NCCL
#include <nccl.h>

static_assert(KC_NCCL_ID_BYTES == NCCL_UNIQUE_ID_BYTES, "kc_nccl id size");

struct kc_nccl {
    kc_ctx_t  *ctx;           /* borrowed */
    ncclComm_t comm;
    int        rank, n_ranks;
    double    *d_stage;       /* kc_nccl_reduce's staging buffer */
    size_t     stage_cap;
};

static int nccl_err(kiln_err_t *err, ncclResult_t r, const char *what)
{
    const int code = r == ncclInvalidArgument || r == ncclInvalidUsage ? KILN_EINVAL : KILN_EIO;
    return kiln_err_set(err, code, "nccl: %s: %s (%d)", what, ncclGetErrorString(r), (int)r);
}

int kc_nccl_id_new(char out[KC_NCCL_ID_BYTES], kiln_err_t *err)
{
    ncclUniqueId id;
    ncclResult_t r = ncclGetUniqueId(&id);
    if (r != ncclSuccess)
        return nccl_err(err, r, "ncclGetUniqueId");
    memcpy(out, id.internal, KC_NCCL_ID_BYTES);
    return 0;
}

int kc_nccl_init(kc_ctx_t *ctx, int n_ranks, int rank, const char id[KC_NCCL_ID_BYTES],
                 kc_nccl_t **out, kiln_err_t *err)
{
    int rc;
    *out = NULL;
    if (n_ranks < 1 || rank < 0 || rank >= n_ranks || !id)
        return kiln_err_set(err, KILN_EINVAL, "nccl: rank %d of %d ranks (and an id) needed",
                            rank, n_ranks);
    if ((rc = kc_ctx_enter(ctx, err)) < 0)
        return rc;
    kc_nccl_t *c = (kc_nccl_t *)kiln_calloc(1, sizeof *c);
    if (!c)
        return kiln_err_set(err, KILN_ENOMEM, "nccl: no memory for a communicator");
    ncclUniqueId uid;
    memcpy(uid.internal, id, KC_NCCL_ID_BYTES);
    ncclResult_t r = ncclCommInitRank(&c->comm, n_ranks, uid, rank);
    if (r != ncclSuccess) {
        kiln_free(c);
        return nccl_err(err, r, "ncclCommInitRank");
    }
    c->ctx = ctx;
    c->rank = rank;
    c->n_ranks = n_ranks;
    *out = c;
    return 0;
}

void kc_nccl_destroy(kc_nccl_t **pc)
{
    if (!pc || !*pc)
        return;
    kc_nccl_t *c = *pc;
    cudaSetDevice(c->ctx->device);
    ncclCommDestroy(c->comm);
    kc_dev_free(c->ctx, (void **)&c->d_stage);
    kiln_free(c);
    *pc = NULL;
}

static int allreduce(kc_nccl_t *c, void *d_buf, size_t n, ncclDataType_t type, kiln_err_t *err)
{
    int rc;
    if ((rc = kc_ctx_enter(c->ctx, err)) < 0)
        return rc;
    cudaStream_t st = c->ctx->stream[0];
    ncclResult_t r = ncclAllReduce(d_buf, d_buf, n, type, ncclSum, c->comm, st);
    if (r != ncclSuccess)
        return nccl_err(err, r, "ncclAllReduce");
    KC_TRY(cudaStreamSynchronize(st), "cudaStreamSynchronize (allreduce)");
    return 0;
}

int kc_nccl_allreduce_f32(kc_nccl_t *c, float *d_buf, size_t n, kiln_err_t *err)
{
    return allreduce(c, d_buf, n, ncclFloat32, err);
}

int kc_nccl_allreduce_f64(kc_nccl_t *c, double *d_buf, size_t n, kiln_err_t *err)
{
    return allreduce(c, d_buf, n, ncclFloat64, err);
}

/* km_reduce_t's sum: the host buffer through the staging buffer. */
static int reduce_sum(void *ud, double *buf, size_t n, kiln_err_t *err)
{
    kc_nccl_t *c = (kc_nccl_t *)ud;
    int rc;
    if (n > c->stage_cap) {
        kc_dev_free(c->ctx, (void **)&c->d_stage);
        c->stage_cap = 0;
        if ((rc = kc_dev_alloc(c->ctx, n * sizeof(double), (void **)&c->d_stage, err)) < 0)
            return rc;
        c->stage_cap = n;
    }
    if ((rc = kc_copy_to_dev(c->ctx, c->d_stage, buf, n * sizeof(double), err)) < 0 ||
        (rc = allreduce(c, c->d_stage, n, ncclFloat64, err)) < 0)
        return rc;
    return kc_copy_to_host(c->ctx, buf, c->d_stage, n * sizeof(double), err);
}

void kc_nccl_reduce(kc_nccl_t *c, km_reduce_t *out)
{
    out->sum = reduce_sum;
    out->ud = c;
    out->rank = c->rank;
    out->n_ranks = c->n_ranks;
}

#else /* KC_NO_NCCL */

struct kc_nccl {
    int unused;
};

static int no_nccl(kiln_err_t *err)
{
    return kiln_err_set(err, KILN_EUNSUPPORTED, "nccl: this build has no NCCL (nccl.h or libnccl "
                        "was missing)");
}

int kc_nccl_id_new(char out[KC_NCCL_ID_BYTES], kiln_err_t *err)
{
    (void)out;
    return no_nccl(err);
}
int kc_nccl_init(kc_ctx_t *ctx, int n_ranks, int rank, const char id[KC_NCCL_ID_BYTES],
                 kc_nccl_t **out, kiln_err_t *err)
{
    (void)ctx, (void)n_ranks, (void)rank, (void)id;
    *out = NULL;
    return no_nccl(err);
}
void kc_nccl_destroy(kc_nccl_t **c)
{
    if (c)
        *c = NULL;
}
int kc_nccl_allreduce_f32(kc_nccl_t *c, float *d_buf, size_t n, kiln_err_t *err)
{
    (void)c, (void)d_buf, (void)n;
    return no_nccl(err);
}
int kc_nccl_allreduce_f64(kc_nccl_t *c, double *d_buf, size_t n, kiln_err_t *err)
{
    (void)c, (void)d_buf, (void)n;
    return no_nccl(err);
}
void kc_nccl_reduce(kc_nccl_t *c, km_reduce_t *out)
{
    (void)c;
    memset(out, 0, sizeof *out);
}

#endif
