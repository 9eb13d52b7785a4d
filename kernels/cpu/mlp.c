/* mlp.c - the multilayer perceptron of kernels/mlp.h: Glorot-uniform init,
 * ReLU hidden layers, softmax/identity output, backpropagation and Adam
 * (Kingma & Ba 2015, in scikit-learn's form: lr_t = lr*sqrt(1-b2^t)/(1-b1^t)),
 * with the step's rows spread over pthreads by lane so the bytes never depend
 * on the thread count. */
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "../../core/kiln_alloc.h"
#include "../mlp.h"

#define MLP_MAGIC   0x504c4d4bu   /* "KMLP" little-endian */
#define MLP_VERSION 1u
#define CHUNK_ROWS  64            /* rows a thread pushes through the layers at once */
#define MAX_LAYERS  (KM_MLP_MAX_HIDDEN + 1)

struct km_mlp {
    int    n_layers;                  /* weight layers: hidden + 1 */
    int    size[MAX_LAYERS + 1];      /* size[0] = d ... size[n_layers] = outputs */
    int    n_classes;                 /* 0: regressor */
    size_t n_params;
    size_t w_off[MAX_LAYERS];         /* W_l at params + w_off[l], then its bias */
    float *params;
};

/* -std=c11 turns off the contraction of a*b+c into one instruction, so the
 * products ask for fmaf where the target has it (one rounding, twice the
 * throughput) and keep a*b+c elsewhere; either way the result is fixed per build. */
#ifdef __FMA__
#define MADD(a, b, c) fmaf((a), (b), (c))
#else
#define MADD(a, b, c) ((a) * (b) + (c))
#endif

/* ---- blocked products (AVX-512) --------------------------------------------
 * The same three products with the batch rows as the long dimension and a
 * block of R rows x NV 16-float vectors of columns held in zmm registers
 * across the whole inner sum (R*NV <= 24 accumulators, NV vectors of B and a
 * broadcast beside them: 32 registers).  The last vector of a block may be
 * partial (a mask), so every width, the 3-class output included, runs here.
 * The epilogue is fused: bias and ReLU into the forward store, the ReLU mask
 * of the layer below into the delta store.  Each C entry is one chain of
 * fmas over t in order, so the result is fixed per build and per lane. */
#if defined(__AVX512F__)
#include <immintrin.h>
#define MLP_BLOCKED 1

enum { MM_SET, MM_ADD, MM_BIAS, MM_BIAS_RELU, MM_MASK };

/* C[r][v*16..] (r < R, v < NV) = init + sum_t S[r*rs + t*ts] * B[t*ldb + v*16..];
 * init: 0 (SET, MASK), C (ADD), X[v*16..] = bias (BIAS*); MASK stores
 * X[r*ldc + ...] > 0 ? sum : 0. */
static inline __attribute__((always_inline)) void
blk16(const int mode, const int R, const int NV, const __mmask16 last, const size_t T,
      const float *restrict S, const size_t rs, const size_t ts, const float *restrict B,
      const size_t ldb, float *restrict C, const size_t ldc, const float *restrict X)
{
    __m512 acc[12][4];
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) {
        const __mmask16 mv = v == NV - 1 ? last : (__mmask16)0xffff;
        const __m512 b0 = mode == MM_BIAS || mode == MM_BIAS_RELU
                              ? _mm512_maskz_loadu_ps(mv, X + 16 * v) : _mm512_setzero_ps();
#pragma GCC unroll 12
        for (int r = 0; r < R; r++)
            acc[r][v] = mode == MM_ADD ? _mm512_maskz_loadu_ps(mv, C + r * ldc + 16 * v) : b0;
    }
    for (size_t t = 0; t < T; t++) {
        const float *b = B + t * ldb;
        __m512 bv[4];
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++)
            bv[v] = v == NV - 1 ? _mm512_maskz_loadu_ps(last, b + 16 * v) : _mm512_loadu_ps(b + 16 * v);
        const float *s = S + t * ts;
#pragma GCC unroll 12
        for (int r = 0; r < R; r++) {
            const __m512 sv = _mm512_set1_ps(s[r * rs]);
#pragma GCC unroll 4
            for (int v = 0; v < NV; v++)
                acc[r][v] = _mm512_fmadd_ps(sv, bv[v], acc[r][v]);
        }
    }
#pragma GCC unroll 12
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++) {
            const __mmask16 mv = v == NV - 1 ? last : (__mmask16)0xffff;
            __m512 o = acc[r][v];
            float *c = C + r * ldc + 16 * v;
            if (mode == MM_BIAS_RELU)
                o = _mm512_max_ps(o, _mm512_setzero_ps());
            if (mode == MM_MASK) {
                const __m512 a = _mm512_maskz_loadu_ps(mv, X + r * ldc + 16 * v);
                o = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(a, _mm512_setzero_ps(), _CMP_GT_OQ), o);
            }
            _mm512_mask_storeu_ps(c, mv, o);
        }
}

/* Rows [0, M) in blocks of RM, then of 8, 4, 2, 1. */
#define MM_ROWS(NV, RM)                                                                   \
    do {                                                                                  \
        size_t i = 0;                                                                     \
        for (; i + RM <= M; i += RM)                                                      \
            blk16(mode, RM, NV, last, T, S + i * rs, rs, ts, B, ldb, C + i * ldc, ldc, XR(i)); \
        if (RM > 8 && i + 8 <= M) {                                                       \
            blk16(mode, 8, NV, last, T, S + i * rs, rs, ts, B, ldb, C + i * ldc, ldc, XR(i)); \
            i += 8;                                                                       \
        }                                                                                 \
        if (RM > 4 && i + 4 <= M) {                                                       \
            blk16(mode, 4, NV, last, T, S + i * rs, rs, ts, B, ldb, C + i * ldc, ldc, XR(i)); \
            i += 4;                                                                       \
        }                                                                                 \
        if (i + 2 <= M) {                                                                 \
            blk16(mode, 2, NV, last, T, S + i * rs, rs, ts, B, ldb, C + i * ldc, ldc, XR(i)); \
            i += 2;                                                                       \
        }                                                                                 \
        if (i < M)                                                                        \
            blk16(mode, 1, NV, last, T, S + i * rs, rs, ts, B, ldb, C + i * ldc, ldc, XR(i)); \
    } while (0)

/* C[M x N] (row stride ldc) from S (M x T, S[i][t] = S[i*rs + t*ts]) . B (T x N,
 * row stride ldb), by panels of up to 64 columns. */
static inline __attribute__((always_inline)) void
mm16(const int mode, const size_t M, const size_t N, const size_t T, const float *S,
     const size_t rs, const size_t ts, const float *B, const size_t ldb, float *C,
     const size_t ldc, const float *X)
{
    for (size_t j = 0; j < N; j += 64) {
        const size_t w = N - j < 64 ? N - j : 64;
        const __mmask16 last = (w & 15) ? (__mmask16)((1u << (w & 15)) - 1) : (__mmask16)0xffff;
        const float *Xj = X ? X + j : NULL;
#define XR(i) (mode == MM_MASK ? Xj + (i) * ldc : Xj)
        switch ((w + 15) / 16) {
        case 4: MM_ROWS(4, 6); break;
        case 3: MM_ROWS(3, 8); break;
        case 2: MM_ROWS(2, 12); break;
        default: MM_ROWS(1, 12); break;
        }
#undef XR
        B += 64;
        C += 64;
    }
}

static void mm_set(size_t M, size_t N, size_t T, const float *S, size_t rs, size_t ts,
                   const float *B, size_t ldb, float *C, size_t ldc)
{
    mm16(MM_SET, M, N, T, S, rs, ts, B, ldb, C, ldc, NULL);
}
static void mm_add(size_t M, size_t N, size_t T, const float *S, size_t rs, size_t ts,
                   const float *B, size_t ldb, float *C, size_t ldc)
{
    mm16(MM_ADD, M, N, T, S, rs, ts, B, ldb, C, ldc, NULL);
}
static void mm_bias(size_t M, size_t N, size_t T, const float *S, const float *B,
                    const float *bias, float *C)
{
    mm16(MM_BIAS, M, N, T, S, T, 1, B, N, C, N, bias);
}
static void mm_bias_relu(size_t M, size_t N, size_t T, const float *S, const float *B,
                         const float *bias, float *C)
{
    mm16(MM_BIAS_RELU, M, N, T, S, T, 1, B, N, C, N, bias);
}
static void mm_mask(size_t M, size_t N, size_t T, const float *S, const float *B,
                    const float *A, float *C)
{
    mm16(MM_MASK, M, N, T, S, T, 1, B, N, C, N, A);
}
#endif

#ifndef MLP_BLOCKED
/* ---- products ----------------------------------------------------------
 * One kernel serves the three products of a layer:
 *   C[r][j] += sum_t S[r*rs + t*ts] * B[t*ldb + j]
 * forward (S = activations by row), weight gradient (S = activations read
 * transposed) and delta propagation (B = the transposed weights).  A block
 * of R rows x NB columns lives in registers across the whole t loop; R and NB
 * are compile-time so the j loop becomes whole vectors. */
static inline __attribute__((always_inline)) void
mm_block(int R, int NB, size_t T, const float *restrict S, size_t rs, size_t ts,
         const float *restrict B, size_t ldb, float *restrict C, size_t ldc)
{
    float acc[4][64];
    for (int r = 0; r < R; r++)
        for (int j = 0; j < NB; j++)
            acc[r][j] = C[r * ldc + j];
    for (size_t t = 0; t < T; t++) {
        const float *b = B + t * ldb;
        for (int r = 0; r < R; r++) {
            const float s = S[r * rs + t * ts];
            for (int j = 0; j < NB; j++)
                acc[r][j] = MADD(s, b[j], acc[r][j]);
        }
    }
    for (int r = 0; r < R; r++)
        for (int j = 0; j < NB; j++)
            C[r * ldc + j] = acc[r][j];
}

#define MM_COLS(NB)                                                             \
    static void mm_cols_##NB(size_t M, size_t T, const float *S, size_t rs,     \
                             size_t ts, const float *B, size_t ldb, float *C,   \
                             size_t ldc)                                        \
    {                                                                           \
        size_t i = 0;                                                           \
        for (; i + 4 <= M; i += 4)                                              \
            mm_block(4, NB, T, S + i * rs, rs, ts, B, ldb, C + i * ldc, ldc);   \
        for (; i < M; i++)                                                      \
            mm_block(1, NB, T, S + i * rs, rs, ts, B, ldb, C + i * ldc, ldc);   \
    }
MM_COLS(64)
MM_COLS(32)
MM_COLS(16)
MM_COLS(8)

/* C[M x N] += S . B with S[i][t] = S[i*rs + t*ts], B[T x N] (row stride ldb). */
static void mm_acc(size_t M, size_t N, size_t T, const float *S, size_t rs, size_t ts,
                   const float *B, size_t ldb, float *C, size_t ldc)
{
    size_t j = 0;
    for (; j + 64 <= N; j += 64)
        mm_cols_64(M, T, S, rs, ts, B + j, ldb, C + j, ldc);
    for (; j + 32 <= N; j += 32)
        mm_cols_32(M, T, S, rs, ts, B + j, ldb, C + j, ldc);
    for (; j + 16 <= N; j += 16)
        mm_cols_16(M, T, S, rs, ts, B + j, ldb, C + j, ldc);
    for (; j + 8 <= N; j += 8)
        mm_cols_8(M, T, S, rs, ts, B + j, ldb, C + j, ldc);
    if (j == N)
        return;
    for (size_t i = 0; i < M; i++)        /* the few last columns (small outputs) */
        for (size_t t = 0; t < T; t++) {
            const float s = S[i * rs + t * ts];
            for (size_t c = j; c < N; c++)
                C[i * ldc + c] = MADD(s, B[t * ldb + c], C[i * ldc + c]);
        }
}
#endif

#ifndef MLP_BLOCKED
static void mm_set(size_t M, size_t N, size_t T, const float *S, size_t rs, size_t ts,
                   const float *B, size_t ldb, float *C, size_t ldc)
{
    for (size_t i = 0; i < M; i++)
        memset(C + i * ldc, 0, N * sizeof *C);
    mm_acc(M, N, T, S, rs, ts, B, ldb, C, ldc);
}
static void mm_add(size_t M, size_t N, size_t T, const float *S, size_t rs, size_t ts,
                   const float *B, size_t ldb, float *C, size_t ldc)
{
    mm_acc(M, N, T, S, rs, ts, B, ldb, C, ldc);
}
static void mm_bias(size_t M, size_t N, size_t T, const float *S, const float *B,
                    const float *bias, float *C)
{
    for (size_t i = 0; i < M; i++)
        memcpy(C + i * N, bias, N * sizeof *C);
    mm_acc(M, N, T, S, T, 1, B, N, C, N);
}
static void mm_bias_relu(size_t M, size_t N, size_t T, const float *S, const float *B,
                         const float *bias, float *C)
{
    mm_bias(M, N, T, S, B, bias, C);
    for (size_t i = 0; i < M * N; i++)
        C[i] = C[i] > 0.0f ? C[i] : 0.0f;
}
static void mm_mask(size_t M, size_t N, size_t T, const float *S, const float *B,
                    const float *A, float *C)
{
    mm_set(M, N, T, S, T, 1, B, N, C, N);
    for (size_t i = 0; i < M * N; i++)
        C[i] = A[i] > 0.0f ? C[i] : 0.0f;
}
#endif

/* ---- one chunk of rows: forward, loss, backward --------------------------- */

/* What a thread needs to push CHUNK_ROWS rows through the net. */
typedef struct {
    float *act[MAX_LAYERS + 1];   /* act[l]: CHUNK_ROWS x size[l]; act[0] = gathered x */
    float *delta[2];              /* CHUNK_ROWS x max size */
} mlp_ws_t;

static int ws_init(mlp_ws_t *ws, const km_mlp_t *m)
{
    memset(ws, 0, sizeof *ws);
    int widest = 0;
    for (int l = 0; l <= m->n_layers; l++) {
        ws->act[l] = kiln_malloc_aligned((size_t)CHUNK_ROWS * (size_t)m->size[l] * sizeof(float));
        if (!ws->act[l])
            return -1;
        if (m->size[l] > widest)
            widest = m->size[l];
    }
    for (int k = 0; k < 2; k++)
        if (!(ws->delta[k] = kiln_malloc_aligned((size_t)CHUNK_ROWS * (size_t)widest * sizeof(float))))
            return -1;
    return 0;
}

static void ws_free(mlp_ws_t *ws)
{
    for (int l = 0; l <= MAX_LAYERS; l++)
        kiln_free_aligned(ws->act[l]);
    kiln_free_aligned(ws->delta[0]);
    kiln_free_aligned(ws->delta[1]);
    memset(ws, 0, sizeof *ws);
}

/* act[1..] from act[0] for M rows; the output layer holds probabilities
 * (softmax) or the regressed value. */
static void forward(const km_mlp_t *m, const float *w, mlp_ws_t *ws, size_t M)
{
    for (int l = 1; l <= m->n_layers; l++) {
        const size_t K = (size_t)m->size[l - 1], N = (size_t)m->size[l];
        const float *W = w + m->w_off[l - 1], *bias = W + K * N;
        float *z = ws->act[l];
        if (l < m->n_layers) {
            mm_bias_relu(M, N, K, ws->act[l - 1], W, bias, z);
            continue;
        }
        mm_bias(M, N, K, ws->act[l - 1], W, bias, z);
        if (m->n_classes) {
            for (size_t i = 0; i < M; i++) {
                float *row = z + i * N, top = row[0], sum = 0.0f;
                for (size_t c = 1; c < N; c++)
                    top = row[c] > top ? row[c] : top;
                /* exp below e^-60 is 0: a confident net's tiny probabilities
                 * would otherwise turn into denormals through the backward
                 * products, and denormal arithmetic runs many times slower. */
                for (size_t c = 0; c < N; c++) {
                    const float e = row[c] - top;
                    sum += row[c] = e > -60.0f ? expf(e) : 0.0f;
                }
                const float inv = 1.0f / sum;
                for (size_t c = 0; c < N; c++)
                    row[c] *= inv;
            }
        }
    }
}

/* Gathers rows idx[0..M) of x into act[0], runs forward and adds the
 * chunk's unnormalised gradient (sum over rows, no l2) into g (n_params
 * floats), or stores it there when first (M >= 1); returns the summed loss of the rows when want_loss, else 0.
 * wt holds each W_l transposed (fan_out x fan_in) at w_off[l]. */
static double chunk_grad(const km_mlp_t *m, const float *w, const float *wt, mlp_ws_t *ws,
                         const km_data_t *data, const size_t *idx, size_t M, float *g,
                         int first, int want_loss)
{
    const size_t d = data->d, L = (size_t)m->n_layers, n_out = (size_t)m->size[L];
    for (size_t i = 0; i < M; i++)
        memcpy(ws->act[0] + i * d, data->x + idx[i] * d, d * sizeof(float));
    forward(m, w, ws, M);

    double loss = 0.0;
    float *D = ws->delta[0];
    const float *out = ws->act[L];
    memcpy(D, out, M * n_out * sizeof *D);
    for (size_t i = 0; i < M; i++) {
        if (m->n_classes) {
            const size_t y = (size_t)data->y[idx[i]];
            D[i * n_out + y] -= 1.0f;
            if (want_loss) {   /* sklearn's log_loss clips at float64 eps */
                double p = out[i * n_out + y];
                loss -= log(p > 2.220446049250313e-16 ? p : 2.220446049250313e-16);
            }
        } else {
            D[i] -= data->target[idx[i]];
            if (want_loss)
                loss += 0.5 * (double)D[i] * (double)D[i];
        }
    }
    for (size_t l = L; l >= 1; l--) {
        const size_t K = (size_t)m->size[l - 1], N = (size_t)m->size[l];
        float *gW = g + m->w_off[l - 1], *gb = gW + K * N;
        const float *A = ws->act[l - 1];
        if (first) {                                     /* gW = A^T D */
            mm_set(K, N, M, A, 1, K, D, N, gW, N);
            memcpy(gb, D, N * sizeof *gb);
        } else {                                         /* gW += A^T D */
            mm_add(K, N, M, A, 1, K, D, N, gW, N);
            for (size_t j = 0; j < N; j++)
                gb[j] += D[j];
        }
#ifdef MLP_BLOCKED
        for (size_t j = 0; j < N; j += 16) {   /* the same sums, held in a register */
            const __mmask16 mk = N - j >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (N - j)) - 1);
            __m512 s = _mm512_maskz_loadu_ps(mk, gb + j);
            for (size_t i = 1; i < M; i++)
                s = _mm512_add_ps(s, _mm512_maskz_loadu_ps(mk, D + i * N + j));
            _mm512_mask_storeu_ps(gb + j, mk, s);
        }
#else
        for (size_t i = 1; i < M; i++)
            for (size_t j = 0; j < N; j++)
                gb[j] += D[i * N + j];
#endif
        if (l == 1)
            break;
        float *Dp = ws->delta[(L - l + 1) & 1];
        mm_mask(M, K, N, D, wt + m->w_off[l - 1], A, Dp);   /* (D W^T) where A > 0 */
        D = Dp;
    }
    return loss;
}

/* wt[j*K + k] = W[k*N + j] for the flat W indices q = k*N + j in [lo, hi),
 * by whole row pieces (no division per weight). */
static void transpose_range(const float *restrict W, float *restrict wt, size_t K, size_t N,
                            size_t lo, size_t hi)
{
    for (size_t k = lo / N; k < K && k * N < hi; k++) {
        const size_t j0 = k * N < lo ? lo - k * N : 0, j1 = (k + 1) * N > hi ? hi - k * N : N;
        for (size_t j = j0; j < j1; j++)
            wt[j * K + k] = W[k * N + j];
    }
}

/* Each W_l but the first transposed (fan_out x fan_in) at w_off[l]. */
static void transpose_weights(const km_mlp_t *m, const float *w, float *wt)
{
    for (int l = 1; l < m->n_layers; l++) {
        const size_t K = (size_t)m->size[l], N = (size_t)m->size[l + 1];
        const float *W = w + m->w_off[l];
        float *T = wt + m->w_off[l];
        for (size_t k = 0; k < K; k++)
            for (size_t j = 0; j < N; j++)
                T[j * K + k] = W[k * N + j];
    }
}

/* ---- model shape and validation ------------------------------------------ */

static km_mlp_t *model_new(int d, const int *hidden, int n_hidden, int n_classes)
{
    km_mlp_t *m = kiln_calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->n_layers = n_hidden + 1;
    m->n_classes = n_classes;
    m->size[0] = d;
    for (int h = 0; h < n_hidden; h++)
        m->size[h + 1] = hidden[h];
    m->size[m->n_layers] = n_classes ? n_classes : 1;
    for (int l = 0; l < m->n_layers; l++) {
        m->w_off[l] = m->n_params;
        m->n_params += (size_t)m->size[l] * (size_t)m->size[l + 1] + (size_t)m->size[l + 1];
    }
    m->params = kiln_malloc_aligned(m->n_params * sizeof(float));
    if (!m->params) {
        kiln_free(m);
        return NULL;
    }
    return m;
}

void km_mlp_free(km_mlp_t **pm)
{
    if (!pm || !*pm)
        return;
    kiln_free_aligned((*pm)->params);
    kiln_free(*pm);
    *pm = NULL;
}

km_mlp_params_t km_mlp_defaults(void)
{
    km_mlp_params_t p = {.n_hidden = 1, .hidden = {100, 0, 0}, .lr = 1e-3, .beta1 = 0.9,
                         .beta2 = 0.999, .eps = 1e-8, .l2 = 1e-4, .batch = 200,
                         .epochs = 200, .threads = 1, .seed = 0};
    return p;
}

static int check_params(const km_mlp_params_t *p, kiln_err_t *err)
{
    if (!p)
        return kiln_err_at(err, KILN_EINVAL, "params", "mlp: params is NULL");
    if (p->n_hidden < 1 || p->n_hidden > KM_MLP_MAX_HIDDEN)
        return kiln_err_at(err, KILN_EINVAL, "params.n_hidden",
                           "mlp: n_hidden is %d, must be 1..%d", p->n_hidden, KM_MLP_MAX_HIDDEN);
    for (int h = 0; h < p->n_hidden; h++)
        if (p->hidden[h] < 1 || p->hidden[h] > KM_MLP_MAX_WIDTH) {
            char where[32];
            snprintf(where, sizeof where, "params.hidden[%d]", h);
            return kiln_err_at(err, KILN_EINVAL, where, "mlp: hidden[%d] is %d units, must be 1..%d",
                               h, p->hidden[h], KM_MLP_MAX_WIDTH);
        }
    if (!(p->lr > 0.0 && p->lr <= 10.0))
        return kiln_err_at(err, KILN_EINVAL, "params.lr", "mlp: lr is %g, must be in (0, 10]", p->lr);
    if (!(p->beta1 >= 0.0 && p->beta1 < 1.0))
        return kiln_err_at(err, KILN_EINVAL, "params.beta1", "mlp: beta1 is %g, must be in [0, 1)", p->beta1);
    if (!(p->beta2 >= 0.0 && p->beta2 < 1.0))
        return kiln_err_at(err, KILN_EINVAL, "params.beta2", "mlp: beta2 is %g, must be in [0, 1)", p->beta2);
    if (!(p->eps > 0.0 && p->eps < 1.0))
        return kiln_err_at(err, KILN_EINVAL, "params.eps", "mlp: eps is %g, must be in (0, 1)", p->eps);
    if (!(p->l2 >= 0.0 && p->l2 <= 1e6))
        return kiln_err_at(err, KILN_EINVAL, "params.l2", "mlp: l2 is %g, must be in [0, 1e6]", p->l2);
    if (p->batch < 1)
        return kiln_err_at(err, KILN_EINVAL, "params.batch", "mlp: batch is %d rows, must be >= 1", p->batch);
    if (p->epochs < 1 || p->epochs > 1000000)
        return kiln_err_at(err, KILN_EINVAL, "params.epochs", "mlp: epochs is %d, must be 1..1000000", p->epochs);
    if (p->threads < 1 || p->threads > 64)
        return kiln_err_at(err, KILN_EINVAL, "params.threads", "mlp: threads is %d, must be 1..64", p->threads);
    return 0;
}

/* The data checks every rank makes on its own rows; counts[] (n_classes
 * entries) gets the rows per class. */
static int check_data(const km_data_t *data, double *counts, kiln_err_t *err)
{
    if (!data || !data->x)
        return kiln_err_at(err, KILN_EINVAL, "data.x", "mlp: no data (x is NULL)");
    if (data->n == 0 || data->n > UINT32_MAX)
        return kiln_err_at(err, KILN_ESHAPE, "data.n", "mlp: %zu rows, must be 1..%u", data->n, UINT32_MAX);
    if (data->d == 0 || data->d > KM_MLP_MAX_INPUTS)
        return kiln_err_at(err, KILN_ESHAPE, "data.d", "mlp: %zu features per row, must be 1..%d",
                           data->d, KM_MLP_MAX_INPUTS);
    if (data->n_classes == 1 || data->n_classes < 0 || data->n_classes > KM_MLP_MAX_CLASSES)
        return kiln_err_at(err, KILN_EINVAL, "data.n_classes",
                           "mlp: n_classes is %d: a classifier needs 2..%d classes (one class only "
                           "cannot be learned), a regressor 0", data->n_classes, KM_MLP_MAX_CLASSES);
    if (data->n_classes ? !data->y : !data->target)
        return kiln_err_at(err, KILN_EINVAL, data->n_classes ? "data.y" : "data.target",
                           "mlp: %s is NULL", data->n_classes ? "y (class labels)" : "target");
    for (size_t i = 0; i < data->n; i++) {
        const float *row = data->x + i * data->d;
        float acc = 0.0f;
        for (size_t j = 0; j < data->d; j++)
            acc += row[j] * 0.0f;      /* NaN or Inf anywhere makes acc NaN */
        if (acc != 0.0f)
            for (size_t j = 0; j < data->d; j++)
                if (!isfinite(row[j]))
                    return kiln_err_at(err, KILN_ENONFINITE, "data.x",
                                       "mlp: x row %zu column %zu is %g", i, j, row[j]);
        if (data->n_classes) {
            const int32_t y = data->y[i];
            if (y < 0 || y >= data->n_classes)
                return kiln_err_at(err, KILN_EINVAL, "data.y", "mlp: y row %zu is class %d, not in 0..%d",
                                   i, (int)y, data->n_classes - 1);
            counts[y] += 1.0;
        } else if (!isfinite(data->target[i])) {
            return kiln_err_at(err, KILN_ENONFINITE, "data.target", "mlp: target row %zu is %g",
                               i, data->target[i]);
        }
    }
    return 0;
}

/* ---- fit: threads, steps, Adam ----------------------------------------------- */

/* Threads share a step through one ticket, (step generation << 32) | a bit
 * per claimed lane: a thread claims a lane by compare-and-swap, so a lane belongs to one
 * thread and one step, and a late or descheduled thread simply finds no lane
 * left instead of holding the others at a barrier (which, on a busy machine,
 * cost more than the work).  Thread 0 waits only for lanes_done (the items
 * done); a step is two generations: its lanes, then the update (lane sum and
 * Adam) cut into parts by weight range, which every thread works too. */
typedef struct {
    _Atomic uint64_t ticket;
    atomic_uint      lanes_done, sleepers;
    atomic_int       quit;
    pthread_mutex_t  lock;
    pthread_cond_t   wake;
} mlp_sync_t;

static void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

typedef struct {
    km_mlp_t               *m;
    const km_data_t        *data;
    const km_mlp_params_t  *p;
    const km_reduce_t      *reduce;     /* NULL: one rank */
    size_t                  n_total, batch, steps;
    size_t                 *perm;       /* this rank's rows, reshuffled each epoch */
    float                  *wt;         /* weights transposed, kept beside m->params */
    float                  *lane_grad;  /* KM_MLP_LANES x n_params */
    int                     lane_used[KM_MLP_LANES];
    double                 *grad_sum;   /* n_params, then the step's rows (for reduce) */
    double                 *adam_m, *adam_v;
    km_rng_t                rng;
    int                     threads;
    mlp_sync_t              sync;
    size_t                  step_lo, step_rows;   /* the published step's rows */
    int                     phase;      /* the published generation's items: PH_LANES or PH_UPDATE */
    int                     upd_sum;    /* PH_UPDATE: add the lanes first (no reduce) */
    double                  upd_rows;   /* PH_UPDATE: the step's rows over all ranks */
    long                    upd_step;   /* PH_UPDATE: Adam's step number, from 1 */
    int                     failed;     /* the reduce's error code; written by thread 0 */
    kiln_err_t             *err;
    mlp_ws_t                ws[KM_MLP_LANES];
} fit_ctx_t;

typedef struct {
    fit_ctx_t *ctx;
    int        tid;
} fit_arg_t;

/* floor(a * n_rank / n_total) for a <= n_total, without overflow while
 * n_total < 2^32: this rank's share of the first a rows of an epoch. */
static size_t share(size_t a, size_t n_rank, size_t n_total)
{
    return (a / n_total) * n_rank + ((a % n_total) * n_rank) / n_total;
}

/* grad_sum[lo, hi) = the used lanes' gradients, added in lane order. */
static void sum_lanes(fit_ctx_t *c, size_t lo, size_t hi)
{
    const size_t P = c->m->n_params;
    double *restrict gs = c->grad_sum;
    for (size_t q = lo; q < hi; q++)
        gs[q] = 0.0;
    for (int lane = 0; lane < KM_MLP_LANES; lane++) {
        if (!c->lane_used[lane])
            continue;
        const float *restrict g = c->lane_grad + (size_t)lane * P;
        for (size_t q = lo; q < hi; q++)
            gs[q] += (double)g[q];
    }
}

/* Adam on w[a, b), all weights (l2 > 0) or all biases (l2 = 0) of a layer;
 * one straight loop so it vectorises, sqrt and division included. */
static void adam_segment(fit_ctx_t *c, size_t a, size_t b, double l2, double inv_rows, double lr_t)
{
    const double b1 = c->p->beta1, b2 = c->p->beta2, eps = c->p->eps;
    float *restrict w = c->m->params;
    const double *restrict gs = c->grad_sum;
    double *restrict am = c->adam_m, *restrict av = c->adam_v;
    for (size_t q = a; q < b; q++) {
        const double g = (gs[q] + l2 * (double)w[q]) * inv_rows;
        am[q] = b1 * am[q] + (1.0 - b1) * g;
        av[q] = b2 * av[q] + (1.0 - b2) * g * g;
        w[q] = (float)((double)w[q] - lr_t * am[q] / (sqrt(av[q]) + eps));
    }
}

/* Adam on the weights [lo, hi) of the flat vector, from grad_sum over rows;
 * then the transposed copy of what changed. */
static void adam_range(fit_ctx_t *c, size_t lo, size_t hi, double rows, long step)
{
    const km_mlp_t *m = c->m;
    const km_mlp_params_t *p = c->p;
    const double lr_t = p->lr * sqrt(1.0 - pow(p->beta2, (double)step)) /
                        (1.0 - pow(p->beta1, (double)step));
    for (int l = 0; l < m->n_layers; l++) {
        const size_t K = (size_t)m->size[l], N = (size_t)m->size[l + 1];
        const size_t base = m->w_off[l], end_w = base + K * N, end_b = end_w + N;
        size_t a = lo > base ? lo : base, b = hi < end_w ? hi : end_w;
        if (a < b) {
            adam_segment(c, a, b, p->l2, 1.0 / rows, lr_t);
            if (l > 0)   /* only W_1.. are read transposed (no delta for the inputs) */
                transpose_range(m->params + base, c->wt + base, K, N, a - base, b - base);
        }
        a = lo > end_w ? lo : end_w;
        b = hi < end_b ? hi : end_b;
        if (a < b)
            adam_segment(c, a, b, 0.0, 1.0 / rows, lr_t);
    }
}

/* The update after a step's lanes is cut into UPD_PARTS ranges of the flat
 * weight vector (whole 16-weight groups): each adds the lanes over its range
 * in lane order (upd_sum) and runs Adam on it, so, like a lane, a part gives
 * the same bytes whichever thread takes it. */
#define UPD_PARTS KM_MLP_LANES
enum { PH_LANES, PH_UPDATE };

static void update_part(fit_ctx_t *c, size_t part)
{
    const size_t P = c->m->n_params, groups = (P + 15) / 16;
    const size_t lo = part * groups / UPD_PARTS * 16, hi0 = (part + 1) * groups / UPD_PARTS * 16;
    const size_t hi = hi0 < P ? hi0 : P;
    if (lo >= hi)
        return;
    if (c->upd_sum)
        sum_lanes(c, lo, hi);
    adam_range(c, lo, hi, c->upd_rows, c->upd_step);
}

static void lane_grad(fit_ctx_t *c, size_t lane, mlp_ws_t *ws)
{
    const size_t P = c->m->n_params, rows = c->step_rows, d = c->data->d;
    const size_t a = c->step_lo + lane * rows / KM_MLP_LANES;
    const size_t b = c->step_lo + (lane + 1) * rows / KM_MLP_LANES;
    float *g = c->lane_grad + lane * P;
    c->lane_used[lane] = a < b;
    /* The rows are scattered over x (a cache and TLB miss each): ask now for
     * the rows this lane will have in the next step of the epoch (this
     * thread, or the other core through the shared cache, will likely find
     * them there), so that their misses overlap this step's products. */
    const size_t next_lo = c->step_lo + c->step_rows;
    const size_t na = next_lo + lane * rows / KM_MLP_LANES;
    const size_t nb0 = next_lo + (lane + 1) * rows / KM_MLP_LANES;
    const size_t nb = nb0 < c->data->n ? nb0 : c->data->n;
    for (size_t r = na; r < nb; r++) {
        const size_t row_id = c->perm[r];
        const char *row = (const char *)(c->data->x + row_id * d);
        for (size_t o = 0; o < d * sizeof(float); o += 64)
            __builtin_prefetch(row + o);
        __builtin_prefetch(c->data->n_classes ? (const void *)(c->data->y + row_id)
                                              : (const void *)(c->data->target + row_id));
    }
    for (size_t r = a; r < b; r += CHUNK_ROWS)
        chunk_grad(c->m, c->m->params, c->wt, ws, c->data, c->perm + r,
                   b - r < CHUNK_ROWS ? b - r : CHUNK_ROWS, g, r == a, 0);
}

/* Claims and does items (lanes or update parts) of generation gen until none
 * is left.  The ticket's low bits mark the claimed items.  Thread tid first
 * takes its own share (items [tid*L/T, (tid+1)*L/T)), the same every step,
 * so a lane's gradient, and the Adam moments of an update part, stay in that
 * core's cache; then it takes what is left from the far end, so a late thread
 * costs the others only its unstarted items. */
static void work_lanes(fit_ctx_t *c, uint64_t gen, int tid, mlp_ws_t *ws)
{
    const int T = c->threads, own_lo = tid * KM_MLP_LANES / T, own_hi = (tid + 1) * KM_MLP_LANES / T;
    int order[KM_MLP_LANES], n = 0;
    for (int i = own_lo; i < own_hi; i++)
        order[n++] = i;
    for (int i = KM_MLP_LANES - 1; i >= 0; i--)
        if (i < own_lo || i >= own_hi)
            order[n++] = i;
    uint64_t t = atomic_load(&c->sync.ticket);
    for (int k = 0; k < KM_MLP_LANES; k++) {
        const int item = order[k];
        const uint64_t bit = (uint64_t)1 << item;
        for (;;) {
            if ((t >> 32) != gen)
                return;
            if (t & bit)
                break;
            if (!atomic_compare_exchange_weak(&c->sync.ticket, &t, t | bit))
                continue;
            if (c->phase == PH_LANES)   /* written before this generation's ticket */
                lane_grad(c, (size_t)item, ws);
            else
                update_part(c, (size_t)item);
            atomic_fetch_add(&c->sync.lanes_done, 1);
            t = atomic_load(&c->sync.ticket);
            break;
        }
    }
}

/* Helper threads: wait for a new generation (spin, then sleep), work it. */
static void *fit_thread(void *argp)
{
    fit_arg_t *a = argp;
    fit_ctx_t *c = a->ctx;
    mlp_sync_t *sy = &c->sync;
    uint64_t seen = 0;
    for (;;) {
        uint64_t gen = atomic_load(&sy->ticket) >> 32;
        for (int spins = 0; gen == seen && !atomic_load(&sy->quit) && spins < 4000; spins++) {
            cpu_relax();
            gen = atomic_load(&sy->ticket) >> 32;
        }
        if (gen == seen && !atomic_load(&sy->quit)) {
            pthread_mutex_lock(&sy->lock);
            atomic_fetch_add(&sy->sleepers, 1);
            while ((gen = atomic_load(&sy->ticket) >> 32) == seen && !atomic_load(&sy->quit))
                pthread_cond_wait(&sy->wake, &sy->lock);
            atomic_fetch_sub(&sy->sleepers, 1);
            pthread_mutex_unlock(&sy->lock);
        }
        if (atomic_load(&sy->quit))
            return NULL;
        work_lanes(c, gen, a->tid, &c->ws[a->tid]);
        seen = gen;
    }
}

static void wake_helpers(mlp_sync_t *sy)
{
    if (atomic_load(&sy->sleepers) > 0) {
        pthread_mutex_lock(&sy->lock);
        pthread_cond_broadcast(&sy->wake);
        pthread_mutex_unlock(&sy->lock);
    }
}

/* Publishes generation gen (its phase and inputs written before), works its
 * items beside the helpers and waits until all are done. */
static void run_generation(fit_ctx_t *c, uint64_t gen)
{
    mlp_sync_t *sy = &c->sync;
    atomic_store(&sy->lanes_done, 0);
    atomic_store(&sy->ticket, gen << 32);
    wake_helpers(sy);
    work_lanes(c, gen, 0, &c->ws[0]);
    for (int spins = 0; atomic_load(&sy->lanes_done) < KM_MLP_LANES; spins++) {
        if (spins < 4000)
            cpu_relax();
        else
            sched_yield();   /* a helper lost its core mid-item */
    }
}

/* Thread 0: epochs and steps; publishes each step, works lanes beside the
 * helpers, then (with a reduce: adds the lanes and reduces) publishes the
 * update parts. */
static void fit_loop(fit_ctx_t *c)
{
    const size_t P = c->m->n_params, n_local = c->data->n;
    uint64_t gen = 0;
    long step = 0;
    for (int epoch = 0; epoch < c->p->epochs; epoch++) {
        km_rng_shuffle(&c->rng, c->perm, n_local);
        for (size_t s = 0; s < c->steps; s++) {
            const size_t first = s * c->batch;
            const size_t last = first + c->batch < c->n_total ? first + c->batch : c->n_total;
            c->step_lo = share(first, n_local, c->n_total);
            c->step_rows = share(last, n_local, c->n_total) - c->step_lo;
            c->phase = PH_LANES;
            run_generation(c, ++gen);   /* publishes step_lo, step_rows */
            step++;
            double step_rows = (double)c->step_rows;
            c->upd_sum = 1;
            if (c->reduce) {
                sum_lanes(c, 0, P);
                c->grad_sum[P] = step_rows;
                int rc = c->reduce->sum(c->reduce->ud, c->grad_sum, P + 1, c->err);
                if (rc < 0) {
                    c->failed = rc;
                    return;
                }
                step_rows = c->grad_sum[P];
                c->upd_sum = 0;
            }
            if (step_rows > 0) {
                c->phase = PH_UPDATE;
                c->upd_rows = step_rows;
                c->upd_step = step;
                run_generation(c, ++gen);
            }
        }
    }
}

/* Glorot uniform as scikit-learn's _init_coef for ReLU nets: W and b of each
 * layer ~ U(-sqrt(6/(fan_in+fan_out)), +...), drawn W row-major then b. */
static void glorot_init(km_mlp_t *m, km_rng_t *rng)
{
    for (int l = 0; l < m->n_layers; l++) {
        const size_t K = (size_t)m->size[l], N = (size_t)m->size[l + 1];
        const double bound = sqrt(6.0 / (double)(K + N));
        float *w = m->params + m->w_off[l];
        for (size_t q = 0; q < K * N + N; q++)
            w[q] = (float)(-bound + 2.0 * bound * km_rng_uniform(rng));
    }
}

/* Checks this rank's data and, with a reduce, that all ranks agree (one sum
 * of fixed size, so a rank with bad data cannot leave the others waiting in
 * a second one); then that every class has rows somewhere.  *n_total: rows
 * over all ranks. */
static int check_all(const km_data_t *data, const km_reduce_t *rd, size_t *n_total,
                     kiln_err_t *err)
{
    double *counts = NULL;
    int rc = 0;
    const int nc = data && data->n_classes >= 2 && data->n_classes <= KM_MLP_MAX_CLASSES
                       ? data->n_classes : 0;
    if (nc && !(counts = kiln_calloc((size_t)nc, sizeof *counts)))
        return kiln_err_set(err, KILN_ENOMEM, "mlp: no memory for %d class counts", nc);
    int local = check_data(data, counts, err);
    *n_total = local == 0 ? data->n : 0;
    if (rd) {
        const double d = local == 0 ? (double)data->d : 0, k = local == 0 ? (double)nc : 0;
        double agree[6] = {local == 0, local == 0 ? (double)data->n : 0, d, k, d * d, k * k};
        if ((rc = rd->sum(rd->ud, agree, 6, err)) < 0)
            goto out;
        const double R = rd->n_ranks;
        if (local < 0) {
            rc = local;
            goto out;
        }
        if (agree[0] != R) {
            rc = kiln_err_set(err, KILN_EINVAL, "mlp: %g of %d ranks refused their data",
                              R - agree[0], rd->n_ranks);
            goto out;
        }
        /* all equal iff (sum v)^2 == R * sum v^2 (Cauchy-Schwarz) */
        if (agree[2] * agree[2] != R * agree[4] || agree[3] * agree[3] != R * agree[5]) {
            rc = kiln_err_at(err, KILN_ESHAPE, "data.d", "mlp: ranks disagree on d or n_classes "
                             "(this rank: d %zu, %d classes)", data->d, data->n_classes);
            goto out;
        }
        if (agree[1] > (double)UINT32_MAX) {
            rc = kiln_err_at(err, KILN_ESHAPE, "data.n", "mlp: %g rows over all ranks, at most %u",
                             agree[1], UINT32_MAX);
            goto out;
        }
        *n_total = (size_t)agree[1];
        if (nc && (rc = rd->sum(rd->ud, counts, (size_t)nc, err)) < 0)
            goto out;
    } else if ((rc = local) < 0) {
        goto out;
    }
    for (int k = 0; k < nc; k++)
        if (counts[k] == 0) {
            rc = kiln_err_at(err, KILN_EINVAL, "data.y", "mlp: class %d of %d has no rows%s", k, nc,
                             nc == 2 ? " (one class only)" : "");
            goto out;
        }
out:
    kiln_free(counts);
    return rc;
}

static void ctx_free(fit_ctx_t *c)
{
    for (int t = 0; t < KM_MLP_LANES; t++)
        ws_free(&c->ws[t]);
    kiln_free(c->perm);
    kiln_free_aligned(c->wt);
    kiln_free_aligned(c->lane_grad);
    kiln_free(c->grad_sum);
    kiln_free(c->adam_m);
    kiln_free(c->adam_v);
    if (c->m) {   /* set once the barrier's lock and condition exist */
        pthread_mutex_destroy(&c->sync.lock);
        pthread_cond_destroy(&c->sync.wake);
    }
}

int km_mlp_fit(const km_data_t *data, const km_mlp_params_t *p, const km_reduce_t *reduce,
               km_mlp_t **out, kiln_err_t *err)
{
    fit_ctx_t c;
    memset(&c, 0, sizeof c);
    pthread_t th[KM_MLP_LANES];
    fit_arg_t args[KM_MLP_LANES];
    km_mlp_t *m = NULL;
    int rc, started = 0;
    if (!out)
        return kiln_err_at(err, KILN_EINVAL, "out", "mlp: out is NULL");
    *out = NULL;
    if ((rc = check_params(p, err)) < 0)
        return rc;
    if (reduce && !reduce->sum)
        reduce = NULL;
    size_t n_total = 0;
    if ((rc = check_all(data, reduce, &n_total, err)) < 0)
        return rc;

    if (!(m = model_new((int)data->d, p->hidden, p->n_hidden, data->n_classes)))
        return kiln_err_set(err, KILN_ENOMEM, "mlp: no memory for the model");
    const size_t P = m->n_params;
    pthread_mutex_init(&c.sync.lock, NULL);
    pthread_cond_init(&c.sync.wake, NULL);
    c.m = m;
    c.data = data;
    c.p = p;
    c.reduce = reduce;
    c.err = err;
    c.n_total = n_total;
    c.batch = (size_t)p->batch < n_total ? (size_t)p->batch : n_total;
    c.steps = (n_total + c.batch - 1) / c.batch;
    c.threads = p->threads < KM_MLP_LANES ? p->threads : KM_MLP_LANES;
    c.perm = kiln_malloc(data->n * sizeof *c.perm);
    c.wt = kiln_malloc_aligned(P * sizeof *c.wt);
    c.lane_grad = kiln_malloc_aligned((size_t)KM_MLP_LANES * P * sizeof *c.lane_grad);
    c.grad_sum = kiln_calloc(P + 1, sizeof *c.grad_sum);
    c.adam_m = kiln_calloc(P, sizeof *c.adam_m);
    c.adam_v = kiln_calloc(P, sizeof *c.adam_v);
    if (!c.perm || !c.wt || !c.lane_grad || !c.grad_sum || !c.adam_m || !c.adam_v) {
        rc = kiln_err_set(err, KILN_ENOMEM, "mlp: no memory for training state (%zu weights)", P);
        goto out;
    }
    for (int t = 0; t < c.threads; t++)
        if (ws_init(&c.ws[t], m) < 0) {
            rc = kiln_err_set(err, KILN_ENOMEM, "mlp: no memory for thread %d's activations", t);
            goto out;
        }
    km_rng_seed(&c.rng, p->seed);
    glorot_init(m, &c.rng);
    transpose_weights(m, m->params, c.wt);

    /* A thread that cannot start is not needed: the result does not depend
     * on how many run, so the others take its lanes. */
    for (started = 1; started < c.threads; started++) {
        args[started] = (fit_arg_t){&c, started};
        if (pthread_create(&th[started], NULL, fit_thread, &args[started]) != 0)
            break;
    }
    c.threads = started;
    fit_loop(&c);
    atomic_store(&c.sync.quit, 1);
    pthread_mutex_lock(&c.sync.lock);
    pthread_cond_broadcast(&c.sync.wake);
    pthread_mutex_unlock(&c.sync.lock);
    for (int t = 1; t < started; t++)
        pthread_join(th[t], NULL);
    if (c.failed) {
        rc = c.failed;
        goto out;
    }
    *out = m;
    m = NULL;
    rc = 0;
out:
    ctx_free(&c);
    km_mlp_free(&m);
    return rc;
}

/* ---- predict, loss, save/load ---------------------------------------------- */

int km_mlp_predict(const km_mlp_t *m, const float *x, size_t n, float *scores, int32_t *pred,
                   kiln_err_t *err)
{
    if (!m || (n && (!x || !scores)))
        return kiln_err_set(err, KILN_EINVAL, "mlp predict: model, x or scores is NULL");
    const size_t d = (size_t)m->size[0], L = (size_t)m->n_layers, n_out = (size_t)m->size[L];
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < d; j++)
            if (!isfinite(x[i * d + j]))
                return kiln_err_at(err, KILN_ENONFINITE, "x", "mlp predict: x row %zu column %zu is %g",
                                   i, j, x[i * d + j]);
    mlp_ws_t ws;
    if (ws_init(&ws, m) < 0) {
        ws_free(&ws);
        return kiln_err_set(err, KILN_ENOMEM, "mlp predict: no memory for activations");
    }
    for (size_t i0 = 0; i0 < n; i0 += CHUNK_ROWS) {
        const size_t M = n - i0 < CHUNK_ROWS ? n - i0 : CHUNK_ROWS;
        memcpy(ws.act[0], x + i0 * d, M * d * sizeof(float));
        forward(m, m->params, &ws, M);
        memcpy(scores + i0 * n_out, ws.act[L], M * n_out * sizeof(float));
        if (pred && m->n_classes)
            for (size_t i = 0; i < M; i++) {
                const float *row = ws.act[L] + i * n_out;
                size_t best = 0;
                for (size_t c = 1; c < n_out; c++)
                    if (row[c] > row[best])
                        best = c;
                pred[i0 + i] = (int32_t)best;
            }
    }
    ws_free(&ws);
    return 0;
}

size_t km_mlp_n_outputs(const km_mlp_t *m) { return m ? (size_t)m->size[m->n_layers] : 0; }
size_t km_mlp_n_params(const km_mlp_t *m) { return m ? m->n_params : 0; }
const float *km_mlp_weights(const km_mlp_t *m) { return m ? m->params : NULL; }

int km_mlp_layer_sizes(const km_mlp_t *m, int sizes[KM_MLP_MAX_HIDDEN + 2])
{
    for (int l = 0; l <= m->n_layers; l++)
        sizes[l] = m->size[l];
    return m->n_layers + 1;
}

int km_mlp_loss_grad(const km_mlp_t *m, const km_data_t *data, double l2, double *loss,
                     double *grad, kiln_err_t *err)
{
    if (!m || !loss || !grad)
        return kiln_err_set(err, KILN_EINVAL, "mlp loss_grad: model, loss or grad is NULL");
    if (!data || data->d != (size_t)m->size[0] || data->n_classes != m->n_classes)
        return kiln_err_at(err, KILN_ESHAPE, "data", "mlp loss_grad: data is not shaped as the model "
                           "(d %d, %d classes)", m->size[0], m->n_classes);
    const size_t P = m->n_params, n = data->n;
    int rc = 0;
    mlp_ws_t ws;
    float *wt = kiln_malloc_aligned(P * sizeof *wt), *g = kiln_calloc(P, sizeof *g);
    size_t *idx = kiln_malloc((n ? n : 1) * sizeof *idx);
    if (ws_init(&ws, m) < 0 || !wt || !g || !idx) {
        rc = kiln_err_set(err, KILN_ENOMEM, "mlp loss_grad: no memory");
        goto out;
    }
    double *counts = NULL;
    if ((rc = check_data(data, counts = kiln_calloc((size_t)m->n_classes + 1, sizeof *counts), err)) < 0) {
        kiln_free(counts);
        goto out;
    }
    kiln_free(counts);
    transpose_weights(m, m->params, wt);
    for (size_t i = 0; i < n; i++)
        idx[i] = i;
    double sum = 0.0, sq = 0.0;
    for (size_t r = 0; r < n; r += CHUNK_ROWS)
        sum += chunk_grad(m, m->params, wt, &ws, data, idx + r, n - r < CHUNK_ROWS ? n - r : CHUNK_ROWS,
                          g, r == 0, 1);
    for (int l = 0; l < m->n_layers; l++) {
        const size_t base = m->w_off[l], nw = (size_t)m->size[l] * (size_t)m->size[l + 1];
        for (size_t q = base; q < base + nw; q++) {
            sq += (double)m->params[q] * m->params[q];
            grad[q] = ((double)g[q] + l2 * m->params[q]) / (double)n;
        }
        for (size_t q = base + nw; q < base + nw + (size_t)m->size[l + 1]; q++)
            grad[q] = (double)g[q] / (double)n;
    }
    *loss = (sum + 0.5 * l2 * sq) / (double)n;
out:
    ws_free(&ws);
    kiln_free_aligned(wt);
    kiln_free(g);
    kiln_free(idx);
    return rc;
}

int km_mlp_save(const km_mlp_t *m, km_buf_t *b, kiln_err_t *err)
{
    if (!m || !b)
        return kiln_err_set(err, KILN_EINVAL, "mlp save: model or buffer is NULL");
    km_buf_u32(b, MLP_MAGIC);
    km_buf_u32(b, MLP_VERSION);
    km_buf_u32(b, (uint32_t)m->n_classes);
    km_buf_u32(b, (uint32_t)m->n_layers);
    for (int l = 0; l <= m->n_layers; l++)
        km_buf_u32(b, (uint32_t)m->size[l]);
    km_buf_f32s(b, m->params, m->n_params);
    if (b->oom)
        return kiln_err_set(err, KILN_ENOMEM, "mlp save: no memory for %zu weights", m->n_params);
    return 0;
}

int km_mlp_load(const unsigned char *bytes, size_t len, km_mlp_t **out, kiln_err_t *err)
{
    km_rd_t r = {bytes, bytes ? len : 0, 0};
    uint32_t magic = 0, version = 0, n_classes = 0, n_layers = 0, size[MAX_LAYERS + 1] = {0};
    if (!out)
        return kiln_err_set(err, KILN_EINVAL, "mlp load: out is NULL");
    *out = NULL;
    if (km_rd_u32(&r, &magic) < 0 || magic != MLP_MAGIC)
        return kiln_err_set(err, KILN_EFORMAT, "mlp load: not an mlp model (magic)");
    if (km_rd_u32(&r, &version) < 0 || version != MLP_VERSION)
        return kiln_err_set(err, KILN_EFORMAT, "mlp load: version %u, this build reads %u",
                            version, MLP_VERSION);
    if (km_rd_u32(&r, &n_classes) < 0 || n_classes == 1 || n_classes > KM_MLP_MAX_CLASSES ||
        km_rd_u32(&r, &n_layers) < 0 || n_layers < 2 || n_layers > MAX_LAYERS)
        return kiln_err_set(err, KILN_EFORMAT, "mlp load: bad class or layer count");
    for (uint32_t l = 0; l <= n_layers; l++)
        if (km_rd_u32(&r, &size[l]) < 0)
            return kiln_err_set(err, KILN_EFORMAT, "mlp load: truncated layer sizes");
    int hidden[KM_MLP_MAX_HIDDEN];
    for (uint32_t l = 1; l < n_layers; l++) {
        if (size[l] < 1 || size[l] > KM_MLP_MAX_WIDTH)
            return kiln_err_set(err, KILN_EFORMAT, "mlp load: hidden layer %u has %u units", l, size[l]);
        hidden[l - 1] = (int)size[l];
    }
    if (size[0] < 1 || size[0] > KM_MLP_MAX_INPUTS || size[n_layers] != (n_classes ? n_classes : 1))
        return kiln_err_set(err, KILN_EFORMAT, "mlp load: bad input or output width");
    km_mlp_t *m = model_new((int)size[0], hidden, (int)n_layers - 1, (int)n_classes);
    if (!m)
        return kiln_err_set(err, KILN_ENOMEM, "mlp load: no memory for the model");
    if (r.len - r.off != m->n_params * 4) {
        int rc = kiln_err_set(err, KILN_EFORMAT, "mlp load: %zu weight bytes, the layers need %zu",
                              r.len - r.off, m->n_params * 4);
        km_mlp_free(&m);
        return rc;
    }
    km_rd_f32s(&r, m->params, m->n_params);
    for (size_t q = 0; q < m->n_params; q++)
        if (!isfinite(m->params[q])) {
            km_mlp_free(&m);
            return kiln_err_set(err, KILN_EFORMAT, "mlp load: weight %zu is not finite", q);
        }
    *out = m;
    return 0;
}
