/* md-test-zero FILE PART: rewrites a safetensors file with every tensor
 * whose name contains PART set to zero (same names, dtypes and shapes), so
 * a test can switch one kind of weight off, e.g. the shared experts.
 * Prints how many tensors it zeroed; exit 1 when none matched. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/safetensors.h"

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: md-test-zero FILE PART\n");
        return 2;
    }
    md_error err = {0};
    md_safetensors *st = NULL;
    if (md_safetensors_open(argv[1], &st, &err) != MD_OK) {
        fprintf(stderr, "md-test-zero: %s\n", err.msg);
        return 1;
    }
    size_t n = md_safetensors_count(st), zeroed = 0;
    md_safetensors_entry *e = calloc(n ? n : 1, sizeof *e);
    void **owned = calloc(n ? n : 1, sizeof *owned);
    int ok = e && owned;
    for (size_t i = 0; ok && i < n; i++) {
        e[i].name = md_safetensors_name(st, i);
        e[i].tensor = *md_safetensors_tensor(st, i);
        if (!strstr(e[i].name, argv[2]))
            continue;
        /* All-zero bytes are 0.0 in every float dtype. */
        owned[i] = calloc(1, md_tensor_nbytes(&e[i].tensor) + 1);
        ok = owned[i] != NULL;
        e[i].tensor.data = owned[i];
        zeroed++;
    }
    /* The write goes to a temporary file renamed over FILE, so the
     * mapping being read stays valid until it is closed. */
    if (ok && zeroed && md_safetensors_write(argv[1], e, n, &err) != MD_OK) {
        fprintf(stderr, "md-test-zero: %s\n", err.msg);
        ok = 0;
    }
    for (size_t i = 0; owned && i < n; i++)
        free(owned[i]);
    free(owned);
    free(e);
    md_safetensors_close(st);
    if (!ok)
        return 1;
    printf("%zu\n", zeroed);
    if (!zeroed)
        fprintf(stderr, "md-test-zero: no tensor of %s has \"%s\" in its name\n", argv[1], argv[2]);
    return zeroed ? 0 : 1;
}
