/*
 * The read-only check of readonly.c: how the scan classifies statements,
 * and the two outcomes that need no server (all provably reads; a
 * statement that starts with a write keyword). What needs `describe` is
 * covered end to end in tests/integration/sqltools.test.mjs.
 */
#include <jansson.h>

#include "readonly.h"
#include "test.h"

static enum readonly_class classify(const char *sql)
{
    return readonly_classify(sql, strlen(sql));
}

static void test_classify(void)
{
    ASSERT_INT_EQ(classify("SELECT 1"), READONLY_YES);
    ASSERT_INT_EQ(classify("  -- c\n with x as (select 1) select * from x"), READONLY_YES);
    ASSERT_INT_EQ(classify("VALUES (1), (2)"), READONLY_YES);
    ASSERT_INT_EQ(classify("EXPLAIN SELECT 1"), READONLY_YES);
    ASSERT_INT_EQ(classify("SELECT 'DELETE FROM t'"), READONLY_YES);

    ASSERT_INT_EQ(classify("insert into t values (1)"), READONLY_WRITES);
    ASSERT_INT_EQ(classify("/* x */ DELETE FROM t"), READONLY_WRITES);
    ASSERT_INT_EQ(classify("CREATE TABLE t (a)"), READONLY_WRITES);
    ASSERT_INT_EQ(classify("REPLACE INTO t VALUES (1)"), READONLY_WRITES);
    ASSERT_INT_EQ(classify("BEGIN"), READONLY_WRITES);
    ASSERT_INT_EQ(classify("commit"), READONLY_WRITES);
    ASSERT_INT_EQ(classify("ANALYZE"), READONLY_WRITES);

    /* A write keyword inside a read, a CTE in front of a write, a PRAGMA: ask. */
    ASSERT_INT_EQ(classify("SELECT replace(name, 'a', 'b') FROM t"), READONLY_ASK);
    ASSERT_INT_EQ(classify("WITH x AS (SELECT 1) DELETE FROM t"), READONLY_ASK);
    ASSERT_INT_EQ(classify("PRAGMA table_info(t)"), READONLY_ASK);
    ASSERT_INT_EQ(classify("EXPLAIN DELETE FROM t"), READONLY_ASK);
    ASSERT_INT_EQ(classify(""), READONLY_ASK);
    ASSERT_INT_EQ(classify("SELECT 1; SELECT 2"), READONLY_ASK);
}

/* What one check ended with. */
struct verdict {
    int n_calls;
    bool is_allowed;
    json_t *refusal; /* the CallToolResult a client would read, parsed */
};

static void on_done(bool is_allowed, json_t *refusal, void *ctx)
{
    struct verdict *v = ctx;
    v->n_calls++;
    v->is_allowed = is_allowed;
    if (!refusal)
        return;
    size_t len = 0;
    bool is_error = false;
    char *text = tool_result_dumps(refusal, &len, &is_error);
    ASSERT_NOT_NULL(text);
    ASSERT(is_error);
    v->refusal = json_loadb(text, len, 0, NULL);
    ASSERT_NOT_NULL(v->refusal);
    free(text);
    json_decref(refusal);
}

static const char *refusal_text(const struct verdict *v)
{
    ASSERT(json_is_true(json_object_get(v->refusal, "isError")));
    return json_string_value(
        json_object_get(json_array_get(json_object_get(v->refusal, "content"), 0), "text"));
}

static void test_check_without_server(void)
{
    /* No transport and no database access: any attempt to call would crash. */
    struct tool_env env = {.upstream_timeout_ms = 100};
    struct creds cr = {.label = "ro", .db_url = "http://127.0.0.1:1", .is_read_only = true};
    struct tool_call call = {.env = &env, .creds = &cr};

    const char *reads[] = {"SELECT 1", "VALUES (2)", "WITH a AS (SELECT 1) SELECT * FROM a"};
    struct verdict v = {0};
    ASSERT_INT_EQ(readonly_check(&call, NULL, reads, 3, "This URL is read-only", on_done, &v),
                  TM_OK);
    ASSERT_INT_EQ(v.n_calls, 1);
    ASSERT(v.is_allowed);
    ASSERT_NULL(v.refusal);

    /* The write is refused even though a statement before it needs the server. */
    const char *mixed[] = {"SELECT 1", "PRAGMA table_info(t)", "UPDATE t SET a = 1"};
    v = (struct verdict){0};
    ASSERT_INT_EQ(readonly_check(&call, NULL, mixed, 3, "This URL is read-only", on_done, &v),
                  TM_OK);
    ASSERT_INT_EQ(v.n_calls, 1);
    ASSERT(!v.is_allowed);
    const char *text = refusal_text(&v);
    ASSERT(strstr(text, "This URL is read-only"));
    ASSERT(strstr(text, "statement 3 of 3 (index 2)"));
    ASSERT(strstr(text, "UPDATE"));
    ASSERT(strstr(text, "Nothing was run"));
    json_decref(v.refusal);

    /* One statement is "the statement". */
    const char *one[] = {"DELETE FROM t"};
    v = (struct verdict){0};
    ASSERT_INT_EQ(readonly_check(&call, NULL, one, 1, "Mode \"read\" runs only reads", on_done, &v),
                  TM_OK);
    ASSERT(!v.is_allowed);
    ASSERT(strstr(refusal_text(&v), "Mode \"read\" runs only reads, and the statement may write"));
    json_decref(v.refusal);
}

int main(void)
{
    RUN(test_classify);
    RUN(test_check_without_server);
    TEST_DONE();
}
