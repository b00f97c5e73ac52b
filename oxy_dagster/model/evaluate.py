"""Offline evaluation: Recall@K, NDCG@K, HR@K and hierarchical recall per code level, per scenario.

With one held-out item per user (leave-one-out) Recall@K equals the seed's HR@K
(the generated code tuple matches the target's on every level within the top K).
Hierarchical recall@K at level l (Promise): the target's first l codes appear
among the first l codes of the top-K generated items.
``exclude_history`` drops the items already in a user's short and long history
from the ranked list (a serving filter); ``history_repeat_rate`` measures on the
training split whether a dataset ever repeats an item, i.e. whether the filter can
cost a hit.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from .decoding import beam_search
from .generator import history_items

KS = (5, 10, 20)


def ranking_metrics(pred: np.ndarray, target: np.ndarray, ks=KS) -> dict[str, np.ndarray]:
    """Per-row hit and NDCG arrays for each K (pred: (n, maxK) item rows, -1 = empty)."""
    hit_pos = np.full(len(target), np.inf)
    match = pred == target[:, None]
    rows, cols = np.nonzero(match)
    hit_pos[rows] = cols
    out = {}
    for k in ks:
        hit = hit_pos < k
        out[f"recall@{k}"] = hit.astype(float)
        out[f"ndcg@{k}"] = np.where(hit, 1.0 / np.log2(np.where(hit, hit_pos, 0) + 2), 0.0)
    return out


def hierarchical_recall(pred: np.ndarray, target: np.ndarray, codes: np.ndarray, k: int) -> dict[str, float]:
    out = {}
    valid = pred[:, :k] >= 0
    for lvl in range(1, codes.shape[1] + 1):
        p = codes[pred[:, :k].clip(min=0), :lvl]
        t = codes[target, :lvl][:, None, :]
        out[f"hier_recall@{k}_l{lvl}"] = float(((p == t).all(-1) & valid).any(1).mean())
    return out


@torch.no_grad()
def evaluate(model, data, trie, codes: np.ndarray, split: str = "test", beam: int = 50, batch_size: int = 128,
             ks=KS, max_rows: int | None = None, progress: bool = True, mask_trigger: bool = False,
             exclude_history: bool = False, prm=None) -> dict:
    """``mask_trigger``: replace every trigger item by the learnable default (seed Table 9).
    ``exclude_history``: never rank an item the user already has in its short or long history.
    ``prm``: Promise's process reward model guiding the beam (``prm.py``)."""
    rows = data.split_rows(split, len(codes))
    if max_rows:
        rows = rows[:max_rows]
    if len(rows) == 0:
        raise ValueError(f"no {split} samples to evaluate")
    preds = []
    for i in tqdm(range(0, len(rows), batch_size), desc=f"eval {split}", disable=not progress):
        batch = data.batch(rows[i:i + batch_size])
        if mask_trigger:
            batch["trigger"] = torch.full_like(batch["trigger"], model.pad_item)
        seen = history_items(batch) if exclude_history else None
        items, _ = beam_search(model, batch, trie, beam=beam, topk=max(ks), exclude=seen, prm=prm)
        preds.append(items.numpy())
    pred = np.concatenate(preds)
    target = data.tensors["target"].numpy()[rows]
    per_row = ranking_metrics(pred, target, ks)
    result = list_figures(pred, target, codes, ks, per_row)
    result.update({k.replace("recall", "hr"): v for k, v in result.items() if k.startswith("recall")})
    scen = data.meta.scenario.to_numpy()[rows]
    for s in pd.unique(scen):
        m = scen == s
        result[f"{s}/recall@10"] = float(per_row["recall@10"][m].mean())
        result[f"{s}/ndcg@10"] = float(per_row["ndcg@10"][m].mean())
    return result


def list_figures(pred: np.ndarray, target: np.ndarray, codes: np.ndarray, ks=KS, per_row: dict | None = None) -> dict:
    """Mean Recall / NDCG at each K, hierarchical recall at the largest K, and the list checks of ranked item rows
    ``pred`` (-1: empty) against ``target``; ``per_row``: ``ranking_metrics(pred, target, ks)`` when already known."""
    per_row = per_row if per_row is not None else ranking_metrics(pred, target, ks)
    result = {k: float(v.mean()) for k, v in per_row.items()}
    result.update(hierarchical_recall(pred, target, codes, max(ks)))
    result["invalid_items"] = int(((pred >= len(codes)) | (pred < -1)).sum())  # never an item outside the trie
    result["empty_slots"] = int((pred == -1).sum())  # only when a candidate pool has fewer than K items
    result["evaluated"] = int(len(target))
    return result


def history_repeat_rate(data, split: str = "train") -> float:
    """Share of ``split`` samples whose target item already sits in the sample's short or long history."""
    rows = torch.from_numpy((data.meta.split == split).to_numpy())
    target = data.tensors["target"][rows]
    hist = history_items(data.tensors)[rows]
    return float((hist == target[:, None]).any(1).double().mean()) if len(target) else 0.0
