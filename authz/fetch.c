/*
 * authz/fetch.c — one JSON fetch from an OAuth or OpenID provider (its
 * metadata, keys, token and user-info endpoints), for SSO sign-in here
 * and for members' connections in gateway/.  Bounded in time and size, no
 * proxy from the environment, https unless the URL is http (callers decide
 * whether http is allowed); the body is wiped: it may hold tokens.
 */
#include "authz/authz_int.h"
#include <curl/curl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct buf {
    char  *p;
    size_t n, max;
    bool   too_big;
};

static size_t
buf_write(char *p, size_t size, size_t n, void *ctx)
{
    struct buf *b = ctx;
    size_t len = size * n;
    char *np;

    if (b->n + len > b->max) {
        b->too_big = true;
        return 0;
    }
    if ((np = realloc(b->p, b->n + len + 1)) == NULL)
        return 0;
    b->p = np;
    memcpy(b->p + b->n, p, len);
    b->n += len;
    b->p[b->n] = '\0';
    return len;
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }

static CURLcode
perform(struct gh_arena *a, const struct authz_fetch *f, struct buf *b, long *status)
{
    struct curl_slist *h = NULL;
    CURLcode rc;
    CURL *c;

    if ((c = curl_easy_init()) == NULL)
        return CURLE_FAILED_INIT;
    /* GitHub answers form-encoded unless asked for JSON */
    h = curl_slist_append(h, "Accept: application/json");
    if (f->bearer)
        h = curl_slist_append(h, gh_arena_printf(a, "Authorization: Bearer %s", f->bearer));
    curl_easy_setopt(c, CURLOPT_URL, f->url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, gh_str_has_prefix(f->url, "https://") ? "https" : "http");
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, f->timeout_ms);
    curl_easy_setopt(c, CURLOPT_PROXY, "");
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "Gatehouse");
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, buf_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, b);
    if (f->form)
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, f->form);
    if (f->user) {
        curl_easy_setopt(c, CURLOPT_HTTPAUTH, CURLAUTH_BASIC);
        curl_easy_setopt(c, CURLOPT_USERNAME, f->user);
        curl_easy_setopt(c, CURLOPT_PASSWORD, f->pass);
    }
    rc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
    curl_easy_cleanup(c);
    curl_slist_free_all(h);
    return rc;
}

json_t *
authz_fetch_json(struct gh_arena *a, const struct authz_fetch *f, long *status, struct gh_err *e)
{
    struct buf b = { .max = f->max_bytes };
    const char *who = f->who ? f->who : "provider";
    json_t *j = NULL;
    CURLcode rc;

    *status = 0;
    pthread_once(&curl_once, curl_init_once);
    rc = perform(a, f, &b, status);
    if (rc != CURLE_OK || b.p == NULL) {
        gh_err_set(e, 502, "bad_gateway", gh_arena_printf(a, "The %s could not be reached. Try again later.", who),
                   "fetch failed: %s, HTTP %ld%s", curl_easy_strerror(rc), *status,
                   b.too_big ? ", answer too large" : "");
        goto out;
    }
    j = json_loads(b.p, JSON_REJECT_DUPLICATES, NULL);
    if (!json_is_object(j)) {
        json_decref(j);
        j = NULL;
        gh_err_set(e, 502, "bad_gateway", gh_arena_printf(a, "The %s answered something unexpected.", who),
                   "fetch: HTTP %ld, not a JSON object", *status);
        goto out;
    }
    gh_arena_json(a, j);
out:
    if (b.p)
        gh_wipe(b.p, b.n);      /* a token response */
    free(b.p);
    return j;
}
