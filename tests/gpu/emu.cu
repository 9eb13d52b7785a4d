/* emu.cu - runs the GPU kernels' window algorithm (kc_feat_body.h, the very
 * template the kernel instantiates) on the host, with a sequential block,
 * against the C reference.  Needs no GPU, so the FFT indexing, bin ranges
 * and feature order are checked on every machine that has nvcc; what only
 * the GPU can check (shuffles, barriers, the launch) is tests/gpu/parity.cu.
 * Prints "ok/FAIL" lines and "gpu emulation: N passed, N failed". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../kernels/cuda/kc_feat_plan.h"
#include "gpu_check.h"

static int run_config(size_t n, int variant, int n_windows, int *passed, int *failed)
{
    const double fs = 12000.0;
    kc_feat_config_t cfg;
    kc_feat_params_t p;
    gr_ref_t ref;
    kiln_err_t err;
    gc_config(variant, n, fs, &cfg);
    if (gr_ref_init(&ref, &cfg, &err) < 0 || kc_feat_params_fill(&cfg, &p, &err) < 0) {
        printf("FAIL emu setup n=%zu: %s\n", n, err.msg);
        (*failed)++;
        return -1;
    }
    float2 *tw = (float2 *)malloc(KC_FFT_MAX_LEN / 2 * sizeof *tw);
    float *win = (float *)malloc(n * sizeof *win);
    float *x = (float *)malloc(n * sizeof *x);
    float *sm = (float *)calloc(kc_feat_shared_floats((int)n, 1, 1) + 8, sizeof *sm);
    kc_twiddle_fill(tw);
    kc_window_fill(cfg.window, win, n);
    p.tw = tw;
    p.window = cfg.window != KN_WINDOW_NONE ? win : NULL;
    float *xs = sm, *pbuf = sm + kc_round4((int)n + 2) + 2 * n;
    float2 *cbuf = (float2 *)(sm + kc_round4((int)n + 2));
    double dsh[KC_MAX_BANDS];
    float gout[GC_MAX_OUT], cout_[GC_MAX_OUT];
    gc_report_t rep, trep;
    char prefix[48];
    snprintf(prefix, sizeof prefix, "emu/n%zu/cfg%d", n, variant);
    gc_report_init(&rep, prefix, &cfg);
    snprintf(prefix, sizeof prefix, "emu/n%zu/stats_double", n);
    gc_time_report_init(&trep, prefix);
    for (int w = 0; w < n_windows; w++) {
        gc_signal(7, (size_t)w, x, n, fs);
        memcpy(xs, x, n * sizeof *x);
        kc_hblock b;
        kc_window_features(b, p, xs, cbuf, pbuf, dsh, gout);
        gr_ref_window(&ref, x, cout_);
        gc_compare_row(&rep, &ref, gout, cout_, (size_t)w, gc_signal_name((size_t)w));
        double t[KC_N_TIME];
        kc_stats_window(b, x, (int)n, fs, cfg.util_threshold, t);
        kn_time_stats_t g = {t[0], t[1], t[2], t[3], t[4], t[5], t[6], t[7], t[8], t[9]};
        gc_compare_time(&trep, &g, &ref.time, n, fs, (size_t)w);
    }
    gc_report_print(&rep, passed, failed);
    if (variant == 0)
        gc_report_print(&trep, passed, failed);
    free(tw);
    free(win);
    free(x);
    free(sm);
    gr_ref_free(&ref);
    return 0;
}

int main(void)
{
    int passed = 0, failed = 0;
    static const size_t lens[] = {16, 256, 1024, 2048, 4096, 8192};
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++)
        for (int v = 0; v < GC_N_CONFIGS; v++)
            run_config(lens[i], v, lens[i] >= 4096 ? 24 : 64, &passed, &failed);
    printf("gpu emulation: %d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
