"""Serving-grade trie-constrained beam search (and beam sampling) over a trained ``Generator``.

Same results as ``decoding.beam_search`` (tested against it and against brute force), for one
generator or a ``GeneratorEnsemble`` of several, built for large beams on CPU:

* the encoder runs once per request, and the beams of a request attend to its encoder output
  and to its decoder prefix (BOS + instruction) without copying them: queries are grouped per
  request, ``(B, H, beams, dk) @ (B, H, dk, S)``;
* only the few code tokens a beam generated are gathered when beams are reordered;
* the trie is a dense table per level (``DenseTrie``): one gather gives every beam's allowed
  codes and next prefix ids;
* one beam step (trie mask + log-softmax + beam scores + top-k over beams x codes) is
  ``kernels.beam_step``: a Triton kernel on GPU, its PyTorch reference on CPU.

``mode="sample"`` is beam sampling (seed section 3.2): each level draws the next beams without
replacement (Gumbel top-k) from temperature-scaled, top-k- and top-p-filtered probabilities,
still inside the trie; the returned list is ordered by the model's log-probability.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from kernels.beam_step import beam_step

from .decoding import final_list
from .ensemble import GeneratorEnsemble
from .generator import Generator
from .trie import DenseTrie


@dataclass
class SampleConfig:
    temperature: float = 1.0
    top_k: int = 0  # per beam: keep the k most likely codes (0: all)
    top_p: float = 1.0  # per beam: keep the smallest set of codes whose probability reaches p
    seed: int = 0


class _Layer:
    """One decoder layer's weights, arranged for grouped-beam inference."""

    def __init__(self, layer):
        sa, ca = layer.self_attn, layer.cross_attn
        self.h, self.dk = sa.h, sa.dk
        self.ln = [(m.weight, m.bias, m.eps) for m in (layer.ln1, layer.ln2, layer.ln3)]
        self.w_qkv = torch.cat([sa.q.weight, sa.k.weight, sa.v.weight])
        self.b_qkv = torch.cat([sa.q.bias, sa.k.bias, sa.v.bias])
        self.self_o = (sa.o.weight, sa.o.bias)
        self.cross_q, self.cross_o = (ca.q.weight, ca.q.bias), (ca.o.weight, ca.o.bias)
        self.cross_kv = (ca.k, ca.v)
        self.ffn = layer.ffn

    def norm(self, i: int, x):
        w, b, eps = self.ln[i]
        return F.layer_norm(x, (x.shape[-1],), w, b, eps)


class BeamDecoder:
    """Batched beam search for one model and one trie; ``decode`` takes a batch of requests.

    The model is a ``Generator`` or a ``GeneratorEnsemble``: an ensemble's members each run their own encoder,
    prefix and decoder layers on the shared beams, and a code level is chosen by the members' mean log-softmax
    (as ``decoding.beam_search`` decodes the ensemble)."""

    def __init__(self, model: Generator | GeneratorEnsemble, trie: DenseTrie, compile: bool = False):
        """``compile``: run the encoder, the prefix pass, the decoder layers and the beam step through
        ``torch.compile`` (inductor; fused CPU kernels, dynamic shapes). Compiling takes minutes on first use
        (cached on disk afterwards) and pays off in a long-running service; results are the same."""
        self.model = model.eval()
        self.members = list(getattr(model, "members", [model]))
        self.trie = trie
        self.layers = [[_Layer(layer) for layer in m.decoder] for m in self.members]
        self.levels = trie.levels
        fn = (lambda f: torch.compile(f, dynamic=True)) if compile else (lambda f: f)
        self._instruction = [fn(m.instruction) for m in self.members]
        self._encode = [fn(m.encode) for m in self.members]
        self._decode = [fn(m.decode) for m in self.members]
        self._layer_step, self._beam_step = fn(self._layer), fn(beam_step)

    def _start(self, j: int, batch: dict) -> dict:
        """Member ``j``'s encoder and prefix pass: what its beams share (per layer the prefix's self-attention
        keys/values and the memory's keys/values, (B, H, T, dk)) and the state that scores the first code."""
        m = self.members[j]
        instr, query = self._instruction[j](batch)
        memory, mem_pad, _ = self._encode[j](batch, query)
        prefix = m.prefix(instr)
        cache: dict = {}
        h, _ = self._decode[j](prefix, memory, mem_pad, 0, cache)
        shared = [(cache[i]["self"]["k"], cache[i]["self"]["v"], cache[i]["cross"]["k"], cache[i]["cross"]["v"])
                  for i in range(len(self.layers[j]))]
        mem_bias = torch.zeros(mem_pad.shape, dtype=h.dtype).masked_fill(mem_pad, float("-inf"))[:, None, None, :]
        return {"shared": shared, "mem_bias": mem_bias, "t_prefix": prefix.shape[1], "last": h[:, -1:],
                "first": h[:, -1], "enc": (instr, query, memory, mem_pad),
                "hist_k": [None] * len(self.layers[j]), "hist_v": [None] * len(self.layers[j])}

    def _level_logits(self, lvl: int, states: list[dict]) -> torch.Tensor:
        """(B, beams, V) scores of level ``lvl``'s codes: one model's logits, or an ensemble's mean log-softmax."""
        if len(self.members) == 1:
            return self.members[0].heads[lvl](states[0]["last"]).float()
        return torch.stack([torch.log_softmax(m.heads[lvl](st["last"]).float(), -1)
                            for m, st in zip(self.members, states)]).mean(0)

    def _advance(self, lvl: int, code: torch.Tensor, origin: torch.Tensor, states: list[dict]) -> None:
        """Every member's decoder state after the beams' new code tokens (their histories follow their beams)."""
        for m, layers, st in zip(self.members, self.layers, states):
            for i in range(len(layers)):
                if st["hist_k"][i] is not None:
                    st["hist_k"][i], st["hist_v"][i] = _take(st["hist_k"][i], origin), _take(st["hist_v"][i], origin)
            x = m.code_token(lvl, code) + m.dec_pos.weight[st["t_prefix"] + lvl]  # (B, beams, d)
            for i, layer in enumerate(layers):
                x, st["hist_k"][i], st["hist_v"][i] = self._layer_step(layer, x, st["shared"][i], st["hist_k"][i],
                                                                       st["hist_v"][i], st["mem_bias"])
            st["last"] = m.dec_ln(x)

    @torch.inference_mode()
    def decode(self, batch: dict, beam: int = 256, topk: int = 20, exclude: torch.Tensor | None = None,
               leaf_rows: torch.Tensor | None = None, mode: str = "beam",
               sample: SampleConfig | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Top ``topk`` items per request as (item rows, log-probabilities), best first; -1 / -inf pad rows with
        fewer valid items. ``exclude``: (B, H) item rows never to return (entries outside the catalogue are
        padding). ``leaf_rows`` maps the trie's items to global rows when the trie covers a candidate pool.
        With the model's ``dense_interleave`` (not when sampling) the list and its scores are
        ``decoding.interleave_dense``'s, as ``beam_search`` returns them."""
        states = [self._start(j, batch) for j in range(len(self.members))]
        return self.search(states, batch, beam, topk, exclude, leaf_rows, mode, sample)

    @torch.inference_mode()
    def search(self, states: list[dict], batch: dict | None, beam: int = 256, topk: int = 20,
               exclude: torch.Tensor | None = None, leaf_rows: torch.Tensor | None = None, mode: str = "beam",
               sample: SampleConfig | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``decode`` after the encoders: the levels, the dense join and mix, the exclusion and the top ``topk``
        from the members' ``_start`` states. Its shapes follow (requests, beam, topk, exclude's width) and the
        states' alone, with no value read back to the host unless dense candidates are joined (they need
        ``batch``): what ``graphed_decoding`` replays from a CUDA graph."""
        n_req = states[0]["first"].shape[0]
        sampling = mode == "sample"
        if mode not in ("beam", "sample"):
            raise ValueError(f"mode must be 'beam' or 'sample', not {mode!r}")
        gen = torch.Generator().manual_seed(sample.seed) if sampling else None
        extra = 0 if exclude is None else int(exclude.shape[1])
        scores = torch.zeros(n_req, 1)  # path log-probability under the distribution the beams are chosen by
        true = scores  # path log-probability under the model (the same unless sampling)
        prefix_ids = torch.zeros(n_req, 1, dtype=torch.long)
        for lvl in range(self.levels):
            logits = self._level_logits(lvl, states)  # (B, beams, V)
            k_next = beam if lvl < self.levels - 1 else max(beam, topk + extra)
            table = self.trie.child[lvl]
            noise = None
            if sampling:
                model_logp = torch.log_softmax(logits, -1)
                allowed = (table[prefix_ids.clamp(min=0)] >= 0) & (prefix_ids >= 0)[..., None]
                tempered = torch.log_softmax(logits / sample.temperature, -1).masked_fill(~allowed, float("-inf"))
                logits = _filter(tempered, sample.top_k, sample.top_p)
                noise = -torch.log(-torch.log(torch.rand(logits.shape, generator=gen).clamp(1e-20, 1.0)))
            scores, origin, code, prefix_ids = self._beam_step(logits, scores, prefix_ids, table, k_next, noise)
            if sampling:
                picked = origin * model_logp.shape[-1] + code
                true = true.gather(1, origin) + model_logp.flatten(1).gather(1, picked)
            if lvl == self.levels - 1:
                break
            self._advance(lvl, code, origin, states)
        items = prefix_ids  # last level: item rows of the trie, -1 where a beam found no valid item
        scores = true.masked_fill(items < 0, float("-inf")) if sampling else scores
        if leaf_rows is not None:
            items = torch.where(items >= 0, leaf_rows[items.clamp(min=0)], items)
        first = torch.cat([st["first"] for st in states], -1)  # an ensemble's state: its members' side by side

        def enc():  # the users' encodings from the beams' start, not computed again (for dense candidates)
            encs = [st["enc"] for st in states]
            return self.model.join_encodings(encs) if isinstance(self.model, GeneratorEnsemble) else encs[0]

        return final_list(self.model, first, items, scores, topk, exclude, enc=enc, batch=batch,
                          has_dense=leaf_rows is None and not sampling)  # as beam_search finishes

    def _layer(self, layer: _Layer, x, shared, hist_k, hist_v, mem_bias):
        """One decoder layer for the new code token of every beam: x (B, K, d)."""
        n_req, n_beams, d = x.shape
        h_, dk = layer.h, layer.dk
        pk, pv, mk, mv = shared
        q, k, v = F.linear(layer.norm(0, x), layer.w_qkv, layer.b_qkv).view(n_req, n_beams, 3, h_, dk).unbind(2)
        k, v = k.unsqueeze(3), v.unsqueeze(3)  # (B, K, H, 1, dk)
        hist_k = k if hist_k is None else torch.cat([hist_k, k], 3)
        hist_v = v if hist_v is None else torch.cat([hist_v, v], 3)
        qh = q.permute(0, 2, 1, 3)  # (B, H, K, dk)
        scale = dk ** -0.5
        s_prefix = qh @ pk.transpose(-1, -2) * scale  # (B, H, K, Tp): the shared prefix, not copied
        s_own = torch.einsum("bkhd,bkhtd->bhkt", q, hist_k) * scale  # (B, H, K, level + 1)
        att = torch.softmax(torch.cat([s_prefix, s_own], -1), -1)
        tp = pk.shape[2]
        out = att[..., :tp] @ pv + torch.einsum("bhkt,bkhtd->bhkd", att[..., tp:], hist_v)
        x = x + F.linear(out.permute(0, 2, 1, 3).reshape(n_req, n_beams, d), *layer.self_o)
        cq = F.linear(layer.norm(1, x), *layer.cross_q).view(n_req, n_beams, h_, dk).permute(0, 2, 1, 3)
        catt = torch.softmax(cq @ mk.transpose(-1, -2) * scale + mem_bias, -1)  # (B, H, K, S), memory shared
        x = x + F.linear((catt @ mv).permute(0, 2, 1, 3).reshape(n_req, n_beams, d), *layer.cross_o)
        f, _ = layer.ffn(layer.norm(2, x))
        return x + f, hist_k, hist_v


def _take(t: torch.Tensor, origin: torch.Tensor) -> torch.Tensor:
    """Rows ``origin`` (B, K_new) of t (B, K_old, ...) per request."""
    idx = origin.view(*origin.shape, *([1] * (t.dim() - 2))).expand(-1, -1, *t.shape[2:])
    return t.gather(1, idx)


def _filter(logits: torch.Tensor, top_k: int, top_p: float) -> torch.Tensor:
    """Top-k and nucleus filtering of (..., V) logits: the rest becomes -inf (the trie masks later)."""
    if top_k and top_k < logits.shape[-1]:
        kth = logits.topk(top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = logits.sort(-1, descending=True)
        probs = sorted_logits.softmax(-1)
        drop = probs.cumsum(-1) - probs > top_p  # keep the smallest prefix whose mass reaches top_p
        logits = logits.masked_fill(drop.scatter(-1, order, drop), float("-inf"))
    return logits
