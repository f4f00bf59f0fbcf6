/*
 * The JSON reader against jansson's json_loadb, which it stands in for: a
 * table of inputs for every rule, a differential fuzz loop, nesting at and
 * past the limit, and where errors are reported.
 */
#include "jsonr.h"
#include "test.h"

#include <jansson.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>

/* The flag combinations jsonr_loadb supports. */
static const size_t all_flags[] = {
    0,
    JSON_REJECT_DUPLICATES,
    JSON_ALLOW_NUL,
    JSON_DECODE_ANY,
    JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL,
    JSON_REJECT_DUPLICATES | JSON_DECODE_ANY,
    JSON_ALLOW_NUL | JSON_DECODE_ANY,
    JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL | JSON_DECODE_ANY,
};
#define N_FLAGS (sizeof(all_flags) / sizeof(all_flags[0]))

/*
 * Whether two values are the same, more strictly than json_equal: the same
 * types all the way down, reals to the bit (-0.0 is not 0.0), and object
 * members in the same order.
 */
static bool same_value(const json_t *a, const json_t *b)
{
    if (json_typeof(a) != json_typeof(b))
        return false;
    switch (json_typeof(a)) {
    case JSON_OBJECT: {
        if (json_object_size(a) != json_object_size(b))
            return false;
        void *ia = json_object_iter((json_t *)a), *ib = json_object_iter((json_t *)b);
        for (; ia && ib; ia = json_object_iter_next((json_t *)a, ia),
                         ib = json_object_iter_next((json_t *)b, ib)) {
            size_t la = json_object_iter_key_len(ia), lb = json_object_iter_key_len(ib);
            if (la != lb || memcmp(json_object_iter_key(ia), json_object_iter_key(ib), la) != 0 ||
                !same_value(json_object_iter_value(ia), json_object_iter_value(ib)))
                return false;
        }
        return !ia && !ib;
    }
    case JSON_ARRAY:
        if (json_array_size(a) != json_array_size(b))
            return false;
        for (size_t i = 0; i < json_array_size(a); i++) {
            if (!same_value(json_array_get(a, i), json_array_get(b, i)))
                return false;
        }
        return true;
    case JSON_STRING:
        return json_string_length(a) == json_string_length(b) &&
               memcmp(json_string_value(a), json_string_value(b), json_string_length(a)) == 0;
    case JSON_INTEGER:
        return json_integer_value(a) == json_integer_value(b);
    case JSON_REAL: {
        double x = json_real_value(a), y = json_real_value(b);
        return memcmp(&x, &y, sizeof(x)) == 0;
    }
    default:
        return true;
    }
}

/* Input bytes as C escapes, for failure messages. */
static const char *shown(const char *s, size_t len)
{
    static char out[4096];
    size_t o = 0;
    for (size_t i = 0; i < len && o < sizeof(out) - 8; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x7f && c != '\\')
            out[o++] = (char)c;
        else
            o += (size_t)snprintf(out + o, 8, "\\x%02x", c);
    }
    out[o] = '\0';
    return out;
}

/*
 * jansson skips a NUL byte that follows a number or a word (its lexer
 * loses the byte when it puts the character after the token back), and
 * counts positions one short after it; jsonr_loadb does neither. A NUL in a
 * string is not one: jansson stops at it, a control character, where
 * jsonr_loadb does. Strings are stepped over whole, escapes and all, so
 * that a NUL after a letter or digit in one is compared in full.
 */
static bool has_skipped_nul(const char *s, size_t len)
{
    bool is_in_string = false;
    for (size_t i = 0; i < len; i++) {
        if (is_in_string) {
            if (s[i] == '\\')
                i++; /* the escaped byte, '"' included */
            else if (s[i] == '"')
                is_in_string = false;
            continue;
        }
        if (s[i] == '"') {
            is_in_string = true;
            continue;
        }
        unsigned char before = i > 0 ? (unsigned char)s[i - 1] : ' ';
        if (s[i] == '\0' &&
            ((before >= '0' && before <= '9') || (unsigned)((before | 0x20) - 'a') < 26u ||
             before == '.' || before == '-' || before == '+'))
            return true;
    }
    return false;
}

/*
 * jansson's message with any character it cut short dropped: it can quote
 * the first byte of a character (after a backslash, "\\\xc3"), which
 * jsonr_loadb leaves out rather than put a text that is not UTF-8 in a
 * reply.
 */
static void drop_cut_characters(char *text)
{
    size_t o = 0;
    for (size_t i = 0; text[i];) {
        unsigned char c = (unsigned char)text[i];
        size_t need = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 1, k = 1;
        while (k < need && ((unsigned char)text[i + k] & 0xc0) == 0x80)
            k++;
        if (k == need) {
            memmove(text + o, text + i, k);
            o += k;
        }
        i += k;
    }
    text[o] = '\0';
}

/*
 * Reads `s` with both readers and fails unless they agree: on acceptance,
 * on the value (same_value and json_equal), and on the error's text, code,
 * line, column and position. Returns whether it was accepted.
 */
static bool agree(const char *s, size_t len, size_t flags)
{
    json_error_t want_err, got_err;
    json_t *want = json_loadb(s, len, flags, &want_err);
    json_t *got = jsonr_loadb(s, len, flags, &got_err);
    bool is_lenient = has_skipped_nul(s, len);
    if (is_lenient) {
        /* Only: what jsonr accepts, jansson accepts the same. */
        if (got && (!want || !same_value(want, got)))
            TEST_FAIL("flags %zx: jsonr accepts what jansson does not: %s", flags, shown(s, len));
        json_decref(want);
        json_decref(got);
        return got != NULL;
    }
    if (!want != !got)
        TEST_FAIL("flags %zx: jansson %s ('%s'), jsonr %s ('%s'): %s", flags,
                  want ? "accepts" : "refuses", want ? "" : want_err.text,
                  got ? "accepts" : "refuses", got ? "" : got_err.text, shown(s, len));
    if (want) {
        if (!same_value(want, got) || !json_equal(want, got))
            TEST_FAIL("flags %zx: different values: %s", flags, shown(s, len));
    } else if ((drop_cut_characters(want_err.text), strcmp(want_err.text, got_err.text) != 0) ||
               json_error_code(&want_err) != json_error_code(&got_err) ||
               want_err.line != got_err.line || want_err.column != got_err.column ||
               want_err.position != got_err.position) {
        TEST_FAIL("flags %zx: %s\n  jansson: '%s' code %d line %d column %d position %d\n"
                  "  jsonr:   '%s' code %d line %d column %d position %d",
                  flags, shown(s, len), want_err.text, json_error_code(&want_err), want_err.line,
                  want_err.column, want_err.position, got_err.text, json_error_code(&got_err),
                  got_err.line, got_err.column, got_err.position);
    }
    ASSERT_INT_EQ(got_err.position, want_err.position);
    ASSERT_STR_EQ(got_err.source, "<buffer>");
    json_decref(want);
    json_decref(got);
    return got != NULL;
}

/* The inputs: each rule, accepted and refused; sizeof - 1 keeps NUL bytes. */
struct input {
    const char *text;
    size_t len;
    bool is_accepted; /* with flags 0 */
};
#define IN(s, ok)                                                                                  \
    {                                                                                              \
        s, sizeof(s) - 1, ok                                                                       \
    }

static const struct input inputs[] = {
    /* The top level: an object or array (anything with JSON_DECODE_ANY); one, then the end. */
    IN("{}", true),
    IN("[]", true),
    IN(" \t\r\n[ \t\r\n] \t\r\n", true),
    IN("", false),
    IN("   ", false),
    IN("1", false),
    IN("\"a\"", false),
    IN("true", false),
    IN("null", false),
    IN("-5", false),
    IN("[] []", false),
    IN("{}x", false),
    IN("[]\x0c", false), /* form feed is not whitespace */
    IN("\xc2\xa0[]", false),
    IN("\xef\xbb\xbf[]", false), /* a byte order mark */
    IN("[]\0", false),
    IN("\0[]", false),
    /* Objects and arrays. */
    IN("{\"a\":1,\"b\":[true,false,null],\"c\":{\"d\":\"e\"}}", true),
    IN("[1,2,3]", true),
    IN("[[],{},[[]],{\"\":{}}]", true),
    IN("[1,]", false),
    IN("[,1]", false),
    IN("[1 2]", false),
    IN("[1,,2]", false),
    IN("[", false),
    IN("[1", false),
    IN("[1,", false),
    IN("]", false),
    IN("{\"a\":1,}", false),
    IN("{,}", false),
    IN("{\"a\"}", false),
    IN("{\"a\":}", false),
    IN("{\"a\" 1}", false),
    IN("{\"a\":1 \"b\":2}", false),
    IN("{1:2}", false),
    IN("{a:1}", false),
    IN("{'a':1}", false),
    IN("['a']", false),
    IN("{\"a\":1]", false),
    IN("[1}", false),
    IN("{", false),
    IN("{\"a\"", false),
    IN("{\"a\":", false),
    IN("{\"a\":1", false),
    IN("{]", false),
    /* Duplicate keys: the last wins, or an error with JSON_REJECT_DUPLICATES. */
    IN("{\"a\":1,\"a\":2}", true),
    IN("{\"a\":1,\"b\":2,\"a\":[3]}", true),
    IN("{\"a\":{\"x\":1},\"a\":{\"y\":2}}", true),
    IN("{\"a\":1,\"\\u0061\":2}", true),
    IN("{\"a\":1,\"a\":[1,}", false),
    /* Literals. */
    IN("[true,false,null]", true),
    IN("[True]", false),
    IN("[nul]", false),
    IN("[nulll]", false),
    IN("[truex]", false),
    IN("[true1]", false),
    IN("[NaN]", false),
    IN("[Infinity]", false),
    IN("[-Infinity]", false),
    IN("[undefined]", false),
    /* Numbers. */
    IN("[0,-0,1,-1,123456789,-987654321]", true),
    IN("[9223372036854775807,-9223372036854775808]", true),
    IN("[9223372036854775808]", false),
    IN("[-9223372036854775809]", false),
    IN("[99999999999999999999]", false),
    IN("[-99999999999999999999]", false),
    IN("[123456789012345678901234567890]", false),
    IN("[0.0,-0.0,1.5,-1.5,1e3,1E3,1e+3,1e-3,1.5e300,-2.5E-300,0e0,0.1,0.30000000000000004]", true),
    IN("[1e400]", false),
    IN("[-1e400]", false),
    IN("[1.7976931348623157e308,1.7976931348623159e308]", false),
    IN("[1.7976931348623157e308,4.9e-324,2.2250738585072014e-308]", true),
    IN("[1e-400,-1e-400,1e-99999]", true),
    IN("[123456789012345678901234567890.5]", true),
    IN("[0.1234567890123456789,1234567.8901234567,9007199254740993.0]", true),
    IN("[1e22,1e23,8.5e-22,123456789012345e22,1e0000000000000000000001]", true),
    IN("[0.000000000000000000000000000000000000001]", true),
    /* Longer than any buffer on the stack for strtod. */
    IN("[1000000000000000000000000000000000000000000000000000000000000000000000000000000.5,"
       "-0.0000000000000000000000000000000000000000000000000000000000000000000000000000000001,"
       "1e0000000000000000000000000000000000000000000000000000000000000000000000000000000001]",
       true),
    IN("[1e000000000000000000000000000000000000000000000000000000000000000000000000000000999]",
       false),
    IN("[01]", false),
    IN("[-01]", false),
    IN("[00]", false),
    IN("[+1]", false),
    IN("[.5]", false),
    IN("[-.5]", false),
    IN("[1.]", false),
    IN("[1.e3]", false),
    IN("[1.x]", false),
    IN("[1e]", false),
    IN("[1e+]", false),
    IN("[1E-]", false),
    IN("[1ee3]", false),
    IN("[0x10]", false),
    IN("[-]", false),
    IN("[--1]", false),
    IN("[-a]", false),
    IN("[1_000]", false),
    IN("[0.5.5]", false),
    IN("[1", false),
    IN("[1.5", false),
    IN("[-", false),
    /* Strings: escapes. */
    IN("[\"\",\"a\",\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"]", true),
    IN("[\"\\u0041\\u00e9\\u00E9\\u20ac\\uFFFF\\uffff\"]", true),
    IN("[\"\\ud83d\\ude00\\uD83D\\uDE00x\\uDBFF\\uDFFF\"]", true),
    IN("[\"\\x\"]", false),
    IN("[\"\\a\"]", false),
    IN("[\"\\'\"]", false),
    IN("[\"\\U0041\"]", false),
    IN("[\"\\u004\"]", false),
    IN("[\"\\u004g\"]", false),
    IN("[\"\\u\"]", false),
    IN("[\"\\", false),
    IN("[\"\\u12", false),
    IN("[\"\\\n\"]", false),
    IN("[\"\\\xc3\xa9\"]", false),
    IN("[\"\\u1\xc3\xa9\"]", false),
    IN("[\"\\\xff\"]", false),
    IN("[\"\\u12\xff\"]", false),
    /* Strings: surrogates, lone and mismatched, as jansson judges them after reading the string. */
    IN("[\"\\uD800\"]", false),
    IN("[\"\\uDBFF\"]", false),
    IN("[\"\\uDC00\"]", false),
    IN("[\"\\uDFFF\"]", false),
    IN("[\"\\uD800x\"]", false),
    IN("[\"\\uD800\\n\"]", false),
    IN("[\"\\uD800\\uD800\"]", false),
    IN("[\"\\uD800\\u0041\"]", false),
    IN("[\"\\uD800\\uD800\\uDC00\"]", false),
    IN("[\"\\uDC00\\uD800\"]", false),
    IN("[\"\\uD800\\u00\"]", false),
    IN("[\"\\uD800\\", false),
    IN("[\"\\uD800", false),
    IN("[\"\\uD800\x01\"]", false),
    IN("[\"\\uD800\\x\"]", false),
    IN("[\"\\uD800\xff\"]", false),
    IN("[\"\\uD800\", \"\\x\"]", false),
    IN("[\"\\uDC00 a long string after the bad escape, longer than twenty bytes\"]", false),
    /* Strings: raw bytes. */
    IN("[\"a\nb\"]", false),
    IN("[\"a\tb\"]", false),
    IN("[\"a\x01\"]", false),
    IN("[\"a\x1f\"]", false),
    IN("[\"a\0b\"]", false),
    IN("[\"a\x7f\"]", true),
    IN("[\"abc", false),
    IN("[\"", false),
    IN("[\"a long string that is cut before its end", false),
    /* Strings: UTF-8, valid and not. */
    IN("[\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xf4\x8f\xbf\xbf\xed\x9f\xbf\xee\x80\x80\"]", true),
    IN("[\"\xc2\x80\xdf\xbf\xe0\xa0\x80\xef\xbf\xbf\xf0\x90\x80\x80\"]", true),
    IN("[\"\x80\"]", false),
    IN("[\"\xbf\"]", false),
    IN("[\"\xc0\xaf\"]", false),
    IN("[\"\xc1\xbf\"]", false),
    IN("[\"\xe0\x80\xaf\"]", false),
    IN("[\"\xe0\x9f\xbf\"]", false),
    IN("[\"\xf0\x80\x80\xaf\"]", false),
    IN("[\"\xf0\x8f\xbf\xbf\"]", false),
    IN("[\"\xed\xa0\x80\"]", false),
    IN("[\"\xed\xbf\xbf\"]", false),
    IN("[\"\xf4\x90\x80\x80\"]", false),
    IN("[\"\xf5\x80\x80\x80\"]", false),
    IN("[\"\xf8\x88\x80\x80\x80\"]", false),
    IN("[\"\xfe\"]", false),
    IN("[\"\xff\"]", false),
    IN("[\"\xc3\"]", false),
    IN("[\"\xc3", false),
    IN("[\"\xe2\x82\"]", false),
    IN("[\"\xe2\x82", false),
    IN("[\"\xf0\x9f\x98\"]", false),
    IN("[\"\xc3\xc3\xa9\"]", false),
    IN("[\"\xc3\x41\"]", false),
    IN("[\"0123456789abcdef\xe2\x82\xac\xff\"]", false),
    /* UTF-8 outside strings: jansson checks every character it reads. */
    IN("[\xc3\xa9]", false),
    IN("[\xff]", false),
    IN("[1\xff]", false),
    IN("[1.\xff]", false),
    IN("[1e\xff]", false),
    IN("[-\xff]", false),
    IN("[tru\xff]", false),
    IN("[true\xff]", false),
    IN("[true\xc3\xa9]", false),
    IN("[1\xc3\xa9]", false),
    IN("\xff", false),
    IN("[] \xff", false),
    IN("{\"a\":1}\xc3", false),
    /* \u0000 in values (JSON_ALLOW_NUL) and keys (never). */
    IN("[\"a\\u0000b\"]", false),
    IN("[\"\\u0000\"]", false),
    IN("{\"a\":\"\\u0000\"}", false),
    IN("{\"\\u0000\":1}", false),
    IN("{\"a\\u0000\":1}", false),
    /* Escaped keys, values with and without escapes. */
    IN("{\"a\\nb\":\"c\\td\",\"\\u00e9\":{\"\\\"\":[\"\\\\\"]},\"x\":\"\\u0041\"}", true),
    IN("{\"\\u00e9\":{\"\\u00e8\":{\"\\u00ea\":1}},\"\\u00e9\":2}", true),
    /* Long strings, plain and escaped, across the eight-byte steps of the scan. */
    IN("[\"0123456789abcdefghijklmnopqrstuvwxyz\",\"0123456\",\"01234567\",\"012345678\"]", true),
    IN("[\"0123456789abcdefghijklmnopq\\\"rstuvwxyz\\\\0123456\\u00e9789\"]", true),
    IN("[\"01234567\x01\"]", false),
    IN("[\"0123456789abcdef\x1f\"]", false),
    IN("[\"01234567\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9xxxxxxxx\"]", true),
    /* Stray characters. */
    IN("[1,2]/* comment */", false),
    IN("// comment\n[]", false),
    IN("[1]#", false),
    IN("[@]", false),
    IN("[\x01]", false),
    IN("[\x7f]", false),
    IN("[+]", false),
    /* Where errors are: lines and columns (in characters, not bytes). */
    IN("{\n  \"a\": 1,\n  \"b\": [1, 2,, 3]\n}", false),
    IN("[\"\xc3\xa9\xc3\xa9\", \xe2\x82\xac]", false),
    IN("[\n\n\"x\ny\"]", false),
    IN("\n\n\n", false),
    IN("{\"a\":\r\n1,\r\n\"b\":x}", false),
};

static void test_table(void)
{
    for (size_t i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++) {
        const struct input *in = &inputs[i];
        bool is_accepted = agree(in->text, in->len, 0);
        if (is_accepted != in->is_accepted)
            TEST_FAIL("input %zu: expected %s: %s", i, in->is_accepted ? "accepted" : "refused",
                      shown(in->text, in->len));
        for (size_t f = 1; f < N_FLAGS; f++)
            agree(in->text, in->len, all_flags[f]);
    }
}

/*
 * Each kind of byte that ends a plain run, at each offset of a string:
 * strings are read eight bytes at a time, and the first of those bytes in
 * a word must be found wherever it is.
 */
static void test_runs(void)
{
    static const char *const stops[] = {
        "\"",   "\\n",  "\\u00e9",  "\x01",         "\x1f",
        "\n",   "\x7f", "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80",
        "\xc3", "\x80", "\xff",     "\xed\xa0\x80", " ",
        "~",
    };
    char text[64];
    for (size_t k = 0; k < sizeof(stops) / sizeof(stops[0]); k++) {
        for (size_t at = 0; at <= 20; at++) {
            for (size_t tail = 0; tail <= 12; tail += 4) {
                size_t o = 0, n = strlen(stops[k]);
                text[o++] = '[';
                text[o++] = '"';
                memset(text + o, 'a', at);
                o += at;
                memcpy(text + o, stops[k], n);
                o += n;
                memset(text + o, 'b', tail);
                o += tail;
                text[o++] = '"';
                text[o++] = ']';
                agree(text, o, 0);
                agree(text, o - 1, 0); /* cut short */
            }
        }
    }
}

/* The flags change what is accepted, exactly as in jansson. */
static void test_flags(void)
{
    json_t *v;
#define ACCEPTS(s, flags)                                                                          \
    (v = jsonr_loadb(s, sizeof(s) - 1, flags, NULL), json_decref(v), v != NULL)
    ASSERT(ACCEPTS("{\"a\":1,\"a\":2}", 0));
    ASSERT(!ACCEPTS("{\"a\":1,\"a\":2}", JSON_REJECT_DUPLICATES));
    ASSERT(ACCEPTS("{\"a\":1,\"b\":{\"a\":2}}", JSON_REJECT_DUPLICATES));
    ASSERT(!ACCEPTS("[\"\\u0000\"]", 0));
    ASSERT(ACCEPTS("[\"\\u0000\"]", JSON_ALLOW_NUL));
    ASSERT(!ACCEPTS("{\"\\u0000\":1}", JSON_ALLOW_NUL));
    ASSERT(!ACCEPTS("\"x\"", 0));
    ASSERT(ACCEPTS("\"x\"", JSON_DECODE_ANY));
    ASSERT(ACCEPTS(" 7 ", JSON_DECODE_ANY));
    ASSERT(!ACCEPTS("", JSON_DECODE_ANY));
#undef ACCEPTS

    /* The last of duplicate keys wins, in the first one's place. */
    v = jsonr_loadb("{\"a\":1,\"b\":2,\"a\":3}", 19, 0, NULL);
    ASSERT_NOT_NULL(v);
    ASSERT_INT_EQ(json_integer_value(json_object_get(v, "a")), 3);
    ASSERT_STR_EQ(json_object_iter_key(json_object_iter(v)), "a");
    json_decref(v);

    /* NUL kept, with the length. */
    v = jsonr_loadb("[\"a\\u0000b\"]", 12, JSON_ALLOW_NUL, NULL);
    ASSERT_NOT_NULL(v);
    ASSERT_INT_EQ(json_string_length(json_array_get(v, 0)), 3);
    ASSERT(memcmp(json_string_value(json_array_get(v, 0)), "a\0b", 4) == 0);
    json_decref(v);

    /* Integers and reals stay what they are written as. */
    v = jsonr_loadb("[-0,-0.0,1,1.0,1e0]", 19, 0, NULL);
    ASSERT_NOT_NULL(v);
    ASSERT(json_is_integer(json_array_get(v, 0)));
    ASSERT_INT_EQ(json_integer_value(json_array_get(v, 0)), 0);
    ASSERT(json_is_real(json_array_get(v, 1)));
    ASSERT(signbit(json_real_value(json_array_get(v, 1))));
    ASSERT(json_is_integer(json_array_get(v, 2)));
    ASSERT(json_is_real(json_array_get(v, 3)));
    ASSERT(json_is_real(json_array_get(v, 4)));
    json_decref(v);

    /* Any other flag is refused, not ignored. */
    json_error_t err;
    const size_t others[] = {JSON_DISABLE_EOF_CHECK, JSON_DECODE_INT_AS_REAL, 0x100};
    for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++) {
        ASSERT_NULL(jsonr_loadb("[1]", 3, others[i], &err));
        ASSERT_STR_EQ(err.text, "unsupported flags");
        ASSERT_INT_EQ(json_error_code(&err), json_error_invalid_argument);
    }
    /* As json_loadb: no buffer is an error; so is no error report, quietly. */
    agree(NULL, 0, 0);
    ASSERT_NULL(jsonr_loadb("[", 1, 0, NULL));
    /* On success the position is the length read, as jansson leaves it. */
    v = jsonr_loadb("[1] ", 4, 0, &err);
    ASSERT_NOT_NULL(v);
    ASSERT_INT_EQ(err.position, 4);
    ASSERT_INT_EQ(err.line, -1);
    json_decref(v);
}

/* The one place jsonr_loadb departs from json_loadb, on purpose: see jsonr.h. */
static void test_nul_byte_after_token(void)
{
    static const struct {
        const char *text;
        size_t len;
    } cases[] = {{"[1\0]", 4}, {"[true\0]", 7}, {"{\"a\":-2.5\0}", 11}, {"[null\0,0]", 9}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_error_t err;
        json_t *want = json_loadb(cases[i].text, cases[i].len, 0, NULL);
        ASSERT_NOT_NULL(want); /* jansson skips the NUL */
        json_decref(want);
        ASSERT_NULL(jsonr_loadb(cases[i].text, cases[i].len, 0, &err));
        ASSERT_INT_EQ(cases[i].text[err.position - 1], '\0');
    }
}

/*
 * `depth` arrays (or objects) one in the other, with `inner` in the middle;
 * an empty `inner` leaves the innermost empty.
 */
static char *nested(size_t depth, bool is_object, const char *inner, size_t *len)
{
    if (is_object && !*inner) {
        depth--;
        inner = "{}";
    }
    size_t open = is_object ? 5 : 1, n = depth * (open + 1) + strlen(inner);
    char *s = malloc(n + 1), *o = s;
    ASSERT_NOT_NULL(s);
    for (size_t i = 0; i < depth; i++) {
        memcpy(o, is_object ? "{\"k\":" : "[", open);
        o += open;
    }
    memcpy(o, inner, strlen(inner));
    o += strlen(inner);
    for (size_t i = 0; i < depth; i++)
        *o++ = is_object ? '}' : ']';
    *o = '\0';
    *len = n;
    return s;
}

static void test_depth(void)
{
    /* Every value counts as a level, scalars too: 2048 arrays hold only
     * another array, 2047 arrays a scalar. */
    static const struct {
        size_t depth;
        const char *inner;
        bool is_accepted;
    } cases[] = {
        {2047, "", true},    {2048, "", true},   {2049, "", false},
        {2047, "1", true},   {2048, "1", false}, {2047, "\"s\"", true},
        {2048, "[]", false}, {2048, "x", false}, {2048, "\"\\uD800\"", false},
        {3000, "", false},   {2047, "[", false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        for (int is_object = 0; is_object <= 1; is_object++) {
            size_t len;
            char *s = nested(cases[i].depth, is_object, cases[i].inner, &len);
            for (size_t f = 0; f < N_FLAGS; f++) {
                if (agree(s, len, all_flags[f]) != cases[i].is_accepted)
                    TEST_FAIL("depth %zu, %s, inner '%s': expected %s", cases[i].depth,
                              is_object ? "objects" : "arrays", cases[i].inner,
                              cases[i].is_accepted ? "accepted" : "refused");
            }
            free(s);
        }
    }
    /* Past the 32 frames held inline, objects whose keys have escapes:
     * each key is a decoded copy, which must outlive the frames moving as
     * they grow and the decoding of every string after it. */
    enum { LEVELS = 40 };
    char escaped[LEVELS * 32];
    size_t o = 0;
    for (int i = 0; i < LEVELS; i++)
        o += (size_t)snprintf(escaped + o, sizeof(escaped) - o, "{\"\\u00e9%d\":", i);
    o += (size_t)snprintf(escaped + o, sizeof(escaped) - o, "\"\\u00e8\"");
    for (int i = LEVELS - 1; i >= 0; i--)
        o += (size_t)snprintf(escaped + o, sizeof(escaped) - o, ",\"\\u00ea\\n\":%d}", i);
    ASSERT(o < sizeof(escaped));
    for (size_t f = 0; f < N_FLAGS; f++)
        ASSERT(agree(escaped, o, all_flags[f]));
    /* Far deeper than the limit: refused at the limit, with no recursion to
     * overflow the stack (not compared with jansson, which would recurse). */
    size_t n = 1000000;
    char *deep = malloc(n);
    ASSERT_NOT_NULL(deep);
    memset(deep, '[', n);
    json_error_t err;
    ASSERT_NULL(jsonr_loadb(deep, n, 0, &err));
    ASSERT_STR_EQ(err.text, "maximum parsing depth reached near '['");
    ASSERT_INT_EQ(err.position, JSON_PARSER_MAX_DEPTH + 1);
    free(deep);
    /* Wide is not deep. */
    n = 3 * 66667 + 1; /* "[[]", ",[]" many times, "]" */
    char *wide = malloc(n);
    ASSERT_NOT_NULL(wide);
    memcpy(wide, "[[]", 3);
    for (size_t i = 3; i + 3 < n; i += 3)
        memcpy(wide + i, ",[]", 3);
    wide[n - 1] = ']';
    json_t *v = jsonr_loadb(wide, n, 0, &err);
    ASSERT_NOT_NULL(v);
    ASSERT(json_array_size(v) > 60000);
    json_decref(v);
    free(wide);
}

/* Where errors are reported, checked by hand as well as against jansson. */
static void test_error_place(void)
{
    static const struct {
        const char *text;
        const char *message;
        int line, column, position;
    } cases[] = {
        /* After the token the error is about: the second ',' here. */
        {"{\n  \"a\": 1,\n  \"b\": [1, 2,, 3]\n}", "unexpected token near ','", 3, 14, 26},
        /* Columns count characters, positions bytes. */
        {"[\"\xc3\xa9\xc3\xa9\", \xe2\x82\xac]", "invalid token near '\xe2\x82\xac'", 1, 8, 12},
        /* A newline in a string: before it. */
        {"[\n\n\"x\ny\"]", "unexpected newline near '\"x'", 3, 2, 5},
        /* At the byte that is not UTF-8, not quoted. */
        {"[\"ab\", \xff]", "unable to decode byte 0xff", 1, 7, 7},
        /* The input ended. */
        {"{\"a\":\r\n", "unexpected token near end of file", 2, 0, 7},
        {"[\"abc", "premature end of input near '\"abc'", 1, 5, 5},
        /* A lone surrogate: once the whole string is read. */
        {"[\"\\uD800 and then a lot more\"]", "invalid Unicode '\\uD800'", 1, 29, 29},
        /* A long token is not quoted. */
        {"[123456789012345678901234567890]", "too big integer", 1, 31, 31},
        {"[1e999]", "real number overflow near '1e999'", 1, 6, 6},
        {"{\"k\":1,\"k\":2}", "duplicate object key near '\"k\"'", 1, 10, 10},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t len = strlen(cases[i].text);
        size_t flags = strstr(cases[i].text, "\"k\"") ? JSON_REJECT_DUPLICATES : 0;
        json_error_t err;
        ASSERT_NULL(jsonr_loadb(cases[i].text, len, flags, &err));
        ASSERT_STR_EQ(err.text, cases[i].message);
        ASSERT_INT_EQ(err.line, cases[i].line);
        ASSERT_INT_EQ(err.column, cases[i].column);
        ASSERT_INT_EQ(err.position, cases[i].position);
        agree(cases[i].text, len, flags);
    }
    /* Quoting stops before a NUL, and never cuts a character: jansson
     * would quote "\"\\" and the first byte of the 'é' here. */
    json_error_t err, want;
    ASSERT_NULL(jsonr_loadb("[\"\\\xc3\xa9\"]", 6, 0, &err));
    ASSERT_NULL(json_loadb("[\"\\\xc3\xa9\"]", 6, 0, &want));
    ASSERT_STR_EQ(err.text, "invalid escape near '\"\\'");
    ASSERT_INT_EQ(err.position, want.position);
    ASSERT_INT_EQ(err.column, want.column);
}

/* jansson's allocations fail after this many more (negative: never). */
static long allocations_left = -1;

static void *failing_malloc(size_t n)
{
    if (allocations_left == 0)
        return NULL;
    if (allocations_left > 0)
        allocations_left--;
    return malloc(n);
}

/* Each of jansson's allocations failing in turn: an error, nothing leaked, then the value. */
static void test_out_of_memory(void)
{
    const char *text = "{\"a\":[1,2.5,\"x\",{\"\\u00e9\":[true,null]}],\"b\":\"c\\nd\",\"a\":{}}";
    json_t *want = json_loads(text, 0, NULL);
    ASSERT_NOT_NULL(want);
    for (long k = 0;; k++) {
        json_error_t err;
        allocations_left = k;
        json_set_alloc_funcs(failing_malloc, free);
        json_t *v = jsonr_loadb(text, strlen(text), 0, &err);
        json_set_alloc_funcs(malloc, free);
        if (v) {
            ASSERT(k > 5);
            ASSERT(same_value(v, want));
            json_decref(v);
            break;
        }
        ASSERT_INT_EQ(json_error_code(&err), json_error_out_of_memory);
        ASSERT_STR_EQ(err.text, "out of memory");
    }
    json_decref(want);
}

/* A small fixed-seed generator: the fuzz loop is the same every run. */
static uint64_t rng_state = 0x9e3779b97f4a7c15u;

static uint32_t rng(uint32_t n)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)((rng_state >> 11) % n);
}

static const char *const seeds[] = {
    "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"tools/call\",\"params\":{\"name\":\"turso_query\","
    "\"arguments\":{\"sql\":\"SELECT id, name, qty, price, note FROM items WHERE id = "
    "?\",\"args\":[1234]}}}",
    "{\"jsonrpc\":\"2.0\",\"id\":\"abc\",\"method\":\"tools/list\",\"params\":{}}",
    "[{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"},{\"jsonrpc\":\"2.0\",\"id\":"
    "null,\"result\":{}}]",
    "{\"baton\":null,\"base_url\":null,\"results\":[{\"type\":\"ok\",\"response\":{\"type\":"
    "\"execute\",\"result\":{\"cols\":[{\"name\":\"id\",\"decltype\":\"INTEGER\"}],\"rows\":[[{"
    "\"type\":\"integer\",\"value\":\"1\"},{\"type\":\"float\",\"value\":1.5e-3},{\"type\":"
    "\"text\",\"value\":\"caf\\u00e9 \\\"q\\\" \\\\ \\n\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"},{"
    "\"type\":\"null\"},{\"type\":\"blob\",\"base64\":\"AAEC\"}]],\"affected_row_count\":0,"
    "\"last_insert_rowid\":null,\"replication_index\":\"12\"}}}]}",
    "{\"a\":{\"a\":{\"a\":[1,-2,3.25,-0,0e0,1E+2,true,false,null,\"\\uD83D\\uDE00\",\"\\u0000\"]}},"
    "\"a\":1,\"b\":[],\"c\":{}}",
    "[\"\\/\\b\\f\\n\\r\\t\\u00e9\\u20AC\", 9223372036854775807, -9223372036854775808, "
    "1.7976931348623157e308, 4.9e-324]",
    "{\n  \"databases\": [\n    {\"Name\": \"notes\", \"DbId\": \"0a1b\", \"regions\": [\"ams\"]}\n"
    "  ]\n}\n",
    "\"just a string\"",
    "-12.5e-7",
    "[[[[[[[[[[]]]]]]]]]]",
};

static const char *const fragments[] = {
    "\"",
    "\\",
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    "\\u",
    "\\uD800",
    "\\uDC00",
    "\\u0000",
    "\\uDBFF\\uDFFF",
    "\xc3\xa9",
    "\xe2\x82\xac",
    "\xf0\x9f\x98\x80",
    "\xed\xa0\x80",
    "\xc0\xaf",
    "\xe0\x80\x80",
    "\xf4\x90\x80\x80",
    "\xc3",
    "\xe2\x82",
    "\x80",
    "\xff",
    "1e400",
    "-0",
    "99999999999999999999",
    "0.5",
    "1e-5",
    "true",
    "nul",
    "\"a\":1,",
    "\"a\"",
    " ",
    "\n",
    "\t",
    "\r",
    "\x01",
    "01",
    "-",
    ".",
    "e",
    "+",
};

static const unsigned char interesting[] = {
    '"', '\\', '{',  '}',  '[',  ']',  ',',  ':',  '0',  '9',  '-',  '.',  'e',  'u',
    ' ', '\n', 0x00, 0x1f, 0x7f, 0x80, 0xbf, 0xc3, 0xed, 0xf0, 0xf4, 0xf5, 0xff, 'a'};

/* One random change to s[0..*len) (room for `cap` bytes). */
static void mutate(char *s, size_t *len, size_t cap)
{
    size_t n = *len, at = n ? rng((uint32_t)n) : 0;
    switch (rng(6)) {
    case 0: /* a random byte */
        if (n)
            s[at] = (char)rng(256);
        break;
    case 1: /* a byte that matters to the grammar */
        if (n)
            s[at] = (char)interesting[rng(sizeof(interesting))];
        break;
    case 2: { /* a fragment inserted */
        const char *f = fragments[rng(sizeof(fragments) / sizeof(fragments[0]))];
        size_t k = strlen(f);
        if (n + k <= cap) {
            memmove(s + at + k, s + at, n - at);
            memcpy(s + at, f, k);
            *len = n + k;
        }
        break;
    }
    case 3: { /* a few bytes deleted */
        size_t k = rng(4) + 1;
        if (at + k <= n) {
            memmove(s + at, s + at + k, n - at - k);
            *len = n - k;
        }
        break;
    }
    case 4: /* cut short */
        *len = at;
        break;
    default: { /* a piece repeated */
        size_t k = rng(16) + 1;
        if (at + k <= n && n + k <= cap) {
            memmove(s + at + k, s + at, n - at);
            *len = n + k;
        }
        break;
    }
    }
}

/*
 * Reals to the bit, where a fast path computes some and strtod the rest:
 * random digits, points and exponents around both paths' limits.
 */
static void test_reals(void)
{
    char text[64];
    for (int i = 0; i < 20000; i++) {
        size_t o = 0, n_digits = rng(20) + 1, point = rng((uint32_t)n_digits + 1);
        text[o++] = '[';
        if (rng(2))
            text[o++] = '-';
        for (size_t d = 0; d < n_digits; d++) {
            if (d == point && d > 0)
                text[o++] = '.';
            /* No leading zeros, but zeros after them often: 0.00012, 1200.5 */
            text[o++] = (char)('0' + (d == 0 ? (point == 1 ? rng(10) : rng(9) + 1)
                                             : (rng(3) ? rng(10) : 0)));
        }
        /* Without a point, an exponent makes it a real. */
        if (rng(2) || point == 0 || point == n_digits)
            o += (size_t)snprintf(text + o, sizeof(text) - o, "e%d", (int)rng(80) - 40);
        text[o++] = ']';
        agree(text, o, 0);
    }
}

static void test_fuzz(void)
{
    enum { ITERATIONS = 100000, CAP = 1024 };
    char s[CAP];
    size_t n_accepted = 0;
    for (int i = 0; i < ITERATIONS; i++) {
        const char *seed = seeds[rng(sizeof(seeds) / sizeof(seeds[0]))];
        size_t len = strlen(seed);
        memcpy(s, seed, len);
        for (uint32_t k = rng(4) + 1; k > 0; k--)
            mutate(s, &len, CAP);
        n_accepted += agree(s, len, all_flags[i % N_FLAGS]);
    }
    /* Some mutations keep the text valid, and most do not: both are exercised. */
    ASSERT(n_accepted > ITERATIONS / 50);
    ASSERT(n_accepted < ITERATIONS / 2);
}

int main(void)
{
    RUN(test_table);
    RUN(test_runs);
    RUN(test_flags);
    RUN(test_nul_byte_after_token);
    RUN(test_depth);
    RUN(test_error_place);
    RUN(test_out_of_memory);
    RUN(test_reals);
    RUN(test_fuzz);
    TEST_DONE();
}
