/* An img2img request's uploaded images as the library takes them: decoded,
 * fitted to the generation's size the way the CLI fits its files (so the
 * same image gives the same pixels), the mask as one 8-bit channel. */
#ifndef MD_SERVER_INPUTS_H
#define MD_SERVER_INPUTS_H

#include <stdint.h>

#include "gen_request.h"

typedef struct md_inputs {
    int width, height;  /* the generation's size */
    uint8_t *rgb;       /* width x height x 3 */
    uint8_t *mask;      /* width x height; NULL = none */
} md_inputs;

/* Returns 0 or the HTTP status (422 for a bad image, 500 out of memory)
 * with the reason in msg. */
int md_inputs_load(const md_gen_request *g, int max_side, md_inputs *in, char *msg, size_t cap);
void md_inputs_free(md_inputs *in);

#endif
