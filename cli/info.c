/* `moe-diffuse info MODEL`: what a model is and what it costs to run (the
 * library's "model.describe" text). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "engine.h"

int md_cli_info_main(int argc, char **argv)
{
    if (argc == 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
        printf("usage: moe-diffuse info MODEL\n"
               "Prints the architecture, parameter counts (total and active per token), the\n"
               "MoE layout, weight types and the memory a generation needs.\n");
        return MD_EXIT_OK;
    }
    if (argc != 2) {
        fprintf(stderr, "moe-diffuse: usage: moe-diffuse info MODEL\n");
        return MD_EXIT_USAGE;
    }
    md_cli_engine e;
    md_cli_engine_options eo = {.model = argv[1], .backend = "cpu", .device = -1, .threads = 1,
                                .log_level = -1};
    char msg[1024];
    int rc = md_cli_engine_open(&e, &eo, msg, sizeof msg);
    if (rc != MD_EXIT_OK) {
        fprintf(stderr, "moe-diffuse: %s\n", msg);
        md_cli_engine_close(&e);
        return rc;
    }
    const mdiff_describe_api *d = e.api->get_feature(MDIFF_FEATURE_DESCRIBE);
    int n = d ? d->describe(e.ctx, NULL, 0) : MDIFF_ERR_UNSUPPORTED;
    char *text = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (text && d->describe(e.ctx, text, (size_t)n + 1) == n) {
        fputs(text, stdout);
        rc = MD_EXIT_OK;
    } else {
        fprintf(stderr, "moe-diffuse: %s: cannot describe the model\n", argv[1]);
        rc = MD_EXIT_FAILURE;
    }
    free(text);
    md_cli_engine_close(&e);
    return rc;
}
