/* hist_ref.c - CPU bin codes and histograms for the GPU gbdt checks
 * (hist_ref.h); the histogram loop is gbdt_tree.c's hist_feature. */
#include "hist_ref.h"

#include <string.h>

#include "../../core/kiln_alloc.h"
#include "../../kernels/cpu/gbdt_impl.h"

int gt_bin_codes(const float *x, size_t n, size_t d, int max_bins, int threads, uint8_t **codes,
                 uint16_t *n_bins, kiln_err_t *err)
{
    km_gbdt_params_t p = km_gbdt_defaults();
    p.max_bins = max_bins;
    p.n_threads = threads;
    km_data_t data = {x, n, d, NULL, NULL, 0};
    const double rank_n = (double)n;
    gb_bins_t bins;
    memset(&bins, 0, sizeof bins);
    int rc = gb_bins_build(&data, &p, NULL, &rank_n, &bins, err);
    if (rc == 0)
        rc = gb_bins_codes(&bins, x, n, threads, codes, err);
    if (rc == 0)
        for (size_t f = 0; f < d; f++)
            n_bins[f] = bins.n_bins[f];
    gb_bins_free(&bins);
    return rc;
}

void gt_codes_free(uint8_t **codes)
{
    kiln_free_aligned(*codes);
    *codes = NULL;
}

typedef struct {
    double g, h, c, pad;
} hbin_t;

#define TWO_COPIES_MIN 2048

static void hist_feature(const uint8_t *col, const uint32_t *rows, size_t m, const float *gh,
                         hbin_t *h, hbin_t *h2, unsigned nb)
{
    memset(h, 0, nb * sizeof *h);
    if (m < TWO_COPIES_MIN) {
        for (size_t i = 0; i < m; i++) {
            hbin_t *e = &h[rows ? col[rows[i]] : col[i]];
            e->g += gh[2 * i];
            e->h += gh[2 * i + 1];
            e->c += 1.0;
        }
        return;
    }
    memset(h2, 0, nb * sizeof *h2);
    size_t i = 0;
    for (; i + 1 < m; i += 2) {
        hbin_t *a = &h[rows ? col[rows[i]] : col[i]];
        a->g += gh[2 * i];
        a->h += gh[2 * i + 1];
        a->c += 1.0;
        hbin_t *b = &h2[rows ? col[rows[i + 1]] : col[i + 1]];
        b->g += gh[2 * i + 2];
        b->h += gh[2 * i + 3];
        b->c += 1.0;
    }
    if (i < m) {
        hbin_t *a = &h[rows ? col[rows[i]] : col[i]];
        a->g += gh[2 * i];
        a->h += gh[2 * i + 1];
        a->c += 1.0;
    }
    for (unsigned b = 0; b < nb; b++) {
        h[b].g += h2[b].g;
        h[b].h += h2[b].h;
        h[b].c += h2[b].c;
    }
}

typedef struct {
    const uint8_t  *codes;
    size_t          n;
    const uint16_t *n_bins;
    const size_t   *off;
    const uint32_t *rows;
    size_t          m;
    const float    *gh;
    hbin_t         *hist;
} job_t;

static void hist_chunk(void *ctx, size_t lo, size_t hi)
{
    const job_t *j = ctx;
    hbin_t h2[GB_MAX_BINS + 1];
    for (size_t f = lo; f < hi; f++)
        hist_feature(j->codes + f * j->n, j->rows, j->m, j->gh, j->hist + j->off[f], h2,
                     j->n_bins[f]);
}

void gt_hist_cpu(const uint8_t *codes, size_t n, size_t d, const uint16_t *n_bins,
                 const uint32_t *rows, size_t m, const float *gh, float *ogh, double *hist,
                 int threads)
{
    size_t off[4096], total = 0;
    for (size_t f = 0; f < d && f < 4096; f++) {
        off[f] = total;
        total += n_bins[f];
    }
    job_t job = {codes, n, n_bins, off, rows, m, gh, (hbin_t *)(void *)hist};
    if (rows) {          /* build_hist: (g, h) into the partition's order */
        for (size_t i = 0; i < m; i++) {
            ogh[2 * i] = gh[2 * (size_t)rows[i]];
            ogh[2 * i + 1] = gh[2 * (size_t)rows[i] + 1];
        }
        job.gh = ogh;
    }
    gb_par_for(threads, d, hist_chunk, &job);
}
