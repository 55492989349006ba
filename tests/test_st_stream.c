/* The streamed safetensors writer (merge/st_stream.c): tensors written out
 * of order and converted to the declared dtype read back exactly through
 * the project's own reader; a tensor never written fails the close. */
#include <stdio.h>
#include <string.h>

#include "merge/st_stream.h"
#include "test_support.h"

int main(void)
{
    char dir[512], path[600];
    if (!md_test_make_temp_dir(dir, sizeof dir, "st-stream-"))
        return 1;
    snprintf(path, sizeof path, "%s/a.safetensors", dir);
    const char *names[] = {"w16", "w32", "ids"};
    md_tensor specs[3] = {{.dtype = MD_F16, .ndim = 2, .shape = {3, 5}},
                          {.dtype = MD_F32, .ndim = 1, .shape = {4}},
                          {.dtype = MD_I32, .ndim = 1, .shape = {3}}};
    float a[15], b[4] = {1.5f, -2.25f, 3e-3f, 65504.0f};
    uint16_t a16[15];
    for (int i = 0; i < 15; i++) {
        a16[i] = md_f32_to_f16((float)i * 0.37f - 2.0f);
        a[i] = md_f16_to_f32(a16[i]); /* f16-exact, so f32 -> f16 must be exact */
    }
    int32_t ids[3] = {7, -1, 1 << 30};
    md_st_stream *s = NULL;
    md_error err = {0};
    CHECK(md_st_stream_open(path, names, specs, 3, &s, &err) == MD_OK, "open: %s", err.msg);
    CHECK(md_st_stream_put(s, 2, MD_I32, ids, &err) == MD_OK);
    CHECK(md_st_stream_put(s, 1, MD_F16, a16, &err) == MD_OK, "f16 into f32: %s", err.msg);
    CHECK(md_st_stream_put(s, 0, MD_F32, a, &err) == MD_OK, "f32 into f16: %s", err.msg);
    CHECK(md_st_stream_put(s, 1, MD_F32, b, &err) == MD_OK, "rewrite: %s", err.msg);
    CHECK(md_st_stream_close(s, &err) == MD_OK, "close: %s", err.msg);
    md_safetensors *st = md_test_open_safetensors(path);
    if (st) {
        const md_tensor *t0 = md_safetensors_find(st, "w16"), *t1 = md_safetensors_find(st, "w32"),
                        *t2 = md_safetensors_find(st, "ids");
        CHECK(t0 && t0->dtype == MD_F16 && t0->shape[0] == 3 && t0->shape[1] == 5 &&
              !memcmp(t0->data, a16, sizeof a16));
        CHECK(t1 && t1->dtype == MD_F32 && !memcmp(t1->data, b, sizeof b));
        CHECK(t2 && t2->dtype == MD_I32 && !memcmp(t2->data, ids, sizeof ids));
        CHECK(!strcmp(md_safetensors_metadata(st, "format"), "pt"));
        md_safetensors_close(st);
    }
    /* A tensor never written: the close says which. */
    snprintf(path, sizeof path, "%s/b.safetensors", dir);
    CHECK(md_st_stream_open(path, names, specs, 3, &s, &err) == MD_OK);
    md_st_stream_put(s, 0, MD_F16, a16, &err);
    CHECK(md_st_stream_close(s, &err) == MD_ERR_INVALID && strstr(err.msg, "tensor 1"),
          "unwritten tensor: '%s'", err.msg);
    /* An existing file is never overwritten. */
    CHECK(md_st_stream_open(path, names, specs, 3, &s, &err) == MD_ERR_IO);
    md_test_remove_tree(dir);
    return md_test_finish("test_st_stream");
}
