"""Several generators over one SID catalogue, decoded as one generator (a product of experts).

``GeneratorEnsemble`` exposes the methods ``beam_search`` calls on a ``Generator``
(instruction, encode, prefix, decode, heads, code_token, rescore): every member
runs its own encoder and decoder, the members' states travel concatenated along
the feature axis (so beam search reorders them, and the members' KV caches, as it
reorders one model's), and each code level's log-probabilities are the members'
mean log-softmax. Beam search renormalises that mean, so the ensemble ranks code
paths by the geometric mean of the members' probabilities, and the trie keeps
every returned item valid. Members may differ in seed, width or training budget;
they must share the catalogue's code vocabularies.
"""

from __future__ import annotations

from dataclasses import replace
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn


class GeneratorEnsemble(nn.Module):
    def __init__(self, members: list[nn.Module]):
        super().__init__()
        if not members:
            raise ValueError("an ensemble needs at least one generator")
        vocab = list(members[0].cfg.code_vocab)
        for i, m in enumerate(members[1:], 1):
            if list(m.cfg.code_vocab) != vocab or m.pad_item != members[0].pad_item:
                raise ValueError(f"member {i} has code vocabularies {list(m.cfg.code_vocab)} / pad item "
                                 f"{m.pad_item}, member 0 {vocab} / {members[0].pad_item}: not one catalogue")
        self.members = nn.ModuleList(members)
        self.cfg = replace(members[0].cfg, dense_weight=0.0, dense_mix=0.0)  # no dense head to mix in
        self.pad_item = members[0].pad_item
        self.widths = [m.cfg.d_model for m in members]
        self.heads = [partial(self.level_logp, lvl) for lvl in range(len(vocab))]  # what beam search calls

    def level_logp(self, level: int, state: torch.Tensor) -> torch.Tensor:
        """One code level's head of the ensemble: the members' mean log-softmax over that level's codes."""
        return torch.stack([F.log_softmax(m.heads[level](p).float(), -1)
                            for m, p in zip(self.members, self.split_state(state))]).mean(0)

    def split_state(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return torch.split(x, self.widths, dim=-1)

    def instruction(self, batch: dict):
        outs = [m.instruction(batch) for m in self.members]
        return [o[0] for o in outs], torch.cat([o[1] for o in outs], -1)

    def encode(self, batch: dict, query: torch.Tensor):
        """Every member's memory, padded to the longest (padding masked) and concatenated on the feature axis;
        the members' key masks side by side on the key axis."""
        outs = [m.encode(batch, q) for m, q in zip(self.members, self.split_state(query))]
        keys = max(o[0].shape[1] for o in outs)
        memory = torch.cat([F.pad(o[0], (0, 0, 0, keys - o[0].shape[1])) for o in outs], -1)
        mask = torch.cat([torch.cat([o[1], o[1].new_ones(o[1].shape[0], keys - o[1].shape[1])], 1) for o in outs], 1)
        return memory, mask, sum(o[2] for o in outs)

    def prefix(self, instr: list) -> torch.Tensor:
        return torch.cat([m.prefix(i) for m, i in zip(self.members, instr)], -1)

    def decode(self, tokens, memory, mem_mask, start_pos: int = 0, cache=None):
        masks = mem_mask.chunk(len(self.members), 1)
        states = []
        for i, (m, tok, mem) in enumerate(zip(self.members, self.split_state(tokens), self.split_state(memory))):
            h, _ = m.decode(tok, mem, masks[i], start_pos, None if cache is None else cache.setdefault(f"m{i}", {}))
            states.append(h)
        return torch.cat(states, -1), tokens.new_zeros(())

    def code_token(self, level: int, codes: torch.Tensor) -> torch.Tensor:
        return torch.cat([m.code_token(level, codes) for m in self.members], -1)

    def rescore(self, state, items, scores, mix=None):
        return scores
