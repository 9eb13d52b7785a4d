/* modelfile.c - the .kmodel file (modelfile.h). */
#include "modelfile.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../core/kiln_alloc.h"

static const char MAGIC[8] = {'K', 'I', 'L', 'N', 'M', 'D', 'L', '1'};

int jb_modelfile_write(const char *path, const json_t *header, const km_scaler_t *scaler,
                       const jb_model_kind_t *kind, const void *model, km_buf_t *b,
                       kiln_err_t *err)
{
    char *text = json_dumps(header, JSON_COMPACT | JSON_SORT_KEYS);
    if (!text)
        return kiln_err_set(err, KILN_ENOMEM, "model file: out of memory");
    km_buf_put(b, MAGIC, sizeof MAGIC);
    km_buf_u32(b, (uint32_t)strlen(text));
    km_buf_put(b, text, strlen(text));
    free(text);
    int rc = km_scaler_save(scaler, b, err);
    if (rc == 0)
        rc = kind->save(model, b, err);
    if (rc == 0 && b->oom)
        rc = kiln_err_set(err, KILN_ENOMEM, "model file: out of memory");
    if (rc < 0 || !path)
        return rc;
    char tmp[4200];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid()) >= (int)sizeof tmp)
        return kiln_err_set(err, KILN_EINVAL, "%s: path too long", path);
    FILE *f = fopen(tmp, "wb");
    if (!f)
        return kiln_err_set(err, KILN_EIO, "%s: %s", tmp, strerror(errno));
    int bad = fwrite(b->p, 1, b->len, f) != b->len;
    bad |= fflush(f) != 0 || fsync(fileno(f)) != 0;
    bad |= fclose(f) != 0;
    if (bad || rename(tmp, path) < 0) {
        int e = errno;
        unlink(tmp);
        return kiln_err_set(err, KILN_EIO, "%s: %s", path, strerror(e));
    }
    return 0;
}

void jb_modelfile_free(jb_modelfile_t *m)
{
    if (!m)
        return;
    json_decref(m->header);
    km_scaler_free(&m->scaler);
    if (m->model && m->kind)
        m->kind->free_model(m->model);
    memset(m, 0, sizeof *m);
}

int jb_modelfile_parse(const void *bytes, size_t len, jb_modelfile_t *out, kiln_err_t *err)
{
    memset(out, 0, sizeof *out);
    km_rd_t r = {bytes, len, 0};
    char magic[8];
    uint32_t hlen = 0;
    if (km_rd_get(&r, magic, 8) < 0 || memcmp(magic, MAGIC, 8) || km_rd_u32(&r, &hlen) < 0 ||
        hlen > len - r.off)
        return kiln_err_set(err, KILN_EFORMAT, "not a kiln model file (bad magic or header)");
    json_error_t jerr;
    out->header = json_loadb((const char *)bytes + r.off, hlen, JSON_REJECT_DUPLICATES, &jerr);
    r.off += hlen;
    int rc;
    const char *kind = json_string_value(json_object_get(out->header, "kind"));
    if (!out->header || !kind) {
        rc = kiln_err_set(err, KILN_EFORMAT, "model file: bad header");
        goto fail;
    }
    if (!(out->kind = jb_model_kind_find(kind))) {
        rc = kiln_err_set(err, KILN_EFORMAT, "model file: unknown model kind \"%s\"", kind);
        goto fail;
    }
    if ((rc = km_scaler_read(&r, &out->scaler, err)) < 0)
        goto fail;
    if ((rc = out->kind->load((const char *)bytes + r.off, len - r.off, &out->model, err)) < 0)
        goto fail;
    out->n_features = km_scaler_n_features(out->scaler);
    return 0;
fail:
    jb_modelfile_free(out);
    return rc;
}

int jb_modelfile_read(const char *path, jb_modelfile_t *out, kiln_err_t *err)
{
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    if (!f)
        return kiln_err_set(err, errno == ENOENT ? KILN_ENOTFOUND : KILN_EIO, "%s: %s", path,
                            strerror(errno));
    if (fseek(f, 0, SEEK_END) < 0) {
        fclose(f);
        return kiln_err_set(err, KILN_EIO, "%s: cannot seek", path);
    }
    long size = ftell(f);
    rewind(f);
    if (size < 0 || (size_t)size > JB_MODELFILE_MAX) {
        fclose(f);
        return kiln_err_set(err, KILN_EFORMAT, "%s: not a model file (size)", path);
    }
    unsigned char *buf = kiln_malloc((size_t)size + 1);
    if (!buf) {
        fclose(f);
        return kiln_err_set(err, KILN_ENOMEM, "%s: out of memory", path);
    }
    size_t got = fread(buf, 1, (size_t)size, f);
    fclose(f);
    int rc = got == (size_t)size ? jb_modelfile_parse(buf, got, out, err)
                                 : kiln_err_set(err, KILN_EIO, "%s: short read", path);
    kiln_free(buf);
    if (rc < 0 && err && !strstr(err->msg, path)) {
        char msg[sizeof err->msg];
        memcpy(msg, err->msg, sizeof msg);
        int k = snprintf(err->msg, sizeof err->msg, "%s: ", path);
        if (k > 0 && (size_t)k < sizeof err->msg)
            memcpy(err->msg + k, msg, sizeof err->msg - (size_t)k - 1);
        err->msg[sizeof err->msg - 1] = '\0';
    }
    return rc;
}

int jb_modelfile_predict(const jb_modelfile_t *m, const float *x, size_t n, float *scores,
                         int32_t *pred, kiln_err_t *err)
{
    float *z = kiln_malloc((n ? n : 1) * m->n_features * sizeof *z);
    if (!z)
        return kiln_err_set(err, KILN_ENOMEM, "predict: out of memory for %zu rows", n);
    int rc = km_scaler_transform(m->scaler, x, n, m->n_features, z, err);
    if (rc == 0)
        rc = m->kind->predict(m->model, z, n, scores, pred, err);
    kiln_free(z);
    return rc;
}
