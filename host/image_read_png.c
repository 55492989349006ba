/* PNG decoding and text chunks through libpng. libpng reports errors by
 * longjmp: each function keeps its jump target and its allocations in one
 * frame, and the error callback copies libpng's message for mdh_error. */
#include <errno.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "image_read.h"

typedef struct png_reader {
    char msg[160];
} png_reader;

static void on_png_error(png_structp png, png_const_charp msg)
{
    png_reader *r = png_get_error_ptr(png);
    snprintf(r->msg, sizeof r->msg, "%s", msg);
    png_longjmp(png, 1);
}

static void on_png_warning(png_structp png, png_const_charp msg)
{
    (void)png;
    (void)msg; /* harmless (e.g. a known-incorrect sRGB profile) */
}

/* libpng allocates (and clears) a text chunk's declared length before
 * reading it and bounds only IDAT's, so a 100-byte file declaring a 2 GB
 * zTXt costs seconds and gigabytes. Every chunk must therefore fit in what
 * is left of the file; a short file stops the walk (libpng reports it). */
static int check_chunk_lengths(FILE *f, uint64_t size, const char *path, mdh_error *err)
{
    if (size < 8 || fseek(f, 8, SEEK_SET) != 0)
        return MDIFF_OK;
    uint64_t left = size - 8;
    unsigned char h[8];
    while (left >= 8 && fread(h, 1, 8, f) == 8) {
        left -= 8;
        uint64_t len = (uint64_t)h[0] << 24 | (uint64_t)h[1] << 16 | (uint64_t)h[2] << 8 | h[3];
        if (len + 4 > left)
            return mdh_fail(err, MDIFF_ERR_FORMAT,
                            "%s: not a valid PNG: a chunk declares %llu bytes, more than the file "
                            "holds",
                            path, (unsigned long long)len);
        if (memcmp(h + 4, "IEND", 4) == 0 || fseek(f, (long)len + 4, SEEK_CUR) != 0)
            break;
        left -= len + 4;
    }
    return MDIFF_OK;
}

/* The stream checked and rewound; size is the bytes it holds (0: unknown). */
static int checked_png(FILE *f, uint64_t size, const char *path, mdh_error *err)
{
    int st = check_chunk_lengths(f, size, path, err);
    if (st == MDIFF_OK && fseek(f, 0, SEEK_SET) != 0)
        st = mdh_fail(err, MDIFF_ERR_IO, "%s: cannot read: %s", path, strerror(errno));
    if (st != MDIFF_OK)
        fclose(f);
    return st;
}

/* Images held in memory (the server's uploads) are read through the same
 * code as files: a FILE over the buffer. */
static int open_png_memory(const void *data, size_t size, const char *name, FILE **f,
                           mdh_error *err)
{
    *f = size ? fmemopen((void *)data, size, "rb") : NULL;
    if (!*f)
        return size ? mdh_fail(err, MDIFF_ERR_NOMEM, "%s: out of memory", name)
                    : mdh_fail(err, MDIFF_ERR_FORMAT, "%s: the image is empty", name);
    int st = checked_png(*f, size, name, err);
    if (st != MDIFF_OK)
        *f = NULL;
    return st;
}

static int open_png(const char *path, FILE **f, mdh_error *err)
{
    *f = fopen(path, "rb");
    if (!*f)
        return mdh_fail(err, MDIFF_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    uint64_t size = fstat(fileno(*f), &sb) == 0 && sb.st_size > 0 ? (uint64_t)sb.st_size : 0;
    int st = checked_png(*f, size, path, err);
    if (st != MDIFF_OK)
        *f = NULL;
    return st;
}
/* Decodes the opened stream f and closes it. */
static int decode_png(FILE *f, const char *path, int max_side, md_image *out, mdh_error *err)
{
    png_reader r = {{0}};
    png_structp png =
        png_create_read_struct(PNG_LIBPNG_VER_STRING, &r, on_png_error, on_png_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    uint8_t *volatile pixels = NULL;
    png_bytep *volatile rows = NULL;
    if (!png || !info) {
        png_destroy_read_struct(png ? &png : NULL, NULL, NULL);
        fclose(f);
        return mdh_fail(err, MDIFF_ERR_NOMEM, "%s: out of memory", path);
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_read_struct(&png, &info, NULL);
        fclose(f);
        free(pixels);
        free(rows);
        return mdh_fail(err, r.msg[0] ? MDIFF_ERR_FORMAT : MDIFF_ERR_NOMEM, "%s: not a valid PNG: %s",
                       path, r.msg[0] ? r.msg : "out of memory");
    }
    png_init_io(png, f);
    png_set_user_limits(png, (png_uint_32)max_side, (png_uint_32)max_side);
    png_read_info(png, info);
    png_uint_32 w = png_get_image_width(png, info), h = png_get_image_height(png, info);
    int color = png_get_color_type(png, info);
    /* Everything to 8-bit RGBA: palettes and low-depth gray expanded,
     * tRNS to alpha, 16-bit scaled with rounding, gray copied to RGB. */
    png_set_expand(png);
    png_set_scale_16(png);
    if (color == PNG_COLOR_TYPE_GRAY || color == PNG_COLOR_TYPE_GRAY_ALPHA)
        png_set_gray_to_rgb(png);
    if (!(color & PNG_COLOR_MASK_ALPHA) && !png_get_valid(png, info, PNG_INFO_tRNS))
        png_set_add_alpha(png, 0xff, PNG_FILLER_AFTER);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    if (png_get_rowbytes(png, info) != (size_t)w * 4)
        png_error(png, "unexpected row layout after conversion");
    pixels = malloc((size_t)w * h * 4);
    rows = malloc(sizeof(png_bytep) * h);
    if (!pixels || !rows)
        png_error(png, "out of memory for the pixels");
    for (png_uint_32 y = 0; y < h; y++)
        rows[y] = pixels + (size_t)y * w * 4;
    png_read_image(png, rows);
    png_read_end(png, NULL);
    png_destroy_read_struct(&png, &info, NULL);
    fclose(f);
    free(rows);
    out->width = (int)w;
    out->height = (int)h;
    out->rgba = pixels;
    return MDIFF_OK;
}

int md_image_read_png(const char *path, md_image *out, mdh_error *err)
{
    out->width = out->height = 0;
    out->rgba = NULL;
    FILE *f;
    int st = open_png(path, &f, err);
    return st != MDIFF_OK ? st : decode_png(f, path, MD_IMAGE_MAX_SIDE, out, err);
}

int md_image_decode_png(const void *data, size_t size, const char *name, int max_side,
                        md_image *out, mdh_error *err)
{
    out->width = out->height = 0;
    out->rgba = NULL;
    FILE *f;
    int st = open_png_memory(data, size, name, &f, err);
    return st != MDIFF_OK ? st : decode_png(f, name, max_side, out, err);
}

static int valid_utf8(const unsigned char *s)
{
    while (*s) {
        int n = *s < 0x80             ? 0
                : (*s & 0xe0) == 0xc0 ? 1
                : (*s & 0xf0) == 0xe0 ? 2
                : (*s & 0xf8) == 0xf0 ? 3
                                      : -1;
        if (n < 0)
            return 0;
        s++;
        for (int i = 0; i < n; i++, s++)
            if ((*s & 0xc0) != 0x80)
                return 0;
    }
    return 1;
}

static char *latin1_to_utf8(const char *s)
{
    size_t n = strlen(s);
    char *out = malloc(2 * n + 1), *o = out;
    if (!out)
        return NULL;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p < 0x80) {
            *o++ = (char)*p;
        } else {
            *o++ = (char)(0xc0 | (*p >> 6));
            *o++ = (char)(0x80 | (*p & 0x3f));
        }
    }
    *o = '\0';
    return out;
}

/* The text chunk `key` of the opened stream f, which it closes. */
static int read_text_chunk(FILE *f, const char *path, const char *key, char **text,
                           mdh_error *err)
{
    unsigned char sig[8] = {0};
    if (fread(sig, 1, 8, f) != 8 || png_sig_cmp(sig, 0, 8) != 0) {
        fclose(f);
        return mdh_fail(err, MDIFF_ERR_FORMAT, "%s: not a PNG file", path);
    }
    png_reader r = {{0}};
    png_structp png =
        png_create_read_struct(PNG_LIBPNG_VER_STRING, &r, on_png_error, on_png_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!png || !info) {
        png_destroy_read_struct(png ? &png : NULL, NULL, NULL);
        fclose(f);
        return mdh_fail(err, MDIFF_ERR_NOMEM, "%s: out of memory", path);
    }
    char *volatile found = NULL;
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_read_struct(&png, &info, NULL);
        fclose(f);
        free(found);
        return mdh_fail(err, MDIFF_ERR_FORMAT, "%s: not a valid PNG: %s", path, r.msg);
    }
    png_init_io(png, f);
    png_set_sig_bytes(png, 8);
    png_set_user_limits(png, MD_IMAGE_MAX_SIDE, MD_IMAGE_MAX_SIDE);
    /* Text may follow the image data: png_read_png reads through to the
     * end, collecting every text chunk in info. */
    png_read_png(png, info, PNG_TRANSFORM_IDENTITY, NULL);
    {
        png_textp t = NULL;
        int n = png_get_text(png, info, &t, NULL);
        for (int i = 0; i < n && !found; i++) {
            if (strcmp(t[i].key, key) != 0)
                continue;
            int itxt = t[i].compression == PNG_ITXT_COMPRESSION_NONE ||
                       t[i].compression == PNG_ITXT_COMPRESSION_zTXt;
            const char *v = t[i].text ? t[i].text : "";
            found = (itxt || valid_utf8((const unsigned char *)v)) ? strdup(v) : latin1_to_utf8(v);
            if (!found)
                png_error(png, "out of memory");
        }
    }
    png_destroy_read_struct(&png, &info, NULL);
    fclose(f);
    if (!found)
        return mdh_fail(err, MDIFF_ERR_FORMAT, "%s: has no '%s' text chunk", path, key);
    *text = found;
    return MDIFF_OK;
}

int md_png_read_text(const char *path, const char *key, char **text, mdh_error *err)
{
    *text = NULL;
    FILE *f;
    int st = open_png(path, &f, err);
    return st != MDIFF_OK ? st : read_text_chunk(f, path, key, text, err);
}

int md_png_decode_text(const void *data, size_t size, const char *name, const char *key,
                       char **text, mdh_error *err)
{
    *text = NULL;
    FILE *f;
    int st = open_png_memory(data, size, name, &f, err);
    return st != MDIFF_OK ? st : read_text_chunk(f, name, key, text, err);
}
