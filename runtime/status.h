/* Status codes and error messages shared by every engine module.
 * Functions that can fail return md_status and, when given a non-NULL
 * md_error, fill it with a message that names the file and the problem. */
#ifndef MD_STATUS_H
#define MD_STATUS_H

typedef enum md_status {
    MD_OK = 0,
    MD_ERR_INVALID = -1,     /* bad argument, bad shape, bad config value */
    MD_ERR_IO = -2,          /* a file could not be opened, read or written */
    MD_ERR_FORMAT = -3,      /* a file is malformed (truncated, corrupt JSON, ...) */
    MD_ERR_NOMEM = -4,
    MD_ERR_UNSUPPORTED = -5, /* valid input that this build cannot handle */
    MD_ERR_CANCELLED = -6,
    MD_ERR_BUSY = -7,
    MD_ERR_NUMERIC = -8      /* NaN or Inf in a result: bad weights or an overflow */
} md_status;

#define MD_ERROR_MSG_MAX 512

typedef struct md_error {
    md_status code;
    char msg[MD_ERROR_MSG_MAX];
} md_error;

/* Record an error (printf-style) and return `code`; err may be NULL. */
md_status md_fail(md_error *err, md_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prefix an existing message with context, e.g. "loading unet: ". */
md_status md_fail_context(md_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

const char *md_status_name(md_status s);

/* Returns the status of `expr` from the enclosing function unless it is MD_OK. */
#define MD_TRY(expr)                                                                               \
    do {                                                                                           \
        md_status md_try_status_ = (expr);                                                         \
        if (md_try_status_ != MD_OK)                                                               \
            return md_try_status_;                                                                 \
    } while (0)

#endif
