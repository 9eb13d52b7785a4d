/* update.h - kiln-edge's update path on the agent's loop (docs/edge.md,
 * "Agent"): a poll timer fetches the signed envelope, a new one is checked
 * (st_bundle_verify_envelope against the persisted last seq and the running
 * model), its bundle downloaded with resume into DIR/download/SHA.part and
 * extracted (st_bundle_extract) into a fresh DIR/models/ directory - all of
 * it in libuv's thread pool, one fleet call at a time, so serving goes on -
 * then, on the loop thread, DIR/current is swapped (store.h), the agent
 * reloads, and the new model either serves (state.json then records its seq
 * and version) or the agent rolls back to previous by itself and reports
 * "rolled_back".  Reports go out every report interval and after each
 * update.  Unreachable server: the last good model serves on, polls back off. */
#ifndef KE_UPDATE_H
#define KE_UPDATE_H

#include "core/kiln_err.h"

typedef struct ke_agent ke_agent_t;
typedef struct ke_update ke_update_t;

typedef struct {
    const char *dir;            /* the device directory (store.h) */
    int         poll_s;         /* 0: 30 */
    int         report_s;       /* 0: 60 */
    int         force_unhealthy;/* tests: every report says "unhealthy" */
} ke_update_opts_t;

/* Reads DIR's device, state and keys and starts the timers on the agent's
 * loop.  The first poll runs at once. */
int  ke_update_start(ke_agent_t *a, const ke_update_opts_t *o, ke_update_t **out,
                     kiln_err_t *err);
/* Stops the timers and asks a call in flight to stop (the loop's last run
 * waits for it); frees after the loop is done. */
void ke_update_stop(ke_update_t *u);
void ke_update_free(ke_update_t **u);

#endif
