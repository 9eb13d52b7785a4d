/* fleet_bench.c - a fleet rollout to many simulated agents in one process
 * (bench/README.md, "Fleet rollout"; bench/fleet.sh starts kilnd and trains
 * the model, then runs this):
 *
 *   fleet_bench ADMIN_URL FLEET_URL CA_PEM FLEET MODEL@VERSION KILND_PID
 *               [--agents N] [--threads T] [--poll-ms P] [--canary-share S]
 *               [--health-s H] [--timeout-s S]
 *
 * Creates FLEET (encrypted, canary share S, health window H s) over the
 * admin API, makes N one-time tokens, then T threads each drive N/T agents
 * through one libcurl multi handle (TLS sessions shared per thread, kept-alive
 * connections pooled, the server checked against CA_PEM).  Each agent has its
 * own Ed25519 key and signs every call (cluster/edge_sig.h): it enrolls, then
 * polls GET /edge/v1/manifest every P ms (+-20% jitter), verifies a new
 * envelope (st_bundle_verify_envelope against the publisher key of its enroll
 * answer), downloads the bundle into memory, verifies and decrypts it
 * (st_bundle_unpack with its fleet key; nothing is written to disk), and
 * reports healthy on the new version, then keeps polling.  After every agent
 * has polled once, the model is published (POST /v1/publish); the clock runs
 * from just before that POST until the last agent's healthy report is
 * answered 200.  kilnd's CPU (utime + stime of /proc/PID/stat) is taken at
 * both ends; its peak RSS (VmHWM) at the end.  Prints one JSON line.
 * Every wait is bounded; exits 1 on failure. */
#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "cluster/edge_sig.h"
#include "storage/bundle.h"

enum { PH_ENROLL, PH_IDLE, PH_MANIFEST, PH_BUNDLE, PH_REPORT, PH_RESUME };

typedef struct {
    char  *p;
    size_t len, cap, limit;   /* limit: refuse more than this many bytes */
} buf_t;

typedef struct agent {
    int                  idx;
    unsigned char        sk[64];
    char                 pk_b64[KC_EDGE_PK_B64_MAX];
    char                 token[160];
    char                 id[80];
    st_bundle_pubkey_t   publisher;
    st_bundle_fleetkey_t fleet_key;
    int                  have_fleet_key;
    int64_t              last_sig_ms;     /* the server wants each call's time newer */
    CURL                *easy;
    struct curl_slist   *hdrs;
    char                *body;            /* POST body (owned) */
    buf_t                resp;
    int                  phase, in_flight;
    double               next_s;          /* monotonic: next poll */
    /* what it runs */
    char                 model[ST_BUNDLE_NAME_MAX];
    uint64_t             version, last_seq;
    st_bundle_envelope_t env;             /* a verified envelope being fetched */
    int                  have_env;
    int                  polled;          /* answered at least one poll */
    double               done_s;          /* healthy report on the target answered; 0: not yet */
} agent_t;

typedef struct {
    agent_t     *agents;
    size_t       n;
    CURLM       *multi;
    CURLSH      *share;
    pthread_t    thread;
    /* counters, this thread's own */
    uint64_t     bytes_in, bundle_bytes, requests, errors, refusals, http_429, resumes;
    double       verify_s;
} worker_t;

static const char *g_fleet_url, *g_ca, *g_fleet, *g_model;
static uint64_t    g_target_version;
static int         g_poll_ms = 1000;
static atomic_int  g_stop, g_published;
static atomic_int  g_enrolled, g_polled_once, g_done, g_failed_enroll;
static char        g_first_error[512];
static pthread_mutex_t g_err_lock = PTHREAD_MUTEX_INITIALIZER;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void note_error(const char *fmt, ...)
{
    pthread_mutex_lock(&g_err_lock);
    if (!g_first_error[0]) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(g_first_error, sizeof g_first_error, fmt, ap);
        va_end(ap);
    }
    pthread_mutex_unlock(&g_err_lock);
}

static size_t on_write(char *data, size_t size, size_t nmemb, void *ud)
{
    buf_t *b = ud;
    size_t n = size * nmemb;
    if (b->len + n > b->limit)
        return 0;                       /* more than declared: abort the transfer */
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1)
            cap *= 2;
        if (cap > b->limit + 1)
            cap = b->limit + 1;
        char *p = realloc(b->p, cap);
        if (!p)
            return 0;
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, n);
    b->len += n;
    b->p[b->len] = 0;
    return n;
}

/* "TAG base64\n" (an enroll answer's key text) -> n bytes. */
static int key_text(const char *text, const char *tag, uint8_t *out, size_t n)
{
    size_t tl = strlen(tag), bin_len = 0;
    if (!text || strncmp(text, tag, tl) || text[tl] != ' ')
        return -1;
    const char *b64 = text + tl + 1;
    if (sodium_base642bin(out, n, b64, strlen(b64), "\n", &bin_len, NULL,
                          sodium_base64_VARIANT_ORIGINAL) != 0 || bin_len != n)
        return -1;
    return 0;
}

/* A signed request for agent a: method, fleet path, POST body (owned) or NULL. */
static int start_call(worker_t *w, agent_t *a, const char *method, const char *path, char *body,
                      size_t limit, int enroll, size_t resume_from)
{
    kiln_err_t err;
    char sig[KC_EDGE_SIG_B64_MAX], line[256], url[512];
    int64_t t = wall_ms();
    if (t <= a->last_sig_ms)
        t = a->last_sig_ms + 1;
    a->last_sig_ms = t;
    size_t blen = body ? strlen(body) : 0;
    if (kc_edge_sign(a->sk, method, path, t, body, blen, sig, &err) < 0) {
        note_error("sign: %s", err.msg);
        free(body);
        return -1;
    }
    curl_slist_free_all(a->hdrs);
    a->hdrs = NULL;
    snprintf(line, sizeof line, "X-Kiln-Time: %" PRId64, t);
    a->hdrs = curl_slist_append(a->hdrs, line);
    snprintf(line, sizeof line, "X-Kiln-Sig: %s", sig);
    a->hdrs = curl_slist_append(a->hdrs, line);
    if (!enroll) {
        snprintf(line, sizeof line, "X-Kiln-Device: %s", a->id);
        a->hdrs = curl_slist_append(a->hdrs, line);
    }
    if (body)
        a->hdrs = curl_slist_append(a->hdrs, "Content-Type: application/json");
    if (resume_from) {      /* the rest of a cut download, as the agent resumes */
        snprintf(line, sizeof line, "Range: bytes=%zu-", resume_from);
        a->hdrs = curl_slist_append(a->hdrs, line);
    }
    free(a->body);
    a->body = body;
    a->resp.len = resume_from;
    a->resp.limit = limit;
    /* A bundle's size is known from its envelope: one buffer of that size,
     * not a doubling realloc that copies and faults in ~2x the bytes. */
    if (limit >= (1u << 20) && a->resp.cap < limit + 1) {
        char *p = realloc(a->resp.p, limit + 1);
        if (p) {
            a->resp.p = p;
            a->resp.cap = limit + 1;
        }
    }
    snprintf(url, sizeof url, "%s%s", g_fleet_url, path);
    CURL *e = a->easy;
    curl_easy_reset(e);
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_CAINFO, g_ca);
    curl_easy_setopt(e, CURLOPT_SHARE, w->share);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, a->hdrs);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &a->resp);
    curl_easy_setopt(e, CURLOPT_PRIVATE, a);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT, 10L);
    if (limit > 65536) {    /* a bundle: stalled, not slow, is a failure */
        curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1024L);
        curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, 30L);
        curl_easy_setopt(e, CURLOPT_TIMEOUT, 600L);
    } else {
        curl_easy_setopt(e, CURLOPT_TIMEOUT, 30L);
    }
    curl_easy_setopt(e, CURLOPT_BUFFERSIZE, 256L * 1024);
    if (body) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, a->body);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)blen);
    }
    if (curl_multi_add_handle(w->multi, e) != CURLM_OK) {
        note_error("curl_multi_add_handle failed");
        return -1;
    }
    a->in_flight = 1;
    w->requests++;
    return 0;
}

static void schedule_poll(agent_t *a, double from)
{
    /* +-20% jitter so a thousand agents do not poll in lockstep */
    double j = 0.8 + 0.4 * ((double)randombytes_uniform(1000) / 1000.0);
    a->next_s = from + g_poll_ms * j / 1000.0;
    a->phase = PH_IDLE;
}

static int start_manifest(worker_t *w, agent_t *a)
{
    a->phase = PH_MANIFEST;
    return start_call(w, a, "GET", "/edge/v1/manifest", NULL, ST_BUNDLE_ENVELOPE_MAX, 0, 0);
}

static void enrolled(worker_t *w, agent_t *a, double t)
{
    (void)w;
    json_error_t jerr;
    json_t *o = json_loads(a->resp.p ? a->resp.p : "", 0, &jerr);
    const char *id = json_string_value(json_object_get(o, "device_id"));
    const char *pub = json_string_value(json_object_get(o, "publisher_key"));
    const char *fk = json_string_value(json_object_get(o, "fleet_key"));
    if (!id || strlen(id) >= sizeof a->id ||
        key_text(pub, "KILN-ED25519-PK1", a->publisher.pk, sizeof a->publisher.pk) < 0 ||
        (fk && key_text(fk, "KILN-FLEET-KEY1", a->fleet_key.key, sizeof a->fleet_key.key) < 0)) {
        note_error("agent %d: enroll answer unusable: %.200s", a->idx, a->resp.p ? a->resp.p : "");
        atomic_fetch_add(&g_failed_enroll, 1);
        a->phase = -1;
    } else {
        snprintf(a->id, sizeof a->id, "%s", id);
        a->have_fleet_key = fk != NULL;
        atomic_fetch_add(&g_enrolled, 1);
        schedule_poll(a, t - g_poll_ms / 1000.0 * 0.5);   /* first poll soon */
    }
    json_decref(o);
}

static void got_manifest(worker_t *w, agent_t *a, long code, double t)
{
    if (!a->polled) {
        a->polled = 1;
        atomic_fetch_add(&g_polled_once, 1);
    }
    if (code != 200) {          /* 204: nothing for this device yet */
        schedule_poll(a, t);
        return;
    }
    st_bundle_device_t dev = {g_fleet, a->model, a->version, a->last_seq, (int64_t)time(NULL)};
    st_bundle_reason_t why = ST_BUNDLE_R_OK;
    kiln_err_t err;
    double v0 = now_s();
    int rc = st_bundle_verify_envelope(a->resp.p, a->resp.len, &a->publisher, &dev, &a->env, &why,
                                       &err);
    w->verify_s += now_s() - v0;
    if (rc < 0) {
        /* the one it runs already (same version / seen seq) is nothing new */
        if (why != ST_BUNDLE_R_SAME_VERSION && why != ST_BUNDLE_R_REPLAY) {
            w->refusals++;
            note_error("agent %d: envelope refused (%s): %s", a->idx, st_bundle_reason_name(why),
                       err.msg);
        }
        schedule_poll(a, t);
        return;
    }
    a->have_env = 1;
    char path[128];
    snprintf(path, sizeof path, "/edge/v1/bundle/%s", a->env.bundle_sha256);
    a->phase = PH_BUNDLE;
    if (start_call(w, a, "GET", path, NULL, (size_t)a->env.bundle_size, 0, 0) < 0) {
        st_bundle_envelope_free(&a->env);
        a->have_env = 0;
        schedule_poll(a, t);
    }
}

static void got_bundle(worker_t *w, agent_t *a, double t)
{
    st_bundle_contents_t c;
    st_bundle_reason_t why = ST_BUNDLE_R_OK;
    kiln_err_t err;
    w->bundle_bytes += a->resp.len;
    double v0 = now_s();
    int rc = st_bundle_unpack(&a->env, a->resp.p, a->resp.len,
                              a->have_fleet_key ? &a->fleet_key : NULL, &c, &why, &err);
    w->verify_s += now_s() - v0;
    /* a 5 MB buffer per agent is not kept once it has been checked */
    free(a->resp.p);
    a->resp = (buf_t){0};
    if (rc < 0) {
        w->refusals++;
        note_error("agent %d: bundle refused (%s): %s", a->idx, st_bundle_reason_name(why), err.msg);
        st_bundle_envelope_free(&a->env);
        a->have_env = 0;
        schedule_poll(a, t);
        return;
    }
    st_bundle_contents_free(&c);
    snprintf(a->model, sizeof a->model, "%s", a->env.model_name);
    a->version = a->env.version;
    a->last_seq = a->env.seq;
    char *body = malloc(ST_BUNDLE_NAME_MAX + 96);
    if (body)
        snprintf(body, ST_BUNDLE_NAME_MAX + 96,
                 "{\"model\":\"%s\",\"version\":%" PRIu64 ",\"health\":\"ok\"}", a->model, a->version);
    st_bundle_envelope_free(&a->env);
    a->have_env = 0;
    a->phase = PH_REPORT;
    if (!body || start_call(w, a, "POST", "/edge/v1/report", body, 65536, 0, 0) < 0)
        schedule_poll(a, t);
}

static void finished(worker_t *w, CURL *e, CURLcode res)
{
    agent_t *a = NULL;
    curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&a);
    curl_multi_remove_handle(w->multi, e);
    a->in_flight = 0;
    long code = 0;
    curl_off_t got = 0;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_getinfo(e, CURLINFO_SIZE_DOWNLOAD_T, &got);
    w->bytes_in += (uint64_t)got;
    double t = now_s();
    int ok = res == CURLE_OK && code >= 200 && code < 300;
    if (!ok) {
        if (code == 429 || code == 503)
            w->http_429++;
        else {
            w->errors++;
            note_error("agent %d phase %d: %s, HTTP %ld: %.200s", a->idx, a->phase,
                       curl_easy_strerror(res), code, a->resp.p ? a->resp.p : "");
        }
        if (a->phase == PH_BUNDLE && a->have_env && code != 416 && a->resp.len > 0 &&
            a->resp.len < a->env.bundle_size) {
            w->resumes++;
            a->phase = PH_RESUME;
            a->next_s = t + 0.5;
            return;
        }
        if (a->have_env) {
            st_bundle_envelope_free(&a->env);
            a->have_env = 0;
        }
        if (a->phase == PH_BUNDLE) {
            free(a->resp.p);
            a->resp = (buf_t){0};
        }
        if (a->phase == PH_ENROLL)
            a->next_s = t + 0.5;       /* retry the enroll (a new signed time) */
        else
            schedule_poll(a, t);
        return;
    }
    switch (a->phase) {
    case PH_ENROLL:
        enrolled(w, a, t);
        break;
    case PH_MANIFEST:
        got_manifest(w, a, code, t);
        break;
    case PH_BUNDLE:
        got_bundle(w, a, t);
        break;
    case PH_REPORT:
        if (a->version == g_target_version && !strcmp(a->model, g_model) && !a->done_s) {
            a->done_s = t;
            atomic_fetch_add(&g_done, 1);
        }
        schedule_poll(a, t);
        break;
    }
}

static void *worker_main(void *ud)
{
    worker_t *w = ud;
    while (!atomic_load(&g_stop)) {
        double t = now_s();
        for (size_t i = 0; i < w->n; i++) {
            agent_t *a = &w->agents[i];
            if (a->in_flight || a->phase < 0 || t < a->next_s)
                continue;
            if (a->phase == PH_ENROLL) {
                char *body = malloc(512);
                if (!body)
                    continue;
                snprintf(body, 512, "{\"token\":\"%s\",\"public_key\":\"%s\",\"name\":\"sim-%d\"}",
                         a->token, a->pk_b64, a->idx);
                a->next_s = 1e300;
                if (start_call(w, a, "POST", "/edge/v1/enroll", body, 65536, 1, 0) < 0)
                    a->next_s = t + 1;
            } else if (a->phase == PH_RESUME) {
                char path[128];
                snprintf(path, sizeof path, "/edge/v1/bundle/%s", a->env.bundle_sha256);
                a->phase = PH_BUNDLE;
                a->next_s = 1e300;
                if (start_call(w, a, "GET", path, NULL, (size_t)a->env.bundle_size, 0,
                               a->resp.len) < 0) {
                    st_bundle_envelope_free(&a->env);
                    a->have_env = 0;
                    free(a->resp.p);
                    a->resp = (buf_t){0};
                    schedule_poll(a, t);
                }
            } else if (a->phase == PH_IDLE) {
                a->next_s = 1e300;
                if (start_manifest(w, a) < 0)
                    schedule_poll(a, t);
            }
        }
        int running = 0;
        curl_multi_perform(w->multi, &running);
        CURLMsg *m;
        int left;
        while ((m = curl_multi_info_read(w->multi, &left)))
            if (m->msg == CURLMSG_DONE)
                finished(w, m->easy_handle, m->data.result);
        curl_multi_poll(w->multi, NULL, 0, 10, NULL);
    }
    return NULL;
}

/* ---- the admin API (plain HTTP, blocking) */

static long admin(const char *method, const char *url, const char *body, buf_t *out)
{
    CURL *e = curl_easy_init();
    if (!e)
        return -1;
    out->len = 0;
    out->limit = 1 << 20;
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, out);
    curl_easy_setopt(e, CURLOPT_TIMEOUT, 60L);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    if (body)
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
    long code = -1;
    if (curl_easy_perform(e) == CURLE_OK)
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_cleanup(e);
    if (out->p == NULL) {
        out->p = calloc(1, 1);
        out->cap = out->p ? 1 : 0;
    }
    return code;
}

/* utime + stime of pid, seconds; -1 when unreadable */
static double proc_cpu_s(pid_t pid)
{
    char path[64], buf[2048];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    unsigned long long ut, st;
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* a field of /proc/PID/status in kB ("VmHWM", "VmRSS"); -1 when unreadable */
static long proc_status_kb(pid_t pid, const char *field)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    long v = -1;
    size_t fl = strlen(field);
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, field, fl) && line[fl] == ':') {
            v = strtol(line + fl + 1, NULL, 10);
            break;
        }
    fclose(f);
    return v;
}

static int usage(void)
{
    fprintf(stderr, "usage: fleet_bench ADMIN_URL FLEET_URL CA_PEM FLEET MODEL@VERSION KILND_PID "
                    "[--agents N] [--threads T] [--poll-ms P] [--canary-share S] [--health-s H] "
                    "[--timeout-s S]\n");
    return 2;
}

int main(int argc, char **argv)
{
    if (argc < 7)
        return usage();
    const char *admin_url = argv[1];
    g_fleet_url = argv[2];
    g_ca = argv[3];
    g_fleet = argv[4];
    const char *model_at = argv[5];
    pid_t kpid = (pid_t)atoi(argv[6]);
    /* A thousand 5 MB buffers come and go: keep freed memory in the heap
     * for the next one instead of unmapping it and having the kernel zero
     * fresh pages again (page clearing was the simulator's top kernel cost). */
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
    long n_agents = 1000, n_threads = 2, health_s = 2, timeout_s = 300;
    double canary_share = 0.01;
    for (int i = 7; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--agents"))
            n_agents = atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--threads"))
            n_threads = atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--poll-ms"))
            g_poll_ms = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--canary-share"))
            canary_share = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--health-s"))
            health_s = atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--timeout-s"))
            timeout_s = atol(argv[i + 1]);
        else
            return usage();
    }
    if (n_agents < 1 || n_agents > 20000 || n_threads < 1 || n_threads > 64 || g_poll_ms < 50 ||
        timeout_s < 1 || health_s < 0 || canary_share <= 0 || canary_share > 1)
        return usage();
    if (n_threads > n_agents)
        n_threads = n_agents;
    const char *at = strrchr(model_at, '@');
    if (!at || at == model_at)
        return usage();
    static char model[ST_BUNDLE_NAME_MAX];
    snprintf(model, sizeof model, "%.*s", (int)(at - model_at), model_at);
    g_model = model;
    g_target_version = strtoull(at + 1, NULL, 10);
    if (sodium_init() < 0 || curl_global_init(CURL_GLOBAL_ALL) != 0) {
        fprintf(stderr, "fleet_bench: libsodium or libcurl did not initialize\n");
        return 1;
    }
    /* one socket per agent in the worst case, plus slack */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)n_agents * 2 + 256) {
        rl.rlim_cur = rl.rlim_max < (rlim_t)n_agents * 2 + 256 ? rl.rlim_max
                                                               : (rlim_t)n_agents * 2 + 256;
        setrlimit(RLIMIT_NOFILE, &rl);
    }

    int rc = 1;
    agent_t *agents = calloc((size_t)n_agents, sizeof *agents);
    worker_t *workers = calloc((size_t)n_threads, sizeof *workers);
    buf_t r = {0};
    char url[1024], body[1024];
    long started_threads = 0;
    if (!agents || !workers) {
        fprintf(stderr, "fleet_bench: out of memory\n");
        goto out;
    }
    snprintf(url, sizeof url, "%s/v1/fleets", admin_url);
    snprintf(body, sizeof body,
             "{\"name\":\"%s\",\"encrypted\":true,\"canary_share\":%g,\"health_window_s\":%ld}",
             g_fleet, canary_share, health_s);
    long code = admin("POST", url, body, &r);
    if (code != 201) {
        fprintf(stderr, "fleet_bench: create fleet %s: HTTP %ld %s\n", g_fleet, code, r.p);
        goto out;
    }
    double t_tokens = now_s();
    snprintf(url, sizeof url, "%s/v1/fleets/%s/tokens", admin_url, g_fleet);
    for (long i = 0; i < n_agents; i++) {
        agent_t *a = &agents[i];
        a->idx = (int)i;
        unsigned char pk[32];
        crypto_sign_keypair(pk, a->sk);
        kc_edge_pk_encode(pk, a->pk_b64);
        code = admin("POST", url, "{\"ttl_s\":3600}", &r);
        json_t *o = code == 201 ? json_loads(r.p, 0, NULL) : NULL;
        const char *tok = json_string_value(json_object_get(o, "token"));
        if (!tok || strlen(tok) >= sizeof a->token) {
            fprintf(stderr, "fleet_bench: token %ld: HTTP %ld %s\n", i, code, r.p);
            json_decref(o);
            goto out;
        }
        snprintf(a->token, sizeof a->token, "%s", tok);
        json_decref(o);
        if (!(a->easy = curl_easy_init()))
            goto out;
    }
    fprintf(stderr, "fleet_bench: %ld tokens in %.1f s\n", n_agents, now_s() - t_tokens);

    double t_enroll = now_s();
    for (long k = 0; k < n_threads; k++) {
        worker_t *w = &workers[k];
        size_t lo = (size_t)(n_agents * k / n_threads), hi = (size_t)(n_agents * (k + 1) / n_threads);
        w->agents = agents + lo;
        w->n = hi - lo;
        w->multi = curl_multi_init();
        w->share = curl_share_init();
        if (!w->multi || !w->share)
            goto out;
        curl_share_setopt(w->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
        curl_share_setopt(w->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
        /* keep as many idle connections as this thread has agents */
        curl_multi_setopt(w->multi, CURLMOPT_MAXCONNECTS, (long)w->n);
        for (size_t i = 0; i < w->n; i++)   /* enrollments spread over the first 2 s */
            w->agents[i].next_s = t_enroll + 2.0 * (double)i / (double)w->n;
        if (pthread_create(&w->thread, NULL, worker_main, w) != 0)
            goto out;
        started_threads++;
    }
    double deadline = now_s() + 120;
    while (atomic_load(&g_polled_once) + atomic_load(&g_failed_enroll) < n_agents &&
           now_s() < deadline)
        usleep(20000);
    if (atomic_load(&g_polled_once) < n_agents) {
        fprintf(stderr, "fleet_bench: %d of %ld agents enrolled and polled in 120 s (%d refused); "
                "first error: %s\n", atomic_load(&g_polled_once), n_agents,
                atomic_load(&g_failed_enroll), g_first_error);
        goto out;
    }
    fprintf(stderr, "fleet_bench: %ld agents enrolled and polling in %.1f s\n", n_agents,
            now_s() - t_enroll);
    usleep(2 * 1000000);   /* a steady poll load before the publish */

    double cpu0 = proc_cpu_s(kpid);
    snprintf(url, sizeof url, "%s/v1/publish", admin_url);
    snprintf(body, sizeof body, "{\"model\":\"%s\",\"fleet\":\"%s\"}", model_at, g_fleet);
    double t0 = now_s();
    code = admin("POST", url, body, &r);
    double t_pub = now_s() - t0;
    if (code < 200 || code >= 300) {
        fprintf(stderr, "fleet_bench: publish %s to %s: HTTP %ld %s\n", model_at, g_fleet, code, r.p);
        goto out;
    }
    atomic_store(&g_published, 1);
    deadline = t0 + (double)timeout_s;
    int last_seen = 0;
    double last_print = t0;
    while (atomic_load(&g_done) < n_agents && now_s() < deadline) {
        usleep(5000);
        if (now_s() - last_print >= 5) {
            last_print = now_s();
            last_seen = atomic_load(&g_done);
            fprintf(stderr, "fleet_bench: %.0f s: %d of %ld run %s\n", last_print - t0, last_seen,
                    n_agents, model_at);
        }
    }
    double cpu1 = proc_cpu_s(kpid);
    long hwm_kb = proc_status_kb(kpid, "VmHWM");
    int done = atomic_load(&g_done);
    atomic_store(&g_stop, 1);
    for (long k = 0; k < started_threads; k++)
        pthread_join(workers[k].thread, NULL);
    started_threads = 0;
    if (done < n_agents) {
        fprintf(stderr, "fleet_bench: only %d of %ld agents run %s after %ld s; first error: %s\n",
                done, n_agents, model_at, timeout_s, g_first_error);
        goto out;
    }
    /* the rollout's own view: done once every device reported the version */
    char stage[32] = "?";
    snprintf(url, sizeof url, "%s/v1/fleets/%s/rollout", admin_url, g_fleet);
    for (int i = 0; i < 50; i++) {
        code = admin("GET", url, NULL, &r);
        json_t *o = code == 200 ? json_loads(r.p, 0, NULL) : NULL;
        const char *s = json_string_value(json_object_get(o, "stage"));
        snprintf(stage, sizeof stage, "%s", s ? s : "?");
        json_decref(o);
        if (!strcmp(stage, "done"))
            break;
        usleep(100000);
    }
    double last = 0, first = 1e300;
    for (long i = 0; i < n_agents; i++) {
        if (agents[i].done_s > last)
            last = agents[i].done_s;
        if (agents[i].done_s < first)
            first = agents[i].done_s;
    }
    uint64_t bytes = 0, bundle_bytes = 0, reqs = 0, errs = 0, refs = 0, busy = 0, resumes = 0;
    double verify_s = 0;
    for (long k = 0; k < n_threads; k++) {
        bytes += workers[k].bytes_in;
        bundle_bytes += workers[k].bundle_bytes;
        reqs += workers[k].requests;
        errs += workers[k].errors;
        refs += workers[k].refusals;
        busy += workers[k].http_429;
        resumes += workers[k].resumes;
        verify_s += workers[k].verify_s;
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double self_cpu = ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6 + ru.ru_stime.tv_sec +
                      ru.ru_stime.tv_usec * 1e-6;
    printf("{\"agents\": %ld, \"threads\": %ld, \"poll_ms\": %d, \"canary_share\": %g, "
           "\"health_window_s\": %ld, \"rollout_s\": %.3f, \"first_agent_s\": %.3f, "
           "\"publish_call_s\": %.3f, \"kilnd_cpu_s\": %.3f, "
           "\"kilnd_peak_rss_mib\": %.1f, \"bytes_served\": %" PRIu64 ", \"bundle_bytes\": %" PRIu64
           ", \"requests\": %" PRIu64 ", \"errors\": %" PRIu64 ", \"refusals\": %" PRIu64
           ", \"busy_answers\": %" PRIu64 ", \"resumes\": %" PRIu64 ", \"client_verify_s\": %.3f, \"client_cpu_s\": %.3f, "
           "\"client_peak_rss_mib\": %.1f, \"rollout_stage\": \"%s\"}\n",
           n_agents, n_threads, g_poll_ms, canary_share, health_s, last - t0, first - t0, t_pub,
           cpu1 - cpu0, hwm_kb / 1024.0, bytes,
           bundle_bytes, reqs, errs, refs, busy, resumes, verify_s, self_cpu, ru.ru_maxrss / 1024.0, stage);
    rc = 0;
out:
    atomic_store(&g_stop, 1);
    for (long k = 0; k < started_threads; k++)
        pthread_join(workers[k].thread, NULL);
    if (workers)
        for (long k = 0; k < n_threads; k++) {
            worker_t *w = &workers[k];
            for (size_t i = 0; w->multi && i < w->n; i++)
                if (w->agents[i].in_flight)
                    curl_multi_remove_handle(w->multi, w->agents[i].easy);
            if (w->multi)
                curl_multi_cleanup(w->multi);
            if (w->share)
                curl_share_cleanup(w->share);
        }
    if (agents)
        for (long i = 0; i < n_agents; i++) {
            agent_t *a = &agents[i];
            if (a->easy)
                curl_easy_cleanup(a->easy);
            curl_slist_free_all(a->hdrs);
            free(a->body);
            free(a->resp.p);
            if (a->have_env)
                st_bundle_envelope_free(&a->env);
            sodium_memzero(a->sk, sizeof a->sk);
        }
    free(agents);
    free(workers);
    free(r.p);
    curl_global_cleanup();
    return rc;
}
