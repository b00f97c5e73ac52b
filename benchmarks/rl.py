"""Benchmark: post-training (seed section 2.4, Tables 8, 10, 11, Figure 7) on the synthetic shop and Amazon Beauty.

Synthetic shop (2,000 users, with impressions): a ``small`` V3 generator pre-trained for ``--pretrain-steps``,
the unified ranker and one pointwise ranker per scenario (``ranking``: AUC / GAUC on held-out requests), then
RL from the same pretrained checkpoint with GRPO, GSPO and SA-GCPO over ``--seeds`` seeds (Table 10), the
SA-GCPO temperature grid (Table 11) and the synthetic-sample share (Figure 7), one seed each. Amazon Beauty:
the V4 ``small`` generator ``benchmarks/beauty.py`` trained (``$OXY_HOME/bench/beauty-models/V4``; trained here
for ``--beauty-train-min`` if missing), its ranker on sampled negatives (Beauty has no impressions), and the
three objectives over the seeds within ``--beauty-budget-min`` of RL in all. Every configuration is scored on
the same held-out users with the same beam. Hyper-parameters are the defaults of ``RLConfig`` (no tuning on the
test split). Usage: ``python -m benchmarks.rl`` -> ``benchmarks/results/rl.json`` (+ ``rl.png``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

from benchmarks.common import RESULTS, write_result
from oxy_dagster.data.pipeline import run_all
from oxy_dagster.data.sources import DatasetConfig
from oxy_dagster.io import save_figure, write_text
from oxy_dagster.model.checkpoint import latest_checkpoint
from oxy_dagster.model.config import TrainConfig
from oxy_dagster.model.pipeline import build_pretrained
from oxy_dagster.paths import DataPaths, work_dir
from oxy_dagster.ranking.model import RankerConfig
from oxy_dagster.ranking.pipeline import build_rankers
from oxy_dagster.rl.ablation import METRICS, RLAblationConfig, rl_markdown, run_rl_ablations
from oxy_dagster.rl.trainer import RLConfig
from oxy_dagster.sid.build import build_codebook, build_item_embeddings, build_text_embeddings
from oxy_dagster.sid.text import shared_text_encoder
from oxy_dagster.spark import get_spark, stop_spark


def synthetic_stage(root: Path, pretrain_steps: int) -> DataPaths:
    paths = DataPaths(root)
    if not (paths.samples / "_schema.json").exists():
        run_all(get_spark(), DatasetConfig(kind="synthetic"), root)
        stop_spark()
    if not (paths.sid / "V3" / "codes.parquet").exists():
        build_text_embeddings(paths)
        build_item_embeddings(paths, "V3")
        build_codebook(paths, "V3")
    if latest_checkpoint(paths.model("V3") / "checkpoints") is None:
        build_pretrained(paths, "V3", "small", TrainConfig(steps=pretrain_steps, engine="torch"))
    return paths


def select_lr(paths: DataPaths, version: str, base: RLConfig, steps: int, candidates=(3e-5, 1e-4, 3e-4),
              pretrained_dir: Path | None = None, eval_rows: int = 1000) -> tuple[float, dict]:
    """The SA-GCPO learning rate with the best validation HR@10 after ``steps`` steps (never the test split)."""
    from oxy_dagster.rl.pipeline import post_train

    scores = {}
    for lr in candidates:
        out = paths.models / "rl-lr-select" / f"lr_{lr:g}"
        shutil.rmtree(out, ignore_errors=True)
        post_train(paths, version, replace(base, lr=lr, steps=steps), out_dir=out, eval_rows=eval_rows,
                   eval_every=steps, pretrained_dir=pretrained_dir)
        hist = json.loads((out / "history.json").read_text())
        scores[f"{lr:g}"] = hist[-1]["valid_hr@10"]
        print("lr", lr, scores[f"{lr:g}"], flush=True)
    best = max(scores, key=scores.get)
    return float(best), scores


def rows_of(result: dict) -> dict:
    """Table 10 in the shape rl.json keeps: pretrained / grpo / gspo / sa_gcpo rows."""
    keep = lambda r: {k: round(v, 5) if isinstance(v, float) else v for k, v in r.items()}  # noqa: E731
    return {"pretrained": keep(result["pretrained"]), **{k: keep(v) for k, v in result["table10"].items()}}


def plot(figures: dict, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 3.8))
    for ax, data_name in zip(axes[:2], ("synthetic", "beauty")):
        rows = figures.get(data_name, {})
        names = [n for n in ("pretrained", "grpo", "gspo", "sa_gcpo") if n in rows]
        for i, m in enumerate(("hr@1", "hr@10", "ndcg@10")):
            ax.bar([j + i * 0.27 for j in range(len(names))], [rows[n][m] for n in names], 0.27, label=m,
                   yerr=[rows[n].get(f"{m}_std", 0) for n in names])
        ax.set_xticks([j + 0.27 for j in range(len(names))], names)
        ax.set(title=f"{data_name}: held-out users")
        ax.legend(fontsize=8)
    syn = figures.get("synthetic_ratio", [])
    for obj in ("grpo", "sa_gcpo"):
        pts = [(r["synthetic_ratio"], r["hr@10"]) for r in syn if r["objective"] == obj]
        if pts:
            axes[2].plot(*zip(*pts), marker="o", label=obj)
    axes[2].set(xlabel="synthetic share", ylabel="HR@10", title="synthetic samples (Figure 7)")
    axes[2].legend()
    fig.tight_layout()
    return save_figure(fig, path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--pretrain-steps", type=int, default=1000)
    ap.add_argument("--eval-rows", type=int, default=1000)
    ap.add_argument("--beauty-eval-rows", type=int, default=3000)
    ap.add_argument("--beauty-train-min", type=float, default=20.0)
    ap.add_argument("--beauty-budget-min", type=float, default=30.0)
    ap.add_argument("--skip-beauty", action="store_true")
    ap.add_argument("--root", default=str(work_dir() / "bench" / "synthetic-rl"),
                    help="synthetic shop root (reuses its data, SID V3 and pretrained model when present; "
                         "benchmarks/instruction_effect.py builds the same default shop in bench/synthetic-serving)")
    args = ap.parse_args()
    t0 = time.perf_counter()
    encoder = shared_text_encoder()
    syn = synthetic_stage(Path(args.root), args.pretrain_steps)
    ranking = build_rankers(syn, "V3", RankerConfig(), encoder)
    print("ranking", json.dumps(ranking)[:2000], flush=True)
    lr, lr_scores = select_lr(syn, "V3", RLConfig(), args.steps)
    base = RLConfig(lr=lr)
    acfg = RLAblationConfig(steps=args.steps, seeds=args.seeds, eval_rows=args.eval_rows)
    log = lambda key, row: print(key, row, flush=True)  # noqa: E731
    table10 = run_rl_ablations(syn, "V3", base, acfg, syn.models / "rl-bench", tables=("table10",), log=log)
    one_seed = replace(acfg, seeds=1)
    more = run_rl_ablations(syn, "V3", base, one_seed, syn.models / "rl-bench",
                            tables=("table11", "synthetic_ratio"), log=log)
    figures = {"synthetic": rows_of(table10), "table11": more["table11"], "synthetic_ratio": more["synthetic_ratio"],
               "ranking": {"unified": ranking["unified"], "per_scenario": ranking["per_scenario"],
                           "source": ranking["source"]},
               "lr_selection": {"validation_hr@10_by_lr": lr_scores, "chosen": lr},
               "settings": {"rl": vars(base) | {"steps": args.steps}, "seeds": args.seeds, "eval_rows": args.eval_rows,
                            "pretrain_steps": args.pretrain_steps, "table11_and_figure7_seeds": 1}}
    if not args.skip_beauty:
        from benchmarks.beauty import train
        from benchmarks.beauty_data import prepare_data

        bpaths = DataPaths(work_dir() / "bench" / "beauty")
        prepare_data(bpaths, None, ["V4"])
        model_dir = work_dir() / "bench" / "beauty-models" / "V4"
        if latest_checkpoint(model_dir / "checkpoints") is None:
            train(bpaths, "V4", model_dir, SimpleNamespace(batch_size=256, lr=2e-3, seed=0,
                                                           budget_min=args.beauty_train_min, size="small"))
        branking = build_rankers(bpaths, "V4", RankerConfig(), encoder, baseline=False)
        runs = 3 * args.seeds
        steps = max(5, int(args.beauty_budget_min * 60 / runs / 4.0))  # ~4 s per Beauty RL step on 2 cores
        bcfg = RLAblationConfig(steps=steps, seeds=args.seeds, eval_rows=args.beauty_eval_rows)
        beauty = run_rl_ablations(bpaths, "V4", base, bcfg, bpaths.models / "rl-bench", tables=("table10",),
                                  pretrained_dir=model_dir, log=log)
        figures["beauty"] = rows_of(beauty)
        figures["beauty_ranking"] = {"unified": branking["unified"], "source": branking["source"]}
        figures["settings"]["beauty_steps"] = steps
        figures["beauty_beats_pretrained"] = {m: figures["beauty"]["sa_gcpo"][m] > figures["beauty"]["pretrained"][m]
                                              for m in METRICS}
    figures["wall_s"] = round(time.perf_counter() - t0, 1)
    png = plot(figures, RESULTS / "rl.png")
    write_text(RESULTS / "rl.md", rl_markdown({**table10, **more}))
    path = write_result("rl", figures, {"steps": args.steps, "seeds": args.seeds}, artifacts=[png, RESULTS / "rl.md"])
    print(path.read_text())


if __name__ == "__main__":
    main()
