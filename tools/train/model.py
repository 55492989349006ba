"""The demo model in plain PyTorch: a CLIP text encoder, a KL-VAE and a
U-Net with per-token top-k MoE feed-forwards. Module names and semantics
follow transformers' CLIPTextModel and diffusers' AutoencoderKL /
UNet2DConditionModel, so state_dict() keys are the diffusers keys the engine
loads (the text encoder's under the "text_model." prefix).

Semantics kept identical to the references: GroupNorm eps (1e-5 U-Net
resnets, 1e-6 transformer GroupNorm and all of the VAE), LayerNorm eps 1e-5,
GEGLU with exact GELU, attention scale head_dim**-0.5, sinusoidal timestep
embedding with flip_sin_to_cos and freq_shift 0, nearest 2x upsampling,
stride-2 downsampling (pad 1 in the U-Net, (0,1,0,1) in the VAE), CLIP's
causal mask and quick_gelu.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


# ---------------------------------------------------------------- text encoder

class CLIPAttention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.q_proj = nn.Linear(dim, dim)
        self.k_proj = nn.Linear(dim, dim)
        self.v_proj = nn.Linear(dim, dim)
        self.out_proj = nn.Linear(dim, dim)

    def forward(self, x, mask):
        b, n, d = x.shape
        h = self.heads

        def split(t):
            return t.view(b, n, h, d // h).transpose(1, 2)

        q, k, v = split(self.q_proj(x)), split(self.k_proj(x)), split(self.v_proj(x))
        a = (q @ k.transpose(-1, -2)) * (d // h) ** -0.5 + mask
        o = a.softmax(-1) @ v
        return self.out_proj(o.transpose(1, 2).reshape(b, n, d))


class CLIPMLP(nn.Module):
    def __init__(self, dim, inner):
        super().__init__()
        self.fc1 = nn.Linear(dim, inner)
        self.fc2 = nn.Linear(inner, dim)

    def forward(self, x):
        x = self.fc1(x)
        return self.fc2(x * torch.sigmoid(1.702 * x))  # quick_gelu


class CLIPLayer(nn.Module):
    def __init__(self, dim, heads, inner):
        super().__init__()
        self.self_attn = CLIPAttention(dim, heads)
        self.layer_norm1 = nn.LayerNorm(dim, eps=1e-5)
        self.mlp = CLIPMLP(dim, inner)
        self.layer_norm2 = nn.LayerNorm(dim, eps=1e-5)

    def forward(self, x, mask):
        x = x + self.self_attn(self.layer_norm1(x), mask)
        return x + self.mlp(self.layer_norm2(x))


class CLIPEmbeddings(nn.Module):
    def __init__(self, vocab, dim, positions):
        super().__init__()
        self.token_embedding = nn.Embedding(vocab, dim)
        self.position_embedding = nn.Embedding(positions, dim)


class CLIPEncoder(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.layers = nn.ModuleList(
            CLIPLayer(cfg["hidden_size"], cfg["num_attention_heads"], cfg["intermediate_size"])
            for _ in range(cfg["num_hidden_layers"]))


class CLIPTextTransformer(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.embeddings = CLIPEmbeddings(cfg["vocab_size"], cfg["hidden_size"],
                                         cfg["max_position_embeddings"])
        self.encoder = CLIPEncoder(cfg)
        self.final_layer_norm = nn.LayerNorm(cfg["hidden_size"], eps=1e-5)


class CLIPTextModel(nn.Module):
    """ids [B, 77] -> last_hidden_state [B, 77, hidden]."""

    def __init__(self, cfg):
        super().__init__()
        self.text_model = CLIPTextTransformer(cfg)

    def forward(self, ids, token_embeds=None):
        """token_embeds, when given, replaces the token embedding lookup
        (training keeps only the rows of the ids it uses trainable)."""
        t = self.text_model
        n = ids.shape[1]
        pos = torch.arange(n, device=ids.device)
        tok = t.embeddings.token_embedding(ids) if token_embeds is None else token_embeds
        x = tok + t.embeddings.position_embedding(pos)[None]
        mask = torch.full((n, n), float("-inf"), device=ids.device).triu(1)
        for layer in t.encoder.layers:
            x = layer(x, mask)
        return t.final_layer_norm(x)


# ---------------------------------------------------------------- shared pieces

def timestep_embedding(t, dim):
    """diffusers get_timestep_embedding, flip_sin_to_cos=True, shift 0."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


class ResnetBlock2D(nn.Module):
    def __init__(self, cin, cout, groups, eps, temb_dim=None):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, cin, eps=eps)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        if temb_dim is not None:
            self.time_emb_proj = nn.Linear(temb_dim, cout)
        self.norm2 = nn.GroupNorm(groups, cout, eps=eps)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        if cin != cout:
            self.conv_shortcut = nn.Conv2d(cin, cout, 1)

    def forward(self, x, temb=None):
        h = self.conv1(F.silu(self.norm1(x)))
        if temb is not None:
            h = h + self.time_emb_proj(F.silu(temb))[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        if hasattr(self, "conv_shortcut"):
            x = self.conv_shortcut(x)
        return x + h


class Downsample2D(nn.Module):
    def __init__(self, c, padding):
        super().__init__()
        self.padding = padding
        self.conv = nn.Conv2d(c, c, 3, stride=2, padding=padding)

    def forward(self, x):
        if self.padding == 0:
            x = F.pad(x, (0, 1, 0, 1))
        return self.conv(x)


class Upsample2D(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class Sampler(nn.Module):
    """Holds one module as '<name>.0' (diffusers' ModuleList of one)."""

    def __init__(self, m):
        super().__init__()
        self.add_module("0", m)

    def forward(self, x):
        return self._modules["0"](x)


# ---------------------------------------------------------------- VAE

class VAEAttention(nn.Module):
    """Single-head spatial self-attention with its own GroupNorm and residual."""

    def __init__(self, c, groups):
        super().__init__()
        self.group_norm = nn.GroupNorm(groups, c, eps=1e-6)
        self.to_q = nn.Linear(c, c)
        self.to_k = nn.Linear(c, c)
        self.to_v = nn.Linear(c, c)
        self.to_out = nn.ModuleList([nn.Linear(c, c)])

    def forward(self, x):
        b, c, h, w = x.shape
        y = self.group_norm(x).view(b, c, h * w).transpose(1, 2)
        q, k, v = self.to_q(y), self.to_k(y), self.to_v(y)
        a = ((q @ k.transpose(1, 2)) * c ** -0.5).softmax(-1)
        o = self.to_out[0](a @ v).transpose(1, 2).reshape(b, c, h, w)
        return x + o


class VAEMid(nn.Module):
    def __init__(self, c, groups):
        super().__init__()
        self.resnets = nn.ModuleList([ResnetBlock2D(c, c, groups, 1e-6), ResnetBlock2D(c, c, groups, 1e-6)])
        self.attentions = nn.ModuleList([VAEAttention(c, groups)])

    def forward(self, x):
        x = self.resnets[0](x)
        x = self.attentions[0](x)
        return self.resnets[1](x)


class EncBlock(nn.Module):
    def __init__(self, cin, cout, n, groups, down):
        super().__init__()
        self.resnets = nn.ModuleList(ResnetBlock2D(cin if i == 0 else cout, cout, groups, 1e-6) for i in range(n))
        if down:
            self.downsamplers = nn.ModuleList([Downsample2D(cout, 0)])

    def forward(self, x):
        for r in self.resnets:
            x = r(x)
        if hasattr(self, "downsamplers"):
            x = self.downsamplers[0](x)
        return x


class DecBlock(nn.Module):
    def __init__(self, cin, cout, n, groups, up):
        super().__init__()
        self.resnets = nn.ModuleList(ResnetBlock2D(cin if i == 0 else cout, cout, groups, 1e-6) for i in range(n))
        if up:
            self.upsamplers = nn.ModuleList([Upsample2D(cout)])

    def forward(self, x):
        for r in self.resnets:
            x = r(x)
        if hasattr(self, "upsamplers"):
            x = self.upsamplers[0](x)
        return x


class Encoder(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        ch, g, n = cfg["block_out_channels"], cfg["norm_num_groups"], cfg["layers_per_block"]
        self.conv_in = nn.Conv2d(cfg["in_channels"], ch[0], 3, padding=1)
        self.down_blocks = nn.ModuleList(
            EncBlock(ch[max(i - 1, 0)], ch[i], n, g, i < len(ch) - 1) for i in range(len(ch)))
        self.mid_block = VAEMid(ch[-1], g)
        self.conv_norm_out = nn.GroupNorm(g, ch[-1], eps=1e-6)
        self.conv_out = nn.Conv2d(ch[-1], 2 * cfg["latent_channels"], 3, padding=1)

    def forward(self, x):
        x = self.conv_in(x)
        for b in self.down_blocks:
            x = b(x)
        x = self.mid_block(x)
        return self.conv_out(F.silu(self.conv_norm_out(x)))


class Decoder(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        ch, g, n = cfg["block_out_channels"], cfg["norm_num_groups"], cfg["layers_per_block"]
        rch = list(reversed(ch))
        self.conv_in = nn.Conv2d(cfg["latent_channels"], ch[-1], 3, padding=1)
        self.mid_block = VAEMid(ch[-1], g)
        self.up_blocks = nn.ModuleList(
            DecBlock(rch[max(i - 1, 0)], rch[i], n + 1, g, i < len(ch) - 1) for i in range(len(ch)))
        self.conv_norm_out = nn.GroupNorm(g, ch[0], eps=1e-6)
        self.conv_out = nn.Conv2d(ch[0], cfg["out_channels"], 3, padding=1)

    def forward(self, z):
        x = self.mid_block(self.conv_in(z))
        for b in self.up_blocks:
            x = b(x)
        return self.conv_out(F.silu(self.conv_norm_out(x)))


class AutoencoderKL(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        L = cfg["latent_channels"]
        self.encoder = Encoder(cfg)
        self.decoder = Decoder(cfg)
        self.quant_conv = nn.Conv2d(2 * L, 2 * L, 1)
        self.post_quant_conv = nn.Conv2d(L, L, 1)

    def encode(self, x):
        """x in [-1, 1] -> (mean, logvar)."""
        m, lv = self.quant_conv(self.encoder(x)).chunk(2, dim=1)
        return m, lv.clamp(-30.0, 20.0)

    def decode(self, z):
        return self.decoder(self.post_quant_conv(z))


# ---------------------------------------------------------------- U-Net

class Attention(nn.Module):
    def __init__(self, dim, ctx_dim, heads):
        super().__init__()
        self.heads = heads
        self.to_q = nn.Linear(dim, dim, bias=False)
        self.to_k = nn.Linear(ctx_dim, dim, bias=False)
        self.to_v = nn.Linear(ctx_dim, dim, bias=False)
        self.to_out = nn.ModuleList([nn.Linear(dim, dim)])

    def forward(self, x, ctx):
        b, n, d = x.shape
        h = self.heads
        q = self.to_q(x).view(b, n, h, d // h).transpose(1, 2)
        k = self.to_k(ctx).view(b, ctx.shape[1], h, d // h).transpose(1, 2)
        v = self.to_v(ctx).view(b, ctx.shape[1], h, d // h).transpose(1, 2)
        a = ((q * (d // h) ** -0.5) @ k.transpose(-1, -2)).softmax(-1)
        return self.to_out[0]((a @ v).transpose(1, 2).reshape(b, n, d))


class GEGLU(nn.Module):
    def __init__(self, dim, inner):
        super().__init__()
        self.proj = nn.Linear(dim, 2 * inner)

    def forward(self, x):
        h, g = self.proj(x).chunk(2, dim=-1)
        return h * F.gelu(g)


class FeedForward(nn.Module):
    """diffusers FeedForward: net.0 = GEGLU, net.1 = dropout (no weights), net.2 = Linear."""

    def __init__(self, dim, inner):
        super().__init__()
        self.net = nn.ModuleList([GEGLU(dim, inner), nn.Identity(), nn.Linear(inner, dim)])

    def forward(self, x):
        return self.net[2](self.net[0](x))


class MoEFeedForward(nn.Module):
    """Per-token top-k MoE of GEGLU feed-forwards.

    gate: Linear(dim, E, bias=False). Each token takes the k largest gate
    logits (ties to the lower index, as torch.topk and the engine do); its
    output is the softmax over those k logits weighting the chosen experts,
    plus the shared expert when present. forward() also returns the Switch
    style load-balancing loss E * sum_e f_e * P_e (f_e: fraction of routed
    slots on expert e, P_e: mean full-softmax probability of e), and keeps
    the last per-expert load in self.last_load for logging.
    """

    def __init__(self, dim, inner, num_experts, top_k, shared):
        super().__init__()
        self.top_k = top_k
        self.gate = nn.Linear(dim, num_experts, bias=False)
        self.experts = nn.ModuleList(FeedForward(dim, inner) for _ in range(num_experts))
        if shared:
            self.shared_expert = FeedForward(dim, inner)
        self.last_load = None

    def forward(self, x):
        shape = x.shape
        x2 = x.reshape(-1, shape[-1])
        logits = self.gate(x2)
        top_v, top_i = logits.topk(self.top_k, dim=-1)
        w = top_v.softmax(-1)
        y = torch.zeros_like(x2)
        E = len(self.experts)
        for e in range(E):
            rows, slot = (top_i == e).nonzero(as_tuple=True)
            if rows.numel() == 0:
                continue
            y.index_add_(0, rows, self.experts[e](x2[rows]) * w[rows, slot, None])
        if hasattr(self, "shared_expert"):
            y = y + self.shared_expert(x2)
        probs = logits.softmax(-1)
        frac = F.one_hot(top_i, E).float().sum(1).mean(0) / self.top_k
        aux = E * (frac.detach() * probs.mean(0)).sum()
        self.last_load = frac.detach()
        return y.view(shape), aux


class BasicTransformerBlock(nn.Module):
    def __init__(self, dim, ctx_dim, heads, moe):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-5)
        self.attn1 = Attention(dim, dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-5)
        self.attn2 = Attention(dim, ctx_dim, heads)
        self.norm3 = nn.LayerNorm(dim, eps=1e-5)
        if moe:
            self.ff = MoEFeedForward(dim, moe["expert_inner_mult"] * dim, moe["num_experts"],
                                     moe["top_k"], moe["shared_expert"])
        else:
            self.ff = FeedForward(dim, 4 * dim)

    def forward(self, x, ctx):
        n = self.norm1(x)
        x = x + self.attn1(n, n)
        x = x + self.attn2(self.norm2(x), ctx)
        f = self.ff(self.norm3(x))
        if isinstance(f, tuple):
            return x + f[0], f[1]
        return x + f, x.new_zeros(())


class Transformer2DModel(nn.Module):
    def __init__(self, c, ctx_dim, heads, groups, moe):
        super().__init__()
        self.norm = nn.GroupNorm(groups, c, eps=1e-6)
        self.proj_in = nn.Conv2d(c, c, 1)
        self.transformer_blocks = nn.ModuleList([BasicTransformerBlock(c, ctx_dim, heads, moe)])
        self.proj_out = nn.Conv2d(c, c, 1)

    def forward(self, x, ctx):
        b, c, h, w = x.shape
        y = self.proj_in(self.norm(x)).permute(0, 2, 3, 1).reshape(b, h * w, c)
        aux = x.new_zeros(())
        for blk in self.transformer_blocks:
            y, a = blk(y, ctx)
            aux = aux + a
        y = self.proj_out(y.reshape(b, h, w, c).permute(0, 3, 1, 2))
        return x + y, aux


class UNet2DConditionModel(nn.Module):
    """Levels named CrossAttn* in down_block_types / up_block_types have
    transformers; the mid block is UNetMidBlock2DCrossAttn. Every down and up
    block transformer has an MoE feed-forward (the mid block stays dense, as
    the engine expects)."""

    def __init__(self, cfg, moe):
        super().__init__()
        ch = cfg["block_out_channels"]
        g, eps, n = cfg["norm_num_groups"], cfg["norm_eps"], cfg["layers_per_block"]
        heads = cfg["attention_head_dim"]
        ctx = cfg["cross_attention_dim"]
        temb = ch[0] * 4
        self.ch0 = ch[0]
        self.conv_in = nn.Conv2d(cfg["in_channels"], ch[0], 3, padding=1)
        self.time_embedding = nn.Module()
        self.time_embedding.linear_1 = nn.Linear(ch[0], temb)
        self.time_embedding.linear_2 = nn.Linear(temb, temb)

        self.down_blocks = nn.ModuleList()
        cout = ch[0]
        for i, c in enumerate(ch):
            cin, cout = cout, c
            blk = nn.Module()
            blk.resnets = nn.ModuleList(ResnetBlock2D(cin if j == 0 else cout, cout, g, eps, temb) for j in range(n))
            if cfg["down_block_types"][i].startswith("CrossAttn"):
                blk.attentions = nn.ModuleList(Transformer2DModel(cout, ctx, heads[i], g, moe) for _ in range(n))
            if i < len(ch) - 1:
                blk.downsamplers = nn.ModuleList([Downsample2D(cout, 1)])
            self.down_blocks.append(blk)

        self.mid_block = nn.Module()
        self.mid_block.resnets = nn.ModuleList([ResnetBlock2D(ch[-1], ch[-1], g, eps, temb),
                                                ResnetBlock2D(ch[-1], ch[-1], g, eps, temb)])
        self.mid_block.attentions = nn.ModuleList([Transformer2DModel(ch[-1], ctx, heads[-1], g, None)])

        rch, rheads = list(reversed(ch)), list(reversed(heads))
        self.up_blocks = nn.ModuleList()
        prev = rch[0]
        for i, c in enumerate(rch):
            skip_in = rch[min(i + 1, len(ch) - 1)]
            blk = nn.Module()
            res = []
            for j in range(n + 1):
                skip = skip_in if j == n else c
                res.append(ResnetBlock2D((prev if j == 0 else c) + skip, c, g, eps, temb))
            blk.resnets = nn.ModuleList(res)
            if cfg["up_block_types"][i].startswith("CrossAttn"):
                blk.attentions = nn.ModuleList(Transformer2DModel(c, ctx, rheads[i], g, moe) for _ in range(n + 1))
            if i < len(ch) - 1:
                blk.upsamplers = nn.ModuleList([Upsample2D(c)])
            self.up_blocks.append(blk)
            prev = c

        self.conv_norm_out = nn.GroupNorm(g, ch[0], eps=eps)
        self.conv_out = nn.Conv2d(ch[0], cfg["out_channels"], 3, padding=1)

    def forward(self, x, t, ctx):
        """-> (eps, summed load-balancing loss)."""
        temb = self.time_embedding.linear_2(F.silu(self.time_embedding.linear_1(timestep_embedding(t, self.ch0))))
        aux = x.new_zeros(())
        h = self.conv_in(x)
        skips = [h]
        for blk in self.down_blocks:
            for j, r in enumerate(blk.resnets):
                h = r(h, temb)
                if hasattr(blk, "attentions"):
                    h, l = blk.attentions[j](h, ctx)
                    aux = aux + l
                skips.append(h)
            if hasattr(blk, "downsamplers"):
                h = blk.downsamplers[0](h)
                skips.append(h)
        h = self.mid_block.resnets[0](h, temb)
        h, _ = self.mid_block.attentions[0](h, ctx)
        h = self.mid_block.resnets[1](h, temb)
        for blk in self.up_blocks:
            for j, r in enumerate(blk.resnets):
                h = r(torch.cat([h, skips.pop()], dim=1), temb)
                if hasattr(blk, "attentions"):
                    h, l = blk.attentions[j](h, ctx)
                    aux = aux + l
            if hasattr(blk, "upsamplers"):
                h = blk.upsamplers[0](h)
        return self.conv_out(F.silu(self.conv_norm_out(h))), aux

    def moe_layers(self):
        return [(name, m) for name, m in self.named_modules() if isinstance(m, MoEFeedForward)]
