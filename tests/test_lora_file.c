/* LoRA files: both layouts read and bound to the same weights (checked
 * against a plain name-by-name loop), MoE layers expanded to every
 * expert, and bad files and LoRAs for another model refused with the file
 * and key named. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lora/lora_bind.h"
#include "test_support.h"

static char dir[256];

/* Module paths of a small model: U-Net linears, a 1x1 proj_in conv, a 3x3
 * conv and text-encoder linears. kohya spells them with '_'. */
typedef struct module {
    const char *part; /* weight map label */
    const char *path;
    int64_t out, in, k; /* k 0: linear [out, in]; else conv [out, in, k, k] */
} module;

static const module MODULES[] = {
    {"unet", "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q", 8, 8, 0},
    {"unet", "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_out.0", 8, 8, 0},
    {"unet", "down_blocks.0.attentions.0.transformer_blocks.0.ff.net.0.proj", 16, 8, 0},
    {"unet", "down_blocks.0.attentions.0.proj_in", 8, 8, 1},
    {"unet", "mid_block.resnets.0.conv1", 8, 4, 3},
    {"text_encoder", "text_model.encoder.layers.0.self_attn.q_proj", 6, 6, 0},
    {"text_encoder", "text_model.encoder.layers.0.mlp.fc1", 12, 6, 0},
};
enum { NMOD = sizeof MODULES / sizeof *MODULES, RANK = 2 };

static float ones[4096];

/* A weight map per part holding every module's weight (values unused). */
static void make_maps(md_weights *maps[2])
{
    maps[0] = md_weights_new("unet");
    maps[1] = md_weights_new("text_encoder");
    for (int i = 0; i < NMOD; i++) {
        const module *m = &MODULES[i];
        md_tensor t = {.dtype = MD_F32, .ndim = m->k ? 4 : 2,
                       .shape = {m->out, m->in, m->k, m->k}, .data = ones};
        char name[256];
        snprintf(name, sizeof name, "%s.weight", m->path);
        md_error err = {0};
        CHECK(md_weights_add(maps[strcmp(m->part, "unet") != 0], name, &t, "model", &err) == MD_OK,
              "%s", err.msg);
    }
    /* Names a kohya key must not be confused with. */
    md_tensor b = {.dtype = MD_F32, .ndim = 1, .shape = {8}, .data = ones};
    md_weights_add(maps[0], "down_blocks.0.attentions.0.proj_in.bias", &b, "model", NULL);
}

/* Writes a LoRA for the modules [0, n) in one layout; extra keys appended. */
static void write_lora(const char *path, int kohya, int n, const char *const *extra, int nextra)
{
    md_safetensors_entry e[3 * NMOD + 8];
    char names[3 * NMOD + 8][320];
    static uint16_t alpha_f16;
    alpha_f16 = md_f32_to_f16(1.0f);
    int k = 0;
    for (int i = 0; i < n; i++) {
        const module *m = &MODULES[i];
        char stem[300];
        if (kohya) {
            int len = snprintf(stem, sizeof stem, "%s_", strcmp(m->part, "unet") ? "lora_te"
                                                                                    : "lora_unet");
            for (const char *c = m->path; *c; c++)
                stem[len++] = *c == '.' ? '_' : *c;
            stem[len] = 0;
        } else {
            snprintf(stem, sizeof stem, "%s.%s", m->part, m->path);
        }
        md_tensor down = {.dtype = MD_F32, .ndim = m->k ? 4 : 2,
                          .shape = {RANK, m->in, m->k, m->k}, .data = ones};
        md_tensor up = {.dtype = MD_F32, .ndim = m->k ? 4 : 2, .shape = {m->out, RANK, 1, 1},
                        .data = ones};
        snprintf(names[k], sizeof names[k], "%s%s", stem, kohya ? ".lora_down.weight"
                                                                : ".lora_A.weight");
        e[k] = (md_safetensors_entry){names[k], down}, k++;
        snprintf(names[k], sizeof names[k], "%s%s", stem, kohya ? ".lora_up.weight"
                                                                : ".lora.up.weight");
        e[k] = (md_safetensors_entry){names[k], up}, k++;
        if (kohya) {
            snprintf(names[k], sizeof names[k], "%s.alpha", stem);
            e[k] = (md_safetensors_entry){names[k], {.dtype = MD_F16, .ndim = 0,
                                                     .data = &alpha_f16}}, k++;
        }
    }
    for (int i = 0; i < nextra; i++) { /* down [RANK, 8] or up [8, RANK] */
        int up = strstr(extra[i], "up.weight") || strstr(extra[i], "lora_B");
        md_tensor t = {.dtype = MD_F32, .ndim = 2, .shape = {up ? 8 : RANK, up ? RANK : 8},
                       .data = ones};
        e[k++] = (md_safetensors_entry){extra[i], t};
    }
    md_error err = {0};
    if (md_safetensors_write(path, e, (size_t)k, &err) != MD_OK) {
        fprintf(stderr, "%s\n", err.msg);
        exit(2);
    }
}

/* The weight a kohya stem names, by the plain rule: the one map name
 * whose module path, with each '.' written '_', equals the stem. */
static const char *reference_target(md_weights *const maps[2], const char *stem)
{
    const char *rest = strncmp(stem, "lora_unet_", 10) == 0 ? stem + 10 : stem + 8;
    md_weights *map = maps[strncmp(stem, "lora_unet_", 10) != 0];
    for (size_t i = 0; i < md_weights_count(map); i++) {
        const char *name = md_weights_name(map, i);
        size_t n = strlen(name);
        if (n < 7 || strcmp(name + n - 7, ".weight") != 0 || n - 7 != strlen(rest))
            continue;
        size_t j = 0;
        while (j < n - 7 && (name[j] == '.' ? '_' : name[j]) == rest[j])
            j++;
        if (j == n - 7)
            return name;
    }
    return NULL;
}

static md_lora_file *open_ok(const char *path)
{
    md_lora_file *f = NULL;
    md_error err = {0};
    CHECK(md_lora_file_open(path, &f, &err) == MD_OK, "%s", err.msg);
    return f;
}

static void test_layouts(md_weights *const maps[2])
{
    char kp[512], dp[512];
    snprintf(kp, sizeof kp, "%s/kohya.safetensors", dir);
    snprintf(dp, sizeof dp, "%s/diffusers.safetensors", dir);
    write_lora(kp, 1, NMOD, NULL, 0);
    write_lora(dp, 0, NMOD, NULL, 0);
    md_lora_file *k = open_ok(kp), *d = open_ok(dp);
    REQUIRE(k && d);
    CHECK(k->count == NMOD && d->count == NMOD, "%d and %d entries", k->count, d->count);
    md_lora_binding bk = {0}, bd = {0};
    md_error err = {0};
    CHECK(md_lora_bind_maps(&bk, maps, 2, NULL, k, 1.0f, 0, &err) == MD_OK, "%s", err.msg);
    CHECK(md_lora_bind_maps(&bd, maps, 2, NULL, d, 1.0f, 0, &err) == MD_OK, "%s", err.msg);
    CHECK(bk.count == NMOD && bd.count == NMOD, "%d and %d targets", bk.count, bd.count);
    for (int i = 0; i < bk.count && i < bd.count; i++) {
        const char *want = reference_target(maps, bk.targets[i].entry->key);
        CHECK(want && strcmp(bk.targets[i].name, want) == 0, "kohya %s -> %s, want %s",
              bk.targets[i].entry->key, bk.targets[i].name, want ? want : "(none)");
        CHECK(strcmp(bd.targets[i].name, bk.targets[i].name) == 0, "diffusers %s -> %s",
              bd.targets[i].entry->key, bd.targets[i].name);
        /* kohya alpha 1 of rank 2: factor 0.5; diffusers without alpha: 1 */
        CHECK(bk.targets[i].factor == 0.5f && bd.targets[i].factor == 1.0f, "factors %g %g",
              (double)bk.targets[i].factor, (double)bd.targets[i].factor);
    }
    md_lora_binding_clear(&bk);
    md_lora_binding_clear(&bd);
    md_lora_file_free(k);
    md_lora_file_free(d);
}

/* open or bind must fail with a message holding every needle. */
static void expect_refused(md_weights *const maps[2], int nmaps, const char *path,
                           const char *n1, const char *n2)
{
    md_lora_file *f = NULL;
    md_lora_binding b = {0};
    md_error err = {0};
    md_status s = md_lora_file_open(path, &f, &err);
    if (s == MD_OK)
        s = md_lora_bind_maps(&b, maps, nmaps, NULL, f, 1.0f, 0, &err);
    CHECK(s != MD_OK && b.count == 0 && strstr(err.msg, path) && (!n1 || strstr(err.msg, n1)) &&
              (!n2 || strstr(err.msg, n2)),
          "%s: status %d, message '%s' (want '%s', '%s')", path, (int)s, err.msg, n1 ? n1 : "",
          n2 ? n2 : "");
    md_lora_binding_clear(&b);
    md_lora_file_free(f);
}

static void test_refusals(md_weights *const maps[2])
{
    char p[512];
    /* A module the model does not have, then allowed. */
    static const char *const stray[] = {"lora_unet_no_such_block_to_q.lora_down.weight",
                                        "lora_unet_no_such_block_to_q.lora_up.weight"};
    snprintf(p, sizeof p, "%s/unmatched.safetensors", dir);
    write_lora(p, 1, 2, stray, 2);
    expect_refused(maps, 2, p, "lora_unet_no_such_block_to_q", "match no layer");
    md_lora_file *f = open_ok(p);
    md_lora_binding b = {0};
    md_error err = {0};
    CHECK(f && md_lora_bind_maps(&b, maps, 2, NULL, f, 1.0f, 1, &err) == MD_OK && b.count == 2,
          "allow_unmatched: %s", err.msg);
    md_lora_binding_clear(&b);
    md_lora_file_free(f);

    /* A text-encoder LoRA on a model without that map (SDXL's te2 on SD 1.x). */
    static const char *const te2[] = {"lora_te2_text_model_encoder_layers_0_mlp_fc1.lora_down.weight",
                                      "lora_te2_text_model_encoder_layers_0_mlp_fc1.lora_up.weight"};
    snprintf(p, sizeof p, "%s/te2.safetensors", dir);
    write_lora(p, 1, 1, te2, 2);
    expect_refused(maps, 2, p, "lora_te2_text_model_encoder_layers_0_mlp_fc1", "text_encoder_2");

    /* Shapes of another model: down [2, 8] on q_proj [6, 6]. */
    static const char *const wrong[] = {"text_encoder.text_model.encoder.layers.0.self_attn.q_proj.lora_A.weight",
                                        "text_encoder.text_model.encoder.layers.0.self_attn.q_proj.lora_B.weight"};
    snprintf(p, sizeof p, "%s/shape.safetensors", dir);
    write_lora(p, 0, 0, wrong, 2);
    expect_refused(maps, 2, p, "text_encoder.text_model.encoder.layers.0.self_attn.q_proj",
                   "does not fit");

    /* A key of no known layout, a pair without its up matrix, a pickle. */
    static const char *const odd[] = {"model.diffusion_model.input_blocks.0.weight"};
    snprintf(p, sizeof p, "%s/odd.safetensors", dir);
    write_lora(p, 1, 1, odd, 1);
    expect_refused(maps, 2, p, "model.diffusion_model.input_blocks.0.weight", "not a LoRA key");
    static const char *const half[] = {"lora_unet_mid_block_resnets_0_conv2.lora_down.weight"};
    snprintf(p, sizeof p, "%s/half.safetensors", dir);
    write_lora(p, 1, 0, half, 1);
    expect_refused(maps, 2, p, "lora_unet_mid_block_resnets_0_conv2", "no up matrix");
    snprintf(p, sizeof p, "%s/old.ckpt", dir);
    expect_refused(maps, 2, p, "pickle", NULL);
}

/* On an MoE U-Net a LoRA on a dense path modifies every expert. */
static void test_moe(void)
{
    md_weights *map = md_weights_new("unet");
    const char *names[] = {
        "b.attn1.to_q.gate.weight",           "b.attn1.to_q.experts.0.weight",
        "b.attn1.to_q.experts.1.weight",      "b.attn1.to_q.experts.2.weight",
        "b.ff.gate.weight",                   "b.ff.experts.0.net.0.proj.weight",
        "b.ff.experts.0.net.2.weight",        "b.ff.experts.1.net.0.proj.weight",
        "b.ff.experts.1.net.2.weight"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        int ff2 = strstr(names[i], "net.2") != NULL, proj = strstr(names[i], "net.0") != NULL;
        md_tensor t = {.dtype = MD_F32, .ndim = 2,
                       .shape = {proj ? 16 : ff2 ? 8 : 8, ff2 ? 8 : 8}, .data = ones};
        md_weights_add(map, names[i], &t, "model", NULL);
    }
    char p[512];
    snprintf(p, sizeof p, "%s/moe.safetensors", dir);
    static const char *const keys[] = {
        "lora_unet_b_attn1_to_q.lora_down.weight", "lora_unet_b_attn1_to_q.lora_up.weight",
        "lora_unet_b_ff_net_2.lora_down.weight",   "lora_unet_b_ff_net_2.lora_up.weight"};
    write_lora(p, 1, 0, keys, 4);
    md_lora_file *f = open_ok(p);
    md_lora_binding b = {0};
    md_error err = {0};
    md_weights *maps[1] = {map};
    CHECK(f && md_lora_bind_maps(&b, maps, 1, NULL, f, 1.0f, 0, &err) == MD_OK, "%s", err.msg);
    CHECK(b.count == 5, "%d targets, want 3 linear experts and 2 ff experts", b.count);
    const char *want[] = {"b.attn1.to_q.experts.0.weight", "b.attn1.to_q.experts.2.weight",
                          "b.ff.experts.0.net.2.weight", "b.ff.experts.1.net.2.weight"};
    for (size_t i = 0; i < sizeof want / sizeof *want; i++)
        CHECK(md_lora_bound_weight(&b, want[i]) != NULL, "%s not modified", want[i]);
    CHECK(!md_lora_bound_weight(&b, "b.attn1.to_q.gate.weight") &&
              !md_lora_bound_weight(&b, "b.ff.experts.0.net.0.proj.weight"),
          "a gate or another projection was modified");
    md_lora_binding_clear(&b);
    md_lora_file_free(f);
    md_weights_free(map);
}

int main(void)
{
    if (!md_test_make_temp_dir(dir, sizeof dir, "md-lora-"))
        return 2;
    md_weights *maps[2];
    make_maps(maps);
    test_layouts(maps);
    test_refusals(maps);
    test_moe();
    md_weights_free(maps[0]);
    md_weights_free(maps[1]);
    md_test_remove_tree(dir);
    return md_test_finish("test_lora_file");
}
