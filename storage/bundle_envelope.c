/* bundle_envelope.c - the envelope the agent polls (bundle.h, "ENVELOPE"):
 * sealing (Ed25519 over the canonical JSON of every field the agent acts
 * on) and the agent's verification - signature first, then fleet, expiry,
 * version and seq - before it trusts any field. */
#include "storage/bundle_int.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/kiln_alloc.h"

static int is_hex64(const char *s)
{
    if (!s || strlen(s) != 64)
        return 0;
    for (int i = 0; i < 64; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return 1;
}

/* kiln_malloc'd canonical text of j. */
char *st_bundle_canonical(const json_t *j, size_t *len)
{
    char *t = json_dumps(j, JSON_CANON);
    if (!t)
        return NULL;
    size_t n = strlen(t);
    char *out = kiln_malloc(n + 1);
    if (out)
        memcpy(out, t, n + 1);
    free(t);
    if (len)
        *len = n;
    return out;
}

/* Ed25519 over SIG_DOMAIN + st_bundle_canonical(env without "sig"). */
static int sign_message(const json_t *unsigned_env, unsigned char **msg, size_t *msg_len)
{
    size_t n;
    char *t = st_bundle_canonical(unsigned_env, &n);
    if (!t)
        return -1;
    size_t dl = strlen(SIG_DOMAIN);
    *msg = kiln_malloc(dl + n);
    if (!*msg) {
        kiln_free(t);
        return -1;
    }
    memcpy(*msg, SIG_DOMAIN, dl);
    memcpy(*msg + dl, t, n);
    *msg_len = dl + n;
    kiln_free(t);
    return 0;
}

int st_bundle_seal(const json_t *manifest, const void *bundle, size_t bundle_len, uint64_t seq,
                   int64_t expires, int rollback, const st_bundle_signkey_t *sk,
                   char **envelope, size_t *envelope_len, kiln_err_t *err)
{
    *envelope = NULL;
    int rc;
    if ((rc = st_bundle_crypto_ready(err)) < 0)
        return rc;
    if (!json_is_object(manifest) || !sk || seq == 0 || seq > INT64_MAX ||
        bundle_len > ST_BUNDLE_MAX_BYTES)
        return kiln_err_set(err, KILN_EINVAL, "seal: no manifest or key, seq 0, or bundle "
                            "over %zu bytes", ST_BUNDLE_MAX_BYTES);
    /* the agent re-serializes its own parse: that must give the same bytes */
    size_t n1, n2;
    char *t1 = st_bundle_canonical(manifest, &n1), *t2 = NULL;
    json_t *back = t1 ? json_loadb(t1, n1, JSON_REJECT_DUPLICATES, NULL) : NULL;
    if (back)
        t2 = st_bundle_canonical(back, &n2);
    int same = t1 && t2 && n1 == n2 && memcmp(t1, t2, n1) == 0;
    json_decref(back);
    kiln_free(t1);
    kiln_free(t2);
    if (!same)
        return kiln_err_set(err, KILN_EINVAL, "seal: the manifest does not survive a JSON "
                            "round trip unchanged (a number that prints differently?)");
    char hex[65];
    st_bundle_sha256_hex(bundle, bundle_len, hex);
    json_t *env = json_pack("{s:s, s:O, s:I, s:I, s:b, s:s, s:I}", "format", ENVELOPE_FORMAT,
                            "manifest", manifest, "seq", (json_int_t)seq, "expires",
                            (json_int_t)expires, "rollback", rollback ? 1 : 0, "bundle_sha256",
                            hex, "bundle_size", (json_int_t)bundle_len);
    unsigned char *msg = NULL, sig[crypto_sign_BYTES];
    size_t msg_len = 0;
    char b64[sodium_base64_ENCODED_LEN(crypto_sign_BYTES, sodium_base64_VARIANT_ORIGINAL)];
    if (!env || sign_message(env, &msg, &msg_len) < 0) {
        json_decref(env);
        return kiln_err_set(err, KILN_ENOMEM, "seal: out of memory");
    }
    crypto_sign_detached(sig, NULL, msg, msg_len, sk->sk);
    kiln_free(msg);
    sodium_bin2base64(b64, sizeof b64, sig, sizeof sig, sodium_base64_VARIANT_ORIGINAL);
    if (json_object_set_new(env, "sig", json_string(b64)) < 0 ||
        !(*envelope = st_bundle_canonical(env, envelope_len))) {
        json_decref(env);
        return kiln_err_set(err, KILN_ENOMEM, "seal: out of memory");
    }
    json_decref(env);
    return 0;
}

static int get_int(const json_t *o, const char *key, json_int_t lo, json_int_t *v)
{
    const json_t *j = json_object_get(o, key);
    if (!json_is_integer(j) || json_integer_value(j) < lo)
        return -1;
    *v = json_integer_value(j);
    return 0;
}

static int copy_str(const json_t *o, const char *key, char *dst, size_t cap)
{
    const char *s = json_string_value(json_object_get(o, key));
    if (!s || !s[0] || strlen(s) >= cap)
        return -1;
    memcpy(dst, s, strlen(s) + 1);
    return 0;
}

/* The signed fields into out (after the signature checked). */
static int parse_signed(json_t *root, st_bundle_envelope_t *out, st_bundle_reason_t *why,
                        kiln_err_t *err)
{
    json_t *m = json_object_get(root, "manifest");
    json_t *model = json_object_get(m, "model");
    json_t *members = json_object_get(m, "members");
    const char *enc = json_string_value(json_object_get(m, "encryption"));
    const char *schema = json_string_value(json_object_get(m, "schema"));
    json_int_t version, seq, expires, size;
    if (!schema || strcmp(schema, MANIFEST_SCHEMA))
        return st_bundle_refuse(why, err, ST_BUNDLE_R_MANIFEST,
                                "manifest schema is \"%.60s\", not \"%s\"", schema ? schema : "",
                                MANIFEST_SCHEMA);
    if (copy_str(m, "fleet", out->fleet, sizeof out->fleet) < 0 ||
        !st_bundle_valid_fleet(out->fleet) ||
        copy_str(model, "name", out->model_name, sizeof out->model_name) < 0 ||
        get_int(model, "version", 1, &version) < 0 || !enc ||
        (strcmp(enc, "none") && strcmp(enc, ENC_NAME)) || !json_is_array(members) ||
        json_array_size(members) != ST_BUNDLE_MEMBERS ||
        !json_is_array(json_object_get(m, "input_schema")))
        return st_bundle_refuse(why, err, ST_BUNDLE_R_MANIFEST,
                                "manifest: fleet, model.name, model.version, encryption, "
                                "input_schema or members missing or invalid");
    if (get_int(root, "seq", 1, &seq) < 0 || get_int(root, "expires", 0, &expires) < 0 ||
        get_int(root, "bundle_size", ST_BUNDLE_HEADER_BYTES, &size) < 0 ||
        (uint64_t)size > ST_BUNDLE_MAX_BYTES ||
        !json_is_boolean(json_object_get(root, "rollback")) ||
        copy_str(root, "bundle_sha256", out->bundle_sha256, sizeof out->bundle_sha256) < 0 ||
        !is_hex64(out->bundle_sha256))
        return st_bundle_refuse(why, err, ST_BUNDLE_R_MANIFEST,
                                "envelope: seq, expires, rollback, bundle_sha256 or bundle_size "
                                "missing or invalid");
    for (size_t i = 0; i < ST_BUNDLE_MEMBERS; i++) {
        const json_t *e = json_array_get(members, i);
        const char *name = json_string_value(json_object_get(e, "name"));
        json_int_t msize;
        st_bundle_member_t *d = &out->members[i];
        if (!name || strcmp(name, st_bundle_member_names[i]) || get_int(e, "size", 0, &msize) < 0 ||
            (uint64_t)msize > ST_BUNDLE_MAX_BYTES ||
            copy_str(e, "sha256", d->sha256, sizeof d->sha256) < 0 || !is_hex64(d->sha256))
            return st_bundle_refuse(why, err, ST_BUNDLE_R_MANIFEST,
                                    "manifest: member %zu must be {\"name\":\"%s\", \"size\", "
                                    "\"sha256\"}",
                                    i, st_bundle_member_names[i]);
        snprintf(d->name, sizeof d->name, "%s", name);
        d->size = (uint64_t)msize;
    }
    out->version = (uint64_t)version;
    out->seq = (uint64_t)seq;
    out->expires = (int64_t)expires;
    out->bundle_size = (uint64_t)size;
    out->rollback = json_is_true(json_object_get(root, "rollback"));
    out->encrypted = strcmp(enc, ENC_NAME) == 0;
    out->manifest = json_incref(m);
    if (!(out->manifest_text = st_bundle_canonical(m, &out->manifest_len)))
        return st_bundle_refuse(why, err, ST_BUNDLE_R_NOMEM, "envelope: out of memory");
    return 0;
}

/* Parse, signature, then the signed fields: no device checks. */
int st_bundle_open_envelope(const void *bytes, size_t len, const st_bundle_pubkey_t *pk,
                            st_bundle_envelope_t *out, st_bundle_reason_t *why, kiln_err_t *err)
{
    static const char *const KEYS[] = {"format", "manifest", "seq", "expires", "rollback",
                                       "bundle_sha256", "bundle_size", "sig"};
    memset(out, 0, sizeof *out);
    int rc;
    if ((rc = st_bundle_crypto_ready(err)) < 0)
        return rc;
    if (len > ST_BUNDLE_ENVELOPE_MAX)
        return st_bundle_refuse(why, err, ST_BUNDLE_R_FORMAT,
                                "envelope: %zu bytes, over the %zu limit", len,
                                ST_BUNDLE_ENVELOPE_MAX);
    json_error_t jerr;
    json_t *root = json_loadb(bytes, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root || !json_is_object(root)) {
        json_decref(root);
        return st_bundle_refuse(why, err, ST_BUNDLE_R_FORMAT,
                                "envelope: not a JSON object (%s, line %d)",
                                root ? "another type" : jerr.text, jerr.line);
    }
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v) {
        size_t k = 0;
        while (k < sizeof KEYS / sizeof KEYS[0] && strcmp(key, KEYS[k]))
            k++;
        if (k == sizeof KEYS / sizeof KEYS[0]) {
            rc = st_bundle_refuse(why, err, ST_BUNDLE_R_FORMAT, "envelope: unknown field \"%.60s\"",
                                  key);
            goto out;
        }
    }
    const char *format = json_string_value(json_object_get(root, "format"));
    const char *sig64 = json_string_value(json_object_get(root, "sig"));
    unsigned char sig[crypto_sign_BYTES];
    size_t sig_len = 0;
    if (!format || strcmp(format, ENVELOPE_FORMAT) || !json_is_object(json_object_get(root,
                                                                                   "manifest"))) {
        rc = st_bundle_refuse(why, err, ST_BUNDLE_R_FORMAT, "envelope: format is not \"%s\" or no "
                              "manifest object", ENVELOPE_FORMAT);
        goto out;
    }
    if (!sig64 || sodium_base642bin(sig, sizeof sig, sig64, strlen(sig64), NULL, &sig_len, NULL,
                                    sodium_base64_VARIANT_ORIGINAL) != 0 ||
        sig_len != sizeof sig) {
        rc = st_bundle_refuse(why, err, ST_BUNDLE_R_SIGNATURE, "envelope: \"sig\" is not a base64 "
                              "Ed25519 signature");
        goto out;
    }
    json_object_del(root, "sig");
    unsigned char *msg;
    size_t msg_len;
    if (sign_message(root, &msg, &msg_len) < 0) {
        rc = st_bundle_refuse(why, err, ST_BUNDLE_R_NOMEM, "envelope: out of memory");
        goto out;
    }
    int bad = crypto_sign_verify_detached(sig, msg, msg_len, pk->pk);
    kiln_free(msg);
    if (bad) {
        rc = st_bundle_refuse(why, err, ST_BUNDLE_R_SIGNATURE,
                              "envelope signature does not verify with the enrolled publisher key: "
                              "altered after signing, or signed by another key");
        goto out;
    }
    rc = parse_signed(root, out, why, err);
out:
    json_decref(root);
    if (rc < 0)
        st_bundle_envelope_free(out);
    return rc;
}

int st_bundle_verify_envelope(const void *bytes, size_t len, const st_bundle_pubkey_t *pk,
                              const st_bundle_device_t *dev, st_bundle_envelope_t *out,
                              st_bundle_reason_t *why, kiln_err_t *err)
{
    if (why)
        *why = ST_BUNDLE_R_OK;
    if (!bytes || !pk || !dev || !dev->fleet || !out) {
        if (out)
            memset(out, 0, sizeof *out);
        return st_bundle_refuse(why, err, ST_BUNDLE_R_NOT_VERIFIED, "verify: missing argument");
    }
    int rc = st_bundle_open_envelope(bytes, len, pk, out, why, err);
    if (rc < 0)
        return rc;
    const int running = dev->model_name && dev->model_name[0] &&
                        strcmp(dev->model_name, out->model_name) == 0;
    if (strcmp(out->fleet, dev->fleet))
        rc = st_bundle_refuse(why, err, ST_BUNDLE_R_FLEET,
                              "bundle is for fleet \"%s\", this device is in fleet \"%.100s\"",
                              out->fleet, dev->fleet);
    else if (dev->now >= out->expires)
        rc = st_bundle_refuse(why, err, ST_BUNDLE_R_EXPIRED,
                              "envelope for %s v%llu expired at %lld (now %lld): a stale or "
                              "withheld update",
                              out->model_name, (unsigned long long)out->version,
                              (long long)out->expires, (long long)dev->now);
    else if (running && out->version == dev->version)
        rc = st_bundle_refuse(why, err, ST_BUNDLE_R_SAME_VERSION,
                              "%s v%llu is the version already running", out->model_name,
                              (unsigned long long)out->version);
    else if (running && out->version < dev->version && !out->rollback)
        rc = st_bundle_refuse(why, err, ST_BUNDLE_R_OLDER,
                              "%s v%llu is older than the running v%llu and the envelope is not a "
                              "signed rollback",
                              out->model_name, (unsigned long long)out->version,
                              (unsigned long long)dev->version);
    else if (out->seq <= dev->last_seq)
        rc = st_bundle_refuse(why, err, ST_BUNDLE_R_REPLAY,
                              "envelope seq %llu is not above the last accepted seq %llu: a "
                              "replayed publication",
                              (unsigned long long)out->seq, (unsigned long long)dev->last_seq);
    if (rc < 0) {
        st_bundle_envelope_free(out);
        return rc;
    }
    out->verified = 1;
    return 0;
}

int st_bundle_verify_envelope_file(const char *path, const st_bundle_pubkey_t *pk,
                                   const st_bundle_device_t *dev, st_bundle_envelope_t *out,
                                   st_bundle_reason_t *why, kiln_err_t *err)
{
    unsigned char *bytes;
    size_t len;
    memset(out, 0, sizeof *out);
    int rc = st_bundle_read_bounded(path, ST_BUNDLE_ENVELOPE_MAX, &bytes, &len, err);
    if (rc < 0) {
        if (why)
            *why = ST_BUNDLE_R_IO;
        return rc;
    }
    rc = st_bundle_verify_envelope(bytes, len, pk, dev, out, why, err);
    kiln_free(bytes);
    return rc;
}

void st_bundle_envelope_free(st_bundle_envelope_t *env)
{
    if (!env)
        return;
    json_decref(env->manifest);
    kiln_free(env->manifest_text);
    memset(env, 0, sizeof *env);
}
