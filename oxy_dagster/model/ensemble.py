"""Several generators over one SID catalogue, decoded as one generator (a product of experts).

``GeneratorEnsemble`` exposes the methods ``beam_search`` and ``path_logp`` call on a ``Generator``
(instruction, encode, prefix, decode, heads, code_token, code_states, rescore): every member
runs its own encoder and decoder, the members' states travel concatenated along
the feature axis (so beam search reorders them, and the members' KV caches, as it
reorders one model's), and each code level's log-probabilities are the members'
mean log-softmax. Beam search renormalises that mean, so the ensemble ranks code
paths by the geometric mean of the members' probabilities, and the trie keeps
every returned item valid. Members may differ in seed, width or training budget;
they must share the catalogue's code vocabularies. When every member has a dense
head (LIGER's hybrid, ``dense_weight`` > 0), the ensemble has one too: the
members' mean dense log-probability, mixed into the last level's ranking with the
first member's ``dense_mix`` as a single generator mixes its own.

``CodebookEnsemble`` joins generators trained on *different* SID codebooks of one
catalogue (e.g. RQ-KMeans with another seed): no joint beam exists over two tries,
so each member's trie-constrained beam proposes items, the union is scored by every
member (``path_logp``: each item's whole code path, in or out of that member's
beam), and items rank by the members' mean log-probability.
"""

from __future__ import annotations

from dataclasses import replace
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from .decoding import beam_search, encode_users, path_logp
from .generator import Generator
from .trie import CodeTrie


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
        dense = all(m.cfg.dense_weight > 0 for m in members)  # a member without a dense head: none to mix in
        self.cfg = members[0].cfg if dense else replace(members[0].cfg, dense_weight=0.0, dense_mix=0.0)
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
        memory, mask = _side_by_side([o[0] for o in outs], [o[1] for o in outs])
        return memory, mask, sum(o[2] for o in outs)

    def prefix(self, instr: list) -> torch.Tensor:
        return torch.cat([m.prefix(i) for m, i in zip(self.members, instr)], -1)

    def split_encoding(self, enc: tuple) -> list[tuple]:
        """Each member's ``encode_users`` tuple (instruction tokens, query, memory, mask) read out of the ensemble's
        (``encode_users(ensemble, batch)``), so a caller that needs both encodes the users once. A member's memory
        keeps the ensemble's padding to the longest member's, which its mask covers."""
        instr, query, memory, mask = enc
        return list(zip(instr, self.split_state(query), self.split_state(memory), mask.chunk(len(self.members), 1)))

    def join_encodings(self, encs: list[tuple]) -> tuple:
        """The ensemble's ``encode_users`` tuple from each member's own (the inverse of ``split_encoding``), for a
        caller that ran the members' encoders itself (``BeamDecoder``)."""
        memory, mask = _side_by_side([e[2] for e in encs], [e[3] for e in encs])
        return [e[0] for e in encs], torch.cat([e[1] for e in encs], -1), memory, mask

    def decode(self, tokens, memory, mem_mask, start_pos: int = 0, cache=None):
        masks = mem_mask.chunk(len(self.members), 1)
        states = []
        for i, (m, tok, mem) in enumerate(zip(self.members, self.split_state(tokens), self.split_state(memory))):
            h, _ = m.decode(tok, mem, masks[i], start_pos, None if cache is None else cache.setdefault(f"m{i}", {}))
            states.append(h)
        return torch.cat(states, -1), tokens.new_zeros(())

    def code_token(self, level: int, codes: torch.Tensor) -> torch.Tensor:
        return torch.cat([m.code_token(level, codes) for m in self.members], -1)

    @property
    def item_codes(self) -> torch.Tensor:
        return self.members[0].item_codes  # one catalogue: every member's codes are these

    def code_states(self, prefix, codes, memory, mask):
        """Teacher-forced states of code paths, the members' side by side (``path_logp`` scores any item with them)."""
        return Generator.code_states(self, prefix, codes, memory, mask)

    def dense_logp(self, state: torch.Tensor) -> torch.Tensor:
        """The members' mean dense log-probability of every catalogue item (their dense heads as a product of
        experts; unnormalised, which leaves each user's ranking as it is)."""
        return torch.stack([m.dense_logp(p) for m, p in zip(self.members, self.split_state(state))]).mean(0)

    def rescore(self, state, items, scores, mix=None, dense=None):
        # the same mixing, over the members' dense head
        return Generator.rescore(self, state, items, scores, mix, dense)


def _side_by_side(memories: list[torch.Tensor], masks: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Members' memories padded to the longest (padding masked) and concatenated on the feature axis; their key
    masks side by side on the key axis."""
    keys = max(m.shape[1] for m in memories)
    memory = torch.cat([F.pad(m, (0, 0, 0, keys - m.shape[1])) for m in memories], -1)
    mask = torch.cat([torch.cat([k, k.new_ones(k.shape[0], keys - k.shape[1])], 1) for k in masks], 1)
    return memory, mask


class CodebookEnsemble:
    """Generators over different SID codebooks of one catalogue (same items, same row order), decoded as one.

    ``members``: (generator, the trie of its codebook) per member. ``search`` returns the top ``topk`` items of the
    union of the members' beams by the members' mean path log-probability."""

    def __init__(self, members: list[tuple[nn.Module, CodeTrie]]):
        if not members:
            raise ValueError("an ensemble needs at least one generator")
        self.pad_item = members[0][0].pad_item  # the catalogue's size (the padding row follows its items)
        for i, (model, _) in enumerate(members):
            if model.pad_item != self.pad_item:
                raise ValueError(f"member {i} covers {model.pad_item} items, member 0 {self.pad_item}: "
                                 "not one catalogue")
        self.members = [(m.eval(), t) for m, t in members]
        self.cfg = replace(members[0][0].cfg, dense_weight=0.0, dense_mix=0.0)

    def eval(self) -> CodebookEnsemble:
        return self

    @torch.no_grad()
    def search(self, batch: dict, beam: int, topk: int, exclude: torch.Tensor | None = None):
        """(item rows, scores), best first, -1 / -inf where fewer than ``topk`` items remain; ``exclude``: item rows
        never to return (padding entries are ignored)."""
        encs = [encode_users(m, batch) for m, _ in self.members]  # each member's encoder runs once
        proposals = [beam_search(m, batch, trie, beam=beam, topk=beam, enc=e, dense_interleave=0.0)[0]
                     for (m, trie), e in zip(self.members, encs)]
        union = unique_rows(torch.cat(proposals, 1))
        score = torch.stack([path_logp(m, batch, union, enc=e) for (m, _), e in zip(self.members, encs)]).mean(0)
        if exclude is not None:
            score = score.masked_fill((union[:, :, None] == exclude[:, None, :]).any(-1), float("-inf"))
        score, order = score.topk(min(topk, score.shape[1]), dim=1)
        return union.gather(1, order).masked_fill(~torch.isfinite(score), -1), score


def unique_rows(items: torch.Tensor) -> torch.Tensor:
    """Each row's distinct item rows (sorted), repeats and -1 entries replaced by -1."""
    s = items.sort(1).values
    repeat = torch.zeros_like(s, dtype=torch.bool)
    repeat[:, 1:] = s[:, 1:] == s[:, :-1]
    return s.masked_fill(repeat | (s < 0), -1)
