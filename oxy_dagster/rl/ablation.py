"""The seed's post-training tables on one dataset: Table 10 (GRPO vs GSPO vs SA-GCPO), Table 11 (SA-GCPO's
tau_pos / tau_neg) and Figure 7 (share of synthetic samples), each configuration from the same pretrained
checkpoint, with the same steps, evaluated on the same held-out users with the same beam; with several seeds a
row holds the mean and, under ``<metric>_std``, the standard deviation."""

from __future__ import annotations

import shutil
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from ..model.evaluate import evaluate
from ..model.pipeline import load_pretrained
from ..paths import DataPaths
from ..settings import setting
from .pipeline import post_train
from .trainer import RLConfig

METRICS = ("hr@1", "hr@10", "recall@10", "ndcg@10")


@dataclass
class RLAblationConfig:
    """The RL ablation runs (``rl_ablation_report`` / ``benchmarks/rl.py``)."""

    steps: int = setting(60, "RL steps per configuration")
    seeds: int = setting(1, "seeds per configuration (0, 1, ...)")
    eval_rows: int = setting(1000, "held-out users evaluated per configuration")
    beam: int = setting(30, "beam width of the evaluation")
    split: str = setting("test", "held-out split")
    tau_grid: str = setting("1.0:1.0,1.0:1.05,1.0:1.5,1.5:1.05", "Table 11 tau_pos:tau_neg pairs")
    synthetic_ratios: str = setting("0,0.33,0.66,1.0", "Figure 7 synthetic shares")


def score(paths: DataPaths, version: str, model_dir: Path | None, acfg: RLAblationConfig) -> dict:
    model, cat, data, trie = load_pretrained(paths, version, out_dir=model_dir)
    r = evaluate(model, data, trie, cat.codes, split=acfg.split, beam=acfg.beam, max_rows=acfg.eval_rows or None,
                 ks=(1, 5, 10, 20), progress=False)
    return {m: r[m] for m in METRICS}


def _mean_std(runs: list[dict]) -> dict:
    out = {}
    for k in runs[0]:
        vals = np.array([r[k] for r in runs], dtype=float)
        out[k] = float(vals.mean())
        if len(runs) > 1:
            out[f"{k}_std"] = float(vals.std())
    return out


def run_rl_ablations(paths: DataPaths, version: str, base: RLConfig, acfg: RLAblationConfig, work: Path,
                     tables=("table10", "table11", "synthetic_ratio"), pretrained_dir: Path | None = None,
                     log=None) -> dict:
    """{"pretrained": row, "table10": {objective: row}, "table11": [row], "synthetic_ratio": [row]}."""
    cache: dict[str, dict] = {}

    def run(cfg: RLConfig) -> dict:
        key = "-".join(f"{k}={v}" for k, v in sorted(asdict(cfg).items()) if k != "seed")
        if key not in cache:
            runs, walls = [], []
            for seed in range(acfg.seeds):
                out = work / f"{key}-seed={seed}".replace("=", "_").replace(":", "_")
                shutil.rmtree(out, ignore_errors=True)  # each configuration trains from the pretrained start
                info = post_train(paths, version, replace(cfg, seed=seed), out_dir=out, eval_every=0,
                                  pretrained_dir=pretrained_dir)
                runs.append(score(paths, version, out, acfg))
                walls.append(info["train_wall_s"])
            cache[key] = {**_mean_std(runs), "train_wall_s": round(float(np.mean(walls)), 1), "seeds": acfg.seeds}
            if log:
                log(key, cache[key])
        return cache[key]

    base = replace(base, steps=acfg.steps)
    result: dict = {"pretrained": score(paths, version, pretrained_dir, acfg), "config": asdict(acfg)}
    if "table10" in tables:
        result["table10"] = {obj: run(replace(base, objective=obj)) for obj in ("grpo", "gspo", "sa_gcpo")}
    if "table11" in tables:
        pairs = [tuple(float(x) for x in p.split(":")) for p in acfg.tau_grid.split(",")]
        result["table11"] = [{"tau_pos": tp, "tau_neg": tn, **run(replace(base, objective="sa_gcpo", tau_pos=tp,
                                                                           tau_neg=tn))} for tp, tn in pairs]
    if "synthetic_ratio" in tables:
        result["synthetic_ratio"] = [
            {"objective": obj, "synthetic_ratio": float(r),
             **run(replace(base, objective=obj, synthetic_ratio=float(r)))}
            for obj in ("grpo", "sa_gcpo") for r in acfg.synthetic_ratios.split(",")]
    return result


def rl_markdown(result: dict) -> str:
    head = "| " + " | ".join(METRICS) + " |"
    fmt = lambda r: " | ".join(f"{r[m]:.4f}" + (f" ± {r[m + '_std']:.4f}" if f"{m}_std" in r else "")  # noqa: E731
                               for m in METRICS)
    lines = ["**Table 10** (objectives)", "", "| model " + head, "|---|" + "---:|" * len(METRICS),
             f"| pretrained | {fmt(result['pretrained'])} |"]
    lines += [f"| {k} | {fmt(r)} |" for k, r in result.get("table10", {}).items()]
    if result.get("table11"):
        lines += ["", "**Table 11** (SA-GCPO temperatures)", "", "| tau_pos | tau_neg " + head,
                  "|---:|---:|" + "---:|" * len(METRICS)]
        lines += [f"| {r['tau_pos']} | {r['tau_neg']} | {fmt(r)} |" for r in result["table11"]]
    if result.get("synthetic_ratio"):
        lines += ["", "**Figure 7** (synthetic share)", "", "| objective | synthetic " + head,
                  "|---|---:|" + "---:|" * len(METRICS)]
        lines += [f"| {r['objective']} | {r['synthetic_ratio']:.0%} | {fmt(r)} |" for r in result["synthetic_ratio"]]
    return "\n".join(lines) + "\n"
