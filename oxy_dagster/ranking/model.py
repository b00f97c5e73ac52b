"""One list-wise ranking model for every scenario, and the per-scenario pointwise baseline it is compared with.

``UnifiedRanker`` turns heterogeneous features into one token sequence per user (label packing: the user's
requests in time order become one sample):

    [profile] [history item x H] | [request 1 context] [candidate x C] | [request 2 context] [candidate x C] ...

* profile: the sum of the profile-field embeddings; history: item + behaviour embeddings;
* request context: scenario + trigger item (a learnable default when absent) + the query / instruction
  text vector through an adapter (a learnable default when absent);
* candidate: the item (its SID codes, leaf category and brand) + its position in the shown list + scenario.

A shared Transformer runs over the sequence with a block-causal mask: a token of request r attends to the
profile, the history and the tokens of requests <= r (within a request, candidates see each other: list-wise);
profile and history attend to themselves. Heads give click / cart / purchase logits per candidate.

``PointwiseRanker`` is the per-scenario baseline (one small model per scenario, as separate rankers would be
deployed): the same embeddings, concatenated, through an MLP, one candidate at a time.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from ..settings import setting

TASKS = ("click", "cart", "purchase")


@dataclass
class RankerConfig:
    """The unified ranking model and its training (``ranking_model``)."""

    d_model: int = setting(64, "token width")
    n_layers: int = setting(2, "shared Transformer layers")
    n_heads: int = setting(4, "attention heads")
    history: int = setting(20, "history items per packed sample")
    requests: int = setting(8, "requests packed into one sample (time order)")
    negatives: int = setting(9, "sampled negatives per request where the data has no impressions")
    epochs: float = setting(4.0, "passes over the training samples")
    batch_size: int = setting(64, "packed samples per step")
    lr: float = setting(2e-3, "AdamW learning rate")
    dropout: float = setting(0.1, "dropout")
    test_fraction: float = setting(0.15, "latest share of the timeline held out for evaluation")
    seed: int = setting(0, "seed of initialisation and batches")


class ItemEmbedding(nn.Module):
    """An item as the sum of its SID code, leaf-category and brand embeddings (row n = padding)."""

    def __init__(self, codes: torch.Tensor, cate: torch.Tensor, brand: torch.Tensor, d: int):
        super().__init__()
        pad = lambda t: torch.cat([t, torch.zeros(1, *t.shape[1:], dtype=t.dtype)])  # noqa: E731
        self.register_buffer("codes", pad(codes.long()), persistent=False)
        self.register_buffer("cate", pad(cate.long()), persistent=False)
        self.register_buffer("brand", pad(brand.long()), persistent=False)
        vocab = [int(codes[:, i].max()) + 1 for i in range(codes.shape[1])]
        self.code = nn.ModuleList(nn.Embedding(v, d) for v in vocab)
        self.cate_emb = nn.Embedding(int(cate.max()) + 1, d)
        self.brand_emb = nn.Embedding(int(brand.max()) + 1, d)
        self.pad = len(codes)

    def forward(self, rows: torch.Tensor) -> torch.Tensor:
        c = self.codes[rows]
        e = sum(emb(c[..., i]) for i, emb in enumerate(self.code)) + self.cate_emb(self.cate[rows]) + \
            self.brand_emb(self.brand[rows])
        return e * (rows != self.pad).unsqueeze(-1)


class Features(nn.Module):
    """Shared feature embeddings of both rankers."""

    def __init__(self, cfg: RankerConfig, items: ItemEmbedding, profile_vocab: dict[str, int], n_scenarios: int,
                 text_dim: int, n_positions: int):
        super().__init__()
        d = cfg.d_model
        self.items = items
        self.profile = nn.ModuleDict({k: nn.Embedding(v, d) for k, v in profile_vocab.items()})
        self.behavior = nn.Embedding(4, d, padding_idx=0)
        self.scenario = nn.Embedding(n_scenarios, d)
        self.position = nn.Embedding(n_positions, d)
        self.text = nn.Linear(text_dim, d)
        self.default_trigger = nn.Parameter(torch.randn(d) * 0.02)
        self.default_text = nn.Parameter(torch.randn(d) * 0.02)

    def profile_token(self, b: dict) -> torch.Tensor:
        return sum(emb(b[f"profile_{k}"]) for k, emb in self.profile.items())  # (B, d)

    def history_tokens(self, b: dict) -> torch.Tensor:
        return self.items(b["history"]) + self.behavior(b["history_behaviors"])  # (B, H, d)

    def context_tokens(self, b: dict) -> torch.Tensor:
        trig = b["trigger"]
        t = torch.where((trig == self.items.pad).unsqueeze(-1), self.default_trigger, self.items(trig))
        q = torch.where(b["has_text"].unsqueeze(-1), self.text(b["text"]), self.default_text)
        return self.scenario(b["scenario"]) + t + q  # (B, R, d)

    def candidate_tokens(self, b: dict) -> torch.Tensor:
        scen = self.scenario(b["scenario"]).unsqueeze(2)
        return self.items(b["candidates"]) + self.position(b["positions"]) + scen  # (B, R, C, d)


def block_causal_mask(n_prefix: int, n_requests: int, per_request: int) -> torch.Tensor:
    """(T, T) bool, True where query token t may attend to key token s: the prefix (profile + history) sees
    itself; a token of request r sees the prefix and every token of requests <= r."""
    group = torch.cat([torch.zeros(n_prefix, dtype=torch.long),
                       torch.arange(1, n_requests + 1).repeat_interleave(per_request)])
    return group[None, :] <= group[:, None]


class UnifiedRanker(nn.Module):
    def __init__(self, cfg: RankerConfig, features: Features):
        super().__init__()
        self.cfg, self.f = cfg, features
        d = cfg.d_model
        self.segment = nn.Embedding(4, d)  # profile, history, request context, candidate
        self.hist_pos = nn.Embedding(cfg.history, d)
        layer = nn.TransformerEncoderLayer(d, cfg.n_heads, 4 * d, cfg.dropout, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, cfg.n_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, len(TASKS))

    def forward(self, b: dict) -> torch.Tensor:
        """(B, R, C, 3) logits of click, cart, purchase for every candidate."""
        n, r, c = b["candidates"].shape
        s = self.segment.weight
        prof = (self.f.profile_token(b) + s[0]).unsqueeze(1)
        hist = self.f.history_tokens(b) + self.hist_pos.weight[: b["history"].shape[1]] + s[1]
        ctx = (self.f.context_tokens(b) + s[2]).unsqueeze(2)
        cand = self.f.candidate_tokens(b) + s[3]
        x = torch.cat([prof, hist, torch.cat([ctx, cand], 2).flatten(1, 2)], 1)
        n_prefix = 1 + hist.shape[1]
        allowed = block_causal_mask(n_prefix, r, c + 1).to(x.device)
        pad = torch.cat([torch.zeros(n, 1, dtype=torch.bool, device=x.device), b["history"] == self.f.items.pad,
                         torch.cat([~b["request_mask"].unsqueeze(-1), b["candidates"] == self.f.items.pad], 2)
                         .flatten(1)], 1)
        attn = ~allowed.unsqueeze(0) | pad.unsqueeze(1)  # (B, T, T) True = blocked
        attn = attn & ~torch.eye(x.shape[1], dtype=torch.bool, device=x.device)  # a token always sees itself
        h = self.encoder(x, mask=attn.repeat_interleave(self.cfg.n_heads, 0))
        h = self.norm(h[:, n_prefix:].view(n, r, c + 1, -1)[:, :, 1:])
        return self.head(h)


class PointwiseRanker(nn.Module):
    """The per-scenario baseline: features concatenated, an MLP, one candidate at a time."""

    def __init__(self, cfg: RankerConfig, features: Features):
        super().__init__()
        self.f = features
        d = cfg.d_model
        self.mlp = nn.Sequential(nn.Linear(4 * d, 2 * d), nn.ReLU(), nn.Dropout(cfg.dropout), nn.Linear(2 * d, d),
                                 nn.ReLU(), nn.Linear(d, len(TASKS)))

    def forward(self, b: dict) -> torch.Tensor:
        n, r, c = b["candidates"].shape
        hist_mask = (b["history"] != self.f.items.pad).unsqueeze(-1).float()
        hist = (self.f.history_tokens(b) * hist_mask).sum(1) / hist_mask.sum(1).clamp(min=1)
        user = torch.cat([self.f.profile_token(b), hist], -1)  # (B, 2d)
        ctx = self.f.context_tokens(b)  # (B, R, d)
        cand = self.f.candidate_tokens(b)  # (B, R, C, d)
        x = torch.cat([user[:, None, None].expand(n, r, c, -1), ctx[:, :, None].expand(n, r, c, -1), cand], -1)
        return self.mlp(x)
