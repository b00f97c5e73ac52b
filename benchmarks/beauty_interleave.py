"""Benchmark: the beam's list interleaved with the dense head's own ranking (issue #15, chosen on validation).

``beauty_popularity_m4`` put the hour ensemble's remaining gap to SASRec on targets rare in training: a test target
seen at most twice is among the beam's candidates for 2.9 % of its users, and reads Recall@10 0.0033 against
SASRec's 0.0425. The dense head's free per-item vectors rank those items far better (one member's dense head alone:
0.037 there) but never see them, because the final ranking only reorders the beam's items. This merges the two
ranked lists (``decoding.merge_ranked``, ``GeneratorConfig.dense_interleave``): the beam's list ranked as committed
(gen + dense_mix x dense) and the dense head's ranking of the whole catalogue, the r-th place of the first scoring
1 / (r + 2) and of the second ``weight`` / (r + 2); weight 0 is the committed list.

Per split, a seeded sample of users (``--rows``, the same for every weight) is decoded once (``beauty_eval.candidates``)
and ranked at every weight in ``WEIGHTS``. The weight is chosen on the even-numbered validation users (Recall@10 +
NDCG@10, history filter on), read on the odd ones, on all of them and on the test users, with and without the history
filter and by how often the target is a training target (``beauty_popularity``'s buckets).
Writes benchmarks/results/<name>.json (+ chart) and logs both to MLflow.

Usage: ``python -m benchmarks.beauty_interleave --model-dirs DIR0,DIR1,... [--rows 6000]``
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from benchmarks.beauty_data import add_workdir_argument, beauty_paths
from benchmarks.beauty_eval import KEYS, candidates, dense_list, ranked, scored, split_rows
from benchmarks.beauty_popularity import bucket_chart, split_figures
from benchmarks.common import RESULTS, write_result
from oxy_dagster.model.ensemble import GeneratorEnsemble
from oxy_dagster.model.pipeline import load_pretrained_many

WEIGHTS = (0.0, 0.3, 0.4, 0.5, 0.6, 0.7, 0.85, 1.0)  # 0: the beam's list alone


def read(c: dict, target: np.ndarray, counts: np.ndarray, mix: float, weight: float, users=slice(None)) -> dict:
    """Figures of the list at ``weight`` on ``users`` (history filter on; ``plain``: off), with the buckets."""
    sub = {k: v[users] for k, v in c.items()}
    t = target[users]
    pred = ranked(sub, mix, True, interleave=weight)
    reach = sub["items"].masked_fill(sub["seen"], -1)  # what the list is ranked from: the beam's items, and the
    if weight > 0:  # dense head's best 20 outside the history where they are interleaved
        reach = torch.cat([reach, dense_list(sub, True, 20)], 1)
    out = split_figures(pred, t, counts[t], reach.numpy())
    return {**out, "plain": scored(sub, t, mix, False, interleave=weight)}


def gain(new: dict, old: dict) -> dict:
    return {k: round(new[k] / old[k], 3) for k in KEYS} | {
        "plain": {k: round(new["plain"][k] / old["plain"][k], 3) for k in KEYS}}


def plot(result: dict, path: Path) -> Path:
    w = result["chosen_weight"]
    series = [(f"{split} weight {x}", result[split][key]) for split in ("valid", "test")
              for x, key in ((0.0, "committed"), (w, "chosen"))]
    return bucket_chart(series, f"Beauty, the hour's ensemble: the beam's list vs interleaved with the dense head's "
                                f"(weight {w})", path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    add_workdir_argument(ap)
    ap.add_argument("--version", default="V4-collaborative0.6-collaborative_shrink10")
    ap.add_argument("--model-dirs", required=True, help="comma-separated model directories (several: an ensemble)")
    ap.add_argument("--rows", type=int, default=6000, help="seeded random users per split (0: all)")
    ap.add_argument("--beam", type=int, default=50)
    ap.add_argument("--name", default="beauty_interleave")
    args = ap.parse_args()
    paths = beauty_paths(args.workdir)
    models, cat, data, trie = load_pretrained_many(paths, args.version, args.model_dirs.split(","))
    model = GeneratorEnsemble(models) if len(models) > 1 else models[0]
    if model.cfg.dense_weight <= 0:
        raise SystemExit("the model has no dense head: there is no dense ranking to interleave")
    mix = model.cfg.dense_mix
    target_all = data.tensors["target"].numpy()
    train = (data.meta.split == "train").to_numpy() & (target_all < cat.pad)
    counts = np.bincount(target_all[train], minlength=cat.pad + 1)
    lists = {}
    for split in ("valid", "test"):
        rows = split_rows(data, split, cat.pad, args.rows, sample=True)
        lists[split] = (candidates(model, data, trie, rows, args.beam, desc=split), target_all[rows])
    c, t = lists["valid"]
    even = {w: read(c, t, counts, mix, w, slice(0, None, 2)) for w in WEIGHTS}
    chosen = max(WEIGHTS, key=lambda w: even[w]["recall@10"] + even[w]["ndcg@10"])
    result = {"split": "valid", "version": args.version, "members": len(models), "beam": args.beam,
              "rows": args.rows, "dense_mix": mix, "weights": list(WEIGHTS), "chosen_weight": chosen,
              "grid_even_valid": {str(w): {k: even[w][k] for k in (*KEYS, "plain")} for w in WEIGHTS}}
    for name, split, users in (("odd_valid", "valid", slice(1, None, 2)), ("valid", "valid", slice(None)),
                               ("test", "test", slice(None))):
        c, t = lists[split]
        result[name] = {"committed": read(c, t, counts, mix, 0.0, users), "chosen": read(c, t, counts, mix, chosen,
                                                                                         users)}
        result[name]["gain"] = gain(result[name]["chosen"], result[name]["committed"])
        print(name, result[name]["gain"], flush=True)
    png = plot(result, RESULTS / f"{args.name}.png")
    write_result(args.name, result, {"version": args.version, "members": len(models), "rows": args.rows},
                 artifacts=[png])
    print({k: result[k] for k in ("chosen_weight", "odd_valid", "test")})


if __name__ == "__main__":
    main()
