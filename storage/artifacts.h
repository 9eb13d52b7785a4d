/* artifacts.h - the content-addressed artifact store (DESIGN.md, "State,
 * models and fleets"): a blob lives at ROOT/sha256/ab/abcdef... named by the
 * SHA-256 of its bytes, written under a temporary name and renamed into
 * place, so a blob is never half there and storing it twice is a no-op. */
#ifndef KILN_STORAGE_ARTIFACTS_H
#define KILN_STORAGE_ARTIFACTS_H

#include <stddef.h>

#include "core/kiln_err.h"

/* Stores len bytes; hex gets their SHA-256 (64 chars + NUL). */
int st_artifact_put(const char *root, const void *bytes, size_t len, char hex[65],
                    kiln_err_t *err);
/* The path a blob has (or would have); -1 if it does not fit cap. */
int st_artifact_path(const char *root, const char *hex, char *buf, size_t cap);
/* Reads a blob back (*bytes kiln_malloc'd, at most max_len) and checks its
 * hash: KILN_ENOTFOUND if absent, KILN_EFORMAT if the bytes do not match
 * the name, KILN_EINVAL for a name that is not 64 lowercase hex digits. */
int st_artifact_get(const char *root, const char *hex, size_t max_len, void **bytes, size_t *len,
                    kiln_err_t *err);

#endif
