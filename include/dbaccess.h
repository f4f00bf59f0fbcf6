/*
 * Reaching a user's database for one call: which host, with which token.
 * A URL's credentials may carry a database URL with its token, a Platform
 * API token with its organization, or both. With a Platform API token the
 * database's host comes from the Platform API and short-lived database
 * tokens are minted (read-only ones for a read-only URL) and cached in
 * memory until shortly before they expire; a 401 on a minted token mints
 * anew and retries once. Minted tokens never leave this module.
 * Thread: any; callbacks run on the transport's callback threads.
 */
#ifndef TM_DBACCESS_H
#define TM_DBACCESS_H

#include <jansson.h>
#include <stdbool.h>

#include "creds.h"
#include "hrana.h"
#include "platform.h"
#include "tm_err.h"
#include "turso_transport.h"

struct dbaccess;

struct dbaccess_opts {
    struct turso_transport *transport; /* borrowed; outlives the dbaccess */
    const char *api_url;               /* Platform API base, e.g. https://api.turso.tech */
    const char *db_scheme;             /* "https" (default) or "http", for a database Hostname */
};

/* TM_ERR_INVALID when api_url is not http(s):// or db_scheme is neither http nor https. */
enum tm_err dbaccess_create(const struct dbaccess_opts *opts, struct dbaccess **out);

/* Frees the token cache (wiping it); clears *d; accepts NULL. */
void dbaccess_destroy(struct dbaccess **d);

/*
 * The database a call means: `name` if given, else the URL's default
 * database; NULL when neither is known (then the URL's database URL is
 * meant). Borrowed from `c` or `name`.
 */
const char *dbaccess_database_name(const struct creds *c, const char *name);

/*
 * True when a read-only URL is enforced by Turso itself (minted read-only
 * tokens) rather than by the server's own checks, for every database the
 * URL reaches: it has a Platform API token and no database URL of its own
 * (whose token could be read-write).
 */
bool dbaccess_is_read_only_enforced(const struct creds *c);

/*
 * True when database `name` (NULL: the default) of `c` is reached through
 * the Platform API: its host looked up, its tokens minted (read-only ones
 * for a read-only URL). The default database, or a name equal to
 * default_db, goes to the URL's database URL when it has one.
 */
bool dbaccess_uses_platform(const struct creds *c, const char *name);

/* The Platform API client (borrowed; lives as long as `d`). */
struct platform *dbaccess_platform(struct dbaccess *d);

/*
 * Drops every cached host and token of database `name` in organization
 * `org`, whoever minted them: after the database was deleted or created
 * again, or its tokens rotated. Thread: any.
 */
void dbaccess_forget(struct dbaccess *d, const char *org, const char *name);

/*
 * Runs `requests` (borrowed) as one Hrana pipeline on database `name` (NULL:
 * the default) of `c` (borrowed until `done` runs). Errors before sending
 * (no such database for these credentials, no way to reach one) come back
 * through `done` too, with err set and a clear message, so callers handle
 * one path. Returns TM_OK when `done` will run exactly once; otherwise
 * (out of memory) it will not.
 */
enum tm_err dbaccess_pipeline(struct dbaccess *d, const struct creds *c, const char *name,
                              const json_t *requests, long timeout_ms, hrana_done_fn done,
                              void *ctx);

/*
 * dbaccess_pipeline with `raw` offered each 2xx answer first (see
 * hrana_pipeline_raw) where the database is reached directly; on the
 * Platform API path `raw` is not used. When `raw` returns true, `done`
 * does not run: exactly one of them ends the call.
 */
enum tm_err dbaccess_pipeline_raw(struct dbaccess *d, const struct creds *c, const char *name,
                                  const json_t *requests, long timeout_ms, hrana_raw_fn raw,
                                  hrana_done_fn done, void *ctx);

/* What a GET on a database host ends with. */
struct dbaccess_get_outcome {
    enum tm_err err;     /* TM_OK when an HTTP status arrived, whatever it was */
    long http_status;    /* 0 when err != TM_OK */
    const char *body;    /* the response body (NUL-terminated), valid during the callback */
    size_t body_len;     /* bytes in body */
    const char *message; /* when err != TM_OK: a clear, secret-free explanation */
};

/* Runs on a transport callback thread (or on the caller's, for a failure found before sending). */
typedef void (*dbaccess_get_fn)(const struct dbaccess_get_outcome *o, void *ctx);

/*
 * GETs `path` (e.g. "/dump", escaped by the caller) on the host of database
 * `name` (NULL: the default) of `c`, with the same token a pipeline would
 * use; a 401 on a minted token mints anew and retries once, as for
 * pipelines. The same return contract as dbaccess_pipeline.
 */
enum tm_err dbaccess_get(struct dbaccess *d, const struct creds *c, const char *name,
                         const char *path, long timeout_ms, dbaccess_get_fn done, void *ctx);

#endif
