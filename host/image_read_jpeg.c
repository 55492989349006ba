/* JPEG decoding through libjpeg(-turbo). Its errors arrive through
 * error_exit, which jumps back here with the library's message. */
#include <errno.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <jerror.h>

#include "image_read.h"

typedef struct jpeg_fail {
    struct jpeg_error_mgr mgr;
    jmp_buf jump;
    char msg[JMSG_LENGTH_MAX];
} jpeg_fail;

static void on_jpeg_error(j_common_ptr cinfo)
{
    jpeg_fail *e = (jpeg_fail *)cinfo->err;
    e->mgr.format_message(cinfo, e->msg);
    longjmp(e->jump, 1);
}

/* Warnings are ignored except a premature end of file, which libjpeg
 * would otherwise paper over with gray rows. */
static void on_jpeg_warning(j_common_ptr cinfo, int level)
{
    jpeg_fail *e = (jpeg_fail *)cinfo->err;
    if (level == -1 && e->mgr.msg_code == JWRN_JPEG_EOF) {
        snprintf(e->msg, sizeof e->msg, "the file is truncated");
        longjmp(e->jump, 1);
    }
}

/* Decodes the opened stream f and closes it. */
static int decode_jpeg(FILE *f, const char *path, int max_side, md_image *out, mdh_error *err)
{
    struct jpeg_decompress_struct cinfo;
    jpeg_fail e;
    uint8_t *volatile pixels = NULL;
    uint8_t *volatile row = NULL;
    cinfo.err = jpeg_std_error(&e.mgr);
    e.mgr.error_exit = on_jpeg_error;
    e.mgr.emit_message = on_jpeg_warning;
    e.msg[0] = '\0';
    if (setjmp(e.jump)) {
        jpeg_destroy_decompress(&cinfo);
        fclose(f);
        free(pixels);
        free(row);
        return mdh_fail(err, MDIFF_ERR_FORMAT, "%s: not a valid JPEG: %s", path, e.msg);
    }
    jpeg_create_decompress(&cinfo);
    jpeg_stdio_src(&cinfo, f);
    jpeg_read_header(&cinfo, TRUE);
    if (cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK) {
        snprintf(e.msg, sizeof e.msg, "CMYK JPEGs are not supported (convert it to RGB)");
        longjmp(e.jump, 1);
    }
    if (cinfo.image_width > (unsigned)max_side || cinfo.image_height > (unsigned)max_side) {
        snprintf(e.msg, sizeof e.msg, "%ux%u is larger than %d pixels a side", cinfo.image_width,
                 cinfo.image_height, max_side);
        longjmp(e.jump, 1);
    }
    cinfo.out_color_space = JCS_RGB;
    jpeg_start_decompress(&cinfo);
    size_t w = cinfo.output_width, h = cinfo.output_height;
    pixels = malloc(w * h * 4);
    row = malloc(w * 3);
    if (!pixels || !row) {
        snprintf(e.msg, sizeof e.msg, "out of memory for %zux%zu pixels", w, h);
        longjmp(e.jump, 1);
    }
    while (cinfo.output_scanline < h) {
        size_t y = cinfo.output_scanline;
        JSAMPROW rows[1] = {row};
        jpeg_read_scanlines(&cinfo, rows, 1);
        uint8_t *dst = pixels + y * w * 4;
        for (size_t x = 0; x < w; x++) {
            dst[4 * x] = row[3 * x];
            dst[4 * x + 1] = row[3 * x + 1];
            dst[4 * x + 2] = row[3 * x + 2];
            dst[4 * x + 3] = 255;
        }
    }
    jpeg_finish_decompress(&cinfo);
    jpeg_destroy_decompress(&cinfo);
    fclose(f);
    free(row);
    out->width = (int)w;
    out->height = (int)h;
    out->rgba = pixels;
    return MDIFF_OK;
}

int md_image_read_jpeg(const char *path, md_image *out, mdh_error *err)
{
    out->width = out->height = 0;
    out->rgba = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return mdh_fail(err, MDIFF_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    return decode_jpeg(f, path, MD_IMAGE_MAX_SIDE, out, err);
}

int md_image_decode_jpeg(const void *data, size_t size, const char *name, int max_side,
                         md_image *out, mdh_error *err)
{
    out->width = out->height = 0;
    out->rgba = NULL;
    FILE *f = size ? fmemopen((void *)data, size, "rb") : NULL;
    if (!f)
        return mdh_fail(err, MDIFF_ERR_NOMEM, "%s: out of memory", name);
    return decode_jpeg(f, name, max_side, out, err);
}
