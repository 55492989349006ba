/* One image from start to finish: every per-image parameter, the
 * generation (txt2img, img2img, inpainting) and the output file with its
 * metadata. Shared by the single-image command and `moe-diffuse batch`. */
#ifndef MD_CLI_GEN_REQUEST_H
#define MD_CLI_GEN_REQUEST_H

#include <stddef.h>
#include <stdint.h>

#include "engine.h"
#include "pipeline/pipeline.h"

/* Largest prompt, in bytes, either command accepts. */
#define MD_GEN_PROMPT_MAX 16384

typedef struct md_gen_request {
    const char *prompt;          /* A1111 emphasis syntax; chunked past 75 tokens (max 600) */
    const char *negative_prompt; /* NULL = none */
    int steps;
    float cfg_scale;
    md_sampler_kind sampler;
    uint64_t seed;
    int width, height;      /* 0 = native size (txt2img) / from the init image's size
                               (see the man page: INIT IMAGES); multiples of 8 */
    int clip_skip;          /* 0 = model default */
    const char *init_image; /* PNG or JPEG; NULL = txt2img */
    float strength;         /* img2img strength 0..1 (default 0.75) */
    const char *mask;       /* PNG or JPEG, white = repaint; needs init_image */
    const char *output;     /* .png (with `parameters`), .jpg, .jpeg or .bmp */
    const char *model_name; /* the metadata's "Model:" value; NULL = from the model's path */
    int quiet;              /* 1: no notes on stderr (resizes, ...) */
    int plain_prompt;       /* 1: no emphasis syntax, truncated at 75 tokens */
    /* SDXL micro-conditioning; 0 = the image size / no crop */
    int original_width, original_height, crop_top, crop_left, target_width, target_height;
} md_gen_request;

/* Defaults: 20 steps, CFG 7.5, dpmpp_2m_karras, seed 0, native size,
 * strength 0.75, everything else empty. */
void md_gen_request_init(md_gen_request *r);

/* What the run produced (sizes after resolving 0 = native). */
typedef struct md_gen_result {
    int width, height;
    double seconds;
} md_gen_result;

/* Generates one image through the library and writes r->output
 * atomically (never a partial file). Progress goes to the callback set on
 * the engine's context. Errors name the file and the problem; the return
 * is an mdiff_status (MDIFF_ERR_IO / MDIFF_ERR_FORMAT for an unreadable or
 * bad input image or an unwritable output). res may be NULL. */
int md_gen_request_run(md_cli_engine *e, const md_gen_request *r, md_gen_result *res,
                       char *msg, size_t cap);

/* Checks the parameters that need no model (prompt length, steps, CFG,
 * size a multiple of 8, strength, a mask without an init image, the output
 * extension); md_gen_request_run checks them too. */
md_status md_gen_request_check(const md_gen_request *r, md_error *err);

/* The AUTOMATIC1111 `parameters` text for r (after sizes are resolved):
 * prompt, "Negative prompt: ...", "Steps: ..., Sampler: ..., ..." with the
 * MoE settings. Returns a malloc'd string or NULL when out of memory. */
char *md_gen_request_parameters(const md_cli_engine *e, const md_gen_request *r);

/* The native size of the engine's model (width = height). */
int md_gen_native_size(const md_cli_engine *e);

#endif
