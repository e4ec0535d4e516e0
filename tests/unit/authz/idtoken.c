/*
 * tests/unit/authz/idtoken.c — ID token verification with keys made here
 * by OpenSSL: RS256 and ES256 (raw r||s) accepted; a DER ES256 signature,
 * alg none, a weak RSA key, an unknown kid, a changed payload and each
 * claim rule refused.
 */
#include "tests/unit/unit.h"
#include "authz/authz_int.h"
#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>

static struct gh_arena *A;
static EVP_PKEY *rsa, *ec, *weak;
static json_t *jwks;

static char *
bn_b64(EVP_PKEY *k, const char *name, int pad)
{
    BIGNUM *bn = NULL;
    unsigned char buf[512];
    int n;

    EVP_PKEY_get_bn_param(k, name, &bn);
    n = pad ? BN_bn2binpad(bn, buf, pad) : BN_bn2bin(bn, buf);
    BN_free(bn);
    return gh_b64url_encode(A, buf, (size_t)n);
}

static json_t *
jwk(EVP_PKEY *k, const char *kid)
{
    if (EVP_PKEY_is_a(k, "RSA"))
        return json_pack("{s:s, s:s, s:s, s:s}", "kty", "RSA", "kid", kid,
                         "n", bn_b64(k, OSSL_PKEY_PARAM_RSA_N, 0), "e", bn_b64(k, OSSL_PKEY_PARAM_RSA_E, 0));
    return json_pack("{s:s, s:s, s:s, s:s, s:s}", "kty", "EC", "kid", kid, "crv", "P-256",
                     "x", bn_b64(k, OSSL_PKEY_PARAM_EC_PUB_X, 32), "y", bn_b64(k, OSSL_PKEY_PARAM_EC_PUB_Y, 32));
}

/* header.payload.signature; raw: ES256 as JWS wants it (r||s), else DER */
static char *
jws(EVP_PKEY *k, const char *header, json_t *claims, bool raw)
{
    char *body = json_dumps(claims, JSON_COMPACT), *in;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned char sig[600], rs[64];
    size_t n = sizeof(sig);
    const unsigned char *p = sig;

    in = gh_arena_printf(A, "%s.%s", gh_b64url_encode(A, (const unsigned char *)header, strlen(header)),
                         gh_b64url_encode(A, (const unsigned char *)body, strlen(body)));
    free(body);
    json_decref(claims);
    EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, k);
    EVP_DigestSign(md, sig, &n, (const unsigned char *)in, strlen(in));
    EVP_MD_CTX_free(md);
    if (raw && EVP_PKEY_is_a(k, "EC")) {
        ECDSA_SIG *s = d2i_ECDSA_SIG(NULL, &p, (long)n);
        BN_bn2binpad(ECDSA_SIG_get0_r(s), rs, 32);
        BN_bn2binpad(ECDSA_SIG_get0_s(s), rs + 32, 32);
        ECDSA_SIG_free(s);
        return gh_arena_printf(A, "%s.%s", in, gh_b64url_encode(A, rs, 64));
    }
    return gh_arena_printf(A, "%s.%s", in, gh_b64url_encode(A, sig, n));
}

static json_t *
claims(void)
{
    json_int_t now = (json_int_t)gh_time_s();

    return json_pack("{s:s, s:s, s:s, s:I, s:I, s:s, s:s, s:b}", "iss", "https://idp.example", "aud", "gh",
                     "sub", "u1", "iat", now, "exp", now + 300, "nonce", "n0nce", "email", "a@corp.example",
                     "email_verified", 1);
}

static json_t *
with(const char *key, json_t *v)
{
    json_t *c = claims();

    if (v)
        json_object_set_new(c, key, v);
    else
        json_object_del(c, key);
    return c;
}

static int
check(const char *jwt, const char *why)
{
    struct authz_idtoken_expect x = { "https://idp.example", "gh", "n0nce", jwks };
    struct gh_err e = {0};
    json_t *out = NULL;
    int rc = authz_idtoken_verify(A, jwt, &x, &out, &e);

    if (rc == 0 && (out == NULL || strcmp(gh_json_str(out, "email"), "a@corp.example")))
        UNIT_TRUE(!"claims not returned");
    if (rc < 0 && why && !strstr(e.detail, why)) {
        fprintf(stderr, "  refused for \"%s\", wanted \"%s\"\n", e.detail, why);
        UNIT_TRUE(!"refused for another reason");
    }
    return rc;
}

static void
test_accepted(void)
{
    UNIT_EQ_INT(check(jws(rsa, "{\"alg\":\"RS256\",\"kid\":\"r1\"}", claims(), true), NULL), 0);
    UNIT_EQ_INT(check(jws(ec, "{\"alg\":\"ES256\",\"kid\":\"e1\"}", claims(), true), NULL), 0);
    /* another audience beside ours, with azp = us */
    json_t *c = with("azp", json_string("gh"));
    json_object_set_new(c, "aud", json_pack("[s,s]", "other", "gh"));
    UNIT_EQ_INT(check(jws(rsa, "{\"alg\":\"RS256\",\"kid\":\"r1\"}", c, true), NULL), 0);
}

static void
test_signatures(void)
{
    char *ok = jws(rsa, "{\"alg\":\"RS256\",\"kid\":\"r1\"}", claims(), true), *dot = strrchr(ok, '.');
    char *none = gh_arena_printf(A, "%s.%.*s.", "eyJhbGciOiJub25lIn0", (int)(dot - strchr(ok, '.') - 1),
                                 strchr(ok, '.') + 1);
    char *swapped = gh_arena_printf(A, "%.*s%s", (int)(strchr(ok, '.') - ok), ok,
                                    strchr(jws(rsa, "{\"alg\":\"RS256\",\"kid\":\"r1\"}", with("sub", json_string("admin")), true), '.'));

    UNIT_EQ_INT(check(jws(ec, "{\"alg\":\"ES256\",\"kid\":\"e1\"}", claims(), false), "signature"), -1);
    UNIT_EQ_INT(check(none, "alg none"), -1);
    UNIT_EQ_INT(check(jws(rsa, "{\"alg\":\"RS256\",\"kid\":\"e1\"}", claims(), true), "unusable"), -1);
    UNIT_EQ_INT(check(jws(rsa, "{\"alg\":\"RS256\",\"kid\":\"r9\"}", claims(), true), "no key r9"), -1);
    UNIT_EQ_INT(check(jws(weak, "{\"alg\":\"RS256\",\"kid\":\"w1\"}", claims(), true), "unusable"), -1);
    UNIT_EQ_INT(check(jws(ec, "{\"alg\":\"ES256\",\"kid\":\"e1\",\"crit\":[\"x\"],\"x\":1}", claims(), true), "crit"), -1);
    /* this token's header and signature on another token's payload */
    {
        char *sig = strrchr(ok, '.');
        char *mixed = gh_arena_printf(A, "%.*s%s", (int)(strrchr(swapped, '.') - swapped), swapped, sig);
        UNIT_EQ_INT(check(mixed, "signature"), -1);
    }
    UNIT_EQ_INT(check("not-a-jwt", "compact"), -1);
    UNIT_EQ_INT(check("a.b.c.d", "compact"), -1);
}

static void
test_claims(void)
{
    const char *h = "{\"alg\":\"RS256\",\"kid\":\"r1\"}";
    json_int_t now = (json_int_t)gh_time_s();

    UNIT_EQ_INT(check(jws(rsa, h, with("iss", json_string("https://idp.example/")), true), "issuer"), -1);
    UNIT_EQ_INT(check(jws(rsa, h, with("aud", json_string("other")), true), "audience"), -1);
    UNIT_EQ_INT(check(jws(rsa, h, with("aud", json_pack("[s,s]", "gh", "other")), true), "audience"), -1);
    UNIT_EQ_INT(check(jws(rsa, h, with("azp", json_string("other")), true), "audience"), -1);
    UNIT_EQ_INT(check(jws(rsa, h, with("exp", json_integer(now - 120)), true), "expired"), -1);
    UNIT_EQ_INT(check(jws(rsa, h, with("exp", NULL), true), "expired"), -1);
    UNIT_EQ_INT(check(jws(rsa, h, with("iat", json_integer(now + 600)), true), "iat"), -1);
    UNIT_EQ_INT(check(jws(rsa, h, with("iat", json_integer(now - 3600)), true), "iat"), -1);
    UNIT_EQ_INT(check(jws(rsa, h, with("nonce", json_string("other")), true), "nonce"), -1);
    UNIT_EQ_INT(check(jws(rsa, h, with("nonce", NULL), true), "nonce"), -1);
    UNIT_EQ_INT(check(jws(rsa, h, with("email_verified", json_string("true")), true), "not verified"), -1);
    UNIT_EQ_INT(check(jws(rsa, h, with("email_verified", NULL), true), "not verified"), -1);
    UNIT_EQ_INT(check(jws(rsa, h, with("email", NULL), true), "without sub or email"), -1);
}

int
main(void)
{
    A = gh_arena_new(0);
    rsa = EVP_RSA_gen(2048);
    weak = EVP_RSA_gen(1024);
    ec = EVP_EC_gen("P-256");
    jwks = json_pack("{s:[o,o,o]}", "keys", jwk(rsa, "r1"), jwk(ec, "e1"), jwk(weak, "w1"));
    UNIT_RUN(test_accepted);
    UNIT_RUN(test_signatures);
    UNIT_RUN(test_claims);
    json_decref(jwks);
    EVP_PKEY_free(rsa);
    EVP_PKEY_free(weak);
    EVP_PKEY_free(ec);
    gh_arena_free(A);
    return UNIT_DONE();
}
