/*
 * A JSON reader: the jansson values json_loadb builds, and its errors, at a
 * fraction of the cost. jansson's lexer reads through a stream a byte at a
 * time, checking UTF-8 per byte and saving every byte of every token; this
 * one reads strings in runs straight from the buffer, and builds the values
 * with jansson's constructors that skip checks already made here.
 *
 * It accepts exactly what json_loadb (jansson 2.14) accepts with the same
 * flags, builds values json_equal to its, and reports the same error text,
 * line, column and position, with one exception: a NUL byte right after a
 * number or true/false/null, which json_loadb skips (its lexer loses the
 * byte when it puts back the character after the token), is an error here
 * like any other stray byte. An error quotes at most 20 bytes of the input
 * (the token it is about, as jansson does), never a NUL or a cut character.
 */
#ifndef TM_JSONR_H
#define TM_JSONR_H

#include <jansson.h>
#include <stddef.h>

/*
 * json_loadb: the value in `buf` (`len` bytes, not NUL-terminated), a new
 * reference, or NULL with *error filled (unless error is NULL). `flags`:
 * JSON_REJECT_DUPLICATES, JSON_ALLOW_NUL and JSON_DECODE_ANY, or 0; any
 * other flag is refused with an error (json_error_invalid_argument).
 */
json_t *jsonr_loadb(const char *buf, size_t len, size_t flags, json_error_t *error);

#endif
