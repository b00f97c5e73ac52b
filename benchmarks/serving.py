"""Benchmark: the recommendation service on Amazon Beauty's trained generator (V4, ``small``), one run.

* in-process decoding, batch 1, beam 256 and 512: p50 / p99 ms (``BeamDecoder`` on pre-built request tensors);
* HTTP end to end (``python -m oxy_dagster.serving`` on loopback, a separate load process), beam 256, 1 / 8 / 32
  closed-loop clients: qps, p50 / p99, errors; with micro-batching and without (``qps_unbatched``);
* the naive baseline in the same run: no KV cache, no batching, a per-beam callback masking the full
  vocabulary (``benchmarks/naive_decoding.py``); ``speedup_vs_naive`` = batched qps at 32 clients / naive qps;
* ``floor_ms``: FLOPs of one beam-256 request over the matmul rate measured here;
* beam sampling vs beam search: Recall@10 and distinct leaf categories in the top 10, test users;
* ``instruction_effect`` on the synthetic shop (``benchmarks/instruction_effect.py``).

Usage: ``python -m benchmarks.serving [--train-min 20]`` (after ``source scripts/env.sh``). The Beauty model is
the one ``benchmarks/beauty.py`` keeps under ``$OXY_HOME/bench/beauty-models/V4``; without one it trains one for
``--train-min`` minutes first.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import requests
import torch

from benchmarks.common import write_result
from oxy_dagster.model.checkpoint import latest_checkpoint
from oxy_dagster.model.evaluate import ranking_metrics
from oxy_dagster.model.fast_decoding import BeamDecoder, SampleConfig
from oxy_dagster.model.pipeline import load_pretrained
from oxy_dagster.model.trie import DenseTrie
from oxy_dagster.net import free_port
from oxy_dagster.paths import REPO_ROOT, DataPaths, work_dir
from oxy_dagster.reasoning.store import make_store
from oxy_dagster.serving.deploy import export, fill_histories

from .naive_decoding import naive_beam_search, prefix_allowed_fn


def percentiles(ms: list[float]) -> dict:
    return {"p50_ms": round(float(np.percentile(ms, 50)), 2), "p99_ms": round(float(np.percentile(ms, 99)), 2)}


def beauty_model(paths: DataPaths, train_min: float):
    from benchmarks.beauty import parser, train
    from benchmarks.beauty_data import prepare_data

    prepare_data(paths, None, ["V4"])
    out = work_dir() / "bench" / "beauty-models" / "V4"
    if latest_checkpoint(out / "checkpoints") is None:
        train(paths, "V4", out, parser().parse_args(["--budget-min", str(train_min)]))
    return out


def test_rows(data, n: int, seed: int = 0) -> np.ndarray:
    rows = np.flatnonzero((data.meta.split == "test").to_numpy())
    return np.random.default_rng(seed).choice(rows, size=min(n, len(rows)), replace=False)


def in_process(decoder: BeamDecoder, data, rows, beam: int) -> dict:
    for r in rows[:5]:  # warm-up
        decoder.decode(data.batch([r]), beam=beam, topk=10)
    ms = []
    for r in rows:
        batch = data.batch([r])
        t0 = time.perf_counter()
        decoder.decode(batch, beam=beam, topk=10)
        ms.append((time.perf_counter() - t0) * 1000)
    return percentiles(ms)


def batched_rate(decoder: BeamDecoder, data, rows, beam: int = 256) -> dict:
    """ms per request when 8 or 32 requests decode as one batch (what micro-batching reaches at best)."""
    out = {}
    for bs in (8, 32):
        batch = data.batch(rows[:bs])
        decoder.decode(batch, beam=beam, topk=10)
        t0 = time.perf_counter()
        for _ in range(3):
            decoder.decode(batch, beam=beam, topk=10)
        out[f"batch{bs}_ms_per_request"] = round((time.perf_counter() - t0) / 3 / bs * 1000, 2)
    return out


def naive(model, cat, data, rows, beam: int) -> dict:
    allowed, item_of = prefix_allowed_fn(cat.codes), {tuple(c): i for i, c in enumerate(cat.codes.tolist())}
    ms = []
    t0 = time.perf_counter()
    for r in rows:
        t = time.perf_counter()
        naive_beam_search(model, data.batch([r]), allowed, item_of, beam=beam, topk=10)
        ms.append((time.perf_counter() - t) * 1000)
    wall = time.perf_counter() - t0
    return {"beam256_p99_ms": percentiles(ms)["p99_ms"], "beam256_p50_ms": percentiles(ms)["p50_ms"],
            "qps_c32": round(len(rows) / wall, 2), "requests": len(rows),
            "note": "no batching: 32 concurrent clients are served one request at a time, so qps_c32 is its "
                    "sequential rate"}


def request_flops(cfg, n_codes: list[int], beam: int, memory_len: int, prefix_len: int) -> float:
    """Multiply-adds x 2 of one request: encoder once, then per level after the first one decoder token per beam."""
    d, dff, layers = cfg.d_model, cfg.d_ff, cfg.n_dec_layers
    enc = memory_len * cfg.n_enc_layers * (4 * d * d + 2 * memory_len * d + 2 * d * dff)
    per_beam_token = layers * (6 * d * d + 2 * (memory_len + prefix_len + len(n_codes)) * d + 2 * d * dff)
    heads = d * n_codes[0] + beam * d * sum(n_codes[1:])
    return 2.0 * (enc + beam * (len(n_codes) - 1) * per_beam_token + heads)


def matmul_gflops() -> float:
    rates = []
    for m in (256, 2048, 8192):
        a, b = torch.randn(m, 128), torch.randn(128, 512)
        for _ in range(3):
            a @ b
        t0, reps = time.perf_counter(), 20
        for _ in range(reps):
            a @ b
        rates.append(2 * m * 128 * 512 * reps / (time.perf_counter() - t0) / 1e9)
    return round(float(np.median(rates)), 1)


def serve(bundle: Path, store: str, max_batch: int, log: Path):
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "oxy_dagster.serving", "--bundle", str(bundle), "--store", store,
                             "--port", str(port), "--max-batch", str(max_batch), "--poll-s", "0"],
                            cwd=REPO_ROOT, stdout=open(log, "w"), stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    for _ in range(240):
        try:
            if requests.get(f"{url}/readyz", timeout=2).ok:
                return proc, url
        except requests.ConnectionError:
            time.sleep(0.5)
    raise RuntimeError(f"service did not start; see {log}")


def http_load(bundle: Path, store: str, bodies: list[dict], max_batch: int, tmp: Path) -> dict:
    proc, url = serve(bundle, store, max_batch, tmp / f"server-{max_batch}.log")
    (tmp / "bodies.json").write_text(json.dumps(bodies))
    out = {}
    try:
        for conc, n in ((1, 150), (8, 400), (32, 960)):
            run = subprocess.run([sys.executable, "-m", "benchmarks.serving_load", url, str(tmp / "bodies.json"),
                                  str(conc), str(n)], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
            out[f"c{conc}"] = json.loads(run.stdout)
            print(max_batch, out[f"c{conc}"], flush=True)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    return out


def sampling_tradeoff(decoder: BeamDecoder, cat, data, rows, beam: int) -> dict:
    """Recall@10 and distinct leaf categories in the top 10, beam search vs beam sampling."""
    configs = {"beam": None, "sample_t1.0": SampleConfig(1.0, 0, 1.0), "sample_t1.0_p0.9": SampleConfig(1.0, 0, 0.9),
               "sample_t1.5": SampleConfig(1.5, 0, 1.0), "sample_t2.0": SampleConfig(2.0, 0, 1.0)}
    target = data.tensors["target"].numpy()[rows]
    out = {}
    for name, sample in configs.items():
        preds = []
        for i in range(0, len(rows), 32):
            batch = data.batch(rows[i:i + 32])
            if sample is None:
                items, _ = decoder.decode(batch, beam=beam, topk=10)
            else:
                items, _ = decoder.decode(batch, beam=beam, topk=10, mode="sample",
                                          sample=SampleConfig(sample.temperature, sample.top_k, sample.top_p, seed=i))
            preds.append(items.numpy())
        pred = np.concatenate(preds)
        distinct = [len(set(cat.cate[p[p >= 0]].tolist())) for p in pred]
        out[name] = {"recall@10": round(float(ranking_metrics(pred, target, (10,))["recall@10"].mean()), 4),
                     "distinct_categories@10": round(float(np.mean(distinct)), 2),
                     "distinct_items_share": round(len(np.unique(pred[pred >= 0])) / len(cat.item_ids), 4)}
        print("sampling", beam, name, out[name], flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--train-min", type=float, default=20.0)
    ap.add_argument("--users", type=int, default=300, help="test users for the latency figures")
    ap.add_argument("--quality-users", type=int, default=2000, help="test users for the sampling trade-off")
    ap.add_argument("--skip-instructions", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(2)
    paths = DataPaths(work_dir() / "bench" / "beauty")
    out_dir = beauty_model(paths, args.train_min)
    model, cat, data, _ = load_pretrained(paths, "V4", out_dir=out_dir)
    from oxy_dagster.model.trie import CodeTrie

    decoder = BeamDecoder(model, DenseTrie.from_trie(CodeTrie.build(cat.codes, list(model.cfg.code_vocab))))
    rows = test_rows(data, args.users)
    figures: dict = {"model": {"params": int(sum(p.numel() for p in model.parameters())), "items": len(cat.item_ids),
                               "code_vocab": list(model.cfg.code_vocab), "checkpoint": str(out_dir)}}
    figures["in_process"] = {f"beam{b}": in_process(decoder, data, rows, b) for b in (256, 512)}
    figures["in_process_batched"] = batched_rate(decoder, data, rows)
    print("in-process", figures["in_process"], figures["in_process_batched"], flush=True)
    compiled = BeamDecoder(model, decoder.trie, compile=True)
    t0 = time.perf_counter()
    for b in (256, 512):
        compiled.decode(data.batch(rows[:1]), beam=b, topk=10)
    figures["in_process_compiled"] = {f"beam{b}": in_process(compiled, data, rows, b) for b in (256, 512)}
    figures["in_process_compiled"]["compile_s"] = round(time.perf_counter() - t0, 1)
    print("compiled", figures["in_process_compiled"], flush=True)
    figures["naive"] = naive(model, cat, data, rows[:40], 256)
    print("naive", figures["naive"], flush=True)
    flops = request_flops(model.cfg, list(model.cfg.code_vocab), 256, 1 + model.cfg.max_short + model.cfg.igr_k, 3)
    rate = matmul_gflops()
    figures["floor"] = {"gflop_per_request_beam256": round(flops / 1e9, 3), "matmul_gflops": rate}
    figures["floor_ms"] = round(flops / (rate * 1e9) * 1000, 2)
    with tempfile.TemporaryDirectory(prefix="oxy-serving-") as tmp:
        tmp = Path(tmp)
        bundle = export(paths, "V4", [out_dir], tmp / "bundle", {"chosen": "pretrained (benchmarks/beauty.py)"})
        store = f"sqlite:///{tmp / 'users.db'}"
        s = make_store(store)
        fill_histories(s, paths, 300)
        s.close()
        users = data.meta.user_id.to_numpy()[rows]
        bodies = [{"user_id": u, "scenario": "homepage", "k": 10, "beam": 256} for u in users]
        batched = http_load(bundle, store, bodies, 32, tmp)
        unbatched = http_load(bundle, store, bodies, 1, tmp)
    figures["http"] = {k: {**v, "qps_unbatched": unbatched[k]["qps"], "p99_ms_unbatched": unbatched[k]["p99_ms"],
                           "errors_unbatched": unbatched[k]["errors"]} for k, v in batched.items()}
    figures["speedup_vs_naive"] = round(figures["http"]["c32"]["qps"] / figures["naive"]["qps_c32"], 1)
    qrows = test_rows(data, args.quality_users, seed=1)
    figures["beam_sample"] = {f"beam{b}": sampling_tradeoff(decoder, cat, data, qrows, b) for b in (256, 20)}
    if not args.skip_instructions:
        from benchmarks.instruction_effect import measure

        figures["instruction_effect"] = measure()
    goals = {"beam256_p99_ms<=12": figures["in_process"]["beam256"]["p99_ms"] <= 12,
             "beam512_p99_ms<=25": figures["in_process"]["beam512"]["p99_ms"] <= 25,
             "c32_qps>=80": figures["http"]["c32"]["qps"] >= 80, "c32_errors==0": figures["http"]["c32"]["errors"] == 0,
             "speedup_vs_naive>=5": figures["speedup_vs_naive"] >= 5}
    figures["goals_met"] = goals
    path = write_result("serving", figures, {"dataset": "beauty", "sid_version": "V4", "size": "small"})
    print(path.read_text())


if __name__ == "__main__":
    main()
