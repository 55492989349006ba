/* Errors of the host-side helper library: the library's status codes
 * (mdiff_status of moediffuse.h) with a message naming the file and the
 * problem, as hosts print them. */
#ifndef MDH_ERROR_H
#define MDH_ERROR_H

#include "moediffuse.h"

#define MDH_ERROR_MSG_MAX 512

typedef struct mdh_error {
    int code; /* mdiff_status */
    char msg[MDH_ERROR_MSG_MAX];
} mdh_error;

/* Records an error (printf-style) and returns `code`; err may be NULL. */
int mdh_fail(mdh_error *err, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Prefixes the message already in err, e.g. "reading the mask: ". */
int mdh_fail_context(mdh_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
