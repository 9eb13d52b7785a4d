/* gpu_ranks.h - data-parallel training over one GPU per MPI rank: NCCL sums
 * the ranks' device-staged buffers (kernels_cuda.h, kc_nccl_*), its unique
 * id made by rank 0 and broadcast through MPI (collective.h).
 *
 * The ranks agree before NCCL's collective init (every rank has a GPU and
 * rank 0 made an id) and after it (every rank joined), so either all ranks
 * sum through NCCL or all through MPI: a rank never waits in a collective
 * another one skipped.  Which GPU: the rank's local index on its node
 * (OMPI_COMM_WORLD_LOCAL_RANK, SLURM_LOCALID, else 0) modulo the GPUs it
 * sees (CUDA_VISIBLE_DEVICES narrows them as usual). */
#ifndef KC_GPU_RANKS_H
#define KC_GPU_RANKS_H

#include <stddef.h>

#include "../core/kiln_err.h"
#include "../kernels/models.h"
#include "collective.h"

typedef struct kc_gpu_rank kc_gpu_rank_t;

/* Collective over c.  *out: new (kc_gpu_rank_close) when every rank joined
 * NCCL; NULL with why[cap] saying which rank could not, and the caller sums
 * through MPI (kc_coll_reduce).  An error return is an MPI failure only. */
int  kc_gpu_rank_open(kc_coll_t *c, kc_gpu_rank_t **out, char *why, size_t cap,
                      kiln_err_t *err);
/* This rank's CUDA device. */
int  kc_gpu_rank_device(const kc_gpu_rank_t *g);
/* The kernels' sum over the ranks through NCCL; valid while g lives. */
km_reduce_t kc_gpu_rank_reduce(kc_gpu_rank_t *g);
void kc_gpu_rank_close(kc_gpu_rank_t **g);

#endif
