/* enroll.c - `kiln-edge enroll` (enroll.h). */
#include "edge/enroll.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cluster/edge_sig.h"
#include "core/kiln_alloc.h"
#include "edge/fleetc.h"
#include "edge/store.h"
#include "storage/bundle.h"

static int read_small(const char *path, char *buf, size_t cap, size_t *len, kiln_err_t *err)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return kiln_err_at(err, KILN_EIO, path, "%s: %s", path, strerror(errno));
    *len = fread(buf, 1, cap, f);
    int bad = ferror(f) || *len == cap;
    fclose(f);
    if (bad)
        return kiln_err_at(err, KILN_EINVAL, path, "%s: unreadable or over %zu bytes", path,
                           cap - 1);
    buf[*len] = 0;
    return 0;
}

/* A key from the answer (base64 of the raw key, or a whole key line) or a
 * file, into DIR/name as "TAG base64\n", then loaded back as a check. */
static int put_key(const char *dir, const char *name, const char *tag, const char *answer,
                   const char *file, int mode, kiln_err_t *err)
{
    char text[512];
    size_t len = 0;
    int rc;
    if (answer) {
        if (strlen(answer) > 400)
            return kiln_err_at(err, KILN_EFORMAT, name, "enroll answer: %s is too long", name);
        size_t n = strlen(answer);
        while (n && (answer[n - 1] == '\n' || answer[n - 1] == ' '))
            n--;
        if (!strncmp(answer, "KILN-", 5))
            len = (size_t)snprintf(text, sizeof text, "%.*s\n", (int)n, answer);
        else
            len = (size_t)snprintf(text, sizeof text, "%s %s\n", tag, answer);
    } else if ((rc = read_small(file, text, sizeof text, &len, err)) < 0) {
        return rc;
    }
    if ((rc = ke_store_put(dir, name, text, len, mode, err)) < 0)
        return rc;
    char path[KE_PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (mode == 0644) {
        chmod(path, 0644);   /* the umask may have taken bits; the loader wants exactly these */
        st_bundle_pubkey_t pk;
        return st_bundle_load_pubkey(path, &pk, err);
    }
    st_bundle_fleetkey_t fk;
    rc = st_bundle_load_fleetkey(path, &fk, err);
    st_bundle_key_wipe(&fk, sizeof fk);
    return rc;
}

int ke_enroll(const ke_enroll_opts_t *o, char id[64], kiln_err_t *err)
{
    char path[KE_PATH_MAX], ca[KE_PATH_MAX];
    int rc;
    ke_fleetc_t *c = NULL;
    char *resp = NULL, *body = NULL;
    json_t *ans = NULL;
    id[0] = 0;
    if (sodium_init() < 0)
        return kiln_err_set(err, KILN_EIO, "libsodium: cannot initialize");
    if (strncmp(o->server, "https://", 8))
        return kiln_err_at(err, KILN_EINVAL, "--server",
                           "--server %s: the fleet endpoint is https:// only", o->server);
    if (strlen(o->dir) > 3000)
        return kiln_err_set(err, KILN_EINVAL, "--dir: path too long");
    if (mkdir(o->dir, 0700) != 0 && errno != EEXIST)
        return kiln_err_at(err, KILN_EIO, "--dir", "%s: %s", o->dir, strerror(errno));
    snprintf(path, sizeof path, "%s/device.json", o->dir);
    if (access(path, F_OK) == 0)
        return kiln_err_at(err, KILN_EEXIST, "--dir",
                           "%s: a device is enrolled here already (a new enrollment needs a new "
                           "directory)", o->dir);
    char buf[65536];
    size_t len;
    if ((rc = read_small(o->ca_path, buf, sizeof buf, &len, err)) < 0)
        return rc;
    if (!strstr(buf, "-----BEGIN CERTIFICATE-----"))
        return kiln_err_at(err, KILN_EINVAL, "--ca", "%s: not a PEM certificate", o->ca_path);
    if ((rc = ke_store_put(o->dir, "ca.pem", buf, len, 0644, err)) < 0)
        return rc;
    snprintf(ca, sizeof ca, "%s/ca.pem", o->dir);

    if (!(c = kiln_calloc(1, sizeof *c)))
        return kiln_err_set(err, KILN_ENOMEM, "out of memory");
    unsigned char pk[32];
    crypto_sign_keypair(pk, c->sk);
    snprintf(path, sizeof path, "%s/device.sk", o->dir);
    unlink(path);   /* a key left by an enrollment that failed: never used */
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0600);
    if (fd < 0 || write(fd, c->sk, sizeof c->sk) != (ssize_t)sizeof c->sk || fsync(fd) != 0) {
        rc = kiln_err_at(err, KILN_EIO, path, "%s: %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        goto out;
    }
    close(fd);
    snprintf(c->server, sizeof c->server, "%s", o->server);
    size_t sl = strlen(c->server);
    while (sl && c->server[sl - 1] == '/')
        c->server[--sl] = 0;
    snprintf(c->ca_path, sizeof c->ca_path, "%s", ca);

    char pk_b64[KC_EDGE_PK_B64_MAX], host[128] = "edge";
    kc_edge_pk_encode(pk, pk_b64);
    gethostname(host, sizeof host - 1);
    json_t *req = json_pack("{s:s, s:s, s:s}", "token", o->token, "public_key", pk_b64, "name",
                            o->name ? o->name : host);
    body = req ? json_dumps(req, JSON_COMPACT) : NULL;
    json_decref(req);
    if (!body) {
        rc = kiln_err_set(err, KILN_ENOMEM, "out of memory");
        goto out;
    }
    long status;
    size_t rlen;
    if ((rc = ke_fleetc_call(c, "POST", "/edge/v1/enroll", body, strlen(body), &status, &resp,
                             &rlen, 65536, err)) < 0)
        goto out;
    json_error_t je;
    ans = json_loadb(resp, rlen, 0, &je);
    if (status != 201) {
        const char *m = json_string_value(json_object_get(ans, "error"));
        rc = kiln_err_set(err, status == 401 ? KILN_EINVAL : KILN_EIO,
                          "enroll at %s: HTTP %ld: %s", o->server, status, m ? m : resp);
        goto out;
    }
    const char *dev = json_string_value(json_object_get(ans, "device_id"));
    const char *fleet = json_string_value(json_object_get(ans, "fleet"));
    if (!dev || !fleet || strlen(dev) >= 64 || strlen(fleet) >= 128) {
        rc = kiln_err_set(err, KILN_EFORMAT, "enroll: the answer lacks device_id or fleet: %s",
                          resp);
        goto out;
    }
    ke_device_t d;
    memset(&d, 0, sizeof d);
    snprintf(d.device_id, sizeof d.device_id, "%s", dev);
    snprintf(d.fleet, sizeof d.fleet, "%s", fleet);
    snprintf(d.server, sizeof d.server, "%s", c->server);
    snprintf(d.name, sizeof d.name, "%s", o->name ? o->name : host);
    if ((rc = ke_device_write(o->dir, &d, err)) < 0)
        goto out;
    snprintf(id, 64, "%s", dev);
    const char *pub = json_string_value(json_object_get(ans, "publisher_key"));
    const char *fkey = json_string_value(json_object_get(ans, "fleet_key"));
    if (!pub && !o->pubkey_path) {
        rc = kiln_err_set(err, KILN_ENOTFOUND,
                          "enrolled as %s, but the answer carries no publisher_key and no "
                          "--pubkey was given: put the publisher's KILN-ED25519-PK1 file at "
                          "%s/publisher.pk before the agent can verify anything", dev, o->dir);
        goto out;
    }
    if ((rc = put_key(o->dir, "publisher.pk", "KILN-ED25519-PK1", pub, o->pubkey_path, 0644,
                      err)) < 0)
        goto out;
    if ((fkey || o->fleet_key_path) &&
        (rc = put_key(o->dir, "fleet.key", "KILN-FLEET-KEY1", fkey, o->fleet_key_path, 0600,
                      err)) < 0)
        goto out;
    snprintf(path, sizeof path, "%s/models", o->dir);
    mkdir(path, 0700);
    snprintf(path, sizeof path, "%s/download", o->dir);
    mkdir(path, 0700);
    rc = 0;
out:
    if (c)
        sodium_memzero(c->sk, sizeof c->sk);
    kiln_free(c);
    kiln_free(resp);
    free(body);
    json_decref(ans);
    return rc;
}
