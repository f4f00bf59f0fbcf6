/*
 * Unit tests for the curl transport and for hrana_pipeline, against a small
 * libmicrohttpd server started in-process on 127.0.0.1 (port 0, read back).
 * The server echoes what it received, returns chosen statuses and sizes,
 * stalls on request (bounded), and emulates sqld and the local tursodb.
 */
#include "turso_transport.h"
#include "hrana.h"

#include <curl/curl.h>
#include <errno.h>
#include <microhttpd.h>
#include <pthread.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdint.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "test.h"
#include "test_http.h"

#define SRV_MAX_BODY     ((size_t)4 * 1024 * 1024)
#define SRV_STALL_MAX_MS 5000  /* a stalled handler gives up after this */
#define WAIT_MS          20000 /* upper bound on any wait in these tests */

/* ---- time helpers ---- */

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static struct timespec deadline_in(long ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

/* Waits (bounded) until *counter >= target; the caller holds `lock`. */
static bool wait_count(pthread_mutex_t *lock, pthread_cond_t *cond, const int *counter, int target,
                       long ms)
{
    struct timespec dl = deadline_in(ms);
    while (*counter < target) {
        if (pthread_cond_timedwait(cond, lock, &dl) == ETIMEDOUT)
            return *counter >= target;
    }
    return true;
}

/* ---- the in-process server ---- */

enum srv_mode {
    MODE_SQLD,         /* accepts close, answers every request */
    MODE_LOCAL,        /* the local tursodb: 500 text on close */
    MODE_401,          /* {"error": "Unauthorized: ..."} */
    MODE_401_ECHO,     /* a 401 that echoes the Authorization header */
    MODE_403,          /* {"error": "Authorization forbidden: ..."} */
    MODE_400_TEXT,     /* text/plain protocol error */
    MODE_400_JSON,     /* {"message", "code"} */
    MODE_502_HTML,     /* a proxy's long HTML page */
    MODE_ERROR_RESULT, /* 200 with an error result per execute */
    MODE_BAD_COUNT,    /* 200 with no results at all */
    MODE_NOT_JSON,     /* 200 with HTML */
    MODE_STALL,        /* never answers in time */
    MODE_LOCAL_STALL,  /* rejects close as the local tursodb does, then stalls */
};

struct srv {
    struct test_http http;
    unsigned port;
    char base[64]; /* "http://127.0.0.1:PORT" */
    enum srv_mode mode;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    /* Guarded by lock. */
    int n_connections;
    int n_stalled;
    bool is_released;
    int n_pipeline_posts;
    int last_n_requests;
    bool last_has_close;
    char last_auth[256];
    char last_body_head[32];
};

static json_t *header_or_null(struct MHD_Connection *conn, const char *name)
{
    const char *v = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, name);
    return v ? json_string(v) : json_null();
}

/* Blocks until the test releases stalled handlers, or SRV_STALL_MAX_MS. */
static void stall(struct srv *s)
{
    pthread_mutex_lock(&s->lock);
    s->n_stalled++;
    pthread_cond_broadcast(&s->cond);
    struct timespec dl = deadline_in(SRV_STALL_MAX_MS);
    while (!s->is_released) {
        if (pthread_cond_timedwait(&s->cond, &s->lock, &dl) == ETIMEDOUT)
            break;
    }
    s->n_stalled--;
    pthread_mutex_unlock(&s->lock);
}

static json_t *execute_result(const json_t *stmt)
{
    const char *sql = json_string_value(json_object_get(stmt, "sql"));
    json_t *args = json_object_get(stmt, "args");
    json_t *row = NULL;
    if (sql && strcmp(sql, "SELECT 1") == 0)
        row = json_pack("[{s:s,s:s}]", "type", "integer", "value", "1");
    else
        row = args ? json_deep_copy(args) : json_array(); /* echo the arguments as a row */
    return json_pack("{s:s,s:{s:s,s:{s:[],s:[o],s:i,s:n}}}", "type", "ok", "response", "type",
                     "execute", "result", "cols", "rows", row, "affected_row_count", 0,
                     "last_insert_rowid");
}

static enum MHD_Result pipeline(struct srv *s, struct MHD_Connection *conn, const char *upload,
                                size_t upload_len)
{
    static const char close_rejected[] =
        "Internal Server Error: Failed to parse pipeline request: unknown variant `close`, "
        "expected `execute` or `batch` at line 1 column 80";
    json_t *body = json_loadb(upload, upload_len, JSON_ALLOW_NUL, NULL);
    json_t *requests = json_object_get(body, "requests");
    const char *auth = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
    size_t n = json_array_size(requests);
    bool has_close = false, has_other = false;
    for (size_t i = 0; i < n; i++) {
        const char *type = json_string_value(json_object_get(json_array_get(requests, i), "type"));
        if (type && strcmp(type, "close") == 0)
            has_close = true;
        else if (!type || (strcmp(type, "execute") != 0 && strcmp(type, "batch") != 0))
            has_other = true;
    }

    pthread_mutex_lock(&s->lock);
    s->n_pipeline_posts++;
    s->last_n_requests = (int)n;
    const char *last_type =
        n > 0 ? json_string_value(json_object_get(json_array_get(requests, n - 1), "type")) : NULL;
    s->last_has_close = last_type && strcmp(last_type, "close") == 0;
    snprintf(s->last_auth, sizeof(s->last_auth), "%s", auth ? auth : "");
    snprintf(s->last_body_head, sizeof(s->last_body_head), "%.*s",
             (int)(upload_len < 31 ? upload_len : 31), upload);
    enum srv_mode mode = s->mode;
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->lock);

    enum MHD_Result ret = MHD_NO;
    if (!json_is_array(requests) || has_other) {
        ret = test_http_respond(conn, 400, "text/plain", "bad pipeline", 12);
        goto out;
    }
    switch (mode) {
    case MODE_LOCAL:
        if (has_close) {
            ret =
                test_http_respond(conn, 500, "text/plain", close_rejected, strlen(close_rejected));
            goto out;
        }
        /* fall through */
    case MODE_SQLD:
    case MODE_ERROR_RESULT: {
        json_t *results = json_array();
        for (size_t i = 0; i < n; i++) {
            json_t *r = json_array_get(requests, i);
            const char *type = json_string_value(json_object_get(r, "type"));
            if (strcmp(type, "close") == 0)
                json_array_append_new(
                    results, json_pack("{s:s,s:{s:s}}", "type", "ok", "response", "type", "close"));
            else if (mode == MODE_ERROR_RESULT)
                json_array_append_new(
                    results, json_pack("{s:s,s:{s:s,s:s}}", "type", "error", "error", "message",
                                       "SQL input error: no such table: no_such_table (at offset "
                                       "14)",
                                       "code", "SQL_INPUT_ERROR"));
            else
                json_array_append_new(results, execute_result(json_object_get(r, "stmt")));
        }
        ret = test_http_respond_json(
            conn, 200, json_pack("{s:n,s:n,s:o}", "baton", "base_url", "results", results));
        break;
    }
    case MODE_401:
        ret = test_http_respond_json(
            conn, 401, json_pack("{s:s}", "error", "Unauthorized: `The JWT is invalid`"));
        break;
    case MODE_401_ECHO: {
        char text[512];
        snprintf(text, sizeof(text), "Unauthorized: got %s", auth ? auth : "nothing");
        ret = test_http_respond_json(conn, 401, json_pack("{s:s}", "error", text));
        break;
    }
    case MODE_403:
        ret = test_http_respond_json(
            conn, 403,
            json_pack("{s:s}", "error",
                      "Authorization forbidden: Current session doesn't not have "
                      "Write permission to namespace notes-acme"));
        break;
    case MODE_400_TEXT: {
        static const char text[] = "Received a baton that has already been used\n";
        ret = test_http_respond(conn, 400, "text/plain", text, strlen(text));
        break;
    }
    case MODE_400_JSON:
        ret = test_http_respond_json(conn, 400,
                                     json_pack("{s:s,s:s}", "message",
                                               "The stream has expired due to inactivity", "code",
                                               "STREAM_EXPIRED"));
        break;
    case MODE_502_HTML: {
        char page[1024];
        int len = snprintf(page, sizeof(page), "<html><body>%0600d</body></html>", 0);
        /* A multi-byte character straddles byte 200 of the excerpt. */
        memcpy(page + 197, "\xc3\xa9\xc3\xa9", 4);
        ret = test_http_respond(conn, 502, "text/html", page, (size_t)len);
        break;
    }
    case MODE_BAD_COUNT:
        ret = test_http_respond_json(conn, 200,
                                     json_pack("{s:n,s:n,s:[]}", "baton", "base_url", "results"));
        break;
    case MODE_NOT_JSON:
        ret = test_http_respond(conn, 200, "text/html", "<html>oops</html>", 17);
        break;
    case MODE_STALL:
        stall(s);
        ret = test_http_respond(conn, 200, "text/plain", "late", 4);
        break;
    case MODE_LOCAL_STALL:
        if (has_close) {
            ret =
                test_http_respond(conn, 500, "text/plain", close_rejected, strlen(close_rejected));
            goto out;
        }
        stall(s);
        ret = test_http_respond(conn, 200, "text/plain", "late", 4);
        break;
    }
out:
    json_decref(body);
    return ret;
}

static enum MHD_Result answer(void *state, const char *method, const char *url, const char *body,
                              size_t body_len, struct MHD_Connection *conn)
{
    struct srv *s = state;
    if (strcmp(url, "/echo") == 0) {
        json_t *j = json_pack(
            "{s:s,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:I}", "method", method, "auth",
            header_or_null(conn, "Authorization"), "content_length",
            header_or_null(conn, "Content-Length"), "content_type",
            header_or_null(conn, "Content-Type"), "transfer_encoding",
            header_or_null(conn, "Transfer-Encoding"), "expect", header_or_null(conn, "Expect"),
            "user_agent", header_or_null(conn, "User-Agent"), "accept_encoding",
            header_or_null(conn, "Accept-Encoding"), "body_len", (json_int_t)body_len);
        if (j && body_len < 65536)
            json_object_set_new(j, "body", json_stringn(body, body_len));
        return test_http_respond_json(conn, 200, j);
    }
    if (strncmp(url, "/status/", 8) == 0) {
        unsigned status = (unsigned)atoi(url + 8);
        char text[32];
        int len = snprintf(text, sizeof(text), "status %u", status);
        return test_http_respond(conn, status, "text/plain", text, status == 204 ? 0 : (size_t)len);
    }
    if (strncmp(url, "/big/", 5) == 0) {
        size_t n = (size_t)atol(url + 5);
        char *big = malloc(n + 1);
        if (!big)
            return MHD_NO;
        memset(big, 'x', n);
        struct MHD_Response *r = MHD_create_response_from_buffer(n, big, MHD_RESPMEM_MUST_FREE);
        if (!r) {
            free(big);
            return MHD_NO;
        }
        enum MHD_Result ret = MHD_queue_response(conn, 200, r);
        MHD_destroy_response(r);
        return ret;
    }
    if (strcmp(url, "/stall") == 0) {
        stall(s);
        return test_http_respond(conn, 200, "text/plain", "late", 4);
    }
    if (strcmp(url, "/v2/pipeline") == 0 && strcmp(method, "POST") == 0)
        return pipeline(s, conn, body, body_len);
    return test_http_respond(conn, 404, "text/plain", "Not Found", 9);
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
    struct srv *s = cls;
    if (toe != MHD_CONNECTION_NOTIFY_STARTED)
        return;
    pthread_mutex_lock(&s->lock);
    s->n_connections++;
    pthread_mutex_unlock(&s->lock);
}

static struct srv *srv_start(enum srv_mode mode)
{
    struct srv *s = calloc(1, sizeof(*s));
    ASSERT_NOT_NULL(s);
    s->mode = mode;
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->cond, NULL);
    s->http = (struct test_http){
        .answer = answer,
        .state = s,
        .max_body_len = SRV_MAX_BODY,
        .on_connection = on_connection,
    };
    s->port = test_http_start(&s->http, s->base, sizeof(s->base));
    ASSERT(s->port > 0);
    return s;
}

static void srv_release(struct srv *s)
{
    pthread_mutex_lock(&s->lock);
    s->is_released = true;
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->lock);
}

static void srv_stop(struct srv *s)
{
    srv_release(s);
    test_http_stop(&s->http);
    pthread_cond_destroy(&s->cond);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

static int srv_get(struct srv *s, const int *field)
{
    pthread_mutex_lock(&s->lock);
    int v = *field;
    pthread_mutex_unlock(&s->lock);
    return v;
}

/* Waits until `n` handlers are stalled on the server. */
static void srv_wait_stalled(struct srv *s, int n)
{
    pthread_mutex_lock(&s->lock);
    bool ok = wait_count(&s->lock, &s->cond, &s->n_stalled, n, WAIT_MS);
    pthread_mutex_unlock(&s->lock);
    if (!ok)
        TEST_FAIL("only %d of %d requests reached the server", srv_get(s, &s->n_stalled), n);
}

static struct turso_transport *transport_start_lanes(long total_timeout_ms, size_t max_response_len,
                                                     int n_threads)
{
    struct turso_transport_opts opts = {
        .connect_timeout_ms = 2000,
        .total_timeout_ms = total_timeout_ms,
        .max_response_len = max_response_len,
        .user_agent = "turso-mcp-test/1",
        .n_threads = n_threads,
    };
    struct turso_transport *t = NULL;
    ASSERT_INT_EQ(turso_transport_start(&opts, &t), TM_OK);
    ASSERT_NOT_NULL(t);
    return t;
}

/* Two threads drive connections whatever the machine, so that every test
 * below has transfers, cancels and deadlines spread over both. */
static struct turso_transport *transport_start(long total_timeout_ms, size_t max_response_len)
{
    return transport_start_lanes(total_timeout_ms, max_response_len, 2);
}

/* A blocking request; the reply body is parsed as JSON when `json` is set. */
static void call(struct turso_transport *t, const char *method, const char *url, const char *bearer,
                 const char *body, long timeout_ms, struct turso_reply *out)
{
    struct turso_request req = {
        .method = method,
        .url = url,
        .bearer = bearer,
        .body = body,
        .body_len = body ? strlen(body) : 0,
        .timeout_ms = timeout_ms,
    };
    enum tm_err err = turso_transport_call(t, &req, out);
    ASSERT_INT_EQ(err, out->err);
}

static json_t *echo(struct turso_transport *t, const char *url_base, const char *method,
                    const char *bearer, const char *body)
{
    char url[128];
    struct turso_reply r;
    snprintf(url, sizeof(url), "%s/echo", url_base);
    call(t, method, url, bearer, body, 0, &r);
    if (r.err != TM_OK)
        TEST_FAIL("echo failed: %d %s", (int)r.err, r.message);
    ASSERT_INT_EQ(r.status, 200);
    json_t *j = json_loadb(r.body, r.body_len, 0, NULL);
    ASSERT_NOT_NULL(j);
    turso_reply_cleanup(&r);
    ASSERT_NULL(r.body);
    return j;
}

#define ASSERT_MEMBER_STR(j, key, expected)                                                        \
    ASSERT_STR_EQ(json_string_value(json_object_get((j), (key))), (expected))
#define ASSERT_MEMBER_NULL(j, key) ASSERT(json_is_null(json_object_get((j), (key))))

/* ---- transport cases ---- */

static void json_post_roundtrip(void)
{
    struct srv *s = srv_start(MODE_SQLD);
    struct turso_transport *t = transport_start(0, 0);
    const char *body = "{\"hello\":\"w\xc3\xb6rld\",\"n\":[1,2,3]}";
    json_t *j = echo(t, s->base, "POST", "tok-123.abc_DEF", body);
    ASSERT_MEMBER_STR(j, "method", "POST");
    ASSERT_MEMBER_STR(j, "body", body);
    ASSERT_MEMBER_STR(j, "auth", "Bearer tok-123.abc_DEF");
    ASSERT_MEMBER_STR(j, "content_type", "application/json");
    char len[32];
    snprintf(len, sizeof(len), "%zu", strlen(body));
    ASSERT_MEMBER_STR(j, "content_length", len);
    ASSERT_MEMBER_NULL(j, "transfer_encoding");
    ASSERT_MEMBER_NULL(j, "expect");
    ASSERT_MEMBER_STR(j, "user_agent", "turso-mcp-test/1");
    ASSERT_NOT_NULL(json_string_value(json_object_get(j, "accept_encoding")));
    json_decref(j);
    turso_transport_stop(&t);
    ASSERT_NULL(t);
    turso_transport_stop(&t); /* accepts NULL */
    srv_stop(s);
}

static void headers_per_method(void)
{
    struct srv *s = srv_start(MODE_SQLD);
    struct turso_transport *t = transport_start(0, 0);

    /* A POST without a body still says Content-Length: 0 and has no type. */
    json_t *j = echo(t, s->base, "POST", NULL, NULL);
    ASSERT_MEMBER_STR(j, "content_length", "0");
    ASSERT_MEMBER_NULL(j, "content_type");
    ASSERT_MEMBER_NULL(j, "auth");
    json_decref(j);

    /* An empty bearer sends no Authorization header. */
    j = echo(t, s->base, "GET", "", NULL);
    ASSERT_MEMBER_STR(j, "method", "GET");
    ASSERT_MEMBER_NULL(j, "content_length");
    ASSERT_MEMBER_NULL(j, "auth");
    json_decref(j);

    j = echo(t, s->base, "PATCH", "t", "{\"a\":1}");
    ASSERT_MEMBER_STR(j, "method", "PATCH");
    ASSERT_MEMBER_STR(j, "content_length", "7");
    ASSERT_MEMBER_STR(j, "body", "{\"a\":1}");
    ASSERT_MEMBER_STR(j, "auth", "Bearer t");
    json_decref(j);

    j = echo(t, s->base, "DELETE", "t", NULL);
    ASSERT_MEMBER_STR(j, "method", "DELETE");
    ASSERT_MEMBER_STR(j, "body", "");
    json_decref(j);

    /* A large body goes with Content-Length, unchunked and without Expect. */
    size_t big_len = 2 * 1024 * 1024;
    char *big = malloc(big_len + 1);
    ASSERT_NOT_NULL(big);
    memset(big, ' ', big_len);
    big[0] = '[';
    big[big_len - 1] = ']';
    big[big_len] = '\0';
    j = echo(t, s->base, "POST", "t", big);
    ASSERT_MEMBER_STR(j, "content_length", "2097152");
    ASSERT_INT_EQ(json_integer_value(json_object_get(j, "body_len")), big_len);
    ASSERT_MEMBER_NULL(j, "transfer_encoding");
    ASSERT_MEMBER_NULL(j, "expect");
    json_decref(j);
    free(big);

    turso_transport_stop(&t);
    srv_stop(s);
}

/* One request at a time through submit: what its callback saw. */
struct seen {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool is_done;
    enum tm_err err;
    long status;
    char *body; /* a copy */
    size_t body_len;
};

static void on_seen(const struct turso_reply *reply, void *ctx)
{
    struct seen *sn = ctx;
    /* The body is NUL-terminated at body_len, whatever the buffer held before. */
    ASSERT_NOT_NULL(reply->body);
    ASSERT_INT_EQ(strlen(reply->body), reply->body_len);
    char *copy = malloc(reply->body_len + 1);
    ASSERT_NOT_NULL(copy);
    memcpy(copy, reply->body, reply->body_len + 1);
    pthread_mutex_lock(&sn->lock);
    sn->err = reply->err;
    sn->status = reply->status;
    sn->body = copy;
    sn->body_len = reply->body_len;
    sn->is_done = true;
    pthread_cond_signal(&sn->cond);
    pthread_mutex_unlock(&sn->lock);
}

/* Submits a GET of base + path and waits for its callback; free sn->body after. */
static void submit_wait(struct turso_transport *t, const char *base, const char *path,
                        const char *bearer, struct seen *sn)
{
    char url[128];
    snprintf(url, sizeof(url), "%s%s", base, path);
    struct turso_request req = {.method = "GET", .url = url, .bearer = bearer};
    memset(sn, 0, sizeof(*sn));
    pthread_mutex_init(&sn->lock, NULL);
    pthread_cond_init(&sn->cond, NULL);
    ASSERT_INT_EQ(turso_transport_submit(t, &req, on_seen, sn), TM_OK);
    pthread_mutex_lock(&sn->lock);
    bool ok = true;
    struct timespec until = deadline_in(WAIT_MS);
    while (!sn->is_done && ok)
        ok = pthread_cond_timedwait(&sn->cond, &sn->lock, &until) == 0;
    pthread_mutex_unlock(&sn->lock);
    if (!sn->is_done)
        TEST_FAIL("no callback for %s", path);
    pthread_cond_destroy(&sn->cond);
    pthread_mutex_destroy(&sn->lock);
}

/*
 * Easy handles and response buffers are reused: one request at a time takes
 * the handle and buffer the last one gave back, and must carry nothing of it
 * (no bearer above all, nor method, body or bytes of an earlier answer).
 */
static void reuse_forgets(void)
{
    struct srv *s = srv_start(MODE_SQLD);
    struct turso_transport *t = transport_start(0, 0);

    json_t *j = echo(t, s->base, "PATCH", "secret-1", "{\"a\":1}");
    ASSERT_MEMBER_STR(j, "auth", "Bearer secret-1");
    json_decref(j);
    j = echo(t, s->base, "POST", NULL, NULL);
    ASSERT_MEMBER_STR(j, "method", "POST");
    ASSERT_MEMBER_NULL(j, "auth");
    ASSERT_MEMBER_STR(j, "content_length", "0");
    ASSERT_MEMBER_NULL(j, "content_type");
    json_decref(j);
    j = echo(t, s->base, "DELETE", "secret-2", NULL);
    ASSERT_MEMBER_STR(j, "auth", "Bearer secret-2");
    json_decref(j);
    j = echo(t, s->base, "GET", NULL, NULL);
    ASSERT_MEMBER_STR(j, "method", "GET");
    ASSERT_MEMBER_NULL(j, "auth");
    ASSERT_MEMBER_NULL(j, "content_length");
    json_decref(j);

    /* The same through submit, whose replies come from the kept buffers. */
    struct seen sn;
    submit_wait(t, s->base, "/echo", "secret-3", &sn);
    ASSERT_INT_EQ(sn.err, TM_OK);
    ASSERT_CONTAINS(sn.body, "Bearer secret-3");
    free(sn.body);
    submit_wait(t, s->base, "/echo", NULL, &sn);
    ASSERT_INT_EQ(sn.err, TM_OK);
    j = json_loads(sn.body, 0, NULL);
    ASSERT_NOT_NULL(j);
    ASSERT_MEMBER_NULL(j, "auth");
    json_decref(j);
    free(sn.body);

    /* A long answer, then short ones: nothing of the long one shows. Sizes
     * on both sides of the largest buffer kept. */
    const char *paths[] = {"/big/10000", "/status/201", "/big/100000", "/status/202",
                           "/status/204"};
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        submit_wait(t, s->base, paths[i], NULL, &sn);
        ASSERT_INT_EQ(sn.err, TM_OK);
        if (strncmp(paths[i], "/big/", 5) == 0) {
            ASSERT_INT_EQ(sn.body_len, (size_t)atol(paths[i] + 5));
        } else if (strcmp(paths[i], "/status/204") == 0) {
            ASSERT_STR_EQ(sn.body, "");
        } else {
            char expected[32];
            snprintf(expected, sizeof(expected), "status %s", paths[i] + 8);
            ASSERT_STR_EQ(sn.body, expected);
        }
        free(sn.body);
    }
    turso_transport_stop(&t);
    srv_stop(s);
}

static void status_passthrough(void)
{
    struct srv *s = srv_start(MODE_SQLD);
    struct turso_transport *t = transport_start(0, 0);
    unsigned statuses[] = {200, 201, 204, 400, 401, 403, 404, 418, 429, 500, 503};
    for (size_t i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++) {
        char url[128];
        struct turso_reply r;
        snprintf(url, sizeof(url), "%s/status/%u", s->base, statuses[i]);
        call(t, "GET", url, NULL, NULL, 0, &r);
        ASSERT_INT_EQ(r.err, TM_OK);
        ASSERT_INT_EQ(r.status, statuses[i]);
        ASSERT_NOT_NULL(r.body);
        if (statuses[i] == 204) {
            ASSERT_INT_EQ(r.body_len, 0);
            ASSERT_STR_EQ(r.body, "");
        } else {
            char expected[32];
            snprintf(expected, sizeof(expected), "status %u", statuses[i]);
            ASSERT_STR_EQ(r.body, expected);
            ASSERT_INT_EQ(r.body_len, strlen(expected));
        }
        turso_reply_cleanup(&r);
    }
    turso_transport_stop(&t);
    srv_stop(s);
}

static void response_cap(void)
{
    struct srv *s = srv_start(MODE_SQLD);
    struct turso_transport *t = transport_start(0, 1000);
    char url[128];
    struct turso_reply r;

    snprintf(url, sizeof(url), "%s/big/1000", s->base);
    call(t, "GET", url, NULL, NULL, 0, &r);
    ASSERT_INT_EQ(r.err, TM_OK);
    ASSERT_INT_EQ(r.body_len, 1000);
    ASSERT_INT_EQ(strlen(r.body), 1000);
    turso_reply_cleanup(&r);

    size_t sizes[] = {1001, 100000, 3 * 1024 * 1024};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        snprintf(url, sizeof(url), "%s/big/%zu", s->base, sizes[i]);
        call(t, "GET", url, NULL, NULL, 0, &r);
        ASSERT_INT_EQ(r.err, TM_ERR_TOO_LARGE);
        ASSERT_INT_EQ(r.status, 0);
        ASSERT_INT_EQ(r.body_len, 0);
        ASSERT_CONTAINS(r.message, "1000 bytes");
        turso_reply_cleanup(&r);
    }
    turso_transport_stop(&t);
    srv_stop(s);
}

static void timeouts(void)
{
    struct srv *s = srv_start(MODE_SQLD);
    char url[128];
    struct turso_reply r;
    snprintf(url, sizeof(url), "%s/stall", s->base);

    /* The request's own timeout. */
    struct turso_transport *t = transport_start(0, 0);
    long long start = now_ms();
    call(t, "GET", url, "secret-bearer", NULL, 300, &r);
    long long took = now_ms() - start;
    ASSERT_INT_EQ(r.err, TM_ERR_TIMEOUT);
    ASSERT_INT_EQ(r.status, 0);
    ASSERT(r.message[0] != '\0');
    ASSERT(strstr(r.message, "secret-bearer") == NULL);
    if (took < 250 || took > 3000)
        TEST_FAIL("a 300 ms timeout took %lld ms", took);
    turso_reply_cleanup(&r);
    turso_transport_stop(&t);

    /* The transport's default when the request gives none. */
    t = transport_start(300, 0);
    start = now_ms();
    call(t, "POST", url, NULL, "{}", 0, &r);
    took = now_ms() - start;
    ASSERT_INT_EQ(r.err, TM_ERR_TIMEOUT);
    if (took < 250 || took > 3000)
        TEST_FAIL("a 300 ms default timeout took %lld ms", took);
    turso_reply_cleanup(&r);
    turso_transport_stop(&t);
    srv_stop(s);
}

static void connection_refused(void)
{
    struct turso_transport *t = transport_start(0, 0);
    char url[128];
    struct turso_reply r;
    unsigned port = test_http_closed_port();
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/echo", port);
    call(t, "POST", url, "secret-bearer", "{}", 0, &r);
    ASSERT_INT_EQ(r.err, TM_ERR_NETWORK);
    ASSERT_INT_EQ(r.status, 0);
    ASSERT_NOT_NULL(r.body);
    ASSERT_CONTAINS(r.message, "127.0.0.1");
    ASSERT(strstr(r.message, "secret-bearer") == NULL);
    turso_reply_cleanup(&r);
    turso_transport_stop(&t);
}

static void never_called(const struct turso_reply *reply, void *ctx)
{
    TEST_FAIL("a refused submission ran its callback");
}

static void invalid_requests(void)
{
    struct turso_transport *t = transport_start(0, 0);
    struct turso_request req = {.method = "POST", .url = "http://127.0.0.1:1/x"};
    ASSERT_INT_EQ(turso_transport_submit(t, &req, NULL, NULL), TM_ERR_INVALID);
    ASSERT_INT_EQ(turso_transport_submit(NULL, &req, never_called, NULL), TM_ERR_INVALID);
    ASSERT_INT_EQ(turso_transport_submit(t, NULL, never_called, NULL), TM_ERR_INVALID);
    req.method = "PUT";
    ASSERT_INT_EQ(turso_transport_submit(t, &req, never_called, NULL), TM_ERR_INVALID);
    req.method = NULL;
    ASSERT_INT_EQ(turso_transport_submit(t, &req, never_called, NULL), TM_ERR_INVALID);
    req.method = "POST";
    req.url = NULL;
    ASSERT_INT_EQ(turso_transport_submit(t, &req, never_called, NULL), TM_ERR_INVALID);
    req.url = "http://127.0.0.1:1/x";
    req.bearer = "abc\r\nX-Injected: 1";
    ASSERT_INT_EQ(turso_transport_submit(t, &req, never_called, NULL), TM_ERR_INVALID);
    req.bearer = NULL;
    req.method = "GET";
    req.body = "{}";
    req.body_len = 2;
    ASSERT_INT_EQ(turso_transport_submit(t, &req, never_called, NULL), TM_ERR_INVALID);
    /* Only http and https. */
    struct turso_reply r;
    call(t, "GET", "file:///etc/passwd", NULL, NULL, 0, &r);
    ASSERT(r.err == TM_ERR_INVALID || r.err == TM_ERR_NETWORK);
    turso_reply_cleanup(&r);
    ASSERT_INT_EQ(turso_transport_call(t, &req, NULL), TM_ERR_INVALID);
    turso_transport_stop(&t);
    /* Options that make no sense are refused, with nothing started. */
    struct turso_transport_opts bad = {.n_threads = -1};
    struct turso_transport *none = NULL;
    ASSERT_INT_EQ(turso_transport_start(&bad, &none), TM_ERR_INVALID);
    ASSERT(none == NULL);
}

#define N_CONCURRENT 200

/* Whether the calling thread drives connections rather than running
 * callbacks (the transport names its threads for operators). */
static bool is_on_lane_thread(void)
{
    char name[16] = "";
    pthread_getname_np(pthread_self(), name, sizeof(name));
    return strncmp(name, "tm-upstream", strlen("tm-upstream")) == 0;
}

/* Completion counts for many requests at once. */
struct tally {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int n_done;              /* guarded by lock, like the arrays */
    int calls[N_CONCURRENT]; /* callbacks seen per request */
    enum tm_err errs[N_CONCURRENT];
    long statuses[N_CONCURRENT];
    bool is_body_ok[N_CONCURRENT];
    struct turso_transport *t; /* for callbacks that submit again */
    enum tm_err resubmit_err[N_CONCURRENT];
    bool is_on_lane[N_CONCURRENT]; /* the callback ran on a thread that drives connections */
    char url[128];
};

struct tally_slot {
    struct tally *tally;
    int i;
};

static void tally_init(struct tally *ty)
{
    memset(ty, 0, sizeof(*ty));
    pthread_mutex_init(&ty->lock, NULL);
    pthread_cond_init(&ty->cond, NULL);
}

static void tally_cleanup(struct tally *ty)
{
    pthread_cond_destroy(&ty->cond);
    pthread_mutex_destroy(&ty->lock);
}

static void tally_wait(struct tally *ty, int n)
{
    pthread_mutex_lock(&ty->lock);
    bool ok = wait_count(&ty->lock, &ty->cond, &ty->n_done, n, WAIT_MS);
    int done = ty->n_done;
    pthread_mutex_unlock(&ty->lock);
    if (!ok)
        TEST_FAIL("only %d of %d requests completed", done, n);
}

static void on_tally(const struct turso_reply *reply, void *ctx)
{
    struct tally_slot *slot = ctx;
    struct tally *ty = slot->tally;
    char expected[64];
    snprintf(expected, sizeof(expected), "\"body\":\"{\\\"i\\\":%d}\"", slot->i);
    pthread_mutex_lock(&ty->lock);
    ty->calls[slot->i]++;
    ty->errs[slot->i] = reply->err;
    ty->statuses[slot->i] = reply->status;
    ty->is_body_ok[slot->i] = reply->body && strstr(reply->body, expected) != NULL;
    ty->n_done++;
    pthread_cond_broadcast(&ty->cond);
    pthread_mutex_unlock(&ty->lock);
}

static void run_many_concurrent(int n_threads)
{
    struct srv *s = srv_start(MODE_SQLD);
    struct turso_transport *t = transport_start_lanes(0, 0, n_threads);
    static struct tally ty;
    static struct tally_slot slots[N_CONCURRENT];
    static char bodies[N_CONCURRENT][32];
    char url[128];
    tally_init(&ty);
    snprintf(url, sizeof(url), "%s/echo", s->base);
    for (int i = 0; i < N_CONCURRENT; i++) {
        slots[i].tally = &ty;
        slots[i].i = i;
        snprintf(bodies[i], sizeof(bodies[i]), "{\"i\":%d}", i);
        struct turso_request req = {
            .method = "POST",
            .url = url,
            .bearer = "tok",
            .body = bodies[i],
            .body_len = strlen(bodies[i]),
        };
        ASSERT_INT_EQ(turso_transport_submit(t, &req, on_tally, &slots[i]), TM_OK);
    }
    tally_wait(&ty, N_CONCURRENT);
    /* Give a duplicate completion a moment to show up. */
    usleep(100 * 1000);
    pthread_mutex_lock(&ty.lock);
    ASSERT_INT_EQ(ty.n_done, N_CONCURRENT);
    for (int i = 0; i < N_CONCURRENT; i++) {
        ASSERT_INT_EQ(ty.calls[i], 1);
        ASSERT_INT_EQ(ty.errs[i], TM_OK);
        ASSERT_INT_EQ(ty.statuses[i], 200);
        if (!ty.is_body_ok[i])
            TEST_FAIL("request %d got another request's answer", i);
    }
    pthread_mutex_unlock(&ty.lock);
    turso_transport_stop(&t);
    tally_cleanup(&ty);
    srv_stop(s);
}

/* Each answer reaches its own request, with one thread driving the
 * connections, two, and the most there can be (more asked for are capped). */
static void many_concurrent(void)
{
    run_many_concurrent(1);
    run_many_concurrent(2);
    run_many_concurrent(1000);
}

/* Submits the next link of a chain from inside the callback. */
static void on_chain(const struct turso_reply *reply, void *ctx)
{
    struct tally_slot *slot = ctx;
    struct tally *ty = slot->tally;
    pthread_mutex_lock(&ty->lock);
    ty->calls[slot->i]++;
    ty->errs[slot->i] = reply->err;
    ty->statuses[slot->i] = reply->status;
    ty->is_on_lane[slot->i] = is_on_lane_thread();
    pthread_mutex_unlock(&ty->lock);
    if (slot->i + 1 < 5) {
        /* The slots live in one array, so the next one is right after. */
        struct turso_request req = {.method = "GET", .url = ty->url};
        enum tm_err err = turso_transport_submit(ty->t, &req, on_chain, slot + 1);
        pthread_mutex_lock(&ty->lock);
        ty->resubmit_err[slot->i] = err;
        pthread_mutex_unlock(&ty->lock);
    }
    pthread_mutex_lock(&ty->lock);
    ty->n_done++;
    pthread_cond_broadcast(&ty->cond);
    pthread_mutex_unlock(&ty->lock);
}

/*
 * For the tests run a second time with `is_inline`: a new group in *g whose
 * callbacks never block (the answers are small, so the callbacks run on the
 * thread that drove the connection). Without it, no group (NULL).
 */
static const struct turso_call_group *inline_group(bool is_inline, struct turso_call_group *g)
{
    if (!is_inline)
        return NULL;
    *g = (struct turso_call_group){.id = turso_transport_new_group_id(),
                                   .callbacks_never_block = true};
    return g;
}

/* A chain of five requests, each submitted from the callback of the one before. */
static void run_callback_submits(bool is_inline)
{
    struct srv *s = srv_start(MODE_SQLD);
    static struct tally ty;
    static struct tally_slot slots[5];
    tally_init(&ty);
    ty.t = transport_start(0, 0);
    snprintf(ty.url, sizeof(ty.url), "%s/status/202", s->base);
    for (int i = 0; i < 5; i++) {
        slots[i].tally = &ty;
        slots[i].i = i;
    }
    struct turso_call_group g;
    struct turso_request req = {.method = "GET", .url = ty.url};
    turso_transport_set_group(inline_group(is_inline, &g));
    ASSERT_INT_EQ(turso_transport_submit(ty.t, &req, on_chain, &slots[0]), TM_OK);
    turso_transport_set_group(NULL);
    tally_wait(&ty, 5);
    pthread_mutex_lock(&ty.lock);
    for (int i = 0; i < 5; i++) {
        ASSERT_INT_EQ(ty.calls[i], 1);
        ASSERT_INT_EQ(ty.errs[i], TM_OK);
        ASSERT_INT_EQ(ty.statuses[i], 202);
        if (i < 4)
            ASSERT_INT_EQ(ty.resubmit_err[i], TM_OK);
        /* The links inherit the group, and with it where their callbacks run. */
        ASSERT(ty.is_on_lane[i] == is_inline);
    }
    pthread_mutex_unlock(&ty.lock);
    turso_transport_stop(&ty.t);
    tally_cleanup(&ty);
    srv_stop(s);
}

static void callback_submits(void)
{
    run_callback_submits(false);
    run_callback_submits(true);
}

/* Records a cancellation and tries (in vain) to submit again. */
static void on_cancel(const struct turso_reply *reply, void *ctx)
{
    struct tally_slot *slot = ctx;
    struct tally *ty = slot->tally;
    struct turso_request req = {.method = "GET", .url = ty->url};
    enum tm_err err = turso_transport_submit(ty->t, &req, never_called, NULL);
    pthread_mutex_lock(&ty->lock);
    ty->calls[slot->i]++;
    ty->errs[slot->i] = reply->err;
    ty->statuses[slot->i] = reply->status;
    ty->resubmit_err[slot->i] = err;
    ty->is_on_lane[slot->i] = is_on_lane_thread();
    ty->n_done++;
    pthread_cond_broadcast(&ty->cond);
    pthread_mutex_unlock(&ty->lock);
}

/* Stopping ends the requests in flight; their callbacks cannot submit more. */
static void run_stop_in_flight(bool is_inline)
{
    struct srv *s = srv_start(MODE_SQLD);
    static struct tally ty;
    static struct tally_slot slots[5];
    tally_init(&ty);
    ty.t = transport_start(0, 0);
    snprintf(ty.url, sizeof(ty.url), "%s/stall", s->base);
    struct turso_call_group g;
    turso_transport_set_group(inline_group(is_inline, &g));
    for (int i = 0; i < 5; i++) {
        slots[i].tally = &ty;
        slots[i].i = i;
        struct turso_request req = {.method = "GET", .url = ty.url, .bearer = "tok"};
        ASSERT_INT_EQ(turso_transport_submit(ty.t, &req, on_cancel, &slots[i]), TM_OK);
    }
    turso_transport_set_group(NULL);
    srv_wait_stalled(s, 5);
    struct turso_transport *t = ty.t;
    long long start = now_ms();
    turso_transport_stop(&t);
    ASSERT(now_ms() - start < 2000);
    /* Every callback ran before stop returned. */
    pthread_mutex_lock(&ty.lock);
    ASSERT_INT_EQ(ty.n_done, 5);
    for (int i = 0; i < 5; i++) {
        ASSERT_INT_EQ(ty.calls[i], 1);
        ASSERT_INT_EQ(ty.errs[i], TM_ERR_CANCELLED);
        ASSERT_INT_EQ(ty.statuses[i], 0);
        ASSERT_INT_EQ(ty.resubmit_err[i], TM_ERR_CANCELLED);
        ASSERT(ty.is_on_lane[i] == is_inline);
    }
    pthread_mutex_unlock(&ty.lock);
    tally_cleanup(&ty);
    srv_stop(s);
}

static void stop_in_flight(void)
{
    run_stop_in_flight(false);
    run_stop_in_flight(true);
}

static void keep_alive(void)
{
    struct srv *s = srv_start(MODE_SQLD);
    struct turso_transport *t = transport_start(0, 0);
    for (int i = 0; i < 20; i++) {
        json_t *j = echo(t, s->base, i % 2 ? "GET" : "POST", "tok", i % 2 ? NULL : "{}");
        json_decref(j);
    }
    ASSERT_INT_EQ(srv_get(s, &s->n_connections), 1);
    turso_transport_stop(&t);
    srv_stop(s);
}

/* ---- how connections end ---- */

/*
 * A bare HTTP/1.1 server on 127.0.0.1 that answers `n_requests` GETs with
 * "ok": each on its own connection, closed by the server right after the
 * answer (the answer and the FIN leave in one segment, corked, as the local
 * engine's do), or all on one connection it keeps open until the client
 * closes it, noting how that ended.
 */
struct bare_srv {
    int listen_fd;
    unsigned port;
    bool closes_each;
    int n_requests;
    int kept_end; /* 0: the client's FIN; else the errno recv saw */
    pthread_t thread;
};

static bool bare_read_request(int fd)
{
    char head[4096];
    size_t len = 0;
    while (len < sizeof(head)) {
        ssize_t got = recv(fd, head + len, sizeof(head) - len, 0);
        if (got <= 0)
            return false;
        len += (size_t)got;
        if (memmem(head, len, "\r\n\r\n", 4))
            return true;
    }
    return false;
}

static void *bare_serve(void *arg)
{
    struct bare_srv *b = arg;
    static const char closing[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
                                  "Connection: close\r\n\r\nok";
    static const char keeping[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    int fd = -1;
    for (int i = 0; i < b->n_requests; i++) {
        if (fd < 0)
            fd = accept(b->listen_fd, NULL, NULL);
        if (fd < 0 || !bare_read_request(fd))
            break;
        if (b->closes_each) {
            int on = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_CORK, &on, sizeof(on));
            if (send(fd, closing, sizeof(closing) - 1, MSG_NOSIGNAL) < 0)
                break;
            close(fd);
            fd = -1;
        } else if (send(fd, keeping, sizeof(keeping) - 1, MSG_NOSIGNAL) < 0) {
            break;
        }
    }
    if (fd >= 0) {
        char byte;
        ssize_t got = recv(fd, &byte, 1, 0);
        b->kept_end = got == 0 ? 0 : got < 0 ? errno : EPROTO;
        close(fd);
    }
    return NULL;
}

static void bare_start(struct bare_srv *b, bool closes_each, int n_requests)
{
    memset(b, 0, sizeof(*b));
    b->closes_each = closes_each;
    b->n_requests = n_requests;
    b->kept_end = -1;
    b->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    ASSERT(b->listen_fd >= 0);
    struct sockaddr_in addr = {.sin_family = AF_INET};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT(bind(b->listen_fd, (struct sockaddr *)&addr, sizeof(addr)) == 0);
    ASSERT(listen(b->listen_fd, 16) == 0);
    socklen_t len = sizeof(addr);
    ASSERT(getsockname(b->listen_fd, (struct sockaddr *)&addr, &len) == 0);
    b->port = ntohs(addr.sin_port);
    ASSERT(pthread_create(&b->thread, NULL, bare_serve, b) == 0);
}

static void bare_join(struct bare_srv *b)
{
    ASSERT(pthread_join(b->thread, NULL) == 0);
    close(b->listen_fd);
}

/* Sockets of 127.0.0.1:`port` in TIME_WAIT, read from /proc/net/tcp. */
static int time_wait_on_port(unsigned port)
{
    FILE *f = fopen("/proc/net/tcp", "r");
    ASSERT_NOT_NULL(f);
    char line[512];
    int n = 0;
    while (fgets(line, sizeof(line), f)) {
        unsigned local_port, state;
        if (sscanf(line, " %*d: %*8[0-9A-F]:%x %*8[0-9A-F]:%*x %x", &local_port, &state) == 2 &&
            local_port == port && state == 0x06)
            n++;
    }
    fclose(f);
    return n;
}

static void get_ok(struct turso_transport *t, unsigned port)
{
    char url[64];
    struct turso_reply r;
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/", port);
    call(t, "GET", url, NULL, NULL, 0, &r);
    if (r.err != TM_OK)
        TEST_FAIL("GET failed: %d %s", (int)r.err, r.message);
    ASSERT_INT_EQ(r.status, 200);
    ASSERT(r.body_len == 2 && memcmp(r.body, "ok", 2) == 0);
    turso_reply_cleanup(&r);
}

/* A server that closes after each answer keeps none of those connections in
 * TIME_WAIT: the transport's close of a connection already ended resets it. */
static void closed_by_server_leaves_no_time_wait(void)
{
    enum { N = 20 };
    struct bare_srv b;
    bare_start(&b, true, N);
    struct turso_transport *t = transport_start(0, 0);
    for (int i = 0; i < N; i++)
        get_ok(t, b.port);
    bare_join(&b);
    int left = time_wait_on_port(b.port);
    for (int waited_ms = 0; left > 0 && waited_ms < 1000; waited_ms += 10) {
        usleep(10 * 1000);
        left = time_wait_on_port(b.port);
    }
    if (left > 0)
        TEST_FAIL("%d of %d connections the server closed wait in TIME_WAIT", left, N);
    turso_transport_stop(&t);
}

/* A connection the server keeps open ends with the client's FIN, not a reset. */
static void kept_connection_ends_cleanly(void)
{
    struct bare_srv b;
    bare_start(&b, false, 3);
    struct turso_transport *t = transport_start(0, 0);
    for (int i = 0; i < 3; i++)
        get_ok(t, b.port);
    turso_transport_stop(&t); /* closes the kept connection */
    bare_join(&b);
    if (b.kept_end != 0)
        TEST_FAIL("the kept connection ended with %s, not the client's FIN",
                  b.kept_end > 0 ? strerror(b.kept_end) : "no answer");
}

/* ---- call groups: cancellation and deadlines ---- */

#define N_GREC         64
#define CANCEL_FAST_MS 3000 /* well under SRV_STALL_MAX_MS: a late answer means no cancel */

static long long cpu_ms(void)
{
    struct rusage ru;
    ASSERT(getrusage(RUSAGE_SELF, &ru) == 0);
    return (long long)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000 +
           (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1000;
}

/*
 * A kept-alive connection that the server closes while it waits in curl's
 * pool: its socket may still be in the transport's epoll set, and must not
 * keep waking the thread; the next request takes a new connection.
 */
static void idle_close_quiet(void)
{
    struct srv *s = srv_start(MODE_SQLD);
    struct turso_transport *t = transport_start(0, 0);
    json_t *j = echo(t, s->base, "GET", NULL, NULL);
    json_decref(j);
    srv_stop(s); /* closes the idle connection */
    usleep(100 * 1000);
    long long before = cpu_ms();
    usleep(500 * 1000);
    long long used = cpu_ms() - before;
    if (used > 100)
        TEST_FAIL("the idle transport used %lld ms of CPU in 500 ms", used);

    s = srv_start(MODE_SQLD);
    j = echo(t, s->base, "GET", NULL, NULL);
    ASSERT_MEMBER_STR(j, "method", "GET");
    json_decref(j);
    turso_transport_stop(&t);
    srv_stop(s);
}

static pthread_t main_thread;

/* What each callback of a group test saw. */
struct grec {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int n_done; /* guarded by lock, like the arrays */
    int calls[N_GREC];
    enum tm_err errs[N_GREC];
    long statuses[N_GREC];
    bool is_deadline[N_GREC];
    char messages[N_GREC][256];
    char bodies[N_GREC][16];
    uint64_t groups[N_GREC];   /* turso_transport_get_group().id inside the callback */
    bool is_on_main[N_GREC];   /* the callback ran on the submitting (main) thread */
    bool is_on_lane[N_GREC];   /* the callback ran on a thread that drives connections */
    long long done_ms[N_GREC]; /* when the callback ran */
    /* For callbacks that submit or cancel. */
    struct turso_transport *t;
    char url[128];          /* what a follow-up asks for */
    uint64_t cancel_ids[2]; /* groups a callback cancels, 0 for none */
    enum tm_err follow_err; /* what submitting the follow-up returned */
    uint64_t group_after;   /* the callback's group after its follow-up */
};

struct gslot {
    struct grec *rec;
    int i;
};

static struct grec grec;
static struct gslot gslots[N_GREC];

static void grec_init(void)
{
    memset(&grec, 0, sizeof(grec));
    pthread_mutex_init(&grec.lock, NULL);
    pthread_cond_init(&grec.cond, NULL);
    for (int i = 0; i < N_GREC; i++) {
        gslots[i].rec = &grec;
        gslots[i].i = i;
    }
}

static void grec_cleanup(void)
{
    pthread_cond_destroy(&grec.cond);
    pthread_mutex_destroy(&grec.lock);
}

static void grec_wait(int n, long ms)
{
    pthread_mutex_lock(&grec.lock);
    bool ok = wait_count(&grec.lock, &grec.cond, &grec.n_done, n, ms);
    int done = grec.n_done;
    pthread_mutex_unlock(&grec.lock);
    if (!ok)
        TEST_FAIL("only %d of %d callbacks ran within %ld ms", done, n, ms);
}

/* Records the reply in slot i; the caller holds grec.lock. */
static void grec_record(struct gslot *slot, const struct turso_reply *reply)
{
    int i = slot->i;
    grec.calls[i]++;
    grec.errs[i] = reply->err;
    grec.statuses[i] = reply->status;
    grec.is_deadline[i] = reply->is_deadline;
    snprintf(grec.messages[i], sizeof(grec.messages[i]), "%s", reply->message);
    snprintf(grec.bodies[i], sizeof(grec.bodies[i]), "%s", reply->body ? reply->body : "(null)");
    grec.groups[i] = turso_transport_get_group().id;
    grec.is_on_main[i] = pthread_equal(pthread_self(), main_thread);
    grec.is_on_lane[i] = is_on_lane_thread();
    grec.done_ms[i] = now_ms();
}

static void on_grec(const struct turso_reply *reply, void *ctx)
{
    pthread_mutex_lock(&grec.lock);
    grec_record(ctx, reply);
    grec.n_done++;
    pthread_cond_broadcast(&grec.cond);
    pthread_mutex_unlock(&grec.lock);
}

/*
 * Records, then submits grec.url into slot i+1 without naming a group,
 * switches its own group to another, and cancels grec.cancel_ids.
 */
static void on_follow(const struct turso_reply *reply, void *ctx)
{
    struct gslot *slot = ctx;
    uint64_t group_id = turso_transport_get_group().id;
    struct turso_request req = {.method = "GET", .url = grec.url};
    enum tm_err err = turso_transport_submit(grec.t, &req, on_grec, slot + 1);
    struct turso_call_group other = {.id = 999999};
    turso_transport_set_group(&other);
    for (int k = 0; k < 2; k++)
        turso_transport_cancel_group(grec.t, grec.cancel_ids[k]);
    pthread_mutex_lock(&grec.lock);
    grec_record(slot, reply);
    grec.groups[slot->i] = group_id;
    grec.follow_err = err;
    grec.group_after = turso_transport_get_group().id;
    grec.n_done++;
    pthread_cond_broadcast(&grec.cond);
    pthread_mutex_unlock(&grec.lock);
}

/* Submits a GET of `url` as a member of `g` (NULL: no group). */
static enum tm_err submit_in(struct turso_transport *t, const struct turso_call_group *g,
                             const char *url, turso_reply_fn fn, int slot)
{
    struct turso_request req = {.method = "GET", .url = url, .bearer = "tok"};
    turso_transport_set_group(g);
    enum tm_err err = turso_transport_submit(t, &req, fn, &gslots[slot]);
    turso_transport_set_group(NULL);
    return err;
}

/* A callback that holds the transport thread until the test opens it. */
struct gate {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool is_entered; /* guarded by lock */
    bool is_open;
};

static void on_gate(const struct turso_reply *reply, void *ctx)
{
    struct gate *g = ctx;
    pthread_mutex_lock(&g->lock);
    g->is_entered = true;
    pthread_cond_broadcast(&g->cond);
    struct timespec dl = deadline_in(WAIT_MS);
    while (!g->is_open) {
        if (pthread_cond_timedwait(&g->cond, &g->lock, &dl) == ETIMEDOUT)
            break;
    }
    pthread_mutex_unlock(&g->lock);
}

static void expect_cancelled(int i, uint64_t group_id)
{
    ASSERT_INT_EQ(grec.calls[i], 1);
    ASSERT_INT_EQ(grec.errs[i], TM_ERR_CANCELLED);
    ASSERT_INT_EQ(grec.statuses[i], 0);
    ASSERT_STR_EQ(grec.bodies[i], "");
    ASSERT_STR_EQ(grec.messages[i], "the call was cancelled");
    ASSERT_INT_EQ(grec.groups[i], group_id);
    ASSERT(!grec.is_on_main[i]);
}

static void group_cancel_in_flight(void)
{
    struct srv *s = srv_start(MODE_SQLD);
    struct turso_transport *t = transport_start(0, 0);
    char stall_url[128], ok_url[128];
    snprintf(stall_url, sizeof(stall_url), "%s/stall", s->base);
    snprintf(ok_url, sizeof(ok_url), "%s/status/200", s->base);
    grec_init();
    struct turso_call_group g1 = {.id = turso_transport_new_group_id()};
    struct turso_call_group g2 = {.id = turso_transport_new_group_id()};
    ASSERT(g1.id != 0 && g2.id != 0 && g1.id != g2.id);

    ASSERT_INT_EQ(submit_in(t, &g1, stall_url, on_grec, 0), TM_OK);
    ASSERT_INT_EQ(submit_in(t, &g1, stall_url, on_grec, 1), TM_OK);
    ASSERT_INT_EQ(submit_in(t, &g2, stall_url, on_grec, 2), TM_OK);
    srv_wait_stalled(s, 3);

    /*
     * Hold one callback worker in a callback: the cancellations must still
     * be delivered (by the other worker), since the thread that drives the
     * transfers runs no callback of a group that may block.
     */
    struct gate gate = {.is_open = false};
    pthread_mutex_init(&gate.lock, NULL);
    pthread_cond_init(&gate.cond, NULL);
    struct turso_request req = {.method = "GET", .url = ok_url};
    ASSERT_INT_EQ(turso_transport_submit(t, &req, on_gate, &gate), TM_OK);
    pthread_mutex_lock(&gate.lock);
    struct timespec dl = deadline_in(WAIT_MS);
    while (!gate.is_entered) {
        if (pthread_cond_timedwait(&gate.cond, &gate.lock, &dl) == ETIMEDOUT)
            TEST_FAIL("the gate callback never ran");
    }
    pthread_mutex_unlock(&gate.lock);
    ASSERT_INT_EQ(submit_in(t, &g1, stall_url, on_grec, 3), TM_OK);

    long long start = now_ms();
    turso_transport_cancel_group(t, g1.id);
    /* Delivered while the gate still holds a worker; never on this thread (expect_cancelled). */
    grec_wait(3, CANCEL_FAST_MS);
    pthread_mutex_lock(&gate.lock);
    gate.is_open = true;
    pthread_cond_broadcast(&gate.cond);
    pthread_mutex_unlock(&gate.lock);
    long long took = now_ms() - start;
    if (took >= CANCEL_FAST_MS)
        TEST_FAIL("cancelling took %lld ms", took);
    /* Give a duplicate completion, or a wrongly cancelled g2, a moment. */
    usleep(200 * 1000);
    pthread_mutex_lock(&grec.lock);
    ASSERT_INT_EQ(grec.n_done, 3);
    expect_cancelled(0, g1.id);
    expect_cancelled(1, g1.id);
    expect_cancelled(3, g1.id);
    ASSERT_INT_EQ(grec.calls[2], 0);
    pthread_mutex_unlock(&grec.lock);
    /* Slot 3 was cancelled whether or not it had reached the server yet. */
    ASSERT(srv_get(s, &s->n_stalled) <= 4);

    /* The other group's request was left alone: it gets the server's answer. */
    srv_release(s);
    grec_wait(4, WAIT_MS);
    pthread_mutex_lock(&grec.lock);
    ASSERT_INT_EQ(grec.calls[2], 1);
    ASSERT_INT_EQ(grec.errs[2], TM_OK);
    ASSERT_INT_EQ(grec.statuses[2], 200);
    ASSERT_STR_EQ(grec.bodies[2], "late");
    ASSERT_INT_EQ(grec.groups[2], g2.id);
    pthread_mutex_unlock(&grec.lock);

    turso_transport_stop(&t);
    pthread_cond_destroy(&gate.cond);
    pthread_mutex_destroy(&gate.lock);
    grec_cleanup();
    srv_stop(s);
}

/* A callback's submissions join its group; what it sets does not outlive it. */
static void run_group_inherited_by_callbacks(bool is_inline)
{
    struct srv *s = srv_start(MODE_SQLD);
    struct turso_transport *t = transport_start(0, 0);
    char ok_url[128];
    snprintf(ok_url, sizeof(ok_url), "%s/status/200", s->base);
    grec_init();
    grec.t = t;
    snprintf(grec.url, sizeof(grec.url), "%s/stall", s->base);
    struct turso_call_group g = {.id = turso_transport_new_group_id(),
                                 .callbacks_never_block = is_inline};

    /* Slot 0's callback submits slot 1 with no group of its own. */
    ASSERT_INT_EQ(submit_in(t, &g, ok_url, on_follow, 0), TM_OK);
    ASSERT_INT_EQ(turso_transport_get_group().id, 0);
    grec_wait(1, WAIT_MS);
    srv_wait_stalled(s, 1);
    pthread_mutex_lock(&grec.lock);
    ASSERT_INT_EQ(grec.errs[0], TM_OK);
    ASSERT_INT_EQ(grec.statuses[0], 200);
    ASSERT_INT_EQ(grec.groups[0], g.id);
    ASSERT_INT_EQ(grec.follow_err, TM_OK);
    ASSERT_INT_EQ(grec.group_after, 999999);
    ASSERT(grec.is_on_lane[0] == is_inline);
    pthread_mutex_unlock(&grec.lock);

    /* Cancelling the group after its first request ended reaches the follow-up. */
    long long start = now_ms();
    turso_transport_cancel_group(t, g.id);
    grec_wait(2, CANCEL_FAST_MS);
    ASSERT(now_ms() - start < CANCEL_FAST_MS);
    pthread_mutex_lock(&grec.lock);
    expect_cancelled(1, g.id);
    ASSERT(grec.is_on_lane[1] == is_inline);
    pthread_mutex_unlock(&grec.lock);

    /* The group a callback set did not outlive it: the next callback has none. */
    ASSERT_INT_EQ(submit_in(t, NULL, ok_url, on_grec, 2), TM_OK);
    grec_wait(3, WAIT_MS);
    pthread_mutex_lock(&grec.lock);
    ASSERT_INT_EQ(grec.errs[2], TM_OK);
    ASSERT_INT_EQ(grec.statuses[2], 200);
    ASSERT_INT_EQ(grec.groups[2], 0);
    ASSERT(!grec.is_on_lane[2]);
    pthread_mutex_unlock(&grec.lock);

    turso_transport_stop(&t);
    grec_cleanup();
    srv_stop(s);
}

static void group_inherited_by_callbacks(void)
{
    run_group_inherited_by_callbacks(false);
    run_group_inherited_by_callbacks(true);
}

/* A callback cancels its own group, with a follow-up it has just submitted,
 * and another group. */
static void run_group_cancel_from_callback(bool is_inline)
{
    struct srv *s = srv_start(MODE_SQLD);
    struct turso_transport *t = transport_start(0, 0);
    char ok_url[128], stall_url[128];
    snprintf(ok_url, sizeof(ok_url), "%s/status/200", s->base);
    snprintf(stall_url, sizeof(stall_url), "%s/stall", s->base);
    grec_init();
    grec.t = t;
    snprintf(grec.url, sizeof(grec.url), "%s/stall", s->base);
    struct turso_call_group g = {.id = turso_transport_new_group_id(),
                                 .callbacks_never_block = is_inline};
    struct turso_call_group h = {.id = turso_transport_new_group_id(),
                                 .callbacks_never_block = is_inline};

    /* h has a request in flight; g's first callback submits a follow-up into
     * g, then cancels both g and h. */
    ASSERT_INT_EQ(submit_in(t, &h, stall_url, on_grec, 5), TM_OK);
    srv_wait_stalled(s, 1);
    grec.cancel_ids[0] = g.id;
    grec.cancel_ids[1] = h.id;
    long long start = now_ms();
    ASSERT_INT_EQ(submit_in(t, &g, ok_url, on_follow, 0), TM_OK);
    grec_wait(3, CANCEL_FAST_MS);
    ASSERT(now_ms() - start < CANCEL_FAST_MS);
    usleep(100 * 1000);
    pthread_mutex_lock(&grec.lock);
    ASSERT_INT_EQ(grec.n_done, 3);
    ASSERT_INT_EQ(grec.calls[0], 1);
    ASSERT_INT_EQ(grec.errs[0], TM_OK);
    ASSERT_INT_EQ(grec.follow_err, TM_OK);
    expect_cancelled(1, g.id);
    expect_cancelled(5, h.id);
    ASSERT(grec.is_on_lane[0] == is_inline);
    ASSERT(grec.is_on_lane[1] == is_inline);
    ASSERT(grec.is_on_lane[5] == is_inline);
    pthread_mutex_unlock(&grec.lock);

    turso_transport_stop(&t);
    grec_cleanup();
    srv_stop(s);
}

static void group_cancel_from_callback(void)
{
    run_group_cancel_from_callback(false);
    run_group_cancel_from_callback(true);
}

static void group_submit_after_cancel(void)
{
    struct srv *s = srv_start(MODE_SQLD);
    struct turso_transport *t = transport_start(0, 0);
    char ok_url[128];
    snprintf(ok_url, sizeof(ok_url), "%s/status/200", s->base);
    grec_init();
    struct turso_call_group g = {.id = turso_transport_new_group_id()};

    turso_transport_cancel_group(t, g.id);
    turso_transport_cancel_group(t, g.id); /* twice is harmless */
    ASSERT_INT_EQ(submit_in(t, &g, ok_url, on_grec, 0), TM_OK);
    grec_wait(1, CANCEL_FAST_MS);
    pthread_mutex_lock(&grec.lock);
    expect_cancelled(0, g.id);
    pthread_mutex_unlock(&grec.lock);

    /* The blocking form ends the same way. */
    struct turso_reply r;
    turso_transport_set_group(&g);
    call(t, "GET", ok_url, NULL, NULL, 0, &r);
    turso_transport_set_group(NULL);
    ASSERT_INT_EQ(r.err, TM_ERR_CANCELLED);
    ASSERT_STR_EQ(r.message, "the call was cancelled");
    turso_reply_cleanup(&r);
    /* Neither request reached the server. */
    ASSERT_INT_EQ(srv_get(s, &s->n_connections), 0);

    /* Group 0 is no group: cancelling it, or a NULL transport, changes nothing. */
    turso_transport_cancel_group(t, 0);
    turso_transport_cancel_group(NULL, g.id);
    ASSERT_INT_EQ(submit_in(t, NULL, ok_url, on_grec, 1), TM_OK);
    grec_wait(2, WAIT_MS);
    pthread_mutex_lock(&grec.lock);
    ASSERT_INT_EQ(grec.errs[1], TM_OK);
    ASSERT_INT_EQ(grec.statuses[1], 200);
    pthread_mutex_unlock(&grec.lock);

    /* The memory of cancelled ids is bounded: 1024, oldest forgotten first,
     * and a repeated cancel takes no new place. g came first, then old. */
    struct turso_call_group old = {.id = turso_transport_new_group_id()};
    turso_transport_cancel_group(t, old.id);
    for (int i = 0; i < 1022; i++)
        turso_transport_cancel_group(t, turso_transport_new_group_id());
    for (int i = 0; i < 10; i++)
        turso_transport_cancel_group(t, g.id);
    ASSERT_INT_EQ(submit_in(t, &g, ok_url, on_grec, 2), TM_OK);
    grec_wait(3, WAIT_MS);
    /* One more pushes out g, the oldest; old stays. */
    turso_transport_cancel_group(t, turso_transport_new_group_id());
    ASSERT_INT_EQ(submit_in(t, &old, ok_url, on_grec, 3), TM_OK);
    ASSERT_INT_EQ(submit_in(t, &g, ok_url, on_grec, 4), TM_OK);
    grec_wait(5, WAIT_MS);
    pthread_mutex_lock(&grec.lock);
    ASSERT_INT_EQ(grec.errs[2], TM_ERR_CANCELLED);
    ASSERT_INT_EQ(grec.errs[3], TM_ERR_CANCELLED);
    ASSERT_INT_EQ(grec.errs[4], TM_OK);
    ASSERT_INT_EQ(grec.statuses[4], 200);
    ASSERT_INT_EQ(grec.groups[4], g.id);
    pthread_mutex_unlock(&grec.lock);

    /* Ids cancelled out of order are remembered and forgotten in the order
     * of their cancels, not of their values. */
    struct turso_call_group ids[3];
    for (int i = 0; i < 3; i++)
        ids[i] = (struct turso_call_group){.id = turso_transport_new_group_id()};
    turso_transport_cancel_group(t, ids[2].id);
    turso_transport_cancel_group(t, ids[0].id);
    turso_transport_cancel_group(t, ids[1].id);
    for (int i = 0; i < 1022; i++)
        turso_transport_cancel_group(t, turso_transport_new_group_id());
    /* ids[2] went first: it is forgotten, the other two are not. */
    ASSERT_INT_EQ(submit_in(t, &ids[2], ok_url, on_grec, 5), TM_OK);
    ASSERT_INT_EQ(submit_in(t, &ids[0], ok_url, on_grec, 6), TM_OK);
    ASSERT_INT_EQ(submit_in(t, &ids[1], ok_url, on_grec, 7), TM_OK);
    grec_wait(8, WAIT_MS);
    pthread_mutex_lock(&grec.lock);
    ASSERT_INT_EQ(grec.errs[5], TM_OK);
    ASSERT_INT_EQ(grec.statuses[5], 200);
    ASSERT_INT_EQ(grec.errs[6], TM_ERR_CANCELLED);
    ASSERT_INT_EQ(grec.errs[7], TM_ERR_CANCELLED);
    pthread_mutex_unlock(&grec.lock);

    turso_transport_stop(&t);
    grec_cleanup();
    srv_stop(s);
}

static void group_deadline(void)
{
    struct srv *s = srv_start(MODE_SQLD);
    struct turso_transport *t = transport_start(0, 0); /* a 30 s default timeout */
    char stall_url[128];
    snprintf(stall_url, sizeof(stall_url), "%s/stall", s->base);
    grec_init();

    /* A deadline before the transfer's own timeout ends it. */
    struct turso_call_group g = {.id = turso_transport_new_group_id(),
                                 .deadline_ms = now_ms() + 300};
    long long start = now_ms();
    ASSERT_INT_EQ(submit_in(t, &g, stall_url, on_grec, 0), TM_OK);
    grec_wait(1, WAIT_MS);
    long long took = now_ms() - start;
    pthread_mutex_lock(&grec.lock);
    ASSERT_INT_EQ(grec.errs[0], TM_ERR_TIMEOUT);
    ASSERT(grec.is_deadline[0]);
    ASSERT_INT_EQ(grec.statuses[0], 0);
    ASSERT_CONTAINS(grec.messages[0], "the call ran out of time (");
    ASSERT_INT_EQ(grec.groups[0], g.id);
    pthread_mutex_unlock(&grec.lock);
    if (took < 250 || took > CANCEL_FAST_MS)
        TEST_FAIL("a deadline 300 ms away ended the transfer after %lld ms", took);

    /* The blocking form, with a deadline but no group id. */
    struct turso_call_group d = {.deadline_ms = now_ms() + 300};
    struct turso_reply r;
    start = now_ms();
    turso_transport_set_group(&d);
    call(t, "GET", stall_url, NULL, NULL, 0, &r);
    turso_transport_set_group(NULL);
    took = now_ms() - start;
    ASSERT_INT_EQ(r.err, TM_ERR_TIMEOUT);
    ASSERT(r.is_deadline);
    ASSERT_CONTAINS(r.message, "the call ran out of time");
    turso_reply_cleanup(&r);
    if (took < 250 || took > CANCEL_FAST_MS)
        TEST_FAIL("a deadline 300 ms away ended the blocking call after %lld ms", took);

    /* A shorter own timeout still applies, and is reported as its own. */
    g.deadline_ms = now_ms() + 10000;
    start = now_ms();
    turso_transport_set_group(&g);
    call(t, "GET", stall_url, NULL, NULL, 300, &r);
    turso_transport_set_group(NULL);
    took = now_ms() - start;
    ASSERT_INT_EQ(r.err, TM_ERR_TIMEOUT);
    ASSERT(!r.is_deadline);
    ASSERT(strstr(r.message, "ran out of time") == NULL);
    turso_reply_cleanup(&r);
    if (took < 250 || took > CANCEL_FAST_MS)
        TEST_FAIL("a 300 ms timeout under a 10 s deadline took %lld ms", took);

    turso_transport_stop(&t);
    grec_cleanup();
    srv_stop(s);
}

static void group_deadline_passed(void)
{
    struct srv *s = srv_start(MODE_SQLD);
    struct turso_transport *t = transport_start(0, 0);
    char ok_url[128];
    snprintf(ok_url, sizeof(ok_url), "%s/status/200", s->base);
    grec_init();

    struct turso_call_group g = {.id = turso_transport_new_group_id(),
                                 .deadline_ms = now_ms() - 50};
    long long start = now_ms();
    ASSERT_INT_EQ(submit_in(t, &g, ok_url, on_grec, 0), TM_OK);
    grec_wait(1, WAIT_MS);
    pthread_mutex_lock(&grec.lock);
    ASSERT_INT_EQ(grec.calls[0], 1);
    ASSERT_INT_EQ(grec.errs[0], TM_ERR_TIMEOUT);
    ASSERT(grec.is_deadline[0]);
    ASSERT_CONTAINS(grec.messages[0], "the call ran out of time (its deadline passed ");
    ASSERT_INT_EQ(grec.groups[0], g.id);
    ASSERT(!grec.is_on_main[0]);
    long long took = grec.done_ms[0] - start;
    pthread_mutex_unlock(&grec.lock);
    if (took > 1000)
        TEST_FAIL("a request past its deadline took %lld ms to fail", took);

    struct turso_reply r;
    turso_transport_set_group(&g);
    call(t, "GET", ok_url, NULL, NULL, 0, &r);
    turso_transport_set_group(NULL);
    ASSERT_INT_EQ(r.err, TM_ERR_TIMEOUT);
    ASSERT(r.is_deadline);
    turso_reply_cleanup(&r);
    ASSERT_INT_EQ(srv_get(s, &s->n_connections), 0);

    /* Deadlines at the ends of the range: no overflow (UBSan would say). */
    g.deadline_ms = INT64_MIN;
    turso_transport_set_group(&g);
    call(t, "GET", ok_url, NULL, NULL, 0, &r);
    turso_transport_set_group(NULL);
    ASSERT_INT_EQ(r.err, TM_ERR_TIMEOUT);
    turso_reply_cleanup(&r);
    g.deadline_ms = INT64_MAX;
    turso_transport_set_group(&g);
    call(t, "GET", ok_url, NULL, NULL, 0, &r);
    turso_transport_set_group(NULL);
    ASSERT_INT_EQ(r.err, TM_OK);
    ASSERT_INT_EQ(r.status, 200);
    ASSERT(!r.is_deadline);
    turso_reply_cleanup(&r);

    turso_transport_stop(&t);
    grec_cleanup();
    srv_stop(s);
}

static void *read_group(void *arg)
{
    struct turso_call_group *out = arg;
    *out = turso_transport_get_group();
    return NULL;
}

static void group_none(void)
{
    struct srv *s = srv_start(MODE_SQLD);
    struct turso_transport *t = transport_start(0, 0);
    char ok_url[128];
    snprintf(ok_url, sizeof(ok_url), "%s/status/201", s->base);
    grec_init();

    struct turso_call_group cur = turso_transport_get_group();
    ASSERT_INT_EQ(cur.id, 0);
    ASSERT_INT_EQ(cur.deadline_ms, 0);
    struct turso_call_group g = {.id = 42, .deadline_ms = 7};
    turso_transport_set_group(&g);
    cur = turso_transport_get_group();
    ASSERT_INT_EQ(cur.id, 42);
    ASSERT_INT_EQ(cur.deadline_ms, 7);
    /* Another thread does not see it. */
    struct turso_call_group seen = {.id = 1, .deadline_ms = 1};
    pthread_t th;
    ASSERT_INT_EQ(pthread_create(&th, NULL, read_group, &seen), 0);
    pthread_join(th, NULL);
    ASSERT_INT_EQ(seen.id, 0);
    ASSERT_INT_EQ(seen.deadline_ms, 0);
    turso_transport_set_group(NULL);
    cur = turso_transport_get_group();
    ASSERT_INT_EQ(cur.id, 0);
    ASSERT_INT_EQ(cur.deadline_ms, 0);

    ASSERT_INT_EQ(submit_in(t, NULL, ok_url, on_grec, 0), TM_OK);
    grec_wait(1, WAIT_MS);
    pthread_mutex_lock(&grec.lock);
    ASSERT_INT_EQ(grec.errs[0], TM_OK);
    ASSERT_INT_EQ(grec.statuses[0], 201);
    ASSERT(!grec.is_deadline[0]);
    ASSERT_INT_EQ(grec.groups[0], 0);
    pthread_mutex_unlock(&grec.lock);

    turso_transport_stop(&t);
    grec_cleanup();
    srv_stop(s);
}

#define N_CANCEL_THREADS 8
#define N_CANCEL_GROUPS  8
#define N_IDS_PER_THREAD 200

struct canceller {
    pthread_t thread;
    int k;
    struct turso_transport *t;
    const struct turso_call_group *groups; /* N_CANCEL_GROUPS of them */
    const char *url;
    enum tm_err submit_err;
    uint64_t ids[N_IDS_PER_THREAD];
};

/* Makes ids, submits one more request into a group, then cancels every group. */
static void *cancel_all_groups(void *arg)
{
    struct canceller *c = arg;
    for (int i = 0; i < N_IDS_PER_THREAD; i++)
        c->ids[i] = turso_transport_new_group_id();
    c->submit_err = submit_in(c->t, &c->groups[c->k % N_CANCEL_GROUPS], c->url, on_grec,
                              2 * N_CANCEL_GROUPS + c->k);
    for (int i = 0; i < N_CANCEL_GROUPS; i++)
        turso_transport_cancel_group(c->t, c->groups[(c->k + i) % N_CANCEL_GROUPS].id);
    return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void group_cancel_many_threads(void)
{
    struct srv *s = srv_start(MODE_SQLD);
    struct turso_transport *t = transport_start(0, 0);
    char stall_url[128];
    snprintf(stall_url, sizeof(stall_url), "%s/stall", s->base);
    grec_init();
    struct turso_call_group groups[N_CANCEL_GROUPS], keep = {.id = turso_transport_new_group_id()};
    for (int i = 0; i < N_CANCEL_GROUPS; i++) {
        groups[i] = (struct turso_call_group){.id = turso_transport_new_group_id()};
        ASSERT_INT_EQ(submit_in(t, &groups[i], stall_url, on_grec, 2 * i), TM_OK);
        ASSERT_INT_EQ(submit_in(t, &groups[i], stall_url, on_grec, 2 * i + 1), TM_OK);
    }
    int keep_slot = 2 * N_CANCEL_GROUPS + N_CANCEL_THREADS;
    ASSERT_INT_EQ(submit_in(t, &keep, stall_url, on_grec, keep_slot), TM_OK);
    srv_wait_stalled(s, 2 * N_CANCEL_GROUPS + 1);

    static struct canceller cs[N_CANCEL_THREADS];
    long long start = now_ms();
    for (int k = 0; k < N_CANCEL_THREADS; k++) {
        cs[k].k = k;
        cs[k].t = t;
        cs[k].groups = groups;
        cs[k].url = stall_url;
        ASSERT_INT_EQ(pthread_create(&cs[k].thread, NULL, cancel_all_groups, &cs[k]), 0);
    }
    for (int k = 0; k < N_CANCEL_THREADS; k++)
        pthread_join(cs[k].thread, NULL);
    int n_cancelled = 2 * N_CANCEL_GROUPS + N_CANCEL_THREADS;
    grec_wait(n_cancelled, CANCEL_FAST_MS);
    ASSERT(now_ms() - start < CANCEL_FAST_MS);
    usleep(200 * 1000);
    pthread_mutex_lock(&grec.lock);
    ASSERT_INT_EQ(grec.n_done, n_cancelled);
    for (int i = 0; i < n_cancelled; i++) {
        int g = i < 2 * N_CANCEL_GROUPS ? i / 2 : (i - 2 * N_CANCEL_GROUPS) % N_CANCEL_GROUPS;
        expect_cancelled(i, groups[g].id);
    }
    ASSERT_INT_EQ(grec.calls[keep_slot], 0);
    pthread_mutex_unlock(&grec.lock);
    for (int k = 0; k < N_CANCEL_THREADS; k++)
        ASSERT_INT_EQ(cs[k].submit_err, TM_OK);

    /* Ids made on many threads at once are all distinct and never 0. */
    static uint64_t ids[N_CANCEL_THREADS * N_IDS_PER_THREAD];
    for (int k = 0; k < N_CANCEL_THREADS; k++)
        memcpy(ids + k * N_IDS_PER_THREAD, cs[k].ids, sizeof(cs[k].ids));
    size_t n_ids = sizeof(ids) / sizeof(ids[0]);
    qsort(ids, n_ids, sizeof(ids[0]), cmp_u64);
    ASSERT(ids[0] != 0);
    for (size_t i = 1; i < n_ids; i++)
        ASSERT(ids[i] != ids[i - 1]);

    /* The group nobody cancelled still gets its answer. */
    srv_release(s);
    grec_wait(n_cancelled + 1, WAIT_MS);
    pthread_mutex_lock(&grec.lock);
    ASSERT_INT_EQ(grec.errs[keep_slot], TM_OK);
    ASSERT_STR_EQ(grec.bodies[keep_slot], "late");
    pthread_mutex_unlock(&grec.lock);

    turso_transport_stop(&t);
    grec_cleanup();
    srv_stop(s);
}

/* ---- hrana_pipeline against the emulated servers ---- */

/* One pipeline outcome, copied out of the callback. */
struct box {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int n_calls; /* guarded by lock, like the rest */
    enum tm_err err;
    long status;
    char message[1024];
    bool has_message;
    json_t *results;
};

static void on_outcome(const struct hrana_outcome *o, void *ctx)
{
    struct box *b = ctx;
    pthread_mutex_lock(&b->lock);
    b->n_calls++;
    b->err = o->err;
    b->status = o->http_status;
    b->has_message = o->message != NULL;
    snprintf(b->message, sizeof(b->message), "%s", o->message ? o->message : "");
    json_decref(b->results);
    /* A copy: the main thread reads it after the transport thread lets go. */
    b->results = o->results ? json_deep_copy(o->results) : NULL;
    pthread_cond_broadcast(&b->cond);
    pthread_mutex_unlock(&b->lock);
}

/* Runs a pipeline (requests as JSON text) and waits for its outcome into *b. */
static void run_pipeline(struct turso_transport *t, const char *url, const char *token,
                         const char *requests_text, long timeout_ms, struct box *b)
{
    memset(b, 0, sizeof(*b));
    pthread_mutex_init(&b->lock, NULL);
    pthread_cond_init(&b->cond, NULL);
    json_t *requests = json_loads(requests_text, 0, NULL);
    ASSERT_NOT_NULL(requests);
    ASSERT_INT_EQ(hrana_pipeline(t, url, token, requests, timeout_ms, on_outcome, b), TM_OK);
    /* The call serialised the requests: they may go at once. */
    json_decref(requests);
    pthread_mutex_lock(&b->lock);
    bool ok = wait_count(&b->lock, &b->cond, &b->n_calls, 1, WAIT_MS);
    pthread_mutex_unlock(&b->lock);
    if (!ok)
        TEST_FAIL("the pipeline never completed");
}

static void box_cleanup(struct box *b)
{
    pthread_mutex_lock(&b->lock);
    ASSERT_INT_EQ(b->n_calls, 1);
    pthread_mutex_unlock(&b->lock);
    json_decref(b->results);
    pthread_cond_destroy(&b->cond);
    pthread_mutex_destroy(&b->lock);
}

static const char one_select[] = "[{\"type\":\"execute\",\"stmt\":{\"sql\":\"SELECT 1\"}}]";

static void hrana_close_accepted(void)
{
    struct srv *s = srv_start(MODE_SQLD);
    struct turso_transport *t = transport_start(0, 0);
    char url[128], message[512];
    json_t *results = NULL;

    /* A URL with a path and query: only the origin counts. */
    snprintf(url, sizeof(url), "%s/some/path?authToken=x", s->base);
    json_t *args =
        json_pack("[I,s,f,{s:s}]", (json_int_t)INT64_MAX, "h\xc3\xa9", 2.5, "base64", "3q2+7w==");
    ASSERT_NOT_NULL(args);
    json_t *stmt = hrana_stmt("SELECT ?, ?, ?, ?", args, message, sizeof(message));
    json_decref(args);
    ASSERT_NOT_NULL(stmt);
    json_t *requests = json_pack("[{s:s,s:o}]", "type", "execute", "stmt", stmt);
    ASSERT_INT_EQ(hrana_pipeline_sync(t, url, "secret-token", requests, 0, &results, message,
                                      sizeof(message)),
                  TM_OK);
    json_decref(requests);
    ASSERT_STR_EQ(message, "");
    ASSERT_INT_EQ(json_array_size(results), 1);

    json_t *response = NULL;
    const char *emsg = NULL, *code = NULL;
    ASSERT_INT_EQ(hrana_result_get(json_array_get(results, 0), &response, &emsg, &code), TM_OK);
    json_t *row = json_array_get(json_object_get(json_object_get(response, "result"), "rows"), 0);
    ASSERT_INT_EQ(json_array_size(row), 4);
    json_t *cell = hrana_cell_from_value(json_array_get(row, 0));
    ASSERT_STR_EQ(json_string_value(json_object_get(cell, "value")), "9223372036854775807");
    json_decref(cell);
    cell = hrana_cell_from_value(json_array_get(row, 1));
    ASSERT_STR_EQ(json_string_value(cell), "h\xc3\xa9");
    json_decref(cell);
    cell = hrana_cell_from_value(json_array_get(row, 3));
    ASSERT_STR_EQ(json_string_value(json_object_get(cell, "base64")), "3q2+7w");
    json_decref(cell);
    json_decref(results);
    results = NULL;

    pthread_mutex_lock(&s->lock);
    ASSERT_INT_EQ(s->n_pipeline_posts, 1);
    ASSERT_INT_EQ(s->last_n_requests, 2);
    ASSERT(s->last_has_close);
    ASSERT_STR_EQ(s->last_auth, "Bearer secret-token");
    ASSERT_STR_EQ(s->last_body_head, "{\"baton\":null,\"requests\":[{\"typ");
    pthread_mutex_unlock(&s->lock);

    /* An empty pipeline sends just close, and returns no results. */
    requests = json_array();
    ASSERT_INT_EQ(
        hrana_pipeline_sync(t, s->base, NULL, requests, 0, &results, message, sizeof(message)),
        TM_OK);
    json_decref(requests);
    ASSERT_INT_EQ(json_array_size(results), 0);
    json_decref(results);
    pthread_mutex_lock(&s->lock);
    ASSERT_INT_EQ(s->n_pipeline_posts, 2);
    ASSERT_INT_EQ(s->last_n_requests, 1);
    ASSERT(s->last_has_close);
    ASSERT_STR_EQ(s->last_auth, "");
    pthread_mutex_unlock(&s->lock);

    turso_transport_stop(&t);
    srv_stop(s);
}

static void hrana_close_rejected(void)
{
    struct srv *s = srv_start(MODE_LOCAL);
    struct turso_transport *t = transport_start(0, 0);
    struct box b;

    /* First pipeline: rejected with close, sent again without. */
    run_pipeline(t, s->base, "tok", one_select, 0, &b);
    ASSERT_INT_EQ(b.err, TM_OK);
    ASSERT_INT_EQ(b.status, 200);
    ASSERT(!b.has_message);
    ASSERT_INT_EQ(json_array_size(b.results), 1);
    ASSERT_STR_EQ(json_string_value(json_object_get(json_array_get(b.results, 0), "type")), "ok");
    box_cleanup(&b);
    pthread_mutex_lock(&s->lock);
    ASSERT_INT_EQ(s->n_pipeline_posts, 2);
    ASSERT_INT_EQ(s->last_n_requests, 1);
    ASSERT(!s->last_has_close);
    pthread_mutex_unlock(&s->lock);

    /* Later pipelines to that origin go without close straight away. */
    run_pipeline(t, s->base, "tok", one_select, 0, &b);
    ASSERT_INT_EQ(b.err, TM_OK);
    ASSERT_INT_EQ(json_array_size(b.results), 1);
    box_cleanup(&b);
    run_pipeline(t, s->base, NULL, "[]", 0, &b);
    ASSERT_INT_EQ(b.err, TM_OK);
    ASSERT_INT_EQ(json_array_size(b.results), 0);
    box_cleanup(&b);
    pthread_mutex_lock(&s->lock);
    ASSERT_INT_EQ(s->n_pipeline_posts, 4);
    ASSERT_INT_EQ(s->last_n_requests, 0);
    ASSERT_STR_EQ(s->last_body_head, "{\"baton\":null,\"requests\":[]}");
    pthread_mutex_unlock(&s->lock);

    turso_transport_stop(&t);
    srv_stop(s);
}

static void expect_upstream(enum srv_mode mode, long status, const char *message)
{
    struct srv *s = srv_start(mode);
    struct turso_transport *t = transport_start(0, 0);
    struct box b;
    run_pipeline(t, s->base, "eyJhbGciOiJFZERTQSJ9.secret.sig", one_select, 0, &b);
    ASSERT_INT_EQ(b.err, TM_ERR_UPSTREAM);
    ASSERT_INT_EQ(b.status, status);
    ASSERT(b.has_message);
    ASSERT_NULL(b.results);
    ASSERT_STR_EQ(b.message, message);
    box_cleanup(&b);
    turso_transport_stop(&t);
    srv_stop(s);
}

static void hrana_http_errors(void)
{
    expect_upstream(MODE_401, 401,
                    "Turso rejected the database token (HTTP 401): Unauthorized: `The JWT is "
                    "invalid`");
    /* A server that echoes the token never gets it into the message. */
    expect_upstream(MODE_401_ECHO, 401,
                    "Turso rejected the database token (HTTP 401): Unauthorized: got Bearer ***");
    expect_upstream(MODE_403, 403,
                    "The database token lacks permission (HTTP 403): Authorization forbidden: "
                    "Current session doesn't not have Write permission to namespace notes-acme");
    expect_upstream(MODE_400_TEXT, 400,
                    "Server returned HTTP status 400: Received a baton that has already been used");
    expect_upstream(MODE_400_JSON, 400,
                    "The stream has expired due to inactivity (code STREAM_EXPIRED)");
    /* 200 bytes of the page, cut before the character that straddles the limit. */
    char expected[512];
    char zeros[200];
    memset(zeros, '0', sizeof(zeros));
    snprintf(expected, sizeof(expected),
             "Server returned HTTP status 502: <html><body>%.*s\xc3\xa9", 185, zeros);
    expect_upstream(MODE_502_HTML, 502, expected);
}

static void hrana_result_errors(void)
{
    struct srv *s = srv_start(MODE_ERROR_RESULT);
    struct turso_transport *t = transport_start(0, 0);
    struct box b;
    run_pipeline(t, s->base, "tok", one_select, 0, &b);
    /* The HTTP layer succeeded; the error is in the result. */
    ASSERT_INT_EQ(b.err, TM_OK);
    ASSERT_INT_EQ(b.status, 200);
    ASSERT_INT_EQ(json_array_size(b.results), 1);
    json_t *response = NULL;
    const char *message = NULL, *code = NULL;
    ASSERT_INT_EQ(hrana_result_get(json_array_get(b.results, 0), &response, &message, &code),
                  TM_ERR_UPSTREAM);
    ASSERT_STR_EQ(message, "SQL input error: no such table: no_such_table (at offset 14)");
    ASSERT_STR_EQ(code, "SQL_INPUT_ERROR");
    box_cleanup(&b);
    turso_transport_stop(&t);
    srv_stop(s);

    s = srv_start(MODE_BAD_COUNT);
    t = transport_start(0, 0);
    run_pipeline(t, s->base, "tok", one_select, 0, &b);
    ASSERT_INT_EQ(b.err, TM_ERR_UPSTREAM);
    ASSERT_INT_EQ(b.status, 200);
    char expected[256];
    snprintf(expected, sizeof(expected), "Turso's answer from %s has 0 results for 2 requests",
             s->base);
    ASSERT_STR_EQ(b.message, expected);
    box_cleanup(&b);
    turso_transport_stop(&t);
    srv_stop(s);

    s = srv_start(MODE_NOT_JSON);
    t = transport_start(0, 0);
    run_pipeline(t, s->base, "tok", one_select, 0, &b);
    ASSERT_INT_EQ(b.err, TM_ERR_UPSTREAM);
    snprintf(expected, sizeof(expected), "Turso's answer from %s is not valid JSON", s->base);
    ASSERT_CONTAINS(b.message, expected);
    box_cleanup(&b);
    turso_transport_stop(&t);
    srv_stop(s);
}

static void never_done(const struct hrana_outcome *o, void *ctx)
{
    TEST_FAIL("a refused pipeline ran its callback");
}

static void hrana_transport_errors(void)
{
    struct turso_transport *t = transport_start(0, 0);
    struct box b;
    char url[128], expected[256], message[256];

    unsigned port = test_http_closed_port();
    snprintf(url, sizeof(url), "libsql://127.0.0.1:%u", port);
    /* libsql:// means https: a closed port fails at connect either way. */
    run_pipeline(t, url, "secret-token", one_select, 0, &b);
    ASSERT_INT_EQ(b.err, TM_ERR_NETWORK);
    ASSERT_INT_EQ(b.status, 0);
    snprintf(expected, sizeof(expected),
             "Turso could not be reached at https://127.0.0.1:%u: ", port);
    ASSERT_CONTAINS(b.message, expected);
    ASSERT(strstr(b.message, "secret-token") == NULL);
    box_cleanup(&b);

    struct srv *s = srv_start(MODE_STALL);
    run_pipeline(t, s->base, "tok", one_select, 300, &b);
    ASSERT_INT_EQ(b.err, TM_ERR_TIMEOUT);
    snprintf(expected, sizeof(expected), "Turso did not answer within 300 ms (%s)", s->base);
    ASSERT_STR_EQ(b.message, expected);
    box_cleanup(&b);

    /* Refused at once: done never runs. */
    json_t *requests = json_array();
    ASSERT_INT_EQ(hrana_pipeline(t, "wss://db.turso.io", "tok", requests, 0, never_done, NULL),
                  TM_ERR_INVALID);
    ASSERT_INT_EQ(hrana_pipeline(t, "ftp://db.turso.io", "tok", requests, 0, never_done, NULL),
                  TM_ERR_INVALID);
    ASSERT_INT_EQ(hrana_pipeline(t, s->base, "tok", NULL, 0, never_done, NULL), TM_ERR_INVALID);
    json_t *not_array = json_object();
    ASSERT_INT_EQ(hrana_pipeline(t, s->base, "tok", not_array, 0, never_done, NULL),
                  TM_ERR_INVALID);
    json_decref(not_array);
    ASSERT_INT_EQ(hrana_pipeline(t, s->base, "tok", requests, 0, NULL, NULL), TM_ERR_INVALID);
    json_t *results = NULL;
    ASSERT_INT_EQ(hrana_pipeline_sync(t, "postgres://x", "tok", requests, 0, &results, message,
                                      sizeof(message)),
                  TM_ERR_INVALID);
    ASSERT_NULL(results);
    ASSERT_CONTAINS(message, "not a valid database URL");

    /* Sync failures carry the same message. */
    ASSERT_INT_EQ(
        hrana_pipeline_sync(t, s->base, "tok", requests, 300, &results, message, sizeof(message)),
        TM_ERR_TIMEOUT);
    ASSERT_NULL(results);
    ASSERT_STR_EQ(message, expected);
    json_decref(requests);

    srv_stop(s);

    /* Stopping the transport cancels a pipeline in flight. */
    s = srv_start(MODE_STALL);
    memset(&b, 0, sizeof(b));
    pthread_mutex_init(&b.lock, NULL);
    pthread_cond_init(&b.cond, NULL);
    requests = json_loads(one_select, 0, NULL);
    ASSERT_INT_EQ(hrana_pipeline(t, s->base, "tok", requests, 0, on_outcome, &b), TM_OK);
    json_decref(requests);
    srv_wait_stalled(s, 1);
    turso_transport_stop(&t);
    pthread_mutex_lock(&b.lock);
    ASSERT_INT_EQ(b.n_calls, 1);
    ASSERT_INT_EQ(b.err, TM_ERR_CANCELLED);
    snprintf(expected, sizeof(expected), "The request to Turso at %s was cancelled", s->base);
    ASSERT_CONTAINS(b.message, expected);
    pthread_mutex_unlock(&b.lock);
    box_cleanup(&b);
    srv_stop(s);
}

static void hrana_call_group(void)
{
    struct turso_transport *t = transport_start(0, 0);
    struct box b;
    char expected[256];

    /* A deadline shorter than the pipeline's timeout is named as such. */
    struct srv *s = srv_start(MODE_STALL);
    struct turso_call_group g = {.id = turso_transport_new_group_id(),
                                 .deadline_ms = now_ms() + 300};
    turso_transport_set_group(&g);
    run_pipeline(t, s->base, "tok", one_select, 10000, &b);
    turso_transport_set_group(NULL);
    ASSERT_INT_EQ(b.err, TM_ERR_TIMEOUT);
    snprintf(expected, sizeof(expected), "The call ran out of time before Turso answered (%s)",
             s->base);
    ASSERT_STR_EQ(b.message, expected);
    box_cleanup(&b);
    srv_stop(s);

    /* The resend without close (made in a callback) belongs to the call too. */
    s = srv_start(MODE_LOCAL_STALL);
    g.id = turso_transport_new_group_id();
    g.deadline_ms = 0;
    memset(&b, 0, sizeof(b));
    pthread_mutex_init(&b.lock, NULL);
    pthread_cond_init(&b.cond, NULL);
    json_t *requests = json_loads(one_select, 0, NULL);
    turso_transport_set_group(&g);
    ASSERT_INT_EQ(hrana_pipeline(t, s->base, "tok", requests, 0, on_outcome, &b), TM_OK);
    turso_transport_set_group(NULL);
    json_decref(requests);
    srv_wait_stalled(s, 1);
    ASSERT_INT_EQ(srv_get(s, &s->n_pipeline_posts), 2);
    long long start = now_ms();
    turso_transport_cancel_group(t, g.id);
    pthread_mutex_lock(&b.lock);
    bool ok = wait_count(&b.lock, &b.cond, &b.n_calls, 1, CANCEL_FAST_MS);
    pthread_mutex_unlock(&b.lock);
    if (!ok || now_ms() - start >= CANCEL_FAST_MS)
        TEST_FAIL("cancelling the call did not end the resent pipeline");
    ASSERT_INT_EQ(b.err, TM_ERR_CANCELLED);
    snprintf(expected, sizeof(expected),
             "The request to Turso at %s was cancelled: the call was cancelled", s->base);
    ASSERT_STR_EQ(b.message, expected);
    box_cleanup(&b);
    srv_stop(s);

    turso_transport_stop(&t);
}

/* Where a callback ran: the name of its thread. */
struct where_ran {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool is_done;
    long status;
    size_t body_len;
    char thread[16];
};

static void on_where(const struct turso_reply *reply, void *ctx)
{
    struct where_ran *w = ctx;
    pthread_mutex_lock(&w->lock);
    pthread_getname_np(pthread_self(), w->thread, sizeof(w->thread));
    w->status = reply->status;
    w->body_len = reply->body_len;
    w->is_done = true;
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->lock);
}

/* Submits a GET of base + path in group `g` (NULL: none); on_where fills *w. */
static void where_submit(struct turso_transport *t, const struct turso_call_group *g,
                         const char *base, const char *path, struct where_ran *w)
{
    char url[160];
    snprintf(url, sizeof(url), "%s%s", base, path);
    memset(w, 0, sizeof(*w));
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->cond, NULL);
    struct turso_request req = {.method = "GET", .url = url};
    turso_transport_set_group(g);
    ASSERT_INT_EQ(turso_transport_submit(t, &req, on_where, w), TM_OK);
    turso_transport_set_group(NULL);
}

/* Waits for the callback of where_submit; checks the answer, and that the
 * name of the thread it ran on starts with `expected`. */
static void where_check(struct where_ran *w, const char *path, long status, size_t body_len,
                        const char *expected)
{
    pthread_mutex_lock(&w->lock);
    struct timespec dl = deadline_in(WAIT_MS);
    while (!w->is_done) {
        if (pthread_cond_timedwait(&w->cond, &w->lock, &dl) == ETIMEDOUT)
            TEST_FAIL("the callback for %s never ran", path);
    }
    pthread_mutex_unlock(&w->lock);
    ASSERT_INT_EQ(w->status, status);
    ASSERT(w->body_len == body_len);
    if (strncmp(w->thread, expected, strlen(expected)) != 0)
        TEST_FAIL("the callback for %s ran on \"%s\", not \"%s\"", path, w->thread, expected);
    pthread_cond_destroy(&w->cond);
    pthread_mutex_destroy(&w->lock);
}

/* Submits a GET of `path` in group `g` (NULL: none); checks the answer, and
 * the thread its callback ran on. */
static void callback_thread(struct turso_transport *t, const struct turso_call_group *g,
                            const char *base, const char *path, long status, size_t body_len,
                            const char *expected)
{
    struct where_ran w;
    where_submit(t, g, base, path, &w);
    where_check(&w, path, status, body_len, expected);
}

/*
 * A small answer in a group whose callbacks never block is handled on the
 * thread that drove its connection; a large one, or any answer outside such
 * a group, on a callback thread.
 */
static void callbacks_where_allowed(void)
{
    struct srv *s = srv_start(MODE_SQLD);
    struct turso_transport *t = transport_start(0, 0);
    struct turso_call_group quick = {.id = turso_transport_new_group_id(),
                                     .callbacks_never_block = true};
    struct turso_call_group plain = {.id = turso_transport_new_group_id()};
    callback_thread(t, &quick, s->base, "/status/200", 200, 10, "tm-upstream");
    callback_thread(t, &quick, s->base, "/big/4096", 200, 4096, "tm-upstream");
    callback_thread(t, &quick, s->base, "/big/4097", 200, 4097, "tm-callback");
    callback_thread(t, &plain, s->base, "/status/200", 200, 10, "tm-callback");
    callback_thread(t, NULL, s->base, "/status/200", 200, 10, "tm-callback");
    turso_transport_stop(&t);
    srv_stop(s);
}

/*
 * A request goes to the lane with the fewest transfers, the first of those
 * tied. Callbacks in a group that never blocks run on the lane's own thread,
 * whose name holds the lane's index: two requests in flight at once take
 * both lanes; once they are over, requests one at a time take lane 0.
 */
static void lanes_least_busy(void)
{
    struct srv *s = srv_start(MODE_SQLD);
    struct turso_transport *t = transport_start_lanes(0, 0, 2);
    struct turso_call_group quick = {.id = turso_transport_new_group_id(),
                                     .callbacks_never_block = true};
    struct where_ran first, second, later;
    where_submit(t, &quick, s->base, "/stall", &first);
    where_submit(t, &quick, s->base, "/stall", &second);
    srv_wait_stalled(s, 2);
    srv_release(s);
    where_check(&first, "/stall", 200, 4, "tm-upstream-0");
    where_check(&second, "/stall", 200, 4, "tm-upstream-1");
    for (int i = 0; i < 2; i++) {
        where_submit(t, &quick, s->base, "/status/200", &later);
        where_check(&later, "/status/200", 200, 10, "tm-upstream-0");
    }
    turso_transport_stop(&t);
    srv_stop(s);
}

int main(void)
{
    main_thread = pthread_self();
    if (sodium_init() < 0 || curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        TEST_FAIL("library initialisation failed");
    RUN(json_post_roundtrip);
    RUN(headers_per_method);
    RUN(reuse_forgets);
    RUN(status_passthrough);
    RUN(response_cap);
    RUN(timeouts);
    RUN(connection_refused);
    RUN(invalid_requests);
    RUN(many_concurrent);
    RUN(callback_submits);
    RUN(stop_in_flight);
    RUN(keep_alive);
    RUN(idle_close_quiet);
    RUN(closed_by_server_leaves_no_time_wait);
    RUN(kept_connection_ends_cleanly);
    RUN(group_none);
    RUN(group_cancel_in_flight);
    RUN(group_inherited_by_callbacks);
    RUN(group_cancel_from_callback);
    RUN(group_submit_after_cancel);
    RUN(group_deadline);
    RUN(group_deadline_passed);
    RUN(group_cancel_many_threads);
    RUN(callbacks_where_allowed);
    RUN(lanes_least_busy);
    RUN(hrana_close_accepted);
    RUN(hrana_close_rejected);
    RUN(hrana_http_errors);
    RUN(hrana_result_errors);
    RUN(hrana_transport_errors);
    RUN(hrana_call_group);
    curl_global_cleanup();
    TEST_DONE();
}
