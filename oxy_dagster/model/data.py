"""Training samples -> tensors for the generator.

Items are rows of the SID codebook (``codes.parquet``, sorted by item id); unknown
item ids (not in the codebook) become the padding row and are counted. Profile
fields, scenarios and behaviours become small integer vocabularies. The search
query of a sample (its contextual-reasoning source, seed Table 1) is encoded
with the shared text encoder; other samples use the model's learnable default.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import torch

from ..data.contract import AGE_BANDS, GENDERS, SCENARIOS, SPENDING_TIERS
from ..sid.features import category_levels
from .config import AHEAD

BEHAVIOR_IDS = {"click": 1, "cart": 2, "purchase": 3}
PROFILE_VOCABS = {"age_band": list(AGE_BANDS), "gender": list(GENDERS), "spending_tier": list(SPENDING_TIERS)}


@dataclass
class Catalogue:
    item_ids: np.ndarray
    codes: np.ndarray  # (N, L)
    cate: np.ndarray
    brand: np.ndarray
    version: str
    row: dict = field(init=False)

    def __post_init__(self):
        self.row = {k: i for i, k in enumerate(self.item_ids)}

    @property
    def pad(self) -> int:
        return len(self.item_ids)

    def vocab(self) -> list[int]:
        return [int(self.codes[:, i].max()) + 1 for i in range(self.codes.shape[1])]

    def fingerprint(self) -> str:
        return hashlib.sha256(self.codes.tobytes() + "\n".join(self.item_ids).encode()).hexdigest()[:16]


def load_catalogue(codes_path: str | Path, items_path: str | Path) -> Catalogue:
    codes = pd.read_parquet(codes_path).sort_values("item_id").reset_index(drop=True)
    items = pq.read_table(items_path, columns=["item_id", "brand", "category_path"]).to_pandas()
    items = items.set_index("item_id").loc[codes.item_id].reset_index()
    leaf = category_levels(items.category_path)["cate3"].fillna(items.category_path)
    code_cols = sorted(c for c in codes.columns if c[0] == "c" and c[1:].isdigit())
    return Catalogue(codes.item_id.to_numpy().astype(str), codes[code_cols].to_numpy(np.int64),
                     pd.factorize(leaf)[0].astype(np.int64) + 1, pd.factorize(items.brand)[0].astype(np.int64) + 1,
                     str(codes.version.iloc[0]))


@dataclass
class SampleTensors:
    tensors: dict[str, torch.Tensor]
    meta: pd.DataFrame  # user_id, split, scenario, target item (and timestamp, where the samples have it) per sample
    unknown_items: int
    city_vocab: list[str]

    def __len__(self):
        return len(self.meta)

    def split_rows(self, split: str, n_items: int) -> np.ndarray:
        """Rows of ``split`` whose target is one of the ``n_items`` catalogue items (not the padding row)."""
        return np.flatnonzero((self.meta.split == split).to_numpy() & (self.tensors["target"].numpy() < n_items))

    def batch(self, idx) -> dict:
        idx = torch.as_tensor(idx)
        return {k: v[idx] for k, v in self.tensors.items()}


def _pad_rows(lists, cat: Catalogue, length: int, keep: str) -> tuple[np.ndarray, int]:
    out = np.full((len(lists), length), cat.pad, dtype=np.int64)
    unknown = 0
    for i, lst in enumerate(lists):
        lst = list(lst)[-length:] if keep == "last" else list(lst)[:length]
        rows = [cat.row.get(x, cat.pad) for x in lst]
        unknown += sum(r == cat.pad for r in rows)
        if rows:
            out[i, length - len(rows):] = rows  # right-aligned: the most recent item is last
    return out, unknown


def _behaviors(lists, length: int) -> np.ndarray:
    out = np.zeros((len(lists), length), dtype=np.int64)
    for i, lst in enumerate(lists):
        b = [BEHAVIOR_IDS.get(x, 1) for x in list(lst)[-length:]]
        if b:
            out[i, length - len(b):] = b
    return out


def user_hash(user_id) -> int:
    """A user id's stable 62-bit hash (the same in every process, unlike ``hash``): the generator takes it modulo
    its ``user_buckets`` for TIGER's hashed user-ID token; training and serving both hash with this."""
    return int.from_bytes(hashlib.blake2b(str(user_id).encode(), digest_size=8).digest(), "little") >> 2


def _vocab_ids(values: pd.Series, vocab: list[str]) -> np.ndarray:
    index = {v: i + 1 for i, v in enumerate(vocab)}  # 0 = unknown / missing
    return values.map(lambda v: index.get(v, 0)).to_numpy(np.int64)


def build_tensors(samples: pd.DataFrame, cat: Catalogue, max_short: int, max_long: int, text_encoder=None,
                  city_vocab: list[str] | None = None, rewrites: dict[str, str] | None = None) -> SampleTensors:
    """``rewrites``: normalised query -> LLM rewrite; search samples take it as their reasoning text."""
    short, u1 = _pad_rows(samples.short_item_ids, cat, max_short, "last")
    long_, u2 = _pad_rows(samples.long_item_ids, cat, max_long, "last")
    target = samples.target_item_id.map(lambda x: cat.row.get(x, cat.pad)).to_numpy(np.int64)
    trigger = samples.trigger_item_id.map(lambda x: cat.row.get(x, cat.pad) if isinstance(x, str) else cat.pad)
    city_vocab = city_vocab if city_vocab is not None else sorted(samples.city.dropna().unique().tolist())
    texts = samples.instruction_text.where(samples.instruction_source == "query")
    if rewrites:
        texts = texts.map(lambda q: rewrites.get(" ".join(q.lower().split()), q) if isinstance(q, str) else q)
    has = texts.notna().to_numpy()
    reasoning = np.zeros((len(samples), 384), dtype=np.float32)
    if has.any() and text_encoder is not None:
        distinct = sorted(texts[has].unique())
        emb = text_encoder.encode(distinct, progress=False)
        lookup = {t: i for i, t in enumerate(distinct)}
        reasoning[has] = emb[[lookup[t] for t in texts[has]]]
        reasoning = reasoning[:, : emb.shape[1]]
    tensors = {
        "short_items": short, "short_behaviors": _behaviors(samples.short_behaviors, max_short),
        "long_items": long_, "target": target, "trigger": trigger.to_numpy(np.int64),
        "scenario": _vocab_ids(samples.scenario, list(SCENARIOS)) - 1,
        "has_reasoning": has & (text_encoder is not None), "reasoning": reasoning,
        "weight": samples.weight.to_numpy(np.float32),
        **{f"profile_{k}": _vocab_ids(samples[k], v) for k, v in PROFILE_VOCABS.items()},
        "profile_city": _vocab_ids(samples.city, city_vocab),
        "ahead": ahead_targets(samples, target, cat.pad),
        "user_hash": samples.user_id.map({u: user_hash(u) for u in samples.user_id.unique()}).to_numpy(np.int64),
    }
    tensors["scenario"] = np.clip(tensors["scenario"], 0, None)
    meta = samples[[c for c in ("user_id", "split", "scenario", "target_item_id", "timestamp") if c in samples]]
    meta = meta.reset_index(drop=True)
    return SampleTensors({k: torch.from_numpy(np.asarray(v)) for k, v in tensors.items()}, meta,
                         u1 + u2 + int((target == cat.pad).sum()), city_vocab)


def ahead_targets(samples: pd.DataFrame, target: np.ndarray, pad: int, k: int = AHEAD) -> np.ndarray:
    """(samples, ``k``) item rows: for a training sample, the targets of the same user's next ``k`` training samples
    in sequence order (``pos``, else ``timestamp``), padding where the user has fewer; padding for every held-out
    sample. Only training targets ever appear, so a validation or test item is never learned from."""
    out = np.full((len(samples), k), pad, dtype=np.int64)
    if "split" not in samples or not len(samples):
        return out
    train = np.flatnonzero((samples.split == "train").to_numpy())
    order_col = "pos" if "pos" in samples else "timestamp" if "timestamp" in samples else None
    key = pd.DataFrame({"row": train, "user": samples.user_id.to_numpy()[train],
                        "order": samples[order_col].to_numpy()[train] if order_col else train})
    key = key.sort_values(["user", "order", "row"], kind="stable")
    rows, users = key.row.to_numpy(), key.user.to_numpy()
    for j in range(1, k + 1):
        same = users[j:] == users[:-j]
        out[rows[:-j][same], j - 1] = target[rows[j:][same]]
    return out


def profile_vocab_sizes(city_vocab: list[str]) -> dict[str, int]:
    return {**{k: len(v) + 1 for k, v in PROFILE_VOCABS.items()}, "city": len(city_vocab) + 1}
