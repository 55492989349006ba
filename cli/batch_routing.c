/* Routing files and manifest summary of batch entries (batch_routing.h). */
#include "batch_routing.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "moe_report.h"

int md_batch_stats_names(const char *output, char *json, char *png, size_t cap)
{
    const char *slash = strrchr(output, '/');
    const char *dot = strrchr(output, '.');
    int stem = dot && (!slash || dot > slash) ? (int)(dot - output) : (int)strlen(output);
    int a = snprintf(json, cap, "%.*s.moe.json", stem, output);
    int b = snprintf(png, cap, "%.*s.moe.png", stem, output);
    return a > 0 && b > 0 && (size_t)a < cap && (size_t)b < cap;
}

static double rounded(double v, double unit)
{
    return round(v / unit) * unit;
}

cJSON *md_batch_routing_json(md_cli_engine *e)
{
    mdiff_routing_health h;
    if (!md_moe_health(e, &h) || h.experts_total <= 0)
        return NULL;
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    cJSON_AddBoolToObject(o, "collapse", h.collapse != 0);
    cJSON_AddNumberToObject(o, "experts_used", rounded((double)h.experts_used / h.experts_total, 1e-4));
    cJSON_AddNumberToObject(o, "collapsed_layers", h.collapsed_layers);
    cJSON_AddNumberToObject(o, "layers", h.layers);
    cJSON_AddNumberToObject(o, "min_share", rounded(h.min_share, 1e-5));
    return o;
}
