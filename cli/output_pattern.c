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

int md_cli_output_pattern_numbered(const char *pattern)
{
    int zero, width;
    for (const char *p = pattern; *p; p++) {
        if (*p != '%')
            continue;
        if (p[1] == '%')
            p++;
        else if (directive(p, &zero, &width))
            return 1;
    }
    return 0;
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

int md_cli_stats_names(const char *pattern, int index, char *json, char *png, size_t cap)
{
    if (!md_cli_output_name(pattern, index, json, cap))
        return 0;
    size_t n = strlen(json);
    if (n > 5 && !strcmp(json + n - 5, ".json"))
        n -= 5;
    return snprintf(png, cap, "%.*s.png", (int)n, json) < (int)cap;
}

/* Pairs of images are compared, so the check is bounded: names differ only
 * through the image number, and a clash that first appears past image 256
 * needs two patterns that write the number differently (%d against %04d). */
#define MAX_CHECKED 256

int md_cli_stats_collide(const char *stats_pattern, const char *output_pattern, int images)
{
    int n = images < MAX_CHECKED ? images : MAX_CHECKED;
    char json[4096], png[4096], out[4096];
    for (int i = 1; i <= n; i++) {
        if (!md_cli_stats_names(stats_pattern, i, json, png, sizeof json)) {
            fprintf(stderr, "moe-diffuse: --moe-stats %s: name too long\n", stats_pattern);
            return 1;
        }
        for (int j = 1; j <= n; j++) {
            if (!md_cli_output_name(output_pattern, j, out, sizeof out))
                continue;
            const char *clash = !strcmp(out, json) ? json : !strcmp(out, png) ? png : NULL;
            if (clash) {
                fprintf(stderr,
                        "moe-diffuse: --moe-stats %s would write %s, which is also an output "
                        "image (-o %s): choose another name\n",
                        stats_pattern, clash, output_pattern);
                return 1;
            }
        }
    }
    return 0;
}
