/* require.h - skipping a test whose prerequisite is missing, except where
 * every test must run: with SLUICE_TEST_REQUIRE_ALL=1 (set by .ci/run) the
 * test fails instead, so CI cannot pass with the Handbook's conformance
 * tests or the NumPy references silently left out. */
#ifndef SLUICE_TESTS_REQUIRE_H
#define SLUICE_TESTS_REQUIRE_H

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

static inline int test_require_all(void) {
    const char *v = getenv("SLUICE_TEST_REQUIRE_ALL");
    return v && strcmp(v, "1") == 0;
}

/* Skips the running test with a message (format first, a literal), or
 * fails it under SLUICE_TEST_REQUIRE_ALL=1. */
#define SKIP_UNLESS_REQUIRED(...)                                                                  \
    do {                                                                                           \
        if (test_require_all())                                                                    \
            cr_assert_fail("SLUICE_TEST_REQUIRE_ALL=1, yet this test cannot run: " __VA_ARGS__);   \
        cr_skip_test(__VA_ARGS__);                                                                 \
    } while (0)

#endif
