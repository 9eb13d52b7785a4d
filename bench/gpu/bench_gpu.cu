/* bench_gpu.cu - the GPU benchmark (make bench-gpu, tests/gpu/run.sh): the
 * device's measured copy bandwidth; kc_time_stats in GB/s as a fraction of
 * it; the fused FFT-features kernel against cuFFT (batched R2C) followed by
 * a separate reduction kernel over the spectrum it wrote to global memory;
 * end-to-end host-to-host featurization against the CPU reference (one
 * thread and all cores); scoring rows/s of every model kind against the CPU
 * predict; training (section 6): gbdt histogram build, mlp and logreg fits,
 * GPU against the CPU reference on the same rows.  Kernel times are cudaEvent medians of 7 runs after a warm-up;
 * host-to-host ones wall-clock medians of 3.  Prints a table and writes one
 * JSON object per line to the file given.
 * Usage: bench_gpu OUT.json [DATA_DIR] */
#include <cufft.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../../kernels/cuda/kc_feat_plan.h"
#include "../../tests/gpu/gpu_check.h"
#include "../../tests/gpu/hist_ref.h"
#include "../../tests/gpu/train_ref.h"

static FILE *g_json;
static char g_device[256];

#define CK(call)                                                                       \
    do {                                                                               \
        cudaError_t e_ = (call);                                                       \
        if (e_ != cudaSuccess) {                                                       \
            fprintf(stderr, "bench_gpu: %s: %s\n", #call, cudaGetErrorString(e_));      \
            exit(1);                                                                   \
        }                                                                              \
    } while (0)
#define KK(call)                                                                       \
    do {                                                                               \
        int r_ = (call);                                                               \
        if (r_ < 0) {                                                                  \
            fprintf(stderr, "bench_gpu: %s: %s\n", #call, err.msg);                    \
            exit(1);                                                                   \
        }                                                                              \
    } while (0)

/* One table row and one JSON line; extra is ",\"key\":value..." or "". */
static void emit(const char *name, double value, const char *unit, const char *extra)
{
    printf("%-44s %14.4g %-10s%s\n", name, value, unit, extra);
    if (g_json)
        fprintf(g_json, "{\"name\":\"%s\",\"value\":%.6g,\"unit\":\"%s\",\"device\":\"%s\"%s}\n",
                name, value, unit, g_device, extra);
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}
static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_d);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}
static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Median seconds of f() on stream st, by cudaEvents, after one warm-up. */
template <class F> static double time_gpu(cudaStream_t st, F f, int reps = 7)
{
    cudaEvent_t a, b;
    double t[16];
    CK(cudaEventCreate(&a));
    CK(cudaEventCreate(&b));
    f();
    CK(cudaStreamSynchronize(st));
    for (int r = 0; r < reps; r++) {
        CK(cudaEventRecord(a, st));
        f();
        CK(cudaEventRecord(b, st));
        CK(cudaEventSynchronize(b));
        float ms;
        CK(cudaEventElapsedTime(&ms, a, b));
        t[r] = ms * 1e-3;
    }
    cudaEventDestroy(a);
    cudaEventDestroy(b);
    return median(t, reps);
}
template <class F> static double time_host(F f, int reps = 3)
{
    double t[16];
    f();
    for (int r = 0; r < reps; r++) {
        double t0 = now_s();
        f();
        t[r] = now_s() - t0;
    }
    return median(t, reps);
}

/* Noise plus a tone, from a hash of the index: fills GiBs in milliseconds. */
__global__ void fill_kernel(float *x, size_t n, int window_len)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        unsigned h = (unsigned)(i * 2654435761u) ^ (unsigned)(i >> 32);
        h ^= h >> 15;
        h *= 0x2c1b3c6du;
        h ^= h >> 12;
        const int t = (int)(i % (size_t)window_len);
        x[i] = (float)(h & 0xffff) * (1.0f / 32768.0f) - 1.0f + __sinf(0.3f * (float)t);
    }
}

/* The baseline's second pass: per window, power from the cuFFT spectrum in
 * global memory (kn_power_spectrum's scaling), then band energies,
 * centroid and dominant frequency, with the fused kernel's bin ranges. */
__global__ void reduce_kernel(const kc_feat_params_t p, const cufftComplex *__restrict__ spec,
                              size_t n_windows, float *__restrict__ out)
{
    extern __shared__ float pw[];
    __shared__ double red[KC_DBLOCK_SCRATCH];
    __shared__ double dsh[KC_MAX_BANDS];
    kc_dblock b = {red};
    const int n = p.n, N = n / 2;
    const double inv_n2 = 1.0 / ((double)n * (double)n);
    for (size_t w = blockIdx.x; w < n_windows; w += gridDim.x) {
        const cufftComplex *s = spec + w * (size_t)(N + 1);
        for (int k = (int)threadIdx.x; k <= N; k += (int)blockDim.x) {
            const cufftComplex z = __ldcs(s + k);
            const double m2 = (double)z.x * z.x + (double)z.y * z.y;
            pw[k] = (float)((k == 0 || k == N ? 1.0 : 2.0) * m2 * inv_n2);
        }
        __syncthreads();
        float *o = out + w * (size_t)p.n_out;
        b.range_sums(p.n_bands, p.band_k0, p.band_k1, pw, dsh);
        double c[2];
        b.reduce<2>(N + 1, kc_op_sum(), [&](int k, double *a) {
            a[0] += (double)k * pw[k];
            a[1] += pw[k];
        }, c);
        const int at = b.argmax_first(1, N + 1, pw);
        if (threadIdx.x == 0) {
            for (int r = 0; r < p.n_bands; r++)
                o[r] = (float)dsh[r];
            o[p.n_bands] = (float)(c[1] > 0 ? c[0] * p.fs / (double)n / c[1] : 0.0);
            o[p.n_bands + 1] = (float)((double)at * p.fs / (double)n);
        }
        __syncthreads();
    }
}

typedef struct {
    const kc_feat_config_t *cfg;
    const float *x;
    size_t lo, hi, n_out;
    float *out;
} cpu_job_t;

static void *cpu_worker(void *arg)
{
    cpu_job_t *j = (cpu_job_t *)arg;
    gr_ref_t ref;
    kiln_err_t err;
    if (gr_ref_init(&ref, j->cfg, &err) < 0)
        return NULL;
    for (size_t w = j->lo; w < j->hi; w++)
        gr_ref_window(&ref, j->x + w * j->cfg->window_len, j->out + w * j->n_out);
    gr_ref_free(&ref);
    return NULL;
}

/* CPU reference featurization of windows [0, n_windows) on n_threads. */
static double cpu_featurize(const kc_feat_config_t *cfg, const float *x, size_t n_windows,
                            size_t n_out, float *out, int n_threads)
{
    pthread_t th[256];
    cpu_job_t jobs[256];
    double t0 = now_s();
    for (int i = 0; i < n_threads; i++) {
        jobs[i] = (cpu_job_t){cfg, x, n_windows * (size_t)i / (size_t)n_threads,
                              n_windows * (size_t)(i + 1) / (size_t)n_threads, n_out, out};
        pthread_create(&th[i], NULL, cpu_worker, &jobs[i]);
    }
    for (int i = 0; i < n_threads; i++)
        pthread_join(th[i], NULL);
    return now_s() - t0;
}

/* Training rows, cheap to make (a hash, not Box-Muller: 64M values): class
 * c = row % 3 shifts every third feature; every fourth feature on a coarse
 * grid (ties in the bins). */
static void train_rows(size_t n, size_t d, float *x, int32_t *y)
{
    for (size_t i = 0; i < n; i++) {
        const int c = (int)((i * 2654435761u) % 3);
        y[i] = c;
        for (size_t j = 0; j < d; j++) {
            uint64_t h = (i * d + j + 1) * 0x9e3779b97f4a7c15ull;
            h ^= h >> 29;
            h *= 0xbf58476d1ce4e5b9ull;
            h ^= h >> 32;
            double v = ((double)(h >> 11) * 0x1.0p-53 - 0.5) * 3.0 + (j % 3 == (size_t)c ? 0.8 : 0.0);
            if (j % 4 == 3)
                v = floor(v * 4.0) / 4.0;
            x[i * d + j] = (float)v;
        }
    }
}

static double accuracy(const int32_t *pred, const int32_t *y, size_t n)
{
    size_t r = 0;
    for (size_t i = 0; i < n; i++)
        r += pred[i] == y[i];
    return 100.0 * (double)r / (double)n;
}

/* ---- 6. training: gbdt histograms, mlp and logreg fits vs the CPU -------- */
static void bench_training(kc_ctx_t *ctx, cudaStream_t st, int n_cpu)
{
    kiln_err_t err;
    char extra[768];
    const size_t n = 1000000, d = 64, nv = 100000;
    float *x = (float *)malloc((n + nv) * d * sizeof *x);
    int32_t *y = (int32_t *)malloc((n + nv) * sizeof *y), *pred = (int32_t *)malloc(nv * sizeof *pred);
    float *scores = (float *)malloc(nv * 3 * sizeof *scores);
    train_rows(n + nv, d, x, y);
    const float *xv = x + n * d;
    const int32_t *yv = y + n;

    /* gbdt: one histogram of all rows, and of a node of ~30% of them
     * (a row list: gather), 64 features x up to 255 bins. */
    {
        uint8_t *codes = NULL;
        uint16_t nb[64];
        KK(gt_bin_codes(x, n, d, 255, n_cpu, &codes, nb, &err));
        float *gh = (float *)malloc(2 * n * sizeof *gh), *ogh = (float *)malloc(2 * n * sizeof *ogh);
        uint32_t *rows = (uint32_t *)malloc(n * sizeof *rows);
        size_t m = 0;
        for (size_t i = 0; i < n; i++) {
            const double pr = 1.0 / (1.0 + exp(-0.3 * x[i * d]));
            gh[2 * i] = (float)(pr - (y[i] == 1));
            gh[2 * i + 1] = (float)(pr * (1.0 - pr));
            if ((i * 2654435761u) % 10 < 3)
                rows[m++] = (uint32_t)i;
        }
        kc_gbdt_hist_t *h = NULL;
        KK(kc_gbdt_hist_new(ctx, codes, n, d, nb, &h, &err));
        const size_t B = kc_gbdt_hist_total_bins(h);
        double *hist = (double *)malloc(B * 4 * sizeof *hist), *d_hist = NULL;
        float *d_gh = NULL;
        uint32_t *d_rows = NULL;
        KK(kc_dev_alloc(ctx, 2 * n * sizeof(float), (void **)&d_gh, &err));
        KK(kc_dev_alloc(ctx, m * sizeof(uint32_t), (void **)&d_rows, &err));
        KK(kc_dev_alloc(ctx, B * 4 * sizeof(double), (void **)&d_hist, &err));
        KK(kc_copy_to_dev(ctx, d_gh, gh, 2 * n * sizeof(float), &err));
        KK(kc_copy_to_dev(ctx, d_rows, rows, m * sizeof(uint32_t), &err));
        for (int node = 0; node < 2; node++) {
            const size_t rows_n = node ? m : n;
            const uint32_t *dr = node ? d_rows : NULL, *hr = node ? rows : NULL;
            const double t_gpu = time_gpu(st, [&] { KK(kc_gbdt_hist_build(h, d_gh, dr, rows_n, d_hist, st, &err)); });
            const double t_cpu = time_host([&] { gt_hist_cpu(codes, n, d, nb, hr, rows_n, gh, ogh, hist, n_cpu); }, 3);
            const double t_cpu1 = time_host([&] { gt_hist_cpu(codes, n, d, nb, hr, rows_n, gh, ogh, hist, 1); }, 1);
            char name[64];
            snprintf(name, sizeof name, "gbdt_hist_gpu_%s", node ? "node_30pct" : "all_rows");
            snprintf(extra, sizeof extra,
                     ",\"rows\":%zu,\"features\":%zu,\"bins\":%zu,\"row_features_per_s\":%.6g,"
                     "\"cpu_%dthreads_ms\":%.4g,\"cpu_1thread_ms\":%.4g,\"speedup_vs_all_cores\":%.4g,"
                     "\"speedup_vs_1thread\":%.4g",
                     rows_n, d, B, (double)rows_n * (double)d / t_gpu, n_cpu, t_cpu * 1e3, t_cpu1 * 1e3,
                     t_cpu / t_gpu, t_cpu1 / t_gpu);
            emit(name, t_gpu * 1e3, "ms", extra);
            snprintf(name, sizeof name, "gbdt_hist_cpu_%s", node ? "node_30pct" : "all_rows");
            snprintf(extra, sizeof extra, ",\"rows\":%zu,\"features\":%zu,\"threads\":%d", rows_n, d, n_cpu);
            emit(name, t_cpu * 1e3, "ms", extra);
        }
        kc_dev_free(ctx, (void **)&d_gh);
        kc_dev_free(ctx, (void **)&d_rows);
        kc_dev_free(ctx, (void **)&d_hist);
        kc_gbdt_hist_destroy(&h);
        gt_codes_free(&codes);
        free(gh);
        free(ogh);
        free(rows);
        free(hist);
    }

    /* mlp: hidden (64, 32), 3 classes, 5 epochs, batch 200 and 4096; the
     * GPU time includes copying the rows to the device.  One run each (the
     * CPU takes seconds); held-out accuracy of both. */
    km_data_t data = {x, n, d, y, NULL, 3};
    for (int bi = 0; bi < 2; bi++) {
        km_mlp_params_t p = km_mlp_defaults();
        p.n_hidden = 2;
        p.hidden[0] = 64;
        p.hidden[1] = 32;
        p.epochs = 5;
        p.batch = bi ? 4096 : 200;
        p.threads = n_cpu < KM_MLP_LANES ? n_cpu : KM_MLP_LANES;
        p.seed = 3;
        km_mlp_t *mg = NULL, *mc = NULL;
        double t0 = now_s();
        KK(kc_mlp_fit(ctx, &data, &p, NULL, &mg, &err));
        const double t_gpu = now_s() - t0;
        t0 = now_s();
        KK(km_mlp_fit(&data, &p, NULL, &mc, &err));
        const double t_cpu = now_s() - t0;
        KK(km_mlp_predict(mg, xv, nv, scores, pred, &err));
        const double acc_g = accuracy(pred, yv, nv);
        KK(km_mlp_predict(mc, xv, nv, scores, pred, &err));
        const double acc_c = accuracy(pred, yv, nv);
        char name[64];
        snprintf(name, sizeof name, "mlp_fit_gpu_batch%d", p.batch);
        snprintf(extra, sizeof extra,
                 ",\"rows\":%zu,\"features\":%zu,\"hidden\":[64,32],\"classes\":3,\"epochs\":%d,"
                 "\"batch\":%d,\"steps\":%zu,\"rows_per_s\":%.6g,\"cpu_s\":%.4g,\"cpu_threads\":%d,"
                 "\"speedup\":%.4g,\"heldout_accuracy_gpu\":%.3f,\"heldout_accuracy_cpu\":%.3f",
                 n, d, p.epochs, p.batch, (size_t)p.epochs * ((n + (size_t)p.batch - 1) / (size_t)p.batch),
                 (double)n * p.epochs / t_gpu, t_cpu, p.threads, t_cpu / t_gpu, acc_g, acc_c);
        emit(name, t_gpu, "s", extra);
        snprintf(name, sizeof name, "mlp_fit_cpu_batch%d", p.batch);
        snprintf(extra, sizeof extra, ",\"rows\":%zu,\"epochs\":%d,\"batch\":%d,\"threads\":%d,"
                 "\"rows_per_s\":%.6g", n, p.epochs, p.batch, p.threads, (double)n * p.epochs / t_cpu);
        emit(name, t_cpu, "s", extra);
        km_mlp_free(&mg);
        km_mlp_free(&mc);
    }

    /* logreg: 3 classes, scikit-learn's defaults (C = 1, tol 1e-4, 100
     * iterations); the GPU time includes copying the rows. */
    {
        km_logreg_params_t p = km_logreg_defaults();
        p.threads = n_cpu;
        km_logreg_t *mg = NULL, *mc = NULL;
        double t0 = now_s();
        KK(kc_logreg_fit(ctx, &data, &p, NULL, &mg, &err));
        const double t_gpu = now_s() - t0;
        t0 = now_s();
        KK(km_logreg_fit(&data, &p, NULL, &mc, &err));
        const double t_cpu = now_s() - t0;
        int cg, cc;
        const int ig = km_logreg_n_iter(mg, &cg), ic = km_logreg_n_iter(mc, &cc);
        KK(km_logreg_predict(mg, xv, nv, scores, pred, &err));
        const double acc_g = accuracy(pred, yv, nv);
        KK(km_logreg_predict(mc, xv, nv, scores, pred, &err));
        const double acc_c = accuracy(pred, yv, nv);
        /* Each eval alone: the objective at the CPU optimum. */
        kc_logreg_obj_t *obj = NULL;
        KK(kc_logreg_obj_new(ctx, &data, &obj, &err));
        const size_t n_w = kc_logreg_obj_n_weights(obj);
        double *sums = (double *)malloc((n_w + 1) * sizeof *sums);
        const double t_eval = time_host([&] { KK(kc_logreg_obj_sums(obj, km_logreg_weights(mc), sums, &err)); }, 7);
        kc_logreg_obj_destroy(&obj);
        free(sums);
        snprintf(extra, sizeof extra,
                 ",\"rows\":%zu,\"features\":%zu,\"classes\":3,\"iterations_gpu\":%d,\"iterations_cpu\":%d,"
                 "\"cpu_s\":%.4g,\"cpu_threads\":%d,\"speedup\":%.4g,\"gpu_eval_ms\":%.4g,"
                 "\"heldout_accuracy_gpu\":%.3f,\"heldout_accuracy_cpu\":%.3f",
                 n, d, ig, ic, t_cpu, n_cpu, t_cpu / t_gpu, t_eval * 1e3, acc_g, acc_c);
        emit("logreg_fit_gpu", t_gpu, "s", extra);
        snprintf(extra, sizeof extra, ",\"rows\":%zu,\"features\":%zu,\"threads\":%d,\"iterations\":%d",
                 n, d, n_cpu, ic);
        emit("logreg_fit_cpu", t_cpu, "s", extra);
        km_logreg_free(&mg);
        km_logreg_free(&mc);
    }
    free(x);
    free(y);
    free(pred);
    free(scores);
}

int main(int argc, char **argv)
{
    kiln_err_t err;
    kc_ctx_t *ctx = NULL;
    char extra[512];
    if (argc < 2) {
        fprintf(stderr, "usage: %s OUT.json [DATA_DIR]\n", argv[0]);
        return 2;
    }
    int n_dev = 0;
    kc_device_count(&n_dev, &err);
    if (!n_dev) {
        printf("bench_gpu: no GPU\n");
        return 2;
    }
    KK(kc_ctx_new(0, &ctx, &err));
    kc_device_info_t info;
    KK(kc_device_info(0, &info, &err));
    snprintf(g_device, sizeof g_device, "%s", info.name);
    g_json = fopen(argv[1], "w");
    if (!g_json) {
        perror(argv[1]);
        return 1;
    }
    const int n_cpu = (int)sysconf(_SC_NPROCESSORS_ONLN) > 0 ? (int)sysconf(_SC_NPROCESSORS_ONLN) : 1;
    printf("device: %s, %d SMs; host: %d cores\n", info.name, info.n_sms, n_cpu);
    cudaStream_t st = (cudaStream_t)kc_ctx_stream(ctx, 0);

    /* ---- 1. measured bandwidth: device-to-device copy (read + write) -- */
    const size_t win = 2048, n_stats_windows = 262144;            /* 2 GiB */
    const size_t stats_bytes = n_stats_windows * win * sizeof(float);
    float *d_x = NULL, *d_y = NULL;
    CK(cudaMalloc(&d_x, stats_bytes));
    fill_kernel<<<4096, 256, 0, st>>>(d_x, n_stats_windows * win, (int)win);
    CK(cudaGetLastError());
    const size_t copy_bytes = (size_t)1 << 30;
    CK(cudaMalloc(&d_y, copy_bytes));
    double t = time_gpu(st, [&] { CK(cudaMemcpyAsync(d_y, d_x, copy_bytes, cudaMemcpyDeviceToDevice, st)); });
    const double bw = 2.0 * (double)copy_bytes / t / 1e9;
    snprintf(extra, sizeof extra, ",\"bytes\":%zu,\"counts\":\"read+write\"", copy_bytes);
    emit("d2d_copy_bandwidth", bw, "GB/s", extra);
    CK(cudaFree(d_y));

    /* ---- 2. time statistics at memory speed -------------------------- */
    kn_time_stats_t *d_ts = NULL;
    CK(cudaMalloc(&d_ts, n_stats_windows * sizeof *d_ts));
    t = time_gpu(st, [&] {
        KK(kc_time_stats(ctx, d_x, n_stats_windows, win, 12000.0, 0.5, d_ts, st, &err));
    });
    const double ts_gbs = (double)stats_bytes / t / 1e9;
    snprintf(extra, sizeof extra,
             ",\"windows\":%zu,\"window_len\":%zu,\"windows_per_s\":%.6g,\"fraction_of_bandwidth\":%.4f,"
             "\"target_fraction\":0.7,\"met\":%s",
             n_stats_windows, win, (double)n_stats_windows / t, ts_gbs / bw,
             ts_gbs / bw >= 0.7 ? "true" : "false");
    emit("time_stats_read_bandwidth", ts_gbs, "GB/s", extra);
    emit("time_stats_fraction_of_bandwidth", ts_gbs / bw, "ratio", "");
    /* The kernel variants side by side (kc_time_stats_variant, stats.cu):
     * 1 block per window, 2.. warp per window in several launch shapes. */
    for (int v = 1; v <= 6; v++) {
        const double tv = time_gpu(st, [&] {
            KK(kc_time_stats_variant(ctx, d_x, n_stats_windows, win, 12000.0, 0.5, d_ts, st, v, &err));
        });
        char name[64];
        snprintf(name, sizeof name, "time_stats_variant%d_read_bandwidth", v);
        snprintf(extra, sizeof extra, ",\"fraction_of_bandwidth\":%.4f", (double)stats_bytes / tv / 1e9 / bw);
        emit(name, (double)stats_bytes / tv / 1e9, "GB/s", extra);
    }
    CK(cudaFree(d_ts));

    /* ---- 3. fused FFT features vs cuFFT + reduction ------------------- */
    static const size_t fft_lens[] = {1024, 2048, 4096};
    for (size_t li = 0; li < 3; li++) {
        const size_t n = fft_lens[li], nw = ((size_t)1 << 27) / n;   /* 512 MiB of signal */
        kc_feat_config_t cfg;
        gc_config(0, n, 12000.0, &cfg);
        cfg.time_stats = 0;
        cfg.envelope = 0;
        cfg.window = KN_WINDOW_NONE;   /* cuFFT has no window: both without */
        kc_feat_plan_t *plan = NULL;
        KK(kc_feat_plan_new(ctx, &cfg, &plan, &err));
        const size_t n_out = kc_feat_n_outputs(plan);
        float *d_out = NULL, *d_out2 = NULL;
        cufftComplex *d_spec = NULL;
        CK(cudaMalloc(&d_out, nw * n_out * sizeof(float)));
        CK(cudaMalloc(&d_out2, nw * n_out * sizeof(float)));
        CK(cudaMalloc(&d_spec, nw * (n / 2 + 1) * sizeof(cufftComplex)));
        const double t_fused = time_gpu(st, [&] { KK(kc_feat_run(plan, d_x, nw, d_out, st, &err)); });
        {
            /* Side by side: the general kernel (kc_feat_body.h) on the same
             * config, and the fast one on just the resident grid. */
            char vname[64];
            plan->use_fast = 0;
            const double t_gen = time_gpu(st, [&] { KK(kc_feat_run(plan, d_x, nw, d_out, st, &err)); });
            plan->use_fast = 1;
            snprintf(vname, sizeof vname, "fft_features_general_kernel_n%zu", n);
            emit(vname, (double)nw / t_gen, "windows/s", "");
            const int mult = plan->sf_grid_mult;
            plan->sf_grid_mult = 1;
            const double t_g4 = time_gpu(st, [&] { KK(kc_feat_run(plan, d_x, nw, d_out, st, &err)); });
            plan->sf_grid_mult = mult;
            snprintf(vname, sizeof vname, "fft_features_fast_grid1_n%zu", n);
            snprintf(extra, sizeof extra, ",\"blocks_per_sm\":%d", plan->sf_blocks_per_sm);
            emit(vname, (double)nw / t_g4, "windows/s", extra);
        }
        cufftHandle fp;
        int nn = (int)n;
        if (cufftPlanMany(&fp, 1, &nn, NULL, 1, nn, NULL, 1, nn / 2 + 1, CUFFT_R2C, (int)nw) !=
                CUFFT_SUCCESS ||
            cufftSetStream(fp, st) != CUFFT_SUCCESS) {
            fprintf(stderr, "bench_gpu: cufftPlanMany failed\n");
            return 1;
        }
        const kc_feat_params_t p = plan->p;
        const unsigned grid = (unsigned)(nw < (size_t)info.n_sms * 32 ? nw : (size_t)info.n_sms * 32);
        const size_t shm = (n / 2 + 1) * sizeof(float);
        CK(cudaFuncSetAttribute(reduce_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)shm));
        const double t_cufft = time_gpu(st, [&] {
            if (cufftExecR2C(fp, d_x, d_spec) != CUFFT_SUCCESS) {
                fprintf(stderr, "bench_gpu: cufftExecR2C failed\n");
                exit(1);
            }
            reduce_kernel<<<grid, 256, shm, st>>>(p, d_spec, nw, d_out2);
        });
        CK(cudaGetLastError());
        const double t_fft_only = time_gpu(st, [&] { cufftExecR2C(fp, d_x, d_spec); });
        /* Same features both ways (a sanity check, not the parity test). */
        float a[64], b2[64];
        CK(cudaMemcpy(a, d_out + 7 * n_out, n_out * sizeof(float), cudaMemcpyDeviceToHost));
        CK(cudaMemcpy(b2, d_out2 + 7 * n_out, n_out * sizeof(float), cudaMemcpyDeviceToHost));
        double agree = 0;
        for (size_t k = 0; k < n_out; k++)
            agree = fmax(agree, fabs(a[k] - b2[k]) / (fabs(b2[k]) + 1e-6));
        char name[64];
        snprintf(extra, sizeof extra,
                 ",\"window_len\":%zu,\"windows\":%zu,\"features\":\"5 bands, centroid, dominant\","
                 "\"cufft_plus_reduction_windows_per_s\":%.6g,\"cufft_alone_windows_per_s\":%.6g,"
                 "\"speedup\":%.4g,\"target\":\"fused faster\",\"met\":%s,\"max_rel_diff_row7\":%.3g",
                 n, nw, (double)nw / t_cufft, (double)nw / t_fft_only, t_cufft / t_fused,
                 t_fused < t_cufft ? "true" : "false", agree);
        snprintf(name, sizeof name, "fft_features_fused_n%zu", n);
        emit(name, (double)nw / t_fused, "windows/s", extra);
        snprintf(name, sizeof name, "fft_features_cufft_reduce_n%zu", n);
        snprintf(extra, sizeof extra, ",\"window_len\":%zu,\"windows\":%zu", n, nw);
        emit(name, (double)nw / t_cufft, "windows/s", extra);
        snprintf(name, sizeof name, "fft_features_fused_speedup_n%zu", n);
        emit(name, t_cufft / t_fused, "ratio", "");
        cufftDestroy(fp);
        CK(cudaFree(d_out));
        CK(cudaFree(d_out2));
        CK(cudaFree(d_spec));
        kc_feat_plan_destroy(&plan);
    }
    {
        /* Everything the demo spec asks, on the GPU alone (no transfers). */
        const size_t n = 2048, nw = 65536;
        kc_feat_config_t cfg;
        gc_config(0, n, 12000.0, &cfg);
        kc_feat_plan_t *plan = NULL;
        KK(kc_feat_plan_new(ctx, &cfg, &plan, &err));
        float *d_out = NULL;
        CK(cudaMalloc(&d_out, nw * kc_feat_n_outputs(plan) * sizeof(float)));
        t = time_gpu(st, [&] { KK(kc_feat_run(plan, d_x, nw, d_out, st, &err)); });
        snprintf(extra, sizeof extra, ",\"window_len\":%zu,\"windows\":%zu,\"signal_gbs\":%.4g,"
                 "\"fraction_of_bandwidth\":%.4f,\"features\":\"time stats, Hann spectrum 5 bands "
                 "centroid dominant, envelope 4 lines\"",
                 n, nw, (double)(nw * n * 4) / t / 1e9, (double)(nw * n * 4) / t / 1e9 / bw);
        emit("features_all_fused_device", (double)nw / t, "windows/s", extra);
        CK(cudaFree(d_out));
        kc_feat_plan_destroy(&plan);
    }
    CK(cudaFree(d_x));

    /* ---- 4. end to end: host windows to host features ----------------- */
    {
        const size_t n = 2048, nw = 65536, pattern = 512;
        kc_feat_config_t cfg;
        gc_config(0, n, 12000.0, &cfg);
        float *x = (float *)malloc(nw * n * sizeof *x), *pinned = NULL;
        for (size_t w = 0; w < pattern; w++)
            gc_signal(9, w, x + w * n, n, 12000.0);
        for (size_t w = pattern; w < nw; w++)
            memcpy(x + w * n, x + (w % pattern) * n, n * sizeof *x);
        kc_feat_plan_t *plan = NULL;
        KK(kc_feat_plan_new(ctx, &cfg, &plan, &err));
        const size_t n_out = kc_feat_n_outputs(plan);
        float *out = (float *)malloc(nw * n_out * sizeof *out);
        const double t_gpu = time_host([&] { KK(kc_featurize_host(plan, x, nw, 0, out, &err)); });
        KK(kc_host_alloc(ctx, nw * n * sizeof(float), (void **)&pinned, &err));
        memcpy(pinned, x, nw * n * sizeof(float));
        const double t_pin = time_host([&] { KK(kc_featurize_host(plan, pinned, nw, 0, out, &err)); });
        const size_t n1 = 2048, nt = 16384;
        const double t1 = cpu_featurize(&cfg, x, n1, n_out, out, 1);
        const double tn = cpu_featurize(&cfg, x, nt, n_out, out, n_cpu);
        const double gpu_wps = (double)nw / t_gpu, pin_wps = (double)nw / t_pin;
        const double cpu1 = (double)n1 / t1, cpun = (double)nt / tn;
        snprintf(extra, sizeof extra,
                 ",\"window_len\":%zu,\"windows\":%zu,\"input\":\"pageable malloc\",\"signal_gbs\":%.4g,"
                 "\"cpu_1thread_windows_per_s\":%.6g,\"cpu_%dthreads_windows_per_s\":%.6g,"
                 "\"speedup_vs_1thread\":%.4g,\"speedup_vs_all_cores\":%.4g",
                 n, nw, gpu_wps * (double)n * 4 / 1e9, cpu1, n_cpu, cpun, gpu_wps / cpu1, gpu_wps / cpun);
        emit("featurize_end_to_end_gpu", gpu_wps, "windows/s", extra);
        snprintf(extra, sizeof extra, ",\"window_len\":%zu,\"windows\":%zu,\"input\":\"pinned\",\"signal_gbs\":%.4g",
                 n, nw, pin_wps * (double)n * 4 / 1e9);
        emit("featurize_end_to_end_gpu_pinned", pin_wps, "windows/s", extra);
        snprintf(extra, sizeof extra, ",\"window_len\":%zu,\"windows\":%zu,\"threads\":1", n, n1);
        emit("featurize_cpu_1thread", cpu1, "windows/s", extra);
        snprintf(extra, sizeof extra, ",\"window_len\":%zu,\"windows\":%zu,\"threads\":%d", n, nt, n_cpu);
        emit("featurize_cpu_all_cores", cpun, "windows/s", extra);
        kc_host_free(ctx, (void **)&pinned);
        kc_feat_plan_destroy(&plan);
        free(x);
        free(out);
    }

    /* ---- 5. scoring: rows/s per model kind ---------------------------- */
    {
        const size_t n = 1000000, d = 24, n_train = 20000, n_cpu_rows = 200000;
        float *x = (float *)malloc(n * d * sizeof *x), *target = (float *)malloc(n * sizeof *target);
        int32_t *y = (int32_t *)malloc(n * sizeof *y), *pred = (int32_t *)malloc(n * sizeof *pred);
        float *scores = (float *)malloc(n * 3 * sizeof *scores);
        gt_data(21, n, d, x, y, target);
        gt_models_t models;
        KK(gt_train(x, y, target, n_train, d, &models, &err));
        float *dx = NULL, *dsc = NULL;
        int32_t *dpred = NULL;
        KK(kc_dev_alloc(ctx, n * d * sizeof(float), (void **)&dx, &err));
        KK(kc_dev_alloc(ctx, n * 3 * sizeof(float), (void **)&dsc, &err));
        KK(kc_dev_alloc(ctx, n * sizeof(int32_t), (void **)&dpred, &err));
        KK(kc_copy_to_dev(ctx, dx, x, n * d * sizeof(float), &err));
        for (int i = 0; i < GT_N_MODELS; i++) {
            kc_model_t *gm = NULL;
            KK(gt_to_gpu(&models, i, ctx, &gm, &err));
            const double t_dev = time_host([&] { KK(kc_model_predict_dev(gm, dx, n, dsc, dpred, &err)); }, 5);
            const double t_h2h = time_host([&] { KK(kc_model_predict(gm, x, n, scores, pred, &err)); }, 3);
            const double t_cpu = time_host([&] { KK(gt_predict(&models, i, x, n_cpu_rows, scores, pred, &err)); }, 1);
            char name[64];
            snprintf(name, sizeof name, "score_%s_gpu", models.name[i]);
            snprintf(extra, sizeof extra,
                     ",\"rows\":%zu,\"features\":%zu,\"with_copies_rows_per_s\":%.6g,"
                     "\"cpu_rows_per_s\":%.6g,\"speedup_vs_cpu\":%.4g,\"speedup_with_copies\":%.4g",
                     n, d, (double)n / t_h2h, (double)n_cpu_rows / t_cpu,
                     ((double)n / t_dev) / ((double)n_cpu_rows / t_cpu),
                     ((double)n / t_h2h) / ((double)n_cpu_rows / t_cpu));
            emit(name, (double)n / t_dev, "rows/s", extra);
            snprintf(name, sizeof name, "score_%s_gpu_with_copies", models.name[i]);
            emit(name, (double)n / t_h2h, "rows/s", "");
            snprintf(name, sizeof name, "score_%s_cpu", models.name[i]);
            snprintf(extra, sizeof extra, ",\"rows\":%zu", n_cpu_rows);
            emit(name, (double)n_cpu_rows / t_cpu, "rows/s", extra);
            kc_model_destroy(&gm);
        }
        kc_dev_free(ctx, (void **)&dx);
        kc_dev_free(ctx, (void **)&dsc);
        kc_dev_free(ctx, (void **)&dpred);
        gt_free(&models);
        free(x);
        free(target);
        free(y);
        free(pred);
        free(scores);
    }
    bench_training(ctx, st, n_cpu);
    fclose(g_json);
    kc_ctx_destroy(&ctx);
    return 0;
}
