/*
 * authz/mail.c — the one way Gatehouse sends mail (invites, sign-in codes).
 *
 * libcurl's SMTP client against GATEHOUSE_SMTP_URL; empty means mail is
 * off and callers show what they would have sent (an invite link) instead.
 * A message is plain UTF-8 text with the few headers a receiving server
 * expects.  The addresses and subject are checked for CR and LF first: a
 * header value holding a line break would let whoever chose it add headers
 * (or recipients) of their own.  The URL may carry the SMTP password, so it
 * never reaches a log line or an error message; the body may hold a secret
 * (an invite link, a code), so neither does it.
 */
#include "authz/authz_int.h"
#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define MAIL_TIMEOUT_MS 10000L

struct mail_src {
    const char *p;
    size_t      left;
};

static size_t
mail_read(char *buf, size_t size, size_t nmemb, void *ud)
{
    struct mail_src *s = ud;
    size_t n = size * nmemb;

    if (n > s->left)
        n = s->left;
    memcpy(buf, s->p, n);
    s->p += n;
    s->left -= n;
    return n;
}

bool
authz_mail_enabled(void)
{
    return gh_cfg.smtp_url != NULL && gh_cfg.smtp_url[0] != '\0';
}

/* A header value: no line breaks, no other control characters. */
static bool
header_safe(const char *s, size_t max)
{
    size_t n = strlen(s);

    if (n == 0 || n > max || !gh_text_ok(s, n))
        return false;
    return strpbrk(s, "\r\n") == NULL;
}

/* The sender: the setting, else gatehouse@<host of the public URL>. */
static char *
mail_from(struct gh_arena *a)
{
    const char *u = gh_cfg.public_url, *h, *end;

    if (gh_cfg.mail_from != NULL && gh_cfg.mail_from[0] != '\0')
        return gh_arena_strdup(a, gh_cfg.mail_from);
    h = strstr(u, "://");
    h = h != NULL ? h + 3 : u;
    end = h + strcspn(h, ":/?#");
    if (*h == '[')                      /* an IPv6 literal: up to its ']' */
        end = strchr(h, ']') != NULL ? strchr(h, ']') + 1 : end;
    return gh_arena_printf(a, "gatehouse@%.*s", (int)(end - h), h);
}

/* head + body with every line ending made CRLF, as SMTP wants. */
static char *
with_crlf(struct gh_arena *a, const char *head, const char *body)
{
    size_t hn = strlen(head), bn = strlen(body), o = hn;
    char *out = gh_arena_alloc(a, hn + 2 * bn + 3);

    if (out == NULL)
        return NULL;
    memcpy(out, head, hn);
    for (const char *p = body; *p; ) {
        size_t n = strcspn(p, "\r\n");
        memcpy(out + o, p, n);
        o += n;
        out[o++] = '\r';
        out[o++] = '\n';
        p += n;
        if (*p == '\r') p++;
        if (*p == '\n') p++;
    }
    out[o] = '\0';
    return out;
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }

int
authz_mail_send(const char *to, const char *subject, const char *body, struct gh_err *e)
{
    struct gh_arena *a = gh_arena_new(0);
    struct curl_slist *rcpt = NULL;
    struct mail_src src;
    CURL *cu = NULL;
    CURLcode cc;
    char date[64], msgid[33];
    const char *from;
    char *msg = NULL, *env_from, *env_to;
    unsigned char rnd[16];
    struct tm tm;
    time_t now = time(NULL);
    int rc = -1;

    if (!authz_mail_enabled()) {
        gh_err_set(e, 500, "server_error", "Mail is not set up on this server.", "mail: GATEHOUSE_SMTP_URL empty");
        goto out;
    }
    from = mail_from(a);
    if (!header_safe(to, 254) || strchr(to, '@') == NULL || strpbrk(to, "<>, ") != NULL ||
        !header_safe(subject, 200) || !header_safe(from, 254)) {
        gh_err_set(e, 400, "invalid_request", "That email address cannot receive mail.", "mail: unsafe address or subject");
        goto out;
    }
    gmtime_r(&now, &tm);
    strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S +0000", &tm);
    if (gh_random_bytes(rnd, sizeof rnd) != 0) {
        gh_err_set(e, 500, "server_error", "internal error", "mail: random");
        goto out;
    }
    gh_hex_encode(rnd, sizeof rnd, msgid);
    /* CRLF throughout; libcurl escapes a line that starts with a dot. */
    msg = gh_arena_printf(a,
        "Date: %s\r\nFrom: Gatehouse <%s>\r\nTo: <%s>\r\nSubject: %s\r\n"
        "Message-ID: <%s@%s>\r\nMIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n",
        date, from, to, subject, msgid, strchr(from, '@') + 1);
    msg = with_crlf(a, msg, body);
    if (msg == NULL) {
        gh_err_set(e, 500, "server_error", "internal error", "mail: message too large");
        goto out;
    }
    env_from = gh_arena_printf(a, "<%s>", from);
    env_to = gh_arena_printf(a, "<%s>", to);
    pthread_once(&curl_once, curl_init_once);
    rcpt = curl_slist_append(NULL, env_to);
    cu = curl_easy_init();
    if (cu == NULL || rcpt == NULL) {
        gh_err_set(e, 500, "server_error", "internal error", "mail: curl init");
        goto out;
    }
    src.p = msg;
    src.left = strlen(msg);
    curl_easy_setopt(cu, CURLOPT_URL, gh_cfg.smtp_url);
    curl_easy_setopt(cu, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
    curl_easy_setopt(cu, CURLOPT_USE_SSL, (long)CURLUSESSL_TRY);
    curl_easy_setopt(cu, CURLOPT_PROXY, "");
    curl_easy_setopt(cu, CURLOPT_MAIL_FROM, env_from);
    curl_easy_setopt(cu, CURLOPT_MAIL_RCPT, rcpt);
    curl_easy_setopt(cu, CURLOPT_READFUNCTION, mail_read);
    curl_easy_setopt(cu, CURLOPT_READDATA, &src);
    curl_easy_setopt(cu, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(cu, CURLOPT_TIMEOUT_MS, MAIL_TIMEOUT_MS);
    curl_easy_setopt(cu, CURLOPT_NOSIGNAL, 1L);
    cc = curl_easy_perform(cu);
    if (cc != CURLE_OK) {
        /* curl's own text names the step (connect, RCPT, DATA), never the URL's password */
        gh_err_set(e, 502, "mail_failed", "The mail could not be sent; try again later.",
                   "mail: curl %d (%s)", (int)cc, curl_easy_strerror(cc));
        goto out;
    }
    GH_LOG(INFO, "mail_sent", "subject=\"%s\"", subject);
    rc = 0;
out:
    if (msg != NULL)
        gh_wipe(msg, strlen(msg));
    curl_easy_cleanup(cu);
    curl_slist_free_all(rcpt);
    gh_arena_free(a);
    return rc;
}
