/*
 * MCP over HTTP, without the HTTP server: it takes one HTTP request already
 * routed to a user's endpoint (method, the headers that matter, the body)
 * and produces the status, headers and body to send, or a stream of
 * messages through a sink. JSON-RPC parsing, version negotiation,
 * sessions, batches, cancellation and tool dispatch live here; sockets,
 * routing, authentication and SSE framing live in http.c and sse.c.
 * Thread: any; a pending reply is delivered on the thread that finished it.
 */
#ifndef TM_MCP_H
#define TM_MCP_H

#include <stdbool.h>
#include <stddef.h>

#include "creds.h"
#include "session.h"
#include "tm_err.h"
#include "tool.h"

struct mcp_server;

/* One HTTP request to an MCP endpoint; every pointer is borrowed. */
struct mcp_request {
    const char *http_method;      /* "POST", "GET", "DELETE" */
    const char *user_id;          /* public id of the authenticated user */
    const char *session_id;       /* Mcp-Session-Id header (or the legacy session), or NULL */
    const char *protocol_version; /* MCP-Protocol-Version header, or NULL */
    const char *content_type;     /* Content-Type header, or NULL */
    bool accepts_sse;             /* Accept names text/event-stream */
    bool is_legacy;               /* a message POST of the 2024-11-05 HTTP+SSE transport */
    const char *body;
    size_t body_len;
    unsigned long request_id; /* for log lines */
    /*
     * The user's credentials, valid until the reply is delivered, or NULL:
     * then open_creds is called, once, for a request holding a message that
     * needs them (initialize reads the URL's read-only flag; tools/call runs
     * with them), on the calling thread before mcp_handle returns. It
     * returns them with the same lifetime, or NULL when the URL's record
     * does not open (mcp_handle then returns MCP_NOT_FOUND). Requests that
     * need no credentials never open them.
     */
    const struct creds *creds;
    const struct creds *(*open_creds)(void *ctx);
    void *open_creds_ctx;
};

struct mcp_reply {
    int status; /* HTTP status */
    char *body; /* malloc'd body, or NULL for none; the receiver frees it */
    size_t body_len;
    const char *content_type;            /* static string, or NULL with no body */
    const char *allow;                   /* Allow header for 405, or NULL */
    const char *retry_after;             /* Retry-After header for 429, or NULL */
    char session_id[SESSION_ID_LEN + 1]; /* "" or an Mcp-Session-Id to send */
    bool is_event_stream;                /* GET: open the session's server-to-client stream */
    bool wants_priming;                  /* send a priming event first (2025-11-25 and later) */
    bool is_cancelled;                   /* the call was cancelled: send no JSON-RPC response */
};

/*
 * Where the messages of one exchange go. http.c provides it; every
 * function is called with `ctx`.
 */
struct mcp_sink {
    /*
     * Switches this exchange to an SSE response now (200, text/event-stream,
     * with the session header), so that notifications can precede the final
     * reply. Called on the request's thread, before mcp_handle returns;
     * false if a stream cannot be opened (the reply is then plain JSON).
     */
    bool (*open_stream)(void *ctx, const char *session_id, bool wants_priming);
    /* One JSON-RPC message on the opened stream. Any thread. */
    void (*send)(void *ctx, const char *json, size_t len);
    /*
     * The final reply, exactly once, any thread. On a stream its body is the
     * last event and the stream ends; the receiver owns reply->body.
     */
    void (*done)(void *ctx, struct mcp_reply *reply);
    void *ctx;
};

enum mcp_status {
    MCP_DONE,    /* the reply is filled in; the sink is not used */
    MCP_PENDING, /* sink->done runs exactly once: later, or already before return */
    /*
     * The credentials did not open: answer as for an unknown URL. Neither
     * the reply (still zeroed) nor the sink is used.
     */
    MCP_NOT_FOUND,
};

/* The protocol versions spoken, newest first, NULL-terminated. */
extern const char *const mcp_versions[];

enum tm_err mcp_server_create(struct session_table *sessions, const struct tool_env *env,
                              struct mcp_server **out);
void mcp_server_destroy(struct mcp_server **m);

/* Handles one request; see enum mcp_status. `reply` is zeroed first. */
enum mcp_status mcp_handle(struct mcp_server *m, const struct mcp_request *req,
                           struct mcp_reply *reply, const struct mcp_sink *sink);

/*
 * Opens a session for the legacy HTTP+SSE transport (whose session id
 * travels in the message URL); the version is set by its initialize.
 */
enum tm_err mcp_open_legacy_session(struct mcp_server *m, const char *user_id,
                                    char id_out[SESSION_ID_LEN + 1]);

/* Ends a session (a legacy stream closed). */
void mcp_close_session(struct mcp_server *m, const char *session_id, const char *user_id);

/* MCP sessions held now. */
size_t mcp_session_count(struct mcp_server *m);

/* Tool calls still running. */
size_t mcp_calls_in_flight(struct mcp_server *m);

#endif
