/* child.c - spawning, stopping and reaping task children, and reading their
 * log tails (child.h).  Runs on the worker's loop thread only. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../core/kiln_alloc.h"
#include "../core/kiln_io.h"
#include "child.h"

const char *kw_signal_name(int sig)
{
    switch (sig) {
    case SIGHUP: return "SIGHUP";
    case SIGINT: return "SIGINT";
    case SIGQUIT: return "SIGQUIT";
    case SIGILL: return "SIGILL";
    case SIGTRAP: return "SIGTRAP";
    case SIGABRT: return "SIGABRT";
    case SIGBUS: return "SIGBUS";
    case SIGFPE: return "SIGFPE";
    case SIGKILL: return "SIGKILL";
    case SIGUSR1: return "SIGUSR1";
    case SIGSEGV: return "SIGSEGV";
    case SIGUSR2: return "SIGUSR2";
    case SIGPIPE: return "SIGPIPE";
    case SIGALRM: return "SIGALRM";
    case SIGTERM: return "SIGTERM";
    case SIGXCPU: return "SIGXCPU";
    case SIGXFSZ: return "SIGXFSZ";
    case SIGSYS: return "SIGSYS";
    default: return "signal";
    }
}

size_t kw_one_line(char *dst, size_t cap, const char *src, size_t len)
{
    size_t n = 0;
    if (cap == 0)
        return 0;
    for (size_t i = 0; i < len && n + 1 < cap; i++) {
        unsigned char c = (unsigned char)src[i];
        dst[n++] = c < 0x20 ? ' ' : c > 0x7e ? '?' : (char)c;
    }
    while (n > 0 && dst[n - 1] == ' ')
        n--;
    dst[n] = '\0';
    return n;
}

static void on_handle_closed(uv_handle_t *h)
{
    kw_child_t *c = h->data;
    if (--c->n_open_handles == 0)
        kiln_free(c);
}

static void on_kill_timer(uv_timer_t *t)
{
    kw_child_t *c = t->data;
    if (!c->exited)
        uv_process_kill(&c->proc, SIGKILL);
}

static void on_proc_exit(uv_process_t *p, int64_t exit_status, int term_signal)
{
    kw_child_t *c = p->data;
    c->exited = 1;
    c->exit_status = exit_status;
    c->term_signal = term_signal;
    uv_timer_stop(&c->kill_timer);
    c->on_exit(c, c->arg);
}

int kw_child_start(uv_loop_t *loop, const char *exe, const char *dir, int64_t task_id,
                   const char *lease_id, const char *output, const char *task_json, size_t len,
                   kw_child_exit_fn on_exit, void *arg, kw_child_t **out, kiln_err_t *err)
{
    int rc = 0, log_fd = -1, json_written = 0;
    *out = NULL;
    kw_child_t *c = kiln_calloc(1, sizeof *c);
    if (!c)
        return kiln_err_set(err, KILN_ENOMEM, "task %lld: no memory for a child",
                            (long long)task_id);
    c->task_id = task_id;
    c->on_exit = on_exit;
    c->arg = arg;
    if (strlen(lease_id) >= sizeof c->lease_id || strlen(output) >= sizeof c->output) {
        kiln_free(c);
        return kiln_err_set(err, KILN_EINVAL, "task %lld: lease_id or output too long",
                            (long long)task_id);
    }
    strcpy(c->lease_id, lease_id);
    strcpy(c->output, output);
    if (snprintf(c->json_path, sizeof c->json_path, "%s/task-%lld.json", dir,
                 (long long)task_id) >= (int)sizeof c->json_path ||
        snprintf(c->log_path, sizeof c->log_path, "%s/task-%lld.log", dir,
                 (long long)task_id) >= (int)sizeof c->log_path) {
        rc = kiln_err_set(err, KILN_EINVAL, "%s: worker directory path too long", dir);
        goto fail;
    }

    int fd = open(c->json_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        rc = kiln_err_set(err, KILN_EIO, "%s: %s", c->json_path, strerror(errno));
        goto fail;
    }
    json_written = 1;
    int wrc = kiln_write_all(fd, task_json, len);
    int e = errno;
    if (close(fd) != 0 && wrc == 0) {
        wrc = -1;
        e = errno;
    }
    if (wrc < 0) {
        rc = kiln_err_set(err, KILN_EIO, "%s: %s", c->json_path, strerror(e));
        goto fail;
    }
    log_fd = open(c->log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (log_fd < 0) {
        rc = kiln_err_set(err, KILN_EIO, "%s: %s", c->log_path, strerror(errno));
        goto fail;
    }

    char *args[] = {(char *)exe, "--run-task", c->json_path, NULL};
    uv_stdio_container_t stdio[3] = {
        {.flags = UV_IGNORE},
        {.flags = UV_INHERIT_FD, .data.fd = log_fd},
        {.flags = UV_INHERIT_FD, .data.fd = log_fd},
    };
    uv_process_options_t po = {
        .exit_cb = on_proc_exit,
        .file = exe,
        .args = args,
        .stdio_count = 3,
        .stdio = stdio,
    };
    /* Both handles are initialised before the spawn so that every path,
     * failure included, ends with the same two uv_close calls. */
    uv_timer_init(loop, &c->kill_timer);
    c->kill_timer.data = c;
    c->proc.data = c;
    c->n_open_handles = 2;
    c->start_ns = uv_hrtime();
    int uvrc = uv_spawn(loop, &c->proc, &po);
    close(log_fd);
    log_fd = -1;
    if (uvrc < 0) {
        rc = kiln_err_set(err, KILN_EIO, "task %lld: cannot start %s: %s", (long long)task_id,
                          exe, uv_strerror(uvrc));
        c->exited = 1;
        kw_child_destroy(&c);
        return rc;
    }
    *out = c;
    return 0;
fail:
    if (log_fd >= 0)
        close(log_fd);
    if (json_written)
        unlink(c->json_path);
    unlink(c->log_path);
    kiln_free(c);
    return rc;
}

void kw_child_stop(kw_child_t *c)
{
    if (!c || c->exited || c->stopping)
        return;
    c->stopping = 1;
    uv_process_kill(&c->proc, SIGTERM);
    uv_timer_start(&c->kill_timer, on_kill_timer, KW_CHILD_KILL_MS, 0);
}

/* The last KW_CHILD_TAIL_BYTES of the log, or NULL. */
static char *read_tail(const char *path, size_t *len)
{
    *len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    struct stat st;
    char *buf = NULL;
    if (fstat(fd, &st) != 0 || st.st_size <= 0)
        goto out;
    size_t size = (size_t)st.st_size;
    size_t want = size < KW_CHILD_TAIL_BYTES ? size : KW_CHILD_TAIL_BYTES;
    buf = kiln_malloc(want + 1);
    if (!buf)
        goto out;
    size_t got = 0;
    while (got < want) {
        ssize_t n = pread(fd, buf + got, want - got, (off_t)(size - want + got));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    buf[got] = '\0';
    *len = got;
out:
    close(fd);
    return buf;
}

/* The message of the last KW_ERROR_PREFIX line of the tail, else its last
 * non-blank line, into reason; 0 if there is none. */
static size_t last_line(const char *tail, size_t len, char *reason, size_t cap)
{
    const char *best = NULL, *last = NULL;
    size_t best_len = 0, last_len = 0;
    size_t plen = strlen(KW_ERROR_PREFIX);
    size_t i = 0;
    while (i < len) {
        size_t j = i;
        while (j < len && tail[j] != '\n')
            j++;
        size_t k = i;
        while (k < j && (tail[k] == ' ' || tail[k] == '\t' || tail[k] == '\r'))
            k++;
        if (k < j) {
            last = tail + i;
            last_len = j - i;
            if (j - i > plen && memcmp(tail + i, KW_ERROR_PREFIX, plen) == 0) {
                best = tail + i + plen;
                best_len = j - i - plen;
            }
        }
        i = j + 1;
    }
    if (best)
        return kw_one_line(reason, cap, best, best_len);
    if (last)
        return kw_one_line(reason, cap, last, last_len);
    return 0;
}

void kw_child_result(const kw_child_t *c, kw_child_result_t *r)
{
    memset(r, 0, sizeof *r);
    r->tail = read_tail(c->log_path, &r->tail_len);
    char line[900] = "";
    size_t n_line = r->tail ? last_line(r->tail, r->tail_len, line, sizeof line) : 0;

    if (c->stopping) {
        r->code = "cancelled";
        snprintf(r->reason, sizeof r->reason, "task %lld cancelled", (long long)c->task_id);
    } else if (c->term_signal != 0) {
        r->code = "signal";
        snprintf(r->reason, sizeof r->reason, "killed by signal %d (%s)", c->term_signal,
                 kw_signal_name(c->term_signal));
    } else if (c->exit_status == KW_EXIT_OK) {
        r->code = NULL;
    } else if (c->exit_status == KW_EXIT_NOMEM) {
        r->code = "out_of_memory";
        snprintf(r->reason, sizeof r->reason, "%s", n_line ? line : "out of memory");
    } else if (c->exit_status == KW_EXIT_ERROR && n_line) {
        r->code = "error";
        snprintf(r->reason, sizeof r->reason, "%s", line);
    } else {
        r->code = "error";
        snprintf(r->reason, sizeof r->reason, "exit status %lld%s%s", (long long)c->exit_status,
                 n_line ? ": " : "", line);
    }
}

void kw_child_result_free(kw_child_result_t *r)
{
    kiln_free(r->tail);
    r->tail = NULL;
    r->tail_len = 0;
}

void kw_child_destroy(kw_child_t **cp)
{
    if (!cp || !*cp)
        return;
    kw_child_t *c = *cp;
    *cp = NULL;
    if (!c->exited)
        uv_process_kill(&c->proc, SIGKILL);
    unlink(c->json_path);
    unlink(c->log_path);
    uv_close((uv_handle_t *)&c->kill_timer, on_handle_closed);
    uv_close((uv_handle_t *)&c->proc, on_handle_closed);
}
