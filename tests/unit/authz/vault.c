/*
 * tests/unit/authz/vault.c — the sealed vault (authz/vault.c): sealing to a
 * membership's key and opening it, wraps under a member's secrets, the
 * wrong secret failing, the hooks where secrets are made and rotated,
 * "Reset lost key", a removed member's key going, and the database plus
 * the server key opening nothing.
 */
#include "tests/unit/unit_db.h"
#include "authz/authz_int.h"

static const char SECRET[] = "{\"access_token\":\"upstream-at-1\",\"refresh_token\":\"upstream-rt-1\"}";

static void
test_seal_round_trip(void)
{
    struct gh_arena *a = gh_arena_new(0);
    unsigned char pub[32], priv[32], pub2[32], priv2[32], *pt = NULL;
    size_t n = 0;
    char *s, *s2;

    UNIT_EQ_INT(authz_vault_keypair(pub, priv), 0);
    UNIT_EQ_INT(authz_vault_keypair(pub2, priv2), 0);
    s = authz_vault_seal_to(a, pub, "conn|a|u|c", SECRET, strlen(SECRET));
    s2 = authz_vault_seal_to(a, pub, "conn|a|u|c", SECRET, strlen(SECRET));
    UNIT_TRUE(s != NULL && s2 != NULL && strcmp(s, s2) != 0);   /* a fresh ephemeral key each time */
    UNIT_TRUE(strstr(s, "upstream") == NULL);
    UNIT_EQ_INT(authz_vault_open_with(a, priv, "conn|a|u|c", s, &pt, &n), 0);
    UNIT_TRUE(pt && n == strlen(SECRET) && !memcmp(pt, SECRET, n));
    /* another member's key, other associated data, a flipped byte: nothing */
    UNIT_EQ_INT(authz_vault_open_with(a, priv2, "conn|a|u|c", s, &pt, &n), -1);
    UNIT_EQ_INT(authz_vault_open_with(a, priv, "conn|a|u|other", s, &pt, &n), -1);
    s[40] = s[40] == 'A' ? 'B' : 'A';
    UNIT_EQ_INT(authz_vault_open_with(a, priv, "conn|a|u|c", s, &pt, &n), -1);
    UNIT_EQ_INT(authz_vault_open_with(a, priv, "conn|a|u|c", "", &pt, &n), -1);
    UNIT_EQ_INT(authz_vault_open_with(a, priv, "conn|a|u|c", "not base64!", &pt, &n), -1);
    /* the server key does not open a sealed value */
    UNIT_EQ_INT(gh_unseal(a, s2, "conn|a|u|c", &pt, &n), -1);
    gh_arena_free(a);
}

static void
test_wrap(void)
{
    struct gh_arena *a = gh_arena_new(0);
    unsigned char pub[32], priv[32], out[32], salt[16] = {1, 2, 3}, pub2[32], priv2[32];
    const char *pat = "gth_pat_example", *label = "gatehouse vault wrap v1|pat|a|u";
    char *w;

    UNIT_EQ_INT(authz_vault_keypair(pub, priv), 0);
    UNIT_EQ_INT(authz_vault_keypair(pub2, priv2), 0);
    w = authz_vault_wrap(a, pat, strlen(pat), salt, label, priv);
    UNIT_TRUE(w != NULL);
    UNIT_EQ_INT(authz_vault_unwrap(a, pat, strlen(pat), salt, label, w, pub, out), 0);
    UNIT_TRUE(!memcmp(out, priv, 32));
    /* the wrong credential, salt, label or key pair fails */
    UNIT_EQ_INT(authz_vault_unwrap(a, "gth_pat_examplf", strlen(pat), salt, label, w, pub, out), -1);
    salt[0] ^= 1;
    UNIT_EQ_INT(authz_vault_unwrap(a, pat, strlen(pat), salt, label, w, pub, out), -1);
    salt[0] ^= 1;
    UNIT_EQ_INT(authz_vault_unwrap(a, pat, strlen(pat), salt, "gatehouse vault wrap v1|pat|a|v", w, pub, out), -1);
    UNIT_EQ_INT(authz_vault_unwrap(a, pat, strlen(pat), salt, label, w, pub2, out), -1);
    gh_arena_free(a);
}

static void
test_password_kek(void)
{
    unsigned char salt[16] = {9}, k1[32], k2[32], k3[32];

    UNIT_EQ_INT(authz_vault_password_kek("correct horse", salt, "t=1,m=64,p=1", k1), 0);
    UNIT_EQ_INT(authz_vault_password_kek("correct horse", salt, "t=1,m=64,p=1", k2), 0);
    UNIT_EQ_INT(authz_vault_password_kek("correct horsf", salt, "t=1,m=64,p=1", k3), 0);
    UNIT_TRUE(!memcmp(k1, k2, 32) && memcmp(k1, k3, 32));
    UNIT_EQ_INT(authz_vault_password_kek("x", salt, "t=0,m=64,p=1", k1), -1);
    UNIT_EQ_INT(authz_vault_password_kek("x", salt, "garbage", k1), -1);
}

/* ---------------------------------------------------------- with the database */

static struct gh_arena *A;
static char agent_id[64], agent2_id[64], user_id[64];

static void
ids(void)
{
    struct gh_err e = {0};
    PGresult *res;

    UNIT_EQ_INT(authz_agent_add("vault-a", "Vault A", false, &e), 0);
    UNIT_EQ_INT(authz_agent_add("vault-b", "Vault B", false, &e), 0);
    UNIT_EQ_INT(authz_user_add("member@vault.test", "a good password", false, &e), 0);
    res = db_query(A, &e, "SELECT (SELECT id FROM agents WHERE slug = 'vault-a'),"
                          " (SELECT id FROM agents WHERE slug = 'vault-b'),"
                          " (SELECT id FROM users WHERE email = 'member@vault.test')", 0);
    UNIT_TRUE(res && PQntuples(res) == 1);
    snprintf(agent_id, sizeof(agent_id), "%s", db_val(res, 0, 0));
    snprintf(agent2_id, sizeof(agent2_id), "%s", db_val(res, 0, 1));
    snprintf(user_id, sizeof(user_id), "%s", db_val(res, 0, 2));
}

static struct authz_credential
who(const char *kind, const char *agent)
{
    struct authz_credential c = {0};

    c.kind = kind;
    c.user_id = user_id;
    c.agent.id = (char *)agent;
    return c;
}

/* 1 when the credential opens the sealed value, 0 when it unwraps no key */
static int
opens(const char *kind, const char *agent, const char *bearer, const char *sealed)
{
    struct authz_credential c = who(kind, agent);
    unsigned char priv[32], *pt = NULL;
    struct gh_err e = {0};
    size_t n = 0;
    int rc = authz_vault_unlock(A, &c, bearer, priv, &e);

    if (rc != 1)
        return rc;
    rc = authz_vault_open_with(A, priv, "conn|test", sealed, &pt, &n) == 0 && n == strlen(SECRET) &&
         !memcmp(pt, SECRET, n);
    gh_wipe(priv, 32);
    return rc ? 1 : -2;
}

static char *pat1, *sealed1;

static void
test_pat(void)
{
    struct gh_err e = {0};
    char *pat2 = NULL;

    /* no key before a credential: nothing to seal to */
    UNIT_TRUE(authz_vault_seal(A, agent_id, user_id, "conn|test", SECRET, 3, &e) == NULL);
    UNIT_EQ_INT(e.status, 409);
    gh_err_clear(&e);
    /* the first PAT (at the CLI) makes the key pair, wrapped under it */
    UNIT_EQ_INT(authz_pat_create("member@vault.test", "vault-a", "one", 0, &pat1, &e), 0);
    sealed1 = authz_vault_seal(A, agent_id, user_id, "conn|test", SECRET, strlen(SECRET), &e);
    UNIT_TRUE(sealed1 != NULL);
    UNIT_EQ_INT(opens("pat", agent_id, pat1, sealed1), 1);
    /* another PAT made where nothing unlocked the key cannot open it */
    UNIT_EQ_INT(authz_pat_create("member@vault.test", "vault-a", "two", 0, &pat2, &e), 0);
    UNIT_EQ_INT(opens("pat", agent_id, pat2, sealed1), 0);
    /* nor does a made-up token, nor the PAT at another agent */
    UNIT_EQ_INT(opens("pat", agent_id, "gth_pat_00000000000000000000000000000000_000000", sealed1), 0);
    UNIT_EQ_INT(opens("pat", agent2_id, pat1, sealed1), 0);
    free(pat2);
}

static void
test_oauth_rotation(void)
{
    struct gh_err e = {0};
    char *sealed;

    /* consent wraps under the code; the exchange moves it to the pair;
     * each refresh moves it to the new pair and drops the old wraps */
    UNIT_EQ_INT(authz_vault_credential_new(NULL, agent2_id, user_id, "code", "gth_ac_code1", 600), 0);
    sealed = authz_vault_seal(A, agent2_id, user_id, "conn|test", SECRET, strlen(SECRET), &e);
    UNIT_TRUE(sealed != NULL);
    UNIT_EQ_INT(authz_vault_rotate(A, "code", "gth_ac_code1", true, "gth_oat_1", "gth_ort_1"), 0);
    UNIT_EQ_INT(opens("oauth", agent2_id, "gth_oat_1", sealed), 1);
    UNIT_EQ_INT(authz_vault_rotate(A, "code", "gth_ac_code1", true, "gth_oat_x", "gth_ort_x"), -1);
    UNIT_EQ_INT(authz_vault_rotate(A, "refresh", "gth_ort_1", true, "gth_oat_2", "gth_ort_2"), 0);
    UNIT_EQ_INT(opens("oauth", agent2_id, "gth_oat_2", sealed), 1);
    UNIT_EQ_INT(opens("oauth", agent2_id, "gth_oat_1", sealed), 1);      /* live until it expires */
    UNIT_EQ_INT(authz_vault_rotate(A, "refresh", "gth_ort_1", true, "gth_oat_3", "gth_ort_3"), -1);
    UNIT_EQ_INT(authz_vault_rotate(A, "refresh", "gth_ort_2", true, "gth_oat_3", "gth_ort_3"), 0);
    UNIT_EQ_INT(opens("oauth", agent2_id, "gth_oat_3", sealed), 1);
    UNIT_EQ_INT(opens("oauth", agent2_id, "gth_oat_nope", sealed), 0);
}

/* Everything the database holds about the vault, tried with the server
 * key and with every value the database itself knows as the secret. */
static void
test_database_and_server_key_open_nothing(void)
{
    struct gh_err e = {0};
    unsigned char *pt, salt[16], pub[32], priv[32];
    size_t n;
    PGresult *w = db_query(A, &e,
        "SELECT w.wrapped, encode(w.salt, 'hex'), encode(k.public_key, 'hex'), w.kind, w.agent_id, w.user_id,"
        "       w.cred_hash FROM vault_wraps w JOIN vault_keys k USING (agent_id, user_id)", 0);
    PGresult *known = db_query(A, &e, "SELECT token_hash FROM pats UNION ALL SELECT encode(salt, 'hex')"
                                      " FROM vault_wraps UNION ALL SELECT password_hash FROM users", 0);
    PGresult *c = db_query(A, &e, "SELECT string_agg(w.wrapped, ' ') FROM vault_wraps w", 0);

    UNIT_TRUE(w && known && c && PQntuples(w) >= 4);
    UNIT_TRUE(strstr(db_val(c, 0, 0), "upstream") == NULL);
    UNIT_EQ_INT(gh_unseal(A, sealed1, "conn|test", &pt, &n), -1);
    for (int i = 0; w && known && i < PQntuples(w); i++) {
        const char *label = gh_arena_printf(A, "gatehouse vault wrap v1|%s|%s|%s", db_val(w, i, 3),
                                            db_val(w, i, 4), db_val(w, i, 5));
        UNIT_EQ_INT(gh_unseal(A, db_val(w, i, 0), label, &pt, &n), -1);
        UNIT_EQ_INT(gh_hex_decode(db_val(w, i, 1), salt, 16), 0);
        UNIT_EQ_INT(gh_hex_decode(db_val(w, i, 2), pub, 32), 0);
        UNIT_EQ_INT(authz_vault_unwrap(A, db_val(w, i, 6), strlen(db_val(w, i, 6)), salt, label,
                                       db_val(w, i, 0), pub, priv), -1);
        for (int j = 0; j < PQntuples(known); j++) {
            const char *k = db_val(known, j, 0);
            if (k)
                UNIT_EQ_INT(authz_vault_unwrap(A, k, strlen(k), salt, label, db_val(w, i, 0), pub, priv), -1);
        }
    }
}

static void
test_reset_and_removal(void)
{
    struct gh_err e = {0};
    PGresult *res;
    char *pat3 = NULL, *sealed;

    /* Reset lost key: the key, its wraps and the sealed connections go;
     * the next credential makes a new pair */
    UNIT_EQ_INT(authz_vault_reset(agent_id, user_id, &e), 0);
    UNIT_EQ_INT(opens("pat", agent_id, pat1, sealed1), 0);
    UNIT_EQ_INT(authz_pat_create("member@vault.test", "vault-a", "three", 0, &pat3, &e), 0);
    UNIT_EQ_INT(opens("pat", agent_id, pat3, sealed1), -2);     /* a new key: the old seal stays shut */
    sealed = authz_vault_seal(A, agent_id, user_id, "conn|test", SECRET, strlen(SECRET), &e);
    UNIT_EQ_INT(opens("pat", agent_id, pat3, sealed), 1);
    /* a removed member's key pair goes with the state change */
    UNIT_EQ_INT(authz_member_act(NULL, "vault-a", "member@vault.test", "remove", &e), 0);
    res = db_query(A, &e, "SELECT count(*) FROM vault_keys WHERE agent_id = $1", 1, agent_id);
    UNIT_TRUE(res && !strcmp(db_val(res, 0, 0), "0"));
    res = db_query(A, &e, "SELECT count(*) FROM vault_keys WHERE agent_id = $1", 1, agent2_id);
    UNIT_TRUE(res && !strcmp(db_val(res, 0, 0), "1"));
    free(pat3);
}

int
main(void)
{
    int rc;

    setenv("GATEHOUSE_SERVER_KEY", "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f", 1);
    setenv("GATEHOUSE_ARGON2_M_COST_KIB", "1024", 1);
    if (unit_db_start("vault") < 0)
        return 1;
    A = gh_arena_new(0);
    UNIT_RUN(test_seal_round_trip);
    UNIT_RUN(test_wrap);
    UNIT_RUN(test_password_kek);
    UNIT_RUN(ids);
    UNIT_RUN(test_pat);
    UNIT_RUN(test_oauth_rotation);
    UNIT_RUN(test_database_and_server_key_open_nothing);
    UNIT_RUN(test_reset_and_removal);
    gh_arena_free(A);
    free(pat1);
    rc = unit_db_stop();
    return rc;
}
