/* The GIMP 2.10 plug-in of moe-diffuse: shared declarations. The plug-in
 * runs out of process (GIMP starts it per call) and links libmoediffuse. */
#ifndef MDG_H
#define MDG_H

#include <libgimp/gimp.h>

#include "moediffuse.h"

#define MDG_PROC_TXT2IMG "plug-in-moediffuse-txt2img"
#define MDG_PROC_TXT2IMG_LAYER "plug-in-moediffuse-txt2img-layer"
#define MDG_PROC_IMG2IMG "plug-in-moediffuse-img2img"
#define MDG_PARASITE "moediffuse-parameters"

/* Everything a call needs; remembered between calls with gimp_set_data. */
typedef struct mdg_settings {
    gchar model[1024];
    gchar prompt[2048];
    gchar negative[1024];
    gchar sampler[32];
    gint32 width, height; /* txt2img; 0 = the model's native size */
    gint32 steps;
    gint32 seed;          /* -1 = a random seed */
    gdouble guidance;
    gdouble strength;     /* img2img and inpainting */
} mdg_settings;

void mdg_settings_defaults(mdg_settings *s);

/* An RGB image in memory, as the plug-in passes it around. */
typedef struct mdg_pixels {
    guchar *data;
    gint width, height, channels;
} mdg_pixels;

/* One generation with GIMP's progress bar, at width x height rounded down
 * to the model's size multiple (0 = native). init/mask may be NULL. On
 * success *out holds RGB pixels (g_free them) and `params` the parameter
 * text to store; else msg says why. */
GimpPDBStatusType mdg_generate(const mdg_settings *s, const mdg_pixels *init, const mdg_pixels *mask,
                               gint width, gint height, mdg_pixels *out, gchar *params,
                               gsize params_cap, gchar *msg, gsize msg_cap);

/* Pixels of a drawable as RGB, and of the selection over its area as one
 * grey channel. */
gboolean mdg_read_drawable(gint32 drawable, mdg_pixels *out);
gboolean mdg_read_selection(gint32 image, gint32 drawable, mdg_pixels *out);
/* A new layer holding `px` (scaled to width x height), inserted at
 * `position` under `parent`, with the parameters parasite. */
gint32 mdg_add_layer(gint32 image, gint32 parent, gint position, const mdg_pixels *px, gint width,
                     gint height, gint offx, gint offy, const gchar *name, const gchar *params);

/* The interactive dialog; FALSE when the user cancelled. */
gboolean mdg_dialog(mdg_settings *s, gboolean image_mode, gboolean with_size);

#endif
