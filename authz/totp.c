/*
 * authz/totp.c — the arithmetic of the second factor: TOTP codes (RFC 6238,
 * HMAC-SHA-1, 6 digits, 30 s steps, one step of drift either way, through
 * liboath), the otpauth:// URI authenticator apps read, its QR code as
 * inline SVG (libqrencode), and recovery codes.  No database here.
 */
#include "authz/authz_int.h"
#include <liboath/oath.h>
#include <pthread.h>
#include <qrencode.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TOTP_STEP   30
#define TOTP_DIGITS 6
#define TOTP_DRIFT  1

static pthread_once_t oath_once = PTHREAD_ONCE_INIT;

static void
oath_start(void)
{
    oath_init();
}

/* The base32 text an authenticator app is given (RFC 4648, no padding). */
char *
authz_totp_base32(struct gh_arena *a, const unsigned char *key, size_t n)
{
    char *out = NULL, *res = NULL;
    size_t len = 0;

    pthread_once(&oath_once, oath_start);
    if (oath_base32_encode((const char *)key, n, &out, &len) != OATH_OK)
        return NULL;
    while (len > 0 && out[len - 1] == '=')
        len--;
    res = gh_arena_strndup(a, out, len);
    gh_wipe(out, strlen(out));
    free(out);
    return res;
}

bool
authz_totp_code_shape(const char *code)
{
    if (code == NULL || strlen(code) != TOTP_DIGITS)
        return false;
    for (const char *p = code; *p; p++)
        if (*p < '0' || *p > '9')
            return false;
    return true;
}

/* 0 and the time step it belongs to when code is right for now, one step
 * before or one after; -1 otherwise.  Whether the step was used already is
 * the caller's question (users.totp_last_step). */
int
authz_totp_check(const unsigned char *key, size_t n, const char *code, int64_t *step)
{
    return authz_totp_check_at(key, n, code, (int64_t)time(NULL), step);
}

int
authz_totp_check_at(const unsigned char *key, size_t n, const char *code, int64_t now, int64_t *step)
{
    uint64_t counter = 0;
    int pos = 0, rc;

    if (!authz_totp_code_shape(code))
        return -1;
    pthread_once(&oath_once, oath_start);
    rc = oath_totp_validate3((const char *)key, n, (time_t)now, TOTP_STEP, 0, TOTP_DRIFT, &pos, &counter,
                             code);
    if (rc < 0)
        return -1;
    *step = (int64_t)counter;
    return 0;
}

char *
authz_totp_uri(struct gh_arena *a, const char *account, const char *b32)
{
    const char *issuer = "Gatehouse";

    return gh_arena_printf(a, "otpauth://totp/%s:%s?secret=%s&issuer=%s&algorithm=SHA1&digits=%d&period=%d",
                           issuer, gh_url_encode(a, account), b32, issuer, TOTP_DIGITS, TOTP_STEP);
}

/* The QR code of text as an SVG element: one path of unit squares, a quiet
 * zone of four modules, scaled by the browser. */
char *
authz_totp_qr_svg(struct gh_arena *a, const char *text)
{
    QRcode *qr = QRcode_encodeString(text, 0, QR_ECLEVEL_M, QR_MODE_8, 1);
    size_t cap, len = 0;
    char *path, *svg = NULL;
    int w;

    if (qr == NULL)
        return NULL;
    w = qr->width;
    cap = (size_t)w * w * 24 + 1;
    path = gh_arena_alloc(a, cap);
    if (path == NULL)
        goto out;
    for (int y = 0; y < w; y++)
        for (int x = 0; x < w; x++)
            if (qr->data[y * w + x] & 1)
                len += (size_t)snprintf(path + len, cap - len, "M%d %dh1v1h-1z", x + 4, y + 4);
    svg = gh_arena_printf(a,
        "<svg class=\"qr\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 %d %d\" width=\"%d\" height=\"%d\" "
        "role=\"img\" aria-label=\"QR code for your authenticator app\" shape-rendering=\"crispEdges\">"
        "<rect width=\"100%%\" height=\"100%%\" fill=\"#fff\"/><path fill=\"#000\" d=\"%s\"/></svg>",
        w + 8, w + 8, (w + 8) * 5, (w + 8) * 5, path);
out:
    QRcode_free(qr);
    return svg;
}

/* A recovery code as shown: ten characters of an alphabet without look-alikes
 * in two groups, xxxxx-xxxxx (about 50 bits). */
char *
authz_recovery_code_new(struct gh_arena *a)
{
    static const char alpha[] = "abcdefghjkmnpqrstuvwxyz23456789";   /* 31 symbols */
    unsigned char rnd[10];
    char *c = gh_arena_alloc(a, 12);

    if (c == NULL || gh_random_bytes(rnd, sizeof(rnd)) < 0)
        return NULL;
    for (int i = 0, j = 0; i < 10; i++) {
        if (i == 5)
            c[j++] = '-';
        c[j++] = alpha[rnd[i] % 31];  /* bias of 8/256 on a few symbols: harmless here */
    }
    gh_wipe(rnd, sizeof(rnd));
    return c;
}

/* What is hashed: lower case, without the separator or spaces a person
 * may type.  Empty when nothing of the code shape is left. */
void
authz_recovery_code_hash(const char *typed, char out[65])
{
    char norm[32];
    size_t n = 0;

    for (const char *p = typed; *p && n < sizeof(norm) - 1; p++) {
        char ch = *p;
        if (ch == '-' || ch == ' ')
            continue;
        if (ch >= 'A' && ch <= 'Z')
            ch = (char)(ch - 'A' + 'a');
        norm[n++] = ch;
    }
    norm[n] = '\0';
    gh_sha256_hex(norm, out);
    gh_wipe(norm, sizeof(norm));
}
