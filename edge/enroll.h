/* enroll.h - `kiln-edge enroll`: the device makes its own Ed25519 key pair
 * (the secret never leaves DIR), trades a one-time token for its device id
 * over HTTPS pinned to the CA it is given, and keeps what the agent needs
 * later in DIR (edge/store.h): device.json, device.sk, ca.pem, and the
 * publisher public key and fleet key from the enroll answer ("publisher_key",
 * "fleet_key": base64) or, where kilnd does not send them, from files. */
#ifndef KE_ENROLL_H
#define KE_ENROLL_H

#include "core/kiln_err.h"

typedef struct {
    const char *server;          /* https://HOST:PORT */
    const char *ca_path;         /* the CA the fleet endpoint's certificate chains to */
    const char *token;
    const char *dir;             /* created (0700); must not hold a device yet */
    const char *name;            /* NULL: the host name */
    const char *pubkey_path;     /* KILN-ED25519-PK1 file, when the answer carries none */
    const char *fleet_key_path;  /* KILN-FLEET-KEY1 file, when the answer carries none */
} ke_enroll_opts_t;

/* 0 and the device id in id (64 bytes). */
int ke_enroll(const ke_enroll_opts_t *o, char id[64], kiln_err_t *err);

#endif
