/*
 * tests/unit/authz/totp.c — TOTP against the SHA-1 vectors of RFC 6238
 * appendix B (the last six of their eight digits), one step of drift
 * either way and no more, the base32 text apps are given, and recovery
 * codes: shape and the forms a person may type them in.
 */
#include "tests/unit/unit.h"
#include "authz/authz_int.h"

static const unsigned char KEY[] = "12345678901234567890";

static void
test_rfc6238_vectors(void)
{
    static const struct { int64_t t; const char *code; int64_t step; } v[] = {
        { 59, "287082", 1 },
        { 1111111109, "081804", 37037036 },
        { 1111111111, "050471", 37037037 },
        { 1234567890, "005924", 41152263 },
        { 2000000000, "279037", 66666666 },
        { 20000000000, "353130", 666666666 },
    };
    int64_t step;

    for (size_t i = 0; i < GH_ARRAY_LEN(v); i++) {
        step = -1;
        UNIT_EQ_INT(authz_totp_check_at(KEY, 20, v[i].code, v[i].t, &step), 0);
        UNIT_TRUE(step == v[i].step);
    }
}

static void
test_drift(void)
{
    int64_t step;

    UNIT_EQ_INT(authz_totp_check_at(KEY, 20, "287082", 59 + 30, &step), 0);   /* one step late */
    UNIT_TRUE(step == 1);
    UNIT_EQ_INT(authz_totp_check_at(KEY, 20, "287082", 59 - 30, &step), 0);   /* one step early */
    UNIT_EQ_INT(authz_totp_check_at(KEY, 20, "287082", 59 + 60, &step), -1);  /* two: refused */
    UNIT_EQ_INT(authz_totp_check_at(KEY, 20, "287083", 59, &step), -1);
    UNIT_EQ_INT(authz_totp_check_at(KEY, 20, "28708", 59, &step), -1);
    UNIT_EQ_INT(authz_totp_check_at(KEY, 20, "2870820", 59, &step), -1);
    UNIT_EQ_INT(authz_totp_check_at(KEY, 20, "28708a", 59, &step), -1);
    UNIT_EQ_INT(authz_totp_check_at(KEY, 20, " 287082", 59, &step), -1);
}

static void
test_base32_and_uri(void)
{
    struct gh_arena *a = gh_arena_new(0);
    char *b32 = authz_totp_base32(a, KEY, 20);
    char *uri = authz_totp_uri(a, "a+b@example.com", b32);
    char *svg = authz_totp_qr_svg(a, uri);

    UNIT_EQ_STR(b32, "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
    UNIT_EQ_STR(uri, "otpauth://totp/Gatehouse:a%2Bb%40example.com?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
                     "&issuer=Gatehouse&algorithm=SHA1&digits=6&period=30");
    UNIT_TRUE(svg && gh_str_has_prefix(svg, "<svg class=\"qr\"") && strstr(svg, "<path fill=\"#000\" d=\"M"));
    gh_arena_free(a);
}

static void
test_recovery_codes(void)
{
    struct gh_arena *a = gh_arena_new(0);
    char *c = authz_recovery_code_new(a), *d = authz_recovery_code_new(a);
    char h1[65], h2[65], h3[65], upper[16];

    UNIT_TRUE(c && strlen(c) == 11 && c[5] == '-');
    UNIT_TRUE(d && strcmp(c, d));
    for (int i = 0; c[i]; i++)
        upper[i] = (char)(c[i] >= 'a' && c[i] <= 'z' ? c[i] - 'a' + 'A' : c[i]), upper[i + 1] = '\0';
    authz_recovery_code_hash(c, h1);
    authz_recovery_code_hash(upper, h2);
    memmove(upper + 5, upper + 6, 6);                 /* without the dash */
    authz_recovery_code_hash(upper, h3);
    UNIT_EQ_STR(h1, h2);
    UNIT_EQ_STR(h1, h3);
    authz_recovery_code_hash(d, h2);
    UNIT_TRUE(strcmp(h1, h2));
    gh_arena_free(a);
}

int
main(void)
{
    UNIT_RUN(test_rfc6238_vectors);
    UNIT_RUN(test_drift);
    UNIT_RUN(test_base32_and_uri);
    UNIT_RUN(test_recovery_codes);
    return UNIT_DONE();
}
