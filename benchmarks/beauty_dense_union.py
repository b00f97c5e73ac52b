"""Benchmark: is the hour ensemble's miss in what its beam proposes or in how it ranks it? (issue #15, validation only)

The one-hour members (``benchmarks/beauty.py --members 3``, dense heads on) are read on a seeded sample of
validation users four ways, every list without the user's history items (and ``plain``, without the filter):

* ``beam``: the joint beam's 50 best non-history items ranked by generation log-probability + mix x the members' mean
  dense log-probability (the hour's ranking at mix 1.0), for each mix in ``MIXES``;
* ``dense_all``: the members' mean dense head alone over the whole catalogue (SASRec's kind of ranking);
* ``union``: the beam's 50 and the dense head's 50 best items together, each scored by the members' mean
  teacher-forced path log-probability (``decoding.path_logp``: what the beam gives an item it keeps, for any item)
  + mix x the mean dense log-probability, for each mix;
* ``coverage``: the share of users whose target is among the beam's 50, the dense head's 50, and their union.

No training and no test user: a choice made here is made on validation. Writes
benchmarks/results/beauty_dense_union.json (+ chart) and logs it to MLflow.

Usage: ``python -m benchmarks.beauty_dense_union [--rows 3000] [--members-dir DIR]``
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import torch
from tqdm import tqdm

from benchmarks.beauty_data import add_workdir_argument, beauty_paths
from benchmarks.beauty_eval import candidates, split_rows
from benchmarks.common import RESULTS, write_result
from oxy_dagster.io import save_figure
from oxy_dagster.model.decoding import encode_users, first_state, path_logp
from oxy_dagster.model.ensemble import GeneratorEnsemble, unique_rows
from oxy_dagster.model.evaluate import history_items, ranking_metrics
from oxy_dagster.paths import work_dir as oxy_home

MIXES = (0.0, 0.5, 1.0, 2.0)
TOP = 50  # items each source proposes
LEVEL_WEIGHTS = (0.0, 0.5, 1.0, 1.5)


def figures(items: torch.Tensor, score: torch.Tensor, seen: torch.Tensor, target, exclude: bool) -> dict:
    """Recall / NDCG at 10 of ``items`` ranked by ``score`` (-inf: no item), history items dropped when ``exclude``."""
    score = score.masked_fill(items < 0, float("-inf"))
    if exclude:
        score = score.masked_fill(seen, float("-inf"))
    top, order = score.topk(20, dim=1)
    pred = items.gather(1, order).masked_fill(~torch.isfinite(top), -1).numpy()
    m = ranking_metrics(pred, target)
    return {k: round(float(m[k].mean()), 5) for k in ("recall@10", "ndcg@10")}


@torch.no_grad()
def read_users(members: list, data, trie, rows, batch_size: int = 128) -> dict:
    """Per user: the joint beam's candidates, the dense head's top items, and both sources' union scored by every
    member (generation path log-probability and dense log-probability, member means)."""
    ens = GeneratorEnsemble(members).eval()
    c = candidates(ens, data, trie, rows, TOP)
    gen_only = [replace(m.cfg, dense_mix=0.0) for m in members]
    out = {"beam_top": [], "dense_top": [], "union": [], "u_levels": [], "u_dense": [], "hist": []}
    for i in tqdm(range(0, len(rows), batch_size), desc="dense and union", mininterval=5):
        batch = data.batch(rows[i:i + batch_size])
        hist = history_items(batch)
        encs = [encode_users(m, batch) for m in members]
        dense = torch.stack([m.dense_logp(first_state(m, e)) for m, e in zip(members, encs)]).mean(0)
        seen = torch.zeros_like(dense, dtype=torch.bool)
        known = hist < ens.pad_item
        seen[torch.arange(len(hist))[:, None].expand_as(hist)[known], hist[known]] = True
        dense_top = dense.masked_fill(seen, float("-inf")).topk(TOP, dim=1).indices  # non-history items
        beam_items = c["items"][i:i + batch_size]
        drop = c["seen"][i:i + batch_size] | (beam_items < 0)
        beam_score = (c["gen"] + c["dense"])[i:i + batch_size].masked_fill(drop, float("-inf"))
        beam_top = beam_items.gather(1, beam_score.topk(TOP, dim=1).indices)  # the hour's ranking, non-history
        union = unique_rows(torch.cat([beam_top, dense_top], 1))
        gens = []
        for m, e, cfg in zip(members, encs, gen_only):
            saved, m.cfg = m.cfg, cfg
            gens.append(path_logp(m, batch, union, enc=e, per_level=True))
            m.cfg = saved
        out["beam_top"].append(beam_top)
        out["dense_top"].append(dense_top)
        out["union"].append(union)
        out["u_levels"].append(torch.stack(gens).mean(0))  # (users, C, levels): members' mean per code level
        out["u_dense"].append(dense.gather(1, union.clamp(min=0)))
        out["hist"].append(hist)
    width = max(h.shape[1] for h in out["hist"])
    return {"beam": c, **{k: torch.cat(v) for k, v in out.items() if k != "hist"},
            "hist": torch.cat([torch.nn.functional.pad(h, (0, width - h.shape[1]), value=ens.pad_item)
                               for h in out["hist"]])}


def level_weights(r: dict, target, seen) -> dict:
    """Each code level's log-probability weighted in the union's ranking (the first level's weight and the last,
    collision level's, others 1), with each mix: chosen on the even-numbered sampled users, read on the odd ones."""
    levels = r["u_levels"].shape[-1]
    grid = {}
    for first in LEVEL_WEIGHTS:
        for last in LEVEL_WEIGHTS:
            w = torch.ones(levels)
            w[0], w[-1] = first, last
            for mix in MIXES[1:]:
                grid[f"first {first} last {last} mix {mix}"] = (r["u_levels"] * w).sum(-1) + mix * r["u_dense"]
    halves = {h: slice(h, None, 2) for h in (0, 1)}

    def read(score, half):
        sl = halves[half]
        return figures(r["union"][sl], score[sl], seen[sl], target[sl], True)

    chosen_on = {k: read(v, 0) for k, v in grid.items()}
    best = max(chosen_on, key=lambda k: chosen_on[k]["recall@10"] + chosen_on[k]["ndcg@10"])
    default = "first 1.0 last 1.0 mix 1.0"
    return {"grid_even_users": chosen_on, "chosen": best,
            "odd_users": {"chosen": read(grid[best], 1), "default": read(grid[default], 1)}}


def plot(result: dict, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [f"beam mix {m}" for m in MIXES] + ["dense alone"] + [f"union mix {m}" for m in MIXES]
    values = [result["beam"][str(m)]["recall@10"] for m in MIXES] + [result["dense_all"]["recall@10"]] + \
             [result["union"][str(m)]["recall@10"] for m in MIXES]
    fig, ax = plt.subplots(figsize=(8, 3.6))
    ax.bar(range(len(names)), values)
    ax.set_xticks(range(len(names)), names, rotation=25, ha="right", fontsize=8)
    ax.set(ylabel="validation Recall@10 (history excluded)", title="Beauty hour ensemble: beam, dense head, union")
    fig.tight_layout()
    return save_figure(fig, path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rows", type=int, default=3000, help="seeded random validation users")
    ap.add_argument("--version", default="V4-collaborative0.6")
    ap.add_argument("--members-dir", default=None, help="default: $OXY_HOME/bench/beauty-models-hour2/<version>")
    ap.add_argument("--name", default="beauty_dense_union", help="results name (benchmarks/results/<name>.json)")
    add_workdir_argument(ap)
    args = ap.parse_args()
    from oxy_dagster.model.pipeline import load_pretrained_many

    paths = beauty_paths(args.workdir)
    root = Path(args.members_dir) if args.members_dir else oxy_home() / "bench" / "beauty-models-hour2" / args.version
    dirs = sorted(root.glob("member*"))
    if not dirs:
        raise SystemExit(f"no member* under {root}: run benchmarks/beauty.py --members 3 first")
    members, _, data, trie = load_pretrained_many(paths, args.version, dirs)
    if any(m.cfg.dense_weight <= 0 for m in members):
        raise SystemExit(f"the members under {root} have no dense head")
    rows = split_rows(data, "valid", members[0].pad_item, args.rows, sample=True)
    target = data.tensors["target"].numpy()[rows]
    r = read_users(members, data, trie, rows)
    r["u_gen"] = r["u_levels"].sum(-1).masked_fill(r["union"] < 0, float("-inf"))
    b, t = r["beam"], torch.as_tensor(target)
    union_seen = (r["union"][:, :, None] == r["hist"][:, None, :]).any(-1)
    result = {"split": "valid", "rows": len(rows), "version": args.version, "members": len(members), "top": TOP,
              "beam": {str(m): {**figures(b["items"], b["gen"] + m * b["dense"], b["seen"], target, True),
                                "plain": figures(b["items"], b["gen"] + m * b["dense"], b["seen"], target, False)}
                       for m in MIXES},
              "dense_all": figures(r["dense_top"], -torch.arange(TOP).float().expand(len(rows), TOP),
                                   torch.zeros_like(r["dense_top"], dtype=torch.bool), target, True),
              "union": {str(m): figures(r["union"], r["u_gen"] + m * r["u_dense"], union_seen, target, True)
                        for m in MIXES}}
    in_beam, in_dense = (r["beam_top"] == t[:, None]).any(1), (r["dense_top"] == t[:, None]).any(1)
    result["coverage"] = {"beam": round(float(in_beam.float().mean()), 4),
                          "dense": round(float(in_dense.float().mean()), 4),
                          "union": round(float((in_beam | in_dense).float().mean()), 4)}
    result["union_gain"] = {k: round(result["union"]["1.0"][k] / result["beam"]["1.0"][k], 3)
                            for k in ("recall@10", "ndcg@10")}
    result["level_weights"] = level_weights(r, target, union_seen)
    png = plot(result, RESULTS / f"{args.name}.png")
    write_result(args.name, result, {"version": args.version, "rows": len(rows)}, artifacts=[png])
    print(result)


if __name__ == "__main__":
    main()
