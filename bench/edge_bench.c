/* edge_bench.c - kiln-edge inference latency, window in to score out, in
 * process: a model directory's engine (edge/infer.h) scores the windows of
 * a frames file (edge/frame.h) one at a time, as the agent does; p50, p99
 * and windows/s on one core; and whether a warm window allocates (every
 * allocation made to fail for one window before timing).  With --mqtt HOST:PORT --device ID
 * the same frames go through a running `kiln-edge serve` and a broker
 * instead (edge/send.h: round trips, one window in flight).  With --rows
 * the model alone: raw feature rows (n x d float32) scored one row per call
 * as the engine scores them (the scaler, then the kind's predict into its
 * workspace), for the onnxruntime peer (bench/peer_onnxruntime.py), which
 * gets the scores to check against (--scores-out, n x n_outputs float32).
 *
 *   edge_bench MODEL_DIR FRAMES.bin [--repeat N] [--mqtt HOST:PORT --device ID]
 *   edge_bench MODEL_DIR --rows ROWS.f32 [--scores-out SCORES.f32] [--repeat N]
 *
 * Prints one JSON object. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/kiln_alloc.h"
#include "edge/frame.h"
#include "edge/infer.h"
#include "edge/send.h"
#include "jobs/modelfile.h"

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec * 1e-3;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int read_all(const char *path, unsigned char **bytes, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        return -1;
    }
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    rewind(f);
    *bytes = malloc(size > 0 ? (size_t)size : 1);
    *len = size > 0 ? (size_t)size : 0;
    int ok = *bytes && fread(*bytes, 1, *len, f) == *len;
    fclose(f);
    if (!ok)
        fprintf(stderr, "%s: read failed\n", path);
    return ok ? 0 : -1;
}

/* --rows: per-row score latency of MODEL_DIR/model.kmodel, the engine's
 * two steps (km_scaler_transform, then predict_ws or predict), one row per
 * call; no featurization. */
static int score_rows(const char *dir, const char *rows_path, const char *scores_path, int repeat)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/model.kmodel", dir);
    jb_modelfile_t mf;
    kiln_err_t err;
    if (jb_modelfile_read(path, &mf, &err) < 0) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    unsigned char *bytes;
    size_t len;
    if (read_all(rows_path, &bytes, &len) < 0)
        return 1;
    const size_t d = mf.n_features, n_out = mf.kind->n_outputs(mf.model);
    const size_t n = len / (d * sizeof(float));
    if (n == 0 || len % (d * sizeof(float))) {
        fprintf(stderr, "%s: %zu bytes is not rows of %zu float32 features\n", rows_path, len, d);
        return 1;
    }
    const float *x = (const float *)bytes;
    float *z = malloc(d * sizeof *z), *scores = malloc(n * n_out * sizeof *scores);
    double *lat = malloc((size_t)repeat * n * sizeof *lat);
    void *ws = mf.kind->ws_new ? mf.kind->ws_new(mf.model) : NULL;
    size_t m = 0;
    for (int r = 0; r <= repeat; r++)          /* r == 0: warm-up, not timed */
        for (size_t i = 0; i < n; i++) {
            int32_t pred;
            double t0 = now_us();
            int rc = km_scaler_transform(mf.scaler, x + i * d, 1, d, z, &err);
            if (rc == 0)
                rc = ws ? mf.kind->predict_ws(mf.model, ws, z, 1, scores + i * n_out, &pred, &err)
                        : mf.kind->predict(mf.model, z, 1, scores + i * n_out, &pred, &err);
            double t = now_us() - t0;
            if (rc < 0) {
                fprintf(stderr, "row %zu: %s\n", i, err.msg);
                return 1;
            }
            if (r > 0)
                lat[m++] = t;
        }
    if (scores_path) {
        FILE *f = fopen(scores_path, "wb");
        if (!f || fwrite(scores, sizeof *scores, n * n_out, f) != n * n_out || fclose(f)) {
            perror(scores_path);
            return 1;
        }
    }
    double total = 0;
    for (size_t i = 0; i < m; i++)
        total += lat[i];
    qsort(lat, m, sizeof *lat, cmp);
    printf("{\"path\":\"score-only\",\"kind\":\"%s\",\"rows\":%zu,\"calls\":%zu,\"features\":%zu,"
           "\"outputs\":%zu,\"p50_us\":%.3f,\"p99_us\":%.3f,\"mean_us\":%.3f}\n",
           mf.kind->name, n, m, d, n_out, lat[m / 2], lat[(size_t)((double)(m - 1) * 0.99)],
           total / (double)m);
    if (ws)
        mf.kind->ws_free(ws);
    free(lat);
    free(scores);
    free(z);
    free(bytes);
    jb_modelfile_free(&mf);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 4 && !strcmp(argv[2], "--rows")) {
        int repeat = 5;
        const char *scores_path = NULL;
        for (int i = 4; i + 1 < argc; i += 2) {
            if (!strcmp(argv[i], "--repeat"))
                repeat = atoi(argv[i + 1]);
            else if (!strcmp(argv[i], "--scores-out"))
                scores_path = argv[i + 1];
        }
        return score_rows(argv[1], argv[3], scores_path, repeat > 0 ? repeat : 1);
    }
    if (argc < 3) {
        fprintf(stderr, "usage: edge_bench MODEL_DIR FRAMES.bin [--repeat N] "
                        "[--mqtt HOST:PORT --device ID]\n"
                        "       edge_bench MODEL_DIR --rows ROWS.f32 [--scores-out SCORES.f32] "
                        "[--repeat N]\n");
        return 2;
    }
    int repeat = 5;
    const char *mqtt = NULL, *device = "edge";
    for (int i = 3; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--repeat"))
            repeat = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--mqtt"))
            mqtt = argv[i + 1];
        else if (!strcmp(argv[i], "--device"))
            device = argv[i + 1];
    }
    FILE *f = fopen(argv[2], "rb");
    if (!f) {
        perror(argv[2]);
        return 1;
    }
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    rewind(f);
    unsigned char *bytes = malloc((size_t)size);
    if (!bytes || fread(bytes, 1, (size_t)size, f) != (size_t)size) {
        fprintf(stderr, "%s: read failed\n", argv[2]);
        return 1;
    }
    fclose(f);
    /* the frames' offsets and windows, decoded before timing */
    size_t n = 0, off = 0;
    ke_frame_hdr_t *hdr = calloc((size_t)size / KE_FRAME_HEADER_BYTES + 1, sizeof *hdr);
    size_t *at = calloc((size_t)size / KE_FRAME_HEADER_BYTES + 1, sizeof *at);
    kiln_err_t err;
    while (off < (size_t)size) {
        if (ke_frame_parse_header(bytes + off, (size_t)size - off, &hdr[n], &err) < 0) {
            fprintf(stderr, "%s: frame %zu: %s\n", argv[2], n, err.msg);
            return 1;
        }
        at[n++] = off;
        off += hdr[n - 1].frame_bytes;
    }
    double *lat = malloc((size_t)repeat * n * sizeof *lat);
    size_t m = 0;
    int allocs_ok = 1;
    char kind[32] = "";
    if (mqtt) {
        char host[256];
        const char *colon = strrchr(mqtt, ':');
        snprintf(host, sizeof host, "%.*s", (int)(colon - mqtt), mqtt);
        ke_sender_t *s;
        if (ke_sender_open(host, atoi(colon + 1), device, 5000, &s, &err) < 0) {
            fprintf(stderr, "%s\n", err.msg);
            return 1;
        }
        char result[1 << 16];
        for (int r = 0; r < repeat; r++)
            for (size_t i = 0; i < n; i++)
                if (ke_sender_send(s, bytes + at[i], hdr[i].frame_bytes, 5000, result,
                                   sizeof result, &lat[m++], &err) < 0) {
                    fprintf(stderr, "%s\n", err.msg);
                    return 1;
                }
        ke_sender_close(&s);
    } else {
        ke_engine_t *e;
        if (ke_engine_load(argv[1], NULL, &e, &err) < 0) {
            fprintf(stderr, "%s\n", err.msg);
            return 1;
        }
        snprintf(kind, sizeof kind, "%s", ke_engine_info(e)->kind);
        float *x = malloc(KE_MAX_CHANNELS * hdr[0].window_len * sizeof *x);
        ke_result_t res;
        /* warm-up: every shape seen, caches filled */
        for (size_t i = 0; i < n && i < 64; i++) {
            ke_frame_samples(bytes + at[i], &hdr[i], x);
            ke_window_t w = {hdr[i].asset, hdr[i].timestamp_ns, hdr[i].sample_rate_hz,
                             hdr[i].n_channels, hdr[i].window_len, x};
            if (ke_engine_score(e, &w, &res, &err) < 0) {
                fprintf(stderr, "%s\n", err.msg);
                return 1;
            }
        }
        /* does a warm window allocate?  (gbdt and mlp: nothing; logreg and
         * anomaly predict still make a row buffer per call) */
        {
            ke_frame_samples(bytes + at[0], &hdr[0], x);
            ke_window_t w = {hdr[0].asset, hdr[0].timestamp_ns, hdr[0].sample_rate_hz,
                             hdr[0].n_channels, hdr[0].window_len, x};
            kiln_alloc_fail_after(1);
            allocs_ok = ke_engine_score(e, &w, &res, &err) == 0;
            kiln_alloc_fail_after(0);
        }
        for (int r = 0; r < repeat; r++) {
            ke_engine_reset_assets(e);
            for (size_t i = 0; i < n; i++) {
                double t0 = now_us();
                ke_frame_samples(bytes + at[i], &hdr[i], x);
                ke_window_t w = {hdr[i].asset, hdr[i].timestamp_ns, hdr[i].sample_rate_hz,
                                 hdr[i].n_channels, hdr[i].window_len, x};
                int rc = ke_engine_score(e, &w, &res, &err);
                lat[m++] = now_us() - t0;
                if (rc < 0) {
                    fprintf(stderr, "window %zu: %s\n", i, err.msg);
                    return 1;
                }
            }
        }
        free(x);
        ke_engine_free(&e);
    }
    double total = 0;
    for (size_t i = 0; i < m; i++)
        total += lat[i];
    qsort(lat, m, sizeof *lat, cmp);
    printf("{\"path\":\"%s\",\"kind\":\"%s\",\"windows\":%zu,\"channels\":%zu,\"window_len\":%zu,"
           "\"p50_us\":%.1f,\"p99_us\":%.1f,\"max_us\":%.1f,\"windows_per_s_core\":%.0f,"
           "\"no_allocation\":%s}\n",
           mqtt ? "mqtt" : "in-process", kind, m, hdr[0].n_channels, hdr[0].window_len,
           lat[m / 2], lat[(size_t)((double)(m - 1) * 0.99)], lat[m - 1],
           total > 0 ? 1e6 * (double)m / total : 0, mqtt ? "null" : allocs_ok ? "true" : "false");
    free(lat);
    free(hdr);
    free(at);
    free(bytes);
    return 0;
}
