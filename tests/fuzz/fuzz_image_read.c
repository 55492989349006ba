/* PNG and JPEG input (init images, masks, --from-png), through the file
 * path as hosts use it, plus a PNG's text chunks. The decoders refuse
 * sides above MD_IMAGE_MAX_SIDE before allocating; a small image can still
 * declare up to 16384 x 16384 pixels (1 GiB RGBA), so the run's memory
 * limit (-rss_limit_mb, tools/fuzz.sh) must allow that: it is what the
 * reader accepts by design, not a finding. */
#include <stdint.h>

#include "fuzz_file.h"
#include "host/image_read.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = md_fuzz_file(data, size, ".img");
    if (!path)
        return 0;
    md_image img = {0};
    mdh_error err = {0};
    if (md_image_read(path, &img, &err) == MDIFF_OK) {
        volatile uint8_t sink = 0;
        size_t n = (size_t)img.width * (size_t)img.height * 4;
        sink ^= img.rgba[0] ^ img.rgba[n - 1]; /* the buffer holds every pixel */
        (void)sink;
        md_image_free(&img);
    }
    char *text = NULL;
    if (md_png_read_text(path, "parameters", &text, &err) == MDIFF_OK)
        free(text);
    return 0;
}
