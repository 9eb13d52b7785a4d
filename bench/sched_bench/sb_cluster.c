/* sb_cluster.c - sched_bench's cluster (sb_cluster.h): a fresh kilnd in a
 * mkdtemp directory and SB_N_WORKERS kiln-worker, its HTTP API, and the jobs
 * submitted and polled through it; every wait bounded. */
#include "bench/sched_bench/sb_cluster.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/client.h"
#include "core/kiln_alloc.h"

#define START_TIMEOUT_S  15.0   /* kilnd.url/kilnd.zmq, and the 4 workers in /v1/health */
#define HTTP_TIMEOUT_MS  10000

/* The first line of path into out; 1 when there, 0 when not (yet). */
static int read_line(const char *path, char *out, size_t cap)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    int ok = fgets(out, (int)cap, f) != NULL;
    fclose(f);
    if (!ok)
        return 0;
    out[strcspn(out, "\r\n")] = 0;
    return out[0] != 0;
}

/* GET/POST path; *root is the parsed JSON answer (caller decrefs).  -1 with a
 * message on a transport error, a non-JSON answer or an HTTP status other
 * than want (or 200/201 when want is 0). */
static int api(const sb_cluster_t *c, const char *method, const char *path, const char *body,
               int want, json_t **root)
{
    int status = 0;
    char *resp = NULL;
    kiln_err_t err = {0};
    *root = NULL;
    if (ka_client_request(c->url, method, path, body, NULL, HTTP_TIMEOUT_MS, &status, &resp, NULL,
                          &err) < 0) {
        sb_fail("%s %s: %s", method, path, err.msg);
        return -1;
    }
    json_error_t je;
    json_t *j = resp ? json_loads(resp, 0, &je) : NULL;
    int ok_status = want ? status == want : (status == 200 || status == 201);
    if (!ok_status || !j) {
        sb_fail("%s %s: HTTP %d: %.300s", method, path, status, resp ? resp : "(no body)");
        json_decref(j);
        kiln_free(resp);
        return -1;
    }
    kiln_free(resp);
    *root = j;
    return 0;
}

int64_t sb_jint(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);
    return json_is_integer(v) ? (int64_t)json_integer_value(v) : 0;
}

static const char *jstr(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);
    return json_is_string(v) ? json_string_value(v) : "";
}

int sb_kilnd_dead(sb_cluster_t *c, const char *while_doing)
{
    for (size_t i = 0; i < c->n_procs; i++)
        if (!sb_alive(&c->procs[i])) {
            char how[64];
            sb_describe_exit(&c->procs[i], how, sizeof how);
            sb_fail("%s %s while %s", c->procs[i].name, how, while_doing);
            sb_show_log_tail(&c->procs[i]);
            return 1;
        }
    return 0;
}

void sb_cluster_stop(sb_cluster_t *c)
{
    /* workers first (kilnd would only mark them lost), then kilnd */
    if (c->n_procs > 1)
        sb_stop_all(c->procs + 1, c->n_procs - 1);
    if (c->n_procs > 0)
        sb_stop_all(c->procs, 1);
    c->n_procs = 0;
    if (c->dir[0])
        sb_remove_tree(c->dir);
    c->dir[0] = 0;
}

int sb_cluster_start(sb_cluster_t *c, const char *bin_dir, int cores)
{
    memset(c, 0, sizeof *c);
    const char *tmp = getenv("TMPDIR");
    snprintf(c->dir, sizeof c->dir, "%s/kiln-sched-bench.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(c->dir)) {
        sb_fail("mkdtemp %s: %s", c->dir, strerror(errno));
        c->dir[0] = 0;
        return -1;
    }
    char exe[1100], log[1200];
    snprintf(exe, sizeof exe, "%s/kilnd", bin_dir);
    snprintf(log, sizeof log, "%s/kilnd.log", c->dir);
    char *kargv[] = {exe, "--dir", c->dir, "--http", "127.0.0.1:0", "--listen", "tcp://127.0.0.1:*",
                     NULL};
    if (sb_spawn(&c->procs[0], "kilnd", kargv, log) < 0)
        return -1;
    c->n_procs = 1;

    /* kilnd writes kilnd.zmq, then kilnd.url, each by rename */
    double deadline = sb_now_mono_s() + START_TIMEOUT_S;
    char url_path[1200], zmq_path[1200];
    snprintf(url_path, sizeof url_path, "%s/kilnd.url", c->dir);
    snprintf(zmq_path, sizeof zmq_path, "%s/kilnd.zmq", c->dir);
    while (!(read_line(url_path, c->url, sizeof c->url) && read_line(zmq_path, c->zmq, sizeof c->zmq))) {
        if (sb_kilnd_dead(c, "starting"))
            return -1;
        if (sb_interrupted || sb_now_mono_s() > deadline) {
            if (sb_interrupted)
                sb_fail("interrupted while waiting for kilnd");
            else
                sb_fail("kilnd wrote no kilnd.url/kilnd.zmq within %.0f s", START_TIMEOUT_S);
            sb_show_log_tail(&c->procs[0]);
            return -1;
        }
        sb_sleep_ms(10);
    }

    snprintf(exe, sizeof exe, "%s/kiln-worker", bin_dir);
    for (int i = 0; i < SB_N_WORKERS; i++) {
        char id[16], cores_s[16], wdir[1200];
        snprintf(id, sizeof id, "w%d", i + 1);
        snprintf(cores_s, sizeof cores_s, "%d", cores);
        snprintf(wdir, sizeof wdir, "%s/worker-%s", c->dir, id);
        snprintf(log, sizeof log, "%s/worker-%s.log", c->dir, id);
        char *wargv[] = {exe, "--connect", c->zmq, "--id", id, "--cores", cores_s, "--dir", wdir, NULL};
        char name[32];
        snprintf(name, sizeof name, "kiln-worker %s", id);
        if (sb_spawn(&c->procs[c->n_procs], name, wargv, log) < 0)
            return -1;
        c->n_procs++;
    }

    deadline = sb_now_mono_s() + START_TIMEOUT_S;
    int64_t seen = -1;
    for (;;) {
        if (sb_kilnd_dead(c, "waiting for the workers"))
            return -1;
        json_t *h;
        if (api(c, "GET", "/v1/health", NULL, 200, &h) < 0)
            return -1;
        seen = sb_jint(h, "workers");
        snprintf(c->version, sizeof c->version, "%s", jstr(h, "version"));
        json_decref(h);
        if (seen == SB_N_WORKERS)
            break;
        if (sb_interrupted || sb_now_mono_s() > deadline) {
            if (sb_interrupted)
                sb_fail("interrupted while waiting for the workers");
            else
                sb_fail("/v1/health counts %lld of %d workers after %.0f s", (long long)seen,
                        SB_N_WORKERS, START_TIMEOUT_S);
            for (size_t i = 0; i < c->n_procs; i++)
                sb_show_log_tail(&c->procs[i]);
            return -1;
        }
        sb_sleep_ms(20);
    }
    return 0;
}

/* Submits spec; *id = the job's id. */
int sb_submit(sb_cluster_t *c, const char *spec, int64_t *id)
{
    json_t *r;
    if (api(c, "POST", "/v1/jobs", spec, 201, &r) < 0)
        return -1;
    *id = sb_jint(r, "id");
    json_decref(r);
    if (*id <= 0) {
        sb_fail("POST /v1/jobs: no job id in the answer");
        return -1;
    }
    return 0;
}

/* Polls GET /v1/jobs/ID every poll_ms until the job ended (or, with
 * until_started, until started_ns != 0); the job's final answer in *out
 * (caller decrefs).  -1 when it ended in any state but succeeded, or after
 * timeout_s. */
int sb_wait_job(sb_cluster_t *c, int64_t id, double poll_ms, double timeout_s, int until_started,
                json_t **out)
{
    char path[64];
    snprintf(path, sizeof path, "/v1/jobs/%lld", (long long)id);
    double deadline = sb_now_mono_s() + timeout_s;
    *out = NULL;
    for (;;) {
        json_t *j;
        if (api(c, "GET", path, NULL, 200, &j) < 0)
            return -1;
        const char *state = jstr(j, "state");
        if (until_started && sb_jint(j, "started_ns") != 0) {
            *out = j;
            return 0;
        }
        if (!strcmp(state, "succeeded")) {
            *out = j;
            return 0;
        }
        if (strcmp(state, "queued") && strcmp(state, "running")) {
            char *txt = json_dumps(json_object_get(j, "reason"), JSON_COMPACT | JSON_ENCODE_ANY);
            sb_fail("job %lld ended %s (reason %s)", (long long)id, state, txt ? txt : "?");
            free(txt);
            json_decref(j);
            return -1;
        }
        if (sb_interrupted || sb_now_mono_s() > deadline) {
            json_t *t = json_object_get(j, "tasks");
            if (sb_interrupted)
                sb_fail("interrupted while waiting for job %lld (%s)", (long long)id, state);
            else
                sb_fail("job %lld still %s after %.0f s (tasks: %lld queued, %lld running, %lld "
                        "succeeded)", (long long)id, state, timeout_s,
                        (long long)sb_jint(t, "queued"), (long long)sb_jint(t, "running"),
                        (long long)sb_jint(t, "succeeded"));
            json_decref(j);
            return -1;
        }
        json_decref(j);
        if (sb_kilnd_dead(c, "a job ran"))
            return -1;
        sb_sleep_ms(poll_ms);
    }
}
