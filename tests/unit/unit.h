/*
 * tests/unit/unit.h — the C unit-test harness.  Each tests/unit/<path>.c is
 * its own executable and ctest case:
 *
 *     static void test_roundtrip(void) { UNIT_EQ_INT(f(1), 2); }
 *     int main(void) { UNIT_RUN(test_roundtrip); return UNIT_DONE(); }
 *
 * A failed check prints file:line and the values, and the test goes on, so
 * one run shows every failure.
 */
#ifndef GH_UNIT_H
#define GH_UNIT_H

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static int unit_failures;
static int unit_checks;
static const char *unit_current;

#define UNIT_FAIL_(fmt, ...) \
    (unit_failures++, fprintf(stderr, "%s:%d: %s: " fmt "\n", __FILE__, __LINE__, unit_current, __VA_ARGS__))

#define UNIT_TRUE(c) \
    do { unit_checks++; if (!(c)) UNIT_FAIL_("expected %s", #c); } while (0)

#define UNIT_EQ_INT(a, b) \
    do { long long a_ = (long long)(a), b_ = (long long)(b); unit_checks++; \
         if (a_ != b_) UNIT_FAIL_("%s == %lld, expected %lld", #a, a_, b_); } while (0)

#define UNIT_EQ_STR(a, b) \
    do { const char *a_ = (a), *b_ = (b); unit_checks++; \
         if (!a_ || !b_ || strcmp(a_, b_)) \
             UNIT_FAIL_("%s == \"%s\", expected \"%s\"", #a, a_ ? a_ : "(null)", b_ ? b_ : "(null)"); } while (0)

#define UNIT_RUN(fn) \
    do { int before_ = unit_failures; unit_current = #fn; fn(); \
         fprintf(stderr, "%s %s\n", unit_failures == before_ ? "ok  " : "FAIL", #fn); } while (0)

#define UNIT_DONE() \
    (fprintf(stderr, "%d checks, %d failed\n", unit_checks, unit_failures), unit_failures ? 1 : 0)

#endif
