/*
 * authz/sso.c — signing in with an OpenID Connect provider: authorization
 * code + PKCE S256 + state + nonce.
 *
 * /login/sso stores a row per attempt (state hashed, nonce, the PKCE
 * verifier sealed) and a short-lived cookie holding the state, and sends
 * the browser to the provider.  /login/sso/callback takes the row once
 * (the cookie must match, so a state from another browser is refused),
 * exchanges the code at the token endpoint, verifies the ID token
 * (idtoken.c) and signs in the account of its verified email, creating it
 * when the settings say so.  The second factor still follows when the
 * account has one.
 *
 * The provider's discovery document and JWKS are cached in memory per
 * issuer; an ID token naming an unknown kid refetches the JWKS once (the
 * provider rotated its keys).  Every fetch runs off the server threads:
 * the two handlers are resumed on a worker thread (worker.c).
 */
#include "authz/authz_int.h"
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#define SSO_COOKIE       "gh_sso"
#define SSO_TTL          600        /* seconds a started sign-in stays good */
#define SSO_FETCH_MAX    (256 * 1024)
#define SSO_TIMEOUT_MS   5000

/* ------------------------------------------------------------ fetches */

/* GET url (form NULL) or POST the urlencoded form, with HTTP Basic user:pass
 * when user is set; the JSON object answered with a 2xx, else NULL and e.
 * http is allowed only where the issuer was (issuer_ok: loopback). */
static json_t *
fetch_json(struct gh_arena *a, const char *url, const char *form, const char *user, const char *pass,
           struct gh_err *e)
{
    struct authz_fetch f = { .url = url, .form = form, .user = user, .pass = pass, .who = "identity provider",
                             .timeout_ms = SSO_TIMEOUT_MS, .max_bytes = SSO_FETCH_MAX };
    long status;
    json_t *j = authz_fetch_json(a, &f, &status, e);

    if (j && (status < 200 || status > 299)) {
        gh_err_set(e, 502, "bad_gateway", "The identity provider could not be reached. Try again later.",
                   "SSO fetch: HTTP %ld", status);
        return NULL;
    }
    return j;
}

/* ------------------------------------------------- discovery and keys */

static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static char   *cached_issuer;
static json_t *cached_meta;        /* the discovery document */
static json_t *cached_jwks;

void
authz_sso_forget(void)
{
    pthread_mutex_lock(&cache_lock);
    free(cached_issuer);
    cached_issuer = NULL;
    json_decref(cached_meta);
    json_decref(cached_jwks);
    cached_meta = cached_jwks = NULL;
    pthread_mutex_unlock(&cache_lock);
}

/* Copies of the cached documents for this issuer (arena-owned), or NULLs. */
static void
cache_get(struct gh_arena *a, const char *issuer, json_t **meta, json_t **jwks)
{
    *meta = *jwks = NULL;
    pthread_mutex_lock(&cache_lock);
    if (cached_issuer && !strcmp(cached_issuer, issuer)) {
        if (cached_meta)
            *meta = gh_arena_json(a, json_deep_copy(cached_meta));
        if (cached_jwks)
            *jwks = gh_arena_json(a, json_deep_copy(cached_jwks));
    }
    pthread_mutex_unlock(&cache_lock);
}

static void
cache_put(const char *issuer, json_t *meta, json_t *jwks)
{
    pthread_mutex_lock(&cache_lock);
    if (cached_issuer == NULL || strcmp(cached_issuer, issuer)) {
        free(cached_issuer);
        cached_issuer = strdup(issuer);
        json_decref(cached_meta);
        json_decref(cached_jwks);
        cached_meta = cached_jwks = NULL;
    }
    if (meta) {
        json_decref(cached_meta);
        cached_meta = json_deep_copy(meta);
    }
    if (jwks) {
        json_decref(cached_jwks);
        cached_jwks = json_deep_copy(jwks);
    }
    pthread_mutex_unlock(&cache_lock);
}

/* The endpoint URLs a discovery document must carry: same scheme rule as
 * the issuer (https, or http when the issuer is a loopback http one). */
static bool
endpoint_ok(const char *issuer, const char *url)
{
    return url && gh_text_ok(url, strlen(url)) &&
           (gh_str_has_prefix(url, "https://") ||
            (gh_str_has_prefix(issuer, "http://") && gh_str_has_prefix(url, "http://")));
}

static json_t *
discover(struct gh_arena *a, const char *issuer, struct gh_err *e)
{
    json_t *meta, *jwks;
    const char *iss;

    cache_get(a, issuer, &meta, &jwks);
    if (meta)
        return meta;
    meta = fetch_json(a, gh_arena_printf(a, "%s/.well-known/openid-configuration", issuer), NULL, NULL, NULL, e);
    if (meta == NULL)
        return NULL;
    iss = gh_json_str(meta, "issuer");
    if (iss == NULL || strcmp(iss, issuer) ||
        !endpoint_ok(issuer, gh_json_str(meta, "authorization_endpoint")) ||
        !endpoint_ok(issuer, gh_json_str(meta, "token_endpoint")) ||
        !endpoint_ok(issuer, gh_json_str(meta, "jwks_uri"))) {
        gh_err_set(e, 502, "bad_gateway", "The identity provider's configuration is not usable.",
                   "SSO discovery: issuer mismatch or an endpoint missing or not https");
        return NULL;
    }
    cache_put(issuer, meta, NULL);
    return meta;
}

static json_t *
keys(struct gh_arena *a, const char *issuer, json_t *meta, bool fresh, struct gh_err *e)
{
    json_t *m, *jwks = NULL;

    if (!fresh)
        cache_get(a, issuer, &m, &jwks);
    if (jwks)
        return jwks;
    jwks = fetch_json(a, gh_json_str(meta, "jwks_uri"), NULL, NULL, NULL, e);
    if (jwks == NULL)
        return NULL;
    if (!json_is_array(json_object_get(jwks, "keys"))) {
        gh_err_set(e, 502, "bad_gateway", "The identity provider's keys are not usable.", "SSO JWKS without keys");
        return NULL;
    }
    GH_LOG(INFO, "sso_jwks", "fetched the identity provider's keys");
    cache_put(issuer, NULL, jwks);
    return jwks;
}

/* ------------------------------------------------------------ sign-in */

static int
fail(struct web_req *r, const struct gh_err *e)
{
    struct gh_arena *a = web_arena(r);
    char ra[16];

    if (e->detail[0])
        GH_LOG(INFO, "sso_refused", "%s", e->detail);
    if (e->retry_after) {
        snprintf(ra, sizeof(ra), "%d", e->retry_after);
        web_add_header(r, "Retry-After", ra);
    }
    if (e->status >= 500 && e->status != 502 && e->status != 503)
        return web_reply_err(r, e);
    return web_reply_html(r, e->status, authz_page(r, NULL, "Sign-in failed", gh_arena_printf(a,
        "<div class=\"card narrow\"><h1>Sign-in failed</h1><p class=\"error\" role=\"alert\">%s</p>"
        "<p><a href=\"/login\">Back to sign-in</a></p></div>", gh_html_escape(a, e->msg))));
}

static int
get_sso_start(struct web_req *r)
{
    struct gh_arena *a = web_arena(r);
    const char *next = web_query(r, "next"), *ep;
    struct gh_err e = {0};
    struct authz_sso *p;
    unsigned char digest[32];
    char *state, *nonce, *verifier, *sealed, hash[65], *url;
    json_t *meta;

    if (authz_offload(r, get_sso_start))
        return 0;
    if (authz_rate_check(r, "login", gh_cfg.rate_login_per_min, &e) < 0)    /* each start is a row */
        return fail(r, &e);
    if (!authz_local_path(next))
        next = "/profile";
    p = authz_sso_load(a, &e);
    if (p == NULL) {
        gh_err_set(&e, 404, "not_found", "Single sign-on is not set up.", NULL);
        return fail(r, &e);
    }
    if ((meta = discover(a, p->issuer, &e)) == NULL)
        return fail(r, &e);
    state = gh_token_hex(a, "", 32);
    nonce = gh_token_hex(a, "", 16);
    verifier = gh_token_hex(a, "", 32);     /* 64 unreserved characters (RFC 7636 4.1) */
    if (state == NULL || nonce == NULL || verifier == NULL) {
        gh_err_set(&e, 500, "server_error", "internal error", "no entropy");
        return fail(r, &e);
    }
    gh_sha256_hex(state, hash);
    gh_sha256(verifier, strlen(verifier), digest);
    sealed = gh_seal(a, verifier, strlen(verifier), hash);
    if (sealed == NULL ||
        !db_query(a, &e, "DELETE FROM sso_states WHERE created_at < now() - interval '1 hour'", 0) ||
        !db_query(a, &e, "INSERT INTO sso_states (state_hash, nonce, verifier, next) VALUES ($1, $2, $3, $4)",
                  4, hash, nonce, sealed, next)) {
        gh_err_set(&e, 500, "server_error", "internal error", "storing the SSO state failed");
        return fail(r, &e);
    }
    /* the state goes back to this browser only: a callback carrying a
     * state started elsewhere is refused */
    web_set_cookie(r, SSO_COOKIE, state, SSO_TTL, true, "Lax");
    ep = gh_json_str(meta, "authorization_endpoint");
    url = gh_arena_printf(a, "%s%cresponse_type=code&client_id=%s&redirect_uri=%s&scope=openid%%20email%%20profile"
                             "&state=%s&nonce=%s&code_challenge=%s&code_challenge_method=S256",
                          ep, strchr(ep, '?') ? '&' : '?', gh_url_encode(a, p->client_id),
                          gh_url_encode(a, gh_config_url(a, "/login/sso/callback")), state, nonce,
                          gh_b64url_encode(a, digest, sizeof(digest)));
    gh_wipe(verifier, strlen(verifier));
    return web_redirect(r, 303, url);
}

struct attempt {
    const char *nonce;
    char       *verifier;
    const char *next;
};

/* Takes the attempt the callback's state names, once. */
static int
attempt_take(struct web_req *r, struct attempt *t, struct gh_err *e)
{
    struct gh_arena *a = web_arena(r);
    const char *state = web_query(r, "state"), *cookie = web_cookie(r, SSO_COOKIE);
    unsigned char *pt;
    size_t n;
    char hash[65];
    PGresult *res;

    web_set_cookie(r, SSO_COOKIE, "", 0, true, "Lax");
    if (state == NULL || strlen(state) != 64)
        return gh_err_set(e, 400, "invalid_request", "This sign-in has expired or was already used. Start again.",
                          "SSO callback without a valid state");
    gh_sha256_hex(state, hash);
    res = db_query(a, e, "DELETE FROM sso_states WHERE state_hash = $1 RETURNING nonce, verifier, next,"
                         " created_at > now() - make_interval(secs => $2::int)", 2, hash, "600");
    if (res == NULL)
        return -1;
    if (PQntuples(res) == 0 || !db_bool(res, 0, 3))
        return gh_err_set(e, 400, "invalid_request", "This sign-in has expired or was already used. Start again.",
                          "SSO callback with an unknown, used or expired state");
    if (cookie == NULL || !gh_ct_streq(cookie, state))
        return gh_err_set(e, 400, "invalid_request", "This sign-in was started in another browser. Start again.",
                          "SSO callback state does not match this browser's");
    if (gh_unseal(a, db_val(res, 0, 1), hash, &pt, &n) < 0)
        return gh_err_set(e, 500, "server_error", "internal error", "SSO verifier does not open");
    t->nonce = gh_arena_strdup(a, db_val(res, 0, 0));
    t->verifier = (char *)pt;
    t->next = gh_arena_strdup(a, db_val(res, 0, 2));
    return 0;
}

/* The code for tokens at the token endpoint: the ID token, or NULL. */
static const char *
exchange(struct gh_arena *a, const struct authz_sso *p, json_t *meta, const char *code, char *verifier,
         struct gh_err *e)
{
    char *secret = authz_sso_secret(a, p), *form, *user, *pass;
    json_t *tok;
    const char *idt = NULL;

    if (secret == NULL) {
        gh_err_set(e, 500, "server_error", "internal error", "SSO client secret does not open");
        return NULL;
    }
    form = gh_arena_printf(a, "grant_type=authorization_code&code=%s&redirect_uri=%s&code_verifier=%s&client_id=%s",
                           gh_url_encode(a, code), gh_url_encode(a, gh_config_url(a, "/login/sso/callback")),
                           verifier, gh_url_encode(a, p->client_id));
    /* client_secret_basic: both parts form-encoded first (RFC 6749 2.3.1) */
    user = gh_url_encode(a, p->client_id);
    pass = gh_url_encode(a, secret);
    tok = fetch_json(a, gh_json_str(meta, "token_endpoint"), form, user, pass, e);
    gh_wipe(secret, strlen(secret));
    gh_wipe(pass, strlen(pass));
    gh_wipe(form, strlen(form));
    if (tok && (idt = gh_json_str(tok, "id_token")) == NULL)
        gh_err_set(e, 502, "bad_gateway", "The identity provider did not send an ID token.",
                   "SSO token response without id_token");
    return idt;
}

static int
verify(struct gh_arena *a, const struct authz_sso *p, json_t *meta, const char *idt, const char *nonce,
       json_t **claims, struct gh_err *e)
{
    struct authz_idtoken_expect x = { p->issuer, p->client_id, nonce, NULL };

    if ((x.jwks = keys(a, p->issuer, meta, false, e)) == NULL)
        return -1;
    if (authz_idtoken_verify(a, idt, &x, claims, e) == 0)
        return 0;
    if (strcmp(e->code, "unknown_kid"))
        return -1;
    /* a key we do not know: the provider may have rotated; ask once more */
    gh_err_clear(e);
    if ((x.jwks = keys(a, p->issuer, meta, true, e)) == NULL)
        return -1;
    return authz_idtoken_verify(a, idt, &x, claims, e);
}

/* The account of a verified email, created when the settings say so. */
static struct authz_user *
account(struct gh_arena *a, const struct authz_sso *p, json_t *claims, struct gh_err *e)
{
    const char *email = gh_json_str(claims, "email"), *sub = gh_json_str(claims, "sub");
    struct authz_user *u;
    PGresult *res;

    if (!gh_text_ok(email, strlen(email)) || strlen(email) > 320 || !authz_sso_domain_ok(p, email)) {
        gh_err_set(e, 403, "access_denied", "Accounts of this email domain cannot sign in here.",
                   "SSO email outside the allowed domains");
        return NULL;
    }
    if (p->create_accounts &&
        !db_query(a, e, "INSERT INTO users (email, role) VALUES ($1, 'user')"
                        " ON CONFLICT ((lower(email))) DO NOTHING", 1, email))
        return NULL;
    res = db_query(a, e, "UPDATE users SET sso_subject = $2, updated_at = now() WHERE lower(email) = lower($1)"
                         " RETURNING id, email, role, disabled", 2, email, gh_text_ok(sub, strlen(sub)) ? sub : "");
    if (res == NULL)
        return NULL;
    if (PQntuples(res) == 0 || db_bool(res, 0, 3)) {
        gh_err_set(e, 403, "access_denied", "There is no active account for this email here. Ask an administrator.",
                   "SSO email without an account (or disabled)");
        return NULL;
    }
    u = gh_arena_alloc(a, sizeof(*u));
    u->id = gh_arena_strdup(a, db_val(res, 0, 0));
    u->email = gh_arena_strdup(a, db_val(res, 0, 1));
    u->role = gh_arena_strdup(a, db_val(res, 0, 2));
    return u;
}

static int
get_sso_callback(struct web_req *r)
{
    struct gh_arena *a = web_arena(r);
    const char *code = web_query(r, "code"), *idt;
    struct attempt t = {0};
    struct gh_err e = {0};
    struct authz_sso *p;
    struct authz_user *u;
    json_t *meta, *claims = NULL;
    int rc = -1;

    if (authz_offload(r, get_sso_callback))
        return 0;
    if (authz_rate_check(r, "login", gh_cfg.rate_login_per_min, &e) < 0 || attempt_take(r, &t, &e) < 0)
        goto out;
    if (web_query(r, "error") || code == NULL || !code[0]) {
        gh_err_set(&e, 401, "access_denied", "The identity provider did not sign you in.",
                   "SSO callback without a code");
        goto out;
    }
    if ((p = authz_sso_load(a, &e)) == NULL) {
        gh_err_set(&e, 404, "not_found", "Single sign-on is not set up.", NULL);
        goto out;
    }
    if ((meta = discover(a, p->issuer, &e)) == NULL || (idt = exchange(a, p, meta, code, t.verifier, &e)) == NULL ||
        verify(a, p, meta, idt, t.nonce, &claims, &e) < 0 || (u = account(a, p, claims, &e)) == NULL)
        goto out;
    switch (authz_mfa_after_password(r, u, t.next, &e)) {
    case 1:
        rc = 0;                 /* on to /login/mfa */
        goto out;
    case -1:
        goto out;
    }
    if (authz_session_create(r, u->id, &e) < 0)
        goto out;
    authz_throttle_device_issue(r, u->id, authz_throttle_device(r));
    GH_LOG(INFO, "login", "user %s signed in with single sign-on", u->id);
    rc = web_redirect(r, 303, t.next);
out:
    if (t.verifier)
        gh_wipe(t.verifier, strlen(t.verifier));
    return gh_err_isset(&e) ? fail(r, &e) : rc;
}

int
authz_sso_routes(void)
{
    web_route("GET", "/login/sso", WEB_PAGE, get_sso_start);
    web_route("GET", "/login/sso/callback", WEB_PAGE, get_sso_callback);
    return authz_sso_admin_routes();
}
