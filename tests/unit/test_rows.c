/*
 * rows.c: a recorded answer of the local tursodb turned into columns and
 * cells, the row cap, the shared byte budget, and malformed results.
 */
#include <jansson.h>

#include "rows.h"
#include "test.h"

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

int main(void)
{
    RUN(test_cells_from_fixture);
    RUN(test_malformed);
    TEST_DONE();
}
