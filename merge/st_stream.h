/* A .safetensors file written tensor by tensor: the header (names, dtypes,
 * shapes, offsets) first, then each tensor's data in any order as it
 * becomes available, so a merge never holds more than one tensor. */
#ifndef MD_ST_STREAM_H
#define MD_ST_STREAM_H

#include <stddef.h>

#include "../runtime/status.h"
#include "../runtime/tensor.h"

typedef struct md_st_stream md_st_stream;

/* specs[i]: dtype and shape of tensor i (data unused). */
md_status md_st_stream_open(const char *path, const char *const *names, const md_tensor *specs,
                            size_t n, md_st_stream **out, md_error *err);
/* Writes tensor i from `src` (numel values of src_dtype; F32/F16/BF16 are
 * converted to the declared dtype, other dtypes must match it). */
md_status md_st_stream_put(md_st_stream *s, size_t i, md_dtype src_dtype, const void *src,
                           md_error *err);
/* Checks that every tensor was written, flushes and closes. Always frees. */
md_status md_st_stream_close(md_st_stream *s, md_error *err);
/* Closes without checking (after a failure); the file stays for the caller
 * to remove. */
void md_st_stream_abort(md_st_stream *s);

#endif
