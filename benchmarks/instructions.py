"""Benchmark: slow thinking throughput and latency on the embedded stack.

* ``instructions_per_s``: validated user-intent instructions per second through the local llama.cpp
  server (SmolLM2-135M, 2 threads, no response cache), prompts built from the synthetic shop.
* ``event_to_store_p50_s`` / ``_p99_s``: a producer appends high-value events to the JSON-lines log at
  random moments while the near-line loop polls every ``--poll-s``; latency = store write time - event
  arrival. It includes the wait for the event's window to close, so it scales with ``--window-s``
  (the production window is 300 s; the benchmark uses a shorter one to fit in minutes).
* ``store_get_p99_ms``: random single-user reads from a real redis-server and from the SQLite store,
  each holding ``--users`` records with 384-d vectors.

Usage: ``python -m benchmarks.instructions [--prompts 40] [--window-s 60] [--stream-s 180]``.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from benchmarks.common import write_result
from oxy_dagster.infra.redis_server import RedisServer
from oxy_dagster.reasoning.llm import InstructionLLM, LLMConfig
from oxy_dagster.reasoning.nearline import FileEventLog, process_nearline
from oxy_dagster.reasoning.prompts import intent_prompt
from oxy_dagster.reasoning.server import LocalLLMServer
from oxy_dagster.reasoning.store import InstructionRecord, make_store
from oxy_dagster.sid.text import shared_text_encoder

TITLES = ["Thermal gloves", "Rain jacket", "Green tea gift box", "Running shoes", "Baby shampoo", "Desk lamp",
          "Wireless earbuds", "Moisturising cream", "Yoga mat", "Insulated bottle"]


def fake_history(rng: random.Random, n: int) -> list[dict]:
    return [{"timestamp": f"2025-11-{rng.randint(1, 28):02d} {rng.randint(8, 22):02d}:00",
             "behavior": rng.choice(["click", "click", "cart", "purchase"]), "title": rng.choice(TITLES)}
            for _ in range(n)]


def throughput(llm: InstructionLLM, n: int) -> dict:
    rng = random.Random(0)
    prompts = [intent_prompt(fake_history(rng, 8), fake_history(rng, 3)) for _ in range(n)]
    t0 = time.perf_counter()
    answers = llm.complete_many(prompts, progress="instructions")
    wall = time.perf_counter() - t0
    ok = sum(a is not None for a in answers)
    return {"instructions_per_s": round(ok / wall, 3), "requests_per_s": round(n / wall, 3),
            "valid_share": round(ok / n, 3), "prompts": n, **{f"llm_{k}": v for k, v in llm.stats.as_dict().items()}}


def nearline_latency(llm, work: Path, window_s: int, stream_s: float, poll_s: float) -> dict:
    log, store = FileEventLog(work / "events.jsonl"), make_store(f"sqlite:///{work / 'nl.db'}")
    encoder, lat, stop = shared_text_encoder(), [], threading.Event()

    def produce():
        rng = random.Random(1)
        end = time.time() + stream_s
        while time.time() < end:
            now = time.time()
            log.append([{"user_id": f"u{rng.randint(0, 30)}", "item_id": rng.choice(TITLES),
                         "behavior": rng.choice(["cart", "purchase"]), "ts": now, "arrived": now}])
            time.sleep(rng.expovariate(1 / 2.0))
        stop.set()

    producer = threading.Thread(target=produce)
    producer.start()
    deadline = time.time() + stream_s + 2 * window_s + 30
    while time.time() < deadline:
        stats = process_nearline(log, store, llm, encoder, {t: {"title": t} for t in TITLES}, window_s=window_s)
        lat += stats.get("latencies_s", [])
        if stop.is_set() and not log.read_from(store.get_cursor("nearline") or "0"):
            break
        time.sleep(poll_s)
    producer.join()
    return {"event_to_store_p50_s": round(float(np.percentile(lat, 50)), 2),
            "event_to_store_p99_s": round(float(np.percentile(lat, 99)), 2), "nearline_events": len(lat),
            "window_s": window_s, "poll_s": poll_s, "nearline_windows": len(store.windows())}


def store_reads(url: str, users: int, reads: int) -> float:
    store, rng = make_store(url), np.random.default_rng(0)
    vec = rng.normal(size=(users, 384)).astype(np.float32)
    for lo in range(0, users, 1000):
        store.put_many([InstructionRecord(f"u{i}", "Buy warm gloves", "cold week", vec[i], "v1", 0.0, "daily")
                        for i in range(lo, min(users, lo + 1000))])
    times = []
    for i in rng.integers(0, users, reads):
        t0 = time.perf_counter()
        assert store.get(f"u{i}") is not None
        times.append((time.perf_counter() - t0) * 1000)
    store.close()
    return round(float(np.percentile(times, 99)), 3)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--prompts", type=int, default=40)
    ap.add_argument("--window-s", type=int, default=60)
    ap.add_argument("--stream-s", type=float, default=180)
    ap.add_argument("--poll-s", type=float, default=2.0)
    ap.add_argument("--users", type=int, default=10_000)
    ap.add_argument("--reads", type=int, default=5_000)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="oxy-instr-bench-"))
    with RedisServer(appendonly=False) as redis_server:
        redis_url = redis_server.url
        reads = {"redis": store_reads(redis_url, args.users, args.reads),
                 "embedded": store_reads(f"sqlite:///{work / 'read.db'}", args.users, args.reads)}
    with LocalLLMServer(n_threads=2) as server:
        figures = throughput(InstructionLLM(LLMConfig(base_url=server.base_url, timeout_s=180)), args.prompts)
        cached = InstructionLLM(LLMConfig(base_url=server.base_url, timeout_s=180,
                                          cache_path=str(work / "cache.sqlite")))
        figures.update(nearline_latency(cached, work, args.window_s, args.stream_s, args.poll_s))
    figures.update({"store_get_p99_ms": reads, "model": "SmolLM2-135M-Instruct Q4_1 (llama.cpp, 2 threads)"})
    write_result("instructions", figures, {"prompts": args.prompts, "window_s": args.window_s,
                                           "users": args.users})
    print(figures)


if __name__ == "__main__":
    main()
