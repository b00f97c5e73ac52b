"""The seed's ablations on one dataset: Tables 5 (placement), 6 (components), 7 (IGR / Q2I), 9 (trigger
masking) and a slice of Tables 3-4 (scale). Each distinct configuration trains once from scratch with the
same seed, data and step budget, and is evaluated on the held-out split with the same beam."""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..data.pipeline import DataPaths
from .config import COMPONENTS, PLACEMENTS
from .evaluate import evaluate
from .pipeline import pretrain
from .train import TrainConfig

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
    sid_version: str = "V3"
    steps: int = 250
    batch_size: int = 256
    lr: float = 2e-3
    seed: int = 0
    beam: int = 30
    eval_rows: int = 1000
    split: str = "test"


def _key(cfg: dict) -> str:
    return "-".join(f"{k}={cfg[k]}" for k in sorted(cfg))


def run_ablations(paths: DataPaths, acfg: AblationConfig, tables: list[str] | None = None, log=None) -> dict:
    """Returns {"rows": [...], "trigger_masking": {...}}; every distinct configuration trains once."""
    trained: dict[str, dict] = {}
    default_model = None
    rows = []
    for table in tables or list(TABLES):
        for variant, override in TABLES[table].items():
            cfg = {**DEFAULT, **override}
            key = _key(cfg)
            if key not in trained:
                out_dir = paths.root / "models" / "ablations" / key.replace("=", "_").replace(" ", "")
                shutil.rmtree(out_dir, ignore_errors=True)  # never resume a checkpoint of an earlier budget
                tcfg = TrainConfig(steps=acfg.steps, batch_size=acfg.batch_size, lr=acfg.lr, seed=acfg.seed,
                                   log_every=50)
                model_kw = {k: v for k, v in cfg.items() if k != "size"}
                # the trained model is evaluated in memory: no second load of the catalogue and samples
                info, model, cat, data, trie = pretrain(paths, acfg.sid_version, cfg["size"], tcfg,
                                                        out_dir=out_dir, **model_kw)
                if key == _key(DEFAULT):
                    default_model = (model, cat, data, trie)
                metrics = evaluate(model, data, trie, cat.codes, split=acfg.split, beam=acfg.beam,
                                   ks=(1, 5, 10, 20), max_rows=acfg.eval_rows, progress=False)
                trained[key] = {"params": info["params"], "final_loss": info["final_loss"], **metrics}
            r = trained[key]
            row = {"table": table, "variant": variant, "params": r["params"], "final_loss": r["final_loss"],
                   **{m: r.get(m) for m in REPORTED}}
            rows.append(row)
            if log:
                log(row)
    # Table 9: replace the real trigger with the default embedding at inference, same model.
    default = trained.get(_key(DEFAULT))
    masking = {}
    if default_model is not None:
        model, cat, data, trie = default_model
        masked = evaluate(model, data, trie, cat.codes, split=acfg.split, beam=acfg.beam, ks=(1, 5, 10, 20),
                          max_rows=acfg.eval_rows, progress=False, mask_trigger=True)
        for scen in ("channel", "related", "cart"):
            masking[scen] = {"correct_trigger_recall@10": default.get(f"{scen}/recall@10"),
                             "masked_trigger_recall@10": masked.get(f"{scen}/recall@10")}
    return {"config": asdict(acfg), "rows": rows, "trigger_masking": masking}


def ablation_markdown(result: dict) -> str:
    lines = []
    for table in dict.fromkeys(r["table"] for r in result["rows"]):
        lines += [f"**{table}**", "", "| variant | " + " | ".join(REPORTED) + " |",
                  "|---|" + "---:|" * len(REPORTED)]
        for r in (r for r in result["rows"] if r["table"] == table):
            vals = " | ".join("" if r[m] is None or np.isnan(r[m]) else f"{r[m]:.4f}" for m in REPORTED)
            lines.append(f"| {r['variant']} | {vals} |")
        lines.append("")
    if result["trigger_masking"]:
        lines += ["**table9_trigger_masking** (recall@10)", "", "| scenario | correct trigger | masked (default) |",
                  "|---|---:|---:|"]
        for scen, m in result["trigger_masking"].items():
            lines.append(f"| {scen} | {m['correct_trigger_recall@10']:.4f} | {m['masked_trigger_recall@10']:.4f} |")
    return "\n".join(lines) + "\n"


def save(result: dict, path: str | Path) -> None:
    Path(path).write_text(json.dumps(result, indent=2, default=float))
