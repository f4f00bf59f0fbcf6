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

int main(void)
{
    RUN(test_counts_statements);
    RUN(test_unterminated);
    RUN(test_first_word);
    RUN(test_read_only);
    TEST_DONE();
}
