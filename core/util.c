/* core/util.c — time, strings, small JSON helpers. */
#include "core/core.h"
#include <string.h>
#include <time.h>

int64_t
gh_now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t
gh_time_s(void)
{
    return (int64_t)time(NULL);
}

const char *
gh_json_str(json_t *obj, const char *key)
{
    json_t *v = obj ? json_object_get(obj, key) : NULL;

    return json_is_string(v) ? json_string_value(v) : NULL;
}

bool
gh_uuid_ok(const char *s)
{
    if (s == NULL || strlen(s) != 36)
        return false;
    for (int i = 0; i < 36; i++)
        if ((i == 8 || i == 13 || i == 18 || i == 23) ? s[i] != '-' : !strchr("0123456789abcdefABCDEF", s[i]))
            return false;
    return true;
}

/* Length of the valid UTF-8 sequence at s (n bytes left), 0 when invalid
 * (overlong forms, surrogates, past U+10FFFF, cut short). */
static size_t
utf8_seq(const unsigned char *s, size_t n)
{
    size_t len = s[0] < 0x80 ? 1 : s[0] >= 0xc2 && s[0] <= 0xdf ? 2 : s[0] >= 0xe0 && s[0] <= 0xef ? 3
               : s[0] >= 0xf0 && s[0] <= 0xf4 ? 4 : 0;

    if (len == 0 || len > n)
        return 0;
    for (size_t i = 1; i < len; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    if ((s[0] == 0xe0 && s[1] < 0xa0) || (s[0] == 0xed && s[1] > 0x9f) ||
        (s[0] == 0xf0 && s[1] < 0x90) || (s[0] == 0xf4 && s[1] > 0x8f))
        return 0;
    return len;
}

bool
gh_text_ok(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;

    if (s == NULL)
        return false;
    for (size_t i = 0; i < n;) {
        size_t len = utf8_seq(p + i, n - i);
        if (len == 0 || p[i] < 0x20 || p[i] == 0x7f || (p[i] == 0xc2 && p[i + 1] < 0xa0))
            return false;                          /* C0, DEL, C1 controls */
        i += len;
    }
    return true;
}

bool
gh_str_has_prefix(const char *s, const char *prefix)
{
    return s && strncmp(s, prefix, strlen(prefix)) == 0;
}

char *
gh_url_encode(struct gh_arena *a, const char *s)
{
    static const char hx[] = "0123456789ABCDEF";
    size_t n = strlen(s);
    char *out = gh_arena_alloc(a, 3 * n + 1), *p = out;

    if (out == NULL)
        return NULL;
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        if ((*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') ||
            *c == '-' || *c == '_' || *c == '.' || *c == '~') {
            *p++ = (char)*c;
        } else {
            *p++ = '%';
            *p++ = hx[*c >> 4];
            *p++ = hx[*c & 15];
        }
    }
    *p = '\0';
    return out;
}

char *
gh_html_escape(struct gh_arena *a, const char *s)
{
    size_t n = 0;
    char *out, *p;

    if (s == NULL)
        s = "";
    for (const char *c = s; *c; c++)
        n += (*c == '&' || *c == '<' || *c == '>' || *c == '"' || *c == '\'') ? 6 : 1;
    out = p = gh_arena_alloc(a, n + 1);
    if (out == NULL)
        return NULL;
    for (const char *c = s; *c; c++) {
        switch (*c) {
        case '&': memcpy(p, "&amp;", 5); p += 5; break;
        case '<': memcpy(p, "&lt;", 4); p += 4; break;
        case '>': memcpy(p, "&gt;", 4); p += 4; break;
        case '"': memcpy(p, "&quot;", 6); p += 6; break;
        case '\'': memcpy(p, "&#39;", 5); p += 5; break;
        default: *p++ = *c;
        }
    }
    *p = '\0';
    return out;
}
