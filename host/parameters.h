/* The `parameters` text a host writes into each image (the CLI, batch and
 * the server alike): the request as given with its resolved values, the
 * model's experts ("MoE:"), the inpainting feathering ("Mask blur:"), and
 * A1111's Model hash and Lora hashes (a1111_hashes.h). */
#ifndef MDH_PARAMETERS_H
#define MDH_PARAMETERS_H

#include "request_fields.h"

typedef struct mdh_parameters_source {
    const mdiff_api *api;
    const mdiff_model_info *info;
    const char *model_hash; /* NULL or "" = none */
    const char *model_name; /* "Model:"; NULL = none */
    const char *version;    /* "Version:" */
} mdh_parameters_source;

/* rq's text with the resolved values of `resolved` (its request's own MoE
 * settings kept: the ones in effect by default are the model's). has_mask:
 * the image was inpainted. malloc'd; NULL = out of memory. */
char *mdh_parameters_text(const mdh_parameters_source *src, const mdh_request *rq,
                          const mdiff_gen_params *resolved, int has_mask);

/* A random seed from the clock and the process: 32 bits, as A1111's. */
uint64_t mdh_random_seed(void);

/* The generation size for an init image of iw x ih: the request's width and
 * height, one of them with the other from the image's aspect, or the
 * image's own size, rounded to multiples of 8. */
void mdh_size_for_image(const mdiff_gen_params *r, int iw, int ih, int *w, int *h);

#endif
