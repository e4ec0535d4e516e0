/* tests/unit/authz/password.c — argon2id PHC hashes; older hashes verify and
 * ask for an upgrade. */
#include "authz/authz.h"
#include "tests/unit/unit.h"
#include <argon2.h>
#include <libscrypt.h>

static void
test_argon2id_roundtrip(void)
{
    struct gh_arena *a = gh_arena_new(1 << 16);
    struct gh_err e = {0};
    bool upgrade = true;
    char *phc;

    UNIT_EQ_INT(gh_config_load(NULL, &e), 0);
    phc = authz_password_hash(a, "correct horse", &e);
    UNIT_TRUE(phc && gh_str_has_prefix(phc, "$argon2id$"));
    UNIT_TRUE(phc && !strstr(phc, "correct horse"));
    UNIT_EQ_INT(authz_password_verify(phc, "correct horse", &upgrade), 0);
    UNIT_TRUE(!upgrade);
    UNIT_EQ_INT(authz_password_verify(phc, "correct horsE", &upgrade), 1);
    /* the same password hashes differently each time (random salt) */
    UNIT_TRUE(phc && strcmp(phc, authz_password_hash(a, "correct horse", &e)) != 0);
    gh_arena_free(a);
}

static void
test_scrypt_verifies_and_asks_upgrade(void)
{
    char mcf[SCRYPT_MCF_LEN + 1];
    bool upgrade = false;
    UNIT_EQ_INT(libscrypt_hash(mcf, "legacy pw", 16384, 8, 1), 1);
    UNIT_EQ_INT(authz_password_verify(mcf, "legacy pw", &upgrade), 0);
    UNIT_TRUE(upgrade);
    UNIT_EQ_INT(authz_password_verify(mcf, "other pw", &upgrade), 1);
}

static void
test_argon2i_asks_upgrade(void)
{
    char enc[256];
    const char salt[] = "0123456789abcdef";
    bool upgrade = false;
    UNIT_EQ_INT(argon2i_hash_encoded(2, 1024, 1, "pw-argon2i", 10, salt, 16, 32, enc, sizeof(enc)), ARGON2_OK);
    UNIT_EQ_INT(authz_password_verify(enc, "pw-argon2i", &upgrade), 0);
    UNIT_TRUE(upgrade);
}

static void
test_garbage_hash_is_an_error_not_a_match(void)
{
    bool upgrade = false;
    UNIT_TRUE(authz_password_verify("$argon2id$nonsense", "x", &upgrade) != 0);
    UNIT_TRUE(authz_password_verify("", "x", &upgrade) != 0);
}

int
main(void)
{
    UNIT_RUN(test_argon2id_roundtrip);
    UNIT_RUN(test_scrypt_verifies_and_asks_upgrade);
    UNIT_RUN(test_argon2i_asks_upgrade);
    UNIT_RUN(test_garbage_hash_is_an_error_not_a_match);
    return UNIT_DONE();
}
