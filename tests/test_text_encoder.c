/* CLIP text encoder against the reference tensors: for every golden case
 * and each of text_encoder / text_encoder_2 that has recorded ids, the
 * last hidden state, the penultimate state (with and without final
 * LayerNorm) and the projected pooled output (SDXL te2) from the recorded
 * ids, on the CPU backend (f32 files in tiny-sd-dense, f16 elsewhere).
 * Also: one row alone equals the same row of a batch, repeated calls are
 * identical and leave the arena where it was, the pooled output is the
 * final state at the first EOS, and bad requests and missing or misshapen
 * weights fail with messages naming the problem. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config_json.h"
#include "io/safetensors.h"
#include "io/weights.h"
#include "test_support.h"
#include "text/text_encoder.h"
#include "text/tokenizer.h"

#define T MD_CLIP_CONTEXT

static double worst_err;

static void report(const char *kase, const char *name, double err, double tol)
{
    int ok = err <= tol;
    printf("  %-18s %-46s max_rel_err %.3e  tol %.0e  %s\n", kase, name, err, tol,
           ok ? "PASS" : "FAIL");
    CHECK(ok, "%s %s: error %.3e over %.0e", kase, name, err, tol);
    if (err > worst_err)
        worst_err = err;
}

typedef struct te_case {
    md_clip_config cfg;
    md_safetensors *st;
    md_weights *w;
    md_text_encoder *te;
} te_case;

static int open_encoder(const char *dir, const char *te_name, md_backend *be, te_case *c)
{
    char path[4200];
    md_error err = {0};
    cJSON *j = NULL;
    memset(c, 0, sizeof *c);
    snprintf(path, sizeof path, "%s/%s/config.json", dir, te_name);
    md_status st = md_json_read_file(path, &j, &err);
    if (st == MD_OK)
        st = md_clip_config_from_json(j, path, &c->cfg, &err);
    cJSON_Delete(j);
    snprintf(path, sizeof path, "%s/%s/model.safetensors", dir, te_name);
    if (st == MD_OK)
        st = md_safetensors_open(path, &c->st, &err);
    if (st == MD_OK) {
        c->w = md_weights_new(te_name);
        st = c->w ? md_weights_add_file(c->w, c->st, &err) : MD_ERR_NOMEM;
    }
    if (st == MD_OK)
        st = md_text_encoder_load(&c->te, &c->cfg, c->w, be, &err);
    CHECK(st == MD_OK, "opening %s/%s: %s", dir, te_name, err.msg);
    return st == MD_OK;
}

static void close_encoder(te_case *c)
{
    md_text_encoder_free(c->te);
    md_weights_free(c->w);
    md_safetensors_close(c->st);
}

static void compare(const char *kase, const md_safetensors *g, const char *rec, const float *got,
                    size_t n)
{
    md_tensor desc = {0};
    float *want = md_test_golden_f32(g, rec, &desc);
    size_t numel = want ? (size_t)md_tensor_numel(&desc) : 0;
    CHECK(!want || numel == n, "%s %s: %zu values, expected %zu", kase, rec, numel, n);
    if (want && numel == n)
        report(kase, rec, md_test_rel_err(got, want, n), 1e-4);
    free(want);
}

/* Runs one encoder of one case against its records. */
static void check_encoder(const char *dir, const char *kase, const char *te_name,
                          const md_safetensors *g, md_backend *be)
{
    char rec[256];
    snprintf(rec, sizeof rec, "%s.ids", te_name);
    if (!md_safetensors_find(g, rec))
        return;
    md_tensor desc = {0};
    int32_t *ids = md_test_golden_i32(g, rec, &desc);
    const int nd = desc.ndim;
    const int64_t *dims = desc.shape;
    te_case c;
    if (!ids || nd != 2 || dims[1] != T || !open_encoder(dir, te_name, be, &c)) {
        CHECK(ids && nd == 2 && dims[1] == T, "%s %s: bad shape", kase, rec);
        free(ids);
        return;
    }
    const int batch = (int)dims[0];
    const int d = c.cfg.hidden_size;
    const md_clip_config *cfg = md_text_encoder_config(c.te);
    const size_t n = (size_t)batch * T * (size_t)d;
    float *last = malloc(n * sizeof *last), *pen = malloc(n * sizeof *pen);
    float *pen_ln = malloc(n * sizeof *pen_ln);
    float *proj = cfg->projection_dim ? malloc((size_t)batch * cfg->projection_dim * sizeof *proj)
                                      : NULL;
    float *pooled = malloc((size_t)batch * (size_t)d * sizeof *pooled);
    md_text_outputs out = {.last_hidden = last, .skipped_hidden = pen, .skip = 1,
                           .pooled_projected = proj, .pooled = pooled};
    md_error err = {0};
    size_t mark = be->arena_mark(be);
    md_status st = md_text_encoder_forward(c.te, be, ids, batch, &out, &err);
    CHECK(st == MD_OK, "%s %s forward: %s", kase, te_name, err.msg);
    md_text_outputs out_ln = {.skipped_hidden = pen_ln, .skip = 1, .skipped_final_ln = 1};
    if (st == MD_OK)
        st = md_text_encoder_forward(c.te, be, ids, batch, &out_ln, &err);
    CHECK(st == MD_OK, "%s %s forward (final LN): %s", kase, te_name, err.msg);
    CHECK(be->arena_mark(be) == mark, "%s %s: the arena moved from %zu to %zu", kase, te_name,
          mark, be->arena_mark(be));
    if (st == MD_OK) {
        char name[300];
        snprintf(name, sizeof name, "%s.last_hidden_state", te_name);
        compare(kase, g, name, last, n);
        snprintf(name, sizeof name, "%s.penultimate_hidden_state", te_name);
        compare(kase, g, name, pen, n);
        snprintf(name, sizeof name, "%s.penultimate_hidden_state_final_ln", te_name);
        if (md_safetensors_find(g, name))
            compare(kase, g, name, pen_ln, n);
        snprintf(name, sizeof name, "%s.text_embeds", te_name);
        if (md_safetensors_find(g, name)) {
            CHECK(proj != NULL, "%s %s: no projection loaded", kase, te_name);
            if (proj)
                compare(kase, g, name, proj, (size_t)batch * cfg->projection_dim);
        }
        snprintf(name, sizeof name, "%s.eos_index", te_name);
        if (md_safetensors_find(g, name)) {
            md_tensor eos_desc = {0};
            int32_t *eos = md_test_golden_i32(g, name, &eos_desc);
            size_t ne = eos ? (size_t)md_tensor_numel(&eos_desc) : 0;
            for (int b = 0; eos && b < batch && b < (int)ne; b++) {
                /* pooled must be the final state at exactly that position */
                const float *want = last + ((size_t)b * T + (size_t)eos[b]) * (size_t)d;
                CHECK(memcmp(want, pooled + (size_t)b * d, (size_t)d * sizeof *want) == 0,
                      "%s %s row %d: pooled is not the state at eos index %d", kase, te_name, b,
                      eos[b]);
            }
            free(eos);
        }
    }

    /* a repeated call is bit-identical; row 1 alone equals row 1 of the batch */
    if (st == MD_OK && batch >= 2) {
        float *again = malloc(n * sizeof *again);
        md_text_outputs o2 = {.last_hidden = again};
        st = md_text_encoder_forward(c.te, be, ids, batch, &o2, &err);
        CHECK(st == MD_OK && memcmp(again, last, n * sizeof *again) == 0,
              "%s %s: a repeated call differs", kase, te_name);
        o2.last_hidden = again;
        st = md_text_encoder_forward(c.te, be, ids + T, 1, &o2, &err);
        size_t row = (size_t)T * (size_t)d;
        CHECK(st == MD_OK && md_test_rel_err(again, last + row, row) <= 1e-6,
              "%s %s: row 1 alone differs from row 1 of the batch (%.3e)", kase, te_name,
              md_test_rel_err(again, last + row, row));
        free(again);
    }
    CHECK(be->arena_mark(be) == mark, "%s %s: the arena moved", kase, te_name);
    free(last);
    free(pen);
    free(pen_ln);
    free(proj);
    free(pooled);
    free(ids);
    close_encoder(&c);
}

/* Requests the encoder must refuse, and weights it must not load. */
static void check_errors(const char *dir, md_backend *be)
{
    te_case c;
    if (!open_encoder(dir, "text_encoder", be, &c))
        return;
    int32_t ids[T];
    for (int i = 0; i < T; i++)
        ids[i] = i < 3 ? 49406 + (i == 2) : 49407;
    ids[1] = 320;
    float *buf = malloc((size_t)T * c.cfg.hidden_size * sizeof *buf);
    md_error err = {0};
    md_text_outputs out = {.last_hidden = buf};

    ids[5] = 49408;
    md_status st = md_text_encoder_forward(c.te, be, ids, 1, &out, &err);
    CHECK(st == MD_ERR_INVALID && strstr(err.msg, "49408"), "id out of range: %d %s", st, err.msg);
    ids[5] = 49407;
    st = md_text_encoder_forward(c.te, be, ids, 0, &out, &err);
    CHECK(st == MD_ERR_INVALID, "batch 0: %d", st);
    md_text_outputs bad_skip = {.skipped_hidden = buf, .skip = c.cfg.num_layers + 1};
    st = md_text_encoder_forward(c.te, be, ids, 1, &bad_skip, &err);
    CHECK(st == MD_ERR_INVALID && strstr(err.msg, "skip"), "skip too large: %d %s", st, err.msg);
    /* skip = num_layers is the embedding output: token + position rows */
    md_text_outputs emb = {.skipped_hidden = buf, .skip = c.cfg.num_layers};
    st = md_text_encoder_forward(c.te, be, ids, 1, &emb, &err);
    if (st == MD_OK) {
        const md_tensor *tok = md_weights_find(c.w, "text_model.embeddings.token_embedding.weight");
        const md_tensor *pos =
            md_weights_find(c.w, "text_model.embeddings.position_embedding.weight");
        int d = c.cfg.hidden_size;
        float *tr = malloc((size_t)d * sizeof *tr), *pr = malloc((size_t)d * sizeof *pr);
        md_widen_to_f32(tok->dtype, (const char *)tok->data + (size_t)320 * d * md_dtype_size(tok->dtype),
                        tr, (size_t)d);
        md_widen_to_f32(pos->dtype, (const char *)pos->data + (size_t)1 * d * md_dtype_size(pos->dtype),
                        pr, (size_t)d);
        double e = 0;
        for (int k = 0; k < d; k++)
            e = fmax(e, fabs((double)buf[d + k] - ((double)tr[k] + (double)pr[k])));
        CHECK(e < 1e-6, "skip = num_layers is not the embedding (%.3e)", e);
        free(tr);
        free(pr);
    }
    CHECK(st == MD_OK, "skip = num_layers: %s", err.msg);
    if (!md_text_encoder_config(c.te)->projection_dim) {
        md_text_outputs po = {.pooled_projected = buf};
        st = md_text_encoder_forward(c.te, be, ids, 1, &po, &err);
        CHECK(st == MD_ERR_INVALID && strstr(err.msg, "text_projection"),
              "projection without weight: %d %s", st, err.msg);
    }
    for (int i = 0; i < T; i++)
        ids[i] = 320;
    md_text_outputs pooled = {.pooled = buf};
    st = md_text_encoder_forward(c.te, be, ids, 1, &pooled, &err);
    CHECK(st == MD_ERR_INVALID && strstr(err.msg, "end-of-text"), "no eos: %d %s", st, err.msg);

    /* a weight missing, then one misshapen: the loader names it */
    md_weights *partial = md_weights_new("text_encoder");
    const char *dropped = "text_model.encoder.layers.1.mlp.fc2.bias";
    for (size_t i = 0; i < md_safetensors_count(c.st); i++) {
        const char *name = md_safetensors_name(c.st, i);
        if (strcmp(name, dropped) != 0)
            md_weights_add(partial, name, md_safetensors_tensor(c.st, i), "test", &err);
    }
    md_text_encoder *te2 = NULL;
    st = md_text_encoder_load(&te2, &c.cfg, partial, be, &err);
    CHECK(st != MD_OK && te2 == NULL && strstr(err.msg, dropped), "missing weight: %d %s", st,
          err.msg);
    md_weights_free(partial);

    md_clip_config wide = c.cfg;
    wide.intermediate_size *= 2;
    st = md_text_encoder_load(&te2, &wide, c.w, be, &err);
    CHECK(st != MD_OK && te2 == NULL && strstr(err.msg, "fc1"), "misshapen weight: %d %s", st,
          err.msg);
    md_clip_config proj = c.cfg;
    proj.projection_dim = 8;
    st = md_text_encoder_load(&te2, &proj, c.w, be, &err);
    CHECK(st != MD_OK && strstr(err.msg, "text_projection"), "projection missing: %d %s", st,
          err.msg);
    md_clip_config short_pos = c.cfg;
    short_pos.max_positions = 16;
    st = md_text_encoder_load(&te2, &short_pos, c.w, be, &err);
    CHECK(st == MD_ERR_INVALID, "16 positions: %d %s", st, err.msg);
    free(buf);
    close_encoder(&c);
}

int main(void)
{
    const char *root = md_test_golden_dir();
    int ncase = 0, cases = 0;
    char **names = root ? md_test_list_cases(root, &ncase) : NULL;
    if (!names || ncase == 0) {
        fprintf(stderr, "MD_GOLDEN_DIR is not set or has no cases\n");
        return 1;
    }
    md_backend *be = md_test_cpu_backend(2);
    if (!be)
        return 1;
    for (int i = 0; i < ncase; i++) {
        char dir[4096], path[4200];
        snprintf(dir, sizeof dir, "%s/%s", root, names[i]);
        snprintf(path, sizeof path, "%s/golden.safetensors", dir);
        md_safetensors *g = md_test_exists(path) ? md_test_open_safetensors(path) : NULL;
        if (g) {
            if (md_safetensors_find(g, "text_encoder.ids"))
                cases++;
            check_encoder(dir, names[i], "text_encoder", g, be);
            check_encoder(dir, names[i], "text_encoder_2", g, be);
            md_safetensors_close(g);
        }
    }
    md_test_free_names(names, ncase);
    CHECK(cases >= 2, "only %d golden cases with text encoder records", cases);
    char dense[4096];
    snprintf(dense, sizeof dense, "%s/tiny-sd-dense", root);
    check_errors(dense, be);
    md_backend_destroy(be);
    printf("  largest error %.3e\n", worst_err);
    return md_test_finish("test_text_encoder");
}
