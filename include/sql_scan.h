/*
 * A small lexical scan of SQL text: how many statements it holds, the
 * first keyword, and whether it can be shown to only read. It skips string
 * literals, quoted identifiers and comments the way SQLite's tokenizer
 * does; it does not parse. Pure functions, any thread.
 */
#ifndef TM_SQL_SCAN_H
#define TM_SQL_SCAN_H

#include <stdbool.h>
#include <stddef.h>

struct sql_scan {
    size_t n_statements;  /* statements with at least one token */
    char first_word[16];  /* first keyword of the first statement, upper case; "" if none */
    bool is_read_only;    /* one statement that provably only reads (conservative) */
    bool is_unterminated; /* a string, identifier or block comment never closes */
};

void sql_scan(const char *sql, size_t len, struct sql_scan *out);

/*
 * `name` (len bytes) as a quoted SQL identifier: in double quotes, each "
 * doubled, so any name (spaces, quotes, keywords) stays one identifier.
 * Returns a NUL-terminated string the caller frees; NULL on OOM or when the
 * name holds a NUL byte (no SQL identifier can).
 */
char *sql_quote_ident(const char *name, size_t len);

#endif
