"""Generate items, users and events for a synthetic shop.

Behaviour is driven by latent user intents (a few preferred leaf categories and
brands per user) and by context: season and holidays from the timestamp,
climate of the user's city, persona (age band, gender, baby in the household,
spending tier), the scenario and its trigger item. Sessions follow the paper's
journey (seed section 4.5): an entry on the homepage feed or search, then channel
feeds from a clicked item, item-to-item related items, and cart cross-sell of
complements; each shown item is a click, some become carts, fewer purchases.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from ...io import write_csv
from ..contract import AGE_BANDS, CATEGORY_SEP
from . import vocab as V
from .impressions import make_impressions
from .queries import make_query


@dataclass
class SyntheticConfig:
    seed: int = 7
    n_users: int = 2000
    items_per_leaf: int = 36
    n_brands_per_l1: int = 8
    sessions_per_user: float = 7.0
    start: str = "2025-01-01"
    days: int = 365
    corrupt_fraction: float = 0.002  # a few malformed rows to exercise quarantine
    missing_profile_fraction: float = 0.08
    n_shown: int = 10  # items shown per request (the impressions table)


def _brands(rng: np.random.Generator, cfg: SyntheticConfig) -> dict[str, list[tuple[str, str]]]:
    out, used = {}, set()
    for l1 in sorted({leaf.path[0] for leaf in V.LEAVES}):
        names = []
        while len(names) < cfg.n_brands_per_l1:
            name = rng.choice(V.BRAND_SYLLABLES) + rng.choice(V.BRAND_SUFFIXES)
            if name not in used:
                used.add(name)
                names.append((name, ("low", "mid", "high")[len(names) % 3]))
        out[l1] = names
    return out


def make_items(rng: np.random.Generator, cfg: SyntheticConfig) -> pd.DataFrame:
    brands = _brands(rng, cfg)
    tier_mult = {"low": 0.6, "mid": 1.0, "high": 1.8}
    rows = []
    for li, leaf in enumerate(V.LEAVES):
        for k in range(cfg.items_per_leaf):
            brand, tier = brands[leaf.path[0]][rng.integers(cfg.n_brands_per_l1)]
            price = leaf.price * tier_mult[tier] * float(np.exp(rng.normal(0, 0.25)))
            noun = leaf.nouns[k % len(leaf.nouns)]
            title = f"{brand} {rng.choice(V.ADJECTIVES)} {noun.title()} - {rng.choice(V.VARIANTS)}"
            rows.append(dict(item_id=f"i{li:02d}{k:03d}", title=title, brand=brand,
                             category_path=CATEGORY_SEP.join(leaf.path), price=round(price, 2),
                             image_path=None, h_leaf=li, h_tier=tier))
    items = pd.DataFrame(rows)
    items["h_pop"] = rng.lognormal(0.0, 0.8, len(items))  # item appeal: a spread, not a few runaway hits
    return items


def make_users(rng: np.random.Generator, cfg: SyntheticConfig) -> pd.DataFrame:
    ages = rng.choice(AGE_BANDS, cfg.n_users, p=[0.03, 0.2, 0.32, 0.22, 0.13, 0.10])
    gender = rng.choice(["F", "M"], cfg.n_users)
    city = rng.integers(len(V.CITIES), size=cfg.n_users)
    tier = rng.choice(["low", "mid", "high"], cfg.n_users, p=[0.35, 0.45, 0.2])
    baby_p = np.where(ages == "25-34", 0.45, np.where(ages == "35-44", 0.2, 0.02))
    users = pd.DataFrame(dict(user_id=[f"u{i:05d}" for i in range(cfg.n_users)], age_band=ages, gender=gender,
                              city=[V.CITIES[c][0] for c in city], spending_tier=tier,
                              h_city=city, h_baby=rng.random(cfg.n_users) < baby_p,
                              h_age=ages, h_gender=gender, h_tier=tier))
    hidden = rng.random(cfg.n_users) < cfg.missing_profile_fraction
    users.loc[hidden, ["age_band", "gender", "city", "spending_tier"]] = None
    return users


def _persona_tags(u) -> set[str]:
    tags = set()
    if u.h_baby:
        tags.add("baby")
    if u.h_age in ("18-24", "<18"):
        tags.add("young")
    if u.h_age == "55+":
        tags.add("senior")
    if u.h_age in ("35-44", "45-54") or u.h_baby:
        tags.add("family")
    tags.add("female" if u.h_gender == "F" else "male")
    return tags


class _World:
    """Precomputed per-leaf arrays used to score leaves in a context."""

    def __init__(self, items: pd.DataFrame):
        self.items = items
        self.n_leaves = len(V.LEAVES)
        self.by_leaf = [np.flatnonzero(items.h_leaf.values == i) for i in range(self.n_leaves)]
        self.by_l2 = {}
        for i, leaf in enumerate(V.LEAVES):
            self.by_l2.setdefault(leaf.path[:2], []).append(i)
        self.price_rank = items.groupby("h_leaf").price.rank(pct=True).values

    def context_weights(self, when: dt.datetime, climates: tuple[str, ...], tags: set[str]) -> np.ndarray:
        season = V.season_of(when.month)
        active = {name for name, m, d, win in V.HOLIDAYS
                  if 0 <= (dt.datetime(when.year, m, d) - when).days <= win}
        w = np.ones(self.n_leaves)
        for i, leaf in enumerate(V.LEAVES):
            if leaf.season != "all":
                w[i] *= 4.0 if leaf.season == season else (0.15 if season in ("winter", "summer") else 0.6)
            if leaf.climate != "any":
                w[i] *= 3.0 if leaf.climate in climates else 0.5
            if leaf.personas:
                w[i] *= 3.0 if tags & set(leaf.personas) else 0.35
            if active & set(leaf.holidays):
                w[i] *= 6.0
        return w


def _pick_item(rng, world: _World, leaf: int, user_brands: set[str], tier: str | None, exclude=()) -> int:
    idx = world.by_leaf[leaf]
    idx = idx[~np.isin(idx, [e for e in exclude if e is not None])]
    it = world.items
    w = it.h_pop.values[idx].copy()
    w *= np.array([3.0 if b in user_brands else 1.0 for b in it.brand.values[idx]])
    if tier is not None:
        target = {"low": 0.2, "mid": 0.5, "high": 0.85}[tier]
        w *= np.exp(-((world.price_rank[idx] - target) ** 2) / 0.08)
    return int(rng.choice(idx, p=w / w.sum()))


def _user_events(rng, world: _World, u, cfg: SyntheticConfig, t0: dt.datetime) -> tuple[list[dict], list[str]]:
    """The user's events and the names of their three hidden intent leaves."""
    tags = _persona_tags(u)
    climates = V.CITIES[u.h_city][1]
    base = np.ones(world.n_leaves)
    intents = rng.choice(world.n_leaves, size=3, replace=False,
                         p=(p := np.array([3.0 if tags & set(lf.personas) else 1.0 for lf in V.LEAVES])) / p.sum())
    base[intents] *= rng.gamma(2.0, 4.0, size=3) + 4.0
    brands = set(world.items.brand.values[rng.choice(len(world.items), 2)])
    tier = u.h_tier
    buy_bias = {"low": 0.8, "mid": 1.0, "high": 1.25}.get(tier, 1.0)
    events = []
    n_sessions = 1 + rng.poisson(cfg.sessions_per_user)
    for when in sorted(t0 + dt.timedelta(seconds=float(s)) for s in rng.uniform(0, cfg.days * 86400, n_sessions)):
        w = base * world.context_weights(when, climates, tags)
        leaf = int(rng.choice(world.n_leaves, p=w / w.sum()))
        t = when
        carted, last = None, None
        for step in range(int(rng.integers(2, 8))):
            scen, trigger = _next_scenario(rng, step, last, carted)
            if scen == "channel":
                leaf = int(rng.choice(world.by_l2[V.LEAVES[world.items.h_leaf.values[trigger]].path[:2]]))
            elif scen == "related":
                leaf = int(world.items.h_leaf.values[trigger])
            elif scen == "cart":
                comp = V.LEAVES[world.items.h_leaf.values[trigger]].complements
                leaf = V.LEAVES.index(V.LEAF_BY_NAME[comp[int(rng.integers(len(comp)))]])
            item = _pick_item(rng, world, leaf, brands, tier, exclude=(last, trigger))
            query = make_query(rng, V.LEAVES[leaf], world.items.brand.values[item]) if scen == "search" else None
            ev = dict(user_id=u.user_id, item_id=world.items.item_id.values[item], scenario=scen,
                      trigger_item_id=None if trigger is None else world.items.item_id.values[trigger], query=query,
                      request_id=f"{u.user_id}-r{len(events)}")
            t += dt.timedelta(seconds=float(rng.exponential(90)) + 5)
            events.append({**ev, "timestamp": t, "behavior": "click"})
            intent_match = 1.6 if leaf in intents else 1.0
            if rng.random() < 0.22 * intent_match * buy_bias:
                t += dt.timedelta(seconds=float(rng.exponential(60)) + 5)
                events.append({**ev, "timestamp": t, "behavior": "cart"})
                carted = item
                if rng.random() < 0.45 * buy_bias:
                    t += dt.timedelta(seconds=float(rng.exponential(300)) + 30)
                    events.append({**ev, "timestamp": t, "behavior": "purchase"})
            last = item
    return events, [V.LEAVES[i].path[2] for i in intents]


def _next_scenario(rng, step: int, last, carted):
    if step == 0 or last is None:
        return ("search", None) if rng.random() < 0.4 else ("homepage", None)
    options = [("homepage", None, 0.15), ("search", None, 0.15), ("channel", last, 0.25), ("related", last, 0.3)]
    if carted is not None:
        options.append(("cart", carted, 0.35))
    p = np.array([o[2] for o in options])
    k = int(rng.choice(len(options), p=p / p.sum()))
    return options[k][0], options[k][1]


def generate(cfg: SyntheticConfig | None = None) -> dict[str, pd.DataFrame]:
    """Return clean ``items``, ``users`` and ``events`` DataFrames (plus latent ``h_`` columns)."""
    cfg = cfg or SyntheticConfig()
    rng = np.random.default_rng(cfg.seed)
    items = make_items(rng, cfg)
    users = make_users(rng, cfg)
    world = _World(items)
    t0 = dt.datetime.fromisoformat(cfg.start)
    rows, intents = [], []
    for u in tqdm(users.itertuples(index=False), total=len(users), desc="synthetic users", mininterval=2):
        evs, leaves = _user_events(rng, world, u, cfg, t0)
        rows.extend(evs)
        intents.append("|".join(leaves))
    users["h_intents"] = intents  # latent, like every h_ column: never in the exported tables
    events = pd.DataFrame(rows)[["user_id", "item_id", "timestamp", "behavior", "scenario", "trigger_item_id",
                                 "query", "request_id"]]
    impressions = make_impressions(cfg.seed + 3, items, events, cfg.n_shown)
    events["timestamp"] = pd.to_datetime(events.timestamp).dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"items": items, "users": users, "events": events, "impressions": impressions}


def _corrupt(rng, df: pd.DataFrame, fraction: float, breakers) -> pd.DataFrame:
    """Replace a few rows with realistic defects (for the quarantine path)."""
    n = int(len(df) * fraction)
    if n == 0:
        return df
    df = df.astype(object)
    for row in rng.choice(len(df), n, replace=False):
        col, value = breakers[int(rng.integers(len(breakers)))]
        df.iloc[row, df.columns.get_loc(col)] = value
    return df


def _with_bad_items(rng, items: pd.DataFrame, fraction: float) -> pd.DataFrame:
    """Append defective catalogue rows (a re-exported id with no category, a new id with a negative price).

    The real rows stay intact, so the defects are quarantined without taking real items' events with them.
    """
    n = int(len(items) * fraction)
    if n == 0:
        return items
    bad = items.iloc[rng.choice(len(items), n, replace=False)].copy().astype(object)
    half = n // 2
    bad.iloc[:half, bad.columns.get_loc("category_path")] = ""
    bad.iloc[half:, bad.columns.get_loc("price")] = "-5"
    bad.iloc[half:, bad.columns.get_loc("item_id")] = [f"x{i:05d}" for i in range(n - half)]
    return pd.concat([items.astype(object), bad], ignore_index=True)


def write_raw_tables(out_dir: str | Path, cfg: SyntheticConfig | None = None) -> dict[str, Path]:
    """Write the raw tables (items, users, events, impressions) as CSV, as a shop would export them."""
    cfg = cfg or SyntheticConfig()
    tables = generate(cfg)
    rng = np.random.default_rng(cfg.seed + 1)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tables["events"] = _corrupt(rng, tables["events"], cfg.corrupt_fraction, [
        ("timestamp", "not-a-date"), ("behavior", "favourite"), ("item_id", "i99999"), ("user_id", "")])
    tables["items"] = _with_bad_items(rng, tables["items"], cfg.corrupt_fraction)
    paths = {}
    for name, df in tables.items():
        public = df[[c for c in df.columns if not c.startswith("h_")]]
        paths[name] = write_csv(public, out_dir / f"{name}.csv", index=False)
    return paths
