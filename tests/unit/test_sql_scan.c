/* Statement counting and the conservative read-only check of sql_scan.c. */
#include "sql_scan.h"
#include "test.h"

static struct sql_scan scan(const char *sql)
{
    struct sql_scan s;
    sql_scan(sql, strlen(sql), &s);
    return s;
}

static void test_counts_statements(void)
{
    ASSERT_INT_EQ(scan("").n_statements, 0);
    ASSERT_INT_EQ(scan("  -- only a comment\n /* and another */ ;;").n_statements, 0);
    ASSERT_INT_EQ(scan("SELECT 1").n_statements, 1);
    ASSERT_INT_EQ(scan("SELECT 1;").n_statements, 1);
    ASSERT_INT_EQ(scan("SELECT 1; -- trailing comment").n_statements, 1);
    ASSERT_INT_EQ(scan("SELECT 1; SELECT 2").n_statements, 2);
    ASSERT_INT_EQ(scan("SELECT 'a;b'").n_statements, 1);
    ASSERT_INT_EQ(scan("SELECT \"x;y\" FROM [t;u] WHERE `v;w` = 'it''s;'").n_statements, 1);
    ASSERT_INT_EQ(scan("SELECT 1 /* ; */").n_statements, 1);
    ASSERT_INT_EQ(scan("SELECT 1 -- ; DROP TABLE t").n_statements, 1);
    ASSERT_INT_EQ(scan("INSERT INTO t VALUES (1);\nDROP TABLE t;").n_statements, 2);
}

static void test_unterminated(void)
{
    ASSERT(scan("SELECT 'abc").is_unterminated);
    ASSERT(scan("SELECT \"abc").is_unterminated);
    ASSERT(scan("SELECT [abc").is_unterminated);
    ASSERT(scan("SELECT 1 /* abc").is_unterminated);
    ASSERT(!scan("SELECT 1 -- abc").is_unterminated);
    ASSERT(!scan("SELECT 1 -- abc").is_unterminated);
}

static void test_first_word(void)
{
    ASSERT_STR_EQ(scan("  /* c */ select 1").first_word, "SELECT");
    ASSERT_STR_EQ(scan("-- c\ninsert into t values (1)").first_word, "INSERT");
    ASSERT_STR_EQ(scan("").first_word, "");
}

static void test_read_only(void)
{
    ASSERT(scan("SELECT * FROM t WHERE a = ?").is_read_only);
    ASSERT(scan("select count(*) from t").is_read_only);
    ASSERT(scan("WITH x AS (SELECT 1) SELECT * FROM x").is_read_only);
    ASSERT(scan("VALUES (1), (2)").is_read_only);
    ASSERT(scan("SELECT 'DELETE FROM t'").is_read_only);
    ASSERT(scan("SELECT \"update\" FROM t").is_read_only);
    ASSERT(scan("SELECT * FROM pragma_table_info('t')").is_read_only);

    ASSERT(!scan("INSERT INTO t VALUES (1)").is_read_only);
    ASSERT(!scan("UPDATE t SET a = 1").is_read_only);
    ASSERT(!scan("DELETE FROM t").is_read_only);
    ASSERT(!scan("REPLACE INTO t VALUES (1)").is_read_only);
    ASSERT(!scan("CREATE TABLE t (a)").is_read_only);
    ASSERT(!scan("DROP TABLE t").is_read_only);
    ASSERT(!scan("ALTER TABLE t ADD b").is_read_only);
    ASSERT(!scan("PRAGMA foreign_keys = OFF").is_read_only);
    ASSERT(!scan("ATTACH 'x.db' AS x").is_read_only);
    ASSERT(!scan("VACUUM").is_read_only);
    ASSERT(!scan("BEGIN").is_read_only);
    ASSERT(!scan("WITH x AS (SELECT 1) DELETE FROM t WHERE a IN x").is_read_only);
    ASSERT(!scan("WITH x AS (SELECT 1) INSERT INTO t SELECT * FROM x").is_read_only);
    ASSERT(!scan("SELECT 1; DELETE FROM t").is_read_only);
    ASSERT(!scan("SELECT 1 /* unterminated").is_read_only);
    ASSERT(!scan("").is_read_only);
    /* Conservative: a bare column named like a write keyword is refused too. */
    ASSERT(!scan("SELECT update FROM t").is_read_only);
}

static void test_triggers(void)
{
    /* A trigger body's ';' stays inside, as sqlite3_complete() sees it. */
    const char *trig = "CREATE TRIGGER tr AFTER INSERT ON child BEGIN UPDATE parent SET n = 1; "
                       "DELETE FROM log; END";
    ASSERT_INT_EQ(scan(trig).n_statements, 1);
    ASSERT_STR_EQ(scan(trig).first_word, "CREATE");
    ASSERT(!scan(trig).is_read_only);
    ASSERT_INT_EQ(scan("create temp trigger t after delete on a begin select 1; end;").n_statements,
                  1);
    ASSERT_INT_EQ(scan("CREATE TEMPORARY TRIGGER t BEFORE UPDATE ON a BEGIN SELECT ';'; END; "
                       "SELECT 2")
                      .n_statements,
                  2);
    ASSERT_INT_EQ(scan("CREATE TRIGGER t AFTER INSERT ON a BEGIN SELECT 1; END; CREATE TRIGGER u "
                       "AFTER INSERT ON a BEGIN SELECT 2; SELECT 3; END")
                      .n_statements,
                  2);
    ASSERT_INT_EQ(
        scan("EXPLAIN CREATE TRIGGER t AFTER INSERT ON a BEGIN SELECT 1; END").n_statements, 1);
    /* Other statements are not triggers, even with TRIGGER or END in them. */
    ASSERT_INT_EQ(scan("CREATE TABLE trigger_log (x); SELECT 1").n_statements, 2);
    ASSERT_INT_EQ(scan("DROP TRIGGER t; SELECT 1").n_statements, 2);
    ASSERT_INT_EQ(scan("SELECT CASE WHEN 1 THEN 2 END; SELECT 3").n_statements, 2);
    ASSERT_INT_EQ(scan("CREATE \"TRIGGER\" (x); SELECT 1").n_statements, 2);
    ASSERT_INT_EQ(scan("CREATE TABLE averyveryverylongname (x); SELECT 1").n_statements, 2);
}

static void check_quote(const char *name, size_t len, const char *want)
{
    char *q = sql_quote_ident(name, len);
    ASSERT_STR_EQ(q, want);
    free(q);
}

static void test_quote_ident(void)
{
    check_quote("notes", 5, "\"notes\"");
    check_quote("", 0, "\"\"");
    check_quote("my table", 8, "\"my table\"");
    check_quote("we\"ird t", 8, "\"we\"\"ird t\"");
    check_quote("\"\"", 2, "\"\"\"\"\"\"");
    check_quote("it's", 4, "\"it's\"");
    check_quote("order", 5, "\"order\"");
    check_quote("h\xc3\xa9llo", 6, "\"h\xc3\xa9llo\"");
    /* Only the given length counts; a NUL inside is refused. */
    check_quote("abcdef", 3, "\"abc\"");
    ASSERT_NULL(sql_quote_ident("a\0b", 3));
    /* The quoted name scans as one token: no statement break, nothing unterminated. */
    const char *evil = "x\"; DROP TABLE t; --";
    char *q = sql_quote_ident(evil, strlen(evil));
    char sql[128];
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s", q);
    free(q);
    struct sql_scan s = scan(sql);
    ASSERT_INT_EQ(s.n_statements, 1);
    ASSERT(!s.is_unterminated);
    ASSERT(s.is_read_only);
}

int main(void)
{
    RUN(test_counts_statements);
    RUN(test_unterminated);
    RUN(test_first_word);
    RUN(test_read_only);
    RUN(test_triggers);
    RUN(test_quote_ident);
    TEST_DONE();
}
