#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../host/a1111_hashes.h"
#include "../host/image_read.h"
#include "../host/image_write.h"
#include "../host/infotext.h"
#include "../host/output_file.h"
#include "cli.h"
#include "engine.h"
#include "lora_options.h"
#include "parse_number.h"

/* Seeds stay exact as JSON numbers (--json, batch manifests). */
#define MD_SEED_MAX 9007199254740991LL

/* One screen (80x24). The man page has the rest. */
static void print_help(void)
{
    /* the default model is named when its path keeps the line in 80 columns */
    char model_line[160];
    int n = snprintf(model_line, sizeof model_line,
                     " -m, --model PATH      diffusers folder or .safetensors (default %s)",
                     MD_DEFAULT_MODEL);
    if (n > 80)
        snprintf(model_line, sizeof model_line,
                 " -m, --model PATH      diffusers folder or .safetensors file");
    printf("usage: moe-diffuse [options] -p PROMPT   | info MODEL | devices | merge CFG OUT\n"
           "       moe-diffuse batch --prompts FILE | serve [--listen ADDR:PORT] (web API)\n"
           "%s\n"
           " -p, --prompt TEXT     emphasis (word:1.3) (word) [word]; long prompts chunked\n"
           " -n, --negative-prompt TEXT  --prompt-file F --negative-prompt-file F (-=stdin)\n"
           " -o, --output FILE     .png .jpg .bmp; %%03d = image number (default out.png)\n"
           "     --steps N (20)   --cfg-scale F (the model's)   --seed N (-1 = random)\n"
           "     --sampler NAME   ",
           model_line);
    for (int k = 0; k < md_cli_sampler_count(); k++)
        printf("%s%s", k ? " " : "", md_cli_sampler_name(k));
    printf("\n"
           "                      (default dpmpp_2m_karras; A1111 names work too)\n"
           " -W, -H N              width, height: multiples of 8 (native)  --vae-tile N|off\n"
           " -i, --init-img FILE   img2img from a PNG or JPEG; --strength F (0.75)\n"
           "     --mask FILE       inpaint where the mask (PNG/JPEG) is white\n"
           " -b, --batch-count N   N images, seeds incrementing    --clip-skip N\n"
           "     --from-png FILE   re-create an image from its parameters; flags override\n"
           "     --moe-stats FILE  expert load, heatmap, routes   --moe-schedule S\n"
           "     --moe-top-k K --moe-routing R --moe-capacity F --moe-skip T --moe-routes F\n"
           "     --original-size WxH --target-size WxH --crop TOPxLEFT (SDXL conditioning)\n"
           " -t, --threads N  --backend cpu|vulkan|auto  --device N (see `devices`)\n"
           "     --profile (GPU time per op)  --plain-prompt  --json  -v, --verbose  -q\n"
           "     --lora FILE[:W] (repeatable)  --lora-dir DIR (for <lora:NAME:W>; man page)\n"
           "exit: 0 ok, 1 failed, 2 usage, 3 model, 4 file I/O, 130 interrupted\n"
           "e.g. moe-diffuse -m sd15 -p \"a (red:1.2) fox in snow\" --seed 42 -o fox.png\n"
           "     moe-diffuse -m sd15 --from-png fox.png --steps 40 -o fox40.png\n");
}

static int parse_int(const char *flag, const char *s, long lo, long hi, long *out)
{
    return md_cli_parse_long("moe-diffuse", flag, s, lo, hi, out);
}

static int parse_float(const char *flag, const char *s, double lo, double hi, float *out)
{
    double v;
    if (!md_cli_parse_double("moe-diffuse", flag, s, lo, hi, &v))
        return 0;
    *out = (float)v;
    return 1;
}

/* A prompt from a file or stdin ("-"); one trailing newline is dropped. */
static int read_prompt_file(const char *flag, const char *path, char **out)
{
    FILE *f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
    if (!f) {
        fprintf(stderr, "moe-diffuse: %s %s: cannot open: %s\n", flag, path, strerror(errno));
        return MD_EXIT_IO;
    }
    char *buf = malloc(MDIFF_PROMPT_MAX + 2);
    size_t n = buf ? fread(buf, 1, MDIFF_PROMPT_MAX + 1, f) : 0;
    int failed = !buf || ferror(f);
    if (f != stdin)
        fclose(f);
    if (failed) {
        fprintf(stderr, "moe-diffuse: %s %s: cannot read\n", flag, path);
        free(buf);
        return MD_EXIT_IO;
    }
    if (n > MDIFF_PROMPT_MAX) {
        fprintf(stderr, "moe-diffuse: %s %s: the prompt is longer than %d bytes\n", flag, path,
                MDIFF_PROMPT_MAX);
        free(buf);
        return MD_EXIT_USAGE;
    }
    if (memchr(buf, '\0', n)) {
        fprintf(stderr, "moe-diffuse: %s %s: holds a NUL byte (not a text file?)\n", flag, path);
        free(buf);
        return MD_EXIT_USAGE;
    }
    if (n > 0 && buf[n - 1] == '\n')
        n--;
    if (n > 0 && buf[n - 1] == '\r')
        n--;
    buf[n] = '\0';
    free(*out);
    *out = buf;
    return MD_EXIT_OK;
}

/* Marks a request field as given on the command line. */
static void mark_given(md_cli_options *o, const char *name)
{
    int n;
    const mdh_field *fields = mdh_request_fields(&n);
    o->given[mdh_request_field(name) - fields] = 1;
}

static int set_text(md_cli_options *o, const char *name, const char *value)
{
    if (mdh_request_set_string(&o->req, mdh_request_field(name), value) != MDIFF_OK) {
        fprintf(stderr, "moe-diffuse: out of memory\n");
        return MD_EXIT_FAILURE;
    }
    mark_given(o, name);
    return MD_EXIT_OK;
}

/* --moe-X: the request field moe_X (same name with '_'), set as its text
 * form; the ranges are the library's check (check_combination), so the
 * message names the flag and the valid values. */
static int set_moe_field(md_cli_options *o, const char *flag, const char *value)
{
    char name[32];
    snprintf(name, sizeof name, "%s", flag);
    for (char *q = name; *q; q++)
        *q = *q == '-' ? '_' : *q;
    const mdh_field *f = mdh_request_field(name);
    mdh_error err = {0};
    if (!f || mdh_request_set_text(&o->req, f, value, &err) != MDIFF_OK) {
        fprintf(stderr, "moe-diffuse: --%s: %s\n", flag, f ? err.msg : "unknown field");
        return MD_EXIT_USAGE;
    }
    mark_given(o, name);
    return MD_EXIT_OK;
}

/* A LoRA found by name may not be the file the image was made with: the
 * hashes the PNG records say (a warning: the user may mean another one). */
static void warn_lora_hashes(const md_cli_options *o, const char *recorded)
{
    const mdiff_api *api = md_cli_api();
    char *now = NULL;
    mdh_error err = {0};
    if (!api || mdh_lora_hashes(api, NULL, &o->req.p, &now, &err) != MDIFF_OK)
        return; /* a LoRA that cannot be found fails with its own message */
    if (!now || strcmp(now, recorded) != 0)
        fprintf(stderr,
                "moe-diffuse: warning: --from-png %s: the image was made with LoRAs %s; the "
                "ones found now are %s\n",
                o->from_png, recorded, now ? now : "none");
    free(now);
}

/* Settings from a PNG's parameters for whatever the command line left open. */
static int apply_from_png(md_cli_options *o)
{
    mdh_error err = {0};
    char *text = NULL;
    int st = md_png_read_text(o->from_png, "parameters", &text, &err);
    mdh_infotext t;
    if (st == MDIFF_OK) {
        st = mdh_infotext_parse(text, o->from_png, &t, &err);
        free(text);
    }
    if (st != MDIFF_OK) {
        fprintf(stderr, "moe-diffuse: --from-png %s\n", err.msg);
        return st == MDIFF_ERR_UNSUPPORTED ? MD_EXIT_USAGE : MD_EXIT_IO;
    }
    int rc = MD_EXIT_OK, n;
    const mdh_field *fields = mdh_request_fields(&n);
    for (int i = 0; i < n && rc == MD_EXIT_OK; i++) {
        const mdh_field *f = &fields[i];
        if (!t.found[i] || o->given[i])
            continue;
        if (f->type == MDH_FIELD_TEXT || f->type == MDH_FIELD_NAME) {
            const char *v = *(const char *const *)((const char *)&t.req.p + f->offset);
            if (mdh_request_set_string(&o->req, f, v) != MDIFF_OK)
                rc = MD_EXIT_FAILURE;
        } else if (f->type == MDH_FIELD_PATH && f->infotext) {
            /* a path the text records (the routes file): image paths are given anew */
            if (mdh_request_set_string(&o->req, f, mdh_request_string(&t.req, f)) != MDIFF_OK)
                rc = MD_EXIT_FAILURE;
        } else if (f->type == MDH_FIELD_LORAS) { /* a plain-syntax text's "LoRAs" */
            for (int k = 0; k < t.req.p.lora_count && rc == MD_EXIT_OK; k++)
                if (mdh_request_add_lora(&o->req, t.req.loras[k].path, t.req.loras[k].weight) !=
                    MDIFF_OK)
                    rc = MD_EXIT_FAILURE;
        } else if (f->type != MDH_FIELD_PATH) {
            mdh_request_copy_value(&o->req, &t.req, f);
            if (f->type == MDH_FIELD_SEED)
                o->random_seed = 0;
        }
    }
    if (t.model_hash)
        snprintf(o->png_model_hash, sizeof o->png_model_hash, "%.15s", t.model_hash);
    if (rc == MD_EXIT_OK && t.lora_hashes && !o->quiet)
        warn_lora_hashes(o, t.lora_hashes);
    int strength_found = t.found[mdh_request_field("strength") - fields];
    if (rc == MD_EXIT_OK && strength_found && !o->req.init_image) {
        fprintf(stderr,
                "moe-diffuse: --from-png %s: the image was made from an init image "
                "(denoising strength %g): give it with --init-img%s\n",
                o->from_png, (double)t.req.p.strength, t.mask_blur >= 0 ? " and --mask" : "");
        rc = MD_EXIT_USAGE;
    } else if (rc == MD_EXIT_OK && t.mask_blur >= 0 && !o->req.mask) {
        fprintf(stderr,
                "moe-diffuse: --from-png %s: the image was inpainted: give the mask with "
                "--mask\n",
                o->from_png);
        rc = MD_EXIT_USAGE;
    }
    if (rc == MD_EXIT_FAILURE)
        fprintf(stderr, "moe-diffuse: out of memory\n");
    mdh_infotext_free(&t);
    return rc;
}

void md_cli_options_free(md_cli_options *o)
{
    mdh_request_clear(&o->req);
}

static int check_combination(md_cli_options *o)
{
    const mdiff_gen_params *p = &o->req.p;
    if (!p->prompt) {
        fprintf(stderr, "moe-diffuse: a prompt is required: -p TEXT, --prompt-file F or "
                        "--from-png F (see --help)\n");
        return MD_EXIT_USAGE;
    }
    for (int k = 0; k < 2; k++) {
        int v = k ? p->height : p->width;
        if (v && v % 8) {
            fprintf(stderr, "moe-diffuse: %s must be a multiple of 8, got %d\n",
                    k ? "--height" : "--width", v);
            return MD_EXIT_USAGE;
        }
    }
    if (o->req.mask && !o->req.init_image) {
        fprintf(stderr, "moe-diffuse: --mask needs --init-img (the image to inpaint)\n");
        return MD_EXIT_USAGE;
    }
    if (o->given[mdh_request_field("strength") - mdh_request_fields(&(int){0})] &&
        !o->req.init_image) {
        fprintf(stderr, "moe-diffuse: --strength needs --init-img\n");
        return MD_EXIT_USAGE;
    }
    if (!o->output_given)
        o->output = o->batch_count > 1 ? "out_%03d.png" : "out.png";
    if (!md_cli_output_pattern_ok(o->output))
        return MD_EXIT_USAGE;
    if (o->moe_stats && (!md_cli_output_pattern_ok(o->moe_stats) ||
                         (o->batch_count > 1 && !md_cli_output_pattern_numbered(o->moe_stats)))) {
        fprintf(stderr, "moe-diffuse: --moe-stats '%s' needs one %%d for the image number with "
                        "--batch-count\n", o->moe_stats);
        return MD_EXIT_USAGE;
    }
    /* "%%d" is a literal "%d": every image would go to that one file. */
    if (o->batch_count > 1 && !md_cli_output_pattern_numbered(o->output)) {
        fprintf(stderr,
                "moe-diffuse: --batch-count %d writes %d images: -o needs a %%d for the "
                "image number (e.g. out_%%03d.png)\n",
                o->batch_count, o->batch_count);
        return MD_EXIT_USAGE;
    }
    char probe[4096];
    if (!md_cli_output_name(o->output, 1, probe, sizeof probe)) {
        fprintf(stderr, "moe-diffuse: -o '%s' is too long\n", o->output);
        return MD_EXIT_USAGE;
    }
    if (md_image_format_of(probe) == MD_IMAGE_UNKNOWN) {
        fprintf(stderr, "moe-diffuse: %s: unknown image type (use .png, .jpg, .jpeg or .bmp)\n",
                probe);
        return MD_EXIT_USAGE;
    }
    if (o->moe_stats && md_cli_stats_collide(o->moe_stats, o->output, o->batch_count))
        return MD_EXIT_USAGE;
    /* Every output can be written: found now, not after the last step. */
    for (int i = 1; i <= o->batch_count; i++) {
        char name[4096];
        mdh_error err = {0};
        md_cli_output_name(o->output, i, name, sizeof name);
        if (mdh_output_check(name, &err) != MDIFF_OK) {
            fprintf(stderr, "moe-diffuse: %s\n", err.msg);
            return err.code == MDIFF_ERR_INVALID ? MD_EXIT_USAGE : MD_EXIT_IO;
        }
    }
    /* The library's own check of what needs no model. */
    const mdiff_api *api = md_cli_api();
    mdiff_gen_params checked = {.struct_size = sizeof checked};
    char msg[512];
    if (!api)
        return MD_EXIT_FAILURE;
    int st = api->resolve_params(NULL, p, &checked, msg, sizeof msg);
    if (st != MDIFF_OK) {
        fprintf(stderr, "moe-diffuse: %s\n", msg);
        return md_cli_exit_code(st); /* a LoRA file missing or unreadable: file I/O */
    }
    return MD_EXIT_OK;
}

int md_cli_parse(int argc, char **argv, md_cli_options *o)
{
    enum {
        OPT_STEPS = 256,
        OPT_CFG,
        OPT_SAMPLER,
        OPT_SEED,
        OPT_CLIP_SKIP,
        OPT_STRENGTH,
        OPT_MASK,
        OPT_BACKEND,
        OPT_JSON,
        OPT_FROM_PNG,
        OPT_PROMPT_FILE,
        OPT_NEG_FILE,
        OPT_MOE_STATS,
        OPT_ORIGINAL_SIZE,
        OPT_CROP,
        OPT_TARGET_SIZE,
        OPT_DEVICE,
        OPT_PROFILE,
        OPT_PLAIN_PROMPT,
        OPT_LORA,
        OPT_VAE_TILE,
        OPT_LORA_DIR,
        OPT_LORA_UNMATCHED,
        OPT_MOE_FIELD /* --moe-*: one request field each (moe_flags) */
    };
    static const struct option longopts[] = {
        {"model", required_argument, NULL, 'm'},
        {"prompt", required_argument, NULL, 'p'},
        {"negative-prompt", required_argument, NULL, 'n'},
        {"prompt-file", required_argument, NULL, OPT_PROMPT_FILE},
        {"negative-prompt-file", required_argument, NULL, OPT_NEG_FILE},
        {"output", required_argument, NULL, 'o'},
        {"steps", required_argument, NULL, OPT_STEPS},
        {"cfg-scale", required_argument, NULL, OPT_CFG},
        {"sampler", required_argument, NULL, OPT_SAMPLER},
        {"seed", required_argument, NULL, OPT_SEED},
        {"width", required_argument, NULL, 'W'},
        {"height", required_argument, NULL, 'H'},
        {"clip-skip", required_argument, NULL, OPT_CLIP_SKIP},
        {"init-img", required_argument, NULL, 'i'},
        {"strength", required_argument, NULL, OPT_STRENGTH},
        {"mask", required_argument, NULL, OPT_MASK},
        {"batch-count", required_argument, NULL, 'b'},
        {"threads", required_argument, NULL, 't'},
        {"backend", required_argument, NULL, OPT_BACKEND},
        {"json", no_argument, NULL, OPT_JSON},
        {"from-png", required_argument, NULL, OPT_FROM_PNG},
        {"moe-stats", required_argument, NULL, OPT_MOE_STATS},
        {"original-size", required_argument, NULL, OPT_ORIGINAL_SIZE},
        {"crop", required_argument, NULL, OPT_CROP},
        {"target-size", required_argument, NULL, OPT_TARGET_SIZE},
        {"device", required_argument, NULL, OPT_DEVICE},
        {"profile", no_argument, NULL, OPT_PROFILE},
        {"plain-prompt", no_argument, NULL, OPT_PLAIN_PROMPT},
        {"lora", required_argument, NULL, OPT_LORA},
        {"vae-tile", required_argument, NULL, OPT_VAE_TILE},
        {"lora-dir", required_argument, NULL, OPT_LORA_DIR},
        {"lora-allow-unmatched", no_argument, NULL, OPT_LORA_UNMATCHED},
        {"moe-top-k", required_argument, NULL, OPT_MOE_FIELD},
        {"moe-routing", required_argument, NULL, OPT_MOE_FIELD},
        {"moe-capacity", required_argument, NULL, OPT_MOE_FIELD},
        {"moe-skip", required_argument, NULL, OPT_MOE_FIELD},
        {"moe-schedule", required_argument, NULL, OPT_MOE_FIELD},
        {"moe-routes", required_argument, NULL, OPT_MOE_FIELD},
        {"max-expert-memory", required_argument, NULL, OPT_MOE_FIELD},
        {"verbose", no_argument, NULL, 'v'},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {0, 0, 0, 0}};
    memset(o, 0, sizeof *o);
    mdh_request_init(&o->req);
    o->req.p.prompt = NULL; /* required: -p, --prompt-file or --from-png */
    o->random_seed = 1;
    o->batch_count = 1;
    o->backend = "auto";
    o->device = -1;
    opterr = 0;
    optind = 1;
    int c, rc, stdin_used = 0, which = 0;
    long v;
    while ((c = getopt_long(argc, argv, ":m:p:n:o:W:H:i:b:t:vqhV", longopts, &which)) != -1) {
        switch (c) {
        case OPT_MOE_FIELD:
            if ((rc = set_moe_field(o, longopts[which].name, optarg)) != MD_EXIT_OK)
                return rc;
            break;
        case 'm': o->model = optarg; break;
        case 'p':
        case 'n':
            if ((rc = set_text(o, c == 'p' ? "prompt" : "negative_prompt", optarg)) != MD_EXIT_OK)
                return rc;
            break;
        case OPT_PROMPT_FILE:
        case OPT_NEG_FILE: {
            const char *flag = c == OPT_PROMPT_FILE ? "--prompt-file" : "--negative-prompt-file";
            if (!strcmp(optarg, "-") && stdin_used++) {
                fprintf(stderr, "moe-diffuse: only one prompt can come from stdin\n");
                return MD_EXIT_USAGE;
            }
            char *text = NULL;
            if ((rc = read_prompt_file(flag, optarg, &text)) != MD_EXIT_OK)
                return rc;
            rc = set_text(o, c == OPT_PROMPT_FILE ? "prompt" : "negative_prompt", text);
            free(text);
            if (rc != MD_EXIT_OK)
                return rc;
            break;
        }
        case 'o':
            o->output = optarg;
            o->output_given = 1;
            break;
        case 'i':
        case OPT_MASK:
            if ((rc = set_text(o, c == 'i' ? "init_image" : "mask", optarg)) != MD_EXIT_OK)
                return rc;
            break;
        case OPT_FROM_PNG: o->from_png = optarg; break;
        case OPT_MOE_STATS: o->moe_stats = optarg; break;
        case OPT_ORIGINAL_SIZE:
        case OPT_TARGET_SIZE:
        case OPT_CROP: {
            /* SDXL micro-conditioning: WxH sizes, TOPxLEFT crop offsets */
            int a, b;
            char tail;
            int sizes = c != OPT_CROP;
            if (sscanf(optarg, "%dx%d%c", &a, &b, &tail) != 2 || a < (sizes ? 1 : 0) ||
                b < (sizes ? 1 : 0) || a > 16384 || b > 16384) {
                fprintf(stderr, "moe-diffuse: --%s expects %s, got '%s'\n",
                        c == OPT_CROP ? "crop" : c == OPT_TARGET_SIZE ? "target-size" : "original-size",
                        sizes ? "WIDTHxHEIGHT (1..16384)" : "TOPxLEFT (0..16384)", optarg);
                return MD_EXIT_USAGE;
            }
            mdiff_gen_params *p = &o->req.p;
            int32_t *dst[2] = {c == OPT_ORIGINAL_SIZE ? &p->original_width
                               : c == OPT_TARGET_SIZE ? &p->target_width
                                                      : &p->crop_top,
                               c == OPT_ORIGINAL_SIZE ? &p->original_height
                               : c == OPT_TARGET_SIZE ? &p->target_height
                                                      : &p->crop_left};
            *dst[0] = a;
            *dst[1] = b;
            break;
        }
        case 'v': o->verbose = 1; break;
        case 'q': o->quiet = 1; break;
        case OPT_JSON: o->json = 1; break;
        case OPT_STEPS:
            if (!parse_int("--steps", optarg, 1, 1000, &v))
                return MD_EXIT_USAGE;
            o->req.p.steps = (int)v;
            mark_given(o, "steps");
            break;
        case OPT_CFG:
            if (!parse_float("--cfg-scale", optarg, 0.0, 100.0, &o->req.p.guidance))
                return MD_EXIT_USAGE;
            mark_given(o, "guidance");
            break;
        case OPT_STRENGTH:
            if (!parse_float("--strength", optarg, 0.0, 1.0, &o->req.p.strength))
                return MD_EXIT_USAGE;
            if (!(o->req.p.strength > 0.0f)) {
                fprintf(stderr, "moe-diffuse: --strength must be above 0 (got '%s')\n", optarg);
                return MD_EXIT_USAGE;
            }
            mark_given(o, "strength");
            break;
        case OPT_SAMPLER: {
            const char *name = mdh_sampler_from_display(optarg, NULL);
            if (!name) {
                fprintf(stderr, "moe-diffuse: unknown sampler '%s' (see --help)\n", optarg);
                return MD_EXIT_USAGE;
            }
            if ((rc = set_text(o, "sampler", name)) != MD_EXIT_OK)
                return rc;
            break;
        }
        case OPT_SEED: {
            char *end;
            errno = 0;
            long long s = strtoll(optarg, &end, 10);
            if (errno || *end || end == optarg || s < -1 || s > MD_SEED_MAX) {
                fprintf(stderr,
                        "moe-diffuse: --seed expects -1 (random) or an integer in 0..%lld, "
                        "got '%s'\n",
                        MD_SEED_MAX, optarg);
                return MD_EXIT_USAGE;
            }
            o->random_seed = s < 0;
            o->req.p.seed = s < 0 ? 0 : (uint64_t)s;
            mark_given(o, "seed");
            break;
        }
        case 'W':
        case 'H':
            if (!parse_int(c == 'W' ? "--width" : "--height", optarg, 8, 8192, &v))
                return MD_EXIT_USAGE;
            if (v % 8) {
                fprintf(stderr, "moe-diffuse: %s must be a multiple of 8, got %ld\n",
                        c == 'W' ? "--width" : "--height", v);
                return MD_EXIT_USAGE;
            }
            *(c == 'W' ? &o->req.p.width : &o->req.p.height) = (int)v;
            mark_given(o, c == 'W' ? "width" : "height");
            break;
        case OPT_CLIP_SKIP:
            if (!parse_int("--clip-skip", optarg, 0, 64, &v))
                return MD_EXIT_USAGE;
            o->req.p.clip_skip = (int)v;
            mark_given(o, "clip_skip");
            break;
        case 'b':
            if (!parse_int("--batch-count", optarg, 1, 100000, &v))
                return MD_EXIT_USAGE;
            o->batch_count = (int)v;
            break;
        case 't':
            if (!parse_int("--threads", optarg, 0, 1024, &v))
                return MD_EXIT_USAGE;
            o->threads = (int)v;
            break;
        case OPT_BACKEND:
            if (strcmp(optarg, "cpu") && strcmp(optarg, "vulkan") && strcmp(optarg, "auto")) {
                fprintf(stderr, "moe-diffuse: unknown backend '%s' (cpu, vulkan or auto)\n",
                        optarg);
                return MD_EXIT_USAGE;
            }
            o->backend = optarg;
            break;
        case OPT_DEVICE:
            if (!parse_int("--device", optarg, 0, 64, &v))
                return MD_EXIT_USAGE;
            o->device = (int)v;
            break;
        case OPT_PROFILE: o->profile = 1; break;
        case OPT_PLAIN_PROMPT:
            o->req.p.prompt_syntax = MDIFF_PROMPT_PLAIN;
            mark_given(o, "prompt_syntax");
            break;
        case OPT_VAE_TILE: {
            mdh_error err = {0};
            const char *tile = !strcmp(optarg, "off")    ? "-1"
                               : !strcmp(optarg, "auto") ? "0"
                                                         : optarg;
            if (mdh_request_set_text(&o->req, mdh_request_field("vae_tile"), tile, &err) !=
                MDIFF_OK) {
                fprintf(stderr, "moe-diffuse: --vae-tile: %s\n", err.msg);
                return MD_EXIT_USAGE;
            }
            mark_given(o, "vae_tile");
            break;
        }
        case OPT_LORA:
        case OPT_LORA_DIR:
        case OPT_LORA_UNMATCHED: {
            const char *field = md_cli_lora_option(&o->req, c == OPT_LORA       ? "--lora"
                                                            : c == OPT_LORA_DIR ? "--lora-dir"
                                                                                : "--lora-allow-unmatched",
                                                   optarg);
            if (!field)
                return MD_EXIT_USAGE;
            mark_given(o, field);
            break;
        }
        case 'h': print_help(); return -1;
        case 'V': printf("moe-diffuse %s\n", MD_VERSION); return -1;
        case ':':
            fprintf(stderr, "moe-diffuse: %s needs a value\n", argv[optind - 1]);
            return MD_EXIT_USAGE;
        default:
            fprintf(stderr, "moe-diffuse: unknown option '%s' (see --help)\n", argv[optind - 1]);
            return MD_EXIT_USAGE;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "moe-diffuse: unexpected argument '%s' (see --help)\n", argv[optind]);
        return MD_EXIT_USAGE;
    }
    if (o->quiet && o->verbose) {
        fprintf(stderr, "moe-diffuse: --quiet and --verbose contradict each other\n");
        return MD_EXIT_USAGE;
    }
    if ((rc = md_cli_lora_dir_default(&o->req)) != MD_EXIT_OK)
        return rc;
    if (o->from_png && (rc = apply_from_png(o)) != MD_EXIT_OK)
        return rc;
    return check_combination(o);
}
