/* The library behind include/moediffuse.h: the context, and the helpers the
 * ABI's source files share. Internal; hosts never see it. */
#ifndef MD_ABI_INTERNAL_H
#define MD_ABI_INTERNAL_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "../include/moediffuse.h"
#include "../models/model.h"

/* What the router-statistics feature keeps per MoE layer. */
typedef struct abi_layer_stats {
    const void *layer; /* the engine's layer, as the key */
    char name[160];
    int num_experts, top_k;
    uint64_t calls, tokens;
    uint64_t *counts;  /* num_experts */
} abi_layer_stats;

struct mdiff_context {
    char model_path[1024];
    int threads;
    int top_k;          /* 0 = the model's own */
    md_backend *be;
    md_model *model;
    md_unet_state *run_state; /* the U-Net state of this context's generations */

    mdiff_progress_fn progress;
    void *progress_user;
    mdiff_log_fn log;
    void *log_user;
    int log_level;

    atomic_int busy;    /* try-lock: one call that uses the model at a time */
    atomic_int cancel;  /* set by api->cancel, cleared when a generation starts */

    int stats_on;
    abi_layer_stats *stats;
    int nstats, stats_cap;

    char backend_note[512]; /* which backend and device run, and why */
    int profile;
    mdiff_router_trace_fn trace;
    void *trace_user;
    int trace_step;         /* denoising steps done in the running generation */
};

/* Struct sizes of ABI 1.0: the smallest a host may pass. Later minors
 * append, so checks compare against these, never against sizeof. */
enum {
    ABI_1_0_IMAGE_SIZE = 40,
    ABI_1_0_CONTEXT_PARAMS_SIZE = 64,
    ABI_1_0_GEN_PARAMS_SIZE = 80,
    ABI_1_0_EXPERT_SETTINGS_SIZE = 16
};

/* Takes the context for one call; MDIFF_ERR_BUSY when it is in use. */
int abi_enter(mdiff_context *ctx);
void abi_leave(mdiff_context *ctx);

void abi_log(mdiff_context *ctx, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Copies a message into a host buffer (always terminated when cap > 0). */
void abi_message(char *msg, size_t cap, const char *text);
int abi_status(md_status s);

/* Copies min(size, sizeof) bytes of a host struct over `defaults`; fails
 * when the struct is too small to hold its first version. */
int abi_read_struct(void *full, size_t full_size, const void *host, size_t min_size);

/* (Re)loads the model with a top-k override (0 = the model's own). On
 * failure the context keeps the model it had. */
md_status abi_load_model(mdiff_context *ctx, int top_k, md_error *err);
void abi_stats_clear(mdiff_context *ctx);
void abi_moe_observer(void *user, const md_moe_trace *trace);
/* Hooks the observer to the U-Net only while statistics or a trace want it:
 * observing copies every MoE layer's input and output to the host. */
void abi_update_observer(mdiff_context *ctx);
void abi_trace_event(mdiff_context *ctx, const md_moe_trace *trace);

int abi_context_create(const mdiff_context_params *params, mdiff_context **out, char *msg,
                       size_t msg_cap);
void abi_context_destroy(mdiff_context *ctx);
int abi_generate(mdiff_context *ctx, const mdiff_gen_params *params, mdiff_image *out, char *msg,
                 size_t msg_cap);
int abi_model_info(mdiff_context *ctx, mdiff_model_info *info);
const void *abi_router_stats_api(void);
const void *abi_expert_settings_api(void);
const void *abi_router_trace_api(void);
const void *abi_describe_api(void);
const void *abi_devices_api(void);
const void *abi_profile_api(void);

/* Writes text into a host buffer as describe/report do: at most cap bytes,
 * returns the whole length. */
int abi_text_out(char *out, size_t cap, const char *text);

#endif
