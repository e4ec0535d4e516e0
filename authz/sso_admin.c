/*
 * authz/sso_admin.c — the single sign-on provider's settings: /admin/sso
 * (issuer, client id, client secret sealed and write-only, allowed email
 * domains, accounts created on first sign-in, password sign-in off for
 * SSO accounts), the "Sign in with …" button of the login page, and the
 * password sign-in rule.
 */
#include "authz/authz_int.h"
#include <ctype.h>
#include <string.h>

#define SECRET_AAD "sso-client-secret"

static const char SQL_PROVIDER[] =
    "SELECT name, issuer, client_id, client_secret, allowed_domains, create_accounts, password_off"
    "  FROM sso_provider WHERE id = 1";

struct authz_sso *
authz_sso_load(struct gh_arena *a, struct gh_err *e)
{
    PGresult *res = db_query(a, e, SQL_PROVIDER, 0);
    struct authz_sso *p;

    if (res == NULL || PQntuples(res) == 0)
        return NULL;
    p = gh_arena_alloc(a, sizeof(*p));
    p->name = gh_arena_strdup(a, db_val(res, 0, 0));
    p->issuer = gh_arena_strdup(a, db_val(res, 0, 1));
    p->client_id = gh_arena_strdup(a, db_val(res, 0, 2));
    p->secret_sealed = gh_arena_strdup(a, db_val(res, 0, 3));
    p->domains = gh_arena_strdup(a, db_val(res, 0, 4));
    p->create_accounts = db_bool(res, 0, 5);
    p->password_off = db_bool(res, 0, 6);
    return p;
}

/* The client secret in the clear (arena; the caller wipes it), or NULL. */
char *
authz_sso_secret(struct gh_arena *a, const struct authz_sso *p)
{
    unsigned char *pt;
    size_t n;

    if (gh_unseal(a, p->secret_sealed, SECRET_AAD, &pt, &n) < 0)
        return NULL;
    return (char *)pt;
}

/* Whether the email's domain is one the provider may sign in. */
bool
authz_sso_domain_ok(const struct authz_sso *p, const char *email)
{
    const char *at = strrchr(email, '@'), *d = p->domains;
    size_t n;

    if (at == NULL)
        return false;
    if (d == NULL || !d[0])
        return true;
    at++;
    n = strlen(at);
    while (*d) {
        size_t len = strcspn(d, ",");
        if (len == n && !strncasecmp(d, at, n))
            return true;
        d += len;
        d += *d == ',';
    }
    return false;
}

char *
authz_sso_button(struct web_req *r, const char *next)
{
    struct gh_arena *a = web_arena(r);
    struct gh_err e = {0};
    struct authz_sso *p = authz_sso_load(a, &e);

    if (p == NULL)
        return "";
    return gh_arena_printf(a,
        "<p class=\"sso\"><a class=\"button secondary\" id=\"sso\" href=\"/login/sso?next=%s\">Sign in with %s</a></p>",
        gh_html_escape(a, gh_url_encode(a, next ? next : "/profile")), gh_html_escape(a, p->name));
}

bool
authz_sso_password_refused(struct gh_arena *a, const char *user_id)
{
    struct gh_err e = {0};
    PGresult *res = db_query(a, &e, "SELECT 1 FROM users u, sso_provider p"
                                    " WHERE u.id = $1 AND u.sso_subject IS NOT NULL AND p.password_off", 1, user_id);

    return res != NULL && PQntuples(res) > 0;
}

/* An issuer: https, or http to a loopback address (a provider on this
 * machine); no query or fragment, no trailing slash (OpenID Connect
 * Discovery 4.3 compares it byte for byte). */
static bool
issuer_ok(const char *s)
{
    static const char *const loopback[] = { "127.0.0.1", "localhost", "[::1]" };
    const char *host;

    if (s == NULL || strlen(s) > 512 || !gh_text_ok(s, strlen(s)) || strpbrk(s, "?# ") ||
        s[strlen(s) - 1] == '/')
        return false;
    if (gh_str_has_prefix(s, "https://"))
        return s[8] != '\0';
    if (!gh_str_has_prefix(s, "http://"))
        return false;
    host = s + 7;
    for (size_t i = 0; i < GH_ARRAY_LEN(loopback); i++) {
        size_t n = strlen(loopback[i]);
        if (!strncmp(host, loopback[i], n) && strchr(":/", host[n]))   /* host[n] may be the NUL */
            return true;
    }
    return false;
}

static bool
domains_ok(const char *s)
{
    for (const char *p = s; *p; p++)
        if (!isalnum((unsigned char)*p) && !strchr(".-,", *p))
            return false;
    return strlen(s) <= 2000;
}

static int
admin_form(struct web_req *r, struct authz_user *u, int status, const char *error, const char *ok)
{
    struct gh_arena *a = web_arena(r);
    struct gh_err e = {0};
    struct authz_sso *p = authz_sso_load(a, &e);
    char *body;

    if (gh_err_isset(&e))
        return web_reply_err(r, &e);
    body = gh_arena_printf(a,
        "<div class=\"card\"><h1>Single sign-on</h1>%s%s%s%s%s%s"
        "<p class=\"muted\">An OpenID Connect provider (Google, Microsoft Entra, Okta, Keycloak, …). "
        "Register <code>%s</code> as its redirect URI.</p>"
        "<form method=\"post\" action=\"/admin/sso\"><input type=\"hidden\" name=\"csrf\" value=\"%s\">"
        "<label for=\"name\">Name on the sign-in button</label><input id=\"name\" name=\"name\" type=\"text\" value=\"%s\" required>"
        "<label for=\"issuer\">Issuer URL</label><input id=\"issuer\" name=\"issuer\" type=\"url\" value=\"%s\" required>"
        "<label for=\"client_id\">Client ID</label><input id=\"client_id\" name=\"client_id\" type=\"text\" value=\"%s\" required>"
        "<label for=\"client_secret\">Client secret%s</label>"
        "<input id=\"client_secret\" name=\"client_secret\" type=\"password\" autocomplete=\"off\" value=\"\">"
        "<label for=\"domains\">Allowed email domains (comma-separated; empty: any)</label>"
        "<input id=\"domains\" name=\"domains\" type=\"text\" value=\"%s\">"
        "<label><input type=\"checkbox\" name=\"create_accounts\" value=\"1\"%s> Create an account on first sign-in</label>"
        "<label><input type=\"checkbox\" name=\"password_off\" value=\"1\"%s> No password sign-in for accounts that use single sign-on</label>"
        "<div class=\"actions\"><button type=\"submit\">Save</button></div></form>%s</div>",
        error ? "<p class=\"error\" role=\"alert\">" : "", error ? gh_html_escape(a, error) : "", error ? "</p>" : "",
        ok ? "<p class=\"notice\" role=\"status\">" : "", ok ? gh_html_escape(a, ok) : "", ok ? "</p>" : "",
        gh_html_escape(a, gh_config_url(a, "/login/sso/callback")), web_csrf_token(r),
        gh_html_escape(a, p ? p->name : ""), gh_html_escape(a, p ? p->issuer : ""),
        gh_html_escape(a, p ? p->client_id : ""), p ? " (stored; leave empty to keep it)" : "",
        gh_html_escape(a, p ? p->domains : ""), p && p->create_accounts ? " checked" : "",
        p && p->password_off ? " checked" : "",
        p ? gh_arena_printf(a, "<form method=\"post\" action=\"/admin/sso/remove\">"
                               "<input type=\"hidden\" name=\"csrf\" value=\"%s\"><div class=\"actions\">"
                               "<button class=\"secondary\" type=\"submit\">Turn single sign-on off</button></div></form>",
                            web_csrf_token(r)) : "");
    return web_reply_html(r, status, authz_page(r, u, "Single sign-on", body));
}

static int
get_admin_sso(struct web_req *r)
{
    struct authz_user *u = authz_require_admin(r);

    return u ? admin_form(r, u, 200, NULL, NULL) : 0;
}

static const char *
field(struct web_req *r, const char *name, size_t max)
{
    size_t n = 0;
    const char *v = web_form_n(r, name, &n);

    return v && n <= max && gh_text_ok(v, n) ? v : NULL;
}

static int
post_admin_sso(struct web_req *r)
{
    struct authz_user *u = authz_require_admin(r);
    struct gh_arena *a = web_arena(r);
    const char *name = field(r, "name", 100), *issuer = field(r, "issuer", 512),
               *client_id = field(r, "client_id", 255), *secret = field(r, "client_secret", 1024),
               *domains = field(r, "domains", 2000), *sealed = NULL;
    struct gh_err e = {0};
    struct authz_sso *old;

    if (u == NULL)
        return 0;
    old = authz_sso_load(a, &e);
    if (gh_err_isset(&e))
        return web_reply_err(r, &e);
    if (name == NULL || !name[0] || client_id == NULL || !client_id[0])
        return admin_form(r, u, 400, "Enter a name and the client ID.", NULL);
    if (!issuer_ok(issuer))
        return admin_form(r, u, 400, "The issuer must be an https URL without a trailing slash.", NULL);
    if (domains == NULL || !domains_ok(domains))
        return admin_form(r, u, 400, "Allowed domains are names like example.com, separated by commas.", NULL);
    if (secret && secret[0])
        sealed = gh_seal(a, secret, strlen(secret), SECRET_AAD);
    else if (old)
        sealed = old->secret_sealed;
    else
        return admin_form(r, u, 400, "Enter the client secret.", NULL);
    if (sealed == NULL) {
        gh_err_set(&e, 500, "server_error", "internal error", "sealing the SSO client secret failed");
        return web_reply_err(r, &e);
    }
    if (!db_query(a, &e, "INSERT INTO sso_provider (id, name, issuer, client_id, client_secret, allowed_domains,"
                         " create_accounts, password_off) VALUES (1, $1, $2, $3, $4, lower($5), $6, $7)"
                         " ON CONFLICT (id) DO UPDATE SET name = $1, issuer = $2, client_id = $3,"
                         " client_secret = $4, allowed_domains = lower($5), create_accounts = $6,"
                         " password_off = $7, updated_at = now()",
                  7, name, issuer, client_id, sealed, domains,
                  web_form(r, "create_accounts") ? "true" : "false", web_form(r, "password_off") ? "true" : "false"))
        return web_reply_err(r, &e);
    authz_sso_forget();
    GH_LOG(INFO, "sso_saved", "admin %s saved the single sign-on provider", u->id);
    return admin_form(r, u, 200, NULL, "Saved.");
}

static int
post_admin_sso_remove(struct web_req *r)
{
    struct authz_user *u = authz_require_admin(r);
    struct gh_err e = {0};

    if (u == NULL)
        return 0;
    if (!db_query(web_arena(r), &e, "DELETE FROM sso_provider", 0))
        return web_reply_err(r, &e);
    authz_sso_forget();
    GH_LOG(INFO, "sso_removed", "admin %s turned single sign-on off", u->id);
    return admin_form(r, u, 200, NULL, "Single sign-on is off.");
}

int
authz_sso_admin_routes(void)
{
    web_route("GET", "/admin/sso", WEB_PAGE, get_admin_sso);
    web_route("POST", "/admin/sso", WEB_PAGE, post_admin_sso);
    web_route("POST", "/admin/sso/remove", WEB_PAGE, post_admin_sso_remove);
    return 0;
}
