/*
 * Unit tests for the Platform API client, against a small libmicrohttpd
 * server started in-process on 127.0.0.1 (port 0, read back). The server
 * answers every request with the status and body the case chose, records
 * what it received, and stalls on /stall (bounded).
 */
#include "platform.h"
#include "redact.h"

#include <curl/curl.h>
#include <errno.h>
#include <microhttpd.h>
#include <pthread.h>
#include <sodium.h>
#include <stdbool.h>
#include <time.h>

#include "test.h"
#include "test_http.h"

#define SRV_MAX_BODY     ((size_t)1024 * 1024)
#define SRV_STALL_MAX_MS 1000

static const char platform_token[] = "eyJhbGciOiJFZERTQSJ9.cGxhdGZvcm0.c2lnbmF0dXJlLXNlY3JldA";

/* ---- the in-process server ---- */

struct srv {
    struct test_http http;
    unsigned port;
    char base[64];
    pthread_mutex_t lock;
    /* Guarded by lock: the next answer, and what the last request carried. */
    unsigned status;
    char ctype[64];
    char *body;
    char last_method[16];
    char last_url[1024];
    char last_auth[512];
    char last_ctype[128];
    char *last_body;
    int n_requests;
};

static enum MHD_Result collect_query(void *cls, enum MHD_ValueKind kind, const char *key,
                                     const char *value)
{
    char *url = cls;
    size_t n = strlen(url);
    snprintf(url + n, 1024 - n, "%s%s=%s", strchr(url, '?') ? "&" : "?", key, value ? value : "");
    return MHD_YES;
}

static enum MHD_Result answer(void *state, const char *method, const char *url, const char *upload,
                              size_t upload_len, struct MHD_Connection *conn)
{
    struct srv *s = state;
    if (strcmp(url, "/stall") == 0) {
        struct timespec ts = {0, 50 * 1000000L};
        for (int i = 0; i < SRV_STALL_MAX_MS / 50; i++)
            nanosleep(&ts, NULL);
        return test_http_respond(conn, 200, "application/json", "{}", 2);
    }
    const char *auth = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
    const char *ctype = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Type");
    pthread_mutex_lock(&s->lock);
    s->n_requests++;
    snprintf(s->last_method, sizeof(s->last_method), "%s", method);
    snprintf(s->last_url, sizeof(s->last_url), "%s", url);
    MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, collect_query, s->last_url);
    snprintf(s->last_auth, sizeof(s->last_auth), "%s", auth ? auth : "");
    snprintf(s->last_ctype, sizeof(s->last_ctype), "%s", ctype ? ctype : "");
    free(s->last_body);
    s->last_body = strdup(upload);
    unsigned status = s->status;
    char answer_ctype[64];
    snprintf(answer_ctype, sizeof(answer_ctype), "%s", s->ctype);
    char *body = strdup(s->body ? s->body : "");
    pthread_mutex_unlock(&s->lock);
    enum MHD_Result ret =
        body ? test_http_respond(conn, status, answer_ctype, body, strlen(body)) : MHD_NO;
    free(body);
    return ret;
}

static struct srv *srv_start(void)
{
    struct srv *s = calloc(1, sizeof(*s));
    ASSERT_NOT_NULL(s);
    pthread_mutex_init(&s->lock, NULL);
    s->http = (struct test_http){
        .answer = answer,
        .state = s,
        .max_body_len = SRV_MAX_BODY,
        .is_closing_when_too_big = true,
    };
    s->port = test_http_start(&s->http, s->base, sizeof(s->base));
    return s;
}

static void srv_answer(struct srv *s, unsigned status, const char *ctype, const char *body)
{
    pthread_mutex_lock(&s->lock);
    s->status = status;
    snprintf(s->ctype, sizeof(s->ctype), "%s", ctype ? ctype : "");
    free(s->body);
    s->body = strdup(body);
    pthread_mutex_unlock(&s->lock);
}

static void srv_stop(struct srv *s)
{
    test_http_stop(&s->http);
    pthread_mutex_destroy(&s->lock);
    free(s->body);
    free(s->last_body);
    free(s);
}

struct fixture {
    struct srv *s;
    struct turso_transport *t;
    struct platform *p;
};

static void fixture_start(struct fixture *f, const char *api_url)
{
    f->s = srv_start();
    struct turso_transport_opts topts = {.connect_timeout_ms = 2000};
    ASSERT_INT_EQ(turso_transport_start(&topts, &f->t), TM_OK);
    char url[128];
    /* A trailing slash on the base is dropped. */
    snprintf(url, sizeof(url), "%s/", f->s->base);
    struct platform_opts popts = {.transport = f->t, .api_url = api_url ? api_url : url};
    ASSERT_INT_EQ(platform_create(&popts, &f->p), TM_OK);
}

static void fixture_stop(struct fixture *f)
{
    platform_destroy(&f->p);
    ASSERT_NULL(f->p);
    turso_transport_stop(&f->t);
    srv_stop(f->s);
}

/* One synchronous call; *json gets the body on success. */
static enum tm_err call(struct fixture *f, const char *method, const char *path, const json_t *body,
                        long timeout_ms, long *status, json_t **json, char *message, size_t len)
{
    struct platform_request req = {
        .method = method, .path = path, .body = body, .timeout_ms = timeout_ms};
    return platform_call_sync(f->p, platform_token, &req, status, json, message, len);
}

/* ---- cases ---- */

static void paths_are_escaped(void)
{
    char out[128];
    ASSERT_INT_EQ(
        platform_path(out, sizeof(out), "/v1/organizations/%s/databases/%s", "acme", "a/b c?d#e%f"),
        TM_OK);
    ASSERT_STR_EQ(out, "/v1/organizations/acme/databases/a%2Fb%20c%3Fd%23e%25f");
    ASSERT_INT_EQ(platform_path(out, sizeof(out), "/x/%s", "..-_~ok"), TM_OK);
    ASSERT_STR_EQ(out, "/x/..-_~ok");
    ASSERT_INT_EQ(platform_path(out, sizeof(out), "/100%%/%s", "\xc3\xa9"), TM_OK);
    ASSERT_STR_EQ(out, "/100%/%C3%A9");
    ASSERT_INT_EQ(platform_path(out, 8, "/v1/%s", "abcdef"), TM_ERR_TOO_LARGE);
    ASSERT_STR_EQ(out, "");
    ASSERT_INT_EQ(platform_path(out, sizeof(out), "/v1/%s", NULL), TM_ERR_INVALID);

    ASSERT_INT_EQ(platform_path(out, sizeof(out), "/v1/usage"), TM_OK);
    ASSERT_INT_EQ(platform_query_add(out, sizeof(out), "from", "2025-11-01T00:00:00+01:00"), TM_OK);
    ASSERT_INT_EQ(platform_query_add(out, sizeof(out), "to", NULL), TM_OK);
    ASSERT_INT_EQ(platform_query_add(out, sizeof(out), "x", "a&b=c"), TM_OK);
    ASSERT_STR_EQ(out, "/v1/usage?from=2025-11-01T00%3A00%3A00%2B01%3A00&x=a%26b%3Dc");
    char small[16] = "/v1/a";
    ASSERT_INT_EQ(platform_query_add(small, sizeof(small), "key", "long value"), TM_ERR_TOO_LARGE);
    ASSERT_STR_EQ(small, "/v1/a");
}

static void create_checks_url(void)
{
    struct turso_transport *t = NULL;
    struct turso_transport_opts topts = {0};
    ASSERT_INT_EQ(turso_transport_start(&topts, &t), TM_OK);
    struct platform *p = NULL;
    struct platform_opts o = {.transport = t, .api_url = "ftp://api.turso.tech"};
    ASSERT_INT_EQ(platform_create(&o, &p), TM_ERR_INVALID);
    o.api_url = "https://api.turso.tech/?x=1";
    ASSERT_INT_EQ(platform_create(&o, &p), TM_ERR_INVALID);
    o.api_url = NULL;
    ASSERT_INT_EQ(platform_create(&o, &p), TM_OK);
    ASSERT_STR_EQ(platform_api_url(p), "https://api.turso.tech");
    platform_destroy(&p);
    platform_destroy(&p); /* accepts NULL */
    platform_destroy(NULL);
    turso_transport_stop(&t);
}

static void get_and_post(void)
{
    struct fixture f;
    char message[1024];
    long status = 0;
    json_t *json = NULL;
    fixture_start(&f, NULL);

    /* A bare array (GET /v1/organizations) is a valid answer. */
    srv_answer(f.s, 200, "application/json", "[{\"slug\":\"acme\",\"name\":\"Acme\"}]");
    ASSERT_INT_EQ(
        call(&f, "GET", "/v1/organizations", NULL, 0, &status, &json, message, sizeof(message)),
        TM_OK);
    ASSERT_INT_EQ(status, 200);
    ASSERT(json_is_array(json));
    ASSERT_STR_EQ(json_string_value(json_object_get(json_array_get(json, 0), "slug")), "acme");
    json_decref(json);
    pthread_mutex_lock(&f.s->lock);
    ASSERT_STR_EQ(f.s->last_method, "GET");
    ASSERT_STR_EQ(f.s->last_url, "/v1/organizations");
    ASSERT(strncmp(f.s->last_auth, "Bearer ", 7) == 0);
    ASSERT_STR_EQ(f.s->last_auth + 7, platform_token);
    pthread_mutex_unlock(&f.s->lock);

    /* A JSON body goes out as JSON; the query string arrives intact. */
    srv_answer(f.s, 200, "application/json", "{\"jwt\":\"a.b.c\"}");
    json_t *body = json_pack("{s:{s:{s:[]}}}", "permissions", "read_attach", "databases");
    char path[256];
    ASSERT_INT_EQ(platform_path(path, sizeof(path), "/v1/organizations/%s/databases/%s/auth/tokens",
                                "acme", "notes"),
                  TM_OK);
    ASSERT_INT_EQ(platform_query_add(path, sizeof(path), "expiration", "1h"), TM_OK);
    ASSERT_INT_EQ(platform_query_add(path, sizeof(path), "authorization", "read-only"), TM_OK);
    ASSERT_INT_EQ(call(&f, "POST", path, body, 0, &status, &json, message, sizeof(message)), TM_OK);
    json_decref(body);
    ASSERT_STR_EQ(json_string_value(json_object_get(json, "jwt")), "a.b.c");
    json_decref(json);
    pthread_mutex_lock(&f.s->lock);
    ASSERT_STR_EQ(f.s->last_method, "POST");
    ASSERT_STR_EQ(f.s->last_url, "/v1/organizations/acme/databases/notes/auth/tokens"
                                 "?expiration=1h&authorization=read-only");
    ASSERT_STR_EQ(f.s->last_ctype, "application/json");
    ASSERT_STR_EQ(f.s->last_body, "{\"permissions\":{\"read_attach\":{\"databases\":[]}}}");
    pthread_mutex_unlock(&f.s->lock);

    /* An empty 200 (POST …/auth/rotate) is success without a body. */
    srv_answer(f.s, 200, NULL, "");
    json_t *sentinel = json_object();
    json = sentinel;
    ASSERT_INT_EQ(call(&f, "POST", "/v1/organizations/acme/databases/notes/auth/rotate", NULL, 0,
                       &status, &json, message, sizeof(message)),
                  TM_OK);
    ASSERT_NULL(json);
    json_decref(sentinel);
    ASSERT_STR_EQ(message, "");

    /* PATCH and DELETE. */
    srv_answer(f.s, 200, "application/json", "{\"database\":\"notes\"}");
    ASSERT_INT_EQ(call(&f, "DELETE", "/v1/organizations/acme/databases/notes", NULL, 0, &status,
                       &json, message, sizeof(message)),
                  TM_OK);
    json_decref(json);
    pthread_mutex_lock(&f.s->lock);
    ASSERT_STR_EQ(f.s->last_method, "DELETE");
    pthread_mutex_unlock(&f.s->lock);

    /* Requests that could change the path are refused before sending. */
    int n = f.s->n_requests;
    ASSERT_INT_EQ(call(&f, "GET", "v1/no-slash", NULL, 0, &status, &json, message, sizeof(message)),
                  TM_ERR_INVALID);
    ASSERT_INT_EQ(call(&f, "GET", "/v1/a b", NULL, 0, &status, &json, message, sizeof(message)),
                  TM_ERR_INVALID);
    ASSERT_INT_EQ(
        call(&f, "GET", "/v1/a\r\nX: y", NULL, 0, &status, &json, message, sizeof(message)),
        TM_ERR_INVALID);
    ASSERT_CONTAINS(message, "could not call the Turso Platform API");
    pthread_mutex_lock(&f.s->lock);
    ASSERT_INT_EQ(f.s->n_requests, n);
    pthread_mutex_unlock(&f.s->lock);

    fixture_stop(&f);
}

/* Answers with (status, body) and checks the code and the whole message. */
static void expect_error(struct fixture *f, unsigned status, const char *ctype, const char *body,
                         enum tm_err err, const char *expected)
{
    char message[1024];
    long got_status = 0;
    json_t *json = NULL;
    srv_answer(f->s, status, ctype, body);
    ASSERT_INT_EQ(call(f, "GET", "/v1/organizations/acme/databases/x", NULL, 0, &got_status, &json,
                       message, sizeof(message)),
                  err);
    ASSERT_INT_EQ(got_status, status);
    ASSERT_NULL(json);
    ASSERT_STR_EQ(message, expected);
    ASSERT_LACKS(message, platform_token);
}

static void errors_are_mapped(void)
{
    struct fixture f;
    fixture_start(&f, NULL);
    expect_error(&f, 401, "application/json", "{\"error\":\"could not parse jwt id\"}",
                 TM_ERR_DENIED,
                 "The Turso Platform API token was refused (HTTP 401): could not parse jwt id. "
                 "Check that it is a Platform API token (not a database token) and that it has "
                 "not expired or been revoked.");
    expect_error(&f, 403, "application/json", "{\"error\":\"not a member of this organization\"}",
                 TM_ERR_DENIED,
                 "The Turso Platform API token lacks permission for this (HTTP 403): not a member "
                 "of this organization");
    expect_error(&f, 404, "application/json",
                 "{\"error\":\"could not find database with name x: record not found\"}",
                 TM_ERR_NOT_FOUND,
                 "Not found on Turso (HTTP 404): could not find database with name x: record not "
                 "found");
    expect_error(&f, 409, "application/json",
                 "{\"error\":\"database with name notes already exists\"}", TM_ERR_EXISTS,
                 "Already exists on Turso (HTTP 409): database with name notes already exists");
    expect_error(&f, 400, "application/json", "{\"error\":\"group not found\"}", TM_ERR_INVALID,
                 "Turso refused the request (HTTP 400): group not found");
    expect_error(
        &f, 402, "application/json",
        "{\"error\":\"limit reached\",\"code\":\"feature_not_available_for_starter_plan\"}",
        TM_ERR_UPSTREAM,
        "The Turso plan does not allow this (HTTP 402): limit reached (code "
        "feature_not_available_for_starter_plan)");
    expect_error(&f, 500, "text/plain", "  internal\nerror  ", TM_ERR_UPSTREAM,
                 "The Turso Platform API failed (HTTP 500): internal error. Try again later.");
    expect_error(&f, 503, "text/html", "", TM_ERR_UPSTREAM,
                 "The Turso Platform API failed (HTTP 503): no reason given. Try again later.");
    expect_error(&f, 429, "application/json", "{\"error\":\"slow down\"}", TM_ERR_UPSTREAM,
                 "Turso is limiting the request rate (HTTP 429): slow down. Try again shortly.");
    expect_error(&f, 200, "text/html", "<html>not json</html>", TM_ERR_UPSTREAM,
                 "The Turso Platform API sent an answer that is not JSON (HTTP 200): '[' or '{' "
                 "expected near '<'");
    expect_error(&f, 200, "application/json", "{\"truncated\": ", TM_ERR_UPSTREAM,
                 "The Turso Platform API sent an answer that is not JSON (HTTP 200): unexpected "
                 "token near end of file");

    /* A long HTML page is quoted only briefly, never cut inside a character. */
    char page[1024];
    int len = snprintf(page, sizeof(page), "<html>%0600d</html>", 0);
    ASSERT(len > 0);
    memcpy(page + 199, "\xc3\xa9", 2);
    srv_answer(f.s, 502, "text/html", page);
    char message[1024];
    long status = 0;
    json_t *json = NULL;
    ASSERT_INT_EQ(call(&f, "GET", "/v1/x", NULL, 0, &status, &json, message, sizeof(message)),
                  TM_ERR_UPSTREAM);
    char expected[512];
    snprintf(expected, sizeof(expected),
             "The Turso Platform API failed (HTTP 502): %.199s. Try again later.", page);
    ASSERT_STR_EQ(message, expected);
    fixture_stop(&f);
}

static void secrets_never_in_messages(void)
{
    struct fixture f;
    char body[1024];
    fixture_start(&f, NULL);

    /* The token echoed back, alone, as a Bearer header and as part of a JWT-shaped run. */
    snprintf(body, sizeof(body), "{\"error\":\"token %s is not valid\"}", platform_token);
    expect_error(&f, 401, "application/json", body, TM_ERR_DENIED,
                 "The Turso Platform API token was refused (HTTP 401): token *** is not valid. "
                 "Check that it is a Platform API token (not a database token) and that it has "
                 "not expired or been revoked.");
    expect_error(&f, 400, "application/json",
                 "{\"error\":\"got Authorization: Bearer some-other-secret, expected another\"}",
                 TM_ERR_INVALID,
                 "Turso refused the request (HTTP 400): got Authorization: Bearer ***, expected "
                 "another");
    expect_error(&f, 400, "text/plain",
                 "database token eyJhbGciOiJFZERTQSJ9.eyJhIjoicm8ifQ.c2ln-_x is not a platform "
                 "token",
                 TM_ERR_INVALID,
                 "Turso refused the request (HTTP 400): database token *** is not a platform "
                 "token");
    /* Control bytes and broken UTF-8 never reach the client. */
    expect_error(&f, 400, "text/plain", "bad\x01input \xff\xfe end", TM_ERR_INVALID,
                 "Turso refused the request (HTTP 400): bad input ?? end");
    fixture_stop(&f);

    /* Directly: a secret inside a longer run, hostnames untouched. */
    char m[256];
    snprintf(m, sizeof(m), "x%sy at notes-acme.aws-us-east-1.turso.io", "s3cr3t-token");
    redact_message(m, "s3cr3t-token");
    ASSERT_STR_EQ(m, "x***y at notes-acme.aws-us-east-1.turso.io");
    snprintf(m, sizeof(m), "ab");
    redact_message(m, "b");
    ASSERT_STR_EQ(m, "a*");
    redact_message(NULL, "x");
}

static void transport_failures(void)
{
    char url[64], message[1024], expected[256];
    long status = 1;
    json_t *json = NULL;
    struct fixture f;

    unsigned port = test_http_closed_port();
    snprintf(url, sizeof(url), "http://127.0.0.1:%u", port);
    fixture_start(&f, url);
    ASSERT_INT_EQ(
        call(&f, "GET", "/v1/organizations", NULL, 0, &status, &json, message, sizeof(message)),
        TM_ERR_NETWORK);
    ASSERT_INT_EQ(status, 0);
    snprintf(expected, sizeof(expected),
             "The Turso Platform API could not be reached at %s: ", url);
    ASSERT_CONTAINS(message, expected);
    ASSERT_LACKS(message, platform_token);
    fixture_stop(&f);

    fixture_start(&f, NULL);
    ASSERT_INT_EQ(call(&f, "GET", "/stall", NULL, 300, &status, &json, message, sizeof(message)),
                  TM_ERR_TIMEOUT);
    snprintf(expected, sizeof(expected), "The Turso Platform API did not answer within 300 ms (%s)",
             f.s->base);
    ASSERT_STR_EQ(message, expected);
    fixture_stop(&f);
}

/* base64url without padding of `s`. */
static void b64url(const char *s, char *out, size_t out_len)
{
    sodium_bin2base64(out, out_len, (const unsigned char *)s, strlen(s),
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

static void jwt_claims(void)
{
    char head[64], payload[256], jwt[512];
    long long exp = -1;
    char access[4] = "x";
    b64url("{\"alg\":\"EdDSA\",\"typ\":\"JWT\"}", head, sizeof(head));

    b64url("{\"a\":\"ro\",\"exp\":1767225600,\"iat\":1764547200,\"id\":\"9f1c\"}", payload,
           sizeof(payload));
    snprintf(jwt, sizeof(jwt), "%s.%s.c2ln", head, payload);
    ASSERT_INT_EQ(platform_jwt_claims(jwt, &exp, access), TM_OK);
    ASSERT_INT_EQ(exp, 1767225600LL);
    ASSERT_STR_EQ(access, "ro");

    /* expiration=never: no exp; no `a`: unknown access. */
    b64url("{\"iat\":1764547200,\"gid\":\"3e8d\"}", payload, sizeof(payload));
    snprintf(jwt, sizeof(jwt), "%s.%s.c2ln", head, payload);
    ASSERT_INT_EQ(platform_jwt_claims(jwt, &exp, access), TM_OK);
    ASSERT_INT_EQ(exp, 0);
    ASSERT_STR_EQ(access, "");

    /* Padding is tolerated. */
    b64url("{\"a\":\"rw\"}", payload, sizeof(payload));
    snprintf(jwt, sizeof(jwt), "%s.%s==.c2ln", head, payload);
    ASSERT_INT_EQ(platform_jwt_claims(jwt, &exp, access), TM_OK);
    ASSERT_STR_EQ(access, "rw");

    ASSERT_INT_EQ(platform_jwt_claims("not-a-jwt", &exp, access), TM_ERR_INVALID);
    ASSERT_INT_EQ(platform_jwt_claims("a.b.c.d", &exp, access), TM_ERR_INVALID);
    ASSERT_INT_EQ(platform_jwt_claims("a..c", &exp, access), TM_ERR_INVALID);
    ASSERT_INT_EQ(platform_jwt_claims("a.!!!.c", &exp, access), TM_ERR_INVALID);
    b64url("[1,2]", payload, sizeof(payload));
    snprintf(jwt, sizeof(jwt), "%s.%s.c2ln", head, payload);
    ASSERT_INT_EQ(platform_jwt_claims(jwt, &exp, access), TM_ERR_INVALID);
    b64url("{\"exp\":\"soon\"}", payload, sizeof(payload));
    snprintf(jwt, sizeof(jwt), "%s.%s.c2ln", head, payload);
    ASSERT_INT_EQ(platform_jwt_claims(jwt, &exp, access), TM_ERR_INVALID);
    ASSERT_INT_EQ(platform_jwt_claims(NULL, &exp, access), TM_ERR_INVALID);
}

/* The asynchronous form: done runs once, on another thread, with a body it owns. */
struct async_box {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int n_calls;
    enum tm_err err;
    char slug[32];
};

static void on_async(struct platform_reply *r, void *ctx)
{
    struct async_box *b = ctx;
    pthread_mutex_lock(&b->lock);
    b->n_calls++;
    b->err = r->err;
    snprintf(b->slug, sizeof(b->slug), "%s",
             json_string_value(json_object_get(json_array_get(r->json, 0), "slug")));
    json_decref(r->json);
    pthread_cond_broadcast(&b->cond);
    pthread_mutex_unlock(&b->lock);
}

static void asynchronous_call(void)
{
    struct fixture f;
    struct async_box b;
    memset(&b, 0, sizeof(b));
    pthread_mutex_init(&b.lock, NULL);
    pthread_cond_init(&b.cond, NULL);
    fixture_start(&f, NULL);
    srv_answer(f.s, 200, "application/json", "[{\"slug\":\"acme\"}]");
    struct platform_request req = {.method = "GET", .path = "/v1/organizations"};
    ASSERT_INT_EQ(platform_call(f.p, platform_token, &req, on_async, &b), TM_OK);
    pthread_mutex_lock(&b.lock);
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += 10;
    while (b.n_calls == 0) {
        if (pthread_cond_timedwait(&b.cond, &b.lock, &dl) == ETIMEDOUT)
            break;
    }
    ASSERT_INT_EQ(b.n_calls, 1);
    ASSERT_INT_EQ(b.err, TM_OK);
    ASSERT_STR_EQ(b.slug, "acme");
    pthread_mutex_unlock(&b.lock);
    /* Invalid requests never call back. */
    ASSERT_INT_EQ(platform_call(f.p, platform_token, NULL, on_async, &b), TM_ERR_INVALID);
    ASSERT_INT_EQ(platform_call(f.p, platform_token, &req, NULL, &b), TM_ERR_INVALID);
    fixture_stop(&f);
    pthread_mutex_lock(&b.lock);
    ASSERT_INT_EQ(b.n_calls, 1);
    pthread_mutex_unlock(&b.lock);
    pthread_cond_destroy(&b.cond);
    pthread_mutex_destroy(&b.lock);
}

int main(void)
{
    if (sodium_init() < 0 || curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        TEST_FAIL("library initialisation failed");
    RUN(paths_are_escaped);
    RUN(create_checks_url);
    RUN(get_and_post);
    RUN(errors_are_mapped);
    RUN(secrets_never_in_messages);
    RUN(transport_failures);
    RUN(jwt_claims);
    RUN(asynchronous_call);
    curl_global_cleanup();
    TEST_DONE();
}
