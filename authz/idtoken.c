/*
 * authz/idtoken.c — verifying an OpenID Connect ID token (a JWS in compact
 * form) for single sign-on: RS256 or ES256 only (so never "none", never
 * an HMAC keyed with something public), the key chosen by `kid` from the
 * provider's JWKS and built with OpenSSL 3 (EVP_PKEY_fromdata), then the
 * claims: iss, aud, azp, exp, iat, nonce, and a verified email.
 *
 * JWS ES256 signatures are the raw r||s (RFC 7518 3.4); OpenSSL verifies
 * DER, so they are re-encoded as an ECDSA-Sig-Value first.
 */
#include "authz/authz_int.h"
#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <string.h>

#define CLOCK_SKEW 60         /* seconds of clock difference tolerated */
#define IAT_MAX_AGE 600       /* an ID token older than this is not fresh */
#define BAD "The identity provider's answer could not be verified. Start the sign-in again."

static json_t *
b64_json(struct gh_arena *a, const char *s, size_t n)
{
    unsigned char *raw;
    size_t len;
    json_t *j;

    if (gh_b64_decode(a, s, n, &raw, &len) < 0)
        return NULL;
    j = json_loadb((const char *)raw, len, JSON_REJECT_DUPLICATES, NULL);
    if (j && !json_is_object(j)) {
        json_decref(j);
        return NULL;
    }
    return j ? gh_arena_json(a, j) : NULL;
}

static BIGNUM *
b64_bn(struct gh_arena *a, const char *s)
{
    unsigned char *raw;
    size_t len;

    if (s == NULL || gh_b64_decode(a, s, strlen(s), &raw, &len) < 0 || len == 0)
        return NULL;
    return BN_bin2bn(raw, (int)len, NULL);
}

/* A public key from a JWK: RSA (n, e) or EC P-256 (x, y). */
static EVP_PKEY *
jwk_key(struct gh_arena *a, json_t *jwk, const char *alg)
{
    const char *kty = gh_json_str(jwk, "kty");
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    OSSL_PARAM *params = NULL;
    EVP_PKEY_CTX *ctx = NULL;
    EVP_PKEY *key = NULL;
    BIGNUM *n = NULL, *e = NULL;
    unsigned char *x, *y, pub[65];
    size_t xl, yl;
    const char *xs = gh_json_str(jwk, "x"), *ys = gh_json_str(jwk, "y");

    if (bld == NULL || kty == NULL)
        goto out;
    if (!strcmp(alg, "RS256") && !strcmp(kty, "RSA")) {
        n = b64_bn(a, gh_json_str(jwk, "n"));
        e = b64_bn(a, gh_json_str(jwk, "e"));
        if (n == NULL || e == NULL || BN_num_bits(n) < 2048 ||
            !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) ||
            !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e))
            goto out;
        ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
    } else if (!strcmp(alg, "ES256") && !strcmp(kty, "EC")) {
        const char *crv = gh_json_str(jwk, "crv");
        if (crv == NULL || strcmp(crv, "P-256") || xs == NULL || ys == NULL ||
            gh_b64_decode(a, xs, strlen(xs), &x, &xl) < 0 || gh_b64_decode(a, ys, strlen(ys), &y, &yl) < 0 ||
            xl != 32 || yl != 32)
            goto out;
        pub[0] = 0x04;              /* uncompressed point */
        memcpy(pub + 1, x, 32);
        memcpy(pub + 33, y, 32);
        if (!OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) ||
            !OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pub, sizeof(pub)))
            goto out;
        ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
    } else {
        goto out;
    }
    params = OSSL_PARAM_BLD_to_param(bld);
    if (ctx == NULL || params == NULL || EVP_PKEY_fromdata_init(ctx) <= 0 ||
        EVP_PKEY_fromdata(ctx, &key, EVP_PKEY_PUBLIC_KEY, params) <= 0)
        key = NULL;
out:
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    EVP_PKEY_CTX_free(ctx);
    BN_free(n);
    BN_free(e);
    return key;
}

/* raw r||s (64 bytes) -> DER; NULL when the length is wrong. */
static unsigned char *
es256_der(const unsigned char *sig, size_t n, int *der_len)
{
    ECDSA_SIG *s = NULL;
    BIGNUM *r = NULL, *ss = NULL;
    unsigned char *der = NULL;

    if (n != 64)
        return NULL;
    s = ECDSA_SIG_new();
    r = BN_bin2bn(sig, 32, NULL);
    ss = BN_bin2bn(sig + 32, 32, NULL);
    if (s == NULL || r == NULL || ss == NULL || !ECDSA_SIG_set0(s, r, ss)) {
        BN_free(r);
        BN_free(ss);
        goto out;
    }
    *der_len = i2d_ECDSA_SIG(s, &der);
    if (*der_len <= 0)
        der = NULL;
out:
    ECDSA_SIG_free(s);
    return der;
}

static bool
sig_ok(EVP_PKEY *key, const char *alg, const char *signed_part, size_t signed_len,
       const unsigned char *sig, size_t sig_len)
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned char *der = NULL;
    int der_len = 0;
    bool ok = false;

    if (md == NULL || EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, key) <= 0)
        goto out;
    if (!strcmp(alg, "ES256")) {
        if ((der = es256_der(sig, sig_len, &der_len)) == NULL)
            goto out;
        ok = EVP_DigestVerify(md, der, (size_t)der_len, (const unsigned char *)signed_part, signed_len) == 1;
    } else {
        ok = EVP_DigestVerify(md, sig, sig_len, (const unsigned char *)signed_part, signed_len) == 1;
    }
out:
    OPENSSL_free(der);
    EVP_MD_CTX_free(md);
    return ok;
}

/* The JWK of this kid and alg in a JWKS (a key without kid matches a token
 * without one), or NULL. */
static json_t *
jwks_find(json_t *jwks, const char *kid, const char *alg)
{
    json_t *keys = json_object_get(jwks, "keys"), *k;
    size_t i;

    json_array_foreach(keys, i, k) {
        const char *kkid = gh_json_str(k, "kid"), *use = gh_json_str(k, "use"), *kalg = gh_json_str(k, "alg");
        if ((kid == NULL) != (kkid == NULL) || (kid && strcmp(kid, kkid)))
            continue;
        if ((use && strcmp(use, "sig")) || (kalg && strcmp(kalg, alg)))
            continue;
        return k;
    }
    return NULL;
}

static bool
aud_ok(json_t *claims, const char *client_id)
{
    json_t *aud = json_object_get(claims, "aud"), *v;
    const char *azp = gh_json_str(claims, "azp");
    bool found = false;
    size_t i;

    if (json_is_string(aud))
        found = !strcmp(json_string_value(aud), client_id);
    else if (json_is_array(aud))
        json_array_foreach(aud, i, v)
            if (json_is_string(v) && !strcmp(json_string_value(v), client_id))
                found = true;
    if (!found)
        return false;
    /* OpenID Connect Core 3.1.3.7: with other audiences azp must be us;
     * present, it must be us in any case */
    if (json_is_array(aud) && json_array_size(aud) > 1 && azp == NULL)
        return false;
    return azp == NULL || !strcmp(azp, client_id);
}

static int
claims_check(json_t *c, const struct authz_idtoken_expect *x, struct gh_err *e)
{
    json_t *exp = json_object_get(c, "exp"), *iat = json_object_get(c, "iat");
    const char *iss = gh_json_str(c, "iss"), *nonce = gh_json_str(c, "nonce");
    json_int_t now = (json_int_t)gh_time_s();

    if (iss == NULL || strcmp(iss, x->issuer))
        return gh_err_set(e, 401, "invalid_token", BAD, "ID token from another issuer");
    if (!aud_ok(c, x->client_id))
        return gh_err_set(e, 401, "invalid_token", BAD, "ID token for another audience");
    if (!json_is_integer(exp) || json_integer_value(exp) + CLOCK_SKEW < now)
        return gh_err_set(e, 401, "invalid_token", BAD, "ID token expired or without exp");
    if (!json_is_integer(iat) || json_integer_value(iat) > now + CLOCK_SKEW ||
        json_integer_value(iat) < now - IAT_MAX_AGE)
        return gh_err_set(e, 401, "invalid_token", BAD, "ID token iat missing, in the future or too old");
    if (nonce == NULL || !gh_ct_streq(nonce, x->nonce))
        return gh_err_set(e, 401, "invalid_token", BAD, "ID token nonce does not match the sign-in");
    if (gh_json_str(c, "sub") == NULL || gh_json_str(c, "email") == NULL)
        return gh_err_set(e, 401, "invalid_token", BAD, "ID token without sub or email");
    if (!json_is_true(json_object_get(c, "email_verified")))
        return gh_err_set(e, 403, "unverified_email",
                           "Your email address is not verified at the identity provider.", "ID token email not verified by the provider");
    return 0;
}

int
authz_idtoken_verify(struct gh_arena *a, const char *jwt, const struct authz_idtoken_expect *x,
                     json_t **claims, struct gh_err *e)
{
    const char *dot1 = strchr(jwt, '.'), *dot2 = dot1 ? strchr(dot1 + 1, '.') : NULL, *alg, *kid;
    json_t *head, *body, *jwk;
    unsigned char *sig;
    size_t sig_len;
    EVP_PKEY *key;
    bool ok;

    if (dot1 == NULL || dot2 == NULL || strchr(dot2 + 1, '.'))
        return gh_err_set(e, 401, "invalid_token", BAD, "ID token is not a compact JWS");
    head = b64_json(a, jwt, (size_t)(dot1 - jwt));
    body = b64_json(a, dot1 + 1, (size_t)(dot2 - dot1 - 1));
    if (head == NULL || body == NULL || gh_b64_decode(a, dot2 + 1, strlen(dot2 + 1), &sig, &sig_len) < 0)
        return gh_err_set(e, 401, "invalid_token", BAD, "ID token parts do not decode");
    alg = gh_json_str(head, "alg");
    kid = gh_json_str(head, "kid");
    if (alg == NULL || (strcmp(alg, "RS256") && strcmp(alg, "ES256")))
        return gh_err_set(e, 401, "invalid_token", BAD, "ID token alg %.16s refused", alg ? alg : "(none)");
    if (json_object_get(head, "crit"))
        return gh_err_set(e, 401, "invalid_token", BAD, "ID token with crit header refused");
    jwk = jwks_find(x->jwks, kid, alg);
    if (jwk == NULL)
        return gh_err_set(e, 401, "unknown_kid", BAD, "no key %.64s in the provider's JWKS", kid ? kid : "");
    key = jwk_key(a, jwk, alg);
    if (key == NULL)
        return gh_err_set(e, 401, "invalid_token", BAD, "the provider's key %.64s is unusable", kid ? kid : "");
    ok = sig_ok(key, alg, jwt, (size_t)(dot2 - jwt), sig, sig_len);
    EVP_PKEY_free(key);
    if (!ok)
        return gh_err_set(e, 401, "invalid_token", BAD, "ID token signature does not verify");
    if (claims_check(body, x, e) < 0)
        return -1;
    *claims = body;
    return 0;
}
