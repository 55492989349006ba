/* Generation parameters as AUTOMATIC1111 writes them into a PNG's
 * `parameters` text ("infotext"), so that existing tools read ours and
 * --from-png reads theirs:
 *
 *   a prompt (may span lines)
 *   Negative prompt: a negative prompt
 *   Steps: 20, Sampler: DPM++ 2M Karras, CFG scale: 7.5, Seed: 1, Size: 512x512, ...
 *
 * A value holding ',', ':' or a newline is written as a JSON string. */
#ifndef MD_CLI_INFOTEXT_H
#define MD_CLI_INFOTEXT_H

#include <stdint.h>

#include "runtime/status.h"
#include "sampling/sampler.h"

enum {
    MD_INFO_STEPS = 1 << 0,
    MD_INFO_SAMPLER = 1 << 1,
    MD_INFO_CFG = 1 << 2,
    MD_INFO_SEED = 1 << 3,
    MD_INFO_SIZE = 1 << 4,
    MD_INFO_CLIP_SKIP = 1 << 5, /* ours; A1111's "Clip skip" is ours + 1 */
    MD_INFO_STRENGTH = 1 << 6,  /* "Denoising strength": made from an init image */
    MD_INFO_MASK_BLUR = 1 << 7, /* inpainting */
    MD_INFO_PLAIN_PROMPT = 1 << 8 /* ours: "Prompt syntax: plain" (--plain-prompt) */
};

typedef struct md_infotext {
    char *prompt;          /* owned */
    char *negative_prompt; /* owned; NULL = no "Negative prompt:" line */
    unsigned has;          /* MD_INFO_* of the fields below that are set */
    int steps;
    md_sampler_kind sampler;
    float cfg_scale;
    uint64_t seed;
    int width, height;
    int clip_skip;
    float strength;
    int mask_blur;
    char *model; /* owned; NULL = none */
    char *moe;   /* owned: "4 experts, top-2, sequence routing"; NULL = dense */
} md_infotext;

void md_infotext_free(md_infotext *t);

/* A1111's display name ("DPM++ 2M Karras") of a sampler. */
const char *md_infotext_sampler_name(md_sampler_kind k);
/* A sampler from a display name, optionally with a "Schedule type"
 * (A1111 >= 1.9 writes "DPM++ 2M" + "Karras"), or from our own names;
 * -1 when unknown. Case-insensitive. */
int md_infotext_sampler_from_name(const char *name, const char *schedule_type);

/* The text for t (the fields in t->has). malloc'd; NULL = out of memory. */
char *md_infotext_format(const md_infotext *t, const char *version);

/* Parses infotext; `source` names it in errors (e.g. the PNG's path).
 * Unknown keys are ignored; a known key with a bad value is an error. */
md_status md_infotext_parse(const char *text, const char *source, md_infotext *out, md_error *err);

#endif
