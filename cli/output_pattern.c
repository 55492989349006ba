/* -o name patterns: the image number through one integer directive. The
 * pattern is never handed to printf, so no other directive can slip in. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

/* A directive at p ('%' then optional flag '0', optional width, 'd' or
 * 'i'): its length, or 0 when p is not one. */
static size_t directive(const char *p, int *zero, int *width)
{
    size_t i = 1;
    *zero = 0;
    *width = 0;
    if (p[i] == '0') {
        *zero = 1;
        i++;
    }
    while (p[i] >= '0' && p[i] <= '9' && *width < 100)
        *width = *width * 10 + (p[i++] - '0');
    if (*width >= 100 || (p[i] != 'd' && p[i] != 'i'))
        return 0;
    return i + 1;
}

int md_cli_output_pattern_ok(const char *pattern)
{
    int count = 0, zero, width;
    for (const char *p = pattern; *p; p++) {
        if (*p != '%')
            continue;
        if (p[1] == '%') {
            p++;
            continue;
        }
        size_t n = directive(p, &zero, &width);
        if (!n || ++count > 1) {
            fprintf(stderr,
                    "moe-diffuse: -o '%s': %s; a pattern may hold one %%d (or %%03d, ...) for the "
                    "image number, and %%%% for a literal %%\n",
                    pattern, n ? "more than one directive" : "unsupported % directive");
            return 0;
        }
        p += n - 1;
    }
    return 1;
}

int md_cli_output_name(const char *pattern, int index, char *out, size_t cap)
{
    size_t len = 0;
    int zero, width;
    for (const char *p = pattern; *p; p++) {
        char piece[128];
        size_t n = 0;
        if (*p == '%' && p[1] == '%') {
            piece[n++] = '%';
            p++;
        } else if (*p == '%' && (n = directive(p, &zero, &width)) > 0) {
            p += n - 1;
            n = (size_t)snprintf(piece, sizeof piece, zero ? "%0*d" : "%*d", width, index);
        } else {
            piece[n++] = *p;
        }
        if (len + n >= cap)
            return 0;
        memcpy(out + len, piece, n);
        len += n;
    }
    out[len] = '\0';
    return 1;
}
