/* score.cu - scoring on the GPU for logreg, gbdt and the anomaly detector,
 * matching km_<kind>_predict (kernels/cpu/): one thread per row, rows staged
 * through shared memory so global reads are coalesced, sums in double as the
 * reference does them, the same output functions (sigmoid by e^-|z|, softmax
 * with the max taken off, leaf walks with the same float comparison).  The
 * trained model is read through the public accessors (logreg, anomaly) or
 * parsed from its saved bytes (gbdt: models.h's format, no accessor). */
#include <math.h>
#include <string.h>

#include "kc_score.h"

extern "C" {
#include "../../core/kiln_alloc.h"
}

#define KC_SCORE_THREADS 128
#define KC_NO_BAD 0xffffffffffffffffull

/* Row stride in the shared tile: odd, so thread t reading row t, column j
 * hits bank (t * stride + j) % 32, all different. */
static __host__ __device__ int tile_stride(int d) { return d % 2 ? d : d + 1; }

/* Copies rows [r0, r0 + rows) (contiguous in x) into tile, coalesced, and
 * records the first row holding NaN or Inf. */
__device__ __forceinline__ void stage_rows(const float *__restrict__ x, size_t r0, int rows, int d,
                                           float *tile, unsigned long long *bad)
{
    const int stride = tile_stride(d), total = rows * d;
    const float *src = x + r0 * (size_t)d;
    for (int i = (int)threadIdx.x; i < total; i += (int)blockDim.x) {
        const float v = __ldcs(src + i);
        const int r = i / d, j = i - r * d;
        tile[r * stride + j] = v;
        if (!isfinite(v))
            atomicMin(bad, (unsigned long long)(r0 + (size_t)r));
    }
    __syncthreads();
}

__global__ void kc_nonfinite_kernel(const float *__restrict__ x, size_t n, size_t d,
                                    unsigned long long *bad)
{
    const size_t total = n * d;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total;
         i += (size_t)gridDim.x * blockDim.x)
        if (!isfinite(__ldg(x + i)))
            atomicMin(bad, (unsigned long long)(i / d));
}

void kc_launch_nonfinite(const float *d_x, size_t n, size_t d, unsigned long long *d_bad,
                         cudaStream_t st)
{
    size_t blocks = (n * d + 255) / 256;
    if (blocks > 4096)
        blocks = 4096;
    if (blocks == 0)
        blocks = 1;
    kc_nonfinite_kernel<<<(unsigned)blocks, 256, 0, st>>>(d_x, n, d, d_bad);
}

/* ---- logreg ----------------------------------------------------------- */

__global__ void __launch_bounds__(KC_SCORE_THREADS)
kc_logreg_kernel(const float *__restrict__ x, size_t n, int d, const double *__restrict__ w,
                 int k_n, float *__restrict__ scores, int32_t *__restrict__ pred,
                 unsigned long long *bad)
{
    extern __shared__ double kc_sh_d[];
    const int stride = d + 1, n_rows_w = k_n == 2 ? 1 : k_n;
    double *ws = kc_sh_d;
    float *tile = (float *)(ws + (size_t)n_rows_w * stride);
    for (int i = (int)threadIdx.x; i < n_rows_w * stride; i += (int)blockDim.x)
        ws[i] = w[i];
    const int ts = tile_stride(d);
    for (size_t r0 = (size_t)blockIdx.x * blockDim.x; r0 < n; r0 += (size_t)gridDim.x * blockDim.x) {
        const int rows = n - r0 < blockDim.x ? (int)(n - r0) : (int)blockDim.x;
        __syncthreads();    /* the previous tile is read; ws is loaded */
        stage_rows(x, r0, rows, d, tile, bad);
        if ((int)threadIdx.x >= rows)
            continue;
        const size_t i = r0 + threadIdx.x;
        const float *row = tile + threadIdx.x * ts;
        float *sc = scores + i * (size_t)k_n;
        if (k_n == 2) {
            double zi = 0;
            for (int j = 0; j < d; j++)
                zi += (double)row[j] * ws[j];
            zi += ws[d];
            const double e = exp(-fabs(zi)), p_hi = 1.0 / (1.0 + e), p_lo = e / (1.0 + e);
            sc[0] = (float)(zi >= 0 ? p_lo : p_hi);
            sc[1] = (float)(zi >= 0 ? p_hi : p_lo);
            if (pred)
                pred[i] = zi > 0;
            continue;
        }
        double z[KC_LOGREG_MAX_CLASSES];
        int best = 0;
        for (int k = 0; k < k_n; k++) {
            const double *wk = ws + (size_t)k * stride;
            double s = 0;
            for (int j = 0; j < d; j++)
                s += (double)row[j] * wk[j];
            z[k] = s + wk[d];
            best = z[k] > z[best] ? k : best;
        }
        double s = 0;
        const double z_max = z[best];
        for (int k = 0; k < k_n; k++) {
            z[k] = exp(z[k] - z_max);
            s += z[k];
        }
        for (int k = 0; k < k_n; k++)
            sc[k] = (float)(z[k] / s);
        if (pred)
            pred[i] = best;
    }
}

/* ---- anomaly: Mahalanobis by forward substitution ----------------------- */

__global__ void __launch_bounds__(KC_SCORE_THREADS)
kc_anomaly_kernel(const float *__restrict__ x, size_t n, int d, const double *__restrict__ w,
                  double threshold, float *__restrict__ scores, int32_t *__restrict__ pred,
                  unsigned long long *bad)
{
    extern __shared__ double kc_sh_d[];
    const int n_w = d + d * (d + 1) / 2;
    double *ws = kc_sh_d;                 /* mean[d], then L packed by rows */
    float *tile = (float *)(ws + n_w);
    for (int i = (int)threadIdx.x; i < n_w; i += (int)blockDim.x)
        ws[i] = w[i];
    const double *mean = ws, *L = ws + d;
    const int ts = tile_stride(d);
    for (size_t r0 = (size_t)blockIdx.x * blockDim.x; r0 < n; r0 += (size_t)gridDim.x * blockDim.x) {
        const int rows = n - r0 < blockDim.x ? (int)(n - r0) : (int)blockDim.x;
        __syncthreads();
        stage_rows(x, r0, rows, d, tile, bad);
        if ((int)threadIdx.x >= rows)
            continue;
        const size_t i = r0 + threadIdx.x;
        const float *row = tile + threadIdx.x * ts;
        double z[KC_ANOMALY_MAX_FEATURES];
        double q = 0;
        for (int a = 0; a < d; a++) {
            const double *la = L + (size_t)a * (a + 1) / 2;
            double v = (double)row[a] - mean[a];
            for (int k = 0; k < a; k++)
                v -= la[k] * z[k];
            z[a] = v / la[a];
            q += z[a] * z[a];
        }
        const double dist = sqrt(q);
        scores[i] = (float)dist;
        if (pred)
            pred[i] = dist > threshold;
    }
}

/* ---- gbdt: every tree walked a fixed depth (leaves point at themselves) - */

__global__ void __launch_bounds__(KC_SCORE_THREADS)
kc_gbdt_kernel(const float *__restrict__ x, size_t n, int d, const int4 *__restrict__ nodes,
               const double *__restrict__ value, const int *__restrict__ tree_start,
               const int *__restrict__ tree_depth, const double *__restrict__ init,
               int n_trees, int K, int n_classes, float *__restrict__ scores,
               int32_t *__restrict__ pred, unsigned long long *bad)
{
    extern __shared__ double kc_sh_d[];
    float *tile = (float *)kc_sh_d;
    const int ts = tile_stride(d), n_out = n_classes ? n_classes : 1;
    for (size_t r0 = (size_t)blockIdx.x * blockDim.x; r0 < n; r0 += (size_t)gridDim.x * blockDim.x) {
        const int rows = n - r0 < blockDim.x ? (int)(n - r0) : (int)blockDim.x;
        __syncthreads();
        stage_rows(x, r0, rows, d, tile, bad);
        if ((int)threadIdx.x >= rows)
            continue;
        const size_t i = r0 + threadIdx.x;
        const float *row = tile + threadIdx.x * ts;
        double raw[KC_GBDT_MAX_CLASSES];
        for (int k = 0; k < K; k++)
            raw[k] = __ldg(init + k);
        /* Trees in the reference's order, so each raw score is the same
         * sum of the same doubles. */
        for (int t = 0; t < n_trees; t++) {
            const int base = __ldg(tree_start + t), depth = __ldg(tree_depth + t);
            int at = base;
            for (int s = 0; s < depth; s++) {
                const int4 q = __ldg(nodes + at);
                at = row[q.x] > __int_as_float(q.y) ? q.w : q.z;
            }
            raw[t % K] += __ldg(value + at);
        }
        float *sc = scores + i * (size_t)n_out;
        int32_t best = 0;
        if (n_classes == 0) {
            sc[0] = (float)raw[0];
        } else if (n_classes == 2) {
            const double p1 = 1.0 / (1.0 + exp(-raw[0]));
            sc[0] = (float)(1.0 - p1);
            sc[1] = (float)p1;
            best = raw[0] > 0;
        } else {
            double mx = raw[0], sum = 0;
            for (int k = 1; k < K; k++)
                if (raw[k] > mx) {
                    mx = raw[k];
                    best = k;
                }
            for (int k = 0; k < K; k++)
                sum += exp(raw[k] - mx);
            for (int k = 0; k < K; k++)
                sc[k] = (float)(exp(raw[k] - mx) / sum);
        }
        if (pred)
            pred[i] = best;
    }
}

/* ---- models ------------------------------------------------------------- */

static int new_model(kc_ctx_t *ctx, kc_kind_t kind, kc_model_t **out, kiln_err_t *err)
{
    int rc;
    *out = NULL;
    if ((rc = kc_ctx_enter(ctx, err)) < 0)
        return rc;
    kc_model_t *m = (kc_model_t *)kiln_calloc(1, sizeof *m);
    if (!m)
        return kiln_err_set(err, KILN_ENOMEM, "cuda score: no memory for a model");
    m->ctx = ctx;
    m->kind = kind;
    *out = m;
    return 0;
}

void kc_model_destroy(kc_model_t **mp)
{
    if (!mp || !*mp)
        return;
    kc_model_t *m = *mp;
    kc_ctx_t *ctx = m->ctx;
    cudaSetDevice(ctx->device);
    cudaStreamSynchronize(ctx->stream[0]);
    kc_dev_free(ctx, (void **)&m->d_w);
    kc_dev_free(ctx, (void **)&m->d_nodes);
    kc_dev_free(ctx, (void **)&m->d_value);
    kc_dev_free(ctx, (void **)&m->d_tree_start);
    kc_dev_free(ctx, (void **)&m->d_tree_depth);
    kc_dev_free(ctx, (void **)&m->d_init);
    kc_dev_free(ctx, (void **)&m->d_params);
    kc_dev_free(ctx, (void **)&m->d_act[0]);
    kc_dev_free(ctx, (void **)&m->d_act[1]);
    kc_dev_free(ctx, (void **)&m->d_x);
    kc_dev_free(ctx, (void **)&m->d_scores);
    kc_dev_free(ctx, (void **)&m->d_pred);
    kc_dev_free(ctx, (void **)&m->d_bad);
    kiln_free(m);
    *mp = NULL;
}

size_t kc_model_n_features(const kc_model_t *m) { return m ? m->d : 0; }
size_t kc_model_n_outputs(const kc_model_t *m) { return m ? m->n_out : 0; }

static int upload(kc_model_t *m, void **dst, const void *src, size_t bytes, kiln_err_t *err)
{
    int rc;
    if ((rc = kc_dev_alloc(m->ctx, bytes, dst, err)) < 0)
        return rc;
    return kc_copy_to_dev(m->ctx, *dst, src, bytes, err);
}

int kc_model_from_logreg(kc_ctx_t *ctx, const km_logreg_t *lr, kc_model_t **out, kiln_err_t *err)
{
    int rc;
    kc_model_t *m;
    if (!lr)
        return kiln_err_set(err, KILN_EINVAL, "cuda score: NULL logreg model");
    const size_t d = km_logreg_n_features(lr), k_n = km_logreg_n_outputs(lr);
    if (k_n > KC_LOGREG_MAX_CLASSES)
        return kiln_err_set(err, KILN_EUNSUPPORTED,
                            "cuda score: logreg with %zu classes (the GPU takes %d; use the CPU)",
                            k_n, KC_LOGREG_MAX_CLASSES);
    const size_t n_w = km_logreg_n_weights(d, (int)k_n);
    if (n_w * sizeof(double) + KC_SCORE_THREADS * (size_t)tile_stride((int)d) * sizeof(float) >
        ctx->prop.sharedMemPerBlockOptin)
        return kiln_err_set(err, KILN_EUNSUPPORTED,
                            "cuda score: logreg of %zu features x %zu classes does not fit shared "
                            "memory (use the CPU)", d, k_n);
    if ((rc = new_model(ctx, KC_LOGREG, &m, err)) < 0)
        return rc;
    m->d = d;
    m->n_out = k_n;
    m->n_classes = (int)k_n;
    m->n_w = n_w;
    if ((rc = upload(m, (void **)&m->d_w, km_logreg_weights(lr), n_w * sizeof(double), err)) < 0) {
        kc_model_destroy(&m);
        return rc;
    }
    *out = m;
    return 0;
}

/* The reference's Cholesky-Banachiewicz (anomaly.c), on the saved
 * covariance, in the same order, so the factor is the same doubles. */
static int cholesky_packed(const double *cov, size_t d, double *L)
{
    for (size_t i = 0; i < d; i++) {
        double *li = L + i * (i + 1) / 2;
        for (size_t j = 0; j <= i; j++) {
            const double *lj = L + j * (j + 1) / 2;
            double a = cov[i * d + j];
            for (size_t k = 0; k < j; k++)
                a -= li[k] * lj[k];
            if (i == j) {
                if (!(a > 0) || !isfinite(a))
                    return -1;
                li[i] = sqrt(a);
            } else {
                li[j] = a / lj[j];
            }
        }
    }
    return 0;
}

int kc_model_from_anomaly(kc_ctx_t *ctx, const km_anomaly_t *an, kc_model_t **out,
                          kiln_err_t *err)
{
    int rc;
    kc_model_t *m;
    if (!an)
        return kiln_err_set(err, KILN_EINVAL, "cuda score: NULL anomaly model");
    const size_t d = km_anomaly_n_features(an);
    const size_t n_w = d + d * (d + 1) / 2;
    if (d > KC_ANOMALY_MAX_FEATURES ||
        n_w * sizeof(double) + KC_SCORE_THREADS * (size_t)tile_stride((int)d) * sizeof(float) >
            ctx->prop.sharedMemPerBlockOptin)
        return kiln_err_set(err, KILN_EUNSUPPORTED,
                            "cuda score: anomaly model of %zu features (the GPU takes %d; use the "
                            "CPU)", d, KC_ANOMALY_MAX_FEATURES);
    double *w = (double *)kiln_malloc(n_w * sizeof *w);
    if (!w)
        return kiln_err_set(err, KILN_ENOMEM, "cuda score: no memory for %zu features", d);
    memcpy(w, km_anomaly_location(an), d * sizeof *w);
    if (cholesky_packed(km_anomaly_covariance(an), d, w + d) < 0) {
        kiln_free(w);
        return kiln_err_set(err, KILN_EINVAL, "cuda score: anomaly covariance not positive definite");
    }
    if ((rc = new_model(ctx, KC_ANOMALY, &m, err)) < 0) {
        kiln_free(w);
        return rc;
    }
    m->d = d;
    m->n_out = 1;
    m->n_w = n_w;
    m->threshold = km_anomaly_threshold(an);
    rc = upload(m, (void **)&m->d_w, w, n_w * sizeof *w, err);
    kiln_free(w);
    if (rc < 0) {
        kc_model_destroy(&m);
        return rc;
    }
    *out = m;
    return 0;
}

/* Depth of each tree as the reference computes it (gbdt_model.c). */
static int tree_depth(const int4 *nd, int n_nodes, int base, int *scratch)
{
    int max = 0;
    memset(scratch, 0, (size_t)n_nodes * sizeof *scratch);
    for (int i = 0; i < n_nodes; i++) {
        if (nd[i].z == base + i && nd[i].w == base + i)
            continue;
        const int c[2] = {nd[i].z - base, nd[i].w - base};
        for (int k = 0; k < 2; k++) {
            int dc = scratch[i] + 1;
            if (dc > scratch[c[k]])
                scratch[c[k]] = dc;
            if (dc > max)
                max = dc;
        }
    }
    return max;
}

int kc_model_from_gbdt(kc_ctx_t *ctx, const km_gbdt_t *gb, kc_model_t **out, kiln_err_t *err)
{
    int rc = 0;
    kc_model_t *m = NULL;
    km_buf_t buf = {NULL, 0, 0, 0};
    int4 *nodes = NULL;
    double *value = NULL, init[KC_GBDT_MAX_CLASSES];
    int *start = NULL, *depth = NULL, *scratch = NULL;
    uint32_t magic, version, n_classes, per_round;
    uint64_t d, n_trees, total = 0;
    *out = NULL;
    if (!gb)
        return kiln_err_set(err, KILN_EINVAL, "cuda score: NULL gbdt model");
    /* No accessor exposes the trees: read them from the saved bytes
     * (gbdt_model.c: "KGBD", version, d, n_classes, per_round, n_trees,
     * init[per_round], then per tree n_nodes and its nodes). */
    if ((rc = km_gbdt_save(gb, &buf, err)) < 0)
        return rc;
    km_rd_t r = {buf.p, buf.len, 0};
    if (km_rd_u32(&r, &magic) < 0 || km_rd_u32(&r, &version) < 0 || version != 1 ||
        km_rd_u64(&r, &d) < 0 || km_rd_u32(&r, &n_classes) < 0 || km_rd_u32(&r, &per_round) < 0 ||
        km_rd_u64(&r, &n_trees) < 0) {
        rc = kiln_err_set(err, KILN_EFORMAT, "cuda score: gbdt bytes of an unknown version");
        goto out;
    }
    if (per_round > KC_GBDT_MAX_CLASSES || n_trees > (1u << 24)) {
        rc = kiln_err_set(err, KILN_EUNSUPPORTED,
                          "cuda score: gbdt with %u trees per round (the GPU takes %d; use the CPU)",
                          per_round, KC_GBDT_MAX_CLASSES);
        goto out;
    }
    if (km_rd_f64s(&r, init, per_round) < 0) {
        rc = kiln_err_set(err, KILN_EFORMAT, "cuda score: gbdt bytes truncated");
        goto out;
    }
    {
        /* First pass: count nodes; second: fill. */
        size_t off0 = r.off;
        for (uint64_t t = 0; t < n_trees; t++) {
            uint32_t nn;
            if (km_rd_u32(&r, &nn) < 0 || (size_t)nn * 24 > r.len - r.off) {
                rc = kiln_err_set(err, KILN_EFORMAT, "cuda score: gbdt bytes truncated");
                goto out;
            }
            r.off += (size_t)nn * 24;
            total += nn;
        }
        if (total > (1u << 30)) {
            rc = kiln_err_set(err, KILN_EUNSUPPORTED, "cuda score: gbdt of %llu nodes",
                              (unsigned long long)total);
            goto out;
        }
        r.off = off0;
        nodes = (int4 *)kiln_malloc((total ? total : 1) * sizeof *nodes);
        value = (double *)kiln_malloc((total ? total : 1) * sizeof *value);
        start = (int *)kiln_malloc((n_trees + 1) * sizeof *start);
        depth = (int *)kiln_malloc((n_trees ? n_trees : 1) * sizeof *depth);
        scratch = (int *)kiln_malloc((total ? total : 1) * sizeof *scratch);
        if (!nodes || !value || !start || !depth || !scratch) {
            rc = kiln_err_set(err, KILN_ENOMEM, "cuda score: no memory for %llu gbdt nodes",
                              (unsigned long long)total);
            goto out;
        }
        int at = 0;
        for (uint64_t t = 0; t < n_trees; t++) {
            uint32_t nn;
            km_rd_u32(&r, &nn);
            start[t] = at;
            for (uint32_t i = 0; i < nn; i++) {
                uint32_t f, c0, c1;
                float thr;
                km_rd_u32(&r, &f);
                km_rd_f32s(&r, &thr, 1);
                km_rd_u32(&r, &c0);
                km_rd_u32(&r, &c1);
                km_rd_f64s(&r, &value[at + (int)i], 1);
                if (c0 == i && c1 == i) {
                    /* A leaf stays put whatever x holds (as load() makes it). */
                    const float inf = INFINITY;
                    int bits;
                    memcpy(&bits, &inf, sizeof bits);
                    nodes[at + (int)i] = make_int4(0, bits, at + (int)i, at + (int)i);
                } else {
                    int bits;
                    memcpy(&bits, &thr, sizeof bits);
                    if (f >= d || c0 >= nn || c1 >= nn) {
                        rc = kiln_err_set(err, KILN_EFORMAT, "cuda score: malformed gbdt node");
                        goto out;
                    }
                    nodes[at + (int)i] = make_int4((int)f, bits, at + (int)c0, at + (int)c1);
                    value[at + (int)i] = 0;
                }
            }
            depth[t] = tree_depth(nodes + at, (int)nn, at, scratch);
            at += (int)nn;
        }
        start[n_trees] = at;
    }
    if ((size_t)KC_SCORE_THREADS * (size_t)tile_stride((int)d) * sizeof(float) >
        ctx->prop.sharedMemPerBlockOptin) {
        rc = kiln_err_set(err, KILN_EUNSUPPORTED, "cuda score: gbdt of %llu features does not fit "
                          "shared memory (use the CPU)", (unsigned long long)d);
        goto out;
    }
    if ((rc = new_model(ctx, KC_GBDT, &m, err)) < 0)
        goto out;
    m->d = (size_t)d;
    m->n_classes = (int)n_classes;
    m->n_out = n_classes ? n_classes : 1;
    m->per_round = per_round;
    m->n_trees = (size_t)n_trees;
    if ((rc = upload(m, (void **)&m->d_nodes, nodes, (total ? total : 1) * sizeof *nodes, err)) < 0 ||
        (rc = upload(m, (void **)&m->d_value, value, (total ? total : 1) * sizeof *value, err)) < 0 ||
        (rc = upload(m, (void **)&m->d_tree_start, start, (n_trees + 1) * sizeof *start, err)) < 0 ||
        (rc = upload(m, (void **)&m->d_tree_depth, depth, (n_trees ? n_trees : 1) * sizeof *depth,
                     err)) < 0 ||
        (rc = upload(m, (void **)&m->d_init, init, per_round * sizeof *init, err)) < 0)
        goto out;
    *out = m;
    m = NULL;
out:
    kc_model_destroy(&m);
    km_buf_free(&buf);
    kiln_free(nodes);
    kiln_free(value);
    kiln_free(start);
    kiln_free(depth);
    kiln_free(scratch);
    return rc;
}

/* ---- predict -------------------------------------------------------------- */

static size_t tile_bytes(const kc_model_t *m)
{
    return (size_t)KC_SCORE_THREADS * (size_t)tile_stride((int)m->d) * sizeof(float);
}

/* row_base: the index of d_x's first row in the caller's whole x, so a
 * non-finite row is named as the caller knows it. */
static int predict_dev(kc_model_t *m, const float *d_x, size_t n, float *d_scores,
                       int32_t *d_pred, size_t row_base, kiln_err_t *err)
{
    int rc;
    if (!m || (n && (!d_x || !d_scores)))
        return kiln_err_set(err, KILN_EINVAL, "cuda score: NULL model or buffer");
    if (n == 0)
        return 0;
    if ((rc = kc_ctx_enter(m->ctx, err)) < 0)
        return rc;
    if (!m->d_bad && (rc = kc_dev_alloc(m->ctx, sizeof *m->d_bad, (void **)&m->d_bad, err)) < 0)
        return rc;
    cudaStream_t st = m->ctx->stream[0];
    KC_TRY(cudaMemsetAsync(m->d_bad, 0xff, sizeof *m->d_bad, st), "cudaMemsetAsync");
    const size_t blocks_needed = (n + KC_SCORE_THREADS - 1) / KC_SCORE_THREADS;
    const size_t max_grid = (size_t)m->ctx->prop.multiProcessorCount * 16;
    const unsigned grid = (unsigned)(blocks_needed < max_grid ? blocks_needed : max_grid);
    const int d = (int)m->d;
    const char *kname = "kc_score";
    switch (m->kind) {
    case KC_LOGREG: {
        const size_t shm = m->n_w * sizeof(double) + tile_bytes(m);
        KC_TRY(cudaFuncSetAttribute(kc_logreg_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                    (int)shm), "cudaFuncSetAttribute(kc_logreg_kernel)");
        kc_logreg_kernel<<<grid, KC_SCORE_THREADS, shm, st>>>(d_x, n, d, m->d_w, m->n_classes,
                                                             d_scores, d_pred, m->d_bad);
        kname = "kc_logreg_kernel";
        break;
    }
    case KC_ANOMALY: {
        const size_t shm = m->n_w * sizeof(double) + tile_bytes(m);
        KC_TRY(cudaFuncSetAttribute(kc_anomaly_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                    (int)shm), "cudaFuncSetAttribute(kc_anomaly_kernel)");
        kc_anomaly_kernel<<<grid, KC_SCORE_THREADS, shm, st>>>(d_x, n, d, m->d_w, m->threshold,
                                                              d_scores, d_pred, m->d_bad);
        kname = "kc_anomaly_kernel";
        break;
    }
    case KC_GBDT: {
        const size_t shm = tile_bytes(m);
        KC_TRY(cudaFuncSetAttribute(kc_gbdt_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                    (int)shm), "cudaFuncSetAttribute(kc_gbdt_kernel)");
        kc_gbdt_kernel<<<grid, KC_SCORE_THREADS, shm, st>>>(
            d_x, n, d, m->d_nodes, m->d_value, m->d_tree_start, m->d_tree_depth, m->d_init,
            (int)m->n_trees, (int)m->per_round, m->n_classes, d_scores, d_pred, m->d_bad);
        kname = "kc_gbdt_kernel";
        break;
    }
    case KC_MLP:
        if ((rc = kc_mlp_score(m, d_x, n, d_scores, d_pred, err)) < 0)
            return rc;
        kname = "kc_mlp_score";
        break;
    }
    if ((rc = kc_check_launch(err, kname)) < 0)
        return rc;
    unsigned long long bad = KC_NO_BAD;
    KC_TRY(cudaMemcpyAsync(&bad, m->d_bad, sizeof bad, cudaMemcpyDeviceToHost, st),
           "cudaMemcpyAsync (non-finite row)");
    KC_TRY(cudaStreamSynchronize(st), "cudaStreamSynchronize (score)");
    if (bad != KC_NO_BAD)
        return kiln_err_at(err, KILN_ENONFINITE, "x", "cuda score: row %llu of x holds NaN or Inf",
                           (unsigned long long)row_base + bad);
    return 0;
}

int kc_model_predict_dev(kc_model_t *m, const float *d_x, size_t n, float *d_scores,
                         int32_t *d_pred, kiln_err_t *err)
{
    return predict_dev(m, d_x, n, d_scores, d_pred, 0, err);
}

int kc_model_predict(kc_model_t *m, const float *x, size_t n, float *scores, int32_t *pred,
                     kiln_err_t *err)
{
    int rc;
    if (!m || (n && (!x || !scores)))
        return kiln_err_set(err, KILN_EINVAL, "cuda score: NULL model or buffer");
    if ((rc = kc_ctx_enter(m->ctx, err)) < 0)
        return rc;
    const size_t chunk = KC_SCORE_ROWS_PER_CHUNK;
    if (!m->d_x) {
        if ((rc = kc_dev_alloc(m->ctx, chunk * m->d * sizeof(float), (void **)&m->d_x, err)) < 0 ||
            (rc = kc_dev_alloc(m->ctx, chunk * m->n_out * sizeof(float), (void **)&m->d_scores,
                               err)) < 0 ||
            (rc = kc_dev_alloc(m->ctx, chunk * sizeof(int32_t), (void **)&m->d_pred, err)) < 0)
            return rc;
    }
    cudaStream_t st = m->ctx->stream[0];
    for (size_t r0 = 0; r0 < n; r0 += chunk) {
        const size_t nr = n - r0 < chunk ? n - r0 : chunk;
        KC_TRY(cudaMemcpyAsync(m->d_x, x + r0 * m->d, nr * m->d * sizeof(float),
                               cudaMemcpyHostToDevice, st), "cudaMemcpyAsync (rows to the device)");
        if ((rc = predict_dev(m, m->d_x, nr, m->d_scores, pred ? m->d_pred : NULL, r0, err)) < 0)
            return rc;
        KC_TRY(cudaMemcpyAsync(scores + r0 * m->n_out, m->d_scores, nr * m->n_out * sizeof(float),
                               cudaMemcpyDeviceToHost, st), "cudaMemcpyAsync (scores to the host)");
        if (pred)
            KC_TRY(cudaMemcpyAsync(pred + r0, m->d_pred, nr * sizeof(int32_t),
                                   cudaMemcpyDeviceToHost, st), "cudaMemcpyAsync (classes to the host)");
    }
    KC_TRY(cudaStreamSynchronize(st), "cudaStreamSynchronize (score)");
    return 0;
}
