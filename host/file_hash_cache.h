/* The hash cache file of host/file_hash.c: its line format, its reader
 * (exposed for tests/fuzz/fuzz_hash_cache.c: any process, or a person, may
 * have written the file) and the in-memory table.
 *
 * One line per entry, tab-separated, the real path last (it may hold any
 * byte but tab, CR, LF and NUL):
 *   mdh1 <kind> <size> <mtime ns> <64 lowercase hex> <absolute path>
 * kind is "file" or "safetensors-data". Lines are appended in one write()
 * each with O_APPEND, so concurrent processes never interleave; a reader
 * skips malformed lines and lets later lines win. */
#ifndef MDH_FILE_HASH_CACHE_H
#define MDH_FILE_HASH_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "file_hash.h"

#define MDH_HASH_CACHE_TAG "mdh1"
/* A longer line is malformed (paths are at most PATH_MAX = 4096). */
#define MDH_HASH_CACHE_LINE_MAX 8192
/* Lines a reader looks at, and the file size read at all: a file past it
 * is ignored and started afresh by the next write (about 100k entries). */
#define MDH_HASH_CACHE_LINES_MAX 100000
#define MDH_HASH_CACHE_BYTES_MAX (16u << 20)

typedef struct mdh_hash_record {
    mdh_hash_kind kind;
    int64_t size;
    int64_t mtime_ns;
    char hex[65];
    const char *path; /* into the parsed text; not NUL-terminated */
    size_t path_len;
} mdh_hash_record;

/* One line without its newline; 1 and *r when well-formed, else 0. */
int mdh_hash_cache_parse_line(const char *line, size_t len, mdh_hash_record *r);

/* The last well-formed entry for (kind, path) in the first
 * MDH_HASH_CACHE_LINES_MAX lines of text; 1 and *r when there is one. */
int mdh_hash_cache_find(const char *text, size_t n, mdh_hash_kind kind, const char *path,
                        mdh_hash_record *r);

/* r as one line with its newline, NUL-terminated in buf; its length, or 0
 * when it cannot be stored (a path with tab / CR / LF, not absolute, or a
 * line over MDH_HASH_CACHE_LINE_MAX or cap). */
size_t mdh_hash_cache_format_line(char *buf, size_t cap, const mdh_hash_record *r);

/* Empties the in-memory table (tests; the next lookup goes to the file). */
void mdh_hash_memory_clear(void);

#endif
