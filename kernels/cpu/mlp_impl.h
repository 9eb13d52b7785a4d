/* mlp_impl.h - what the mlp files share inside kernels/cpu (not public):
 * the model struct, a thread's activations, one chunk of rows through the
 * net (mlp_chunk.c), the model's shape and checks (mlp.c); mlp_train.c
 * drives the steps and Adam, mlp_io.c saves and loads. */
#ifndef KILN_KERNELS_CPU_MLP_IMPL_H
#define KILN_KERNELS_CPU_MLP_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "../mlp.h"

#define MLP_MAGIC      0x504c4d4bu   /* "KMLP" little-endian */
#define MLP_VERSION    1u
#define MLP_CHUNK_ROWS 64            /* rows a thread pushes through the layers at once */
#define MLP_MAX_LAYERS (KM_MLP_MAX_HIDDEN + 1)

struct km_mlp {
    int    n_layers;                   /* weight layers: hidden + 1 */
    int    size[MLP_MAX_LAYERS + 1];   /* size[0] = d ... size[n_layers] = outputs */
    int    n_classes;                  /* 0: regressor */
    size_t n_params;
    size_t w_off[MLP_MAX_LAYERS];      /* W_l at params + w_off[l], then its bias */
    float *params;
};

/* ---- model shape and checks (mlp.c) ------------------------------------- */

/* A new model of these layers, weights uninitialised; NULL without memory. */
km_mlp_t *mlp_model_new(int d, const int *hidden, int n_hidden, int n_classes);
int mlp_check_params(const km_mlp_params_t *p, kiln_err_t *err);
/* The data checks every rank makes on its own rows; counts[] (n_classes
 * entries) gets the rows per class. */
int mlp_check_data(const km_data_t *data, double *counts, kiln_err_t *err);

/* ---- one chunk of rows (mlp_chunk.c) ------------------------------------ */

/* What a thread needs to push MLP_CHUNK_ROWS rows through the net. */
typedef struct {
    float *act[MLP_MAX_LAYERS + 1];   /* act[l]: MLP_CHUNK_ROWS x size[l]; act[0] = gathered x */
    float *delta[2];                  /* MLP_CHUNK_ROWS x max size */
} mlp_ws_t;

/* -1 without memory; mlp_ws_free then releases what was allocated. */
int  mlp_ws_init(mlp_ws_t *ws, const km_mlp_t *m);
void mlp_ws_free(mlp_ws_t *ws);

/* act[1..] from act[0] for M <= MLP_CHUNK_ROWS rows at weights w; the output
 * layer holds probabilities (softmax) or the regressed value. */
void mlp_forward(const km_mlp_t *m, const float *w, mlp_ws_t *ws, size_t M);

/* Gathers rows idx[0..M) of data, runs forward and adds the chunk's
 * unnormalised gradient (sum over rows, no l2) into g (n_params floats), or
 * stores it there when first; returns the rows' summed loss when want_loss,
 * else 0.  wt: W_1.. transposed, as mlp_transpose_weights writes them. */
double mlp_chunk_grad(const km_mlp_t *m, const float *w, const float *wt, mlp_ws_t *ws,
                      const km_data_t *data, const size_t *idx, size_t M, float *g,
                      int first, int want_loss);

/* wt[j*K + k] = W[k*N + j] for the flat indices q = k*N + j in [lo, hi). */
void mlp_transpose_range(const float *restrict W, float *restrict wt, size_t K, size_t N,
                         size_t lo, size_t hi);
/* Each W_l but the first transposed (fan_out x fan_in) at w_off[l]. */
void mlp_transpose_weights(const km_mlp_t *m, const float *w, float *wt);

#endif
