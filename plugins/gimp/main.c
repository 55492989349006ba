/* The plug-in's procedures:
 *   plug-in-moediffuse-txt2img        a new image from a prompt
 *   plug-in-moediffuse-txt2img-layer  a new layer in an image
 *   plug-in-moediffuse-img2img        the active layer reworked (img2img), or
 *                                     only its selected part (inpainting)
 * Results are new layers carrying their parameters in a parasite. */
#include <string.h>

#include "mdg.h"

static void query(void);
static void run(const gchar *name, gint nparams, const GimpParam *param, gint *nreturn_vals,
                GimpParam **return_vals);

const GimpPlugInInfo PLUG_IN_INFO = {NULL, NULL, query, run};

MAIN()

/* Arguments after run-mode (and image, drawable) shared by every procedure. */
#define MDG_COMMON_ARGS                                                                            \
    {GIMP_PDB_STRING, "model", "Diffusers folder or .safetensors file (\"\" = $MOEDIFFUSE_MODEL)"}, \
        {GIMP_PDB_STRING, "prompt", "What to draw"},                                               \
        {GIMP_PDB_STRING, "negative-prompt", "What to avoid (\"\" = nothing)"},                    \
        {GIMP_PDB_INT32, "steps", "Denoising steps (1..1000)"},                                    \
        {GIMP_PDB_FLOAT, "guidance", "Classifier-free guidance scale"},                            \
        {GIMP_PDB_INT32, "seed", "Seed (-1 = random)"},                                            \
        {GIMP_PDB_STRING, "sampler", "ddim, euler, euler_a, dpmpp_2m, euler_karras, dpmpp_2m_karras"}
enum { COMMON = 7 };

static void query(void)
{
    static const GimpParamDef txt2img_args[] = {
        {GIMP_PDB_INT32, "run-mode", "The run mode { RUN-INTERACTIVE (0), RUN-NONINTERACTIVE (1) }"},
        MDG_COMMON_ARGS,
        {GIMP_PDB_INT32, "width", "Width in pixels (0 = the model's native size)"},
        {GIMP_PDB_INT32, "height", "Height in pixels (0 = the model's native size)"}};
    static const GimpParamDef txt2img_ret[] = {{GIMP_PDB_IMAGE, "image", "The new image"}};
    static const GimpParamDef layer_args[] = {
        {GIMP_PDB_INT32, "run-mode", "The run mode { RUN-INTERACTIVE (0), RUN-NONINTERACTIVE (1) }"},
        {GIMP_PDB_IMAGE, "image", "Input image"},
        {GIMP_PDB_DRAWABLE, "drawable", "Input drawable (unused)"},
        MDG_COMMON_ARGS,
        {GIMP_PDB_INT32, "width", "Width in pixels (0 = the image's)"},
        {GIMP_PDB_INT32, "height", "Height in pixels (0 = the image's)"}};
    static const GimpParamDef img2img_args[] = {
        {GIMP_PDB_INT32, "run-mode", "The run mode { RUN-INTERACTIVE (0), RUN-NONINTERACTIVE (1) }"},
        {GIMP_PDB_IMAGE, "image", "Input image"},
        {GIMP_PDB_DRAWABLE, "drawable", "The layer to rework"},
        MDG_COMMON_ARGS,
        {GIMP_PDB_FLOAT, "strength", "How much to change, 0 < strength <= 1"}};
    static const GimpParamDef layer_ret[] = {{GIMP_PDB_LAYER, "layer", "The new layer"}};

    gimp_install_procedure(MDG_PROC_TXT2IMG, "Create an image from a prompt with moe-diffuse",
                           "Runs a Stable Diffusion or SegMoE model on the CPU through "
                           "libmoediffuse. The parameters are kept in the layer's \"" MDG_PARASITE
                           "\" parasite.",
                           "moe-diffuse", "MIT", "2025", "moe-diffuse: Text to Image...", "",
                           GIMP_PLUGIN, G_N_ELEMENTS(txt2img_args), G_N_ELEMENTS(txt2img_ret),
                           txt2img_args, txt2img_ret);
    gimp_plugin_menu_register(MDG_PROC_TXT2IMG, "<Image>/File/Create");
    gimp_install_procedure(MDG_PROC_TXT2IMG_LAYER, "Add a layer generated from a prompt",
                           "Like " MDG_PROC_TXT2IMG ", into a new layer of this image.",
                           "moe-diffuse", "MIT", "2025", "Text to _Layer...", "RGB*, GRAY*",
                           GIMP_PLUGIN, G_N_ELEMENTS(layer_args), G_N_ELEMENTS(layer_ret),
                           layer_args, layer_ret);
    gimp_plugin_menu_register(MDG_PROC_TXT2IMG_LAYER, "<Image>/Filters/moe-diffuse");
    gimp_install_procedure(MDG_PROC_IMG2IMG, "Rework a layer, or its selected part, from a prompt",
                           "img2img on the active layer; with a selection, inpainting: only the "
                           "selected area is repainted (and the new layer is masked to it).",
                           "moe-diffuse", "MIT", "2025", "_Image to Image / Inpaint...",
                           "RGB*, GRAY*", GIMP_PLUGIN, G_N_ELEMENTS(img2img_args),
                           G_N_ELEMENTS(layer_ret), img2img_args, layer_ret);
    gimp_plugin_menu_register(MDG_PROC_IMG2IMG, "<Image>/Filters/moe-diffuse");
}

static void read_common(const GimpParam *a, mdg_settings *s)
{
    if (a[0].data.d_string && *a[0].data.d_string)
        g_strlcpy(s->model, a[0].data.d_string, sizeof s->model);
    g_strlcpy(s->prompt, a[1].data.d_string ? a[1].data.d_string : "", sizeof s->prompt);
    g_strlcpy(s->negative, a[2].data.d_string ? a[2].data.d_string : "", sizeof s->negative);
    s->steps = a[3].data.d_int32;
    s->guidance = a[4].data.d_float;
    s->seed = a[5].data.d_int32;
    g_strlcpy(s->sampler, a[6].data.d_string ? a[6].data.d_string : "", sizeof s->sampler);
}

/* Settings: the last call's (or defaults), then the arguments or the dialog. */
static gboolean settings_for(const gchar *name, gint nparams, const GimpParam *param, int first,
                             int nextra, gboolean image_mode, gboolean with_size, mdg_settings *s)
{
    mdg_settings_defaults(s);
    if (gimp_get_data_size(name) == sizeof *s)
        gimp_get_data(name, s);
    GimpRunMode mode = param[0].data.d_int32;
    if (mode == GIMP_RUN_NONINTERACTIVE) {
        if (nparams != first + COMMON + nextra)
            return FALSE;
        read_common(param + first, s);
        if (with_size) {
            s->width = param[first + COMMON].data.d_int32;
            s->height = param[first + COMMON + 1].data.d_int32;
        } else if (nextra) {
            s->strength = param[first + COMMON].data.d_float;
        }
    } else if (mode == GIMP_RUN_INTERACTIVE) {
        if (!mdg_dialog(s, image_mode, with_size))
            return FALSE;
    }
    return TRUE;
}

static gchar *layer_name(const mdg_settings *s)
{
    return g_strdup_printf("moe-diffuse: %.60s", s->prompt);
}

static void run(const gchar *name, gint nparams, const GimpParam *param, gint *nreturn_vals,
                GimpParam **return_vals)
{
    static GimpParam values[2];
    static gchar msg[1024];
    *nreturn_vals = 1;
    *return_vals = values;
    values[0].type = GIMP_PDB_STATUS;
    values[0].data.d_status = GIMP_PDB_CALLING_ERROR;
    gegl_init(NULL, NULL);
    GimpRunMode mode = param[0].data.d_int32;
    gboolean txt2img = !strcmp(name, MDG_PROC_TXT2IMG);
    gboolean to_layer = !strcmp(name, MDG_PROC_TXT2IMG_LAYER);
    int first = txt2img ? 1 : 3;
    mdg_settings s;
    if (!settings_for(name, nparams, param, first, txt2img || to_layer ? 2 : 1, !txt2img,
                      txt2img || to_layer, &s)) {
        values[0].data.d_status = mode == GIMP_RUN_INTERACTIVE ? GIMP_PDB_CANCEL : GIMP_PDB_CALLING_ERROR;
        return;
    }
    gint32 image = txt2img ? -1 : param[1].data.d_image;
    gint32 drawable = txt2img ? -1 : param[2].data.d_drawable;
    mdg_pixels init = {0}, mask = {0}, out = {0};
    gint width = s.width, height = s.height, offx = 0, offy = 0;
    gboolean inpaint = FALSE;
    if (!txt2img && !to_layer && !gimp_item_is_layer(drawable)) {
        g_strlcpy(msg, "img2img works on a layer", sizeof msg);
        goto fail;
    }
    if (to_layer) {
        width = width ? width : gimp_image_width(image);
        height = height ? height : gimp_image_height(image);
    } else if (!txt2img) {
        inpaint = !gimp_selection_is_empty(image);
        if (!mdg_read_drawable(drawable, &init) || (inpaint && !mdg_read_selection(image, drawable, &mask))) {
            g_strlcpy(msg, "cannot read the layer's pixels", sizeof msg);
            goto fail;
        }
        gimp_drawable_offsets(drawable, &offx, &offy);
        width = init.width;
        height = init.height;
    }
    gchar params[4096];
    if (mdg_generate(&s, init.data ? &init : NULL, inpaint ? &mask : NULL, width, height, &out, params,
                     sizeof params, msg, sizeof msg) != GIMP_PDB_SUCCESS)
        goto fail;
    gchar *lname = layer_name(&s);
    gint32 layer;
    if (txt2img) {
        width = width ? width : out.width;
        height = height ? height : out.height;
        image = gimp_image_new(width, height, GIMP_RGB);
        layer = mdg_add_layer(image, 0, 0, &out, width, height, 0, 0, lname, params);
        values[1].type = GIMP_PDB_IMAGE;
        values[1].data.d_image = image;
        if (mode == GIMP_RUN_INTERACTIVE)
            gimp_display_new(image);
    } else {
        gimp_image_undo_group_start(image);
        gint32 parent = to_layer ? 0 : gimp_item_get_parent(drawable);
        gint pos = to_layer ? 0 : gimp_image_get_item_position(image, drawable);
        layer = mdg_add_layer(image, parent, pos, &out, width, height, offx, offy, lname, params);
        if (layer >= 0 && inpaint) /* outside the selection the original shows through */
            gimp_layer_add_mask(layer, gimp_layer_create_mask(layer, GIMP_ADD_MASK_SELECTION));
        gimp_image_undo_group_end(image);
        values[1].type = GIMP_PDB_LAYER;
        values[1].data.d_layer = layer;
        if (mode != GIMP_RUN_NONINTERACTIVE)
            gimp_displays_flush();
    }
    g_free(lname);
    if (layer < 0) {
        g_strlcpy(msg, "cannot add the result layer", sizeof msg);
        goto fail;
    }
    if (mode == GIMP_RUN_INTERACTIVE)
        gimp_set_data(name, &s, sizeof s);
    *nreturn_vals = 2;
    values[0].data.d_status = GIMP_PDB_SUCCESS;
    g_free(init.data);
    g_free(mask.data);
    g_free(out.data);
    return;
fail:
    g_free(init.data);
    g_free(mask.data);
    g_free(out.data);
    *nreturn_vals = 2;
    values[0].data.d_status = GIMP_PDB_EXECUTION_ERROR;
    values[1].type = GIMP_PDB_STRING;
    values[1].data.d_string = msg;
}
