#include "lora_options.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

const char *md_cli_lora_option(mdh_request *r, const char *flag, const char *value)
{
    const char *name = !strcmp(flag, "--lora")       ? "loras"
                       : !strcmp(flag, "--lora-dir") ? "lora_dir"
                                                     : "lora_allow_unmatched";
    mdh_error err = {0};
    if (mdh_request_set_text(r, mdh_request_field(name), value ? value : "true", &err) !=
        MDIFF_OK) {
        fprintf(stderr, "moe-diffuse: %s: %s\n", flag, err.msg);
        return NULL;
    }
    return name;
}

int md_cli_lora_dir_default(mdh_request *r)
{
    const char *env = getenv("MOEDIFFUSE_LORA_DIR");
    if (r->p.lora_dir || !env || !env[0])
        return 0;
    if (mdh_request_set_string(r, mdh_request_field("lora_dir"), env) != MDIFF_OK) {
        fprintf(stderr, "moe-diffuse: out of memory\n");
        return MD_EXIT_FAILURE;
    }
    return 0;
}
