/*
 * rows.c: a recorded answer of the local tursodb turned into columns and
 * cells, the row cap, the shared byte budget, and malformed results; and
 * rows_write_result, which must write what rows_from_result builds; and
 * rows_write_from_pipeline, which must write the same from the raw answer
 * or give up.
 */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "hrana.h"
#include "jsonw.h"
#include "rows.h"
#include "test.h"
#include "tool.h"

/* results[index].response.result of a fixture's response body (new reference). */
static json_t *fixture_result(const char *name, size_t index)
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

static void assert_json(const json_t *v, const char *text)
{
    json_t *want = json_loads(text, 0, NULL);
    ASSERT_NOT_NULL(want);
    if (!json_equal(v, want)) {
        char *got = json_dumps(v, JSON_COMPACT);
        TEST_FAIL("got %s\nwant %s", got ? got : "(null)", text);
    }
    json_decref(want);
}

static void test_cells_from_fixture(void)
{
    json_t *sr = fixture_result("local-tursodb--post-v2-pipeline--insert-then-select.json", 1);
    size_t budget = 4096;
    const char *why = NULL;
    json_t *out = rows_from_result(sr, 10, &budget, &why);
    ASSERT_NOT_NULL(out);
    assert_json(out, "{\"columns\":[{\"name\":\"id\",\"type\":\"INTEGER\"},{\"name\":\"title\","
                     "\"type\":\"TEXT\"},{\"name\":\"score\",\"type\":\"REAL\"},{\"name\":\"data\","
                     "\"type\":\"BLOB\"},{\"name\":\"big\",\"type\":null}],"
                     "\"rows\":[[1,\"hello\",{\"type\":\"float\",\"value\":2.5},{\"type\":\"blob\","
                     "\"base64\":\"3q2+7w\"},{\"type\":\"integer\",\"value\":"
                     "\"9223372036854775807\"}]],\"row_count\":1,\"rows_available\":1,"
                     "\"truncated\":false,\"affected_row_count\":0}");
    ASSERT(budget < 4096);
    json_decref(out);

    /* No budget left: no row, truncated. */
    budget = 10;
    out = rows_from_result(sr, 10, &budget, &why);
    ASSERT(json_is_true(json_object_get(out, "truncated")));
    ASSERT_INT_EQ(json_integer_value(json_object_get(out, "row_count")), 0);
    ASSERT_INT_EQ(budget, 10);
    json_decref(out);

    /* The row cap. */
    budget = 4096;
    out = rows_from_result(sr, 0, &budget, &why);
    ASSERT(json_is_true(json_object_get(out, "truncated")));
    ASSERT_INT_EQ(json_integer_value(json_object_get(out, "rows_available")), 1);
    json_decref(out);
    json_decref(sr);
}

static void test_malformed(void)
{
    const char *bad[] = {
        "{}",
        "{\"cols\":[],\"rows\":{}}",
        "{\"cols\":[],\"rows\":[5]}",
        "{\"cols\":[],\"rows\":[[{\"type\":\"integer\",\"value\":\"x\"}]]}",
        "{\"cols\":[],\"rows\":[[{\"type\":\"nope\"}]]}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        json_t *sr = json_loads(bad[i], 0, NULL);
        size_t budget = 4096;
        const char *why = NULL;
        ASSERT_NULL(rows_from_result(sr, 10, &budget, &why));
        ASSERT_NOT_NULL(why);
        json_decref(sr);
    }
}

/* Cells at the edges of every form: numbers, text, blobs. */
static const char edge_result[] =
    "{\"cols\":[{\"name\":\"a\",\"decltype\":\"INTEGER\"},{\"name\":null},{},5,"
    "{\"name\":\"n\\u00e4me \\u540d \\ud83d\\ude00\",\"decltype\":\"TEXT\"}],\"rows\":["
    "[{\"type\":\"null\"},{\"type\":\"integer\",\"value\":\"0\"},"
    "{\"type\":\"integer\",\"value\":\"-9223372036854775808\"},"
    "{\"type\":\"integer\",\"value\":\"9223372036854775807\"},"
    "{\"type\":\"integer\",\"value\":\"9007199254740991\"}],"
    "[{\"type\":\"integer\",\"value\":\"9007199254740992\"},"
    "{\"type\":\"integer\",\"value\":\"-9007199254740991\"},"
    "{\"type\":\"integer\",\"value\":\"-9007199254740992\"},"
    "{\"type\":\"integer\",\"value\":\"-0\"},{\"type\":\"integer\",\"value\":\"0012\"}],"
    "[{\"type\":\"float\",\"value\":-0.0},{\"type\":\"float\",\"value\":1.0},"
    "{\"type\":\"float\",\"value\":1},{\"type\":\"float\",\"value\":null},"
    "{\"type\":\"float\",\"value\":0.1}],"
    "[{\"type\":\"float\",\"value\":1e300},{\"type\":\"float\",\"value\":-1.5e-7},"
    "{\"type\":\"float\",\"value\":123456789.123456789},{\"type\":\"float\",\"value\":1e21},"
    "{\"type\":\"float\",\"value\":5e-324}],"
    "[{\"type\":\"text\",\"value\":\"h\\u00e9llo \\u540d \\ud83d\\ude00 \\u2028 \\u007f\"},"
    "{\"type\":\"text\",\"value\":\"a\\u0000b\"},"
    "{\"type\":\"text\",\"value\":\"\\u0001\\u001f\\b\\f\\n\\r\\t\\\"\\\\/<>&'\"},"
    "{\"type\":\"text\",\"value\":\"\"},{\"type\":\"blob\",\"base64\":\"\"}],"
    "[{\"type\":\"blob\",\"base64\":\"3q2+7w\"},{\"type\":\"blob\",\"base64\":\"AA\"},"
    "{\"type\":\"text\",\"value\":\"x\"},{\"type\":\"null\"},"
    "{\"type\":\"blob\",\"base64\":\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8\"}]],"
    "\"affected_row_count\":3,\"last_insert_rowid\":\"42\"}";

/*
 * Runs both paths on `sr` with the same caps and checks that the text
 * written is exactly what jsonw_dumps makes of the built value (as the
 * server serialises every other tool's result), that the budget left is the
 * same, and that the whole CallToolResult is the same, byte for byte;
 * and, against json_dumps, that only reals are written otherwise.
 */
static void assert_same_output(const json_t *sr, long max_rows, size_t budget)
{
    size_t budget_built = budget, budget_written = budget;
    const char *why_built = NULL, *why_written = NULL;
    json_t *built = rows_from_result(sr, max_rows, &budget_built, &why_built);
    struct jsonw w;
    struct rows_counts counts;
    jsonw_init(&w);
    bool is_written = rows_write_result(&w, sr, max_rows, &budget_written, &counts, &why_written);
    if (!built) {
        ASSERT(!is_written);
        ASSERT_STR_EQ(why_written, why_built);
        jsonw_cleanup(&w);
        return;
    }
    ASSERT(is_written);
    ASSERT_INT_EQ(budget_written, budget_built);
    size_t len = 0;
    char *text = jsonw_take(&w, &len);
    ASSERT_NOT_NULL(text);
    ASSERT_INT_EQ(len, strlen(text));
    char *dumped = jsonw_dumps(built, true, NULL);
    ASSERT_STR_EQ(text, dumped);
    /* json_dumps writes reals with 17 digits; read back, all is the same. */
    char *jansson_dumped = json_dumps(built, JSON_COMPACT | JSON_ENSURE_ASCII);
    json_t *reread = json_loadb(text, len, JSON_ALLOW_NUL, NULL);
    ASSERT_NOT_NULL(reread);
    char *redumped = json_dumps(reread, JSON_COMPACT | JSON_ENSURE_ASCII);
    ASSERT_STR_EQ(redumped, jansson_dumped);
    free(redumped);
    free(jansson_dumped);
    json_decref(reread);
    ASSERT_INT_EQ(counts.n_rows, json_integer_value(json_object_get(built, "row_count")));
    ASSERT_INT_EQ(counts.n_available, json_integer_value(json_object_get(built, "rows_available")));
    ASSERT_INT_EQ(counts.is_truncated, json_is_true(json_object_get(built, "truncated")));
    ASSERT_INT_EQ(counts.n_columns, json_array_size(json_object_get(built, "columns")));

    /* The whole CallToolResult, both ways: byte for byte what tool_call_finish sends. */
    size_t result_len = 0, want_len = 0;
    bool is_error = true;
    char *result_text = tool_ok_result_text(text, len, "Returned some rows.", true, &result_len);
    ASSERT_NOT_NULL(result_text);
    ASSERT_INT_EQ(result_len, strlen(result_text));
    json_t *parts = tool_ok_result(json_incref(built), "Returned some rows.", true);
    ASSERT_NOT_NULL(parts);
    char *want_text = tool_result_dumps(parts, &want_len, &is_error);
    ASSERT_NOT_NULL(want_text);
    ASSERT(!is_error);
    ASSERT_INT_EQ(result_len, want_len);
    ASSERT_STR_EQ(result_text, want_text);
    /* What a client reads: the rows as structuredContent, and as text in the text block. */
    json_error_t jerr;
    json_t *got = json_loadb(result_text, result_len, JSON_ALLOW_NUL, &jerr);
    if (!got)
        TEST_FAIL("written result does not parse: %s\n%s", jerr.text, result_text);
    ASSERT(json_equal(json_object_get(got, "structuredContent"), built));
    const char *block = json_string_value(
        json_object_get(json_array_get(json_object_get(got, "content"), 0), "text"));
    ASSERT_NOT_NULL(block);
    ASSERT(strncmp(block, "Returned some rows.\n", 20) == 0);
    ASSERT_NOT_NULL(strstr(block, text));
    /* The rows right inside the fence, whichever way both texts above were written. */
    const char *fenced = strstr(block, "<untrusted-database-content>\n");
    ASSERT_NOT_NULL(fenced);
    ASSERT(strncmp(fenced + strlen("<untrusted-database-content>\n"), text, strlen(text)) == 0);
    json_decref(got);
    free(want_text);
    json_decref(parts);
    free(result_text);
    free(dumped);
    free(text);
    json_decref(built);
}

static json_t *load_with_nul(const char *text)
{
    json_error_t jerr;
    json_t *v = json_loads(text, JSON_ALLOW_NUL, &jerr);
    if (!v)
        TEST_FAIL("bad test input: %s", jerr.text);
    return v;
}

static void test_written_edges(void)
{
    json_t *sr = load_with_nul(edge_result);
    /* Every row cap, and every byte budget from none to more than enough. */
    for (long max_rows = 1; max_rows <= 7; max_rows++)
        assert_same_output(sr, max_rows, 1 << 20);
    for (size_t budget = 0; budget < 1200; budget++)
        assert_same_output(sr, 100, budget);
    json_decref(sr);
}

static void test_written_empty_and_fixture(void)
{
    const char *cases[] = {
        "{\"cols\":[],\"rows\":[]}",
        "{\"cols\":[{\"name\":\"x\",\"decltype\":null}],\"rows\":[]}",
        "{\"cols\":[],\"rows\":[],\"affected_row_count\":0,\"last_insert_rowid\":null}",
        "{\"cols\":[{\"name\":\"x\"}],\"rows\":[[]],\"affected_row_count\":1}",
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_t *sr = load_with_nul(cases[i]);
        assert_same_output(sr, 10, 4096);
        json_decref(sr);
    }
    json_t *sr = fixture_result("local-tursodb--post-v2-pipeline--insert-then-select.json", 1);
    for (size_t budget = 0; budget < 300; budget++)
        assert_same_output(sr, 10, budget);
    json_decref(sr);
}

static void test_written_malformed(void)
{
    const char *bad[] = {
        "{}",
        "{\"cols\":[],\"rows\":{}}",
        "{\"cols\":[],\"rows\":[5]}",
        "{\"cols\":[],\"rows\":[[{\"type\":\"integer\",\"value\":\"x\"}]]}",
        "{\"cols\":[],\"rows\":[[{\"type\":\"integer\",\"value\":\"99999999999999999999\"}]]}",
        "{\"cols\":[],\"rows\":[[{\"type\":\"integer\",\"value\":5}]]}",
        "{\"cols\":[],\"rows\":[[{\"type\":\"float\",\"value\":\"1\"}]]}",
        "{\"cols\":[],\"rows\":[[{\"type\":\"text\"}]]}",
        "{\"cols\":[],\"rows\":[[{\"type\":\"blob\",\"value\":\"AA\"}]]}",
        "{\"cols\":[],\"rows\":[[{\"type\":\"nope\"}]]}",
        "{\"cols\":[],\"rows\":[[null]]}",
        "{\"cols\":[],\"rows\":[[1],[{\"type\":\"nope\"}]]}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        json_t *sr = load_with_nul(bad[i]);
        assert_same_output(sr, 10, 4096);
        json_decref(sr);
    }
}

/* The writer's own forms: reals as jansson writes them, strings it must refuse. */
/* What jsonw_real writes for d (caller frees). */
static char *real_written(double d)
{
    struct jsonw w;
    jsonw_init(&w);
    jsonw_real(&w, d);
    return jsonw_take(&w, NULL);
}

/* What jsonw_real_text writes for text, or NULL when it declines (caller frees). */
static char *real_text_written(const char *text)
{
    struct jsonw w;
    jsonw_init(&w);
    bool is_written = jsonw_real_text(&w, text, strlen(text));
    char *out = jsonw_take(&w, NULL);
    if (!is_written) {
        ASSERT_STR_EQ(out, "");
        free(out);
        return NULL;
    }
    return out;
}

static void test_writer(void)
{
    /* The fewest digits that read back the same, in jansson's forms. */
    const struct {
        double d;
        const char *want;
    } reals[] = {
        {0.0, "0.0"},
        {-0.0, "-0.0"},
        {1.0, "1.0"},
        {-1.0, "-1.0"},
        {0.5, "0.5"},
        {0.1, "0.1"},
        {0.1 + 0.2, "0.30000000000000004"},
        {2500.26, "2500.26"},
        {1.0 / 3, "0.3333333333333333"},
        {1e5, "100000.0"},
        {1e-5, "1e-5"},
        {0.0001, "0.0001"},
        {1e14, "100000000000000.0"},
        {1e15, "1e15"},
        {1e20, "1e20"},
        {1e21, "1e21"},
        {1e22, "1e22"},
        {1.5e300, "1.5e300"},
        {-2.5e-300, "-2.5e-300"},
        {3.141592653589793, "3.141592653589793"},
        {100.0, "100.0"},
        {123456789012345678.0, "1.2345678901234568e17"},
        {5e-324, "5e-324"},
        {1.7976931348623157e308, "1.7976931348623157e308"},
    };
    for (size_t i = 0; i < sizeof(reals) / sizeof(reals[0]); i++) {
        char *got = real_written(reals[i].d);
        ASSERT_STR_EQ(got, reals[i].want);
        /* jansson reads it back as the same double. */
        json_t *back = json_loads(got, JSON_DECODE_ANY, NULL);
        ASSERT(json_is_real(back));
        ASSERT(json_real_value(back) == reals[i].d);
        json_decref(back);
        free(got);
    }
    /* Turso's texts, written as they stand: the same as converting them. */
    const char *texts[] = {"0.1",
                           "3.0",
                           "3",
                           "-7",
                           "1e21",
                           "1E+21",
                           "1e-5",
                           "2500.26",
                           "0.000123",
                           "123.4500",
                           "00.5e1",
                           "1e14",
                           "1e15",
                           "9.99e-5",
                           "123456789012345",
                           "-0.000000000001",
                           "4.5e300"};
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        char *got = real_text_written(texts[i]);
        if (!got)
            TEST_FAIL("declined %s", texts[i]);
        char *want = real_written(strtod(texts[i], NULL));
        ASSERT_STR_EQ(got, want);
        free(got);
        free(want);
    }
    /* Many random doubles printed with 1 to 15 digits, in both notations. */
    unsigned long long x = 88172645463325252ULL;
    for (int i = 0; i < 20000; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        double d = (double)(x >> 11) / (double)(1ULL << 53) * 2 - 1;
        d *= pow(10.0, (double)((int)(x % 41) - 20));
        char text[64];
        snprintf(text, sizeof(text), (i & 1) ? "%.*e" : "%.*f", (int)(x % 15), d);
        double v = strtod(text, NULL);
        char *got = real_text_written(text);
        if (v == 0) {
            ASSERT_NULL(got);
            continue;
        }
        if (!got)
            continue; /* more than 15 significant digits ("%.14f" of a large value) */
        char *want = real_written(v);
        if (strcmp(got, want) != 0)
            TEST_FAIL("%s: written %s, converted %s", text, got, want);
        free(got);
        free(want);
    }
    /* Declined: zero (its sign), more than 15 digits, a double's limits. */
    const char *declined[] = {"0", "-0.0", "0.30000000000000004", "1e-310", "1e308", "1e99999"};
    for (size_t i = 0; i < sizeof(declined) / sizeof(declined[0]); i++)
        ASSERT_NULL(real_text_written(declined[i]));
    struct jsonw w;
    jsonw_init(&w);
    jsonw_real(&w, 0.0 / 0.0);
    jsonw_lit(&w, ",");
    jsonw_real(&w, 1.0 / 0.0);
    char *got = jsonw_take(&w, NULL);
    ASSERT_STR_EQ(got, "null,null");
    free(got);
    /* Not UTF-8: refused in ASCII mode, as json_dumps refuses it. */
    jsonw_init(&w);
    jsonw_string(&w, "a\xff", 2, true);
    ASSERT_NULL(jsonw_take(&w, NULL));
    jsonw_cleanup(&w);
}

/* jsonw_value writes what json_dumps(JSON_COMPACT) writes, reals aside. */
static void test_value_as_jansson(void)
{
    const char *texts[] = {
        "[]",
        "{}",
        "[{\"type\":\"execute\",\"stmt\":{\"sql\":\"SELECT ?\",\"args\":[{\"type\":"
        "\"integer\",\"value\":\"42\"}],\"want_rows\":true}},{\"type\":\"close\"}]",
        "{\"s\":\"quote \\\" back \\\\ slash / tab \\t nl \\n ctl \\u0001 \\u001f\","
        "\"u\":\"n\\u00e4me \\u540d \\ud83d\\ude00\",\"n\":null,\"t\":true,\"f\":false,"
        "\"i\":-9223372036854775808,\"j\":9223372036854775807,\"z\":0,"
        "\"deep\":[[[[{\"a\":[1,2,{}]}]]]],\"\":\"\"}",
    };
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        json_error_t jerr;
        json_t *v = json_loads(texts[i], 0, &jerr);
        if (!v)
            TEST_FAIL("bad test input %zu: %s", i, jerr.text);
        for (int is_ascii = 0; is_ascii <= 1; is_ascii++) {
            size_t len = 0;
            char *got = jsonw_dumps(v, is_ascii, &len);
            char *want = json_dumps(v, JSON_COMPACT | (is_ascii ? JSON_ENSURE_ASCII : 0));
            ASSERT_STR_EQ(got, want);
            ASSERT_INT_EQ(len, strlen(want));
            free(got);
            free(want);
        }
        json_decref(v);
    }
    /* Reals with the fewest digits, read back as the same values. */
    json_t *v = json_pack("{s:f,s:[f,f]}", "a", 0.1, "b", 1e300, -2.5);
    struct jsonw w;
    jsonw_init(&w);
    jsonw_value(&w, v, false);
    char *got = jsonw_take(&w, NULL);
    ASSERT_STR_EQ(got, "{\"a\":0.1,\"b\":[1e300,-2.5]}");
    json_t *back = json_loads(got, 0, NULL);
    ASSERT(json_equal(back, v));
    json_decref(back);
    json_decref(v);
    free(got);
}

/* What the ordinary path writes for a pipeline answer (caller frees); NULL where it fails. */
static char *written_via_jansson(const char *body, size_t len, size_t n_results, long max_rows,
                                 size_t *budget, struct rows_counts *counts)
{
    json_t *root = json_loadb(body, len, JSON_ALLOW_NUL, NULL);
    const json_t *all = json_object_get(root, "results");
    json_t *response = NULL;
    char *out = NULL;
    const char *why = NULL;
    struct jsonw w;
    jsonw_init(&w);
    if (!json_is_array(all) || json_array_size(all) != n_results ||
        hrana_result_get(json_array_get(all, 0), &response, NULL, NULL) != TM_OK)
        goto out;
    if (rows_write_result(&w, json_object_get(response, "result"), max_rows, budget, counts, &why))
        out = jsonw_take(&w, NULL);
out:
    jsonw_cleanup(&w);
    json_decref(root);
    return out;
}

/*
 * The fast reader either gives up or writes exactly what the ordinary path
 * writes, with the same budget and counts; and it never succeeds where the
 * ordinary path fails. `must_read` when the answer is of the usual shape.
 */
static void assert_pipeline_same(const char *body, size_t len, size_t n_results, long max_rows,
                                 size_t budget, bool must_read)
{
    size_t budget_fast = budget, budget_slow = budget;
    struct rows_counts fast_counts = {0}, slow_counts = {0};
    struct jsonw w;
    jsonw_init(&w);
    bool is_read =
        rows_write_from_pipeline(&w, body, len, n_results, max_rows, &budget_fast, &fast_counts);
    char *slow = written_via_jansson(body, len, n_results, max_rows, &budget_slow, &slow_counts);
    if (must_read && !is_read)
        TEST_FAIL("the fast reader gave up on %.*s", (int)(len > 400 ? 400 : len), body);
    if (is_read) {
        char *fast = jsonw_take(&w, NULL);
        if (!slow)
            TEST_FAIL("the fast reader read what jansson refuses: %.*s", (int)len, body);
        ASSERT_STR_EQ(fast, slow);
        ASSERT_INT_EQ(budget_fast, budget_slow);
        ASSERT_INT_EQ(fast_counts.n_rows, slow_counts.n_rows);
        ASSERT_INT_EQ(fast_counts.n_available, slow_counts.n_available);
        ASSERT_INT_EQ(fast_counts.n_columns, slow_counts.n_columns);
        ASSERT_INT_EQ(fast_counts.is_truncated, slow_counts.is_truncated);
        free(fast);
    } else {
        ASSERT_INT_EQ(budget_fast, budget);
    }
    jsonw_cleanup(&w);
    free(slow);
}

/* A pipeline answer around a statement result `sr`, optionally with a close result after it. */
static char *pipeline_body(const char *sr, bool has_close)
{
    static const char head[] = "{\"baton\":null,\"base_url\":null,\"results\":[{\"type\":\"ok\","
                               "\"response\":{\"type\":\"execute\",\"result\":";
    static const char close[] = ",{\"type\":\"ok\",\"response\":{\"type\":\"close\"}}";
    size_t len = strlen(head) + strlen(sr) + strlen(close) + 8;
    char *b = malloc(len);
    ASSERT_NOT_NULL(b);
    snprintf(b, len, "%s%s}}%s]}", head, sr, has_close ? close : "");
    return b;
}

static void test_pipeline_usual(void)
{
    char *body = pipeline_body(edge_result, false);
    for (long max_rows = 1; max_rows <= 7; max_rows++)
        assert_pipeline_same(body, strlen(body), 1, max_rows, 1 << 20, true);
    for (size_t budget = 0; budget < 1200; budget += 7)
        assert_pipeline_same(body, strlen(body), 1, 100, budget, true);
    /* The same answer counted wrong is refused by both. */
    assert_pipeline_same(body, strlen(body), 2, 100, 4096, false);

    /* Re-written by jansson: indented, and with every non-ASCII character escaped. */
    json_t *root = load_with_nul(body);
    char *pretty = json_dumps(root, JSON_INDENT(3) | JSON_ENSURE_ASCII);
    assert_pipeline_same(pretty, strlen(pretty), 1, 100, 1 << 20, true);
    free(pretty);
    json_decref(root);
    free(body);

    body = pipeline_body(edge_result, true);
    assert_pipeline_same(body, strlen(body), 2, 100, 1 << 20, true);
    assert_pipeline_same(body, strlen(body), 1, 100, 1 << 20, false);
    free(body);

    const char *small[] = {
        "{\"cols\":[],\"rows\":[]}",
        "{\"cols\":[],\"rows\":[],\"affected_row_count\":2,\"last_insert_rowid\":\"7\"}",
        "{\"cols\":[],\"rows\":[],\"affected_row_count\":2.0,\"last_insert_rowid\":7}",
        "{\"cols\":[{\"name\":\"x\",\"decltype\":\"TEXT\",\"extra\":[1,{\"a\":null}]}],"
        "\"rows\":[[{\"value\":\"v\",\"type\":\"text\"}]],\"rows_read\":1,"
        "\"query_duration_ms\":0.25,\"replication_index\":null}",
    };
    for (size_t i = 0; i < sizeof(small) / sizeof(small[0]); i++) {
        body = pipeline_body(small[i], false);
        assert_pipeline_same(body, strlen(body), 1, 100, 4096, true);
        free(body);
    }

    /* The recorded tursodb answer: its first result is the insert. */
    const char *dir = getenv("TM_FIXTURES");
    char path[1024];
    snprintf(path, sizeof(path), "%s/hrana/%s", dir ? dir : TM_FIXTURES_DIR,
             "local-tursodb--post-v2-pipeline--insert-then-select.json");
    json_t *fx = json_load_file(path, 0, NULL);
    ASSERT_NOT_NULL(fx);
    const json_t *fx_body = json_object_get(json_object_get(fx, "response"), "body");
    char *text = json_dumps(fx_body, JSON_COMPACT);
    assert_pipeline_same(text, strlen(text), json_array_size(json_object_get(fx_body, "results")),
                         100, 4096, true);
    free(text);
    json_decref(fx);
}

/* Answers of another shape, or that jansson refuses: the fast reader must give up. */
static void test_pipeline_other(void)
{
    const char *bodies[] = {
        "",
        "{}",
        "[]",
        "{\"results\":[]}",
        "{\"results\":[{\"type\":\"error\",\"error\":{\"message\":\"no such table\"}}]}",
        "{\"results\":[{\"response\":{\"type\":\"execute\",\"result\":{\"cols\":[],\"rows\":[]}},"
        "\"type\":\"ok\"}]}",
        "{\"results\":[{\"type\":\"ok\",\"response\":{\"type\":\"execute\",\"result\":"
        "{\"rows\":[],\"cols\":[]}}}]}",
        "{\"results\":[{\"type\":\"ok\",\"response\":{\"type\":\"execute\",\"result\":"
        "{\"cols\":[],\"rows\":[]}}}]} x",
        "{\"results\":[{\"type\":\"ok\",\"response\":{\"type\":\"execute\",\"result\":"
        "{\"cols\":[],\"rows\":[]}}}],\"results\":[]}",
        "{\"results\":[{\"type\":\"ok\",\"response\":{\"type\":\"execute\",\"result\":"
        "{\"cols\":[],\"rows\":[],\"affected_row_count\":99999999999999999999}}}]}",
        "{\"results\":[{\"type\":\"ok\",\"response\":{\"type\":\"execute\",\"result\":"
        "{\"cols\":[],\"rows\":[[{\"type\":\"float\",\"value\":1e400}]]}}}]}",
        "{\"results\":[{\"type\":\"ok\",\"response\":{\"type\":\"execute\",\"result\":"
        "{\"cols\":[],\"rows\":[[{\"type\":\"text\",\"value\":\"\\ud800\"}]]}}}]}",
        "{\"results\":[{\"type\":\"ok\",\"response\":{\"type\":\"execute\",\"result\":"
        "{\"cols\":[],\"rows\":[[{\"type\":\"text\",\"value\":\"a\xc3\"}]]}}}]}",
        "{\"results\":[{\"type\":\"ok\",\"response\":{\"type\":\"execute\",\"result\":"
        "{\"cols\":[],\"rows\":[[{\"type\":\"text\",\"value\":\"a\tb\"}]]}}}]}",
        "{\"results\":[{\"type\":\"ok\",\"response\":{\"type\":\"execute\",\"result\":"
        "{\"cols\":[],\"rows\":[[{\"type\":\"text\",\"value\":\"a\",\"value\":\"b\"}]]}}}]}",
        "{\"results\":[{\"type\":\"ok\",\"response\":{\"type\":\"execute\",\"result\":"
        "{\"cols\":[],\"rows\":[[01]]}}}]}",
        "{\"results\":[{\"type\":\"ok\",\"response\":{\"type\":\"execute\",\"result\":"
        "{\"cols\":[],\"rows\":[[{\"type\":\"integer\",\"value\":\"1\"}],]}}}]}",
    };
    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        assert_pipeline_same(bodies[i], strlen(bodies[i]), 1, 100, 4096, false);
        /* None of these is read fast, whatever jansson makes of it. */
        struct jsonw w;
        struct rows_counts n;
        size_t budget = 4096;
        jsonw_init(&w);
        if (rows_write_from_pipeline(&w, bodies[i], strlen(bodies[i]), 1, 100, &budget, &n))
            TEST_FAIL("read fast: %s", bodies[i]);
        jsonw_cleanup(&w);
    }
}

/* Every byte of a usual answer changed or dropped: never read differently from jansson. */
static void test_pipeline_mutations(void)
{
    char *body = pipeline_body(edge_result, true);
    size_t len = strlen(body);
    char *m = malloc(len + 1);
    ASSERT_NOT_NULL(m);
    const char subst[] = {'"', '\\', '}', ']', ',',    ':',    '0',    '9',   '-',
                          'e', '.',  'x', ' ', '\x01', '\x7f', '\xc3', '\xff'};
    for (size_t i = 0; i < len; i++) {
        for (size_t k = 0; k < sizeof(subst); k++) {
            memcpy(m, body, len);
            m[i] = subst[k];
            assert_pipeline_same(m, len, 2, 100, 1 << 20, false);
        }
        /* The byte dropped. */
        memcpy(m, body, i);
        memcpy(m + i, body + i + 1, len - i - 1);
        assert_pipeline_same(m, len - 1, 2, 100, 1 << 20, false);
    }
    free(m);
    free(body);
}

int main(void)
{
    RUN(test_cells_from_fixture);
    RUN(test_malformed);
    RUN(test_written_edges);
    RUN(test_written_empty_and_fixture);
    RUN(test_written_malformed);
    RUN(test_writer);
    RUN(test_value_as_jansson);
    RUN(test_pipeline_usual);
    RUN(test_pipeline_other);
    RUN(test_pipeline_mutations);
    TEST_DONE();
}
