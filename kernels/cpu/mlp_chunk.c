/* mlp_chunk.c - one chunk of rows through the net of kernels/mlp.h: the
 * blocked products (AVX-512, with a portable twin), forward with its fused
 * bias/ReLU, the loss, and backpropagation into a lane's gradient. */
#include <math.h>
#include <string.h>

#include "../../core/kiln_alloc.h"
#include "mlp_impl.h"

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

int mlp_ws_init(mlp_ws_t *ws, const km_mlp_t *m)
{
    memset(ws, 0, sizeof *ws);
    int widest = 0;
    for (int l = 0; l <= m->n_layers; l++) {
        ws->act[l] = kiln_malloc_aligned((size_t)MLP_CHUNK_ROWS * (size_t)m->size[l] * sizeof(float));
        if (!ws->act[l])
            return -1;
        if (m->size[l] > widest)
            widest = m->size[l];
    }
    for (int k = 0; k < 2; k++)
        if (!(ws->delta[k] = kiln_malloc_aligned((size_t)MLP_CHUNK_ROWS * (size_t)widest * sizeof(float))))
            return -1;
    return 0;
}

void mlp_ws_free(mlp_ws_t *ws)
{
    for (int l = 0; l <= MLP_MAX_LAYERS; l++)
        kiln_free_aligned(ws->act[l]);
    kiln_free_aligned(ws->delta[0]);
    kiln_free_aligned(ws->delta[1]);
    memset(ws, 0, sizeof *ws);
}

/* act[1..] from act[0] for M rows; the output layer holds probabilities
 * (softmax) or the regressed value. */
void mlp_forward(const km_mlp_t *m, const float *w, mlp_ws_t *ws, size_t M)
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
double mlp_chunk_grad(const km_mlp_t *m, const float *w, const float *wt, mlp_ws_t *ws,
                         const km_data_t *data, const size_t *idx, size_t M, float *g,
                         int first, int want_loss)
{
    const size_t d = data->d, L = (size_t)m->n_layers, n_out = (size_t)m->size[L];
    for (size_t i = 0; i < M; i++)
        memcpy(ws->act[0] + i * d, data->x + idx[i] * d, d * sizeof(float));
    mlp_forward(m, w, ws, M);

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
void mlp_transpose_range(const float *restrict W, float *restrict wt, size_t K, size_t N,
                            size_t lo, size_t hi)
{
    for (size_t k = lo / N; k < K && k * N < hi; k++) {
        const size_t j0 = k * N < lo ? lo - k * N : 0, j1 = (k + 1) * N > hi ? hi - k * N : N;
        for (size_t j = j0; j < j1; j++)
            wt[j * K + k] = W[k * N + j];
    }
}

/* Each W_l but the first transposed (fan_out x fan_in) at w_off[l]. */
void mlp_transpose_weights(const km_mlp_t *m, const float *w, float *wt)
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
