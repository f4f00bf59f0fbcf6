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
#include <stdint.h>
#include <stdlib.h>
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
    /* The first letter rules out most keywords without a call. */
    for (size_t i = 0; i < n; i++)
        if (w[0] == list[i][0] && strcmp(w, list[i]) == 0)
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

/* Where a statement stands on the way to a trigger body. */
enum trig {
    TRIG_START,  /* no word yet (or only EXPLAIN [QUERY PLAN]) */
    TRIG_CREATE, /* CREATE [TEMP | TEMPORARY] */
    TRIG_BODY,   /* CREATE ... TRIGGER: ';' ends the statement only after END */
    TRIG_NONE,   /* any other statement */
};

static enum trig trigger_step(enum trig t, const char *word)
{
    switch (t) {
    case TRIG_START:
        if (strcmp(word, "CREATE") == 0)
            return TRIG_CREATE;
        if (strcmp(word, "EXPLAIN") == 0 || strcmp(word, "QUERY") == 0 || strcmp(word, "PLAN") == 0)
            return TRIG_START;
        return TRIG_NONE;
    case TRIG_CREATE:
        if (strcmp(word, "TEMP") == 0 || strcmp(word, "TEMPORARY") == 0)
            return TRIG_CREATE;
        return strcmp(word, "TRIGGER") == 0 ? TRIG_BODY : TRIG_NONE;
    default:
        return t;
    }
}

void sql_scan(const char *sql, size_t len, struct sql_scan *out)
{
    memset(out, 0, sizeof(*out));
    bool has_write_word = false, first_is_read = false;
    bool in_statement = false; /* a token was seen since the last ';' */
    /*
     * CREATE TRIGGER bodies hold ';' of their own: as in SQLite's
     * sqlite3_complete(), a ';' ends such a statement only right after END.
     */
    enum trig trig = TRIG_START;
    bool is_after_end = false; /* the last token was the word END */
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
        } else if (c == ';' && trig == TRIG_BODY && !is_after_end) {
            i++; /* inside a trigger body */
        } else if (c == ';') {
            in_statement = false;
            trig = TRIG_START;
            is_after_end = false;
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
                is_after_end = false;
                if (trig != TRIG_BODY)
                    trig = TRIG_NONE;
            } else if (is_word_start(c)) {
                size_t start = i;
                while (i < len && is_word_char((unsigned char)sql[i]))
                    i++;
                char word[16];
                size_t wlen = i - start;
                if (wlen >= sizeof(word)) {
                    /* Longer than any keyword. */
                    is_after_end = false;
                    if (trig != TRIG_BODY)
                        trig = TRIG_NONE;
                    continue;
                }
                for (size_t k = 0; k < wlen; k++)
                    word[k] = (char)toupper((unsigned char)sql[start + k]);
                word[wlen] = '\0';
                trig = trigger_step(trig, word);
                is_after_end = strcmp(word, "END") == 0;
                if (out->n_statements == 1 && out->first_word[0] == '\0') {
                    memcpy(out->first_word, word, wlen + 1);
                    first_is_read =
                        word_in(word, read_starts, sizeof(read_starts) / sizeof(read_starts[0]));
                }
                if (word_in(word, write_words, sizeof(write_words) / sizeof(write_words[0])))
                    has_write_word = true;
            } else {
                i++;
                is_after_end = false;
                if (trig != TRIG_BODY)
                    trig = TRIG_NONE;
            }
        }
    }
    out->is_read_only =
        !out->is_unterminated && out->n_statements == 1 && first_is_read && !has_write_word;
}

char *sql_quote_ident(const char *name, size_t len)
{
    size_t n_quotes = 0;
    for (size_t i = 0; i < len; i++) {
        if (name[i] == '\0')
            return NULL;
        if (name[i] == '"')
            n_quotes++;
    }
    /* Checked: a name near SIZE_MAX bytes cannot be in memory twice anyway. */
    if (len > (SIZE_MAX - 3) / 2)
        return NULL;
    char *out = malloc(len + n_quotes + 3);
    if (!out)
        return NULL;
    size_t o = 0;
    out[o++] = '"';
    for (size_t i = 0; i < len; i++) {
        out[o++] = name[i];
        if (name[i] == '"')
            out[o++] = '"';
    }
    out[o++] = '"';
    out[o] = '\0';
    return out;
}
