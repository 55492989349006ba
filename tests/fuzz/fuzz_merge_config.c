/* A SegMoE merge config (merge/merge_config.c): YAML of any shape, typed,
 * checked key by key, paths resolved next to the file (the temporary
 * folder, so "." and "/" exist and the expert lists get checked too).
 * Inputs are capped at 64 KiB like the LDM YAML's: real configs are a few
 * hundred bytes. */
#include <stdint.h>

#include "fuzz_file.h"
#include "merge/merge_config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 65536)
        return 0;
    const char *path = md_fuzz_file(data, size, ".yaml");
    if (!path)
        return 0;
    md_merge_config c;
    md_error err = {0};
    if (md_merge_config_read(path, &c, &err) == MD_OK)
        md_merge_config_free(&c);
    return 0;
}
