/* The interactive dialog: model, prompts, sampler and numbers. */
#include <string.h>

#include "mdg.h" /* libgimp/gimp.h must come before gimpui.h */
#include <libgimp/gimpui.h>

static GtkWidget *add_row(GtkWidget *table, int row, const gchar *label, GtkWidget *w)
{
    GtkWidget *l = gtk_label_new_with_mnemonic(label);
    gtk_misc_set_alignment(GTK_MISC(l), 0.0, 0.5);
    gtk_table_attach(GTK_TABLE(table), l, 0, 1, row, row + 1, GTK_FILL, GTK_FILL, 4, 2);
    gtk_table_attach(GTK_TABLE(table), w, 1, 2, row, row + 1, GTK_EXPAND | GTK_FILL, GTK_FILL, 4, 2);
    gtk_label_set_mnemonic_widget(GTK_LABEL(l), w);
    return w;
}

static GtkWidget *entry(const gchar *text)
{
    GtkWidget *e = gtk_entry_new();
    gtk_entry_set_text(GTK_ENTRY(e), text);
    gtk_entry_set_width_chars(GTK_ENTRY(e), 48);
    return e;
}

static GtkWidget *spin(gdouble value, gdouble lo, gdouble hi, gdouble step, gint digits)
{
    GtkWidget *s = gtk_spin_button_new_with_range(lo, hi, step);
    gtk_spin_button_set_digits(GTK_SPIN_BUTTON(s), digits);
    gtk_spin_button_set_value(GTK_SPIN_BUTTON(s), value);
    return s;
}

gboolean mdg_dialog(mdg_settings *s, gboolean image_mode, gboolean with_size)
{
    gimp_ui_init("moediffuse", FALSE);
    GtkWidget *dlg = gimp_dialog_new("moe-diffuse", "moediffuse", NULL, 0, gimp_standard_help_func,
                                     NULL, "_Cancel", GTK_RESPONSE_CANCEL, "_Generate",
                                     GTK_RESPONSE_OK, NULL);
    GtkWidget *table = gtk_table_new(10, 2, FALSE);
    gtk_container_set_border_width(GTK_CONTAINER(table), 8);
    gtk_box_pack_start(GTK_BOX(gtk_dialog_get_content_area(GTK_DIALOG(dlg))), table, TRUE, TRUE, 0);
    int row = 0;
    GtkWidget *model = add_row(table, row++, "_Model:", entry(s->model));
    GtkWidget *prompt = add_row(table, row++, "_Prompt:", entry(s->prompt));
    GtkWidget *negative = add_row(table, row++, "_Negative prompt:", entry(s->negative));
    GtkWidget *sampler = add_row(table, row++, "S_ampler:", gtk_combo_box_text_new());
    const mdiff_api *api = moediffuse_get_api(MOEDIFFUSE_ABI_MAJOR, MOEDIFFUSE_ABI_MINOR);
    for (int i = 0; api && api->sampler_name(i); i++) {
        gtk_combo_box_text_append_text(GTK_COMBO_BOX_TEXT(sampler), api->sampler_name(i));
        if (!strcmp(api->sampler_name(i), s->sampler))
            gtk_combo_box_set_active(GTK_COMBO_BOX(sampler), i);
    }
    GtkWidget *steps = add_row(table, row++, "_Steps:", spin(s->steps, 1, 1000, 1, 0));
    GtkWidget *guidance = add_row(table, row++, "_Guidance:", spin(s->guidance, 0, 30, 0.5, 1));
    GtkWidget *seed = add_row(table, row++, "S_eed (-1 random):", spin(s->seed, -1, G_MAXINT32, 1, 0));
    GtkWidget *width = NULL, *height = NULL, *strength = NULL;
    if (with_size) {
        width = add_row(table, row++, "_Width (0 native):", spin(s->width, 0, 8192, 8, 0));
        height = add_row(table, row++, "_Height (0 native):", spin(s->height, 0, 8192, 8, 0));
    } else if (image_mode) {
        strength = add_row(table, row++, "St_rength:", spin(s->strength, 0.01, 1, 0.05, 2));
    }
    gtk_widget_show_all(dlg);
    gboolean ok = gimp_dialog_run(GIMP_DIALOG(dlg)) == GTK_RESPONSE_OK;
    if (ok) {
        g_strlcpy(s->model, gtk_entry_get_text(GTK_ENTRY(model)), sizeof s->model);
        g_strlcpy(s->prompt, gtk_entry_get_text(GTK_ENTRY(prompt)), sizeof s->prompt);
        g_strlcpy(s->negative, gtk_entry_get_text(GTK_ENTRY(negative)), sizeof s->negative);
        gchar *name = gtk_combo_box_text_get_active_text(GTK_COMBO_BOX_TEXT(sampler));
        if (name)
            g_strlcpy(s->sampler, name, sizeof s->sampler);
        g_free(name);
        s->steps = gtk_spin_button_get_value_as_int(GTK_SPIN_BUTTON(steps));
        s->guidance = gtk_spin_button_get_value(GTK_SPIN_BUTTON(guidance));
        s->seed = gtk_spin_button_get_value_as_int(GTK_SPIN_BUTTON(seed));
        if (width) {
            s->width = gtk_spin_button_get_value_as_int(GTK_SPIN_BUTTON(width));
            s->height = gtk_spin_button_get_value_as_int(GTK_SPIN_BUTTON(height));
        }
        if (strength)
            s->strength = gtk_spin_button_get_value(GTK_SPIN_BUTTON(strength));
    }
    gtk_widget_destroy(dlg);
    return ok;
}
