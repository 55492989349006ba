/* The library behind include/moediffuse.h: the context, and the helpers the
 * ABI's source files share. Internal; hosts never see it. */
#ifndef MD_ABI_INTERNAL_H
#define MD_ABI_INTERNAL_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "../include/moediffuse.h"
#include "../models/model.h"
#include "../moe/routing_health.h"

/* What the router-statistics feature keeps per MoE layer. */
typedef struct abi_layer_stats {
    const void *layer; /* the engine's layer, as the key */
    char name[160];
    int num_experts, top_k;
    uint64_t calls, tokens;
    uint64_t *counts;  /* num_experts */
} abi_layer_stats;

/* A loaded model and the backend it was loaded on, shared by every context
 * that uses it (context params' share_model); the last one frees it. */
typedef struct abi_model_ref {
    md_model *model;
    md_backend *loader;
    atomic_int users;
} abi_model_ref;

struct mdiff_context {
    char model_path[1024];
    int threads;
    int top_k;          /* default experts per token of requests that leave it 0; 0 = the model's */
    uint64_t expert_budget; /* default max_expert_memory of requests that leave it 0 */
    md_backend *be;           /* computes this context's generations: the loader, or (sharing
                                 a model) a CPU backend of its own */
    md_model *model;          /* = shared->model; never changed by a generation */
    abi_model_ref *shared;
    md_unet_state *run_state; /* the U-Net state of this context's generations */

    mdiff_progress_fn progress;
    void *progress_user;
    mdiff_log_fn log;
    void *log_user;
    int log_level;

    atomic_int busy;    /* abi_call_state: a try-lock (one call that uses the model at a
                           time) that also records a context_destroy made during it */
    atomic_int cancel;  /* set by api->cancel, cleared when a generation starts */

    int stats_on;
    abi_layer_stats *stats;
    int nstats, stats_cap;

    char backend_note[512]; /* which backend and device run, and why */
    int profile;
    mdiff_router_trace_fn trace;
    void *trace_user;
    int trace_step;         /* denoising steps done in the running generation */
    int trace_total;        /* denoising steps the running generation takes */
    mdiff_router_override_fn override; /* abi/router_override.c */
    void *override_user;

    /* Routing health of the last generation (abi/routing_health.c). */
    md_routing_health health;
    mdiff_layer_health *health_layers;
    int health_cap;
};

/* Struct sizes of ABI 1.0: the smallest a host may pass. Later minors
 * append, so checks compare against these, never against sizeof. */
enum {
    ABI_1_0_IMAGE_SIZE = 40,
    ABI_1_0_CONTEXT_PARAMS_SIZE = 64,
    ABI_1_0_GEN_PARAMS_SIZE = 80,
    ABI_1_3_GEN_PARAMS_SIZE = 128,
    ABI_1_4_GEN_PARAMS_SIZE = 152,
    ABI_1_5_GEN_PARAMS_SIZE = 160,
    ABI_1_6_GEN_PARAMS_SIZE = 192,
    ABI_1_0_EXPERT_SETTINGS_SIZE = 16
};

/* ctx->busy. context_destroy during a call (from another thread, or from the
 * call's own progress callback) cannot free what the call is using: it
 * cancels and marks the context, and the call frees it on its way out. */
enum abi_call_state { ABI_IDLE = 0, ABI_IN_CALL = 1, ABI_DESTROY_PENDING = 2 };

/* Takes the context for one call; MDIFF_ERR_BUSY when it is in use. */
int abi_enter(mdiff_context *ctx);
/* Ends the call; frees the context when it was destroyed meanwhile (the
 * caller must not touch ctx afterwards). */
void abi_leave(mdiff_context *ctx);
/* Whether a context_destroy waits for the running call: the host's
 * callbacks (whose user data may be gone) are no longer called. */
int abi_destroy_pending(const mdiff_context *ctx);
/* Frees the context and everything it owns, at once. */
void abi_context_free(mdiff_context *ctx);

void abi_log(mdiff_context *ctx, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Copies a message into a host buffer (always terminated when cap > 0). */
void abi_message(char *msg, size_t cap, const char *text);
int abi_status(md_status s);

/* Copies min(size, sizeof) bytes of a host struct over `defaults`; fails
 * when the struct is too small to hold its first version. */
int abi_read_struct(void *full, size_t full_size, const void *host, size_t min_size);
/* Writes the library's `full` struct into a host struct of the host's own
 * struct_size (the first min(sizes) bytes; its struct_size kept). */
void abi_write_struct(void *host, const void *full, size_t full_size);

/* Sets the context's default experts per token (0 = the model's own). */
md_status abi_set_top_k(mdiff_context *ctx, int top_k, md_error *err);
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
/* api->merge (abi/merge.c). */
int abi_merge(const mdiff_merge_params *params, char *msg, size_t msg_cap);

/* The request (abi/request.c): a host's struct read over the defaults
 * (pipeline/request.c); the one validation, resolving every default (ctx
 * NULL: only what needs no model). */
int abi_read_gen_params(const mdiff_gen_params *host, mdiff_gen_params *p);
int abi_resolve_request(mdiff_context *ctx, const mdiff_gen_params *in, mdiff_gen_params *out,
                        char *msg, size_t cap);
int abi_resolve_params(mdiff_context *ctx, const mdiff_gen_params *params, mdiff_gen_params *out,
                       char *msg, size_t msg_cap);
/* Routing health: counts cleared before a generation, checked (and a
 * collapse logged) after a successful one. */
void abi_health_begin(mdiff_context *ctx);
void abi_health_end(mdiff_context *ctx);
const void *abi_routing_health_api(void);
const void *abi_router_stats_api(void);
const void *abi_expert_settings_api(void);
const void *abi_router_trace_api(void);
const void *abi_router_override_api(void);
const void *abi_describe_api(void);
const void *abi_devices_api(void);
const void *abi_profile_api(void);
const void *abi_expert_memory_api(void);
const void *abi_lora_api(void);
const void *abi_model_files_api(void);

/* Writes text into a host buffer as describe/report do: at most cap bytes,
 * returns the whole length. */
int abi_text_out(char *out, size_t cap, const char *text);

#endif
