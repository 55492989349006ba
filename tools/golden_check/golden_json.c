/* Reading a reference case's JSON files (golden-check, test helpers). */
#include "golden_json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The reference files are Python's json output, which writes -Infinity,
 * and Infinity; strict JSON parsers reject those, so they become null
 * (outside strings) before parsing. */
static void null_out_nonfinite(char *s)
{
    static const char *const words[] = {"-Infinity", "Infinity"};
    int in_string = 0;
    for (char *p = s; *p; p++) {
        if (in_string) {
            if (*p == '\\' && p[1])
                p++;
            else if (*p == '"')
                in_string = 0;
            continue;
        }
        if (*p == '"') {
            in_string = 1;
            continue;
        }
        for (size_t w = 0; w < 2; w++) {
            size_t n = strlen(words[w]);
            if (strncmp(p, words[w], n) == 0) {
                memcpy(p, "null", 4);
                memset(p + 4, ' ', n - 4);
                p += n - 1;
                break;
            }
        }
    }
}

cJSON *gc_read_json(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)len + 1);
    cJSON *j = NULL;
    if (buf && fread(buf, 1, (size_t)len, f) == (size_t)len) {
        buf[len] = '\0';
        null_out_nonfinite(buf);
        j = cJSON_Parse(buf);
    }
    free(buf);
    fclose(f);
    return j;
}
