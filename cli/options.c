#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#ifndef MD_VERSION
#define MD_VERSION "0.1.0"
#endif

static void print_help(void)
{
    printf("usage: moe-diffuse --prompt TEXT [options] -o OUT.png\n"
           "\n"
           "  -m, --model PATH          diffusers folder or single-file .safetensors\n"
           "  -p, --prompt TEXT         what to draw\n"
           "  -n, --negative-prompt T   what to avoid\n"
           "  -o, --output FILE.png     output image (written atomically)\n"
           "      --steps N             denoising steps (default 20)\n"
           "      --cfg-scale F         classifier-free guidance (default 7.5)\n"
           "      --sampler NAME        ");
    for (int k = 0; k < MD_SAMPLER_COUNT; k++)
        printf("%s%s", k ? " " : "", md_sampler_name((md_sampler_kind)k));
    printf("\n"
           "                            (default dpmpp_2m_karras)\n"
           "      --seed N              -1 = random (printed); default -1\n"
           "  -W, --width N  -H, --height N   image size (default: the model's native size)\n"
           "      --clip-skip N         skip the last N text-encoder layers\n"
           "  -t, --threads N           CPU threads (default: all cores)\n"
           "  -q, --quiet               no progress output\n"
           "  -h, --help  -v, --version\n"
           "\n"
           "exit codes: 0 ok, 1 generation failed, 2 usage, 3 model, 4 file I/O, 130 cancelled\n"
           "\n"
           "example:\n"
           "  moe-diffuse -m models/sd15 -p \"a lighthouse at dusk\" --seed 42 -o out.png\n");
}

static int parse_int(const char *flag, const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || end == s || v < lo || v > hi) {
        fprintf(stderr, "moe-diffuse: %s expects an integer in %ld..%ld, got '%s'\n", flag, lo, hi, s);
        return 0;
    }
    *out = v;
    return 1;
}

static int parse_float(const char *flag, const char *s, double lo, double hi, float *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || end == s || !(v >= lo && v <= hi)) {
        fprintf(stderr, "moe-diffuse: %s expects a number in %g..%g, got '%s'\n", flag, lo, hi, s);
        return 0;
    }
    *out = (float)v;
    return 1;
}

int md_cli_parse(int argc, char **argv, md_cli_options *o)
{
    enum { OPT_STEPS = 256, OPT_CFG, OPT_SAMPLER, OPT_SEED, OPT_CLIP_SKIP };
    static const struct option longopts[] = {
        {"model", required_argument, NULL, 'm'},
        {"prompt", required_argument, NULL, 'p'},
        {"negative-prompt", required_argument, NULL, 'n'},
        {"output", required_argument, NULL, 'o'},
        {"steps", required_argument, NULL, OPT_STEPS},
        {"cfg-scale", required_argument, NULL, OPT_CFG},
        {"sampler", required_argument, NULL, OPT_SAMPLER},
        {"seed", required_argument, NULL, OPT_SEED},
        {"width", required_argument, NULL, 'W'},
        {"height", required_argument, NULL, 'H'},
        {"clip-skip", required_argument, NULL, OPT_CLIP_SKIP},
        {"threads", required_argument, NULL, 't'},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'v'},
        {0, 0, 0, 0}};
    memset(o, 0, sizeof *o);
    o->steps = 20;
    o->cfg_scale = 7.5f;
    o->sampler = MD_SAMPLER_DPMPP_2M_KARRAS;
    o->seed = -1;
    o->output = "out.png";
    opterr = 0;
    int c;
    long v;
    while ((c = getopt_long(argc, argv, ":m:p:n:o:W:H:t:qhv", longopts, NULL)) != -1) {
        switch (c) {
        case 'm': o->model = optarg; break;
        case 'p': o->prompt = optarg; break;
        case 'n': o->negative_prompt = optarg; break;
        case 'o': o->output = optarg; break;
        case 'q': o->quiet = 1; break;
        case OPT_STEPS:
            if (!parse_int("--steps", optarg, 1, 1000, &v))
                return MD_EXIT_USAGE;
            o->steps = (int)v;
            break;
        case OPT_CFG:
            if (!parse_float("--cfg-scale", optarg, 0.0, 100.0, &o->cfg_scale))
                return MD_EXIT_USAGE;
            break;
        case OPT_SAMPLER:
            o->sampler = md_sampler_from_name(optarg);
            if (o->sampler < 0) {
                fprintf(stderr, "moe-diffuse: unknown sampler '%s' (see --help)\n", optarg);
                return MD_EXIT_USAGE;
            }
            break;
        case OPT_SEED: {
            char *end;
            errno = 0;
            long long s = strtoll(optarg, &end, 10);
            if (errno || *end || end == optarg || s < -1) {
                fprintf(stderr, "moe-diffuse: --seed expects -1 or a non-negative integer, got '%s'\n",
                        optarg);
                return MD_EXIT_USAGE;
            }
            o->seed = s;
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
            *(c == 'W' ? &o->width : &o->height) = (int)v;
            break;
        case OPT_CLIP_SKIP:
            if (!parse_int("--clip-skip", optarg, 0, 64, &v))
                return MD_EXIT_USAGE;
            o->clip_skip = (int)v;
            break;
        case 't':
            if (!parse_int("--threads", optarg, 0, 1024, &v))
                return MD_EXIT_USAGE;
            o->threads = (int)v;
            break;
        case 'h': print_help(); return -1;
        case 'v': printf("moe-diffuse %s\n", MD_VERSION); return -1;
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
    if (!o->prompt) {
        fprintf(stderr, "moe-diffuse: --prompt is required (see --help)\n");
        return MD_EXIT_USAGE;
    }
    if (strlen(o->prompt) > 4096 || (o->negative_prompt && strlen(o->negative_prompt) > 4096)) {
        fprintf(stderr, "moe-diffuse: a prompt is longer than 4096 bytes\n");
        return MD_EXIT_USAGE;
    }
    return MD_EXIT_OK;
}
