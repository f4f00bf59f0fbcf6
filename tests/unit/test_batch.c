/*
 * batch.c: the steps of a transactional and a plain batch (conditions and
 * their step indices), and reading answers: recorded Turso answers from
 * tests/fixtures/hrana/ and made-up ones for the rarer endings (BEGIN or
 * COMMIT failing, SQLite rolling back by itself, a ROLLBACK that fails);
 * and what the tool answers with a report.
 */
#include <jansson.h>

#include "batch.h"
#include "test.h"
#include "tool.h"

#define MAX_BYTES ((size_t)1 << 20)

/* The BatchResult of results[index] in a fixture's response body (new reference). */
static json_t *fixture_batch(const char *name, size_t index)
{
    const char *dir = getenv("TM_FIXTURES");
    char path[1024];
    snprintf(path, sizeof(path), "%s/hrana/%s", dir ? dir : TM_FIXTURES_DIR, name);
    json_error_t jerr;
    json_t *root = json_load_file(path, 0, &jerr);
    if (!root)
        TEST_FAIL("cannot load %s: %s", path, jerr.text);
    json_t *r = json_object_get(json_object_get(root, "response"), "body");
    r = json_object_get(json_array_get(json_object_get(r, "results"), index), "response");
    r = json_incref(json_object_get(r, "result"));
    json_decref(root);
    ASSERT_NOT_NULL(r);
    return r;
}

static json_t *parse(const char *text)
{
    json_error_t jerr;
    json_t *v = json_loads(text, 0, &jerr);
    if (!v)
        TEST_FAIL("bad test JSON: %s: %s", jerr.text, text);
    return v;
}

/* Asserts that `v` equals the JSON in `text`. */
static void assert_json(const json_t *v, const char *text)
{
    json_t *want = parse(text);
    if (!json_equal(v, want)) {
        char *got = json_dumps(v, JSON_COMPACT);
        TEST_FAIL("got %s\nwant %s", got ? got : "(null)", text);
    }
    json_decref(want);
}

static const char *str(const json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

static json_int_t num(const json_t *o, const char *key)
{
    return json_integer_value(json_object_get(o, key));
}

static json_t *statement(const struct batch_report *r, size_t i)
{
    return json_array_get(json_object_get(r->structured, "statements"), i);
}

static void test_modes(void)
{
    enum batch_mode m = BATCH_DEFERRED;
    ASSERT(batch_mode_parse("write", &m) && m == BATCH_WRITE);
    ASSERT(batch_mode_parse("read", &m) && m == BATCH_READ);
    ASSERT(batch_mode_parse("deferred", &m) && m == BATCH_DEFERRED);
    ASSERT(!batch_mode_parse("WRITE", &m));
    ASSERT(!batch_mode_parse("exclusive", &m));
    ASSERT(!batch_mode_parse(NULL, &m));
    ASSERT_STR_EQ(batch_begin_sql(BATCH_WRITE), "BEGIN IMMEDIATE");
    ASSERT_STR_EQ(batch_begin_sql(BATCH_READ), "BEGIN TRANSACTION READONLY");
    ASSERT_STR_EQ(batch_begin_sql(BATCH_DEFERRED), "BEGIN DEFERRED");
    ASSERT_STR_EQ(batch_mode_name(BATCH_DEFERRED), "deferred");
    ASSERT_INT_EQ(batch_step_of(0, true), 1);
    ASSERT_INT_EQ(batch_step_of(4, true), 5);
    ASSERT_INT_EQ(batch_step_of(4, false), 4);
}

static void test_transaction_steps(void)
{
    json_t *stmts = parse("[{\"sql\":\"INSERT INTO notes(title) VALUES (?)\",\"args\":[{\"type\":"
                          "\"text\",\"value\":\"a\"}]},{\"sql\":\"INSERT INTO notes(title) VALUES "
                          "(?)\",\"args\":[{\"type\":\"text\",\"value\":\"b\"}]}]");
    json_t *steps = batch_steps(stmts, BATCH_WRITE, true);
    /* turso-api.md §6.1, the atomic batch template, exactly. */
    assert_json(
        steps,
        "[{\"stmt\":{\"sql\":\"BEGIN IMMEDIATE\",\"want_rows\":false}},"
        "{\"condition\":{\"type\":\"ok\",\"step\":0},\"stmt\":{\"sql\":\"INSERT INTO notes(title) "
        "VALUES (?)\",\"args\":[{\"type\":\"text\",\"value\":\"a\"}]}},"
        "{\"condition\":{\"type\":\"ok\",\"step\":1},\"stmt\":{\"sql\":\"INSERT INTO notes(title) "
        "VALUES (?)\",\"args\":[{\"type\":\"text\",\"value\":\"b\"}]}},"
        "{\"condition\":{\"type\":\"ok\",\"step\":2},\"stmt\":{\"sql\":\"COMMIT\",\"want_rows\":"
        "false}},"
        "{\"condition\":{\"type\":\"and\",\"conds\":[{\"type\":\"ok\",\"step\":0},{\"type\":"
        "\"not\",\"cond\":{\"type\":\"ok\",\"step\":3}}]},\"stmt\":{\"sql\":\"ROLLBACK\","
        "\"want_rows\":false}}]");
    /* The statements are copied, not shared. */
    ASSERT(json_object_get(json_array_get(steps, 1), "stmt") != json_array_get(stmts, 0));
    json_decref(steps);

    /* Every condition refers to an earlier step, for any length. */
    json_t *many = json_array();
    for (int i = 0; i < 100; i++)
        json_array_append_new(many, json_pack("{s:s}", "sql", "SELECT 1"));
    steps = batch_steps(many, BATCH_DEFERRED, true);
    ASSERT_INT_EQ(json_array_size(steps), 103);
    ASSERT_STR_EQ(str(json_object_get(json_array_get(steps, 0), "stmt"), "sql"), "BEGIN DEFERRED");
    for (size_t i = 1; i <= 101; i++) {
        const json_t *c = json_object_get(json_array_get(steps, i), "condition");
        ASSERT_STR_EQ(str(c, "type"), "ok");
        ASSERT_INT_EQ(num(c, "step"), i - 1);
    }
    const json_t *guard = json_object_get(json_array_get(steps, 102), "condition");
    ASSERT_INT_EQ(
        num(json_object_get(json_array_get(json_object_get(guard, "conds"), 1), "cond"), "step"),
        101);
    json_decref(steps);
    json_decref(many);
    json_decref(stmts);
}

static void test_plain_steps(void)
{
    json_t *stmts = parse("[{\"sql\":\"SELECT 1\"},{\"sql\":\"SELECT 2\"}]");
    json_t *steps = batch_steps(stmts, BATCH_WRITE, false);
    assert_json(steps, "[{\"stmt\":{\"sql\":\"SELECT 1\"}},{\"stmt\":{\"sql\":\"SELECT 2\"}}]");
    json_decref(steps);
    json_decref(stmts);
}

/* A failure in the second of two statements, as sqld and the local tursodb answer it. */
static void check_second_fails(const char *fixture, const char *message, const char *code)
{
    json_t *res = fixture_batch(fixture, 0);
    struct batch_report r;
    const char *why = NULL;
    ASSERT(batch_read(res, 2, true, BATCH_DEFERRED, 100, MAX_BYTES, &r, &why));
    ASSERT(r.is_error);
    const json_t *s = r.structured;
    ASSERT_STR_EQ(str(s, "status"), "rolled_back");
    ASSERT(json_is_false(json_object_get(s, "committed")));
    ASSERT_STR_EQ(str(s, "rollback"), "ran");
    ASSERT_INT_EQ(num(s, "succeeded"), 1);
    ASSERT_INT_EQ(num(s, "failed"), 1);
    ASSERT_INT_EQ(num(s, "skipped"), 0);
    const json_t *f = json_object_get(s, "failed_statement");
    ASSERT_INT_EQ(num(f, "index"), 1);
    ASSERT_STR_EQ(str(f, "statement"), "statement 2 of 2");
    ASSERT_STR_EQ(str(f, "message"), message);
    ASSERT_STR_EQ(str(f, "code"), code);
    ASSERT_STR_EQ(str(statement(&r, 0), "status"), "rolled_back");
    ASSERT_STR_EQ(str(statement(&r, 1), "status"), "error");
    ASSERT_STR_EQ(str(json_object_get(statement(&r, 1), "error"), "message"), message);
    ASSERT(strstr(r.summary, "Statement 2 of 2 (index 1) failed: "));
    ASSERT(strstr(r.summary, message));
    ASSERT(strstr(r.summary, "Nothing was committed: the transaction was rolled back."));
    ASSERT(strstr(r.summary, "Statement 1 ran but was undone."));
    batch_report_cleanup(&r);
    json_decref(res);
}

static void test_read_failures_from_fixtures(void)
{
    check_second_fails("db-post-v2-pipeline--batch-step-failure-rollback.json",
                       "SQLite error: UNIQUE constraint failed: notes.id", "SQLITE_CONSTRAINT");
    check_second_fails("local-tursodb--post-v2-pipeline--batch-transaction.json",
                       "Runtime error: UNIQUE constraint failed: notes.id (19)",
                       "BATCH_STEP_ERROR");
}

static void test_read_commit_from_fixture(void)
{
    json_t *res = fixture_batch("db-post-v2-pipeline--batch-transaction-libsql-style.json", 2);
    struct batch_report r;
    const char *why = NULL;
    ASSERT(batch_read(res, 3, true, BATCH_WRITE, 100, MAX_BYTES, &r, &why));
    ASSERT(!r.is_error);
    ASSERT_STR_EQ(str(r.structured, "status"), "committed");
    ASSERT(json_is_true(json_object_get(r.structured, "committed")));
    ASSERT_STR_EQ(str(r.structured, "mode"), "write");
    ASSERT_NULL(json_object_get(r.structured, "rollback"));
    ASSERT_NULL(json_object_get(r.structured, "failed_statement"));
    ASSERT_INT_EQ(num(r.structured, "succeeded"), 3);
    ASSERT_INT_EQ(num(statement(&r, 0), "affected_row_count"), 1);
    ASSERT_STR_EQ(str(statement(&r, 1), "last_insert_rowid"), "15");
    assert_json(json_object_get(statement(&r, 2), "rows"), "[[5]]");
    assert_json(json_object_get(statement(&r, 2), "columns"),
                "[{\"name\":\"count(*)\",\"type\":null}]");
    ASSERT_STR_EQ(r.summary, "Committed: all 3 statements succeeded in one transaction.");
    batch_report_cleanup(&r);
    json_decref(res);
}

/* A BatchResult from two arrays of JSON text. */
static json_t *answer(const char *results, const char *errors)
{
    char text[4096];
    snprintf(text, sizeof(text), "{\"step_results\":%s,\"step_errors\":%s}", results, errors);
    return parse(text);
}

#define OK_ROW                                                                                     \
    "{\"cols\":[{\"name\":\"x\",\"decltype\":null}],\"rows\":[[{\"type\":\"integer\",\"value\":"   \
    "\"7\"}]]}"
#define OK_NONE "{\"cols\":[],\"rows\":[]}"

static void test_read_rare_endings(void)
{
    struct batch_report r;
    const char *why = NULL;

    /* BEGIN fails: nothing ran, no rollback needed. */
    json_t *res = answer("[null,null,null,null,null]",
                         "[{\"message\":\"database is locked\",\"code\":\"SQLITE_BUSY\"},null,null,"
                         "null,null]");
    ASSERT(batch_read(res, 2, true, BATCH_WRITE, 100, MAX_BYTES, &r, &why));
    ASSERT(r.is_error);
    ASSERT_STR_EQ(str(r.structured, "rollback"), "not_needed");
    ASSERT_STR_EQ(str(json_object_get(r.structured, "transaction_error"), "step"), "BEGIN");
    ASSERT_INT_EQ(num(r.structured, "skipped"), 2);
    ASSERT_NULL(json_object_get(r.structured, "failed_statement"));
    ASSERT(strstr(r.summary, "could not begin: database is locked (SQLITE_BUSY)"));
    ASSERT(strstr(r.summary, "Nothing was committed"));
    batch_report_cleanup(&r);
    json_decref(res);

    /* COMMIT fails (a deferred foreign key, say): everything is undone. */
    res = answer("[" OK_NONE "," OK_ROW "," OK_NONE ",null," OK_NONE "]",
                 "[null,null,null,{\"message\":\"FOREIGN KEY constraint failed\"},null]");
    ASSERT(batch_read(res, 2, true, BATCH_WRITE, 100, MAX_BYTES, &r, &why));
    ASSERT_STR_EQ(str(r.structured, "status"), "rolled_back");
    ASSERT_STR_EQ(str(json_object_get(r.structured, "transaction_error"), "step"), "COMMIT");
    ASSERT_STR_EQ(str(statement(&r, 0), "status"), "rolled_back");
    ASSERT_STR_EQ(str(statement(&r, 1), "status"), "rolled_back");
    ASSERT(strstr(r.summary, "All 2 statements ran, but COMMIT failed: FOREIGN KEY constraint "
                             "failed. Nothing was committed: the transaction was rolled back."));
    batch_report_cleanup(&r);
    json_decref(res);

    /* SQLite rolled back by itself, so the ROLLBACK finds no transaction. */
    res =
        answer("[" OK_NONE ",null,null,null,null,null]",
               "[null,{\"message\":\"disk full\",\"code\":\"SQLITE_FULL\"},null,null,{\"message\":"
               "\"cannot rollback - no transaction is active\"},null]");
    ASSERT(!batch_read(res, 2, true, BATCH_WRITE, 100, MAX_BYTES, &r, &why));
    ASSERT_STR_EQ(why, "the batch result does not have one entry per step");
    json_decref(res);
    res =
        answer("[" OK_NONE ",null,null,null,null]",
               "[null,{\"message\":\"disk full\",\"code\":\"SQLITE_FULL\"},null,null,{\"message\":"
               "\"cannot rollback - no transaction is active\"}]");
    ASSERT(batch_read(res, 2, true, BATCH_WRITE, 100, MAX_BYTES, &r, &why));
    ASSERT_STR_EQ(str(r.structured, "rollback"), "automatic");
    ASSERT_INT_EQ(num(json_object_get(r.structured, "failed_statement"), "index"), 0);
    ASSERT_STR_EQ(str(statement(&r, 1), "status"), "skipped");
    ASSERT(strstr(r.summary, "Statement 1 of 2 (index 0) failed: disk full (SQLITE_FULL). "
                             "Nothing was committed: SQLite had already rolled the transaction "
                             "back. Statement 2 did not run."));
    batch_report_cleanup(&r);
    json_decref(res);

    /* A ROLLBACK that fails is reported, never hidden. */
    res = answer("[" OK_NONE ",null,null,null]",
                 "[null,{\"message\":\"no such table: t\"},null,{\"message\":\"I/O error\"}]");
    ASSERT(batch_read(res, 1, true, BATCH_WRITE, 100, MAX_BYTES, &r, &why));
    ASSERT_STR_EQ(str(r.structured, "rollback"), "failed");
    ASSERT_STR_EQ(str(json_object_get(r.structured, "rollback_error"), "message"), "I/O error");
    ASSERT(strstr(r.summary, "the ROLLBACK failed (I/O error)"));
    batch_report_cleanup(&r);
    json_decref(res);
}

static void test_read_plain(void)
{
    struct batch_report r;
    const char *why = NULL;
    json_t *res = answer("[" OK_ROW ",null," OK_NONE "]",
                         "[null,{\"message\":\"no such table: nope\",\"code\":\"SQL_INPUT_ERROR\"},"
                         "null]");
    ASSERT(batch_read(res, 3, false, BATCH_WRITE, 100, MAX_BYTES, &r, &why));
    ASSERT(r.is_error);
    ASSERT_STR_EQ(str(r.structured, "status"), "completed_with_errors");
    ASSERT(json_is_false(json_object_get(r.structured, "transaction")));
    ASSERT_NULL(json_object_get(r.structured, "committed"));
    ASSERT_NULL(json_object_get(r.structured, "mode"));
    ASSERT_STR_EQ(str(statement(&r, 0), "status"), "ok");
    ASSERT_STR_EQ(str(statement(&r, 1), "status"), "error");
    ASSERT_STR_EQ(str(statement(&r, 2), "status"), "ok");
    ASSERT_INT_EQ(num(r.structured, "succeeded"), 2);
    ASSERT(strstr(r.summary, "2 succeeded and took effect, 1 failed."));
    ASSERT(strstr(r.summary, "statement 2 of 3 (index 1): no such table: nope (SQL_INPUT_ERROR)"));
    batch_report_cleanup(&r);
    json_decref(res);

    res = answer("[" OK_ROW "]", "[null]");
    ASSERT(batch_read(res, 1, false, BATCH_WRITE, 100, MAX_BYTES, &r, &why));
    ASSERT(!r.is_error);
    ASSERT_STR_EQ(str(r.structured, "status"), "completed");
    batch_report_cleanup(&r);
    json_decref(res);
}

static void test_read_caps_and_malformed(void)
{
    struct batch_report r;
    const char *why = NULL;
    /* One byte budget for the whole batch: the first statement uses it up. */
    json_t *res = answer("[" OK_ROW "," OK_ROW "]", "[null,null]");
    ASSERT(batch_read(res, 2, false, BATCH_WRITE, 100, 30, &r, &why));
    ASSERT(json_is_false(json_object_get(statement(&r, 0), "truncated")));
    ASSERT(json_is_true(json_object_get(statement(&r, 1), "truncated")));
    ASSERT_INT_EQ(num(statement(&r, 1), "row_count"), 0);
    batch_report_cleanup(&r);
    ASSERT(batch_read(res, 2, false, BATCH_WRITE, 0, MAX_BYTES, &r, &why));
    ASSERT_INT_EQ(num(statement(&r, 0), "rows_available"), 1);
    ASSERT_INT_EQ(num(statement(&r, 0), "row_count"), 0);
    batch_report_cleanup(&r);
    json_decref(res);

    const char *bad[] = {
        "{}",
        "{\"step_results\":[],\"step_errors\":[]}",
        "{\"step_results\":[1,null],\"step_errors\":[null,null]}",
        "{\"step_results\":[null,null],\"step_errors\":[\"x\",null]}",
        "{\"step_results\":[{\"cols\":5},null],\"step_errors\":[null,null]}",
        ("{\"step_results\":[{\"cols\":[],\"rows\":[[{\"type\":\"integer\",\"value\":5}]]},"
         "null],\"step_errors\":[null,null]}"),
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        res = parse(bad[i]);
        why = NULL;
        if (batch_read(res, 2, false, BATCH_WRITE, 100, MAX_BYTES, &r, &why))
            TEST_FAIL("malformed answer %zu was accepted", i);
        ASSERT_NOT_NULL(why);
        json_decref(res);
    }
    batch_report_cleanup(NULL);
}

/* What tool_call_finish handed on: the CallToolResult as JSON text. */
struct finished {
    int n_calls;
    char *text;
    size_t len;
    bool is_error;
};

static void on_finish(struct tool_call *call, char *result, size_t len, bool is_error)
{
    struct finished *f = call->owner;
    f->n_calls++;
    f->text = result;
    f->len = len;
    f->is_error = is_error;
}

/*
 * Ends a call with `result` as a tool does and checks it was finished once,
 * with JSON text that parses: that text is left in `f` (caller frees
 * f->text), its value returned (caller decrefs).
 */
static json_t *finish_parsed(json_t *result, struct finished *f)
{
    struct tool_call call = {.finish = on_finish, .owner = f};
    *f = (struct finished){0};
    tool_call_finish(&call, result);
    ASSERT_INT_EQ(f->n_calls, 1);
    ASSERT_NOT_NULL(f->text);
    ASSERT_INT_EQ(f->len, strlen(f->text));
    json_error_t jerr;
    json_t *got = json_loadb(f->text, f->len, 0, &jerr);
    if (!got)
        TEST_FAIL("the result does not parse: %s\n%s", jerr.text, f->text);
    return got;
}

/* The text of a parsed result's content, which is one text block. */
static const char *block_text(const json_t *got)
{
    const json_t *content = json_object_get(got, "content");
    ASSERT_INT_EQ(json_array_size(content), 1);
    ASSERT_STR_EQ(str(json_array_get(content, 0), "type"), "text");
    const char *text = str(json_array_get(content, 0), "text");
    ASSERT_NOT_NULL(text);
    return text;
}

/*
 * Ends a call with `rep` as turso_batch_execute does (tool_result, then
 * tool_call_finish) and checks what a client reads: the summary, then,
 * fenced, JSON text that is byte for byte the structuredContent of the same
 * reply (and ASCII-only, as the text block always held it), and isError as
 * the report says.
 */
static void assert_text_is_structured(struct batch_report *rep)
{
    static const char open[] = "<untrusted-database-content>\n";
    static const char close[] = "\n</untrusted-database-content>";
    static const char key[] = "}],\"structuredContent\":";
    static const char error_end[] = ",\"isError\":true}";
    struct finished f;
    json_t *want = json_incref(rep->structured);
    json_t *got =
        finish_parsed(tool_result(rep->structured, rep->summary, true, rep->is_error), &f);
    rep->structured = NULL; /* tool_result took it */
    ASSERT_INT_EQ(f.is_error, rep->is_error);
    ASSERT_INT_EQ(json_is_true(json_object_get(got, "isError")), rep->is_error);
    ASSERT_INT_EQ(json_object_size(got), rep->is_error ? 3 : 2);
    ASSERT(json_equal(json_object_get(got, "structuredContent"), want));

    /* The text block: the summary, a newline, the fenced data. */
    const char *block = block_text(got);
    size_t summary_len = strlen(rep->summary);
    ASSERT(strncmp(block, rep->summary, summary_len) == 0 && block[summary_len] == '\n');
    const char *data = strstr(block, open);
    ASSERT_NOT_NULL(data);
    data += strlen(open);
    size_t block_len = strlen(block);
    ASSERT(block_len >= strlen(close) && strcmp(block + block_len - strlen(close), close) == 0);
    size_t data_len = (size_t)(block + block_len - strlen(close) - data);
    for (size_t i = 0; i < data_len; i++)
        ASSERT((unsigned char)data[i] < 0x80);
    json_error_t jerr;
    json_t *data_value = json_loadb(data, data_len, 0, &jerr);
    if (!data_value)
        TEST_FAIL("the text block's data does not parse: %s\n%s", jerr.text, block);
    ASSERT(json_equal(data_value, want));

    /* And structuredContent in the reply is that same text. */
    const char *raw = strstr(f.text, key);
    ASSERT_NOT_NULL(raw);
    raw += strlen(key);
    size_t raw_len = f.len - (size_t)(raw - f.text) - (rep->is_error ? strlen(error_end) : 1);
    ASSERT_INT_EQ(raw_len, data_len);
    ASSERT(memcmp(raw, data, data_len) == 0);

    json_decref(data_value);
    json_decref(got);
    json_decref(want);
    free(f.text);
}

static void test_result_text(void)
{
    struct batch_report r;
    const char *why = NULL;

    /* Committed, with text that JSON escapes, a character beyond ASCII and a real. */
    json_t *res = answer("[" OK_NONE ",{\"cols\":[{\"name\":\"n\\u00e9\",\"decltype\":\"TEXT\"},"
                         "{\"name\":\"r\",\"decltype\":\"REAL\"}],\"rows\":[[{\"type\":\"text\","
                         "\"value\":\"caf\\u00e9 \\\"q\\\" \\\\ \\n \\ud83d\\ude00\"},"
                         "{\"type\":\"float\",\"value\":0.1}]]}," OK_NONE ",null]",
                         "[null,null,null,null]");
    ASSERT(batch_read(res, 1, true, BATCH_WRITE, 100, MAX_BYTES, &r, &why));
    ASSERT(!r.is_error);
    assert_text_is_structured(&r);
    batch_report_cleanup(&r);
    json_decref(res);

    /* Rolled back: an error result, still with the detail. */
    res = fixture_batch("db-post-v2-pipeline--batch-step-failure-rollback.json", 0);
    ASSERT(batch_read(res, 2, true, BATCH_DEFERRED, 100, MAX_BYTES, &r, &why));
    ASSERT(r.is_error);
    assert_text_is_structured(&r);
    batch_report_cleanup(&r);
    json_decref(res);
}

/*
 * An error message too long for the result is cut, and a character cut
 * short becomes '?': the client still gets the message as a tool error,
 * not an internal error, whichever byte of a character the cut falls on.
 * The message is written into 2,048 bytes, so it is cut to 2,047, and
 * mended in place: the cut character's bytes left each become one '?'.
 */
static void test_long_error_cut_whole(void)
{
    char message[4096];
    for (size_t shift = 0; shift < 4; shift++) {
        memset(message, 'a', shift);
        size_t len = shift;
        while (len + 4 < sizeof(message) - 1) {
            memcpy(message + len, "\xf0\x9f\x98\x80", 4); /* U+1F600, four bytes */
            len += 4;
        }
        message[len] = '\0';
        struct finished f;
        json_t *got = finish_parsed(tool_error_result("failed: %s", message), &f);
        ASSERT(f.is_error);
        ASSERT(json_is_true(json_object_get(got, "isError")));
        const char *text = block_text(got);
        ASSERT(strncmp(text, "failed: ", 8) == 0);
        /* Cut within the last character that fits, its bytes mended. */
        size_t text_len = strlen(text);
        ASSERT(text_len <= 2047 && text_len >= 2044);
        ASSERT(strstr(text, "\xf0\x9f\x98\x80") != NULL);
        ASSERT_INT_EQ(text_len, 2047);
        for (size_t i = 0; i < shift; i++)
            ASSERT_INT_EQ(text[8 + i], 'a');
        /*
         * 2,039 - shift bytes after "failed: " and the 'a's: 509 whole
         * characters, then 3 - shift bytes of the next, each now '?'.
         */
        const char *p = text + 8 + shift;
        for (size_t i = 0; i < 509; i++, p += 4)
            ASSERT(memcmp(p, "\xf0\x9f\x98\x80", 4) == 0);
        static const char marks[] = "???";
        ASSERT_STR_EQ(p, marks + shift);
        json_decref(got);
        free(f.text);
    }
}

/*
 * Tools quote what the client sent cut to a width ("%.64s"), which may end
 * inside a character: the message still arrives, the broken bytes as '?'.
 */
static void test_error_quoting_cut_character(void)
{
    struct finished f;
    json_t *got = finish_parsed(tool_error_result("Unknown argument \"%.4s\"", "abc\xc3\xa9"), &f);
    ASSERT(f.is_error);
    ASSERT(json_is_true(json_object_get(got, "isError")));
    ASSERT_STR_EQ(block_text(got), "Unknown argument \"abc?\"");
    json_decref(got);
    free(f.text);
}

/*
 * Bytes that are not UTF-8 inside a message, not only at its end, become
 * '?' each, and what follows them arrives as it was.
 */
static void test_error_bad_bytes_within(void)
{
    struct finished f;
    json_t *got = finish_parsed(tool_error_result("Unknown argument \"%s\"", "a\xff"
                                                                             "b"),
                                &f);
    ASSERT(f.is_error);
    ASSERT(json_is_true(json_object_get(got, "isError")));
    ASSERT_STR_EQ(block_text(got), "Unknown argument \"a?b\"");
    json_decref(got);
    free(f.text);

    /* A lone continuation byte, a character cut short by ASCII, then a whole one. */
    got = finish_parsed(tool_error_result("%s", "a\x80"
                                                "b\xe2\x82"
                                                "c\xf0\x9f\x98\x80"),
                        &f);
    ASSERT(f.is_error);
    ASSERT_STR_EQ(block_text(got), "a?b??c\xf0\x9f\x98\x80");
    json_decref(got);
    free(f.text);
}

int main(void)
{
    RUN(test_modes);
    RUN(test_transaction_steps);
    RUN(test_plain_steps);
    RUN(test_read_failures_from_fixtures);
    RUN(test_read_commit_from_fixture);
    RUN(test_read_rare_endings);
    RUN(test_read_plain);
    RUN(test_read_caps_and_malformed);
    RUN(test_result_text);
    RUN(test_long_error_cut_whole);
    RUN(test_error_quoting_cut_character);
    RUN(test_error_bad_bytes_within);
    TEST_DONE();
}
