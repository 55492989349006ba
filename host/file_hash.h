/* A1111-compatible file hashes (docs/robustness.md, issue 16): the
 * `parameters` text names a checkpoint by the first 10 hex digits of its
 * file's sha256 (`Model hash`) and a LoRA by the first 12 of its "addnet"
 * hash, the sha256 of a .safetensors file's bytes after its header (`Lora
 * hashes`; a LoRA in another format gets the whole file's sha256). Hashing
 * gigabytes takes seconds and every CLI run is a new process, so a result
 * is kept in memory and in a cache file, keyed by the file's real path,
 * size and modification time. */
#ifndef MDH_FILE_HASH_H
#define MDH_FILE_HASH_H

#include <stddef.h>

#include "host_error.h"

typedef enum mdh_hash_kind {
    MDH_HASH_FILE = 0,            /* sha256 of the whole file (A1111's Model hash) */
    MDH_HASH_SAFETENSORS_DATA = 1 /* sha256 of a .safetensors file after the 8-byte length
                                     and the JSON header (A1111's LoRA hash) */
} mdh_hash_kind;

/* Digits A1111 writes: `Model hash` (sd_models.py shorthash) and each
 * entry of `Lora hashes` (Lora/network.py shorthash). */
#define MDH_MODEL_HASH_DIGITS 10
#define MDH_LORA_HASH_DIGITS 12

/* hex: 64 lowercase hex digits + NUL. Computed once per (kind, real path,
 * size, mtime in ns) and cached in memory (thread-safe) and in the cache
 * file, so a later run reads it back instead of hashing again. A cache
 * that cannot be read or written is skipped, never an error. Errors name
 * the file: MDIFF_ERR_IO (missing, a directory, unreadable),
 * MDIFF_ERR_FORMAT (a .safetensors too short for its header), else
 * MDIFF_ERR_INVALID / MDIFF_ERR_NOMEM. */
int mdh_file_hash(const char *path, mdh_hash_kind kind, char hex[65], mdh_error *err);

/* The cache file in use, in buf: $MOEDIFFUSE_HASH_CACHE if set (empty:
 * no file cache, NULL), else $XDG_CACHE_HOME/moe-diffuse/hashes.tsv, else
 * $HOME/.cache/moe-diffuse/hashes.tsv. NULL when disabled, when neither
 * variable is set, or when the path does not fit cap. */
const char *mdh_hash_cache_path(char *buf, size_t cap);

#endif
