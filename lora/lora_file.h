/* Reading a LoRA file (.safetensors) into one entry per module it changes.
 * Two layouts are read:
 *  - kohya / A1111: `lora_unet_<path>`, `lora_te_<path>` (SD 1.x/2.x),
 *    `lora_te1_` / `lora_te2_` (SDXL), each with `.lora_down.weight`,
 *    `.lora_up.weight` and an optional 0-dim `.alpha`. The path spells '.'
 *    as '_', which is ambiguous (to_q, proj_in, ...): such entries keep the
 *    underscored form and are resolved against the model's own module names
 *    when bound (lora_bind.h).
 *  - diffusers / PEFT: `unet.<path>`, `text_encoder.<path>`,
 *    `text_encoder_2.<path>` with `.lora.down/.up.weight`,
 *    `.lora_linear_layer.down/.up.weight` or `.lora_A/.lora_B.weight`
 *    (and an optional `.alpha`); the old attention-processor form
 *    `<attn>.processor.to_q_lora.down.weight` is read too.
 * Without an alpha, alpha = rank (the factor alpha / rank is 1).
 * The tensors stay in the mapped file; an entry points into it. */
#ifndef MD_LORA_FILE_H
#define MD_LORA_FILE_H

#include "../io/safetensors.h"
#include "../runtime/status.h"
#include "../runtime/tensor.h"

typedef enum md_lora_part {
    MD_LORA_UNET = 0,
    MD_LORA_TE,  /* the (first) text encoder */
    MD_LORA_TE2  /* SDXL's second text encoder */
} md_lora_part;

#define MD_LORA_NAME_MAX 320

typedef struct md_lora_entry {
    md_lora_part part;
    /* Module path in diffusers (U-Net) / HF (text encoder) naming, e.g.
     * "down_blocks.0.attentions.0.proj_in"; for kohya keys the same path
     * with every '.' written '_' (underscored = 1). */
    char module[MD_LORA_NAME_MAX];
    int underscored;
    char key[MD_LORA_NAME_MAX]; /* the file's key stem, for messages */
    const md_tensor *down;      /* [rank, in] or [rank, in, kh, kw] */
    const md_tensor *up;        /* [out, rank] or [out, rank, 1, 1] */
    float alpha;                /* the file's alpha, else rank */
    int rank;
} md_lora_entry;

typedef struct md_lora_file {
    char path[1024];
    md_safetensors *st;
    md_lora_entry *entries;
    int count;
} md_lora_file;

/* Opens and checks a LoRA file. Pickle checkpoints (.pt, .ckpt, .bin) are
 * refused: they can run code when loaded. Errors name the file and key. */
md_status md_lora_file_open(const char *path, md_lora_file **out, md_error *err);
void md_lora_file_free(md_lora_file *f);

/* The part's name as errors and weight maps call it: "unet",
 * "text_encoder", "text_encoder_2". */
const char *md_lora_part_label(md_lora_part part);

#endif
