/* A txt2img / img2img body of AUTOMATIC1111's API read into a request of
 * the host library: A1111's fields mapped to ours (cfg_scale -> guidance,
 * sampler_name + scheduler -> sampler, override_settings' clip skip, ...),
 * then every other key that names a request field (the batch JSON Lines
 * keys, host/request_fields.h) set by name. Unknown keys are ignored, as
 * A1111 does; a known key of the wrong type is refused with a message
 * naming it. No key can make the server read a file: image paths, LoRA
 * paths and folders and routes files are refused (images come as base64,
 * LoRAs as <lora:NAME:W> tags found in the server's --lora-dir). */
#ifndef MD_SERVER_GEN_REQUEST_H
#define MD_SERVER_GEN_REQUEST_H

#include <cjson/cJSON.h>
#include <stddef.h>

#include "../host/request_fields.h"

typedef struct md_gen_limits {
    int max_side;   /* width and height at most this */
    int max_images; /* batch_size x n_iter at most this */
    int max_steps;
} md_gen_limits;

typedef struct md_gen_request {
    mdh_request req;
    int random_seed;       /* seed -1 (A1111's "random") or none */
    int batch_size, n_iter;
    int send_images;       /* 0: the response carries no images (A1111's send_images) */
    unsigned char *init;   /* img2img: the first of init_images, decoded from base64 */
    size_t init_size;
    unsigned char *mask;   /* inpainting mask, decoded; NULL = none */
    size_t mask_size;
    int mask_invert;       /* inpainting_mask_invert: repaint the black part */
    int mask_blur;         /* as sent (the library feathers the edge itself); -1 = absent */
    cJSON *echo;           /* the body with its images left out, for "parameters" */
} md_gen_request;

/* Returns 0, or the HTTP status to answer (400 for a body that is not
 * JSON, 422 for a bad field, 500 when out of memory) with the reason in
 * msg. img2img: the body is an img2img one (init_images required).
 * Free with md_gen_request_free in every case. */
int md_gen_request_parse(const char *body, size_t size, int img2img, const md_gen_limits *limits,
                         md_gen_request *out, char *msg, size_t cap);
void md_gen_request_free(md_gen_request *g);

#endif
