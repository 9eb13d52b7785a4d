/* client.h - the CLI's HTTP JSON client for kilnd (libcurl), and where the
 * CLI finds kilnd (--server, --dir, KILN_SERVER, KILN_DIR). */
#ifndef KA_CLIENT_H
#define KA_CLIENT_H

#include <stddef.h>

#include "core/kiln_err.h"

#define KA_CLIENT_DEFAULT_URL "http://127.0.0.1:7878"
#define KA_CLIENT_MAX_RESPONSE ((size_t)64 << 20)   /* a bigger answer is an error */

/* One request: METHOD base_url+path, with body (NULL: none; sent as
 * application/json) and an Idempotency-Key header when idempotency_key is
 * not NULL.  timeout_ms <= 0: 30 s for the whole exchange.
 * On success (any HTTP status) returns 0 with *status set and, when
 * resp_body is not NULL, *resp_body a NUL-terminated kiln_malloc'd copy
 * of the answer (caller frees with kiln_free) and *resp_len its length
 * (resp_len may be NULL).  A transport failure returns KILN_EIO with a
 * message naming the URL ("cannot reach kilnd at http://127.0.0.1:7878:
 * Connection refused"); nothing was received, so a retry is safe when the
 * request carries an idempotency key.  curl_global_init should have run in
 * main before threads call this. */
int ka_client_request(const char *base_url, const char *method, const char *path,
                      const char *body, const char *idempotency_key, int timeout_ms,
                      int *status, char **resp_body, size_t *resp_len, kiln_err_t *err);

/* Writes kilnd's base URL into out[cap]: flag_server when not NULL, else
 * flag_dir's kilnd.url (one line), else env KILN_SERVER, else env KILN_DIR's
 * kilnd.url, else KA_CLIENT_DEFAULT_URL.  A trailing '/' is removed.
 * KILN_ENOTFOUND when the chosen kilnd.url cannot be read, KILN_EINVAL when
 * the URL is empty, not http(s):// or longer than cap - 1. */
int ka_client_resolve_server(const char *flag_server, const char *flag_dir, char *out, size_t cap,
                             kiln_err_t *err);

#endif
