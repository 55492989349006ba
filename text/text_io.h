/* Whole-file reading and gzip decompression for the tokenizer loader. */
#ifndef MD_TEXT_IO_H
#define MD_TEXT_IO_H

#include <stddef.h>

#include "../runtime/status.h"

/* The file's bytes plus a terminating NUL in *out (malloc'ed). */
md_status md_read_whole_file(const char *path, char **out, size_t *len, md_error *err);
/* Inflates a gzip stream of n bytes into *out (malloc'ed). */
md_status md_gunzip(const unsigned char *src, size_t n, char **out, size_t *out_len, md_error *err);

#endif
