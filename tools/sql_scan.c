/*
 * The SQL scanner behind statement counting and the read-only check.
 * The local Turso server silently runs only the first of several
 * statements, and a read-only URL without a read-only token must refuse
 * writes itself, so both questions are answered here, before any call.
 * The read-only answer errs on the side of "no": any write-capable keyword
 * outside quotes makes it false, even where it is only a column name.
 */
#include "sql_scan.h"

#include <ctype.h>
#include <string.h>

/* Keywords that can start or be part of a statement that changes something. */
static const char *const write_words[] = {
    "INSERT", "UPDATE", "DELETE",   "REPLACE",   "CREATE",  "DROP",    "ALTER",
    "ATTACH", "DETACH", "PRAGMA",   "VACUUM",    "REINDEX", "ANALYZE", "BEGIN",
    "COMMIT", "END",    "ROLLBACK", "SAVEPOINT", "RELEASE", "UPSERT",
};

/* Statements that may only read, when no write word follows. */
static const char *const read_starts[] = {"SELECT", "VALUES", "WITH", "EXPLAIN"};

static bool word_in(const char *w, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(w, list[i]) == 0)
            return true;
    return false;
}

static bool is_word_start(unsigned char c)
{
    return isalpha(c) || c == '_' || c >= 0x80;
}

static bool is_word_char(unsigned char c)
{
    return isalnum(c) || c == '_' || c == '$' || c >= 0x80;
}

void sql_scan(const char *sql, size_t len, struct sql_scan *out)
{
    memset(out, 0, sizeof(*out));
    bool has_write_word = false, first_is_read = false;
    bool in_statement = false; /* a token was seen since the last ';' */
    size_t i = 0;
    while (i < len) {
        unsigned char c = (unsigned char)sql[i];
        if (isspace(c)) {
            i++;
        } else if (c == '-' && i + 1 < len && sql[i + 1] == '-') {
            while (i < len && sql[i] != '\n')
                i++;
        } else if (c == '/' && i + 1 < len && sql[i + 1] == '*') {
            const char *end = NULL;
            for (size_t j = i + 2; j + 1 < len; j++)
                if (sql[j] == '*' && sql[j + 1] == '/') {
                    end = sql + j;
                    break;
                }
            if (!end) {
                out->is_unterminated = true;
                break;
            }
            i = (size_t)(end - sql) + 2;
        } else if (c == ';') {
            in_statement = false;
            i++;
        } else {
            if (!in_statement) {
                in_statement = true;
                out->n_statements++;
            }
            if (c == '\'' || c == '"' || c == '`' || c == '[') {
                /* Quoted text: a doubled quote stays inside, as in SQLite. */
                char close = c == '[' ? ']' : (char)c;
                size_t j = i + 1;
                bool closed = false;
                while (j < len) {
                    if (sql[j] == close) {
                        if (close != ']' && j + 1 < len && sql[j + 1] == close) {
                            j += 2;
                            continue;
                        }
                        closed = true;
                        break;
                    }
                    j++;
                }
                if (!closed) {
                    out->is_unterminated = true;
                    break;
                }
                i = j + 1;
            } else if (is_word_start(c)) {
                size_t start = i;
                while (i < len && is_word_char((unsigned char)sql[i]))
                    i++;
                char word[16];
                size_t wlen = i - start;
                if (wlen >= sizeof(word))
                    continue; /* longer than any keyword */
                for (size_t k = 0; k < wlen; k++)
                    word[k] = (char)toupper((unsigned char)sql[start + k]);
                word[wlen] = '\0';
                if (out->n_statements == 1 && out->first_word[0] == '\0') {
                    memcpy(out->first_word, word, wlen + 1);
                    first_is_read =
                        word_in(word, read_starts, sizeof(read_starts) / sizeof(read_starts[0]));
                }
                if (word_in(word, write_words, sizeof(write_words) / sizeof(write_words[0])))
                    has_write_word = true;
            } else {
                i++;
            }
        }
    }
    out->is_read_only =
        !out->is_unterminated && out->n_statements == 1 && first_is_read && !has_write_word;
}
