/*
 * Unit tests for the credentials codec: round trips, and a decoder that
 * turns every truncated, mutated or random input into TM_ERR_INVALID (or a
 * clean success) without reading out of bounds. Run under ASan/valgrind.
 */
#include "creds.h"

#include <sodium.h>
#include <stdint.h>

#include "test.h"

/* Mirrors the private limit in creds.c; the tests below pin it down. */
#define FIELD_MAX 16384

static void fill_sample(struct creds *c)
{
    memset(c, 0, sizeof(*c));
    c->label = strdup("laptop claude");
    c->db_url = strdup("libsql://orders-acme.turso.io");
    c->db_token = strdup("eyJhbGciOiJFZERTQSJ9.db-token-payload.signature");
    c->platform_token = strdup("platform-token-0123456789");
    c->org = strdup("acme");
    c->default_db = strdup("orders");
    c->is_read_only = true;
    ASSERT(c->label && c->db_url && c->db_token && c->platform_token && c->org && c->default_db);
}

static void assert_str_or_null_eq(const char *a, const char *b)
{
    if (!a || !b)
        ASSERT(a == b);
    else
        ASSERT_STR_EQ(a, b);
}

static void assert_creds_eq(const struct creds *a, const struct creds *b)
{
    assert_str_or_null_eq(a->label, b->label);
    assert_str_or_null_eq(a->db_url, b->db_url);
    assert_str_or_null_eq(a->db_token, b->db_token);
    assert_str_or_null_eq(a->platform_token, b->platform_token);
    assert_str_or_null_eq(a->org, b->org);
    assert_str_or_null_eq(a->default_db, b->default_db);
    ASSERT_INT_EQ(a->is_read_only, b->is_read_only);
}

static void assert_clean(const struct creds *c)
{
    ASSERT_NULL(c->label);
    ASSERT_NULL(c->db_url);
    ASSERT_NULL(c->db_token);
    ASSERT_NULL(c->platform_token);
    ASSERT_NULL(c->org);
    ASSERT_NULL(c->default_db);
    ASSERT(!c->is_read_only);
}

/* Poisons *c with pointers that must never be freed, to see that decode overwrites them. */
static void poison(struct creds *c)
{
    static char junk[] = "junk";
    c->label = c->db_url = c->db_token = junk;
    c->platform_token = c->org = c->default_db = junk;
    c->is_read_only = true;
}

static void roundtrip(const struct creds *in)
{
    unsigned char *buf = NULL;
    size_t len = 0;
    struct creds out;

    ASSERT_INT_EQ(creds_encode(in, &buf, &len), TM_OK);
    ASSERT_NOT_NULL(buf);
    poison(&out);
    ASSERT_INT_EQ(creds_decode(buf, len, &out), TM_OK);
    assert_creds_eq(in, &out);
    creds_cleanup(&out);
    assert_clean(&out);
    creds_wipe_free(buf, len);
}

static void test_roundtrip_all_fields(void)
{
    struct creds c;
    fill_sample(&c);
    roundtrip(&c);
    c.is_read_only = false;
    roundtrip(&c);
    creds_cleanup(&c);
}

static void test_roundtrip_null_and_empty(void)
{
    struct creds c = {0};
    roundtrip(&c); /* every field NULL */

    /* An empty string is not NULL and must come back as "". */
    c.label = strdup("");
    c.db_url = strdup("http://127.0.0.1:8080");
    c.org = strdup("");
    ASSERT(c.label && c.db_url && c.org);
    roundtrip(&c);

    unsigned char *buf = NULL;
    size_t len = 0;
    struct creds out;
    ASSERT_INT_EQ(creds_encode(&c, &buf, &len), TM_OK);
    ASSERT_INT_EQ(creds_decode(buf, len, &out), TM_OK);
    ASSERT_NOT_NULL(out.label);
    ASSERT_STR_EQ(out.label, "");
    ASSERT_NULL(out.db_token);
    ASSERT_NULL(out.platform_token);
    ASSERT_NULL(out.default_db);
    creds_cleanup(&out);
    creds_wipe_free(buf, len);
    creds_cleanup(&c);
}

/* The encoding is deterministic, and each field's bytes appear once, verbatim. */
static void test_encoding_shape(void)
{
    struct creds c = {0};
    unsigned char *buf = NULL;
    size_t len = 0;
    static const unsigned char all_null[] = {1, 0, 0, 0, 0, 0, 0, 0};
    static const unsigned char read_only_label[] = {1, 1, 1, 2, 0, 0, 0, 'h', 'i', 0, 0, 0, 0, 0};

    ASSERT_INT_EQ(creds_encode(&c, &buf, &len), TM_OK);
    ASSERT_INT_EQ(len, sizeof(all_null));
    ASSERT(memcmp(buf, all_null, len) == 0);
    creds_wipe_free(buf, len);

    c.label = "hi";
    c.is_read_only = true;
    ASSERT_INT_EQ(creds_encode(&c, &buf, &len), TM_OK);
    ASSERT_INT_EQ(len, sizeof(read_only_label));
    ASSERT(memcmp(buf, read_only_label, len) == 0);
    creds_wipe_free(buf, len);
}

static void test_every_prefix_is_invalid(void)
{
    struct creds c;
    unsigned char *buf = NULL;
    size_t len = 0;

    fill_sample(&c);
    ASSERT_INT_EQ(creds_encode(&c, &buf, &len), TM_OK);
    for (size_t n = 0; n < len; n++) {
        /* A heap copy of exactly n bytes, so ASan catches a read past the end. */
        unsigned char *prefix = malloc(n ? n : 1);
        struct creds out;
        ASSERT_NOT_NULL(prefix);
        memcpy(prefix, buf, n);
        poison(&out);
        if (creds_decode(prefix, n, &out) != TM_ERR_INVALID)
            TEST_FAIL("prefix of %zu/%zu bytes was not rejected", n, len);
        assert_clean(&out);
        free(prefix);
    }
    /* And one byte too many is rejected as well. */
    unsigned char *longer = malloc(len + 1);
    struct creds out;
    ASSERT_NOT_NULL(longer);
    memcpy(longer, buf, len);
    longer[len] = 0;
    poison(&out);
    ASSERT_INT_EQ(creds_decode(longer, len + 1, &out), TM_ERR_INVALID);
    assert_clean(&out);
    free(longer);
    creds_wipe_free(buf, len);
    creds_cleanup(&c);
}

static void expect_invalid(const unsigned char *bytes, size_t len, const char *what)
{
    unsigned char *copy = malloc(len ? len : 1);
    struct creds out;
    ASSERT_NOT_NULL(copy);
    memcpy(copy, bytes, len);
    poison(&out);
    if (creds_decode(copy, len, &out) != TM_ERR_INVALID)
        TEST_FAIL("not rejected: %s", what);
    assert_clean(&out);
    free(copy);
}

static void test_malformed_inputs(void)
{
    struct creds out;
    static const unsigned char ok[] = {1, 0, 0, 0, 0, 0, 0, 0};
    static const unsigned char bad_version[] = {2, 0, 0, 0, 0, 0, 0, 0};
    static const unsigned char version_zero[] = {0, 0, 0, 0, 0, 0, 0, 0};
    static const unsigned char bad_flags[] = {1, 2, 0, 0, 0, 0, 0, 0};
    static const unsigned char high_flags[] = {1, 0x81, 0, 0, 0, 0, 0, 0};
    static const unsigned char bad_tag[] = {1, 0, 2, 0, 0, 0, 0, 0};
    static const unsigned char tag_ff[] = {1, 0, 0, 0, 0, 0, 0, 0xff};
    static const unsigned char len_past_end[] = {1, 0, 1, 9, 0, 0, 0, 'a', 'b', 0, 0, 0, 0, 0};
    static const unsigned char len_huge[] = {1, 0, 1, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0};
    static const unsigned char len_over_cap[] = {1, 0, 1, 0x01, 0x40, 0, 0, 'a', 0, 0, 0, 0, 0};
    static const unsigned char embedded_nul[] = {1, 0, 1, 3, 0, 0, 0, 'a', 0, 'b', 0, 0, 0, 0, 0};
    static const unsigned char trailing[] = {1, 0, 0, 0, 0, 0, 0, 0, 0};
    static const unsigned char short_len[] = {1, 0, 1, 1, 0};

    ASSERT_INT_EQ(creds_decode(ok, sizeof(ok), &out), TM_OK);
    assert_clean(&out);
    creds_cleanup(&out);

    expect_invalid(bad_version, sizeof(bad_version), "version 2");
    expect_invalid(version_zero, sizeof(version_zero), "version 0");
    expect_invalid(bad_flags, sizeof(bad_flags), "unknown flag");
    expect_invalid(high_flags, sizeof(high_flags), "unknown high flag");
    expect_invalid(bad_tag, sizeof(bad_tag), "tag 2");
    expect_invalid(tag_ff, sizeof(tag_ff), "tag 0xff on last field");
    expect_invalid(len_past_end, sizeof(len_past_end), "length past the end");
    expect_invalid(len_huge, sizeof(len_huge), "length 0xffffffff");
    expect_invalid(len_over_cap, sizeof(len_over_cap), "length over the field cap");
    expect_invalid(embedded_nul, sizeof(embedded_nul), "NUL inside a field");
    expect_invalid(trailing, sizeof(trailing), "trailing byte");
    expect_invalid(short_len, sizeof(short_len), "truncated length");

    ASSERT_INT_EQ(creds_decode(NULL, 0, &out), TM_ERR_INVALID);
    assert_clean(&out);
    ASSERT_INT_EQ(creds_decode(NULL, 8, &out), TM_ERR_INVALID);
    ASSERT_INT_EQ(creds_decode(ok, sizeof(ok), NULL), TM_ERR_INVALID);

    /* Larger than any valid encoding: rejected on its length alone. */
    size_t big_len = 2 + 6 * (1 + 4 + FIELD_MAX) + 1;
    unsigned char *big = calloc(1, big_len);
    ASSERT_NOT_NULL(big);
    big[0] = 1;
    expect_invalid(big, big_len, "oversized buffer");
    free(big);
}

/* Every byte of a valid encoding, flipped in several ways: OK or INVALID, never a crash. */
static void test_mutations(void)
{
    static const unsigned char masks[] = {0x01, 0x02, 0x10, 0x80, 0xff};
    struct creds c;
    unsigned char *buf = NULL;
    size_t len = 0;
    size_t n_invalid = 0;

    fill_sample(&c);
    ASSERT_INT_EQ(creds_encode(&c, &buf, &len), TM_OK);
    for (size_t i = 0; i < len; i++) {
        for (size_t m = 0; m < sizeof(masks); m++) {
            unsigned char *copy = malloc(len);
            struct creds out;
            enum tm_err err;
            ASSERT_NOT_NULL(copy);
            memcpy(copy, buf, len);
            copy[i] ^= masks[m];
            err = creds_decode(copy, len, &out);
            ASSERT(err == TM_OK || err == TM_ERR_INVALID);
            if (err == TM_ERR_INVALID) {
                assert_clean(&out);
                n_invalid++;
            }
            creds_cleanup(&out);
            free(copy);
        }
    }
    /* Header, tags and lengths are checked: a good share of flips must be caught. */
    ASSERT(n_invalid > 40);
    creds_wipe_free(buf, len);
    creds_cleanup(&c);
}

static void test_random_garbage(void)
{
    for (int i = 0; i < 20000; i++) {
        size_t len = randombytes_uniform(96);
        unsigned char *bytes = malloc(len ? len : 1);
        struct creds out;
        enum tm_err err;
        ASSERT_NOT_NULL(bytes);
        randombytes_buf(bytes, len);
        /* Half the time, a valid header so the field parser gets exercised. */
        if (len >= 2 && (i & 1)) {
            bytes[0] = 1;
            bytes[1] &= 1;
        }
        err = creds_decode(bytes, len, &out);
        ASSERT(err == TM_OK || err == TM_ERR_INVALID);
        if (err != TM_OK)
            assert_clean(&out);
        creds_cleanup(&out);
        free(bytes);
    }
}

static void test_field_cap(void)
{
    struct creds c = {0};
    unsigned char *buf = NULL;
    size_t len = 0;
    char *big = malloc(FIELD_MAX + 2);

    ASSERT_NOT_NULL(big);
    memset(big, 'x', FIELD_MAX + 1);
    big[FIELD_MAX + 1] = '\0';
    c.db_token = big;
    ASSERT_INT_EQ(creds_encode(&c, &buf, &len), TM_ERR_TOO_LARGE);
    ASSERT_NULL(buf);

    big[FIELD_MAX] = '\0';
    roundtrip(&c);
    free(big);

    ASSERT_INT_EQ(creds_encode(NULL, &buf, &len), TM_ERR_INVALID);
    ASSERT_INT_EQ(creds_encode(&c, NULL, &len), TM_ERR_INVALID);
}

static void test_cleanup_accepts_null(void)
{
    struct creds c = {0};
    creds_cleanup(NULL);
    creds_cleanup(&c);
    creds_cleanup(&c); /* twice is fine: members were set to NULL */
    creds_wipe_free(NULL, 0);
    creds_wipe_free(NULL, 100);
}

int main(void)
{
    if (sodium_init() < 0)
        TEST_FAIL("sodium_init failed");
    RUN(test_roundtrip_all_fields);
    RUN(test_roundtrip_null_and_empty);
    RUN(test_encoding_shape);
    RUN(test_every_prefix_is_invalid);
    RUN(test_malformed_inputs);
    RUN(test_mutations);
    RUN(test_random_garbage);
    RUN(test_field_cap);
    RUN(test_cleanup_accepts_null);
    TEST_DONE();
}
