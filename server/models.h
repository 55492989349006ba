/* The models of --models-dir that /sdapi/v1/options can switch to:
 * subfolders holding a diffusers model (model_index.json) and
 * .safetensors checkpoints, by name, sorted. */
#ifndef MD_SERVER_MODELS_H
#define MD_SERVER_MODELS_H

#include <stddef.h>

/* *names (malloc'd, each too): the entries' names in dir; returns how
 * many, -1 when dir cannot be read. */
int md_models_list(const char *dir, char ***names);
void md_models_free(char **names, int n);

#endif
