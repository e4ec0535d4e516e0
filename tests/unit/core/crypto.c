/* tests/unit/core/crypto.c — hashing, encodings, sealing under the server key. */
#include "core/core.h"
#include "tests/unit/unit.h"
#include <stdlib.h>

static void
test_sha256_known_vector(void)
{
    char hex[65];
    gh_sha256_hex("abc", hex);
    UNIT_EQ_STR(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

static void
test_hex_roundtrip(void)
{
    unsigned char in[4] = { 0x00, 0x7f, 0x80, 0xff }, out[4];
    char hex[9];
    gh_hex_encode(in, 4, hex);
    UNIT_EQ_STR(hex, "007f80ff");
    UNIT_EQ_INT(gh_hex_decode(hex, out, 4), 0);
    UNIT_TRUE(!memcmp(in, out, 4));
    UNIT_TRUE(gh_hex_decode("zz", out, 1) < 0);
    UNIT_EQ_INT(gh_hex_decode("A0fF", out, 2), 0);
    UNIT_TRUE(out[0] == 0xa0 && out[1] == 0xff);
    /* the one digit decoder the form decoder and the Cedar lexer share */
    UNIT_EQ_INT(gh_hex_digit('0'), 0);
    UNIT_EQ_INT(gh_hex_digit('9'), 9);
    UNIT_EQ_INT(gh_hex_digit('a'), 10);
    UNIT_EQ_INT(gh_hex_digit('F'), 15);
    UNIT_EQ_INT(gh_hex_digit('g'), -1);
    UNIT_EQ_INT(gh_hex_digit('/'), -1);
    UNIT_EQ_INT(gh_hex_digit(':'), -1);
    UNIT_EQ_INT(gh_hex_digit('@'), -1);
    UNIT_EQ_INT(gh_hex_digit('\0'), -1);
}

/* gh_b64_decode of in: its bytes as a C string, or "(refused)". */
static const char *
b64d(struct gh_arena *a, const char *in, size_t *len)
{
    unsigned char *out;

    return gh_b64_decode(a, in, strlen(in), &out, len) == 0 ? (const char *)out : "(refused)";
}

static void
test_b64_decode_canonical_only(void)
{
    struct gh_arena *a = gh_arena_new(0);
    size_t n = 0;

    UNIT_EQ_STR(b64d(a, "YWxwaGE=", &n), "alpha");            /* padded */
    UNIT_EQ_INT(n, 5);
    UNIT_EQ_STR(b64d(a, "YWxwaGE", &n), "alpha");             /* unpadded */
    UNIT_EQ_STR(b64d(a, "YWxwaGFf", &n), "alpha_");
    UNIT_EQ_STR(b64d(a, "-_8", &n), "\xfb\xff");              /* URL-safe */
    UNIT_EQ_STR(b64d(a, "+/8=", &n), "\xfb\xff");             /* standard */
    UNIT_EQ_STR(b64d(a, "", &n), "");
    UNIT_EQ_INT(n, 0);
    UNIT_EQ_STR(b64d(a, "YQBi", &n), "a");                    /* a NUL inside: the length tells */
    UNIT_EQ_INT(n, 3);
    UNIT_EQ_STR(b64d(a, "+_8", &n), "(refused)");              /* two alphabets */
    UNIT_EQ_STR(b64d(a, "YQ==YQ==", &n), "(refused)");         /* data after padding */
    UNIT_EQ_STR(b64d(a, "YWxwaGE==", &n), "(refused)");        /* padding past the group */
    UNIT_EQ_STR(b64d(a, "YQ=", &n), "(refused)");              /* padding short of the group */
    UNIT_EQ_STR(b64d(a, "YR==", &n), "(refused)");             /* unused bits set: also "a" elsewhere */
    UNIT_EQ_STR(b64d(a, "YWJ", &n), "(refused)");
    UNIT_EQ_STR(b64d(a, "YWxwa", &n), "(refused)");            /* a lone sextet */
    UNIT_EQ_STR(b64d(a, "YW*x", &n), "(refused)");
    UNIT_EQ_STR(b64d(a, "YW x", &n), "(refused)");
    /* what the encoder writes, the decoder reads back */
    for (size_t len = 0; len < 40; len++) {
        unsigned char in[40], *out = NULL;
        size_t got = 0;
        for (size_t i = 0; i < len; i++)
            in[i] = (unsigned char)(i * 37 + len);
        const char *enc = gh_b64url_encode(a, in, len);
        UNIT_EQ_INT(gh_b64_decode(a, enc, strlen(enc), &out, &got), 0);
        UNIT_EQ_INT(got, len);
        UNIT_TRUE(out != NULL && memcmp(out, in, len) == 0);
    }
    gh_arena_free(a);
}

static void
test_b64url_no_padding(void)
{
    struct gh_arena *a = gh_arena_new(1 << 16);
    UNIT_EQ_STR(gh_b64url_encode(a, (const unsigned char *)"\xfb\xff", 2), "-_8");
    gh_arena_free(a);
}

static void
test_ct_streq(void)
{
    UNIT_TRUE(gh_ct_streq("secret", "secret"));
    UNIT_TRUE(!gh_ct_streq("secret", "secreT"));
    UNIT_TRUE(!gh_ct_streq("secret", "secret2"));
}

static void
test_token_hex_is_random(void)
{
    struct gh_arena *a = gh_arena_new(1 << 16);
    char *t1 = gh_token_hex(a, "ght_", 32), *t2 = gh_token_hex(a, "ght_", 32);
    UNIT_EQ_INT(strlen(t1), 4 + 64);
    UNIT_TRUE(gh_str_has_prefix(t1, "ght_"));
    UNIT_TRUE(strcmp(t1, t2) != 0);
    gh_arena_free(a);
}

static void
test_seal_roundtrip_and_tamper(void)
{
    struct gh_arena *a = gh_arena_new(1 << 16);
    struct gh_err e = {0};
    unsigned char *pt = NULL;
    size_t n = 0;
    char *sealed, *bad;

    setenv("GATEHOUSE_SERVER_KEY", "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff", 1);
    setenv("GATEHOUSE_DATABASE_URL", "postgresql:///unused", 1);
    UNIT_EQ_INT(gh_config_load(NULL, &e), 0);
    UNIT_EQ_INT(gh_server_key_init(&e), 0);
    sealed = gh_seal(a, "Bearer upstream-secret", 22, "connector:1");
    UNIT_TRUE(sealed != NULL);
    UNIT_TRUE(sealed && !strstr(sealed, "upstream-secret"));
    UNIT_EQ_INT(gh_unseal(a, sealed, "connector:1", &pt, &n), 0);
    UNIT_EQ_INT(n, 22);
    UNIT_TRUE(pt && !memcmp(pt, "Bearer upstream-secret", 22));
    /* another record's associated data must not open it */
    UNIT_TRUE(gh_unseal(a, sealed, "connector:2", &pt, &n) < 0);
    bad = gh_arena_strdup(a, sealed);
    bad[strlen(bad) - 2] = bad[strlen(bad) - 2] == 'A' ? 'B' : 'A';
    UNIT_TRUE(gh_unseal(a, bad, "connector:1", &pt, &n) < 0);
    gh_arena_free(a);
}

/* The key check the database keeps: fixed for a key, different for
 * another, and not the key itself. */
static void
test_key_check_value(void)
{
    static const char K1[] = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
    static const char K2[] = "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100";
    struct gh_err e = {0};
    char v1[65], again[65], v2[65];

    setenv("GATEHOUSE_SERVER_KEY", K1, 1);
    UNIT_EQ_INT(gh_config_load(NULL, &e), 0);
    UNIT_EQ_INT(gh_server_key_init(&e), 0);
    UNIT_EQ_INT(gh_server_key_check_value(v1), 0);
    UNIT_EQ_INT(gh_server_key_check_value(again), 0);
    UNIT_EQ_STR(v1, again);
    UNIT_EQ_INT((int)strlen(v1), 64);
    UNIT_TRUE(strcmp(v1, K1) != 0);
    UNIT_EQ_STR(gh_server_key_origin(), "GATEHOUSE_SERVER_KEY");
    setenv("GATEHOUSE_SERVER_KEY", K2, 1);
    UNIT_EQ_INT(gh_config_load(NULL, &e), 0);
    UNIT_EQ_INT(gh_server_key_init(&e), 0);
    UNIT_EQ_INT(gh_server_key_check_value(v2), 0);
    UNIT_TRUE(strcmp(v1, v2) != 0);
    /* forgotten: nothing to check or seal with */
    gh_server_key_forget();
    UNIT_EQ_INT(gh_server_key_check_value(v2), -1);
    {
        struct gh_arena *a = gh_arena_new(0);
        UNIT_TRUE(gh_seal(a, "x", 1, "a") == NULL);
        gh_arena_free(a);
    }
}

int
main(void)
{
    UNIT_RUN(test_sha256_known_vector);
    UNIT_RUN(test_hex_roundtrip);
    UNIT_RUN(test_b64url_no_padding);
    UNIT_RUN(test_b64_decode_canonical_only);
    UNIT_RUN(test_ct_streq);
    UNIT_RUN(test_token_hex_is_random);
    UNIT_RUN(test_seal_roundtrip_and_tamper);
    UNIT_RUN(test_key_check_value);
    return UNIT_DONE();
}
