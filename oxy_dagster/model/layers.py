"""Transformer building blocks: attention with a KV cache, dense / Mixture-of-Experts FFN, layers."""

from __future__ import annotations

import torch
import torch.nn as nn

from .dropout import Dropout, attention


class Attention(nn.Module):
    """Multi-head attention; ``cache`` (a dict) keeps self-attention keys/values across decoding steps."""

    def __init__(self, d: int, heads: int, dropout: float):
        super().__init__()
        self.h, self.dk = heads, d // heads
        self.q, self.k, self.v, self.o = (nn.Linear(d, d) for _ in range(4))
        self.dropout = dropout

    def _split(self, x):
        return x.view(x.shape[0], x.shape[1], self.h, self.dk).transpose(1, 2)

    def forward(self, x, kv=None, mask=None, causal=False, cache=None, static_kv=False):
        """``mask``: (B, S) True where the key is padding. ``static_kv``: cross-attention (cache k/v once)."""
        q = self._split(self.q(x))
        if static_kv and cache is not None and "k" in cache:
            k, v = cache["k"], cache["v"]
        else:
            src = x if kv is None else kv
            k, v = self._split(self.k(src)), self._split(self.v(src))
            if cache is not None and not static_kv and "k" in cache:
                k, v = torch.cat([cache["k"], k], 2), torch.cat([cache["v"], v], 2)
            if cache is not None:
                cache["k"], cache["v"] = k, v
        attn_mask = None
        if mask is not None:
            attn_mask = ~mask[:, None, None, :]
        if causal and x.shape[1] > 1:
            tq, tk = x.shape[1], k.shape[2]
            c = torch.ones(tq, tk, dtype=torch.bool, device=x.device).tril(tk - tq)
            attn_mask = c if attn_mask is None else attn_mask & c
        out = attention(q, k, v, attn_mask=attn_mask, dropout_p=self.dropout, training=self.training)
        return self.o(out.transpose(1, 2).reshape(x.shape[0], x.shape[1], -1))


class FFN(nn.Module):
    def __init__(self, d: int, d_ff: int, dropout: float):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(d, d_ff), nn.GELU(), Dropout(dropout), nn.Linear(d_ff, d))

    def forward(self, x):
        return self.net(x), x.new_zeros(())


class MoEFFN(nn.Module):
    """Top-k routed experts with the Switch-style load-balancing loss ``E * sum_e f_e * P_e``."""

    def __init__(self, d: int, d_ff: int, n_experts: int, top_k: int, dropout: float):
        super().__init__()
        self.router = nn.Linear(d, n_experts, bias=False)
        self.experts = nn.ModuleList(FFN(d, d_ff, dropout) for _ in range(n_experts))
        self.top_k = min(top_k, n_experts)

    def forward(self, x):
        flat = x.reshape(-1, x.shape[-1])
        probs = self.router(flat).softmax(-1)
        weight, idx = probs.topk(self.top_k, dim=-1)
        if self.top_k > 1:  # top-1 keeps the raw probability, the router's only task gradient (Switch)
            weight = weight / weight.sum(-1, keepdim=True)
        out = torch.zeros_like(flat)
        for e, expert in enumerate(self.experts):
            rows, slot = (idx == e).nonzero(as_tuple=True)
            if len(rows):
                out.index_add_(0, rows, expert(flat[rows])[0] * weight[rows, slot, None])
        n = len(self.experts)
        frac = torch.bincount(idx[:, 0], minlength=n).float() / len(flat)  # tokens whose first choice is e
        balance = n * (frac * probs.mean(0)).sum()
        return out.view_as(x), balance


def make_ffn(cfg) -> nn.Module:
    if cfg.n_experts > 0:
        return MoEFFN(cfg.d_model, cfg.d_ff, cfg.n_experts, cfg.top_k_experts, cfg.dropout)
    return FFN(cfg.d_model, cfg.d_ff, cfg.dropout)


class EncoderLayer(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(cfg.d_model), nn.LayerNorm(cfg.d_model)
        self.attn = Attention(cfg.d_model, cfg.n_heads, cfg.dropout)
        self.ffn = make_ffn(cfg)
        self.drop = Dropout(cfg.dropout)

    def forward(self, x, mask):
        x = x + self.drop(self.attn(self.ln1(x), mask=mask))
        h, aux = self.ffn(self.ln2(x))
        return x + self.drop(h), aux


class DecoderLayer(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.ln1, self.ln2, self.ln3 = (nn.LayerNorm(cfg.d_model) for _ in range(3))
        self.self_attn = Attention(cfg.d_model, cfg.n_heads, cfg.dropout)
        self.cross_attn = Attention(cfg.d_model, cfg.n_heads, cfg.dropout)
        self.ffn = make_ffn(cfg)
        self.drop = Dropout(cfg.dropout)

    def forward(self, x, memory, mem_mask, cache=None):
        sc = None if cache is None else cache.setdefault("self", {})
        cc = None if cache is None else cache.setdefault("cross", {})
        x = x + self.drop(self.self_attn(self.ln1(x), causal=True, cache=sc))
        x = x + self.drop(self.cross_attn(self.ln2(x), kv=memory, mask=mem_mask, cache=cc, static_kv=True))
        h, aux = self.ffn(self.ln3(x))
        return x + self.drop(h), aux
