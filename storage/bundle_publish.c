/* bundle_publish.c - the publisher's side (bundle.h, "publish"): the
 * manifest from a .kmodel and its feature spec, the tar, the bundle and its
 * sealed envelope written bundle first; and the re-signing of an old
 * envelope for `kiln rollback`. */
#include "storage/bundle_int.h"

#include <stdio.h>
#include <string.h>

#include "core/kiln_alloc.h"

/* The .kmodel header ("KILNMDL1", u32 LE length, JSON): a new reference. */
static json_t *model_header(const unsigned char *p, size_t len)
{
    if (len < 12 || memcmp(p, "KILNMDL1", 8))
        return NULL;
    uint32_t hlen = (uint32_t)p[8] | (uint32_t)p[9] << 8 | (uint32_t)p[10] << 16 |
                    (uint32_t)p[11] << 24;
    if (hlen > len - 12)
        return NULL;
    json_t *h = json_loadb((const char *)p + 12, hlen, JSON_REJECT_DUPLICATES, NULL);
    if (!json_is_object(h)) {
        json_decref(h);
        return NULL;
    }
    return h;
}

static json_t *build_manifest(const st_bundle_meta_t *meta, const json_t *header,
                              const char *model_hex, size_t model_len, const char *spec_hex,
                              size_t spec_len, int encrypted)
{
    json_t *schema = meta->input_schema ? json_deep_copy(meta->input_schema)
                                        : json_deep_copy(json_object_get(header, "feature_names"));
    json_t *metrics = meta->metrics ? json_deep_copy(meta->metrics)
                      : json_object_get(header, "metrics")
                          ? json_deep_copy(json_object_get(header, "metrics")) : json_object();
    json_t *lineage = meta->lineage ? json_deep_copy(meta->lineage) : json_object();
    if (!meta->lineage && lineage) {
        const char *keys[] = {"dataset_sha256", "featspec_sha256"};
        for (size_t i = 0; i < 2; i++)
            if (json_object_get(header, keys[i]))
                json_object_set(lineage, keys[i], json_object_get(header, keys[i]));
    }
    if (!json_is_array(schema) || !json_is_object(metrics) || !json_is_object(lineage)) {
        json_decref(schema);
        json_decref(metrics);
        json_decref(lineage);
        return NULL;
    }
    return json_pack("{s:s, s:s, s:{s:s, s:I, s:s, s:s}, s:o, s:o, s:o, s:I, s:s, s:[{s:s, s:I, "
                     "s:s}, {s:s, s:I, s:s}]}",
                     "schema", MANIFEST_SCHEMA, "fleet", meta->fleet, "model", "name",
                     meta->model_name, "version", (json_int_t)meta->version, "id",
                     meta->model_id ? meta->model_id : model_hex, "sha256", model_hex,
                     "input_schema", schema, "metrics", metrics, "lineage", lineage, "created",
                     (json_int_t)meta->created, "encryption", encrypted ? ENC_NAME : "none",
                     "members", "name", st_bundle_member_names[0], "size", (json_int_t)model_len,
                     "sha256", model_hex, "name", st_bundle_member_names[1], "size",
                     (json_int_t)spec_len, "sha256", spec_hex);
}

int st_bundle_create(const char *model_path, const char *featspec_json,
                     const st_bundle_meta_t *meta, const st_bundle_fleetkey_t *fleet_key,
                     const st_bundle_signkey_t *sk, const char *bundle_path,
                     const char *envelope_path, kiln_err_t *err)
{
    if (!model_path || !featspec_json || !meta || !sk || !bundle_path || !envelope_path)
        return kiln_err_set(err, KILN_EINVAL, "publish: missing argument");
    if (!st_bundle_valid_fleet(meta->fleet) || !meta->model_name || !meta->model_name[0] ||
        strlen(meta->model_name) >= ST_BUNDLE_NAME_MAX || meta->version == 0 ||
        meta->version > INT64_MAX || meta->seq == 0 || meta->seq > INT64_MAX ||
        meta->expires <= meta->created)
        return kiln_err_set(err, KILN_EINVAL, "publish: fleet (1-63 of [A-Za-z0-9._-]), model "
                            "name, version > 0, seq > 0 and expires > created are required");
    unsigned char *model = NULL;
    size_t model_len = 0;
    json_t *header = NULL, *manifest = NULL;
    char *manifest_text = NULL, *envelope = NULL;
    void *bundle = NULL;
    size_t bundle_len = 0, manifest_len = 0, envelope_len = 0;
    st_bundle_grow_t tar = {0};
    int rc = st_bundle_read_bounded(model_path, ST_BUNDLE_MAX_BYTES, &model, &model_len, err);
    if (rc < 0)
        goto out;
    if (model_len > ST_BUNDLE_MAX_BYTES || !(header = model_header(model, model_len))) {
        rc = kiln_err_set(err, KILN_EFORMAT, "publish: %s is not a kiln model file (or over "
                          "%zu bytes)", model_path, ST_BUNDLE_MAX_BYTES);
        goto out;
    }
    size_t spec_len = strlen(featspec_json);
    json_t *spec = json_loads(featspec_json, JSON_REJECT_DUPLICATES, NULL);
    int spec_ok = json_is_object(spec);
    json_decref(spec);
    if (!spec_ok) {
        rc = kiln_err_set(err, KILN_EJSON, "publish: the feature spec is not a JSON object");
        goto out;
    }
    char model_hex[65], spec_hex[65];
    st_bundle_sha256_hex(model, model_len, model_hex);
    st_bundle_sha256_hex(featspec_json, spec_len, spec_hex);
    if (!(manifest = build_manifest(meta, header, model_hex, model_len, spec_hex, spec_len,
                                    fleet_key != NULL))) {
        rc = kiln_err_set(err, KILN_EINVAL, "publish: input_schema must be an array (or the "
                          "model's feature_names), metrics and lineage objects");
        goto out;
    }
    if (!(manifest_text = st_bundle_canonical(manifest, &manifest_len))) {
        rc = kiln_err_set(err, KILN_ENOMEM, "publish: out of memory");
        goto out;
    }
    const char *names[3] = {MANIFEST_MEMBER, st_bundle_member_names[0], st_bundle_member_names[1]};
    const void *data[3] = {manifest_text, model, featspec_json};
    size_t lens[3] = {manifest_len, model_len, spec_len};
    if ((rc = st_bundle_make_tar(names, data, lens, 3, meta->created, &tar, err)) < 0 ||
        (rc = st_bundle_wrap(tar.p, tar.len, meta->fleet, fleet_key, &bundle, &bundle_len,
                             err)) < 0 ||
        (rc = st_bundle_seal(manifest, bundle, bundle_len, meta->seq, meta->expires,
                             meta->rollback, sk, &envelope, &envelope_len, err)) < 0)
        goto out;
    /* the bundle first: an envelope never names a bundle that is not there */
    if ((rc = st_bundle_write_atomic(bundle_path, bundle, bundle_len, 0644, 0, err)) < 0 ||
        (rc = st_bundle_write_atomic(envelope_path, envelope, envelope_len, 0644, 0, err)) < 0)
        goto out;
out:
    kiln_free(model);
    json_decref(header);
    json_decref(manifest);
    kiln_free(manifest_text);
    kiln_free(tar.p);
    kiln_free(bundle);
    kiln_free(envelope);
    return rc;
}

int st_bundle_reseal_bytes(const void *old_envelope, size_t old_len, const char *bundle_path,
                           uint64_t seq, int64_t expires, int rollback,
                           const st_bundle_signkey_t *sk, char **envelope, size_t *envelope_len,
                           kiln_err_t *err)
{
    if (!old_envelope || !bundle_path || !sk || !envelope || !envelope_len)
        return kiln_err_set(err, KILN_EINVAL, "reseal: missing argument");
    *envelope = NULL;
    unsigned char *bundle = NULL;
    size_t bundle_len;
    st_bundle_envelope_t env;
    st_bundle_pubkey_t pk;
    memset(&env, 0, sizeof env);
    memcpy(pk.pk, sk->pk, sizeof pk.pk);
    int rc = st_bundle_open_envelope(old_envelope, old_len, &pk, &env, NULL, err);
    if (rc < 0 || (rc = st_bundle_read_bounded(bundle_path, (size_t)env.bundle_size, &bundle,
                                               &bundle_len, err)) < 0)
        goto out;
    char hex[65];
    st_bundle_sha256_hex(bundle, bundle_len, hex);
    if (bundle_len != env.bundle_size || strcmp(hex, env.bundle_sha256)) {
        rc = kiln_err_set(err, KILN_EFORMAT, "reseal: %s is not the bundle the envelope describes",
                          bundle_path);
        goto out;
    }
    rc = st_bundle_seal(env.manifest, bundle, bundle_len, seq ? seq : env.seq, expires, rollback,
                        sk, envelope, envelope_len, err);
out:
    st_bundle_envelope_free(&env);
    kiln_free(bundle);
    return rc;
}

int st_bundle_reseal(const char *old_envelope_path, const char *bundle_path, uint64_t seq,
                     int64_t expires, int rollback, const st_bundle_signkey_t *sk,
                     const char *out_envelope_path, kiln_err_t *err)
{
    if (!old_envelope_path || !bundle_path || !sk || !out_envelope_path)
        return kiln_err_set(err, KILN_EINVAL, "reseal: missing argument");
    unsigned char *old = NULL;
    size_t old_len, envelope_len;
    char *envelope = NULL;
    int rc = st_bundle_read_bounded(old_envelope_path, ST_BUNDLE_ENVELOPE_MAX, &old, &old_len, err);
    if (rc < 0 || (rc = st_bundle_reseal_bytes(old, old_len, bundle_path, seq, expires, rollback,
                                               sk, &envelope, &envelope_len, err)) < 0)
        goto out;
    rc = st_bundle_write_atomic(out_envelope_path, envelope, envelope_len, 0644, 0, err);
out:
    kiln_free(old);
    kiln_free(envelope);
    return rc;
}
