/*
 * The browser front: the signup page at `/` (POST /signup), the URL's own
 * dashboard at `/u/<token>/` (POST .../rotate, .../revoke) and their static
 * assets. http.c routes requests here and moves bytes; this module decides
 * what to answer. Pages carry strict security headers and a CSRF token
 * (double submit: a random nonce in a SameSite=Strict cookie, and its HMAC
 * under a per-process key in the form). Secrets typed into a form are never
 * logged and never echoed back; reply bodies that hold a URL token are
 * wiped when libmicrohttpd is done with them.
 *
 * Thread: web_handle and web_resume run on libmicrohttpd's threads; a check
 * with Turso runs on the transport and wakes the request when it is done,
 * so no MHD thread ever waits on Turso.
 */
#ifndef TM_WEB_H
#define TM_WEB_H

#include <microhttpd.h>
#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "store.h"
#include "tm_err.h"
#include "turso_transport.h"

struct web;
struct web_call;

/* Paths the web front answers; http.c asks before it looks for an MCP endpoint. */
enum web_page {
    WEB_NONE,
    WEB_SIGNUP,    /* "/" (GET) and "/signup" (POST) */
    WEB_ASSET,     /* "/assets/<name>" */
    WEB_DASHBOARD, /* "/u/<token>/" and "/u/<token>/rotate|revoke" */
};

/* One request, as http.c hands it over; every pointer is borrowed for the call. */
struct web_request {
    const char *method;
    const char *path;         /* without the query string */
    const char *token;        /* the URL token of a dashboard path, or NULL */
    const char *content_type; /* header, or NULL */
    const char *accept;       /* header, or NULL */
    const char *csrf_cookie;  /* the tm_csrf cookie, or NULL */
    const char *fetch_site;   /* Sec-Fetch-Site header, or NULL */
    const char *host;         /* Host header (already checked by http.c), or NULL */
    const char *body;         /* the request body (http.c wipes it when the request ends) */
    size_t body_len;
    unsigned long request_id; /* for log lines */
};

struct web_reply {
    int status;
    char *body; /* malloc'd, NUL-terminated, or NULL; web_send takes it */
    size_t body_len;
    const char *content_type; /* static */
    bool is_page;             /* an HTML page: add the security headers */
    bool is_secret;           /* the body holds a URL token: wipe it after sending */
    char set_cookie[160];     /* "" or a Set-Cookie value */
    const char *cache;        /* Cache-Control value; NULL: no-store */
};

/* Woken from any thread when a pending call can be finished; see web_handle. */
typedef void (*web_wake_fn)(void *ctx);

enum web_status {
    WEB_DONE,    /* *reply is filled in */
    WEB_PENDING, /* wake(ctx) runs exactly once, from any thread (possibly before return) */
};

/*
 * `cfg`, `store` and `transport` are borrowed and outlive the web front.
 * Draws the per-process CSRF key.
 */
enum tm_err web_create(const struct config *cfg, struct store *store,
                       struct turso_transport *transport, struct web **out);

/* Frees it (wiping the CSRF key); clears *w; accepts NULL. */
void web_destroy(struct web **w);

/*
 * Which page `path` names. For WEB_DASHBOARD the token (STORE_TOKEN_LEN
 * characters, not yet checked) is copied to token_out.
 */
enum web_page web_route(const char *path, char token_out[STORE_TOKEN_LEN + 1]);

/*
 * Answers one request. On WEB_PENDING *call_out holds the pending call:
 * once wake(ctx) has run, call web_resume on an MHD thread to finish it;
 * if the request ends without that, web_call_destroy frees it.
 */
enum web_status web_handle(struct web *w, const struct web_request *req, struct web_reply *reply,
                           struct web_call **call_out, web_wake_fn wake, void *ctx);

/* Finishes a woken call into *reply (storing a new user, say); frees it and clears *call. */
void web_resume(struct web *w, struct web_call **call, struct web_reply *reply);

/* Frees a call that will not be resumed; accepts NULL. Only after its wake has run. */
void web_call_destroy(struct web_call **call);

/*
 * Queues `reply` on `conn` with its headers; takes reply->body. *status_out
 * gets the status sent. MHD_NO only when even that failed.
 */
enum MHD_Result web_send(struct MHD_Connection *conn, struct web_reply *reply, int *status_out);

/* Frees what a reply still owns (when it was never sent); accepts NULL. */
void web_reply_cleanup(struct web_reply *reply);

/*
 * Notes a finished tool call in the user's activity (tool and database
 * names and the outcome only). For mcp.c's finish_call; never blocks on
 * Turso. A no-op before web_create or for names the store does not take.
 */
void web_note_activity(const char *user_id, const char *tool, const char *database,
                       const char *outcome);

#endif
