"""Fusion encoder: modality projections -> Q-Former -> MLP -> 256-d normalized item vector (seed 2.2.2).

Modality tokens live in one ``d_model`` space: the text embedding, the image
embedding (when the catalogue has images) and the structured fields (category
levels, brand, price band) as learned embeddings. ``n_queries`` learnable query
tokens attend to each other and cross-attend to the modality tokens; each layer
starts from the previous layer's refined queries plus its own learnable
offset (residual initialization), so queries are refined layer by layer. The
flattened queries go through an MLP to ``out_dim`` and are L2-normalized.
``kind='mlp'`` is the simpler V2 variant: concatenated projections -> MLP.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class FusionConfig:
    kind: str = "qformer"  # qformer | mlp
    d_model: int = 128  # sized for 2 CPU cores; the output stays 256-d as in the seed
    n_queries: int = 4
    n_layers: int = 2
    n_heads: int = 4
    ffn_mult: int = 2
    out_dim: int = 256
    dropout: float = 0.1
    use_structured: bool = True
    text_dim: int = 384
    image_dim: int = 0  # 0: no image branch


class QFormerLayer(nn.Module):
    def __init__(self, d: int, heads: int, dropout: float, ffn_mult: int = 4):
        super().__init__()
        self.ln1, self.ln2, self.ln3 = nn.LayerNorm(d), nn.LayerNorm(d), nn.LayerNorm(d)
        self.self_attn = nn.MultiheadAttention(d, heads, dropout=dropout, batch_first=True)
        self.cross_attn = nn.MultiheadAttention(d, heads, dropout=dropout, batch_first=True)
        self.ffn = nn.Sequential(nn.Linear(d, ffn_mult * d), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(ffn_mult * d, d))

    def forward(self, q: torch.Tensor, kv: torch.Tensor) -> torch.Tensor:
        h = self.ln1(q)
        q = q + self.self_attn(h, h, h, need_weights=False)[0]
        q = q + self.cross_attn(self.ln2(q), kv, kv, need_weights=False)[0]
        return q + self.ffn(self.ln3(q))


class FusionEncoder(nn.Module):
    def __init__(self, cfg: FusionConfig, vocab_sizes: dict[str, int] | None = None):
        super().__init__()
        self.cfg = cfg
        d = cfg.d_model
        self.text_proj = nn.Sequential(nn.Linear(cfg.text_dim, d), nn.LayerNorm(d))
        self.image_proj = nn.Sequential(nn.Linear(cfg.image_dim, d), nn.LayerNorm(d)) if cfg.image_dim else None
        self.structured = cfg.use_structured and vocab_sizes is not None
        if self.structured:
            self.cate = nn.ModuleList(nn.Embedding(vocab_sizes[f"cate{i + 1}"], d, padding_idx=0) for i in range(3))
            self.brand = nn.Embedding(vocab_sizes["brand"], d, padding_idx=0)
            self.price = nn.Embedding(vocab_sizes["price"], d, padding_idx=0)
        n_tokens = 1 + bool(cfg.image_dim) + 3 * self.structured
        if cfg.kind == "qformer":
            self.type_emb = nn.Parameter(torch.randn(n_tokens, d) * 0.02)
            self.queries = nn.Parameter(torch.randn(cfg.n_queries, d) * 0.02)
            self.query_offsets = nn.Parameter(torch.zeros(cfg.n_layers, cfg.n_queries, d))
            self.layers = nn.ModuleList(QFormerLayer(d, cfg.n_heads, cfg.dropout, cfg.ffn_mult)
                                        for _ in range(cfg.n_layers))
            head_in = cfg.n_queries * d
        elif cfg.kind == "mlp":
            head_in = n_tokens * d
        else:
            raise ValueError(f"unknown fusion kind {cfg.kind!r} (qformer | mlp)")
        self.head = nn.Sequential(nn.LayerNorm(head_in), nn.Linear(head_in, 2 * cfg.out_dim), nn.GELU(),
                                  nn.Dropout(cfg.dropout), nn.Linear(2 * cfg.out_dim, cfg.out_dim))

    def tokens(self, text, image=None, cate=None, brand=None, price=None) -> torch.Tensor:
        toks = [self.text_proj(text)]
        if self.image_proj is not None:
            toks.append(self.image_proj(image))
        if self.structured:
            toks += [sum(emb(cate[:, i]) for i, emb in enumerate(self.cate)), self.brand(brand), self.price(price)]
        return torch.stack(toks, dim=1)

    def forward(self, text, image=None, cate=None, brand=None, price=None) -> torch.Tensor:
        kv = self.tokens(text, image, cate, brand, price)
        if self.cfg.kind == "mlp":
            return F.normalize(self.head(kv.flatten(1)), dim=-1)
        kv = kv + self.type_emb
        q = self.queries.expand(kv.shape[0], -1, -1)
        for offset, layer in zip(self.query_offsets, self.layers):
            q = layer(q + offset, kv)  # residual init: refine the previous layer's queries
        return F.normalize(self.head(q.flatten(1)), dim=-1)


class QueryTower(nn.Module):
    """Maps a query's text embedding into the item space (query-to-item pairs of the V4 objective)."""

    def __init__(self, text_dim: int = 384, out_dim: int = 256):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(text_dim, 2 * out_dim), nn.GELU(), nn.Linear(2 * out_dim, out_dim))

    def forward(self, text: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.net(text), dim=-1)
