"""What the ``deployed_model`` asset does: choose the checkpoint to ship, export it, fill the history store.

Choice: among the generators trained on the selected SID version (``pretrained``, and ``rl`` once the
post-training stage has written one), the one with the best Recall@10 on the *validation* split (same
users, same beam) ships; the figures behind the choice go into the bundle's manifest. A candidate
``a+b`` is those generators decoded as one (``GeneratorEnsemble``), shipped as one bundle.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow.parquet as pq

from ..model.checkpoint import latest_checkpoint
from ..model.decoding import beam_search
from ..model.ensemble import GeneratorEnsemble
from ..model.evaluate import evaluate
from ..model.pipeline import SAMPLE_COLUMNS, load_pretrained_many, load_rewrites
from ..paths import DataPaths
from ..reasoning.intents import normalise_query
from ..settings import setting
from .bundle import export_bundle, load_bundle
from .runtime import RecRequest, Runtime


@dataclass
class DeployConfig:
    """Choosing and exporting the model the service loads (``deployed_model``)."""

    candidates: str = setting("pretrained,rl", "generators compared (folders models/<name>-<SID version>); a+b: "
                                               "those generators decoded as one ensemble")
    select_rows: int = setting(1000, "validation users the choice is made on")
    beam: int = setting(50, "beam width of the comparison")
    history_len: int = setting(300, "most recent interactions per user written to the history store")
    check_rows: int = setting(50, "test users the bundle must reproduce offline_eval's top-10 for")


def candidate_dirs(paths: DataPaths, version: str, name: str) -> list:
    """The model folders of candidate ``name`` (``a+b``: an ensemble of a's and b's generators)."""
    return [paths.model(version, part.strip()) for part in name.split("+")]


def load_generators(paths: DataPaths, version: str, model_dirs: list):
    """(generator, or the ensemble of several, catalogue, sample tensors, trie) of checkpoints on SID ``version``."""
    models, cat, data, trie = load_pretrained_many(paths, version, model_dirs)
    model = models[0] if len(models) == 1 else GeneratorEnsemble(models).eval()
    return model, cat, data, trie


def choose(paths: DataPaths, version: str, cfg: DeployConfig) -> tuple[str, dict]:
    """(name of the shipped generator, validation figures of every candidate that exists)."""
    figures = {}
    for name in [c.strip() for c in cfg.candidates.split(",") if c.strip()]:
        dirs = candidate_dirs(paths, version, name)
        if any(latest_checkpoint(d / "checkpoints") is None for d in dirs):
            continue
        model, cat, data, trie = load_generators(paths, version, dirs)
        r = evaluate(model, data, trie, cat.codes, split="valid", beam=cfg.beam, max_rows=cfg.select_rows or None,
                     progress=False)
        figures[name] = {k: r[k] for k in ("recall@10", "ndcg@10", "evaluated")}
    if not figures:
        raise FileNotFoundError(f"no generator checkpoint for SID {version} under {paths.models}: "
                                "materialize pretrained_checkpoint first")
    best = max(figures, key=lambda n: (figures[n]["recall@10"], n == "pretrained"))  # a tie keeps the pretrained
    return best, figures


def scenario_pools(paths: DataPaths) -> dict[str, list[str]]:
    """Per scenario, the items users interacted with there in the training split (its candidate pool)."""
    df = pq.read_table(paths.splits, columns=["item_id", "scenario", "split"]).to_pandas()
    train = df[df.split == "train"]
    return {s: sorted(g.item_id.unique().tolist()) for s, g in train.groupby("scenario")}


def user_histories(paths: DataPaths, length: int) -> dict[str, list[tuple[str, str]]]:
    """Every user's most recent ``length`` interactions (item, behavior), oldest first, all splits."""
    df = pq.read_table(paths.splits, columns=["user_id", "item_id", "behavior", "pos"]).to_pandas()
    df = df.sort_values(["user_id", "pos"])
    return {u: list(zip(g.item_id.tolist()[-length:], g.behavior.tolist()[-length:]))
            for u, g in df.groupby("user_id", sort=False)}


def export(paths: DataPaths, version: str, model_dirs: list, out, info: dict):
    """The generator in ``model_dirs`` (one folder; several: their ensemble), trained on SID ``version`` of
    ``paths``, as a bundle in ``out``."""
    model, cat, data, _ = load_generators(paths, version, model_dirs)
    users = pq.read_table(paths.table("users"), columns=["user_id", "age_band", "gender", "city",
                                                         "spending_tier"]).to_pandas()
    return export_bundle(out, model, cat, data.city_vocab, users, scenario_pools(paths), info)


def sample_requests(paths: DataPaths, rows, rewrite_queries: bool = True, **overrides) -> list[RecRequest]:
    """Requests that send rows ``rows`` of the samples table as a caller would: the sample's full history with
    its behaviours, scenario, trigger and query (rewritten as in training); ``overrides`` set other fields."""
    samples = pq.read_table(paths.samples, columns=SAMPLE_COLUMNS + ["long_behaviors"]).to_pandas()
    rewrites = load_rewrites(paths) if rewrite_queries else {}
    reqs = []
    for i in rows:
        s = samples.iloc[int(i)]
        query = None
        if s.instruction_source == "query" and isinstance(s.instruction_text, str):
            query = rewrites.get(normalise_query(s.instruction_text), s.instruction_text)
        reqs.append(RecRequest(user_id=s.user_id, scenario=s.scenario, trigger_item=s.trigger_item_id, query=query,
                               history=list(s.long_item_ids) + list(s.short_item_ids),
                               history_behaviors=list(s.long_behaviors) + list(s.short_behaviors), **overrides))
    return reqs


def check_bundle(paths: DataPaths, version: str, model_dirs: list, bundle, rows: int, beam: int,
                 text_encoder) -> dict:
    """Top-10 of the bundle served through ``Runtime`` (history, trigger and query sent in the request, as a
    caller would) vs offline evaluation's beam search on the same test samples."""
    model, cat, data, trie = load_generators(paths, version, model_dirs)
    idx = np.flatnonzero((data.meta.split == "test").to_numpy() & (data.tensors["target"].numpy() < cat.pad))[:rows]
    want, _ = beam_search(model, data.batch(idx), trie, beam=beam, topk=10)
    runtime = Runtime(load_bundle(bundle), store=None, text_encoder=text_encoder)
    got = runtime.recommend(sample_requests(paths, idx, k=10, beam=beam, use_instruction=False))
    same = [list(cat.item_ids[w[w >= 0].numpy()]) == g.items for w, g in zip(want, got)]
    return {"checked_users": len(idx), "same_top10": int(sum(same))}


def fill_histories(store, paths: DataPaths, length: int) -> int:
    hist = user_histories(paths, length)
    store.put_histories(hist)
    return len(hist)


def main(argv: list[str] | None = None) -> None:
    """``python -m oxy_dagster.serving.deploy --data DIR --version V --out BUNDLE MODEL_DIR [MODEL_DIR ...]``: export
    generators trained outside the asset graph (e.g. ``benchmarks/beauty.py --members 3``'s member folders) as one
    bundle, an ensemble when several folders are given; ``--check N`` serves N test users through it and compares
    their top-10 with offline beam search."""
    import argparse

    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("model_dirs", nargs="+", help="generator folders (each with checkpoints/)")
    ap.add_argument("--data", required=True, help="the data + SID folder the generators trained on")
    ap.add_argument("--version", required=True, help="their SID version")
    ap.add_argument("--out", required=True, help="the bundle folder to write")
    ap.add_argument("--check", type=int, default=0, help="test users whose served top-10 must equal offline's")
    args = ap.parse_args(argv)
    from pathlib import Path

    paths, dirs = DataPaths(Path(args.data)), [Path(d) for d in args.model_dirs]
    out = export(paths, args.version, dirs, args.out, {"chosen": "+".join(str(d) for d in dirs)})
    print(f"bundle {out}: {len(dirs)} generator(s) on SID {args.version}")
    if args.check:
        from ..sid.text import shared_text_encoder

        check = check_bundle(paths, args.version, dirs, out, args.check, DeployConfig.beam, shared_text_encoder())
        print(check)
        if check["same_top10"] != check["checked_users"]:
            raise SystemExit(f"the bundle's top-10 differs from offline beam search for "
                             f"{check['checked_users'] - check['same_top10']} of {check['checked_users']} users")


if __name__ == "__main__":
    main()
