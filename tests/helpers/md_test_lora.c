/* md-test-lora IN OUT FROM TO: writes OUT, a copy of the safetensors file IN
 * with FROM replaced by TO in every tensor name that contains it (the
 * shell tests make LoRAs for modules a model lacks, or for another family's
 * text encoder, from a real one). Exit 1 when no name contains FROM. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/safetensors.h"

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: md-test-lora IN OUT FROM TO\n");
        return 2;
    }
    md_error err = {0};
    md_safetensors *st = NULL;
    if (md_safetensors_open(argv[1], &st, &err) != MD_OK) {
        fprintf(stderr, "md-test-lora: %s\n", err.msg);
        return 1;
    }
    size_t n = md_safetensors_count(st), renamed = 0;
    md_safetensors_entry *e = calloc(n ? n : 1, sizeof *e);
    char **names = calloc(n ? n : 1, sizeof *names);
    int ok = e && names;
    for (size_t i = 0; ok && i < n; i++) {
        const char *name = md_safetensors_name(st, i);
        const char *at = strstr(name, argv[3]);
        size_t len = strlen(name) + strlen(argv[4]) + 1;
        ok = (names[i] = malloc(len)) != NULL;
        if (ok && at) {
            snprintf(names[i], len, "%.*s%s%s", (int)(at - name), name, argv[4],
                     at + strlen(argv[3]));
            renamed++;
        } else if (ok) {
            snprintf(names[i], len, "%s", name);
        }
        e[i].name = names[i];
        e[i].tensor = *md_safetensors_tensor(st, i);
    }
    if (ok && renamed && md_safetensors_write(argv[2], e, n, &err) != MD_OK) {
        fprintf(stderr, "md-test-lora: %s\n", err.msg);
        ok = 0;
    }
    for (size_t i = 0; names && i < n; i++)
        free(names[i]);
    free(names);
    free(e);
    md_safetensors_close(st);
    if (ok && !renamed)
        fprintf(stderr, "md-test-lora: no tensor of %s has \"%s\" in its name\n", argv[1], argv[3]);
    return ok && renamed ? 0 : 1;
}
