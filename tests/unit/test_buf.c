/* The growing buffer: growth, the cap, sticky failures, take and truncate. */
#include "buf.h"
#include "test.h"

static void test_grows_and_terminates(void)
{
    struct buf b = {0};
    ASSERT_NULL(b.data);
    for (int i = 0; i < 10000; i++)
        ASSERT(buf_add(&b, "abc", 3));
    ASSERT_INT_EQ(b.len, 30000);
    ASSERT_INT_EQ(b.data[b.len], '\0');
    ASSERT(memcmp(b.data + 29997, "abc", 3) == 0);
    ASSERT(buf_addf(&b, "-%d-%s", 42, "x"));
    ASSERT_STR_EQ(b.data + 30000, "-42-x");
    ASSERT(buf_add(&b, "\0z", 2)); /* NULs inside are kept */
    ASSERT_INT_EQ(b.len, 30007);
    ASSERT_INT_EQ(b.data[30006], 'z');
    buf_cleanup(&b);
    ASSERT_NULL(b.data);
    ASSERT_INT_EQ(b.len, 0);
}

static void test_cap(void)
{
    struct buf b;
    buf_init(&b, 10);
    ASSERT(buf_adds(&b, "12345"));
    ASSERT(buf_adds(&b, "67890"));
    /* One byte more is refused whole, and the refusal sticks. */
    ASSERT(!buf_adds(&b, "x"));
    ASSERT(b.is_over);
    ASSERT(buf_is_bad(&b));
    ASSERT_STR_EQ(b.data, "1234567890");
    ASSERT(!buf_adds(&b, ""));
    /* Cutting back makes room again. */
    buf_truncate(&b, 4);
    ASSERT(!b.is_over);
    ASSERT(buf_adds(&b, "ab"));
    ASSERT_STR_EQ(b.data, "1234ab");
    size_t len = 0;
    char *s = buf_take(&b, &len);
    ASSERT_STR_EQ(s, "1234ab");
    ASSERT_INT_EQ(len, 6);
    free(s);
    /* Taken: empty, the cap kept. */
    ASSERT_NULL(b.data);
    ASSERT_INT_EQ(b.max, 10);
    ASSERT(!buf_adds(&b, "12345678901"));
    buf_cleanup(&b);
}

static void test_take_empty_and_failed(void)
{
    struct buf b = {0};
    size_t len = 99;
    char *s = buf_take(&b, &len);
    ASSERT_STR_EQ(s, "");
    ASSERT_INT_EQ(len, 0);
    free(s);
    /* A size that cannot be allocated fails, and take reports it. */
    ASSERT(!buf_reserve(&b, SIZE_MAX - 8));
    ASSERT(b.is_failed);
    ASSERT(!buf_adds(&b, "x"));
    ASSERT_NULL(buf_take(&b, NULL));
    buf_cleanup(&b);
}

int main(void)
{
    RUN(test_grows_and_terminates);
    RUN(test_cap);
    RUN(test_take_empty_and_failed);
    TEST_DONE();
}
