/*
 * Reaching a user's database for one call: which host, with which token.
 * A URL's credentials may carry a database URL with its token, a Platform
 * API token with its organization, or both. With a Platform API token the
 * database's host comes from the Platform API and short-lived database
 * tokens are minted (read-only ones for a read-only URL) and cached in
 * memory until shortly before they expire; a 401 on a minted token mints
 * anew and retries once. Minted tokens never leave this module.
 * Thread: any; callbacks run on the transport thread.
 */
#ifndef TM_DBACCESS_H
#define TM_DBACCESS_H

#include <jansson.h>
#include <stdbool.h>

#include "creds.h"
#include "hrana.h"
#include "tm_err.h"
#include "turso_transport.h"

struct dbaccess;

struct dbaccess_opts {
    struct turso_transport *transport; /* borrowed; outlives the dbaccess */
    const char *api_url;               /* Platform API base, e.g. https://api.turso.tech */
    const char *db_scheme;             /* "https" (default) or "http", for a database Hostname */
};

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
 * tokens) rather than by the server's own checks.
 */
bool dbaccess_is_read_only_enforced(const struct creds *c);

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

#endif
