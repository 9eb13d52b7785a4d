/* test_httpd.c - api/httpd (MHD in front of a libuv loop) driven by
 * api/client from the test thread and from several threads at once; and
 * the client's server resolution and connection errors. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>
#include <uv.h>

#include "api/client.h"
#include "api/httpd.h"
#include "core/kiln_alloc.h"

#define MAX_HELD 64

enum { CTL_NONE = 0, CTL_RELEASE, CTL_STOP };

/* One server on its own loop thread.  Fields marked (loop) are touched only
 * on the loop thread; the atomics are read by the test thread. */
typedef struct {
    uv_loop_t loop;
    uv_async_t ctl;
    pthread_t thread;
    ka_httpd_opts_t opts;
    ka_httpd_t *httpd;          /* (loop) after start */
    char url[64];
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int started;                /* under mu: 1 ok, -1 failed */
    int ctl_cmd;                /* under mu */
    ka_req_t *held[MAX_HELD];   /* (loop) */
    atomic_int n_held;
    atomic_int handler_calls;
    atomic_int deferred_out;    /* timers not yet fired */
} srv_t;

typedef struct {
    uv_timer_t timer;
    ka_req_t *req;
} deferred_t;

static void deferred_closed(uv_handle_t *h) { kiln_free(h->data); }

static void deferred_fire(uv_timer_t *t)
{
    deferred_t *d = t->data;
    srv_t *s = t->loop->data;
    json_t *o = json_pack("{s:b, s:s}", "deferred", 1, "path", d->req->path);
    ka_req_respond_json(d->req, 202, o);
    uv_close((uv_handle_t *)t, deferred_closed);    /* t->data is d */
    atomic_fetch_sub(&s->deferred_out, 1);
}

static void handler(void *ud, ka_req_t *req)
{
    srv_t *s = ud;
    atomic_fetch_add(&s->handler_calls, 1);
    if (!strcmp(req->path, "/hold")) {
        int n = atomic_load(&s->n_held);
        if (n == MAX_HELD) {    /* no cmocka asserts off the test thread */
            ka_req_respond_error(req, 500, NULL, "test holds too many");
            return;
        }
        s->held[n] = req;
        atomic_store(&s->n_held, n + 1);
        return;
    }
    if (!strcmp(req->path, "/later")) {
        deferred_t *d = kiln_calloc(1, sizeof *d);
        if (!d) {
            ka_req_respond_error(req, 500, NULL, "no memory");
            return;
        }
        d->req = req;
        uv_timer_init(&s->loop, &d->timer);
        d->timer.data = d;
        atomic_fetch_add(&s->deferred_out, 1);
        uv_timer_start(&d->timer, deferred_fire, 20, 0);
        return;
    }
    if (!strcmp(req->path, "/block-stop")) {
        /* Keeps the loop busy so the next requests queue up, then stops the
         * server from inside a handler: this one and the queued get 503. */
        struct timespec ts = {0, 400 * 1000000L};
        nanosleep(&ts, NULL);
        ka_httpd_stop(&s->httpd);
        uv_close((uv_handle_t *)&s->ctl, NULL);
        return;
    }
    if (!strcmp(req->path, "/error")) {
        ka_req_respond_error(req, 400, "name", "bad %s", "name");
        return;
    }
    if (!strcmp(req->path, "/error-nofield")) {
        ka_req_respond_error(req, 404, NULL, "no job %d", 7);
        return;
    }
    if (!strcmp(req->path, "/text")) {
        ka_req_respond(req, 200, "text/plain", "hello\n", 6);
        return;
    }
    /* /echo and anything else: what the server saw. */
    const char *x = ka_req_query(req, "x");
    const char *key = ka_req_header(req, "idempotency-key");
    json_t *o = json_pack("{s:s, s:s, s:s?, s:s?, s:s?, s:I}", "method", req->method, "path",
                          req->path, "x", x, "key", key, "body",
                          req->body_len < 1000 ? req->body : NULL, "body_len",
                          (json_int_t)req->body_len);
    ka_req_respond_json(req, 200, o);
}

static void release_held(srv_t *s)
{
    int n = atomic_load(&s->n_held);
    for (int i = 0; i < n; i++) {
        json_t *o = json_pack("{s:b}", "released", 1);
        ka_req_respond_json(s->held[i], 200, o);
        s->held[i] = NULL;
    }
    atomic_store(&s->n_held, 0);
}

static void on_ctl(uv_async_t *a)
{
    srv_t *s = a->data;
    pthread_mutex_lock(&s->mu);
    int cmd = s->ctl_cmd;
    s->ctl_cmd = CTL_NONE;
    pthread_mutex_unlock(&s->mu);
    if (cmd == CTL_RELEASE) {
        release_held(s);
    } else if (cmd == CTL_STOP) {
        ka_httpd_stop(&s->httpd);   /* answers the held ones 503 and frees them */
        atomic_store(&s->n_held, 0);
        uv_close((uv_handle_t *)&s->ctl, NULL);
    }
    pthread_mutex_lock(&s->mu);
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

static void *loop_main(void *arg)
{
    srv_t *s = arg;
    kiln_err_t err;
    kiln_err_clear(&err);
    int rc = ka_httpd_start(&s->loop, &s->opts, handler, s, &s->httpd, &err);
    pthread_mutex_lock(&s->mu);
    s->started = rc < 0 ? -1 : 1;
    if (rc == 0)
        snprintf(s->url, sizeof s->url, "http://127.0.0.1:%d", ka_httpd_port(s->httpd));
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    if (rc < 0)
        uv_close((uv_handle_t *)&s->ctl, NULL);
    uv_run(&s->loop, UV_RUN_DEFAULT);
    return NULL;
}

static srv_t *srv_start(const ka_httpd_opts_t *opts)
{
    srv_t *s = calloc(1, sizeof *s);
    assert_non_null(s);
    if (opts)
        s->opts = *opts;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    assert_int_equal(uv_loop_init(&s->loop), 0);
    s->loop.data = s;
    assert_int_equal(uv_async_init(&s->loop, &s->ctl, on_ctl), 0);
    s->ctl.data = s;
    assert_int_equal(pthread_create(&s->thread, NULL, loop_main, s), 0);
    pthread_mutex_lock(&s->mu);
    while (!s->started)
        pthread_cond_wait(&s->cv, &s->mu);
    pthread_mutex_unlock(&s->mu);
    assert_int_equal(s->started, 1);
    return s;
}

static void srv_ctl(srv_t *s, int cmd)
{
    pthread_mutex_lock(&s->mu);
    s->ctl_cmd = cmd;
    uv_async_send(&s->ctl);
    while (s->ctl_cmd != CTL_NONE)
        pthread_cond_wait(&s->cv, &s->mu);
    pthread_mutex_unlock(&s->mu);
}

static void srv_stop(srv_t *s)
{
    srv_ctl(s, CTL_STOP);
    pthread_join(s->thread, NULL);
    assert_int_equal(uv_loop_close(&s->loop), 0);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void wait_held(srv_t *s, int n)
{
    for (int i = 0; i < 500 && atomic_load(&s->n_held) < n; i++)
        sleep_ms(10);
    assert_int_equal(atomic_load(&s->n_held), n);
}

/* GET/POST helper: returns the parsed answer (caller decrefs) and the status. */
static json_t *call(srv_t *s, const char *method, const char *path, const char *body,
                    const char *key, int *status)
{
    kiln_err_t err;
    kiln_err_clear(&err);
    char *resp = NULL;
    size_t len = 0;
    int rc = ka_client_request(s->url, method, path, body, key, 5000, status, &resp, &len, &err);
    if (rc < 0)
        fail_msg("request %s %s failed: %s", method, path, err.msg);
    assert_non_null(resp);
    assert_int_equal(strlen(resp), len);
    json_error_t jerr;
    json_t *o = json_loads(resp, 0, &jerr);
    if (!o)
        fail_msg("not JSON (%s): %s", jerr.text, resp);
    kiln_free(resp);
    return o;
}

static void assert_error_object(json_t *o, int status, const char *field, const char *needle)
{
    json_t *e = json_object_get(o, "error");
    assert_true(json_is_object(e));
    assert_int_equal(json_integer_value(json_object_get(e, "status")), status);
    const char *msg = json_string_value(json_object_get(e, "message"));
    assert_non_null(msg);
    if (needle && !strstr(msg, needle))
        fail_msg("message '%s' lacks '%s'", msg, needle);
    if (field)
        assert_string_equal(json_string_value(json_object_get(e, "field")), field);
    else
        assert_null(json_object_get(e, "field"));
}

/* ---- tests ---- */

static void test_get_post_roundtrip(void **state)
{
    (void)state;
    srv_t *s = srv_start(NULL);
    int status;
    json_t *o = call(s, "GET", "/echo?x=a%20b&y=2", NULL, NULL, &status);
    assert_int_equal(status, 200);
    assert_string_equal(json_string_value(json_object_get(o, "method")), "GET");
    assert_string_equal(json_string_value(json_object_get(o, "path")), "/echo");
    assert_string_equal(json_string_value(json_object_get(o, "x")), "a b");
    assert_true(json_is_null(json_object_get(o, "key")));
    assert_string_equal(json_string_value(json_object_get(o, "body")), "");
    json_decref(o);

    o = call(s, "POST", "/echo", "{\"type\":\"noop\"}", "k-123", &status);
    assert_int_equal(status, 200);
    assert_string_equal(json_string_value(json_object_get(o, "method")), "POST");
    assert_string_equal(json_string_value(json_object_get(o, "key")), "k-123");
    assert_string_equal(json_string_value(json_object_get(o, "body")), "{\"type\":\"noop\"}");
    assert_int_equal(json_integer_value(json_object_get(o, "body_len")), 15);
    assert_true(json_is_null(json_object_get(o, "x")));
    json_decref(o);

    o = call(s, "GET", "/error", NULL, NULL, &status);
    assert_int_equal(status, 400);
    assert_error_object(o, 400, "name", "bad name");
    json_decref(o);
    o = call(s, "DELETE", "/error-nofield", NULL, NULL, &status);
    assert_int_equal(status, 404);
    assert_error_object(o, 404, NULL, "no job 7");
    json_decref(o);

    kiln_err_t err;
    char *resp = NULL;
    size_t len = 0;
    assert_int_equal(ka_client_request(s->url, "GET", "/text", NULL, NULL, 0, &status, &resp,
                                       &len, &err), 0);
    assert_int_equal(status, 200);
    assert_int_equal(len, 6);
    assert_string_equal(resp, "hello\n");
    kiln_free(resp);
    /* A key that would inject a header is refused by the client. */
    assert_int_equal(ka_client_request(s->url, "GET", "/echo", NULL, "a\r\nX: y", 0, &status,
                                       &resp, &len, &err), KILN_EINVAL);
    assert_int_equal(atomic_load(&s->handler_calls), 5);
    srv_stop(s);
}

static void test_deferred_response(void **state)
{
    (void)state;
    srv_t *s = srv_start(NULL);
    int status;
    for (int i = 0; i < 3; i++) {
        json_t *o = call(s, "GET", "/later", NULL, NULL, &status);
        assert_int_equal(status, 202);
        assert_true(json_is_true(json_object_get(o, "deferred")));
        assert_string_equal(json_string_value(json_object_get(o, "path")), "/later");
        json_decref(o);
    }
    while (atomic_load(&s->deferred_out))
        sleep_ms(5);
    srv_stop(s);
}

static void test_body_too_large(void **state)
{
    (void)state;
    ka_httpd_opts_t opts = {.max_body = 4096};
    srv_t *s = srv_start(&opts);
    char *big = malloc(8192 + 1);
    assert_non_null(big);
    memset(big, 'a', 8192);
    big[8192] = 0;
    int status;

    /* Exactly the limit is accepted... */
    big[4096] = 0;
    json_t *o = call(s, "POST", "/echo", big, NULL, &status);
    assert_int_equal(status, 200);
    assert_int_equal(json_integer_value(json_object_get(o, "body_len")), 4096);
    json_decref(o);
    assert_int_equal(atomic_load(&s->handler_calls), 1);

    /* ...one byte more is not, and the handler never sees it. */
    big[4096] = 'a';
    big[4097] = 0;
    o = call(s, "POST", "/echo", big, NULL, &status);
    assert_int_equal(status, 413);
    assert_error_object(o, 413, NULL, "4096 bytes");
    json_decref(o);
    big[4097] = 'a';
    o = call(s, "POST", "/echo", big, NULL, &status);
    assert_int_equal(status, 413);
    json_decref(o);
    assert_int_equal(atomic_load(&s->handler_calls), 1);
    free(big);
    srv_stop(s);
}

static void test_body_too_large_default_limit(void **state)
{
    (void)state;
    srv_t *s = srv_start(NULL);
    size_t n = ((size_t)1 << 20) + 1;
    char *big = malloc(n + 1);
    assert_non_null(big);
    memset(big, ' ', n);
    big[n] = 0;
    int status;
    json_t *o = call(s, "POST", "/echo", big, NULL, &status);
    assert_int_equal(status, 413);
    json_decref(o);
    big[n - 1] = 0;     /* exactly 1 MiB */
    o = call(s, "POST", "/echo", big, NULL, &status);
    assert_int_equal(status, 200);
    assert_int_equal(json_integer_value(json_object_get(o, "body_len")), (json_int_t)(n - 1));
    json_decref(o);
    assert_int_equal(atomic_load(&s->handler_calls), 1);
    free(big);
    srv_stop(s);
}

typedef struct {
    srv_t *s;
    const char *path;
    int status;
    char body[1024];
} bg_call_t;

static void *bg_request(void *arg)
{
    bg_call_t *c = arg;
    kiln_err_t err;
    char *resp = NULL;
    size_t len;
    if (ka_client_request(c->s->url, "GET", c->path, NULL, NULL, 10000, &c->status, &resp, &len,
                          &err) < 0)
        c->status = -1;
    snprintf(c->body, sizeof c->body, "%s", resp ? resp : err.msg);
    kiln_free(resp);
    return NULL;
}

static size_t find_retry_after(char *buf, size_t size, size_t n, void *ud)
{
    if (!strncasecmp(buf, "Retry-After: 1", 14))
        *(int *)ud = 1;
    return size * n;
}
static size_t discard(char *buf, size_t size, size_t n, void *ud)
{
    (void)buf;
    (void)ud;
    return size * n;
}

static void test_too_many_pending(void **state)
{
    (void)state;
    ka_httpd_opts_t opts = {.max_pending = 2};
    srv_t *s = srv_start(&opts);
    bg_call_t calls[2] = {{.s = s, .path = "/hold"}, {.s = s, .path = "/hold"}};
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&th[i], NULL, bg_request, &calls[i]), 0);
    wait_held(s, 2);

    int status;
    json_t *o = call(s, "POST", "/echo", "{}", NULL, &status);
    assert_int_equal(status, 429);
    assert_error_object(o, 429, NULL, "retry");
    json_decref(o);

    /* The header, seen with plain curl. */
    char url[128];
    snprintf(url, sizeof url, "%s/echo", s->url);
    CURL *curl = curl_easy_init();
    int has_retry_after = 0;
    long code = 0;
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, find_retry_after);
    curl_easy_setopt(curl, CURLOPT_HEADERDATA, &has_retry_after);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, discard);
    assert_int_equal(curl_easy_perform(curl), CURLE_OK);
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_cleanup(curl);
    assert_int_equal(code, 429);
    assert_true(has_retry_after);
    assert_int_equal(atomic_load(&s->handler_calls), 2);

    srv_ctl(s, CTL_RELEASE);
    for (int i = 0; i < 2; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(calls[i].status, 200);
        assert_non_null(strstr(calls[i].body, "released"));
    }
    /* The slots are free again. */
    o = call(s, "GET", "/echo", NULL, NULL, &status);
    assert_int_equal(status, 200);
    json_decref(o);
    srv_stop(s);
}

#define N_THREADS 8
#define N_PER_THREAD 40

typedef struct {
    srv_t *s;
    int id;
    int ok;
} conc_t;

static void *conc_worker(void *arg)
{
    conc_t *c = arg;
    for (int i = 0; i < N_PER_THREAD; i++) {
        char path[64], want[32];
        int later = (i % 4) == 3;
        snprintf(want, sizeof want, "t%d-%d", c->id, i);
        snprintf(path, sizeof path, later ? "/later" : "/echo?x=%s", want);
        kiln_err_t err;
        char *resp = NULL;
        size_t len;
        int status = 0;
        if (ka_client_request(c->s->url, i % 2 ? "POST" : "GET", path, i % 2 ? want : NULL, want,
                              10000, &status, &resp, &len, &err) < 0)
            continue;
        json_t *o = json_loads(resp, 0, NULL);
        kiln_free(resp);
        if (!o)
            continue;
        if (later) {
            if (status == 202 && json_is_true(json_object_get(o, "deferred")))
                c->ok++;
        } else if (status == 200) {
            const char *x = json_string_value(json_object_get(o, "x"));
            const char *key = json_string_value(json_object_get(o, "key"));
            const char *body = json_string_value(json_object_get(o, "body"));
            if (x && key && body && !strcmp(x, want) && !strcmp(key, want) &&
                !strcmp(body, i % 2 ? want : ""))
                c->ok++;
        }
        json_decref(o);
    }
    return NULL;
}

static void test_concurrent_requests(void **state)
{
    (void)state;
    srv_t *s = srv_start(NULL);
    pthread_t th[N_THREADS];
    conc_t c[N_THREADS];
    for (int t = 0; t < N_THREADS; t++) {
        c[t] = (conc_t){.s = s, .id = t};
        assert_int_equal(pthread_create(&th[t], NULL, conc_worker, &c[t]), 0);
    }
    for (int t = 0; t < N_THREADS; t++) {
        pthread_join(th[t], NULL);
        assert_int_equal(c[t].ok, N_PER_THREAD);
    }
    assert_int_equal(atomic_load(&s->handler_calls), N_THREADS * N_PER_THREAD);
    while (atomic_load(&s->deferred_out))
        sleep_ms(5);
    srv_stop(s);
}

static void test_stop_with_pending(void **state)
{
    (void)state;
    srv_t *s = srv_start(NULL);
    bg_call_t calls[3] = {{.s = s, .path = "/hold"}, {.s = s, .path = "/hold"},
                          {.s = s, .path = "/hold"}};
    pthread_t th[3];
    for (int i = 0; i < 3; i++)
        assert_int_equal(pthread_create(&th[i], NULL, bg_request, &calls[i]), 0);
    wait_held(s, 3);
    srv_stop(s);
    for (int i = 0; i < 3; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(calls[i].status, 503);
        json_t *o = json_loads(calls[i].body, 0, NULL);
        assert_non_null(o);
        assert_error_object(o, 503, NULL, "shutting down");
        json_decref(o);
    }
}

static void test_stop_from_handler_with_queued(void **state)
{
    (void)state;
    srv_t *s = srv_start(NULL);
    bg_call_t calls[3] = {{.s = s, .path = "/block-stop"}, {.s = s, .path = "/echo"},
                          {.s = s, .path = "/echo"}};
    pthread_t th[3];
    assert_int_equal(pthread_create(&th[0], NULL, bg_request, &calls[0]), 0);
    for (int i = 0; i < 500 && atomic_load(&s->handler_calls) < 1; i++)
        sleep_ms(2);
    for (int i = 1; i < 3; i++)
        assert_int_equal(pthread_create(&th[i], NULL, bg_request, &calls[i]), 0);
    for (int i = 0; i < 3; i++) {
        pthread_join(th[i], NULL);
        if (calls[i].status != 503)
            fail_msg("request %d (%s): %d %s", i, calls[i].path, calls[i].status, calls[i].body);
    }
    assert_int_equal(atomic_load(&s->handler_calls), 1);     /* the queued never ran */
    pthread_join(s->thread, NULL);
    assert_int_equal(uv_loop_close(&s->loop), 0);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

typedef struct {
    size_t left;
} chunk_src_t;

static size_t chunk_read(char *buf, size_t size, size_t n, void *ud)
{
    chunk_src_t *src = ud;
    size_t k = size * n < src->left ? size * n : src->left;
    memset(buf, 'x', k);
    src->left -= k;
    return k;
}

/* A chunked body (no Content-Length) over the limit: read and dropped,
 * then 413; the handler never sees it. */
static void test_chunked_body_too_large(void **state)
{
    (void)state;
    ka_httpd_opts_t opts = {.max_body = 10000};
    srv_t *s = srv_start(&opts);
    char url[128];
    snprintf(url, sizeof url, "%s/echo", s->url);
    for (int round = 0; round < 2; round++) {
        chunk_src_t src = {.left = round ? 10000 : 50000};
        struct curl_slist *hdr = curl_slist_append(NULL, "Transfer-Encoding: chunked");
        CURL *curl = curl_easy_init();
        long code = 0;
        curl_easy_setopt(curl, CURLOPT_URL, url);
        curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(curl, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, "POST");
        curl_easy_setopt(curl, CURLOPT_HTTPHEADER, hdr);
        curl_easy_setopt(curl, CURLOPT_READFUNCTION, chunk_read);
        curl_easy_setopt(curl, CURLOPT_READDATA, &src);
        curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, discard);
        assert_int_equal(curl_easy_perform(curl), CURLE_OK);
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &code);
        curl_easy_cleanup(curl);
        curl_slist_free_all(hdr);
        assert_int_equal(code, round ? 200 : 413);
        assert_int_equal(atomic_load(&s->handler_calls), round);
    }
    srv_stop(s);
}

static void test_start_errors(void **state)
{
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    ka_httpd_t *h = NULL, *h2 = (ka_httpd_t *)1;
    kiln_err_t err;
    ka_httpd_opts_t bad_host = {.host = "localhost"};
    assert_int_equal(ka_httpd_start(&loop, &bad_host, handler, NULL, &h, &err), KILN_EINVAL);
    assert_string_equal(err.where, "host");
    assert_null(h);

    assert_int_equal(ka_httpd_start(&loop, NULL, handler, NULL, &h, &err), 0);
    int port = ka_httpd_port(h);
    assert_true(port > 0);
    ka_httpd_opts_t same = {.port = port};
    assert_int_equal(ka_httpd_start(&loop, &same, handler, NULL, &h2, &err), KILN_EIO);
    assert_null(h2);
    assert_non_null(strstr(err.msg, "cannot listen on 127.0.0.1"));
    ka_httpd_stop(&h);
    assert_null(h);
    ka_httpd_stop(&h);      /* harmless */
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_connection_refused(void **state)
{
    (void)state;
    /* A port nobody listens on: bind one, read it, close it. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof sin;
    assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof sin), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &sl), 0);
    close(fd);
    char url[64], want[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", ntohs(sin.sin_port));
    snprintf(want, sizeof want, "cannot reach kilnd at %s: Connection refused", url);
    kiln_err_t err;
    int status = -7;
    char *resp = (char *)1;
    assert_int_equal(ka_client_request(url, "GET", "/v1/health", NULL, NULL, 2000, &status, &resp,
                                       NULL, &err), KILN_EIO);
    assert_string_equal(err.msg, want);
    assert_null(resp);
    assert_int_equal(status, -7);
}

static void test_resolve_server(void **state)
{
    (void)state;
    char out[256];
    kiln_err_t err;
    unsetenv("KILN_SERVER");
    unsetenv("KILN_DIR");
    assert_int_equal(ka_client_resolve_server(NULL, NULL, out, sizeof out, &err), 0);
    assert_string_equal(out, "http://127.0.0.1:7878");

    char dir[] = "/tmp/kiln-httpd-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[300];
    snprintf(path, sizeof path, "%s/kilnd.url", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("http://127.0.0.1:4242/\n", f);
    fclose(f);

    assert_int_equal(ka_client_resolve_server(NULL, dir, out, sizeof out, &err), 0);
    assert_string_equal(out, "http://127.0.0.1:4242");
    /* --server wins over --dir and the environment. */
    setenv("KILN_SERVER", "http://10.0.0.1:1", 1);
    assert_int_equal(ka_client_resolve_server("http://h:9", dir, out, sizeof out, &err), 0);
    assert_string_equal(out, "http://h:9");
    /* --dir wins over KILN_SERVER. */
    assert_int_equal(ka_client_resolve_server(NULL, dir, out, sizeof out, &err), 0);
    assert_string_equal(out, "http://127.0.0.1:4242");
    assert_int_equal(ka_client_resolve_server(NULL, NULL, out, sizeof out, &err), 0);
    assert_string_equal(out, "http://10.0.0.1:1");
    /* KILN_SERVER wins over KILN_DIR. */
    setenv("KILN_DIR", dir, 1);
    assert_int_equal(ka_client_resolve_server(NULL, NULL, out, sizeof out, &err), 0);
    assert_string_equal(out, "http://10.0.0.1:1");
    unsetenv("KILN_SERVER");
    assert_int_equal(ka_client_resolve_server(NULL, NULL, out, sizeof out, &err), 0);
    assert_string_equal(out, "http://127.0.0.1:4242");

    /* Errors: a dir without kilnd.url, a URL that is not http, too small a buffer. */
    unlink(path);
    assert_int_equal(ka_client_resolve_server(NULL, dir, out, sizeof out, &err), KILN_ENOTFOUND);
    assert_non_null(strstr(err.msg, "kilnd.url"));
    assert_int_equal(ka_client_resolve_server(NULL, NULL, out, sizeof out, &err), KILN_ENOTFOUND);
    assert_non_null(strstr(err.msg, "KILN_DIR"));
    unsetenv("KILN_DIR");
    assert_int_equal(ka_client_resolve_server("ftp://x", NULL, out, sizeof out, &err),
                     KILN_EINVAL);
    assert_int_equal(ka_client_resolve_server("http://127.0.0.1:7878", NULL, out, 8, &err),
                     KILN_EINVAL);
    rmdir(dir);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_get_post_roundtrip),
        cmocka_unit_test(test_deferred_response),
        cmocka_unit_test(test_body_too_large),
        cmocka_unit_test(test_body_too_large_default_limit),
        cmocka_unit_test(test_too_many_pending),
        cmocka_unit_test(test_concurrent_requests),
        cmocka_unit_test(test_stop_with_pending),
        cmocka_unit_test(test_stop_from_handler_with_queued),
        cmocka_unit_test(test_chunked_body_too_large),
        cmocka_unit_test(test_start_errors),
        cmocka_unit_test(test_connection_refused),
        cmocka_unit_test(test_resolve_server),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
