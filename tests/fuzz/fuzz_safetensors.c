/* The .safetensors header: length prefix, JSON, dtypes, shapes and byte
 * ranges, all validated before any tensor is handed out. Each tensor found
 * is read in full, so a range the checks let through that runs past the
 * mapping is an ASan report. */
#include <stdint.h>

#include "fuzz_file.h"
#include "io/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = md_fuzz_file(data, size, ".safetensors");
    if (!path)
        return 0;
    md_safetensors *st = NULL;
    md_error err = {0};
    if (md_safetensors_open(path, &st, &err) != MD_OK)
        return 0;
    volatile uint8_t sink = 0;
    for (size_t i = 0; i < md_safetensors_count(st); i++) {
        const md_tensor *t = md_safetensors_tensor(st, i);
        const uint8_t *p = t->data;
        size_t n = md_tensor_nbytes(t);
        for (size_t k = 0; k < n; k++)
            sink ^= p[k];
        if (md_safetensors_find(st, md_safetensors_name(st, i)) == NULL)
            __builtin_trap(); /* every listed name must be found again */
    }
    (void)md_safetensors_metadata(st, "format");
    (void)sink;
    md_safetensors_close(st);
    return 0;
}
