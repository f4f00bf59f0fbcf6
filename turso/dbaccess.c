/*
 * Database access for one call. A database URL in the credentials is used
 * as it is; the Platform API path (host lookup, minted tokens and their
 * cache) sits beside it. Failures found before anything is sent are
 * delivered through the same callback as Turso's own, so that every tool
 * has one error path.
 */
#include "dbaccess.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct dbaccess {
    struct turso_transport *transport; /* borrowed */
    char *api_url;
    char *db_scheme;
};

enum tm_err dbaccess_create(const struct dbaccess_opts *opts, struct dbaccess **out)
{
    struct dbaccess *d = calloc(1, sizeof(*d));
    if (!d)
        return TM_ERR_NOMEM;
    d->transport = opts->transport;
    d->api_url = strdup(opts->api_url ? opts->api_url : "https://api.turso.tech");
    d->db_scheme = strdup(opts->db_scheme ? opts->db_scheme : "https");
    if (!d->api_url || !d->db_scheme) {
        dbaccess_destroy(&d);
        return TM_ERR_NOMEM;
    }
    *out = d;
    return TM_OK;
}

void dbaccess_destroy(struct dbaccess **dp)
{
    if (!dp || !*dp)
        return;
    struct dbaccess *d = *dp;
    free(d->api_url);
    free(d->db_scheme);
    free(d);
    *dp = NULL;
}

const char *dbaccess_database_name(const struct creds *c, const char *name)
{
    return name && *name ? name : c->default_db;
}

bool dbaccess_is_read_only_enforced(const struct creds *c)
{
    return c->platform_token != NULL;
}

/* Delivers a failure found before sending, through the caller's callback. */
static enum tm_err fail(enum tm_err err, const char *message, hrana_done_fn done, void *ctx)
{
    struct hrana_outcome o = {.err = err, .message = message};
    done(&o, ctx);
    return TM_OK;
}

enum tm_err dbaccess_pipeline(struct dbaccess *d, const struct creds *c, const char *name,
                              const json_t *requests, long timeout_ms, hrana_done_fn done,
                              void *ctx)
{
    char message[300];
    const char *db = dbaccess_database_name(c, name);
    bool is_default = !name || !*name || (c->default_db && strcmp(name, c->default_db) == 0);
    if (c->db_url && is_default)
        return hrana_pipeline(d->transport, c->db_url, c->db_token, requests, timeout_ms, done,
                              ctx);
    if (c->db_url) {
        snprintf(message, sizeof(message),
                 "This URL reaches only its own database%s%s%s, not \"%.64s\".",
                 c->default_db ? " \"" : "", c->default_db ? c->default_db : "",
                 c->default_db ? "\"" : "", db);
        return fail(TM_ERR_NOT_FOUND, message, done, ctx);
    }
    return fail(TM_ERR_NOT_FOUND,
                "This URL was set up without a database URL, so it cannot run SQL.", done, ctx);
}
