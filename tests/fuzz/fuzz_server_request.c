/* A txt2img / img2img body of `moe-diffuse serve` (any client can send
 * one): the JSON, A1111's fields and ours by name, base64 images, and the
 * upload decoded from memory as the server decodes it. The first byte picks
 * txt2img or img2img. */
#include <stdint.h>
#include <stdlib.h>

#include "fuzz_file.h"
#include "host/image_read.h"
#include "server/gen_request.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int img2img = data[0] & 1;
    char *body = md_fuzz_string(data + 1, size - 1);
    if (!body)
        return 0;
    md_gen_limits lim = {.max_side = 256, .max_images = 4, .max_steps = 100};
    md_gen_request g;
    char msg[512];
    if (md_gen_request_parse(body, size - 1, img2img, &lim, &g, msg, sizeof msg) == 0 && g.init) {
        md_image img;
        mdh_error err = {0};
        if (md_image_decode(g.init, g.init_size, "init", 256, &img, &err) == MDIFF_OK)
            md_image_free(&img);
        if (g.mask && md_image_decode(g.mask, g.mask_size, "mask", 256, &img, &err) == MDIFF_OK)
            md_image_free(&img);
    }
    md_gen_request_free(&g);
    free(body);
    return 0;
}
