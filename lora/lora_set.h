/* The LoRAs of one generation: found, opened, bound to the loaded model and
 * applied through a backend wrapper (lora_backend.h), all owned here and
 * freed with the set. The model is never changed. */
#ifndef MD_LORA_SET_H
#define MD_LORA_SET_H

#include "../models/model.h"
#include "lora_backend.h"

#define MD_LORA_SET_MAX 32

/* One LoRA a request asks for: a file (path), or a name looked up in a
 * folder (lora_find). */
typedef struct md_lora_use {
    char name[256];  /* for records: the file's stem, or a prompt tag's NAME */
    char path[4096];
    float weight;
    int from_prompt;
} md_lora_use;

/* The file `name` names in `dir`: dir/name.safetensors (name may hold
 * subfolders, never "..", an absolute path or an empty part), else the one
 * file called name.safetensors anywhere below dir (A1111 finds LoRAs by
 * their stem in subfolders too; two such files are ambiguous). A pickle
 * file of that name (.pt, .ckpt) is refused, since loading it can run code.
 * Errors name the LoRA and the folder: MD_ERR_IO when not found. */
md_status md_lora_find(const char *dir, const char *name, char *path, size_t cap, md_error *err);

/* The file's stem (name without folder and extension), as records call it. */
void md_lora_stem(const char *path, char *out, size_t cap);

typedef struct md_lora_set md_lora_set;

/* Opens every file of uses[0..n) and, with a model, binds it at its weight
 * (unmatched modules are an error unless allow_unmatched). A LoRA that
 * changes experts of a model whose experts load on demand (Vulkan with an
 * expert budget at load) is MD_ERR_UNSUPPORTED: those device copies are
 * made outside the binding's reach. */
md_status md_lora_set_open(const md_model *m, const md_lora_use *uses, int n, int allow_unmatched,
                           md_lora_set **out, md_error *err);
/* The modules file i changes, and of those the ones bound to a layer
 * (-1 without a model). */
void md_lora_set_counts(const md_lora_set *s, int i, int *modules, int *matched);
/* A wrapper of `inner` that applies the bound LoRAs (owned by the set; an
 * empty set, or one without a model, returns inner itself). */
md_status md_lora_set_backend(md_lora_set *s, md_backend *inner, md_lora_apply how,
                              md_backend **out, md_error *err);
void md_lora_set_free(md_lora_set *s);

#endif
