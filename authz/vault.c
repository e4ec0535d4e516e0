/*
 * authz/vault.c — the sealed vault of members' upstream tokens
 * (docs/VAULT.md).
 *
 * Each membership (agent, user) has an X25519 key pair.  Sealing to it is
 * ECIES: an ephemeral X25519 key, HKDF-SHA256 of the shared secret, then
 * AES-256-GCM; so a connection's tokens are sealed at the OAuth callback
 * with no secret of the member at hand.  The private key is stored only
 * wrapped under keys derived from the member's own secrets (HKDF-SHA256 of
 * a PAT or an OAuth token, argon2id of the password), each wrap found by
 * the SHA-256 the credential tables already keep.  Nothing here is keyed
 * by the server key: the database and the key file together open nothing.
 *
 * All crypto is OpenSSL 3 (EVP X25519, EVP_KDF HKDF, AES-256-GCM) and
 * libargon2; nothing hand-written.
 */
#include "authz/authz_int.h"
#include <argon2.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <stdio.h>
#include <string.h>

#define VAULT_COOKIE "gh_vault"
#define SEAL_VERSION 1

/* ------------------------------------------------------------ primitives */

static int
hkdf(const void *ikm, size_t ikm_n, const void *salt, size_t salt_n, const char *info, unsigned char out[32])
{
    EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
    EVP_KDF_CTX *ctx = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
    OSSL_PARAM p[5];
    int rc = -1;

    if (ctx == NULL)
        goto out;
    p[0] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA256", 0);
    p[1] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)ikm, ikm_n);
    p[2] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)salt, salt_n);
    p[3] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)info, strlen(info));
    p[4] = OSSL_PARAM_construct_end();
    rc = EVP_KDF_derive(ctx, out, 32, p) == 1 ? 0 : -1;
out:
    EVP_KDF_CTX_free(ctx);
    EVP_KDF_free(kdf);
    return rc;
}

/* AES-256-GCM: out = iv(12) | tag(16) | ct(n). */
static int
gcm_seal(const unsigned char key[32], const char *aad, const void *pt, size_t n, unsigned char *out)
{
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int len = 0, fin = 0, rc = -1;

    if (ctx == NULL || gh_random_bytes(out, 12) < 0 ||
        EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, out) != 1 ||
        EVP_EncryptUpdate(ctx, NULL, &len, (const unsigned char *)aad, (int)strlen(aad)) != 1 ||
        EVP_EncryptUpdate(ctx, out + 28, &len, pt, (int)n) != 1 ||
        EVP_EncryptFinal_ex(ctx, out + 28 + len, &fin) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, 16, out + 12) != 1)
        goto out;
    rc = 0;
out:
    EVP_CIPHER_CTX_free(ctx);
    return rc;
}

static int
gcm_open(const unsigned char key[32], const char *aad, const unsigned char *in, size_t n, unsigned char *out)
{
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int len = 0, fin = 0, rc = -1;

    if (ctx == NULL || n < 28 ||
        EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, in) != 1 ||
        EVP_DecryptUpdate(ctx, NULL, &len, (const unsigned char *)aad, (int)strlen(aad)) != 1 ||
        EVP_DecryptUpdate(ctx, out, &len, in + 28, (int)(n - 28)) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, 16, (void *)(in + 12)) != 1 ||
        EVP_DecryptFinal_ex(ctx, out + len, &fin) != 1) {
        gh_wipe(out, n >= 28 ? n - 28 : 0);
        goto out;
    }
    rc = 0;
out:
    EVP_CIPHER_CTX_free(ctx);
    return rc;
}

static int
x25519_public(const unsigned char priv[32], unsigned char pub[32])
{
    EVP_PKEY *k = EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, NULL, priv, 32);
    size_t n = 32;
    int rc = k && EVP_PKEY_get_raw_public_key(k, pub, &n) == 1 && n == 32 ? 0 : -1;

    EVP_PKEY_free(k);
    return rc;
}

int
authz_vault_keypair(unsigned char pub[32], unsigned char priv[32])
{
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_X25519, NULL);
    EVP_PKEY *k = NULL;
    size_t n = 32, m = 32;
    int rc = -1;

    if (ctx && EVP_PKEY_keygen_init(ctx) == 1 && EVP_PKEY_keygen(ctx, &k) == 1 &&
        EVP_PKEY_get_raw_private_key(k, priv, &n) == 1 && EVP_PKEY_get_raw_public_key(k, pub, &m) == 1 &&
        n == 32 && m == 32)
        rc = 0;
    EVP_PKEY_free(k);
    EVP_PKEY_CTX_free(ctx);
    return rc;
}

/* The shared secret of priv and peer, through HKDF to an AES key bound to
 * both public keys (eph first, then the member's). */
static int
seal_key(const unsigned char priv[32], const unsigned char peer[32], const unsigned char eph_pub[32],
         const unsigned char member_pub[32], unsigned char key[32])
{
    EVP_PKEY *me = EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, NULL, priv, 32);
    EVP_PKEY *them = EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, NULL, peer, 32);
    EVP_PKEY_CTX *ctx = me ? EVP_PKEY_CTX_new(me, NULL) : NULL;
    unsigned char shared[32], salt[64];
    size_t n = sizeof(shared);
    int rc = -1;

    if (ctx == NULL || them == NULL || EVP_PKEY_derive_init(ctx) != 1 ||
        EVP_PKEY_derive_set_peer(ctx, them) != 1 || EVP_PKEY_derive(ctx, shared, &n) != 1 || n != 32)
        goto out;
    memcpy(salt, eph_pub, 32);
    memcpy(salt + 32, member_pub, 32);
    rc = hkdf(shared, 32, salt, sizeof(salt), "gatehouse vault seal v1", key);
out:
    gh_wipe(shared, sizeof(shared));
    EVP_PKEY_CTX_free(ctx);
    EVP_PKEY_free(me);
    EVP_PKEY_free(them);
    return rc;
}

char *
authz_vault_seal_to(struct gh_arena *a, const unsigned char pub[32], const char *aad, const void *pt, size_t n)
{
    unsigned char eph_priv[32], eph_pub[32], key[32];
    unsigned char *buf = gh_arena_alloc(a, 1 + 32 + 28 + n);
    char *out = NULL;

    if (buf == NULL || authz_vault_keypair(eph_pub, eph_priv) < 0 ||
        seal_key(eph_priv, pub, eph_pub, pub, key) < 0)
        goto out;
    buf[0] = SEAL_VERSION;
    memcpy(buf + 1, eph_pub, 32);
    if (gcm_seal(key, aad, pt, n, buf + 33) < 0)
        goto out;
    out = gh_b64url_encode(a, buf, 1 + 32 + 28 + n);
out:
    gh_wipe(eph_priv, sizeof(eph_priv));
    gh_wipe(key, sizeof(key));
    return out;
}

int
authz_vault_open_with(struct gh_arena *a, const unsigned char priv[32], const char *aad, const char *sealed,
                      unsigned char **pt, size_t *n)
{
    unsigned char *raw, *out, key[32], pub[32];
    size_t rawlen;
    int rc = -1;

    if (sealed == NULL || gh_b64_decode(a, sealed, strlen(sealed), &raw, &rawlen) < 0 ||
        rawlen < 1 + 32 + 28 || raw[0] != SEAL_VERSION)
        return -1;
    out = gh_arena_alloc(a, rawlen - 61 + 1);
    if (out == NULL || x25519_public(priv, pub) < 0 || seal_key(priv, raw + 1, raw + 1, pub, key) < 0)
        goto out;
    if (gcm_open(key, aad, raw + 33, rawlen - 33, out) < 0)
        goto out;
    out[rawlen - 61] = '\0';
    *pt = out;
    *n = rawlen - 61;
    rc = 0;
out:
    gh_wipe(key, sizeof(key));
    return rc;
}

/* What a wrap's key and associated data are bound to: kind and membership,
 * so a wrap copied to another member or kind does not open. */
static char *
wrap_label(struct gh_arena *a, const char *kind, const char *agent_id, const char *user_id)
{
    return gh_arena_printf(a, "gatehouse vault wrap v1|%s|%s|%s", kind, agent_id, user_id);
}

char *
authz_vault_wrap(struct gh_arena *a, const void *secret, size_t sn, const unsigned char salt[16],
                 const char *label, const unsigned char priv[32])
{
    unsigned char key[32], buf[28 + 32];
    char *out = NULL;

    if (hkdf(secret, sn, salt, 16, label, key) == 0 && gcm_seal(key, label, priv, 32, buf) == 0)
        out = gh_b64url_encode(a, buf, sizeof(buf));
    gh_wipe(key, sizeof(key));
    return out;
}

int
authz_vault_unwrap(struct gh_arena *a, const void *secret, size_t sn, const unsigned char salt[16],
                   const char *label, const char *wrapped, const unsigned char pub[32], unsigned char priv[32])
{
    unsigned char key[32], *raw, check[32];
    size_t rawlen;
    int rc = -1;

    if (wrapped == NULL || gh_b64_decode(a, wrapped, strlen(wrapped), &raw, &rawlen) < 0 || rawlen != 60)
        return -1;
    if (hkdf(secret, sn, salt, 16, label, key) < 0 || gcm_open(key, label, raw, rawlen, priv) < 0)
        goto out;
    /* the key must be the one the public key says: a wrap of another key
     * pair (a row swapped in) fails here rather than sealing to nobody */
    if (x25519_public(priv, check) < 0 || CRYPTO_memcmp(check, pub, 32)) {
        gh_wipe(priv, 32);
        goto out;
    }
    rc = 0;
out:
    gh_wipe(key, sizeof(key));
    return rc;
}

int
authz_vault_password_kek(const char *password, const unsigned char salt[16], const char *params,
                         unsigned char kek[32])
{
    unsigned t, m, p;

    if (sscanf(params, "t=%u,m=%u,p=%u", &t, &m, &p) != 3 || t < 1 || m < 8 || p < 1)
        return -1;
    return argon2id_hash_raw(t, m, p, password, strlen(password), salt, 16, kek, 32) == ARGON2_OK ? 0 : -1;
}

/* ------------------------------------------------------------ the store */

/* One secret of a member: its wrap kind, the bytes keys derive from, and
 * the id its wrap is found by (SHA-256 hex of a token; the user id for
 * the password). */
struct vault_cred {
    const char *kind;
    const void *secret;
    size_t      n;
    char        hash[65];
    long        ttl;            /* seconds the wrap is good for; 0 = as long as the key */
};

static void
cred_token(struct vault_cred *c, const char *kind, const char *token, long ttl)
{
    c->kind = kind;
    c->secret = token;
    c->n = strlen(token);
    gh_sha256_hex(token, c->hash);
    c->ttl = ttl;
}

static void
cred_password(struct vault_cred *c, const unsigned char kek[32], const char *user_id)
{
    c->kind = "password";
    c->secret = kek;
    c->n = 32;
    snprintf(c->hash, sizeof(c->hash), "%s", user_id);
    c->ttl = 0;
}

static int
hex32(const char *hex, unsigned char *out, size_t n)
{
    return hex && strlen(hex) == 2 * n ? gh_hex_decode(hex, out, n) : -1;
}

/* 1 with the membership's public key, 0 when it has none, -1 (e); on dc
 * when given, else on a connection of the pool. */
static int
key_public(struct db_conn *dc, struct gh_arena *a, const char *agent_id, const char *user_id, unsigned char pub[32],
           struct gh_err *e)
{
    static const char SQL[] = "SELECT encode(public_key, 'hex') FROM vault_keys WHERE agent_id = $1 AND user_id = $2";
    PGresult *res = dc ? db_exec(dc, a, e, SQL, 2, agent_id, user_id) : db_query(a, e, SQL, 2, agent_id, user_id);

    if (res == NULL)
        return -1;
    if (PQntuples(res) == 0)
        return 0;
    return hex32(db_val(res, 0, 0), pub, 32) == 0 ? 1
         : gh_err_set(e, 500, "server_error", "internal error", "vault: public key corrupt");
}

/* 1 with the private key the credential unwraps, 0 when it unwraps none
 * (no key, no wrap, or the wrong secret), -1 (e). */
static int
unlock(struct gh_arena *a, const char *agent_id, const char *user_id, const struct vault_cred *c,
       unsigned char priv[32], struct gh_err *e)
{
    unsigned char pub[32], salt[16];
    PGresult *res = db_query(a, e,
        "SELECT encode(k.public_key, 'hex'), encode(w.salt, 'hex'), w.wrapped"
        "  FROM vault_wraps w JOIN vault_keys k USING (agent_id, user_id)"
        " WHERE w.kind = $1 AND w.cred_hash = $2 AND w.agent_id = $3 AND w.user_id = $4"
        "   AND (w.expires_at IS NULL OR w.expires_at > now())", 4, c->kind, c->hash, agent_id, user_id);

    if (res == NULL)
        return -1;
    if (PQntuples(res) == 0 || hex32(db_val(res, 0, 0), pub, 32) < 0 || hex32(db_val(res, 0, 1), salt, 16) < 0)
        return 0;
    return authz_vault_unwrap(a, c->secret, c->n, salt, wrap_label(a, c->kind, agent_id, user_id),
                              db_val(res, 0, 2), pub, priv) == 0 ? 1 : 0;
}

static int
add_wraps(struct gh_arena *a, const char *agent_id, const char *user_id, const unsigned char priv[32],
          const struct vault_cred *c, int n, struct gh_err *e)
{
    for (int i = 0; i < n; i++) {
        unsigned char salt[16];
        char salt_hex[33], ttl[24], *w;

        if (gh_random_bytes(salt, sizeof(salt)) < 0)
            return gh_err_set(e, 500, "server_error", "internal error", "no entropy");
        w = authz_vault_wrap(a, c[i].secret, c[i].n, salt, wrap_label(a, c[i].kind, agent_id, user_id), priv);
        if (w == NULL)
            return gh_err_set(e, 500, "server_error", "internal error", "vault: wrap failed");
        gh_hex_encode(salt, sizeof(salt), salt_hex);
        snprintf(ttl, sizeof(ttl), "%ld", c[i].ttl);
        if (!db_query(a, e,
                "INSERT INTO vault_wraps (agent_id, user_id, kind, cred_hash, salt, wrapped, expires_at)"
                " VALUES ($1, $2, $3, $4, decode($5, 'hex'), $6,"
                "         CASE WHEN $7::int > 0 THEN now() + make_interval(secs => $7::int) END)"
                " ON CONFLICT (kind, cred_hash, agent_id) DO UPDATE SET user_id = EXCLUDED.user_id,"
                "   salt = EXCLUDED.salt, wrapped = EXCLUDED.wrapped, expires_at = EXCLUDED.expires_at",
                7, agent_id, user_id, c[i].kind, c[i].hash, salt_hex, w, ttl))
            return -1;
    }
    return 0;
}

/* A new key pair for the membership: 1 with it, 0 when one exists (made
 * meanwhile by another request), -1 (e). */
static int
key_create(struct gh_arena *a, const char *agent_id, const char *user_id, unsigned char priv[32],
           struct gh_err *e)
{
    unsigned char pub[32];
    char pub_hex[65];
    PGresult *res;

    if (authz_vault_keypair(pub, priv) < 0)
        return gh_err_set(e, 500, "server_error", "internal error", "vault: key generation failed");
    gh_hex_encode(pub, 32, pub_hex);
    res = db_query(a, e, "INSERT INTO vault_keys (agent_id, user_id, public_key) VALUES ($1, $2, decode($3, 'hex'))"
                         " ON CONFLICT DO NOTHING RETURNING 1", 3, agent_id, user_id, pub_hex);
    if (res == NULL || PQntuples(res) == 0)
        gh_wipe(priv, 32);
    return res == NULL ? -1 : PQntuples(res);
}

/* ------------------------------------------------------------ the browser */

static char *
browser_aad(struct gh_arena *a, const char *user_id)
{
    return gh_arena_printf(a, "gatehouse vault browser v1|%s", user_id);
}

/* The password-derived key this browser carries for user_id: 1, 0 none, -1. */
static int
browser_kek(struct web_req *r, const char *user_id, unsigned char kek[32], struct gh_err *e)
{
    struct gh_arena *a = web_arena(r);
    const char *v = web_cookie(r, VAULT_COOKIE);
    unsigned char key[32], *raw;
    size_t rawlen;
    char hash[65];
    PGresult *res;
    int rc = 0;

    if (v == NULL || strlen(v) != 64)
        return 0;
    gh_sha256_hex(v, hash);
    res = db_query(a, e, "SELECT kek_sealed FROM vault_browsers WHERE id_hash = $1 AND user_id = $2"
                         " AND expires_at > now()", 2, hash, user_id);
    if (res == NULL)
        return -1;
    if (PQntuples(res) == 0 || gh_b64_decode(a, db_val(res, 0, 0), strlen(db_val(res, 0, 0)), &raw, &rawlen) < 0 ||
        rawlen != 60)
        return 0;
    if (hkdf(v, 64, "", 0, browser_aad(a, user_id), key) == 0 && gcm_open(key, browser_aad(a, user_id), raw, 60, kek) == 0)
        rc = 1;
    gh_wipe(key, sizeof(key));
    return rc;
}

/* The account's password-derived key, its salt made on first use. */
static int
password_kek(struct gh_arena *a, const char *user_id, const char *password, unsigned char kek[32], struct gh_err *e)
{
    unsigned char salt[16];
    char salt_hex[33], params[64];
    PGresult *res;

    if (gh_random_bytes(salt, sizeof(salt)) < 0)
        return gh_err_set(e, 500, "server_error", "internal error", "no entropy");
    gh_hex_encode(salt, sizeof(salt), salt_hex);
    snprintf(params, sizeof(params), "t=%ld,m=%ld,p=%ld", gh_cfg.argon2_t_cost, gh_cfg.argon2_m_cost_kib,
             gh_cfg.argon2_parallelism);
    res = db_query(a, e,
        "WITH ins AS (INSERT INTO vault_users (user_id, salt, params) VALUES ($1, decode($2, 'hex'), $3)"
        "   ON CONFLICT DO NOTHING RETURNING salt, params)"
        " SELECT encode(salt, 'hex'), params FROM ins UNION ALL"
        " SELECT encode(salt, 'hex'), params FROM vault_users WHERE user_id = $1", 3, user_id, salt_hex, params);
    if (res == NULL)
        return -1;
    if (PQntuples(res) == 0 || hex32(db_val(res, 0, 0), salt, 16) < 0 ||
        authz_vault_password_kek(password, salt, db_val(res, 0, 1), kek) < 0)
        return gh_err_set(e, 500, "server_error", "internal error", "vault: password key failed");
    return 0;
}

int
authz_vault_signin(struct web_req *r, const char *user_id, const char *password)
{
    struct gh_arena *a = web_arena(r);
    unsigned char kek[32], key[32], buf[60];
    char *v = gh_token_hex(a, "", 32), hash[65], ttl[24], *sealed = NULL;
    struct gh_err e = {0};
    int rc = -1;

    if (v == NULL || password_kek(a, user_id, password, kek, &e) < 0)
        goto out;
    if (hkdf(v, 64, "", 0, browser_aad(a, user_id), key) < 0 || gcm_seal(key, browser_aad(a, user_id), kek, 32, buf) < 0 ||
        (sealed = gh_b64url_encode(a, buf, sizeof(buf))) == NULL)
        goto out;
    gh_sha256_hex(v, hash);
    snprintf(ttl, sizeof(ttl), "%ld", gh_cfg.session_absolute_seconds);
    if (!db_query(a, &e, "INSERT INTO vault_browsers (id_hash, user_id, kek_sealed, expires_at)"
                         " VALUES ($1, $2, $3, now() + make_interval(secs => $4::int))", 4, hash, user_id, sealed, ttl))
        goto out;
    db_query(a, &e, "DELETE FROM vault_browsers WHERE user_id = $1 AND expires_at < now()", 1, user_id);
    web_set_cookie(r, VAULT_COOKIE, v, gh_cfg.session_absolute_seconds, true, "Lax");
    rc = 0;
out:
    if (rc < 0)
        GH_LOG(WARN, "vault_signin", "user %s: the browser carries no vault key: %s", user_id, e.detail);
    gh_wipe(kek, sizeof(kek));
    gh_wipe(key, sizeof(key));
    gh_wipe(buf, sizeof(buf));
    if (v)
        gh_wipe(v, 64);
    return rc;
}

void
authz_vault_signout(struct web_req *r)
{
    const char *v = web_cookie(r, VAULT_COOKIE);
    struct gh_err e = {0};
    char hash[65];

    if (v && strlen(v) == 64) {
        gh_sha256_hex(v, hash);
        db_query(web_arena(r), &e, "DELETE FROM vault_browsers WHERE id_hash = $1", 1, hash);
        web_set_cookie(r, VAULT_COOKIE, "", 0, true, "Lax");
    }
}

/* ------------------------------------------------------------ credentials */

int
authz_vault_credential_new(struct web_req *r, const char *agent_id, const char *user_id, const char *kind,
                           const char *secret, long ttl)
{
    struct gh_arena *a = r ? web_arena(r) : gh_arena_new(0);
    unsigned char kek[32], priv[32];
    struct vault_cred c[2];
    struct gh_err e = {0};
    int have_kek = 0, got = 0, n = 1, rc = -1;

    if (a == NULL)
        return -1;
    cred_token(&c[0], kind, secret, ttl);
    if (r && (have_kek = browser_kek(r, user_id, kek, &e)) == 1) {
        cred_password(&c[1], kek, user_id);
        got = unlock(a, agent_id, user_id, &c[1], priv, &e);
    }
    if (got == 0 && !gh_err_isset(&e)) {
        /* no key yet: made now, wrapped under this credential (and the
         * password this browser signed in with) */
        got = key_create(a, agent_id, user_id, priv, &e);
        n = have_kek == 1 ? 2 : 1;
    }
    if (got == 1 && add_wraps(a, agent_id, user_id, priv, c, n, &e) == 0)
        rc = 0;
    else if (got == 0) {
        rc = 1;
        GH_LOG(INFO, "vault_locked", "a new %s of user %s cannot open their connections of agent %s"
               " (no unlocked key at hand)", kind, user_id, agent_id);
    }
    if (gh_err_isset(&e))
        GH_LOG(WARN, "vault_wrap_failed", "%s", e.detail);
    gh_wipe(priv, sizeof(priv));
    gh_wipe(kek, sizeof(kek));
    if (r == NULL)
        gh_arena_free(a);
    return rc;
}

int
authz_vault_rotate(struct gh_arena *a, const char *from_kind, const char *from_secret, bool drop_from,
                   const char *access, const char *refresh)
{
    unsigned char priv[32];
    struct vault_cred from, c[2];
    struct gh_err e = {0};
    PGresult *res;
    const char *agent_id, *user_id;
    int n = 0, rc = -1;

    cred_token(&from, from_kind, from_secret, 0);
    res = db_query(a, &e, "SELECT agent_id, user_id FROM vault_wraps WHERE kind = $1 AND cred_hash = $2",
                   2, from_kind, from.hash);
    if (res == NULL || PQntuples(res) == 0)
        goto out;               /* the grant holds no key: nothing to carry */
    agent_id = db_val(res, 0, 0);
    user_id = db_val(res, 0, 1);
    if (unlock(a, agent_id, user_id, &from, priv, &e) != 1)
        goto out;
    cred_token(&c[n++], "access", access, gh_cfg.access_token_ttl);
    if (refresh)
        cred_token(&c[n++], "refresh", refresh, gh_cfg.refresh_token_ttl);
    if (add_wraps(a, agent_id, user_id, priv, c, n, &e) < 0)
        goto out;
    /* the rotated secret's wrap goes (a code is single use; a rotated
     * refresh token's successor has just been wrapped), and so do expired ones */
    db_query(a, &e, "DELETE FROM vault_wraps WHERE agent_id = $1 AND user_id = $2"
                    " AND ((kind = $3 AND cred_hash = $4 AND $5) OR expires_at < now())",
             5, agent_id, user_id, from_kind, from.hash, drop_from ? "true" : "false");
    rc = 0;
out:
    if (gh_err_isset(&e))
        GH_LOG(WARN, "vault_rotate_failed", "%s", e.detail);
    gh_wipe(priv, sizeof(priv));
    return rc;
}

int
authz_vault_unlock(struct gh_arena *a, const struct authz_credential *who, const char *bearer,
                   unsigned char priv[32], struct gh_err *e)
{
    struct vault_cred c;

    cred_token(&c, !strcmp(who->kind, "pat") ? "pat" : "access", bearer, 0);
    return unlock(a, who->agent.id, who->user_id, &c, priv, e);
}

char *
authz_vault_seal(struct gh_arena *a, const char *agent_id, const char *user_id, const char *aad,
                 const void *pt, size_t n, struct gh_err *e)
{
    return authz_vault_seal_on(NULL, a, agent_id, user_id, aad, pt, n, e);
}

char *
authz_vault_seal_on(struct db_conn *dc, struct gh_arena *a, const char *agent_id, const char *user_id,
                    const char *aad, const void *pt, size_t n, struct gh_err *e)
{
    unsigned char pub[32];
    char *s;

    switch (key_public(dc, a, agent_id, user_id, pub, e)) {
    case -1: return NULL;
    case 0:
        gh_err_set(e, 409, "vault_locked", "Create a personal access token or connect a client first: "
                   "your connections are sealed with a key only your credentials open.", NULL);
        return NULL;
    }
    s = authz_vault_seal_to(a, pub, aad, pt, n);
    if (s == NULL)
        gh_err_set(e, 500, "server_error", "internal error", "vault: seal failed");
    return s;
}

int
authz_vault_reset(const char *agent_id, const char *user_id, struct gh_err *e)
{
    struct gh_arena *a = gh_arena_new(0);
    PGresult *res = db_query(a, e, "DELETE FROM vault_keys WHERE agent_id = $1 AND user_id = $2",
                             2, agent_id, user_id);
    int rc = res ? 0 : -1;

    if (res)
        GH_LOG(INFO, "vault_reset", "user %s reset their key of agent %s; sealed connections deleted",
               user_id, agent_id);
    gh_arena_free(a);
    return rc;
}
