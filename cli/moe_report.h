/* What the CLI and batch mode report about an MoE generation's routing:
 * --moe-stats (the statistics the library's router trace feeds, written
 * as JSON and a labelled heatmap) and the library's routing health (the
 * `-v` summary line, batch manifests). */
#ifndef MD_CLI_MOE_REPORT_H
#define MD_CLI_MOE_REPORT_H

#include <stddef.h>

#include "../host/moe_routes_record.h"
#include "../host/moe_stats.h"
#include "engine.h"

typedef struct md_moe_report {
    const mdiff_router_trace_api *trace;
    md_moe_stats *stats;
    mdh_routes_record *routes; /* with --moe-stats: every layer's choice per step */
    int step;
} md_moe_report;

/* Whether the model and library can trace routing (0 for a dense model). */
int md_moe_report_available(const md_cli_engine *e);
/* Fresh statistics (and, with_routes, a routes record), and the trace set
 * on the engine's context for the next generation. MDIFF_ERR_NOMEM or
 * MDIFF_ERR_UNSUPPORTED on failure. */
int md_moe_report_begin(md_moe_report *r, md_cli_engine *e, int with_routes);
/* Takes the trace off the context. */
void md_moe_report_end(md_moe_report *r, md_cli_engine *e);
/* The statistics as JSON, the heatmap PNG beside it and, when recorded,
 * the routes file FILE.routes.json beside FILE.json (for a generation of
 * `steps` steps; a model whose routes cannot be recorded gets a warning,
 * the statistics stand). */
int md_moe_report_write(const md_moe_report *r, const char *json, const char *png, int steps,
                        mdh_error *err);
/* -v: "MoE expert work skipped: P% (N of M expert-rows)" into buf. */
void md_moe_report_skipped_line(const md_moe_report *r, char *buf, size_t cap);
void md_moe_report_free(md_moe_report *r);

/* The library's routing health of the engine's last generation; 0 when
 * the library lacks the feature or measured nothing (out->layers == 0). */
int md_moe_health(md_cli_engine *e, mdiff_routing_health *out);
/* One line for -v: "routing: experts used per layer 4/4 4/4 3/4 (of slots >= 0.5%),
 * least share 0.1%, most 47.4%"; 0 when nothing was measured. */
/* -v: restarts the model's expert-memory counters before a generation, and
 * after it writes "expert memory: peak ... of ... MiB resident (bound ...);
 * N loads, M hits, E evictions" into buf. 0 on a dense model. */
void md_expert_memory_begin(md_cli_engine *e);
int md_expert_memory_line(md_cli_engine *e, uint64_t bound, char *buf, size_t cap);
int md_moe_health_line(md_cli_engine *e, char *buf, size_t cap);

#endif
