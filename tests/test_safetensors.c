/* Round trip through md_safetensors_write/open, then corrupted files: every
 * one must fail with MD_ERR_FORMAT and a message naming the file. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/safetensors.h"
#include "test_support.h"

static char dir[256];

static void path_of(char *buf, size_t cap, const char *name)
{
    snprintf(buf, cap, "%s/%s", dir, name);
}

static void write_bytes(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f) {
        perror(path);
        exit(2);
    }
    if (n && fwrite(data, 1, n, f) != n)
        exit(2);
    fclose(f);
}

/* A raw file: 8-byte length (hlen_override when non-zero) + header + data. */
static void write_raw(const char *name, const char *header, uint64_t hlen_override,
                      const void *data, size_t ndata)
{
    char path[512];
    path_of(path, sizeof path, name);
    size_t hl = strlen(header);
    uint64_t hv = hlen_override ? hlen_override : hl;
    unsigned char *buf = malloc(8 + hl + ndata + 1);
    for (int i = 0; i < 8; i++)
        buf[i] = (unsigned char)(hv >> (8 * i));
    memcpy(buf + 8, header, hl);
    if (ndata)
        memcpy(buf + 8 + hl, data, ndata);
    write_bytes(path, buf, 8 + hl + ndata);
    free(buf);
}

/* Opening `name` must fail with `code` and a message naming the file and
 * containing `needle` (when given). */
static void expect_fail(const char *name, md_status code, const char *needle)
{
    char path[512];
    path_of(path, sizeof path, name);
    md_safetensors *st = (md_safetensors *)1;
    md_error err = {0};
    md_status s = md_safetensors_open(path, &st, &err);
    CHECK(s == code && st == NULL && strstr(err.msg, name) && (!needle || strstr(err.msg, needle)),
          "%s: got status %d, message '%s' (want %d, '%s')", name, (int)s, err.msg, (int)code,
          needle ? needle : "");
    if (s == MD_OK)
        md_safetensors_close(st);
}

static void test_roundtrip(void)
{
    float a[6] = {1.5f, -2.0f, 3.25f, 0.0f, -0.125f, 1e30f};
    uint16_t h[5] = {0x3c00, 0xc000, 0x0001, 0x7bff, 0x8000};
    int64_t scalar = -1234567890123LL;
    uint8_t u[3] = {0, 127, 255};
    uint16_t bf[4] = {0x3f80, 0x4000, 0xbf80, 0x0000};
    md_safetensors_entry e[] = {
        {"h", {MD_F16, 1, {5}, h}},
        {"a.weight", {MD_F32, 2, {2, 3}, a}},
        {"scalar", {MD_I64, 0, {0}, &scalar}},
        {"u", {MD_U8, 1, {3}, u}},
        {"bf", {MD_BF16, 4, {1, 2, 2, 1}, bf}},
        {"empty", {MD_F32, 2, {0, 4}, NULL}},
    };
    char path[512];
    path_of(path, sizeof path, "good.safetensors");
    md_error err = {0};
    md_status s = md_safetensors_write(path, e, sizeof e / sizeof e[0], &err);
    CHECK(s == MD_OK);
    if (s != MD_OK) {
        fprintf(stderr, "write: %s\n", err.msg);
        return;
    }
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    CHECK(access(tmp, F_OK) != 0);

    md_safetensors *st = NULL;
    s = md_safetensors_open(path, &st, &err);
    CHECK(s == MD_OK);
    if (s != MD_OK) {
        fprintf(stderr, "open: %s\n", err.msg);
        return;
    }
    CHECK(md_safetensors_count(st) == 6);
    CHECK(strcmp(md_safetensors_path(st), path) == 0);
    CHECK(md_safetensors_metadata(st, "format") && !strcmp(md_safetensors_metadata(st, "format"), "pt"));
    CHECK(md_safetensors_metadata(st, "nope") == NULL);
    CHECK(md_safetensors_find(st, "missing") == NULL);

    const md_tensor *t = md_safetensors_find(st, "a.weight");
    CHECK(t && t->dtype == MD_F32 && t->ndim == 2 && t->shape[0] == 2 && t->shape[1] == 3);
    CHECK(t && memcmp(t->data, a, sizeof a) == 0);
    CHECK(t && (uintptr_t)t->data % 4 == 0);
    t = md_safetensors_find(st, "h");
    CHECK(t && t->dtype == MD_F16 && t->ndim == 1 && t->shape[0] == 5 && !memcmp(t->data, h, sizeof h));
    t = md_safetensors_find(st, "scalar");
    CHECK(t && t->dtype == MD_I64 && t->ndim == 0 && md_tensor_numel(t) == 1);
    CHECK(t && memcmp(t->data, &scalar, 8) == 0);
    CHECK(t && (uintptr_t)t->data % 8 == 0);
    t = md_safetensors_find(st, "u");
    CHECK(t && t->dtype == MD_U8 && !memcmp(t->data, u, 3));
    t = md_safetensors_find(st, "bf");
    CHECK(t && t->dtype == MD_BF16 && t->ndim == 4 && t->shape[1] == 2 && t->shape[2] == 2);
    CHECK(t && md_bf16_to_f32(((const uint16_t *)t->data)[2]) == -1.0f);
    t = md_safetensors_find(st, "empty");
    CHECK(t && t->ndim == 2 && t->shape[0] == 0 && t->shape[1] == 4 && md_tensor_nbytes(t) == 0);
    /* names and tensors by index agree with find */
    for (size_t i = 0; i < md_safetensors_count(st); i++)
        CHECK(md_safetensors_find(st, md_safetensors_name(st, i)) == md_safetensors_tensor(st, i));
    CHECK(md_safetensors_name(st, 99) == NULL && md_safetensors_tensor(st, 99) == NULL);
    md_safetensors_close(st);

    /* Truncations at every interesting point of the good file. */
    size_t n = 0;
    unsigned char *bytes = (unsigned char *)md_test_read_file(path, &n);
    if (!CHECK(bytes != NULL, "cannot read %s", path))
        return;
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = (hlen << 8) | bytes[i];
    size_t cuts[] = {0, 1, 7, 8, 9, 8 + (size_t)hlen / 2, 8 + (size_t)hlen - 1, 8 + (size_t)hlen,
                     8 + (size_t)hlen + 3, n - 1};
    for (size_t c = 0; c < sizeof cuts / sizeof cuts[0]; c++) {
        char name[64];
        snprintf(name, sizeof name, "cut%zu.safetensors", cuts[c]);
        char p[512];
        path_of(p, sizeof p, name);
        write_bytes(p, bytes, cuts[c]);
        expect_fail(name, MD_ERR_FORMAT, "truncated");
    }
    free(bytes);

    /* Writing zero tensors gives a valid, empty file. */
    path_of(path, sizeof path, "none.safetensors");
    CHECK(md_safetensors_write(path, NULL, 0, &err) == MD_OK);
    CHECK(md_safetensors_open(path, &st, &err) == MD_OK);
    if (st) {
        CHECK(md_safetensors_count(st) == 0);
        md_safetensors_close(st);
    }
    /* Metadata besides "format" (an MoE single file's settings). */
    path_of(path, sizeof path, "meta.safetensors");
    const char *meta[] = {"segmoe_config", "{\"num_experts\":4}", "architecture", "{}"};
    CHECK(md_safetensors_write_meta(path, e, 2, meta, 2, &err) == MD_OK);
    st = NULL;
    CHECK(md_safetensors_open(path, &st, &err) == MD_OK);
    if (st) {
        const char *v = md_safetensors_metadata(st, "segmoe_config");
        CHECK(v && !strcmp(v, "{\"num_experts\":4}"));
        v = md_safetensors_metadata(st, "architecture");
        CHECK(v && !strcmp(v, "{}"));
        v = md_safetensors_metadata(st, "format");
        CHECK(v && !strcmp(v, "pt"));
        CHECK(md_safetensors_count(st) == 2);
        md_safetensors_close(st);
    }
    const char *clash[] = {"format", "x"};
    CHECK(md_safetensors_write_meta(path, e, 2, clash, 1, &err) == MD_ERR_INVALID);
}

static void test_write_errors(void)
{
    float a[2] = {1, 2};
    md_safetensors_entry dup[] = {{"x", {MD_F32, 1, {2}, a}}, {"x", {MD_F32, 1, {2}, a}}};
    char path[512];
    path_of(path, sizeof path, "dup.safetensors");
    md_error err = {0};
    CHECK(md_safetensors_write(path, dup, 2, &err) == MD_ERR_INVALID);
    CHECK(access(path, F_OK) != 0);

    path_of(path, sizeof path, "no/such/dir/x.safetensors");
    CHECK(md_safetensors_write(path, dup, 1, &err) == MD_ERR_IO);
    CHECK(strstr(err.msg, "x.safetensors") != NULL);
}

static void test_corrupt(void)
{
    unsigned char data[64];
    for (int i = 0; i < 64; i++)
        data[i] = (unsigned char)i;
    write_raw("hlen_big.safetensors", "{}", 1000, NULL, 0);
    expect_fail("hlen_big.safetensors", MD_ERR_FORMAT, "header length");
    write_raw("hlen_huge.safetensors", "{}", (uint64_t)1 << 62, NULL, 0);
    expect_fail("hlen_huge.safetensors", MD_ERR_FORMAT, NULL);
    write_raw("badjson.safetensors", "{\"a\": {\"dtype\": \"F32\", ", 0, data, 16);
    expect_fail("badjson.safetensors", MD_ERR_FORMAT, "JSON");
    write_raw("trailing.safetensors", "{} x", 0, NULL, 0);
    expect_fail("trailing.safetensors", MD_ERR_FORMAT, "trailing");
    write_raw("array.safetensors", "[1, 2]  ", 0, NULL, 0);
    expect_fail("array.safetensors", MD_ERR_FORMAT, "object");
    write_raw("dtype.safetensors",
              "{\"a\": {\"dtype\": \"F8\", \"shape\": [4], \"data_offsets\": [0, 4]}}", 0, data, 4);
    expect_fail("dtype.safetensors", MD_ERR_FORMAT, "F8");
    write_raw("mismatch.safetensors",
              "{\"w\": {\"dtype\": \"F32\", \"shape\": [2, 3], \"data_offsets\": [0, 20]}}", 0,
              data, 24);
    expect_fail("mismatch.safetensors", MD_ERR_FORMAT, "'w' has shape [2, 3]");
    write_raw("overlap.safetensors",
              "{\"a\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [0, 16]},"
              " \"b\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [8, 24]}}",
              0, data, 24);
    expect_fail("overlap.safetensors", MD_ERR_FORMAT, "overlap");
    write_raw("pastend.safetensors",
              "{\"a\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [0, 16]}}", 0, data, 8);
    expect_fail("pastend.safetensors", MD_ERR_FORMAT, "truncated");
    /* one dimension more than a tensor can hold */
    char hdr[256], needle[32];
    int used = snprintf(hdr, sizeof hdr, "{\"a\": {\"dtype\": \"U8\", \"shape\": [4");
    for (int d = 1; d <= MD_MAX_DIMS; d++)
        used += snprintf(hdr + used, sizeof hdr - (size_t)used, ", 1");
    snprintf(hdr + used, sizeof hdr - (size_t)used, "], \"data_offsets\": [0, 4]}}");
    write_raw("ndim.safetensors", hdr, 0, data, 4);
    snprintf(needle, sizeof needle, "%d dimensions", MD_MAX_DIMS + 1);
    expect_fail("ndim.safetensors", MD_ERR_FORMAT, needle);
    write_raw("negdim.safetensors",
              "{\"a\": {\"dtype\": \"U8\", \"shape\": [-4], \"data_offsets\": [0, 4]}}", 0, data, 4);
    expect_fail("negdim.safetensors", MD_ERR_FORMAT, "shape");
    write_raw("fracdim.safetensors",
              "{\"a\": {\"dtype\": \"U8\", \"shape\": [1.5], \"data_offsets\": [0, 4]}}", 0, data, 4);
    expect_fail("fracdim.safetensors", MD_ERR_FORMAT, "shape");
    write_raw("backwards.safetensors",
              "{\"a\": {\"dtype\": \"U8\", \"shape\": [4], \"data_offsets\": [4, 0]}}", 0, data, 4);
    expect_fail("backwards.safetensors", MD_ERR_FORMAT, "data_offsets");
    write_raw("nooffsets.safetensors", "{\"a\": {\"dtype\": \"U8\", \"shape\": [4]}}", 0, data, 4);
    expect_fail("nooffsets.safetensors", MD_ERR_FORMAT, "data_offsets");
    write_raw("dupname.safetensors",
              "{\"a\": {\"dtype\": \"U8\", \"shape\": [4], \"data_offsets\": [0, 4]},"
              " \"a\": {\"dtype\": \"U8\", \"shape\": [4], \"data_offsets\": [4, 8]}}",
              0, data, 8);
    expect_fail("dupname.safetensors", MD_ERR_FORMAT, "twice");
    write_raw("hugeshape.safetensors",
              "{\"a\": {\"dtype\": \"F64\", \"shape\": [4294967296, 4294967296, 4294967296],"
              " \"data_offsets\": [0, 8]}}",
              0, data, 8);
    expect_fail("hugeshape.safetensors", MD_ERR_FORMAT, "'a' has shape");
    write_raw("badmeta.safetensors", "{\"__metadata__\": {\"k\": 3}}", 0, NULL, 0);
    expect_fail("badmeta.safetensors", MD_ERR_FORMAT, "metadata");
    expect_fail("does-not-exist.safetensors", MD_ERR_IO, NULL);

    /* An F32 right after a 2-byte F16 is misaligned in the mapping; it
     * must still read correctly (from an aligned copy). */
    unsigned char mis[8 + 4 + 2];
    float v = 3.5f;
    uint16_t one = 0x3c00;
    memcpy(mis, &one, 2);
    memcpy(mis + 2, &v, 4);
    write_raw("misaligned.safetensors",
              "{\"h\": {\"dtype\": \"F16\", \"shape\": [1], \"data_offsets\": [0, 2]},"
              " \"f\": {\"dtype\": \"F32\", \"shape\": [], \"data_offsets\": [2, 6]}}",
              0, mis, 6);
    char path[512];
    path_of(path, sizeof path, "misaligned.safetensors");
    md_safetensors *st = NULL;
    md_error err = {0};
    CHECK(md_safetensors_open(path, &st, &err) == MD_OK);
    if (st) {
        const md_tensor *f = md_safetensors_find(st, "f");
        CHECK(f && f->ndim == 0 && (uintptr_t)f->data % 4 == 0 && *(const float *)f->data == 3.5f);
        const md_tensor *hh = md_safetensors_find(st, "h");
        CHECK(hh && md_f16_to_f32(*(const uint16_t *)hh->data) == 1.0f);
        md_safetensors_close(st);
    }
}

int main(void)
{
    if (!md_test_make_temp_dir(dir, sizeof dir, "md_st_test_"))
        return 2;
    test_roundtrip();
    test_write_errors();
    test_corrupt();
    md_test_remove_tree(dir);
    return md_test_finish("test_safetensors");
}
