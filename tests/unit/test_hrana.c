/*
 * Unit tests for the Hrana value, Stmt and origin helpers (no network):
 * encoding at the edges of int64, 2^53, floats, base64 and text, and the
 * messages a client sees for invalid arguments.
 */
#include "hrana.h"

#include <curl/curl.h>
#include <math.h>
#include <sodium.h>

#include "test.h"

/* Dumps `j` compactly, compares with `expected` and releases `j`. */
#define ASSERT_JSON(j, expected)                                                                   \
    do {                                                                                           \
        json_t *j_ = (j);                                                                          \
        ASSERT_NOT_NULL(j_);                                                                       \
        char *d_ = json_dumps(j_, JSON_COMPACT | JSON_ENCODE_ANY);                                 \
        ASSERT_NOT_NULL(d_);                                                                       \
        ASSERT_STR_EQ(d_, (expected));                                                             \
        free(d_);                                                                                  \
        json_decref(j_);                                                                           \
    } while (0)

static json_t *load(const char *text)
{
    json_t *j = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    if (!j)
        TEST_FAIL("bad test JSON: %s", text);
    return j;
}

/* hrana_value_from_arg on a JSON text; err gets the reason on failure. */
static json_t *arg_of(const char *text, char *err, size_t err_len)
{
    json_t *in = load(text);
    json_t *v = hrana_value_from_arg(in, err, err_len);
    json_decref(in);
    return v;
}

static json_t *cell_of(const char *text)
{
    json_t *in = load(text);
    json_t *c = hrana_cell_from_value(in);
    json_decref(in);
    return c;
}

static void expect_arg_rejected(const char *text, const char *reason_part)
{
    char err[256] = "";
    json_t *v = arg_of(text, err, sizeof(err));
    if (v)
        TEST_FAIL("%s was accepted", text);
    ASSERT_CONTAINS(err, reason_part);
}

static void arg_integers(void)
{
    char err[256] = "";
    json_t *in = json_integer(INT64_MAX);
    ASSERT_JSON(hrana_value_from_arg(in, err, sizeof(err)),
                "{\"type\":\"integer\",\"value\":\"9223372036854775807\"}");
    json_decref(in);
    in = json_integer(INT64_MIN);
    ASSERT_JSON(hrana_value_from_arg(in, err, sizeof(err)),
                "{\"type\":\"integer\",\"value\":\"-9223372036854775808\"}");
    json_decref(in);
    ASSERT_JSON(arg_of("0", err, sizeof(err)), "{\"type\":\"integer\",\"value\":\"0\"}");
    ASSERT_JSON(arg_of("-1", err, sizeof(err)), "{\"type\":\"integer\",\"value\":\"-1\"}");
    ASSERT_JSON(arg_of("9007199254740993", err, sizeof(err)),
                "{\"type\":\"integer\",\"value\":\"9007199254740993\"}");
    /* From JSON text, as a client sends it. */
    ASSERT_JSON(arg_of("9223372036854775807", err, sizeof(err)),
                "{\"type\":\"integer\",\"value\":\"9223372036854775807\"}");
    ASSERT_JSON(arg_of("-9223372036854775808", err, sizeof(err)),
                "{\"type\":\"integer\",\"value\":\"-9223372036854775808\"}");
}

static void arg_integer_value_objects(void)
{
    char err[256] = "";
    ASSERT_JSON(
        arg_of("{\"type\":\"integer\",\"value\":\"9223372036854775807\"}", err, sizeof(err)),
        "{\"type\":\"integer\",\"value\":\"9223372036854775807\"}");
    ASSERT_JSON(
        arg_of("{\"type\":\"integer\",\"value\":\"-9223372036854775808\"}", err, sizeof(err)),
        "{\"type\":\"integer\",\"value\":\"-9223372036854775808\"}");
    /* Leading zeros are decimal, and the value is sent in canonical form. */
    ASSERT_JSON(arg_of("{\"type\":\"integer\",\"value\":\"007\"}", err, sizeof(err)),
                "{\"type\":\"integer\",\"value\":\"7\"}");
    /* Extra members are dropped. */
    ASSERT_JSON(arg_of("{\"type\":\"integer\",\"value\":\"5\",\"x\":1}", err, sizeof(err)),
                "{\"type\":\"integer\",\"value\":\"5\"}");

    const char *bad[] = {"9223372036854775808",
                         "-9223372036854775809",
                         "18446744073709551616",
                         "",
                         " 1",
                         "1 ",
                         "+1",
                         "0x10",
                         "1.5",
                         "1e3",
                         "-",
                         "--1",
                         "１"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char text[128];
        snprintf(text, sizeof(text), "{\"type\":\"integer\",\"value\":\"%s\"}", bad[i]);
        expect_arg_rejected(text, "is not a decimal integer between -9223372036854775808 and "
                                  "9223372036854775807");
    }
    /* The message quotes the input, made printable. */
    expect_arg_rejected("{\"type\":\"integer\",\"value\":\"9223372036854775808\"}",
                        "\"9223372036854775808\" is not");
    expect_arg_rejected("{\"type\":\"integer\",\"value\":\"a\\u0000b\"}", "\"a?b\" is not");
    expect_arg_rejected("{\"type\":\"integer\",\"value\":42}", "must be a string");
    expect_arg_rejected("{\"type\":\"integer\"}", "must be a string");
}

static void cell_integer_edges(void)
{
    ASSERT_JSON(cell_of("{\"type\":\"integer\",\"value\":\"0\"}"), "0");
    ASSERT_JSON(cell_of("{\"type\":\"integer\",\"value\":\"9007199254740991\"}"),
                "9007199254740991");
    ASSERT_JSON(cell_of("{\"type\":\"integer\",\"value\":\"-9007199254740991\"}"),
                "-9007199254740991");
    ASSERT_JSON(cell_of("{\"type\":\"integer\",\"value\":\"9007199254740992\"}"),
                "{\"type\":\"integer\",\"value\":\"9007199254740992\"}");
    ASSERT_JSON(cell_of("{\"type\":\"integer\",\"value\":\"-9007199254740992\"}"),
                "{\"type\":\"integer\",\"value\":\"-9007199254740992\"}");
    ASSERT_JSON(cell_of("{\"type\":\"integer\",\"value\":\"9223372036854775807\"}"),
                "{\"type\":\"integer\",\"value\":\"9223372036854775807\"}");
    ASSERT_JSON(cell_of("{\"type\":\"integer\",\"value\":\"-9223372036854775808\"}"),
                "{\"type\":\"integer\",\"value\":\"-9223372036854775808\"}");
    /* A safe integer in a cell is a plain JSON integer, not a real. */
    json_t *c = cell_of("{\"type\":\"integer\",\"value\":\"-42\"}");
    ASSERT(json_is_integer(c));
    ASSERT_INT_EQ(json_integer_value(c), -42);
    json_decref(c);

    ASSERT_NULL(cell_of("{\"type\":\"integer\",\"value\":\"9223372036854775808\"}"));
    ASSERT_NULL(cell_of("{\"type\":\"integer\",\"value\":\"-9223372036854775809\"}"));
    ASSERT_NULL(cell_of("{\"type\":\"integer\",\"value\":5}"));
    ASSERT_NULL(cell_of("{\"type\":\"integer\",\"value\":\"abc\"}"));
    ASSERT_NULL(cell_of("{\"type\":\"integer\",\"value\":\"\"}"));
    ASSERT_NULL(cell_of("{\"type\":\"integer\"}"));
}

static void arg_bool_null(void)
{
    char err[256] = "";
    ASSERT_JSON(arg_of("true", err, sizeof(err)), "{\"type\":\"integer\",\"value\":\"1\"}");
    ASSERT_JSON(arg_of("false", err, sizeof(err)), "{\"type\":\"integer\",\"value\":\"0\"}");
    ASSERT_JSON(arg_of("null", err, sizeof(err)), "{\"type\":\"null\"}");
    ASSERT_JSON(arg_of("{\"type\":\"null\"}", err, sizeof(err)), "{\"type\":\"null\"}");
    ASSERT_NULL(hrana_value_from_arg(NULL, err, sizeof(err)));
    /* A NULL error buffer is allowed. */
    ASSERT_NULL(hrana_value_from_arg(NULL, NULL, 0));
}

static void arg_floats(void)
{
    char err[256] = "";
    ASSERT_JSON(arg_of("2.5", err, sizeof(err)), "{\"type\":\"float\",\"value\":2.5}");
    /* A real written as an integral number stays a float. */
    ASSERT_JSON(arg_of("1.0", err, sizeof(err)), "{\"type\":\"float\",\"value\":1.0}");
    ASSERT_JSON(arg_of("1e2", err, sizeof(err)), "{\"type\":\"float\",\"value\":100.0}");
    ASSERT_JSON(arg_of("{\"type\":\"float\",\"value\":1}", err, sizeof(err)),
                "{\"type\":\"float\",\"value\":1.0}");
    ASSERT_JSON(arg_of("1.7976931348623157e308", err, sizeof(err)),
                "{\"type\":\"float\",\"value\":1.7976931348623157e308}");

    /* -0.0 keeps its sign bit both ways. */
    json_t *in = json_real(-0.0);
    json_t *v = hrana_value_from_arg(in, err, sizeof(err));
    json_decref(in);
    ASSERT_NOT_NULL(v);
    ASSERT(json_is_real(json_object_get(v, "value")));
    ASSERT(signbit(json_real_value(json_object_get(v, "value"))));
    ASSERT_JSON(v, "{\"type\":\"float\",\"value\":-0.0}");
    ASSERT_JSON(arg_of("-0.0", err, sizeof(err)), "{\"type\":\"float\",\"value\":-0.0}");

    /* jansson cannot hold a non-finite real at all, so no client can send one. */
    ASSERT_NULL(json_real(NAN));
    ASSERT_NULL(json_real(INFINITY));
    expect_arg_rejected("{\"type\":\"float\",\"value\":null}",
                        "a float value must be a JSON number");
    expect_arg_rejected("{\"type\":\"float\",\"value\":\"1.5\"}",
                        "a float value must be a JSON number");
}

static void cell_floats(void)
{
    /* Non-finite results come back as null and stay null. */
    ASSERT_JSON(cell_of("{\"type\":\"float\",\"value\":null}"),
                "{\"type\":\"float\",\"value\":null}");
    ASSERT_JSON(cell_of("{\"type\":\"float\",\"value\":2.5}"),
                "{\"type\":\"float\",\"value\":2.5}");
    ASSERT_JSON(cell_of("{\"type\":\"float\",\"value\":4}"), "{\"type\":\"float\",\"value\":4.0}");
    ASSERT_JSON(cell_of("{\"type\":\"float\",\"value\":-1e308}"),
                "{\"type\":\"float\",\"value\":-1e308}");
    json_t *c = cell_of("{\"type\":\"float\",\"value\":-0.0}");
    ASSERT_NOT_NULL(c);
    ASSERT(signbit(json_real_value(json_object_get(c, "value"))));
    ASSERT_JSON(c, "{\"type\":\"float\",\"value\":-0.0}");
    ASSERT_NULL(cell_of("{\"type\":\"float\",\"value\":\"1.5\"}"));
    ASSERT_NULL(cell_of("{\"type\":\"float\"}"));
}

/* The standard base64 of `bin` in the variant asked for; the caller frees it. */
static char *b64(const unsigned char *bin, size_t len, int variant)
{
    size_t cap = sodium_base64_encoded_len(len, variant);
    char *s = malloc(cap);
    ASSERT_NOT_NULL(s);
    sodium_bin2base64(s, cap, bin, len, variant);
    return s;
}

/* {"base64": s} as an argument; returns the blob value or NULL. */
static json_t *blob_arg(const char *s, char *err, size_t err_len)
{
    json_t *in = json_pack("{s:s}", "base64", s);
    ASSERT_NOT_NULL(in);
    json_t *v = hrana_value_from_arg(in, err, err_len);
    json_decref(in);
    return v;
}

static void blob_roundtrip(const unsigned char *bin, size_t len)
{
    char err[256] = "";
    char *padded = b64(bin, len, sodium_base64_VARIANT_ORIGINAL);
    char *unpadded = b64(bin, len, sodium_base64_VARIANT_ORIGINAL_NO_PADDING);
    json_t *v = blob_arg(padded, err, sizeof(err));
    if (!v)
        TEST_FAIL("padded blob of %zu bytes rejected: %s", len, err);
    ASSERT_STR_EQ(json_string_value(json_object_get(v, "type")), "blob");
    ASSERT_STR_EQ(json_string_value(json_object_get(v, "base64")), unpadded);
    json_decref(v);
    v = blob_arg(unpadded, err, sizeof(err));
    if (!v)
        TEST_FAIL("unpadded blob of %zu bytes rejected: %s", len, err);
    ASSERT_STR_EQ(json_string_value(json_object_get(v, "base64")), unpadded);
    json_decref(v);
    free(padded);
    free(unpadded);
}

static void blobs(void)
{
    char err[256] = "";
    unsigned char all[256];
    for (size_t i = 0; i < sizeof(all); i++)
        all[i] = (unsigned char)i;

    ASSERT_JSON(blob_arg("", err, sizeof(err)), "{\"type\":\"blob\",\"base64\":\"\"}");
    /* Every byte value, and every length mod 3 (no, one or two = of padding). */
    blob_roundtrip(all, 256);
    blob_roundtrip(all, 255);
    blob_roundtrip(all, 254);
    blob_roundtrip(all + 250, 1);
    /* Around the 4096-character chunk the checker decodes at a time. */
    unsigned char *big = malloc(20000);
    ASSERT_NOT_NULL(big);
    for (size_t i = 0; i < 20000; i++)
        big[i] = (unsigned char)(i * 7 + (i >> 8));
    size_t lens[] = {3071, 3072, 3073, 3074, 6144, 6145, 20000};
    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++)
        blob_roundtrip(big, lens[i]);
    free(big);

    ASSERT_JSON(arg_of("{\"type\":\"blob\",\"base64\":\"3q2+7w==\"}", err, sizeof(err)),
                "{\"type\":\"blob\",\"base64\":\"3q2+7w\"}");
    ASSERT_JSON(arg_of("{\"base64\":\"3q2+7w\"}", err, sizeof(err)),
                "{\"type\":\"blob\",\"base64\":\"3q2+7w\"}");

    /* 0xfb 0xff is "+/8" in the standard alphabet and "-_8" in the URL-safe one. */
    const unsigned char fb[] = {0xfb, 0xff};
    char *std = b64(fb, sizeof(fb), sodium_base64_VARIANT_ORIGINAL_NO_PADDING);
    char *url = b64(fb, sizeof(fb), sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    ASSERT_STR_EQ(std, "+/8");
    ASSERT_STR_EQ(url, "-_8");
    json_t *v = blob_arg(std, err, sizeof(err));
    ASSERT_NOT_NULL(v);
    json_decref(v);
    ASSERT_NULL(blob_arg(url, err, sizeof(err)));
    ASSERT_CONTAINS(err, "\"base64\" is not valid base64");
    free(std);
    free(url);

    const char *bad[] = {
        "A", "AA=", "AAA==", "AAAA=", "AA==AA==", "AA AA", "AA\nAA", "=AAA", "Zm9v!"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        v = blob_arg(bad[i], err, sizeof(err));
        if (v)
            TEST_FAIL("base64 \"%s\" was accepted", bad[i]);
        ASSERT_CONTAINS(err, "not valid base64");
    }
    /* Padding in the middle of a long string, inside an early chunk. */
    char *mid = malloc(8200);
    ASSERT_NOT_NULL(mid);
    memcpy(mid, "AA==", 4);
    memset(mid + 4, 'A', 8192);
    mid[8196] = '\0';
    ASSERT_NULL(blob_arg(mid, err, sizeof(err)));
    free(mid);

    expect_arg_rejected("{\"base64\":5}", "a blob needs \"base64\" with a base64 string");
    expect_arg_rejected("{\"type\":\"blob\",\"value\":\"AAAA\"}", "a blob needs \"base64\"");

    ASSERT_JSON(cell_of("{\"type\":\"blob\",\"base64\":\"3q2+7w\"}"),
                "{\"type\":\"blob\",\"base64\":\"3q2+7w\"}");
    ASSERT_JSON(cell_of("{\"type\":\"blob\",\"base64\":\"\"}"),
                "{\"type\":\"blob\",\"base64\":\"\"}");
    ASSERT_NULL(cell_of("{\"type\":\"blob\"}"));
    ASSERT_NULL(cell_of("{\"type\":\"blob\",\"base64\":null}"));
}

static void text_values(void)
{
    char err[256] = "";
    ASSERT_JSON(arg_of("\"h\\u00e9llo \\u2713 \\ud83c\\udf89\"", err, sizeof(err)),
                "{\"type\":\"text\",\"value\":\"h\xc3\xa9llo \xe2\x9c\x93 \xf0\x9f\x8e\x89\"}");
    ASSERT_JSON(arg_of("\"\"", err, sizeof(err)), "{\"type\":\"text\",\"value\":\"\"}");
    ASSERT_JSON(arg_of("{\"type\":\"text\",\"value\":\"x\"}", err, sizeof(err)),
                "{\"type\":\"text\",\"value\":\"x\"}");
    /* A text that looks like a number stays text. */
    ASSERT_JSON(arg_of("\"42\"", err, sizeof(err)), "{\"type\":\"text\",\"value\":\"42\"}");

    /* Embedded NUL survives both ways. */
    json_t *in = json_stringn("a\0b", 3);
    json_t *v = hrana_value_from_arg(in, err, sizeof(err));
    json_decref(in);
    ASSERT_NOT_NULL(v);
    ASSERT_INT_EQ(json_string_length(json_object_get(v, "value")), 3);
    ASSERT(memcmp(json_string_value(json_object_get(v, "value")), "a\0b", 3) == 0);
    ASSERT_JSON(v, "{\"type\":\"text\",\"value\":\"a\\u0000b\"}");

    json_t *c = cell_of("{\"type\":\"text\",\"value\":\"a\\u0000b\"}");
    ASSERT(json_is_string(c));
    ASSERT_INT_EQ(json_string_length(c), 3);
    ASSERT(memcmp(json_string_value(c), "a\0b", 3) == 0);
    json_decref(c);
    ASSERT_JSON(cell_of("{\"type\":\"text\",\"value\":\"\\u00e9\"}"), "\"\xc3\xa9\"");

    expect_arg_rejected("{\"type\":\"text\",\"value\":5}", "a text value must be a string");
    ASSERT_NULL(cell_of("{\"type\":\"text\",\"value\":5}"));
}

static void cell_other(void)
{
    ASSERT_JSON(cell_of("{\"type\":\"null\"}"), "null");
    ASSERT_NULL(cell_of("{\"type\":\"Text\",\"value\":\"x\"}"));
    ASSERT_NULL(cell_of("{\"type\":\"weird\"}"));
    ASSERT_NULL(cell_of("{\"value\":\"x\"}"));
    ASSERT_NULL(cell_of("\"plain\""));
    ASSERT_NULL(cell_of("5"));
    ASSERT_NULL(hrana_cell_from_value(NULL));
}

static void arg_invalid(void)
{
    expect_arg_rejected("[1]", "an array is not a value");
    expect_arg_rejected("{}", "an object must be {\"base64\": \"...\"} (a blob) or a Hrana value");
    expect_arg_rejected("{\"x\":1}", "an object must be");
    expect_arg_rejected("{\"type\":5}", "\"type\" must be a string");
    expect_arg_rejected(
        "{\"type\":\"Text\",\"value\":\"a\"}",
        "unknown value type \"Text\" (expected null, integer, float, text or blob)");
}

static json_t *stmt_of(const char *sql, const char *args_text, char *err, size_t err_len)
{
    json_t *args = args_text ? load(args_text) : NULL;
    json_t *s = hrana_stmt(sql, args, err, err_len);
    json_decref(args);
    return s;
}

static void stmt_positional(void)
{
    char err[256] = "";
    ASSERT_JSON(stmt_of("SELECT ?, ?, ?", "[1, \"a\", null]", err, sizeof(err)),
                "{\"sql\":\"SELECT ?, ?, ?\",\"args\":[{\"type\":\"integer\",\"value\":\"1\"},"
                "{\"type\":\"text\",\"value\":\"a\"},{\"type\":\"null\"}]}");
    ASSERT_JSON(stmt_of("SELECT ?", "[{\"base64\":\"AAE=\"}]", err, sizeof(err)),
                "{\"sql\":\"SELECT ?\",\"args\":[{\"type\":\"blob\",\"base64\":\"AAE\"}]}");
}

static void stmt_named(void)
{
    char err[256] = "";
    /* Names go as given, prefixed or not, in the order given. */
    ASSERT_JSON(stmt_of("SELECT :a, @b, $c, :d",
                        "{\":a\": 1, \"@b\": 2.5, \"$c\": \"x\", \"d\": true}", err, sizeof(err)),
                "{\"sql\":\"SELECT :a, @b, $c, :d\",\"named_args\":["
                "{\"name\":\":a\",\"value\":{\"type\":\"integer\",\"value\":\"1\"}},"
                "{\"name\":\"@b\",\"value\":{\"type\":\"float\",\"value\":2.5}},"
                "{\"name\":\"$c\",\"value\":{\"type\":\"text\",\"value\":\"x\"}},"
                "{\"name\":\"d\",\"value\":{\"type\":\"integer\",\"value\":\"1\"}}]}");
}

static void stmt_no_args(void)
{
    char err[256] = "";
    ASSERT_JSON(stmt_of("SELECT 1", NULL, err, sizeof(err)), "{\"sql\":\"SELECT 1\"}");
    ASSERT_JSON(stmt_of("SELECT 1", "null", err, sizeof(err)), "{\"sql\":\"SELECT 1\"}");
    ASSERT_JSON(stmt_of("SELECT 1", "[]", err, sizeof(err)), "{\"sql\":\"SELECT 1\"}");
    ASSERT_JSON(stmt_of("SELECT 1", "{}", err, sizeof(err)), "{\"sql\":\"SELECT 1\"}");
    ASSERT_JSON(stmt_of("", NULL, err, sizeof(err)), "{\"sql\":\"\"}");
}

static void expect_stmt_rejected(const char *sql, const char *args_text, const char *message)
{
    char err[256] = "";
    json_t *s = stmt_of(sql, args_text, err, sizeof(err));
    if (s)
        TEST_FAIL("stmt with args %s was accepted", args_text ? args_text : "(none)");
    ASSERT_STR_EQ(err, message);
}

static void stmt_invalid(void)
{
    expect_stmt_rejected("SELECT ?, ?", "[1, [2]]",
                         "argument 2: an array is not a value (use a string, a number, a "
                         "boolean, null or {\"base64\": \"...\"})");
    expect_stmt_rejected("SELECT ?", "[{\"type\":\"integer\",\"value\":\"9223372036854775808\"}]",
                         "argument 1: \"9223372036854775808\" is not a decimal integer between "
                         "-9223372036854775808 and 9223372036854775807");
    expect_stmt_rejected("SELECT :x", "{\"x\": {\"base64\": \"-_8\"}}",
                         "argument \"x\": \"base64\" is not valid base64 (standard alphabet "
                         "A-Z a-z 0-9 + /, with or without = padding)");
    expect_stmt_rejected("SELECT :x", "{\"\": 1}", "argument names must not be empty");
    expect_stmt_rejected("SELECT 1", "\"1\"",
                         "arguments must be an array (positional) or an object (named), not a "
                         "string");
    expect_stmt_rejected("SELECT 1", "7",
                         "arguments must be an array (positional) or an object (named), not a "
                         "number or boolean");
    expect_stmt_rejected(NULL, NULL, "the SQL text is missing");
    expect_stmt_rejected("SELECT \xff", NULL,
                         "the SQL text is not valid UTF-8 (or memory ran out)");
    /* A small error buffer truncates instead of overflowing. */
    char small[8];
    json_t *args = load("[[1]]");
    ASSERT_NULL(hrana_stmt("SELECT ?", args, small, sizeof(small)));
    ASSERT_STR_EQ(small, "argumen");
    json_decref(args);
}

static void expect_origin(const char *url, const char *origin)
{
    char out[128];
    enum tm_err err = hrana_origin(url, out, sizeof(out));
    if (err != TM_OK)
        TEST_FAIL("origin of %s: error %d", url, (int)err);
    ASSERT_STR_EQ(out, origin);
}

static void origins(void)
{
    expect_origin("https://notes-acme.turso.io", "https://notes-acme.turso.io");
    expect_origin("https://notes-acme.aws-us-east-1.turso.io/",
                  "https://notes-acme.aws-us-east-1.turso.io");
    expect_origin("HTTPS://Notes-Acme.Turso.IO/v2/pipeline", "https://notes-acme.turso.io");
    expect_origin("http://127.0.0.1:8080", "http://127.0.0.1:8080");
    expect_origin("http://127.0.0.1:8080/v2/pipeline?x=1", "http://127.0.0.1:8080");
    expect_origin("http://localhost:65535/a/b", "http://localhost:65535");
    expect_origin("libsql://notes-acme.turso.io", "https://notes-acme.turso.io");
    expect_origin("libsql://notes-acme.turso.io?authToken=abc", "https://notes-acme.turso.io");
    expect_origin("LIBSQL://db.turso.io/path#frag", "https://db.turso.io");
    expect_origin("https://db.turso.io#frag", "https://db.turso.io");
    expect_origin("http://[::1]:8080/x", "http://[::1]:8080");
    expect_origin("http://[::1]", "http://[::1]");

    const char *bad[] = {"",
                         "notes-acme.turso.io",
                         "wss://notes-acme.turso.io",
                         "ws://notes-acme.turso.io",
                         "ftp://notes-acme.turso.io",
                         "file:///tmp/x.db",
                         "https://",
                         "https:///v2/pipeline",
                         "https://?x=1",
                         "http://host:",
                         "http://host:0",
                         "http://host:65536",
                         "http://host:123456",
                         "http://host:12a",
                         "http://:8080",
                         "https://user:secret@notes-acme.turso.io",
                         "http://ho st",
                         "http://host\\x",
                         "http://[]:80",
                         "http://[::1",
                         "http://[::1]x"};
    char out[128];
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        enum tm_err err = hrana_origin(bad[i], out, sizeof(out));
        if (err != TM_ERR_INVALID)
            TEST_FAIL("origin of \"%s\": %d, expected TM_ERR_INVALID", bad[i], (int)err);
    }
    ASSERT_INT_EQ(hrana_origin(NULL, out, sizeof(out)), TM_ERR_INVALID);
    char tiny[16];
    ASSERT_INT_EQ(hrana_origin("https://notes-acme.turso.io", tiny, sizeof(tiny)),
                  TM_ERR_TOO_LARGE);
    /* Exactly enough room. */
    char exact[sizeof("https://a.io")];
    ASSERT_INT_EQ(hrana_origin("libsql://a.io/x", exact, sizeof(exact)), TM_OK);
    ASSERT_STR_EQ(exact, "https://a.io");
}

static void result_get(void)
{
    json_t *response = NULL;
    const char *message = NULL, *code = NULL;
    json_t *r = load("{\"type\":\"ok\",\"response\":{\"type\":\"execute\",\"result\":{}}}");
    ASSERT_INT_EQ(hrana_result_get(r, &response, &message, &code), TM_OK);
    ASSERT_STR_EQ(json_string_value(json_object_get(response, "type")), "execute");
    ASSERT_NULL(message);
    json_decref(r);

    r = load("{\"type\":\"error\",\"error\":{\"message\":\"SQL input error: no such table: "
             "no_such_table (at offset 14)\",\"code\":\"SQL_INPUT_ERROR\"}}");
    ASSERT_INT_EQ(hrana_result_get(r, &response, &message, &code), TM_ERR_UPSTREAM);
    ASSERT_NULL(response);
    ASSERT_STR_EQ(message, "SQL input error: no such table: no_such_table (at offset 14)");
    ASSERT_STR_EQ(code, "SQL_INPUT_ERROR");
    json_decref(r);

    r = load("{\"type\":\"error\",\"error\":{\"message\":\"boom\"}}");
    ASSERT_INT_EQ(hrana_result_get(r, &response, &message, &code), TM_ERR_UPSTREAM);
    ASSERT_STR_EQ(message, "boom");
    ASSERT_NULL(code);
    json_decref(r);

    const char *bad[] = {"{\"type\":\"ok\"}",
                         "{\"type\":\"ok\",\"response\":5}",
                         "{\"type\":\"weird\"}",
                         "{}",
                         "[]",
                         "null"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        r = load(bad[i]);
        if (hrana_result_get(r, &response, &message, &code) != TM_ERR_INVALID)
            TEST_FAIL("result %s was not rejected", bad[i]);
        json_decref(r);
    }
    ASSERT_INT_EQ(hrana_result_get(NULL, NULL, NULL, NULL), TM_ERR_INVALID);
}

int main(void)
{
    if (sodium_init() < 0 || curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        TEST_FAIL("library initialisation failed");
    RUN(arg_integers);
    RUN(arg_integer_value_objects);
    RUN(cell_integer_edges);
    RUN(arg_bool_null);
    RUN(arg_floats);
    RUN(cell_floats);
    RUN(blobs);
    RUN(text_values);
    RUN(cell_other);
    RUN(arg_invalid);
    RUN(stmt_positional);
    RUN(stmt_named);
    RUN(stmt_no_args);
    RUN(stmt_invalid);
    RUN(origins);
    RUN(result_get);
    curl_global_cleanup();
    TEST_DONE();
}
