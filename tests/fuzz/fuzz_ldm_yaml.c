/* An original LDM / SGM inference .yaml beside a single-file checkpoint.
 * Inputs are capped at 64 KiB: the real files are a few KiB, and libyaml
 * loads the whole document into memory before anything is looked up, so a
 * larger input only slows the search down. */
#include <stdint.h>

#include "config/config_json.h"
#include "fuzz_file.h"
#include "models/ldm_yaml.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 65536)
        return 0;
    const char *path = md_fuzz_file(data, size, ".yaml");
    if (!path)
        return 0;
    md_ldm_yaml y;
    md_error err = {0};
    if (md_ldm_yaml_read(path, &y, &err) != MD_OK)
        return 0;
    /* What the file set, applied to an SD 1.x-like inferred config. */
    md_unet_config u = {.levels = 4, .block_out_channels = {320, 640, 1280, 1280}};
    md_vae_config v = {0};
    md_sched_config s;
    md_sched_config_default(&s);
    (void)md_ldm_yaml_apply(&y, path, &u, &v, &s, &err);
    return 0;
}
