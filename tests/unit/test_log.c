/*
 * log_mask_path: the URL secret never reaches a log line, whatever the
 * path looks like, and the output is cut to the buffer, never overrun.
 */
#include "log.h"

#include <string.h>

#include "test.h"

static void expect_masked(const char *path, const char *want)
{
    char out[160];
    log_mask_path(path, out, sizeof(out));
    ASSERT_STR_EQ(out, want);
}

static void test_mask(void)
{
    expect_masked("/u/QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZn/mcp", "/u/***/mcp");
    expect_masked("/u/QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZn/messages?sessionId=abc",
                  "/u/***/messages");
    expect_masked("/u/QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZn", "/u/***");
    expect_masked("/u/secret?x=1", "/u/***");
    expect_masked("/u/", "/u/***");
    expect_masked("/mcp?token=abc", "/mcp");
    expect_masked("/healthz", "/healthz");
    expect_masked("", "");
    expect_masked(NULL, "");
}

static void test_truncation(void)
{
    char out[8];
    memset(out, 'x', sizeof(out));
    log_mask_path("/u/secret/messages", out, sizeof(out));
    ASSERT_STR_EQ(out, "/u/***/");
    log_mask_path("/healthz-and-more", out, sizeof(out));
    ASSERT_STR_EQ(out, "/health");
    char one[1] = {'x'};
    log_mask_path("/u/secret", one, sizeof(one));
    ASSERT_INT_EQ(one[0], '\0');
    log_mask_path("/u/secret", NULL, 0);
}

int main(void)
{
    RUN(test_mask);
    RUN(test_truncation);
    TEST_DONE();
}
