"""The OxygenREC fast-thinking generator (seed 2.3): encoder-decoder with instruction token, IGR and Q2I.

Encoder input: one profile token (plus TIGER's hashed user-ID vector with ``user_buckets``), the short-term
behaviour sequence, and the top-k long-term items chosen by Instruction-Guided Retrieval (IGR). An item
token is the sum of its code embeddings, its side features (leaf category,
brand) and its behaviour type. Decoder input: BOS and the instruction token
(placed as configured, seed Table 5), then the item's codes. The instruction
fuses scenario, trigger item (a learnable default when absent) and the
contextual-reasoning text embedding (a learnable default when absent).
Loss: behaviour-weighted next-code prediction + Q2I alignment + MoE balance.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import GeneratorConfig
from .dropout import dropout
from .layers import DecoderLayer, EncoderLayer

N_BEHAVIORS = 4  # pad, click, cart, purchase


class TiedHead(nn.Module):
    """An output head whose weight is a code embedding's matrix (not a parameter of its own, so a checkpoint holds
    it once, under ``code_emb``), plus its own bias: logits = (h / sqrt(d)) E^T + b, the state scaled as T5 scales
    it before its tied output layer, so the unit-variance embeddings start at logits of unit scale."""

    def __init__(self, emb: nn.Embedding):
        super().__init__()
        self._emb = [emb]  # a plain list: the embedding stays registered under code_emb only
        self.bias = nn.Parameter(torch.zeros(emb.num_embeddings))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        w = self._emb[0].weight
        return F.linear(h * w.shape[1] ** -0.5, w, self.bias)


def history_items(tensors: dict) -> torch.Tensor:
    """Every item of a sample's short and long history, padding included: (rows, short + long)."""
    return torch.cat([tensors["short_items"], tensors["long_items"]], 1)


def catalogue_mask(rows: torch.Tensor, n_items: int) -> torch.Tensor:
    """(len(rows), n_items), True at each row's items; entries outside the catalogue (padding, -1) mark nothing."""
    known = (rows >= 0) & (rows < n_items)
    mask = torch.zeros(len(rows), n_items + 1, dtype=torch.bool, device=rows.device)
    return mask.scatter_(1, rows.masked_fill(~known, n_items), True)[:, :n_items]


class Generator(nn.Module):
    def __init__(self, cfg: GeneratorConfig, item_codes: torch.Tensor, item_cate: torch.Tensor,
                 item_brand: torch.Tensor, item_text: torch.Tensor | None = None):
        super().__init__()
        self.cfg = cfg
        d = cfg.d_model
        n_items = len(item_codes)
        # Catalogue lookups; row n_items is the padding item.
        pad = lambda t, v: torch.cat([t, torch.full((1, *t.shape[1:]), v, dtype=t.dtype)])  # noqa: E731
        self.register_buffer("item_codes", pad(item_codes.long(), 0), persistent=False)
        self.register_buffer("item_cate", pad(item_cate.long(), 0), persistent=False)
        self.register_buffer("item_brand", pad(item_brand.long(), 0), persistent=False)
        text = item_text if item_text is not None else torch.zeros(n_items, cfg.text_dim)
        self.register_buffer("item_text", pad(text.float(), 0.0), persistent=False)
        self.pad_item = n_items
        self.code_emb = nn.ModuleList(nn.Embedding(v, d) for v in cfg.code_vocab)
        if cfg.item_id_emb:
            self.id_emb = nn.Embedding(n_items + 1, d, padding_idx=n_items)
            nn.init.zeros_(self.id_emb.weight)
        self.cate_emb, self.brand_emb = nn.Embedding(cfg.n_cate, d), nn.Embedding(cfg.n_brand, d)
        self.behavior_emb = nn.Embedding(N_BEHAVIORS, d, padding_idx=0)
        self.pos_emb = nn.Embedding(cfg.max_short + cfg.igr_k + 1, d)
        self.segment_emb = nn.Embedding(3, d)  # profile, short-term, long-term
        self.profile_emb = nn.ModuleDict({k: nn.Embedding(v, d) for k, v in cfg.profile_vocab.items()})
        if cfg.user_buckets:
            self.user_emb = nn.Embedding(cfg.user_buckets, d)
        # instruction
        self.scenario_emb = nn.Embedding(cfg.n_scenarios, d)
        self.default_trigger = nn.Parameter(torch.randn(d) * 0.02)
        self.default_reasoning = nn.Parameter(torch.randn(d) * 0.02)
        self.reasoning_proj = nn.Linear(cfg.text_dim, d)
        self.fuse = nn.Sequential(nn.Linear(3 * d, d), nn.GELU(), nn.Linear(d, d))
        self.bos = nn.Parameter(torch.randn(d) * 0.02)
        self.dec_pos = nn.Embedding(len(cfg.code_vocab) + 3, d)
        # adapters for IGR / Q2I (seed eq. 1): one shared projection for query and items
        self.item_text_proj = nn.Linear(cfg.text_dim, d)
        self.adapter = nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.Linear(d, cfg.adapter_dim))
        self.encoder = nn.ModuleList(EncoderLayer(cfg) for _ in range(cfg.n_enc_layers))
        self.decoder = nn.ModuleList(DecoderLayer(cfg) for _ in range(cfg.n_dec_layers))
        self.enc_ln, self.dec_ln = nn.LayerNorm(d), nn.LayerNorm(d)
        self.heads = nn.ModuleList(TiedHead(e) if cfg.tie_heads else nn.Linear(d, v)
                                   for e, v in zip(self.code_emb, cfg.code_vocab))
        if cfg.dense_weight > 0:
            self.dense_proj = nn.Linear(d, d)

    # ----- items and instruction -------------------------------------------------------------
    def item_embedding(self, rows: torch.Tensor) -> torch.Tensor:
        codes = self.item_codes[rows]
        e = sum(emb(codes[..., i]) for i, emb in enumerate(self.code_emb))
        e = e + self.cate_emb(self.item_cate[rows]) + self.brand_emb(self.item_brand[rows])
        if self.cfg.item_id_emb:
            e = e + self.id_emb(rows)
        return e * (rows != self.pad_item).unsqueeze(-1)

    def item_adapter(self, rows: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        z = self.adapter(self.item_embedding(rows) + self.item_text_proj(self.item_text[rows]))
        return F.normalize(z, dim=-1) if normalize else z

    def item_vectors(self) -> torch.Tensor:
        """Every catalogue item's vector for dense retrieval: (n_items, d), built from its semantic ID (with
        ``dense_free_items``: its free per-item vector alone)."""
        rows = torch.arange(self.pad_item, device=self.item_codes.device)
        if self.cfg.dense_free_items:
            return self.id_emb(rows)
        return self.item_embedding(rows) + self.item_text_proj(self.item_text[rows])

    def dense_logp(self, state: torch.Tensor, leave_out: torch.Tensor | None = None) -> torch.Tensor:
        """log p_dense(item | user) over the catalogue from the decoder state that predicts the first code;
        ``leave_out`` (B, L item rows, padding allowed): items left out of each row's softmax (log-probability -inf)."""
        logits = (self.dense_proj(state) @ self.item_vectors().T).float()
        if leave_out is not None:
            logits = logits.masked_fill(catalogue_mask(leave_out, self.pad_item), float("-inf"))
        return torch.log_softmax(logits, -1)

    def dense_negatives_left_out(self, batch: dict) -> torch.Tensor | None:
        """The history items the dense loss leaves out of its softmax (``dense_exclude_history``), the target kept."""
        if not self.cfg.dense_exclude_history:
            return None
        history = history_items(batch)
        return history.masked_fill(history == batch["target"][:, None], self.pad_item)

    def rescore(self, state: torch.Tensor, items: torch.Tensor, scores: torch.Tensor,
                mix: float | None = None, dense: torch.Tensor | None = None) -> torch.Tensor:
        """Beam scores of candidate ``items`` (rows, K; -1 empty) plus ``mix`` x their dense log-probability
        (default: the model's ``dense_mix``); unchanged without a dense head or with mix 0. ``dense``:
        ``dense_logp(state)`` where the caller already has it (it is not computed again)."""
        mix = self.cfg.dense_mix if mix is None else mix
        if not mix or self.cfg.dense_weight <= 0:
            return scores
        dense = (self.dense_logp(state) if dense is None else dense).gather(1, items.clamp(min=0))
        return torch.where(items >= 0, scores + mix * dense, scores)

    def instruction(self, batch: dict) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Instruction token(s) for the decoder and the fused vector (IGR / Q2I query)."""
        s = self.scenario_emb(batch["scenario"])
        trig = batch["trigger"]
        if self.cfg.last_item_trigger:  # histories are right-aligned: the last column is the most recent item
            trig = torch.where(trig == self.pad_item, batch["short_items"][:, -1], trig)
        t = torch.where((trig == self.pad_item).unsqueeze(-1), self.default_trigger, self.item_embedding(trig))
        r = torch.where(batch["has_reasoning"].unsqueeze(-1), self.reasoning_proj(batch["reasoning"]),
                        self.default_reasoning)
        fused = self.fuse(torch.cat([s, t, r], -1))
        tokens = {"scenario": [s + r], "trigger": [t + r], "concat": [s + r, t], "fused": [fused]}
        return tokens[self.cfg.components], fused

    # ----- encoder ---------------------------------------------------------------------------
    def retrieve_long(self, query: torch.Tensor, long_items: torch.Tensor) -> torch.Tensor:
        """IGR: the igr_k long-history items closest to the instruction (no gradient); or the most recent."""
        k = min(self.cfg.igr_k, long_items.shape[1])
        if k == 0:
            return long_items[:, :0]
        if not self.cfg.use_igr:
            return long_items[:, -k:]
        with torch.no_grad():
            q = F.normalize(self.adapter(query), dim=-1)
            distinct, where = torch.unique(long_items, return_inverse=True)  # histories share items and padding
            score = torch.einsum("bd,bld->bl", q, self.item_adapter(distinct)[where])
            score = score.masked_fill(long_items == self.pad_item, float("-inf"))
            idx = score.topk(k, dim=1).indices.sort(dim=1).values  # keep time order
        return long_items.gather(1, idx)

    def encode(self, batch: dict, query: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        short, beh = batch["short_items"], batch["short_behaviors"]
        # Columns that are padding in every row are masked keys everywhere: dropping them changes no output
        # and saves their compute (histories are right-aligned, so those are the leading short columns).
        first = int((short != self.pad_item).any(0).int().argmax()) if short.numel() else 0
        short, beh = short[:, first:], beh[:, first:]
        long_rows = self.retrieve_long(query, batch["long_items"])
        long_rows = long_rows[:, (long_rows != self.pad_item).any(0)]
        prof = sum(emb(batch[f"profile_{k}"]) for k, emb in self.profile_emb.items()) + self.segment_emb.weight[0]
        if self.cfg.user_buckets:
            prof = prof + self.user_emb(batch["user_hash"] % self.cfg.user_buckets)
        pos = torch.arange(first, first + short.shape[1], device=short.device)  # a column keeps its position
        s_tok = self.item_embedding(short) + self.behavior_emb(beh) + self.pos_emb(pos) + self.segment_emb.weight[1]
        l_tok = self.item_embedding(long_rows).detach() + self.segment_emb.weight[2]
        x = dropout(torch.cat([prof.unsqueeze(1), s_tok, l_tok], 1), self.cfg.emb_dropout, self.training)
        mask = torch.cat([torch.zeros_like(short[:, :1], dtype=torch.bool), short == self.pad_item,
                          long_rows == self.pad_item], 1)
        aux = x.new_zeros(())
        for layer in self.encoder:
            x, a = layer(x, mask)
            aux = aux + a
        return self.enc_ln(x), mask, aux

    # ----- decoder ---------------------------------------------------------------------------
    def prefix(self, instr: list[torch.Tensor]) -> torch.Tensor:
        """Decoder tokens before the first code (seed Table 5 placements)."""
        bos = self.bos.expand_as(instr[0])
        p = self.cfg.placement
        toks = {"none": [bos], "replace_bos": instr, "add_bos": [bos + instr[0], *instr[1:]],
                "left_bos": [*instr, bos], "right_bos": [bos, *instr]}[p]
        return torch.stack(toks, 1)

    def decode(self, tokens, memory, mem_mask, start_pos: int = 0, cache=None):
        pos = torch.arange(start_pos, start_pos + tokens.shape[1], device=tokens.device)
        x = tokens + self.dec_pos(pos)
        aux = x.new_zeros(())
        for i, layer in enumerate(self.decoder):
            x, a = layer(x, memory, mem_mask, None if cache is None else cache.setdefault(i, {}))
            aux = aux + a
        return self.dec_ln(x), aux

    def code_token(self, level: int, codes: torch.Tensor) -> torch.Tensor:
        return self.code_emb[level](codes)

    # ----- training ----------------------------------------------------------------------------
    def teacher_forced(self, batch: dict):
        """Decoder states that predict each code level of the target (teacher forcing): (B, levels, d), with the
        target's codes, the instruction query and the MoE balance terms."""
        instr, query = self.instruction(batch)
        memory, mask, aux_e = self.encode(batch, query)
        codes = self.item_codes[batch["target"]]
        h, aux_d = self.code_states(self.prefix(instr), codes, memory, mask)
        return h, codes, query, aux_e + aux_d

    def code_states(self, prefix: torch.Tensor, codes: torch.Tensor, memory: torch.Tensor, mask: torch.Tensor):
        """Teacher-forced decoder states of code paths ``codes`` (B, levels) after ``prefix``: (B, levels, d), position
        i predicting code level i, and the MoE balance term."""
        levels = codes.shape[1]
        code_toks = torch.stack([self.code_token(i, codes[:, i]) for i in range(levels - 1)], 1)
        h, aux = self.decode(torch.cat([prefix, code_toks], 1), memory, mask)
        return h[:, prefix.shape[1] - 1:], aux

    def forward(self, batch: dict) -> dict:
        h, codes, query, balance = self.teacher_forced(batch)
        levels = len(self.cfg.code_vocab)
        ce = torch.stack([F.cross_entropy(self.heads[i](h[:, i]), codes[:, i], reduction="none",
                                          label_smoothing=self.cfg.label_smoothing)
                          for i in range(levels)], 1)
        w = batch["weight"]
        ntp = (ce.sum(1) * w).sum() / (w.sum() * levels)
        out = {"ntp": ntp, "balance": balance, "code_ce": ce.detach().mean(0)}
        loss = ntp + self.cfg.moe_balance_weight * out["balance"]
        if self.cfg.dense_weight > 0:
            logp = self.dense_logp(h[:, 0], self.dense_negatives_left_out(batch))
            nll = -logp.gather(1, batch["target"][:, None]).squeeze(1)
            out["dense"] = (nll * w).sum() / w.sum()
            loss = loss + self.cfg.dense_weight * out["dense"]
            if self.cfg.dense_ahead > 0 and "ahead" in batch:
                later = batch["ahead"][:, :self.cfg.dense_ahead]
                known = (later != self.pad_item).float() * w[:, None]  # padding: the user has no later sample
                far = -logp.gather(1, later.clamp(max=self.pad_item - 1))
                known = known * torch.isfinite(far)  # a later target the user had bought before: left out
                far = far.nan_to_num(posinf=0.0)
                out["dense_ahead"] = (far * known).sum() / known.sum().clamp(min=1e-6)
                loss = loss + self.cfg.dense_weight * out["dense_ahead"]
        if self.cfg.q2i_weight > 0:
            out["q2i"] = self.q2i_loss(query, batch["target"])
            loss = loss + self.cfg.q2i_weight * out["q2i"]
        out["loss"] = loss
        return out

    def q2i_loss(self, query: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Seed eq. 2: in-batch InfoNCE(query, target item) + variance regularization + decorrelation."""
        zq, zi = self.adapter(query), self.item_adapter(target, normalize=False)
        q, i = F.normalize(zq, dim=-1), F.normalize(zi, dim=-1)
        i_all, t_all, offset = gather_over_ranks(i, target) if self.training else (i, target, 0)
        logits = q @ i_all.T / self.cfg.q2i_temperature
        labels = offset + torch.arange(len(q), device=q.device)
        same = t_all[None, :] == target[:, None]  # another row's copy of the target item is no negative
        own = torch.zeros_like(same)
        own[torch.arange(len(q), device=q.device), labels] = True
        nce = F.cross_entropy(logits.masked_fill(same & ~own, -1e4), labels)
        var = sum(F.relu(1.0 - torch.sqrt(z.var(0) + 1e-4)).mean() for z in (zq, zi))
        decor = 0.0
        for z in (zq, zi):
            c = torch.cov(z.T)
            decor = decor + (c - torch.diag(torch.diag(c))).pow(2).sum() / z.shape[1]
        return nce + self.cfg.q2i_var_weight * var + self.cfg.q2i_decor_weight * decor


def gather_over_ranks(items: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Every rank's in-batch items, so Q2I's negatives are the global batch's on any number of processes.

    Returns (all items, all targets, this rank's offset). Gradients flow back to the rank that made each
    row (``torch.distributed.nn`` all-gather); with the engine's gradient averaging the update is that of
    the global batch's InfoNCE. One process, or no process group: the inputs as they are.
    """
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return items, target, 0
    from torch.distributed.nn.functional import all_gather

    targets = [torch.empty_like(target) for _ in range(dist.get_world_size())]
    dist.all_gather(targets, target.contiguous())
    return torch.cat(all_gather(items.contiguous())), torch.cat(targets), dist.get_rank() * len(target)
