"""SID quality metrics as the seed defines them (section 4.1, Table 2).

* coverage_l{l}: distinct code prefixes of length l / width**l (joint path occupancy);
* purity_cate{c}: mean over distinct 3-code tuples of the share of the tuple's items that
  belong to its dominant level-c category;
* collision_p90/p99/p999: quantiles, over occupied tuples, of items per tuple (before the 4th code);
* balance_p25/p75/p90: quantiles, over all level-1 codes, of cluster size / (N / width)
  (also reported for levels 2 and 3 as balance_l2_*, balance_l3_*).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..io import save_figure


def coverage(codes: np.ndarray, width: int) -> dict[str, float]:
    return {f"coverage_l{lvl}": len(np.unique(codes[:, :lvl], axis=0)) / float(width) ** lvl
            for lvl in range(1, codes.shape[1] + 1)}


def _tuple_ids(codes: np.ndarray) -> np.ndarray:
    return np.unique(codes, axis=0, return_inverse=True)[1].ravel()


def purity(codes: np.ndarray, categories: pd.DataFrame) -> dict[str, float]:
    """``categories`` has columns cate1..cate3 (cumulative level keys; missing levels are their own class)."""
    tid = _tuple_ids(codes)
    out = {}
    for col in categories.columns:
        df = pd.DataFrame({"t": tid, "c": categories[col].fillna("<none>").to_numpy()})
        counts = df.groupby(["t", "c"]).size()
        dominant = counts.groupby(level=0).max()
        sizes = counts.groupby(level=0).sum()
        out[f"purity_{col}"] = float((dominant / sizes).mean())
    return out


def collisions(codes: np.ndarray) -> dict[str, float]:
    sizes = np.bincount(_tuple_ids(codes))
    q = np.quantile(sizes, [0.9, 0.99, 0.999], method="higher")
    return {"collision_p90": float(q[0]), "collision_p99": float(q[1]), "collision_p999": float(q[2]),
            "collision_max": float(sizes.max()), "unique_tuples": int(len(sizes))}


def load_balance(codes: np.ndarray, width: int) -> dict[str, float]:
    out = {}
    for lvl in range(codes.shape[1]):
        ratio = np.bincount(codes[:, lvl], minlength=width) / (len(codes) / width)
        q = np.quantile(ratio, [0.25, 0.75, 0.9])
        prefix = "balance" if lvl == 0 else f"balance_l{lvl + 1}"
        out.update({f"{prefix}_p25": float(q[0]), f"{prefix}_p75": float(q[1]), f"{prefix}_p90": float(q[2])})
    return out


def sid_metrics(codes: np.ndarray, width: int, categories: pd.DataFrame) -> dict[str, float]:
    return {**coverage(codes, width), **purity(codes, categories), **collisions(codes),
            **load_balance(codes, width)}


def plot_load_balance(results: dict[str, np.ndarray], width: int, path) -> None:
    """Sorted level-1 cluster sizes / uniform size, one line per version (closer to flat 1.0 is better)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for name, codes in results.items():
        ratio = np.sort(np.bincount(codes[:, 0], minlength=width) / (len(codes) / width))[::-1]
        ax.plot(np.linspace(0, 100, len(ratio)), ratio, label=name)
    ax.axhline(1.0, color="grey", lw=0.8, ls="--")
    ax.set(xlabel="level-1 codes, largest first (%)", ylabel="cluster size / uniform size",
           title="RQ-KMeans load balance (level 1)")
    ax.legend()
    fig.tight_layout()
    save_figure(fig, path, dpi=110)


def comparison_markdown(results: dict[str, dict], keys: list[str]) -> str:
    """Versions as columns, metrics as rows; integers stay integers, the rest 4 significant digits."""
    def fmt(v):
        if isinstance(v, (int, np.integer)) or (isinstance(v, float) and v.is_integer() and abs(v) >= 1):
            return str(int(v))
        return f"{v:.4g}" if isinstance(v, (float, np.floating)) else str(v)

    table = pd.DataFrame({name: {k: fmt(r.get(k)) for k in keys} for name, r in results.items()})
    return table.to_markdown(stralign="right", disable_numparse=True)
