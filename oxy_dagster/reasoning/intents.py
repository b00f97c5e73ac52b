"""Daily slow thinking: query rewrites and per-user intent instructions, embedded into the store.

* ``query_rewrites``: the most frequent search queries (normalised) rewritten into
  intent-aligned instructions; training samples of the search scenario take the
  rewrite as their reasoning text (seed 2.3.2), the raw query otherwise.
* ``refresh_user_instructions``: for each active user, a 90-day and a 24-hour
  behaviour narrative (Appendix B) -> instruction + reason -> the shared item
  text encoder's vector (the generator's adapter projects it at train and serve
  time, so stored vectors stay valid across retrains) -> the store. A user whose
  answer fails keeps the last good record, or has none and gets the model's
  learnable default.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..settings import setting
from .prompts import intent_prompt, query_rewrite_prompt
from .store import InstructionRecord

HIGH_VALUE = ("cart", "purchase")


def normalise_query(q: str) -> str:
    return " ".join(str(q).lower().split())


@dataclass
class RewriteConfig:
    max_queries: int = setting(20, "most frequent normalised search queries rewritten by the LLM")


def query_rewrites(events: pd.DataFrame, llm,
                   max_queries: int = RewriteConfig.max_queries) -> tuple[pd.DataFrame, int]:
    """(query, rewrite, reason, count) for the ``max_queries`` most frequent queries; failures are dropped."""
    q = events["query"].dropna().map(normalise_query)
    top = q[q != ""].value_counts().head(max_queries)
    answers = llm.complete_many([query_rewrite_prompt(x) for x in top.index], progress="query rewrites")
    df = pd.DataFrame({"query": top.index, "count": top.to_numpy(),
                       "rewrite": [a["instruction"] if a else None for a in answers],
                       "reason": [a["reason"] if a else None for a in answers]})
    failed = int(df.rewrite.isna().sum())
    return df.dropna(subset=["rewrite"]).reset_index(drop=True), failed


def item_lookup(items: pd.DataFrame) -> dict:
    return {r.item_id: {"title": r.title, "category": r.category_path} for r in items.itertuples()}


def user_events(events: pd.DataFrame, items: dict, user_id: str, start, end) -> list[dict]:
    e = events[(events.user_id == user_id) & (events.timestamp > start) & (events.timestamp <= end)]
    return [{"timestamp": str(r.timestamp), "behavior": r.behavior, "query": r.query if isinstance(r.query, str)
             else None, **items.get(r.item_id, {"title": r.item_id})} for r in e.itertuples()]


@dataclass
class IntentConfig:
    long_days: int = setting(90, "long-term narrative window (days)")
    short_hours: int = setting(24, "short-term narrative window (hours)")
    active_days: int = setting(7, "a user is active with an event in the last N days before the data's latest")
    max_users: int = setting(20, "users refreshed per run, most recent first (0: every active user)")
    version: str = setting("cri-v1", "version tag stored with each instruction")


def active_users(events: pd.DataFrame, ref: pd.Timestamp, cfg: IntentConfig) -> list[str]:
    recent = events[events.timestamp > ref - pd.Timedelta(days=cfg.active_days)]
    order = recent.groupby("user_id").timestamp.max().sort_values(ascending=False)
    return order.index.tolist()[: cfg.max_users or None]


def refresh_user_instructions(events: pd.DataFrame, items: pd.DataFrame, users: pd.DataFrame, llm, store, encoder,
                              cfg: IntentConfig | None = None, ref: pd.Timestamp | None = None) -> dict:
    cfg = cfg or IntentConfig()
    events = events.assign(timestamp=pd.to_datetime(events.timestamp))
    ref = ref if ref is not None else events.timestamp.max()
    lookup = item_lookup(items)
    profiles = users.set_index("user_id")[["age_band", "gender", "spending_tier", "city"]].to_dict("index")
    ids = active_users(events, ref, cfg)
    prompts = [intent_prompt(user_events(events, lookup, u, ref - pd.Timedelta(days=cfg.long_days),
                                         ref - pd.Timedelta(hours=cfg.short_hours)),
                             user_events(events, lookup, u, ref - pd.Timedelta(hours=cfg.short_hours), ref),
                             profiles.get(u)) for u in ids]
    answers = llm.complete_many(prompts, progress="user intents")
    ok = [(u, a) for u, a in zip(ids, answers) if a]
    vectors = encoder.encode([a["instruction"] for _, a in ok], progress=False) if ok else np.zeros((0, 384))
    now = time.time()
    records = [InstructionRecord(u, a["instruction"], a["reason"], v.astype(np.float32), cfg.version, now, "daily")
               for (u, a), v in zip(ok, vectors)]
    if records:
        store.put_many(records)
    failed = [u for u, a in zip(ids, answers) if not a]
    kept = sum(store.get(u) is not None for u in failed)
    return {"active_users": len(ids), "written": len(records), "failed": len(failed),
            "failed_kept_last_good": kept, "failed_default": len(failed) - kept, "reference_time": str(ref)}
