/* File-system steps of writing a merged model folder. */
#ifndef MD_MERGE_FILES_H
#define MD_MERGE_FILES_H

#include <cjson/cJSON.h>

#include "../runtime/status.h"

/* Copies the regular files of folder src into the new folder dst. */
md_status md_merge_copy_dir(const char *src, const char *dst, md_error *err);
/* Removes a folder this merge created, with everything in it. */
void md_merge_remove_tree(const char *path);
/* Writes `json` (keys sorted at every level, as diffusers saves configs). */
md_status md_merge_write_json(const char *path, cJSON *json, md_error *err);
/* Reads a JSON file; NULL (error set) when missing or invalid. */
cJSON *md_merge_read_json(const char *path, md_error *err);

#endif
