/* sb_proc.h - sched_bench's child processes (kilnd, kiln-worker): started
 * with their output to a log, watched, stopped and reaped; their CPU time;
 * and the clocks, sleeps and error line the whole benchmark uses. */
#ifndef KILN_BENCH_SB_PROC_H
#define KILN_BENCH_SB_PROC_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Set by the signal handler (SIGINT, SIGTERM, SIGHUP): every wait stops. */
extern volatile sig_atomic_t sb_interrupted;

typedef struct {
    pid_t pid;
    int   reaped;
    int   status;
    char  name[32];
    char  log[1200];
} sb_proc_t;

/* "sched_bench: " + the message + newline, to stderr. */
void sb_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int64_t sb_now_real_ns(void);
double sb_now_mono_s(void);
/* Sleeps ms, resumed after a signal unless sb_interrupted. */
void sb_sleep_ms(double ms);

/* argv[0] with stdin /dev/null and stdout+stderr to log_path; -1 with a
 * message when it cannot start. */
int sb_spawn(sb_proc_t *p, const char *name, char *const argv[], const char *log_path);
/* 1 while the process runs, 0 once it has exited (reaped here). */
int sb_alive(sb_proc_t *p);
void sb_describe_exit(const sb_proc_t *p, char *out, size_t cap);
/* The last 2 KiB of the process's log, to stderr. */
void sb_show_log_tail(const sb_proc_t *p);
/* utime + stime of a live process (all its threads), in seconds; -1 when unreadable. */
double sb_proc_cpu_s(pid_t pid);
/* SIGTERM to all, SIGKILL to those still there after 5 s; all reaped. */
void sb_stop_all(sb_proc_t *ps, size_t n);
/* rm -r path (not following symlinks). */
void sb_remove_tree(const char *path);

#endif
