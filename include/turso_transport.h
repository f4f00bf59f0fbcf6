/*
 * The HTTP transport to Turso: libcurl multi handles each driven by a thread
 * of its own (a request goes to the least busy), with pooled keep-alive
 * connections, shared DNS and TLS session caches, connect and total
 * timeouts and TLS verification on.
 *
 * Callers submit a request with a completion callback; the callback runs
 * once the transfer ends (success, HTTP error, network failure, timeout,
 * cancellation or shutdown), on one of the transport's callback threads, so
 * that a slow callback delays no other transfer. Only a small answer in a
 * group whose callbacks never block may run on the thread that drives the
 * connections instead (see callbacks_never_block); elsewhere in the
 * project, "a transport callback thread" means whichever of the two ran
 * it. Callbacks of different requests may run at the same time. A callback may submit further
 * requests. Requests belong to the call group of the thread that submits
 * them, so that one MCP tool call can be cancelled as a whole and bounded
 * by one deadline. It knows nothing of MCP or of Hrana.
 */
#ifndef TM_TURSO_TRANSPORT_H
#define TM_TURSO_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tm_err.h"

struct turso_transport;

struct turso_transport_opts {
    long connect_timeout_ms; /* 0: 5000 */
    long total_timeout_ms;   /* per request; 0: 30000 */
    size_t max_response_len; /* larger bodies fail with TM_ERR_TOO_LARGE; 0: 64 MiB */
    const char *user_agent;  /* copied; NULL: "turso-mcp" */
    int n_callback_threads;  /* threads that run completion callbacks; 0: 2 */
    /* Threads that drive connections; 0: one per CPU, up to 4. More than 8
     * count as 8. */
    int n_threads;
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
    bool is_deadline;  /* err is TM_ERR_TIMEOUT because the call group's deadline passed */
};

/*
 * The requests of one call (an MCP tools/call): cancelled together, and
 * ended together when the deadline passes. The caller owns it; the
 * transport copies it.
 */
struct turso_call_group {
    uint64_t id;         /* from turso_transport_new_group_id; 0: no group, never cancelled */
    int64_t deadline_ms; /* CLOCK_MONOTONIC, in ms; 0: none */
    /*
     * The group's callbacks never wait (no blocking I/O, no lock held for
     * long): the callback of a small answer may then run at once on the
     * thread that drove the connection, skipping the hand-over to a callback
     * thread. Others always run on a callback thread. Such callbacks must
     * not call the synchronous wrappers (turso_transport_call,
     * hrana_pipeline_sync, platform_call_sync, credcheck_run): they wait for
     * a transfer that the very thread they block may have to drive. Nor
     * may they write a log line that can block: every transfer on that
     * thread would stall meanwhile.
     */
    bool callbacks_never_block;
};

/*
 * Runs on a callback thread (or, for a small answer in a group whose
 * callbacks never block, on the thread that drove the connection), with that
 * thread's current group set to the request's (see turso_transport_set_group):
 * what the callback submits joins the same group. `reply` is borrowed: valid
 * only during the call.
 */
typedef void (*turso_reply_fn)(const struct turso_reply *reply, void *ctx);

/* Starts the threads that drive connections and run callbacks. *out owns the transport. */
enum tm_err turso_transport_start(const struct turso_transport_opts *opts,
                                  struct turso_transport **out);

/*
 * Stops the threads: transfers still running end with TM_ERR_CANCELLED
 * (their callbacks run before this returns). Clears *t; accepts NULL.
 */
void turso_transport_stop(struct turso_transport **t);

/*
 * Queues a request; every field is copied. The request belongs to the
 * calling thread's current group. On TM_OK `fn` will be called exactly
 * once, never inside this call, on a callback thread (or on the thread that
 * drove the connection; see callbacks_never_block): a request whose
 * group is already cancelled or past its deadline is accepted (TM_OK) and
 * ends at once through `fn` with TM_ERR_CANCELLED or TM_ERR_TIMEOUT. On any
 * other return (bad request, TM_ERR_NOMEM, TM_ERR_CANCELLED once stopping)
 * `fn` never runs.
 *
 * The request's total timeout is its own (or the transport's default),
 * shortened to what is left of its group's deadline when it starts; a
 * deadline that ends it gives TM_ERR_TIMEOUT with reply.is_deadline set.
 * Thread: any, including a callback.
 */
enum tm_err turso_transport_submit(struct turso_transport *t, const struct turso_request *req,
                                   turso_reply_fn fn, void *ctx);

/*
 * Blocking form for the command line: submits and waits. *out receives the
 * reply (clean it with turso_reply_cleanup). The request belongs to the
 * calling thread's current group, as with submit. Never call it in a
 * callback. Returns out->err: TM_OK when an HTTP status arrived;
 * *out is filled in on every return (body NULL if the request was never
 * queued).
 */
enum tm_err turso_transport_call(struct turso_transport *t, const struct turso_request *req,
                                 struct turso_reply *out);

/*
 * Sets the calling thread's current group: requests it submits from now on
 * belong to *g (copied). NULL, or a group with id 0 and no deadline, means
 * none. The value is thread-local: set it around the code that starts a
 * call's requests (tool->run) and clear it after, or unrelated requests
 * later made on that thread join the group. Inside a callback the transport
 * has set the request's group; a callback may change it (to start another
 * call's work, or none for work shared between calls), and the transport
 * restores its own value when the callback returns. Thread: any.
 */
void turso_transport_set_group(const struct turso_call_group *g);

/* The calling thread's current group; {0, 0} when none. Thread: any. */
struct turso_call_group turso_transport_get_group(void);

/* A new group id, unique in the process and never 0. Thread: any. */
uint64_t turso_transport_new_group_id(void);

/*
 * Cancels every request of group `group_id` on `t`: queued and running ones
 * end with TM_ERR_CANCELLED, each callback running once, on a callback
 * thread (or on the thread that drove the connection; see
 * callbacks_never_block), promptly but never inside this call (a request
 * that curl has just finished may still report its own outcome). The id is
 * remembered (the last 1024 cancelled ids), so requests submitted for it
 * later end the same way. Cancelling twice, or a group with no requests, is
 * harmless; group 0 and a NULL `t` are ignored. Does not wait.
 * Thread: any, including a callback (whose own request is already over).
 */
void turso_transport_cancel_group(struct turso_transport *t, uint64_t group_id);

/* Frees the body of a reply returned by turso_transport_call. */
void turso_reply_cleanup(struct turso_reply *r);

#endif
