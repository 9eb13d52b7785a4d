/* routes_ui.c - the dashboard's routes (routes_ui.h, docs/dashboard.md):
 *   GET /ui, /ui/            the page (scheduler/ui/index.html)
 *   GET /ui/NAME             its script and style sheet
 *   GET /ui/drift/ID         the HTML report drift job ID wrote, or a 404 page
 * The page itself holds no data: its script reads the JSON API. */
#include "routes_ui.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/kiln_alloc.h"
#include "routes.h"

#define UI_HTML          "text/html; charset=utf-8"
#define UI_REPORT_MAX    ((size_t)64 << 20)   /* a report bigger than this is not a page */

const ks_ui_asset_t *ks_ui_asset_find(const char *path)
{
    if (!strcmp(path, "/ui") || !strcmp(path, "/ui/"))
        path = "/ui/index.html";
    for (const ks_ui_asset_t *a = ks_ui_assets; a->path; a++)
        if (!strcmp(a->path, path))
            return a;
    return NULL;
}

static int has_suffix(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

int ks_ui_drift_report_path(const json_t *spec, char *buf, size_t cap, kiln_err_t *err)
{
    const json_t *report = json_object_get(spec, "report");
    const json_t *output = json_object_get(spec, "output");
    int n;
    if (report) {
        const char *r = json_string_value(report);
        if (!r || !r[0])
            return kiln_err_at(err, KILN_ESPEC, "report", "report: must be a non-empty path");
        n = snprintf(buf, cap, "%s", r);
    } else {
        const char *o = json_string_value(output);
        if (!o || !o[0])
            return kiln_err_at(err, KILN_ESPEC, "output",
                               "the spec names no report and no output to derive it from");
        /* The rule the drift job writes by (jobs/type_drift.c). */
        size_t keep = strlen(o);
        if (keep > 5 && !strcmp(o + keep - 5, ".json"))
            keep -= 5;
        n = snprintf(buf, cap, "%.*s.html", (int)keep, o);
    }
    if (n < 0 || (size_t)n >= cap)
        return kiln_err_at(err, KILN_EINVAL, report ? "report" : "output",
                           "%s: the report path is longer than %zu bytes",
                           report ? "report" : "output", cap - 1);
    if (!has_suffix(buf, ".html") && !has_suffix(buf, ".htm"))
        return kiln_err_at(err, KILN_ESPEC, "report",
                           "report: \"%s\" does not end in .html or .htm: not served", buf);
    return 0;
}

/* text with &, <, >, " and ' as entities, cut to fit out[cap]. */
static void html_escape(const char *text, char *out, size_t cap)
{
    size_t o = 0;
    for (const char *p = text; *p; p++) {
        const char *rep = NULL;
        switch (*p) {
        case '&': rep = "&amp;"; break;
        case '<': rep = "&lt;"; break;
        case '>': rep = "&gt;"; break;
        case '"': rep = "&quot;"; break;
        case '\'': rep = "&#39;"; break;
        default: break;
        }
        size_t k = rep ? strlen(rep) : 1;
        if (o + k >= cap)
            break;
        if (rep)
            memcpy(out + o, rep, k);
        else
            out[o] = *p;
        o += k;
    }
    out[o] = '\0';
}

/* A small page saying what is missing, with a way back to the dashboard. */
static void reply_page(struct kd *kd, ka_req_t *req, int status, const char *title,
                       const char *message)
{
    char t[512], m[4096], page[5120];
    html_escape(title, t, sizeof t);
    html_escape(message, m, sizeof m);
    int n = snprintf(page, sizeof page,
                     "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                     "<title>kiln: %s</title></head>\n<body style=\"font-family: sans-serif\">"
                     "<h1>%d: %s</h1>\n<p id=\"message\">%s</p>\n"
                     "<p><a href=\"/ui/\">back to the dashboard</a></p>\n</body></html>\n",
                     t, status, t, m);
    size_t len = n < 0 ? 0 : (size_t)n >= sizeof page ? sizeof page - 1 : (size_t)n;
    char *text = kiln_malloc(len + 1);
    if (!text) {
        kd_reply_error(kd, req, 503, NULL, "out of memory");
        return;
    }
    memcpy(text, page, len);
    text[len] = '\0';
    kd_reply_text(kd, req, status, UI_HTML, text, len);
}

static void serve_asset(struct kd *kd, ka_req_t *req, const ks_ui_asset_t *a)
{
    char *text = kiln_malloc(a->len + 1);
    if (!text) {
        kd_reply_error(kd, req, 503, NULL, "out of memory");
        return;
    }
    memcpy(text, a->bytes, a->len + 1);
    kd_reply_text(kd, req, 200, a->content_type, text, a->len);
}

/* The whole of a regular file, or a message.  O_NONBLOCK: a FIFO named by
 * a spec must not stall the loop thread in open(). */
static char *read_report(const char *path, size_t *len, char *why, size_t cap, int *missing)
{
    *missing = 0;
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        *missing = errno == ENOENT;
        snprintf(why, cap, "%s", strerror(errno));
        return NULL;
    }
    struct stat sb;
    char *buf = NULL;
    if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode)) {
        snprintf(why, cap, "not a regular file");
        goto out;
    }
    if ((size_t)sb.st_size > UI_REPORT_MAX) {
        snprintf(why, cap, "%lld bytes, over the %zu MiB a report may have",
                 (long long)sb.st_size, UI_REPORT_MAX >> 20);
        goto out;
    }
    size_t size = (size_t)sb.st_size, got = 0;
    if (!(buf = kiln_malloc(size + 1))) {
        snprintf(why, cap, "out of memory");
        goto out;
    }
    while (got < size) {
        ssize_t r = read(fd, buf + got, size - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;   /* a file cut shorter meanwhile: serve what is there */
        got += (size_t)r;
    }
    buf[got] = '\0';
    *len = got;
out:
    close(fd);
    return buf;
}

static void drift_report(struct kd *kd, ka_req_t *req, const char *id_text)
{
    char title[128], msg[2048], path[1200];
    char *end;
    errno = 0;
    long long id = id_text[0] >= '0' && id_text[0] <= '9' ? strtoll(id_text, &end, 10) : -1;
    if (id <= 0 || errno || *end) {
        snprintf(msg, sizeof msg, "\"%s\" is not a job id (a positive whole number)", id_text);
        reply_page(kd, req, 404, "no such drift report", msg);
        return;
    }
    snprintf(title, sizeof title, "drift job %lld", id);
    kiln_err_t err = {0};
    json_t *job = ks_sched_job_json(kd_sched(kd), id, &err);
    if (!job) {
        reply_page(kd, req, err.code == KILN_ENOTFOUND ? 404 : 500, title, err.msg);
        return;
    }
    const char *type = json_string_value(json_object_get(job, "type"));
    const char *state = json_string_value(json_object_get(job, "state"));
    if (!type || strcmp(type, "drift")) {
        snprintf(msg, sizeof msg, "job %lld is a %s job, not a drift job: it has no report", id,
                 type ? type : "?");
        reply_page(kd, req, 404, title, msg);
        goto out;
    }
    if (ks_ui_drift_report_path(json_object_get(job, "spec"), path, sizeof path, &err) < 0) {
        snprintf(msg, sizeof msg, "job %lld: %s", id, err.msg);
        reply_page(kd, req, 404, title, msg);
        goto out;
    }
    char why[256];
    size_t len = 0;
    int missing;
    char *html = read_report(path, &len, why, sizeof why, &missing);
    if (!html) {
        if (missing)
            snprintf(msg, sizeof msg, "drift job %lld (%s) has not written its report %s%s", id,
                     state ? state : "?", path,
                     state && !strcmp(state, "succeeded") ? " (it was moved or deleted)"
                                                          : " yet");
        else
            snprintf(msg, sizeof msg, "drift job %lld: report %s: %s", id, path, why);
        reply_page(kd, req, 404, title, msg);
        goto out;
    }
    kd_reply_text(kd, req, 200, UI_HTML, html, len);
out:
    json_decref(job);
}

int kd_route_ui(struct kd *kd, ka_req_t *req)
{
    const char *p = req->path;
    if (strcmp(p, "/ui") && strncmp(p, "/ui/", 4))
        return 0;
    if (strcmp(req->method, "GET")) {
        kd_reply_error(kd, req, 405, NULL, "%s %s: method not allowed (the dashboard is read-only)",
                       req->method, p);
        return 1;
    }
    if (!strncmp(p, "/ui/drift/", 10)) {
        drift_report(kd, req, p + 10);
        return 1;
    }
    const ks_ui_asset_t *a = ks_ui_asset_find(p);
    if (a) {
        serve_asset(kd, req, a);
        return 1;
    }
    char msg[1200];
    snprintf(msg, sizeof msg, "%s is not a page of the dashboard", p);
    reply_page(kd, req, 404, "not found", msg);
    return 1;
}
