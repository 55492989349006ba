/* For parsers that read a path: the input is written to one temporary file
 * per fuzzing process, rewritten for every input (a fresh name each time
 * would leave thousands of files behind a crash). */
#ifndef MD_FUZZ_FILE_H
#define MD_FUZZ_FILE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char md_fuzz_path[4096];

static inline void md_fuzz_file_remove(void)
{
    if (md_fuzz_path[0])
        unlink(md_fuzz_path);
}

/* The file's path, or NULL when it cannot be written (the input is then
 * skipped: a full disk is not a finding). `suffix` keeps parsers that look
 * at the extension on their usual path. */
static inline const char *md_fuzz_file(const uint8_t *data, size_t size, const char *suffix)
{
    if (!md_fuzz_path[0]) {
        const char *dir = getenv("TMPDIR");
        snprintf(md_fuzz_path, sizeof md_fuzz_path, "%s/md-fuzz-%ld%s", dir && *dir ? dir : "/tmp",
                 (long)getpid(), suffix);
        atexit(md_fuzz_file_remove);
    }
    FILE *f = fopen(md_fuzz_path, "wb");
    if (!f)
        return NULL;
    int ok = fwrite(data, 1, size, f) == size;
    ok &= fclose(f) == 0;
    return ok ? md_fuzz_path : NULL;
}

/* The input as a NUL-terminated string (parsers of text take C strings;
 * an embedded NUL just ends the text early, as it would for them). */
static inline char *md_fuzz_string(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (s) {
        memcpy(s, data, size);
        s[size] = '\0';
    }
    return s;
}

#endif
