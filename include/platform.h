/*
 * The Turso Platform API client (turso-api.md §3): one HTTP call to
 * <api_url><path> with a Platform API token as Bearer, its JSON answer
 * parsed, and every failure (transport, HTTP status, unreadable body)
 * turned into one clear message that never holds a token.
 *
 * It knows nothing of MCP. Thread: any; callbacks run on the transport's callback threads.
 */
#ifndef TM_PLATFORM_H
#define TM_PLATFORM_H

#include <jansson.h>
#include <stddef.h>

#include "tm_err.h"
#include "turso_transport.h"

struct platform;

struct platform_opts {
    struct turso_transport *transport; /* borrowed; outlives the platform client */
    const char *api_url;               /* e.g. https://api.turso.tech; NULL: that one */
};

/* TM_ERR_INVALID when api_url is not an http:// or https:// URL. */
enum tm_err platform_create(const struct platform_opts *opts, struct platform **out);

/* Clears *p; accepts NULL. */
void platform_destroy(struct platform **p);

/* The base URL without a trailing slash (borrowed; lives as long as `p`). */
const char *platform_api_url(const struct platform *p);

/*
 * Writes `fmt` to `out` (out_len bytes, NUL-terminated), with each `%s`
 * argument percent-escaped (everything but A-Z a-z 0-9 - . _ ~), so an
 * organization, database or group name can never change the path. Only
 * `%s` and `%%` are understood. TM_ERR_TOO_LARGE when out is too small,
 * TM_ERR_INVALID for a NULL argument.
 */
enum tm_err platform_path(char *out, size_t out_len, const char *fmt, ...);

/*
 * Appends `key=value` (value escaped) to the path in `out`, after `?` or
 * `&` as needed. Does nothing when value is NULL. TM_ERR_TOO_LARGE when
 * out is too small (then out is unchanged).
 */
enum tm_err platform_query_add(char *out, size_t out_len, const char *key, const char *value);

struct platform_request {
    const char *method; /* GET, POST, PATCH or DELETE */
    const char *path;   /* "/v1/...", with any query, escaped (platform_path) */
    const json_t *body; /* sent as JSON, or NULL; serialised during the call */
    long timeout_ms;    /* 0: the transport's default */
};

struct platform_reply {
    /*
     * TM_OK for a 2xx answer whose body is JSON or empty. Otherwise:
     * TM_ERR_DENIED (401, 403), TM_ERR_NOT_FOUND (404), TM_ERR_EXISTS (409),
     * TM_ERR_INVALID (400, 422), TM_ERR_UPSTREAM (other statuses and
     * unreadable bodies), or the transport's error when no status arrived.
     */
    enum tm_err err;
    long status; /* the HTTP status, 0 when none arrived */
    /*
     * On TM_OK the parsed body (NULL when it was empty), a new reference
     * the callback owns: decref it, or keep it on that thread.
     * Another thread needs a json_deep_copy (jansson refcounts are not
     * atomic).
     */
    json_t *json;
    /* When err != TM_OK: a clear, secret-free message, valid during the call. */
    const char *message;
};

typedef void (*platform_done_fn)(struct platform_reply *r, void *ctx);

/*
 * Sends `req` with `token` (copied, wiped after use) as Bearer. On TM_OK
 * `done` runs exactly once, on a transport callback thread; otherwise never.
 */
enum tm_err platform_call(struct platform *p, const char *token, const struct platform_request *req,
                          platform_done_fn done, void *ctx);

/*
 * Blocking form for the command line; never call it on the transport
 * thread. *json_out gets a new reference to the body on TM_OK (NULL when
 * empty); *status the HTTP status; `message` explains any failure.
 */
enum tm_err platform_call_sync(struct platform *p, const char *token,
                               const struct platform_request *req, long *status, json_t **json_out,
                               char *message, size_t message_len);

/*
 * Reads the claims of a Turso JWT without checking its signature
 * (turso-api.md §2.2): *exp gets `exp` (Unix seconds, 0 when absent: the
 * token never expires) and access (4 bytes) "ro", "rw" or "" when the
 * claim is absent. TM_ERR_INVALID when `jwt` is not a JWT.
 */
enum tm_err platform_jwt_claims(const char *jwt, long long *exp, char access[4]);

#endif
