/* core/err.c — the error struct: first error wins. */
#include "core/core.h"
#include <stdio.h>
#include <string.h>

int
gh_err_set(struct gh_err *e, int status, const char *code, const char *msg,
           const char *detail_fmt, ...)
{
    va_list ap;

    if (e == NULL || e->status != 0)
        return -1;
    e->status = status;
    snprintf(e->code, sizeof(e->code), "%s", code ? code : "");
    snprintf(e->msg, sizeof(e->msg), "%s", msg ? msg : "");
    e->detail[0] = '\0';
    if (detail_fmt) {
        va_start(ap, detail_fmt);
        vsnprintf(e->detail, sizeof(e->detail), detail_fmt, ap);
        va_end(ap);
    }
    return -1;
}

bool
gh_err_isset(const struct gh_err *e)
{
    return e != NULL && e->status != 0;
}

void
gh_err_clear(struct gh_err *e)
{
    memset(e, 0, sizeof(*e));
}
