/* authz/authz_int.h — private to authz/. */
#ifndef GH_AUTHZ_INT_H
#define GH_AUTHZ_INT_H

#include "authz/authz.h"

#define AUTHZ_SESSION_COOKIE "gh_session"

/* pages.c */
char *authz_page(struct web_req *r, struct authz_user *u, const char *title, const char *body);
/* throttle.c */
int  authz_throttle_check(struct gh_arena *a, const char *email, const char *ip, struct gh_err *e);
void authz_throttle_fail(struct gh_arena *a, const char *email, const char *ip);
void authz_throttle_reset(struct gh_arena *a, const char *email);
/* session.c */
int  authz_session_destroy(struct web_req *r);
bool authz_local_path(const char *next);

#endif
