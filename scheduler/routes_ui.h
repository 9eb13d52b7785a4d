/* routes_ui.h - the read-only web dashboard kilnd serves at /ui/
 * (docs/dashboard.md): the page's static files, embedded at build time from
 * scheduler/ui/ (scripts/embed_ui.sh), and each drift job's HTML report at
 * /ui/drift/ID.  The page reads everything else from the JSON API. */
#ifndef KILN_SCHEDULER_ROUTES_UI_H
#define KILN_SCHEDULER_ROUTES_UI_H

#include <jansson.h>
#include <stddef.h>

#include "api/httpd.h"
#include "core/kiln_err.h"

struct kd;

typedef struct {
    const char *path;           /* "/ui/index.html" */
    const char *content_type;
    const char *bytes;          /* NUL-terminated, len bytes before the NUL */
    size_t      len;
} ks_ui_asset_t;

/* The embedded files, ended by an entry whose path is NULL (generated). */
extern const ks_ui_asset_t ks_ui_assets[];

/* The file GET path serves: "/ui", "/ui/" are index.html; NULL when none.
 * Borrowed (static). */
const ks_ui_asset_t *ks_ui_asset_find(const char *path);

/* The report a drift job's spec names: "report", else "output" with a
 * ".json" ending replaced by ".html", or ".html" appended to any other
 * (the rule jobs/type_drift.c writes the report by).  Only such a path is ever
 * served: it must end in ".html" or ".htm", so a spec cannot make the
 * dashboard serve an arbitrary file as a page.  0, or KILN_ESPEC (no
 * string "report" or "output", or another suffix) / KILN_EINVAL (longer
 * than cap) with a message naming the field. */
int ks_ui_drift_report_path(const json_t *spec, char *buf, size_t cap, kiln_err_t *err);

/* GET /ui, /ui/..., /ui/drift/ID: 1 when it answered req (on kilnd's loop
 * thread, like every route), 0 when the path is not the dashboard's. */
int kd_route_ui(struct kd *kd, ka_req_t *req);

#endif
