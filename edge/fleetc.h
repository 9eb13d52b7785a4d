/* fleetc.h - kiln-edge's client of the fleet endpoint (docs/edge.md, "Fleet
 * protocol"): HTTPS through libcurl with the server checked against the CA
 * the device was enrolled with (CURLOPT_CAINFO; verification is never
 * turned off), each call signed with the device key (cluster/edge_sig.h).
 * Outbound only.  A client makes one call at a time (the fleet endpoint
 * refuses a signed time that is not newer than the last one), from one
 * thread at a time. */
#ifndef KE_FLEETC_H
#define KE_FLEETC_H

#include <stddef.h>
#include <stdint.h>

#include "core/kiln_err.h"

typedef struct {
    char          server[512];     /* https://HOST:PORT, no trailing slash */
    char          ca_path[4200];
    char          device_id[64];   /* "" for enroll */
    unsigned char sk[64];
    int64_t       last_ms;         /* the last signed time, kept increasing */
    long          connect_timeout_s, timeout_s;   /* 0: 10 s, 60 s */
    const volatile int *cancel;    /* may be NULL; set: the call in flight stops */
} ke_fleetc_t;

/* One signed call.  *resp (may be NULL) gets the body, kiln_malloc'd and
 * NUL-terminated, at most resp_max bytes (more is KILN_EFORMAT); *status
 * the HTTP status.  A transport failure (unreachable, TLS, timeout) is
 * KILN_EIO with curl's reason; any HTTP status returns 0. */
int ke_fleetc_call(ke_fleetc_t *c, const char *method, const char *path, const void *body,
                   size_t body_len, long *status, char **resp, size_t *resp_len,
                   size_t resp_max, kiln_err_t *err);

/* Downloads bundle sha (size bytes, as the verified envelope says) into
 * part_path, resuming from the part's size with Range (store.h's
 * ke_resume_*), up to `tries` connections.  0 when the part holds size
 * bytes; KILN_EIO when the connection kept failing (the part keeps what
 * came, for the next try); KILN_EFORMAT for an answer that cannot be used. */
int ke_fleetc_download(ke_fleetc_t *c, const char *sha, uint64_t size, const char *part_path,
                       int tries, kiln_err_t *err);

#endif
