/* tests/unit/core/util.c — small helpers: gh_text_ok, what may reach the database as text. */
#include "core/core.h"
#include "tests/unit/unit.h"

#define OK(s) gh_text_ok(s, sizeof(s) - 1)

static void
test_text_ok_accepts_text(void)
{
    UNIT_TRUE(OK(""));
    UNIT_TRUE(OK("client-123_abc.example"));
    UNIT_TRUE(OK("https://app.example/client.json"));
    UNIT_TRUE(OK("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"));     /* 2, 3 and 4 bytes */
    UNIT_TRUE(OK("\xc2\xa0"));                                        /* U+00A0, past C1 */
    UNIT_TRUE(OK("\xf4\x8f\xbf\xbf"));                                /* U+10FFFF */
}

static void
test_text_ok_refuses_bytes_and_controls(void)
{
    UNIT_TRUE(!OK("\xff"));
    UNIT_TRUE(!OK("abc\x00" "def"));                                  /* NUL inside */
    UNIT_TRUE(!OK("a\tb"));
    UNIT_TRUE(!OK("a\nb"));
    UNIT_TRUE(!OK("\x7f"));
    UNIT_TRUE(!OK("\xc2\x85"));                                       /* U+0085, C1 */
    UNIT_TRUE(!OK("\xc0\xaf"));                                       /* overlong "/" */
    UNIT_TRUE(!OK("\xe0\x80\xaf"));                                   /* overlong, 3 bytes */
    UNIT_TRUE(!OK("\xed\xa0\x80"));                                   /* surrogate */
    UNIT_TRUE(!OK("\xf4\x90\x80\x80"));                               /* past U+10FFFF */
    UNIT_TRUE(!OK("\xe2\x82"));                                       /* cut short */
    UNIT_TRUE(!OK("abc\xc3"));
    UNIT_TRUE(!gh_text_ok(NULL, 0));
    /* only the n bytes given are read */
    UNIT_TRUE(gh_text_ok("ab\xff", 2));
}

int
main(void)
{
    UNIT_RUN(test_text_ok_accepts_text);
    UNIT_RUN(test_text_ok_refuses_bytes_and_controls);
    return UNIT_DONE();
}
