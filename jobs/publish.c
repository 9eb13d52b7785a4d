/* publish.c - publish and rollback (publish.h; docs/edge.md, "Fleet
 * protocol"): a validated registry model becomes a signed (and, for an
 * encrypted fleet, encrypted) bundle plus envelope in the artifact store and
 * a canary rollout; a rollback re-signs the last good envelope with
 * rollback: true and a new seq as a full rollout.  Called by kilnd's route
 * (scheduler/fleet_publish.c) and the publish job's record
 * (type_publish.c), on the store's thread inside its turn's transaction. */
#include "publish.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <sodium.h>

#include "core/kiln_alloc.h"
#include "storage/artifacts.h"

#define PATH_CAP 1200

static int dir_path(char *buf, size_t cap, const char *dir, const char *name)
{
    int n = snprintf(buf, cap, "%s/%s", dir, name);
    return n < 0 || (size_t)n >= cap ? -1 : 0;
}

int jb_publisher_key(const char *dir, st_bundle_signkey_t *out, kiln_err_t *err)
{
    char sk[PATH_CAP], pk[PATH_CAP];
    if (dir_path(sk, sizeof sk, dir, JB_PUBLISHER_SK) < 0 ||
        dir_path(pk, sizeof pk, dir, JB_PUBLISHER_PK) < 0)
        return kiln_err_set(err, KILN_EINVAL, "%s: path too long", dir);
    struct stat sb;
    int have_sk = lstat(sk, &sb) == 0, have_pk = lstat(pk, &sb) == 0;
    if (!have_sk && !have_pk) {
        int rc = st_bundle_keygen_sign(sk, pk, out, err);
        if (rc != KILN_EEXIST)      /* EEXIST: another kilnd made it first; load it */
            return rc;
    } else if (!have_sk || !have_pk) {
        return kiln_err_at(err, KILN_ESTATE, have_sk ? pk : sk,
                           "%s is missing while %s exists: restore it from a backup (a new "
                           "publisher key would not be trusted by the enrolled agents)",
                           have_sk ? pk : sk, have_sk ? sk : pk);
    }
    int rc = st_bundle_load_signkey(sk, out, err);
    if (rc < 0)
        return rc;
    st_bundle_pubkey_t p;
    if ((rc = st_bundle_load_pubkey(pk, &p, err)) < 0) {
        st_bundle_key_wipe(out, sizeof *out);
        return rc;
    }
    if (memcmp(p.pk, out->pk, sizeof p.pk)) {
        st_bundle_key_wipe(out, sizeof *out);
        return kiln_err_at(err, KILN_ESTATE, pk, "%s is not the public half of %s", pk, sk);
    }
    return 0;
}

/* A small key file's text into buf (NUL-terminated). */
static int read_text(const char *path, char *buf, size_t cap, kiln_err_t *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return kiln_err_at(err, KILN_EIO, path, "%s: %s", path, strerror(errno));
    ssize_t n = read(fd, buf, cap - 1);
    close(fd);
    if (n <= 0 || (size_t)n >= cap - 1)
        return kiln_err_at(err, KILN_EFORMAT, path, "%s: not a key file", path);
    buf[n] = '\0';
    return 0;
}

int jb_publisher_pubkey_text(const char *dir, char *buf, size_t cap, kiln_err_t *err)
{
    st_bundle_signkey_t sk;
    int rc = jb_publisher_key(dir, &sk, err);
    st_bundle_key_wipe(&sk, sizeof sk);
    char pk[PATH_CAP];
    if (rc == 0 && dir_path(pk, sizeof pk, dir, JB_PUBLISHER_PK) < 0)
        rc = kiln_err_set(err, KILN_EINVAL, "%s: path too long", dir);
    return rc < 0 ? rc : read_text(pk, buf, cap, err);
}

int jb_fleet_key_text(st_state_t *st, const char *fleet, char *buf, size_t cap, kiln_err_t *err)
{
    unsigned char key[ST_FLEET_KEY_BYTES];
    int rc = st_fleet_key(st, fleet, key, err);     /* checks the fleet, the file and its mode */
    sodium_memzero(key, sizeof key);
    char path[PATH_CAP];
    if (rc == 0 && st_fleet_key_path(st, fleet, path, sizeof path) < 0)
        rc = kiln_err_set(err, KILN_EINVAL, "fleet %s: key path too long", fleet);
    return rc < 0 ? rc : read_text(path, buf, cap, err);
}

/* The header of the .kmodel at path ("KILNMDL1", u32 little-endian length,
 * compact JSON: jobs/modelfile.h) without loading the model itself: a new
 * reference in *out. */
#define MODEL_HEADER_MAX ((uint32_t)16 << 20)
static int model_header(const char *path, json_t **out, kiln_err_t *err)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return kiln_err_at(err, errno == ENOENT ? KILN_ENOTFOUND : KILN_EIO, path,
                           "model file %s: %s", path, strerror(errno));
    unsigned char head[12];
    char *text = NULL;
    uint32_t len = 0;
    int ok = fread(head, 1, sizeof head, f) == sizeof head && !memcmp(head, "KILNMDL1", 8);
    if (ok) {
        len = (uint32_t)head[8] | (uint32_t)head[9] << 8 | (uint32_t)head[10] << 16 |
              (uint32_t)head[11] << 24;
        ok = len > 0 && len <= MODEL_HEADER_MAX && (text = kiln_malloc(len)) &&
             fread(text, 1, len, f) == len;
    }
    fclose(f);
    json_error_t jerr;
    if (ok)
        *out = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    kiln_free(text);
    if (!json_is_object(*out)) {
        json_decref(*out);
        *out = NULL;
        return kiln_err_at(err, KILN_EFORMAT, path, "%s is not a kiln model file", path);
    }
    return 0;
}

/* The file at path into the artifact store (hex its name), then unlinked. */
static int put_file(const char *root, const char *path, size_t max, char hex[65], kiln_err_t *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode) || (size_t)sb.st_size > max) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        return kiln_err_at(err, KILN_EIO, path, "%s: %s", path,
                           fd < 0 ? strerror(e) : "not a regular file of the expected size");
    }
    size_t len = (size_t)sb.st_size, got = 0;
    unsigned char *bytes = kiln_malloc(len ? len : 1);
    while (bytes && got < len) {
        ssize_t n = read(fd, bytes + got, len - got);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    int rc = !bytes ? kiln_err_set(err, KILN_ENOMEM, "%s: out of memory", path)
             : got != len ? kiln_err_at(err, KILN_EIO, path, "%s: short read", path)
                          : st_artifact_put(root, bytes, len, hex, err);
    kiln_free(bytes);
    unlink(path);
    return rc;
}

/* ---- canaries */

typedef struct {
    char **ids;
    size_t n, cap;
    int    oom;
} ids_t;

static int collect_active(const st_device_t *d, void *ud)
{
    ids_t *v = ud;
    if (d->revoked)
        return 0;
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 16;
        char **p = kiln_realloc(v->ids, cap * sizeof *p);
        if (!p) {
            v->oom = 1;
            return 1;
        }
        v->ids = p;
        v->cap = cap;
    }
    if (!(v->ids[v->n] = kiln_strdup(d->id))) {
        v->oom = 1;
        return 1;
    }
    v->n++;
    return 0;
}

void jb_fleet_ids_free(char **ids, size_t n)
{
    for (size_t i = 0; ids && i < n; i++)
        kiln_free(ids[i]);
    kiln_free(ids);
}

int jb_fleet_pick_canaries(st_state_t *st, const char *fleet, double share, char ***ids,
                           size_t *n, kiln_err_t *err)
{
    ids_t v = {0};
    *ids = NULL;
    *n = 0;
    int rc = st_device_list(st, fleet, collect_active, &v, err);
    if (rc == 0 && v.oom)
        rc = kiln_err_set(err, KILN_ENOMEM, "out of memory choosing canaries");
    if (rc < 0 || sodium_init() < 0) {
        jb_fleet_ids_free(v.ids, v.n);
        return rc < 0 ? rc : kiln_err_set(err, KILN_EINTERNAL, "libsodium failed to start");
    }
    size_t k = (size_t)ceil(share * (double)v.n);
    if (k == 0 && v.n > 0)
        k = 1;
    if (k > v.n)
        k = v.n;
    /* Fisher-Yates over the first k places. */
    for (size_t i = 0; i < k; i++) {
        size_t j = i + randombytes_uniform((uint32_t)(v.n - i));
        char *t = v.ids[i];
        v.ids[i] = v.ids[j];
        v.ids[j] = t;
    }
    for (size_t i = k; i < v.n; i++)
        kiln_free(v.ids[i]);
    *ids = v.ids;
    *n = k;
    return 0;
}

/* When NAME has no version: why (its newest run rejected by the gate) as
 * KILN_ESTATE; else keeps resolve's error. */
typedef struct {
    int     seen, accepted;
    int64_t run_id;
} last_run_t;

static int last_run(const st_run_t *r, void *ud)
{
    last_run_t *v = ud;
    v->seen = 1;
    v->accepted = r->accepted;
    v->run_id = r->id;
    return 1;
}

static int explain_missing(st_state_t *st, const char *ref, kiln_err_t *err)
{
    char name[ST_NAME_MAX];
    snprintf(name, sizeof name, "%.*s", (int)strcspn(ref, "@"), ref);
    last_run_t v = {0};
    kiln_err_t e2 = {0};
    if (st_registry_run_list(st, name, 1, last_run, &v, &e2) == 0 && v.seen && !v.accepted)
        return kiln_err_at(err, KILN_ESTATE, "model",
                           "%s cannot be published: the newest run of %s (run %lld) did not pass "
                           "its validation gate, and only validated models may be published "
                           "(`kiln runs %s` shows its metrics)",
                           ref, name, (long long)v.run_id, name);
    return err ? err->code : KILN_ENOTFOUND;
}

/* The model ref names: st_registry_model_resolve's references, and
 * "NAME@latest", the version NAME's newest run made (a pipeline's publish
 * step after its train step): refused when that run did not pass its gate,
 * rather than quietly publishing an older version. */
static int resolve_model(st_state_t *st, const char *ref, st_model_t *m, kiln_err_t *err)
{
    const char *at = strchr(ref, '@');
    int rc;
    if (!at || strcmp(at + 1, "latest")) {
        rc = st_registry_model_resolve(st, ref, m, err);
        return rc == KILN_ENOTFOUND ? explain_missing(st, ref, err) : rc;
    }
    char name[ST_NAME_MAX];
    if ((size_t)(at - ref) >= sizeof name || at == ref)
        return kiln_err_at(err, KILN_EINVAL, "model", "model: \"%.40s\": not NAME@latest", ref);
    snprintf(name, sizeof name, "%.*s", (int)(at - ref), ref);
    last_run_t v = {0};
    if ((rc = st_registry_run_list(st, name, 1, last_run, &v, err)) < 0)
        return rc;
    if (!v.seen)
        return kiln_err_at(err, KILN_ENOTFOUND, "model", "model %s not found: it has no "
                           "training run", name);
    if (!v.accepted)
        return explain_missing(st, ref, err);
    if ((rc = st_registry_model_resolve(st, name, m, err)) < 0)
        return rc;
    if (m->run_id != v.run_id)
        return kiln_err_at(err, KILN_ESTATE, "model", "%s: the newest run of %s (run %lld) "
                           "has no version in the registry", ref, name, (long long)v.run_id);
    return 0;
}

/* The seq of the envelope ROOT/<sha256> (kilnd's own artifact, signed by
 * it: read, not verified). */
static int envelope_seq(const char *root, const char *sha256, uint64_t *seq, kiln_err_t *err)
{
    char path[PATH_CAP];
    if (st_artifact_path(root, sha256, path, sizeof path) < 0)
        return kiln_err_set(err, KILN_EINVAL, "%s: path too long", root);
    json_error_t jerr;
    json_t *env = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    json_t *v = json_object_get(env, "seq");
    int rc = 0;
    if (json_is_integer(v) && json_integer_value(v) > 0)
        *seq = (uint64_t)json_integer_value(v);
    else
        rc = kiln_err_at(err, KILN_EFORMAT, path, "envelope %s: no seq (%s)", path,
                         env ? "no \"seq\" field" : jerr.text);
    json_decref(env);
    return rc;
}

/* "DIR/publish/NAME.PID.SEQ.EXT": the staging names st_bundle_* write to
 * before the bytes move into the artifact store. */
static int stage_path(char *buf, size_t cap, const char *dir, const char *fleet, uint64_t seq,
                      const char *ext, kiln_err_t *err)
{
    char d[PATH_CAP];
    if (dir_path(d, sizeof d, dir, "publish") < 0)
        return kiln_err_set(err, KILN_EINVAL, "%s: path too long", dir);
    if (mkdir(d, 0700) < 0 && errno != EEXIST)
        return kiln_err_at(err, KILN_EIO, d, "%s: %s", d, strerror(errno));
    int n = snprintf(buf, cap, "%s/%s.%ld.%llu.%s", d, fleet, (long)getpid(),
                     (unsigned long long)seq, ext);
    return n < 0 || (size_t)n >= cap ? kiln_err_set(err, KILN_EINVAL, "%s: path too long", d) : 0;
}

/* jb_fleet_publish, and with same_ok jb_fleet_publish_once. */
static int publish(st_state_t *st, const char *dir, const jb_publish_t *p, int same_ok,
                   int64_t now_ns, st_rollout_t *out, uint64_t *seq_out, kiln_err_t *err)
{
    if (!st || !dir || !p || !p->model_ref || !p->fleet || !out)
        return kiln_err_set(err, KILN_EINVAL, "publish: missing argument");
    st_fleet_t f;
    st_model_t m;
    st_run_t run;
    int rc = st_fleet_get(st, p->fleet, &f, err);
    if (rc < 0)
        return rc;
    if ((rc = resolve_model(st, p->model_ref, &m, err)) < 0)
        return rc;
    if ((rc = st_registry_run_get(st, m.run_id, &run, err)) < 0)
        return rc;
    double share = p->canary_share >= 0 ? p->canary_share : f.canary_share;
    int64_t window = p->health_window_s >= 0 ? p->health_window_s : f.health_window_s;
    int64_t expires_s = p->expires_s > 0 ? p->expires_s : JB_PUBLISH_EXPIRES_S_DEFAULT;
    json_t *header = NULL, *lineage = NULL;
    char *spec_text = NULL, **canaries = NULL;
    size_t n_canaries = 0;
    st_bundle_signkey_t sk;
    st_bundle_fleetkey_t fk;
    int have_sk = 0, have_fk = 0;
    char model_path[PATH_CAP], root[PATH_CAP], bpath[PATH_CAP], epath[PATH_CAP];
    bpath[0] = epath[0] = '\0';
    if (!run.accepted) {
        rc = kiln_err_at(err, KILN_ESTATE, "model",
                         "%s@%lld did not pass its validation gate (run %lld was not accepted): "
                         "only validated models may be published",
                         m.name, (long long)m.version, (long long)m.run_id);
        goto out;
    }
    if (!(share > 0 && share <= 1)) {
        rc = kiln_err_at(err, KILN_EINVAL, "canary_share", "canary_share: %g is not in (0, 1]",
                         share);
        goto out;
    }
    if (window > 30LL * 86400 || expires_s > 3650LL * 86400) {
        rc = kiln_err_set(err, KILN_EINVAL, "health_window_s at most 2592000 (30 days), "
                          "expires_s at most 315360000 (10 years)");
        goto out;
    }
    /* Agents refuse a version not above the one they run unless it is a
     * signed rollback: say so here rather than leave a rollout nobody takes. */
    st_rollout_t cur;
    kiln_err_t e2 = {0};
    if (st_rollout_current(st, p->fleet, &cur, &e2) == 0 && !strcmp(cur.model, m.name) &&
        cur.version >= m.version) {
        if (cur.version == m.version && cur.stage == ST_ROLLOUT_HALTED) {
            rc = kiln_err_at(err, KILN_ESTATE, "model",
                             "%s@%lld was already published to fleet %s and its rollout %lld "
                             "was halted (%s): publish a newer version, or `kiln rollback "
                             "--fleet %s`", m.name, (long long)m.version, p->fleet,
                             (long long)cur.id, cur.reason[0] ? cur.reason : "no reason recorded",
                             p->fleet);
            goto out;
        }
        if (same_ok && cur.version == m.version) {
            uint64_t cur_seq = 0;
            if (dir_path(root, sizeof root, dir, "artifacts") < 0)
                rc = kiln_err_set(err, KILN_EINVAL, "%s: path too long", dir);
            else if ((rc = envelope_seq(root, cur.envelope_sha256, &cur_seq, err)) == 0) {
                *out = cur;
                if (seq_out)
                    *seq_out = cur_seq;
                rc = 1;
            }
            goto out;
        }
        rc = kiln_err_at(err, KILN_ESTATE, "model",
                         "fleet %s was last given %s@%lld (rollout %lld): agents take only a "
                         "newer version of a model; `kiln rollback --fleet %s` goes back",
                         p->fleet, cur.model, (long long)cur.version, (long long)cur.id,
                         p->fleet);
        goto out;
    }
    if (dir_path(root, sizeof root, dir, "artifacts") < 0 ||
        st_artifact_path(root, m.artifact_sha256, model_path, sizeof model_path) < 0) {
        rc = kiln_err_set(err, KILN_EINVAL, "%s: path too long", dir);
        goto out;
    }
    if ((rc = model_header(model_path, &header, err)) < 0)
        goto out;
    const json_t *spec = json_object_get(header, "feature_spec");
    if (!json_is_object(spec)) {
        rc = kiln_err_at(err, KILN_ESTATE, "model",
                         "%s@%lld carries no feature spec (it was trained on features kiln did "
                         "not make): an edge agent could not featurize windows for it",
                         m.name, (long long)m.version);
        goto out;
    }
    if (!(spec_text = json_dumps(spec, JSON_COMPACT | JSON_SORT_KEYS)) ||
        !(lineage = json_pack("{s:I, s:s, s:s, s:s}", "run_id", (json_int_t)run.id,
                              "dataset_sha256", run.dataset_sha256 ? run.dataset_sha256 : "",
                              "featspec_sha256", run.featspec_sha256 ? run.featspec_sha256 : "",
                              "code_version", run.code_version ? run.code_version : ""))) {
        rc = kiln_err_set(err, KILN_ENOMEM, "publish: out of memory");
        goto out;
    }
    if ((rc = jb_publisher_key(dir, &sk, err)) < 0)
        goto out;
    have_sk = 1;
    if (f.encrypted) {
        if ((rc = st_fleet_key(st, p->fleet, fk.key, err)) < 0)
            goto out;
        have_fk = 1;
    }
    uint64_t seq = 0;
    if ((rc = st_fleet_next_seq(st, p->fleet, &seq, err)) < 0 ||
        (rc = stage_path(bpath, sizeof bpath, dir, p->fleet, seq, "bundle", err)) < 0 ||
        (rc = stage_path(epath, sizeof epath, dir, p->fleet, seq, "envelope", err)) < 0)
        goto out;
    char model_id[ST_NAME_MAX + 32];
    snprintf(model_id, sizeof model_id, "%s@%lld", m.name, (long long)m.version);
    int64_t now_s = now_ns / 1000000000LL;
    st_bundle_meta_t meta = {
        .fleet = p->fleet, .model_name = m.name, .version = (uint64_t)m.version,
        .model_id = model_id, .lineage = lineage, .created = now_s, .seq = seq,
        .expires = now_s + expires_s, .rollback = 0,
    };
    st_rollout_t r = {0};
    if ((rc = st_bundle_create(model_path, spec_text, &meta, have_fk ? &fk : NULL, &sk, bpath,
                               epath, err)) < 0 ||
        (rc = put_file(root, bpath, ST_BUNDLE_MAX_BYTES, r.bundle_sha256, err)) < 0 ||
        (rc = put_file(root, epath, ST_BUNDLE_ENVELOPE_MAX, r.envelope_sha256, err)) < 0 ||
        (rc = jb_fleet_pick_canaries(st, p->fleet, share, &canaries, &n_canaries, err)) < 0)
        goto out;
    snprintf(r.fleet, sizeof r.fleet, "%s", p->fleet);
    snprintf(r.model, sizeof r.model, "%s", m.name);
    r.version = m.version;
    r.stage = ST_ROLLOUT_CANARY;
    r.canary_share = share;
    r.health_window_s = window;
    r.started_ns = now_ns;
    r.expires_at = meta.expires;
    r.expires_s = expires_s;
    int64_t id = 0;
    if ((rc = st_rollout_create(st, &r, (const char *const *)canaries, n_canaries, &id, err)) < 0 ||
        (rc = st_rollout_get(st, id, out, err)) < 0)
        goto out;
    if (seq_out)
        *seq_out = seq;
out:
    if (bpath[0])
        unlink(bpath);
    if (epath[0])
        unlink(epath);
    jb_fleet_ids_free(canaries, n_canaries);
    if (have_sk)
        st_bundle_key_wipe(&sk, sizeof sk);
    if (have_fk)
        st_bundle_key_wipe(&fk, sizeof fk);
    free(spec_text);    /* jansson's allocator */
    json_decref(lineage);
    json_decref(header);
    st_registry_run_free(&run);
    return rc;
}

int jb_fleet_publish(st_state_t *st, const char *dir, const jb_publish_t *p, int64_t now_ns,
                     st_rollout_t *out, uint64_t *seq, kiln_err_t *err)
{
    return publish(st, dir, p, 0, now_ns, out, seq, err);
}

int jb_fleet_publish_once(st_state_t *st, const char *dir, const jb_publish_t *p, int64_t now_ns,
                          st_rollout_t *out, uint64_t *seq, kiln_err_t *err)
{
    return publish(st, dir, p, 1, now_ns, out, seq, err);
}

int jb_fleet_rollback(st_state_t *st, const char *dir, const char *fleet, int64_t expires_s,
                      int64_t now_ns, st_rollout_t *out, uint64_t *seq_out, kiln_err_t *err)
{
    if (!st || !dir || !fleet || !out)
        return kiln_err_set(err, KILN_EINVAL, "rollback: missing argument");
    st_fleet_t f;
    st_rollout_t cur, prev;
    int rc = st_fleet_get(st, fleet, &f, err);
    if (rc < 0)
        return rc;
    if ((rc = st_rollout_current(st, fleet, &cur, err)) < 0)
        return rc == KILN_ENOTFOUND
                   ? kiln_err_at(err, KILN_ESTATE, "fleet",
                                 "fleet %s has nothing to roll back: nothing was published to it",
                                 fleet)
                   : rc;
    /* The newest rollout before the current one that went full, of another
     * version than the current one (a rollback's own original is skipped). */
    int64_t before = cur.id;
    for (;;) {
        kiln_err_t e2 = {0};
        if ((rc = st_rollout_last_good(st, fleet, before, &prev, &e2)) < 0) {
            if (rc != KILN_ENOTFOUND) {
                *err = e2;
                return rc;
            }
            return kiln_err_at(err, KILN_ESTATE, "fleet",
                               "fleet %s has nothing to roll back to: no rollout before %s@%lld "
                               "(rollout %lld) went to the whole fleet",
                               fleet, cur.model, (long long)cur.version, (long long)cur.id);
        }
        if (strcmp(prev.model, cur.model) || prev.version != cur.version)
            break;
        before = prev.id;
    }
    if (expires_s <= 0)
        expires_s = JB_PUBLISH_EXPIRES_S_DEFAULT;
    char root[PATH_CAP], old_env[PATH_CAP], bundle[PATH_CAP], epath[PATH_CAP];
    epath[0] = '\0';
    st_bundle_signkey_t sk;
    if (dir_path(root, sizeof root, dir, "artifacts") < 0 ||
        st_artifact_path(root, prev.envelope_sha256, old_env, sizeof old_env) < 0 ||
        st_artifact_path(root, prev.bundle_sha256, bundle, sizeof bundle) < 0)
        return kiln_err_set(err, KILN_EINVAL, "%s: path too long", dir);
    if ((rc = jb_publisher_key(dir, &sk, err)) < 0)
        return rc;
    uint64_t seq = 0;
    st_rollout_t r = prev;
    int64_t id = 0;
    char reason[256];
    snprintf(reason, sizeof reason, "rollback from %s@%lld (rollout %lld, %s)", cur.model,
             (long long)cur.version, (long long)cur.id, st_rollout_stage_name(cur.stage));
    if ((rc = st_fleet_next_seq(st, fleet, &seq, err)) < 0 ||
        (rc = stage_path(epath, sizeof epath, dir, fleet, seq, "envelope", err)) < 0 ||
        (rc = st_bundle_reseal(old_env, bundle, seq, now_ns / 1000000000LL + expires_s, 1, &sk,
                               epath, err)) < 0 ||
        (rc = put_file(root, epath, ST_BUNDLE_ENVELOPE_MAX, r.envelope_sha256, err)) < 0)
        goto out;
    r.stage = ST_ROLLOUT_FULL;
    r.rollback = 1;
    r.started_ns = now_ns;
    r.canary_share = cur.canary_share;
    r.health_window_s = cur.health_window_s;
    r.expires_at = now_ns / 1000000000LL + expires_s;
    r.expires_s = expires_s;
    if ((rc = st_rollout_create(st, &r, NULL, 0, &id, err)) < 0 ||
        (rc = st_rollout_set_stage(st, id, ST_ROLLOUT_FULL, reason, now_ns, err)) < 0 ||
        (rc = st_rollout_get(st, id, out, err)) < 0)
        goto out;
    if (seq_out)
        *seq_out = seq;
out:
    if (epath[0])
        unlink(epath);
    st_bundle_key_wipe(&sk, sizeof sk);
    return rc;
}
