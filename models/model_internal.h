/* Shared steps of the diffusers-folder and single-file loaders. */
#ifndef MD_MODEL_INTERNAL_H
#define MD_MODEL_INTERNAL_H

#include "model.h"

#define MD_PATH_MAX 4096

/* Opens a safetensors file owned by the model (closed by md_model_free). */
md_status md_model_open_file(md_model *m, const char *path, md_safetensors **out, md_error *err);
/* A weights map owned by the model. */
md_status md_model_new_weights(md_model *m, const char *label, md_weights **out, md_error *err);
/* The override object for a component ("unet", "vae", ...), or NULL. */
const cJSON *md_model_override(const md_model_options *opt, const char *component);
/* Settles the text-encoder configs against tokenizers and weights, then
 * builds the components. te2 may be NULL. */
md_status md_model_build(md_model *m, md_weights *te, md_weights *te2, md_weights *unet,
                         md_weights *vae, md_backend *be, md_error *err);

md_status md_model_load_diffusers(md_model *m, const char *dir, const md_model_options *opt,
                                  md_error *err);
md_status md_model_load_single(md_model *m, const char *file, const md_model_options *opt,
                               md_error *err);

/* "dir/a/b" into buf; fails when it does not fit. */
md_status md_path_join(char *buf, size_t cap, const char *dir, const char *a, const char *b,
                       md_error *err);

#endif
