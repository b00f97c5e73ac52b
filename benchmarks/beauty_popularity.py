"""Benchmark: the generator's Recall@10 on Amazon Beauty by how often the target item is a training target.

Issue #15 asks why OxyRec loses more of its validation figure on test than SASRec does. Test
targets are rarer in training than validation targets; this reads a trained generator (one
model directory, or the members of a ``--members`` run decoded as one ensemble) on a seeded
random sample of validation and test users (history filter on, beam 50), splits each split's
users by the number of times their target item is a training target (``BUCKETS``), and
reports each bucket's share, Recall@10 / NDCG@10 and ``in_candidates`` (the share of users whose target is among
the beam's candidates at all) per split, plus ``test_expected_from_valid``:
validation's per-bucket recall weighted by test's bucket shares, i.e. the test figure the
popularity shift alone would predict. ``prior``: the beam's candidates re-ranked by generation
log-probability minus alpha x log(1 + training count) for each alpha in ``--alphas`` (a popularity
correction, a lever against that shift), alpha chosen on validation (Recall@10 + NDCG@10) and read on test.
``--peer-minutes`` (or ``--peer-epochs``): RecBole's SASRec (``sasrec_peer``) trained for that budget (or that many
epochs) is read the same way on every validation and test user (``peer``), so the two models' per-bucket recall can
be set side by side, and ``paired`` splits the sampled users by which model hits their target.
Writes benchmarks/results/beauty_popularity.json (+ chart).

Usage: ``python -m benchmarks.beauty_popularity --version V4-collaborative0.6 --model-dirs DIR[,DIR...]``
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from benchmarks.beauty_data import add_workdir_argument, beauty_paths
from benchmarks.beauty_eval import KEYS, candidates, ranked, scored, split_rows
from benchmarks.common import RESULTS, write_result
from oxy_dagster.io import save_figure
from oxy_dagster.model.ensemble import GeneratorEnsemble
from oxy_dagster.model.evaluate import ranking_metrics
from oxy_dagster.model.pipeline import load_pretrained_many
from oxy_dagster.paths import DataPaths
from oxy_dagster.paths import work_dir as oxy_home

BUCKETS = ((0, 2), (3, 10), (11, 30), (31, 10**9))  # times the target item is a training target (inclusive)


def bucket_names() -> list[str]:
    return [f"{lo}-{hi}" if hi < 10**9 else f"{lo}-more" for lo, hi in BUCKETS]


def by_bucket(hits: dict[str, np.ndarray], freq: np.ndarray) -> dict:
    out = {}
    for name, (lo, hi) in zip(bucket_names(), BUCKETS):
        m = (freq >= lo) & (freq <= hi)
        out[name] = {"share": round(float(m.mean()), 4), "users": int(m.sum()),
                     **{k: round(float(v[m].mean()), 5) if m.any() else None for k, v in hits.items()}}
    return out


def split_figures(pred: np.ndarray, target: np.ndarray, freq: np.ndarray,
                  candidates: np.ndarray | None = None) -> dict:
    """Recall@10 / NDCG@10 of ranked lists ``pred`` (history excluded), overall and by ``freq``'s bucket; given the
    lists' ``candidates`` (rows of items), also ``in_candidates``: the share of users whose target is among them at
    all (the beam's reach: ranking can only reorder those)."""
    hits = {k: v for k, v in ranking_metrics(pred, target).items() if k in KEYS}
    if candidates is not None:
        hits["in_candidates"] = (candidates == target[:, None]).any(1).astype(float)
    return {**{k: round(float(v.mean()), 5) for k, v in hits.items()}, "evaluated": int(len(target)),
            "buckets": by_bucket(hits, freq)}


def prior_rerank(c: dict, counts: np.ndarray, target: np.ndarray, alphas: list[float]) -> dict:
    """Figures (filtered, ``plain``) of the candidates ranked by gen - alpha x log(1 + training count)."""
    items = c["items"].clamp(min=0).numpy()  # empty slots (-1) are ranked last by ``ranked`` whatever they score
    c = {**{k: v for k, v in c.items() if not k.startswith("plain_")},  # both protocols read the filtered list
         "dense": torch.from_numpy(-np.log1p(counts[items]).astype(np.float32))}
    return {str(a): {**scored(c, target, a, True), "plain": scored(c, target, a, False)} for a in alphas}


def peer_buckets(paths: DataPaths, cat, counts: np.ndarray, minutes: float, epochs: int = 0) -> tuple[dict, dict]:
    """SASRec trained for ``minutes`` (or ``epochs``): every validation and test user's figures by target popularity
    bucket, and per split each user's Recall@10 hit (user id -> 0 / 1) for pairing with OxyRec's."""
    import pyarrow.parquet as pq

    from benchmarks.sasrec_peer import eval_users, full_sort_top, run_sasrec

    hits = {}

    def read(trainer, valid_data, test_data) -> dict:
        out = {}
        for split, loader in (("valid", valid_data), ("test", test_data)):
            excluded, _, target = full_sort_top(trainer, loader)
            freq = counts[[cat.row[t] for t in loader._dataset.id2token("item_id", target)]]
            out[split] = split_figures(excluded, target, freq)
            hits[split] = dict(zip(eval_users(trainer, loader), ranking_metrics(excluded, target)["recall@10"]))
        return out

    splits = pq.read_table(paths.splits, columns=["user_id", "item_id", "pos"]).to_pandas()
    budget = minutes * 60 if minutes > 0 else float("inf")
    peer = run_sasrec(splits, budget, oxy_home() / "bench" / "recbole", after=read, epochs=epochs)
    return {**peer.pop("after"), "train_wall_s": peer["train_wall_s"], "epochs": peer["epochs"],
            "model": peer["model"]}, hits


def paired(oxy_hits: np.ndarray, users, peer_hits: dict, freq: np.ndarray) -> dict:
    """Shares of the sampled users each model hits at Recall@10 (both, OxyRec only, SASRec only, neither) and, for
    the users only one model hits, how often their target is a training target (median): where the gap lies."""
    peer = np.array([peer_hits[str(u)] for u in users])
    oxy = oxy_hits > 0
    groups = {"both": oxy & (peer > 0), "oxyrec_only": oxy & (peer == 0), "sasrec_only": ~oxy & (peer > 0),
              "neither": ~oxy & (peer == 0)}
    return {k: {"share": round(float(m.mean()), 4), "users": int(m.sum()),
                "target_training_count_median": float(np.median(freq[m])) if m.any() else None}
            for k, m in groups.items()}


def bucket_bars(ax, series: list[tuple[str, dict]], key: str = "recall@10") -> None:
    """Grouped bars of ``key`` per popularity bucket, one bar per (label, figures with ``buckets``) in ``series``."""
    names = bucket_names()
    width = 0.8 / len(series)
    for i, (label, figures) in enumerate(series):
        ax.bar([j + i * width for j in range(len(names))], [figures["buckets"][n][key] or 0 for n in names], width,
               label=label)
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(names))], [f"{n}x" for n in names])
    ax.set(xlabel="target's count as a training target", ylabel=f"{key} (history excluded)")


def bucket_chart(series: list[tuple[str, dict]], title: str, path: Path) -> Path:
    """Two panels of ``bucket_bars`` (Recall@10 and ``in_candidates`` per popularity bucket) saved as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    for ax, key in zip(axes, ("recall@10", "in_candidates")):
        bucket_bars(ax, series, key)
    axes[0].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path)


def plot(result: dict, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = [(f"OxyRec {split} Recall@10", result[split]) for split in ("valid", "test")]
    series += [(f"SASRec {split} Recall@10", result["peer"][split]) for split in ("valid", "test") if "peer" in result]
    fig, ax = plt.subplots(figsize=(7, 3.8))
    bucket_bars(ax, series)
    ax.set(title="Beauty: recall by target popularity")
    ax.legend()
    fig.tight_layout()
    return save_figure(fig, path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    add_workdir_argument(ap)
    ap.add_argument("--version", default="V4")
    ap.add_argument("--model-dirs", required=True, help="comma-separated model directories (several: an ensemble)")
    ap.add_argument("--rows", type=int, default=3000, help="seeded random users per split (0: all)")
    ap.add_argument("--beam", type=int, default=50)
    ap.add_argument("--name", default="beauty_popularity")
    ap.add_argument("--peer-minutes", type=float, default=0.0, help="> 0: SASRec trained this long, read by bucket")
    ap.add_argument("--peer-epochs", type=int, default=0,
                    help="> 0: SASRec trained for this many epochs (e.g. the hour's selected epoch), read by bucket")
    ap.add_argument("--dense-mix", type=float, default=None,
                    help="rank by generation + this x dense (default: the model's own dense_mix; a levers run saves 0)")
    ap.add_argument("--alphas", default="-0.1,0.05,0.1,0.2,0.3,0.5", help="popularity-correction weights to re-rank by")
    args = ap.parse_args()
    paths = beauty_paths(args.workdir)
    models, cat, data, trie = load_pretrained_many(paths, args.version, args.model_dirs.split(","))
    model = GeneratorEnsemble(models) if len(models) > 1 else models[0]
    if args.dense_mix is not None:
        model.cfg.dense_mix = args.dense_mix
    target_all = data.tensors["target"].numpy()
    train = (data.meta.split == "train").to_numpy() & (target_all < cat.pad)
    counts = np.bincount(target_all[train], minlength=cat.pad + 1)
    result = {"buckets": bucket_names(), "members": len(models), "version": args.version,
              "dense_mix": model.cfg.dense_mix}
    oxy_hits = {}
    alphas, prior = sorted({0.0, *(float(a) for a in args.alphas.split(","))}), {}
    for split in ("valid", "test"):
        rows = split_rows(data, split, cat.pad, args.rows, sample=True)
        c = candidates(model, data, trie, rows, args.beam, desc=f"{split} candidates")
        target = target_all[rows]
        pred = ranked(c, model.cfg.dense_mix, True)
        result[split] = split_figures(pred, target, counts[target], c["items"].numpy())
        oxy_hits[split] = (ranking_metrics(pred, target)["recall@10"], data.meta.user_id.to_numpy()[rows], target)
        prior[split] = prior_rerank(c, counts, target, alphas)
    chosen = max(prior["valid"], key=lambda a: sum(prior["valid"][a][k] for k in KEYS))
    result["prior"] = {"alphas": alphas, "chosen_on_valid": float(chosen), **prior,
                       "test_at_chosen": prior["test"][chosen], "test_at_0": prior["test"]["0.0"]}
    for key in ("recall@10", "ndcg@10"):
        result[f"test_expected_from_valid_{key}"] = round(sum(
            result["test"]["buckets"][n]["share"] * (result["valid"]["buckets"][n][key] or 0.0)
            for n in bucket_names()), 5)
    if args.peer_minutes > 0 or args.peer_epochs > 0:
        result["peer"], peer_hits = peer_buckets(paths, cat, counts, args.peer_minutes, args.peer_epochs)
        result["paired"] = {split: paired(h, users, peer_hits[split], counts[t])
                            for split, (h, users, t) in oxy_hits.items()}
    write_result(args.name, result, {"version": args.version, "members": len(models), "rows": args.rows},
                 artifacts=[plot(result, RESULTS / f"{args.name}.png")])
    print(result)


if __name__ == "__main__":
    main()
