"""Benchmark: two count baselines on Amazon Beauty, by how often the target item is a training target.

Issue #15's gap to SASRec lies in the long tail (``beauty_popularity_hour``: OxyRec reaches 29-48 % of SASRec's
Recall@10 on test targets seen 10 times or less in training). This asks what a model needs there, with no model at
all: ``markov`` ranks, for each user, the items that followed the user's last history item in the training samples
(first-order transitions, by count; ties and the rest of the list filled by training popularity), ``popularity``
ranks the items by how often they are a training target. Both read every validation and test user with the history
filter, overall and in ``beauty_popularity``'s buckets, so the figures sit beside that benchmark's.
No training; seconds. Writes benchmarks/results/beauty_transitions.json.

Usage: ``python -m benchmarks.beauty_transitions [--version V4]``
"""

from __future__ import annotations

import argparse

import numpy as np

from benchmarks.beauty_data import add_workdir_argument, beauty_paths, prepare_data
from benchmarks.beauty_eval import KEYS
from benchmarks.beauty_popularity import bucket_names, split_figures
from benchmarks.common import write_result
from oxy_dagster.model.config import GeneratorConfig
from oxy_dagster.model.evaluate import history_items
from oxy_dagster.model.pipeline import prepare_inputs


def transitions(last: np.ndarray, target: np.ndarray) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Each item's successors in the training samples: item -> (successor items, counts), most frequent first."""
    pairs, counts = np.unique(np.stack([last, target], 1), axis=0, return_counts=True)
    order = np.lexsort((-counts, pairs[:, 0]))
    pairs, counts = pairs[order], counts[order]
    starts = np.flatnonzero(np.r_[True, pairs[1:, 0] != pairs[:-1, 0]])
    ends = np.r_[starts[1:], len(pairs)]
    return {int(pairs[s, 0]): (pairs[s:e, 1], counts[s:e]) for s, e in zip(starts, ends)}


def ranked_lists(last: np.ndarray, history: np.ndarray, succ: dict, popular: np.ndarray, k: int = 20,
                 use_transitions: bool = True) -> np.ndarray:
    """Per row: the last item's successors (most frequent first), then the most popular items; history removed."""
    out = np.full((len(last), k), -1, dtype=np.int64)
    head = popular[: k + history.shape[1]]
    for i, (h, seen) in enumerate(zip(last, history)):
        nxt = succ.get(int(h), (np.empty(0, np.int64), None))[0] if use_transitions else np.empty(0, np.int64)
        cand = np.concatenate([nxt, head])
        _, first = np.unique(cand, return_index=True)
        cand = cand[np.sort(first)]
        cand = cand[~np.isin(cand, seen)][:k]
        out[i, :len(cand)] = cand
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    add_workdir_argument(ap)
    ap.add_argument("--dataset-path", default=None)
    ap.add_argument("--version", default="V4")
    args = ap.parse_args()
    paths = beauty_paths(args.workdir)
    prepare_data(paths, args.dataset_path, [args.version])
    inputs = prepare_inputs(paths, args.version, GeneratorConfig.max_short)  # the generator's own history
    cat, data = inputs.cat, inputs.data
    target_all = data.tensors["target"].numpy()
    short = data.tensors["short_items"].numpy()
    last_all = short[:, -1]  # histories are right-aligned: the last column is the latest item
    train = (data.meta.split == "train").to_numpy() & (target_all < cat.pad) & (last_all < cat.pad)
    counts = np.bincount(target_all[train], minlength=cat.pad + 1)[: cat.pad]
    popular = np.lexsort((np.arange(cat.pad), -counts))  # most trained-on first, ties by row
    succ = transitions(last_all[train], target_all[train])
    result = {"buckets": bucket_names(), "version": args.version, "train_samples": int(train.sum()),
              "items_with_successors": len(succ)}
    for name, use in (("markov", True), ("popularity", False)):
        result[name] = {}
        for split in ("valid", "test"):
            rows = data.split_rows(split, cat.pad)
            hist = history_items(data.batch(rows)).numpy()
            pred = ranked_lists(last_all[rows], hist, succ, popular, use_transitions=use)
            result[name][split] = split_figures(pred, target_all[rows], counts[target_all[rows]])
            print(name, split, {k: result[name][split][k] for k in KEYS}, flush=True)
    write_result("beauty_transitions", result, {"version": args.version})


if __name__ == "__main__":
    main()
