/* The CLI's way into the engine: every model operation goes through
 * libmoediffuse's public ABI (include/moediffuse.h), exactly as a host
 * application's would. One engine = one loaded model (an ABI context). */
#ifndef MD_CLI_ENGINE_H
#define MD_CLI_ENGINE_H

#include <stddef.h>

#include "moediffuse.h"
#include "../host/request_fields.h"

typedef struct md_cli_engine {
    const mdiff_api *api;
    mdiff_context *ctx;
    mdiff_model_info info;
    char model_path[4096];
    char model_hash[11];  /* A1111's "Model hash" ("" when it could not be computed) */
} md_cli_engine;

typedef struct md_cli_engine_options {
    const char *model;   /* path */
    const char *backend; /* "cpu", "vulkan", "auto" */
    int device;          /* -1 = best */
    int threads;         /* 0 = all cores */
    int profile;         /* Vulkan per-op timestamps */
    int log_level;       /* mdiff_log_level printed on stderr; -1 = nothing */
    uint64_t max_expert_memory; /* the context's (mdiff_context_params) */
} md_cli_engine_options;

/* The context's expert memory bound for a request's default: its bytes, or,
 * given as a percentage (known in bytes only once the model is loaded),
 * experts loaded on demand with each request bounding them. */
uint64_t md_cli_context_expert_memory(const mdh_request *defaults);

/* The library's function table (ABI 1.2 or later); NULL when the library
 * found at run time is older, with the reason printed. */
const mdiff_api *md_cli_api(void);

/* Loads the model. Returns MD_EXIT_OK or the exit code for the failure
 * (MD_EXIT_USAGE for a bad backend/device, MD_EXIT_MODEL otherwise), with
 * the message in msg. */
int md_cli_engine_open(md_cli_engine *e, const md_cli_engine_options *o, char *msg, size_t cap);
void md_cli_engine_close(md_cli_engine *e);

/* Exit code (cli.h MD_EXIT_*) for a failed generation's mdiff_status. */
int md_cli_exit_code(int status);

/* The library's sampler names, index 0 .. md_cli_sampler_count() - 1. */
const char *md_cli_sampler_name(int index);
int md_cli_sampler_count(void);

#endif
