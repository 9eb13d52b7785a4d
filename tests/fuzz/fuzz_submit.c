/* fuzz_submit.c - libFuzzer target: any bytes POSTed as a job to the
 * scheduler (ks_sched_submit on a real state store).  A spec is accepted or
 * refused with a message; an accepted one can be shown and cancelled; an
 * input never crashes, leaks or corrupts what the store already holds. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/kiln_alloc.h"
#include "scheduler/sched.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static st_state_t *st;
static ks_sched_t *sched;
static char dir[] = "/tmp/kiln_fuzz_submit_XXXXXX";

static void cleanup(void)
{
    ks_sched_close(&sched);
    st_state_close(&st);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "fuzz_submit: could not remove %s\n", dir);
}

static void on_send(void *ud, const char *w, kc_msg_type_t t, char *json, size_t len)
{
    (void)ud, (void)w, (void)t, (void)len;
    kiln_free(json);
}

static void on_finish(void *ud, int64_t id, const jb_type_t *type, const void *parsed,
                      const char *const *outs, size_t n, const char *final_output)
{
    (void)ud, (void)type, (void)parsed, (void)outs, (void)n, (void)final_output;
    ks_sched_finish_done(sched, id, 0, NULL);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    if (!mkdtemp(dir))
        abort();
    atexit(cleanup);
    char db[128];
    snprintf(db, sizeof db, "%s/state.db", dir);
    kiln_err_t err;
    ks_opts_t o = {.dir = dir, .max_active_jobs = 1000000};
    ks_ops_t ops = {on_send, on_finish};
    if (st_state_open(db, &st, &err) < 0 || ks_sched_open(st, &o, &ops, NULL, &sched, &err) < 0)
        abort();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    kiln_err_t err = {0};
    int64_t id = 0;
    int existed = 0;
    const char *key = size > 0 && data[0] == 'K' ? "fuzz-key" : NULL;
    int rc = ks_sched_submit(sched, (const char *)data, size, key, &id, &existed, &err);
    if (rc < 0) {
        if (!err.msg[0])
            abort();   /* every refusal says why */
        return 0;
    }
    json_t *j = ks_sched_job_json(sched, id, &err);
    if (!j)
        abort();
    json_decref(j);
    /* Cancelled, or already ended: either way it leaves the live set. */
    ks_sched_cancel(sched, id, &err);
    return 0;
}
