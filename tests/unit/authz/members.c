/*
 * tests/unit/authz/members.c — the email rule of invites and member
 * actions (authz_email_ok): what reaches the database and a mail header.
 */
#include "tests/unit/unit.h"
#include "authz/authz_int.h"

static void
test_accepted(void)
{
    UNIT_TRUE(authz_email_ok("a@b"));
    UNIT_TRUE(authz_email_ok("First.Last+tag@example.test"));
    UNIT_TRUE(authz_email_ok("ünïcode@exämple.test"));
}

static void
test_refused(void)
{
    static const char *const bad[] = {
        "", "a", "@b", "a@", "ab", "a@b@c", "a b@c", "a@b\r\nBcc: x@y", "a@b\n", "a\t@b",
        "<a@b>", "\"a\"@b", "a@b\x7f", "\xff@b",
    };
    char big[300];

    UNIT_TRUE(!authz_email_ok(NULL));
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        UNIT_TRUE(!authz_email_ok(bad[i]));
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    big[10] = '@';
    UNIT_TRUE(!authz_email_ok(big));          /* over 254 characters */
    big[254] = '\0';
    UNIT_TRUE(authz_email_ok(big));
}

int
main(void)
{
    UNIT_RUN(test_accepted);
    UNIT_RUN(test_refused);
    return UNIT_DONE();
}
