#include "parameters.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "a1111_hashes.h"
#include "infotext.h"

/* The model's experts as the "MoE:" value: what the model is; the request's
 * own settings are recorded under their keys. */
static void moe_text(const mdiff_model_info *i, char *buf, size_t cap)
{
    snprintf(buf, cap, "%d experts, top-%d, %s routing%s", i->num_experts, i->top_k,
             i->routing == MDIFF_ROUTING_TOKEN ? "token" : "sequence",
             i->shared_expert ? ", shared expert" : "");
}

/* The feathering the library applies to an inpainting mask's edge
 * (moediffuse.h: min(w, h) / 128, 1..8 pixels), recorded as A1111's "Mask blur". */
static int mask_blur(int w, int h)
{
    int r = (w < h ? w : h) / 128;
    return r < 1 ? 1 : r > 8 ? 8 : r;
}

char *mdh_parameters_text(const mdh_parameters_source *src, const mdh_request *rq,
                          const mdiff_gen_params *resolved, int has_mask)
{
    mdh_request shown = *rq; /* a shallow view: strings stay rq's */
    shown.p = *resolved;
    shown.p.moe_top_k = rq->p.moe_top_k;
    shown.p.moe_routing = rq->p.moe_routing;
    char moe[160];
    moe_text(src->info, moe, sizeof moe);
    char *lora_hashes = NULL;
    mdh_error err = {0};
    /* without the context: the files are found, not bound to the model again */
    if (mdh_lora_hashes(src->api, NULL, &rq->p, &lora_hashes, &err) != MDIFF_OK)
        lora_hashes = NULL; /* generate reports what is wrong with the LoRAs */
    mdh_infotext_meta meta = {
        .model_hash = src->model_hash && src->model_hash[0] ? src->model_hash : NULL,
        .lora_hashes = lora_hashes,
        .model = src->model_name,
        .moe = src->info->routing == MDIFF_ROUTING_NONE ? NULL : moe,
        .mask_blur = has_mask ? mask_blur(resolved->width, resolved->height) : 0,
        .version = src->version};
    char *text = mdh_infotext_format(&shown, &meta);
    free(lora_hashes);
    return text;
}

uint64_t mdh_random_seed(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t x = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^ ((uint64_t)getpid() << 40);
    x ^= x >> 33; /* splitmix finaliser so nearby clocks give unrelated seeds */
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return x & 0xffffffffULL;
}

static int round8(double v)
{
    int r = (int)((v + 4.0) / 8.0) * 8;
    return r < 8 ? 8 : r > 8192 ? 8192 : r;
}

void mdh_size_for_image(const mdiff_gen_params *r, int iw, int ih, int *w, int *h)
{
    if (r->width && r->height) {
        *w = r->width;
        *h = r->height;
    } else if (r->width) {
        *w = r->width;
        *h = round8((double)ih * r->width / iw);
    } else if (r->height) {
        *h = r->height;
        *w = round8((double)iw * r->height / ih);
    } else {
        *w = round8(iw);
        *h = round8(ih);
    }
}
