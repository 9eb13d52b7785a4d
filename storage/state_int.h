/* state_int.h - what the state store's files share and nothing outside
 * storage/state*.c may use: the handle, the prepared-statement ids and the
 * SQLite error and statement helpers (state.c). */
#ifndef KILN_STORAGE_STATE_INT_H
#define KILN_STORAGE_STATE_INT_H

#include <sqlite3.h>

#include "storage/state.h"

enum {
    Q_BEGIN, Q_COMMIT, Q_ROLLBACK, Q_SAVEPOINT, Q_RELEASE, Q_ROLLBACK_TO,
    Q_JOB_BY_KEY, Q_JOB_INSERT, Q_DEP_INSERT, Q_JOB_EXISTS, Q_JOB_GET, Q_DEPS_GET,
    Q_JOB_LIST, Q_JOB_STATE, Q_JOB_SET_STATE, Q_JOB_COUNT,
    Q_TASK_INSERT, Q_TASK_CLAIM, Q_TASK_GET_STATE, Q_TASK_FINISH, Q_TASK_REQUEUE, Q_TASK_LIST,
    Q_TASK_REQUEUE_ONE, Q_TASK_CANCEL_JOB, Q_JOB_SET_ATTEMPTS, Q_JOB_INSTANCES, Q_JOB_CHILDREN,
    Q_CACHE_PUT, Q_CACHE_DONE, Q_CACHE_FIND,
    Q_RUN_INSERT, Q_RUN_GET, Q_RUN_LIST, Q_MODEL_NEXT, Q_MODEL_INSERT, Q_MODEL_GET,
    Q_MODEL_LATEST, Q_MODEL_LIST, Q_ALIAS_GET, Q_ALIAS_SET, Q_ALIAS_HIST_ADD, Q_ALIAS_HIST_LAST,
    Q_ALIAS_HIST_DEL, Q_ALIAS_LIST,
    Q_SCHED_PUT, Q_SCHED_GET, Q_SCHED_SET,
    Q_WORKER_HELLO, Q_WORKER_BEAT, Q_WORKER_LOST, Q_WORKER_GET,
    Q_N
};

/* Statements of state_fleets.c, prepared on first use (st_fleet_stmt). */
#define ST_FQ_MAX 48

struct st_state {
    sqlite3      *db;
    char         *path;
    sqlite3_stmt *q[Q_N];
    sqlite3_stmt *fq[ST_FQ_MAX];
};

/* SQLite rc and message -> kiln error naming path and op. */
int  st_sq_err(st_state_t *st, int rc, kiln_err_t *err, const char *op);
/* Steps a statement that returns no rows, then resets it. */
int  st_sq_run_done(st_state_t *st, sqlite3_stmt *s, kiln_err_t *err, const char *op);
void st_sq_end_stmt(sqlite3_stmt *s);
/* Steps s (bound) through its rows, calling row(s, ctx) on each until it
 * returns non-zero; then resets s.  op names the work in errors. */
typedef int (*st_sq_row_fn)(sqlite3_stmt *s, void *ctx);
int  st_sq_each_row(st_state_t *st, sqlite3_stmt *s, st_sq_row_fn row, void *ctx,
                    kiln_err_t *err, const char *op);
int  st_sq_bind_text(sqlite3_stmt *s, int i, const char *v);
/* A savepoint makes each multi-statement change atomic, in or out of a
 * caller's transaction: begin, then end with the change's return code. */
int  st_sq_sp_begin(st_state_t *st, kiln_err_t *err);
int  st_sq_sp_end(st_state_t *st, int ret, kiln_err_t *err);

/* A job row (columns JOB_COLS) with borrowed strings (state_jobs.c). */
int  st_sq_job_from_row(st_state_t *st, sqlite3_stmt *s, st_state_job_t *j, kiln_err_t *err);

/* Steps s (bound) through its job rows, calling cb on each until it
 * returns non-zero; then resets s.  op names the work in errors. */
int  st_sq_job_rows(st_state_t *st, sqlite3_stmt *s, st_state_job_cb cb, void *ud,
                    kiln_err_t *err, const char *op);

/* Index of a state name, or -1. */
int  st_sq_status_lookup(const char *name);

static inline int st_sq_nonempty(const char *v) { return v && v[0]; }

/* Checks a bind's rc (only SQLITE_NOMEM / TOOBIG / RANGE can come back). */
#define BIND(expr, op)                                      \
    do {                                                    \
        int brc_ = (expr);                                  \
        if (brc_ != SQLITE_OK) {                            \
            int r_ = st_sq_err(st, brc_, err, op);             \
            st_sq_end_stmt(s);                                    \
            return r_;                                      \
        }                                                   \
    } while (0)

#endif
