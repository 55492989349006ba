/* Read-only access to a .safetensors file through mmap. Opening validates
 * everything before any tensor is handed out: header length vs file size,
 * JSON syntax, dtype names, shapes vs byte ranges, ranges inside the data
 * section, no overlaps. Errors name the file and the problem. */
#ifndef MD_SAFETENSORS_H
#define MD_SAFETENSORS_H

#include "../runtime/status.h"
#include "../runtime/tensor.h"

typedef struct md_safetensors md_safetensors;

md_status md_safetensors_open(const char *path, md_safetensors **out, md_error *err);
void md_safetensors_close(md_safetensors *st);

const char *md_safetensors_path(const md_safetensors *st);
size_t md_safetensors_count(const md_safetensors *st);
const char *md_safetensors_name(const md_safetensors *st, size_t i);
/* The tensor's data points into the mapping; valid until close. */
const md_tensor *md_safetensors_tensor(const md_safetensors *st, size_t i);
const md_tensor *md_safetensors_find(const md_safetensors *st, const char *name);
/* The "__metadata__" string map, or NULL when absent. */
const char *md_safetensors_metadata(const md_safetensors *st, const char *key);

/* Writes tensors (data given as host memory) to `path` atomically
 * (temp file + rename). Used by tools and tests. */
typedef struct md_safetensors_entry {
    const char *name;
    md_tensor tensor; /* dtype, shape and data */
} md_safetensors_entry;
md_status md_safetensors_write(const char *path, const md_safetensors_entry *entries, size_t n,
                               md_error *err);
/* The same with string metadata besides "format": "pt": meta_kv holds
 * nmeta key/value pairs (key 0, value 0, key 1, ...). */
md_status md_safetensors_write_meta(const char *path, const md_safetensors_entry *entries,
                                    size_t n, const char *const *meta_kv, size_t nmeta,
                                    md_error *err);

#endif
