"""Beam search replayed from CUDA graphs: ``BeamDecoder``'s level loop without its kernel launches from Python.

On a GPU the serving decoder is launch-bound: a small generator's request is a few hundred small kernels, each
launched from Python, so beam 256 costs what beam 50 does and a batch of 32 requests what one does
(``benchmarks/results/decoding_gpu.json``). ``GraphedBeamDecoder`` records everything after the encoders (every
level's decoder layers and beam step, the dense mix, the history exclusion and the final top-k) once per
(requests, beam, topk, exclusion width) as a CUDA graph, and replays it:

* the encoders and the prefix pass still run eagerly per batch: their shapes follow the histories (padding
  columns are dropped, IGR keeps the long items it retrieves), and reading those shapes is a host sync;
* their outputs are copied into the graph's static buffers, the encoder memory padded to the longest the model
  can produce (``1 + max_short + igr_k`` tokens) with keys the attention masks out (bias -inf, values zero), so
  one graph serves every history length and the lists are those of ``BeamDecoder``;
* MoE decoders route tokens with data-dependent shapes and are refused; dense candidates (which read the batch
  again) and beam sampling fall back to ``BeamDecoder``.

On a CPU model (``graphs=False``, the default there) the same padded path runs without a graph: what the tests
compare with ``BeamDecoder`` on machines without a GPU.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .fast_decoding import BeamDecoder
from .layers import MoEFFN


@dataclass
class _Captured:
    graph: torch.cuda.CUDAGraph
    inputs: list[torch.Tensor]  # the static buffers: the flattened states, then the exclusion rows if any
    items: torch.Tensor
    scores: torch.Tensor


def pad_memory(state: dict, length: int) -> dict:
    """A member's ``_start`` state with the encoder memory padded to ``length`` tokens that attention ignores."""
    s = state["mem_bias"].shape[-1]
    if s > length:
        raise ValueError(f"the encoder memory has {s} tokens, more than the {length} the graphs were built for")
    if s == length:
        return state
    pad = length - s
    shared = [(pk, pv, F.pad(mk, (0, 0, 0, pad)), F.pad(mv, (0, 0, 0, pad))) for pk, pv, mk, mv in state["shared"]]
    return {**state, "shared": shared, "mem_bias": F.pad(state["mem_bias"], (0, pad), value=float("-inf"))}


def flatten_states(states: list[dict]) -> list[torch.Tensor]:
    """The tensors the level loop reads from the members' states, in a fixed order."""
    return [t for st in states for t in (*[x for layer in st["shared"] for x in layer], st["mem_bias"], st["last"],
                                         st["first"])]


def unflatten_states(tensors: list[torch.Tensor], like: list[dict]) -> list[dict]:
    """States shaped as ``like`` (its prefix lengths and layer counts) over ``tensors`` (``flatten_states``)."""
    states, at = [], 0
    for st in like:
        n = len(st["shared"])
        shared = [tuple(tensors[at + 4 * i: at + 4 * i + 4]) for i in range(n)]
        at += 4 * n
        mem_bias, last, first = tensors[at: at + 3]
        at += 3
        states.append({"shared": shared, "mem_bias": mem_bias, "t_prefix": st["t_prefix"], "last": last,
                       "first": first, "hist_k": [None] * n, "hist_v": [None] * n})
    return states


class GraphedBeamDecoder:
    """``BeamDecoder.decode`` (beam mode) with the level loop replayed from a CUDA graph per shape; same lists.

    ``graphs``: record and replay CUDA graphs (default: when the model is on a GPU); ``max_memory``: the encoder
    memory length the buffers are padded to (default: the longest any member produces)."""

    def __init__(self, decoder: BeamDecoder, graphs: bool | None = None, max_memory: int | None = None):
        self.decoder = decoder
        self.device = next(decoder.model.parameters()).device
        self.graphs = self.device.type == "cuda" if graphs is None else graphs
        if self.graphs and any(isinstance(layer.ffn, MoEFFN) for m in decoder.members for layer in m.decoder):
            raise ValueError("an MoE decoder routes tokens with data-dependent shapes, which a CUDA graph cannot "
                             "replay: decode it with BeamDecoder")
        if self.graphs and self.device.type != "cuda":
            raise ValueError(f"CUDA graphs need the model on a GPU; it is on {self.device}")
        self.max_memory = max_memory or max(1 + m.cfg.max_short + m.cfg.igr_k for m in decoder.members)
        self.captured: dict[tuple, _Captured] = {}

    @torch.inference_mode()
    def decode(self, batch: dict, beam: int = 256, topk: int = 20,
               exclude: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Top ``topk`` items per request as (item rows, log-probabilities), as ``BeamDecoder.decode`` gives them."""
        with torch.device(self.device):
            if self.decoder.model.cfg.dense_candidates > 0:  # the join encodes the batch's users again
                return self.decoder.decode(batch, beam, topk, exclude)
            states = [pad_memory(self.decoder._start(j, batch), self.max_memory)
                      for j in range(len(self.decoder.members))]
            if not self.graphs:
                return self.decoder.search(states, None, beam, topk, exclude)
            tensors = flatten_states(states) + ([] if exclude is None else [exclude])
            key = (tuple(t.shape for t in tensors), beam, topk)
            entry = self.captured.get(key)
            if entry is None:
                entry = self.captured[key] = self._capture(states, tensors, beam, topk, exclude is not None)
            for buffer, t in zip(entry.inputs, tensors):
                buffer.copy_(t)
            entry.graph.replay()
            return entry.items.clone(), entry.scores.clone()

    def _capture(self, states: list[dict], tensors: list[torch.Tensor], beam: int, topk: int,
                 has_exclude: bool) -> _Captured:
        """Record the level loop over static copies of ``tensors``, after warm-up runs on a side stream (Triton
        compiles its kernels and the allocator settles there, as graph capture requires)."""
        static = [t.clone() for t in tensors]
        n = len(static) - has_exclude

        def run():
            return self.decoder.search(unflatten_states(static[:n], states), None, beam, topk,
                                       static[n] if has_exclude else None)

        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(2):
                run()
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            items, scores = run()
        return _Captured(graph, static, items, scores)
