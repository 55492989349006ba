#include "batch_options.h"

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../host/infotext.h"
#include "batch_job.h"
#include "engine.h"
#include "lora_options.h"
#include "parse_number.h"

static void print_help(void)
{
    printf("usage: moe-diffuse batch --prompts FILE [options]\n"
           "\n"
           "Renders one image per line of FILE with the model loaded once. FILE holds\n"
           "plain prompts or JSON objects, one a line (blank and # lines skipped):\n"
           "  {\"prompt\": \"a red fox\", \"seed\": 7, \"steps\": 30, \"output\": \"fox\"}\n"
           "keys: output and every request field by its library name: prompt\n"
           "      negative_prompt seed steps guidance (or cfg_scale) sampler width height\n"
           "      clip_skip init_image mask strength moe_top_k moe_routing ... (docs/batch.md)\n"
           "\n"
           "      --prompts FILE        prompts file (- = stdin)\n"
           "  -m, --model PATH          diffusers folder or single-file .safetensors\n"
           "  -d, --out-dir DIR         output folder (default outputs); entry i writes\n"
           "                            DIR/%%05d.png unless its line names an output\n"
           "      --manifest FILE       JSON Lines record per entry (default\n"
           "                            DIR/manifest.jsonl, DIR/manifest.shard-K-of-N.jsonl)\n"
           "      --shard K/N           only entries i with i %% N == K (K from 0);\n"
           "                            auto/N: K from SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN\n"
           "                            or JOB_COMPLETION_INDEX\n"
           "defaults for every line:\n"
           "  -n, --negative-prompt T   --steps N (20)  --clip-skip N\n"
           "      --cfg-scale F         (default: the model's own, else 7.5; SDXL 5)\n"
           "      --sampler NAME        ");
    for (int k = 0; k < md_cli_sampler_count(); k++)
        printf("%s%s", k ? " " : "", md_cli_sampler_name(k));
    printf("\n"
           "      --seed N              entry i gets N + i; -1 = random base (default,\n"
           "                            recorded in the manifest and reused on resume)\n"
           "  -W, --width N  -H, --height N   (default: the model's native size)\n"
           "  -t, --threads N  --backend cpu|vulkan|auto  --device N  -q, --quiet  -h, --help\n"
           "      --max-expert-memory SIZE  routed experts' weights resident at once (512M,\n"
           "                            2G, 50%% of the model's); lines may set their own\n"
           "      --lora FILE[:W]       LoRA for every line (repeatable); lines' \"loras\"\n"
           "      --lora-dir DIR        for <lora:NAME:W> in prompts ($MOEDIFFUSE_LORA_DIR)\n"
           "      --lora-allow-unmatched  skip LoRA modules no layer of the model has\n"
           "      --moe-stats           MoE routing per image: NAME.moe.json and a heatmap\n"
           "                            NAME.moe.png beside it (docs/moe-health.md)\n"
           "\n"
           "Re-running skips entries whose output exists and is recorded ok.\n"
           "exit codes: 0 all ok, 1 some entries failed (see the manifest), 2 usage,\n"
           "            3 model, 4 prompts file / output folder / manifest I/O, 130 cancelled\n"
           "\n"
           "example (Slurm array of 4): moe-diffuse batch --prompts p.txt -m sd15 \\\n"
           "    -d out --seed 1 --shard auto/4          (see docs/batch.md)\n");
}

static int usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage(const char *fmt, ...)
{
    fprintf(stderr, "moe-diffuse batch: ");
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (see moe-diffuse batch --help)\n");
    return 2;
}

static int parse_long(const char *flag, const char *s, long lo, long hi, long *out)
{
    return md_cli_parse_long("moe-diffuse batch", flag, s, lo, hi, out);
}

int md_batch_parse(int argc, char **argv, md_batch_options *o)
{
    enum { OPT_PROMPTS = 256, OPT_MANIFEST, OPT_SHARD, OPT_STEPS, OPT_CFG, OPT_SAMPLER, OPT_SEED,
           OPT_CLIP_SKIP, OPT_BACKEND, OPT_DEVICE, OPT_MOE_STATS, OPT_EXPERT_MEMORY,
           OPT_LORA, OPT_LORA_DIR, OPT_LORA_UNMATCHED };
    static const struct option longopts[] = {
        {"prompts", required_argument, NULL, OPT_PROMPTS},
        {"model", required_argument, NULL, 'm'},
        {"out-dir", required_argument, NULL, 'd'},
        {"manifest", required_argument, NULL, OPT_MANIFEST},
        {"shard", required_argument, NULL, OPT_SHARD},
        {"negative-prompt", required_argument, NULL, 'n'},
        {"steps", required_argument, NULL, OPT_STEPS},
        {"cfg-scale", required_argument, NULL, OPT_CFG},
        {"sampler", required_argument, NULL, OPT_SAMPLER},
        {"seed", required_argument, NULL, OPT_SEED},
        {"width", required_argument, NULL, 'W'},
        {"height", required_argument, NULL, 'H'},
        {"clip-skip", required_argument, NULL, OPT_CLIP_SKIP},
        {"threads", required_argument, NULL, 't'},
        {"backend", required_argument, NULL, OPT_BACKEND},
        {"device", required_argument, NULL, OPT_DEVICE},
        {"quiet", no_argument, NULL, 'q'},
        {"moe-stats", no_argument, NULL, OPT_MOE_STATS},
        {"max-expert-memory", required_argument, NULL, OPT_EXPERT_MEMORY},
        {"lora", required_argument, NULL, OPT_LORA},
        {"lora-dir", required_argument, NULL, OPT_LORA_DIR},
        {"lora-allow-unmatched", no_argument, NULL, OPT_LORA_UNMATCHED},
        {"help", no_argument, NULL, 'h'},
        {0, 0, 0, 0}};
    memset(o, 0, sizeof *o);
    mdh_request_init(&o->defaults);
    mdiff_gen_params *d = &o->defaults.p;
    o->out_dir = "outputs";
    o->backend = "auto";
    o->device = -1;
    o->seed = -1;
    double cfg;
    opterr = 0;
    optind = 1; /* argv[0] is "batch" */
    int c;
    long v;
    while ((c = getopt_long(argc, argv, ":m:d:n:W:H:t:qh", longopts, NULL)) != -1) {
        switch (c) {
        case OPT_PROMPTS: o->prompts = optarg; break;
        case 'm': o->model = optarg; break;
        case 'd': o->out_dir = optarg; break;
        case OPT_MANIFEST: o->manifest = optarg; break;
        case OPT_SHARD: o->shard = optarg; break;
        case 'n':
            if (mdh_request_set_string(&o->defaults, mdh_request_field("negative_prompt"),
                                       optarg) != MDIFF_OK)
                return usage("out of memory");
            break;
        case 'q': o->quiet = 1; break;
        case OPT_MOE_STATS: o->moe_stats = 1; break;
        case OPT_BACKEND:
            if (strcmp(optarg, "cpu") && strcmp(optarg, "vulkan") && strcmp(optarg, "auto"))
                return usage("unknown backend '%s' (cpu, vulkan or auto)", optarg);
            o->backend = optarg;
            break;
        case OPT_DEVICE:
            if (!parse_long("--device", optarg, 0, 64, &v))
                return 2;
            o->device = (int)v;
            break;
        case OPT_STEPS:
            if (!parse_long("--steps", optarg, 1, 1000, &v))
                return 2;
            d->steps = (int)v;
            break;
        case OPT_CFG:
            if (!md_cli_parse_double("moe-diffuse batch", "--cfg-scale", optarg, 0, 100, &cfg))
                return 2;
            d->guidance = (float)cfg;
            break;
        case OPT_SAMPLER: {
            const char *name = mdh_sampler_from_display(optarg, NULL);
            if (!name)
                return usage("unknown sampler '%s'", optarg);
            if (mdh_request_set_string(&o->defaults, mdh_request_field("sampler"), name) !=
                MDIFF_OK)
                return usage("out of memory");
            break;
        }
        case OPT_SEED: {
            char *end;
            errno = 0;
            long long s = strtoll(optarg, &end, 10);
            if (errno || *end || end == optarg || s < -1 || (double)s > MD_BATCH_SEED_MAX)
                return usage("--seed expects -1 or an integer in 0..2^53-1, got '%s'", optarg);
            o->seed = s;
            break;
        }
        case 'W':
        case 'H':
            if (!parse_long(c == 'W' ? "--width" : "--height", optarg, 8, 8192, &v))
                return 2;
            if (v % 8)
                return usage("%s must be a multiple of 8, got %s", c == 'W' ? "--width" : "--height",
                             optarg);
            *(c == 'W' ? &d->width : &d->height) = (int)v;
            break;
        case OPT_CLIP_SKIP:
            if (!parse_long("--clip-skip", optarg, 0, 64, &v))
                return 2;
            d->clip_skip = (int)v;
            break;
        case 't':
            if (!parse_long("--threads", optarg, 0, 1024, &v))
                return 2;
            o->threads = (int)v;
            break;
        case OPT_EXPERT_MEMORY: {
            mdh_error err = {0};
            if (mdh_request_set_text(&o->defaults, mdh_request_field("max_expert_memory"), optarg,
                                     &err) != MDIFF_OK)
                return usage("--max-expert-memory: %s", err.msg);
            break;
        }
        case OPT_LORA:
        case OPT_LORA_DIR:
        case OPT_LORA_UNMATCHED:
            if (!md_cli_lora_option(&o->defaults, c == OPT_LORA       ? "--lora"
                                                  : c == OPT_LORA_DIR ? "--lora-dir"
                                                                      : "--lora-allow-unmatched",
                                    optarg))
                return 2;
            break;
        case 'h': print_help(); return -1;
        case ':': return usage("%s needs a value", argv[optind - 1]);
        default: return usage("unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return usage("unexpected argument '%s'", argv[optind]);
    if (!o->prompts)
        return usage("--prompts FILE is required");
    if (md_cli_lora_dir_default(&o->defaults) != 0)
        return 1;
    if (d->negative_prompt && strlen(d->negative_prompt) > MDIFF_PROMPT_MAX)
        return usage("--negative-prompt is longer than %d bytes", MDIFF_PROMPT_MAX);
    if (!o->out_dir[0])
        return usage("--out-dir is empty");
    return 0;
}

void md_batch_options_free(md_batch_options *o)
{
    mdh_request_clear(&o->defaults);
}
