/*
 * authz/password.c — password hashes as PHC strings.
 *
 * New hashes are argon2id with the parameters of the configuration table.
 * Verification also accepts argon2i/argon2d and libscrypt's "$s1$" strings,
 * and asks for a re-hash when the stored hash is not argon2id with today's
 * parameters, so old hashes upgrade on the next successful sign-in.
 */
#include "authz/authz_int.h"
#include <argon2.h>
#include <libscrypt.h>
#include <stdio.h>
#include <string.h>

#define SALT_LEN 16
#define HASH_LEN 32

char *
authz_password_hash(struct gh_arena *a, const char *password, struct gh_err *e)
{
    unsigned char salt[SALT_LEN];
    size_t enclen = argon2_encodedlen((uint32_t)gh_cfg.argon2_t_cost, (uint32_t)gh_cfg.argon2_m_cost_kib,
                                      (uint32_t)gh_cfg.argon2_parallelism, SALT_LEN, HASH_LEN, Argon2_id);
    char *out = gh_arena_alloc(a, enclen + 1);
    int rc;

    if (out == NULL || gh_random_bytes(salt, sizeof(salt)) < 0) {
        gh_err_set(e, 500, "server_error", "internal error", "password hash: no memory/entropy");
        return NULL;
    }
    rc = argon2id_hash_encoded((uint32_t)gh_cfg.argon2_t_cost, (uint32_t)gh_cfg.argon2_m_cost_kib,
                               (uint32_t)gh_cfg.argon2_parallelism, password, strlen(password),
                               salt, SALT_LEN, HASH_LEN, out, enclen);
    if (rc != ARGON2_OK) {
        gh_err_set(e, 500, "server_error", "internal error", "argon2: %s", argon2_error_message(rc));
        return NULL;
    }
    return out;
}

static bool
argon2_params_current(const char *phc)
{
    char want[96];

    snprintf(want, sizeof(want), "$argon2id$v=19$m=%ld,t=%ld,p=%ld$", gh_cfg.argon2_m_cost_kib,
             gh_cfg.argon2_t_cost, gh_cfg.argon2_parallelism);
    return gh_str_has_prefix(phc, want);
}

int
authz_password_verify(const char *phc, const char *password, bool *upgrade)
{
    *upgrade = false;
    if (phc == NULL || password == NULL)
        return 1;
    if (gh_str_has_prefix(phc, "$argon2")) {
        argon2_type t = gh_str_has_prefix(phc, "$argon2id$") ? Argon2_id
                      : gh_str_has_prefix(phc, "$argon2i$")  ? Argon2_i : Argon2_d;
        int rc = argon2_verify(phc, password, strlen(password), t);
        if (rc == ARGON2_VERIFY_MISMATCH)
            return 1;
        if (rc != ARGON2_OK)
            return rc == ARGON2_DECODING_FAIL ? 1 : -1;
        *upgrade = !argon2_params_current(phc);
        return 0;
    }
    if (gh_str_has_prefix(phc, "$s1$")) {
        char copy[256];
        int rc;
        if (strlen(phc) >= sizeof(copy))
            return 1;
        /* libscrypt_check writes into its argument */
        snprintf(copy, sizeof(copy), "%s", phc);
        rc = libscrypt_check(copy, password);
        if (rc < 0)
            return 1;
        if (rc == 0)
            return 1;
        *upgrade = true;
        return 0;
    }
    return 1;
}
