"""Trie-constrained beam search over code tokens (batched, encoder once, decoder KV cache).

Every step masks the logits with the trie of valid code tuples (optionally a
scenario's candidate pool), so every returned item exists: zero invalid items.
Items a user has already interacted with can be excluded from the returned list
(``exclude``): the last level keeps as many extra candidates as it may drop,
out of (beam x last-level vocabulary); a beam too narrow for that pads with -1.
"""

from __future__ import annotations

import torch

from .generator import Generator, catalogue_mask
from .trie import CodeTrie


def _reorder(cache, index: torch.Tensor):
    for key, value in cache.items():
        if isinstance(value, dict):
            _reorder(value, index)
        else:
            cache[key] = value.index_select(0, index)


@torch.no_grad()
def beam_search(model: Generator, batch: dict, trie: CodeTrie, beam: int = 50, topk: int = 20,
                leaf_rows: torch.Tensor | None = None, exclude: torch.Tensor | None = None,
                prm=None, dense_mix: float | None = None,
                enc: tuple | None = None, dense_candidates: int | None = None,
                dense_interleave: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Top ``topk`` items per row of ``batch`` as (item rows, log-probabilities), best first.

    ``leaf_rows`` maps the trie's leaves to global item rows when ``trie`` covers a candidate pool;
    rows with fewer valid items than ``topk`` are padded with -1 and score -inf. ``exclude``: (rows, H)
    global item rows never to return (e.g. the user's history); entries outside the catalogue are padding.
    ``prm``: a ``prm.ProcessRewardModel`` that re-ranks each level's extensions before the last (pruning).
    ``dense_mix``: weight of the dense head's item log-probability in the final ranking of the last level's
    candidates (``Generator.rescore``; default the model's own ``dense_mix``). ``enc``: ``encode_users(model,
    batch)`` when the caller already has it (it is not computed again). ``dense_candidates``: the dense head's that
    many best items outside the beam and ``exclude`` join the last level's candidates, scored by their whole code
    path (``path_logp``) as the beam scores its own (default the model's own ``dense_candidates``; not with
    ``leaf_rows``, whose trie covers a pool the dense head does not know). ``dense_interleave``: > 0, the ranked list
    is then merged with the dense head's own ranking of the catalogue outside ``exclude`` (``interleave_dense``; default
    the model's own); the scores returned are then the merged list's place scores, not log-probabilities.
    """
    model.eval()
    enc = encode_users(model, batch) if enc is None else enc
    instr, query, memory, mask = enc
    user_memory, user_mask = memory, mask  # one row per user, for the PRM
    paths = torch.zeros(memory.shape[0], 1, 0, dtype=torch.long)  # the codes chosen so far (kept for the PRM)
    prefix = model.prefix(instr)
    cache: dict = {}
    h, _ = model.decode(prefix, memory, mask, 0, cache)
    last = first_state = h[:, -1]
    n_users = memory.shape[0]
    scores = torch.zeros(n_users, 1)
    prefix_ids = torch.zeros(n_users, 1, dtype=torch.long)
    levels = trie.levels
    extra = 0 if exclude is None else int(exclude.shape[1])  # candidates the filter may remove
    for lvl in range(levels):
        n_beams = scores.shape[1]
        vocab = trie.vocab[lvl]
        logp = torch.log_softmax(model.heads[lvl](last).float(), -1)
        allowed = trie.allowed_mask(lvl, prefix_ids.clamp(min=0).flatten()) & (prefix_ids.flatten() >= 0)[:, None]
        total = (scores.view(-1, 1) + logp.masked_fill(~allowed, float("-inf"))).view(n_users, n_beams * vocab)
        k = min(beam if lvl < levels - 1 else max(beam, topk + extra), n_beams * vocab)
        if prm is not None and lvl < levels - 1:
            scores, idx = _prm_pruned(prm, user_memory, user_mask, paths, total, vocab, k)
        else:
            scores, idx = total.topk(k, dim=1)
        origin, code = idx // vocab, idx % vocab
        if prm is not None:
            paths = torch.cat([paths.gather(1, origin[..., None].expand(-1, -1, lvl)), code[..., None]], -1)
        flat = (origin + torch.arange(n_users)[:, None] * n_beams).flatten()
        valid = torch.isfinite(scores).flatten()
        parent = prefix_ids.flatten()[flat]
        nxt = torch.full_like(parent, -1)
        if valid.any():
            nxt[valid] = trie.step(lvl, parent[valid], code.flatten()[valid])
        prefix_ids = nxt.view(n_users, k)
        if lvl < levels - 1:
            _reorder(cache, flat)
            memory, mask = memory.index_select(0, flat), mask.index_select(0, flat)
            tok = model.code_token(lvl, code.flatten()).unsqueeze(1)
            h, _ = model.decode(tok, memory, mask, prefix.shape[1] + lvl, cache)
            last = h[:, -1]
    items = torch.where(prefix_ids >= 0, trie.item_of_leaf[prefix_ids.clamp(min=0)], torch.full_like(prefix_ids, -1))
    if leaf_rows is not None:
        items = torch.where(items >= 0, leaf_rows[items.clamp(min=0)], items)
    return final_list(model, first_state, items, scores, topk, exclude, dense_mix=dense_mix,
                      dense_candidates=dense_candidates, dense_interleave=dense_interleave,
                      has_dense=leaf_rows is None,  # a pool's trie: the dense head does not know it
                      enc=lambda: enc, batch=batch)


def final_list(model, first_state: torch.Tensor, items: torch.Tensor, scores: torch.Tensor, topk: int,
               exclude: torch.Tensor | None = None, *, dense_mix: float | None = None,
               dense_candidates: int | None = None, dense_interleave: float | None = None, has_dense: bool = True,
               enc=None, batch: dict | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The last level's candidates (item rows, path log-probabilities) made into the returned list, as both
    decoders (``beam_search``, ``fast_decoding.BeamDecoder``) finish: the dense head's best items outside them
    joined (``dense_candidates``; needs ``batch`` and ``enc``, a callable giving ``encode_users(model, batch)``), the
    dense mix (``Generator.rescore``), ``exclude``'s items dropped, the best ``topk``, then merged with the dense
    head's own list (``dense_interleave``). Options left None take the model's own; ``has_dense`` False (a
    candidate pool's trie, beam sampling) uses no dense head beyond the model's mix."""
    n_dense = model.cfg.dense_candidates if dense_candidates is None else dense_candidates
    weight = model.cfg.dense_interleave if dense_interleave is None else dense_interleave
    has_dense = has_dense and model.cfg.dense_weight > 0
    dense = model.dense_logp(first_state) if has_dense and (n_dense > 0 or weight > 0) else None  # read once
    if n_dense > 0 and has_dense:  # the join picks candidates by it, the mix below ranks them
        items, scores = join_dense_candidates(model, batch, enc(), first_state, items, scores, exclude, n_dense,
                                              dense)
    scores = model.rescore(first_state, items, scores, dense_mix, dense)
    if exclude is not None:
        seen = (items[:, :, None] == exclude[:, None, :]).any(-1) & (items >= 0)
        scores = scores.masked_fill(seen, float("-inf"))
    scores, order = scores.topk(min(topk, scores.shape[1]), dim=1)
    items = items.gather(1, order).masked_fill(~torch.isfinite(scores), -1)
    if weight > 0 and has_dense:
        return interleave_dense(items, dense, weight, exclude)
    return items, scores


def interleave_dense(items: torch.Tensor, dense: torch.Tensor, weight: float,
                     exclude: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The ranked list ``items`` (rows, K; best first, -1 padding at the end) interleaved with the dense head's own
    ranking of the catalogue (``dense``: log-probabilities, rows x items; ``exclude``d items left out):
    ``merge_ranked(items, the dense head's best K, weight)``."""
    if exclude is not None:
        dense = dense.masked_fill(catalogue_mask(exclude, dense.shape[1]), float("-inf"))
    top = dense.topk(min(items.shape[1], dense.shape[1]), dim=1)
    return merge_ranked(items, top.indices.masked_fill(~torch.isfinite(top.values), -1), weight)


def merge_ranked(first: torch.Tensor, second: torch.Tensor, weight: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Two best-first lists of item rows (rows, K) and (rows, M), -1 padding at their ends, merged into one of
    width K: the item at 0-based place r of ``first`` scores 1 / (r + 2), of ``second`` ``weight`` / (r + 2), an item
    in both the higher of its two, ties to ``first``. With weight 0.5 the second list's best three items, where the
    first lacks them, take the fourth, seventh and tenth places: three of the top ten. Returns (items, those
    scores), -1 / -inf where fewer than K items are left."""
    def place(t: torch.Tensor) -> torch.Tensor:
        return 1.0 / torch.arange(2, t.shape[1] + 2, dtype=torch.float32, device=t.device).expand(t.shape)

    s1 = place(first).masked_fill(first < 0, float("-inf"))
    s2 = (weight * (1 - 1e-6) * place(second)).masked_fill(second < 0, float("-inf"))
    both = (second[:, :, None] == first[:, None, :]) & (second >= 0)[:, :, None]  # (rows, M, K)
    s1 = torch.maximum(s1, torch.where(both, s2[:, :, None], float("-inf")).amax(1))
    s2 = s2.masked_fill(both.any(2), float("-inf"))
    scores, order = torch.cat([s1, s2], 1).topk(first.shape[1], dim=1)
    items = torch.cat([first, second], 1).gather(1, order)
    return items.masked_fill(~torch.isfinite(scores), -1), scores


@torch.no_grad()
def join_dense_candidates(model, batch, enc, state, items, scores, exclude, n: int, dense: torch.Tensor | None = None):
    """The beam's (items, scores) followed by the dense head's ``n`` best items that are neither among them nor in
    ``exclude``, each scored by the log-probability of its whole code path (-1 / -inf where none is left).
    ``enc``: ``encode_users(model, batch)``; ``state``: the decoder state that predicts the first code; ``dense``:
    ``model.dense_logp(state)`` where the caller already has it (it is not computed again)."""
    dense = model.dense_logp(state) if dense is None else dense
    taken = catalogue_mask(items if exclude is None else torch.cat([items, exclude], 1), dense.shape[1])
    top = dense.masked_fill(taken, float("-inf")).topk(min(n, dense.shape[1]), dim=1)
    extra = top.indices.masked_fill(~torch.isfinite(top.values), -1)
    gen = path_logp(model, batch, extra, enc=enc, per_level=True).sum(-1).masked_fill(extra < 0, float("-inf"))
    return torch.cat([items, extra], 1), torch.cat([scores, gen], 1)


def _prm_pruned(prm, memory, pad, paths, total, vocab: int, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` of the generator's best ``expand x k`` extensions with the highest log-probability plus
    ``weight x`` the PRM's log-softmax over them; returns their generator scores and flat indices."""
    wide, widx = total.topk(min(prm.cfg.expand * k, total.shape[1]), dim=1)
    origin, code = widx // vocab, widx % vocab
    depth = paths.shape[-1]
    candidates = torch.cat([paths.gather(1, origin[..., None].expand(-1, -1, depth)), code[..., None]], -1)
    finite = torch.isfinite(wide)
    plausibility = torch.log_softmax(prm(memory, pad, candidates).float().masked_fill(~finite, -1e9), 1)
    keep = (wide + prm.cfg.weight * plausibility).masked_fill(~finite, float("-inf")).topk(k, dim=1).indices
    return wide.gather(1, keep), widx.gather(1, keep)


@torch.no_grad()
def encode_users(model: Generator, batch: dict) -> tuple:
    """(instruction tokens, instruction query, encoder memory, memory mask) of ``batch``'s users, in evaluation
    mode: what ``beam_search`` and ``path_logp`` start from, computed once when a caller needs both."""
    model.eval()
    instr, query = model.instruction(batch)
    memory, mask, _ = model.encode(batch, query)
    return instr, query, memory, mask


def first_state(model: Generator, enc: tuple) -> torch.Tensor:
    """The decoder state that predicts the first code (what the dense head reads), from ``encode_users(model,
    batch)``: (rows, d_model); an ensemble's members' side by side."""
    instr, _, memory, mask = enc
    return model.decode(model.prefix(instr), memory, mask)[0][:, -1]


@torch.no_grad()
def path_logp(model: Generator, batch: dict, items: torch.Tensor, chunk: int = 8192,
              enc: tuple | None = None, per_level: bool = False) -> torch.Tensor:
    """Log-probability of each given item's whole code path under ``model`` (teacher forcing): (rows, C).

    ``items``: (rows, C) item rows, -1 for none (scored -inf). The sum over levels of the heads' log-softmax at the
    item's codes in the model's own codebook, plus the model's ``dense_mix`` x its dense log-probability where it
    has a dense head: the score ``beam_search`` gives the item when its beam keeps it, for any item, in or out of
    the beam. ``enc``: ``encode_users(model, batch)``, if the caller has it. ``per_level``: each level's
    log-probability instead, (rows, C, levels), without the dense term (0 where there is no item)."""
    model.eval()
    instr, _, memory, mask = encode_users(model, batch) if enc is None else enc
    prefix = model.prefix(instr)
    rows, width = items.shape
    owner = torch.arange(rows).repeat_interleave(width)
    flat_codes = model.item_codes[items.clamp(min=0).flatten()]
    levels = flat_codes.shape[1]
    each = torch.empty(rows * width, levels)
    for s in range(0, rows * width, chunk):  # (rows x C) decoder passes, a chunk at a time
        who, c = owner[s:s + chunk], flat_codes[s:s + chunk]
        h, _ = model.code_states(prefix[who], c, memory[who], mask[who])
        each[s:s + chunk] = torch.stack([torch.log_softmax(model.heads[lvl](h[:, lvl]).float(), -1)
                                         .gather(1, c[:, lvl:lvl + 1]).squeeze(1) for lvl in range(levels)], 1)
    if per_level:
        return each.view(rows, width, levels).masked_fill((items < 0)[..., None], 0.0)
    out = each.sum(1).view(rows, width)
    if model.cfg.dense_weight > 0 and model.cfg.dense_mix:
        h, _ = model.decode(prefix, memory, mask)  # the state that predicts the first code, as beam_search has it
        out = model.rescore(h[:, -1], items, out)
    return out.masked_fill(items < 0, float("-inf"))
