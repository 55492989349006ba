#include "status.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

md_status md_fail(md_error *err, md_status code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        err->code = code;
    }
    return code;
}

md_status md_fail_context(md_error *err, const char *fmt, ...)
{
    if (!err)
        return MD_ERR_INVALID;
    char prefix[MD_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    /* Join by hand: the message is cut at MD_ERROR_MSG_MAX on purpose. */
    char joined[MD_ERROR_MSG_MAX];
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

const char *md_status_name(md_status s)
{
    switch (s) {
    case MD_OK: return "ok";
    case MD_ERR_INVALID: return "invalid argument";
    case MD_ERR_IO: return "I/O error";
    case MD_ERR_FORMAT: return "malformed file";
    case MD_ERR_NOMEM: return "out of memory";
    case MD_ERR_UNSUPPORTED: return "unsupported";
    case MD_ERR_CANCELLED: return "cancelled";
    case MD_ERR_BUSY: return "busy";
    case MD_ERR_NUMERIC: return "non-finite values";
    }
    return "unknown error";
}
