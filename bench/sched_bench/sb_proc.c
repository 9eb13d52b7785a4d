/* sb_proc.c - sched_bench's processes (sb_proc.h): kilnd and the workers
 * started with posix_spawn, watched, stopped (SIGTERM, then SIGKILL) and
 * reaped; their CPU time from /proc; the clocks and the one error printer. */
#include "bench/sched_bench/sb_proc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define STOP_GRACE_S     5.0    /* SIGTERM, then SIGKILL */

volatile sig_atomic_t sb_interrupted;

void sb_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("sched_bench: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

int64_t sb_now_real_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

double sb_now_mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void sb_sleep_ms(double ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)((ms - 1000.0 * (double)(time_t)(ms / 1000)) * 1e6)};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR && !sb_interrupted)
        ;
}

int sb_spawn(sb_proc_t *p, const char *name, char *const argv[], const char *log_path)
{
    posix_spawn_file_actions_t fa;
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "%s", name);
    snprintf(p->log, sizeof p->log, "%s", log_path);
    if (posix_spawn_file_actions_init(&fa) != 0)
        return -1;
    posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, log_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&fa, STDOUT_FILENO, STDERR_FILENO);
    int rc = posix_spawn(&p->pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) {
        sb_fail("cannot start %s (%s): %s", name, argv[0], strerror(rc));
        p->pid = 0;
        return -1;
    }
    return 0;
}

/* 1 while the process runs, 0 once it has exited (reaped here). */
int sb_alive(sb_proc_t *p)
{
    if (!p->pid || p->reaped)
        return 0;
    pid_t r = waitpid(p->pid, &p->status, WNOHANG);
    if (r == p->pid) {
        p->reaped = 1;
        return 0;
    }
    return 1;
}

void sb_describe_exit(const sb_proc_t *p, char *out, size_t cap)
{
    if (WIFEXITED(p->status))
        snprintf(out, cap, "exited with status %d", WEXITSTATUS(p->status));
    else if (WIFSIGNALED(p->status))
        snprintf(out, cap, "killed by signal %d", WTERMSIG(p->status));
    else
        snprintf(out, cap, "ended (status 0x%x)", p->status);
}

void sb_show_log_tail(const sb_proc_t *p)
{
    FILE *f = fopen(p->log, "r");
    if (!f)
        return;
    char buf[2048];
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, sz > (long)sizeof buf - 1 ? sz - (long)sizeof buf + 1 : 0, SEEK_SET);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    fprintf(stderr, "---- tail of %s's log (%s) ----\n%s%s", p->name, p->log, buf,
            n && buf[n - 1] != '\n' ? "\n" : "");
}

/* utime + stime of a live process (all its threads), in seconds; -1 when unreadable. */
double sb_proc_cpu_s(pid_t pid)
{
    char path[64], buf[4096];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    unsigned long long ut, st;
    char state;
    if (!p || sscanf(p + 2, "%c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &state, &ut,
                     &st) != 3)
        return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* SIGTERM to all, SIGKILL to those still there after STOP_GRACE_S; all reaped. */
void sb_stop_all(sb_proc_t *ps, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (sb_alive(&ps[i]))
            kill(ps[i].pid, SIGTERM);
    double deadline = sb_now_mono_s() + STOP_GRACE_S;
    for (;;) {
        int any = 0;
        for (size_t i = 0; i < n; i++)
            any |= sb_alive(&ps[i]);
        if (!any)
            return;
        if (sb_now_mono_s() > deadline)
            break;
        sb_sleep_ms(10);
    }
    for (size_t i = 0; i < n; i++)
        if (sb_alive(&ps[i])) {
            sb_fail("%s (pid %d) still running %.0f s after SIGTERM: SIGKILL", ps[i].name,
                    (int)ps[i].pid, STOP_GRACE_S);
            kill(ps[i].pid, SIGKILL);
            if (waitpid(ps[i].pid, &ps[i].status, 0) == ps[i].pid)
                ps[i].reaped = 1;
        }
}

void sb_remove_tree(const char *path)
{
    DIR *d = opendir(path);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
                continue;
            char sub[4096];
            snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
            struct stat st;
            if (lstat(sub, &st) == 0 && S_ISDIR(st.st_mode))
                sb_remove_tree(sub);
            else
                unlink(sub);
        }
        closedir(d);
    }
    if (rmdir(path) < 0 && errno != ENOENT)
        sb_fail("cannot remove %s: %s", path, strerror(errno));
}
