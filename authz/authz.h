/*
 * authz/authz.h — who is calling: accounts, password hashing, browser
 * sessions, login throttling, first-run setup; later the OAuth 2.1
 * authorization server, tokens, PATs and the credential vault.
 * authz/cedar/ (the policy engine) has its own header, cedar.h.
 *
 * authz/ may call core/, db/ and web/.
 */
#ifndef GH_AUTHZ_H
#define GH_AUTHZ_H

#include "core/core.h"
#include "db/db.h"
#include "web/web.h"

/* ---- users */
struct authz_user {
    char *id;          /* uuid text */
    char *email;
    char *role;        /* "admin" | "user" */
    bool  disabled;
};

int authz_user_add(const char *email, const char *password, bool admin, struct gh_err *e);
int authz_user_disable(const char *email, struct gh_err *e);
int authz_user_list(FILE *out, struct gh_err *e);
/* Verifies a password (argon2id, or scrypt upgraded to argon2id on success). */
int authz_user_login(struct gh_arena *a, const char *email, const char *password,
                     const char *ip, struct authz_user **out, struct gh_err *e);

/* ---- password hashing (PHC strings) */
char *authz_password_hash(struct gh_arena *a, const char *password, struct gh_err *e);
/* 0 match, 1 no match, <0 error; *upgrade set when the hash should be redone */
int authz_password_verify(const char *phc, const char *password, bool *upgrade);

/* ---- browser sessions */
/* The signed-in user of this request, or NULL. */
struct authz_user *authz_session_user(struct web_req *r);
/* For pages: the signed-in user, or a redirect to /login?next=… (returns NULL
 * and the reply is already sent). */
struct authz_user *authz_require_login(struct web_req *r);
struct authz_user *authz_require_admin(struct web_req *r);
int authz_session_create(struct web_req *r, const char *user_id, struct gh_err *e);

/* ---- first-run setup: prints the one-time admin link when no admin exists */
int authz_setup_announce(struct gh_err *e);

/* Registers /login, /logout, /setup, /profile pages. */
int authz_register_routes(void);

#endif
