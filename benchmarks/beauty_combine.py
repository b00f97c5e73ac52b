"""Benchmark: how the hour's ensemble combines its members and ranks their candidates (issue #15, validation).

The hour's ensemble (``beauty.py --members 3``) is one joint beam over the members' mean log-softmax per code level
(a product of experts), its last-level items ranked by that beam's score + ``dense_mix`` x the members' mean dense
log-probability. Its test figures trail SASRec most on targets that are rare in training (``beauty_popularity``);
this asks whether another way of combining the same trained members ranks them better, with no training:

- ``beam``: the joint beam's items, ranked by its own (renormalised) score + mix x mean dense (mix 1.0: the committed
  ranking, ``COMMITTED``);
- ``product``: the union of the joint beam's items and each member's own beam's, ranked by the members' mean whole-path
  log-probability (``path_logp``) + mix x mean dense: the same product of experts, with the members' own proposals;
- ``mixture``: that union ranked by the log of the members' mean probability (path x dense^mix per member), a mixture
  of experts, which keeps an item one member likes;
- ``dense``: that union ranked by the members' mean dense log-probability alone.

``--dense-candidates N`` adds the members' mean dense head's N best items outside the history to the union (LIGER's
hybrid retrieval for the ensemble; the joint beam's ranking is unchanged by it).

(``beauty_dense_union`` measured the other decode-time knobs on the same kind of ensemble: the dense head's own top
items joined to the beam's, per-level weights, the dense head alone.)

Users: a seeded random sample of ``--split`` (default validation). A setting is chosen on the even-numbered users
(Recall@10 + NDCG@10, history filter on) and read on the odd ones against the committed ranking; every setting's
figures (filtered and ``plain``) and per-popularity-bucket recall with ``in_candidates`` (reach) are reported.
Writes benchmarks/results/<name>.json (a levers table ``benchmarks/beauty.py`` carries, + chart), logs to MLflow.

Usage: ``python -m benchmarks.beauty_combine --model-dirs DIR0,DIR1,DIR2``
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from benchmarks.beauty_data import add_workdir_argument, beauty_paths
from benchmarks.beauty_eval import KEYS, split_rows
from benchmarks.beauty_popularity import bucket_chart, split_figures
from benchmarks.common import RESULTS, write_result
from oxy_dagster.model.decoding import beam_search, encode_users, first_state, path_logp
from oxy_dagster.model.ensemble import GeneratorEnsemble, unique_rows
from oxy_dagster.model.generator import catalogue_mask, history_items
from oxy_dagster.model.pipeline import load_pretrained_many

MIXES = (0.5, 1.0, 2.0, 3.0)
SETTINGS = [(kind, m) for kind in ("beam", "product", "mixture") for m in MIXES] + [("dense", 1.0)]
COMMITTED = ("beam", 1.0)
NONE = 2**62  # sorts after every item row


def setting_name(s: tuple) -> str:
    return f"{s[0]}_mix{s[1]}"


@torch.no_grad()
def read_users(members: list, data, trie, rows: np.ndarray, beam: int, batch_size: int = 256,
               dense_candidates: int = 0) -> dict:
    """Per user: the union of the joint beam's items, each member's own beam's and the members' mean dense head's
    ``dense_candidates`` best items outside the history (valid items first), whether the joint beam holds each
    (``joint``) and its score there (``beam``), each member's per-level path log-probability (``levels``: users,
    items, members, levels) and dense log-probability (``dense``), and the history flag."""
    ens = GeneratorEnsemble(members)
    out = {k: [] for k in ("items", "joint", "beam", "levels", "dense", "seen")}
    for i in tqdm(range(0, len(rows), batch_size), desc="candidates", mininterval=10):
        batch = data.batch(rows[i:i + batch_size])
        hist = history_items(batch)
        enc = encode_users(ens, batch)  # the users encoded once, for the joint beam and each member
        encs = ens.split_encoding(enc)
        joint, gen = beam_search(ens, batch, trie, beam=beam, topk=beam + hist.shape[1], dense_mix=0.0, enc=enc,
                                 dense_candidates=0, dense_interleave=0.0)
        own = [beam_search(m, batch, trie, beam=beam, topk=beam, dense_mix=0.0, enc=e, dense_candidates=0,
                           dense_interleave=0.0)[0]
               for m, e in zip(members, encs)]
        dense_all = [m.dense_logp(first_state(m, e)) for m, e in zip(members, encs)]  # (users, catalogue) per member
        extra = []
        if dense_candidates:
            mean = torch.stack(dense_all).mean(0).masked_fill(catalogue_mask(hist, dense_all[0].shape[1]),
                                                              float("-inf"))
            extra = [mean.topk(min(dense_candidates, mean.shape[1]), dim=1).indices]
        items = unique_rows(torch.cat([joint, *own, *extra], 1))
        items = items.masked_fill(items < 0, NONE).sort(1).values  # valid items first, then cut to the widest row
        items = items[:, :int((items < NONE).sum(1).max())]
        items = items.masked_fill(items == NONE, -1)
        match = (items[:, :, None] == joint[:, None, :]) & (items >= 0)[..., None]
        out["joint"].append(match.any(-1))
        out["beam"].append(gen.gather(1, match.float().argmax(-1)).masked_fill(~match.any(-1), float("-inf")))
        out["levels"].append(torch.stack([path_logp(m, batch, items, enc=e, per_level=True)
                                          for m, e in zip(members, encs)], 2))
        out["dense"].append(torch.stack([d.gather(1, items.clamp(min=0)) for d in dense_all], 2))
        out["items"].append(items)
        out["seen"].append((items[:, :, None] == hist[:, None, :]).any(-1))
    width = max(t.shape[1] for t in out["items"])  # batches differ in width: pad each to the widest
    pad = {"items": -1, "joint": False, "beam": float("-inf"), "levels": 0.0, "dense": 0.0, "seen": False}
    return {k: torch.cat([_widen(t, width, pad[k]) for t in v]) for k, v in out.items()}


def _widen(t: torch.Tensor, width: int, value) -> torch.Tensor:
    return torch.cat([t, t.new_full((t.shape[0], width - t.shape[1], *t.shape[2:]), value)], 1)


def score(c: dict, setting: tuple) -> torch.Tensor:
    """Each candidate's score under ``setting`` (-inf: not a candidate of that setting)."""
    kind, mix = setting
    path, dense = c["levels"].sum(-1), c["dense"]  # (users, items, members)
    if kind == "beam":
        s = (c["beam"] + mix * dense.mean(-1)).masked_fill(~c["joint"], float("-inf"))
    elif kind == "dense":  # the members' mean dense head alone over the union
        s = dense.mean(-1)
    elif kind == "product":
        s = path.mean(-1) + mix * dense.mean(-1)
    else:
        s = torch.logsumexp(path + mix * dense, -1) - math.log(path.shape[-1])
    return s.masked_fill(c["items"] < 0, float("-inf"))


def ranked(c: dict, setting: tuple, exclude_history: bool, k: int = 20) -> np.ndarray:
    """The top ``k`` item rows per user under ``setting`` (-1: empty), without the history when ``exclude_history``."""
    s = score(c, setting)
    if exclude_history:
        s = s.masked_fill(c["seen"], float("-inf"))
    top, order = s.topk(min(k, s.shape[1]), dim=1)
    return c["items"].gather(1, order).masked_fill(~torch.isfinite(top), -1).numpy()


def read(c: dict, target: np.ndarray, counts: np.ndarray, setting: tuple, users=slice(None)) -> dict:
    """Figures (history filter on; ``plain``: off) of ``setting`` on ``users``, overall and by popularity bucket."""
    sub, t = {k: v[users] for k, v in c.items()}, target[users]
    reach = sub["items"].masked_fill(~torch.isfinite(score(sub, setting)), -1).numpy()
    out = split_figures(ranked(sub, setting, True), t, counts[t], reach)
    plain = split_figures(ranked(sub, setting, False), t, counts[t])
    return {**out, "plain": {k: plain[k] for k in KEYS}}


def plot(result: dict, path: Path) -> Path:
    names = dict.fromkeys((result["committed"], result["chosen"], "product_mix1.0", "mixture_mix1.0"))  # distinct
    return bucket_chart([(name, result["settings"][name]) for name in names],
                        f"Beauty, the hour's {result['members']} members: how their candidates are combined "
                        f"({result['split']})", path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    add_workdir_argument(ap)
    ap.add_argument("--version", default="V4-collaborative0.6-collaborative_shrink10")
    ap.add_argument("--model-dirs", required=True, help="comma-separated member directories (one ensemble)")
    ap.add_argument("--split", default="valid", choices=("valid", "test"))
    ap.add_argument("--rows", type=int, default=4096, help="seeded random users of the split (0: all)")
    ap.add_argument("--beam", type=int, default=50)
    ap.add_argument("--dense-candidates", type=int, default=0,
                    help="the members' mean dense head's N best items outside the history join the union (0: none)")
    ap.add_argument("--name", default="beauty_combine")
    args = ap.parse_args()
    members, cat, data, trie = load_pretrained_many(beauty_paths(args.workdir), args.version,
                                                    args.model_dirs.split(","))
    if any(m.cfg.dense_weight <= 0 for m in members):
        raise SystemExit("every member needs a dense head: the settings mix the members' dense log-probabilities")
    target_all = data.tensors["target"].numpy()
    train = (data.meta.split == "train").to_numpy() & (target_all < cat.pad)
    counts = np.bincount(target_all[train], minlength=cat.pad + 1)
    rows = split_rows(data, args.split, cat.pad, args.rows, sample=True)
    c = read_users(members, data, trie, rows, args.beam, dense_candidates=args.dense_candidates)
    target = target_all[rows]
    even = {s: read(c, target, counts, s, slice(0, None, 2)) for s in SETTINGS}
    chosen = max(SETTINGS, key=lambda s: even[s]["recall@10"] + even[s]["ndcg@10"])
    odd = {w: read(c, target, counts, s, slice(1, None, 2)) for w, s in (("committed", COMMITTED), ("chosen", chosen))}
    result = {"split": args.split, "rows": len(rows), "members": len(members), "beam": args.beam,
              "dense_candidates": args.dense_candidates,
              "version": args.version, "committed": setting_name(COMMITTED), "chosen": setting_name(chosen),
              "settings": {setting_name(s): read(c, target, counts, s) for s in SETTINGS},
              "odd_users": {**odd, "gain": {k: round(odd["chosen"][k] / odd["committed"][k], 3) for k in KEYS}},
              "mean_candidates": round(float((c["items"] >= 0).sum(1).float().mean()), 1),
              "mean_joint_candidates": round(float(c["joint"].sum(1).float().mean()), 1)}
    png = plot(result, RESULTS / f"{args.name}.png")
    write_result(args.name, result, {"version": args.version, "members": len(members), "rows": len(rows)},
                 artifacts=[png])
    print({k: result[k] for k in ("chosen", "odd_users", "mean_candidates")})


if __name__ == "__main__":
    main()
