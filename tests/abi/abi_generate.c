/* ABI generation: caller- and library-allocated images, an older host's
 * smaller params struct, progress and previews, img2img and inpainting. */
#include <stddef.h>

#include "abi_test.h"

static mdiff_gen_params base_params(const mdiff_api *api)
{
    mdiff_gen_params p;
    api->gen_params_init(&p, sizeof p);
    p.prompt = "a red circle on a blue background";
    p.negative_prompt = "blurry";
    p.steps = 4;
    p.sampler = "ddim";
    p.seed = 7;
    return p;
}

static void test_allocation(const mdiff_api *api, mdiff_context *ctx)
{
    char msg[512];
    mdiff_gen_params p = base_params(api);
    mdiff_image lib;
    api->image_init(&lib, sizeof lib);
    int rc = api->generate(ctx, &p, &lib, msg, sizeof msg);
    CHECK(rc == MDIFF_OK && lib.data && (lib.flags & MDIFF_IMAGE_LIBRARY_OWNED) &&
              lib.width == 16 && lib.height == 16 && lib.channels == 3 && lib.stride == 48,
          "library-allocated RGB: %d '%s'", rc, msg);
    int lo, hi;
    image_range(&lib, &lo, &hi);
    CHECK(hi - lo > 10, "image is not constant (%d..%d)", lo, hi);

    /* The host's own buffer: RGBA with padded rows; padding stays as it was. */
    enum { STRIDE = 16 * 4 + 12 };
    uint8_t *buf = malloc(STRIDE * 16);
    memset(buf, 0x5A, STRIDE * 16);
    mdiff_image mine;
    api->image_init(&mine, sizeof mine);
    mine.data = buf;
    mine.width = mine.height = 16;
    mine.channels = 4;
    mine.stride = STRIDE;
    rc = api->generate(ctx, &p, &mine, msg, sizeof msg);
    CHECK(rc == MDIFF_OK && mine.data == buf && !(mine.flags & MDIFF_IMAGE_LIBRARY_OWNED),
          "caller-allocated RGBA: %d '%s'", rc, msg);
    int same = 1, alpha = 1, pad = 1;
    for (int y = 0; y < 16; y++) {
        for (int x = 0; x < 16; x++) {
            for (int c = 0; c < 3; c++)
                same &= buf[y * STRIDE + x * 4 + c] == lib.data[y * lib.stride + x * 3 + c];
            alpha &= buf[y * STRIDE + x * 4 + 3] == 255;
        }
        for (int i = 16 * 4; i < STRIDE; i++)
            pad &= buf[y * STRIDE + i] == 0x5A;
    }
    CHECK(same && alpha && pad, "same pixels either way (same %d, alpha %d, padding kept %d)", same,
          alpha, pad);
    api->image_free(&mine); /* not the library's: must leave it alone */
    CHECK(mine.data == buf, "image_free ignores a host buffer");

    /* The same seed again gives the same bytes; another seed another image. */
    mdiff_image again;
    api->image_init(&again, sizeof again);
    api->generate(ctx, &p, &again, msg, sizeof msg);
    CHECK(again.data && image_hash(&again) == image_hash(&lib), "same seed, same image");
    api->image_free(&again);
    p.seed = 8;
    api->generate(ctx, &p, &again, msg, sizeof msg);
    CHECK(again.data && image_hash(&again) != image_hash(&lib), "another seed, another image");
    api->image_free(&again);
    CHECK(again.data == NULL && !(again.flags & MDIFF_IMAGE_LIBRARY_OWNED), "image_free clears");

    /* A host buffer of the wrong size is refused before anything runs. */
    mine.width = 8;
    rc = api->generate(ctx, &p, &mine, msg, sizeof msg);
    CHECK(rc == MDIFF_ERR_INVALID && strstr(msg, "8x16") && strstr(msg, "16x16"),
          "wrong buffer size: '%s'", msg);
    free(buf);
    api->image_free(&lib);
}

/* A 1.0 host's params struct lacks clip_skip: in an exactly sized heap block
 * (so ASan sees any read past it) it must give the 1.1 default's image. */
static void test_old_struct(const mdiff_api *api, mdiff_context *ctx)
{
    char msg[512];
    mdiff_gen_params p = base_params(api);
    mdiff_image a, b, c;
    api->image_init(&a, sizeof a);
    api->image_init(&b, sizeof b);
    api->image_init(&c, sizeof c);
    size_t old = offsetof(mdiff_gen_params, clip_skip);
    void *small = malloc(old);
    mdiff_gen_params head = p;
    head.struct_size = old;
    memcpy(small, &head, old);
    int rc = api->generate(ctx, small, &a, msg, sizeof msg);
    CHECK(rc == MDIFF_OK, "1.0-sized params: %d '%s'", rc, msg);
    free(small);
    api->generate(ctx, &p, &b, msg, sizeof msg);
    CHECK(a.data && b.data && image_hash(&a) == image_hash(&b),
          "1.0-sized params give the 1.1 defaults' image");
    p.clip_skip = 1; /* the field 1.1 appended does take effect */
    rc = api->generate(ctx, &p, &c, msg, sizeof msg);
    CHECK(rc == MDIFF_OK && image_hash(&c) != image_hash(&b), "clip_skip 1 changes the image");
    /* A newer host's larger struct: the tail the library does not know is ignored. */
    unsigned char big[sizeof p + 16];
    memset(big, 0x7F, sizeof big);
    p.clip_skip = 0;
    memcpy(big, &p, sizeof p);
    ((mdiff_gen_params *)big)->struct_size = sizeof big;
    mdiff_image d;
    api->image_init(&d, sizeof d);
    rc = api->generate(ctx, (mdiff_gen_params *)big, &d, msg, sizeof msg);
    CHECK(rc == MDIFF_OK && image_hash(&d) == image_hash(&b), "larger struct: %d '%s'", rc, msg);
    api->image_free(&a);
    api->image_free(&b);
    api->image_free(&c);
    api->image_free(&d);
}

typedef struct progress_log {
    int calls, text, encode, decode, denoise, in_order, last_step, total, previews, good_previews;
} progress_log;

static int on_progress(void *user, const mdiff_progress *pr)
{
    progress_log *l = user;
    l->calls++;
    l->total = pr->total;
    switch (pr->stage) {
    case MDIFF_STAGE_TEXT: l->text++; break;
    case MDIFF_STAGE_ENCODE_IMAGE: l->encode++; break;
    case MDIFF_STAGE_DECODE: l->decode++; break;
    case MDIFF_STAGE_DENOISE:
        l->denoise++;
        l->in_order += pr->step == l->last_step + 1;
        l->last_step = pr->step;
        break;
    }
    if (pr->preview) {
        int lo, hi;
        image_range(pr->preview, &lo, &hi);
        l->previews++;
        l->good_previews += pr->preview->width == 16 && pr->preview->channels == 3 && hi > lo;
    }
    return 0;
}

static void test_progress(const mdiff_api *api, mdiff_context *ctx)
{
    char msg[512];
    progress_log l = {0};
    CHECK(api->set_progress(ctx, on_progress, &l) == MDIFF_OK, "set_progress");
    mdiff_gen_params p = base_params(api);
    p.steps = 6;
    p.preview_interval = 2;
    mdiff_image out;
    api->image_init(&out, sizeof out);
    int rc = api->generate(ctx, &p, &out, msg, sizeof msg);
    CHECK(rc == MDIFF_OK, "run with progress: '%s'", msg);
    CHECK(l.text == 1 && l.encode == 0 && l.decode == 1 && l.denoise == 6 && l.last_step == 6 &&
              l.total == 6,
          "stages: text %d encode %d denoise %d decode %d, last step %d of %d", l.text, l.encode,
          l.denoise, l.decode, l.last_step, l.total);
    CHECK(l.in_order == 6, "steps 1..6 in order (%d)", l.in_order);
    CHECK(l.previews == 3 && l.good_previews == 3, "previews every 2 steps: %d (%d good)",
          l.previews, l.good_previews);
    /* img2img at strength 0.5 runs half the steps and reports the encode stage. */
    memset(&l, 0, sizeof l);
    p.init_image = &out;
    p.strength = 0.5f;
    p.preview_interval = 0;
    mdiff_image i2i;
    api->image_init(&i2i, sizeof i2i);
    rc = api->generate(ctx, &p, &i2i, msg, sizeof msg);
    CHECK(rc == MDIFF_OK && i2i.width == 16 && image_hash(&i2i) != image_hash(&out),
          "img2img: %d '%s'", rc, msg);
    CHECK(l.encode == 1 && l.denoise == 3 && l.total == 3 && l.previews == 0,
          "img2img progress: encode %d, %d of %d steps", l.encode, l.denoise, l.total);
    api->set_progress(ctx, NULL, NULL);
    api->image_free(&i2i);

    /* An init image of another size is resized; width/height 0 take its size. */
    uint8_t big[32 * 32];
    for (int i = 0; i < 32 * 32; i++)
        big[i] = (uint8_t)(i * 7);
    mdiff_image grey;
    api->image_init(&grey, sizeof grey);
    grey.data = big;
    grey.width = grey.height = 32;
    grey.channels = 1;
    p.init_image = &grey;
    p.width = p.height = 16;
    rc = api->generate(ctx, &p, &i2i, msg, sizeof msg);
    CHECK(rc == MDIFF_OK && i2i.width == 16, "resized grey init: '%s'", msg);
    api->image_free(&i2i);
    p.width = p.height = 0;
    rc = api->generate(ctx, &p, &i2i, msg, sizeof msg);
    CHECK(rc == MDIFF_OK && i2i.width == 32 && i2i.height == 32, "size from the init image: '%s'",
          msg);
    api->image_free(&i2i);

    /* Inpainting with an all-keep mask: every step is pulled back onto the
     * init image's trajectory, so the prompt cannot change the result. */
    uint8_t keep[16 * 16] = {0};
    mdiff_image mask;
    api->image_init(&mask, sizeof mask);
    mask.data = keep;
    mask.width = mask.height = 16;
    mask.channels = 1;
    p.init_image = &out;
    p.mask = &mask;
    p.strength = 1.0f;
    mdiff_image a, b;
    api->image_init(&a, sizeof a);
    api->image_init(&b, sizeof b);
    api->generate(ctx, &p, &a, msg, sizeof msg);
    p.prompt = "something else entirely";
    rc = api->generate(ctx, &p, &b, msg, sizeof msg);
    CHECK(rc == MDIFF_OK && a.data && image_hash(&a) == image_hash(&b),
          "inpaint, nothing masked: the prompt has no effect");
    api->image_free(&b);
    memset(keep, 255, sizeof keep); /* repaint everything: now it does */
    rc = api->generate(ctx, &p, &b, msg, sizeof msg);
    CHECK(rc == MDIFF_OK && image_hash(&a) != image_hash(&b), "inpaint, all masked: it does");
    api->image_free(&a);
    api->image_free(&b);
    api->image_free(&out);
}

int main(void)
{
    const mdiff_api *api = test_api();
    mdiff_context *ctx = test_context(api, "tiny-sd-dense");
    test_allocation(api, ctx);
    test_old_struct(api, ctx);
    test_progress(api, ctx);
    api->context_destroy(ctx);
    return test_report("abi_generate");
}
