/* A SegMoE merge config (SegMoE's own YAML): which models become the
 * experts of which layers of which base. Paths in it are relative to the
 * YAML's folder and are resolved when it is read. Errors name the file and
 * the key. */
#ifndef MD_MERGE_CONFIG_H
#define MD_MERGE_CONFIG_H

#include <cjson/cJSON.h>

#include "../runtime/status.h"

#define MD_MERGE_MAX_EXPERTS 16 /* the router's top-k limit is 16 */
#define MD_MERGE_PATH_MAX 1024

typedef enum md_merge_layers {
    MD_MERGE_LAYERS_ATTN = 0, /* attn1/attn2 q, k, v (SegMoE's default) */
    MD_MERGE_LAYERS_FF,       /* the feed-forward of each block */
    MD_MERGE_LAYERS_ALL
} md_merge_layers;

typedef enum md_merge_init {
    MD_MERGE_INIT_HIDDEN = 0, /* gates from each source's own hidden states (default) */
    MD_MERGE_INIT_RANDOM
} md_merge_init;

typedef struct md_merge_lora {
    char path[MD_MERGE_PATH_MAX]; /* resolved */
    float scale;                  /* 1: SegMoE fuses at diffusers' default scale */
} md_merge_lora;

typedef struct md_merge_expert {
    char source[MD_MERGE_PATH_MAX]; /* resolved path of source_model */
    char *positive, *negative;      /* gate-init prompts; LoRA prompts appended */
    md_merge_lora *loras;
    int nloras;
} md_merge_expert;

typedef struct md_merge_config {
    char path[MD_MERGE_PATH_MAX]; /* the YAML file, for messages */
    char base[MD_MERGE_PATH_MAX]; /* resolved base_model */
    int sdxl;                     /* type: sd (0) | sdxl (1) */
    md_merge_layers layers;
    md_merge_init init;
    int top_k;                    /* num_experts_per_tok */
    md_merge_expert experts[MD_MERGE_MAX_EXPERTS];
    int nexperts;
    md_merge_lora *base_loras;    /* top-level loras: fused into the base */
    int nbase_loras;
    /* The YAML as JSON (scalars typed as YAML's core schema types them),
     * with the keys SegMoE fills in; saved as unet/config.json's
     * segmoe_config. */
    cJSON *yaml;
} md_merge_config;

/* Reads and checks `path`. On error nothing is allocated. */
md_status md_merge_config_read(const char *path, md_merge_config *out, md_error *err);
/* The same from memory; `path` names it in messages and its folder
 * resolves relative paths. */
md_status md_merge_config_parse(const char *path, const char *text, size_t len,
                                md_merge_config *out, md_error *err);
void md_merge_config_free(md_merge_config *c);

const char *md_merge_layers_name(md_merge_layers l);

#endif
