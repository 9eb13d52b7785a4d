/* frames.h - the scheduler<->worker messages (DESIGN.md, "Scheduler <-> worker
 * protocol"): a type, a JSON object body and up to KC_BLOBS_MAX binary frames,
 * encoded as one ZeroMQ multipart message and checked at the boundary on receipt.
 *
 * Wire layout (after the routing-id frame that a ROUTER adds or strips):
 *   frame 0   type name ("hello", "task", ...), no terminating NUL
 *   frame 1   the body: compact JSON, an object, at most KC_JSON_MAX_BYTES
 *   frame 2.. optional binary frames, each at most KC_BLOB_MAX_BYTES
 * at most KC_FRAMES_MAX frames in all.
 *
 * Errors: a rejected message fills kiln_err_t with `where` = "frame N" or
 * "frame N: field" and `column` = N + 1 (kiln_err_t columns are 1-based, 0
 * meaning none); kc_err_frame() turns that back into the frame index.
 * Frame indices count from the type frame; a ROUTER's routing id is not one.
 *
 * Required body fields, per type (extra fields are accepted, so a newer peer can
 * add one without breaking an older one):
 *   hello      worker_id string, cores int>0, memory_mb int>0, gpus int>=0
 *   heartbeat  worker_id string
 *   task       task_id int>=0, job_id int>=0, lease_id string, spec object
 *   progress   task_id int>=0, lease_id string, done int>=0, total int>=0, done<=total
 *   done       task_id int>=0, lease_id string, output string
 *   failed     task_id int>=0, lease_id string, reason string
 *   cancel     task_id int>=0
 *   exec       command string (an MPI launch agent -> kilnd: also job_id,
 *              lease_id of the launching task, host; kilnd -> the worker
 *              of a gang rank: also task_id, lease_id)
 *   exec_reply status string ("ok", or "error" with reason)
 * Strings are non-empty and at most KC_STRING_MAX_BYTES.
 *
 * Memory: kc_msg_t and its binary frames come from kiln_alloc (a test can fail
 * them); the body is jansson's, through jansson's own allocator (we leave
 * json_set_alloc_funcs alone: it is process-wide and other modules use jansson). */
#ifndef KC_FRAMES_H
#define KC_FRAMES_H

#include <stddef.h>
#include <jansson.h>

#include "core/kiln_err.h"

#define KC_FRAMES_MAX        8                    /* type + JSON + binary frames */
#define KC_BLOBS_MAX         (KC_FRAMES_MAX - 2)
#define KC_JSON_MAX_BYTES    ((size_t)1 << 20)    /* 1 MiB */
#define KC_BLOB_MAX_BYTES    ((size_t)64 << 20)   /* 64 MiB */
#define KC_STRING_MAX_BYTES  4096
#define KC_ROUTING_ID_MAX    255                  /* ZeroMQ's limit on a peer identity */

/* kc_frames_recv's result when ZMQ_DONTWAIT found nothing (or a signal
 * interrupted a blocking wait): positive, so `rc < 0` still means error. */
#define KC_FRAMES_NONE       1

#define KC_MSG_TYPE_MAP(XX) \
    XX(HELLO, "hello")      \
    XX(HEARTBEAT, "heartbeat") \
    XX(TASK, "task")        \
    XX(PROGRESS, "progress") \
    XX(DONE, "done")        \
    XX(FAILED, "failed")    \
    XX(CANCEL, "cancel")    \
    XX(EXEC, "exec")        \
    XX(EXEC_REPLY, "exec_reply")

typedef enum {
#define KC_XX_ENUM(name, str) KC_MSG_##name,
    KC_MSG_TYPE_MAP(KC_XX_ENUM)
#undef KC_XX_ENUM
    KC_MSG_TYPE_COUNT
} kc_msg_type_t;

typedef struct {
    void  *data;     /* kiln_malloc'd, owned by the message */
    size_t len;
} kc_blob_t;

typedef struct {
    kc_msg_type_t type;
    json_t   *body;                    /* an object; one reference, owned */
    size_t    n_blobs;
    kc_blob_t blobs[KC_BLOBS_MAX];
} kc_msg_t;

/* A view of one frame; the bytes belong to whoever made the view. */
typedef struct {
    const void *data;
    size_t      len;
} kc_frame_t;

/* The frames of an encoded message.  frame[0] points at a static name,
 * frame[1] at `json` (owned here), frame[2..] at the message's blobs
 * (borrowed: the message must outlive the wire). */
typedef struct {
    size_t     n_frames;
    kc_frame_t frame[KC_FRAMES_MAX];
    char      *json;
} kc_wire_t;

typedef struct {
    size_t        len;                 /* 1..KC_ROUTING_ID_MAX */
    unsigned char bytes[KC_ROUTING_ID_MAX];
} kc_routing_id_t;

/* "hello", ...; NULL for a value outside the enum. */
const char *kc_msg_type_name(kc_msg_type_t type);
/* The type whose name is exactly these len bytes; -1 if none. */
int kc_msg_type_from_name(const void *name, size_t len);

/* A new message of this type.  Takes the caller's reference to body (also
 * when it fails); body NULL gives an empty object.  Returns a new message the
 * caller frees with kc_msg_destroy, or NULL (out of memory). */
kc_msg_t *kc_msg_new(kc_msg_type_t type, json_t *body);
/* Appends a copy of len bytes as a binary frame. */
int  kc_msg_add_blob(kc_msg_t *msg, const void *data, size_t len, kiln_err_t *err);
/* Frees the message and sets *msg to NULL; NULL or *msg NULL is harmless. */
void kc_msg_destroy(kc_msg_t **msg);

/* Checks the message's body against its type's required fields (the same
 * check decode makes); KILN_ESPEC names frame 1 and the field. */
int kc_msg_validate(const kc_msg_t *msg, kiln_err_t *err);

/* Encodes msg (validated first) into frames; free with kc_wire_free. */
int  kc_msg_encode(const kc_msg_t *msg, kc_wire_t *wire, kiln_err_t *err);
void kc_wire_free(kc_wire_t *wire);

/* Decodes and validates n_frames frames.  On success *out is a new message
 * (caller destroys); on failure *out is NULL and err names frame and field:
 * KILN_EFORMAT (frame count, sizes, unknown type), KILN_EJSON (frame 1 does
 * not parse), KILN_ESPEC (not an object, missing field, wrong type or range),
 * KILN_ENOMEM. */
int kc_msg_decode(const kc_frame_t *frames, size_t n_frames, kc_msg_t **out,
                  kiln_err_t *err);

/* Frame index an error names, or -1 if it names none. */
static inline int kc_err_frame(const kiln_err_t *err) { return err->column - 1; }

/* Bounds a socket's inbound frames (ZMQ_MAXMSGSIZE: a peer that sends a
 * bigger frame is disconnected before it is buffered).  Call once after
 * zmq_socket, before bind/connect. */
int kc_frames_socket_setup(void *sock, kiln_err_t *err);

/* Sends msg as one multipart message.  On a ROUTER socket routing_id names
 * the peer (required); on a DEALER it must be NULL.  Blocks as zmq_send does
 * with flags 0 (a ROUTER never blocks: it drops for an unknown or full peer
 * unless ZMQ_ROUTER_MANDATORY is set, when that is an error here). */
int kc_frames_send(void *sock, const kc_msg_t *msg, const kc_routing_id_t *routing_id,
                   kiln_err_t *err);

/* Sends a message whose body is already compact JSON text (len bytes, an
 * object the sender built to satisfy the type's fields: the receiver checks
 * it as for any message).  The scheduler's hot path: no jansson tree. */
int kc_frames_send_text(void *sock, kc_msg_type_t type, const char *json, size_t len,
                        const kc_routing_id_t *routing_id, kiln_err_t *err);

/* Receives one whole multipart message.  flags: 0 or ZMQ_DONTWAIT.
 * Returns 0 with *out a new message; KC_FRAMES_NONE when there was nothing
 * to read (drain loops stop there); negative on error.  A message that fails
 * validation is consumed entirely (the next call starts at the next message)
 * and routing_id, on a ROUTER, still says who sent it, so the scheduler can
 * log or drop that worker.  routing_id is required on a ROUTER, ignored (may
 * be NULL) on a DEALER. */
int kc_frames_recv(void *sock, int flags, kc_msg_t **out, kc_routing_id_t *routing_id,
                   kiln_err_t *err);

#endif
