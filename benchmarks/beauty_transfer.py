"""Benchmark: how a trained generator's Recall@10 on Amazon Beauty falls with the target's distance from training.

Issue #15 asks why OxyRec keeps less of its validation figure on test than SASRec does. This reads one model
directory of ``benchmarks/beauty.py`` on three targets of a seeded random sample of users each: the last
training target (``train_last``: a sample the model trained on), the validation target (one step past the
training data) and the test target (two steps past it), each with the full history and with the most recent
history item removed (``drop_last``: how much the prediction leans on that item). Ranked lists exclude the full
history in every case (Beauty never repeats an item). Writes benchmarks/results/<name>.json (+ chart).

Usage: ``python -m benchmarks.beauty_transfer --version V4-collaborative0.6 --model-dir DIR [--rows 3000]``
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from benchmarks.beauty_data import add_workdir_argument, beauty_paths
from benchmarks.beauty_eval import candidates, scored
from benchmarks.common import RESULTS, write_result
from oxy_dagster.io import save_figure
from oxy_dagster.model.evaluate import history_items
from oxy_dagster.model.pipeline import load_pretrained

TARGETS = ("train_last", "valid", "test")


def without_last(short: torch.Tensor, behaviors: torch.Tensor, pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-aligned short histories with their most recent item (and its behaviour) removed: shifted one column
    right, the freed first column padding."""
    s, b = short.roll(1, dims=1), behaviors.roll(1, dims=1)
    s[:, 0], b[:, 0] = pad, 0
    return s, b


def target_rows(meta, target: np.ndarray, pad: int, n: int, seed: int = 0) -> dict[str, np.ndarray]:
    """A seeded sample of ``n`` rows per target kind; ``train_last``: each user's last training sample."""
    known = target < pad
    pools = {s: np.flatnonzero((meta.split == s).to_numpy() & known) for s in ("valid", "test")}
    train = meta[(meta.split == "train").to_numpy() & known]
    pools["train_last"] = train.reset_index().groupby("user_id")["index"].max().to_numpy()
    rng = np.random.default_rng(seed)
    return {k: np.sort(rng.choice(pools[k], min(n, len(pools[k])), replace=False)) if n else np.sort(pools[k])
            for k in TARGETS}


def figures(model, data, trie, rows: np.ndarray, beam: int, drop: bool) -> dict:
    """Recall@10 / NDCG@10 with the full history filtered, the model reading the full or the shortened history."""
    seen_hist = history_items(data.batch(rows))
    if drop:
        data = type(data)({**data.tensors}, data.meta, data.unknown_items, data.city_vocab)
        data.tensors["short_items"], data.tensors["short_behaviors"] = without_last(
            data.tensors["short_items"], data.tensors["short_behaviors"], model.pad_item)
    c = candidates(model, data, trie, rows, beam, desc="drop_last" if drop else "full")
    c["seen"] = (c["items"][:, :, None] == seen_hist[:, None, :]).any(-1)
    return scored(c, data.tensors["target"].numpy()[rows], model.cfg.dense_mix, True)


def plot(result: dict, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6))
    for i, kind in enumerate(("full", "drop_last")):
        ax.bar([j + i * 0.4 for j in range(len(TARGETS))], [result[t][kind]["recall@10"] for t in TARGETS], 0.4,
               label="full history" if kind == "full" else "most recent item removed")
    ax.set_xticks([j + 0.2 for j in range(len(TARGETS))], ["last training target", "validation", "test"])
    ax.set(ylabel="Recall@10 (history excluded)", title="Beauty: recall by the target's distance from training")
    ax.legend()
    fig.tight_layout()
    return save_figure(fig, path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    add_workdir_argument(ap)
    ap.add_argument("--version", default="V4-collaborative0.6")
    ap.add_argument("--model-dir", required=True)
    ap.add_argument("--rows", type=int, default=3000, help="seeded random users per target (0: all)")
    ap.add_argument("--beam", type=int, default=50)
    ap.add_argument("--name", default="beauty_transfer")
    args = ap.parse_args()
    paths = beauty_paths(args.workdir)
    model, cat, data, trie = load_pretrained(paths, args.version, out_dir=Path(args.model_dir))
    rows = target_rows(data.meta, data.tensors["target"].numpy(), cat.pad, args.rows)
    result = {"version": args.version, "rows": args.rows, "beam": args.beam}
    for t in TARGETS:
        full, drop = (figures(model, data, trie, rows[t], args.beam, d) for d in (False, True))
        result[t] = {"full": full, "drop_last": drop, "evaluated": len(rows[t]),
                     "drop_last_ratio": round(drop["recall@10"] / max(full["recall@10"], 1e-9), 3)}
    for a, b in (("valid", "train_last"), ("test", "valid")):
        result[f"ratio_{a}_to_{b}"] = {k: round(result[a]["full"][k] / max(result[b]["full"][k], 1e-9), 3)
                                       for k in ("recall@10", "ndcg@10")}
    write_result(args.name, result, {"version": args.version, "rows": args.rows, "model_dir": args.model_dir},
                 artifacts=[plot(result, RESULTS / f"{args.name}.png")])
    print(result)


if __name__ == "__main__":
    main()
