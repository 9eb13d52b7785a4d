/* fleetc.c - signed HTTPS calls to the fleet endpoint and the resumable
 * bundle download (fleetc.h).  libcurl pinned to the enrolled CA: CAINFO is
 * that file, CAPATH is cleared (no system store), peer and host are
 * verified, https only, no redirects. */
#include "edge/fleetc.h"

#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "cluster/edge_sig.h"
#include "core/kiln_alloc.h"
#include "edge/store.h"

static int64_t next_time_ms(ke_fleetc_t *c)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    int64_t t = (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
    if (t <= c->last_ms)
        t = c->last_ms + 1;
    c->last_ms = t;
    return t;
}

static int on_progress(void *ud, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
    const ke_fleetc_t *c = ud;
    (void)dt, (void)dn, (void)ut, (void)un;
    return c->cancel && *c->cancel;
}

/* A handle with the pinned CA and the signed headers of one call. */
static CURL *open_call(ke_fleetc_t *c, const char *method, const char *path, const void *body,
                       size_t body_len, struct curl_slist **hdrs, char *errbuf, kiln_err_t *err)
{
    char sig[KC_EDGE_SIG_B64_MAX], h[256], url[1200];
    int64_t t = next_time_ms(c);
    if (kc_edge_sign(c->sk, method, path, t, body, body_len, sig, err) < 0)
        return NULL;
    *hdrs = NULL;
    struct curl_slist *l = NULL, *n;
    snprintf(h, sizeof h, "X-Kiln-Time: %" PRId64, t);
    if (!(n = curl_slist_append(l, h)))
        goto oom;
    l = n;
    snprintf(h, sizeof h, "X-Kiln-Sig: %s", sig);
    if (!(n = curl_slist_append(l, h)))
        goto oom;
    l = n;
    if (c->device_id[0]) {
        snprintf(h, sizeof h, "X-Kiln-Device: %s", c->device_id);
        if (!(n = curl_slist_append(l, h)))
            goto oom;
        l = n;
    }
    if (body && !(n = curl_slist_append(l, "Content-Type: application/json")))
        goto oom;
    l = body ? n : l;
    CURL *curl = curl_easy_init();
    if (!curl)
        goto oom;
    *hdrs = l;
    snprintf(url, sizeof url, "%s%s", c->server, path);
    errbuf[0] = 0;
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "https");
    curl_easy_setopt(curl, CURLOPT_CAINFO, c->ca_path);
    curl_easy_setopt(curl, CURLOPT_CAPATH, NULL);
    curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 2L);
    curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, c->connect_timeout_s ? c->connect_timeout_s : 10L);
    /* A stalled transfer (under 1 byte/s for 30 s) is cut; bundles have no
     * overall limit, other calls timeout_s. */
    curl_easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(curl, CURLOPT_LOW_SPEED_TIME, 30L);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, l);
    curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(curl, CURLOPT_XFERINFODATA, c);
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
    if (body) {
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, (long)body_len);
    }
    return curl;
oom:
    curl_slist_free_all(l);
    kiln_err_set(err, KILN_ENOMEM, "%s %s: out of memory", method, path);
    return NULL;
}

typedef struct {
    char  *buf;
    size_t len, cap, max;
    int    over;
} membuf_t;

static size_t on_mem(char *p, size_t size, size_t n, void *ud)
{
    membuf_t *m = ud;
    size_t k = size * n;
    if (m->len + k > m->max) {
        m->over = 1;
        return 0;
    }
    if (m->len + k + 1 > m->cap) {
        size_t cap = m->cap ? m->cap : 4096;
        while (cap < m->len + k + 1)
            cap *= 2;
        char *b = kiln_realloc(m->buf, cap);
        if (!b)
            return 0;
        m->buf = b;
        m->cap = cap;
    }
    memcpy(m->buf + m->len, p, k);
    m->len += k;
    m->buf[m->len] = 0;
    return k;
}

int ke_fleetc_call(ke_fleetc_t *c, const char *method, const char *path, const void *body,
                   size_t body_len, long *status, char **resp, size_t *resp_len,
                   size_t resp_max, kiln_err_t *err)
{
    struct curl_slist *hdrs = NULL;
    char errbuf[CURL_ERROR_SIZE];
    membuf_t m = {.max = resp_max ? resp_max : 65536};
    *status = 0;
    if (resp)
        *resp = NULL;
    CURL *curl = open_call(c, method, path, body, body_len, &hdrs, errbuf, err);
    if (!curl)
        return err->code;
    curl_easy_setopt(curl, CURLOPT_TIMEOUT, c->timeout_s ? c->timeout_s : 60L);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_mem);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &m);
    CURLcode cc = curl_easy_perform(curl);
    int rc = 0;
    if (cc != CURLE_OK) {
        rc = m.over ? kiln_err_set(err, KILN_EFORMAT, "%s %s%s: answer over %zu bytes", method,
                                   c->server, path, m.max)
                    : kiln_err_set(err, KILN_EIO, "%s %s%s: %s", method, c->server, path,
                                   errbuf[0] ? errbuf : curl_easy_strerror(cc));
    } else {
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, status);
    }
    curl_easy_cleanup(curl);
    curl_slist_free_all(hdrs);
    if (rc == 0 && resp) {
        if (!m.buf && !(m.buf = kiln_calloc(1, 1)))
            return kiln_err_set(err, KILN_ENOMEM, "out of memory");
        *resp = m.buf;
        if (resp_len)
            *resp_len = m.len;
    } else {
        kiln_free(m.buf);
    }
    return rc;
}

/* ---- download ------------------------------------------------------------ */

typedef struct {
    CURL     *curl;
    FILE     *f;
    uint64_t  offset, size, pos;
    int64_t   range_start;
    int       started, refused, io_failed;
    long      status;
    membuf_t  err_body;      /* the body of a non-2xx answer */
} dl_t;

static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
    dl_t *d = ud;
    size_t k = size * n;
    const char *key = "Content-Range:";
    if (k > strlen(key) && !strncasecmp(p, key, strlen(key))) {
        unsigned long long a;
        if (sscanf(p + strlen(key), " bytes %llu-", &a) == 1)
            d->range_start = (int64_t)a;
    }
    return k;
}

static size_t on_data(char *p, size_t size, size_t n, void *ud)
{
    dl_t *d = ud;
    size_t k = size * n;
    if (!d->started) {
        d->started = 1;
        curl_easy_getinfo(d->curl, CURLINFO_RESPONSE_CODE, &d->status);
        if (d->status != 200 && d->status != 206)
            d->refused = 1;
        if (!d->refused) {
            int64_t at = ke_resume_accept(d->offset, d->status, d->range_start);
            if (at < 0) {
                d->refused = 1;
            } else {
                if (at == 0 && d->offset > 0 && ftruncate(fileno(d->f), 0) != 0)
                    d->io_failed = 1;
                d->pos = (uint64_t)at;
                if (fseeko(d->f, (off_t)at, SEEK_SET) != 0)
                    d->io_failed = 1;
            }
        }
    }
    if (d->refused)
        return on_mem(p, size, n, &d->err_body) == k ? k : 0;
    if (d->io_failed || d->pos + k > d->size) {
        d->refused = !d->io_failed;
        return 0;
    }
    if (fwrite(p, 1, k, d->f) != k) {
        d->io_failed = 1;
        return 0;
    }
    d->pos += k;
    return k;
}

int ke_fleetc_download(ke_fleetc_t *c, const char *sha, uint64_t size, const char *part_path,
                       int tries, kiln_err_t *err)
{
    char path[200];
    snprintf(path, sizeof path, "/edge/v1/bundle/%s", sha);
    int failures = 0;
    for (;;) {
        struct stat st;
        uint64_t part = stat(part_path, &st) == 0 ? (uint64_t)st.st_size : 0;
        int truncate = 0;
        uint64_t offset = ke_resume_offset(part, size, &truncate);
        if (truncate && unlink(part_path) != 0 && errno != ENOENT)
            return kiln_err_at(err, KILN_EIO, part_path, "%s: %s", part_path, strerror(errno));
        if (offset == size)
            return 0;
        FILE *f = fopen(part_path, offset ? "r+b" : "wb");
        if (!f)
            return kiln_err_at(err, KILN_EIO, part_path, "%s: %s", part_path, strerror(errno));
        struct curl_slist *hdrs = NULL;
        char errbuf[CURL_ERROR_SIZE], range[64];
        dl_t d = {.f = f, .offset = offset, .size = size, .range_start = -1,
                  .err_body = {.max = 4096}};
        d.curl = open_call(c, "GET", path, NULL, 0, &hdrs, errbuf, err);
        if (!d.curl) {
            fclose(f);
            return err->code;
        }
        if (offset) {
            snprintf(range, sizeof range, "%" PRIu64 "-", offset);
            curl_easy_setopt(d.curl, CURLOPT_RANGE, range);
            fprintf(stderr, "kiln-edge: download %.12s: resuming at byte %" PRIu64 " of %" PRIu64
                    "\n", sha, offset, size);
        }
        curl_easy_setopt(d.curl, CURLOPT_HEADERFUNCTION, on_header);
        curl_easy_setopt(d.curl, CURLOPT_HEADERDATA, &d);
        curl_easy_setopt(d.curl, CURLOPT_WRITEFUNCTION, on_data);
        curl_easy_setopt(d.curl, CURLOPT_WRITEDATA, &d);
        CURLcode cc = curl_easy_perform(d.curl);
        if (!d.started)
            curl_easy_getinfo(d.curl, CURLINFO_RESPONSE_CODE, &d.status);
        curl_easy_cleanup(d.curl);
        curl_slist_free_all(hdrs);
        int flushed = fflush(f) == 0 && fsync(fileno(f)) == 0;
        fclose(f);
        const char *why = d.err_body.buf ? d.err_body.buf : "";
        if (d.io_failed || !flushed) {
            kiln_free(d.err_body.buf);
            return kiln_err_at(err, KILN_EIO, part_path, "%s: cannot write the download",
                               part_path);
        }
        if (d.refused || (cc == CURLE_OK && d.status != 200 && d.status != 206)) {
            int code = d.status == 404 ? KILN_ENOTFOUND
                       : d.status == 416 || d.status == 200 || d.status == 206 ? KILN_EFORMAT
                                                                                 : KILN_EIO;
            if (d.status == 416) {
                unlink(part_path);   /* the part is of no use: start over next time */
            }
            kiln_err_set(err, code, "GET %s%s: HTTP %ld%s%.300s", c->server, path, d.status,
                         why[0] ? ": " : "", why);
            kiln_free(d.err_body.buf);
            return code;
        }
        kiln_free(d.err_body.buf);
        if (cc == CURLE_OK && d.pos <= offset && ++failures >= tries)
            return kiln_err_set(err, KILN_EIO, "GET %s%s: answers bring no bytes", c->server,
                                path);
        if (cc != CURLE_OK) {
            fprintf(stderr, "kiln-edge: download %.12s: cut after %" PRIu64 " of %" PRIu64
                    " bytes: %s\n", sha, d.pos, size, errbuf[0] ? errbuf : curl_easy_strerror(cc));
            if (++failures >= tries)
                return kiln_err_set(err, KILN_EIO, "GET %s%s: %s (%" PRIu64 " of %" PRIu64
                                    " bytes kept for the next try)", c->server, path,
                                    errbuf[0] ? errbuf : curl_easy_strerror(cc), d.pos, size);
        }
    }
}
