/* Init-image decoding: PNGs of every colour type and depth (8-bit RGB,
 * RGBA, gray, gray+alpha, palette with transparency, 16-bit, 1-bit,
 * interlaced) and JPEGs (RGB, gray) written here with libpng/libjpeg and
 * decoded back; errors for broken files; PNG text chunks; fitting to a
 * size; the stb-written JPEG/BMP outputs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jpeglib.h>
#include <png.h>

#include "host/image_read.h"
#include "host/image_resize.h"
#include "host/image_write.h"
#include "test_support.h"


static char dir[256];

static const char *tmp_path(const char *name)
{
    static char buf[4][512];
    static int next;
    char *p = buf[next++ % 4];
    snprintf(p, 512, "%s/%s", dir, name);
    return p;
}

enum { W = 7, H = 5 }; /* odd sizes catch row-stride mistakes */

/* The reference picture: distinct values per pixel and channel. */
static void ref_pixel(int x, int y, uint8_t rgba[4])
{
    rgba[0] = (uint8_t)(x * 36 + y * 3);
    rgba[1] = (uint8_t)(y * 50 + x);
    rgba[2] = (uint8_t)(255 - x * 30 - y * 7);
    rgba[3] = (uint8_t)(x * 20 + y * 40 + 10);
}

/* Writes a PNG of `color` type/`depth` from per-pixel samples produced by
 * sample(x, y, channel) (already in the PNG's range). */
static void write_png(const char *path, int color, int depth, int interlace,
                      unsigned (*sample)(int, int, int), int channels, const png_color *palette,
                      int npalette, const png_byte *trans, int ntrans)
{
    FILE *f = fopen(path, "wb");
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    if (setjmp(png_jmpbuf(png))) {
        CHECK(0, "writing %s failed", path);
        png_destroy_write_struct(&png, &info);
        fclose(f);
        return;
    }
    png_init_io(png, f);
    png_set_IHDR(png, info, W, H, depth, color,
                 interlace ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    if (palette)
        png_set_PLTE(png, info, palette, npalette);
    if (trans)
        png_set_tRNS(png, info, trans, ntrans, NULL);
    png_write_info(png, info);
    if (depth == 16)
        png_set_swap(png); /* rows below are host-endian */
    int passes = interlace ? png_set_interlace_handling(png) : 1;
    size_t rowbytes = png_get_rowbytes(png, info);
    png_bytep row = calloc(1, rowbytes);
    for (int pass = 0; pass < passes; pass++)
        for (int y = 0; y < H; y++) {
            memset(row, 0, rowbytes);
            for (int x = 0; x < W; x++)
                for (int c = 0; c < channels; c++) {
                    unsigned v = sample(x, y, c);
                    size_t i = (size_t)x * channels + c;
                    if (depth == 16)
                        ((uint16_t *)row)[i] = (uint16_t)v;
                    else if (depth == 8)
                        row[i] = (png_byte)v;
                    else /* 1-bit gray: MSB first */
                        row[i / 8] |= (png_byte)(v << (7 - i % 8));
                }
            png_write_row(png, row);
        }
    png_write_end(png, info);
    png_destroy_write_struct(&png, &info);
    fclose(f);
    free(row);
}

static unsigned s_rgb(int x, int y, int c)
{
    uint8_t p[4];
    ref_pixel(x, y, p);
    return p[c];
}
static unsigned s_gray(int x, int y, int c)
{
    uint8_t p[4];
    ref_pixel(x, y, p);
    return c ? p[3] : p[0];
}
static unsigned s_index(int x, int y, int c)
{
    (void)c;
    return (unsigned)((x + y) % 3);
}
static unsigned s_bit(int x, int y, int c)
{
    (void)c;
    return (unsigned)((x ^ y) & 1);
}
static unsigned s_16(int x, int y, int c)
{
    uint8_t p[4];
    ref_pixel(x, y, p);
    return p[c] * 257u + (unsigned)(x * 37 % 200);
}

typedef void (*expect_fn)(int x, int y, uint8_t out[4]);
static void e_rgb(int x, int y, uint8_t o[4])
{
    ref_pixel(x, y, o);
    o[3] = 255;
}
static void e_rgba(int x, int y, uint8_t o[4])
{
    ref_pixel(x, y, o);
}
static void e_gray(int x, int y, uint8_t o[4])
{
    uint8_t p[4];
    ref_pixel(x, y, p);
    o[0] = o[1] = o[2] = p[0];
    o[3] = 255;
}
static void e_gray_alpha(int x, int y, uint8_t o[4])
{
    uint8_t p[4];
    ref_pixel(x, y, p);
    o[0] = o[1] = o[2] = p[0];
    o[3] = p[3];
}
static const png_color k_palette[3] = {{255, 0, 0}, {0, 128, 0}, {10, 20, 250}};
static const png_byte k_trans[3] = {255, 64, 0};
static void e_palette(int x, int y, uint8_t o[4])
{
    int i = (x + y) % 3;
    o[0] = k_palette[i].red;
    o[1] = k_palette[i].green;
    o[2] = k_palette[i].blue;
    o[3] = k_trans[i];
}
static void e_bit(int x, int y, uint8_t o[4])
{
    o[0] = o[1] = o[2] = ((x ^ y) & 1) ? 255 : 0;
    o[3] = 255;
}
/* 16 -> 8 bits rounds: round(v * 255 / 65535) */
static void e_16(int x, int y, uint8_t o[4])
{
    for (int c = 0; c < 3; c++)
        o[c] = (uint8_t)((s_16(x, y, c) * 255u + 32767u) / 65535u);
    o[3] = 255;
}

static void check_decode(const char *name, expect_fn expect, int tolerance)
{
    md_image img;
    mdh_error err = {0};
    const char *path = tmp_path(name);
    int st = md_image_read(path, &img, &err);
    CHECK(st == MDIFF_OK, "%s: %s", name, err.msg);
    if (st != MDIFF_OK)
        return;
    CHECK(img.width == W && img.height == H, "%s: %dx%d", name, img.width, img.height);
    int worst = 0;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            uint8_t want[4];
            expect(x, y, want);
            for (int c = 0; c < 4; c++) {
                int d = abs((int)img.rgba[((size_t)y * W + x) * 4 + c] - want[c]);
                if (d > worst)
                    worst = d;
            }
        }
    CHECK(worst <= tolerance, "%s: pixels off by up to %d (allowed %d)", name, worst, tolerance);
    md_image_free(&img);
}

static void write_jpeg(const char *path, int gray)
{
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr e;
    c.err = jpeg_std_error(&e);
    jpeg_create_compress(&c);
    FILE *f = fopen(path, "wb");
    jpeg_stdio_dest(&c, f);
    c.image_width = W;
    c.image_height = H;
    c.input_components = gray ? 1 : 3;
    c.in_color_space = gray ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, 100, TRUE);
    /* no chroma subsampling, so colour survives at this tiny size */
    for (int i = 0; i < c.num_components; i++)
        c.comp_info[i].h_samp_factor = c.comp_info[i].v_samp_factor = 1;
    jpeg_start_compress(&c, TRUE);
    uint8_t row[W * 3];
    while (c.next_scanline < H) {
        int y = (int)c.next_scanline;
        for (int x = 0; x < W; x++) {
            uint8_t p[4];
            ref_pixel(x, y, p);
            if (gray)
                row[x] = p[0];
            else
                memcpy(row + 3 * x, p, 3);
        }
        JSAMPROW r = row;
        jpeg_write_scanlines(&c, &r, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    fclose(f);
}

static void write_bytes(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    fwrite(data, 1, n, f);
    fclose(f);
}

static size_t read_all(const char *path, uint8_t **out)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return 0;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    *out = malloc((size_t)n);
    size_t got = fread(*out, 1, (size_t)n, f);
    fclose(f);
    return got;
}

static void expect_error(const char *name, int want, const char *needle)
{
    md_image img;
    mdh_error err = {0};
    int st = md_image_read(tmp_path(name), &img, &err);
    CHECK(st == want && strstr(err.msg, name) && strstr(err.msg, needle),
          "%s: status %d, message '%s' (want %d and '%s')", name, st, err.msg, want, needle);
    CHECK(img.rgba == NULL, "%s: pixels returned with an error", name);
}

static void test_errors(void)
{
    uint8_t *png = NULL;
    size_t n = read_all(tmp_path("rgb.png"), &png);
    write_bytes(tmp_path("truncated.png"), png, n / 2);
    png[n / 2] ^= 0x55; /* inside IDAT: its CRC no longer matches */
    write_bytes(tmp_path("corrupt.png"), png, n);
    free(png);
    uint8_t *jpg = NULL;
    n = read_all(tmp_path("rgb.jpg"), &jpg);
    write_bytes(tmp_path("truncated.jpg"), jpg, n / 2);
    free(jpg);
    /* A 2 GB zTXt chunk declared in a 40-byte file is refused before
     * libpng allocates it (found by fuzzing: seconds and gigabytes). */
    static const uint8_t huge_ztxt[] = {
        0x89, 'P', 'N', 'G', 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13, 'I', 'H', 'D', 'R', 0, 0, 0, 2,
        0, 0, 0, 2, 8, 2, 0, 0, 0, 0xfd, 0xd4, 0x9a, 0x73, 0x78, 0xff, 0xff, 0xff, 'z', 'T', 'X',
        't', 'p', 'a', 'r', 'a', 'm', 0, 0, 0x78, 0x9c};
    write_bytes(tmp_path("huge_chunk.png"), huge_ztxt, sizeof huge_ztxt);
    write_bytes(tmp_path("text.png"), "hello, not an image\n", 20);
    write_bytes(tmp_path("empty.png"), "", 0);
    expect_error("truncated.png", MDIFF_ERR_FORMAT, "not a valid PNG");
    expect_error("corrupt.png", MDIFF_ERR_FORMAT, "not a valid PNG");
    expect_error("truncated.jpg", MDIFF_ERR_FORMAT, "truncated");
    expect_error("huge_chunk.png", MDIFF_ERR_FORMAT, "more than the file holds");
    {
        char *text = NULL;
        mdh_error err = {0};
        CHECK(md_png_read_text(tmp_path("huge_chunk.png"), "param", &text, &err) ==
                      MDIFF_ERR_FORMAT && strstr(err.msg, "more than the file holds"),
              "huge chunk, text: '%s'", err.msg);
    }
    expect_error("text.png", MDIFF_ERR_FORMAT, "not a PNG or JPEG");
    expect_error("empty.png", MDIFF_ERR_FORMAT, "empty");
    expect_error("missing.png", MDIFF_ERR_IO, "cannot open");
}

static void test_text_chunks(void)
{
    uint8_t rgb[W * H * 3] = {0};
    mdh_error err = {0};
    const char *utf8 = "a caf\xc3\xa9 \xe6\x9d\xb1\xe4\xba\xac\nSteps: 4";
    md_text_chunk chunks[2] = {{"other", "x"}, {"parameters", utf8}};
    CHECK(md_image_write(tmp_path("text_out.png"), rgb, W, H, chunks, 2, &err) == MDIFF_OK, "%s",
          err.msg);
    char *text = NULL;
    CHECK(md_png_read_text(tmp_path("text_out.png"), "parameters", &text, &err) == MDIFF_OK && text &&
              !strcmp(text, utf8),
          "UTF-8 parameters round trip: '%s'", text ? text : err.msg);
    free(text);
    CHECK(md_png_read_text(tmp_path("rgb.png"), "parameters", &text, &err) == MDIFF_ERR_FORMAT &&
              strstr(err.msg, "no 'parameters'"),
          "missing chunk: '%s'", err.msg);
    /* Latin-1 tEXt as the PNG standard defines it */
    FILE *f = fopen(tmp_path("latin1.png"), "wb");
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    png_init_io(png, f);
    png_set_IHDR(png, info, W, H, 8, PNG_COLOR_TYPE_RGB, 0, 0, 0);
    png_text t = {.compression = PNG_TEXT_COMPRESSION_zTXt, .key = "parameters", .text = "caf\xe9"};
    png_set_text(png, info, &t, 1);
    png_write_info(png, info);
    for (int y = 0; y < H; y++)
        png_write_row(png, rgb + (size_t)y * W * 3);
    png_write_end(png, info);
    png_destroy_write_struct(&png, &info);
    fclose(f);
    CHECK(md_png_read_text(tmp_path("latin1.png"), "parameters", &text, &err) == MDIFF_OK && text &&
              !strcmp(text, "caf\xc3\xa9"),
          "Latin-1 zTXt read as UTF-8: '%s'", text ? text : err.msg);
    free(text);
}

static void test_fit(void)
{
    mdh_error err = {0};
    /* 4x2 image: left half black, right half white; alpha 255 */
    uint8_t px[4 * 2 * 4];
    for (int y = 0; y < 2; y++)
        for (int x = 0; x < 4; x++)
            for (int c = 0; c < 4; c++)
                px[(y * 4 + x) * 4 + c] = (uint8_t)(c == 3 || x >= 2 ? 255 : 0);
    md_image img = {4, 2, px};
    float same[4 * 8];
    CHECK(md_image_fit(&img, 4, 2, same, &err) == MDIFF_OK, "%s", err.msg);
    for (int i = 0; i < 8; i++)
        CHECK(same[i] == px[i * 4] / 255.0f, "same size copies exactly");
    /* to 2x1: each output mostly its half (a triangle filter twice as wide) */
    float half[4 * 2];
    CHECK(md_image_fit(&img, 2, 1, half, &err) == MDIFF_OK, "%s", err.msg);
    CHECK(half[0] < 0.2f && half[1] > 0.8f && half[6] == 1.0f, "2x downscale: %g %g", half[0],
          half[1]);
    /* to 2x2 (square): scaled to cover, the centre 2 columns kept */
    float sq[4 * 4];
    CHECK(md_image_fit(&img, 2, 2, sq, &err) == MDIFF_OK, "%s", err.msg);
    CHECK(sq[0] < 0.5f && sq[1] > 0.5f && sq[2] < 0.5f && sq[3] > 0.5f,
          "centre crop keeps both halves: %g %g %g %g", sq[0], sq[1], sq[2], sq[3]);
}

static void test_stb_outputs(void)
{
    uint8_t rgb[W * H * 3];
    for (int i = 0; i < W * H * 3; i++)
        rgb[i] = (uint8_t)(i * 7);
    mdh_error err = {0};
    const char *names[] = {"out.jpg", "out.JPEG", "out.bmp"};
    for (int k = 0; k < 3; k++) {
        CHECK(md_image_write(tmp_path(names[k]), rgb, W, H, NULL, 0, &err) == MDIFF_OK, "%s: %s",
              names[k], err.msg);
        uint8_t *data = NULL;
        size_t n = read_all(tmp_path(names[k]), &data);
        int ok = k < 2 ? n > 4 && data[0] == 0xff && data[1] == 0xd8 && data[n - 2] == 0xff &&
                             data[n - 1] == 0xd9
                       : n > 2 && data[0] == 'B' && data[1] == 'M';
        CHECK(ok, "%s: wrong magic bytes", names[k]);
        free(data);
    }
    md_image back;
    CHECK(md_image_read(tmp_path("out.jpg"), &back, &err) == MDIFF_OK && back.width == W, "%s",
          err.msg);
    md_image_free(&back);
    CHECK(md_image_write(tmp_path("out.gif"), rgb, W, H, NULL, 0, &err) == MDIFF_ERR_INVALID &&
              strstr(err.msg, "out.gif"),
          "unknown extension refused: %s", err.msg);
    CHECK(md_image_write("/nonexistent-dir/x.jpg", rgb, W, H, NULL, 0, &err) == MDIFF_ERR_IO,
          "unwritable jpg: %s", err.msg);
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/md_test_image_read_XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    write_png(tmp_path("rgb.png"), PNG_COLOR_TYPE_RGB, 8, 0, s_rgb, 3, NULL, 0, NULL, 0);
    write_png(tmp_path("rgba.png"), PNG_COLOR_TYPE_RGBA, 8, 0, s_rgb, 4, NULL, 0, NULL, 0);
    write_png(tmp_path("gray.png"), PNG_COLOR_TYPE_GRAY, 8, 0, s_gray, 1, NULL, 0, NULL, 0);
    write_png(tmp_path("gray_alpha.png"), PNG_COLOR_TYPE_GRAY_ALPHA, 8, 0, s_gray, 2, NULL, 0, NULL,
              0);
    write_png(tmp_path("palette.png"), PNG_COLOR_TYPE_PALETTE, 8, 0, s_index, 1, k_palette, 3,
              k_trans, 3);
    write_png(tmp_path("gray1.png"), PNG_COLOR_TYPE_GRAY, 1, 0, s_bit, 1, NULL, 0, NULL, 0);
    write_png(tmp_path("rgb16.png"), PNG_COLOR_TYPE_RGB, 16, 0, s_16, 3, NULL, 0, NULL, 0);
    write_png(tmp_path("interlaced.png"), PNG_COLOR_TYPE_RGBA, 8, 1, s_rgb, 4, NULL, 0, NULL, 0);
    write_jpeg(tmp_path("rgb.jpg"), 0);
    write_jpeg(tmp_path("gray.jpg"), 1);

    check_decode("rgb.png", e_rgb, 0);
    check_decode("rgba.png", e_rgba, 0);
    check_decode("gray.png", e_gray, 0);
    check_decode("gray_alpha.png", e_gray_alpha, 0);
    check_decode("palette.png", e_palette, 0);
    check_decode("gray1.png", e_bit, 0);
    check_decode("rgb16.png", e_16, 0);
    check_decode("interlaced.png", e_rgba, 0);
    check_decode("rgb.jpg", e_rgb, 6); /* quality 100, 4:4:4: colour conversion rounding */
    check_decode("gray.jpg", e_gray, 2);
    test_errors();
    test_text_chunks();
    test_fit();
    test_stb_outputs();

    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return md_test_finish("image read");
}
