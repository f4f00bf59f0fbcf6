/*
 * libmicrohttpd glue: routes, body accumulation with a cap, token
 * authentication, and suspend/resume around replies that arrive later
 * on the Turso transport's callback threads. Each request's state lives in its
 * `struct request` (MHD's con_cls) and is freed when MHD reports the
 * request complete.
 */
#include "http.h"

#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "log.h"
#include "metrics.h"
#include "ratelimit.h"
#include "sse.h"
#include "web.h"

enum route {
    ROUTE_NOT_FOUND,
    ROUTE_MCP,      /* /u/<token>/mcp, or /mcp with a Bearer token: Streamable HTTP */
    ROUTE_SSE,      /* /u/<token>/sse: the 2024-11-05 HTTP+SSE transport's stream */
    ROUTE_MESSAGES, /* /u/<token>/messages?sessionId=...: that transport's POSTs */
    ROUTE_HEALTHZ,  /* /healthz: the process is up */
    ROUTE_READYZ,   /* /readyz: it takes requests (not while stopping) */
    ROUTE_METRICS,  /* /metrics: Prometheus text */
    ROUTE_WEB,      /* the signup page, a URL's dashboard and their assets: web.c */
};

/*
 * A session of the 2024-11-05 HTTP+SSE transport: its stream, found by the
 * session id that its message URL carries.
 */
struct legacy {
    atomic_int refs; /* the table's, and one per message request using it */
    struct http_server *server;
    struct sse_stream *stream; /* a reference */
    char session_id[SESSION_ID_LEN + 1];
    char user_id[STORE_ID_LEN + 1];
    struct legacy *prev, *next; /* in the server's table; guarded by legacy_lock */
    bool is_listed;
};

struct http_server {
    struct MHD_Daemon *daemon;
    const struct config *cfg; /* borrowed */
    struct store *store;      /* borrowed */
    struct mcp_server *mcp;   /* borrowed */
    struct web *web;          /* borrowed; NULL: no pages */
    atomic_ulong next_request_id;
    int port;
    MHD_socket quiesced_fd;  /* the listen socket after quiesce; closed after the daemon stops */
    char *public_origin;     /* scheme://host[:port] of the public URL */
    char *public_host;       /* host[:port] of the public URL, as a Host header carries it */
    bool is_loopback;        /* bound to a loopback address: loopback Host names are fine */
    struct sse_hub *hub;     /* every open SSE stream */
    struct ratelimit *rl;    /* per-URL limits */
    atomic_bool is_stopping; /* quiesced: /readyz says no */
    pthread_mutex_t legacy_lock; /* guards `legacy` */
    struct legacy *legacy;       /* open HTTP+SSE sessions */
};

struct request {
    struct http_server *server;
    struct MHD_Connection *conn;
    unsigned long id;
    struct timespec started;
    enum route route;
    char method[8];
    char masked_path[160];
    char token[STORE_TOKEN_LEN + 1]; /* the URL secret; wiped when the request ends */
    bool has_token;
    bool route_has_path_token; /* the token came in the path, not a header */

    struct buf body; /* the request body, capped at max_body_bytes; wiped when the request ends */
    bool is_too_large;

    struct store_sealed *sealed; /* that user's record, still sealed; freed with the request */
    struct creds creds; /* opened from `sealed` only if a message needs them; wiped at the end */
    bool has_creds;
    bool is_open_tried; /* open_creds ran: the use was counted then, if the record opened */
    char user_id[STORE_ID_LEN + 1];

    /*
     * A reply from another thread and the suspension of the connection can
     * happen in either order; `lock` makes "store the reply, resume if
     * suspended" and "suspend unless the reply is there" each atomic.
     */
    pthread_mutex_t lock;
    bool is_pending, is_suspended, is_reply_ready;
    struct mcp_reply reply;
    int status; /* the status sent, for the log line */

    /*
     * libmicrohttpd holds one reference until the request completes, and a
     * tool call one until it delivers its reply: a client may leave a
     * streamed or 202-answered call while the tool still reads `creds`.
     */
    atomic_int refs;
    struct sse_stream *stream; /* this POST's SSE response, once opened */
    struct legacy *legacy;     /* for /messages: the HTTP+SSE session (a reference) */
    bool is_admitted;          /* counted as running by the rate limiter */
    struct web_call *web_call; /* a page waiting on Turso; finished by web_resume */
    char web_path[64];         /* a ROUTE_WEB path (may hold the token; wiped) */
};

static void legacy_release(struct legacy **lp)
{
    if (!lp || !*lp)
        return;
    struct legacy *l = *lp;
    if (atomic_fetch_sub(&l->refs, 1) == 1) {
        sse_stream_release(&l->stream);
        free(l);
    }
    *lp = NULL;
}

static void request_release(struct request *r)
{
    if (atomic_fetch_sub(&r->refs, 1) != 1)
        return;
    if (r->is_admitted)
        ratelimit_leave(r->server->rl, r->user_id);
    sodium_memzero(r->token, sizeof(r->token));
    sodium_memzero(r->web_path, sizeof(r->web_path));
    if (r->has_creds)
        creds_cleanup(&r->creds);
    store_sealed_free(&r->sealed);
    /* A signup form's body holds Turso tokens. */
    buf_cleanup(&r->body);
    web_call_destroy(&r->web_call);
    free(r->reply.body);
    sse_stream_release(&r->stream);
    legacy_release(&r->legacy);
    pthread_mutex_destroy(&r->lock);
    free(r);
}

/* Hides URL secrets in a message from libmicrohttpd before it is logged. */
static void mask_tokens(char *s)
{
    for (char *p = strstr(s, "/u/"); p; p = strstr(p, "/u/")) {
        p += 3;
        while (*p && *p != '/' && *p != ' ' && *p != '?' && *p != '\'' && *p != '"')
            *p++ = '*';
    }
}

/* libmicrohttpd hands over its own format strings; the attribute says so to the compiler. */
__attribute__((format(printf, 2, 0))) static void mhd_logger(void *cls, const char *fmt, va_list ap)
{
    char msg[512];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    size_t n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = '\0';
    mask_tokens(msg);
    log_msg(LOG_WARN, "event=mhd message=\"%s\"", msg);
}

/* True if `item` (length len) is one of the comma-separated entries of `list`, or list is "*". */
static bool in_list(const char *list, const char *item, size_t len)
{
    if (!list)
        return false;
    if (strcmp(list, "*") == 0)
        return true;
    const char *p = list;
    while (*p) {
        while (*p == ' ' || *p == ',')
            p++;
        size_t n = strcspn(p, ",");
        size_t m = n;
        while (m > 0 && p[m - 1] == ' ')
            m--;
        if (m > 0 && m == len && strncasecmp(p, item, len) == 0)
            return true;
        p += n;
    }
    return false;
}

/* True if `name` (length len, a host without port; IPv6 in brackets) is a loopback name. */
static bool is_loopback_name(const char *name, size_t len)
{
    static const char *const loopback_names[] = {"localhost", "127.0.0.1", "[::1]"};
    for (size_t i = 0; i < sizeof(loopback_names) / sizeof(loopback_names[0]); i++)
        if (len == strlen(loopback_names[i]) && strncasecmp(name, loopback_names[i], len) == 0)
            return true;
    return false;
}

/* The length of the host part of `authority` (host[:port] or [v6][:port]). */
static size_t host_part_len(const char *authority)
{
    if (authority[0] == '[') {
        const char *end = strchr(authority, ']');
        return end ? (size_t)(end - authority) + 1 : strlen(authority);
    }
    return strcspn(authority, ":/");
}

/* Whether the Host header names this server; loopback names only for a loopback bind. */
static bool is_host_allowed(const struct http_server *h, const char *host)
{
    if (!host)
        return true; /* HTTP/1.0 */
    if (h->public_host && strcasecmp(host, h->public_host) == 0)
        return true;
    if (in_list(h->cfg->allowed_hosts, host, strlen(host)))
        return true;
    return h->is_loopback && is_loopback_name(host, host_part_len(host));
}

/*
 * A browser page from another site must not drive a user's MCP endpoint
 * (DNS rebinding, drive-by requests), so a present Origin has to be ours,
 * configured, or (on a loopback bind) a page on this machine; requests
 * without one (every non-browser client) pass.
 */
static bool is_origin_allowed(const struct http_server *h, const char *origin)
{
    if (!origin)
        return true;
    if (h->public_origin && strcasecmp(origin, h->public_origin) == 0)
        return true;
    if (in_list(h->cfg->allowed_origins, origin, strlen(origin)))
        return true;
    const char *authority = strstr(origin, "://");
    if (!h->is_loopback || !authority ||
        (strncasecmp(origin, "http://", 7) != 0 && strncasecmp(origin, "https://", 8) != 0))
        return false;
    authority += 3;
    return is_loopback_name(authority, host_part_len(authority));
}

/* The route of an endpoint name after the token (or at the root, for Bearer clients). */
static enum route route_endpoint(const char *rest)
{
    if (strcmp(rest, "/mcp") == 0 || strcmp(rest, "/mcp/") == 0)
        return ROUTE_MCP;
    if (strcmp(rest, "/sse") == 0)
        return ROUTE_SSE;
    if (strcmp(rest, "/messages") == 0)
        return ROUTE_MESSAGES;
    return ROUTE_NOT_FOUND;
}

/* Splits the path into a route and, for /u/<token>/..., the token. */
static enum route route_path(const char *url, struct request *r)
{
    if (strcmp(url, "/healthz") == 0)
        return ROUTE_HEALTHZ;
    if (strcmp(url, "/readyz") == 0)
        return ROUTE_READYZ;
    if (strcmp(url, "/metrics") == 0)
        return ROUTE_METRICS;
    if (r->server->web && strlen(url) < sizeof(r->web_path) &&
        web_route(url, r->token) != WEB_NONE) {
        snprintf(r->web_path, sizeof(r->web_path), "%s", url);
        r->has_token = r->token[0] != '\0';
        return ROUTE_WEB;
    }
    if (strncmp(url, "/u/", 3) != 0)
        return route_endpoint(url);
    const char *token = url + 3;
    size_t len = strcspn(token, "/");
    enum route route = route_endpoint(token + len);
    if (len != STORE_TOKEN_LEN || route == ROUTE_NOT_FOUND)
        return ROUTE_NOT_FOUND;
    memcpy(r->token, token, len);
    r->token[len] = '\0';
    r->has_token = true;
    return route;
}

/* Takes the token from `Authorization: Bearer <token>` when the path carries none. */
static void token_from_header(struct request *r)
{
    const char *auth =
        MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!auth || strncasecmp(auth, "Bearer ", 7) != 0)
        return;
    const char *t = auth + 7;
    while (*t == ' ')
        t++;
    size_t len = strlen(t);
    while (len > 0 && t[len - 1] == ' ')
        len--;
    if (len != STORE_TOKEN_LEN)
        return;
    memcpy(r->token, t, len);
    r->token[len] = '\0';
    r->has_token = true;
}

/*
 * Browser clients (the MCP Inspector, web IDEs) can only read the session
 * id if it is exposed; only an allowed Origin gets here at all.
 */
static void add_cors_headers(struct request *r, struct MHD_Response *resp)
{
    const char *origin = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Origin");
    /* A refused origin learns nothing it could use, not even which headers we take. */
    if (!origin || !is_origin_allowed(r->server, origin))
        return;
    MHD_add_response_header(resp, "Access-Control-Allow-Origin", origin);
    MHD_add_response_header(resp, "Vary", "Origin");
    MHD_add_response_header(resp, "Access-Control-Expose-Headers",
                            "Mcp-Session-Id, MCP-Protocol-Version, WWW-Authenticate");
    if (strcmp(r->method, "OPTIONS") == 0) {
        MHD_add_response_header(resp, "Access-Control-Allow-Methods", "GET, POST, DELETE, OPTIONS");
        MHD_add_response_header(resp, "Access-Control-Allow-Headers",
                                "Content-Type, Accept, Authorization, Mcp-Session-Id, "
                                "MCP-Protocol-Version, Last-Event-ID");
        MHD_add_response_header(resp, "Access-Control-Max-Age", "86400");
    }
}

/*
 * Queues a reply. Returns MHD_NO only when even that failed, which tells
 * libmicrohttpd to close the connection.
 */
static enum MHD_Result send_reply(struct request *r, struct mcp_reply *reply)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(
        reply->body_len, reply->body ? reply->body : (void *)"",
        reply->body ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    if (!resp)
        return MHD_NO; /* reply->body is still ours and freed with the request */
    reply->body = NULL;
    if (reply->content_type)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, reply->content_type);
    if (reply->session_id[0])
        MHD_add_response_header(resp, "Mcp-Session-Id", reply->session_id);
    if (reply->allow)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, reply->allow);
    if (reply->retry_after)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, reply->retry_after);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    add_cors_headers(r, resp);
    r->status = reply->status;
    enum MHD_Result ret = MHD_queue_response(r->conn, (unsigned int)reply->status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static enum MHD_Result send_text(struct request *r, int status, const char *content_type,
                                 const char *text)
{
    struct mcp_reply reply = {.status = status, .content_type = content_type};
    reply.body = strdup(text);
    if (!reply.body)
        return MHD_NO;
    reply.body_len = strlen(text);
    enum MHD_Result ret = send_reply(r, &reply);
    free(reply.body);
    return ret;
}

/*
 * Unknown, revoked and unopenable tokens all look like a missing page: no
 * hint, no OAuth.
 */
static enum MHD_Result send_not_found(struct request *r)
{
    return send_text(r, 404, "text/plain", "Not Found");
}

/* Streamable HTTP sink: the reply as JSON, or the whole exchange as an SSE stream. */
static bool sink_open_stream(void *ctx, const char *session_id, bool wants_priming)
{
    struct request *r = ctx;
    struct MHD_Response *resp = NULL;
    char prefix[24];
    snprintf(prefix, sizeof(prefix), "r%lu", r->id);
    if (sse_stream_create(r->server->hub, r->conn, prefix, &r->stream, &resp) != TM_OK)
        return false;
    if (session_id)
        MHD_add_response_header(resp, "Mcp-Session-Id", session_id);
    add_cors_headers(r, resp);
    r->status = 200;
    if (MHD_queue_response(r->conn, MHD_HTTP_OK, resp) != MHD_YES) {
        MHD_destroy_response(resp);
        sse_stream_release(&r->stream);
        return false;
    }
    MHD_destroy_response(resp);
    /* The 2025-11-25 priming event: an id with empty data, so the stream can be resumed. */
    if (wants_priming)
        sse_stream_send(r->stream, NULL, true, "", 0);
    return true;
}

static void sink_send(void *ctx, const char *json, size_t len)
{
    struct request *r = ctx;
    if (r->stream)
        sse_stream_send(r->stream, "message", true, json, len);
}

static void sink_done(void *ctx, struct mcp_reply *reply)
{
    struct request *r = ctx;
    if (r->stream) {
        if (!reply->is_cancelled && reply->body)
            sse_stream_send(r->stream, "message", true, reply->body, reply->body_len);
        free(reply->body);
        sse_stream_end(r->stream);
    } else {
        pthread_mutex_lock(&r->lock);
        r->reply = *reply;
        r->is_reply_ready = true;
        if (r->is_suspended) {
            r->is_suspended = false;
            MHD_resume_connection(r->conn);
        }
        pthread_mutex_unlock(&r->lock);
    }
    request_release(r);
}

/* Sends a reply that is ready now (a resumed call, or one that finished at once). */
static enum MHD_Result send_ready_reply(struct request *r)
{
    /* A cancelled call gets no JSON-RPC response: the connection just closes. */
    if (r->reply.is_cancelled)
        return MHD_NO;
    return send_reply(r, &r->reply);
}

/* Opens the session's server-to-client stream (GET): keep-alives, and a priming event. */
static enum MHD_Result open_get_stream(struct request *r, const struct mcp_reply *reply)
{
    struct MHD_Response *resp = NULL;
    struct sse_stream *stream = NULL;
    char prefix[24];
    snprintf(prefix, sizeof(prefix), "g%lu", r->id);
    if (sse_stream_create(r->server->hub, r->conn, prefix, &stream, &resp) != TM_OK)
        return MHD_NO;
    const char *sid = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Mcp-Session-Id");
    if (sid)
        MHD_add_response_header(resp, "Mcp-Session-Id", sid);
    add_cors_headers(r, resp);
    r->status = 200;
    enum MHD_Result ret = MHD_queue_response(r->conn, MHD_HTTP_OK, resp);
    MHD_destroy_response(resp);
    if (ret == MHD_YES && reply->wants_priming) {
        static const char retry[] = "retry: 3000\n\n";
        sse_stream_send_raw(stream, retry, sizeof(retry) - 1);
        sse_stream_send(stream, NULL, true, "", 0);
    }
    sse_stream_release(&stream);
    return ret;
}

/*
 * Finds the user the token names; false when it names none. The
 * credentials stay sealed: most requests (tools/list, ping, notifications)
 * never need them, and open_creds opens them for those that do. Whether
 * the request counts as a use is known only once it has been served
 * (count_use).
 */
static bool authenticate(struct request *r)
{
    if (!r->has_token)
        token_from_header(r);
    return r->has_token &&
           store_find_id(r->server->store, r->token, r->user_id, &r->sealed) == TM_OK;
}

/*
 * mcp.c asks for the credentials (mcp_request.open_creds) of the record
 * authenticate found; they live until the request ends.
 */
static const struct creds *open_creds(void *ctx)
{
    struct request *r = ctx;
    if (r->has_creds)
        return &r->creds;
    r->is_open_tried = true;
    if (store_open_sealed(r->server->store, r->sealed, &r->creds) != TM_OK)
        return NULL;
    r->has_creds = true;
    return &r->creds;
}

static bool accepts_event_stream(struct MHD_Connection *conn)
{
    const char *accept = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_ACCEPT);
    return accept && strcasestr(accept, "text/event-stream") != NULL;
}

/*
 * Applies the URL's rate limits to a POST. Returns true if it may go on;
 * otherwise the 429 (with Retry-After, and a JSON-RPC error saying when to
 * retry) is queued and *ret holds what to return to libmicrohttpd.
 */
static bool admit(struct request *r, enum MHD_Result *ret)
{
    int retry_after = 1;
    if (strcmp(r->method, "POST") != 0)
        return true;
    if (ratelimit_enter(r->server->rl, r->user_id, &retry_after)) {
        r->is_admitted = true;
        return true;
    }
    metrics_rate_limited();
    char body[200], seconds[16];
    snprintf(body, sizeof(body),
             "{\"jsonrpc\":\"2.0\",\"error\":{\"code\":-32000,\"message\":\"Rate limit "
             "exceeded for this URL: retry after %d s\",\"data\":{\"retryAfterSeconds\":%d}}}",
             retry_after, retry_after);
    snprintf(seconds, sizeof(seconds), "%d", retry_after);
    struct mcp_reply reply = {.status = 429, .content_type = "application/json"};
    reply.body = strdup(body);
    reply.body_len = reply.body ? strlen(body) : 0;
    reply.retry_after = seconds;
    *ret = reply.body ? send_reply(r, &reply) : MHD_NO;
    free(reply.body);
    log_msg(LOG_INFO, "event=rate_limited rid=%lu user=%s retry_after_s=%d", r->id, r->user_id,
            retry_after);
    return false;
}

static enum MHD_Result serve_mcp(struct request *r)
{
    struct http_server *h = r->server;
    struct mcp_request mreq = {
        .http_method = r->method,
        .user_id = r->user_id,
        .open_creds = open_creds,
        .open_creds_ctx = r,
        .session_id = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Mcp-Session-Id"),
        .protocol_version =
            MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "MCP-Protocol-Version"),
        .content_type =
            MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE),
        .accepts_sse = accepts_event_stream(r->conn),
        .body = r->body.data,
        .body_len = r->body.len,
        .request_id = r->id,
    };
    struct mcp_sink sink = {
        .open_stream = sink_open_stream, .send = sink_send, .done = sink_done, .ctx = r};
    struct mcp_reply reply;
    enum MHD_Result refused;
    if (!admit(r, &refused))
        return refused;
    r->is_pending = true;
    atomic_fetch_add(&r->refs, 1); /* the call's, should it go on after this returns */
    enum mcp_status status = mcp_handle(h->mcp, &mreq, &reply, &sink);
    if (status != MCP_PENDING) {
        /* Answered now: the call's reference and the suspension are not needed. */
        atomic_fetch_sub(&r->refs, 1);
        r->is_pending = false;
        if (status == MCP_NOT_FOUND)
            return send_not_found(r);
        enum MHD_Result ret =
            reply.is_event_stream ? open_get_stream(r, &reply) : send_reply(r, &reply);
        free(reply.body);
        return ret;
    }
    if (r->stream)
        return MHD_YES; /* the SSE response is queued; the call writes into it */
    pthread_mutex_lock(&r->lock);
    enum MHD_Result ret = MHD_YES;
    if (r->is_reply_ready) {
        ret = send_ready_reply(r);
    } else {
        MHD_suspend_connection(r->conn);
        r->is_suspended = true;
    }
    pthread_mutex_unlock(&r->lock);
    return ret;
}

/* HTTP+SSE (2024-11-05): every message, notifications and the reply, goes to the session stream. */
static bool legacy_open_stream(void *ctx, const char *session_id, bool wants_priming)
{
    struct request *r = ctx;
    return !sse_stream_is_gone(r->legacy->stream);
}

static void legacy_send(void *ctx, const char *json, size_t len)
{
    struct request *r = ctx;
    sse_stream_send(r->legacy->stream, "message", false, json, len);
}

static void legacy_done(void *ctx, struct mcp_reply *reply)
{
    struct request *r = ctx;
    if (!reply->is_cancelled && reply->body && reply->status == 200)
        sse_stream_send(r->legacy->stream, "message", false, reply->body, reply->body_len);
    free(reply->body);
    request_release(r);
}

static void legacy_unlist(struct legacy *l)
{
    struct http_server *h = l->server;
    pthread_mutex_lock(&h->legacy_lock);
    bool was_listed = l->is_listed;
    if (was_listed) {
        if (l->prev)
            l->prev->next = l->next;
        else
            h->legacy = l->next;
        if (l->next)
            l->next->prev = l->prev;
        l->is_listed = false;
    }
    pthread_mutex_unlock(&h->legacy_lock);
    if (was_listed)
        legacy_release(&l);
}

/* The stream of an HTTP+SSE session ended: so does the session. */
static void legacy_gone(void *ctx)
{
    struct legacy *l = ctx;
    mcp_close_session(l->server->mcp, l->session_id, l->user_id);
    legacy_unlist(l);
}

/* GET /sse: opens an HTTP+SSE session and tells the client where to POST. */
static enum MHD_Result serve_sse(struct request *r)
{
    struct http_server *h = r->server;
    if (strcmp(r->method, "GET") != 0) {
        /* 405 tells "HTTP first" clients given this URL to fall back to GET. */
        struct mcp_reply reply = {.status = 405, .allow = "GET"};
        return send_reply(r, &reply);
    }
    struct legacy *l = calloc(1, sizeof(*l));
    struct MHD_Response *resp = NULL;
    if (!l)
        return MHD_NO;
    l->server = h;
    atomic_init(&l->refs, 1);
    snprintf(l->user_id, sizeof(l->user_id), "%s", r->user_id);
    if (mcp_open_legacy_session(h->mcp, r->user_id, l->session_id) != TM_OK ||
        sse_stream_create(h->hub, r->conn, NULL, &l->stream, &resp) != TM_OK) {
        mcp_close_session(h->mcp, l->session_id, l->user_id);
        free(l);
        return MHD_NO;
    }
    pthread_mutex_lock(&h->legacy_lock);
    l->next = h->legacy;
    if (h->legacy)
        h->legacy->prev = l;
    h->legacy = l;
    l->is_listed = true;
    pthread_mutex_unlock(&h->legacy_lock);
    sse_stream_on_gone(l->stream, legacy_gone, l);
    /* Ours until this function returns, even if the stream ends at once. */
    atomic_fetch_add(&l->refs, 1);
    add_cors_headers(r, resp);
    r->status = 200;
    enum MHD_Result ret = MHD_queue_response(r->conn, MHD_HTTP_OK, resp);
    MHD_destroy_response(resp);
    /*
     * A relative endpoint replaces the path of the stream's URL, so it must
     * carry the token again (clients resolve it against the SSE URL and
     * keep only the same origin). Bearer clients send their header anyway.
     */
    char endpoint[160];
    int n = r->route_has_path_token
                ? snprintf(endpoint, sizeof(endpoint), "/u/%s/messages?sessionId=%s", r->token,
                           l->session_id)
                : snprintf(endpoint, sizeof(endpoint), "/messages?sessionId=%s", l->session_id);
    sse_stream_send(l->stream, "endpoint", false, endpoint, (size_t)n);
    sodium_memzero(endpoint, sizeof(endpoint));
    legacy_release(&l);
    return ret;
}

/* POST /messages?sessionId=...: one message of an HTTP+SSE session; answers go on its stream. */
static enum MHD_Result serve_messages(struct request *r)
{
    struct http_server *h = r->server;
    if (strcmp(r->method, "POST") != 0) {
        struct mcp_reply reply = {.status = 405, .allow = "POST"};
        return send_reply(r, &reply);
    }
    const char *sid = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, "sessionId");
    pthread_mutex_lock(&h->legacy_lock);
    for (struct legacy *l = h->legacy; sid && l; l = l->next) {
        if (strcmp(l->session_id, sid) == 0 && strcmp(l->user_id, r->user_id) == 0) {
            atomic_fetch_add(&l->refs, 1);
            r->legacy = l;
            break;
        }
    }
    pthread_mutex_unlock(&h->legacy_lock);
    if (!r->legacy)
        return send_text(r, 404, "text/plain", "Session not found\n");
    struct mcp_request mreq = {
        .http_method = "POST",
        .user_id = r->user_id,
        .open_creds = open_creds,
        .open_creds_ctx = r,
        .session_id = r->legacy->session_id,
        .protocol_version =
            MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "MCP-Protocol-Version"),
        .content_type =
            MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE),
        .accepts_sse = true,
        .is_legacy = true,
        .body = r->body.data,
        .body_len = r->body.len,
        .request_id = r->id,
    };
    struct mcp_sink sink = {
        .open_stream = legacy_open_stream, .send = legacy_send, .done = legacy_done, .ctx = r};
    struct mcp_reply reply;
    atomic_fetch_add(&r->refs, 1);
    enum mcp_status status = mcp_handle(h->mcp, &mreq, &reply, &sink);
    if (status != MCP_PENDING) {
        atomic_fetch_sub(&r->refs, 1);
        if (status == MCP_NOT_FOUND)
            return send_not_found(r);
        /* Transport errors answer the POST itself; JSON-RPC answers go on the stream. */
        if (reply.status != 200 && reply.status != 202) {
            enum MHD_Result ret = send_reply(r, &reply);
            free(reply.body);
            return ret;
        }
        if (reply.body)
            sse_stream_send(r->legacy->stream, "message", false, reply.body, reply.body_len);
        free(reply.body);
    }
    return send_text(r, 202, "text/plain", "Accepted");
}

static long long store_bytes(const char *data_dir)
{
    static const char *const files[] = {"store.db", "store.db-wal"};
    long long total = 0;
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        char path[4096];
        struct stat st;
        snprintf(path, sizeof(path), "%s/%s", data_dir, files[i]);
        if (stat(path, &st) == 0)
            total += (long long)st.st_size;
        else if (i == 0)
            return -1;
    }
    return total;
}

static enum MHD_Result serve_metrics(struct request *r)
{
    struct http_server *h = r->server;
    struct metrics_gauges g = {
        .sessions = mcp_session_count(h->mcp),
        .streams = sse_hub_count(h->hub),
        .calls_in_flight = mcp_calls_in_flight(h->mcp),
        .store_bytes = store_bytes(h->cfg->data_dir),
    };
    struct mcp_reply reply = {.status = 200,
                              .content_type = "text/plain; version=0.0.4; charset=utf-8"};
    reply.body = metrics_render(&g);
    if (!reply.body)
        return MHD_NO;
    reply.body_len = strlen(reply.body);
    enum MHD_Result ret = send_reply(r, &reply);
    free(reply.body);
    return ret;
}

/*
 * Our pages are served with Referrer-Policy: no-referrer, under which a
 * browser sends "Origin: null" with the page's own form posts. Sec-Fetch-Site,
 * which no page can set, says whether it really is our page; the CSRF token
 * checks the rest (web.c).
 */
static bool is_own_page_post(struct request *r)
{
    const char *origin = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Origin");
    const char *site = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Sec-Fetch-Site");
    return r->route == ROUTE_WEB && origin && strcmp(origin, "null") == 0 && site &&
           strcmp(site, "same-origin") == 0;
}

/* The pages' Turso check finished (any thread): resume the connection to finish it. */
static void web_wake(void *ctx)
{
    struct request *r = ctx;
    pthread_mutex_lock(&r->lock);
    r->is_reply_ready = true;
    if (r->is_suspended) {
        r->is_suspended = false;
        MHD_resume_connection(r->conn);
    }
    pthread_mutex_unlock(&r->lock);
    request_release(r);
}

/* Finishes a page whose check is done, on this MHD thread, and sends it. */
static enum MHD_Result send_web_ready(struct request *r)
{
    struct web_reply reply;
    pthread_mutex_lock(&r->lock);
    bool is_ready = r->is_reply_ready;
    pthread_mutex_unlock(&r->lock);
    if (!is_ready)
        return MHD_YES;
    r->is_pending = false;
    web_resume(r->server->web, &r->web_call, &reply);
    return web_send(r->conn, &reply, &r->status);
}

/* GET /, POST /signup, /u/<token>/ and the assets: web.c answers, perhaps after a Turso check. */
static enum MHD_Result serve_web(struct request *r)
{
    if (r->is_too_large)
        return send_text(r, 413, "text/plain", "The form is too large.\n");
    struct web_request wreq = {
        .method = r->method,
        .path = r->web_path,
        .token = r->has_token ? r->token : NULL,
        .content_type =
            MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE),
        .accept = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_ACCEPT),
        .csrf_cookie = MHD_lookup_connection_value(r->conn, MHD_COOKIE_KIND, "tm_csrf"),
        .fetch_site = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Sec-Fetch-Site"),
        .host = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_HOST),
        .body = r->body.data,
        .body_len = r->body.len,
        .request_id = r->id,
    };
    struct web_reply reply;
    r->is_pending = true;
    atomic_fetch_add(&r->refs, 1); /* the check's, released by web_wake */
    if (web_handle(r->server->web, &wreq, &reply, &r->web_call, web_wake, r) == WEB_DONE) {
        atomic_fetch_sub(&r->refs, 1);
        r->is_pending = false;
        return web_send(r->conn, &reply, &r->status);
    }
    pthread_mutex_lock(&r->lock);
    bool is_ready = r->is_reply_ready;
    if (!is_ready) {
        MHD_suspend_connection(r->conn);
        r->is_suspended = true;
    }
    pthread_mutex_unlock(&r->lock);
    return is_ready ? send_web_ready(r) : MHD_YES;
}

/* A request to a user's URL, once the token has named the user. */
static enum MHD_Result serve_user(struct request *r)
{
    switch (r->route) {
    case ROUTE_MCP:
        return serve_mcp(r);
    case ROUTE_SSE:
        return serve_sse(r);
    case ROUTE_MESSAGES:
        return serve_messages(r);
    default:
        return send_not_found(r);
    }
}

/*
 * Counts a served request as a use of its URL (last_used_at), unless it
 * tried to open the credentials: store_open_sealed counted it then if the
 * record opened, and a record that does not open is no use. The rest
 * (tools/list, ping, notifications, streams) never decrypt: the URL check
 * is all their use. Runs on the request's thread after serving, when any
 * open_creds has run (mcp_handle calls it before it returns).
 */
static void count_use(struct request *r)
{
    if (!r->is_open_tried)
        store_count_use(r->server->store, r->sealed);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    struct http_server *h = cls;
    struct request *r = *con_cls;
    if (!r) {
        r = calloc(1, sizeof(*r));
        if (!r)
            return MHD_NO;
        r->server = h;
        r->conn = conn;
        r->id = atomic_fetch_add(&h->next_request_id, 1) + 1;
        clock_gettime(CLOCK_MONOTONIC, &r->started);
        pthread_mutex_init(&r->lock, NULL);
        atomic_init(&r->refs, 1);
        buf_init(&r->body, (size_t)h->cfg->max_body_bytes);
        size_t method_len = strnlen(method, sizeof(r->method) - 1);
        memcpy(r->method, method, method_len); /* r is zeroed: the NUL is there */
        log_mask_path(url, r->masked_path, sizeof(r->masked_path));
        r->route = route_path(url, r);
        r->route_has_path_token = r->has_token;
        *con_cls = r;
        return MHD_YES;
    }
    if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (r->is_too_large)
            return MHD_YES;
        if (!buf_add(&r->body, upload_data, n)) {
            if (r->body.is_failed)
                return MHD_NO;
            /* Over the cap: drop what came (wiped) and the rest; the reply is 413. */
            r->is_too_large = true;
            buf_cleanup(&r->body);
        }
        return MHD_YES;
    }
    if (r->is_pending && r->route == ROUTE_WEB)
        return send_web_ready(r);
    if (r->is_pending) {
        /* Resumed: the reply arrived from a transport callback thread. */
        pthread_mutex_lock(&r->lock);
        enum MHD_Result ret = r->is_reply_ready ? send_ready_reply(r) : MHD_YES;
        pthread_mutex_unlock(&r->lock);
        return ret;
    }
    /*
     * Health probes (Docker's HEALTHCHECK, load balancers, Kubernetes) and
     * metrics scrapers name the server by whatever address reaches it, and
     * what they read (liveness, counts) tells a rebinding page nothing, so
     * these answer before the Host and Origin checks.
     */
    if (r->route == ROUTE_HEALTHZ)
        return send_text(r, 200, "text/plain", "ok\n");
    if (r->route == ROUTE_READYZ)
        return atomic_load(&h->is_stopping) ? send_text(r, 503, "text/plain", "stopping\n")
                                            : send_text(r, 200, "text/plain", "ready\n");
    if (r->route == ROUTE_METRICS)
        return serve_metrics(r);
    if (!is_host_allowed(h, MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Host")))
        return send_text(r, 421, "text/plain", "Misdirected Request: unknown Host\n");
    if (!is_origin_allowed(h, MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Origin")) &&
        !is_own_page_post(r))
        return send_text(r, 403, "application/json",
                         "{\"jsonrpc\":\"2.0\",\"error\":{\"code\":-32000,\"message\":"
                         "\"Forbidden: Origin not allowed\"}}");
    if (r->route == ROUTE_WEB)
        return serve_web(r);
    if (r->route == ROUTE_NOT_FOUND)
        return send_not_found(r);
    if (strcmp(r->method, "OPTIONS") == 0)
        return send_text(r, 204, NULL, "");
    if (r->is_too_large) {
        char text[160];
        snprintf(text, sizeof(text),
                 "{\"jsonrpc\":\"2.0\",\"error\":{\"code\":-32600,\"message\":\"Request body "
                 "larger than %ld bytes\"}}",
                 h->cfg->max_body_bytes);
        return send_text(r, 413, "application/json", text);
    }
    if (!authenticate(r))
        return send_not_found(r);
    enum MHD_Result ret = serve_user(r);
    count_use(r);
    return ret;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct request *r = *con_cls;
    if (!r)
        return;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    double ms = (double)(now.tv_sec - r->started.tv_sec) * 1e3 +
                (double)(now.tv_nsec - r->started.tv_nsec) / 1e6;
    metrics_http(r->status);
    log_msg(toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? LOG_DEBUG : LOG_INFO,
            "event=http rid=%lu method=%s path=%s status=%d user=%s duration_ms=%.2f%s", r->id,
            r->method, r->masked_path, r->status, r->sealed ? r->user_id : "-", ms,
            toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " aborted=1");
    request_release(r);
    *con_cls = NULL;
}

static void free_server(struct http_server *h)
{
    sse_hub_destroy(&h->hub);
    ratelimit_destroy(&h->rl);
    pthread_mutex_destroy(&h->legacy_lock);
    free(h->public_origin);
    free(h->public_host);
    free(h);
}

/* Works out the public origin and Host from the public URL, and whether the bind is loopback. */
static enum tm_err set_public_names(struct http_server *h)
{
    const char *lh = h->cfg->listen_host;
    h->is_loopback =
        strcmp(lh, "localhost") == 0 || strncmp(lh, "127.", 4) == 0 || strcmp(lh, "::1") == 0;
    if (!h->cfg->public_url || !*h->cfg->public_url)
        return TM_OK;
    const char *url = h->cfg->public_url;
    const char *scheme_end = strstr(url, "://");
    if (!scheme_end)
        return TM_OK;
    const char *host = scheme_end + 3;
    size_t host_len = strcspn(host, "/?#");
    h->public_origin = strndup(url, (size_t)(host + host_len - url));
    h->public_host = strndup(host, host_len);
    return h->public_origin && h->public_host ? TM_OK : TM_ERR_NOMEM;
}

enum tm_err http_server_start(const struct config *cfg, struct store *store, struct mcp_server *mcp,
                              struct web *web, struct http_server **out)
{
    struct http_server *h = calloc(1, sizeof(*h));
    if (!h)
        return TM_ERR_NOMEM;
    h->cfg = cfg;
    h->store = store;
    h->mcp = mcp;
    h->web = web;
    h->quiesced_fd = MHD_INVALID_SOCKET;
    pthread_mutex_init(&h->legacy_lock, NULL);
    if (sse_hub_start(cfg->sse_keepalive_seconds * 1000, (size_t)cfg->max_body_bytes * 2,
                      &h->hub) != TM_OK ||
        ratelimit_create((double)cfg->rate_limit_rps, (double)cfg->rate_limit_burst,
                         cfg->max_concurrent_calls, &h->rl) != TM_OK ||
        set_public_names(h) != TM_OK) {
        free_server(h);
        return TM_ERR_NOMEM;
    }

    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *ai = NULL;
    char port[8];
    snprintf(port, sizeof(port), "%d", cfg->listen_port);
    int gai = getaddrinfo(cfg->listen_host, port, &hints, &ai);
    if (gai != 0) {
        log_msg(LOG_ERROR, "event=listen_failed host=%s reason=\"%s\"", cfg->listen_host,
                gai_strerror(gai));
        free_server(h);
        return TM_ERR_INVALID;
    }
    unsigned int flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL |
                         MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
    if (ai->ai_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    /* The logger goes first so that no message escapes to libmicrohttpd's own stderr writer. */
    h->daemon = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, h, MHD_OPTION_EXTERNAL_LOGGER, mhd_logger, h,
        MHD_OPTION_SOCK_ADDR, ai->ai_addr, MHD_OPTION_THREAD_POOL_SIZE, (unsigned int)cfg->threads,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned int)cfg->max_connections,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)cfg->connection_memory_bytes,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)120, MHD_OPTION_NOTIFY_COMPLETED, on_completed,
        h, MHD_OPTION_LISTENING_ADDRESS_REUSE, (unsigned int)1, MHD_OPTION_END);
    freeaddrinfo(ai);
    if (!h->daemon) {
        log_msg(LOG_ERROR, "event=listen_failed host=%s port=%d", cfg->listen_host,
                cfg->listen_port);
        free_server(h);
        return TM_ERR_IO;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(h->daemon, MHD_DAEMON_INFO_BIND_PORT);
    h->port = info ? (int)info->port : cfg->listen_port;
    *out = h;
    return TM_OK;
}

int http_server_port(const struct http_server *h)
{
    return h->port;
}

void http_server_quiesce(struct http_server *h)
{
    if (!h || !h->daemon)
        return;
    atomic_store(&h->is_stopping, true);
    /* The daemon's threads may still look at the socket until it stops; close it after. */
    h->quiesced_fd = MHD_quiesce_daemon(h->daemon);
}

void http_server_end_streams(struct http_server *h)
{
    if (h)
        sse_hub_end_all(h->hub);
}

size_t http_server_open_streams(struct http_server *h)
{
    return h ? sse_hub_count(h->hub) : 0;
}

void http_server_stop(struct http_server **hp)
{
    if (!hp || !*hp)
        return;
    struct http_server *h = *hp;
    if (h->daemon)
        MHD_stop_daemon(h->daemon);
    if (h->quiesced_fd != MHD_INVALID_SOCKET)
        close(h->quiesced_fd);
    free_server(h);
    *hp = NULL;
}
