"""Scoring shared by the Beauty benchmarks: one beam search per user, read under several protocols.

``candidates`` keeps the beam's last-level items (beam, at least 20, + history length of them, so the
history filter can drop items without emptying the list: the same list ``beam_search(exclude=...)``
filters), for a model with ``dense_candidates`` also the dense head's best non-history items outside them (as
``beam_search(exclude=history)`` joins them; the plain protocol gets its own list, whose dense candidates are chosen
without knowing the history, as ``beam_search()`` chooses them), with their generation log-probability and,
for a model with a dense head, their dense log-probability;
``scored`` ranks them under a ``dense_mix`` with or without the history filter.
``split_figures`` reads a whole split (or its first ``limit`` users) that way; ``curve_point`` and ``minutes_to``
turn checkpoints into the recall-vs-time curve, scored on a seeded sample of users per split.
"""

from __future__ import annotations

import numpy as np
import torch
from tqdm import tqdm

from oxy_dagster.model.decoding import beam_search, encode_users, first_state, join_dense_candidates, merge_ranked
from oxy_dagster.model.evaluate import history_items, list_figures, ranking_metrics

KEYS = ("recall@10", "ndcg@10")


@torch.no_grad()
def candidates(model, data, trie, rows: np.ndarray, beam: int, batch_size: int = 256, desc: str = "candidates"):
    lists = ("", "plain_") if model.cfg.dense_weight > 0 and model.cfg.dense_candidates > 0 else ("",)
    out = {f"{p}{k}": [] for p in lists for k in ("items", "gen", "dense", "seen")}
    model.eval()
    for i in tqdm(range(0, len(rows), batch_size), desc=desc, mininterval=5):
        batch = data.batch(rows[i:i + batch_size])
        hist = history_items(batch)
        width = max(beam, 20) + hist.shape[1]
        if hasattr(model, "search"):  # a CodebookEnsemble: its members' beams, each over its own trie
            items, gen = model.search(batch, beam, width)
        else:
            enc = encode_users(model, batch)
            items, gen = beam_search(model, batch, trie, beam=beam, topk=width, dense_mix=0.0, enc=enc,
                                     dense_candidates=0, dense_interleave=0.0)  # the beam's own, ranked below
        state = dense_all = None
        if model.cfg.dense_weight > 0:
            state = first_state(model, enc)
            dense_all = model.dense_logp(state)  # once per batch: both lists read it
            top = dense_all.topk(width, dim=1).indices  # the dense head's own list, for dense_interleave
            out.setdefault("dense_top", []).append(top)
            out.setdefault("dense_top_seen", []).append((top[:, :, None] == hist[:, None, :]).any(-1))
        for p in lists:
            its, g = items, gen
            if len(lists) > 1:  # the dense head's best items outside the beam, and outside the history for the
                # filtered list (as beam_search(exclude=history) joins them), for the plain list outside the beam only
                its, g = join_dense_candidates(model, batch, enc, state, items, gen, None if p else hist,
                                               model.cfg.dense_candidates, dense_all)
            dense = torch.zeros_like(g) if dense_all is None else dense_all.gather(1, its.clamp(min=0))
            for k, v in (("items", its), ("gen", g), ("dense", dense),
                         ("seen", (its[:, :, None] == hist[:, None, :]).any(-1))):
                out[f"{p}{k}"].append(v)
    return {k: torch.cat(v) for k, v in out.items()}


def ranked(c: dict, mix, exclude_history: bool, k: int = 20, interleave: float = 0.0) -> np.ndarray:
    """The top ``k`` candidates (item rows, -1: empty) ranked by generation + mix x dense (mix "only": dense
    alone), without the user's history items when ``exclude_history``; the plain protocol reads its own list where
    ``candidates`` made one (``plain_*``: dense candidates chosen without knowing the history). ``interleave`` > 0:
    that list merged with the dense head's own (``decoding.merge_ranked``), as ``beam_search`` merges them."""
    if interleave > 0 and "dense_top" in c:
        first = torch.from_numpy(ranked(c, mix, exclude_history, k))
        return merge_ranked(first, dense_list(c, exclude_history, k), interleave)[0].numpy()
    if not exclude_history and "plain_items" in c:
        c = {key[len("plain_"):]: v for key, v in c.items() if key.startswith("plain_")}
    score = c["dense"] if mix == "only" else c["gen"] + float(mix) * c["dense"]
    score = score.masked_fill(c["items"] < 0, float("-inf"))
    if exclude_history:
        score = score.masked_fill(c["seen"], float("-inf"))
    top, order = score.topk(min(k, score.shape[1]), dim=1)
    return c["items"].gather(1, order).masked_fill(~torch.isfinite(top), -1).numpy()


def dense_list(c: dict, exclude_history: bool, k: int) -> torch.Tensor:
    """The dense head's own best ``k`` items per user from ``candidates``' ``dense_top`` (without the history items
    when ``exclude_history``; -1 padding at the end): the list ``dense_interleave`` merges."""
    dense = c["dense_top"].masked_fill(c["dense_top_seen"], -1) if exclude_history else c["dense_top"]
    return dense.gather(1, (dense < 0).int().sort(dim=1, stable=True).indices)[:, :k]  # the -1s to the end


def scored(c: dict, target: np.ndarray, mix, exclude_history: bool, keys=KEYS, interleave: float = 0.0) -> dict:
    """Recall / NDCG of the candidates ranked by generation + mix x dense (mix "only": dense alone), merged with
    the dense head's own list at weight ``interleave`` (0: not)."""
    pred = ranked(c, mix, exclude_history, interleave=interleave)
    return {k: round(float(v.mean()), 5) for k, v in ranking_metrics(pred, target).items() if k in keys}


def split_figures(model, data, trie, codes: np.ndarray, beam: int, limit: int = 0, split: str = "test") -> dict:
    """Every ``split`` user's figures at 5 / 10 / 20 with the history filter and without it (``plain``), both read
    from one beam search per user (the filtered list is the unfiltered candidates' best non-history items)."""
    rows = split_rows(data, split, len(codes), limit)
    c = candidates(model, data, trie, rows, beam, desc=split)
    target = data.tensors["target"].numpy()[rows]
    out = {}
    for exclude in (True, False):
        m = list_figures(ranked(c, model.cfg.dense_mix, exclude, interleave=model.cfg.dense_interleave), target, codes)
        out["filtered" if exclude else "plain"] = {k: v if isinstance(v, int) else round(v, 5) for k, v in m.items()}
    return {**out.pop("filtered"), **out}


def split_rows(data, split: str, n_items: int, limit: int = 0, sample: bool = False) -> np.ndarray:
    """The ``split``'s rows; with ``limit``, its first ``limit`` users, or a seeded random ``limit`` of them
    (``sample``: an unbiased estimate of the whole split; Beauty's first users are harder than the rest)."""
    rows = data.split_rows(split, n_items)
    if not limit or limit >= len(rows):
        return rows
    return np.sort(np.random.default_rng(0).choice(rows, limit, replace=False)) if sample else rows[:limit]


def curve_point(model, data, trie, minute: float, limit: int, beam: int) -> dict:
    """Validation and test figures (history filter on, and ``plain``) of a model at ``minute`` of training,
    ranked by its own ``dense_mix`` and ``dense_interleave``."""
    point = {"minute": round(minute, 2)}
    for split in ("valid", "test"):
        rows = split_rows(data, split, model.pad_item, limit, sample=True)
        c = candidates(model, data, trie, rows, beam, desc=f"curve {split} @ {minute:.1f} min")
        target = data.tensors["target"].numpy()[rows]
        mix, merge = model.cfg.dense_mix, model.cfg.dense_interleave
        point[split] = {**scored(c, target, mix, True, interleave=merge),
                        "plain": scored(c, target, mix, False, interleave=merge)}
    return point


def minutes_to(curve: list[dict], bar: dict, split: str = "test", plain: bool = False) -> float | None:
    """The first minute of the curve at which both of ``bar``'s figures are reached (None: never)."""
    for p in curve:
        got = p[split]["plain"] if plain else p[split]
        if all(got[k] >= bar[k] for k in KEYS):
            return p["minute"]
    return None
