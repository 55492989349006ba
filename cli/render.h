/* One image from start to finish: the request's image files read and
 * fitted, the generation through the library, and the output file with
 * its `parameters` text. Shared by the single-image command and
 * `moe-diffuse batch`. */
#ifndef MD_CLI_RENDER_H
#define MD_CLI_RENDER_H

#include <stddef.h>

#include "../host/request_fields.h"
#include "engine.h"

typedef struct md_render_target {
    const char *output;     /* .png (with `parameters`), .jpg, .jpeg or .bmp */
    const char *model_name; /* the parameters' "Model:" value; NULL = from the model's path */
    int quiet;              /* 1: no notes on stderr (resizes, ...) */
} md_render_target;

/* What the run produced: the request as the library ran it (sizes, guidance,
 * sampler and MoE settings resolved; strings alias the input's). */
typedef struct md_render_result {
    mdiff_gen_params resolved;
    double seconds;
} md_render_result;

/* Generates r and writes t->output atomically (never a partial file).
 * Progress goes to the callback set on the engine's context. Errors name
 * the file and the problem; the return is an mdiff_status (MDIFF_ERR_IO /
 * MDIFF_ERR_FORMAT for an unreadable or bad input image or an unwritable
 * output). res may be NULL. */
int md_render(md_cli_engine *e, const mdh_request *r, const md_render_target *t,
              md_render_result *res, char *msg, size_t cap);

/* The `parameters` text of r as it will be recorded (for -v): the request
 * resolved by the library without its init image. NULL when out of memory
 * or invalid. */
char *md_render_parameters(md_cli_engine *e, const mdh_request *r, const char *model_name);

/* A routes file's text, whole (the library parses and checks it). */
int md_read_routes(const char *path, char **text, char *msg, size_t cap);

#endif
