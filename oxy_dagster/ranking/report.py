"""The unified-vs-separate comparison as a markdown table and a plot (AUC per scenario and task)."""

from __future__ import annotations

from pathlib import Path

from ..io import save_figure
from .model import TASKS


def auc_markdown(result: dict) -> str:
    lines = ["| scenario | task | unified AUC | per-scenario AUC | unified GAUC | per-scenario GAUC |",
             "|---|---|---:|---:|---:|---:|"]
    fmt = lambda v: "" if v is None else f"{v:.4f}"  # noqa: E731
    for scen, tasks in result["unified"].items():
        for task in TASKS:
            u, p = tasks.get(task, {}), result.get("per_scenario", {}).get(scen, {}).get(task, {})
            lines.append(f"| {scen} | {task} | {fmt(u.get('auc'))} | {fmt(p.get('auc'))} | {fmt(u.get('gauc'))} | "
                         f"{fmt(p.get('gauc'))} |")
    return "\n".join(lines) + "\n"


def plot_auc(result: dict, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scen = list(result["unified"])
    fig, axes = plt.subplots(1, len(TASKS), figsize=(12, 3.6), sharey=True)
    for ax, task in zip(axes, TASKS):
        for j, (name, key) in enumerate((("unified", "unified"), ("per scenario", "per_scenario"))):
            vals = [(result.get(key, {}).get(s, {}).get(task, {}).get("auc") or 0.0) for s in scen]
            ax.bar([i + j * 0.4 for i in range(len(scen))], vals, 0.4, label=name)
        ax.set_xticks([i + 0.2 for i in range(len(scen))], scen, rotation=30)
        ax.set(title=f"{task} AUC (held-out requests)", ylim=(0.4, 1.0))
    axes[0].legend()
    fig.tight_layout()
    return save_figure(fig, path)
