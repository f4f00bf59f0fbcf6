/*
 * The JSON reader behind jsonr.h. It is laid out as jansson's load.c is (a
 * lexer making tokens, a parser asking for them in the same order, the same
 * checks at the same points), so that it finds the errors jansson finds, in
 * the order jansson finds them, at the same place; what differs is how the
 * tokens are read, and a stack of open containers instead of recursion.
 * Any thread; no shared state.
 */
#include "jsonr.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "jsonw.h"

/* Tokens; the structural characters ({ } [ ] : ,) stand for themselves. */
enum {
    TOKEN_EOF = 0,
    TOKEN_INVALID = 256,
    TOKEN_STRING,
    TOKEN_INTEGER,
    TOKEN_REAL,
    TOKEN_TRUE,
    TOKEN_FALSE,
    TOKEN_NULL,
};

/* jansson quotes the token an error is about only when it is this short. */
#define CONTEXT_MAX 20

/* The flags that mean the same here as in json_loadb. */
#define SUPPORTED_FLAGS (JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL | JSON_DECODE_ANY)

/* An open object or array. */
struct frame {
    json_t *container; /* owned until it is complete and added to its parent */
    bool is_object;
    const char *key; /* an object's member being read: into the input, or key_copy */
    size_t key_len;
    char *key_copy; /* the key when it had escapes (decoded elsewhere), owned */
};

/* Frames held in the reader before any are allocated: deeper nesting is rare. */
#define INLINE_FRAMES 32

struct reader {
    const unsigned char *start, *end; /* the text */
    const unsigned char *p;           /* the next byte to read */
    const unsigned char *tok;         /* where the current token began */
    size_t flags;
    json_error_t *error; /* NULL: errors are not described */
    bool is_failed;
    int token;
    /* The current token's value. */
    const char *str; /* TOKEN_STRING: into the input, or decoded.data */
    size_t str_len;
    bool str_has_nul;
    bool str_is_decoded;
    json_int_t integer;
    double real;
    struct buf decoded; /* the last string with escapes, decoded */
    /* The containers open around the current token, the innermost last. */
    struct frame *frames; /* inline_frames at first */
    size_t n_frames, cap_frames;
    struct frame *inline_frames;
};

/*** Errors ***/

/* The line and column (in characters) of `at`, as jansson counts them. */
static void locate(const unsigned char *start, const unsigned char *at, int *line, int *column)
{
    int l = 1, c = 0;
    for (const unsigned char *p = start; p < at; p++) {
        if (*p == '\n') {
            l++;
            c = 0;
        } else if ((*p & 0xc0) != 0x80) {
            c++;
        }
    }
    *line = l;
    *column = c;
}

/* jansson keeps JSON_ERROR_TEXT_LENGTH - 2 characters; the last byte holds the code. */
#define TEXT_MAX (JSON_ERROR_TEXT_LENGTH - 2)

static void set_error(json_error_t *error, int line, int column, size_t position,
                      enum json_error_code code, const char *text)
{
    error->line = line;
    error->column = column;
    error->position = (int)position;
    size_t n = strlen(text);
    if (n > TEXT_MAX)
        n = TEXT_MAX;
    memcpy(error->text, text, n);
    error->text[n] = '\0';
    error->text[JSON_ERROR_TEXT_LENGTH - 1] = (char)code;
}

/* Appends what fits of `n` bytes to the message text[0..*len). */
static void add_text(char *text, size_t *len, const void *s, size_t n)
{
    if (n > TEXT_MAX - *len)
        n = TEXT_MAX - *len;
    memcpy(text + *len, s, n);
    *len += n;
    text[*len] = '\0';
}

/*
 * How much of the `n` bytes of a token to quote: up to a NUL (where
 * jansson's "%s" stops) and without a character cut short (jansson reads a
 * character a byte at a time, and an error can come after its first byte).
 */
static size_t quotable_len(const unsigned char *s, size_t n)
{
    const unsigned char *nul = memchr(s, '\0', n);
    if (nul)
        n = (size_t)(nul - s);
    for (size_t back = 1; back <= 3 && back <= n; back++) {
        unsigned char c = s[n - back];
        if ((c & 0xc0) == 0x80)
            continue;
        size_t need = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 1;
        if (need > back)
            n -= back;
        break;
    }
    return n;
}

/*
 * Fails with jansson's report of an error found once the input was read up
 * to `at`: the message, then the token read so far when it is short, or
 * "near end of file" when none of it was (see jansson's error_set). Only the
 * first error counts, as in jansson.
 */
static void fail_at(struct reader *r, const unsigned char *at, enum json_error_code code,
                    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void fail_at(struct reader *r, const unsigned char *at, enum json_error_code code,
                    const char *fmt, ...)
{
    if (r->is_failed)
        return;
    r->is_failed = true;
    if (!r->error)
        return;
    char text[TEXT_MAX + 1];
    va_list ap;
    va_start(ap, fmt);
    int n_what = vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    size_t len = n_what < 0 ? 0 : (size_t)n_what < TEXT_MAX ? (size_t)n_what : TEXT_MAX;
    text[len] = '\0';
    const unsigned char *token = r->tok;
    size_t n = at > token ? (size_t)(at - token) : 0;
    if (n > 0 && token[0] != '\0') {
        if (n <= CONTEXT_MAX) {
            add_text(text, &len, " near '", 7);
            add_text(text, &len, token, quotable_len(token, n));
            add_text(text, &len, "'", 1);
        }
    } else {
        if (code == json_error_invalid_syntax)
            code = json_error_premature_end_of_input;
        /* A character that is not UTF-8 is not quoted: it could not be shown. */
        if (code != json_error_invalid_utf8)
            add_text(text, &len, " near end of file", 17);
    }
    int line, column;
    locate(r->start, at, &line, &column);
    set_error(r->error, line, column, (size_t)(at - r->start), code, text);
}

/* Fails after the current token. */
#define fail(r, code, ...) fail_at((r), (r)->p, (code), __VA_ARGS__)

static void fail_memory(struct reader *r)
{
    if (r->is_failed)
        return;
    r->is_failed = true;
    if (r->error)
        set_error(r->error, -1, -1, (size_t)(r->p - r->start), json_error_out_of_memory,
                  "out of memory");
}

/*** Characters ***/

static inline bool is_digit(unsigned c)
{
    return c - '0' < 10;
}

static inline bool is_alpha(unsigned c)
{
    return (c | 0x20) - 'a' < 26;
}

/* The characters jansson skips between tokens. */
static inline bool is_space(unsigned c)
{
    return c <= ' ' && (c == ' ' || c == '\t' || c == '\n' || c == '\r');
}

/* check_char's test of a character of more than one byte. */
__attribute__((noinline)) static bool check_multibyte(struct reader *r, const unsigned char *p)
{
    uint32_t cp;
    if (!jsonw_utf8_decode((const char *)p, (size_t)(r->end - p), &cp)) {
        fail_at(r, p, json_error_invalid_utf8, "unable to decode byte 0x%x", *p);
        return false;
    }
    return true;
}

/*
 * jansson reads every character through a UTF-8 check, the one after a
 * token too: false (failed) if the character at p (if any) is not UTF-8.
 * Inline for ASCII, what follows nearly every number and word.
 */
static inline bool check_char(struct reader *r, const unsigned char *p)
{
    return p >= r->end || *p < 0x80 || check_multibyte(r, p);
}

/*
 * The first byte from p on that ends a run of plain string bytes: '"',
 * '\\', a control, or any byte of a multi-byte character. Eight bytes at a
 * time where a word can be read: the "has a byte less than n" test of each
 * byte, which is exact for the first match (a false match can only follow a
 * true one).
 */
static inline const unsigned char *skip_plain(const unsigned char *p, const unsigned char *end)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    const uint64_t ones = 0x0101010101010101u, highs = 0x8080808080808080u;
    while (end - p >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        uint64_t quote = w ^ (ones * '"'), backslash = w ^ (ones * '\\');
        uint64_t stop = (w | ((w - ones * 0x20) & ~w) | ((quote - ones) & ~quote) |
                         ((backslash - ones) & ~backslash)) &
                        highs;
        if (stop)
            return p + (__builtin_ctzll(stop) >> 3);
        p += 8;
    }
#endif
    while (p < end && !jsonw_stop_class[*p])
        p++;
    return p;
}

/*** Lexer ***/

/* Appends code point `cp` as UTF-8 (a failed allocation is sticky in the buffer). */
static void put_code_point(struct buf *b, uint32_t cp)
{
    char u[4];
    buf_add(b, u, jsonw_utf8_encode(cp, u));
}

/*
 * Reads the escape at p (a backslash): the character it stands for in *cp,
 * with *is_unicode for a \uXXXX one (then *cp is the 16-bit value, perhaps
 * half a surrogate pair). The byte after it, or NULL (failed) where jansson
 * fails: at the character that is not an escape or hex digit, once read.
 */
static const unsigned char *read_escape(struct reader *r, const unsigned char *p, uint32_t *cp,
                                        bool *is_unicode)
{
    const unsigned char *q = p + 1, *end = r->end;
    *is_unicode = false;
    if (!check_char(r, q))
        return NULL;
    if (q == end) {
        fail_at(r, end, json_error_invalid_syntax, "invalid escape");
        return NULL;
    }
    int c = jsonw_unescape(*q);
    if (c >= 0) {
        *cp = (uint32_t)c;
        return q + 1;
    }
    if (*q != 'u') {
        fail_at(r, q + 1, json_error_invalid_syntax, "invalid escape");
        return NULL;
    }
    uint32_t value = 0;
    for (const unsigned char *h = q + 1; h < q + 5; h++) {
        if (!check_char(r, h))
            return NULL;
        int d = h < end ? jsonw_hex_digit(*h) : -1;
        if (d < 0) {
            fail_at(r, h < end ? h + 1 : end, json_error_invalid_syntax, "invalid escape");
            return NULL;
        }
        value = value << 4 | (uint32_t)d;
    }
    *cp = value;
    *is_unicode = true;
    return q + 5;
}

/*
 * Reads the rest of a string token that is more than a plain run: r->p is
 * past its opening quote, p where the run stopped. Runs of plain bytes are
 * skipped, and in a string with escapes copied, whole; the string is then
 * the bytes in the input or, with escapes, r->decoded. Like jansson, the
 * whole string is read before a \u escape is judged (a lone or mismatched
 * surrogate), so an error later in the string wins over one.
 */
__attribute__((noinline)) static int scan_string(struct reader *r, const unsigned char *p)
{
    const unsigned char *start = r->p, *run = start, *end = r->end;
    uint32_t high = 0;      /* a high surrogate, its low half next */
    long bad[2] = {-1, -1}; /* the first \u escape (or pair) jansson refuses */
    r->str_has_nul = false;
    r->str_is_decoded = false;
    for (;;) {
        p = skip_plain(p, end);
        if (p == end) {
            fail_at(r, end, json_error_premature_end_of_input, "premature end of input");
            return TOKEN_INVALID;
        }
        unsigned c = *p;
        if (c >= 0x80) {
            uint32_t cp;
            size_t n = jsonw_utf8_decode((const char *)p, (size_t)(end - p), &cp);
            if (!n) {
                check_char(r, p);
                return TOKEN_INVALID;
            }
            p += n;
            continue;
        }
        if (c == '"')
            break;
        if (c < 0x20) {
            if (c == '\n')
                fail_at(r, p, json_error_invalid_syntax, "unexpected newline");
            else
                fail_at(r, p, json_error_invalid_syntax, "control character 0x%x", c);
            return TOKEN_INVALID;
        }
        /* A backslash. */
        uint32_t cp;
        bool is_unicode;
        const unsigned char *next = read_escape(r, p, &cp, &is_unicode);
        if (!next)
            return TOKEN_INVALID;
        if (!r->str_is_decoded) {
            buf_truncate(&r->decoded, 0);
            r->str_is_decoded = true;
        }
        buf_add(&r->decoded, run, (size_t)(p - run));
        p = run = next;
        if (bad[0] >= 0)
            continue; /* jansson stops decoding at the first bad escape; only reading goes on */
        if (!is_unicode) {
            put_code_point(&r->decoded, cp);
        } else if (high) {
            if (cp >= 0xdc00 && cp <= 0xdfff) {
                put_code_point(&r->decoded, jsonw_surrogate_pair(high, cp));
            } else {
                bad[0] = high;
                bad[1] = cp;
            }
            high = 0;
        } else if (cp >= 0xd800 && cp <= 0xdbff) {
            if (end - next >= 2 && next[0] == '\\' && next[1] == 'u')
                high = cp;
            else
                bad[0] = cp;
        } else if (cp >= 0xdc00 && cp <= 0xdfff) {
            bad[0] = cp;
        } else {
            r->str_has_nul |= cp == 0;
            put_code_point(&r->decoded, cp);
        }
    }
    r->p = p + 1;
    if (bad[0] >= 0) {
        if (bad[1] >= 0)
            fail(r, json_error_invalid_syntax, "invalid Unicode '\\u%04lX\\u%04lX'", bad[0],
                 bad[1]);
        else
            fail(r, json_error_invalid_syntax, "invalid Unicode '\\u%04lX'", bad[0]);
        return TOKEN_INVALID;
    }
    if (!r->str_is_decoded) {
        r->str = (const char *)start;
        r->str_len = (size_t)(p - start);
        return TOKEN_STRING;
    }
    buf_add(&r->decoded, run, (size_t)(p - run));
    if (buf_is_bad(&r->decoded)) {
        fail_memory(r);
        return TOKEN_INVALID;
    }
    r->str = r->decoded.data;
    r->str_len = r->decoded.len;
    return TOKEN_STRING;
}

/* An integer's digits (no leading zeros) as json_int_t, as strtoll reads them. */
static int read_integer(struct reader *r, bool is_negative, const unsigned char *digits,
                        const unsigned char *end)
{
    /* Twenty digits or more are beyond 2^63; nineteen fit in a uint64_t. */
    size_t n = (size_t)(end - digits);
    uint64_t u = 0;
    if (n < 20) {
        for (const unsigned char *p = digits; p < end; p++)
            u = u * 10 + (uint64_t)(*p - '0');
    }
    uint64_t limit = is_negative ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    if (n >= 20 || u > limit) {
        fail(r, json_error_numeric_overflow,
             is_negative ? "too big negative integer" : "too big integer");
        return TOKEN_INVALID;
    }
    if (!is_negative)
        r->integer = (json_int_t)u;
    else
        r->integer = u > (uint64_t)INT64_MAX ? INT64_MIN : -(json_int_t)u;
    return TOKEN_INTEGER;
}

/*
 * The double a number with at most 15 significant digits and a power of ten
 * within 10^±22 reads as, computed: both the digits and the power are exact
 * doubles, so one multiplication or division rounds as strtod would
 * (Clinger's fast path). false for every other number.
 */
static bool fast_real(const unsigned char *p, const unsigned char *end, double *out)
{
    static const double powers[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                    1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                    1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
    bool is_negative = *p == '-';
    p += is_negative;
    uint64_t m = 0;
    int n_significant = 0;
    long exp10 = 0;
    bool is_fraction = false;
    for (; p < end && *p != 'e' && *p != 'E'; p++) {
        if (*p == '.') {
            is_fraction = true;
            continue;
        }
        if (m || *p != '0')
            n_significant++;
        m = m * 10 + (uint64_t)(*p - '0');
        exp10 -= is_fraction;
        if (n_significant > 15)
            return false;
    }
    if (p < end) {
        p++;
        bool is_exp_negative = *p == '-';
        p += *p == '-' || *p == '+';
        if (end - p > 4)
            return false;
        long e = 0;
        for (; p < end; p++)
            e = e * 10 + (*p - '0');
        exp10 += is_exp_negative ? -e : e;
    }
    double d = (double)m;
    if (m && (exp10 < -22 || exp10 > 22))
        return false;
    if (m)
        d = exp10 < 0 ? d / powers[-exp10] : d * powers[exp10];
    *out = is_negative ? -d : d;
    return true;
}

/* A number with a fraction or an exponent (text to end), as jansson reads it: strtod. */
static int read_real(struct reader *r, const unsigned char *text, const unsigned char *end)
{
    double d;
    if (!fast_real(text, end, &d)) {
        size_t n = (size_t)(end - text);
        char small[64], *copy = n < sizeof(small) ? small : malloc(n + 1);
        if (!copy) {
            fail_memory(r);
            return TOKEN_INVALID;
        }
        /* strtod wants a NUL; the program runs in the C locale (it never calls setlocale). */
        memcpy(copy, text, n);
        copy[n] = '\0';
        errno = 0;
        d = strtod(copy, NULL);
        bool is_overflow = (d == HUGE_VAL || d == -HUGE_VAL) && errno == ERANGE;
        if (copy != small)
            free(copy);
        if (is_overflow) {
            fail(r, json_error_numeric_overflow, "real number overflow");
            return TOKEN_INVALID;
        }
    }
    r->real = d;
    return TOKEN_REAL;
}

/*
 * Reads a number token at p ('-' or a digit). Where the grammar breaks, the
 * token ends (jansson puts the character back) and is invalid: "-" alone,
 * "01" (at "0"), "1." (at "1."), "1e" (at "1e").
 */
static int scan_number(struct reader *r, const unsigned char *p)
{
    const unsigned char *text = p, *end = r->end;
    bool is_negative = *p == '-';
    p += is_negative;
    const unsigned char *digits = p;
    bool is_valid = false, is_real = false;
    if (p < end && *p == '0') {
        p++;
        is_valid = !(p < end && is_digit(*p));
    } else if (p < end && is_digit(*p)) {
        while (++p < end && is_digit(*p))
            ;
        is_valid = true;
    }
    const unsigned char *digits_end = p;
    if (is_valid && p < end && *p == '.') {
        p++;
        is_valid = p < end && is_digit(*p);
        while (p < end && is_digit(*p))
            p++;
        is_real = true;
    }
    if (is_valid && p < end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < end && (*p == '+' || *p == '-'))
            p++;
        is_valid = p < end && is_digit(*p);
        while (p < end && is_digit(*p))
            p++;
        is_real = true;
    }
    r->p = p;
    if (!check_char(r, p) || !is_valid)
        return TOKEN_INVALID;
    if (!is_real)
        return read_integer(r, is_negative, digits, digits_end);
    return read_real(r, text, p);
}

/* A run of letters: true, false, null, or an invalid token. */
static int scan_word(struct reader *r, const unsigned char *p)
{
    const unsigned char *word = p;
    while (p < r->end && is_alpha(*p))
        p++;
    r->p = p;
    if (!check_char(r, p))
        return TOKEN_INVALID;
    size_t n = (size_t)(p - word);
    if (n == 4 && memcmp(word, "true", 4) == 0)
        return TOKEN_TRUE;
    if (n == 5 && memcmp(word, "false", 5) == 0)
        return TOKEN_FALSE;
    if (n == 4 && memcmp(word, "null", 4) == 0)
        return TOKEN_NULL;
    return TOKEN_INVALID;
}

/* Reads a token that is not punctuation or a plain string, at p (or the end). */
__attribute__((noinline)) static void next_token_other(struct reader *r, const unsigned char *p)
{
    const unsigned char *end = r->end;
    if (p == end) {
        r->p = p;
        r->token = TOKEN_EOF;
        return;
    }
    if (*p == '-' || is_digit(*p)) {
        r->token = scan_number(r, p);
        return;
    }
    if (is_alpha(*p)) {
        r->token = scan_word(r, p);
        return;
    }
    /* Anything else is an invalid token of one character (when it is one). */
    r->token = TOKEN_INVALID;
    uint32_t cp;
    size_t n = jsonw_utf8_decode((const char *)p, (size_t)(end - p), &cp);
    r->p = p + n;
    if (!n)
        check_char(r, p);
}

/* The characters that are tokens by themselves. */
static const bool is_punctuation[256] = {
    ['{'] = true, ['}'] = true, ['['] = true, [']'] = true, [':'] = true, [','] = true,
};

/*
 * Reads the next token into r->token (and its value), after any whitespace.
 * Inline for the tokens most text is made of, punctuation and strings that
 * are one plain run; the rest is read out of line.
 */
__attribute__((always_inline)) static inline void next_token(struct reader *r)
{
    const unsigned char *p = r->p, *end = r->end;
    while (p < end && is_space(*p))
        p++;
    r->tok = p;
    if (p < end && is_punctuation[*p]) {
        r->p = p + 1;
        r->token = *p;
        return;
    }
    if (p < end && *p == '"') {
        const unsigned char *start = p + 1, *stop = skip_plain(start, end);
        r->p = start;
        if (stop < end && *stop == '"') {
            r->str = (const char *)start;
            r->str_len = (size_t)(stop - start);
            r->str_has_nul = false;
            r->str_is_decoded = false;
            r->p = stop + 1;
            r->token = TOKEN_STRING;
            return;
        }
        r->token = scan_string(r, stop);
        return;
    }
    next_token_other(r, p);
}

/*** Parser ***/

static bool push(struct reader *r, json_t *container, bool is_object)
{
    if (r->n_frames == r->cap_frames) {
        /* The depth check keeps n_frames within JSON_PARSER_MAX_DEPTH. */
        size_t cap = r->cap_frames * 2;
        struct frame *grown = malloc(cap * sizeof(*grown));
        if (!grown)
            return false;
        memcpy(grown, r->frames, r->n_frames * sizeof(*grown));
        if (r->frames != r->inline_frames)
            free(r->frames);
        r->frames = grown;
        r->cap_frames = cap;
    }
    r->frames[r->n_frames++] = (struct frame){.container = container, .is_object = is_object};
    return true;
}

/* Closes the innermost container: the caller owns it now. */
static json_t *pop(struct reader *r)
{
    struct frame *f = &r->frames[--r->n_frames];
    free(f->key_copy);
    return f->container;
}

/*
 * Takes the current token as the key of the next member of the object in
 * `f`, then reads past the ':' to the token that starts its value. Checks
 * as jansson's parse_object makes them.
 */
static bool read_key(struct reader *r, struct frame *f)
{
    if (r->token != TOKEN_STRING) {
        fail(r, json_error_invalid_syntax, "string or '}' expected");
        return false;
    }
    if (r->str_has_nul) {
        fail(r, json_error_null_byte_in_key, "NUL byte in object key not supported");
        return false;
    }
    if ((r->flags & JSON_REJECT_DUPLICATES) && json_object_getn(f->container, r->str, r->str_len)) {
        fail(r, json_error_duplicate_key, "duplicate object key");
        return false;
    }
    f->key = r->str;
    f->key_len = r->str_len;
    if (r->str_is_decoded) {
        /* r->decoded holds the next string with escapes too: the value's, perhaps. */
        f->key_copy = malloc(r->str_len + 1);
        if (!f->key_copy) {
            fail_memory(r);
            return false;
        }
        memcpy(f->key_copy, r->str, r->str_len);
        f->key = f->key_copy;
    }
    next_token(r);
    if (r->token != ':') {
        fail(r, json_error_invalid_syntax, "':' expected");
        return false;
    }
    next_token(r);
    return true;
}

/*
 * Starts the next member of the container in `f` at the current token,
 * which follows its '{' or '[' or a ',': in an object, the key and ':'
 * (read_key); in an array, the value, where the end of the input is "']'
 * expected", as in jansson's parse_array. false if failed. `is_object` is
 * f->is_object, passed since the caller has it at hand: read from the
 * frame again, it made reading a small request 0.5% slower.
 */
static inline bool start_member(struct reader *r, struct frame *f, bool is_object)
{
    if (is_object)
        return read_key(r, f);
    if (r->token == TOKEN_EOF) {
        fail(r, json_error_invalid_syntax, "']' expected");
        return false;
    }
    return true;
}

/* The value of the current token when it is a scalar; NULL (failed) for any other. */
static json_t *scalar(struct reader *r)
{
    json_t *v;
    switch (r->token) {
    case TOKEN_STRING:
        if (r->str_has_nul && !(r->flags & JSON_ALLOW_NUL)) {
            fail(r, json_error_null_character, "\\u0000 is not allowed without JSON_ALLOW_NUL");
            return NULL;
        }
        v = json_stringn_nocheck(r->str, r->str_len);
        break;
    case TOKEN_INTEGER:
        v = json_integer(r->integer);
        break;
    case TOKEN_REAL:
        v = json_real(r->real);
        break;
    case TOKEN_TRUE:
        v = json_true();
        break;
    case TOKEN_FALSE:
        v = json_false();
        break;
    case TOKEN_NULL:
        v = json_null();
        break;
    case TOKEN_INVALID:
        fail(r, json_error_invalid_syntax, "invalid token");
        return NULL;
    default:
        fail(r, json_error_invalid_syntax, "unexpected token");
        return NULL;
    }
    if (!v)
        fail_memory(r);
    return v;
}

/*
 * The value starting at the current token: jansson's parse_value,
 * parse_object and parse_array, with r->frames for the recursion. A value
 * is added to its container once complete, as jansson adds it. NULL if
 * failed; the containers still open are the caller's to free.
 */
static json_t *parse_value(struct reader *r)
{
    json_t *v = NULL;
    for (;;) {
        /* The current token starts a value, at depth n_frames + 1. */
        if (r->n_frames >= JSON_PARSER_MAX_DEPTH) {
            fail(r, json_error_stack_overflow, "maximum parsing depth reached");
            return NULL;
        }
        if (r->token == '{' || r->token == '[') {
            bool is_object = r->token == '{';
            json_t *container = is_object ? json_object() : json_array();
            if (!container || !push(r, container, is_object)) {
                json_decref(container);
                fail_memory(r);
                return NULL;
            }
            next_token(r);
            if (r->token != (is_object ? '}' : ']')) {
                if (!start_member(r, &r->frames[r->n_frames - 1], is_object))
                    return NULL;
                continue;
            }
            v = pop(r);
        } else {
            v = scalar(r);
            if (!v)
                return NULL;
        }
        /* v is complete: into its container, and what follows decides what next. */
        for (;;) {
            if (r->n_frames == 0)
                return v;
            struct frame *f = &r->frames[r->n_frames - 1];
            bool is_object = f->is_object;
            int added = is_object
                            ? json_object_setn_new_nocheck(f->container, f->key, f->key_len, v)
                            : json_array_append_new(f->container, v);
            /* Taken either way (freed on failure). */
            v = NULL;
            if (added != 0) {
                fail_memory(r);
                return NULL;
            }
            if (f->key_copy) {
                free(f->key_copy);
                f->key_copy = NULL;
            }
            next_token(r);
            if (r->token == ',') {
                next_token(r);
                if (!start_member(r, f, is_object))
                    return NULL;
                break;
            }
            if (r->token != (is_object ? '}' : ']')) {
                fail(r, json_error_invalid_syntax, is_object ? "'}' expected" : "']' expected");
                return NULL;
            }
            v = pop(r);
        }
    }
}

/* jansson's parse_json: an object or array (any value with JSON_DECODE_ANY), then the end. */
static json_t *parse(struct reader *r)
{
    next_token(r);
    if (!(r->flags & JSON_DECODE_ANY) && r->token != '[' && r->token != '{') {
        fail(r, json_error_invalid_syntax, "'[' or '{' expected");
        return NULL;
    }
    json_t *v = parse_value(r);
    if (!v)
        return NULL;
    next_token(r);
    if (r->token != TOKEN_EOF) {
        fail(r, json_error_end_of_input_expected, "end of file expected");
        json_decref(v);
        return NULL;
    }
    return v;
}

json_t *jsonr_loadb(const char *buf, size_t len, size_t flags, json_error_t *error)
{
    if (error) {
        /* As jansson's jsonp_error_init. */
        error->text[0] = '\0';
        error->text[JSON_ERROR_TEXT_LENGTH - 1] = (char)json_error_unknown;
        error->line = -1;
        error->column = -1;
        error->position = 0;
        snprintf(error->source, JSON_ERROR_SOURCE_LENGTH, "<buffer>");
    }
    if (!buf || (flags & ~(size_t)SUPPORTED_FLAGS)) {
        if (error)
            set_error(error, -1, -1, 0, json_error_invalid_argument,
                      buf ? "unsupported flags" : "wrong arguments");
        return NULL;
    }
    struct frame inline_frames[INLINE_FRAMES]; /* not cleared: pushing fills a frame */
    struct reader r = {
        .start = (const unsigned char *)buf,
        .end = (const unsigned char *)buf + len,
        .p = (const unsigned char *)buf,
        .flags = flags,
        .error = error,
        .frames = inline_frames,
        .cap_frames = INLINE_FRAMES,
        .inline_frames = inline_frames,
    };
    json_t *v = parse(&r);
    while (r.n_frames > 0)
        json_decref(pop(&r));
    if (r.frames != r.inline_frames)
        free(r.frames);
    buf_cleanup(&r.decoded);
    if (v && error)
        error->position = (int)len; /* jansson's too: everything was read */
    return v;
}
