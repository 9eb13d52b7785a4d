/* child.h - one task run in a child process (`kiln-worker --run-task FILE`,
 * started with uv_spawn: the worker holds a ZeroMQ context, so no bare fork),
 * its stop (SIGTERM, then SIGKILL after KW_CHILD_KILL_MS), and how its exit
 * and log turn into an outcome (docs/cluster.md, "Running a task").
 *
 * Files, in the worker's directory: task-<id>.json (the task message's body,
 * which the child reads) and task-<id>.log (the child's stdout and stderr);
 * kw_child_destroy removes both. */
#ifndef KW_CHILD_H
#define KW_CHILD_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "../cluster/frames.h"
#include "../core/kiln_err.h"

#define KW_CHILD_KILL_MS    2000                 /* SIGTERM to SIGKILL */
#define KW_CHILD_TAIL_BYTES ((size_t)64 << 10)   /* log tail sent back */
#define KW_CHILD_PATH_MAX   1200

/* Exit codes of `--run-task` (runtask.h). */
enum { KW_EXIT_OK = 0, KW_EXIT_ERROR = 2, KW_EXIT_NOMEM = 3 };

/* The last stderr line of a failing child starts with this. */
#define KW_ERROR_PREFIX "kiln-worker: error: "

typedef struct kw_child kw_child_t;

/* Called once, from the loop, when the child has exited; exit_status and
 * term_signal are set.  The callee owns the child from then on and ends
 * with kw_child_destroy. */
typedef void (*kw_child_exit_fn)(kw_child_t *child, void *arg);

struct kw_child {
    int64_t     task_id;
    char        lease_id[KC_STRING_MAX_BYTES + 1];   /* as kilnd sent them */
    char        output[KC_STRING_MAX_BYTES + 1];
    uint64_t    start_ns;      /* uv_hrtime at spawn */
    int         stopping;      /* kw_child_stop was called */
    int         gpu;           /* the CUDA device the task holds (its owner's), -1: none */
    char        type[32];      /* the job type, and the cores it asked for (its owner's, */
    int         cores;         /* for /metrics) */
    int64_t     exit_status;   /* valid after exit */
    int         term_signal;   /* 0 unless killed by a signal */
    kw_child_t *next;          /* for the owner's list */

    /* private to child.c */
    uv_process_t     proc;
    uv_timer_t       kill_timer;
    int              n_open_handles;
    int              exited;
    kw_child_exit_fn on_exit;
    void            *arg;
    char             json_path[KW_CHILD_PATH_MAX];
    char             log_path[KW_CHILD_PATH_MAX];
};

/* Writes task_json (len bytes) to DIR/task-<id>.json and spawns
 * `exe --run-task DIR/task-<id>.json` with stdout and stderr to
 * DIR/task-<id>.log.  On success *out is the running child (owned by the
 * caller, destroyed with kw_child_destroy once on_exit has run); on failure
 * nothing is left behind. */
int kw_child_start(uv_loop_t *loop, const char *exe, const char *dir, int64_t task_id,
                   const char *lease_id, const char *output, const char *task_json, size_t len,
                   kw_child_exit_fn on_exit, void *arg, kw_child_t **out, kiln_err_t *err);

/* SIGTERM now, SIGKILL after KW_CHILD_KILL_MS if it is still alive.
 * Harmless once it has exited or when called twice. */
void kw_child_stop(kw_child_t *child);

/* What an exited child's outcome is. */
typedef struct {
    const char *code;          /* NULL: done; else "error", "signal", "out_of_memory", "cancelled" */
    char        reason[1024];  /* one line, printable ASCII, never empty when code is set */
    char       *tail;          /* kiln_malloc'd last <= KW_CHILD_TAIL_BYTES of the log, or NULL */
    size_t      tail_len;
} kw_child_result_t;

/* Fills r from the exit and the log (an unreadable log leaves tail NULL).
 * Free with kw_child_result_free. */
void kw_child_result(const kw_child_t *child, kw_child_result_t *r);
void kw_child_result_free(kw_child_result_t *r);

/* Removes the child's files and closes its handles; the memory goes when
 * libuv has closed them.  Sets *child to NULL; NULL is harmless.  Call only
 * after on_exit (a running child is killed first, with SIGKILL). */
void kw_child_destroy(kw_child_t **child);

/* "SIGSEGV" and so on, or "signal" for one not in the table. */
const char *kw_signal_name(int sig);

/* Copies src into dst[cap] as one line of printable ASCII (control bytes
 * become spaces, bytes above 0x7e '?', trailing blanks dropped), so it is
 * valid JSON text and a valid frames string; returns strlen(dst). */
size_t kw_one_line(char *dst, size_t cap, const char *src, size_t len);

#endif
