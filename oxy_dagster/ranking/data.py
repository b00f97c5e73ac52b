"""Impressions + events -> list-wise ranking samples (label packing), or sampled negatives without impressions.

A request is one shown list: its context (scenario, trigger item, query) and its candidates with their
positions and labels (click / cart / purchase from the events that carry the request's id). A user's
requests in time order are cut into windows of ``requests``; each window is one sample, with the user's
profile and the ``history`` interactions before the window's first request. Requests at or after the
``1 - test_fraction`` quantile of request time are held out (``is_test``): their labels are scored, never
trained on, and they only ever see earlier requests (the model's block-causal mask).

Datasets without impressions (Amazon Beauty) get one request per interaction: the interacted item and
``negatives`` items drawn uniformly from the catalogue, shuffled into the shown positions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from ..data.contract import SCENARIOS
from ..model.data import BEHAVIOR_IDS, PROFILE_VOCABS, Catalogue
from .model import TASKS, RankerConfig


@dataclass
class RankData:
    tensors: dict[str, torch.Tensor]
    users: np.ndarray  # user id per sample
    source: str  # impressions | sampled negatives
    pad: int  # the padding item row (the catalogue's size)

    def __len__(self) -> int:
        return len(self.users)

    def batch(self, idx) -> dict:
        idx = torch.as_tensor(idx)
        return {k: v[idx] for k, v in self.tensors.items()}


def requests_from_impressions(impressions: pd.DataFrame, events: pd.DataFrame) -> pd.DataFrame:
    """One row per shown item: request context, position and the three labels."""
    acted = events[events.request_id.notna()].groupby(["request_id", "item_id"]).behavior.agg(set).rename("acts")
    df = impressions.join(acted, on=["request_id", "item_id"])
    acts = df.acts.map(lambda a: a if isinstance(a, set) else set())
    df["click"] = acts.map(lambda a: float(bool(a))).to_numpy()
    df["cart"] = acts.map(lambda a: float(bool(a & {"cart", "purchase"}))).to_numpy()
    df["purchase"] = acts.map(lambda a: float("purchase" in a)).to_numpy()
    return df.drop(columns="acts")


def requests_from_interactions(splits: pd.DataFrame, item_ids: np.ndarray, negatives: int,
                               seed: int) -> pd.DataFrame:
    """Each interaction as a request showing it and ``negatives`` uniformly sampled items."""
    rng = np.random.default_rng(seed)
    n = len(splits)
    negs = rng.integers(0, len(item_ids), (n, negatives))
    slot = rng.integers(0, negatives + 1, n)  # where the interacted item was shown
    rows = []
    for i, r in enumerate(splits.itertuples(index=False)):
        shown = [item_ids[j] for j in negs[i]]
        shown.insert(int(slot[i]), r.item_id)
        pos_labels = (1.0, float(r.behavior in ("cart", "purchase")), float(r.behavior == "purchase"))
        for p, item in enumerate(shown):
            lab = pos_labels if p == slot[i] else (0.0, 0.0, 0.0)
            rows.append((f"{r.user_id}-{r.pos}", r.user_id, item, r.timestamp, r.scenario, p, r.trigger_item_id,
                         r.query, *lab))
    return pd.DataFrame(rows, columns=["request_id", "user_id", "item_id", "timestamp", "scenario", "position",
                                       "trigger_item_id", "query", *TASKS])


def pack(shown: pd.DataFrame, history: pd.DataFrame, users: pd.DataFrame, cat: Catalogue, cfg: RankerConfig,
         text_encoder=None, city_vocab: list[str] | None = None, source: str = "impressions") -> RankData:
    """Windows of ``cfg.requests`` consecutive requests per user -> tensors (see the module docstring)."""
    shown = shown.sort_values(["user_id", "timestamp", "request_id", "position"]).reset_index(drop=True)
    req_idx, req_ids = pd.factorize(shown.request_id)  # requests numbered in (user, time) order
    first = shown.groupby(req_idx, sort=True).head(1)
    req = first.reset_index(drop=True)[["request_id", "user_id", "timestamp", "scenario", "trigger_item_id", "query"]]
    slot_in_req = shown.groupby(req_idx).cumcount().to_numpy()
    n_cand, n_req, pad = int(slot_in_req.max()) + 1, len(req), cat.pad
    rows_of = lambda ids: ids.map(cat.row).fillna(pad).to_numpy(np.int64)  # noqa: E731
    # per request: candidates, positions, labels
    r_cand = np.full((n_req, n_cand), pad)
    r_cand[req_idx, slot_in_req] = rows_of(shown.item_id)
    r_pos = np.zeros((n_req, n_cand), np.int64)
    r_pos[req_idx, slot_in_req] = np.minimum(shown.position.to_numpy(np.int64), n_cand - 1)
    r_lab = np.zeros((n_req, n_cand, len(TASKS)), np.float32)
    r_lab[req_idx, slot_in_req] = shown[list(TASKS)].to_numpy(np.float32)
    # windows of consecutive requests per user
    k = req.groupby("user_id", sort=False).cumcount().to_numpy()
    new_user = np.r_[True, req.user_id.to_numpy()[1:] != req.user_id.to_numpy()[:-1]]
    win = np.cumsum(new_user | (k % cfg.requests == 0)) - 1
    slot = k % cfg.requests
    s, r = int(win.max()) + 1, cfg.requests
    t = {"candidates": np.full((s, r, n_cand), pad), "positions": np.zeros((s, r, n_cand), np.int64),
         "labels": np.zeros((s, r, n_cand, len(TASKS)), np.float32), "request_mask": np.zeros((s, r), bool),
         "is_test": np.zeros((s, r), bool), "scenario": np.zeros((s, r), np.int64), "trigger": np.full((s, r), pad),
         "has_text": np.zeros((s, r), bool), "history": np.full((s, cfg.history), pad),
         "history_behaviors": np.zeros((s, cfg.history), np.int64)}
    t["candidates"][win, slot], t["positions"][win, slot], t["labels"][win, slot] = r_cand, r_pos, r_lab
    t["request_mask"][win, slot] = True
    t["is_test"][win, slot] = (req.timestamp >= req.timestamp.quantile(1 - cfg.test_fraction)).to_numpy()
    t["scenario"][win, slot] = req.scenario.map({x: i for i, x in enumerate(SCENARIOS)}).to_numpy(np.int64)
    t["trigger"][win, slot] = rows_of(req.trigger_item_id)
    texts = req["query"].where(req["query"].notna() & (req["query"] != ""))
    distinct = sorted(texts.dropna().unique())
    vecs = text_encoder.encode(distinct, progress=False) if distinct and text_encoder is not None else None
    t["text"] = np.zeros((s, r, vecs.shape[1] if vecs is not None else 384), np.float32)
    if vecs is not None:
        has = texts.notna().to_numpy()
        lookup = {q: i for i, q in enumerate(distinct)}
        t["has_text"][win[has], slot[has]] = True
        t["text"][win[has], slot[has]] = vecs[[lookup[q] for q in texts[has]]]
    # history: each window's user interactions before its first request, the most recent ``history``
    starts = np.flatnonzero(slot == 0)
    win_user, win_ts = req.user_id.to_numpy()[starts], req.timestamp.to_numpy()[starts]
    history = history.sort_values(["user_id", "timestamp"])
    h_rows, h_beh = rows_of(history.item_id), history.behavior.map(BEHAVIOR_IDS).fillna(1).to_numpy(np.int64)
    h_ts = history.timestamp.to_numpy()
    bounds = {u: (g[0], g[-1] + 1) for u, g in history.groupby("user_id", sort=False).indices.items()}
    for w, (u, ts) in enumerate(zip(win_user, win_ts)):
        if u in bounds:
            lo, hi = bounds[u]
            end = lo + int(np.searchsorted(h_ts[lo:hi], ts, side="left"))
            begin = max(lo, end - cfg.history)
            if end > begin:
                t["history"][w, -(end - begin):] = h_rows[begin:end]
                t["history_behaviors"][w, -(end - begin):] = h_beh[begin:end]
    city_vocab = city_vocab if city_vocab is not None else sorted(users.city.dropna().unique().tolist())
    prof = users.set_index("user_id").reindex(win_user)
    for key, vocab in {**PROFILE_VOCABS, "city": city_vocab}.items():
        index = {v: i + 1 for i, v in enumerate(vocab)}
        t[f"profile_{key}"] = prof[key].map(index).fillna(0).to_numpy(np.int64)
    return RankData({k: torch.from_numpy(np.asarray(v)) for k, v in t.items()}, win_user, source, pad)
