/* fuzz_bundle.c - libFuzzer target for what an edge agent parses from the
 * network (storage/bundle_envelope.c, bundle_bytes.c, bundle_tar.c).  First byte even: the rest is an envelope for
 * st_bundle_verify_envelope (JSON, base64, signature).  Odd: the rest is the
 * tar inside a bundle; it is wrapped, and signed here with the fuzz key, so
 * the tar walker (names, types, links, sizes, hashes) is reached.  Every call
 * must return 0 or a refusal with a reason and a message, never crash, leak
 * or read out of bounds (built with ASan + UBSan). */
#include <sodium.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/kiln_alloc.h"
#include "storage/bundle.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static st_bundle_signkey_t sk;
static st_bundle_pubkey_t pk;
static json_t *manifest;

/* A fixed signing key (the fuzz key, from a fixed seed) and manifest. */
static void init(void)
{
    static const char *text =
        "{\"schema\":\"kiln-bundle/1\",\"fleet\":\"fz\",\"model\":{\"name\":\"m\",\"version\":2,"
        "\"id\":\"i\",\"sha256\":\"00\"},\"input_schema\":[\"a\"],\"metrics\":{},\"lineage\":{},"
        "\"created\":1,\"encryption\":\"none\",\"members\":["
        "{\"name\":\"model.kmodel\",\"size\":4,\"sha256\":"
        "\"e813922db2a66ce8d094fa467b4af8492ee521f23dc40c0c02a7a7df660232f3\"},"
        "{\"name\":\"featspec.json\",\"size\":2,\"sha256\":"
        "\"44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a\"}]}";
    unsigned char seed[32] = {7};
    crypto_sign_seed_keypair(sk.pk, sk.sk, seed);
    memcpy(pk.pk, sk.pk, sizeof pk.pk);
    manifest = json_loads(text, 0, NULL);
    if (!manifest)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!manifest)
        init();
    if (size < 1)
        return 0;
    st_bundle_device_t dev = {.fleet = "fz", .model_name = "m", .version = 1, .last_seq = 0,
                              .now = 100};
    st_bundle_envelope_t env;
    st_bundle_reason_t why = ST_BUNDLE_R_OK;
    kiln_err_t err;
    err.msg[0] = 0;
    if (!(data[0] & 1)) {
        if (st_bundle_verify_envelope(data + 1, size - 1, &pk, &dev, &env, &why, &err) == 0)
            st_bundle_envelope_free(&env);
        else if (why == ST_BUNDLE_R_OK || err.msg[0] == 0)
            abort();   /* every refusal must say why */
        return 0;
    }
    void *bundle = NULL;
    char *text = NULL;
    size_t bundle_len, text_len;
    if (st_bundle_wrap(data + 1, size - 1, "fz", NULL, &bundle, &bundle_len, &err) < 0 ||
        st_bundle_seal(manifest, bundle, bundle_len, 1, 1000, 0, &sk, &text, &text_len, &err) < 0)
        abort();
    if (st_bundle_verify_envelope(text, text_len, &pk, &dev, &env, &why, &err) < 0)
        abort();   /* our own signature over our own manifest */
    st_bundle_contents_t c;
    if (st_bundle_unpack(&env, bundle, bundle_len, NULL, &c, &why, &err) == 0)
        st_bundle_contents_free(&c);
    else if (why == ST_BUNDLE_R_OK || err.msg[0] == 0)
        abort();
    st_bundle_envelope_free(&env);
    kiln_free(bundle);
    kiln_free(text);
    return 0;
}
