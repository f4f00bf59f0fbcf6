/*
 * A small JSON writer: appends JSON text to a growing buffer, for results
 * too large to build as jansson values first. Strings follow RFC 8259 as
 * jansson dumps them (control characters as \u00XX, UTF-8 kept or, with
 * `is_ascii`, written as \uXXXX escapes); reals as jansson writes them.
 * A failed allocation is sticky: later calls do nothing and jsonw_take
 * returns NULL. A writer belongs to one thread at a time.
 */
#ifndef TM_JSONW_H
#define TM_JSONW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "buf.h"

typedef struct json_t json_t;

/* Embedded by the caller; jsonw_init before use, jsonw_cleanup after. */
struct jsonw {
    struct buf out; /* the text so far; out.len is what a later jsonw_truncate takes */
    bool is_failed; /* an allocation failed or a string was not UTF-8 */
};

void jsonw_init(struct jsonw *w);

/* Frees the buffer (unless taken); accepts a writer that never wrote. */
void jsonw_cleanup(struct jsonw *w);

/* Appends `len` bytes of ready JSON text. */
void jsonw_raw(struct jsonw *w, const char *s, size_t len);

/* Appends a NUL-terminated piece of ready JSON text (inline: strlen of a
 * literal is then known when compiling). */
static inline void jsonw_lit(struct jsonw *w, const char *s)
{
    jsonw_raw(w, s, strlen(s));
}

/*
 * Which bytes end a run of string bytes that need no escaping:
 * JSONW_STOP_ALWAYS for controls, '"' and '\\'; JSONW_STOP_ASCII for every
 * byte of a multi-byte character (escaped in ASCII mode). A table, since
 * writers and readers of large results look up every byte.
 */
enum { JSONW_STOP_ALWAYS = 1, JSONW_STOP_ASCII = 2 };
extern const unsigned char jsonw_stop_class[256];

/* Appends `s` (`len` bytes of UTF-8, NULs allowed) as a JSON string. */
void jsonw_string(struct jsonw *w, const char *s, size_t len, bool is_ascii);

/* Appends an integer. */
void jsonw_int(struct jsonw *w, int64_t n);

/*
 * Appends a real with the fewest significant digits (15 to 17) that read back
 * as the same double, in the form jansson gives "%.17g" text (".0" after a
 * bare integer; an exponent without '+' or leading zeros): 0.1, not
 * 0.10000000000000001. null if not finite.
 */
void jsonw_real(struct jsonw *w, double d);

/*
 * Appends the real that `text` (a JSON number, `len` bytes, not zero) reads
 * as, exactly as jsonw_real would write it, without converting it: for the
 * texts Turso sends, which already have the fewest digits. false (nothing
 * written) when the text has more than 15 significant digits or is near a
 * double's limits: then convert it and call jsonw_real.
 */
bool jsonw_real_text(struct jsonw *w, const char *text, size_t len);

/*
 * Appends a jansson value as json_dumps(v, JSON_COMPACT) writes it (with
 * JSON_ENSURE_ASCII when `is_ascii`), but for reals, written as jsonw_real
 * does; a fraction of json_dumps' cost, which builds its text a few bytes
 * per callback.
 */
void jsonw_value(struct jsonw *w, const json_t *v, bool is_ascii);

/* jsonw_value into a new text (caller frees with free()), its length in *len
 * unless NULL; NULL when out of memory. What json_dumps is elsewhere. */
char *jsonw_dumps(const json_t *v, bool is_ascii, size_t *len);

/* Drops everything after the first `len` bytes (a length read earlier from w->len). */
void jsonw_truncate(struct jsonw *w, size_t len);

/*
 * The length of the UTF-8 sequence at text[0..left) (left > 0), with its
 * code point in *cp; 0 if it is not valid UTF-8 (overlong, a surrogate,
 * beyond U+10FFFF, cut short): the characters jansson decodes. Inline: the
 * JSON reader runs it for every multi-byte character of every string.
 */
static inline size_t jsonw_utf8_decode(const char *text, size_t left, uint32_t *cp)
{
    const unsigned char *s = (const unsigned char *)text;
    size_t n;
    uint32_t c = s[0], min;
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    if ((c & 0xe0) == 0xc0) {
        n = 2, c &= 0x1f, min = 0x80;
    } else if ((c & 0xf0) == 0xe0) {
        n = 3, c &= 0x0f, min = 0x800;
    } else if ((c & 0xf8) == 0xf0) {
        n = 4, c &= 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if (n > left)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        c = (c << 6) | (s[i] & 0x3f);
    }
    if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
        return 0;
    *cp = c;
    return n;
}

/*
 * Makes the NUL-terminated `s` valid UTF-8 in place, each byte of a broken
 * sequence becoming '?'. For messages that quote text from elsewhere cut
 * to a length ("%.120s"), perhaps inside a character: jansson and
 * jsonw_string refuse such text, and the message would be lost.
 */
void jsonw_utf8_mend(char *s);

/*
 * The pieces of reading a JSON string that the reader (jsonr.c) and the
 * scan of Hrana answers (tools/rows.c) share, so that both decode escapes
 * alike. Inline: both run them for every escape of large results.
 */

/* The value of the hex digit `c` (either case); -1 if it is not one. */
static inline int jsonw_hex_digit(unsigned c)
{
    if (c - '0' < 10)
        return (int)(c - '0');
    c |= 0x20;
    return c - 'a' < 6 ? (int)(c - 'a' + 10) : -1;
}

/*
 * The character a one-letter escape \c stands for (\" \\ \/ \b \f \n \r \t);
 * -1 for any other `c`, 'u' among them.
 */
static inline int jsonw_unescape(unsigned c)
{
    switch (c) {
    case '"':
    case '\\':
    case '/':
        return (int)c;
    case 'b':
        return '\b';
    case 'f':
        return '\f';
    case 'n':
        return '\n';
    case 'r':
        return '\r';
    case 't':
        return '\t';
    default:
        return -1;
    }
}

/* The code point of a surrogate pair: `high` in D800-DBFF, `low` in DC00-DFFF. */
static inline uint32_t jsonw_surrogate_pair(uint32_t high, uint32_t low)
{
    return 0x10000 + ((high - 0xd800) << 10) + (low - 0xdc00);
}

/* Writes code point `cp` (up to U+10FFFF) as UTF-8 into out; its length, 1 to 4. */
static inline size_t jsonw_utf8_encode(uint32_t cp, char out[4])
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xc0 | cp >> 6);
        out[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xe0 | cp >> 12);
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        out[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    out[0] = (char)(0xf0 | cp >> 18);
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    out[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/*
 * The text written (caller frees with free()) and its length in *len;
 * the writer is left empty. NULL if anything failed.
 */
char *jsonw_take(struct jsonw *w, size_t *len);

#endif
