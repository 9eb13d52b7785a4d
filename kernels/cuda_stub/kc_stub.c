/* kc_stub.c - the part of kernels_cuda.h the jobs use, for a build without
 * nvcc (make CUDA=0, or no CUDA toolkit): every call says there is no GPU
 * (KILN_EUNSUPPORTED), so the jobs run on the CPU reference.  Linked in
 * place of libkiln_cuda.a; nothing else changes. */
#include "../kernels_cuda.h"

static int no_gpu(kiln_err_t *err)
{
    return kiln_err_set(err, KILN_EUNSUPPORTED, "this kiln was built without CUDA (no nvcc)");
}

int kc_device_count(int *count, kiln_err_t *err)
{
    (void)err;
    *count = 0;
    return 0;
}

int kc_device_info(int device, kc_device_info_t *info, kiln_err_t *err)
{
    (void)device, (void)info;
    return no_gpu(err);
}

int kc_ctx_new(int device, kc_ctx_t **out, kiln_err_t *err)
{
    (void)device;
    *out = NULL;
    return no_gpu(err);
}

void kc_ctx_destroy(kc_ctx_t **ctx)
{
    if (ctx)
        *ctx = NULL;
}

int kc_feat_plan_new(kc_ctx_t *ctx, const kc_feat_config_t *cfg, kc_feat_plan_t **out,
                     kiln_err_t *err)
{
    (void)ctx, (void)cfg;
    *out = NULL;
    return no_gpu(err);
}

void kc_feat_plan_destroy(kc_feat_plan_t **plan)
{
    if (plan)
        *plan = NULL;
}

size_t kc_feat_n_outputs(const kc_feat_plan_t *plan)
{
    (void)plan;
    return 0;
}

int kc_featurize_host(kc_feat_plan_t *plan, const float *x, size_t n_windows,
                      size_t chunk_windows, float *out, kiln_err_t *err)
{
    (void)plan, (void)x, (void)n_windows, (void)chunk_windows, (void)out;
    return no_gpu(err);
}

int kc_model_from_logreg(kc_ctx_t *ctx, const km_logreg_t *m, kc_model_t **out, kiln_err_t *err)
{
    (void)ctx, (void)m;
    *out = NULL;
    return no_gpu(err);
}

int kc_model_from_mlp(kc_ctx_t *ctx, const km_mlp_t *m, kc_model_t **out, kiln_err_t *err)
{
    (void)ctx, (void)m;
    *out = NULL;
    return no_gpu(err);
}

int kc_model_from_gbdt(kc_ctx_t *ctx, const km_gbdt_t *m, kc_model_t **out, kiln_err_t *err)
{
    (void)ctx, (void)m;
    *out = NULL;
    return no_gpu(err);
}

int kc_model_from_anomaly(kc_ctx_t *ctx, const km_anomaly_t *m, kc_model_t **out,
                          kiln_err_t *err)
{
    (void)ctx, (void)m;
    *out = NULL;
    return no_gpu(err);
}

void kc_model_destroy(kc_model_t **m)
{
    if (m)
        *m = NULL;
}

int kc_model_predict(kc_model_t *m, const float *x, size_t n, float *scores, int32_t *pred,
                     kiln_err_t *err)
{
    (void)m, (void)x, (void)n, (void)scores, (void)pred;
    return no_gpu(err);
}

int kc_ctx_sync(kc_ctx_t *ctx, kiln_err_t *err)
{
    (void)ctx;
    return no_gpu(err);
}

int kc_dev_alloc(kc_ctx_t *ctx, size_t bytes, void **out, kiln_err_t *err)
{
    (void)ctx, (void)bytes;
    *out = NULL;
    return no_gpu(err);
}

void kc_dev_free(kc_ctx_t *ctx, void **p)
{
    (void)ctx;
    if (p)
        *p = NULL;
}

int kc_copy_to_dev(kc_ctx_t *ctx, void *dst, const void *src, size_t bytes, kiln_err_t *err)
{
    (void)ctx, (void)dst, (void)src, (void)bytes;
    return no_gpu(err);
}

int kc_copy_to_host(kc_ctx_t *ctx, void *dst, const void *src, size_t bytes, kiln_err_t *err)
{
    (void)ctx, (void)dst, (void)src, (void)bytes;
    return no_gpu(err);
}

int kc_copy_to_dev_async(kc_ctx_t *ctx, void *dst, const void *src, size_t bytes, void *stream,
                         kiln_err_t *err)
{
    (void)ctx, (void)dst, (void)src, (void)bytes, (void)stream;
    return no_gpu(err);
}

int kc_copy_to_host_async(kc_ctx_t *ctx, void *dst, const void *src, size_t bytes,
                          void *stream, kiln_err_t *err)
{
    (void)ctx, (void)dst, (void)src, (void)bytes, (void)stream;
    return no_gpu(err);
}

int kc_stream_sync(kc_ctx_t *ctx, void *stream, kiln_err_t *err)
{
    (void)ctx, (void)stream;
    return no_gpu(err);
}

int kc_host_register(kc_ctx_t *ctx, void *p, size_t bytes, kiln_err_t *err)
{
    (void)ctx, (void)p, (void)bytes;
    return no_gpu(err);
}

void kc_host_unregister(kc_ctx_t *ctx, void *p)
{
    (void)ctx, (void)p;
}

int kc_feat_run(kc_feat_plan_t *plan, const float *d_x, size_t n_windows, float *d_out,
                void *stream, kiln_err_t *err)
{
    (void)plan, (void)d_x, (void)n_windows, (void)d_out, (void)stream;
    return no_gpu(err);
}

void *kc_ctx_stream(kc_ctx_t *ctx, int i)
{
    (void)ctx, (void)i;
    return NULL;
}

int kc_host_alloc(kc_ctx_t *ctx, size_t bytes, void **out, kiln_err_t *err)
{
    (void)ctx, (void)bytes;
    *out = NULL;
    return no_gpu(err);
}

void kc_host_free(kc_ctx_t *ctx, void **p)
{
    (void)ctx;
    if (p)
        *p = NULL;
}

size_t kc_model_n_features(const kc_model_t *m)
{
    (void)m;
    return 0;
}

size_t kc_model_n_outputs(const kc_model_t *m)
{
    (void)m;
    return 0;
}

int kc_logreg_fit(kc_ctx_t *ctx, const km_data_t *data, const km_logreg_params_t *p,
                  const km_reduce_t *reduce, km_logreg_t **out, kiln_err_t *err)
{
    (void)ctx, (void)data, (void)p, (void)reduce;
    *out = NULL;
    return no_gpu(err);
}

int kc_mlp_fit(kc_ctx_t *ctx, const km_data_t *data, const km_mlp_params_t *p,
               const km_reduce_t *reduce, km_mlp_t **out, kiln_err_t *err)
{
    (void)ctx, (void)data, (void)p, (void)reduce;
    *out = NULL;
    return no_gpu(err);
}

int kc_nccl_id_new(char out[KC_NCCL_ID_BYTES], kiln_err_t *err)
{
    (void)out;
    return no_gpu(err);
}

int kc_nccl_init(kc_ctx_t *ctx, int n_ranks, int rank, const char id[KC_NCCL_ID_BYTES],
                 kc_nccl_t **out, kiln_err_t *err)
{
    (void)ctx, (void)n_ranks, (void)rank, (void)id;
    *out = NULL;
    return no_gpu(err);
}

void kc_nccl_destroy(kc_nccl_t **c)
{
    if (c)
        *c = NULL;
}

void kc_nccl_reduce(kc_nccl_t *c, km_reduce_t *out)
{
    (void)c;
    out->sum = NULL;
    out->ud = NULL;
    out->rank = 0;
    out->n_ranks = 1;
}
