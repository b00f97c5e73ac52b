"""Benchmark: decoding and ensemble levers of issue #15, read on the one-hour run's trained members.

No training here: the members ``benchmarks/beauty.py --members 3`` trained (kept under
``$OXY_HOME/bench/beauty-models/<version>/member<i>``) are decoded several ways and scored on the
same seeded sample of validation users (history filter on, and ``plain``), so every difference is
the decoding's. Test users are never read: these are choices, and choices are made on validation.

* ``beam``: the joint beam of all members (``GeneratorEnsemble``) at each of ``--beams``.
* ``union``: the members' own beams proposing and every member scoring the union
  (``CodebookEnsemble`` on one codebook), against the joint beam at the same width.
* ``codebook_diversity``: a pair of members on one codebook against a pair on two codebooks of the
  same item vectors (RQ-KMeans seeds 0 and 1; ``--other-dir``: a generator trained for the member
  budget on ``--other-version`` with the next member's seed, e.g. ``python -m benchmarks.beauty
  --budget-min 20 --versions V4-collaborative0.6-seed1 --seed 1 --no-peer``), both decoded by union.

Writes benchmarks/results/beauty_decoding.json (+ chart) and logs it to MLflow.

Usage: ``python -m benchmarks.beauty_decoding [--rows 3000] [--beams 50,100]``
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from benchmarks.beauty_data import add_workdir_argument, beauty_paths, check_catalogue_order
from benchmarks.beauty_eval import candidates, scored, split_rows
from benchmarks.common import RESULTS, write_result
from oxy_dagster.io import save_figure
from oxy_dagster.model.ensemble import CodebookEnsemble, GeneratorEnsemble
from oxy_dagster.model.pipeline import load_pretrained, load_pretrained_many
from oxy_dagster.paths import work_dir as oxy_home


def measure(model, data, trie, rows, beam: int, name: str) -> dict:
    t0 = time.perf_counter()
    c = candidates(model, data, trie, rows, beam, desc=name)
    target = data.tensors["target"].numpy()[rows]
    out = {**scored(c, target, 0.0, True), "plain": scored(c, target, 0.0, False),
           "seconds": round(time.perf_counter() - t0, 1), "beam": beam}
    print(name, out, flush=True)
    return out


def gain(a: dict, b: dict) -> dict:
    """``a`` over ``b``, Recall@10 and NDCG@10 (history filter on)."""
    return {k: round(a[k] / b[k], 3) for k in ("recall@10", "ndcg@10")}


def plot(figures: dict, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(figures)
    fig, ax = plt.subplots(figsize=(8, 3.8))
    for i, key in enumerate(("recall@10", "ndcg@10")):
        ax.bar([j + i * 0.4 for j in range(len(names))], [figures[n][key] for n in names], 0.4, label=key)
    ax.set_xticks([j + 0.2 for j in range(len(names))], names, rotation=20, ha="right", fontsize=8)
    ax.set(title="Beauty validation, the hour's members decoded several ways", ylabel="score (history excluded)")
    ax.legend(loc="lower right")
    fig.tight_layout()
    return save_figure(fig, path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rows", type=int, default=3000, help="seeded random validation users")
    ap.add_argument("--beams", default="50,100", help="joint-beam widths; the first is every other reading's")
    ap.add_argument("--version", default="V4-collaborative0.6", help="the members' SID version")
    ap.add_argument("--members-dir", default=None, help="default: $OXY_HOME/bench/beauty-models/<version>")
    ap.add_argument("--other-version", default="V4-collaborative0.6-seed1")
    ap.add_argument("--other-dir", default=None, help="default: $OXY_HOME/bench/beauty-models/<other-version>")
    add_workdir_argument(ap)
    args = ap.parse_args()
    paths = beauty_paths(args.workdir)
    models = oxy_home() / "bench" / "beauty-models"
    members_dir = Path(args.members_dir) if args.members_dir else models / args.version
    dirs = sorted(members_dir.glob("member*"))
    if len(dirs) < 2:
        raise SystemExit(f"{members_dir} holds {len(dirs)} members: run benchmarks/beauty.py --members 3 first")
    members, cat, data, trie = load_pretrained_many(paths, args.version, dirs)
    rows = split_rows(data, "valid", members[0].pad_item, args.rows, sample=True)
    beams = [int(b) for b in args.beams.split(",")]
    n = len(members)
    fig = {f"joint{n}_beam{b}": measure(GeneratorEnsemble(members), data, trie, rows, b, f"joint{n} beam {b}")
           for b in beams}
    fig[f"union{n}_beam{beams[0]}"] = measure(CodebookEnsemble([(m, trie) for m in members]), data, trie,
                                             rows, beams[0], f"union{n}")
    other_dir = Path(args.other_dir) if args.other_dir else models / args.other_version
    if (other_dir / "checkpoints").exists():
        other, other_cat, _, other_trie = load_pretrained(paths, args.other_version, out_dir=other_dir)
        check_catalogue_order(cat, other_cat, args.other_version, args.version)
        b = beams[0]
        fig["member1"] = measure(members[1], data, trie, rows, b, "member1")
        fig["other"] = measure(other, data, other_trie, rows, b, f"{args.other_version}")
        fig["union_member0_member1"] = measure(CodebookEnsemble([(members[0], trie), (members[1], trie)]),
                                               data, trie, rows, b, "union m0+m1")
        fig["union_member0_other"] = measure(
            CodebookEnsemble([(members[0], trie), (other, other_trie)]),
            data, trie, rows, b, "union m0+other")
    result = {"split": "valid", "rows": len(rows), "version": args.version, "members": n, "figures": fig,
              "beam_gain": gain(fig[f"joint{n}_beam{beams[-1]}"], fig[f"joint{n}_beam{beams[0]}"]),
              "union_gain": gain(fig[f"union{n}_beam{beams[0]}"], fig[f"joint{n}_beam{beams[0]}"]),
              "union_seconds_ratio": round(fig[f"union{n}_beam{beams[0]}"]["seconds"]
                                           / fig[f"joint{n}_beam{beams[0]}"]["seconds"], 2)}
    if "other" in fig:
        result["codebook_diversity_gain"] = gain(fig["union_member0_other"], fig["union_member0_member1"])
        result["other_version"] = args.other_version
    png = plot(fig, RESULTS / "beauty_decoding.png")
    write_result("beauty_decoding", result, {"version": args.version, "rows": len(rows), "beams": args.beams},
                 artifacts=[png])
    print(result)


if __name__ == "__main__":
    main()
