"""Spatiotemporal-profile (STP) instruction tables (seed 2.2.3, Appendix B).

Every event gets a context triple: time bucket (season, or a holiday when the
date falls in its run-up window), location (city + climate) and persona (age
band | gender | spending tier). The LLM writes one instruction per key at three
levels, most specific first: (time, city, persona) for the ``max_triples`` most
frequent triples, (time, city) and (time). ``lookup`` backs off from the full
key to coarser ones, so every context gets the most specific instruction there is.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pandas as pd

from ..data.synthetic.vocab import CITIES, HOLIDAYS, season_of
from ..settings import setting
from .prompts import stp_prompt

CLIMATE = {city: ("/".join(tags) or "mild") for city, tags, _ in CITIES}


def time_bucket(ts: pd.Timestamp) -> str:
    for name, month, day, window in HOLIDAYS:
        date = dt.date(ts.year, month, day)
        if 0 <= (date - ts.date()).days <= window:
            return f"{season_of(ts.month)}, before {name.replace('_', ' ')}"
    return season_of(ts.month)


def persona_of(row) -> str | None:
    parts = [row.get("age_band"), row.get("gender"), row.get("spending_tier")]
    return "|".join(str(p) for p in parts) if all(isinstance(p, str) and p for p in parts) else None


def location_of(city) -> str | None:
    return f"{city} ({CLIMATE.get(city, 'unknown climate')})" if isinstance(city, str) and city else None


def key(time: str, city: str | None = None, persona: str | None = None) -> str:
    return " / ".join(x for x in (time, city, persona) if x)


def context_counts(events: pd.DataFrame, users: pd.DataFrame) -> pd.DataFrame:
    """Distinct (time, city, persona) triples in the data with their event counts."""
    df = events[["user_id", "timestamp"]].merge(users, on="user_id", how="left")
    df["time"] = pd.to_datetime(df.timestamp).map(time_bucket)
    df["persona"] = df.apply(persona_of, axis=1)
    return df.groupby(["time", "city", "persona"], dropna=False).size().rename("support").reset_index()


@dataclass
class STPConfig:
    max_triples: int = setting(12, "most frequent (time, city, persona) keys the LLM writes")
    max_pairs: int = setting(24, "most frequent (time, city) keys the LLM writes")


def plan_keys(counts: pd.DataFrame, cfg: STPConfig) -> pd.DataFrame:
    """The keys to write, with their level (3 = most specific) and support."""
    rows = []
    full = counts.dropna(subset=["city", "persona"]).sort_values("support", ascending=False).head(cfg.max_triples)
    for r in full.itertuples():
        rows.append((3, r.time, r.city, r.persona, r.support))
    pairs = counts.dropna(subset=["city"]).groupby(["time", "city"]).support.sum().sort_values(ascending=False)
    for (t, c), s in pairs.head(cfg.max_pairs).items():
        rows.append((2, t, c, None, s))
    for t, s in counts.groupby("time").support.sum().items():
        rows.append((1, t, None, None, s))
    out = pd.DataFrame(rows, columns=["level", "time", "city", "persona", "support"])
    out["key"] = [key(t, c, p) for t, c, p in zip(out.time, out.city, out.persona)]
    return out


def build_stp_table(events: pd.DataFrame, users: pd.DataFrame, llm, cfg: STPConfig | None = None) -> tuple:
    """(table of validated instructions, number of keys whose answer failed validation)."""
    keys = plan_keys(context_counts(events, users), cfg or STPConfig())
    persona = [dict(zip(("age_band", "gender", "spending_tier"), p.split("|"))) if p else None for p in keys.persona]
    prompts = [stp_prompt(t, location_of(c), pp) for t, c, pp in zip(keys.time, keys.city, persona)]
    answers = llm.complete_many(prompts, progress="STP instructions")
    keys["instruction"] = [a["instruction"] if a else None for a in answers]
    keys["reason"] = [a["reason"] if a else None for a in answers]
    failed = int(keys.instruction.isna().sum())
    return keys.dropna(subset=["instruction"]).reset_index(drop=True), failed


def lookup(table: pd.DataFrame, ts: pd.Timestamp, city: str | None, persona: str | None) -> dict | None:
    """The most specific instruction for a context: (time, city, persona) -> (time, city) -> (time)."""
    t = time_bucket(ts)
    index = dict(zip(table.key, table.index))
    for k in (key(t, city, persona) if city and persona else None, key(t, city) if city else None, key(t)):
        if k and k in index:
            row = table.loc[index[k]]
            return {"key": k, "level": int(row.level), "instruction": row.instruction, "reason": row.reason}
    return None
