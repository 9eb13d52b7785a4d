/* agent.h - kiln-edge serving: one libuv loop thread owns the inference
 * engine (edge/infer.h) and every input (MQTT through libmosquitto on the
 * loop, a unix socket, stdin) and the /metrics server (api/httpd.c hands
 * each request to this thread).  Windows are framed as edge/frame.h says.
 *
 * The model directory (docs/edge.md, Inference):
 *   DIR/current/    the model to run (model.kmodel [+ featspec.json]
 *                   [+ manifest.json] [+ selftest.window])
 *   DIR/previous/   the one it replaced, run when current fails to load or
 *                   fails its self-test
 * or, for a single model, those files in DIR itself.  The update path (a
 * later piece) writes and renames these directories, then calls
 * ke_agent_reload (SIGHUP does the same). */
#ifndef KE_AGENT_H
#define KE_AGENT_H

#include <stddef.h>
#include <stdint.h>

#include "core/kiln_err.h"
#include "edge/infer.h"
#include "edge/stats.h"

#define KE_DEVICE_MAX 64

typedef struct {
    const char *model_dir;
    const char *device_id;        /* MQTT client id and topic part; default "edge" */
    const char *mqtt_host;        /* NULL: no MQTT */
    int         mqtt_port;
    const char *socket_path;      /* NULL: no unix socket */
    int         use_stdin;
    const char *metrics_host;     /* NULL: no /metrics */
    int         metrics_port;     /* 0: a free port, printed on stderr */
    int         with_features;    /* results carry the feature row */
    size_t      max_assets;       /* rolling state, see ke_engine_opts_t */
    /* the update path (edge/update.h): a device directory from enroll;
     * model_dir is then that directory, and the agent may start with no
     * model yet (windows are refused until the first update) */
    const char *device_dir;
    int         poll_s, report_s, force_unhealthy;
} ke_agent_opts_t;

/* What the agent's report carries (and kiln-edge prints at exit). */
typedef struct {
    uint64_t windows_in;          /* frames and lines received, good or bad */
    uint64_t scored;
    uint64_t errors;              /* bad frames, wrong shapes, failed scores */
    uint64_t from_mqtt, from_socket, from_stdin;
    uint64_t published;           /* results published over MQTT */
    uint64_t reloads, reload_failures;
    uint64_t mqtt_connects;
    double   latency_sum_us, latency_max_us;
    char     running[KE_NAME_MAX + 80]; /* NAME@VERSION (current|previous|dir) */
} ke_counters_t;

typedef struct ke_agent ke_agent_t;

/* Loads the model (current, else previous), opens the inputs and serves
 * until SIGINT/SIGTERM, or until stdin ends when it is the only input.
 * counters (may be NULL) gets the final figures. */
int ke_agent_run(const ke_agent_opts_t *opts, ke_counters_t *counters, kiln_err_t *err);

/* Loads DIR's model as above into *out: which says "current", "previous"
 * or "dir"; when current failed and previous runs, why holds the reason. */
int ke_modeldir_load(const char *dir, const ke_engine_opts_t *opts, ke_engine_t **out,
                     const char **which, char *why, size_t why_cap, kiln_err_t *err);

/* On the loop thread: loads the directory again and swaps engines when it
 * loads; on failure the running model stays and the reason is returned. */
int ke_agent_reload(ke_agent_t *a, kiln_err_t *err);

/* For the update path, on the loop thread. */
struct uv_loop_s *ke_agent_loop(ke_agent_t *a);
/* The running engine's model (NULL when none); *which "current",
 * "previous" or "dir", *why why current did not load ("" when it did). */
const ke_model_info_t *ke_agent_model(ke_agent_t *a, const char **which, const char **why);
const ke_engine_t *ke_agent_engine(ke_agent_t *a);
ke_stats_t *ke_agent_stats(ke_agent_t *a);

#endif
