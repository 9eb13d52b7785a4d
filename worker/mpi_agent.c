/* mpi_agent.c - `kiln-worker --mpi-agent HOST WORD...` (gang.h): Open MPI's
 * launch agent in place of ssh.  mpirun calls it as it would call
 * `ssh HOST WORD...`: the words are a shell command line that starts
 * mpirun's daemon (orted) on HOST.  HOST is a kiln worker's id; the command
 * goes to kilnd, which hands it to that worker's holder task of the same
 * gang.  The agent returns once kilnd has passed it on: the daemon stays
 * attached to the holder, not to this process. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "../cluster/frames.h"
#include "../core/kiln_alloc.h"
#include "gang.h"

#define AGENT_WAIT_MS 30000

static int fail(const char *host, const char *fmt, const char *what)
{
    fprintf(stderr, "kiln-worker --mpi-agent %s: ", host);
    fprintf(stderr, fmt, what);
    fprintf(stderr, "\n");
    return 1;
}

/* The words after HOST, joined by spaces (kiln_malloc'd). */
static char *join(int argc, char **argv)
{
    size_t len = 1;
    for (int i = 0; i < argc; i++)
        len += strlen(argv[i]) + 1;
    char *s = kiln_malloc(len);
    if (!s)
        return NULL;
    s[0] = '\0';
    for (int i = 0; i < argc; i++) {
        if (i)
            strcat(s, " ");
        strcat(s, argv[i]);
    }
    return s;
}

static int send_and_wait(void *sock, const char *host, const char *job, const char *lease,
                         const char *cmd)
{
    kiln_err_t err;
    char *end;
    long long job_id = strtoll(job, &end, 10);
    if (*end || job_id < 0)
        return fail(host, "KILN_AGENT_JOB \"%s\" is not a job id", job);
    kc_msg_t *m = kc_msg_new(KC_MSG_EXEC, json_pack("{s:I, s:s, s:s, s:s}", "job_id",
                                                     (json_int_t)job_id, "lease_id", lease,
                                                     "host", host, "command", cmd));
    if (!m)
        return fail(host, "%s", "out of memory");
    int rc = kc_frames_send(sock, m, NULL, &err);
    kc_msg_destroy(&m);
    if (rc < 0)
        return fail(host, "sending to kilnd: %s", err.msg);
    zmq_pollitem_t pi = {sock, 0, ZMQ_POLLIN, 0};
    if (zmq_poll(&pi, 1, AGENT_WAIT_MS) <= 0)
        return fail(host, "%s", "no answer from kilnd in 30 s");
    kc_msg_t *r = NULL;
    if (kc_frames_recv(sock, 0, &r, NULL, &err) < 0 || !r)
        return fail(host, "reading kilnd's answer: %s", err.msg);
    const char *status = json_string_value(json_object_get(r->body, "status"));
    const char *reason = json_string_value(json_object_get(r->body, "reason"));
    int ok = r->type == KC_MSG_EXEC_REPLY && status && !strcmp(status, "ok");
    if (!ok)
        fail(host, "kilnd refused: %s", reason ? reason : "(no reason)");
    kc_msg_destroy(&r);
    return ok ? 0 : 1;
}

int kw_mpi_agent_main(int argc, char **argv)
{
    /* argv: exe --mpi-agent HOST WORD... */
    if (argc < 4) {
        fprintf(stderr, "usage: kiln-worker --mpi-agent HOST COMMAND...  (Open MPI's "
                        "plm_rsh_agent, set by a gang's launcher task)\n");
        return 2;
    }
    const char *host = argv[2];
    const char *endpoint = getenv("KILN_AGENT_ENDPOINT");
    const char *job = getenv("KILN_AGENT_JOB");
    const char *lease = getenv("KILN_AGENT_LEASE");
    if (!endpoint || !job || !lease)
        return fail(host, "%s", "KILN_AGENT_ENDPOINT, KILN_AGENT_JOB and KILN_AGENT_LEASE must "
                                "be set (a gang's launcher task sets them for mpirun)");
    char *cmd = join(argc - 3, argv + 3);
    if (!cmd)
        return fail(host, "%s", "out of memory");
    void *ctx = zmq_ctx_new();
    void *sock = ctx ? zmq_socket(ctx, ZMQ_DEALER) : NULL;
    int rc = 1;
    char id[64];
    snprintf(id, sizeof id, "mpi-agent-%ld-%s", (long)getpid(), host);
    const int linger = 1000;
    kiln_err_t err;
    if (!sock || kc_frames_socket_setup(sock, &err) < 0 ||
        zmq_setsockopt(sock, ZMQ_ROUTING_ID, id, strnlen(id, KC_ROUTING_ID_MAX)) != 0 ||
        zmq_setsockopt(sock, ZMQ_LINGER, &linger, sizeof linger) != 0 ||
        zmq_connect(sock, endpoint) != 0)
        rc = fail(host, "cannot connect to %s", endpoint);
    else
        rc = send_and_wait(sock, host, job, lease, cmd);
    if (sock)
        zmq_close(sock);
    if (ctx)
        zmq_ctx_term(ctx);
    kiln_free(cmd);
    return rc;
}
