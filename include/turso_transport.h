/*
 * The HTTP transport to Turso: one libcurl multi handle driven by its own
 * thread, with pooled keep-alive connections, shared DNS and TLS session
 * caches, connect and total timeouts and TLS verification on.
 *
 * Callers submit a request with a completion callback; the callback runs
 * on the transport thread once the transfer ends (success, HTTP error,
 * network failure, timeout or shutdown). It may submit further requests.
 * It knows nothing of MCP or of Hrana.
 */
#ifndef TM_TURSO_TRANSPORT_H
#define TM_TURSO_TRANSPORT_H

#include <stddef.h>

#include "tm_err.h"

struct turso_transport;

struct turso_transport_opts {
    long connect_timeout_ms; /* 0: 5000 */
    long total_timeout_ms;   /* per request; 0: 30000 */
    size_t max_response_len; /* larger bodies fail with TM_ERR_TOO_LARGE; 0: 64 MiB */
    const char *user_agent;  /* copied; NULL: "turso-mcp" */
};

struct turso_request {
    const char *method; /* "GET", "POST", "PATCH", "DELETE" */
    const char *url;    /* absolute URL */
    const char *bearer; /* token for `Authorization: Bearer`, or NULL; copied and wiped after use */
    const char *body;   /* request body (sent with Content-Type: application/json), or NULL */
    size_t body_len;
    long timeout_ms; /* 0: the transport's default */
};

struct turso_reply {
    enum tm_err err; /* TM_OK when an HTTP status arrived, whatever it was */
    long status;     /* HTTP status, 0 when err != TM_OK */
    char *body;      /* NUL-terminated response body (may be ""), owned by the reply */
    size_t body_len;
    char message[256]; /* when err != TM_OK: what went wrong, never a secret */
};

/* Runs on the transport thread. `reply` is borrowed: valid only during the call. */
typedef void (*turso_reply_fn)(const struct turso_reply *reply, void *ctx);

/* Starts the transport thread. *out owns the transport. */
enum tm_err turso_transport_start(const struct turso_transport_opts *opts,
                                  struct turso_transport **out);

/*
 * Stops the thread: transfers still running end with TM_ERR_CANCELLED
 * (their callbacks run before this returns). Clears *t; accepts NULL.
 */
void turso_transport_stop(struct turso_transport **t);

/*
 * Queues a request; every field is copied. On TM_OK `fn` will be called
 * exactly once; on any other return it will not be.
 */
enum tm_err turso_transport_submit(struct turso_transport *t, const struct turso_request *req,
                                   turso_reply_fn fn, void *ctx);

/*
 * Blocking form for the command line: submits and waits. *out receives the
 * reply (clean it with turso_reply_cleanup). Never call it on the transport
 * thread. Returns out->err: TM_OK when an HTTP status arrived; *out is
 * filled in on every return (body NULL if the request was never queued).
 */
enum tm_err turso_transport_call(struct turso_transport *t, const struct turso_request *req,
                                 struct turso_reply *out);

/* Frees the body of a reply returned by turso_transport_call. */
void turso_reply_cleanup(struct turso_reply *r);

#endif
