"""Near-line instruction updates: high-value events -> 5-minute windows -> one instruction per user per window.

The event source is append-only: a local JSON-lines log (the embedded default,
cursor = byte offset) or a Redis stream (production, cursor = stream id).
``process_nearline`` reads from the store's committed cursor, consumes events
up to the first one whose window is still open, and regenerates one instruction
per (user, closed window) from that window's high-value events (search, cart,
purchase), in batches of windows: each batch's instructions and the cursor after
it are written in one store transaction. A crash (of the pass or of the store)
loses at most the batch in flight, which the next pass redoes: the LLM cache
returns the same answers and the store upserts (user, window), so nothing is
lost and nothing is duplicated.
"""

from __future__ import annotations

import json
import os
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from .intents import HIGH_VALUE
from .prompts import intent_prompt
from .store import InstructionRecord

CURSOR = "nearline"


class FileEventLog:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.touch(exist_ok=True)
        self.start = "0"

    def append(self, events: list[dict]) -> None:
        with open(self.path, "a") as f:
            for e in events:
                f.write(json.dumps(e) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def read_from(self, cursor: str, limit: int = 100_000) -> list[tuple[str, dict]]:
        out = []
        with open(self.path, "rb") as f:
            f.seek(int(cursor))
            for line in f:
                if not line.endswith(b"\n") or len(out) >= limit:
                    break  # a line still being written, or enough for one pass
                out.append((str(f.tell()), json.loads(line)))
        return out


class RedisEventStream:
    def __init__(self, url: str, stream: str = "oxy:events"):
        import redis

        self.r, self.stream, self.start = redis.Redis.from_url(url), stream, "0-0"

    def append(self, events: list[dict]) -> None:
        pipe = self.r.pipeline()
        for e in events:
            pipe.xadd(self.stream, {"event": json.dumps(e)})
        pipe.execute()

    def read_from(self, cursor: str, limit: int = 100_000) -> list[tuple[str, dict]]:
        entries = self.r.xrange(self.stream, min=f"({cursor}" if cursor != "0-0" else "-", count=limit)
        return [(eid.decode(), json.loads(fields[b"event"])) for eid, fields in entries]


def make_event_source(url: str):
    if url.startswith(("redis://", "rediss://")):
        return RedisEventStream(url)
    return FileEventLog(url[len("file://"):] if url.startswith("file://") else url)


def is_high_value(e: dict) -> bool:
    return e.get("behavior") in HIGH_VALUE or e.get("scenario") == "search" or bool(e.get("query"))


def closed_prefix(entries: list[tuple[str, dict]], now: float, window_s: int) -> list[tuple[str, dict]]:
    """Entries up to (not including) the first whose window has not ended by ``now``."""
    out = []
    for pos, e in entries:
        if (e["ts"] // window_s) * window_s + window_s > now:
            break
        out.append((pos, e))
    return out


def process_nearline(source, store, llm, encoder, titles: dict | None = None, now: float | None = None,
                     window_s: int = 300, version: str = "cri-nearline-v1", batch_windows: int = 64) -> dict:
    """Consume every closed window after the committed cursor, in batches of about ``batch_windows`` windows;
    each batch's instructions and the cursor after it are written in one transaction."""
    cursor, entries = _ready(source, store, now, window_s)
    totals = {"events": 0, "windows": 0, "written": 0, "failed": 0, "cursor": cursor, "latencies_s": []}
    for batch in _batches(entries, window_s, batch_windows):
        out = _process_batch(batch, store, llm, encoder, titles, window_s, version)
        if out.get("retry"):  # the LLM is down or only returned garbage: keep the cursor, retry next time
            return {**totals, "windows": totals["windows"] + out["windows"], "failed": totals["failed"] + out["failed"],
                    "retry": True}
        for k in ("events", "windows", "written", "failed", "latencies_s"):
            totals[k] += out[k]
        totals["cursor"] = out["cursor"]
    return totals


def _batches(entries: list[tuple[str, dict]], window_s: int, batch_windows: int):
    """Consecutive runs of entries, cut only where the window changes, each with >= ``batch_windows`` windows
    (the last may have fewer), so one (user, window) is never split between two commits of in-order events."""
    start, seen = 0, set()
    for i, (_, e) in enumerate(entries):
        w = int(e["ts"] // window_s)
        if len(seen) >= batch_windows and w not in seen:
            yield entries[start:i]
            start, seen = i, set()
        seen.add(w)
    if start < len(entries):
        yield entries[start:]


def _process_batch(entries, store, llm, encoder, titles, window_s: int, version: str) -> dict:
    groups: dict[tuple[str, int], list[dict]] = defaultdict(list)
    for _, e in entries:
        if is_high_value(e):
            groups[(e["user_id"], int(e["ts"] // window_s * window_s))].append(e)
    keys = sorted(groups)
    prompts = []
    for k in keys:
        evs = [{"timestamp": time.strftime("%Y-%m-%d %H:%M", time.gmtime(e["ts"])), "behavior": e.get("behavior"),
                "query": e.get("query"), **(titles or {}).get(e.get("item_id"), {"title": e.get("item_id")})}
               for e in groups[k]]
        prompts.append(intent_prompt([], evs))
    answers = llm.complete_many(prompts) if prompts else []
    ok = [(k, a) for k, a in zip(keys, answers) if a]
    if prompts and not ok:
        return {"windows": len(keys), "failed": len(keys), "retry": True}
    vectors = encoder.encode([a["instruction"] for _, a in ok], progress=False) if ok else np.zeros((0, 384))
    written_at = time.time()
    records = [InstructionRecord(u, a["instruction"], a["reason"], v.astype(np.float32), version, written_at,
                                 "nearline", window=w) for ((u, w), a), v in zip(ok, vectors)]
    store.put_many(records, cursor=(CURSOR, entries[-1][0]))  # the windows and the cursor after them, atomically
    lat = [written_at - e.get("arrived", e["ts"]) for _, e in entries if is_high_value(e)]
    return {"events": len(entries), "windows": len(keys), "written": len(records), "failed": len(keys) - len(ok),
            "cursor": entries[-1][0], "latencies_s": lat}


def pending(source, store, now: float | None = None, window_s: int = 300) -> tuple[int, str, str]:
    """(consumable events, committed cursor, cursor after them): what the sensor checks."""
    cursor, ready = _ready(source, store, now, window_s)
    return len(ready), cursor, (ready[-1][0] if ready else cursor)


def _ready(source, store, now: float | None, window_s: int) -> tuple[str, list[tuple[str, dict]]]:
    """The store's committed cursor and the events after it whose windows have closed by ``now``."""
    cursor = store.get_cursor(CURSOR) or source.start
    return cursor, closed_prefix(source.read_from(cursor), time.time() if now is None else now, window_s)


def main(argv: list[str] | None = None) -> dict:
    """One near-line pass from the command line (what ``nearline_job`` does, without Dagster)."""
    import argparse

    from ..sid.text import shared_text_encoder
    from .llm import InstructionLLM, LLMConfig
    from .store import make_store

    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("--events", required=True, help="JSON-lines log path or redis:// URL")
    ap.add_argument("--store", required=True, help="sqlite:///PATH or redis://HOST:PORT/DB")
    ap.add_argument("--llm-base-url", default="", help="default: $OXY_LLM_BASE_URL")
    ap.add_argument("--llm-cache", default="")
    ap.add_argument("--now", type=float, default=None)
    ap.add_argument("--window-s", type=int, default=300)
    ap.add_argument("--batch-windows", type=int, default=64, help="windows per atomic commit")
    args = ap.parse_args(argv)
    llm = InstructionLLM(LLMConfig(base_url=args.llm_base_url, cache_path=args.llm_cache, timeout_s=180))
    store = make_store(args.store)
    stats = process_nearline(make_event_source(args.events), store, llm, shared_text_encoder(), now=args.now,
                             window_s=args.window_s, batch_windows=args.batch_windows)
    stats.pop("latencies_s", None)
    print(json.dumps(stats))
    return stats


if __name__ == "__main__":
    main()
