"""Benchmark: the one-hour Beauty model, an ensemble of generators, deployed as one bundle and served.

``benchmarks/beauty.py --members 3`` decodes three generators as one (``GeneratorEnsemble``). This exports
those members' checkpoints as one bundle (``oxy_dagster.serving.deploy.export``, format ``oxyrec-bundle/2``),
loads it as the service does (``load_bundle`` + ``Runtime``: the serving beam search, ``BeamDecoder``) and
sends every test user's request (history, scenario; the history filter on; beam 50, the benchmark's):

* ``served`` Recall@10 / NDCG@10 of the lists the service returns, beside the offline figures of the same
  members in ``benchmarks/results/<--against>.json`` (every test user, history filter on);
* ``same_top10``: for the first ``--check-users`` test users, the served top-10 equals offline beam search's;
* in-process latency at batch 1 (p50 / p99 ms, beam 50 and 256), the ensemble against its first member alone,
  and their ratio: what the extra members cost a request.

Usage: ``python -m benchmarks.serving_ensemble [--models-dir DIR] [--version V4-collaborative0.6]`` after the hour
run (its default ``--models-dir`` is where ``--models-dir`` of the README's hour command put the members).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from benchmarks.beauty_data import beauty_paths
from benchmarks.common import RESULTS, write_result
from benchmarks.serving import in_process
from oxy_dagster.model.evaluate import ranking_metrics
from oxy_dagster.model.fast_decoding import BeamDecoder
from oxy_dagster.model.trie import DenseTrie
from oxy_dagster.paths import work_dir
from oxy_dagster.serving.bundle import load_bundle
from oxy_dagster.serving.deploy import check_bundle, export, load_generators, sample_requests
from oxy_dagster.serving.runtime import Runtime

KEYS = ("recall@10", "ndcg@10")


def served_figures(runtime: Runtime, paths, rows: np.ndarray, target_ids: np.ndarray, beam: int,
                   batch: int = 64) -> dict:
    """Recall / NDCG at 10 of the service's lists for sample ``rows`` (requests as a caller sends them)."""
    pred = np.full((len(rows), 10), -1, dtype=np.int64)
    row_of = runtime.cat.row
    reqs = sample_requests(paths, rows, k=10, beam=beam, exclude_history=True, use_instruction=False)
    t0 = time.perf_counter()
    for i in tqdm(range(0, len(rows), batch), desc="served test users", mininterval=5):
        for j, res in enumerate(runtime.recommend(reqs[i:i + batch])):
            pred[i + j, :len(res.items)] = [row_of[x] for x in res.items]
    target = np.array([row_of.get(t, -2) for t in target_ids])
    m = ranking_metrics(pred, target, ks=(10,))
    return {**{k: round(float(m[k].mean()), 5) for k in KEYS}, "users": int(len(rows)),
            "wall_s": round(time.perf_counter() - t0, 1)}


def latency(model, trie, data, rows: np.ndarray) -> dict:
    decoder = BeamDecoder(model, DenseTrie.from_trie(trie))
    return {f"beam{b}": in_process(decoder, data, rows, b) for b in (50, 256)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--models-dir", default=None,
                    help="folder of member0, member1, ... (default: $OXY_HOME/bench/beauty-models-hour2/<version>)")
    ap.add_argument("--version", default="V4-collaborative0.6")
    ap.add_argument("--against", default="beauty-hour-v2",
                    help="the results JSON whose offline figures the served ones stand beside")
    ap.add_argument("--beam", type=int, default=50)
    ap.add_argument("--users", type=int, default=0, help="first N test users served (0: every one)")
    ap.add_argument("--check-users", type=int, default=300)
    ap.add_argument("--latency-users", type=int, default=200)
    args = ap.parse_args()
    torch.set_num_threads(2)
    paths = beauty_paths()
    root = Path(args.models_dir) if args.models_dir else work_dir() / "bench" / "beauty-models-hour2" / args.version
    dirs = sorted((d for d in root.glob("member*") if (d / "checkpoints").exists()), key=lambda d: int(d.name[6:]))
    if not dirs:
        raise SystemExit(f"no member*/checkpoints under {root}: run the hour of benchmarks/beauty.py --members first")
    against = json.loads((RESULTS / f"{args.against}.json").read_text())
    with tempfile.TemporaryDirectory(prefix="oxy-ensemble-") as tmp:
        bundle = export(paths, args.version, dirs, Path(tmp) / "bundle", {"chosen": f"{len(dirs)} members"})
        size_mb = sum(f.stat().st_size for f in bundle.iterdir()) / 2**20
        served = load_bundle(bundle)
        from oxy_dagster.sid.text import shared_text_encoder

        runtime = Runtime(served, store=None, text_encoder=shared_text_encoder())
        model, cat, data, trie = load_generators(paths, args.version, dirs)
        rows = data.split_rows("test", cat.pad)
        rows = rows[:args.users] if args.users else rows
        check = check_bundle(paths, args.version, dirs, bundle, args.check_users, args.beam, shared_text_encoder())
        print("check", check, flush=True)
        figures = served_figures(runtime, paths, rows, data.meta.target_item_id.to_numpy()[rows], args.beam)
        print("served", figures, flush=True)
        probe = np.random.default_rng(0).choice(rows, min(args.latency_users, len(rows)), replace=False)
        lat = {"ensemble": latency(model, trie, data, probe), "member0": latency(model.members[0], trie, data, probe)}
    lat["ratio_p50"] = {b: round(lat["ensemble"][b]["p50_ms"] / lat["member0"][b]["p50_ms"], 2)
                        for b in ("beam50", "beam256")}
    print("latency", lat, flush=True)
    offline = {k: against.get(k) for k in KEYS} | {"commit": against.get("commit"), "date": against.get("date")}
    record = {"members": len(dirs), "sid_version": args.version, "bundle_mb": round(size_mb, 1),
              "params": int(sum(p.numel() for p in model.parameters())), "beam": args.beam,
              "served": figures, f"offline_{args.against}": offline,
              "served_over_offline": {k: round(figures[k] / offline[k], 4) for k in KEYS if offline.get(k)},
              "same_top10": check["same_top10"], "checked_users": check["checked_users"], "latency": lat}
    path = write_result("serving_ensemble", record, {"version": args.version, "members": len(dirs),
                                                     "beam": args.beam})
    print(path.read_text())


if __name__ == "__main__":
    main()
