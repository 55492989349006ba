/* The tensor descriptor used everywhere: a dtype, up to 4 dims, contiguous
 * row-major data. Activations are always F32 and live in backend memory
 * (host memory on the CPU backend); weights keep the dtype they were stored
 * with (F32/F16/BF16) and are widened where they are used. */
#ifndef MD_TENSOR_H
#define MD_TENSOR_H

#include <stddef.h>
#include <stdint.h>

typedef enum md_dtype {
    MD_F32 = 0,
    MD_F16,
    MD_BF16,
    MD_F64,
    MD_I64,
    MD_I32,
    MD_I16,
    MD_I8,
    MD_U8,
    MD_BOOL,
    MD_DTYPE_COUNT
} md_dtype;

#define MD_MAX_DIMS 6 /* reference records stack steps on a 4-d latent */

typedef struct md_tensor {
    md_dtype dtype;
    int ndim;
    int64_t shape[MD_MAX_DIMS];
    void *data; /* backend-owned storage; host memory on the CPU backend */
} md_tensor;

size_t md_dtype_size(md_dtype dt);
const char *md_dtype_name(md_dtype dt);
int64_t md_tensor_numel(const md_tensor *t);
size_t md_tensor_nbytes(const md_tensor *t);
/* Writes e.g. "[2, 4, 8, 8]" into buf. */
const char *md_shape_str(const md_tensor *t, char *buf, size_t cap);
/* Same dims (trailing size-1 dims are ignored, so a [C,C,1,1] conv weight
 * matches a [C,C] linear weight). */
int md_shape_equal(const md_tensor *t, int ndim, const int64_t *shape);

/* Half/bfloat16 <-> float conversion (exact, round-to-nearest-even). */
float md_f16_to_f32(uint16_t h);
uint16_t md_f32_to_f16(float f);
float md_bf16_to_f32(uint16_t h);
/* Widen n elements of a stored weight (F32/F16/BF16) to float. */
void md_widen_to_f32(md_dtype dt, const void *src, float *dst, size_t n);

#endif
