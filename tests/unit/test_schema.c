/*
 * schema.c: the requests (bound names, quoted identifiers), the model built
 * from joined and per-table answers, the fallback plan, and the outputs:
 * internal names left out, names found as SQLite finds them, the size cap.
 * Answers are written here in the shape Turso gives (StmtResult rows of
 * Hrana values), as the local tursodb and the emulator answered them.
 */
#include <jansson.h>

#include "schema.h"
#include "test.h"

static json_t *parse(const char *text)
{
    json_error_t jerr;
    json_t *v = json_loads(text, 0, &jerr);
    if (!v)
        TEST_FAIL("bad test JSON: %s: %s", jerr.text, text);
    return v;
}

/* A StmtResult whose rows are given as plain JSON: strings become text, integers integer. */
static json_t *result(const char *rows_text)
{
    json_t *plain = parse(rows_text), *rows = json_array();
    size_t i, j;
    json_t *row, *v;
    json_array_foreach(plain, i, row)
    {
        json_t *out = json_array();
        json_array_foreach(row, j, v)
        {
            json_t *hv = NULL;
            char num[32];
            if (json_is_string(v)) {
                hv = json_pack("{s:s, s:O}", "type", "text", "value", v);
            } else if (json_is_integer(v)) {
                snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
                hv = json_pack("{s:s, s:s}", "type", "integer", "value", num);
            } else {
                hv = json_pack("{s:s}", "type", "null");
            }
            json_array_append_new(out, hv);
        }
        json_array_append_new(rows, out);
    }
    json_decref(plain);
    return json_pack("{s:[], s:o}", "cols", "rows", rows);
}

static const char *str(const json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

static void assert_json(const json_t *v, const char *text)
{
    json_t *want = parse(text);
    if (!json_equal(v, want)) {
        char *got = json_dumps(v, JSON_COMPACT);
        TEST_FAIL("got %s\nwant %s", got ? got : "(null)", text);
    }
    json_decref(want);
}

static const char objects_text[] =
    "[[\"index\",\"child_pid\",\"child\",\"CREATE INDEX child_pid ON child(pid, note)\"],"
    "[\"index\",\"sqlite_autoindex_parent_1\",\"parent\",null],"
    "[\"table\",\"_litestream_seq\",\"_litestream_seq\",\"CREATE TABLE _litestream_seq (id)\"],"
    "[\"table\",\"child\",\"child\",\"CREATE TABLE child (id INTEGER PRIMARY KEY, pid INTEGER NOT "
    "NULL REFERENCES parent(id) ON DELETE CASCADE, note TEXT)\"],"
    "[\"table\",\"libsql_wasm_func_table\",\"libsql_wasm_func_table\",\"CREATE TABLE x (a)\"],"
    "[\"table\",\"parent\",\"parent\",\"CREATE TABLE parent (id INTEGER PRIMARY KEY, name TEXT "
    "NOT NULL DEFAULT 'x' UNIQUE)\"],"
    "[\"table\",\"sqlite_sequence\",\"sqlite_sequence\",\"CREATE TABLE "
    "sqlite_sequence(name,seq)\"],"
    "[\"table\",\"we\\\"ird t\",\"we\\\"ird t\",\"CREATE TABLE \\\"we\\\"\\\"ird t\\\" (a)\"],"
    "[\"trigger\",\"tr\",\"child\",\"CREATE TRIGGER tr AFTER INSERT ON child BEGIN SELECT 1; "
    "END\"],"
    "[\"view\",\"v\",\"v\",\"CREATE VIEW v AS SELECT id, name FROM parent\"]]";

/* A model as the joined queries would fill it. */
static json_t *joined_model(void)
{
    json_t *m = schema_model_new();
    json_t *r = result(objects_text);
    ASSERT(schema_model_set_objects(m, r));
    json_decref(r);
    r = result("[[\"child\",0,\"id\",\"INTEGER\",0,null,1],[\"child\",1,\"pid\",\"INTEGER\",1,null,"
               "0],[\"child\",2,\"note\",\"TEXT\",0,null,0],[\"parent\",0,\"id\",\"INTEGER\",0,"
               "null,1],[\"parent\",1,\"name\",\"TEXT\",1,\"'x'\",0],[\"v\",0,\"id\",\"INTEGER\","
               "0,null,0],[\"v\",1,\"name\",\"TEXT\",0,null,0],[\"we\\\"ird t\",0,\"a\",\"\",0,"
               "null,0],[\"sqlite_sequence\",0,\"name\",\"\",0,null,0]]");
    ASSERT(schema_model_add(m, SCHEMA_COLUMNS, r, NULL));
    json_decref(r);
    r = result("[[\"child\",0,0,\"parent\",\"pid\",\"id\",\"NO ACTION\",\"CASCADE\",\"NONE\"]]");
    ASSERT(schema_model_add(m, SCHEMA_FOREIGN_KEYS, r, NULL));
    json_decref(r);
    r = result("[[\"child\",0,\"child_pid\",0,\"c\",0],[\"parent\",0,\"sqlite_autoindex_parent_1\","
               "1,\"u\",0]]");
    ASSERT(schema_model_add(m, SCHEMA_INDEX_LIST, r, NULL));
    json_decref(r);
    r = result("[[\"child_pid\",0,1,\"pid\"],[\"child_pid\",1,2,\"note\"],"
               "[\"sqlite_autoindex_parent_1\",0,1,\"name\"]]");
    ASSERT(schema_model_add(m, SCHEMA_INDEX_INFO, r, NULL));
    json_decref(r);
    return m;
}

static void test_internal_names(void)
{
    ASSERT(schema_is_internal("sqlite_sequence"));
    ASSERT(schema_is_internal("SQLITE_stat1"));
    ASSERT(schema_is_internal("sqlite_autoindex_t_1"));
    ASSERT(schema_is_internal("_litestream_seq"));
    ASSERT(schema_is_internal("libsql_wasm_func_table"));
    ASSERT(!schema_is_internal("sqlitex"));
    ASSERT(!schema_is_internal("my_sqlite_table"));
    ASSERT(!schema_is_internal("libsql"));
}

static void test_requests(void)
{
    json_t *r = schema_overview_requests();
    ASSERT_INT_EQ(json_array_size(r), 1 + SCHEMA_N_KINDS);
    for (size_t i = 0; i < json_array_size(r); i++) {
        const json_t *stmt = json_object_get(json_array_get(r, i), "stmt");
        ASSERT_STR_EQ(str(json_array_get(r, i), "type"), "execute");
        ASSERT(strncmp(str(stmt, "sql"), "SELECT ", 7) == 0);
        ASSERT_NULL(json_object_get(stmt, "args"));
    }
    ASSERT(strstr(str(json_object_get(json_array_get(r, SCHEMA_R_DETAIL), "stmt"), "sql"),
                  "pragma_table_info(m.name)"));
    json_decref(r);

    /* The name is bound as text where it can be, and quoted where it must be. */
    const char *name = "we\"ird t";
    r = schema_table_requests(name, strlen(name));
    ASSERT_INT_EQ(json_array_size(r), SCHEMA_R_COUNT + 1);
    const json_t *cols = json_object_get(json_array_get(r, SCHEMA_R_DETAIL), "stmt");
    ASSERT(strstr(str(cols, "sql"), "pragma_table_info(?)"));
    assert_json(json_object_get(cols, "args"), "[{\"type\":\"text\",\"value\":\"we\\\"ird t\"}]");
    ASSERT_STR_EQ(str(json_object_get(json_array_get(r, SCHEMA_R_COUNT), "stmt"), "sql"),
                  "SELECT count(*) FROM \"we\"\"ird t\"");
    json_decref(r);
    ASSERT_NULL(schema_table_requests("a\0b", 3));
}

static void test_find_and_names(void)
{
    json_t *m = joined_model();
    const char *type = NULL;
    ASSERT_STR_EQ(schema_model_find(m, "child", &type), "child");
    ASSERT_STR_EQ(type, "table");
    ASSERT_STR_EQ(schema_model_find(m, "CHILD", &type), "child");
    ASSERT_STR_EQ(schema_model_find(m, "V", &type), "v");
    ASSERT_STR_EQ(type, "view");
    ASSERT_STR_EQ(schema_model_find(m, "we\"ird t", &type), "we\"ird t");
    ASSERT_NULL(schema_model_find(m, "child_pid", &type)); /* an index is not a table */
    ASSERT_NULL(schema_model_find(m, "nope", &type));
    char text[256];
    schema_names_text(m, text, sizeof(text));
    ASSERT_STR_EQ(text, "Tables: \"child\", \"parent\", \"we\"ird t\". Views: \"v\".");
    schema_names_text(m, text, 20);
    ASSERT_INT_EQ(strlen(text), 19);
    json_decref(m);

    m = schema_model_new();
    schema_names_text(m, text, sizeof(text));
    ASSERT_STR_EQ(text, "The database has no tables or views.");
    json_decref(m);
}

static void test_overview(void)
{
    json_t *m = joined_model();
    char summary[256];
    json_t *o = schema_overview(m, 1 << 20, summary, sizeof(summary));
    ASSERT_STR_EQ(summary, "Schema: 3 tables, 1 view, 1 index, 1 trigger.");
    ASSERT(json_is_false(json_object_get(o, "truncated")));
    const json_t *tables = json_object_get(o, "tables");
    ASSERT_INT_EQ(json_array_size(tables), 3);
    const json_t *child = json_array_get(tables, 0);
    ASSERT_STR_EQ(str(child, "name"), "child");
    assert_json(json_object_get(child, "columns"),
                "[{\"name\":\"id\",\"type\":\"INTEGER\",\"not_null\":false,\"default\":null,"
                "\"primary_key\":1},{\"name\":\"pid\",\"type\":\"INTEGER\",\"not_null\":true,"
                "\"default\":null,\"primary_key\":0},{\"name\":\"note\",\"type\":\"TEXT\","
                "\"not_null\":false,\"default\":null,\"primary_key\":0}]");
    assert_json(json_object_get(child, "foreign_keys"),
                "[{\"columns\":[\"pid\"],\"references_table\":\"parent\",\"references_columns\":"
                "[\"id\"],\"on_update\":\"NO ACTION\",\"on_delete\":\"CASCADE\",\"match\":"
                "\"NONE\"}]");
    ASSERT(strstr(str(child, "sql"), "REFERENCES parent(id)"));
    ASSERT_STR_EQ(str(json_array_get(tables, 2), "name"), "we\"ird t");
    assert_json(json_object_get(o, "indexes"),
                "[{\"name\":\"child_pid\",\"table\":\"child\",\"columns\":[\"pid\",\"note\"],"
                "\"unique\":false,\"origin\":\"create_index\",\"partial\":false,\"sql\":\"CREATE "
                "INDEX child_pid ON child(pid, note)\"}]");
    assert_json(json_object_get(o, "triggers"),
                "[{\"name\":\"tr\",\"table\":\"child\",\"sql\":\"CREATE TRIGGER tr AFTER INSERT "
                "ON child BEGIN SELECT 1; END\"}]");
    const json_t *v = json_array_get(json_object_get(o, "views"), 0);
    ASSERT_STR_EQ(str(v, "name"), "v");
    ASSERT_INT_EQ(json_array_size(json_object_get(v, "columns")), 2);
    ASSERT_NULL(json_object_get(v, "foreign_keys"));
    /* Nothing internal anywhere. */
    char *text = json_dumps(o, 0);
    ASSERT_NULL(strstr(text, "sqlite_"));
    ASSERT_NULL(strstr(text, "libsql_"));
    ASSERT_NULL(strstr(text, "_litestream_"));
    free(text);
    json_decref(o);

    /* A small cap: later objects by name only. */
    o = schema_overview(m, 300, summary, sizeof(summary));
    ASSERT(json_is_true(json_object_get(o, "truncated")));
    ASSERT(strstr(summary, "by name only"));
    ASSERT_INT_EQ(json_array_size(json_object_get(o, "tables")), 3);
    const json_t *last = json_array_get(json_object_get(o, "tables"), 2);
    ASSERT_INT_EQ(json_object_size(last), 1);
    ASSERT_STR_EQ(str(last, "name"), "we\"ird t");
    json_decref(o);
    json_decref(m);
}

static void test_table(void)
{
    json_t *m = joined_model();
    char summary[256];
    json_t *t =
        schema_table(m, "parent", "table", json_integer(42), NULL, summary, sizeof(summary));
    ASSERT_STR_EQ(summary,
                  "Table \"parent\": 2 columns, 1 index, 0 foreign keys, 0 triggers, 42 rows.");
    const json_t *p = json_object_get(t, "table");
    ASSERT_STR_EQ(str(p, "type"), "table");
    ASSERT_INT_EQ(json_integer_value(json_object_get(p, "row_count")), 42);
    /* The automatic index of a UNIQUE constraint shows here, with its origin. */
    assert_json(json_object_get(p, "indexes"),
                "[{\"name\":\"sqlite_autoindex_parent_1\",\"table\":\"parent\",\"columns\":"
                "[\"name\"],\"unique\":true,\"origin\":\"unique_constraint\",\"partial\":false,"
                "\"sql\":null}]");
    json_decref(t);

    t = schema_table(m, "child", "table", NULL, "no such table", summary, sizeof(summary));
    p = json_object_get(t, "table");
    ASSERT_STR_EQ(str(p, "row_count_error"), "no such table");
    ASSERT_NULL(json_object_get(p, "row_count"));
    assert_json(json_object_get(p, "triggers"),
                "[{\"name\":\"tr\",\"sql\":\"CREATE TRIGGER tr AFTER INSERT ON child BEGIN "
                "SELECT 1; END\"}]");
    ASSERT(strstr(summary, "1 trigger, row count unavailable."));
    json_decref(t);

    t = schema_table(m, "v", "view", parse("{\"type\":\"integer\",\"value\":\"9007199254740993\"}"),
                     NULL, summary, sizeof(summary));
    ASSERT(strstr(summary, "View \"v\": 2 columns, 0 indexes, 0 foreign keys, 0 triggers, "
                           "9007199254740993 rows."));
    ASSERT_NULL(json_object_get(json_object_get(t, "table"), "foreign_keys"));
    json_decref(t);
    json_decref(m);
}

static void test_fallback(void)
{
    json_t *m = joined_model();
    schema_model_clear_details(m);
    json_t *plan = NULL;
    json_t *reqs = schema_fallback_requests(m, NULL, 100, &plan);
    ASSERT_INT_EQ(json_array_size(reqs), json_array_size(plan));
    /* 3 tables x 3 + 1 view + 1 index (its table is not internal). */
    ASSERT_INT_EQ(json_array_size(reqs), 11);
    bool has_weird = false;
    for (size_t i = 0; i < json_array_size(reqs); i++) {
        const char *sql = str(json_object_get(json_array_get(reqs, i), "stmt"), "sql");
        ASSERT(strncmp(sql, "PRAGMA ", 7) == 0);
        ASSERT_NULL(strstr(sql, "sqlite_"));
        if (strcmp(sql, "PRAGMA table_info(\"we\"\"ird t\")") == 0)
            has_weird = true;
    }
    ASSERT(has_weird);
    assert_json(json_array_get(plan, 0), "[\"columns\",\"child\"]");

    /* Answers go where the plan says; a table with no foreign keys still counts as asked. */
    json_t *cols = result("[[0,\"a\",\"\",0,null,0]]");
    json_t *none = result("[]");
    for (size_t i = 0; i < json_array_size(plan); i++) {
        const json_t *e = json_array_get(plan, i);
        bool is_cols = strcmp(json_string_value(json_array_get(e, 0)), "columns") == 0;
        ASSERT(schema_model_add_planned(m, e, is_cols ? cols : none));
    }
    char summary[256];
    json_t *o = schema_overview(m, 1 << 20, summary, sizeof(summary));
    ASSERT(json_is_false(json_object_get(o, "truncated")));
    const json_t *w = json_array_get(json_object_get(o, "tables"), 2);
    assert_json(json_object_get(w, "columns"),
                "[{\"name\":\"a\",\"type\":\"\",\"not_null\":false,\"default\":null,"
                "\"primary_key\":0}]");
    assert_json(json_object_get(w, "foreign_keys"), "[]");
    json_decref(o);
    json_decref(cols);
    json_decref(none);
    json_decref(reqs);
    json_decref(plan);

    /* One table only; and a cap on how many tables are asked about. */
    reqs = schema_fallback_requests(m, "parent", 100, &plan);
    ASSERT_INT_EQ(json_array_size(reqs), 4); /* columns, foreign keys, index list, its autoindex */
    json_decref(reqs);
    json_decref(plan);
    schema_model_clear_details(m);
    reqs = schema_fallback_requests(m, NULL, 1, &plan);
    ASSERT_INT_EQ(json_array_size(reqs), 4); /* child's three, and child_pid */
    json_decref(reqs);
    json_decref(plan);
    o = schema_overview(m, 1 << 20, summary, sizeof(summary));
    ASSERT(json_is_true(json_object_get(o, "truncated")));
    json_decref(o);
    json_decref(m);
}

static void test_malformed(void)
{
    json_t *m = schema_model_new();
    json_t *r = result("[[\"table\",\"t\"]]");
    ASSERT(!schema_model_set_objects(m, r));
    json_decref(r);
    r = parse("{\"cols\":[]}");
    ASSERT(!schema_model_set_objects(m, r));
    ASSERT(!schema_model_add(m, SCHEMA_COLUMNS, r, "t"));
    json_decref(r);
    /* The owner column must be text; rows must have the kind's width. */
    r = result("[[1,0,\"a\",\"\",0,null,0]]");
    ASSERT(!schema_model_add(m, SCHEMA_COLUMNS, r, NULL));
    json_decref(r);
    r = result("[[\"t\",0,\"a\"]]");
    ASSERT(!schema_model_add(m, SCHEMA_COLUMNS, r, NULL));
    json_decref(r);
    r = parse("[\"bogus\",\"t\"]");
    json_t *sr = result("[]");
    ASSERT(!schema_model_add_planned(m, r, sr));
    json_decref(r);
    json_decref(sr);
    json_decref(m);
}

int main(void)
{
    RUN(test_internal_names);
    RUN(test_requests);
    RUN(test_find_and_names);
    RUN(test_overview);
    RUN(test_table);
    RUN(test_fallback);
    RUN(test_malformed);
    TEST_DONE();
}
