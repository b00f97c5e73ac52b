"""The seed's ablations on one dataset: Tables 5 (placement), 6 (components), 7 (IGR / Q2I), 9 (trigger
masking) and a slice of Tables 3-4 (scale). Each distinct configuration trains from scratch once per seed
with the same data and step budget, and is evaluated on the held-out split with the same beam; with more
than one seed a row holds the mean over seeds and, under ``<metric>_std``, their standard deviation."""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..io import write_text
from ..paths import DataPaths
from ..settings import setting
from ..sid.versions import DEFAULT_VERSION
from .config import COMPONENTS, PLACEMENTS, TrainConfig
from .evaluate import evaluate
from .pipeline import pretrain

DEFAULT = {"size": "small", "placement": "right_bos", "components": "fused", "use_igr": True, "q2i_weight": 0.1}

TABLES: dict[str, dict[str, dict]] = {
    "table5_placement": {p: {"placement": p} for p in PLACEMENTS},
    "table6_components": {c: {"components": c} for c in COMPONENTS},
    "table7_igr_q2i": {"no IGR (recent long items), no Q2I": {"use_igr": False, "q2i_weight": 0.0},
                       "IGR, no Q2I": {"use_igr": True, "q2i_weight": 0.0},
                       "IGR + Q2I": {"use_igr": True, "q2i_weight": 0.1}},
    "table3_scale": {s: {"size": s} for s in ("tiny", "small", "small-moe")},
}
REPORTED = ("hr@1", "hr@10", "recall@10", "recall@20", "ndcg@10", "search/recall@10")


@dataclass
class AblationConfig:
    sid_version: str = setting(DEFAULT_VERSION, "SID codebook version the configurations train on")
    steps: int = setting(250, "training steps per configuration")
    batch_size: int = setting(256, "batch size")
    lr: float = setting(2e-3, "peak learning rate")
    seed: int = setting(0, "first seed")
    n_seeds: int = setting(1, "seeds per configuration (seed, seed + 1, ...): rows hold mean and std")
    beam: int = setting(30, "beam width of the evaluation")
    eval_rows: int = setting(1000, "held-out users evaluated per configuration")
    split: str = setting("test", "held-out split")


def _key(cfg: dict) -> str:
    return "-".join(f"{k}={cfg[k]}" for k in sorted(cfg))


def run_ablations(paths: DataPaths, acfg: AblationConfig, tables: list[str] | None = None, log=None) -> dict:
    """Returns {"rows": [...], "trigger_masking": {...}}; every distinct configuration trains once per seed."""
    trained: dict[str, dict] = {}
    default_model = None
    rows = []
    for table in tables or list(TABLES):
        for variant, override in TABLES[table].items():
            cfg = {**DEFAULT, **override}
            key = _key(cfg)
            if key not in trained:
                runs = []
                for seed in range(acfg.seed, acfg.seed + acfg.n_seeds):
                    model, cat, data, trie, r = _train_eval(paths, acfg, cfg, key, seed)
                    runs.append(r)
                    if key == _key(DEFAULT) and seed == acfg.seed:
                        default_model = (model, cat, data, trie, r)
                trained[key] = _mean_std(runs)
            r = trained[key]
            row = {"table": table, "variant": variant, "params": r["params"], "final_loss": r["final_loss"],
                   "seeds": acfg.n_seeds, **{m: r.get(m) for m in REPORTED},
                   **({f"{m}_std": r.get(f"{m}_std") for m in REPORTED} if acfg.n_seeds > 1 else {})}
            rows.append(row)
            if log:
                log(row)
    # Table 9: replace the real trigger with the default embedding at inference, same model (the first seed's).
    masking = {}
    if default_model is not None:
        model, cat, data, trie, default = default_model
        masked = evaluate(model, data, trie, cat.codes, split=acfg.split, beam=acfg.beam, ks=(1, 5, 10, 20),
                          max_rows=acfg.eval_rows, progress=False, mask_trigger=True)
        for scen in ("channel", "related", "cart"):
            masking[scen] = {"correct_trigger_recall@10": default.get(f"{scen}/recall@10"),
                             "masked_trigger_recall@10": masked.get(f"{scen}/recall@10")}
    return {"config": asdict(acfg), "rows": rows, "trigger_masking": masking}


def _train_eval(paths: DataPaths, acfg: AblationConfig, cfg: dict, key: str, seed: int):
    out_dir = paths.root / "models" / "ablations" / f"{key}-seed={seed}".replace("=", "_").replace(" ", "")
    shutil.rmtree(out_dir, ignore_errors=True)  # never resume a checkpoint of an earlier budget
    tcfg = TrainConfig(steps=acfg.steps, batch_size=acfg.batch_size, lr=acfg.lr, seed=seed, log_every=50,
                       engine="torch")
    model_kw = {k: v for k, v in cfg.items() if k != "size"}
    # the trained model is evaluated in memory: no second load of the catalogue and samples
    info, model, cat, data, trie = pretrain(paths, acfg.sid_version, cfg["size"], tcfg, out_dir=out_dir,
                                            **model_kw)
    metrics = evaluate(model, data, trie, cat.codes, split=acfg.split, beam=acfg.beam, ks=(1, 5, 10, 20),
                       max_rows=acfg.eval_rows, progress=False)
    return model, cat, data, trie, {"params": info["params"], "final_loss": info["final_loss"], **metrics}


def _mean_std(runs: list[dict]) -> dict:
    """Mean of every numeric figure over the seeds' runs, plus ``<key>_std`` (population) when there are several."""
    out = dict(runs[0])
    for k, v in runs[0].items():
        if isinstance(v, (int, float)) and not isinstance(v, bool) and all(k in r for r in runs):
            vals = np.array([r[k] for r in runs], dtype=float)
            out[k] = v if (vals == vals[0]).all() else float(vals.mean())  # an int stays an int (params)
            if len(runs) > 1:
                out[f"{k}_std"] = float(vals.std())
    return out


def ablation_markdown(result: dict) -> str:
    lines = []
    for table in dict.fromkeys(r["table"] for r in result["rows"]):
        lines += [f"**{table}**", "", "| variant | " + " | ".join(REPORTED) + " |",
                  "|---|" + "---:|" * len(REPORTED)]
        for r in (r for r in result["rows"] if r["table"] == table):
            vals = " | ".join(_cell(r, m) for m in REPORTED)
            lines.append(f"| {r['variant']} | {vals} |")
        lines.append("")
    if result["trigger_masking"]:
        lines += ["**table9_trigger_masking** (recall@10)", "", "| scenario | correct trigger | masked (default) |",
                  "|---|---:|---:|"]
        for scen, m in result["trigger_masking"].items():
            lines.append(f"| {scen} | {m['correct_trigger_recall@10']:.4f} | {m['masked_trigger_recall@10']:.4f} |")
    return "\n".join(lines) + "\n"


def _cell(row: dict, metric: str) -> str:
    v, sd = row.get(metric), row.get(f"{metric}_std")
    if v is None or np.isnan(v):
        return ""
    return f"{v:.4f} ± {sd:.4f}" if sd is not None else f"{v:.4f}"


def save(result: dict, path: str | Path) -> None:
    write_text(path, json.dumps(result, indent=2, default=float))
