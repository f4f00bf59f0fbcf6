/*
 * Unit tests for database access: an in-process libmicrohttpd server on
 * 127.0.0.1 (port 0, read back) plays both the Platform API (database
 * lookup, token minting) and the database host (Hrana /v2/pipeline, /dump)
 * with the tokens it minted, so host resolution, minting, the cache, the
 * retry after a 401 and the messages can be watched from both ends.
 */
#include "dbaccess.h"

#include <curl/curl.h>
#include <errno.h>
#include <microhttpd.h>
#include <pthread.h>
#include <sodium.h>
#include <stdbool.h>
#include <time.h>

#include "test.h"
#include "test_http.h"

#define WAIT_MS    20000
#define MAX_TOKENS 64

static const char token_a[] = "platform-token-A-7c1e0b9a55d3";
static const char token_b[] = "platform-token-B-41f2aa06e8c7";
static const char token_bad[] = "platform-token-REVOKED-0d9e2f";
static const char db_url_token[] = "static-database-token-5b7a";

/* ---- the fake Turso ---- */

struct fake {
    struct test_http http;
    unsigned port; /* guarded by lock: the handler reads it */
    char base[64];
    pthread_mutex_t lock;
    /* Guarded by lock. Settings: */
    long long token_ttl;   /* exp = now + ttl; 0: no exp claim */
    bool is_rejecting_all; /* the database answers 401 to every token */
    bool is_minting_rw;    /* ignores authorization=read-only */
    bool is_bad_hostname;  /* Hostname with a path in it */
    /* What happened: */
    int n_lookups, n_mints, n_pipelines, n_gets, n_counter;
    char last_authorization[32];
    char last_expiration[16];
    char last_platform_auth[128];
    char last_db_auth[1024];
    char minted[MAX_TOKENS][512]; /* valid database tokens; rotate clears them */
    int n_minted;
};

/* Every answer of the fake Turso is JSON. */
static enum MHD_Result respond(struct MHD_Connection *conn, unsigned status, const char *body)
{
    return test_http_respond(conn, status, "application/json", body, strlen(body));
}

static void b64url(const char *s, char *out, size_t out_len)
{
    sodium_bin2base64(out, out_len, (const unsigned char *)s, strlen(s),
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

/* Holding f->lock: is `auth` ("Bearer x") a token this fake minted or the static one? */
static bool is_db_token_valid(struct fake *f, const char *auth)
{
    if (!auth || strncmp(auth, "Bearer ", 7) != 0)
        return false;
    if (strcmp(auth + 7, db_url_token) == 0)
        return true;
    for (int i = 0; i < f->n_minted; i++)
        if (strcmp(f->minted[i], auth + 7) == 0)
            return true;
    return false;
}

static bool is_platform_token_valid(const char *auth)
{
    return auth && strncmp(auth, "Bearer ", 7) == 0 &&
           (strcmp(auth + 7, token_a) == 0 || strcmp(auth + 7, token_b) == 0);
}

/* Holding f->lock: a JWT-shaped token carrying a, exp and a serial number. */
static void mint(struct fake *f, const char *db, bool is_ro, char *out, size_t out_len)
{
    char head[64], claims[256], payload[400];
    b64url("{\"alg\":\"EdDSA\",\"typ\":\"JWT\"}", head, sizeof(head));
    if (f->token_ttl > 0)
        snprintf(claims, sizeof(claims), "{\"a\":\"%s\",\"exp\":%lld,\"id\":\"%s\",\"n\":%d}",
                 is_ro ? "ro" : "rw", (long long)time(NULL) + f->token_ttl, db, ++f->n_counter);
    else
        snprintf(claims, sizeof(claims), "{\"a\":\"%s\",\"id\":\"%s\",\"n\":%d}",
                 is_ro ? "ro" : "rw", db, ++f->n_counter);
    b64url(claims, payload, sizeof(payload));
    snprintf(out, out_len, "%s.%s.c2lnbmF0dXJl", head, payload);
    if (f->n_minted < MAX_TOKENS)
        snprintf(f->minted[f->n_minted++], sizeof(f->minted[0]), "%s", out);
}

/* Holding f->lock: true when the Bearer token is one minted read-only. */
static bool is_read_only_token(const char *auth)
{
    long long exp;
    char access[4];
    return auth && platform_jwt_claims(auth + 7, &exp, access) == TM_OK &&
           strcmp(access, "ro") == 0;
}

static enum MHD_Result pipeline(struct fake *f, struct MHD_Connection *conn, const char *auth,
                                const char *upload, size_t upload_len)
{
    json_t *body = json_loadb(upload, upload_len, 0, NULL);
    json_t *requests = json_object_get(body, "requests");
    pthread_mutex_lock(&f->lock);
    f->n_pipelines++;
    snprintf(f->last_db_auth, sizeof(f->last_db_auth), "%s", auth ? auth : "");
    bool is_valid = !f->is_rejecting_all && is_db_token_valid(f, auth);
    pthread_mutex_unlock(&f->lock);
    enum MHD_Result ret;
    if (!is_valid) {
        ret = respond(conn, 401, "{\"error\":\"Unauthorized: `The JWT is invalid`\"}");
        goto out;
    }
    json_t *results = json_array();
    size_t i;
    json_t *r;
    json_array_foreach(requests, i, r)
    {
        const char *type = json_string_value(json_object_get(r, "type"));
        const char *sql = json_string_value(json_object_get(json_object_get(r, "stmt"), "sql"));
        if (type && strcmp(type, "close") == 0) {
            json_array_append_new(
                results, json_pack("{s:s,s:{s:s}}", "type", "ok", "response", "type", "close"));
            continue;
        }
        if (sql && strncmp(sql, "INSERT", 6) == 0 && is_read_only_token(auth)) {
            json_decref(results);
            ret = respond(conn, 403,
                          "{\"error\":\"Authorization forbidden: Current session doesn't not have "
                          "Write permission to namespace db1\"}");
            goto out;
        }
        json_array_append_new(results,
                              json_pack("{s:s,s:{s:s,s:{s:[],s:[[{s:s,s:s}]],s:i,s:n}}}", "type",
                                        "ok", "response", "type", "execute", "result", "cols",
                                        "rows", "type", "integer", "value", "1",
                                        "affected_row_count", 0, "last_insert_rowid"));
    }
    ret = test_http_respond_json(
        conn, 200, json_pack("{s:n,s:n,s:o}", "baton", "base_url", "results", results));
out:
    json_decref(body);
    return ret;
}

static enum MHD_Result answer(void *state, const char *method, const char *url, const char *body,
                              size_t body_len, struct MHD_Connection *conn)
{
    struct fake *f = state;
    const char *auth = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
    if (strcmp(url, "/v2/pipeline") == 0 && strcmp(method, "POST") == 0)
        return pipeline(f, conn, auth, body, body_len);
    if (strcmp(url, "/dump") == 0 && strcmp(method, "GET") == 0) {
        pthread_mutex_lock(&f->lock);
        f->n_gets++;
        bool is_valid = !f->is_rejecting_all && is_db_token_valid(f, auth);
        pthread_mutex_unlock(&f->lock);
        return is_valid ? respond(conn, 200, "PRAGMA foreign_keys=OFF;\nCOMMIT;\n")
                        : respond(conn, 401, "{\"error\":\"Unauthorized: `The JWT is invalid`\"}");
    }

    static const char prefix[] = "/v1/organizations/acme/databases/";
    if (strncmp(url, prefix, sizeof(prefix) - 1) != 0)
        return respond(conn, 404, "{\"error\":\"not found\"}");
    char db[128];
    const char *rest = url + sizeof(prefix) - 1;
    size_t db_len = strcspn(rest, "/");
    snprintf(db, sizeof(db), "%.*s", (int)db_len, rest);
    const char *tail = rest + db_len;

    pthread_mutex_lock(&f->lock);
    snprintf(f->last_platform_auth, sizeof(f->last_platform_auth), "%s", auth ? auth : "");
    pthread_mutex_unlock(&f->lock);
    if (!is_platform_token_valid(auth))
        return respond(conn, 401, "{\"error\":\"could not parse jwt id\"}");
    if (strcmp(db, "slow") == 0) {
        struct timespec ts = {0, 50 * 1000000L};
        for (int i = 0; i < 20; i++)
            nanosleep(&ts, NULL);
    }
    if (strcmp(db, "db1") != 0 && strcmp(db, "db2") != 0) {
        char text[256];
        snprintf(text, sizeof(text),
                 "{\"error\":\"could not find database with name %s: record not found\"}", db);
        return respond(conn, 404, text);
    }
    if (tail[0] == '\0' && strcmp(method, "GET") == 0) {
        char host[128];
        pthread_mutex_lock(&f->lock);
        f->n_lookups++;
        snprintf(host, sizeof(host), "127.0.0.1:%u%s", f->port, f->is_bad_hostname ? "/x y" : "");
        pthread_mutex_unlock(&f->lock);
        return test_http_respond_json(conn, 200,
                                      json_pack("{s:{s:s,s:s,s:s}}", "database", "Name", db, "DbId",
                                                "uuid", "Hostname", host));
    }
    if (strcmp(tail, "/auth/tokens") == 0 && strcmp(method, "POST") == 0) {
        const char *authz =
            MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "authorization");
        const char *exp = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "expiration");
        char jwt[512];
        pthread_mutex_lock(&f->lock);
        f->n_mints++;
        snprintf(f->last_authorization, sizeof(f->last_authorization), "%s", authz ? authz : "");
        snprintf(f->last_expiration, sizeof(f->last_expiration), "%s", exp ? exp : "");
        bool is_ro = authz && strcmp(authz, "read-only") == 0 && !f->is_minting_rw;
        mint(f, db, is_ro, jwt, sizeof(jwt));
        pthread_mutex_unlock(&f->lock);
        return test_http_respond_json(conn, 200, json_pack("{s:s}", "jwt", jwt));
    }
    return respond(conn, 404, "{\"error\":\"no such route\"}");
}

static struct fake *fake_start(void)
{
    struct fake *f = calloc(1, sizeof(*f));
    ASSERT_NOT_NULL(f);
    pthread_mutex_init(&f->lock, NULL);
    f->token_ttl = 3600;
    f->http = (struct test_http){.answer = answer, .state = f};
    unsigned port = test_http_start(&f->http, f->base, sizeof(f->base));
    pthread_mutex_lock(&f->lock);
    f->port = port;
    pthread_mutex_unlock(&f->lock);
    return f;
}

static void fake_stop(struct fake *f)
{
    test_http_stop(&f->http);
    pthread_mutex_destroy(&f->lock);
    free(f);
}

/* Invalidates every minted token, as POST …/auth/rotate does. */
static void fake_rotate(struct fake *f)
{
    pthread_mutex_lock(&f->lock);
    f->n_minted = 0;
    pthread_mutex_unlock(&f->lock);
}

static int fake_get(struct fake *f, const int *field)
{
    pthread_mutex_lock(&f->lock);
    int v = *field;
    pthread_mutex_unlock(&f->lock);
    return v;
}

/* ---- the side under test ---- */

struct env {
    struct fake *f;
    struct turso_transport *t;
    struct dbaccess *d;
};

static void env_start(struct env *e)
{
    e->f = fake_start();
    struct turso_transport_opts topts = {.connect_timeout_ms = 2000};
    ASSERT_INT_EQ(turso_transport_start(&topts, &e->t), TM_OK);
    struct dbaccess_opts dopts = {.transport = e->t, .api_url = e->f->base, .db_scheme = "http"};
    ASSERT_INT_EQ(dbaccess_create(&dopts, &e->d), TM_OK);
}

static void env_stop(struct env *e)
{
    turso_transport_stop(&e->t);
    dbaccess_destroy(&e->d);
    ASSERT_NULL(e->d);
    fake_stop(e->f);
}

/* Platform credentials (strings borrowed from static storage: never cleaned up). */
static struct creds platform_creds(const char *token, const char *default_db, bool is_read_only)
{
    struct creds c = {0};
    c.label = "test";
    c.platform_token = (char *)token;
    c.org = "acme";
    c.default_db = (char *)default_db;
    c.is_read_only = is_read_only;
    return c;
}

/* One outcome, copied out of the callback. */
struct box {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int n_calls;
    enum tm_err err;
    long status;
    char message[1024];
    char body[256];
    json_t *results;
};

static void box_init(struct box *b)
{
    memset(b, 0, sizeof(*b));
    pthread_mutex_init(&b->lock, NULL);
    pthread_cond_init(&b->cond, NULL);
}

static void box_wait(struct box *b)
{
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += WAIT_MS / 1000;
    pthread_mutex_lock(&b->lock);
    while (b->n_calls == 0) {
        if (pthread_cond_timedwait(&b->cond, &b->lock, &dl) == ETIMEDOUT)
            break;
    }
    int n = b->n_calls;
    pthread_mutex_unlock(&b->lock);
    if (n != 1)
        TEST_FAIL("expected one callback, got %d", n);
}

static void box_cleanup(struct box *b)
{
    json_decref(b->results);
    pthread_cond_destroy(&b->cond);
    pthread_mutex_destroy(&b->lock);
}

static void on_outcome(const struct hrana_outcome *o, void *ctx)
{
    struct box *b = ctx;
    pthread_mutex_lock(&b->lock);
    b->n_calls++;
    b->err = o->err;
    b->status = o->http_status;
    snprintf(b->message, sizeof(b->message), "%s", o->message ? o->message : "");
    b->results = o->results ? json_deep_copy(o->results) : NULL;
    pthread_cond_broadcast(&b->cond);
    pthread_mutex_unlock(&b->lock);
}

static void on_get_outcome(const struct dbaccess_get_outcome *o, void *ctx)
{
    struct box *b = ctx;
    pthread_mutex_lock(&b->lock);
    b->n_calls++;
    b->err = o->err;
    b->status = o->http_status;
    snprintf(b->message, sizeof(b->message), "%s", o->message ? o->message : "");
    snprintf(b->body, sizeof(b->body), "%.*s", (int)o->body_len, o->body ? o->body : "");
    pthread_cond_broadcast(&b->cond);
    pthread_mutex_unlock(&b->lock);
}

/* Runs `sql` on database `name` of `c` and waits; the outcome is in *b (box_cleanup it). */
static void run(struct env *e, const struct creds *c, const char *name, const char *sql,
                long timeout_ms, struct box *b)
{
    box_init(b);
    json_t *requests = json_pack("[{s:s,s:{s:s}}]", "type", "execute", "stmt", "sql", sql);
    ASSERT_INT_EQ(dbaccess_pipeline(e->d, c, name, requests, timeout_ms, on_outcome, b), TM_OK);
    /* The call keeps its own copy: the caller's requests may go at once. */
    json_decref(requests);
    box_wait(b);
}

static void expect_ok(struct env *e, const struct creds *c, const char *name)
{
    struct box b;
    run(e, c, name, "SELECT 1", 5000, &b);
    if (b.err != TM_OK)
        TEST_FAIL("pipeline failed: %d %s", (int)b.err, b.message);
    ASSERT_INT_EQ(json_array_size(b.results), 1);
    ASSERT_STR_EQ(json_string_value(json_object_get(json_array_get(b.results, 0), "type")), "ok");
    box_cleanup(&b);
}

/* ---- cases ---- */

static void mint_cache_reuse(void)
{
    struct env e;
    env_start(&e);
    struct creds c = platform_creds(token_a, "db1", false);
    ASSERT(dbaccess_uses_platform(&c, NULL));
    ASSERT(dbaccess_is_read_only_enforced(&c));
    ASSERT_STR_EQ(dbaccess_database_name(&c, NULL), "db1");

    expect_ok(&e, &c, NULL);
    ASSERT_INT_EQ(fake_get(e.f, &e.f->n_lookups), 1);
    ASSERT_INT_EQ(fake_get(e.f, &e.f->n_mints), 1);
    pthread_mutex_lock(&e.f->lock);
    ASSERT_STR_EQ(e.f->last_authorization, "full-access");
    ASSERT_STR_EQ(e.f->last_expiration, "1h");
    char expected_auth[128];
    snprintf(expected_auth, sizeof(expected_auth), "Bearer %s", token_a);
    ASSERT_STR_EQ(e.f->last_platform_auth, expected_auth);
    /* The database got the minted token, not the platform token. */
    ASSERT(strncmp(e.f->last_db_auth, "Bearer eyJ", 10) == 0);
    char first_token[1024];
    snprintf(first_token, sizeof(first_token), "%s", e.f->last_db_auth);
    pthread_mutex_unlock(&e.f->lock);

    /* Again, by the default's name too: host and token come from the cache. */
    expect_ok(&e, &c, NULL);
    expect_ok(&e, &c, "db1");
    ASSERT_INT_EQ(fake_get(e.f, &e.f->n_lookups), 1);
    ASSERT_INT_EQ(fake_get(e.f, &e.f->n_mints), 1);
    ASSERT_INT_EQ(fake_get(e.f, &e.f->n_pipelines), 3);
    pthread_mutex_lock(&e.f->lock);
    ASSERT_STR_EQ(e.f->last_db_auth, first_token);
    pthread_mutex_unlock(&e.f->lock);

    /* Another database of the same URL gets its own host and token. */
    expect_ok(&e, &c, "db2");
    ASSERT_INT_EQ(fake_get(e.f, &e.f->n_lookups), 2);
    ASSERT_INT_EQ(fake_get(e.f, &e.f->n_mints), 2);

    /* Forgetting a database (deleted, re-created, rotated) looks it up again. */
    dbaccess_forget(e.d, "acme", "db1");
    expect_ok(&e, &c, NULL);
    ASSERT_INT_EQ(fake_get(e.f, &e.f->n_lookups), 3);
    ASSERT_INT_EQ(fake_get(e.f, &e.f->n_mints), 3);
    env_stop(&e);
}

static void read_only_url(void)
{
    struct env e;
    env_start(&e);
    struct creds c = platform_creds(token_a, "db1", true);
    expect_ok(&e, &c, NULL);
    pthread_mutex_lock(&e.f->lock);
    ASSERT_STR_EQ(e.f->last_authorization, "read-only");
    pthread_mutex_unlock(&e.f->lock);

    /* Turso refuses the write; the message says why in the user's terms. */
    struct box b;
    run(&e, &c, NULL, "INSERT INTO t VALUES (1)", 5000, &b);
    ASSERT_INT_EQ(b.err, TM_ERR_UPSTREAM);
    ASSERT_INT_EQ(b.status, 403);
    ASSERT_CONTAINS(b.message, "This URL is read-only: Turso refused the request under the "
                               "read-only token it was given.");
    ASSERT_CONTAINS(b.message, "Write permission");
    ASSERT_LACKS(b.message, "eyJ");
    box_cleanup(&b);
    /* A 403 is not a reason to mint again. */
    ASSERT_INT_EQ(fake_get(e.f, &e.f->n_mints), 1);

    /* The same platform token on a read-write URL has a cache entry of its own. */
    struct creds rw = platform_creds(token_a, "db1", false);
    expect_ok(&e, &rw, NULL);
    ASSERT_INT_EQ(fake_get(e.f, &e.f->n_mints), 2);
    pthread_mutex_lock(&e.f->lock);
    ASSERT_STR_EQ(e.f->last_authorization, "full-access");
    pthread_mutex_unlock(&e.f->lock);
    expect_ok(&e, &c, NULL);
    expect_ok(&e, &rw, NULL);
    ASSERT_INT_EQ(fake_get(e.f, &e.f->n_mints), 2);

    /* Should Turso ever mint read-write for read-only, the URL does not use it. */
    pthread_mutex_lock(&e.f->lock);
    e.f->is_minting_rw = true;
    pthread_mutex_unlock(&e.f->lock);
    run(&e, &c, "db2", "SELECT 1", 5000, &b);
    ASSERT_INT_EQ(b.err, TM_ERR_UPSTREAM);
    ASSERT_STR_EQ(b.message, "Turso minted a read-write token for \"db2\" where a read-only one "
                             "was asked for; this read-only URL will not use it.");
    box_cleanup(&b);
    ASSERT_INT_EQ(fake_get(e.f, &e.f->n_pipelines), 5);
    env_stop(&e);
}

static void retry_once_after_401(void)
{
    struct env e;
    env_start(&e);
    struct creds c = platform_creds(token_a, "db1", false);
    expect_ok(&e, &c, NULL);
    pthread_mutex_lock(&e.f->lock);
    char old[1024];
    snprintf(old, sizeof(old), "%s", e.f->last_db_auth);
    pthread_mutex_unlock(&e.f->lock);

    /* Tokens rotated: the cached one gets 401, a new one is minted, the pipeline runs. */
    fake_rotate(e.f);
    expect_ok(&e, &c, NULL);
    ASSERT_INT_EQ(fake_get(e.f, &e.f->n_pipelines), 3);
    ASSERT_INT_EQ(fake_get(e.f, &e.f->n_mints), 2);
    ASSERT_INT_EQ(fake_get(e.f, &e.f->n_lookups), 2);
    pthread_mutex_lock(&e.f->lock);
    ASSERT(strcmp(e.f->last_db_auth, old) != 0);
    pthread_mutex_unlock(&e.f->lock);
    /* The new token is cached in place of the old. */
    expect_ok(&e, &c, NULL);
    ASSERT_INT_EQ(fake_get(e.f, &e.f->n_mints), 2);

    /* A database that refuses every token: one retry, then the 401 comes back. */
    pthread_mutex_lock(&e.f->lock);
    e.f->is_rejecting_all = true;
    pthread_mutex_unlock(&e.f->lock);
    struct box b;
    run(&e, &c, NULL, "SELECT 1", 5000, &b);
    ASSERT_INT_EQ(b.err, TM_ERR_UPSTREAM);
    ASSERT_INT_EQ(b.status, 401);
    ASSERT_STR_EQ(b.message,
                  "Turso rejected the database token (HTTP 401): Unauthorized: `The JWT is "
                  "invalid`");
    box_cleanup(&b);
    ASSERT_INT_EQ(fake_get(e.f, &e.f->n_pipelines), 6);
    ASSERT_INT_EQ(fake_get(e.f, &e.f->n_mints), 3);

    /* GETs on the host (/dump) follow the same rule. */
    pthread_mutex_lock(&e.f->lock);
    e.f->is_rejecting_all = false;
    pthread_mutex_unlock(&e.f->lock);
    fake_rotate(e.f);
    box_init(&b);
    ASSERT_INT_EQ(dbaccess_get(e.d, &c, NULL, "/dump", 5000, on_get_outcome, &b), TM_OK);
    box_wait(&b);
    ASSERT_INT_EQ(b.err, TM_OK);
    ASSERT_INT_EQ(b.status, 200);
    ASSERT_STR_EQ(b.body, "PRAGMA foreign_keys=OFF;\nCOMMIT;\n");
    box_cleanup(&b);
    ASSERT_INT_EQ(fake_get(e.f, &e.f->n_gets), 2);
    ASSERT_INT_EQ(fake_get(e.f, &e.f->n_mints), 4);
    pthread_mutex_lock(&e.f->lock);
    e.f->is_rejecting_all = true;
    pthread_mutex_unlock(&e.f->lock);
    box_init(&b);
    ASSERT_INT_EQ(dbaccess_get(e.d, &c, NULL, "/dump", 5000, on_get_outcome, &b), TM_OK);
    box_wait(&b);
    ASSERT_INT_EQ(b.err, TM_OK);
    ASSERT_INT_EQ(b.status, 401);
    box_cleanup(&b);
    ASSERT_INT_EQ(fake_get(e.f, &e.f->n_gets), 4);
    env_stop(&e);
}

static void cache_separates_platform_tokens(void)
{
    struct env e;
    env_start(&e);
    struct creds a = platform_creds(token_a, "db1", false);
    struct creds b = platform_creds(token_b, "db1", false);
    expect_ok(&e, &a, NULL);
    expect_ok(&e, &b, NULL);
    ASSERT_INT_EQ(fake_get(e.f, &e.f->n_mints), 2);
    char expected[128];
    snprintf(expected, sizeof(expected), "Bearer %s", token_b);
    pthread_mutex_lock(&e.f->lock);
    ASSERT_STR_EQ(e.f->last_platform_auth, expected);
    pthread_mutex_unlock(&e.f->lock);
    expect_ok(&e, &a, NULL);
    expect_ok(&e, &b, NULL);
    ASSERT_INT_EQ(fake_get(e.f, &e.f->n_mints), 2);

    /* A revoked platform token never rides on another user's cached entry. */
    struct creds bad = platform_creds(token_bad, "db1", false);
    struct box box;
    run(&e, &bad, NULL, "SELECT 1", 5000, &box);
    ASSERT_INT_EQ(box.err, TM_ERR_DENIED);
    ASSERT_INT_EQ(box.status, 401);
    ASSERT_STR_EQ(box.message,
                  "Could not look up database \"db1\": The Turso Platform API token was refused "
                  "(HTTP 401): could not parse jwt id. Check that it is a Platform API token (not "
                  "a database token) and that it has not expired or been revoked.");
    box_cleanup(&box);
    ASSERT_INT_EQ(fake_get(e.f, &e.f->n_pipelines), 4);
    env_stop(&e);
}

static void expiry_before_exp(void)
{
    struct env e;
    env_start(&e);
    struct creds c = platform_creds(token_a, "db1", false);
    /* Tokens that end within the safety margin are used once and never cached. */
    pthread_mutex_lock(&e.f->lock);
    e.f->token_ttl = 120;
    pthread_mutex_unlock(&e.f->lock);
    expect_ok(&e, &c, NULL);
    expect_ok(&e, &c, NULL);
    ASSERT_INT_EQ(fake_get(e.f, &e.f->n_mints), 2);
    /* Without exp the requested expiration (1h) bounds the entry. */
    pthread_mutex_lock(&e.f->lock);
    e.f->token_ttl = 0;
    pthread_mutex_unlock(&e.f->lock);
    expect_ok(&e, &c, NULL);
    expect_ok(&e, &c, NULL);
    ASSERT_INT_EQ(fake_get(e.f, &e.f->n_mints), 3);
    env_stop(&e);
}

static void failures_are_clear(void)
{
    struct env e;
    env_start(&e);
    struct creds c = platform_creds(token_a, NULL, false);
    struct box b;

    /* No name and no default database. */
    run(&e, &c, NULL, "SELECT 1", 5000, &b);
    ASSERT_INT_EQ(b.err, TM_ERR_INVALID);
    ASSERT_STR_EQ(b.message,
                  "Say which database: pass `database` (its name). This URL has no default "
                  "database.");
    box_cleanup(&b);

    /* An unknown database. */
    run(&e, &c, "nope", "SELECT 1", 5000, &b);
    ASSERT_INT_EQ(b.err, TM_ERR_NOT_FOUND);
    ASSERT_STR_EQ(b.message, "There is no database \"nope\" in organization \"acme\" that this "
                             "token can see. Not found on Turso (HTTP 404): could not find "
                             "database with name nope: record not found");
    ASSERT_LACKS(b.message, token_a);
    box_cleanup(&b);

    /* A Hostname that is not a host. */
    pthread_mutex_lock(&e.f->lock);
    e.f->is_bad_hostname = true;
    pthread_mutex_unlock(&e.f->lock);
    run(&e, &c, "db1", "SELECT 1", 5000, &b);
    ASSERT_INT_EQ(b.err, TM_ERR_UPSTREAM);
    ASSERT_STR_EQ(b.message, "The Turso Platform API gave no usable Hostname for database \"db1\"");
    box_cleanup(&b);
    ASSERT_INT_EQ(fake_get(e.f, &e.f->n_mints), 0);

    /* A slow lookup runs out the call's time. */
    run(&e, &c, "slow", "SELECT 1", 300, &b);
    ASSERT_INT_EQ(b.err, TM_ERR_TIMEOUT);
    ASSERT_CONTAINS(b.message, "did not answer within 300 ms");
    box_cleanup(&b);
    ASSERT_INT_EQ(fake_get(e.f, &e.f->n_pipelines), 0);

    /* Credentials without an organization or a database URL. */
    struct creds none = {0};
    run(&e, &none, "db1", "SELECT 1", 5000, &b);
    ASSERT_INT_EQ(b.err, TM_ERR_NOT_FOUND);
    ASSERT_STR_EQ(b.message, "This URL was set up without a database URL, so it cannot run SQL.");
    box_cleanup(&b);
    env_stop(&e);
}

static void database_url_beside_platform(void)
{
    struct env e;
    env_start(&e);
    struct creds c = platform_creds(token_a, "db1", false);
    c.db_url = e.f->base;
    c.db_token = (char *)db_url_token;
    ASSERT(!dbaccess_uses_platform(&c, NULL));
    ASSERT(!dbaccess_uses_platform(&c, "db1"));
    ASSERT(dbaccess_uses_platform(&c, "db2"));
    /* The URL's own token may be read-write, so the server keeps checking itself. */
    ASSERT(!dbaccess_is_read_only_enforced(&c));

    expect_ok(&e, &c, NULL);
    expect_ok(&e, &c, "db1");
    ASSERT_INT_EQ(fake_get(e.f, &e.f->n_lookups), 0);
    char expected[128];
    snprintf(expected, sizeof(expected), "Bearer %s", db_url_token);
    pthread_mutex_lock(&e.f->lock);
    ASSERT_STR_EQ(e.f->last_db_auth, expected);
    pthread_mutex_unlock(&e.f->lock);
    expect_ok(&e, &c, "db2");
    ASSERT_INT_EQ(fake_get(e.f, &e.f->n_lookups), 1);
    ASSERT_INT_EQ(fake_get(e.f, &e.f->n_mints), 1);

    /* A GET on the URL's own host uses its own token. */
    struct box b;
    box_init(&b);
    ASSERT_INT_EQ(dbaccess_get(e.d, &c, NULL, "/dump", 5000, on_get_outcome, &b), TM_OK);
    box_wait(&b);
    ASSERT_INT_EQ(b.status, 200);
    box_cleanup(&b);

    /* Without a platform token other names are out of reach. */
    c.platform_token = NULL;
    c.org = NULL;
    run(&e, &c, "db2", "SELECT 1", 5000, &b);
    ASSERT_INT_EQ(b.err, TM_ERR_NOT_FOUND);
    ASSERT_STR_EQ(b.message, "This URL reaches only its own database \"db1\", not \"db2\".");
    box_cleanup(&b);
    env_stop(&e);
}

static void create_checks_settings(void)
{
    struct dbaccess *d = NULL;
    struct dbaccess_opts o = {.transport = NULL, .api_url = NULL, .db_scheme = "ftp"};
    ASSERT_INT_EQ(dbaccess_create(&o, &d), TM_ERR_INVALID);
    ASSERT_NULL(d);
    o.db_scheme = "http";
    o.api_url = "api.turso.tech";
    ASSERT_INT_EQ(dbaccess_create(&o, &d), TM_ERR_INVALID);
    dbaccess_destroy(&d);
    dbaccess_destroy(NULL);
}

/* Many calls at once from several threads share one entry and never cross users. */
struct hammer {
    struct env *e;
    const struct creds *c;
};

static void *hammer_run(void *arg)
{
    struct hammer *h = arg;
    for (int i = 0; i < 10; i++)
        expect_ok(h->e, h->c, i % 2 ? "db1" : "db2");
    return NULL;
}

static void concurrent_calls(void)
{
    struct env e;
    env_start(&e);
    struct creds a = platform_creds(token_a, "db1", false);
    struct creds b = platform_creds(token_b, "db1", true);
    pthread_t threads[4];
    struct hammer h[4] = {{&e, &a}, {&e, &b}, {&e, &a}, {&e, &b}};
    for (int i = 0; i < 4; i++)
        ASSERT_INT_EQ(pthread_create(&threads[i], NULL, hammer_run, &h[i]), 0);
    for (int i = 0; i < 4; i++)
        pthread_join(threads[i], NULL);
    ASSERT_INT_EQ(fake_get(e.f, &e.f->n_pipelines), 40);
    /* Two users, two databases: at least four mints, and no more than one per racing call. */
    int n = fake_get(e.f, &e.f->n_mints);
    ASSERT(n >= 4 && n <= 8);
    env_stop(&e);
}

int main(void)
{
    if (sodium_init() < 0 || curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        TEST_FAIL("library initialisation failed");
    RUN(mint_cache_reuse);
    RUN(read_only_url);
    RUN(retry_once_after_401);
    RUN(cache_separates_platform_tokens);
    RUN(expiry_before_exp);
    RUN(failures_are_clear);
    RUN(database_url_beside_platform);
    RUN(create_checks_settings);
    RUN(concurrent_calls);
    curl_global_cleanup();
    TEST_DONE();
}
