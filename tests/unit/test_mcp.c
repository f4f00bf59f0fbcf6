/*
 * JSON-RPC and Streamable HTTP rules of mcp.c, driven through mcp_handle
 * with malformed and hostile input. Tool calls that fail validation finish
 * without any network, so no Turso is needed here.
 */
#include <jansson.h>
#include <sodium.h>

#include "mcp.h"
#include "session.h"
#include "test.h"
#include "tool.h"

static struct session_table *sessions;
static struct mcp_server *server;
static struct tool_env env = {.max_rows = 10, .max_result_bytes = 4096, .upstream_timeout_ms = 100};
static struct creds user_creds = {.label = "t", .db_url = NULL};
static const char *user = "0123456789abcdef";
static bool accept_sse; /* what the next exchange says it accepts */

/* What one exchange produced, with the body parsed. */
struct exchange {
    int status;
    json_t *body; /* NULL when there was none */
    char session_id[SESSION_ID_LEN + 1];
    const char *allow;
    bool is_event_stream;
};

static void on_done(void *ctx, struct mcp_reply *reply)
{
    struct mcp_reply *out = ctx;
    *out = *reply;
}

static struct exchange exchange_full(const char *http_method, const char *body, const char *sid,
                                     const char *version, const char *content_type,
                                     const struct creds *creds, const char *user_id)
{
    struct mcp_request req = {
        .http_method = http_method,
        .user_id = user_id,
        .creds = creds,
        .session_id = sid,
        .protocol_version = version,
        .content_type = content_type,
        .accepts_sse = accept_sse,
        .body = body,
        .body_len = body ? strlen(body) : 0,
    };
    struct mcp_reply reply, late = {0};
    late.status = -1;
    struct mcp_sink sink = {.done = on_done, .ctx = &late};
    enum mcp_status st = mcp_handle(server, &req, &reply, &sink);
    if (st == MCP_PENDING) {
        /* Every tool call here fails validation, so it has finished already. */
        ASSERT(late.status != -1);
        reply = late;
    }
    struct exchange ex = {
        .status = reply.status, .allow = reply.allow, .is_event_stream = reply.is_event_stream};
    memcpy(ex.session_id, reply.session_id, sizeof(ex.session_id));
    if (reply.body) {
        ex.body = json_loadb(reply.body, reply.body_len, 0, NULL);
        ASSERT_NOT_NULL(ex.body);
        free(reply.body);
    }
    return ex;
}

static struct exchange post(const char *body, const char *sid)
{
    return exchange_full("POST", body, sid, NULL, "application/json", &user_creds, user);
}

static void exchange_cleanup(struct exchange *ex)
{
    json_decref(ex->body);
    ex->body = NULL;
}

static int error_code(const struct exchange *ex)
{
    return (int)json_integer_value(json_object_get(json_object_get(ex->body, "error"), "code"));
}

static const json_t *result_of(const struct exchange *ex)
{
    return json_object_get(ex->body, "result");
}

/* Opens a session and returns its id in sid. */
static void open_session(char sid[SESSION_ID_LEN + 1])
{
    struct exchange ex = post("{\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"initialize\",\"params\":{"
                              "\"protocolVersion\":\"2025-11-25\",\"capabilities\":{},"
                              "\"clientInfo\":{\"name\":\"t\",\"version\":\"1\"}}}",
                              NULL);
    ASSERT_INT_EQ(ex.status, 200);
    ASSERT_INT_EQ(strlen(ex.session_id), SESSION_ID_LEN);
    memcpy(sid, ex.session_id, SESSION_ID_LEN + 1);
    exchange_cleanup(&ex);
}

static void test_not_json(void)
{
    const char *bodies[] = {"", "{", "not json", "{\"jsonrpc\":\"2.0\",}", "\xff\xfe", "nul\0l"};
    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        struct exchange ex = post(bodies[i], NULL);
        ASSERT_INT_EQ(ex.status, 400);
        ASSERT_INT_EQ(error_code(&ex), -32700);
        /* No id at all, never "id": null. */
        ASSERT_NULL(json_object_get(ex.body, "id"));
        exchange_cleanup(&ex);
    }
}

static void test_hostile_nesting(void)
{
    /* Deeper than jansson's nesting limit: refused as a parse error, not a crash. */
    size_t depth = 100000;
    char *body = malloc(depth * 2 + 1);
    ASSERT_NOT_NULL(body);
    memset(body, '[', depth);
    memset(body + depth, ']', depth);
    body[depth * 2] = '\0';
    struct exchange ex = post(body, NULL);
    ASSERT_INT_EQ(ex.status, 400);
    ASSERT_INT_EQ(error_code(&ex), -32700);
    exchange_cleanup(&ex);
    free(body);
}

static void test_invalid_envelopes(void)
{
    const char *bodies[] = {
        "[]",
        "[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}]",
        "42",
        "\"str\"",
        "{\"jsonrpc\":\"1.0\",\"id\":1,\"method\":\"ping\"}",
        "{\"id\":1,\"method\":\"ping\"}",
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":5}",
        "{\"jsonrpc\":\"2.0\",\"id\":1}",
        "{\"jsonrpc\":\"2.0\",\"id\":null,\"method\":\"ping\"}",
        "{\"jsonrpc\":\"2.0\",\"id\":1.5,\"method\":\"ping\"}",
        "{\"jsonrpc\":\"2.0\",\"id\":true,\"method\":\"ping\"}",
        "{\"jsonrpc\":\"2.0\",\"id\":{},\"method\":\"ping\"}",
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"id\":2,\"method\":\"ping\"}",
    };
    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        struct exchange ex = post(bodies[i], NULL);
        ASSERT_INT_EQ(ex.status, 400);
        int code = error_code(&ex);
        /* Arrays without a session are refused for the missing session (-32000). */
        if (code != -32600 && code != -32700 && code != -32000)
            TEST_FAIL("body %zu: code %d", i, code);
        exchange_cleanup(&ex);
    }
}

static void test_huge_numbers(void)
{
    /* A number beyond int64 cannot be held exactly: refused, never wrapped. */
    struct exchange ex = post("{\"jsonrpc\":\"2.0\",\"id\":99999999999999999999999,"
                              "\"method\":\"ping\"}",
                              NULL);
    ASSERT_INT_EQ(ex.status, 400);
    exchange_cleanup(&ex);

    char sid[SESSION_ID_LEN + 1];
    open_session(sid);
    ex = post("{\"jsonrpc\":\"2.0\",\"id\":9223372036854775807,\"method\":\"ping\"}", sid);
    ASSERT_INT_EQ(ex.status, 200);
    ASSERT_INT_EQ(json_integer_value(json_object_get(ex.body, "id")), INT64_MAX);
    exchange_cleanup(&ex);
    ex = post("{\"jsonrpc\":\"2.0\",\"id\":-9223372036854775808,\"method\":\"ping\"}", sid);
    ASSERT_INT_EQ(json_integer_value(json_object_get(ex.body, "id")), INT64_MIN);
    exchange_cleanup(&ex);
}

static void test_initialize_and_ids(void)
{
    struct exchange ex =
        post("{\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"initialize\","
             "\"params\":{\"protocolVersion\":\"2025-11-25\",\"capabilities\":{}}}",
             NULL);
    ASSERT_INT_EQ(ex.status, 200);
    const json_t *id = json_object_get(ex.body, "id");
    ASSERT(json_is_integer(id));
    ASSERT_INT_EQ(json_integer_value(id), 0);
    ASSERT_NULL(json_object_get(ex.body, "error"));
    ASSERT_INT_EQ(json_object_size(ex.body), 3);
    const json_t *res = result_of(&ex);
    ASSERT_STR_EQ(json_string_value(json_object_get(res, "protocolVersion")), "2025-11-25");
    const json_t *caps = json_object_get(res, "capabilities");
    ASSERT(json_is_object(json_object_get(caps, "tools")));
    ASSERT(json_is_object(json_object_get(caps, "logging")));
    const json_t *info = json_object_get(res, "serverInfo");
    ASSERT(json_is_string(json_object_get(info, "name")));
    ASSERT(json_is_string(json_object_get(info, "version")));
    char sid[SESSION_ID_LEN + 1];
    memcpy(sid, ex.session_id, sizeof(sid));
    exchange_cleanup(&ex);

    /* A string id comes back as the same string. */
    ex = post("{\"jsonrpc\":\"2.0\",\"id\":\"abc\",\"method\":\"ping\"}", sid);
    ASSERT_STR_EQ(json_string_value(json_object_get(ex.body, "id")), "abc");
    ASSERT(json_is_object(result_of(&ex)));
    ASSERT_INT_EQ(json_object_size(result_of(&ex)), 0);
    exchange_cleanup(&ex);

    /* initialize on an existing session is refused. */
    ex = post("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\","
              "\"params\":{\"protocolVersion\":\"2025-11-25\"}}",
              sid);
    ASSERT_INT_EQ(ex.status, 400);
    ASSERT_INT_EQ(error_code(&ex), -32600);
    exchange_cleanup(&ex);

    /* initialize without a protocolVersion is invalid params, in a 200. */
    ex = post("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{}}", NULL);
    ASSERT_INT_EQ(ex.status, 200);
    ASSERT_INT_EQ(error_code(&ex), -32602);
    exchange_cleanup(&ex);
}

static void test_version_negotiation(void)
{
    const char *asked[] = {"2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05",
                           "2024-10-07", "2099-01-01", "garbage"};
    const char *answered[] = {"2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05",
                              "2025-11-25", "2025-11-25", "2025-11-25"};
    for (size_t i = 0; i < sizeof(asked) / sizeof(asked[0]); i++) {
        char body[256];
        snprintf(body, sizeof(body),
                 "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\","
                 "\"params\":{\"protocolVersion\":\"%s\"}}",
                 asked[i]);
        struct exchange ex = post(body, NULL);
        ASSERT_INT_EQ(ex.status, 200);
        ASSERT_STR_EQ(json_string_value(json_object_get(result_of(&ex), "protocolVersion")),
                      answered[i]);
        exchange_cleanup(&ex);
    }
}

static void test_sessions(void)
{
    const char *ping = "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"ping\"}";
    struct exchange ex = post(ping, NULL);
    ASSERT_INT_EQ(ex.status, 400);
    exchange_cleanup(&ex);
    ex = post(ping, "00000000000000000000000000000000");
    ASSERT_INT_EQ(ex.status, 404);
    exchange_cleanup(&ex);

    char sid[SESSION_ID_LEN + 1];
    open_session(sid);
    /* Another user's URL cannot use this session. */
    ex = exchange_full("POST", ping, sid, NULL, NULL, &user_creds, "fedcba9876543210");
    ASSERT_INT_EQ(ex.status, 404);
    exchange_cleanup(&ex);

    ex = exchange_full("DELETE", NULL, sid, NULL, NULL, &user_creds, user);
    ASSERT_INT_EQ(ex.status, 204);
    exchange_cleanup(&ex);
    ex = post(ping, sid);
    ASSERT_INT_EQ(ex.status, 404);
    exchange_cleanup(&ex);
    ex = exchange_full("DELETE", NULL, NULL, NULL, NULL, &user_creds, user);
    ASSERT_INT_EQ(ex.status, 400);
    exchange_cleanup(&ex);

    /* GET opens the server-to-client stream of a live session, for clients that accept SSE. */
    ex = exchange_full("GET", NULL, NULL, NULL, NULL, &user_creds, user);
    ASSERT_INT_EQ(ex.status, 400);
    exchange_cleanup(&ex);
    open_session(sid);
    ex = exchange_full("GET", NULL, sid, NULL, NULL, &user_creds, user);
    ASSERT_INT_EQ(ex.status, 406);
    exchange_cleanup(&ex);
    accept_sse = true;
    ex = exchange_full("GET", NULL, sid, NULL, NULL, &user_creds, user);
    ASSERT_INT_EQ(ex.status, 200);
    ASSERT(ex.is_event_stream);
    exchange_cleanup(&ex);
    ex = exchange_full("GET", NULL, "00000000000000000000000000000000", NULL, NULL, &user_creds,
                       user);
    ASSERT_INT_EQ(ex.status, 404);
    exchange_cleanup(&ex);
    accept_sse = false;
    ex = exchange_full("PUT", NULL, sid, NULL, NULL, &user_creds, user);
    ASSERT_INT_EQ(ex.status, 405);
    ASSERT_NOT_NULL(ex.allow);
    ASSERT_NULL(ex.body);
    exchange_cleanup(&ex);
}

/* Opens a session that negotiated `version`. */
static void open_session_version(const char *version, char sid[SESSION_ID_LEN + 1])
{
    char body[256];
    snprintf(body, sizeof(body),
             "{\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"initialize\",\"params\":{"
             "\"protocolVersion\":\"%s\"}}",
             version);
    struct exchange ex = post(body, NULL);
    ASSERT_INT_EQ(ex.status, 200);
    memcpy(sid, ex.session_id, SESSION_ID_LEN + 1);
    exchange_cleanup(&ex);
}

static void test_batches(void)
{
    const char *batch = "[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"},"
                        "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"},"
                        "{\"jsonrpc\":\"2.0\",\"id\":\"b\",\"method\":\"nope\"},"
                        "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tools/call\",\"params\":{"
                        "\"name\":\"turso_query\",\"arguments\":{}}},"
                        "{\"jsonrpc\":\"1.0\",\"id\":4,\"method\":\"ping\"}]";
    char sid[SESSION_ID_LEN + 1];
    /* Only 2025-03-26 has batches. */
    open_session_version("2025-06-18", sid);
    struct exchange ex = post(batch, sid);
    ASSERT_INT_EQ(ex.status, 400);
    exchange_cleanup(&ex);

    open_session_version("2025-03-26", sid);
    ex = post(batch, sid);
    ASSERT_INT_EQ(ex.status, 200);
    ASSERT(json_is_array(ex.body));
    /* One answer per request, in order; none for the notification. */
    ASSERT_INT_EQ(json_array_size(ex.body), 4);
    ASSERT_INT_EQ(json_integer_value(json_object_get(json_array_get(ex.body, 0), "id")), 1);
    ASSERT_STR_EQ(json_string_value(json_object_get(json_array_get(ex.body, 1), "id")), "b");
    ASSERT_INT_EQ(json_integer_value(json_object_get(
                      json_object_get(json_array_get(ex.body, 1), "error"), "code")),
                  -32601);
    const json_t *call = json_array_get(ex.body, 2);
    ASSERT_INT_EQ(json_integer_value(json_object_get(call, "id")), 3);
    ASSERT(json_is_true(json_object_get(json_object_get(call, "result"), "isError")));
    ASSERT_INT_EQ(json_integer_value(json_object_get(
                      json_object_get(json_array_get(ex.body, 3), "error"), "code")),
                  -32600);
    exchange_cleanup(&ex);

    /* tools/list in a batch: the whole answer, the same as alone, inside the array. */
    ex = post("[{\"jsonrpc\":\"2.0\",\"id\":\"l\\\"1\",\"method\":\"tools/list\"},"
              "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"ping\"}]",
              sid);
    ASSERT_INT_EQ(ex.status, 200);
    ASSERT_INT_EQ(json_array_size(ex.body), 2);
    const json_t *listed = json_array_get(ex.body, 0);
    ASSERT_STR_EQ(json_string_value(json_object_get(listed, "id")), "l\"1");
    json_t *alone = json_loads(tool_registry_list_json(), 0, NULL);
    ASSERT(json_equal(json_object_get(listed, "result"), alone));
    json_decref(alone);
    exchange_cleanup(&ex);

    ex = post("[{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}]", sid);
    ASSERT_INT_EQ(ex.status, 202);
    exchange_cleanup(&ex);
    ex = post("[]", sid);
    ASSERT_INT_EQ(ex.status, 400);
    exchange_cleanup(&ex);
    ex = post("[{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"initialize\",\"params\":{"
              "\"protocolVersion\":\"2025-03-26\"}}]",
              sid);
    ASSERT_INT_EQ(ex.status, 200);
    ASSERT_INT_EQ(json_integer_value(json_object_get(
                      json_object_get(json_array_get(ex.body, 0), "error"), "code")),
                  -32600);
    exchange_cleanup(&ex);
}

static void test_cancel_unknown(void)
{
    char sid[SESSION_ID_LEN + 1];
    open_session(sid);
    /* Unknown or finished ids are ignored: a 202 like any notification. */
    struct exchange ex = post("{\"jsonrpc\":\"2.0\",\"method\":\"notifications/cancelled\","
                              "\"params\":{\"requestId\":77}}",
                              sid);
    ASSERT_INT_EQ(ex.status, 202);
    exchange_cleanup(&ex);
}

static void test_headers(void)
{
    char sid[SESSION_ID_LEN + 1];
    open_session(sid);
    const char *ping = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}";
    struct exchange ex = exchange_full("POST", ping, sid, "1999-01-01", NULL, &user_creds, user);
    ASSERT_INT_EQ(ex.status, 400);
    exchange_cleanup(&ex);
    /* A supported version other than the session's is accepted. */
    ex = exchange_full("POST", ping, sid, "2025-03-26", NULL, &user_creds, user);
    ASSERT_INT_EQ(ex.status, 200);
    exchange_cleanup(&ex);
    ex = exchange_full("POST", ping, sid, NULL, "text/plain", &user_creds, user);
    ASSERT_INT_EQ(ex.status, 415);
    exchange_cleanup(&ex);
    ex = exchange_full("POST", ping, sid, NULL, "application/json; charset=utf-8", &user_creds,
                       user);
    ASSERT_INT_EQ(ex.status, 200);
    exchange_cleanup(&ex);
}

static void test_notifications_and_responses(void)
{
    char sid[SESSION_ID_LEN + 1];
    open_session(sid);
    struct exchange ex =
        post("{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}", sid);
    ASSERT_INT_EQ(ex.status, 202);
    ASSERT_NULL(ex.body);
    exchange_cleanup(&ex);
    ex = post("{\"jsonrpc\":\"2.0\",\"id\":5,\"result\":{}}", sid);
    ASSERT_INT_EQ(ex.status, 202);
    exchange_cleanup(&ex);
    ex = post("{\"jsonrpc\":\"2.0\",\"method\":\"notifications/unknown\",\"params\":{}}", sid);
    ASSERT_INT_EQ(ex.status, 202);
    exchange_cleanup(&ex);
}

static void test_methods(void)
{
    char sid[SESSION_ID_LEN + 1];
    open_session(sid);
    struct exchange ex = post("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"resources/list\"}", sid);
    ASSERT_INT_EQ(ex.status, 200);
    ASSERT_INT_EQ(error_code(&ex), -32601);
    exchange_cleanup(&ex);

    ex = post("{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/list\"}", sid);
    const json_t *tools = json_object_get(result_of(&ex), "tools");
    ASSERT(json_array_size(tools) >= 1);
    ASSERT_NULL(json_object_get(result_of(&ex), "nextCursor"));
    size_t i;
    const json_t *t;
    bool has_query = false;
    json_array_foreach(tools, i, t)
    {
        ASSERT(json_is_string(json_object_get(t, "description")));
        ASSERT_STR_EQ(json_string_value(json_object_get(json_object_get(t, "inputSchema"), "type")),
                      "object");
        ASSERT_STR_EQ(
            json_string_value(json_object_get(json_object_get(t, "outputSchema"), "type")),
            "object");
        ASSERT_NULL(json_object_get(json_object_get(t, "inputSchema"), "$schema"));
        if (strcmp(json_string_value(json_object_get(t, "name")), "turso_query") == 0)
            has_query = true;
    }
    ASSERT(has_query);
    /* The SQL tools' annotations tell the truth about them. */
    const struct {
        const char *name;
        bool is_read_only, is_destructive, is_idempotent;
    } hints[] = {
        {"turso_batch_execute", false, true, false},
        {"turso_schema_inspector", true, false, true},
    };
    for (size_t k = 0; k < sizeof(hints) / sizeof(hints[0]); k++) {
        const json_t *found = NULL;
        json_array_foreach(tools, i, t)
        {
            if (strcmp(json_string_value(json_object_get(t, "name")), hints[k].name) == 0)
                found = t;
        }
        ASSERT_NOT_NULL(found);
        const json_t *an = json_object_get(found, "annotations");
        ASSERT(json_is_true(json_object_get(an, "readOnlyHint")) == hints[k].is_read_only);
        ASSERT(json_is_true(json_object_get(an, "destructiveHint")) == hints[k].is_destructive);
        ASSERT(json_is_true(json_object_get(an, "idempotentHint")) == hints[k].is_idempotent);
        ASSERT(json_is_false(json_object_get(an, "openWorldHint")));
        ASSERT(json_string_length(json_object_get(found, "description")) > 200);
    }
    exchange_cleanup(&ex);

    ex = post("{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tools/list\",\"params\":{\"cursor\":"
              "\"x\"}}",
              sid);
    ASSERT_INT_EQ(error_code(&ex), -32602);
    exchange_cleanup(&ex);

    ex = post("{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"logging/setLevel\",\"params\":{\"level\":"
              "\"warning\"}}",
              sid);
    ASSERT(json_is_object(result_of(&ex)));
    exchange_cleanup(&ex);
    ex = post("{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"logging/setLevel\",\"params\":{\"level\":"
              "\"loud\"}}",
              sid);
    ASSERT_INT_EQ(error_code(&ex), -32602);
    exchange_cleanup(&ex);

    ex = post("{\"jsonrpc\":\"2.0\",\"id\":6,\"method\":\"ping\",\"params\":[1]}", sid);
    ASSERT_INT_EQ(error_code(&ex), -32602);
    exchange_cleanup(&ex);
}

/* The text of a tool result that must be an error. */
static const char *tool_error_text(const struct exchange *ex)
{
    const json_t *res = result_of(ex);
    ASSERT(json_is_true(json_object_get(res, "isError")));
    return json_string_value(
        json_object_get(json_array_get(json_object_get(res, "content"), 0), "text"));
}

static void test_tool_calls(void)
{
    char sid[SESSION_ID_LEN + 1];
    open_session(sid);
    struct exchange ex = post("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{"
                              "\"name\":\"no_such_tool\",\"arguments\":{}}}",
                              sid);
    ASSERT_INT_EQ(ex.status, 200);
    ASSERT_INT_EQ(error_code(&ex), -32602);
    exchange_cleanup(&ex);

    ex = post("{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\",\"params\":{}}", sid);
    ASSERT_INT_EQ(error_code(&ex), -32602);
    exchange_cleanup(&ex);

    ex = post("{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tools/call\",\"params\":{\"name\":"
              "\"turso_query\",\"arguments\":[1]}}",
              sid);
    ASSERT_INT_EQ(error_code(&ex), -32602);
    exchange_cleanup(&ex);

    /* Wrong or missing arguments are tool errors the model can read and fix. */
    ex = post("{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"tools/call\",\"params\":{\"name\":"
              "\"turso_query\"}}",
              sid);
    ASSERT(strstr(tool_error_text(&ex), "sql"));
    ASSERT_INT_EQ(json_integer_value(json_object_get(ex.body, "id")), 4);
    exchange_cleanup(&ex);
    ex = post("{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"tools/call\",\"params\":{\"name\":"
              "\"turso_query\",\"arguments\":{\"sql\":42}}}",
              sid);
    ASSERT(strstr(tool_error_text(&ex), "sql"));
    exchange_cleanup(&ex);
    ex = post("{\"jsonrpc\":\"2.0\",\"id\":6,\"method\":\"tools/call\",\"params\":{\"name\":"
              "\"turso_query\",\"arguments\":{\"sql\":\"SELECT 1; SELECT 2\"}}}",
              sid);
    ASSERT(strstr(tool_error_text(&ex), "exactly one statement"));
    exchange_cleanup(&ex);
    ex = post("{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"tools/call\",\"params\":{\"name\":"
              "\"turso_query\",\"arguments\":{\"sql\":\"SELECT 1\",\"bogus\":1}}}",
              sid);
    ASSERT(strstr(tool_error_text(&ex), "bogus"));
    exchange_cleanup(&ex);
    ex = post("{\"jsonrpc\":\"2.0\",\"id\":8,\"method\":\"tools/call\",\"params\":{\"name\":"
              "\"turso_query\",\"arguments\":{\"sql\":\"SELECT 1\",\"max_rows\":0}}}",
              sid);
    ASSERT(strstr(tool_error_text(&ex), "max_rows"));
    exchange_cleanup(&ex);

    /* A read-only URL refuses a write before anything is sent. */
    struct creds ro = {.label = "ro", .db_url = "http://127.0.0.1:1", .is_read_only = true};
    ex = exchange_full("POST",
                       "{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"tools/call\",\"params\":{"
                       "\"name\":\"turso_query\",\"arguments\":{\"sql\":\"DELETE FROM t\"}}}",
                       sid, NULL, NULL, &ro, user);
    ASSERT(strstr(tool_error_text(&ex), "read-only"));
    exchange_cleanup(&ex);
}

/*
 * An unknown tool or method is named in the error, cut to 120 bytes: here
 * inside the 'é' after 119 others. The reply is still the JSON-RPC error.
 */
static void test_cut_names(void)
{
    char sid[SESSION_ID_LEN + 1];
    open_session(sid);
    char name[119 + 2 + 1];
    memset(name, 'x', 119);
    memcpy(name + 119, "\xc3\xa9", 3);
    char body[512];
    snprintf(body, sizeof(body),
             "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":"
             "\"%s\",\"arguments\":{}}}",
             name);
    struct exchange ex = post(body, sid);
    ASSERT_INT_EQ(ex.status, 200);
    ASSERT_INT_EQ(error_code(&ex), -32602);
    const char *message =
        json_string_value(json_object_get(json_object_get(ex.body, "error"), "message"));
    ASSERT_NOT_NULL(message);
    ASSERT(strstr(message, "Unknown tool"));
    ASSERT_STR_EQ(message + strlen(message) - 2, "x?"); /* the cut character mended */
    exchange_cleanup(&ex);

    snprintf(body, sizeof(body), "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"%s\"}", name);
    ex = post(body, sid);
    ASSERT_INT_EQ(ex.status, 200);
    ASSERT_INT_EQ(error_code(&ex), -32601);
    message = json_string_value(json_object_get(json_object_get(ex.body, "error"), "message"));
    ASSERT_NOT_NULL(message);
    ASSERT(strstr(message, "Method not found"));
    ASSERT_STR_EQ(message + strlen(message) - 2, "x?");
    exchange_cleanup(&ex);
}

/* open_creds for test_lazy_creds: counts calls, and gives `creds` (NULL: the record does not open).
 */
struct opener {
    int n_calls;
    const struct creds *creds;
};

static const struct creds *count_open(void *ctx)
{
    struct opener *o = ctx;
    o->n_calls++;
    return o->creds;
}

static enum mcp_status lazy_post(const char *body, const char *sid, struct opener *o,
                                 struct mcp_reply *reply)
{
    struct mcp_request req = {
        .http_method = "POST",
        .user_id = user,
        .open_creds = count_open,
        .open_creds_ctx = o,
        .session_id = sid,
        .content_type = "application/json",
        .body = body,
        .body_len = strlen(body),
    };
    struct mcp_reply late = {0};
    late.status = -1;
    struct mcp_sink sink = {.done = on_done, .ctx = &late};
    enum mcp_status st = mcp_handle(server, &req, reply, &sink);
    if (st == MCP_PENDING) {
        ASSERT(late.status != -1);
        *reply = late;
    }
    return st;
}

/*
 * Credentials are opened only for the messages that use them (initialize,
 * tools/call), once per request, and a record that does not open answers
 * those as an unknown URL while the rest still works.
 */
static void test_lazy_creds(void)
{
    char sid[SESSION_ID_LEN + 1];
    struct mcp_reply reply;
    struct opener o = {.creds = &user_creds};
    open_session(sid);

    static const char *const without[] = {
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\"}",
        "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"ping\"}",
        "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}",
        "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"logging/setLevel\",\"params\":{}}",
        "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"no/such\"}",
        "not json",
    };
    for (size_t i = 0; i < sizeof(without) / sizeof(without[0]); i++) {
        ASSERT_INT_EQ(lazy_post(without[i], sid, &o, &reply), MCP_DONE);
        free(reply.body);
        ASSERT_INT_EQ(o.n_calls, 0);
    }

    /* A tool call opens them once; so does a batch of two calls. */
    static const char call[] = "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"tools/call\","
                               "\"params\":{\"name\":\"turso_query\",\"arguments\":{}}}";
    ASSERT(lazy_post(call, sid, &o, &reply) != MCP_NOT_FOUND);
    ASSERT_INT_EQ(reply.status, 200);
    free(reply.body);
    ASSERT_INT_EQ(o.n_calls, 1);

    char batch_sid[SESSION_ID_LEN + 1];
    struct exchange ex =
        exchange_full("POST",
                      "{\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"initialize\",\"params\":{"
                      "\"protocolVersion\":\"2025-03-26\",\"capabilities\":{},"
                      "\"clientInfo\":{\"name\":\"t\",\"version\":\"1\"}}}",
                      NULL, NULL, "application/json", &user_creds, user);
    memcpy(batch_sid, ex.session_id, sizeof(batch_sid));
    exchange_cleanup(&ex);
    o.n_calls = 0;
    ASSERT_INT_EQ(lazy_post("[{\"jsonrpc\":\"2.0\",\"id\":6,\"method\":\"ping\"},"
                            "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"tools/call\","
                            "\"params\":{\"name\":\"turso_query\",\"arguments\":{}}},"
                            "{\"jsonrpc\":\"2.0\",\"id\":8,\"method\":\"tools/call\","
                            "\"params\":{\"name\":\"turso_query\",\"arguments\":{}}}]",
                            batch_sid, &o, &reply),
                  MCP_DONE);
    ASSERT_INT_EQ(reply.status, 200);
    free(reply.body);
    ASSERT_INT_EQ(o.n_calls, 1);

    /* Credentials that do not open: calls and initialize are not found; tools/list still works. */
    struct opener broken = {.creds = NULL};
    memset(&reply, 0, sizeof(reply));
    ASSERT_INT_EQ(lazy_post(call, sid, &broken, &reply), MCP_NOT_FOUND);
    ASSERT_NULL(reply.body);
    ASSERT_INT_EQ(lazy_post("{\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"initialize\","
                            "\"params\":{\"protocolVersion\":\"2025-11-25\"}}",
                            NULL, &broken, &reply),
                  MCP_NOT_FOUND);
    ASSERT_NULL(reply.body);
    ASSERT_INT_EQ(lazy_post(without[0], sid, &broken, &reply), MCP_DONE);
    ASSERT_INT_EQ(reply.status, 200);
    free(reply.body);
    ASSERT_INT_EQ(broken.n_calls, 2);
}

/* Calls `tool` with `arguments` (JSON text) and returns the error text, which must contain `want`.
 */
static void expect_tool_error(const char *sid, const struct creds *cr, const char *tool,
                              const char *arguments, const char *want)
{
    char *body = NULL;
    size_t len = strlen(arguments) + strlen(tool) + 128;
    body = malloc(len);
    ASSERT_NOT_NULL(body);
    snprintf(body, len,
             "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{"
             "\"name\":\"%s\",\"arguments\":%s}}",
             tool, arguments);
    struct exchange ex = exchange_full("POST", body, sid, NULL, NULL, cr, user);
    free(body);
    ASSERT_INT_EQ(ex.status, 200);
    ASSERT_NULL(json_object_get(ex.body, "error"));
    const char *text = tool_error_text(&ex);
    if (!strstr(text, want))
        TEST_FAIL("%s %s: \"%s\" not in \"%s\"", tool, arguments, want, text);
    exchange_cleanup(&ex);
}

static void test_sql_tool_arguments(void)
{
    char sid[SESSION_ID_LEN + 1];
    open_session(sid);
    const struct creds *cr = &user_creds;
    const char *b = "turso_batch_execute";
    expect_tool_error(sid, cr, b, "{}", "\"statements\" is required");
    expect_tool_error(sid, cr, b, "{\"statements\":[]}", "\"statements\" is required");
    expect_tool_error(sid, cr, b, "{\"statements\":\"SELECT 1\"}", "an array of 1 to 100");
    expect_tool_error(sid, cr, b, "{\"statements\":[{\"sql\":\"SELECT 1\"}],\"x\":1}",
                      "Unknown argument \"x\"");
    expect_tool_error(sid, cr, b, "{\"statements\":[{\"sql\":\"SELECT 1\"},{\"sql\":5}]}",
                      "statements[1] (statement 2 of 2) needs \"sql\"");
    expect_tool_error(sid, cr, b, "{\"statements\":[\"SELECT 1\"]}",
                      "statements[0] (statement 1 of 1) must be an object");
    expect_tool_error(sid, cr, b, "{\"statements\":[{\"sql\":\"SELECT 1\",\"params\":[]}]}",
                      "unknown member \"params\"");
    expect_tool_error(sid, cr, b,
                      "{\"statements\":[{\"sql\":\"SELECT 1\"},{\"sql\":\"SELECT 2\"},"
                      "{\"sql\":\"INSERT INTO t VALUES (1); DELETE FROM t\"}]}",
                      "The SQL of statements[2] (statement 3 of 3) holds 2 statements");
    expect_tool_error(sid, cr, b, "{\"statements\":[{\"sql\":\" -- nothing\"}]}",
                      "holds no statement");
    expect_tool_error(sid, cr, b, "{\"statements\":[{\"sql\":\"SELECT 'a\"}]}", "never closes");
    expect_tool_error(sid, cr, b, "{\"statements\":[{\"sql\":\"BEGIN\"},{\"sql\":\"SELECT 1\"}]}",
                      "is a BEGIN statement, but turso_batch_execute manages the transaction");
    expect_tool_error(sid, cr, b, "{\"statements\":[{\"sql\":\"commit\"}],\"transaction\":false}",
                      "is a COMMIT statement");
    expect_tool_error(sid, cr, b, "{\"statements\":[{\"sql\":\"SELECT ?\",\"args\":[[1]]}]}",
                      "Invalid args in statements[0] (statement 1 of 1): argument 1");
    expect_tool_error(sid, cr, b, "{\"statements\":[{\"sql\":\"SELECT 1\",\"args\":\"x\"}]}",
                      "\"args\" must be an array");
    expect_tool_error(sid, cr, b, "{\"statements\":[{\"sql\":\"SELECT 1\"}],\"mode\":\"fast\"}",
                      "\"mode\" must be \"write\", \"read\" or \"deferred\"");
    expect_tool_error(sid, cr, b,
                      "{\"statements\":[{\"sql\":\"SELECT 1\"}],\"mode\":\"read\","
                      "\"transaction\":false}",
                      "applies only to a transaction");
    expect_tool_error(sid, cr, b, "{\"statements\":[{\"sql\":\"SELECT 1\"}],\"transaction\":1}",
                      "\"transaction\" must be true or false");

    /* The caps. */
    size_t n = 101, len = n * 24 + 64;
    char *many = malloc(len);
    ASSERT_NOT_NULL(many);
    size_t at = (size_t)snprintf(many, len, "{\"statements\":[");
    for (size_t i = 0; i < n; i++)
        at += (size_t)snprintf(many + at, len - at, "%s{\"sql\":\"SELECT 1\"}", i ? "," : "");
    snprintf(many + at, len - at, "]}");
    expect_tool_error(sid, cr, b, many, "at most 100 statements, and this one has 101");
    free(many);
    size_t big = 1024 * 1024 + 10;
    char *huge = malloc(big + 64);
    ASSERT_NOT_NULL(huge);
    at = (size_t)snprintf(huge, big + 64, "{\"statements\":[{\"sql\":\"SELECT '");
    memset(huge + at, 'x', big);
    snprintf(huge + at + big, 64, "'\"}]}");
    expect_tool_error(sid, cr, b, huge, "at most 1048576 bytes");
    free(huge);

    /* Read-only: a write is refused before anything is sent (no Turso here). */
    struct creds ro = {.label = "ro", .db_url = "http://127.0.0.1:1", .is_read_only = true};
    expect_tool_error(sid, &ro, b,
                      "{\"statements\":[{\"sql\":\"SELECT 1\"},{\"sql\":\"DELETE FROM t\"}]}",
                      "This URL is read-only, and statement 2 of 2 (index 1) may write (DELETE)");
    expect_tool_error(sid, &ro, b, "{\"statements\":[{\"sql\":\"SELECT 1\"}],\"mode\":\"write\"}",
                      "mode \"write\" is not available");
    expect_tool_error(sid, cr, b,
                      "{\"statements\":[{\"sql\":\"INSERT INTO t VALUES (1)\"}],\"mode\":"
                      "\"read\"}",
                      "The batch is in mode \"read\"");

    const char *s = "turso_schema_inspector";
    expect_tool_error(sid, cr, s, "{\"table\":5}", "\"table\" must be the name of a table");
    expect_tool_error(sid, cr, s, "{\"table\":\"\"}", "\"table\" must be the name of a table");
    expect_tool_error(sid, cr, s, "{\"tables\":\"t\"}", "Unknown argument \"tables\"");
    expect_tool_error(sid, cr, s, "{\"database\":[]}", "\"database\" must be a string");
}

int main(void)
{
    ASSERT(sodium_init() >= 0);
    json_object_seed(1);
    ASSERT_INT_EQ(tool_registry_init(), 0);
    ASSERT_INT_EQ(session_table_create(64, 60, &sessions), TM_OK);
    ASSERT_INT_EQ(mcp_server_create(sessions, &env, &server), TM_OK);
    RUN(test_not_json);
    RUN(test_hostile_nesting);
    RUN(test_invalid_envelopes);
    RUN(test_huge_numbers);
    RUN(test_initialize_and_ids);
    RUN(test_version_negotiation);
    RUN(test_sessions);
    RUN(test_headers);
    RUN(test_notifications_and_responses);
    RUN(test_methods);
    RUN(test_tool_calls);
    RUN(test_cut_names);
    RUN(test_lazy_creds);
    RUN(test_batches);
    RUN(test_cancel_unknown);
    RUN(test_sql_tool_arguments);
    mcp_server_destroy(&server);
    session_table_destroy(&sessions);
    tool_registry_cleanup();
    TEST_DONE();
}
