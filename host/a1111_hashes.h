/* The hashes AUTOMATIC1111 writes into the `parameters` text, for a loaded
 * model and a request's LoRAs (host/file_hash.h computes and caches them):
 *   Model hash: the first 10 hex digits of the sha256 of the file the
 *     library's "model.files" feature names (the checkpoint, or a diffusers
 *     folder's U-Net weights);
 *   Lora hashes: "NAME: HASH, ..." for every LoRA the request applies
 *     (the "lora" feature), NAME as the prompt names it without ':' and ',',
 *     HASH the first 12 hex digits of the file's `sshs_model_hash` metadata
 *     when it has one (kohya writes it, and A1111 prefers it), else of its
 *     addnet hash (the sha256 of the bytes after a .safetensors header). */
#ifndef MDH_A1111_HASHES_H
#define MDH_A1111_HASHES_H

#include "host_error.h"
#include "moediffuse.h"

/* out: 10 hex digits and a NUL. */
int mdh_model_hash(const mdiff_api *api, mdiff_context *ctx, char out[11], mdh_error *err);

/* *out: the `Lora hashes` value (malloc'd), NULL when the request applies
 * no LoRA. ctx may be NULL. */
int mdh_lora_hashes(const mdiff_api *api, mdiff_context *ctx, const mdiff_gen_params *p,
                    char **out, mdh_error *err);

#endif
