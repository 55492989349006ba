/* md-test-poison FILE TENSOR [VALUE]: overwrites the first element of one
 * F32 tensor of a safetensors file in place with VALUE (default nan), so a
 * test can prove that bad weights end a generation instead of an image. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "st_header.h"

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: md-test-poison FILE TENSOR [nan|inf|VALUE]\n");
        return 2;
    }
    float value = strtof(argc > 3 ? argv[3] : "nan", NULL);
    FILE *f = NULL;
    uint64_t hlen = 0;
    char *h = st_header_read("md-test-poison", argv[1], &f, &hlen);
    if (!h)
        return 1;
    char key[512];
    snprintf(key, sizeof key, "\"%s\":{", argv[2]);
    char *entry = strstr(h, key);
    char *end = entry ? strchr(entry, '}') : NULL;
    char *dtype = entry ? strstr(entry, "\"dtype\":\"F32\"") : NULL;
    char *offs = entry ? strstr(entry, "\"data_offsets\":[") : NULL;
    if (!entry || !dtype || !offs || dtype > end || offs > end) {
        fprintf(stderr, "md-test-poison: no F32 tensor %s in %s\n", argv[2], argv[1]);
        return 1;
    }
    long long start = strtoll(offs + strlen("\"data_offsets\":["), NULL, 10);
    if (fseek(f, (long)(8 + hlen + (uint64_t)start), SEEK_SET) != 0 ||
        fwrite(&value, sizeof value, 1, f) != 1 || fclose(f) != 0) {
        fprintf(stderr, "md-test-poison: cannot write %s\n", argv[1]);
        return 1;
    }
    free(h);
    return 0;
}
