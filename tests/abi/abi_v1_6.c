/* ABI 1.6: LoRAs through the public header only. A request's loras[] and
 * its prompt's <lora:NAME:WEIGHT> tags (found in lora_dir) apply the same
 * LoRA the same way; weight 0 is no LoRA; elements of a host's larger
 * mdiff_lora are read at its struct_size; a 1.5-sized struct has no LoRAs;
 * the "lora" feature lists what a request applies and how much of it fits
 * the model; a LoRA for the dense base changes an MoE model's experts;
 * bad LoRA fields are refused by resolve_params and generate alike; and
 * "model.files" names the file a Model hash covers. With the argument
 * "vulkan": the LoRA applies there too (side products on the device), and
 * one that changes experts a context loads on demand is refused; exit 77
 * without a Vulkan device. */
#include <math.h>
#include <stddef.h>

#include "abi_test.h"

#define STEPS 3

static mdiff_gen_params request(const mdiff_api *api)
{
    mdiff_gen_params p;
    api->gen_params_init(&p, sizeof p);
    p.prompt = "a cat";
    p.seed = 5;
    p.steps = STEPS;
    p.sampler = "euler";
    return p;
}

/* generate's status and message (no image kept). */
static int generate_status(const mdiff_api *api, mdiff_context *ctx, const mdiff_gen_params *p,
                           char *msg, size_t cap)
{
    mdiff_image img;
    api->image_init(&img, sizeof img);
    int rc = api->generate(ctx, p, &img, msg, cap);
    api->image_free(&img);
    return rc;
}

static void refused(const mdiff_api *api, mdiff_context *ctx, const mdiff_gen_params *p,
                    int want, const char *text, const char *what)
{
    char msg[512] = "";
    mdiff_gen_params r = {.struct_size = sizeof r};
    int rc = api->resolve_params(ctx, p, &r, msg, sizeof msg);
    char gmsg[512] = "";
    int grc = generate_status(api, ctx, p, gmsg, sizeof gmsg);
    CHECK(grc == want && strstr(gmsg, text), "%s: generate %s '%s'", what, api->status_name(grc),
          gmsg);
    /* resolve_params checks the fields and finds the files; binding to the
     * model's layers is generate's (and the lora feature's) */
    if (want == MDIFF_ERR_IO || strstr(what, "field"))
        CHECK(rc == want && strstr(msg, text), "%s: resolve_params %s '%s'", what,
              api->status_name(rc), msg);
}

static int vulkan_part(const mdiff_api *api, const char *lora_path, const char *lora_dir)
{
    mdiff_context *ctx = test_context_at(api, test_model("tiny-sd-dense"), "vulkan");
    const mdiff_profile_api *prof = api->get_feature(MDIFF_FEATURE_PROFILE);
    char name[256] = "";
    if (prof)
        prof->backend_name(ctx, name, sizeof name);
    printf("backend: %s\n", name);
    if (strncmp(name, "vulkan", 6) != 0) {
        api->context_destroy(ctx);
        return 77;
    }
    mdiff_gen_params p = request(api);
    uint64_t base = test_generate_hash(api, ctx, &p);
    mdiff_lora one = {.struct_size = sizeof one, .path = lora_path, .weight = 0.8f};
    p.loras = &one;
    p.lora_count = 1;
    uint64_t with = test_generate_hash(api, ctx, &p);
    CHECK(with != 0 && with != base, "vulkan: loras[] changes the image");
    mdiff_gen_params t = request(api);
    t.prompt = "a cat<lora:lora_kohya:0.8>";
    t.lora_dir = lora_dir;
    CHECK(test_generate_hash(api, ctx, &t) == with, "vulkan: <lora:NAME:0.8> = loras[] at 0.8");
    api->context_destroy(ctx);

    mdiff_context_params cp;
    api->context_params_init(&cp, sizeof cp);
    cp.model_path = test_model("tiny-sd-moe");
    cp.backend = "vulkan";
    cp.max_expert_memory = MDIFF_EXPERT_MEMORY_ON_DEMAND;
    char msg[512];
    mdiff_context *moe = NULL;
    CHECK(api->context_create(&cp, &moe, msg, sizeof msg) == MDIFF_OK, "vulkan on demand: %s", msg);
    if (moe) {
        mdiff_gen_params m = request(api);
        m.loras = &one;
        m.lora_count = 1;
        int rc = generate_status(api, moe, &m, msg, sizeof msg);
        CHECK(rc == MDIFF_ERR_UNSUPPORTED && strstr(msg, "on demand"),
              "a LoRA on experts loaded on demand is refused: %s '%s'", api->status_name(rc), msg);
        api->context_destroy(moe);
    }
    return test_report("abi_v1_6 vulkan");
}

int main(int argc, char **argv)
{
    const mdiff_api *api = test_api();
    CHECK(api->abi_minor >= 6, "ABI 1.6 table (minor %d)", api->abi_minor);
    char lora_path[1100], lora_dir[1024];
    snprintf(lora_dir, sizeof lora_dir, "%s", test_model("tiny-sd-lora"));
    snprintf(lora_path, sizeof lora_path, "%s/lora_kohya.safetensors", lora_dir);
    if (argc > 1 && !strcmp(argv[1], "vulkan"))
        return vulkan_part(api, lora_path, lora_dir);
    mdiff_context *ctx = test_context(api, "tiny-sd-dense");

    mdiff_gen_params p = request(api);
    CHECK(p.loras == NULL && p.lora_count == 0 && p.lora_flags == 0 && p.lora_dir == NULL,
          "no LoRAs by default");
    uint64_t base = test_generate_hash(api, ctx, &p);

    mdiff_lora one = {.struct_size = sizeof one, .path = lora_path, .weight = 0.8f};
    p.loras = &one;
    p.lora_count = 1;
    uint64_t with = test_generate_hash(api, ctx, &p);
    CHECK(with != 0 && with != base, "loras[] changes the image");
    CHECK(test_generate_hash(api, ctx, &p) == with, "and again the same image");
    one.weight = 0.0f;
    CHECK(test_generate_hash(api, ctx, &p) == base, "weight 0 is the image without it");
    one.weight = 0.8f;

    /* A host built with a larger mdiff_lora: elements struct_size apart. */
    struct {
        mdiff_lora l;
        uint64_t future;
    } wide[2] = {{{.struct_size = sizeof wide[0], .path = lora_path, .weight = 0.8f}, 7},
                 {{.struct_size = sizeof wide[0], .path = lora_path, .weight = 0.0f}, 7}};
    p.loras = &wide[0].l;
    p.lora_count = 2;
    CHECK(test_generate_hash(api, ctx, &p) == with, "elements read at the host's struct_size");

    /* The prompt's tag, looked up in lora_dir. */
    mdiff_gen_params t = request(api);
    t.prompt = "a cat<lora:lora_kohya:0.8>";
    t.lora_dir = lora_dir;
    CHECK(test_generate_hash(api, ctx, &t) == with, "<lora:NAME:0.8> = loras[] at 0.8");
    t.prompt_syntax = MDIFF_PROMPT_PLAIN;
    t.lora_dir = NULL;
    uint64_t plain = test_generate_hash(api, ctx, &t);
    CHECK(plain != with && plain != base, "the plain syntax encodes a tag as text");

    /* A 1.5 host's struct ends before the LoRA fields. */
    mdiff_gen_params old = request(api);
    old.struct_size = offsetof(mdiff_gen_params, loras);
    old.loras = (const mdiff_lora *)(uintptr_t)1; /* beyond the host's struct: never read */
    old.lora_count = 5;
    CHECK(test_generate_hash(api, ctx, &old) == base, "a 1.5-sized request has no LoRAs");

    /* The lora feature: what a request applies. */
    const mdiff_lora_api *la = api->get_feature(MDIFF_FEATURE_LORA);
    CHECK(la && la->list, "the lora feature");
    if (la) {
        mdiff_gen_params q = request(api);
        q.prompt = "a cat <lora:lora_kohya> and a dog";
        q.lora_dir = lora_dir;
        q.loras = &one;
        q.lora_count = 1;
        mdiff_lora_info info[3];
        for (int i = 0; i < 3; i++)
            info[i].struct_size = sizeof info[i];
        char msg[512];
        int n = la->list(NULL, &q, info, 3, msg, sizeof msg);
        /* the prompt's tags first, then loras[] */
        CHECK(n == 2 && !strcmp(info[1].name, "lora_kohya") && info[1].from_prompt == 0 &&
                  info[1].weight == 0.8f && info[0].from_prompt == 1 && info[0].weight == 1.0f &&
                  info[0].modules > 0 && info[0].matched == -1 && strstr(info[0].path, lora_dir),
              "list without a model: %d LoRAs (%s)", n, msg);
        n = la->list(ctx, &q, info, 1, msg, sizeof msg);
        CHECK(n == 2 && info[0].matched == info[0].modules && info[0].modules > 0,
              "list on the model: %d LoRAs, %d of %d modules match (%s)", n, info[0].matched,
              info[0].modules, msg);
        q.prompt = "a cat <lora:nobody:1>";
        CHECK(la->list(ctx, &q, info, 3, msg, sizeof msg) == MDIFF_ERR_IO && strstr(msg, "nobody"),
              "list: a missing name: '%s'", msg);
    }

    /* The dense base's LoRA on an MoE model reaches its experts. */
    mdiff_context *moe = test_context(api, "tiny-sd-moe");
    mdiff_gen_params m = request(api);
    uint64_t moe_base = test_generate_hash(api, moe, &m);
    m.loras = &one;
    m.lora_count = 1;
    uint64_t moe_with = test_generate_hash(api, moe, &m);
    CHECK(moe_with != 0 && moe_with != moe_base, "a LoRA changes the MoE model's image");
    if (la) {
        mdiff_lora_info info = {.struct_size = sizeof info};
        char msg[512];
        int n = la->list(moe, &m, &info, 1, msg, sizeof msg);
        CHECK(n == 1 && info.matched == info.modules, "on the MoE model %d of %d modules match",
              info.matched, info.modules);
    }
    api->context_destroy(moe);

    /* Bad fields: refused with the file or field named. */
    mdiff_gen_params b = request(api);
    b.lora_count = 1;
    refused(api, ctx, &b, MDIFF_ERR_INVALID, "loras is NULL", "field: lora_count without loras");
    b.loras = &one;
    b.lora_count = MDIFF_MAX_LORAS + 1;
    refused(api, ctx, &b, MDIFF_ERR_INVALID, "lora_count must be", "field: too many LoRAs");
    b.lora_count = 1;
    b.lora_flags = 4;
    refused(api, ctx, &b, MDIFF_ERR_INVALID, "lora_flags", "field: an unknown flag");
    b.lora_flags = 0;
    mdiff_lora missing = {.struct_size = sizeof missing, .path = "/nonexistent/x.safetensors",
                          .weight = 1};
    b.loras = &missing;
    refused(api, ctx, &b, MDIFF_ERR_IO, "/nonexistent/x.safetensors", "a missing file");
    mdiff_lora nan = {.struct_size = sizeof nan, .path = lora_path, .weight = NAN};
    b.loras = &nan;
    refused(api, ctx, &b, MDIFF_ERR_INVALID, "not a usable number", "field: a NaN weight");
    mdiff_lora small = {.struct_size = 8, .path = lora_path, .weight = 1};
    b.loras = &small;
    refused(api, ctx, &b, MDIFF_ERR_INVALID, "struct_size", "field: struct_size too small");
    mdiff_gen_params tag = request(api);
    tag.prompt = "<lora:lora_kohya:1>";
    refused(api, ctx, &tag, MDIFF_ERR_IO, "no LoRA folder", "a tag without lora_dir");

    /* vae_tile: 0 by default; a tile that is not whole latent pixels refused; a tile
     * over the whole image is the whole decode */
    mdiff_gen_params vt = request(api);
    CHECK(vt.vae_tile == 0, "vae_tile 0 by default");
    vt.vae_tile = 33;
    refused(api, ctx, &vt, MDIFF_ERR_INVALID, "vae_tile", "field: vae_tile 33");
    vt.vae_tile = 4096;
    CHECK(test_generate_hash(api, ctx, &vt) == base, "a tile over the whole image: the same image");

    /* model.files */
    const mdiff_model_files_api *mf = api->get_feature(MDIFF_FEATURE_MODEL_FILES);
    CHECK(mf && mf->hash_file, "the model.files feature");
    if (mf) {
        char path[4096];
        int n = mf->hash_file(ctx, path, sizeof path);
        const char *want = "/unet/diffusion_pytorch_model.safetensors";
        CHECK(n > 0 && (size_t)n < sizeof path && strlen(path) > strlen(want) &&
                  !strcmp(path + strlen(path) - strlen(want), want),
              "hash_file of a diffusers folder is its U-Net's weights: %s", path);
        FILE *f = fopen(path, "rb");
        CHECK(f != NULL, "and it exists");
        if (f)
            fclose(f);
    }
    api->context_destroy(ctx);
    return test_report("abi_v1_6");
}
