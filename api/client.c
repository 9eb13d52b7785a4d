/* client.c - one libcurl easy handle per request to kilnd's HTTP API, with
 * a bounded answer and error messages that say which kilnd was unreachable. */
#include "client.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "core/kiln_alloc.h"

typedef struct {
    char  *data;
    size_t len, cap;
    int    too_big;
} ka_buf_t;

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *ud)
{
    ka_buf_t *b = ud;
    size_t n = size * nmemb;
    if (b->len + n > KA_CLIENT_MAX_RESPONSE) {
        b->too_big = 1;
        return 0;       /* aborts the transfer */
    }
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *d = kiln_realloc(b->data, cap);
        if (!d)
            return 0;
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->len, ptr, n);
    b->len += n;
    b->data[b->len] = 0;
    return n;
}

/* The message for a transfer that failed: the OS's words when there are
 * some ("Connection refused"), else curl's. */
static int transport_error(CURL *curl, CURLcode cc, const char *base_url, const char *errbuf,
                           int timeout_ms, kiln_err_t *err)
{
    long os_errno = 0;
    curl_easy_getinfo(curl, CURLINFO_OS_ERRNO, &os_errno);
    if (cc == CURLE_OPERATION_TIMEDOUT)
        return kiln_err_set(err, KILN_EIO, "kilnd at %s did not answer within %d ms", base_url,
                            timeout_ms);
    if (cc == CURLE_COULDNT_CONNECT || cc == CURLE_COULDNT_RESOLVE_HOST)
        return kiln_err_set(err, KILN_EIO, "cannot reach kilnd at %s: %s", base_url,
                            os_errno ? strerror((int)os_errno)
                                     : (errbuf[0] ? errbuf : curl_easy_strerror(cc)));
    return kiln_err_set(err, KILN_EIO, "request to kilnd at %s failed: %s", base_url,
                        errbuf[0] ? errbuf : curl_easy_strerror(cc));
}

int ka_client_request(const char *base_url, const char *method, const char *path,
                      const char *body, const char *idempotency_key, int timeout_ms,
                      int *status, char **resp_body, size_t *resp_len, kiln_err_t *err)
{
    if (resp_body)
        *resp_body = NULL;
    if (resp_len)
        *resp_len = 0;
    if (!base_url || !method || !path || !status)
        return kiln_err_set(err, KILN_EINVAL, "ka_client_request: base_url, method, path and "
                                              "status are required");
    if (timeout_ms <= 0)
        timeout_ms = 30000;
    for (const char *k = idempotency_key; k && *k; k++)
        if ((unsigned char)*k < 0x21 || (unsigned char)*k > 0x7e)
            return kiln_err_at(err, KILN_EINVAL, "idempotency_key",
                               "an idempotency key is printable ASCII without spaces");

    int rc = 0;
    char *url = NULL, *hdr_key = NULL;
    struct curl_slist *headers = NULL, *h2;
    ka_buf_t buf = {0};
    char errbuf[CURL_ERROR_SIZE] = "";
    CURL *curl = curl_easy_init();
    if (!curl)
        return kiln_err_set(err, KILN_ENOMEM, "cannot start a request to %s", base_url);

    size_t ulen = strlen(base_url) + strlen(path) + 1;
    if (!(url = kiln_malloc(ulen))) {
        rc = kiln_err_set(err, KILN_ENOMEM, "no memory for the URL");
        goto out;
    }
    snprintf(url, ulen, "%s%s", base_url, path);

    if (!(h2 = curl_slist_append(headers, "Accept: application/json")))
        goto nomem;
    headers = h2;
    if (body) {
        if (!(h2 = curl_slist_append(headers, "Content-Type: application/json")))
            goto nomem;
        headers = h2;
    }
    if (idempotency_key) {
        size_t klen = strlen(idempotency_key) + sizeof "Idempotency-Key: ";
        if (!(hdr_key = kiln_malloc(klen)))
            goto nomem;
        snprintf(hdr_key, klen, "Idempotency-Key: %s", idempotency_key);
        if (!(h2 = curl_slist_append(headers, hdr_key)))
            goto nomem;
        headers = h2;
    }

    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, (long)(timeout_ms < 10000 ? timeout_ms : 10000));
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &buf);
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
    if (body) {
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));
    } else if (!strcmp(method, "HEAD")) {
        curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
    }

    CURLcode cc = curl_easy_perform(curl);
    if (buf.too_big) {
        rc = kiln_err_set(err, KILN_EIO, "answer from kilnd at %s is larger than %zu bytes",
                          base_url, KA_CLIENT_MAX_RESPONSE);
        goto out;
    }
    if (cc != CURLE_OK) {
        rc = transport_error(curl, cc, base_url, errbuf, timeout_ms, err);
        goto out;
    }
    long code = 0;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &code);
    *status = (int)code;
    if (resp_body) {
        if (!buf.data && !(buf.data = kiln_calloc(1, 1))) {
            rc = kiln_err_set(err, KILN_ENOMEM, "no memory for the answer");
            goto out;
        }
        *resp_body = buf.data;
        if (resp_len)
            *resp_len = buf.len;
        buf.data = NULL;
    }
    goto out;
nomem:
    rc = kiln_err_set(err, KILN_ENOMEM, "no memory for the request headers");
out:
    kiln_free(buf.data);
    curl_slist_free_all(headers);
    kiln_free(hdr_key);
    kiln_free(url);
    curl_easy_cleanup(curl);
    return rc;
}

/* Copies url into out without surrounding white space or a trailing '/'. */
static int set_url(const char *url, const char *source, char *out, size_t cap, kiln_err_t *err)
{
    while (*url == ' ' || *url == '\t')
        url++;
    size_t n = strlen(url);
    while (n && (url[n - 1] == '\n' || url[n - 1] == '\r' || url[n - 1] == ' ' ||
                 url[n - 1] == '\t' || url[n - 1] == '/'))
        n--;
    if (!n)
        return kiln_err_set(err, KILN_EINVAL, "%s: empty server URL", source);
    if (strncmp(url, "http://", 7) && strncmp(url, "https://", 8))
        return kiln_err_set(err, KILN_EINVAL, "%s: '%.*s' is not an http:// or https:// URL",
                            source, (int)(n > 200 ? 200 : n), url);
    if (n + 1 > cap)
        return kiln_err_set(err, KILN_EINVAL, "%s: server URL longer than %zu characters", source,
                            cap - 1);
    memcpy(out, url, n);
    out[n] = 0;
    return 0;
}

static int url_from_dir(const char *dir, const char *how, char *out, size_t cap, kiln_err_t *err)
{
    char path[4096], line[1024];
    snprintf(path, sizeof path, "%s/kilnd.url", dir);
    FILE *f = fopen(path, "r");
    if (!f)
        return kiln_err_set(err, KILN_ENOTFOUND,
                            "%s: %s (is kilnd running with --dir %s? it is given by %s)", path,
                            strerror(errno), dir, how);
    char *got = fgets(line, sizeof line, f);
    fclose(f);
    if (!got)
        return kiln_err_set(err, KILN_EINVAL, "%s: empty file, no server URL", path);
    return set_url(line, path, out, cap, err);
}

int ka_client_resolve_server(const char *flag_server, const char *flag_dir, char *out, size_t cap,
                             kiln_err_t *err)
{
    if (!out || cap == 0)
        return kiln_err_set(err, KILN_EINVAL, "ka_client_resolve_server: no output buffer");
    out[0] = 0;
    if (flag_server)
        return set_url(flag_server, "--server", out, cap, err);
    if (flag_dir)
        return url_from_dir(flag_dir, "--dir", out, cap, err);
    const char *env = getenv("KILN_SERVER");
    if (env && env[0])
        return set_url(env, "KILN_SERVER", out, cap, err);
    env = getenv("KILN_DIR");
    if (env && env[0])
        return url_from_dir(env, "KILN_DIR", out, cap, err);
    return set_url(KA_CLIENT_DEFAULT_URL, "default", out, cap, err);
}
