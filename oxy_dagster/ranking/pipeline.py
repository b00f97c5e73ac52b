"""The ranking stage end to end (the ``ranking_model`` asset wraps it): data, the unified model, the baseline."""

from __future__ import annotations

import time

import numpy as np
import pyarrow.parquet as pq

from ..data.contract import SCENARIOS
from ..io import write_json
from ..model.data import load_catalogue, profile_vocab_sizes
from ..paths import DataPaths
from .data import RankData, pack, requests_from_impressions, requests_from_interactions
from .model import RankerConfig
from .train import build, evaluate, fit, load, predict, save


def ranker_dir(paths: DataPaths, version: str):
    return paths.models / f"ranker-{version}"


def ranking_data(paths: DataPaths, version: str, cfg: RankerConfig, text_encoder) -> tuple[RankData, list[str]]:
    cat = load_catalogue(paths.sid / version / "codes.parquet", paths.table("items"))
    read = lambda p, cols=None: pq.read_table(p, columns=cols).to_pandas()  # noqa: E731
    users = read(paths.table("users"), ["user_id", "age_band", "gender", "city", "spending_tier"])
    splits = read(paths.splits, ["user_id", "item_id", "behavior", "timestamp", "scenario", "trigger_item_id",
                                 "query", "pos"])
    impressions = read(paths.table("impressions")) if (paths.table("impressions") / "_schema.json").exists() else None
    if impressions is not None and len(impressions):
        events = read(paths.table("events"), ["user_id", "item_id", "behavior", "request_id"])
        shown, source = requests_from_impressions(impressions, events), "impressions"
    else:
        shown, source = requests_from_interactions(splits, cat.item_ids, cfg.negatives, cfg.seed), "sampled negatives"
    city_vocab = sorted(users.city.dropna().unique().tolist())
    return pack(shown, splits, users, cat, cfg, text_encoder, city_vocab, source), city_vocab


def build_rankers(paths: DataPaths, version: str, cfg: RankerConfig | None = None, text_encoder=None,
                  baseline: bool = True, baseline_scenarios: tuple[str, ...] = SCENARIOS) -> dict:
    """Train the unified ranker (saved for the reward service) and, for comparison, one pointwise model per
    scenario (``baseline_scenarios``) with the same training budget; AUC / GAUC of both on held-out requests."""
    cfg = cfg or RankerConfig()
    cat = load_catalogue(paths.sid / version / "codes.parquet", paths.table("items"))
    t0 = time.perf_counter()
    data, city_vocab = ranking_data(paths, version, cfg, text_encoder)
    vocab = profile_vocab_sizes(city_vocab)
    n_pos = int(data.tensors["positions"].max()) + 1
    meta = {"profile_vocab": vocab, "profile_vocab_city": city_vocab, "n_positions": n_pos,
            "text_dim": int(data.tensors["text"].shape[-1]), "sid_version": version,
            "sid_fingerprint": cat.fingerprint(), "source": data.source, "samples": len(data)}
    unified = build("unified", cfg, cat, vocab, n_pos, meta["text_dim"])
    losses = fit(unified, data, cfg, desc="unified ranker")
    result = {"source": data.source, "samples": len(data), "unified": evaluate(predict(unified, data), data),
              "unified_final_loss": float(np.mean(losses[-20:]))}
    out = ranker_dir(paths, version)
    save(unified, "unified", cfg, out, {**meta, "fingerprint": f"{cat.fingerprint()}-{cfg.seed}-{len(losses)}"})
    if baseline:
        result["per_scenario"] = {}
        for s_id, s_name in enumerate(SCENARIOS):
            if s_name not in baseline_scenarios:
                continue
            keep = data.tensors["scenario"] == s_id
            if not (keep & data.tensors["request_mask"] & ~data.tensors["is_test"]).any():
                continue
            model = build("pointwise", cfg, cat, vocab, n_pos, meta["text_dim"])
            fit(model, data, cfg, request_filter=keep, desc=f"pointwise {s_name}")
            scored = evaluate(predict(model, data), data)
            if s_name in scored:
                result["per_scenario"][s_name] = scored[s_name]
    result["wall_s"] = round(time.perf_counter() - t0, 1)
    write_json(out / "metrics.json", result)
    return result


def load_ranker(paths: DataPaths, version: str):
    """(unified ranker, its manifest) for the reward service; refuses one trained on another codebook."""
    out = ranker_dir(paths, version)
    if not (out / "ranker.json").exists():
        raise FileNotFoundError(f"no ranking model under {out}: materialize ranking_model first")
    cat = load_catalogue(paths.sid / version / "codes.parquet", paths.table("items"))
    model, meta = load(out, cat)
    if meta["sid_fingerprint"] != cat.fingerprint():
        raise ValueError(f"ranking model {out} was trained on SID codes {meta['sid_fingerprint']}, not the current "
                         f"{cat.fingerprint()}: rematerialize ranking_model")
    return model, meta
