/* AutoencoderKL against the reference tensors of tiny-sd-dense (f32 files)
 * and tiny-sd-moe (f16 files): vae.decode.output from vae.decode.latent /
 * scaling_factor, vae.encode.mean / logvar from vae.encode.image; the same
 * records from the f16 single-file copy of tiny-sd-dense (LDM names renamed
 * by models/ldm_names.h, attention as 1x1 convs). Also:
 * batches equal single images, repeated calls are identical and leave the
 * arena where it was, pre-0.14 attention names load to the same model, a
 * decoder-only checkpoint decodes and refuses to encode, bad sizes and a
 * missing weight fail with messages naming the problem, and a 3-level VAE
 * on a non-square image runs (the 2-level references cannot show how the
 * stages chain across more levels). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config_json.h"
#include "io/safetensors.h"
#include "io/weights.h"
#include "models/ldm_names.h"
#include "test_support.h"
#include "vae/vae.h"

static void report(const char *kase, const char *name, double err, double tol)
{
    int ok = err <= tol;
    printf("  %-14s %-20s max_rel_err %.3e  tol %.0e  %s\n", kase, name, err, tol,
           ok ? "PASS" : "FAIL");
    CHECK(ok, "%s %s: error %.3e over %.0e", kase, name, err, tol);
}

/* A copy of 4-dim F32 record `name` (caller frees) and its dims; NULL if
 * absent. */
static float *golden(const md_safetensors *g, const char *name, int64_t dims[4])
{
    md_tensor desc;
    float *v = md_test_golden_f32(g, name, &desc);
    if (v && !CHECK(desc.ndim == 4, "golden record %s is not 4-dim", name)) {
        free(v);
        return NULL;
    }
    for (int i = 0; v && i < 4; i++)
        dims[i] = desc.shape[i];
    return v;
}

static size_t numel4(const int64_t d[4])
{
    return (size_t)(d[0] * d[1] * d[2] * d[3]);
}

typedef struct vae_case {
    md_vae_config cfg;
    md_safetensors *st;
    md_weights *w;
} vae_case;

static int open_case(const char *dir, vae_case *c)
{
    char path[2048];
    md_error err = {0};
    cJSON *j = NULL;
    memset(c, 0, sizeof *c);
    snprintf(path, sizeof path, "%s/vae/config.json", dir);
    md_status st = md_json_read_file(path, &j, &err);
    if (st == MD_OK)
        st = md_vae_config_from_json(j, path, &c->cfg, &err);
    cJSON_Delete(j);
    snprintf(path, sizeof path, "%s/vae/diffusion_pytorch_model.safetensors", dir);
    if (st == MD_OK)
        st = md_safetensors_open(path, &c->st, &err);
    if (st == MD_OK) {
        c->w = md_weights_new("vae");
        st = c->w ? md_weights_add_file(c->w, c->st, &err) : MD_ERR_NOMEM;
    }
    CHECK(st == MD_OK, "opening %s: %s", dir, err.msg);
    return st == MD_OK;
}

static void close_case(vae_case *c)
{
    md_weights_free(c->w);
    md_safetensors_close(c->st);
}

/* Decode of the reference latent (batch 1). NULL on failure. */
static float *decode_ref(md_vae *v, md_backend *be, const md_vae_config *cfg,
                         const md_safetensors *g, size_t *nout)
{
    int64_t lt[4];
    float *z = golden(g, "vae.decode.latent", lt);
    if (!z)
        return NULL;
    int h = (int)lt[2], w = (int)lt[3], f = md_vae_factor(v);
    size_t nz = numel4(lt);
    for (size_t i = 0; i < nz; i++)
        z[i] /= cfg->scaling_factor;
    *nout = (size_t)cfg->out_channels * (size_t)(h * f) * (size_t)(w * f);
    float *img = malloc(*nout * sizeof *img);
    md_error err = {0};
    md_status st = md_vae_decode(v, be, z, 1, h, w, img, &err);
    CHECK(st == MD_OK, "decode: %s", err.msg);
    free(z);
    if (st != MD_OK) {
        free(img);
        return NULL;
    }
    return img;
}

static void check_decode(const char *kase, md_vae *v, const md_vae_config *cfg,
                         const md_safetensors *g, md_backend *be)
{
    int64_t ot[4];
    float *want = golden(g, "vae.decode.output", ot);
    size_t mark = be->arena_mark(be);
    size_t n = 0;
    float *got = decode_ref(v, be, cfg, g, &n);
    if (want && got) {
        CHECK(n == numel4(ot), "decode output size %zu", n);
        report(kase, "vae.decode.output", md_test_rel_err(got, want, n), 1e-4);
        /* A second call reuses the arena and must give the same bits. */
        float *again = decode_ref(v, be, cfg, g, &n);
        CHECK(again && !memcmp(again, got, n * sizeof *got), "%s: repeated decode differs", kase);
        CHECK(be->arena_mark(be) == mark, "%s: decode left the arena at %zu (was %zu)", kase,
              be->arena_mark(be), mark);
        free(again);
    }
    free(want);
    free(got);
}

static void check_encode(const char *kase, md_vae *v, md_backend *be, const md_vae_config *cfg,
                         const md_safetensors *g)
{
    int64_t it[4], mt[4], lt[4];
    float *img = golden(g, "vae.encode.image", it);
    float *want_m = golden(g, "vae.encode.mean", mt);
    float *want_l = golden(g, "vae.encode.logvar", lt);
    if (img && want_m && want_l) {
        int H = (int)it[2], W = (int)it[3];
        size_t n = numel4(mt);
        CHECK(numel4(lt) == n, "golden logvar size");
        CHECK(n == (size_t)cfg->latent_channels * (size_t)(H / 2) * (size_t)(W / 2),
              "golden mean size");
        float *m = malloc(n * sizeof *m), *l = malloc(n * sizeof *l);
        md_error err = {0};
        md_status st = md_vae_encode(v, be, img, 1, H, W, m, l, &err);
        CHECK(st == MD_OK, "encode: %s", err.msg);
        if (st == MD_OK) {
            report(kase, "vae.encode.mean", md_test_rel_err(m, want_m, n), 1e-4);
            report(kase, "vae.encode.logvar", md_test_rel_err(l, want_l, n), 1e-4);
        }
        free(m);
        free(l);
    }
    free(img);
    free(want_m);
    free(want_l);
}

/* Batch 2 (the reference image and its negation) equals two single calls. */
static void check_batch(md_vae *v, md_backend *be, const md_vae_config *cfg,
                        const md_safetensors *g)
{
    int64_t it[4];
    float *img = golden(g, "vae.encode.image", it);
    if (!img)
        return;
    int H = (int)it[2], W = (int)it[3];
    size_t ni = numel4(it), nl = (size_t)cfg->latent_channels * (H / 2) * (W / 2);
    float *two = malloc(2 * ni * sizeof *two);
    memcpy(two, img, ni * sizeof *two);
    for (size_t i = 0; i < ni; i++)
        two[ni + i] = -img[i];
    float *m2 = malloc(2 * nl * sizeof *m2), *l2 = malloc(2 * nl * sizeof *l2);
    float *m1 = malloc(nl * sizeof *m1), *l1 = malloc(nl * sizeof *l1);
    md_error err = {0};
    CHECK(md_vae_encode(v, be, two, 2, H, W, m2, l2, &err) == MD_OK, "batch encode: %s", err.msg);
    CHECK(md_vae_encode(v, be, two + ni, 1, H, W, m1, l1, &err) == MD_OK, "encode: %s", err.msg);
    CHECK(!memcmp(m1, m2 + nl, nl * sizeof *m1) && !memcmp(l1, l2 + nl, nl * sizeof *l1),
          "second image of a batch encodes differently from the same image alone");

    /* Decode the two means as a batch and one at a time. */
    size_t no = (size_t)cfg->out_channels * H * W;
    float *o2 = malloc(2 * no * sizeof *o2), *o1 = malloc(no * sizeof *o1);
    CHECK(md_vae_decode(v, be, m2, 2, H / 2, W / 2, o2, &err) == MD_OK, "batch decode: %s",
          err.msg);
    CHECK(md_vae_decode(v, be, m2 + nl, 1, H / 2, W / 2, o1, &err) == MD_OK, "decode: %s", err.msg);
    CHECK(!memcmp(o1, o2 + no, no * sizeof *o1),
          "second latent of a batch decodes differently from the same latent alone");
    free(img);
    free(two);
    free(m2);
    free(l2);
    free(m1);
    free(l1);
    free(o2);
    free(o1);
}

/* Invalid calls fail with a message instead of computing garbage. */
static void check_errors(md_vae *v, md_backend *be)
{
    float buf[3 * 18 * 18] = {0}, out[4 * 9 * 9];
    md_error err = {0};
    md_status st = md_vae_encode(v, be, buf, 1, 18, 17, out, out, &err);
    CHECK(st == MD_ERR_INVALID && strstr(err.msg, "multiples of 2"), "odd width: %d %s", st,
          err.msg);
    st = md_vae_decode(v, be, buf, 0, 8, 8, out, &err);
    CHECK(st == MD_ERR_INVALID, "batch 0 decode: %d", st);
}

/* A copy of the weights with names containing from[k] renamed (to[k]) or,
 * when to[k] is NULL, names starting with from[k] left out. */
static md_weights *remap(const vae_case *c, const char *const *from, const char *const *to,
                         int nmap)
{
    md_weights *w = md_weights_new("vae");
    md_error err = {0};
    for (size_t i = 0; i < md_weights_count(c->w); i++) {
        const char *name = md_weights_name(c->w, i);
        char buf[256];
        snprintf(buf, sizeof buf, "%s", name);
        int drop = 0;
        for (int k = 0; k < nmap; k++) {
            const char *hit = strstr(name, from[k]);
            if (!hit || (!to[k] && hit != name))
                continue;
            if (!to[k]) {
                drop = 1;
                break;
            }
            snprintf(buf, sizeof buf, "%.*s%s%s", (int)(hit - name), name, to[k],
                     hit + strlen(from[k]));
        }
        if (drop)
            continue;
        md_status st = md_weights_add(w, buf, md_weights_find(c->w, name), "remapped", &err);
        CHECK(st == MD_OK, "remap: %s", err.msg);
    }
    return w;
}

static void check_variants(const vae_case *c, md_backend *be, const md_safetensors *g,
                           const float *ref, size_t nref)
{
    md_error err = {0};
    md_vae *v = NULL;

    /* Pre-0.14 attention names. */
    const char *from[] = {".to_q.", ".to_k.", ".to_v.", ".to_out.0."};
    const char *to[] = {".query.", ".key.", ".value.", ".proj_attn."};
    md_weights *w = remap(c, from, to, 4);
    md_status st = md_vae_load(&v, &c->cfg, w, be, &err);
    CHECK(st == MD_OK, "legacy attention names: %s", err.msg);
    if (st == MD_OK) {
        size_t n = 0;
        float *got = decode_ref(v, be, &c->cfg, g, &n);
        CHECK(got && n == nref && !memcmp(got, ref, n * sizeof *got),
              "legacy attention names decode differently");
        free(got);
    }
    md_vae_free(v);
    md_weights_free(w);

    /* Decoder only. */
    const char *enc[] = {"encoder.", "quant_conv."};
    const char *none[] = {NULL, NULL};
    w = remap(c, enc, none, 2);
    v = NULL;
    st = md_vae_load(&v, &c->cfg, w, be, &err);
    CHECK(st == MD_OK, "decoder-only weights: %s", err.msg);
    if (st == MD_OK) {
        size_t n = 0;
        float *got = decode_ref(v, be, &c->cfg, g, &n);
        CHECK(got && n == nref && !memcmp(got, ref, n * sizeof *got),
              "decoder-only weights decode differently");
        free(got);
        float img[3 * 16 * 16] = {0}, m[4 * 8 * 8], l[4 * 8 * 8];
        st = md_vae_encode(v, be, img, 1, 16, 16, m, l, &err);
        CHECK(st == MD_ERR_UNSUPPORTED, "encode without an encoder: %d", st);
    }
    md_vae_free(v);
    md_weights_free(w);

    /* A missing weight is named. */
    const char *gone[] = {"decoder.up_blocks.1.resnets.0.conv_shortcut.weight"};
    w = remap(c, gone, none, 1);
    v = NULL;
    st = md_vae_load(&v, &c->cfg, w, be, &err);
    CHECK(st != MD_OK && v == NULL && strstr(err.msg, gone[0]),
          "missing weight: status %d, message \"%s\"", st, err.msg);
    md_weights_free(w);

    /* Channels not divisible by the group count. */
    md_vae_config bad = c->cfg;
    bad.norm_groups = 5;
    st = md_vae_load(&v, &bad, c->w, be, &err);
    CHECK(st == MD_ERR_INVALID && strstr(err.msg, "norm_num_groups"), "bad groups: %d %s", st,
          err.msg);
}

static void run_case(const char *root, const char *name, md_backend *be, int want_f16)
{
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/%s", root, name);
    vae_case c;
    if (!open_case(dir, &c))
        return;
    const md_tensor *probe = md_weights_find(c.w, "decoder.conv_in.weight");
    CHECK(probe && probe->dtype == (want_f16 ? MD_F16 : MD_F32), "%s: weight dtype", name);

    char gpath[1200];
    snprintf(gpath, sizeof gpath, "%s/golden.safetensors", dir);
    md_safetensors *g = md_test_open_safetensors(gpath);
    md_error err = {0};
    md_vae *v = NULL;
    md_status st = g ? MD_OK : MD_ERR_IO;
    if (st == MD_OK) {
        st = md_vae_load(&v, &c.cfg, c.w, be, &err);
        CHECK(st == MD_OK, "%s: load: %s", name, err.msg);
    }
    if (st == MD_OK) {
        CHECK(md_vae_factor(v) == 2, "factor %d", md_vae_factor(v));
        CHECK(md_vae_config_of(v)->latent_channels == 4, "config_of");
        check_decode(name, v, &c.cfg, g, be);
        check_encode(name, v, be, &c.cfg, g);
        check_batch(v, be, &c.cfg, g);
        check_errors(v, be);
        size_t n = 0;
        float *ref = decode_ref(v, be, &c.cfg, g, &n);
        if (ref)
            check_variants(&c, be, g, ref, n);
        free(ref);
    }
    md_vae_free(v);
    md_safetensors_close(g);
    close_case(&c);
}

/* The single-file checkpoint reproduces tiny-sd-dense's records. */
static void run_singlefile(const char *root, md_backend *be)
{
    char dir[1024], path[1200];
    snprintf(dir, sizeof dir, "%s/tiny-sd-dense", root);
    vae_case c;
    if (!open_case(dir, &c)) /* for the config */
        return;
    md_safetensors *st = NULL;
    md_weights *w = md_weights_new("vae");
    md_error err = {0};
    md_vae *v = NULL;
    md_safetensors *g = NULL;
    snprintf(path, sizeof path, "%s/tiny-sd-dense-singlefile/model.safetensors", root);
    md_status s = md_safetensors_open(path, &st, &err);
    if (s == MD_OK)
        s = md_ldm_rename_vae(st, &c.cfg, w, &err);
    if (s == MD_OK) {
        const md_tensor *q = md_weights_find(w, "decoder.mid_block.attentions.0.to_q.weight");
        CHECK(q && q->dtype == MD_F16, "single file: attention weight missing or not F16");
        s = md_vae_load(&v, &c.cfg, w, be, &err);
    }
    CHECK(s == MD_OK, "single file: %s", err.msg);
    snprintf(path, sizeof path, "%s/golden.safetensors", dir);
    if (s == MD_OK && (g = md_test_open_safetensors(path)) != NULL) {
        check_decode("dense-1file", v, &c.cfg, g, be);
        check_encode("dense-1file", v, be, &c.cfg, g);
    }
    md_safetensors_close(g);
    md_vae_free(v);
    md_weights_free(w);
    md_safetensors_close(st);
    close_case(&c);
}

/* ---- a 3-level VAE with generated weights ---- */

typedef struct gen_weights {
    md_weights *w;
    float *store[256];
    int n;
    unsigned rng;
} gen_weights;

static void gen(gen_weights *gw, const char *name, int ndim, int64_t a, int64_t b, int64_t k)
{
    md_tensor t = {.dtype = MD_F32, .ndim = ndim, .shape = {a, b, k, k}};
    size_t n = (size_t)md_tensor_numel(&t);
    float *d = malloc(n * sizeof *d);
    float scale = ndim == 1 ? 0.1f : 1.0f / sqrtf((float)(b * k * k));
    for (size_t i = 0; i < n; i++) {
        gw->rng = gw->rng * 1664525u + 1013904223u;
        d[i] = scale * ((float)(gw->rng >> 8) / 16777216.0f - 0.5f) * 2.0f;
        if (ndim == 1 && strstr(name, "norm") && strstr(name, ".weight"))
            d[i] += 1.0f;
    }
    t.data = d;
    gw->store[gw->n++] = d;
    md_error err = {0};
    CHECK(md_weights_add(gw->w, name, &t, "generated", &err) == MD_OK, "%s", err.msg);
}

static void gen_conv(gen_weights *gw, const char *p, int64_t cout, int64_t cin, int64_t k)
{
    char n[320];
    snprintf(n, sizeof n, "%s.weight", p);
    gen(gw, n, 4, cout, cin, k);
    snprintf(n, sizeof n, "%s.bias", p);
    gen(gw, n, 1, cout, 1, 1);
}

static void gen_norm(gen_weights *gw, const char *p, int64_t c)
{
    char n[320];
    snprintf(n, sizeof n, "%s.weight", p);
    gen(gw, n, 1, c, 1, 1);
    snprintf(n, sizeof n, "%s.bias", p);
    gen(gw, n, 1, c, 1, 1);
}

static void gen_resnet(gen_weights *gw, const char *p, int cin, int cout)
{
    char n[256];
    snprintf(n, sizeof n, "%s.norm1", p);
    gen_norm(gw, n, cin);
    snprintf(n, sizeof n, "%s.conv1", p);
    gen_conv(gw, n, cout, cin, 3);
    snprintf(n, sizeof n, "%s.norm2", p);
    gen_norm(gw, n, cout);
    snprintf(n, sizeof n, "%s.conv2", p);
    gen_conv(gw, n, cout, cout, 3);
    if (cin != cout) {
        snprintf(n, sizeof n, "%s.conv_shortcut", p);
        gen_conv(gw, n, cout, cin, 1);
    }
}

static void gen_mid(gen_weights *gw, const char *side, int c)
{
    char n[256];
    snprintf(n, sizeof n, "%s.mid_block.resnets.0", side);
    gen_resnet(gw, n, c, c);
    snprintf(n, sizeof n, "%s.mid_block.resnets.1", side);
    gen_resnet(gw, n, c, c);
    const char *lin[] = {"to_q", "to_k", "to_v", "to_out.0"};
    for (int i = 0; i < 4; i++) {
        snprintf(n, sizeof n, "%s.mid_block.attentions.0.%s.weight", side, lin[i]);
        gen(gw, n, 2, c, c, 1);
        snprintf(n, sizeof n, "%s.mid_block.attentions.0.%s.bias", side, lin[i]);
        gen(gw, n, 1, c, 1, 1);
    }
    snprintf(n, sizeof n, "%s.mid_block.attentions.0.group_norm", side);
    gen_norm(gw, n, c);
}

static void check_three_levels(md_backend *be)
{
    md_vae_config cfg = {.in_channels = 3, .out_channels = 3, .latent_channels = 4, .levels = 3,
                         .block_out_channels = {8, 16, 24}, .layers_per_block = 2,
                         .norm_groups = 4, .norm_eps = 1e-6f, .scaling_factor = 0.2f};
    gen_weights gw = {.w = md_weights_new("vae3"), .rng = 12345u};
    char n[256];
    const int *boc = cfg.block_out_channels;
    gen_conv(&gw, "encoder.conv_in", boc[0], 3, 3);
    for (int i = 0; i < 3; i++) {
        for (int j = 0; j < 2; j++) {
            snprintf(n, sizeof n, "encoder.down_blocks.%d.resnets.%d", i, j);
            gen_resnet(&gw, n, j ? boc[i] : boc[i ? i - 1 : 0], boc[i]);
        }
        if (i < 2) {
            snprintf(n, sizeof n, "encoder.down_blocks.%d.downsamplers.0.conv", i);
            gen_conv(&gw, n, boc[i], boc[i], 3);
        }
    }
    gen_mid(&gw, "encoder", boc[2]);
    gen_norm(&gw, "encoder.conv_norm_out", boc[2]);
    gen_conv(&gw, "encoder.conv_out", 8, boc[2], 3);
    gen_conv(&gw, "quant_conv", 8, 8, 1);
    gen_conv(&gw, "post_quant_conv", 4, 4, 1);
    gen_conv(&gw, "decoder.conv_in", boc[2], 4, 3);
    gen_mid(&gw, "decoder", boc[2]);
    for (int i = 0; i < 3; i++) {
        int cout = boc[2 - i], prev = i ? boc[3 - i] : boc[2];
        for (int j = 0; j < 3; j++) {
            snprintf(n, sizeof n, "decoder.up_blocks.%d.resnets.%d", i, j);
            gen_resnet(&gw, n, j ? cout : prev, cout);
        }
        if (i < 2) {
            snprintf(n, sizeof n, "decoder.up_blocks.%d.upsamplers.0.conv", i);
            gen_conv(&gw, n, cout, cout, 3);
        }
    }
    gen_norm(&gw, "decoder.conv_norm_out", boc[0]);
    gen_conv(&gw, "decoder.conv_out", 3, boc[0], 3);

    md_vae *v = NULL;
    md_error err = {0};
    md_status st = md_vae_load(&v, &cfg, gw.w, be, &err);
    CHECK(st == MD_OK, "3-level load: %s", err.msg);
    if (st == MD_OK) {
        CHECK(md_vae_factor(v) == 4, "3-level factor %d", md_vae_factor(v));
        enum { H = 24, W = 40 };
        static float img[3 * H * W], m[4 * (H / 4) * (W / 4)], l[4 * (H / 4) * (W / 4)];
        static float out[3 * H * W];
        for (int i = 0; i < 3 * H * W; i++)
            img[i] = sinf(0.37f * (float)i);
        st = md_vae_encode(v, be, img, 1, H, W, m, l, &err);
        CHECK(st == MD_OK, "3-level encode: %s", err.msg);
        st = md_vae_decode(v, be, m, 1, H / 4, W / 4, out, &err);
        CHECK(st == MD_OK, "3-level decode: %s", err.msg);
        int finite = 1;
        double mag = 0;
        for (int i = 0; i < 3 * H * W; i++) {
            finite &= isfinite(out[i]);
            mag = fmax(mag, fabs(out[i]));
        }
        CHECK(finite && mag > 1e-3, "3-level decode output not finite or all zero (%g)", mag);
        printf("  3-level VAE %dx%d: encode + decode ran, max |out| %.3f\n", H, W, mag);
    }
    md_vae_free(v);
    md_weights_free(gw.w);
    for (int i = 0; i < gw.n; i++)
        free(gw.store[i]);
}

int main(void)
{
    const char *root = md_test_golden_dir_required();
    if (!root)
        return 1;
    md_backend *be = md_test_cpu_backend(2);
    if (!be)
        return 1;
    run_case(root, "tiny-sd-dense", be, 0);
    run_case(root, "tiny-sd-moe", be, 1);
    run_singlefile(root, be);
    check_three_levels(be);
    md_backend_destroy(be);
    return md_test_finish("test_vae_golden");
}
