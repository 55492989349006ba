/* Routing of a batch entry: the --moe-stats files beside its image and
 * the routing summary its manifest record carries. */
#ifndef MD_CLI_BATCH_ROUTING_H
#define MD_CLI_BATCH_ROUTING_H

#include <cjson/cJSON.h>
#include <stddef.h>

#include "engine.h"

/* "DIR/00003.png" -> "DIR/00003.moe.json" and "DIR/00003.moe.png"; 0 when
 * they do not fit in cap. */
int md_batch_stats_names(const char *output, char *json, char *png, size_t cap);

/* The library's routing health of the engine's last generation as
 * {"collapse", "experts_used" (fraction of all layers' experts),
 * "collapsed_layers", "layers", "min_share"}; NULL when nothing was
 * measured (a dense model) or out of memory. */
cJSON *md_batch_routing_json(md_cli_engine *e);

#endif
