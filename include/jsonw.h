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

#include "buf.h"

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

/* Appends a NUL-terminated piece of ready JSON text. */
void jsonw_lit(struct jsonw *w, const char *s);

/* Appends `s` (`len` bytes of UTF-8, NULs allowed) as a JSON string. */
void jsonw_string(struct jsonw *w, const char *s, size_t len, bool is_ascii);

/* Appends an integer. */
void jsonw_int(struct jsonw *w, int64_t n);

/* Appends a real as jansson's json_dumps does ("%.17g", ".0" added); null if not finite. */
void jsonw_real(struct jsonw *w, double d);

/* Drops everything after the first `len` bytes (a length read earlier from w->len). */
void jsonw_truncate(struct jsonw *w, size_t len);

/*
 * The length of the UTF-8 sequence at text[0..left) (left > 0), with its
 * code point in *cp; 0 if it is not valid UTF-8 (overlong, a surrogate,
 * beyond U+10FFFF, cut short).
 */
size_t jsonw_utf8_decode(const char *text, size_t left, uint32_t *cp);

/*
 * The text written (caller frees with free()) and its length in *len;
 * the writer is left empty. NULL if anything failed.
 */
char *jsonw_take(struct jsonw *w, size_t *len);

#endif
