/* Routing statistics of MoE layers, gathered from the library's router
 * trace (moediffuse.h "moe.router_trace": one md_moe_call per event).
 *
 * Per U-Net call (one per sampling step when guidance is batched) and per
 * layer it keeps: the tokens routed to each expert (a token with top-k
 * counts once for each of its k experts), the mean per-token entropy of the
 * softmax over all gate logits, the entropy of the load distribution and
 * the busiest expert's share of the routed slots. A call ends when a layer
 * already seen in it comes round again, or at md_moe_stats_next_call. */
#ifndef MD_MOE_STATS_H
#define MD_MOE_STATS_H

#include <stdint.h>

#include "host_error.h"

typedef struct md_moe_stats md_moe_stats;

md_moe_stats *md_moe_stats_new(void); /* NULL on out-of-memory */
void md_moe_stats_free(md_moe_stats *s);

/* One MoE layer call, as the U-Net's observer or the library's router
 * trace (moediffuse.h) reports it. */
typedef struct md_moe_call {
    const char *layer; /* module path: identifies the layer */
    int num_experts, top_k;
    int64_t rows;
    const float *logits;  /* [rows, num_experts] */
    const int32_t *choice; /* [rows, top_k]; -1 = an empty slot */
    int64_t skipped;       /* expert-rows the skip threshold dropped (router event, 1.4) */
    int row_groups;        /* 2: classifier-free guidance, the unconditional rows first,
                              then the conditional ones (moediffuse.h 1.4); 0 or 1: one */
} md_moe_call;

/* Out-of-memory is remembered and reported by the writers. */
void md_moe_stats_record(md_moe_stats *s, const md_moe_call *call);
/* Starts a new call explicitly (optional). */
void md_moe_stats_next_call(md_moe_stats *s);

/* Expert work skipped over everything recorded: expert-rows dropped by
 * the skip threshold, of all rows * top_k slots. */
void md_moe_stats_skipped(const md_moe_stats *s, int64_t *skipped, int64_t *slots);

int md_moe_stats_calls(const md_moe_stats *s);
int md_moe_stats_layers(const md_moe_stats *s);
/* Layer `layer`'s name, and its experts in *num_experts; NULL past the end. */
const char *md_moe_stats_layer(const md_moe_stats *s, int layer, int *num_experts);
/* 1 when some call came with guidance's two row groups (load_half set). */
int md_moe_stats_halves(const md_moe_stats *s);
/* 1 when recording ran out of memory (the figures are incomplete). */
int md_moe_stats_failed(const md_moe_stats *s);
/* Figures of one (call, layer); NULL load when absent. load has
 * num_experts entries, valid until the next observation. */
typedef struct md_moe_stats_cell {
    const char *layer;
    int num_experts, top_k;
    int64_t rows;
    const int64_t *load;
    /* With guidance: load_half[0] the unconditional (negative prompt)
     * rows' slots, load_half[1] the conditional ones'; NULL without. */
    const int64_t *load_half[2];
    double entropy;       /* mean per-token entropy of the gate softmax, nats */
    double load_entropy;  /* entropy of load / sum(load), nats */
    double busiest_share; /* max(load) / sum(load) */
} md_moe_stats_cell;
int md_moe_stats_get(const md_moe_stats *s, int call, int layer, md_moe_stats_cell *out);

/* JSON: {"calls", "skipped_fraction", "cfg_halves", "layers": [{name,
 * num_experts, top_k, total_load, and with guidance uncond_load, cond_load}],
 * "records": [{call, layer, rows, load, (load_uncond, load_cond,) entropy,
 * load_entropy, busiest_share}]}. Loads are slots per expert. */
int md_moe_stats_write_json(const md_moe_stats *s, const char *path, mdh_error *err);
#endif
