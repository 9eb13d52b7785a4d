/* parity.cu - every CUDA kernel against the C reference on a real GPU:
 * time statistics (kc_time_stats, all its paths), the fused features
 * (kc_feat_run) on random windows of every signal kind and on real CWRU
 * windows, the host driver (kc_featurize_host, bit-equal to kc_feat_run),
 * and scoring of every model kind (kc_model_predict) against
 * km_<kind>_predict.  Tolerances: tests/gpu/README.md.  Prints one
 * "ok NAME maxerr=..." / "FAIL NAME ..." line per check and ends with
 * "gpu parity: N passed, N failed"; exit 1 on any failure, 2 without a GPU.
 * Usage: parity [DATA_DIR]   (DATA_DIR default build/gpu-data) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpu_check.h"
#include "train_ref.h"

static int g_passed, g_failed;

#define DIE_IF(rc, what)                                                             \
    do {                                                                             \
        if ((rc) < 0) {                                                              \
            printf("FAIL %s: %s (%s)\n", (what), err.msg, kiln_err_name(rc));        \
            g_failed++;                                                              \
            goto out;                                                                \
        }                                                                            \
    } while (0)

/* kc_time_stats on windows of n samples (offset floats into the buffer, so
 * an unaligned start takes the generic path) against kn_time_stats. */
static void check_time_stats(kc_ctx_t *ctx, const float *x, size_t n_windows, size_t n,
                             double fs, size_t offset, const char *label)
{
    kiln_err_t err;
    gc_report_t rep;
    float *d_x = NULL;
    kn_time_stats_t *d_out = NULL, *g = (kn_time_stats_t *)malloc(n_windows * sizeof *g);
    char prefix[48];
    snprintf(prefix, sizeof prefix, "time_stats/%s", label);
    gc_time_report_init(&rep, prefix);
    int rc = kc_dev_alloc(ctx, (n_windows * n + offset) * sizeof(float), (void **)&d_x, &err);
    DIE_IF(rc, prefix);
    rc = kc_dev_alloc(ctx, n_windows * sizeof *g, (void **)&d_out, &err);
    DIE_IF(rc, prefix);
    rc = kc_copy_to_dev(ctx, d_x + offset, x, n_windows * n * sizeof(float), &err);
    DIE_IF(rc, prefix);
    rc = kc_time_stats(ctx, d_x + offset, n_windows, n, fs, 0.5, d_out, NULL, &err);
    DIE_IF(rc, prefix);
    rc = kc_copy_to_host(ctx, g, d_out, n_windows * sizeof *g, &err);
    DIE_IF(rc, prefix);
    for (size_t w = 0; w < n_windows; w++) {
        kn_time_stats_t c;
        kn_time_stats(x + w * n, n, fs, 0.5, &c);
        gc_compare_time(&rep, &g[w], &c, n, fs, w);
    }
    gc_report_print(&rep, &g_passed, &g_failed);
out:
    kc_dev_free(ctx, (void **)&d_x);
    kc_dev_free(ctx, (void **)&d_out);
    free(g);
}

/* Fused features of x [n_windows x n] under cfg against the reference, and
 * (drive != 0) kc_featurize_host against kc_feat_run, bit for bit. */
static void check_features(kc_ctx_t *ctx, const kc_feat_config_t *cfg, const float *x,
                           size_t n_windows, const char *label, int drive)
{
    kiln_err_t err;
    gr_ref_t ref;
    gc_report_t rep;
    kc_feat_plan_t *plan = NULL;
    float *d_x = NULL, *d_out = NULL, *g = NULL, *h = NULL, *pinned = NULL;
    const size_t n = cfg->window_len;
    int rc = gr_ref_init(&ref, cfg, &err);
    if (rc < 0) {
        printf("FAIL %s: reference: %s\n", label, err.msg);
        g_failed++;
        return;
    }
    gc_report_init(&rep, label, cfg);
    rc = kc_feat_plan_new(ctx, cfg, &plan, &err);
    DIE_IF(rc, label);
    {
        const size_t n_out = kc_feat_n_outputs(plan);
        if (n_out != ref.n_out) {
            printf("FAIL %s/n_outputs gpu %zu cpu %zu\n", label, n_out, ref.n_out);
            g_failed++;
            goto out;
        }
        g = (float *)malloc(n_windows * n_out * sizeof *g);
        h = (float *)malloc(n_windows * n_out * sizeof *h);
        rc = kc_dev_alloc(ctx, n_windows * n * sizeof(float), (void **)&d_x, &err);
        DIE_IF(rc, label);
        rc = kc_dev_alloc(ctx, n_windows * n_out * sizeof(float), (void **)&d_out, &err);
        DIE_IF(rc, label);
        rc = kc_copy_to_dev(ctx, d_x, x, n_windows * n * sizeof(float), &err);
        DIE_IF(rc, label);
        rc = kc_feat_run(plan, d_x, n_windows, d_out, NULL, &err);
        DIE_IF(rc, label);
        rc = kc_copy_to_host(ctx, g, d_out, n_windows * n_out * sizeof *g, &err);
        DIE_IF(rc, label);
        float cpu[GC_MAX_OUT];
        for (size_t w = 0; w < n_windows; w++) {
            gr_ref_window(&ref, x + w * n, cpu);
            gc_compare_row(&rep, &ref, g + w * n_out, cpu, w, gc_signal_name(w));
        }
        gc_report_print(&rep, &g_passed, &g_failed);
        if (!drive)
            goto out;
        /* The driver runs the same kernel: any difference is a staging bug.
         * A chunk of 37 windows leaves a short last chunk. */
        char name[96];
        for (int use_pinned = 0; use_pinned < 2; use_pinned++) {
            const float *src = x;
            if (use_pinned) {
                rc = kc_host_alloc(ctx, n_windows * n * sizeof(float), (void **)&pinned, &err);
                DIE_IF(rc, label);
                memcpy(pinned, x, n_windows * n * sizeof(float));
                src = pinned;
            }
            memset(h, 0xff, n_windows * n_out * sizeof *h);
            snprintf(name, sizeof name, "%s/featurize_host_%s", label, use_pinned ? "pinned" : "pageable");
            rc = kc_featurize_host(plan, src, n_windows, 37, h, &err);
            DIE_IF(rc, name);
            size_t diff = 0;
            for (size_t i = 0; i < n_windows * n_out; i++)
                diff += memcmp(&g[i], &h[i], sizeof(float)) != 0;
            char detail[64];
            snprintf(detail, sizeof detail, "differing=%zu of %zu", diff, n_windows * n_out);
            gc_line(name, diff == 0, diff ? 1e30 : 0.0, detail, &g_passed, &g_failed);
        }
    }
out:
    kc_host_free(ctx, (void **)&pinned);
    kc_dev_free(ctx, (void **)&d_x);
    kc_dev_free(ctx, (void **)&d_out);
    kc_feat_plan_destroy(&plan);
    gr_ref_free(&ref);
    free(g);
    free(h);
}

/* Real windows written by `make gpu-data` (tests/gpu/extract_cwru.c). */
static float *load_real(const char *dir, size_t *n_windows, size_t *n, double *fs)
{
    char path[4096], key[64];
    snprintf(path, sizeof path, "%s/windows.txt", dir);
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    *n_windows = *n = 0;
    *fs = 0;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        double v;
        if (sscanf(line, "%63s %lf", key, &v) == 2) {
            if (!strcmp(key, "n_windows"))
                *n_windows = (size_t)v;
            else if (!strcmp(key, "window_len"))
                *n = (size_t)v;
            else if (!strcmp(key, "sample_rate_hz"))
                *fs = v;
        }
    }
    fclose(f);
    snprintf(path, sizeof path, "%s/windows.f32", dir);
    if (!*n_windows || !*n || !(*fs > 0) || !(f = fopen(path, "rb")))
        return NULL;
    float *x = (float *)malloc(*n_windows * *n * sizeof *x);
    if (x && fread(x, sizeof *x, *n_windows * *n, f) != *n_windows * *n) {
        free(x);
        x = NULL;
    }
    fclose(f);
    return x;
}

/* Scores of every model kind: GPU against km_<kind>_predict. */
static void check_scoring(kc_ctx_t *ctx)
{
    kiln_err_t err;
    const size_t n_train = 20000, n = 50000, d = 24;
    float *x = (float *)malloc(n * d * sizeof *x), *target = (float *)malloc(n * sizeof *target);
    int32_t *y = (int32_t *)malloc(n * sizeof *y);
    float *sc = (float *)malloc(n * 3 * sizeof *sc), *sg = (float *)malloc(n * 3 * sizeof *sg);
    int32_t *pc = (int32_t *)malloc(n * sizeof *pc), *pg = (int32_t *)malloc(n * sizeof *pg);
    gt_models_t models;
    kc_model_t *gm = NULL;
    gt_data(11, n, d, x, y, target);
    int rc = gt_train(x, y, target, n_train, d, &models, &err);
    DIE_IF(rc, "score/train (CPU reference)");
    for (int i = 0; i < GT_N_MODELS; i++) {
        char name[96];
        snprintf(name, sizeof name, "score/%s", models.name[i]);
        const size_t k = gt_n_outputs(&models, i);
        const int kind = models.kind[i];
        const int has_pred = !(kind == 1 && k == 1) && !(kind == 2 && k == 1);
        if ((rc = gt_predict(&models, i, x, n, sc, pc, &err)) < 0 ||
            (rc = gt_to_gpu(&models, i, ctx, &gm, &err)) < 0 ||
            (rc = kc_model_predict(gm, x, n, sg, pg, &err)) < 0) {
            printf("FAIL %s: %s (%s)\n", name, err.msg, kiln_err_name(rc));
            g_failed++;
            kc_model_destroy(&gm);
            continue;
        }
        /* Tolerance per kind (README): relative on the score plus a floor. */
        const double rtol = kind == 1 ? 1e-4 : kind == 2 ? 1e-6 : 1e-5;
        const double atol = kind == 1 ? 1e-5 : 1e-7;
        double max_err = 0;
        size_t bad = 0, pred_bad = 0, ties = 0;
        char first[200] = "";
        for (size_t r = 0; r < n; r++) {
            for (size_t c = 0; c < k; c++) {
                const double g = sg[r * k + c], v = sc[r * k + c];
                const double e = fabs(g - v) / (rtol * fabs(v) + atol);
                if (e > max_err || isnan(e))
                    max_err = e;
                if (!(e <= 1.0) && bad++ == 0)
                    snprintf(first, sizeof first, "row %zu col %zu gpu %.9g cpu %.9g", r, c, g, v);
            }
            if (has_pred && pg[r] != pc[r]) {
                /* A different class only where the reference scores tie
                 * within the score tolerance (gbdt: never). */
                double a = kind == 3 ? sc[r] : sc[r * k + (size_t)pc[r]];
                double b = kind == 3 ? km_anomaly_threshold((km_anomaly_t *)models.model[i])
                                     : sc[r * k + (size_t)pg[r]];
                if (kind != 2 && fabs(a - b) <= rtol * fabs(a) + atol)
                    ties++;
                else if (pred_bad++ == 0 && !bad)
                    snprintf(first, sizeof first, "row %zu class gpu %d cpu %d", r, pg[r], pc[r]);
            }
        }
        char detail[300];
        snprintf(detail, sizeof detail, "rows=%zu outputs=%zu bad_scores=%zu bad_classes=%zu ties=%zu%s%s",
                 n, k, bad, pred_bad, ties, first[0] ? " first: " : "", first);
        gc_line(name, bad == 0 && pred_bad == 0, max_err, detail, &g_passed, &g_failed);

        /* A NaN row is refused and named, as the CPU does. */
        if (i == 0 || i == 2 || i == 5 || i == 7) {
            float keep = x[4321 * d + 5];
            x[4321 * d + 5] = NAN;
            kiln_err_t e2;
            int r2 = kc_model_predict(gm, x, n, sg, pg, &e2);
            x[4321 * d + 5] = keep;
            snprintf(name, sizeof name, "score/%s/nan_row", models.name[i]);
            int ok = r2 == KILN_ENONFINITE && strstr(e2.msg, "row 4321 ") != NULL;
            gc_line(name, ok, ok ? 0 : 1e30, ok ? "" : (r2 < 0 ? e2.msg : "accepted a NaN"),
                    &g_passed, &g_failed);
        }
        kc_model_destroy(&gm);
    }
    gt_free(&models);
out:
    free(x);
    free(target);
    free(y);
    free(sc);
    free(sg);
    free(pc);
    free(pg);
}

int main(int argc, char **argv)
{
    const char *data_dir = argc > 1 ? argv[1] : "build/gpu-data";
    kiln_err_t err;
    kc_ctx_t *ctx = NULL;
    int n_dev = 0;
    kc_device_count(&n_dev, &err);
    if (n_dev == 0) {
        printf("gpu parity: no GPU (skipped)\n");
        return 2;
    }
    if (kc_ctx_new(0, &ctx, &err) < 0) {
        printf("FAIL context: %s\ngpu parity: 0 passed, 1 failed\n", err.msg);
        return 1;
    }
    kc_device_info_t info;
    kc_device_info(0, &info, &err);
    printf("device: %s (sm_%d%d, %d SMs, %.1f GiB)\n", info.name, info.cc_major, info.cc_minor,
           info.n_sms, (double)info.memory_bytes / (1 << 30));

    /* Random windows of every kind. */
    const double fs = 12000.0;
    static const size_t stat_lens[] = {1000, 2048, 4096, 20000};
    for (size_t i = 0; i < sizeof stat_lens / sizeof *stat_lens; i++) {
        const size_t n = stat_lens[i], nw = n > 4096 ? 64 : 256;
        float *x = (float *)malloc(nw * n * sizeof *x);
        for (size_t w = 0; w < nw; w++)
            gc_signal(3, w, x + w * n, n, fs);
        char label[32];
        snprintf(label, sizeof label, "n%zu", n);
        check_time_stats(ctx, x, nw, n, fs, 0, label);
        if (n == 2048) {
            snprintf(label, sizeof label, "n%zu_unaligned", n);
            check_time_stats(ctx, x, nw, n, fs, 1, label);
        }
        free(x);
    }
    static const size_t feat_lens[] = {16, 256, 1024, 2048, 4096, 8192};
    for (size_t i = 0; i < sizeof feat_lens / sizeof *feat_lens; i++) {
        const size_t n = feat_lens[i], nw = n >= 4096 ? 128 : 512;
        float *x = (float *)malloc(nw * n * sizeof *x);
        for (size_t w = 0; w < nw; w++)
            gc_signal(5, w, x + w * n, n, fs);
        for (int v = 0; v < GC_N_CONFIGS; v++) {
            kc_feat_config_t cfg;
            char label[48];
            gc_config(v, n, fs, &cfg);
            snprintf(label, sizeof label, "feat/n%zu/cfg%d", n, v);
            check_features(ctx, &cfg, x, nw, label, n == 2048 && v == 0);
        }
        free(x);
    }
    {
        /* The GPU path refuses lengths it does not take, so callers fall back. */
        kc_feat_config_t cfg;
        kc_feat_plan_t *plan = NULL;
        gc_config(0, 1000, fs, &cfg);
        int rc = kc_feat_plan_new(ctx, &cfg, &plan, &err);
        gc_line("feat/refuses_n1000", rc == KILN_EINVAL, rc == KILN_EINVAL ? 0 : 1e30,
                rc == KILN_EINVAL ? err.msg : "accepted", &g_passed, &g_failed);
        kc_feat_plan_destroy(&plan);
    }

    size_t rn = 0, rlen = 0;
    double rfs = 0;
    float *real = load_real(data_dir, &rn, &rlen, &rfs);
    if (!real) {
        printf("real windows: skipped (no %s)\n", data_dir);
    } else {
        printf("real windows: %zu x %zu at %.0f Hz from %s\n", rn, rlen, rfs, data_dir);
        check_time_stats(ctx, real, rn, rlen, rfs, 0, "cwru");
        for (int v = 0; v < GC_N_CONFIGS; v++) {
            kc_feat_config_t cfg;
            char label[48];
            gc_config(v, rlen, rfs, &cfg);
            snprintf(label, sizeof label, "feat/cwru/cfg%d", v);
            check_features(ctx, &cfg, real, rn, label, 0);
        }
        free(real);
    }

    check_scoring(ctx);

    kc_ctx_destroy(&ctx);
    printf("gpu parity: %d passed, %d failed\n", g_passed, g_failed);
    return g_failed ? 1 : 0;
}
