"""What the synthetic shop showed: one list of ``n_shown`` items per request, the clicked item among them.

Each request (a step of a session in ``generator.py``) showed the item the user clicked, at a position
drawn with a position bias (P(k) ~ 1/(k+1)), plus distractors: half from the clicked item's leaf category
(the retrieval stage's likely candidates), half from the whole catalogue, both weighted by item appeal.
Carts and purchases act on the clicked item of the same request (same ``request_id``). A separate random
stream (seed + 3) draws them, so the events stay exactly what they were without impressions.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def make_impressions(seed: int, items: pd.DataFrame, events: pd.DataFrame, n_shown: int = 10) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    appeal = items.h_pop.to_numpy()
    row_of = {k: i for i, k in enumerate(items.item_id)}
    by_leaf = {leaf: np.flatnonzero(items.h_leaf.to_numpy() == leaf) for leaf in np.unique(items.h_leaf)}
    p_all = appeal / appeal.sum()
    clicks = events[events.behavior == "click"].drop_duplicates("request_id")
    bias = 1.0 / np.arange(1, n_shown + 1)
    out = []
    for r in clicks.itertuples(index=False):
        clicked = row_of[r.item_id]
        same = by_leaf[items.h_leaf.iat[clicked]]
        same = same[same != clicked]
        k_leaf = min(len(same), (n_shown - 1) // 2)
        shown = list(rng.choice(same, k_leaf, replace=False, p=appeal[same] / appeal[same].sum())) if k_leaf else []
        while len(shown) < n_shown - 1:
            cand = int(rng.choice(len(items), p=p_all))
            if cand != clicked and cand not in shown:
                shown.append(cand)
        rng.shuffle(shown)
        shown.insert(int(rng.choice(n_shown, p=bias / bias.sum())), clicked)
        ts = pd.Timestamp(r.timestamp) - pd.Timedelta(seconds=3)
        for pos, row in enumerate(shown):
            out.append((r.request_id, r.user_id, items.item_id.iat[row], ts, r.scenario, pos, r.trigger_item_id,
                        r.query))
    df = pd.DataFrame(out, columns=["request_id", "user_id", "item_id", "timestamp", "scenario", "position",
                                    "trigger_item_id", "query"])
    df["timestamp"] = pd.to_datetime(df.timestamp).dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    return df
