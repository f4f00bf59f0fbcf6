/*
 * The credential checks of credcheck.h: a `SELECT 1` pipeline for a database
 * URL, then `GET /v1/organizations` for a Platform token, chained from the
 * first one's callback, on a transport callback thread or on the thread that
 * drove the connection (see callbacks_never_block). Messages come from
 * hrana.c or are written here; neither ever holds a token.
 */
#include "credcheck.h"

#include "redact.h"

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hrana.h"

/* One check in flight; freed right after `done` returns. */
struct check {
    struct turso_transport *t;
    const struct creds *c; /* borrowed until done */
    char *api_url;
    long timeout_ms;
    credcheck_done_fn done;
    void *ctx;
};

/* Hands the verdict over, its message redacted: Turso's words may echo what it was sent. */
static void check_finish(struct check *k, const struct credcheck_result *r)
{
    struct credcheck_result shown = *r;
    redact_message(shown.message, k->c->platform_token);
    redact_message(shown.message, k->c->db_token);
    k->done(&shown, k->ctx);
    free(k->api_url);
    free(k);
}

/*
 * True when the organization list (a bare array or {"organizations": [...]})
 * has `slug`; the slugs it has instead go to `seen`, so the refusal can say.
 */
static bool org_listed(const char *body, size_t len, const char *slug, bool *is_readable,
                       char *seen, size_t seen_len)
{
    size_t used = 0;
    seen[0] = '\0';
    json_t *root = json_loadb(body, len, 0, NULL);
    json_t *list = json_is_array(root) ? root : json_object_get(root, "organizations");
    bool found = false;
    size_t i;
    json_t *org;

    *is_readable = json_is_array(list);
    json_array_foreach(list, i, org)
    {
        const char *s = json_string_value(json_object_get(org, "slug"));
        if (s && strcmp(s, slug) == 0)
            found = true;
        else if (s && used < seen_len) {
            int n = snprintf(seen + used, seen_len - used, "%s%.64s", used ? ", " : "", s);
            used = n < 0 ? seen_len : used + (size_t)n;
        }
    }
    json_decref(root);
    return found;
}

static void platform_done(const struct turso_reply *reply, void *ctx)
{
    struct check *k = ctx;
    struct credcheck_result r = {.verdict = CREDCHECK_OK, .what = "platform"};
    bool is_readable = false;
    char seen[200];

    if (reply->err != TM_OK) {
        r.verdict = reply->err == TM_ERR_NETWORK || reply->err == TM_ERR_TIMEOUT
                        ? CREDCHECK_UNREACHABLE
                        : CREDCHECK_FAILED;
        snprintf(r.message, sizeof(r.message),
                 "The Turso Platform API could not be reached at %s: %s", k->api_url,
                 reply->message);
    } else if (reply->status == 401 || reply->status == 403) {
        json_t *body = json_loadb(reply->body, reply->body_len, 0, NULL);
        const char *why = json_string_value(json_object_get(body, "error"));
        r.verdict = CREDCHECK_REFUSED;
        snprintf(r.message, sizeof(r.message),
                 "The Turso Platform API refused this token (HTTP %ld): %.200s", reply->status,
                 why ? why : "no reason given");
        json_decref(body);
    } else if (reply->status != 200) {
        r.verdict = CREDCHECK_FAILED;
        snprintf(r.message, sizeof(r.message),
                 "The Turso Platform API at %s answered HTTP %ld to GET /v1/organizations",
                 k->api_url, reply->status);
    } else if (!org_listed(reply->body, reply->body_len, k->c->org, &is_readable, seen,
                           sizeof(seen)) &&
               is_readable) {
        /* An answer we cannot read is not held against the token: its status said yes. */
        r.verdict = CREDCHECK_REFUSED;
        snprintf(r.message, sizeof(r.message),
                 "This Platform API token cannot see the organization \"%.100s\"%s%s%s", k->c->org,
                 seen[0] ? " (it sees: " : "", seen, seen[0] ? ")" : "");
    }
    check_finish(k, &r);
}

/* Starts the Platform check; on failure to submit, finishes with the reason. */
static void start_platform(struct check *k)
{
    char url[1024];
    struct turso_request req = {
        .method = "GET", .url = url, .bearer = k->c->platform_token, .timeout_ms = k->timeout_ms};
    struct credcheck_result r = {.verdict = CREDCHECK_FAILED, .what = "platform"};

    if ((size_t)snprintf(url, sizeof(url), "%s/v1/organizations", k->api_url) >= sizeof(url)) {
        snprintf(r.message, sizeof(r.message), "The Platform API URL is too long");
        check_finish(k, &r);
        return;
    }
    enum tm_err err = turso_transport_submit(k->t, &req, platform_done, k);
    if (err != TM_OK) {
        snprintf(r.message, sizeof(r.message), "Could not ask the Turso Platform API: %s",
                 tm_err_message(err));
        check_finish(k, &r);
    }
}

static void database_done(const struct hrana_outcome *o, void *ctx)
{
    struct check *k = ctx;
    struct credcheck_result r = {.verdict = CREDCHECK_OK, .what = "database"};

    if (o->err != TM_OK) {
        if (o->http_status == 401 || o->http_status == 403)
            r.verdict = CREDCHECK_REFUSED;
        else if (o->http_status == 0 && (o->err == TM_ERR_NETWORK || o->err == TM_ERR_TIMEOUT))
            r.verdict = CREDCHECK_UNREACHABLE;
        else
            r.verdict = CREDCHECK_FAILED;
        snprintf(r.message, sizeof(r.message), "%s", o->message ? o->message : "no answer");
    } else {
        json_t *response = NULL;
        const char *emsg = NULL, *code = NULL;
        if (hrana_result_get(json_array_get(o->results, 0), &response, &emsg, &code) != TM_OK) {
            r.verdict = CREDCHECK_FAILED;
            snprintf(r.message, sizeof(r.message), "SELECT 1 failed: %.400s",
                     emsg ? emsg : "unreadable answer");
        }
    }
    if (r.verdict == CREDCHECK_OK && k->c->platform_token) {
        start_platform(k);
        return;
    }
    check_finish(k, &r);
}

enum tm_err credcheck_start(struct turso_transport *t, const char *api_url, const struct creds *c,
                            long timeout_ms, credcheck_done_fn done, void *ctx)
{
    enum tm_err err = TM_ERR_NOMEM;
    struct check *k = NULL;
    json_t *requests = NULL;

    if (!t || !c || !done || (!c->db_url && !c->platform_token) ||
        (c->platform_token && (!c->org || !api_url)))
        return TM_ERR_INVALID;
    k = calloc(1, sizeof(*k));
    if (!k)
        goto out;
    k->t = t;
    k->c = c;
    k->timeout_ms = timeout_ms;
    k->done = done;
    k->ctx = ctx;
    if (api_url) {
        k->api_url = strdup(api_url);
        if (!k->api_url)
            goto out;
        /* "https://api.turso.tech/" and "https://api.turso.tech" name the same API. */
        size_t n = strlen(k->api_url);
        while (n > 0 && k->api_url[n - 1] == '/')
            k->api_url[--n] = '\0';
    }
    if (!c->db_url) {
        char url[1024];
        struct turso_request req = {
            .method = "GET", .url = url, .bearer = c->platform_token, .timeout_ms = timeout_ms};
        if ((size_t)snprintf(url, sizeof(url), "%s/v1/organizations", k->api_url) >= sizeof(url)) {
            err = TM_ERR_INVALID;
            goto out;
        }
        err = turso_transport_submit(t, &req, platform_done, k);
    } else {
        requests = json_pack("[{s:s, s:{s:s}}]", "type", "execute", "stmt", "sql", "SELECT 1");
        if (!requests)
            goto out;
        err = hrana_pipeline(t, c->db_url, c->db_token, requests, timeout_ms, database_done, k);
    }
    if (err != TM_OK)
        goto out;
    k = NULL;
out:
    json_decref(requests);
    if (k) {
        free(k->api_url);
        free(k);
    }
    return err;
}

/* Where credcheck_run waits; lives on the caller's stack. */
struct run_wait {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool is_done; /* guarded by lock */
    struct credcheck_result result;
};

static void run_done(const struct credcheck_result *r, void *ctx)
{
    struct run_wait *w = ctx;
    pthread_mutex_lock(&w->lock);
    w->result = *r;
    w->is_done = true;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
}

enum tm_err credcheck_run(struct turso_transport *t, const char *api_url, const struct creds *c,
                          long timeout_ms, struct credcheck_result *out)
{
    struct run_wait w;
    enum tm_err err;

    memset(&w, 0, sizeof(w));
    if (pthread_mutex_init(&w.lock, NULL) != 0)
        return TM_ERR_INTERNAL;
    if (pthread_cond_init(&w.cond, NULL) != 0) {
        pthread_mutex_destroy(&w.lock);
        return TM_ERR_INTERNAL;
    }
    err = credcheck_start(t, api_url, c, timeout_ms, run_done, &w);
    if (err == TM_OK) {
        pthread_mutex_lock(&w.lock);
        while (!w.is_done)
            pthread_cond_wait(&w.cond, &w.lock);
        pthread_mutex_unlock(&w.lock);
        *out = w.result;
    } else if (c && c->db_url) {
        /* hrana_pipeline refuses a URL it cannot use before sending anything. */
        char origin[256];
        memset(out, 0, sizeof(*out));
        out->what = "database";
        out->verdict = CREDCHECK_FAILED;
        if (hrana_origin(c->db_url, origin, sizeof(origin)) != TM_OK)
            snprintf(out->message, sizeof(out->message),
                     "not a valid database URL (expected https://, http:// or libsql:// and a "
                     "host)");
        else
            snprintf(out->message, sizeof(out->message), "could not send the check: %s",
                     tm_err_message(err));
        err = TM_OK;
    }
    pthread_cond_destroy(&w.cond);
    pthread_mutex_destroy(&w.lock);
    return err;
}
