#include "parse_number.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

int md_cli_parse_long(const char *prog, const char *flag, const char *s, long lo, long hi,
                      long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || end == s || v < lo || v > hi) {
        fprintf(stderr, "%s: %s expects an integer in %ld..%ld, got '%s'\n", prog, flag, lo, hi, s);
        return 0;
    }
    *out = v;
    return 1;
}

int md_cli_parse_double(const char *prog, const char *flag, const char *s, double lo, double hi,
                        double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || end == s || !(v >= lo && v <= hi)) {
        fprintf(stderr, "%s: %s expects a number in %g..%g, got '%s'\n", prog, flag, lo, hi, s);
        return 0;
    }
    *out = v;
    return 1;
}
