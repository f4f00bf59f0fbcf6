/*
 * A few assertion macros for the unit tests: each prints both sides and
 * the line, then exits non-zero. Cases are static functions run by RUN().
 */
#ifndef TM_TEST_H
#define TM_TEST_H

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TEST_FAIL(...)                                                                             \
    do {                                                                                           \
        fprintf(stderr, "%s:%d: ", __FILE__, __LINE__);                                            \
        fprintf(stderr, __VA_ARGS__);                                                              \
        fprintf(stderr, "\n");                                                                     \
        exit(1);                                                                                   \
    } while (0)

#define ASSERT(cond)                                                                               \
    do {                                                                                           \
        if (!(cond))                                                                               \
            TEST_FAIL("assertion failed: %s", #cond);                                              \
    } while (0)

#define ASSERT_INT_EQ(a, b)                                                                        \
    do {                                                                                           \
        intmax_t a_ = (intmax_t)(a), b_ = (intmax_t)(b);                                           \
        if (a_ != b_)                                                                              \
            TEST_FAIL("%s == %s: %jd != %jd", #a, #b, a_, b_);                                     \
    } while (0)

#define ASSERT_STR_EQ(a, b)                                                                        \
    do {                                                                                           \
        const char *a_ = (a), *b_ = (b);                                                           \
        if (!a_ || !b_ || strcmp(a_, b_) != 0)                                                     \
            TEST_FAIL("%s == %s: \"%s\" != \"%s\"", #a, #b, a_ ? a_ : "(null)",                    \
                      b_ ? b_ : "(null)");                                                         \
    } while (0)

/* Whether a string holds, or lacks, a piece (a NULL string fails both). */
#define ASSERT_CONTAINS(haystack, needle)                                                          \
    do {                                                                                           \
        const char *h_ = (haystack), *n_ = (needle);                                               \
        if (!h_ || !strstr(h_, n_))                                                                \
            TEST_FAIL("\"%s\" does not contain \"%s\"", h_ ? h_ : "(null)", n_);                   \
    } while (0)

#define ASSERT_LACKS(haystack, needle)                                                             \
    do {                                                                                           \
        const char *h_ = (haystack), *n_ = (needle);                                               \
        if (!h_ || strstr(h_, n_))                                                                 \
            TEST_FAIL("\"%s\" contains \"%s\"", h_ ? h_ : "(null)", n_);                           \
    } while (0)

#define ASSERT_NULL(p)     ASSERT((p) == NULL)
#define ASSERT_NOT_NULL(p) ASSERT((p) != NULL)

static int test_cases_run;

#define RUN(fn)                                                                                    \
    do {                                                                                           \
        fn();                                                                                      \
        test_cases_run++;                                                                          \
        printf("ok - %s\n", #fn);                                                                  \
    } while (0)

#define TEST_DONE()                                                                                \
    do {                                                                                           \
        printf("%d passed, 0 failed\n", test_cases_run);                                           \
        return 0;                                                                                  \
    } while (0)

#endif
