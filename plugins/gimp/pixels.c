/* Pixels between GIMP drawables and memory, through GEGL buffers. */
#include <string.h>

#include "mdg.h"

gboolean mdg_read_drawable(gint32 drawable, mdg_pixels *out)
{
    out->width = gimp_drawable_width(drawable);
    out->height = gimp_drawable_height(drawable);
    out->channels = 3;
    GeglBuffer *buf = gimp_drawable_get_buffer(drawable);
    if (!buf || out->width < 1 || out->height < 1)
        return FALSE;
    out->data = g_malloc((gsize)out->width * out->height * 3);
    /* babl converts grey or indexed drawables to RGB on the way. */
    gegl_buffer_get(buf, GEGL_RECTANGLE(0, 0, out->width, out->height), 1.0,
                    babl_format("R'G'B' u8"), out->data, GEGL_AUTO_ROWSTRIDE, GEGL_ABYSS_NONE);
    g_object_unref(buf);
    return TRUE;
}

gboolean mdg_read_selection(gint32 image, gint32 drawable, mdg_pixels *out)
{
    gint ox = 0, oy = 0;
    gimp_drawable_offsets(drawable, &ox, &oy);
    out->width = gimp_drawable_width(drawable);
    out->height = gimp_drawable_height(drawable);
    out->channels = 1;
    GeglBuffer *buf = gimp_drawable_get_buffer(gimp_image_get_selection(image));
    if (!buf)
        return FALSE;
    out->data = g_malloc((gsize)out->width * out->height);
    /* The selection lives in image coordinates; outside it reads as 0. */
    gegl_buffer_get(buf, GEGL_RECTANGLE(ox, oy, out->width, out->height), 1.0, babl_format("Y u8"),
                    out->data, GEGL_AUTO_ROWSTRIDE, GEGL_ABYSS_NONE);
    g_object_unref(buf);
    return TRUE;
}

gint32 mdg_add_layer(gint32 image, gint32 parent, gint position, const mdg_pixels *px, gint width,
                     gint height, gint offx, gint offy, const gchar *name, const gchar *params)
{
    GimpImageType type = gimp_image_base_type(image) == GIMP_GRAY ? GIMP_GRAYA_IMAGE : GIMP_RGBA_IMAGE;
    gint32 layer = gimp_layer_new(image, name, px->width, px->height, type, 100.0,
                                  GIMP_LAYER_MODE_NORMAL);
    if (layer < 0 || !gimp_image_insert_layer(image, layer, parent, position))
        return -1;
    GeglBuffer *buf = gimp_drawable_get_buffer(layer);
    /* RGB in, babl adds the opaque alpha (and the grey conversion). */
    gegl_buffer_set(buf, GEGL_RECTANGLE(0, 0, px->width, px->height), 0, babl_format("R'G'B' u8"),
                    px->data, GEGL_AUTO_ROWSTRIDE);
    g_object_unref(buf);
    if (px->width != width || px->height != height)
        gimp_layer_scale(layer, width, height, FALSE);
    gimp_layer_set_offsets(layer, offx, offy);
    GimpParasite *p = gimp_parasite_new(MDG_PARASITE, GIMP_PARASITE_PERSISTENT | GIMP_PARASITE_UNDOABLE,
                                        strlen(params) + 1, params);
    gimp_item_attach_parasite(layer, p);
    gimp_parasite_free(p);
    return layer;
}
