/*
 * MCP over Streamable HTTP, without the HTTP server: it takes one HTTP
 * request already routed to a user's endpoint (method, the headers that
 * matter, the body) and produces the status, headers and body to send.
 * JSON-RPC parsing, version negotiation, sessions and tool dispatch live
 * here; sockets, routing and authentication live in http.c.
 * Thread: any; a pending reply is delivered on the thread that finished it.
 */
#ifndef TM_MCP_H
#define TM_MCP_H

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
    const struct creds *creds;    /* valid until the reply is delivered */
    const char *session_id;       /* Mcp-Session-Id header, or NULL */
    const char *protocol_version; /* MCP-Protocol-Version header, or NULL */
    const char *content_type;     /* Content-Type header, or NULL */
    const char *body;
    size_t body_len;
    unsigned long request_id; /* for log lines */
};

struct mcp_reply {
    int status; /* HTTP status */
    char *body; /* malloc'd body, or NULL for none; the receiver frees it */
    size_t body_len;
    const char *content_type;            /* static string, or NULL with no body */
    const char *allow;                   /* Allow header for 405, or NULL */
    char session_id[SESSION_ID_LEN + 1]; /* "" or an Mcp-Session-Id to send */
};

enum mcp_status {
    MCP_DONE,    /* the reply is filled in */
    MCP_PENDING, /* `fn` runs exactly once with the reply: later, or already before return */
};

/* Receives a pending reply; it owns reply->body from then on. */
typedef void (*mcp_reply_fn)(struct mcp_reply *reply, void *ctx);

/* The protocol versions spoken, newest first. */
extern const char *const mcp_versions[];

enum tm_err mcp_server_create(struct session_table *sessions, const struct tool_env *env,
                              struct mcp_server **out);
void mcp_server_destroy(struct mcp_server **m);

/* Handles one request; see enum mcp_status. `reply` is zeroed first. */
enum mcp_status mcp_handle(struct mcp_server *m, const struct mcp_request *req,
                           struct mcp_reply *reply, mcp_reply_fn fn, void *ctx);

#endif
