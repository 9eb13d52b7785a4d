/* state_models.c - the model registry in the state store (registry.h). */
#include "storage/registry.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/kiln_alloc.h"
#include "storage/state_int.h"

/* Names: letters, digits, '.', '_', '-'; aliases also not all digits, so
 * that "NAME@3" is always a version and "NAME@production" an alias. */
static int check_name(const char *v, const char *what, int alias, kiln_err_t *err)
{
    size_t n = v ? strlen(v) : 0;
    int digits = 1;
    if (n == 0 || n >= ST_NAME_MAX)
        return kiln_err_at(err, KILN_EINVAL, what, "%s: must be 1 to %d characters", what,
                           ST_NAME_MAX - 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)v[i];
        if (!isalnum(c) && c != '.' && c != '_' && c != '-')
            return kiln_err_at(err, KILN_EINVAL, what,
                               "%s: \"%s\" may hold only letters, digits, '.', '_' and '-'", what,
                               v);
        digits &= isdigit(c) != 0;
    }
    if (alias && digits)
        return kiln_err_at(err, KILN_EINVAL, what, "%s: \"%s\" is a number, not an alias name",
                           what, v);
    return 0;
}

/* ---- runs */

int st_registry_run_insert(st_state_t *st, const st_run_t *r, int64_t *id, kiln_err_t *err)
{
    if (!st || !r || !id)
        return kiln_err_set(err, KILN_EINVAL, "run insert: NULL argument");
    int rc = check_name(r->model_name, "model", 0, err);
    if (rc < 0)
        return rc;
    const char *text[] = {r->kind, r->params_json, r->dataset_sha256, r->featspec_sha256,
                          r->code_version, r->metrics_json, r->artifact_sha256};
    for (size_t i = 0; i < sizeof text / sizeof text[0]; i++)
        if (!text[i])
            return kiln_err_set(err, KILN_EINVAL, "run of \"%s\": a field is missing",
                                r->model_name);
    sqlite3_stmt *s = st->q[Q_RUN_INSERT];
    BIND(sqlite3_bind_int64(s, 1, r->job_id), "recording run");
    BIND(st_sq_bind_text(s, 2, r->model_name), "recording run");
    BIND(st_sq_bind_text(s, 3, r->kind), "recording run");
    BIND(st_sq_bind_text(s, 4, r->params_json), "recording run");
    BIND(sqlite3_bind_int64(s, 5, r->seed), "recording run");
    BIND(st_sq_bind_text(s, 6, r->dataset_sha256), "recording run");
    BIND(st_sq_bind_text(s, 7, r->featspec_sha256), "recording run");
    BIND(st_sq_bind_text(s, 8, r->code_version), "recording run");
    BIND(st_sq_bind_text(s, 9, r->metrics_json), "recording run");
    BIND(sqlite3_bind_double(s, 10, r->duration_s), "recording run");
    BIND(sqlite3_bind_int(s, 11, r->accepted ? 1 : 0), "recording run");
    BIND(st_sq_bind_text(s, 12, r->artifact_sha256), "recording run");
    BIND(sqlite3_bind_int64(s, 13, r->created_ns), "recording run");
    if ((rc = st_sq_run_done(st, s, err, "recording run")) < 0)
        return rc;
    *id = sqlite3_last_insert_rowid(st->db);
    return 0;
}

static void run_from_row(sqlite3_stmt *s, st_run_t *r)
{
    memset(r, 0, sizeof *r);
    r->id = sqlite3_column_int64(s, 0);
    r->job_id = sqlite3_column_int64(s, 1);
    r->model_name = (char *)sqlite3_column_text(s, 2);
    r->kind = (char *)sqlite3_column_text(s, 3);
    r->params_json = (char *)sqlite3_column_text(s, 4);
    r->seed = sqlite3_column_int64(s, 5);
    r->dataset_sha256 = (char *)sqlite3_column_text(s, 6);
    r->featspec_sha256 = (char *)sqlite3_column_text(s, 7);
    r->code_version = (char *)sqlite3_column_text(s, 8);
    r->metrics_json = (char *)sqlite3_column_text(s, 9);
    r->duration_s = sqlite3_column_double(s, 10);
    r->accepted = sqlite3_column_int(s, 11);
    r->artifact_sha256 = (char *)sqlite3_column_text(s, 12);
    r->created_ns = sqlite3_column_int64(s, 13);
}

void st_registry_run_free(st_run_t *r)
{
    if (!r)
        return;
    char **f[] = {&r->model_name, &r->kind, &r->params_json, &r->dataset_sha256,
                  &r->featspec_sha256, &r->code_version, &r->metrics_json, &r->artifact_sha256};
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
        kiln_free(*f[i]);
        *f[i] = NULL;
    }
}

int st_registry_run_get(st_state_t *st, int64_t id, st_run_t *out, kiln_err_t *err)
{
    if (!st || !out)
        return kiln_err_set(err, KILN_EINVAL, "run get: NULL argument");
    sqlite3_stmt *s = st->q[Q_RUN_GET];
    BIND(sqlite3_bind_int64(s, 1, id), "reading run");
    int rc = sqlite3_step(s), ret = 0;
    if (rc == SQLITE_ROW) {
        st_run_t r;
        run_from_row(s, &r);
        *out = r;
        char **f[] = {&out->model_name, &out->kind, &out->params_json, &out->dataset_sha256,
                      &out->featspec_sha256, &out->code_version, &out->metrics_json,
                      &out->artifact_sha256};
        for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
            if (*f[i] && !(*f[i] = kiln_strdup(*f[i])))
                ret = KILN_ENOMEM;
        if (ret < 0) {
            st_registry_run_free(out);
            ret = kiln_err_set(err, KILN_ENOMEM, "run %lld: out of memory", (long long)id);
        }
    } else if (rc == SQLITE_DONE) {
        ret = kiln_err_set(err, KILN_ENOTFOUND, "run %lld not found", (long long)id);
    } else {
        ret = st_sq_err(st, rc, err, "reading run");
    }
    st_sq_end_stmt(s);
    return ret;
}

/* st_sq_each_row's row function: the row as a run to the caller's cb. */
struct run_visit {
    st_run_cb cb;
    void     *ud;
};

static int run_row(sqlite3_stmt *s, void *ctx)
{
    const struct run_visit *v = ctx;
    st_run_t r;
    run_from_row(s, &r);
    return v->cb(&r, v->ud);
}

int st_registry_run_list(st_state_t *st, const char *model_name, int64_t limit, st_run_cb cb,
                         void *ud, kiln_err_t *err)
{
    if (!st || !cb)
        return kiln_err_set(err, KILN_EINVAL, "run list: NULL argument");
    sqlite3_stmt *s = st->q[Q_RUN_LIST];
    BIND(st_sq_bind_text(s, 1, model_name), "listing runs");
    BIND(sqlite3_bind_int64(s, 2, limit > 0 ? limit : -1), "listing runs");
    struct run_visit v = {cb, ud};
    return st_sq_each_row(st, s, run_row, &v, err, "listing runs");
}

/* ---- models */

/* One integer from a one-row query with a text first parameter (and an
 * optional second); *found 0 when it gave NULL or no row. */
static int int_query(st_state_t *st, int q, const char *a, const char *b, int64_t *out,
                     int *found, kiln_err_t *err, const char *op)
{
    sqlite3_stmt *s = st->q[q];
    BIND(st_sq_bind_text(s, 1, a), op);
    if (b)
        BIND(st_sq_bind_text(s, 2, b), op);
    int rc = sqlite3_step(s), ret = 0;
    *found = 0;
    if (rc == SQLITE_ROW && sqlite3_column_type(s, 0) != SQLITE_NULL) {
        *out = sqlite3_column_int64(s, 0);
        *found = 1;
    } else if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        ret = st_sq_err(st, rc, err, op);
    }
    st_sq_end_stmt(s);
    return ret;
}

int st_registry_model_add(st_state_t *st, const char *name, int64_t run_id,
                          const char *artifact_sha256, int64_t now_ns, int64_t *version,
                          kiln_err_t *err)
{
    if (!st || !version || !artifact_sha256)
        return kiln_err_set(err, KILN_EINVAL, "model add: NULL argument");
    int rc = check_name(name, "model", 0, err);
    if (rc < 0)
        return rc;
    if ((rc = st_sq_sp_begin(st, err)) < 0)
        return rc;
    int64_t v = 1;
    int found;
    rc = int_query(st, Q_MODEL_NEXT, name, NULL, &v, &found, err, "numbering model");
    if (rc == 0) {
        sqlite3_stmt *s = st->q[Q_MODEL_INSERT];
        int brc;
        if ((brc = st_sq_bind_text(s, 1, name)) != SQLITE_OK ||
            (brc = sqlite3_bind_int64(s, 2, v)) != SQLITE_OK ||
            (brc = sqlite3_bind_int64(s, 3, run_id)) != SQLITE_OK ||
            (brc = st_sq_bind_text(s, 4, artifact_sha256)) != SQLITE_OK ||
            (brc = sqlite3_bind_int64(s, 5, now_ns)) != SQLITE_OK) {
            rc = st_sq_err(st, brc, err, "adding model");
            st_sq_end_stmt(s);
        } else {
            rc = st_sq_run_done(st, s, err, "adding model");
        }
    }
    if (rc == 0)
        *version = v;
    return st_sq_sp_end(st, rc, err);
}

static int model_get(st_state_t *st, const char *name, int64_t version, st_model_t *out,
                     kiln_err_t *err)
{
    sqlite3_stmt *s = st->q[Q_MODEL_GET];
    BIND(st_sq_bind_text(s, 1, name), "reading model");
    BIND(sqlite3_bind_int64(s, 2, version), "reading model");
    int rc = sqlite3_step(s), ret = 0;
    if (rc == SQLITE_ROW) {
        memset(out, 0, sizeof *out);
        snprintf(out->name, sizeof out->name, "%s", (const char *)sqlite3_column_text(s, 0));
        out->version = sqlite3_column_int64(s, 1);
        out->run_id = sqlite3_column_int64(s, 2);
        snprintf(out->artifact_sha256, sizeof out->artifact_sha256, "%s",
                 (const char *)sqlite3_column_text(s, 3));
        out->created_ns = sqlite3_column_int64(s, 4);
    } else if (rc == SQLITE_DONE) {
        ret = kiln_err_set(err, KILN_ENOTFOUND, "model %s has no version %lld", name,
                           (long long)version);
    } else {
        ret = st_sq_err(st, rc, err, "reading model");
    }
    st_sq_end_stmt(s);
    return ret;
}

int st_registry_model_resolve(st_state_t *st, const char *ref, st_model_t *out, kiln_err_t *err)
{
    if (!st || !ref || !out)
        return kiln_err_set(err, KILN_EINVAL, "model resolve: NULL argument");
    char name[ST_NAME_MAX];
    const char *at = strchr(ref, '@');
    size_t n = at ? (size_t)(at - ref) : strlen(ref);
    if (n >= sizeof name)
        return kiln_err_at(err, KILN_EINVAL, "model", "model: \"%.40s...\" is too long", ref);
    memcpy(name, ref, n);
    name[n] = '\0';
    int rc = check_name(name, "model", 0, err);
    if (rc < 0)
        return rc;
    int64_t version = 0;
    int found = 0;
    if (!at) {
        if ((rc = int_query(st, Q_MODEL_LATEST, name, NULL, &version, &found, err,
                            "reading model")) < 0)
            return rc;
        if (!found)
            return kiln_err_set(err, KILN_ENOTFOUND, "model %s not found", name);
    } else if (at[1] >= '0' && at[1] <= '9') {
        char *end;
        errno = 0;
        long long v = strtoll(at + 1, &end, 10);
        if (errno || *end || v < 1)
            return kiln_err_at(err, KILN_EINVAL, "model",
                               "model: \"%s\": a version is a whole number from 1", ref);
        version = v;
    } else {
        if ((rc = check_name(at + 1, "alias", 1, err)) < 0)
            return rc;
        if ((rc = int_query(st, Q_ALIAS_GET, name, at + 1, &version, &found, err,
                            "reading alias")) < 0)
            return rc;
        if (!found)
            return kiln_err_set(err, KILN_ENOTFOUND, "model %s has no alias \"%s\"", name,
                                at + 1);
    }
    return model_get(st, name, version, out, err);
}

int st_registry_model_list(st_state_t *st, st_model_cb cb, void *ud, kiln_err_t *err)
{
    if (!st || !cb)
        return kiln_err_set(err, KILN_EINVAL, "model list: NULL argument");
    sqlite3_stmt *s = st->q[Q_MODEL_LIST];
    int rc, ret = 0;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW)
        if (cb((const char *)sqlite3_column_text(s, 0), sqlite3_column_int64(s, 1),
               sqlite3_column_int64(s, 2), ud))
            break;
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        ret = st_sq_err(st, rc, err, "listing models");
    st_sq_end_stmt(s);
    return ret;
}

/* ---- aliases */

static int alias_write(st_state_t *st, int q, const char *name, const char *alias,
                       int64_t version, int64_t now_ns, kiln_err_t *err)
{
    sqlite3_stmt *s = st->q[q];
    BIND(st_sq_bind_text(s, 1, name), "setting alias");
    BIND(st_sq_bind_text(s, 2, alias), "setting alias");
    BIND(sqlite3_bind_int64(s, 3, version), "setting alias");
    BIND(sqlite3_bind_int64(s, 4, now_ns), "setting alias");
    return st_sq_run_done(st, s, err, "setting alias");
}

int st_registry_alias_set(st_state_t *st, const char *name, const char *alias, int64_t version,
                          int64_t now_ns, kiln_err_t *err)
{
    if (!st)
        return kiln_err_set(err, KILN_EINVAL, "alias set: NULL handle");
    int rc;
    st_model_t m;
    if ((rc = check_name(name, "model", 0, err)) < 0 ||
        (rc = check_name(alias, "alias", 1, err)) < 0 ||
        (rc = model_get(st, name, version, &m, err)) < 0)
        return rc;
    if ((rc = st_sq_sp_begin(st, err)) < 0)
        return rc;
    rc = alias_write(st, Q_ALIAS_SET, name, alias, version, now_ns, err);
    if (rc == 0)
        rc = alias_write(st, Q_ALIAS_HIST_ADD, name, alias, version, now_ns, err);
    return st_sq_sp_end(st, rc, err);
}

int st_registry_alias_rollback(st_state_t *st, const char *name, const char *alias,
                               int64_t now_ns, int64_t *version, kiln_err_t *err)
{
    if (!st || !version)
        return kiln_err_set(err, KILN_EINVAL, "alias rollback: NULL argument");
    int rc;
    if ((rc = check_name(name, "model", 0, err)) < 0 ||
        (rc = check_name(alias, "alias", 1, err)) < 0)
        return rc;
    /* The last two settings: drop the newest, point the alias at the one before. */
    sqlite3_stmt *s = st->q[Q_ALIAS_HIST_LAST];
    BIND(st_sq_bind_text(s, 1, name), "reading alias history");
    BIND(st_sq_bind_text(s, 2, alias), "reading alias history");
    int64_t ids[2] = {0, 0}, vers[2] = {0, 0};
    int n = 0;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW && n < 2) {
        ids[n] = sqlite3_column_int64(s, 0);
        vers[n++] = sqlite3_column_int64(s, 1);
    }
    int ret = rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : st_sq_err(st, rc, err, "reading alias history");
    st_sq_end_stmt(s);
    if (ret < 0)
        return ret;
    if (n < 2)
        return kiln_err_set(err, KILN_ESTATE,
                            "model %s: alias \"%s\" has no earlier version to roll back to", name,
                            alias);
    if ((ret = st_sq_sp_begin(st, err)) < 0)
        return ret;
    s = st->q[Q_ALIAS_HIST_DEL];
    int brc = sqlite3_bind_int64(s, 1, ids[0]);
    ret = brc == SQLITE_OK ? st_sq_run_done(st, s, err, "rolling back alias")
                           : st_sq_err(st, brc, err, "rolling back alias");
    if (brc != SQLITE_OK)
        st_sq_end_stmt(s);
    if (ret == 0)
        ret = alias_write(st, Q_ALIAS_SET, name, alias, vers[1], now_ns, err);
    if (ret == 0)
        *version = vers[1];
    return st_sq_sp_end(st, ret, err);
}

int st_registry_alias_list(st_state_t *st, const char *name, st_alias_cb cb, void *ud,
                           kiln_err_t *err)
{
    if (!st || !cb)
        return kiln_err_set(err, KILN_EINVAL, "alias list: NULL argument");
    sqlite3_stmt *s = st->q[Q_ALIAS_LIST];
    BIND(st_sq_bind_text(s, 1, name), "listing aliases");
    int rc, ret = 0;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW)
        if (cb((const char *)sqlite3_column_text(s, 0), sqlite3_column_int64(s, 1), ud))
            break;
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        ret = st_sq_err(st, rc, err, "listing aliases");
    st_sq_end_stmt(s);
    return ret;
}
