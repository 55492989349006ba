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

void md_cli_lora_report(md_cli_engine *e, const mdiff_gen_params *p, int verbose, int quiet)
{
    const mdiff_lora_api *la = e->api->get_feature(MDIFF_FEATURE_LORA);
    if (!la)
        return;
    mdiff_lora_info *info = calloc(MDIFF_MAX_LORAS, sizeof *info);
    if (!info)
        return;
    for (int i = 0; i < MDIFF_MAX_LORAS; i++)
        info[i].struct_size = sizeof info[i];
    char msg[512];
    int n = la->list(e->ctx, p, info, MDIFF_MAX_LORAS, msg, sizeof msg);
    for (int i = 0; i < n; i++) {
        const mdiff_lora_info *l = &info[i];
        if (verbose)
            fprintf(stderr, "moe-diffuse: LoRA %s (%s): weight %g, %d of %d modules\n", l->name,
                    l->path, (double)l->weight, l->matched, l->modules);
        if (!quiet && l->matched >= 0 && l->matched < l->modules)
            fprintf(stderr,
                    "moe-diffuse: warning: LoRA %s: %d of its %d modules match no layer of the "
                    "model and are skipped (--lora-allow-unmatched)\n",
                    l->name, l->modules - l->matched, l->modules);
    }
    free(info);
}
