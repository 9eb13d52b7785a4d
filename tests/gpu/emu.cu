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
#include "../../kernels/cuda/kc_spec_fast.h"
#include "gpu_check.h"

/* kc_stats_warp_kernel's arithmetic for one window, its 32 lanes in turn:
 * float pass (lane sums in the kernel's order, then the lanes'), the shift,
 * the double sums about it, kc_stats_finish_shifted. */
static void warp_stats(const float *x, int n, double fs, double thr, double *o)
{
    float thr_f = (float)thr;
    if ((double)thr_f > thr)
        thr_f = nextafterf(thr_f, -HUGE_VALF);
    const int n4 = n / 4;
    float lane_s[32] = {0}, lo = HUGE_VALF, hi = -HUGE_VALF;
    int above = 0;
    for (int j = 0; j < n4; j++) {
        const float *f = x + 4 * j;
        lane_s[j % 32] += (f[0] + f[1]) + (f[2] + f[3]);
        for (int k = 0; k < 4; k++) {
            above += f[k] > thr_f;
            lo = fminf(lo, f[k]);
            hi = fmaxf(hi, f[k]);
        }
    }
    for (int off = 16; off > 0; off >>= 1)      /* the xor butterfly, lane 0's view */
        for (int l = 0; l < off; l++)
            lane_s[l] += lane_s[l + off];
    float cf = lane_s[0] / (float)n;
    if (lo == hi || !isfinite(cf))
        cf = lo;
    const double c = cf;
    double s1 = 0, s2 = 0, s3 = 0, s4 = 0, si = 0;
    for (int j = 0; j < n4; j++) {
        const float *f = x + 4 * j;
        const double a = (double)f[0] - c, b = (double)f[1] - c;
        const double e = (double)f[2] - c, g = (double)f[3] - c;
        const double a2 = a * a, b2 = b * b, e2 = e * e, g2 = g * g, q = (a + b) + (e + g);
        s1 += q;
        s2 += (a2 + b2) + (e2 + g2);
        /* chained FMAs: fewer fp64 operations than pairwise sums */
        s3 = fma(g2, g, fma(e2, e, fma(b2, b, fma(a2, a, s3))));
        s4 = fma(g2, g2, fma(e2, e2, fma(b2, b2, fma(a2, a2, s4))));
        si += fma((double)(4 * j), q, fma(3.0, g, fma(2.0, e, b)));
    }
    kc_stats_finish_lanes(kc_spread_host(), n, fs, 1.0 / (double)n, lo, hi, (double)above, c, s1,
                          s2, s3, s4, si, o);
}

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
    float gout[GC_MAX_OUT], cout_[GC_MAX_OUT], fout[GC_MAX_OUT];
    gc_report_t rep, trep, frep, wrep;
    /* The spectrum-only fast path (kc_spec_fast.h) where the kernel takes it. */
    float2 *sf_tw = NULL, *sf_a = NULL, *sf_b = NULL;
    if (p.fast) {
        sf_tw = (float2 *)malloc((size_t)kc_sf_table_len(p.log2n) * sizeof *sf_tw);
        sf_a = (float2 *)calloc((size_t)kc_sf_buf_len(p.log2n), sizeof *sf_a);
        sf_b = (float2 *)calloc((size_t)kc_sf_buf_len(p.log2n), sizeof *sf_b);
        kc_sf_table_fill(p.log2n, sf_tw);
        p.sf_tw = sf_tw;
        char fprefix[48];
        snprintf(fprefix, sizeof fprefix, "emu/n%zu/cfg%d/fast", n, variant);
        gc_report_init(&frep, fprefix, &cfg);
    }
    char prefix[48];
    snprintf(prefix, sizeof prefix, "emu/n%zu/cfg%d", n, variant);
    gc_report_init(&rep, prefix, &cfg);
    snprintf(prefix, sizeof prefix, "emu/n%zu/stats_double", n);
    gc_time_report_init(&trep, prefix);
    snprintf(prefix, sizeof prefix, "emu/n%zu/stats_warp", n);
    gc_time_report_init(&wrep, prefix);
    for (int w = 0; w < n_windows; w++) {
        gc_signal(7, (size_t)w, x, n, fs);
        memcpy(xs, x, n * sizeof *x);
        kc_hblock b;
        kc_window_features(b, p, xs, cbuf, pbuf, dsh, gout);
        gr_ref_window(&ref, x, cout_);
        gc_compare_row(&rep, &ref, gout, cout_, (size_t)w, gc_signal_name((size_t)w));
        if (p.fast) {
            kc_spec_fast_any(b, p, x, sf_a, sf_b, dsh, fout);
            gc_compare_row(&frep, &ref, fout, cout_, (size_t)w, gc_signal_name((size_t)w));
        }
        double t[KC_N_TIME];
        kc_stats_window(b, x, (int)n, fs, cfg.util_threshold, t);
        kn_time_stats_t g = {t[0], t[1], t[2], t[3], t[4], t[5], t[6], t[7], t[8], t[9]};
        gc_compare_time(&trep, &g, &ref.time, n, fs, (size_t)w);
        if (n % 4 == 0 && n <= 2048) {
            warp_stats(x, (int)n, fs, cfg.util_threshold, t);
            kn_time_stats_t g2 = {t[0], t[1], t[2], t[3], t[4], t[5], t[6], t[7], t[8], t[9]};
            gc_compare_time(&wrep, &g2, &ref.time, n, fs, (size_t)w);
        }
    }
    gc_report_print(&rep, passed, failed);
    if (p.fast)
        gc_report_print(&frep, passed, failed);
    if (variant == 0) {
        gc_report_print(&trep, passed, failed);
        if (n % 4 == 0 && n <= 2048)
            gc_report_print(&wrep, passed, failed);
    }
    free(sf_tw);
    free(sf_a);
    free(sf_b);
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
    static const size_t lens[] = {16, 256, 512, 1024, 2048, 4096, 8192};
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++)
        for (int v = 0; v < GC_N_CONFIGS; v++)
            run_config(lens[i], v, lens[i] >= 4096 ? 24 : 64, &passed, &failed);
    printf("gpu emulation: %d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
