/* Generation parameters as AUTOMATIC1111 writes them into a PNG's
 * `parameters` text ("infotext"), so that existing tools read ours and
 * --from-png reads theirs:
 *
 *   a prompt (may span lines)
 *   Negative prompt: a negative prompt
 *   Steps: 20, Sampler: DPM++ 2M Karras, CFG scale: 7.5, Seed: 1, Size: 512x512, ...
 *
 * A value holding ',', ':' or a newline is written as a JSON string. The
 * request fields beyond A1111's are written under the keys that
 * request_fields.c names, when they differ from the defaults. */
#ifndef MDH_INFOTEXT_H
#define MDH_INFOTEXT_H

#include "host_error.h"
#include "request_fields.h"

/* What the text says beside the request. */
typedef struct mdh_infotext_meta {
    const char *model_hash; /* "Model hash:" (mdh_model_hash); NULL = none */
    const char *model;   /* "Model:"; NULL = none */
    const char *moe;     /* "MoE:", the model's experts ("4 experts, top-2, sequence routing") */
    int mask_blur;       /* > 0: "Mask blur:" (inpainting) */
    const char *lora_hashes; /* "Lora hashes:" ("name: hash, ..." as mdh_lora_hashes
                                writes it); NULL = none */
    const char *version; /* "Version:" */
} mdh_infotext_meta;

/* The text for a resolved request (size, guidance and sampler filled in, as
 * api->resolve_params gives them). The request's loras go into the prompt as
 * <lora:STEM:WEIGHT> tags (mdh_request_prompt_with_loras), as A1111 keeps
 * them. malloc'd; NULL = out of memory. */
char *mdh_infotext_format(const mdh_request *r, const mdh_infotext_meta *meta);

typedef struct mdh_infotext {
    mdh_request req;        /* the fields found; the others keep their defaults */
    unsigned char *found;   /* per request field (mdh_request_fields order): 1 = in the text */
    char *model, *moe;      /* owned; NULL = absent */
    char *model_hash, *lora_hashes; /* owned; NULL = absent */
    int mask_blur;          /* -1 = absent */
} mdh_infotext;

/* Parses infotext; `source` names it in errors (e.g. the PNG's path).
 * Unknown keys are ignored; a known key with a bad value is an error
 * (MDIFF_ERR_FORMAT; an unknown sampler MDIFF_ERR_UNSUPPORTED). */
int mdh_infotext_parse(const char *text, const char *source, mdh_infotext *out, mdh_error *err);
void mdh_infotext_free(mdh_infotext *t);

/* A1111's display name ("DPM++ 2M Karras") of a sampler of the library's. */
const char *mdh_sampler_display_name(const char *name);
/* The library's name of a sampler given by display name, optionally with a
 * "Schedule type" (A1111 >= 1.9 writes "DPM++ 2M" + "Karras"), or by the
 * library's own name; NULL when unknown. Case-insensitive. */
const char *mdh_sampler_from_display(const char *name, const char *schedule_type);

#endif
