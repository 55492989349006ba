#include "host_error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int mdh_fail(mdh_error *err, int code, const char *fmt, ...)
{
    if (err) {
        err->code = code;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return code;
}

int mdh_fail_context(mdh_error *err, const char *fmt, ...)
{
    if (!err)
        return MDIFF_ERR_INVALID;
    char prefix[MDH_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    /* Joined by hand: the message is cut at MDH_ERROR_MSG_MAX on purpose. */
    char joined[MDH_ERROR_MSG_MAX];
    size_t np = strlen(prefix), nm = strlen(err->msg);
    if (np > sizeof joined - 1)
        np = sizeof joined - 1;
    if (nm > sizeof joined - 1 - np)
        nm = sizeof joined - 1 - np;
    memcpy(joined, prefix, np);
    memcpy(joined + np, err->msg, nm);
    joined[np + nm] = '\0';
    memcpy(err->msg, joined, sizeof joined);
    return err->code;
}
